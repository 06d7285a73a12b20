"""The interface every provider adapter implements: HTTP lenders, plugins and on-chain pools alike.

A provider is registered in one of three ways (see ``providers.registry``): an HTTP lender speaking the Provider
Quote Protocol, registered through the API; a Python adapter plugin found through the entry-point group
``creditmesh.providers``; an on-chain pool (chain + asset + address). Each is built by its adapter class's
``from_registration`` and checked when its class is loaded: a class that leaves an abstract method unimplemented is
refused with a message naming the method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from compliance.adverse_action import Party
from providers._exceptions import ProviderError, ProviderProtocolError
from providers.models import (
    Capabilities,
    Decline,
    FundingResult,
    FundingStatus,
    ProviderHealth,
    ProviderOffer,
    QuoteRequest,
)

if TYPE_CHECKING:
    import httpx
    from web3 import AsyncWeb3
    from web3.providers.async_base import AsyncBaseProvider

    from providers.destinations import DestinationGuard

__all__ = [
    "AdapterContext",
    "ProviderAdapter",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderRegistration",
]


@dataclass(frozen=True, slots=True)
class ProviderRegistration:
    """What is persisted for one provider: its id, the entry-point name of its adapter (``kind``), the adapter's own
    configuration, what it lends (None: the adapter says), and the creditor it lends as: its legal name and postal
    address, which the adverse-action notices given for it name (12 CFR 1002.9(g); None: none on file — a pool, a
    registration made before they were asked for, or a local one without them)."""

    provider_id: str
    kind: str
    config: Mapping[str, Any] = field(default_factory=dict)
    capabilities: Capabilities | None = None
    creditor: Party | None = None


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What an adapter may use to reach its provider: the shared HTTP client, a web3 client per chain, and the
    risk spread of a grade (pools add it to their model rate), and the guard that checks where an HTTP adapter may
    connect (``providers.destinations``; the platform's ``http`` client applies it to every call). ``https_only``
    (production): a lender's URLs registered now must be ``https://``. ``tokens``: each chain's listed token address
    by asset symbol, which a pool registered for an asset must lend (None: not checked, as in unit tests).
    ``aggregators``: each chain's CreditAggregator address, which a pool must lend for and be registered with
    (``poolId``) to be registered, and whose ``poolId`` and ``paused()`` its quotes read (None: not checked; the
    pool's own ``creditAggregator()`` is read). ``creditor_required`` (production): a lender registered now must give
    its legal name and postal address (``ProviderRegistration.creditor``)."""

    http: httpx.AsyncClient
    web3: Mapping[str, AsyncWeb3[AsyncBaseProvider]] = field(default_factory=dict)
    spread_for_grade: Callable[[int], int] = lambda grade: 0
    destinations: DestinationGuard | None = None
    https_only: bool = False
    tokens: Mapping[str, Mapping[str, str]] | None = None
    aggregators: Mapping[str, str] | None = None
    creditor_required: bool = False


class ProviderAdapter(ABC):
    """A lender the aggregator can ask for offers.

    Implementations translate every failure into a ``ProviderError`` subclass (``providers._exceptions``); the
    resilience layer wraps each adapter and never lets the aggregator reach one directly.
    """

    provider_id: str
    kind: str
    #: the fields of this kind's registration ``config`` an audit entry may show (``store.providers.audit_config``):
    #: every other field is named under ``withheld``, its value never written. None by default: a plugin's
    #: configuration is withheld whole unless its class names the fields that hold no secret.
    audited_config: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abstractmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        """Build the adapter from a persisted registration; raise ``InvalidRegistration`` saying what is wrong."""

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What the provider lends: assets, chains, amount and term ranges, collateral, jurisdictions."""

    @abstractmethod
    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        """Offers for ``request``, or a decline with its reason. Raises ProviderError when the provider fails."""

    @abstractmethod
    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        """Tell the provider its offer was accepted. Never retried without the same ``idempotency_key``."""

    # The two-phase accept (Provider Quote Protocol v1, additive): reserve → openLoan on-chain → fund once
    # LoanOpened is confirmed, or cancel when the chain refused. Only traditional lenders implement it.

    async def reserve(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        """Ask the lender to hold ``offer`` for this accept without funding it; ``funded`` True means held."""
        raise ProviderProtocolError(f"{self.provider_id} ({self.kind}) does not take reservations")

    async def fund(self, provider_ref: str, idempotency_key: str, chain_id: int, tx_hash: str) -> FundingResult:
        """Tell the lender to fund its reserved offer: the loan is open on-chain (``tx_hash`` on ``chain_id``);
        ``funded`` True means it funds it (False: the lender refused, with why in ``detail``)."""
        raise ProviderProtocolError(f"{self.provider_id} ({self.kind}) does not take funding instructions")

    async def cancel(self, provider_ref: str, idempotency_key: str) -> FundingResult:
        """Release the reservation: the loan was not opened on-chain; ``funded`` True means released (the phase
        done, as for the other phases), False that the lender refused."""
        raise ProviderProtocolError(f"{self.provider_id} ({self.kind}) does not take reservations")

    @abstractmethod
    async def status(self, provider_ref: str) -> FundingStatus:
        """Where the offer ``provider_ref`` stands at the provider."""

    @abstractmethod
    async def health(self) -> ProviderHealth:
        """Whether the provider answers now."""

    def lending_pool(self) -> tuple[str, str] | None:
        """The chain and address of the lending pool this provider's offers draw on, None for a lender (the
        default): a pool offer (``ProviderKind.POOL``) is kept only when it names its provider's own pool, so an
        adapter cannot send borrowers to a pool it does not stand for (``aggregator.offer_checks``)."""
        return None

    def creditor(self) -> Party | None:
        """The legal name and postal address of the creditor this provider lends as, as its registration gives them
        (the adverse-action notices given for it name them); None (the default): none on file."""
        return None

    async def check_destination(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Refuse, with ``InvalidRegistration``, a registration whose address the platform must not call."""
