"""An import of OFAC's files never loses what the lists in use have without the operator's ``force``: the EVM
addresses past SDN.CSV's 1,000-character Remarks cut are kept from the address list in use while their entries are
listed, and an address cut in two by that cut is skipped with a warning, not a refusal of the whole import."""

from __future__ import annotations

from datetime import date
from types import MappingProxyType

import pytest

from compliance.sanctions.lists import AddressEntry, AddressList, ListVersion, NameList
from compliance.sanctions.ofac import parse_csv_set_import
from compliance.sanctions.updates import merge_addresses, prepare_import
from tests.unit.compliance.test_ofac_import import ADD, ALT, SDN

pytestmark = pytest.mark.unit
PUBLISHED = date(2026, 11, 20)
KEPT = "0x" + "aa" * 20  # a wallet of entry 9002 past the Remarks cut: in the list in use only
DELISTED = "0x" + "bb" * 20  # a wallet of an entry no longer on the list


def _in_use(names: NameList) -> AddressList:
    version = ListVersion("ofac-sdn-digital-currency-addresses", names.version.published, "shipped.json", "00" * 32)
    entries = {
        KEPT: (AddressEntry(KEPT, "BLUE HARBOR SHIPPING LLC", "IRAN", "9002", "ETH"),),
        DELISTED: (AddressEntry(DELISTED, "GONE LTD", "CYBER2", "7777", "ETH"),),
    }
    return AddressList(version, MappingProxyType(entries))


def test_addresses_of_entries_still_listed_are_kept_and_those_of_delisted_entries_leave() -> None:
    parsed = parse_csv_set_import(SDN, ALT, ADD, PUBLISHED)
    assert parsed.addresses is not None
    in_use = _in_use(parsed.names)
    prepared = prepare_import(parsed.names, parsed.addresses, parsed.names, in_use)
    assert prepared.addresses is not None
    assert set(prepared.addresses.entries) == set(parsed.addresses.entries) | {KEPT}
    assert prepared.addresses.lookup(KEPT)[0].entity == "BLUE HARBOR SHIPPING LLC"
    assert prepared.addresses.lookup(DELISTED) == ()
    assert (prepared.imported_addresses, prepared.kept_addresses) == (2, 1)
    assert prepared.addresses.version == parsed.addresses.version  # the import's version

    forced = prepare_import(parsed.names, parsed.addresses, parsed.names, in_use, force=True)
    assert forced.addresses == parsed.addresses  # the operator's override: the files as they are
    assert merge_addresses(parsed.names, None, in_use) == (None, 0)  # no address in the files: the list in use stays


def test_an_address_cut_in_two_by_the_remarks_limit_is_skipped_with_a_warning() -> None:
    cut = SDN.replace(b"0x8589427373D6D84E98730D7795D8f6f8731FDA16.", b"0x8589427373D6D8")
    parsed = parse_csv_set_import(cut, ALT, ADD, PUBLISHED)
    assert parsed.addresses is not None
    assert list(parsed.addresses.entries) == ["0x7f367cc41522ce07553e823bf3be79a889debe1b"]
    (warning,) = parsed.warnings
    assert "ent_num 9002" in warning
    assert "'0x8589427373D6D8'" in warning
    assert "skipped" in warning
