"""OFAC's published SDN files, as an operator downloads them, parsed and validated into a ``NameList``.

Two forms (https://ofac.treasury.gov/sanctions-list-service):

* the legacy CSV set, no header rows, ``-0-`` for empty, CRLF and a trailing 0x1A byte:
  ``SDN.CSV`` (ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT, Vess_flag,
  Vess_owner, Remarks), ``ALT.CSV`` (ent_num, alt_num, alt_type, alt_name, alt_remarks) — the aliases, the proper
  source rather than the Remarks column (without ALT.CSV, the Remarks' ``a.k.a.`` names are read, as for the
  shipped file: cut at 1,000 characters, they may miss some) — and ``ADD.CSV`` (ent_num, add_num, address,
  city/state/postal code, country, add_remarks), checked to refer to listed entries. The CSV set carries no
  publication date: the operator gives it.
* ``SDN.XML``: ``sdnEntry`` elements (uid, lastName, firstName, sdnType, programList, akaList, and the identifiers:
  dateOfBirthList, placeOfBirthList, nationalityList, citizenshipList, idList); the publication date
  from ``publshInformation/Publish_Date``; the record count is checked. "Weak" a.k.a.s (OFAC: too broad to screen
  on their own) are left out.

Each entry keeps its identifying remarks (``compliance.sanctions.lists.identifying_remarks``: date and place of
birth, nationality, identity documents…; from SDN.CSV's Remarks, or SDN.XML's identifiers written the same way),
part of its fingerprint. Vessels and aircraft are left out, as for the shipped list. Pure: bytes in, a ``NameList``
out (its version's fingerprint covers every input file); ``SanctionsListInvalid`` says what is wrong.

Both forms also carry the digital currency addresses OFAC lists (SDN.CSV in an entry's Remarks, ``Digital Currency
Address - ETH 0x…;``; SDN.XML as ``idList/id`` of that ``idType``): ``*_lists`` give the EVM ones (``0x`` and 40 hex
digits, whatever the currency: ETH, USDT, USDC, ARB, BSC…) as an ``AddressList`` of the same version, so one import
brings the wallet screen up to date with the name screen. OFAC cuts SDN.CSV's Remarks at 1,000 characters: an entry
with many wallets loses the ones past the cut (``compliance.sanctions.updates`` keeps them from the list in use), and
an address cut in the middle ends the Remarks — it is skipped with a warning (``CsvImport.warnings``), not refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
from xml.etree.ElementTree import Element

from defusedxml import ElementTree  # type: ignore[import-untyped]
from defusedxml.common import DefusedXmlException  # type: ignore[import-untyped]

from compliance.errors import SanctionsListInvalid
from compliance.sanctions.lists import (
    ADDRESS_LIST,
    EVM_ADDRESS,
    NAME_LIST,
    AddressEntry,
    AddressList,
    ListedName,
    ListVersion,
    NameList,
    identifying_remarks,
    remark_aliases,
)

SDN_COLUMNS, ALT_COLUMNS, ADD_COLUMNS = 12, 5, 6
LEFT_OUT = ("vessel", "aircraft")
MIN_ENTRIES = 1  # an empty list is never a list
DIGITAL_CURRENCY = "Digital Currency Address - "
_REMARK_ADDRESS = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+) ([^\s;]+)")

#: (listed value, currency, entity, program, ent_num) of a digital currency address found in a list
FoundAddress = tuple[str, str, str, str, int]


def _rows(raw: bytes, source: str, columns: int) -> Iterator[list[str]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # OFAC's legacy files are not always UTF-8
    text = text.rstrip("\x1a\r\n")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # a quoted field left open (a file cut short)
    try:
        for number, row in enumerate(reader, start=1):
            if not row:
                continue
            if len(row) != columns:
                raise SanctionsListInvalid(f"{source} line {number}: {len(row)} columns, expected {columns}: {row[:2]}")
            yield [cell.strip() for cell in row]
    except csv.Error as err:
        raise SanctionsListInvalid(f"{source} line {reader.line_num}: {err} (is the file cut short?)") from err


def _value(cell: str) -> str:
    return "" if cell == "-0-" else cell


def _ent_num(cell: str, source: str) -> int:
    try:
        return int(cell)
    except ValueError as err:
        raise SanctionsListInvalid(f"{source}: ent_num {cell!r} is not a number") from err


def _fingerprint(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _version(published: date, source: str, sha256: str) -> ListVersion:
    return ListVersion(NAME_LIST, datetime(published.year, published.month, published.day, tzinfo=UTC), source, sha256)


def parse_csv_set(sdn: bytes, alt: bytes | None, add: bytes | None, published: date) -> NameList:
    """SDN.CSV with its ALT.CSV aliases (and ADD.CSV checked against it) as a name list published on ``published``.

    Raises:
        SanctionsListInvalid: a malformed row, a duplicate or unknown ent_num, or no names.
    """
    return parse_csv_set_lists(sdn, alt, add, published)[0]


@dataclass(frozen=True)
class CsvImport:
    """What an import of OFAC's files gives: the names, the EVM addresses (None: none listed), and what the operator
    should be told (a truncated address skipped, …)."""

    names: NameList
    addresses: AddressList | None
    warnings: tuple[str, ...] = ()


def parse_csv_set_lists(
    sdn: bytes, alt: bytes | None, add: bytes | None, published: date
) -> tuple[NameList, AddressList | None]:
    """:func:`parse_csv_set`, and the EVM addresses in SDN.CSV's Remarks (None when it lists none).

    Raises:
        SanctionsListInvalid: as :func:`parse_csv_set`, or a ``0x`` address that is not 20 bytes of hex.
    """
    parsed = parse_csv_set_import(sdn, alt, add, published)
    return parsed.names, parsed.addresses


def _cut_short(value: str, end: int, remarks: str) -> bool:
    """Whether ``value``, a ``0x`` address found ending at ``end`` of ``remarks``, is one OFAC's 1,000-character cut
    of the Remarks went through: hex, shorter than an address, and the last thing in them."""
    body = value.lower().removeprefix("0x")
    return (
        value[:2].lower() == "0x"
        and len(body) < 40
        and all(ch in "0123456789abcdef" for ch in body)
        and not remarks[end:].strip(" .;")
    )


def parse_csv_set_import(sdn: bytes, alt: bytes | None, add: bytes | None, published: date) -> CsvImport:
    """:func:`parse_csv_set_lists` with what the operator should be told: an EVM address cut short by OFAC's cut of
    the Remarks at 1,000 characters is skipped (the full address is in OFAC's address file and the list in use),
    with a warning.

    Raises:
        SanctionsListInvalid: as :func:`parse_csv_set_lists` (an address malformed anywhere else).
    """
    warnings: list[str] = []
    found: list[FoundAddress] = []
    names: list[ListedName] = []
    kinds: dict[int, tuple[str, str, str, str]] = {}  # ent_num -> (primary name, type, program, identifying remarks)
    for row in _rows(sdn, "SDN.CSV", SDN_COLUMNS):
        ent_num = _ent_num(row[0], "SDN.CSV")
        if ent_num in kinds:
            raise SanctionsListInvalid(f"SDN.CSV: ent_num {ent_num} appears twice")
        sdn_type = _value(row[2])
        kind = "individual" if sdn_type == "individual" else "entity"
        remarks = identifying_remarks(row[11])
        kinds[ent_num] = (row[1], sdn_type, _value(row[3]), remarks)
        for match in _REMARK_ADDRESS.finditer(row[11]):
            currency, value = match.groups()
            if _cut_short(value, match.end(), row[11]):
                warnings.append(
                    f"SDN.CSV: ent_num {ent_num}'s Remarks end in a cut-short address {value!r} (OFAC cuts them at "
                    f"{len(row[11]):,} characters): skipped"
                )
                continue
            found.append((value, currency, row[1], _value(row[3]), ent_num))
        if sdn_type in LEFT_OUT:
            continue
        if not row[1]:
            raise SanctionsListInvalid(f"SDN.CSV: ent_num {ent_num} has no name")
        names.append(ListedName(ent_num, row[1], kind, _value(row[3]), None, remarks))
        if alt is None:  # no ALT.CSV: the aliases from the Remarks, as the shipped file's loader reads them
            names.extend(ListedName(ent_num, a, kind, _value(row[3]), row[1], remarks) for a in remark_aliases(row[11]))
    for row in _rows(alt or b"", "ALT.CSV", ALT_COLUMNS):
        ent_num = _ent_num(row[0], "ALT.CSV")
        if ent_num not in kinds:
            raise SanctionsListInvalid(f"ALT.CSV: alias {row[1]} refers to ent_num {ent_num}, not on SDN.CSV")
        primary, sdn_type, program, remarks = kinds[ent_num]
        if sdn_type in LEFT_OUT or not _value(row[3]):
            continue
        kind = "individual" if sdn_type == "individual" else "entity"
        names.append(ListedName(ent_num, _value(row[3]), kind, program, primary, remarks))
    for row in _rows(add or b"", "ADD.CSV", ADD_COLUMNS):
        ent_num = _ent_num(row[0], "ADD.CSV")
        if ent_num not in kinds:
            raise SanctionsListInvalid(f"ADD.CSV: address {row[1]} refers to ent_num {ent_num}, not on SDN.CSV")
    if len({n.ent_num for n in names}) < MIN_ENTRIES:
        raise SanctionsListInvalid("SDN.CSV: no person or organization on the list")
    if not any(n.alias_of for n in names):
        warnings.append(
            "no alias on the list (neither ALT.CSV nor a.k.a.s in the Remarks): only primary names are screened"
        )
    files = "SDN.CSV" + ("+ALT.CSV" if alt else "") + ("+ADD.CSV" if add else "")
    version = _version(published, f"ofac-import:{files}", _fingerprint(sdn, alt or b"", add or b""))
    return CsvImport(NameList(version, tuple(names)), _address_list(found, version, "SDN.CSV"), tuple(warnings))


def _address_list(found: Iterable[FoundAddress], names: ListVersion, source: str) -> AddressList | None:
    """The EVM addresses among ``found``, lower-cased, as the address list of the names' version (its date, source
    and fingerprint); None when there are none. Other currencies' addresses (XBT, XMR, TRX…) are left out."""
    entries: dict[str, list[AddressEntry]] = {}
    for value, currency, entity, program, ent_num in found:
        address = value.strip().rstrip(".").lower()
        if not address.startswith("0x"):
            continue
        if not EVM_ADDRESS.match(address):
            raise SanctionsListInvalid(f"{source}: ent_num {ent_num} lists a malformed EVM address {value!r}")
        entries.setdefault(address, []).append(AddressEntry(address, entity, program, str(ent_num), currency))
    if not entries:
        return None
    version = ListVersion(ADDRESS_LIST, names.published, names.source, names.sha256)
    return AddressList(version, MappingProxyType({address: tuple(listed) for address, listed in entries.items()}))


def _local(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c) == name), None)


def _text(element: Element, name: str) -> str:
    found = _child(element, name)
    return (found.text or "").strip() if found is not None else ""


def _person_name(element: Element) -> str:
    last, first = _text(element, "lastName"), _text(element, "firstName")
    return f"{last}, {first}" if first else last


def _xml_remarks(entry: Element) -> Iterator[str]:
    """An sdnEntry's dates and places of birth, nationalities, citizenships and ids, written as SDN.CSV's Remarks
    write them (``DOB 01 Jan 1966``, ``alt. POB …``, ``nationality Syria``, ``citizen Syria``, ``Passport N123
    (Syria)``); ``identifying_remarks`` keeps the identifying ones."""
    lists = (
        ("dateOfBirthList", "dateOfBirthItem", "dateOfBirth", "DOB"),
        ("placeOfBirthList", "placeOfBirthItem", "placeOfBirth", "POB"),
        ("nationalityList", "nationality", "country", "nationality"),
        ("citizenshipList", "citizenship", "country", "citizen"),
    )
    for list_name, item_name, value_name, label in lists:
        for item in _child(entry, list_name) or []:
            if _local(item) == item_name and _text(item, value_name):
                alt = "" if _text(item, "mainEntry").lower() in ("", "true") else "alt. "
                yield f"{alt}{label} {_text(item, value_name)}"
    for listed in _child(entry, "idList") or []:
        if _local(listed) == "id" and _text(listed, "idType") and _text(listed, "idNumber"):
            country = _text(listed, "idCountry")
            yield f"{_text(listed, 'idType')} {_text(listed, 'idNumber')}" + (f" ({country})" if country else "")


def parse_xml(raw: bytes) -> NameList:
    """SDN.XML (either namespace OFAC has used) as a name list, dated by its Publish_Date.

    Raises:
        SanctionsListInvalid: not an SDN list, a bad date, a record count that does not match, or no names.
    """
    return parse_xml_lists(raw)[0]


def parse_xml_lists(raw: bytes) -> tuple[NameList, AddressList | None]:
    """:func:`parse_xml`, and the EVM addresses of its ``Digital Currency Address`` ids (None when it lists none).

    Raises:
        SanctionsListInvalid: as :func:`parse_xml`, or a ``0x`` address that is not 20 bytes of hex.
    """
    try:
        root = ElementTree.fromstring(raw)
    except (ElementTree.ParseError, DefusedXmlException) as err:
        raise SanctionsListInvalid(f"SDN.XML does not parse: {err}") from err
    if _local(root) != "sdnList":
        raise SanctionsListInvalid(f"SDN.XML: the root is <{_local(root)}>, not <sdnList>")
    info = _child(root, "publshInformation")
    try:
        published = datetime.strptime(_text(info, "Publish_Date"), "%m/%d/%Y").date() if info is not None else None
    except ValueError as err:
        raise SanctionsListInvalid(f"SDN.XML: bad Publish_Date: {err}") from err
    if published is None:
        raise SanctionsListInvalid("SDN.XML: no publshInformation/Publish_Date")
    entries = [e for e in root if _local(e) == "sdnEntry"]
    declared = _text(info, "Record_Count") if info is not None else ""
    if declared and not declared.isdigit():
        raise SanctionsListInvalid(f"SDN.XML: Record_Count {declared[:40]!r} is not a number")
    if declared and int(declared) != len(entries):
        raise SanctionsListInvalid(f"SDN.XML: Record_Count says {declared}, the file holds {len(entries)} entries")
    names: list[ListedName] = []
    found: list[FoundAddress] = []
    for entry in entries:
        uid, sdn_type = _text(entry, "uid"), _text(entry, "sdnType").lower()
        if not uid.isdigit() or not _text(entry, "lastName"):
            raise SanctionsListInvalid(f"SDN.XML: an sdnEntry without a numeric uid or a lastName (uid {uid!r})")
        programs = _child(entry, "programList")
        program = "] [".join((p.text or "").strip() for p in programs or [] if _local(p) == "program")
        primary = _person_name(entry)
        for listed in _child(entry, "idList") or []:
            if _local(listed) == "id" and _text(listed, "idType").startswith(DIGITAL_CURRENCY):
                currency = _text(listed, "idType").removeprefix(DIGITAL_CURRENCY).strip()
                found.append((_text(listed, "idNumber"), currency, primary, program, int(uid)))
        if sdn_type in LEFT_OUT:
            continue
        kind = "individual" if sdn_type == "individual" else "entity"
        remarks = identifying_remarks(_xml_remarks(entry))
        names.append(ListedName(int(uid), primary, kind, program, None, remarks))
        for aka in _child(entry, "akaList") or []:
            if _local(aka) == "aka" and _text(aka, "category").lower() != "weak" and _text(aka, "lastName"):
                names.append(ListedName(int(uid), _person_name(aka), kind, program, primary, remarks))
    if len({n.ent_num for n in names}) < MIN_ENTRIES:
        raise SanctionsListInvalid("SDN.XML: no person or organization on the list")
    version = _version(published, "ofac-import:SDN.XML", _fingerprint(raw))
    return NameList(version, tuple(names)), _address_list(found, version, "SDN.XML")
