"""What an import of OFAC's files may change in the lists in use, and what it may not without the operator's say.

An import (``creditmesh sanctions import``) parses OFAC's files into a name list and an address list
(``compliance.sanctions.ofac``); screening then uses them in place of the lists in use (the newest of the shipped or
dropped-in files and the lists imported before). Two ways a well-formed import loses what the lists in use have:

* **Addresses.** SDN.CSV gives an entry's digital currency addresses only in its Remarks, which OFAC cuts at 1,000
  characters: an entry with many wallets (SUEX, CHATEX, SECONDEYE…) loses the ones past the cut (the 2024 CSV
  lists 53 EVM addresses where OFAC's address file lists 104). So an import's addresses are **merged** with the
  address list in use: an address in use stays listed while any entry it is listed for (its ``uid``, OFAC's
  ent_num) is still on the imported SDN list; it leaves with its entry's delisting. An address OFAC removes from a
  still-listed entry stays listed (fail closed) until an import with ``force`` replaces the list whole.
* **Entries.** A file cut short (a partial download) can still parse: an import whose entries fall below
  ``MIN_KEPT_SHARE`` of the name list in use is refused, unless forced.

``force`` (``--force`` on the command line) is the operator's override for both: the import's lists are taken as
they are. Pure: lists in, lists out; ``SanctionsListInvalid`` says what was refused and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from compliance.errors import SanctionsListInvalid
from compliance.sanctions.lists import AddressEntry, AddressList, NameList

#: an import keeping fewer entries than this share of the name list in use is refused unless forced (OFAC's
#: delistings between two lists are a few dozen entries of thousands)
MIN_KEPT_SHARE = 0.9


@dataclass(frozen=True)
class PreparedImport:
    """The lists an import stores, and what was kept of the lists in use."""

    names: NameList
    addresses: AddressList | None  # None: the files list no EVM address (the address list in use stays)
    imported_addresses: int  # EVM addresses the files themselves list
    kept_addresses: int  # addresses of the list in use kept because their entry is still listed (not in the files)


def entries(names: NameList) -> int:
    return len({n.ent_num for n in names.names})


def check_entries(names: NameList, in_use: NameList | None, force: bool) -> None:
    """Refuse ``names`` when it holds far fewer entries than ``in_use`` (a file cut short), unless ``force``.

    Raises:
        SanctionsListInvalid: fewer than ``MIN_KEPT_SHARE`` of the entries in use, not forced.
    """
    if force or in_use is None:
        return
    new, old = entries(names), entries(in_use)
    if new < MIN_KEPT_SHARE * old:
        raise SanctionsListInvalid(
            f"the files hold {new:,} entries, the list in use ({in_use.version.label}) {old:,}: fewer than "
            f"{MIN_KEPT_SHARE:.0%} of them, as a file cut short would; download the files again, or give --force if "
            "OFAC really delisted that many"
        )


def merge_addresses(
    names: NameList, imported: AddressList | None, in_use: AddressList | None
) -> tuple[AddressList | None, int]:
    """The import's addresses with every address of ``in_use`` whose entry is still on ``names`` (SDN.CSV's Remarks
    are cut at 1,000 characters: an entry's further wallets are not in the files), as the import's version; and how
    many were kept from ``in_use``. None when the files list no EVM address: the list in use stays as it is."""
    if imported is None or in_use is None:
        return imported, 0
    listed = {str(n.ent_num) for n in names.names}
    merged: dict[str, tuple[AddressEntry, ...]] = dict(imported.entries)
    kept = 0
    for address, listings in in_use.entries.items():
        if address in merged:
            continue
        still = tuple(entry for entry in listings if entry.uid.strip() in listed)
        if still:
            merged[address] = still
            kept += 1
    return AddressList(imported.version, MappingProxyType(merged)), kept


def prepare_import(
    names: NameList,
    addresses: AddressList | None,
    in_use_names: NameList | None,
    in_use_addresses: AddressList | None,
    *,
    force: bool = False,
) -> PreparedImport:
    """What an import stores: its names, checked against the name list in use, and its addresses merged with the
    address list in use (both as given when ``force``).

    Raises:
        SanctionsListInvalid: the import holds far fewer entries than the list in use, not forced.
    """
    check_entries(names, in_use_names, force)
    imported = 0 if addresses is None else len(addresses.entries)
    if force:
        return PreparedImport(names, addresses, imported, 0)
    merged, kept = merge_addresses(names, addresses, in_use_addresses)
    return PreparedImport(names, merged, imported, kept)
