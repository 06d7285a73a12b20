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
    names: Mapped[list[list[Any]]] = mapped_column(JSON)  # [ent_num, name, sdn_type, program, alias_of]
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
                names=[[n.ent_num, n.name, n.sdn_type, n.program, n.alias_of] for n in names.names],
                imported_at=now,
            )
        )
        return True

    def newest_version(self) -> tuple[str, datetime] | None:
        """The label and publication date of the list ``newest`` would load, without reading its names (what a
        process polls to see whether a newer list was imported)."""
        row = self.session.execute(
            select(SanctionsNameListRow.label, SanctionsNameListRow.published)
            .order_by(SanctionsNameListRow.published.desc(), SanctionsNameListRow.imported_at.desc())
            .limit(1)
        ).one_or_none()
        return None if row is None else (str(row.label), row.published)

    def newest(self) -> NameList | None:
        row = self.session.scalars(
            select(SanctionsNameListRow)
            .order_by(SanctionsNameListRow.published.desc(), SanctionsNameListRow.imported_at.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        version = ListVersion(row.name, row.published, row.source, row.sha256)
        return NameList(version, tuple(ListedName(int(e), str(n), str(t), str(p), a) for e, n, t, p, a in row.names))

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
        row = self.session.execute(
            select(SanctionsAddressListRow.label, SanctionsAddressListRow.published)
            .order_by(SanctionsAddressListRow.published.desc(), SanctionsAddressListRow.imported_at.desc())
            .limit(1)
        ).one_or_none()
        return None if row is None else (str(row.label), row.published)

    def newest_addresses(self) -> AddressList | None:
        row = self.session.scalars(
            select(SanctionsAddressListRow)
            .order_by(SanctionsAddressListRow.published.desc(), SanctionsAddressListRow.imported_at.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        entries: dict[str, list[AddressEntry]] = {}
        for address, entity, program, uid, currency in row.addresses:
            entries.setdefault(address, []).append(AddressEntry(address, entity, program, uid, currency))
        version = ListVersion(row.name, row.published, row.source, row.sha256)
        return AddressList(version, MappingProxyType({address: tuple(e) for address, e in entries.items()}))
