"""The adverse-action notice a credit request not approved carries in its ``risk`` (``risk.adverse_action_notice``:
``compliance.adverse_action``), and a credit request denied before it is written in its problem (403
``compliance-denied`` of the screening, 429 ``velocity-limit`` R50/R51: ``adverse_action_notice``). The answers are
written as plain JSON (``api.render``, ``api.problems``), so these models document it in the OpenAPI document
(``api.openapi``) and let a client, or a test, read it typed. A notice given before 2026-11-29, kept with its
request, has no ``right_to_reasons`` and no lender's ``reasons``, and one given before its creditor's ``telephone`` and
each lender's identity (``identity``, ``legal_name``, ``address``, ``pool``, ``identity_note``) has none of them: all
are optional here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NoticePartyOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    address: str = Field(description="postal address")
    telephone: str | None = Field(
        None,
        description="the creditor's telephone number: with its name and address, whom to ask for the statement of "
        "specific reasons (12 CFR 1002.9(a)(2)(ii)); absent for the agency, and in a notice given before it was",
    )


class NoticeReasonOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="the adverse-action reason code (docs/risk.md), or the screening's code")
    text: str


class NoticePoolOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: str = Field(description="the chain's name (GET /v1/platform)")
    contract: str = Field(description="the LendingPool contract's address")


class NoticeLenderOut(BaseModel):
    """A lender considered, and who it is (12 CFR 1002.9(g): a notice given for several creditors discloses each
    one's identity). The identity members are absent from a notice given before they were."""

    model_config = ConfigDict(extra="forbid")

    provider_id: str
    outcome: str = Field(description="its provider outcome for the request (declined, ineligible, dropped …)")
    reasons: list[NoticeReasonOut] = Field(
        default_factory=list,
        description="this lender's own principal reasons, each naming its case, at most four (12 CFR 1002.9(g))",
    )
    identity: Literal["registered", "pool", "not-on-file"] | None = Field(
        None,
        description="registered: legal_name and address are the creditor's, as its registration gives them; pool: a "
        "DeFi lending pool, no legal person (pool names its contract and chain; the platform arranges its loans); "
        "not-on-file: its registration gives no legal name (made before they were asked for)",
    )
    legal_name: str | None = Field(None, description="the creditor's legal name; null for a pool or none on file")
    address: str | None = Field(None, description="the creditor's postal address; null with legal_name")
    pool: NoticePoolOut | None = Field(None, description="the lending pool's contract and chain; null for a lender")
    identity_note: str | None = Field(
        None,
        description="for a pool or a lender with no legal name on file, what it is and whom to ask (the platform); "
        "null for a registered lender",
    )


class AdverseActionNoticeOut(BaseModel):
    """The notice 12 CFR 1002.9(a)(2) requires, given by the platform for itself and the lenders considered
    (1002.9(g)), each with its own reasons: the action taken, the creditor's name and address, the specific reasons,
    the right to a statement of reasons and whom to ask, and the ECOA statement of 1002.9(b)(1) with the agency that
    administers compliance concerning the creditor."""

    model_config = ConfigDict(extra="forbid")

    action_taken: Literal["credit denied"]
    statement: str = Field(description="the action taken on the credit asked for, and for whom the notice is given")
    creditor: NoticePartyOut = Field(description="the platform: it gives the notice; write to it at this address")
    lenders: list[NoticeLenderOut] = Field(
        description="the lenders whose products were considered, each its outcome and its own reasons; empty when "
        "the platform's own scoring, screening or limits refused the request before any lender was asked"
    )
    reasons: list[NoticeReasonOut] = Field(
        description="the specific reasons, at most four: risk.reasons, or the problem's reasons (a screening's "
        "403 reasons; a velocity stop's R50/R51)"
    )
    right_to_reasons: str | None = Field(
        None,
        description="the applicant's right to a statement of each creditor's specific reasons within 30 days, "
        "asked within 60 days, and whom to ask (12 CFR 1002.9(a)(2)(ii))",
    )
    ecoa_notice: str = Field(description="the Equal Credit Opportunity Act statement (12 CFR 1002.9(b)(1))")
    agency: NoticePartyOut = Field(description="the federal agency that administers ECOA compliance for the creditor")
    given_at: str = Field(description="RFC 3339 UTC")
