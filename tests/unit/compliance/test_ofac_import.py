"""OFAC's SDN files as an operator downloads them (the CSV set or the XML), validated into a name list; and the
production profile's name-list maximum age."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import PRODUCTION_LIST_MAX_AGE
from compliance.errors import SanctionsListInvalid, SanctionsListStale
from compliance.sanctions.lists import AddressList, NameList
from compliance.sanctions.ofac import parse_csv_set, parse_csv_set_lists, parse_xml, parse_xml_lists
from compliance.sanctions.screening import SanctionsPolicy, SanctionsScreen
from tests.unit.chain.test_production_guard import _production

pytestmark = pytest.mark.unit

SDN = (
    b'9001,"KOVALENKO, Dmytro Ivanovych","individual","UKRAINE-EO13660",-0-,-0-,-0-,-0-,-0-,-0-,-0-,'
    b'"DOB 01 Jan 1970."\r\n'
    b'9002,"BLUE HARBOR SHIPPING LLC",-0-,"IRAN",-0-,-0-,-0-,-0-,-0-,-0-,-0-,"Digital Currency Address - ETH '
    b"0x7F367cC41522cE07553e823bf3be79A889DEbe1B; alt. Digital Currency Address - XBT "
    b"1BoatSLRHtKNngkdXEeobR76b53LETtpyT; "
    b'alt. Digital Currency Address - USDT 0x8589427373D6D84E98730D7795D8f6f8731FDA16."\r\n'
    b'9003,"SEA FALCON","vessel","IRAN",-0-,"9HA1234","Tanker",-0-,-0-,"Malta",-0-,-0-\r\n'
) + b"\x1a"
ALT = (
    b'9001,101,"a.k.a.","KOVALENKO, Dmitriy Ivanovich",-0-\r\n'
    b'9002,102,"f.k.a.","BLUE HARBOUR MARITIME",-0-\r\n'
    b'9003,103,"a.k.a.","FALCON OF THE SEA",-0-\r\n'
) + b"\x1a"
ADD = b'9001,201,-0-,"Kyiv",Ukraine,-0-\r\n9002,202,"1 Port Road","Dubai",United Arab Emirates,-0-\r\n\x1a'
XML = b"""<?xml version="1.0" standalone="yes"?>
<sdnList xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML">
  <publshInformation><Publish_Date>11/20/2026</Publish_Date><Record_Count>2</Record_Count></publshInformation>
  <sdnEntry>
    <uid>9001</uid><firstName>Dmytro Ivanovych</firstName><lastName>KOVALENKO</lastName><sdnType>Individual</sdnType>
    <programList><program>UKRAINE-EO13660</program></programList>
    <akaList>
      <aka><uid>101</uid><type>a.k.a.</type><category>strong</category><lastName>KOVALENKO</lastName>
        <firstName>Dmitriy Ivanovich</firstName></aka>
      <aka><uid>102</uid><type>a.k.a.</type><category>weak</category><lastName>DIMA</lastName></aka>
    </akaList>
  </sdnEntry>
  <sdnEntry><uid>9003</uid><lastName>SEA FALCON</lastName><sdnType>Vessel</sdnType>
    <idList>
      <id><uid>301</uid><idType>Digital Currency Address - ETH</idType>
        <idNumber>0x8589427373D6D84E98730D7795D8f6f8731FDA16</idNumber></id>
      <id><uid>302</uid><idType>Digital Currency Address - XBT</idType>
        <idNumber>1BoatSLRHtKNngkdXEeobR76b53LETtpyT</idNumber></id>
      <id><uid>303</uid><idType>Passport</idType><idNumber>0x0</idNumber></id>
    </idList>
  </sdnEntry>
</sdnList>"""


def _names(names: NameList) -> set[tuple[int, str, str | None]]:
    return {(n.ent_num, n.name, n.alias_of) for n in names.names}


def test_now_known_as_aliases_are_kept_in_both_forms() -> None:
    """ALT.CSV's alt_type and SDN.XML's aka type are a.k.a., f.k.a. or n.k.a.: every one is a name to screen (the
    parsers keep them whatever the type; only the XML's "weak" category is left out)."""
    alt = ALT.replace(b"\x1a", b'9002,104,"n.k.a.","HARBOUR TRADE FZE",-0-\r\n\x1a')
    assert (9002, "HARBOUR TRADE FZE", "BLUE HARBOR SHIPPING LLC") in _names(
        parse_csv_set(SDN, alt, ADD, date(2026, 11, 20))
    )
    nka = b"<aka><uid>104</uid><type>n.k.a.</type><category>strong</category><lastName>KOVAL</lastName></aka>"
    xml = XML.replace(b"</akaList>", nka + b"</akaList>")
    assert (9001, "KOVAL", "KOVALENKO, Dmytro Ivanovych") in _names(parse_xml(xml))


def test_the_csv_set_gives_names_and_their_aliases_from_alt_csv() -> None:
    names = parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20))
    assert _names(names) == {
        (9001, "KOVALENKO, Dmytro Ivanovych", None),
        (9001, "KOVALENKO, Dmitriy Ivanovich", "KOVALENKO, Dmytro Ivanovych"),
        (9002, "BLUE HARBOR SHIPPING LLC", None),
        (9002, "BLUE HARBOUR MARITIME", "BLUE HARBOR SHIPPING LLC"),
    }  # the vessel and its alias left out
    assert names.version.label.startswith("ofac-sdn-names@2026-11-20#")
    assert names.version.source == "ofac-import:SDN.CSV+ALT.CSV+ADD.CSV"
    assert parse_csv_set(SDN, ALT, None, date(2026, 11, 20)).version.sha256 != names.version.sha256


@pytest.mark.parametrize(
    ("sdn", "alt", "add", "message"),
    [
        (SDN, b'9999,1,"a.k.a.","NOBODY",-0-\r\n', None, "ALT.CSV: alias 1 refers to ent_num 9999"),
        (SDN, None, b"9999,1,-0-,-0-,France,-0-\r\n", "ADD.CSV: address 1 refers to ent_num 9999"),
        (SDN[:-1] + b"9004,too,few\r\n\x1a", None, None, "3 columns, expected 12"),
        (SDN.replace(b"9002,", b"9001,"), None, None, "ent_num 9001 appears twice"),
        (b"x9,NAME,-0-,P,-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-\r\n", None, None, "is not a number"),
        (b"\x1a", None, None, "no person or organization"),
    ],
)
def test_a_bad_csv_set_is_refused_with_its_reason(
    sdn: bytes, alt: bytes | None, add: bytes | None, message: str
) -> None:
    with pytest.raises(SanctionsListInvalid, match=message):
        parse_csv_set(sdn, alt, add, date(2026, 11, 20))


def test_the_xml_gives_strong_aliases_and_its_own_date() -> None:
    names = parse_xml(XML)
    assert _names(names) == {
        (9001, "KOVALENKO, Dmytro Ivanovych", None),
        (9001, "KOVALENKO, Dmitriy Ivanovich", "KOVALENKO, Dmytro Ivanovych"),
    }  # the weak alias and the vessel left out
    assert names.version.published == datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (XML.replace(b"<Record_Count>2", b"<Record_Count>5"), "Record_Count says 5"),
        (XML.replace(b"<Record_Count>2", b"<Record_Count>two"), "Record_Count 'two' is not a number"),  # a ValueError
        (XML.replace(b"11/20/2026", b"2026-11-20"), "bad Publish_Date"),
        (b"<list/>", "not <sdnList>"),
        (b"<sdnList><unclosed></sdnList>", "does not parse"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><sdnList>&a;</sdnList>', "does not parse"),  # no entities expanded
    ],
)
def test_a_bad_xml_is_refused_with_its_reason(raw: bytes, message: str) -> None:
    with pytest.raises(SanctionsListInvalid, match=message):
        parse_xml(raw)


def _addresses(listed: AddressList | None) -> dict[str, list[tuple[str, str, str, str]]]:
    assert listed is not None
    return {a: [(e.entity, e.program, e.uid, e.currency) for e in entries] for a, entries in listed.entries.items()}


def test_the_csv_set_and_the_xml_give_the_evm_digital_currency_addresses_of_the_same_version() -> None:
    """Any currency's 0x address, lower-cased; other currencies' addresses (XBT) and other ids left out. Before,
    an import brought names only: the wallet screen kept the shipped file for as long as the platform ran."""
    names, addresses = parse_csv_set_lists(SDN, ALT, ADD, date(2026, 11, 20))
    assert _addresses(addresses) == {
        "0x7f367cc41522ce07553e823bf3be79a889debe1b": [("BLUE HARBOR SHIPPING LLC", "IRAN", "9002", "ETH")],
        "0x8589427373d6d84e98730d7795d8f6f8731fda16": [("BLUE HARBOR SHIPPING LLC", "IRAN", "9002", "USDT")],
    }
    assert addresses is not None
    assert addresses.version.label.startswith("ofac-sdn-digital-currency-addresses@2026-11-20#")
    assert (addresses.version.sha256, addresses.version.source) == (names.version.sha256, names.version.source)

    names, addresses = parse_xml_lists(XML)
    assert _addresses(addresses) == {
        "0x8589427373d6d84e98730d7795d8f6f8731fda16": [("SEA FALCON", "", "9003", "ETH")],  # a vessel's too
    }
    assert addresses is not None
    assert addresses.version.published == names.version.published


def test_files_without_an_evm_address_give_no_address_list_and_a_malformed_one_is_refused() -> None:
    plain = SDN.replace(b"0x7F367cC41522cE07553e823bf3be79A889DEbe1B", b"1BoatSLRHtKNngkdXEeobR76b53LETtpyT")
    plain = plain.replace(b"0x8589427373D6D84E98730D7795D8f6f8731FDA16", b"TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE")
    assert parse_csv_set_lists(plain, None, None, date(2026, 11, 20))[1] is None
    with pytest.raises(SanctionsListInvalid, match="ent_num 9002 lists a malformed EVM address '0x7F36'"):
        parse_csv_set_lists(
            SDN.replace(b"0x7F367cC41522cE07553e823bf3be79A889DEbe1B", b"0x7F36"), None, None, date.today()
        )
    with pytest.raises(SanctionsListInvalid, match=r"SDN\.XML: ent_num 9003 lists a malformed EVM address"):
        parse_xml_lists(XML.replace(b"0x8589427373D6D84E98730D7795D8f6f8731FDA16", b"0x85894273"))


@pytest.mark.parametrize("field", ["sanctions_name_list_max_age_days", "sanctions_address_list_max_age_days"])
def test_production_requires_each_lists_maximum_age(tmp_path: Path, field: str) -> None:
    """The address list's too: its 365-day default let a wallet listed after the shipped file screen clear for a
    year."""
    settings = _production(tmp_path)
    assert getattr(settings, field) == 7
    with pytest.raises(ValidationError, match=f"CREDITMESH_{field.upper()}"):
        _production(tmp_path, **{field: PRODUCTION_LIST_MAX_AGE + 1})
    values = {k: v for k, v in _production(tmp_path).model_dump().items() if k != field}
    with pytest.raises(ValidationError, match=f"CREDITMESH_{field.upper()}"):
        type(settings)(**values)


def test_in_production_the_shipped_2024_list_is_stale_and_screening_fails_closed(
    shipped_lists: tuple[AddressList, NameList], tmp_path: Path
) -> None:
    settings = _production(tmp_path)
    policy = SanctionsPolicy(name_list_max_age=timedelta(days=settings.sanctions_name_list_max_age_days))
    screen = SanctionsScreen(*shipped_lists, policy)
    with pytest.raises(SanctionsListStale, match="ofac-sdn-names"):
        screen.screen_name("Jane Doe", datetime(2026, 11, 26, tzinfo=UTC))
    fresh = parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20))
    newer = SanctionsScreen(shipped_lists[0], fresh, policy)
    hits = newer.screen_name("Dmitriy Ivanovich Kovalenko", datetime(2026, 11, 26, tzinfo=UTC))
    assert [h.ent_num for h in hits] == [9001]
    assert newer.name_list_version == fresh.version.label
