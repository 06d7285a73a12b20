"""OFAC's digital currency address file is refused when an address is listed for no entry (it was stored as empty,
and an empty listing reads as "not listed") or when the file does not hold what its metadata counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from compliance.errors import SanctionsListInvalid
from compliance.sanctions.lists import SHIPPED_DIR, parse_address_list

pytestmark = pytest.mark.unit
WALLET = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"
ENTRY = {"entity": "LAZARUS GROUP", "program": "DPRK3", "type": "Digital Currency Address - ETH", "uid": "27307"}


def _file(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "metadata": {"sdnListDate": "08/20/2026", "sdnRecordCount": 19249, "totalAddresses": 1, "totalEntries": 1},
        "addresses": {WALLET: {"type": "Digital Currency Address - ETH", "entries": [ENTRY]}},
    }
    document["metadata"] |= changes
    return document


def _parse(document: dict[str, Any]) -> Any:
    return parse_address_list(json.dumps(document).encode(), "ofac-digital-currency-addresses-2026-08-20.json")


def test_the_shipped_file_and_a_well_counted_one_are_read() -> None:
    shipped = SHIPPED_DIR / "ofac-digital-currency-addresses-2026-08-20.json"
    assert parse_address_list(shipped.read_bytes(), shipped.name).lookup(WALLET)
    assert _parse(_file()).lookup(WALLET)[0].entity == "LAZARUS GROUP"


def test_an_address_with_no_entry_is_refused() -> None:
    document = _file(totalEntries=0)
    document["addresses"][WALLET]["entries"] = []
    with pytest.raises(SanctionsListInvalid, match="has no entry"):
        _parse(document)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"totalAddresses": 2}, "metadata.totalAddresses says 2, the file holds 1"),
        ({"totalEntries": 3}, "metadata.totalEntries says 3, the file holds 1"),
        ({"totalAddresses": None}, "metadata.totalAddresses says None"),
        ({"sdnRecordCount": 0}, "sdnRecordCount 0 is not a count"),
        ({"sdnRecordCount": "many"}, "sdnRecordCount 'many' is not a count"),
    ],
)
def test_counts_that_do_not_match_the_file_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SanctionsListInvalid, match=message):
        _parse(_file(**changes))
