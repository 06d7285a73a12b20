"""Credit request → validation → velocity → compliance → risk → concurrent fan-out with one deadline → disclose
and check each offer (usury caps) → rank → signed EIP-712 quotes.

Every provider's outcome, the risk decision and each compliance decision are recorded; an invalid request writes
nothing, a refused one writes only its decision records.

The service is this module's :class:`QuotingService`; what one request runs is ``aggregator.quote_pipeline``, the
offers' disclosure, ranking and signing ``aggregator.quote_offers``."""

from __future__ import annotations

from aggregator.owed import Exposure
from aggregator.quote_offers import risk_summary
from aggregator.quote_pipeline import (
    MAX_TERM_DAYS,
    MIN_TERM_DAYS,
    CreditRequestSpec,
    QuotePipeline,
    QuotingConfig,
)
from aggregator.quote_refusals import NO_IDENTITY
from aggregator.quote_store import CreditRequestRecord, QuotedRequest, QuoteRecord

__all__ = [
    "MAX_TERM_DAYS",
    "MIN_TERM_DAYS",
    "NO_IDENTITY",
    "CreditRequestSpec",
    "QuotingConfig",
    "QuotingService",
    "risk_summary",
]


class QuotingService(QuotePipeline):
    """Credit requests answered with signed quotes (``request_credit``, the pipeline's steps), and the stored ones
    read back."""

    @property
    def quote_signer_address(self) -> str:
        """The account that signs every offer (what a client checks an offer's signature against)."""
        return str(self._quote_signer.address)

    @property
    def lendable_assets(self) -> frozenset[str]:
        """The assets a credit request may ask for (the others only as collateral)."""
        return self._config.lendable_assets

    @property
    def risk_signer_address(self) -> str:
        """The account that signs risk attestations."""
        return str(self._risk_signer.address)

    # ------------------------------------------------------------------ reads

    def open_principal(self, borrower_id: str) -> Exposure:
        """The borrower's open principal as a credit request is quoted under (blocking, no lock:
        ``QuotingStore.open_principal``): read by the API in the worker-thread hop that reads the caller's key and
        file (``api.deps.get_borrower_exposure``), and given to ``request_credit``."""
        return self._store.open_principal(borrower_id)

    def find_request(self, request_id: str) -> tuple[QuotedRequest, str | None] | None:
        """A stored credit request, and the loan opened from one of its quotes if any."""
        with self._store.unit_of_work() as uow:
            return uow.quoting.get_request(request_id)

    def find_quote(self, quote_id: str) -> tuple[QuoteRecord, CreditRequestRecord] | None:
        """A stored quote and its credit request."""
        with self._store.unit_of_work() as uow:
            return uow.quoting.get_quote(quote_id)
