"""The two OFAC list files, parsed into immutable values that carry their version.

* ``ofac-digital-currency-addresses-YYYY-MM-DD.json``: every digital currency address on the SDN list; the EVM
  screen takes every ``0x`` key (ETH- and USDT-typed alike), lower-cased.
* ``ofac-sdn-YYYY-MM-DD.csv``: the SDN list in OFAC's column order with no header row, ``-0-`` for empty, CRLF and a
  trailing 0x1A byte; names are the SDN_Name column plus the ``a.k.a.``/``f.k.a.``/``n.k.a.`` aliases in Remarks,
  and each entry keeps its identifying remarks (date and place of birth, nationality, identity documents…).
  Vessels and aircraft are left out: borrowers are people and organizations.

Parsing is pure (bytes in, values out); ``load_newest`` is the file-system adapter that picks the newest file of each
kind in a folder, so a newer list is deployed by dropping its file in, with no code change.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from compliance.errors import SanctionsListInvalid

ADDRESS_LIST = "ofac-sdn-digital-currency-addresses"
NAME_LIST = "ofac-sdn-names"
ADDRESS_FILE = re.compile(r"^ofac-digital-currency-addresses-(\d{4}-\d{2}-\d{2})\.json$")
NAME_FILE = re.compile(r"^ofac-sdn-(\d{4}-\d{2}-\d{2})\.csv$")
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "sanctions"
EVM_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")  # lower-cased
# An alias in Remarks: ``a.k.a. 'NAME'`` (also known as), ``f.k.a.`` (formerly) or ``n.k.a.`` (now known as), any case,
# dots optional. The name runs to the quote that ends the remark (before ``;`` or the final ``.``), not to the first
# quote: names hold apostrophes (``'KATA'IB HIZBALLAH'``, ``''ABD AL-RAHMAN'``, ``'PEOPLE'S ARMY'``).
_ALIAS = re.compile(r"\b[afn]\.?\s?k\.?\s?a\b\.?,?\s*'(.+?)'(?=\s*;|\.?\s*$|\.\s)", re.IGNORECASE)
# Two names in one remark, each quoted: ``a.k.a. 'ABU-AL-KARKH', 'Yusuf'`` (a quote, a comma, a quote). A comma with
# no quote after it stays in the name (``'AL-DARDA', Abu'``: OFAC's "SURNAME, Given" with a stray quote).
_ALIAS_SEPARATOR = re.compile(r"'\s*,\s*'")
# A remark that identifies the listed party, what a reviewer compares a borrower with: date and place of birth,
# nationality, citizenship, gender, an organization's establishment date (``alt.`` ones too)…
_PERSONAL_REMARK = re.compile(r"^(?:DOB|POB|nationality|citizen|Gender|Organization Established Date)\b", re.IGNORECASE)
# … or an identity document or register number, by the words of its label (the text before its first word holding a
# digit, and before any colon): ``Passport A123 (Iran)``, ``National ID No. 1234``, ``Tax ID No.``, ``C.U.R.P.``,
# ``NIT #``, ``Registration Number``, ``Unified Social Credit Code``, ``SWIFT/BIC``…; not a phone, fax or gazette.
_DOCUMENT_LABEL = re.compile(
    r"\b(?:No\b|Numero|Number|ID\b|Identification|Passport|Licen[cs]e|Certificate|Card|Code|Cedula|Credencial|"
    r"Cartilla|SSN|FEIN|BIK|Regist|C\.U\.R\.P|R\.F\.C|D\.N\.I)|#|SWIFT/BIC",
    re.IGNORECASE,
)
_NOT_AN_IDENTIFIER = re.compile(r"\b(?:Phone|Telephone|Fax|Gazette|Email|Website)\b", re.IGNORECASE)
_NOT_A_REMARK = re.compile(r"^(?:[afn]\.?\s?k\.?\s?a\b|Digital Currency Address)", re.IGNORECASE)


@dataclass(frozen=True)
class ListVersion:
    name: str
    published: datetime  # the list's publication date, midnight UTC
    source: str  # file name
    sha256: str

    @property
    def label(self) -> str:
        """What a decision records: list, publication date and a content fingerprint."""
        return f"{self.name}@{self.published.date().isoformat()}#{self.sha256[:16]}"


@dataclass(frozen=True)
class AddressEntry:
    address: str  # lower-case 0x hex
    entity: str
    program: str
    uid: str
    currency: str


@dataclass(frozen=True)
class AddressList:
    version: ListVersion
    entries: MappingProxyType[str, tuple[AddressEntry, ...]]

    def lookup(self, lower_address: str) -> tuple[AddressEntry, ...]:
        return self.entries.get(lower_address, ())


@dataclass(frozen=True)
class ListedName:
    ent_num: int
    name: str
    sdn_type: str  # "individual" or "entity"
    program: str
    alias_of: str | None  # the primary SDN name when this is an alias
    # the entry's identifying remarks (``identifying_remarks``: "DOB 01 Jan 1966; POB Damascus, Syria; …"), the same
    # on each of its names; "" when it has none (or the list was stored before they were kept)
    remarks: str = ""


@dataclass(frozen=True)
class NameList:
    version: ListVersion
    names: tuple[ListedName, ...]

    @cached_property
    def _entries(self) -> dict[int, tuple[ListedName, ...]]:
        entries: dict[int, list[ListedName]] = {}
        for listed in self.names:
            entries.setdefault(listed.ent_num, []).append(listed)
        return {ent_num: tuple(names) for ent_num, names in entries.items()}

    def entry(self, ent_num: int) -> tuple[ListedName, ...]:
        """Every name (primary first, then aliases) of one SDN entry; empty when the entry is not on this list."""
        return self._entries.get(ent_num, ())

    def entry_fingerprint(self, ent_num: int) -> str:
        """sha256 of the entry's names, type, program and identifying remarks: the same across list versions until
        OFAC changes the entry (a cleared review holds until then) — a date of birth added or changed changes it. An
        entry with no identifying remarks has the fingerprint of its names, type and program alone, as before they
        were kept."""
        names = self.entry(ent_num)
        body = "\n".join(f"{n.name}|{n.sdn_type}|{n.program}|{n.alias_of or ''}" for n in names)
        if names and names[0].remarks:
            body += f"\nremarks|{names[0].remarks}"
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _version(name: str, published: str, source: str, raw: bytes) -> ListVersion:
    try:
        day = datetime.strptime(published, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as err:
        raise SanctionsListInvalid(f"{source}: bad publication date {published!r}") from err
    return ListVersion(name, day, source, hashlib.sha256(raw).hexdigest())


def _check_counts(metadata: dict[str, Any], addresses: dict[str, Any], source: str) -> None:
    """The file holds as many addresses and entries as its metadata says (a file cut short, or edited, does not)."""
    counts = {
        "totalAddresses": len(addresses),
        "totalEntries": sum(len(r.get("entries") or []) for r in addresses.values() if isinstance(r, dict)),
    }
    for field, held in counts.items():
        declared = metadata.get(field)
        if not isinstance(declared, int) or declared != held:
            raise SanctionsListInvalid(f"{source}: metadata.{field} says {declared!r}, the file holds {held}")
    records = metadata.get("sdnRecordCount")
    if not isinstance(records, int) or records <= 0:
        raise SanctionsListInvalid(f"{source}: metadata.sdnRecordCount {records!r} is not a count of SDN records")


def parse_address_list(raw: bytes, source: str) -> AddressList:
    """The EVM addresses of an OFAC digital-currency address file (the ``metadata.sdnListDate`` dates it; its
    ``totalAddresses`` and ``totalEntries`` must be what the file holds, and every address must have an entry).

    Raises:
        SanctionsListInvalid: not such a file, counts that do not match, an address with no entry or malformed.
    """
    try:
        document: dict[str, Any] = json.loads(raw)
        listed = datetime.strptime(document["metadata"]["sdnListDate"], "%m/%d/%Y").date().isoformat()
        addresses: dict[str, Any] = document["addresses"]
    except (ValueError, KeyError, TypeError) as err:
        raise SanctionsListInvalid(f"{source}: not an OFAC digital currency address file: {err}") from err
    _check_counts(document["metadata"], addresses, source)
    entries: dict[str, tuple[AddressEntry, ...]] = {}
    for key, record in addresses.items():
        address = key.strip().lower()
        if not address.startswith("0x"):
            continue
        if not EVM_ADDRESS.match(address):
            raise SanctionsListInvalid(f"{source}: malformed EVM address {key!r}")
        if not record.get("entries"):  # an address listed for no one would be stored as empty: not listed
            raise SanctionsListInvalid(f"{source}: EVM address {key!r} has no entry")
        currency = str(record.get("type", "")).rsplit("-", 1)[-1].strip()
        entries[address] = tuple(
            AddressEntry(address, str(e.get("entity", "")), str(e.get("program", "")), str(e.get("uid", "")), currency)
            for e in record.get("entries", [])
        )
    if not entries:
        raise SanctionsListInvalid(f"{source}: no EVM addresses")
    return AddressList(_version(ADDRESS_LIST, listed, source, raw), MappingProxyType(entries))


def remark_aliases(remarks: str) -> list[str]:
    """The ``a.k.a.``/``f.k.a.``/``n.k.a.`` names in an SDN.CSV Remarks cell."""
    text = remarks.strip()
    return [
        alias.strip()
        for quoted in _ALIAS.findall("" if text == "-0-" else text)
        for alias in _ALIAS_SEPARATOR.split(quoted)
    ]


def is_identifying(remark: str) -> bool:
    """Whether one remark (``DOB 1966``, ``alt. Passport A123 (Iran)``, ``Linked To: …``) identifies the listed
    party: a date or place of birth, nationality, citizenship, gender, establishment date, or an identity document or
    register number — not an alias, a wallet, a link to another entry or a note on the sanctions."""
    bare = re.sub(r"^alt\.\s*", "", remark.strip(), flags=re.IGNORECASE)
    if not bare or _NOT_A_REMARK.match(bare):
        return False
    if _PERSONAL_REMARK.match(bare):
        return True
    label = []
    for word in bare.split(":", 1)[0].split():
        if any(ch.isdigit() for ch in word):
            break
        label.append(word)
    text = " ".join(label)
    return bool(_DOCUMENT_LABEL.search(text)) and not _NOT_AN_IDENTIFIER.search(text)


def identifying_remarks(remarks: Iterable[str] | str) -> str:
    """The remarks that identify the listed party (``is_identifying``), in their order, spaces collapsed and a final
    period dropped, joined by ``"; "``: what a reviewer clears a borrower on, and part of the entry's fingerprint.
    ``remarks``: an SDN.CSV Remarks cell (remarks separated by ``;``; ``-0-`` for none) or the remarks one by one."""
    if isinstance(remarks, str):
        text = remarks.strip()
        remarks = [] if text == "-0-" else text.split(";")
    kept = (" ".join(remark.split()).rstrip(".").rstrip() for remark in remarks)
    return "; ".join(remark for remark in kept if is_identifying(remark))


def parse_name_list(raw: bytes, source: str, published: str) -> NameList:
    """Names, remark aliases and identifying remarks of an OFAC ``sdn.csv`` (no header; the 0x1A end-of-file byte is
    skipped)."""
    text = raw.decode("utf-8").rstrip("\x1a\r\n")
    names: list[ListedName] = []
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))  # a quoted field left open: cut short
    except csv.Error as err:
        raise SanctionsListInvalid(f"{source}: {err} (is the file cut short?)") from err
    for row in rows:
        if not row:
            continue
        if len(row) != 12:
            raise SanctionsListInvalid(f"{source}: a row has {len(row)} columns, expected 12: {row[:2]}")
        sdn_type = row[2].strip()
        if sdn_type in ("vessel", "aircraft"):
            continue
        kind = "individual" if sdn_type == "individual" else "entity"
        primary = row[1].strip()
        program = row[3].strip()
        ent_num = int(row[0])
        remarks = identifying_remarks(row[11])
        names.append(ListedName(ent_num, primary, kind, program, None, remarks))
        names.extend(ListedName(ent_num, alias, kind, program, primary, remarks) for alias in remark_aliases(row[11]))
    if not names:
        raise SanctionsListInvalid(f"{source}: no names")
    return NameList(_version(NAME_LIST, published, source, raw), tuple(names))


def _newest(directory: Path, pattern: re.Pattern[str]) -> tuple[Path, str]:
    found = sorted(
        ((m.group(1), p) for p in directory.iterdir() if (m := pattern.match(p.name))), key=lambda item: item[0]
    )
    if not found:
        raise SanctionsListInvalid(f"no file matching {pattern.pattern} in {directory}")
    return found[-1][1], found[-1][0]


def load_newest(directory: Path = SHIPPED_DIR) -> tuple[AddressList, NameList]:
    """The newest address file and the newest names file in ``directory`` (by the date in the file name)."""
    address_path, _ = _newest(directory, ADDRESS_FILE)
    names_path, names_date = _newest(directory, NAME_FILE)
    return (
        parse_address_list(address_path.read_bytes(), address_path.name),
        parse_name_list(names_path.read_bytes(), names_path.name, names_date),
    )
