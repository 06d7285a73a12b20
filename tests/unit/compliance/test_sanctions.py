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


def _aliases(remarks: str) -> list[str]:
    row = f'9001,"PRIMARY, Name",individual,"SDGT",-0-,-0-,-0-,-0-,-0-,-0-,-0-,"{remarks}"\r\n\x1a'
    names = parse_name_list(row.encode(), "ofac-sdn-2026-01-01.csv", "2026-01-01").names
    assert all(n.alias_of == "PRIMARY, Name" for n in names[1:])
    return [n.name for n in names[1:]]


def test_every_alias_form_in_remarks_is_read_to_its_closing_quote() -> None:
    """a.k.a., f.k.a. and n.k.a. ("now known as": the shipped list's LGOK), any case, dots optional; a name runs to
    the quote that ends its remark, apostrophes inside it kept (the first quote cut KATA'IB to KATA, and a name
    opening with an apostrophe, ''ABD AL-RAHMAN', was lost)."""
    remarks = (
        "DOB 1960; POB Saint-Petersburg (F.K.A. Leningrad), Russia; a.k.a. 'ONE'; f.k.a. 'TWO'; n.k.a. 'THREE'; "
        "A.K.A. 'FOUR'; N.K.A., 'FIVE'; aka 'SIX'; fka 'SEVEN'; nka 'EIGHT'; a.k.a. 'KATA'IB HIZBALLAH'; "
        "a.k.a. ''ABD AL-RAHMAN'; a.k.a. ''FOOPIE''; a.k.a. 'ABU AL-WAFA''; Linked To: SOMEONE; n.k.a. 'LAST'."
    )
    assert _aliases(remarks) == [
        "ONE",
        "TWO",
        "THREE",
        "FOUR",
        "FIVE",
        "SIX",
        "SEVEN",
        "EIGHT",
        "KATA'IB HIZBALLAH",
        "'ABD AL-RAHMAN",
        "'FOOPIE'",
        "ABU AL-WAFA'",
        "LAST",
    ]
    assert _aliases("a.k.a. 'PEOPLE'S ARMY'") == ["PEOPLE'S ARMY"]
    # two quoted names in one remark are two aliases; a comma with no quote after it is OFAC's "SURNAME, Given"
    assert _aliases("a.k.a. 'ABU-AL-KARKH', 'Yusuf'.") == ["ABU-AL-KARKH", "Yusuf"]
    assert _aliases("a.k.a. 'AL-DARDA', Abu'") == ["AL-DARDA', Abu"]
    assert _aliases("Linked To: SAKAN GENERAL TRADING; Website www.peykasa.ir.") == []


def test_the_shipped_lists_now_known_as_and_apostrophe_aliases_are_screened(
    name_list: NameList, screen: SanctionsScreen
) -> None:
    by_name = {n.name: n for n in name_list.names if n.alias_of is not None}
    assert by_name["LGOK"].ent_num == 41920  # n.k.a. 'LGOK': LEBEDINSKIY GORNO OBOGATITELNIY KOMBINAT
    assert by_name["KATA'IB HIZBALLAH FI AL-IRAQ"].ent_num == 11462
    assert by_name["PEOPLE'S ARMY"].ent_num == 15588
    assert "KATA" not in by_name
    assert "PEOPLE" not in by_name
    assert [hit.ent_num for hit in screen.screen_name("LGOK", NOW)][:1] == [41920]


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
    document["metadata"]["totalAddresses"] += 1  # the counts are checked against the file
    document["metadata"]["totalEntries"] += 1
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
