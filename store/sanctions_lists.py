"""Imported sanctions lists (names, and the EVM addresses of the same import), kept in the database so every process
of the platform screens with the same ones.

A list is stored whole, once per version (its label: name, publication date, content fingerprint); the newest by
publication date is the one screening uses when it is newer than the shipped file. Repositories never commit."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.sanctions.lists import AddressEntry, AddressList, ListedName, ListVersion, NameList
from store.base import Base
from store.types import UtcDateTime


class SanctionsNameListRow(Base):
    __tablename__ = "sanctions_name_lists"

    label: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    published: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)
    # [ent_num, name, sdn_type, program, alias_of, remarks] (a list stored before remarks were kept: five items)
    names: Mapped[list[list[Any]]] = mapped_column(JSON)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SanctionsAddressListRow(Base):
    __tablename__ = "sanctions_address_lists"

    label: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    published: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    addresses: Mapped[list[list[str]]] = mapped_column(JSON)  # [address, entity, program, uid, currency]
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SqlSanctionsListRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, names: NameList, now: datetime) -> bool:
        """Store ``names``; False when this very version is already stored (an import is idempotent)."""
        label = names.version.label
        if self.session.get(SanctionsNameListRow, label) is not None:
            return False
        self.session.add(
            SanctionsNameListRow(
                label=label,
                name=names.version.name,
                published=names.version.published,
                source=names.version.source,
                sha256=names.version.sha256,
                entries=len({n.ent_num for n in names.names}),
                names=[[n.ent_num, n.name, n.sdn_type, n.program, n.alias_of, n.remarks] for n in names.names],
                imported_at=now,
            )
        )
        return True

    def newest_version(self) -> tuple[str, datetime] | None:
        """The label and publication date of the list ``newest`` would load, without reading its names (what a
        process polls to see whether a newer list was imported)."""
        return _newest_version(self.session, SanctionsNameListRow)

    def newest(self) -> NameList | None:
        newest = select(SanctionsNameListRow).order_by(*_latest_first(SanctionsNameListRow)).limit(1)
        row = self.session.scalars(newest).one_or_none()
        if row is None:
            return None
        # a list stored before identifying remarks were kept has none: its entries keep the fingerprints they had
        names = tuple(
            ListedName(int(e), str(n), str(t), str(p), a, str(remarks[0]) if remarks else "")
            for e, n, t, p, a, *remarks in row.names
        )
        return NameList(_version(row), names)

    def add_addresses(self, addresses: AddressList, now: datetime) -> bool:
        """Store ``addresses``; False when this very version is already stored."""
        label = addresses.version.label
        if self.session.get(SanctionsAddressListRow, label) is not None:
            return False
        self.session.add(
            SanctionsAddressListRow(
                label=label,
                name=addresses.version.name,
                published=addresses.version.published,
                source=addresses.version.source,
                sha256=addresses.version.sha256,
                addresses=[
                    [e.address, e.entity, e.program, e.uid, e.currency]
                    for listed in addresses.entries.values()
                    for e in listed
                ],
                imported_at=now,
            )
        )
        return True

    def newest_addresses_version(self) -> tuple[str, datetime] | None:
        """The label and publication date of the address list ``newest_addresses`` would load (what a process polls)."""
        return _newest_version(self.session, SanctionsAddressListRow)

    def newest_addresses(self) -> AddressList | None:
        newest = select(SanctionsAddressListRow).order_by(*_latest_first(SanctionsAddressListRow)).limit(1)
        row = self.session.scalars(newest).one_or_none()
        if row is None:
            return None
        entries: dict[str, list[AddressEntry]] = {}
        for address, entity, program, uid, currency in row.addresses:
            entries.setdefault(address, []).append(AddressEntry(address, entity, program, uid, currency))
        return AddressList(_version(row), MappingProxyType({address: tuple(e) for address, e in entries.items()}))


_ListRow = SanctionsNameListRow | SanctionsAddressListRow


def _latest_first(model: type[_ListRow]) -> tuple[Any, Any]:
    """The list published last first (the last imported of that day)."""
    return model.published.desc(), model.imported_at.desc()


def _newest_version(session: Session, model: type[_ListRow]) -> tuple[str, datetime] | None:
    row = session.execute(select(model.label, model.published).order_by(*_latest_first(model)).limit(1)).one_or_none()
    return None if row is None else (str(row.label), row.published)


def _version(row: _ListRow) -> ListVersion:
    return ListVersion(row.name, row.published, row.source, row.sha256)
