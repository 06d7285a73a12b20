"""Wallet screening in every letter case, list parsing, staleness failing closed, newer lists loaded from disk."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from compliance.errors import ComplianceInputError, SanctionsListInvalid, SanctionsListStale
from compliance.sanctions.lists import SHIPPED_DIR, AddressList, NameList, load_newest, parse_name_list
from compliance.sanctions.screening import SanctionsPolicy, SanctionsScreen

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_every_evm_address_is_loaded_eth_and_usdt(shipped_lists: tuple[AddressList, NameList]) -> None:
    addresses, _ = shipped_lists
    assert len(addresses.entries) == 104
    currencies = {e.currency for entries in addresses.entries.values() for e in entries}
    assert {"ETH", "USDT"} <= currencies
    assert addresses.version.label.startswith("ofac-sdn-digital-currency-addresses@2026-08-20#")


def test_every_listed_address_is_caught_in_every_case(screen: SanctionsScreen) -> None:
    for address in screen.addresses.entries:
        for form in (
            address,
            address.upper().replace("0X", "0x"),
            "0X" + address[2:].upper(),
            to_checksum_address(address),
        ):
            hit = screen.screen_address(form, NOW)
            assert hit is not None, form
            assert hit.address == address


def test_clean_address_passes_and_garbage_is_refused(screen: SanctionsScreen) -> None:
    assert screen.screen_address("0x" + "12" * 20, NOW) is None
    with pytest.raises(ComplianceInputError):
        screen.screen_address("0x1234", NOW)
    with pytest.raises(ComplianceInputError):
        screen.screen_address("0x" + "zz" * 20, NOW)


def test_names_file_parsed_with_aliases(name_list: NameList) -> None:
    assert name_list.version.label.startswith("ofac-sdn-names@2024-05-03#")
    primaries = [n for n in name_list.names if n.alias_of is None]
    aliases = [n for n in name_list.names if n.alias_of is not None]
    assert len(primaries) == 14965 - 851 - 376  # vessels and aircraft left out
    assert len(aliases) > 3000
    assert any(n.name == "BNC" and n.alias_of == "BANCO NACIONAL DE CUBA" for n in aliases)


def test_alias_screened(screen: SanctionsScreen) -> None:
    hits = screen.screen_name("Abu Hafs, the Mauritanian", NOW)
    assert hits
    assert hits[0].primary_name == "AL-WALID, Mahfouz Ould"
    assert hits[0].listed_name == "ABU HAFS THE MAURITANIAN"


def test_stale_lists_fail_closed_with_an_injected_clock(shipped_lists: tuple[AddressList, NameList]) -> None:
    policy = SanctionsPolicy(address_list_max_age=timedelta(days=30), name_list_max_age=timedelta(days=30))
    strict = SanctionsScreen(*shipped_lists, policy=policy)
    fresh = datetime(2026, 8, 25, tzinfo=UTC)
    assert strict.screen_address("0x" + "12" * 20, fresh) is None
    with pytest.raises(SanctionsListStale, match="older than its maximum age of 30 days") as info:
        strict.screen_address("0x" + "12" * 20, fresh + timedelta(days=30))
    assert info.value.list_name == "ofac-sdn-digital-currency-addresses"
    with pytest.raises(SanctionsListStale):
        strict.screen_name("Jane Doe", fresh)  # the names list is from 2024


def test_defaults_let_the_shipped_files_work_today(screen: SanctionsScreen) -> None:
    assert screen.screen_address("0x" + "12" * 20, NOW) is None
    assert screen.screen_name("Jane Doe-Nobody", NOW) == []


def test_newer_file_loads_without_code_change(tmp_path: Path) -> None:
    for path in SHIPPED_DIR.glob("ofac-*"):
        shutil.copy(path, tmp_path / path.name)
    document = json.loads((SHIPPED_DIR / "ofac-digital-currency-addresses-2026-08-20.json").read_bytes())
    document["metadata"]["sdnListDate"] = "11/20/2026"
    new_address = "0x" + "ab" * 20
    document["addresses"][new_address] = {"type": "Digital Currency Address - ETH", "entries": [{"entity": "NEW"}]}
    (tmp_path / "ofac-digital-currency-addresses-2026-11-20.json").write_text(json.dumps(document))
    addresses, names = load_newest(tmp_path)
    assert addresses.version.published == datetime(2026, 11, 20, tzinfo=UTC)
    screen = SanctionsScreen(addresses, names, SanctionsPolicy(address_list_max_age=timedelta(days=7)))
    hit = screen.screen_address(to_checksum_address(new_address), NOW)
    assert hit is not None
    assert hit.entries[0].entity == "NEW"


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SanctionsListInvalid):
        load_newest(tmp_path)
    with pytest.raises(SanctionsListInvalid, match="columns"):
        parse_name_list(b'1,"X",-0-\r\n\x1a', "ofac-sdn-2026-01-01.csv", "2026-01-01")
