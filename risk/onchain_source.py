"""``ChainOnchainSource``: a wallet's ``OnchainFeatures`` read from our contracts on every chain through ``chain/``.

Each chain is read concurrently and pinned to the head block it reports first, so one chain's numbers are
consistent with each other:

* **tx_count**: the wallet's nonce (``eth_getTransactionCount``) — transactions it sent (a contract wallet's nonce
  counts the contracts it created, from 1: ``contract_wallet`` says so, from its code, ``eth_getCode``, read in the
  same batch; an EIP-7702 delegation's code is an EOA's, whose nonce does count its transactions).
  It, the code and the ``LoanOpened`` query below go to the node with the head block in ONE JSON-RPC batch (one round
  trip per chain) once the chain's head is known to be within one log range of the aggregator's deployment (from the
  chain's previous reading; the first reading, and every reading of a chain whose node refused that batch once,
  reads the head first and then the two as a batch pinned to it). In the one batch both are read at the node's
  latest block: ``LoanOpened`` entries after the head block the batch reported are dropped, so the loans stay
  pinned to it; a block mined while the node answers the batch may add that block's transactions to ``tx_count``.
* **loans**: ``LoanOpened`` of the CreditAggregator filtered by the borrower topic, from the aggregator's deployment
  block; then ``LoanClosed``, ``LoanDefaulted``, ``LoanWrittenOff`` and ``LoanCancelled`` filtered by those loan
  ids, and the CollateralManager's ``LoanLiquidated`` likewise (``chain.logs.fetch_logs``, bounded adaptive ranges).
  *defaulted* = marked in default or written off as bad debt; *repaid* = closed without default, write-off, any
  liquidation (a loan a liquidator closed was not repaid by its borrower) or cancellation (a loan its lender never
  funded, cancelled by the operator, was never owed), and only a loan that says something of the borrower: a
  principal worth at least ``MIN_REPAID_PRINCIPAL_USD`` (``usd_prices``: the platform's price of the loan's asset)
  held at least ``MIN_REPAID_SECONDS`` from its opening block to its closing one (the two blocks' timestamps, one
  batch, remembered per loan) — three loans of 1 USDC repaid at once earned the whole repaid-loan bonus;
  *open* = neither closed nor defaulted.
* **min_health_factor_bps**: the lowest ``CollateralManager.healthFactor`` (18 decimals, rounded down to basis
  points) over the open loans, read as one JSON-RPC batch pinned to the head block; an open loan without debt is
  left out; None with no open loan.
* **wallet_age_days**: from the block of the wallet's first transaction, found by bisecting its nonce over block
  numbers (about log2(head) ``eth_getTransactionCount`` calls; the timestamp found is remembered per chain and
  wallet, since it does not change). It needs historical state: a pruned node answers with an error, and that
  chain then does not date the wallet (the rest of its features still count). A wallet that never sent a
  transaction has no age there. Across chains the oldest age wins, measured to each chain's head block timestamp
  (no clock read).
  ``date_wallets=False`` turns this off (age None: ``risk.onchain.combine`` then judges the wallet by its
  transactions alone).

**Failure rule.** Every RPC call has ``rpc_timeout`` and every chain ``chain_timeout`` as a whole. A chain that
fails in any way (outage, timeout, a refused log range, a reverting view such as a stale price feed, a missing
deployment) is skipped and named in ``OnchainReading.skipped`` and in a warning log; the features come from the
chains that answered and ``OnchainFeatures.chain_ids`` lists exactly those, so a decision records what it saw.
A skipped chain's history is missing, not clean: a caller that must not miss a default there should look at
``skipped``. With a chain skipped the features are not ``complete``: ``combine`` never calls such a history thin
(reason R32, which would be untrue); with every chain skipped nothing was read (``chain_ids=()``) and the wallet gets
no on-chain adjustment at all — never the points of a good one, nor a reason that was not established.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TypeVar

from eth_typing import ChecksumAddress
from web3.exceptions import Web3Exception, Web3RPCError

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.deployment import DeploymentRecord
from chain.errors import ChainError, ConfigurationError, RpcUnavailable
from chain.logs import DecodedLog, LogsRequest, fetch_logs, logs_request
from chain.views import read_views, view
from risk.onchain import MIN_REPAID_PRINCIPAL_USD, MIN_REPAID_SECONDS, OnchainFeatures

log = logging.getLogger(__name__)

T = TypeVar("T")

HEALTH_FACTOR_ONE = 10**18  # CollateralManager.healthFactor is scaled by 1e18
NO_DEBT = 2**256 - 1  # what healthFactor answers for a loan without debt
BPS = 10_000
#: the highest health factor recorded (basis points: 100,000×): only a factor near 1 changes a decision, and the
#: decision's inputs are hashed as canonical JSON (RFC 8785), whose integers stop at 2**53 — a loan of one base unit of
#: debt against much collateral has a factor far past it, and every credit request of its borrower failed
MAX_HEALTH_FACTOR_BPS = 10**9
SECONDS_PER_DAY = 86_400
LOAN_IDS_PER_QUERY = 100  # loan-id topics per eth_getLogs call; nodes cap the size of a filter
OUTCOME_EVENTS = ("LoanClosed", "LoanDefaulted", "LoanWrittenOff", "LoanCancelled")
#: blocks the head may have moved since the chain's previous reading for the one-batch read to stay within one log
#: range (past that the node may refuse the range: the two-round-trip read then halves it)
HEAD_MARGIN_BLOCKS = 1_000
CHAIN_FAILURES: tuple[type[Exception], ...] = (ChainError, Web3Exception, TimeoutError)
DELEGATION_PREFIX = "0xef0100"  # EIP-7702: an EOA's code pointing at the contract it delegates to


@dataclass(frozen=True, slots=True)
class ChainReading:
    """One chain's share of a wallet's features, as of ``head_block``."""

    chain_id: int
    head_block: int
    head_timestamp: int
    tx_count: int
    loans_opened: int
    loans_repaid: int
    loans_defaulted: int
    min_health_factor_bps: int | None
    first_tx_timestamp: int | None  # None: never sent a transaction here, or the node keeps no history
    contract: bool = False  # the wallet holds code here (not an EIP-7702 delegation): a contract wallet

    @property
    def wallet_age_days(self) -> int | None:
        if self.first_tx_timestamp is None:
            return None
        return max(0, self.head_timestamp - self.first_tx_timestamp) // SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class OnchainReading:
    features: OnchainFeatures
    readings: dict[str, ChainReading] = field(default_factory=dict)  # by chain name
    skipped: dict[str, str] = field(default_factory=dict)  # chain name → why it was skipped


def merge(readings: Sequence[ChainReading], skipped: int = 0) -> OnchainFeatures:
    """Sum the counts, keep the lowest health factor and the oldest age over the chains read; ``complete`` when no
    chain was ``skipped`` and at least one was read (without any, nothing is known of the wallet)."""
    healths = [r.min_health_factor_bps for r in readings if r.min_health_factor_bps is not None]
    ages = [age for r in readings if (age := r.wallet_age_days) is not None]
    return OnchainFeatures(
        wallet_age_days=max(ages) if ages else None,
        tx_count=sum(r.tx_count for r in readings),
        loans_opened=sum(r.loans_opened for r in readings),
        loans_repaid=sum(r.loans_repaid for r in readings),
        loans_defaulted=sum(r.loans_defaulted for r in readings),
        min_health_factor_bps=min(healths) if healths else None,
        chain_ids=tuple(sorted(r.chain_id for r in readings)),
        complete=bool(readings) and not skipped,
        contract_wallet=any(r.contract for r in readings),
    )


def _holds_contract(code: object) -> bool:
    """Whether an ``eth_getCode`` answer is a contract's code: not empty, and not an EIP-7702 delegation (``0xef0100``
    and an address), which an EOA sets and whose nonce still counts its transactions."""
    if not isinstance(code, str) or not code.startswith("0x"):
        raise ChainError(f"unexpected JSON-RPC answer for eth_getCode: {code!r}"[:300])
    return len(code) > 2 and not code.lower().startswith(DELEGATION_PREFIX)


def _quantity(answer: object, name: str) -> int:
    """A JSON-RPC quantity (``0x``-hex) from a raw answer; anything else is the node's fault (ChainError: skipped)."""
    try:
        return int(answer[name], 16)  # type: ignore[index]
    except (TypeError, KeyError, ValueError) as err:
        raise ChainError(f"unexpected JSON-RPC answer for {name}: {answer!r}"[:300]) from err


class ChainOnchainSource:
    """An ``OnchainFeatureSource`` over our deployments (see the module docstring).

    Args:
        clients: connected clients by chain name.
        records: the deployments record of each chain, by the same names (a chain without one is skipped).
        rpc_timeout: seconds for any single RPC call.
        chain_timeout: seconds for everything read from one chain.
        max_log_range: blocks per ``eth_getLogs`` call at most (halved while the node refuses).
        date_wallets: whether to bisect the nonce for the wallet's age.
        usd_prices: the USD price of a whole unit of each listed token, by the platform's name for it (a repaid
            loan counts from ``MIN_REPAID_PRINCIPAL_USD``; a token without one never counts); None: every listed
            token at one USD a unit (the devnets' stablecoins).
    """

    def __init__(
        self,
        clients: Mapping[str, ChainClient],
        records: Mapping[str, DeploymentRecord],
        *,
        rpc_timeout: float = 3.0,
        chain_timeout: float = 8.0,
        max_log_range: int = 10_000,
        date_wallets: bool = True,
        first_tx_cache_size: int = 10_000,
        usd_prices: Mapping[str, Decimal] | None = None,
    ) -> None:
        self._clients, self._records = dict(clients), dict(records)
        self.rpc_timeout, self.chain_timeout = rpc_timeout, chain_timeout
        self.max_log_range, self.date_wallets = max_log_range, date_wallets
        self._first_tx_timestamps: OrderedDict[tuple[int, str], int] = OrderedDict()  # (chain id, wallet)
        #: the one-batch read's ``LoanOpened`` query of each (chain id, wallet), ``toBlock`` at ``latest``
        self._latest_loans: OrderedDict[tuple[int, str], LogsRequest] = OrderedDict()
        self._heads: dict[int, int] = {}  # the head block of each chain's latest reading, by chain id
        self._one_batch_refused: set[int] = set()  # chains whose node refused the one-batch read
        self._cache_size = first_tx_cache_size
        self._usd_prices = None if usd_prices is None else dict(usd_prices)
        self._tokens: dict[str, dict[str, tuple[str, int]]] = {}  # chain name → token address → (name, decimals)
        self._held_long: OrderedDict[tuple[int, int], bool] = OrderedDict()  # (chain id, loan id) → held long enough
        self._aggregator_abi = load_artifact("CreditAggregator").abi
        self._manager_abi = load_artifact("CollateralManager").abi
        self._has_health_view = any(
            item.get("type") == "function" and item.get("name") == "healthFactor" for item in self._manager_abi
        )

    async def features(self, wallet: ChecksumAddress) -> OnchainFeatures:
        return (await self.read(wallet)).features

    async def read(self, wallet: ChecksumAddress) -> OnchainReading:
        """Every chain's reading, concurrently; a chain that fails is skipped and named."""
        names = sorted(self._clients)
        outcomes = await asyncio.gather(*(self._read_or_skip(name, wallet) for name in names))
        readings = {name: out for name, out in zip(names, outcomes, strict=True) if isinstance(out, ChainReading)}
        skipped = {name: out for name, out in zip(names, outcomes, strict=True) if isinstance(out, str)}
        return OnchainReading(merge(list(readings.values()), len(skipped)), readings, skipped)

    async def _read_or_skip(self, name: str, wallet: ChecksumAddress) -> ChainReading | str:
        deadline = asyncio.timeout(self.chain_timeout)
        try:
            async with deadline:
                return await self.read_chain(name, wallet)
        except CHAIN_FAILURES as err:
            if deadline.expired():
                why = f"no answer within the chain's {self.chain_timeout} s"
            elif isinstance(err, TimeoutError) and not str(err):
                why = f"an RPC call took over {self.rpc_timeout} s"
            else:
                why = f"{type(err).__name__}: {err}"[:300]
        log.warning("on-chain features: skipping %s for %s: %s", name, wallet, why)
        return why

    async def read_chain(self, name: str, wallet: ChecksumAddress) -> ChainReading:
        """One chain's reading; raises what the chain raises (``read`` turns that into a skip)."""
        client = self._clients[name]
        record = self._records.get(name)
        if record is None:
            raise ChainError(f"no deployments record for {name}")
        aggregator = record.contracts.get("CreditAggregator")
        if aggregator is None:
            raise ChainError(f"CreditAggregator is not deployed on {name}")
        manager = record.address("CollateralManager")
        # raw JSON-RPC (chain.client.ChainClient.rpc), not web3's request pipeline (middleware, formatters, a block
        # turned into an AttributeDict)
        at_once = await self._head_nonce_and_loans(client, wallet, aggregator.address, aggregator.block)
        if at_once is not None:
            head, head_timestamp, (tx_count, contract, opened) = at_once
        else:
            head_block = await self._call(client.rpc("eth_getBlockByNumber", "latest", False))
            head, head_timestamp = _quantity(head_block, "number"), _quantity(head_block, "timestamp")
            tx_count, contract, opened = await self._nonce_and_loans(
                client, wallet, aggregator.address, aggregator.block, head
            )
        self._heads[client.config.chain_id] = head
        loan_ids = [int(entry.args["loanId"]) for entry in opened]
        first_loan_block = min((entry.block_number for entry in opened), default=head)
        closed: set[int] = set()
        defaulted: set[int] = set()
        liquidated: set[int] = set()
        cancelled: set[int] = set()  # closed too, never funded: no repayment to credit
        closed_at: dict[int, int] = {}  # the block of each loan's LoanClosed
        for start in range(0, len(loan_ids), LOAN_IDS_PER_QUERY):
            chunk = loan_ids[start : start + LOAN_IDS_PER_QUERY]
            outcomes, liquidations = await asyncio.gather(
                fetch_logs(
                    client,
                    aggregator.address,
                    self._aggregator_abi,
                    OUTCOME_EVENTS,
                    {"loanId": chunk},
                    from_block=first_loan_block,
                    to_block=head,
                    max_range=self.max_log_range,
                    call_timeout=self.rpc_timeout,
                ),
                fetch_logs(
                    client,
                    manager,
                    self._manager_abi,
                    "LoanLiquidated",
                    {"loanId": chunk},
                    from_block=first_loan_block,
                    to_block=head,
                    max_range=self.max_log_range,
                    call_timeout=self.rpc_timeout,
                ),
            )
            for entry in outcomes:
                outcome = {"LoanClosed": closed, "LoanCancelled": cancelled}.get(entry.event, defaulted)
                outcome.add(int(entry.args["loanId"]))
                if entry.event == "LoanClosed":
                    closed_at[int(entry.args["loanId"])] = entry.block_number
            liquidated.update(int(entry.args["loanId"]) for entry in liquidations)
        open_loans = [loan for loan in loan_ids if loan not in closed and loan not in defaulted]
        first_tx_timestamp = await self._first_tx_timestamp(client, wallet, head, tx_count)
        return ChainReading(
            chain_id=client.config.chain_id,
            head_block=head,
            head_timestamp=head_timestamp,
            tx_count=tx_count,
            loans_opened=len(loan_ids),
            loans_repaid=await self._repaid_that_count(
                client,
                name,
                {int(entry.args["loanId"]): entry for entry in opened},
                closed_at,
                closed - defaulted - liquidated - cancelled,
            ),
            loans_defaulted=len(defaulted),
            min_health_factor_bps=await self._min_health(client, manager, open_loans, head),
            first_tx_timestamp=first_tx_timestamp,
            contract=contract,
        )

    async def _head_nonce_and_loans(
        self, client: ChainClient, wallet: ChecksumAddress, aggregator: ChecksumAddress, deployed: int
    ) -> tuple[int, int, tuple[int, bool, list[DecodedLog]]] | None:
        """The head block (number, timestamp), the wallet's nonce, whether it holds code and its ``LoanOpened`` events
        up to that block, in ONE JSON-RPC batch; None (the caller reads them in two round trips) when the chain's head
        is not known yet, was too far from the deployment for one log range, or the node refuses the batch or its
        range."""
        known = self._heads.get(client.config.chain_id)
        if known is None or client.config.chain_id in self._one_batch_refused:
            return None
        if known - deployed >= self.max_log_range - HEAD_MARGIN_BLOCKS:
            return None
        loans = self._latest_loans_request(client, wallet, aggregator, deployed, known)
        if loans is None:
            return None
        try:
            head_block, nonce, code, entries = await self._call(
                client.batch(
                    ("eth_getBlockByNumber", ["latest", False]),
                    ("eth_getTransactionCount", [wallet, "latest"]),
                    ("eth_getCode", [wallet, "latest"]),
                    ("eth_getLogs", [loans.params]),
                )
            )
        except RpcUnavailable:
            raise
        except ChainError:  # an error answer (a refused range, say): read again in two round trips, and from now on
            # (the range only grows: a node that refused it once refuses it again)
            self._one_batch_refused.add(client.config.chain_id)
            return None
        head = _quantity(head_block, "number")
        opened = [entry for entry in loans.decode(entries) if entry.block_number <= head]
        wallet_state = (_quantity({"nonce": nonce}, "nonce"), _holds_contract(code), opened)
        return head, _quantity(head_block, "timestamp"), wallet_state

    def _latest_loans_request(
        self, client: ChainClient, wallet: ChecksumAddress, aggregator: ChecksumAddress, deployed: int, known: int
    ) -> LogsRequest | None:
        """The wallet's ``LoanOpened`` query from the aggregator's deployment to the node's ``latest`` block, for the
        one-batch read: the same for every reading of the wallet on the chain, so built once and kept (up to
        ``first_tx_cache_size`` wallets; its topics cost more to encode than the rest of the batch)."""
        key = (client.config.chain_id, wallet)
        found = self._latest_loans.get(key)
        if found is not None:
            return found
        loans = self._loans_request(client, wallet, aggregator, deployed, known)
        if loans is None:
            return None
        found = self._latest_loans[key] = replace(loans, params=loans.params | {"toBlock": "latest"})
        while len(self._latest_loans) > self._cache_size:
            self._latest_loans.popitem(last=False)
        return found

    def _loans_request(
        self, client: ChainClient, wallet: ChecksumAddress, aggregator: ChecksumAddress, deployed: int, to_block: int
    ) -> LogsRequest | None:
        """The wallet's ``LoanOpened`` query from the aggregator's deployment to ``to_block``, as one ``eth_getLogs``
        (None when it can match nothing)."""
        return logs_request(
            client,
            aggregator,
            self._aggregator_abi,
            "LoanOpened",
            {"borrower": wallet},
            from_block=deployed,
            to_block=to_block,
        )

    async def _nonce_and_loans(
        self, client: ChainClient, wallet: ChecksumAddress, aggregator: ChecksumAddress, deployed: int, head: int
    ) -> tuple[int, bool, list[DecodedLog]]:
        """The wallet's nonce, whether it holds code and its ``LoanOpened`` events as of ``head``: one JSON-RPC batch
        (one round trip) when the aggregator's blocks fit in one log range; otherwise, or when the node refuses the
        batch or the range, one call each, the logs over ``fetch_logs``' adaptive ranges."""
        loans = self._loans_request(client, wallet, aggregator, deployed, head)
        if loans is not None and head - deployed < self.max_log_range:
            nonce_call = ("eth_getTransactionCount", [wallet, hex(head)])
            code_call = ("eth_getCode", [wallet, hex(head)])
            try:
                nonce, code, entries = await self._call(
                    client.batch(nonce_call, code_call, ("eth_getLogs", [loans.params]))
                )
            except RpcUnavailable:
                raise
            except ChainError:  # an error answer (a refused range, say): asked again one call at a time
                pass
            else:
                return _quantity({"nonce": nonce}, "nonce"), _holds_contract(code), loans.decode(entries)
        nonce, code = await asyncio.gather(
            self._call(client.rpc("eth_getTransactionCount", wallet, hex(head))),
            self._call(client.rpc("eth_getCode", wallet, hex(head))),
        )
        tx_count = _quantity({"nonce": nonce}, "nonce")
        opened = await fetch_logs(
            client,
            aggregator,
            self._aggregator_abi,
            "LoanOpened",
            {"borrower": wallet},
            from_block=deployed,
            to_block=head,
            max_range=self.max_log_range,
            call_timeout=self.rpc_timeout,
        )
        return tx_count, _holds_contract(code), opened

    async def _repaid_that_count(
        self,
        client: ChainClient,
        name: str,
        opened: Mapping[int, DecodedLog],
        closed_at: Mapping[int, int],
        repaid: set[int],
    ) -> int:
        """How many of the ``repaid`` loans count (see the module docstring): a principal worth at least
        ``MIN_REPAID_PRINCIPAL_USD``, held at least ``MIN_REPAID_SECONDS`` (the timestamps of the blocks that opened
        and closed it, read in batches and remembered per loan: they do not change)."""
        chain_id = client.config.chain_id
        large = [loan for loan in sorted(repaid) if self._principal_usd(name, opened[loan]) >= MIN_REPAID_PRINCIPAL_USD]
        unread = [loan for loan in large if (chain_id, loan) not in self._held_long]
        blocks = sorted({opened[loan].block_number for loan in unread} | {closed_at[loan] for loan in unread})
        timestamps: dict[int, int] = {}
        for start in range(0, len(blocks), LOAN_IDS_PER_QUERY):
            chunk = blocks[start : start + LOAN_IDS_PER_QUERY]
            found = await self._call(client.batch(*(("eth_getBlockByNumber", [hex(b), False]) for b in chunk)))
            timestamps.update((b, _quantity(block, "timestamp")) for b, block in zip(chunk, found, strict=True))
        for loan in unread:
            held = timestamps[closed_at[loan]] - timestamps[opened[loan].block_number]
            self._held_long[(chain_id, loan)] = held >= MIN_REPAID_SECONDS
        while len(self._held_long) > self._cache_size:
            self._held_long.popitem(last=False)
        return sum(1 for loan in large if self._held_long.get((chain_id, loan), False))

    def _principal_usd(self, name: str, loan: DecodedLog) -> Decimal:
        """The loan's principal in USD (``usd_prices``); zero for a token the chain's record does not list, or
        without a price."""
        tokens = self._tokens.get(name)
        if tokens is None:
            try:
                listings = self._records[name].token_listings()
            except ConfigurationError as err:  # refused at start-up (api.bootstrap): no loan of this chain counts
                log.warning("on-chain features: %s lists no readable tokens: %s", name, err)
                listings = {}
            tokens = self._tokens[name] = {
                listing.address.lower(): (symbol, listing.decimals) for symbol, listing in listings.items()
            }
        token = tokens.get(str(loan.args["asset"]).lower())
        if token is None:
            return Decimal(0)
        symbol, decimals = token
        price = Decimal(1) if self._usd_prices is None else self._usd_prices.get(symbol, Decimal(0))
        return Decimal(int(loan.args["principal"])).scaleb(-decimals) * price

    async def _min_health(
        self, client: ChainClient, manager: ChecksumAddress, loans: Sequence[int], head: int
    ) -> int | None:
        if not loans or not self._has_health_view:
            return None
        health = view("CollateralManager", "healthFactor")
        factors = await self._call(
            read_views(client.provider, [health.call(manager, loan, block=head) for loan in loans])
        )
        return lowest_health_bps([int(factor) for factor in factors])

    async def _first_tx_timestamp(
        self, client: ChainClient, wallet: ChecksumAddress, head: int, nonce: int
    ) -> int | None:
        if not self.date_wallets or nonce == 0:
            return None
        key = (client.config.chain_id, wallet.lower())
        known = self._first_tx_timestamps.get(key)
        if known is not None:
            return known
        try:
            block = await self._bisect_first_tx(client, wallet, head)
            timestamp = int((await self._call(client.w3.eth.get_block(block)))["timestamp"])
        except Web3RPCError as err:  # the node keeps no state this old: no age from this chain
            log.info("on-chain features: %s cannot date %s: %s", client.name, wallet, err)
            return None
        self._first_tx_timestamps[key] = timestamp
        while len(self._first_tx_timestamps) > self._cache_size:
            self._first_tx_timestamps.popitem(last=False)
        return timestamp

    async def _bisect_first_tx(self, client: ChainClient, wallet: ChecksumAddress, head: int) -> int:
        """The lowest block at which the wallet's nonce is above zero (its first transaction is in it)."""
        low, high = 0, head
        while low < high:
            middle = (low + high) // 2
            if await self._call(client.w3.eth.get_transaction_count(wallet, middle)) > 0:
                high = middle
            else:
                low = middle + 1
        return low

    async def _call(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.rpc_timeout):
            return await call


def lowest_health_bps(factors: Sequence[int]) -> int | None:
    """The lowest of ``healthFactor`` answers (18 decimals) in basis points, rounded down and at most
    ``MAX_HEALTH_FACTOR_BPS``; None when no loan is in debt (``NO_DEBT``)."""
    in_debt = [factor for factor in factors if factor != NO_DEBT]
    if not in_debt:
        return None
    return min(min(in_debt) * BPS // HEALTH_FACTOR_ONE, MAX_HEALTH_FACTOR_BPS)
