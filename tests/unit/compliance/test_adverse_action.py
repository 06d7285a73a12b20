"""The adverse-action notice's pure parts (``compliance.adverse_action``): whom the borrower asks for the statement of
specific reasons (1002.9(a)(2)(ii): a name, an address and a telephone number)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.adverse_action import FTC, NoticeParties, Party, adverse_action_notice, right_to_reasons

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
