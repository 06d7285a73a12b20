"""The adverse-action notice a borrower refused credit is given (ECOA / Regulation B, 12 CFR 1002.9(a)(2)): a
statement of the action taken, the name and address of the creditor, the ECOA statement of 1002.9(b)(1) with the
name and address of the federal agency that administers compliance concerning the creditor, and the statement of
specific reasons (the adverse-action reason codes, at most four), and the applicant's right to ask each creditor
for a statement of its specific reasons (1002.9(a)(2)(ii)) with whom to ask: the platform's name, address and
telephone number.

The platform gives the notice: for itself when its own scoring, screening or limits refused the request, and also for
the lenders whose products were considered when none of them offered credit (1002.9(g): one notice given through a
third party discloses the identity of each creditor it is given for, with that creditor's own principal reasons):
each lender by the legal name and postal address its registration gives, a DeFi pool by its contract and chain (no
legal person: the platform arranges its loans), and a lender registered before legal names were asked for is said
to have none on file. Pure: the parties come from the settings and the registry, the clock from the caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: the ECOA statement of 1002.9(b)(1) in our words (the facts it must carry: the bases, then the agency named after it)
ECOA_STATEMENT = (
    "The federal Equal Credit Opportunity Act prohibits creditors from discriminating against credit applicants on "
    "the basis of race, color, religion, national origin, sex, marital status or age (provided the applicant has the "
    "capacity to enter into a binding contract); because all or part of the applicant's income derives from any "
    "public assistance program; or because the applicant has in good faith exercised any right under the Consumer "
    "Credit Protection Act. The federal agency that administers compliance with this law concerning this creditor "
    "is named below."
)
#: the action a notice states: every refusal the platform answers with a notice is a denial of the credit asked for
CREDIT_DENIED = "credit denied"


@dataclass(frozen=True, slots=True)
class Party:
    """A name and a postal address, as a notice prints them, and a telephone number where one is given (the
    creditor's: where to ask for a statement of reasons, 1002.9(a)(2)(ii))."""

    name: str
    address: str
    telephone: str | None = None

    def fields(self) -> dict[str, str]:
        named = {"name": self.name, "address": self.address}
        return named if self.telephone is None else named | {"telephone": self.telephone}


@dataclass(frozen=True, slots=True)
class NoticeParties:
    """Who a notice names: the platform (``creditor``: it gives the notice, and its address is where the borrower
    writes) and the federal agency that administers ECOA compliance concerning it (``agency``)."""

    creditor: Party
    agency: Party


#: the local runs' creditor: refused outside them (``api.settings``), where the notice must name the real one
LOCAL_CREDITOR = Party(
    "creditmesh (local development)",
    "no address configured: set CREDITMESH_CREDITOR_NAME and CREDITMESH_CREDITOR_ADDRESS",
    "no telephone configured: set CREDITMESH_CREDITOR_TELEPHONE",
)
#: the creditor deploy/kubernetes/configmap.yaml ships with, for the operator to replace: refused in production as the
#: local one is (``api.settings``; tests/unit/test_deploy_manifests.py checks the manifest holds exactly these)
MANIFEST_PLACEHOLDER_CREDITOR = Party(
    "Example Credit Platform, Inc.", "1 Example Street, Suite 100, Springfield, ST 00000", "+1 555 555 0100"
)
#: Regulation B Appendix A's agency for a creditor no other agency listed there supervises: the local runs' default;
#: outside them the operator names the agency concerning the creditor (``CREDITMESH_ECOA_AGENCY_*``)
FTC = Party("Federal Trade Commission", "Consumer Response Center, 600 Pennsylvania Avenue NW, Washington, DC 20580")
LOCAL_NOTICE_PARTIES = NoticeParties(LOCAL_CREDITOR, FTC)


#: how a notice identifies a lender considered (``Considered.identity``)
REGISTERED, POOL, NOT_ON_FILE = "registered", "pool", "not-on-file"


@dataclass(frozen=True, slots=True)
class Considered:
    """A lender whose product was considered for the request, what came of it (its provider outcome) and why it
    offered no credit (``reasons``: (code, text) each, its own principal reasons, at most four), and who it is
    (1002.9(g)): ``creditor``, the legal name and postal address its registration gives; or ``pool``, the (chain,
    contract address) of the DeFi lending pool it stands for, which is no legal person; neither: a lender whose
    registration gives none (one registered before legal names were asked for, or outside production)."""

    provider_id: str
    outcome: str
    reasons: tuple[tuple[str, str], ...] = ()
    creditor: Party | None = None
    pool: tuple[str, str] | None = None

    @property
    def identity(self) -> str:
        if self.pool is not None:
            return POOL
        return NOT_ON_FILE if self.creditor is None else REGISTERED

    def fields(self, platform: Party) -> dict[str, Any]:
        """Its part of the notice ``platform`` gives: the outcome and reasons, then who it is — ``identity``
        (registered, pool or not-on-file), its ``legal_name`` and ``address`` (null for a pool and for none on file),
        the ``pool`` contract and chain, and an ``identity_note`` saying what a lender without a legal name is and
        whom to ask (null for a registered one)."""
        return {
            "provider_id": self.provider_id,
            "outcome": self.outcome,
            "reasons": _reasons(self.reasons),
            "identity": self.identity,
            "legal_name": None if self.creditor is None else self.creditor.name,
            "address": None if self.creditor is None else self.creditor.address,
            "pool": None if self.pool is None else {"chain": self.pool[0], "contract": self.pool[1]},
            "identity_note": self._note(platform),
        }

    def _note(self, platform: Party) -> str | None:
        """What a lender without a legal name and address on file is, and whom to ask about it."""
        if self.pool is not None:
            chain, contract = self.pool
            return (
                f"a DeFi lending pool, not a legal person: the LendingPool contract {contract} on {chain}, whose loans "
                f"{platform.name} arranges; ask {platform.name} about it"
            )
        if self.creditor is None:
            return (
                f"its legal name and postal address are not on file (its registration gives none); ask {platform.name} "
                "for them"
            )
        return None


def right_to_reasons(creditor: Party) -> str:
    """The disclosure of 1002.9(a)(2)(ii) in our words: the applicant may ask for a statement of the specific reasons
    of every creditor the notice is given for, within 60 days of it, and is answered within 30 days; whom to ask:
    the name, address and telephone number of ``creditor``."""
    calling = "" if creditor.telephone is None else f", or calling {creditor.telephone}"
    return (
        "You have the right to a statement of the specific reasons for this denial from each creditor this notice is "
        "given for. Ask within 60 days of this notice, writing to "
        f"{creditor.name}, {creditor.address}{calling}; the statement will be given to you within 30 days of your "
        "asking."
    )


def adverse_action_notice(
    parties: NoticeParties,
    asked: str,
    lenders: Sequence[Considered],
    reasons: Sequence[tuple[str, str]],
    given_at: datetime,
) -> dict[str, Any]:
    """The notice of a request for ``asked`` (e.g. "1500.00 USDC for 30 days") denied for ``reasons`` ((code, text)
    each, the principal reasons, at most four), given by the platform for itself and for ``lenders``, each with its
    own reasons (empty when no lender was asked: the platform's own scoring, screening or limits refused it)."""
    on_behalf = "itself" if not lenders else "itself and the lenders named, whose products were considered"
    return {
        "action_taken": CREDIT_DENIED,
        "statement": f"Your request for credit of {asked} was denied. {parties.creditor.name} gives this notice for "
        f"{on_behalf}; the specific reasons are listed.",
        "creditor": parties.creditor.fields(),
        "lenders": [lender.fields(parties.creditor) for lender in lenders],
        "reasons": _reasons(reasons),
        "right_to_reasons": right_to_reasons(parties.creditor),
        "ecoa_notice": ECOA_STATEMENT,
        "agency": parties.agency.fields(),
        "given_at": given_at.isoformat().replace("+00:00", "Z"),
    }


def _reasons(reasons: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"code": code, "text": text} for code, text in reasons]
