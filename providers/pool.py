"""The DeFi adapter: quotes from a LendingPool's on-chain views (ILendingPool): the model rate for the requested
size plus the risk spread of the borrower's grade, if the pool has the liquidity and lends for the requested term
(``maxTermSeconds``), the chain's CreditAggregator has it registered (``poolId(pool)`` not 0) and neither the pool
nor that aggregator is paused (``paused()``): an offer naming an unregistered pool reverts in ``openLoan``
(``UnknownPool``), a paused pool's ``fundLoan`` and a paused aggregator's ``openLoan`` revert (``EnforcedPause``), so
their offer could only fail after the borrower signed it. The pool declines, naming which it is.

A pool registered through the API must lend for the chain's CreditAggregator and be registered with it already
(``check_destination``): its ``creditAggregator()`` and the aggregator's ``poolId(pool)`` are read then, and a pool
the Timelock has not registered yet (``creditmesh admin propose register-pool`` pending, or refused) is a 422.

A quote reads its six views (the aggregator's ``poolId(pool)`` and ``paused()`` at the chain's CreditAggregator —
``AdapterContext.aggregators``; without it, the pool's ``creditAggregator``, an immutable read once) as pre-encoded
``eth_call``s in one JSON-RPC batch (``chain.views``): one round trip, no
web3 contract object or selector worked out per call. They are read at the head block the credit request read for
the pool's chain (its on-chain history, ``QuoteRequest.chain_heads``) and shared (``chain.views.BlockViews``): the
requests that quote the same principal at the same block read the pool once. A pool's state cannot change within a
block, so a shared answer is the one each request would have read at that block; it is at most as old as the
request's own head reading (tens of milliseconds before the fan-out), the same age as a read at ``latest`` made then.
Nothing is promised on it anyway: ``openLoan`` re-checks the term, the rate against the pool's model and the
liquidity when the borrower accepts (``LendingPool.borrow``), minutes later at most. A request that read no head for
the chain (its history was skipped: the node failed or is down) reads the pool at ``latest`` as before, so a chain
whose node is down has its pools left out with the reason named."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception
from web3.providers.async_base import AsyncBaseProvider

from chain.errors import ChainError, RpcUnavailable
from chain.views import BlockTag, BlockViews, ViewCall, read_views, view
from providers._exceptions import InvalidRegistration, ProviderUnavailable
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.models import (
    Capabilities,
    Decline,
    FundingResult,
    FundingState,
    FundingStatus,
    ProviderHealth,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
)

SpreadForGrade = Callable[[int], int]
log = logging.getLogger(__name__)


class PoolConfig(BaseModel):
    """The ``config`` of a ``pool`` registration: one LendingPool of one asset on one chain."""

    model_config = ConfigDict(extra="forbid")

    chain: str = Field(min_length=1, max_length=64)
    asset: str = Field(min_length=1, max_length=16)
    address: str
    origination_fee_bps: int = Field(default=50, ge=0, le=1_000)
    offer_ttl_seconds: int = Field(default=600, ge=30, le=86_400)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError("not an EVM address")
        return to_checksum_address(value)


class PoolAdapter(ProviderAdapter):
    """One LendingPool of one asset on one chain."""

    kind = ProviderKind.POOL.value
    #: every field of ``PoolConfig``: a public contract on a public chain, and its terms
    audited_config = frozenset(PoolConfig.model_fields)

    def __init__(
        self,
        chain: str,
        asset: str,
        pool_address: ChecksumAddress,
        w3: AsyncWeb3[AsyncBaseProvider],
        spread_bps: SpreadForGrade,
        origination_fee_bps: int = 50,
        offer_ttl: timedelta = timedelta(minutes=10),
        provider_id: str | None = None,
        aggregator_address: ChecksumAddress | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        self.provider_id = provider_id or f"pool:{chain}:{asset}"
        self.chain, self.asset, self.pool_address = chain, asset, pool_address
        #: whom it lends to: its registration's capabilities within its own asset and chain (``pool_capabilities``)
        self._capabilities = capabilities or Capabilities(assets=frozenset({asset}), chains=frozenset({chain}))
        self._w3, self._provider = w3, w3.provider
        self._at_block = BlockViews(w3.provider)
        self._liquidity = view("LendingPool", "availableLiquidity")
        self._model_rate = view("LendingPool", "modelRateBps")
        self._max_term = view("LendingPool", "maxTermSeconds")
        self._pool_paused = view("LendingPool", "paused")
        self._aggregator_paused = view("CreditAggregator", "paused")
        self._pool_id = view("CreditAggregator", "poolId")
        self._credit_aggregator = view("LendingPool", "creditAggregator")
        self._asset = view("LendingPool", "asset")
        #: the token the platform lists for ``asset`` on ``chain``, which the pool must lend (None: not checked;
        #: empty: not listed there)
        self.listed_token: str | None = None
        #: why the registration's capabilities cannot serve this pool (refused at registration; a stored one loads
        #: within the pool's own asset and chain, with a warning)
        self.capability_conflict: str | None = None
        #: the chain's CreditAggregator, which opens the pool's loans: the pool must lend for it and be registered
        #: with it (None: not known here; the pool's own ``creditAggregator()``, immutable, read at the first quote)
        self.aggregator_address: str | None = aggregator_address
        #: whether ``aggregator_address`` is the chain's, given (checked at registration), not read from the pool
        self._aggregator_given = aggregator_address is not None
        self._spread = spread_bps
        self._fee_bps = origination_fee_bps
        self._ttl = offer_ttl

    @classmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        try:
            config = PoolConfig.model_validate(dict(registration.config))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidRegistration(f"{registration.provider_id}: {where}: {first['msg']}") from err
        w3 = context.web3.get(config.chain)
        if w3 is None:
            known = ", ".join(sorted(context.web3)) or "none"
            raise InvalidRegistration(f"{registration.provider_id}: unknown chain {config.chain!r}; known: {known}")
        pool = cls(
            config.chain,
            config.asset,
            to_checksum_address(config.address),
            w3,
            context.spread_for_grade,
            origination_fee_bps=config.origination_fee_bps,
            offer_ttl=timedelta(seconds=config.offer_ttl_seconds),
            provider_id=registration.provider_id,
            aggregator_address=_chain_aggregator(context, config.chain),
            capabilities=pool_capabilities(registration, config.asset, config.chain),
        )
        if context.tokens is not None:
            pool.listed_token = context.tokens.get(config.chain, {}).get(config.asset, "")
        pool.capability_conflict = capability_conflict(registration, config.asset, config.chain)
        if pool.capability_conflict is not None:
            log.warning("%s (its own asset and chain are kept)", pool.capability_conflict)
        return pool

    async def check_destination(self) -> None:
        """Refuse, at registration, a pool that does not lend its configured asset: its ``asset()`` must be the
        token the platform lists for that asset on the pool's chain (``AdapterContext.tokens``). A WETH pool
        registered as USDC would quote principals counted in USDC's decimals and fund the loan in WETH. Refuse too
        a pool that does not lend for the chain's CreditAggregator (``creditAggregator()``) or that it has not
        registered (``poolId(pool)`` 0: the Timelock's ``registerPool`` not executed yet, or never proposed): its
        offers were ranked and signed, and every accept then failed on-chain (``UnknownPool``)."""
        if self.capability_conflict is not None:
            raise InvalidRegistration(self.capability_conflict)
        if self.listed_token is None and not self._aggregator_given:
            return
        if self.listed_token is not None and not self.listed_token:
            raise InvalidRegistration(
                f"{self.provider_id}: {self.asset} is not listed on {self.chain}: no token to check the pool's against"
            )
        try:
            code = await self._w3.eth.get_code(self.pool_address)
        except (ChainError, Web3Exception, OSError) as err:
            raise InvalidRegistration(
                f"{self.provider_id}: cannot read the code at {self.pool_address} on {self.chain}: {type(err).__name__}"
            ) from err
        if not code:  # its views would answer nothing to decode (the zero address, an account, a typo)
            raise InvalidRegistration(f"{self.provider_id}: no contract at {self.pool_address} on {self.chain}")
        calls = [self._asset.call(self.pool_address), self._credit_aggregator.call(self.pool_address)]
        try:
            token, lends_for = await read_views(self._provider, calls)
        except (ChainError, Web3Exception, OSError) as err:
            raise InvalidRegistration(
                f"{self.provider_id}: the pool does not answer its views (asset(), creditAggregator(): "
                f"{type(err).__name__})"
            ) from err
        if self.listed_token is not None and str(token).lower() != self.listed_token.lower():
            raise InvalidRegistration(
                f"{self.provider_id}: the pool at {self.pool_address} on {self.chain} lends the token "
                f"{to_checksum_address(token)}, not {self.asset} ({to_checksum_address(self.listed_token)} there)"
            )
        if self._aggregator_given:
            await self._check_registered(to_checksum_address(lends_for))

    async def _check_registered(self, lends_for: ChecksumAddress) -> None:
        """Refuse a pool that lends for another CreditAggregator than the chain's, or that the chain's has not
        registered (``poolId``)."""
        aggregator = to_checksum_address(str(self.aggregator_address))
        where = f"{self.provider_id}: the pool at {self.pool_address} on {self.chain}"
        if lends_for != aggregator:
            raise InvalidRegistration(
                f"{where} lends for the CreditAggregator {lends_for}, not {self.chain}'s ({aggregator}): its loans "
                "could never be opened"
            )
        try:
            (pool_id,) = await read_views(self._provider, [self._pool_id.call(aggregator, self.pool_address)])
        except (ChainError, Web3Exception, OSError) as err:
            raise InvalidRegistration(
                f"{where}: cannot read its poolId at the CreditAggregator: {type(err).__name__}"
            ) from err
        if int(pool_id) == 0:
            raise InvalidRegistration(
                f"{where} is not registered with the CreditAggregator ({aggregator}: poolId 0): every accept of its "
                "offers would be refused on-chain (UnknownPool). Register it through governance first (creditmesh "
                "admin propose register-pool), then here once the Timelock has executed it"
            )

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def lending_pool(self) -> tuple[str, str] | None:
        return self.chain, self.pool_address

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        if request.chains and self.chain not in request.chains:
            return Decline(self.provider_id, f"chain {self.chain} not among the requested chains")
        try:
            liquidity, model_rate, max_term, pool_paused, aggregator_paused, pool_id = await self._state(request)
        except (ChainError, Web3Exception, OSError) as err:
            raise ProviderUnavailable(f"{self.provider_id}: cannot read the pool: {type(err).__name__}") from err
        if int(pool_id) == 0:  # removed by governance, or never registered (a registration stored unchecked)
            return Decline(
                self.provider_id,
                f"the pool is not registered with the CreditAggregator on {self.chain}: openLoan would refuse its "
                "offer (UnknownPool)",
            )
        if pool_paused:
            return Decline(self.provider_id, "the pool is paused by its guardian: it funds no loan until unpaused")
        if aggregator_paused:
            return Decline(
                self.provider_id, f"the CreditAggregator on {self.chain} is paused: it opens no loan until unpaused"
            )
        if request.term_days * 86_400 > int(max_term):
            return Decline(self.provider_id, f"term above the pool's maximum of {int(max_term) // 86_400} days")
        if int(liquidity) < request.principal:
            return Decline(self.provider_id, "insufficient pool liquidity")
        model_rate = int(model_rate)
        return [
            ProviderOffer(
                provider_id=self.provider_id,
                kind=ProviderKind.POOL,
                asset=request.asset,
                principal=request.principal,
                rate_bps=model_rate + self._spread(request.grade),
                origination_fee=request.principal * self._fee_bps // 10_000,
                term_days=request.term_days,
                repayment=RepaymentShape.SINGLE,
                expires_at=datetime.now(UTC) + self._ttl,
                provider_ref=f"{self.pool_address}:{model_rate}",
                chain=self.chain,
                pool_address=self.pool_address,
            )
        ]

    async def _state(self, request: QuoteRequest) -> list[Any]:
        """The pool's liquidity, model rate for the principal and maximum term, whether it is paused, whether its
        CreditAggregator is and its id there (``poolId``; 0: not registered): at the request's head block for the
        chain, shared (``BlockViews``), else at ``latest``. A node that answers the pinned read with an error (a
        load-balanced RPC whose backend has not seen that block yet, say) is asked at ``latest`` instead; a
        transport failure is not asked again."""
        if self.aggregator_address is None:
            (found,) = await read_views(self._provider, [self._credit_aggregator.call(self.pool_address)])
            self.aggregator_address = to_checksum_address(found)
        head = request.head_of(self.chain)
        if head is not None:
            try:
                return await self._at_block.read(self._calls(request, head))
            except RpcUnavailable:
                raise
            except ChainError as err:
                log.info("%s: the pool read at block %d was refused, read at latest: %s", self.provider_id, head, err)
        return await read_views(self._provider, self._calls(request, "latest"))

    def _calls(self, request: QuoteRequest, block: BlockTag) -> list[ViewCall]:
        return [
            self._liquidity.call(self.pool_address, block=block),
            self._model_rate.call(self.pool_address, request.principal, block=block),
            self._max_term.call(self.pool_address, block=block),
            self._pool_paused.call(self.pool_address, block=block),
            self._aggregator_paused.call(str(self.aggregator_address), block=block),
            self._pool_id.call(str(self.aggregator_address), self.pool_address, block=block),
        ]

    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        # A pool funds inside openLoan itself: nothing to tell it off-chain.
        return FundingResult(self.provider_id, offer.provider_ref, True, "funded on-chain by openLoan")

    async def status(self, provider_ref: str) -> FundingStatus:
        # The pool's side of a loan is the LoanOpened event, read by the chain layer; off-chain there is no state.
        return FundingStatus(self.provider_id, provider_ref, FundingState.UNKNOWN, "pool loans are read on-chain")

    async def health(self) -> ProviderHealth:
        try:
            (liquidity,) = await read_views(self._provider, [self._liquidity.call(self.pool_address)])
        except (ChainError, Web3Exception, OSError) as err:
            return ProviderHealth(self.provider_id, False, type(err).__name__)
        return ProviderHealth(self.provider_id, True, extra={"availableLiquidity": str(liquidity)})


def _chain_aggregator(context: AdapterContext, chain: str) -> ChecksumAddress | None:
    """The CreditAggregator of ``chain`` the context names (None: not known)."""
    address = (context.aggregators or {}).get(chain)
    return None if not address else to_checksum_address(address)


def pool_capabilities(registration: ProviderRegistration, asset: str, chain: str) -> Capabilities:
    """Whom a pool of ``asset`` on ``chain`` lends to: its registration's capabilities (amounts, terms, collateral,
    jurisdictions), checked before it is asked as an HTTP lender's are (``Capabilities.accepts``: ``ineligible``
    with the reason), within its own asset and chain; none given: any request for its asset on its chain. They were
    stored and ignored: a pool an admin limited to New York borrowers and 100 USDC was offered to a Florida borrower
    for 1,500. Capabilities that leave out the pool's asset or chain are refused at registration
    (``capability_conflict``, ``check_destination``); one stored before that was checked keeps its pool's own."""
    own = Capabilities(assets=frozenset({asset}), chains=frozenset({chain}))
    given = registration.capabilities
    return own if given is None else replace(given, assets=own.assets, chains=own.chains)


def capability_conflict(registration: ProviderRegistration, asset: str, chain: str) -> str | None:
    """Why the registration's capabilities could lend to no one through a pool of ``asset`` on ``chain`` (they leave
    out its asset or its chain), or None."""
    given = registration.capabilities
    if given is not None and asset not in given.assets:
        return (
            f"{registration.provider_id}: capabilities.assets ({', '.join(sorted(given.assets))}) leave out the "
            f"pool's asset {asset}"
        )
    if given is not None and given.chains and chain not in given.chains:
        return (
            f"{registration.provider_id}: capabilities.chains ({', '.join(sorted(given.chains))}) leave out the "
            f"pool's chain {chain}"
        )
    return None
