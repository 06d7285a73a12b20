"""The adverse-action notice's pure parts (``compliance.adverse_action``): whom the borrower asks for the statement of
specific reasons (1002.9(a)(2)(ii): a name, an address and a telephone number), and who each lender considered is
(1002.9(g))."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.notice_schemas import AdverseActionNoticeOut
from compliance.adverse_action import FTC, Considered, NoticeParties, Party, adverse_action_notice, right_to_reasons

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
PLATFORM = Party("Prairie State Credit Platform, Inc.", "1 Main Street, Springfield, IL 62701", "+1 217 555 0142")


def test_the_right_to_reasons_names_whom_to_ask_by_name_address_and_telephone() -> None:
    right = right_to_reasons(PLATFORM)

    assert f"writing to {PLATFORM.name}, {PLATFORM.address}, or calling +1 217 555 0142;" in right
    assert "within 60 days" in right
    assert "within 30 days" in right


def test_the_notice_gives_the_creditor_s_telephone_and_the_agency_as_before() -> None:
    notice = adverse_action_notice(NoticeParties(PLATFORM, FTC), "1500.00 USDC for 30 days", [], [("R20", "x")], AT)

    assert notice["creditor"] == {"name": PLATFORM.name, "address": PLATFORM.address, "telephone": "+1 217 555 0142"}
    assert notice["agency"] == {"name": FTC.name, "address": FTC.address}  # no telephone of its own: none printed
    assert "+1 217 555 0142" in notice["right_to_reasons"]


def test_each_lender_considered_is_identified_by_its_legal_name_its_pool_or_as_none_on_file() -> None:
    """1002.9(g): a notice given by a third party for several creditors discloses each one's identity. A registered
    lender by its legal name and postal address; a DeFi pool (no legal person) by its contract and chain, the platform
    arranging its loans; a registration without them is said to have none on file. The members before are as they
    were."""
    bank = Considered("sim-bank", "declined", (("R46", "declined"),), Party("Bank, N.A.", "2 Bank Plaza"))
    pool = Considered("pool:polygon-local:USDC", "dropped", (), pool=("polygon-local", "0x" + "ab" * 20))
    older = Considered("old-lender", "timeout")

    notice = adverse_action_notice(NoticeParties(PLATFORM, FTC), "1 USDC for 7 days", [bank, pool, older], [], AT)

    registered, pooled, unnamed = notice["lenders"]
    assert registered == {
        "provider_id": "sim-bank",
        "outcome": "declined",
        "reasons": [{"code": "R46", "text": "declined"}],
        "identity": "registered",
        "legal_name": "Bank, N.A.",
        "address": "2 Bank Plaza",
        "pool": None,
        "identity_note": None,
    }
    assert (pooled["identity"], pooled["legal_name"], pooled["address"]) == ("pool", None, None)
    assert pooled["pool"] == {"chain": "polygon-local", "contract": "0x" + "ab" * 20}
    assert pooled["identity_note"] == (
        f"a DeFi lending pool, not a legal person: the LendingPool contract 0x{'ab' * 20} on polygon-local, whose "
        f"loans {PLATFORM.name} arranges; ask {PLATFORM.name} about it"
    )
    assert (unnamed["identity"], unnamed["legal_name"], unnamed["pool"]) == ("not-on-file", None, None)
    assert unnamed["identity_note"] == (
        f"its legal name and postal address are not on file (its registration gives none); ask {PLATFORM.name} for them"
    )
    AdverseActionNoticeOut.model_validate(notice)  # as the OpenAPI document has it
