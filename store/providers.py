"""Persistence owned by providers: registrations made through the API, webhook events received from providers, and
incidents (a webhook refused for a bad signature, a replay or a bad body) with their reasons."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Table, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from chain.errors import url_origin
from compliance.audit import AuditKind
from store.base import Base
from store.compliance import SqlAuditLog
from store.types import UtcDateTime


class ProviderRegistrationRow(Base):
    """One provider registered through the API: ``kind`` names its adapter's entry point (``http``, ``pool`` or a
    plugin), ``config`` is that adapter's configuration (for ``http`` the HMAC secret is sealed as ``secret_sealed``
    by ``providers.secrets.SecretBox``, never stored in plaintext), ``legal_name`` and ``postal_address`` the
    creditor it lends as."""

    __tablename__ = "provider_registrations"

    provider_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    resilience: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: where the loan events of the loans this provider funds go (signed with its HMAC secret)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    #: the creditor it lends as, named by the adverse-action notices given for it (12 CFR 1002.9(g)); both null for a
    #: pool, a registration made before they were asked for (migration 0040), or a local one without them
    legal_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    postal_address: Mapped[str | None] = mapped_column(String(400), nullable=True)


class ProviderRegistryVersionRow(Base):
    """One row counting every change of ``provider_registrations``, bumped in the changing transaction: each process
    polls it (one indexed row) and reloads the registrations only when it moved (``providers.registry_sync``)."""

    __tablename__ = "provider_registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ProviderWebhookEventRow(Base):
    """A webhook a provider sent and we accepted; ``(provider_id, event_id)`` is unique, so a replay is refused in
    every process."""

    __tablename__ = "provider_webhook_events"
    __table_args__ = (UniqueConstraint("provider_id", "event_id", name="uq_provider_webhook_events_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64))
    offer_ref: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProviderIncidentRow(Base):
    """Something a provider sent that we refused, with the reason; each also counts as that provider's failure."""

    __tablename__ = "provider_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    operation: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(512))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


_VERSION_TABLE = cast(Table, ProviderRegistryVersionRow.__table__)
_VERSION = select(_VERSION_TABLE.c.version).where(_VERSION_TABLE.c.id == 1)


#: the values an audit entry may show of a configuration field named safe: anything nested may hold a credential
_SCALARS = (str, int, float, bool, type(None))


def audit_config(config: Mapping[str, Any], safe: Collection[str]) -> dict[str, Any]:
    """``config`` as an audit entry keeps it: only the fields its adapter kind names ``safe``
    (``ProviderAdapter.audited_config``) and whose values are plain scalars, a URL among them as ``audit_url`` shows
    it; every other field named in ``withheld``, its value never written (the audit log is append-only: a secret
    written there could not be taken back). Never raises: it runs inside the registration's transaction."""
    kept: dict[str, Any] = {}
    withheld = []
    for name, value in config.items():
        if name not in safe or not isinstance(value, _SCALARS):
            withheld.append(name)
        else:
            kept[name] = audit_url(value) if isinstance(value, str) and "://" in value else value
    return kept | ({"withheld": sorted(withheld)} if withheld else {})


def audit_url(url: str | None) -> dict[str, str | None] | None:
    """``url`` as an audit entry keeps it: its ``origin`` (``scheme://host[:port]``; None when it cannot be parsed)
    and the ``sha256`` (hex) of the whole URL. Its path, query and user information are never written: a hosted RPC
    URL or a webhook URL often carries a key or token there; the hash still tells a change, and an auditor holding
    a URL can compare it. Never raises."""
    if url is None:
        return None
    return {"origin": url_origin(url), "sha256": hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()}


class ProviderRepository:
    """Reads and adds rows in the caller's unit of work; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def registrations(self, deregistered: bool = False) -> list[ProviderRegistrationRow]:
        """The enabled registrations; with ``deregistered``, the disabled ones too (kept to serve their loans)."""
        query = select(ProviderRegistrationRow)
        if not deregistered:
            query = query.where(ProviderRegistrationRow.enabled.is_(True))
        return list(self.session.scalars(query.order_by(ProviderRegistrationRow.provider_id)))

    def version(self) -> int:
        """The registrations' change counter (0 before the first change). Every API process reads it twice a second
        (``providers.registry_sync``): a Core statement built once, on the session's connection, not an ORM select
        built and executed through the ORM each time (a poll with its unit of work 241 -> 80 us)."""
        version: int | None = self.session.connection().execute(_VERSION).scalar_one_or_none()
        return version or 0

    def bump_version(self) -> None:
        """Count a change of the registrations, in the caller's transaction (every process reloads after it)."""
        self.session.execute(
            update(ProviderRegistryVersionRow)
            .where(ProviderRegistryVersionRow.id == 1)
            .values(version=ProviderRegistryVersionRow.version + 1)
        )

    def registration(self, provider_id: str, for_update: bool = False) -> ProviderRegistrationRow | None:
        """The registration; with ``for_update``, its row locked until the caller's transaction ends (PostgreSQL:
        another process changing it waits, then reads what this one wrote; SQLite has one writer anyway)."""
        return self.session.get(ProviderRegistrationRow, provider_id, with_for_update=for_update)

    def registered(self, row: ProviderRegistrationRow, again: bool, actor: str | None, safe: Collection[str]) -> None:
        """The audit entry of ``row``'s registration (``again``: of an id deregistered before), in the caller's
        transaction: what it was registered with and by whom — of its configuration only the fields ``safe`` names
        (its adapter's ``audited_config``), never a secret (``audit_config``)."""
        data = {
            "providerId": row.provider_id,
            "kind": row.kind,
            "config": audit_config(row.config, safe),
            "capabilities": row.capabilities,
            "resilience": row.resilience,
            "webhookUrl": audit_url(row.webhook_url),
            "legalName": row.legal_name,
            "postalAddress": row.postal_address,
            "registeredAgain": again,
            "by": actor,
        }
        SqlAuditLog(self.session).append(AuditKind.PROVIDER_REGISTERED, row.provider_id, data, row.created_at)

    def webhook_changed(
        self, row: ProviderRegistrationRow, before: str | None, at: datetime, actor: str | None
    ) -> None:
        """The audit entry of a change of ``row``'s loan-events webhook URL (from ``before``), and by whom."""
        data = {
            "providerId": row.provider_id,
            "changed": "webhookUrl",
            "from": audit_url(before),
            "to": audit_url(row.webhook_url),
            "by": actor,
        }
        SqlAuditLog(self.session).append(AuditKind.PROVIDER_CHANGED, row.provider_id, data, at)

    def deregistered(self, row: ProviderRegistrationRow, withdrawn: int, at: datetime, actor: str | None) -> None:
        """The audit entry of ``row``'s deregistration: by whom and how many of its quotes were withdrawn with it (its
        keys' revocations have entries of their own)."""
        data = {"providerId": row.provider_id, "kind": row.kind, "quotesWithdrawn": withdrawn, "by": actor}
        SqlAuditLog(self.session).append(AuditKind.PROVIDER_DEREGISTERED, row.provider_id, data, at)

    def add(self, row: ProviderRegistrationRow | ProviderWebhookEventRow | ProviderIncidentRow) -> None:
        self.session.add(row)

    def incidents(self, provider_id: str, limit: int = 50) -> list[ProviderIncidentRow]:
        query = select(ProviderIncidentRow).where(ProviderIncidentRow.provider_id == provider_id)
        return list(self.session.scalars(query.order_by(ProviderIncidentRow.id.desc()).limit(limit)))

    def webhook_events(self, provider_id: str) -> list[ProviderWebhookEventRow]:
        query = select(ProviderWebhookEventRow).where(ProviderWebhookEventRow.provider_id == provider_id)
        return list(self.session.scalars(query.order_by(ProviderWebhookEventRow.id)))
