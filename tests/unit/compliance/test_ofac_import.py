"""OFAC's SDN files as an operator downloads them (the CSV set or the XML), validated into a name list; and the
production profile's name-list maximum age."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import PRODUCTION_NAME_LIST_MAX_AGE
from compliance.errors import SanctionsListInvalid, SanctionsListStale
from compliance.sanctions.lists import AddressList, NameList
from compliance.sanctions.ofac import parse_csv_set, parse_xml
from compliance.sanctions.screening import SanctionsPolicy, SanctionsScreen
from tests.unit.chain.test_production_guard import _production

pytestmark = pytest.mark.unit

SDN = (
    b'9001,"KOVALENKO, Dmytro Ivanovych","individual","UKRAINE-EO13660",-0-,-0-,-0-,-0-,-0-,-0-,-0-,'
    b'"DOB 01 Jan 1970."\r\n'
    b'9002,"BLUE HARBOR SHIPPING LLC",-0-,"IRAN",-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-\r\n'
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
  <sdnEntry><uid>9003</uid><lastName>SEA FALCON</lastName><sdnType>Vessel</sdnType></sdnEntry>
</sdnList>"""


def _names(names: NameList) -> set[tuple[int, str, str | None]]:
    return {(n.ent_num, n.name, n.alias_of) for n in names.names}


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


def test_production_requires_a_name_list_maximum_age(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    assert settings.sanctions_name_list_max_age_days == 7
    with pytest.raises(ValidationError, match="CREDITMESH_SANCTIONS_NAME_LIST_MAX_AGE_DAYS"):
        _production(tmp_path, sanctions_name_list_max_age_days=PRODUCTION_NAME_LIST_MAX_AGE + 1)
    values = {k: v for k, v in _production(tmp_path).model_dump().items() if k != "sanctions_name_list_max_age_days"}
    with pytest.raises(ValidationError, match="CREDITMESH_SANCTIONS_NAME_LIST_MAX_AGE_DAYS"):
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
