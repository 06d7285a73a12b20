"""What a borrower owes across every chain and lender, per asset: the figure its exposure is checked on
(``aggregator.exposure``), read by the accept's store under the borrower's lock (``AcceptRepository.exposure``) and by
the quoting store without one (``QuotingStore.open_principal``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Exposure:
    """The borrower's open principal per asset symbol (base units): what is still owed on active and defaulted
    loans (a default does not cancel the debt) plus the accepts in flight."""

    by_asset: dict[str, int] = field(default_factory=dict)
