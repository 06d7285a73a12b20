"""The provider registry: adapters found through the entry-point group ``creditmesh.providers`` (the built-ins
``http`` and ``pool`` are registered the same way in pyproject.toml), loaded lazily — a kind's module is imported
only when a provider of that kind is built — and checked when loaded: an adapter class that leaves an abstract
method unimplemented is refused with a message naming it.

Providers come from three places, all built the same way (``kind`` + ``config`` → adapter → resilience wrapper):
the settings (``CREDITMESH_HTTP_LENDERS``), the deployment records (a pool per chain and asset), and registrations
made through the API and persisted in ``store/providers.py``. The aggregator sees only ``ResilientProvider``s."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from providers._exceptions import (
    AlreadyRegistered,
    DestinationRefused,
    InvalidPlugin,
    InvalidRegistration,
    PoolAlreadyServed,
    UnknownProvider,
    UnknownProviderKind,
)
from providers._stored import fingerprint, registration_from_row, stored_pool
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.destinations import check_https, check_url_shape
from providers.policy import ResiliencePolicy
from providers.resilience import (
    AsyncBreaker,
    BreakerStore,
    RateLimiter,
    RedisBreakerStore,
    ResilientProvider,
)
from providers.secrets import SecretBox
from providers.shared_state import DegradableBreakerStore
from providers.webhooks import MemoryRefusalLimiter, RefusalLimiter
from risk.shared_state import SharedStateHealth
from store.autocommit import autocommit_session
from store.offer_events import withdraw_quotes_of
from store.providers import ProviderIncidentRow, ProviderRegistrationRow, ProviderRepository

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from store.db import Database

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "creditmesh.providers"
ASYNC_METHODS = ("quote", "accept", "status", "health")


def check_adapter_class(name: str, source: str, loaded: object) -> type[ProviderAdapter]:
    """The adapter class an entry point gives, or ``InvalidPlugin`` saying what is wrong with it."""
    if not (isinstance(loaded, type) and issubclass(loaded, ProviderAdapter)):
        raise InvalidPlugin(f"provider plugin {name!r} ({source}) gives {loaded!r}, not a ProviderAdapter subclass")
    missing = sorted(getattr(loaded, "__abstractmethods__", ()))
    if missing:
        raise InvalidPlugin(
            f"provider plugin {name!r} ({source}): {loaded.__name__} does not implement "
            f"{', '.join(missing)} (abstract in ProviderAdapter)"
        )
    not_async = [m for m in ASYNC_METHODS if not inspect.iscoroutinefunction(getattr(loaded, m))]
    if not_async:
        raise InvalidPlugin(
            f"provider plugin {name!r} ({source}): {loaded.__name__}.{not_async[0]} must be an async def"
        )
    return loaded


class PluginLoader:
    """Entry points of ``creditmesh.providers`` by name; each is imported on first use and checked then.

    An entry point names either a ``ProviderAdapter`` subclass, or a small hook (a function with no arguments) that
    imports and returns one — the hook keeps a plugin's heavy imports out of start-up."""

    def __init__(self, points: Iterable[EntryPoint] | None = None) -> None:
        found = entry_points(group=ENTRY_POINT_GROUP) if points is None else points
        self._points: dict[str, EntryPoint] = {point.name: point for point in found}
        self._classes: dict[str, type[ProviderAdapter]] = {}

    def names(self) -> list[str]:
        return sorted(self._points)

    def is_loaded(self, name: str) -> bool:
        return name in self._classes

    def load(self, name: str) -> type[ProviderAdapter]:
        if name in self._classes:
            return self._classes[name]
        point = self._points.get(name)
        if point is None:
            raise UnknownProviderKind(f"no provider plugin {name!r}; installed: {', '.join(self.names()) or 'none'}")
        try:
            loaded: object = point.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded = loaded()
        except Exception as err:
            raise InvalidPlugin(f"provider plugin {name!r} ({point.value}) cannot be loaded: {err!r}") from err
        self._classes[name] = check_adapter_class(name, point.value, loaded)
        return self._classes[name]


class ProviderRegistry(dict[str, ProviderAdapter]):
    """Every provider by id, each behind its resilience wrapper. A live mapping: a provider registered through the
    API appears here and in ``adapters()`` (one list object, the same on every call) at once. A deregistered provider
    stays in the mapping — its webhooks are verified, its loans' accepts funded or cancelled and their funding asked
    — but not in ``adapters()``, the providers that quote (``deregistered``)."""

    def __init__(
        self,
        context: AdapterContext,
        plugins: PluginLoader,
        store: BreakerStore,
        limiter: Callable[[ResiliencePolicy], RateLimiter],
        default_policy: ResiliencePolicy,
        database: Database | None = None,
        webhook_refusals: RefusalLimiter | None = None,
        secrets: SecretBox | None = None,
    ) -> None:
        super().__init__()
        #: seals the secrets in persisted registrations (None: stored as given, for tests without a master key)
        self.secrets = secrets
        #: refused unauthenticated webhooks, counted per source address (providers.webhooks)
        self.webhook_refusals: RefusalLimiter = webhook_refusals or MemoryRefusalLimiter()
        self.context = context
        self.plugins = plugins
        self.store = store
        self.default_policy = default_policy
        self._limiter = limiter
        self._database = database
        self._adapters: list[ProviderAdapter] = []
        self._sources: dict[str, str] = {}
        #: the providers registered through the API and deregistered since: kept, not quoting
        self._deregistered: set[str] = set()
        #: what each registration from the API was built from (its stored row's fingerprint)
        self._stored: dict[str, str] = {}
        #: the registrations' change counter this registry follows (``sync_persisted``); -1: never read
        self.version = -1
        self._lock = asyncio.Lock()
        self.load_errors: dict[str, str] = {}
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        #: whether the breaker state and rate limits shared through Redis are served locally now (``/readyz``)
        self.shared_state: tuple[SharedStateHealth, ...] = ()

    # ------------------------------------------------------------------ reading

    def adapters(self) -> list[ProviderAdapter]:
        """The resilience-wrapped adapters, as one live list (the aggregator keeps it and sees later additions)."""
        return self._adapters

    def get_provider(self, provider_id: str) -> ResilientProvider:
        adapter = self.get(provider_id)
        if not isinstance(adapter, ResilientProvider):
            raise UnknownProvider(f"no provider {provider_id!r}")
        return adapter

    def source(self, provider_id: str) -> str:
        return self._sources.get(provider_id, "unknown")

    def deregistered(self, provider_id: str) -> bool:
        """Whether ``provider_id`` was deregistered: it no longer quotes, and serves its existing loans only."""
        return provider_id in self._deregistered

    async def health(self, provider_id: str, probe: bool = False) -> dict[str, Any]:
        report = await self.get_provider(provider_id).report(probe)
        return report | {"source": self.source(provider_id)}

    # ------------------------------------------------------------------ building

    def build(self, registration: ProviderRegistration) -> ProviderAdapter:
        """The bare adapter of ``registration`` (its kind's plugin loaded and checked now). A plugin's own error while
        building is its ``InvalidPlugin``: it reached the API as a 500, and killed a process's poll of the stored
        registrations for good (that process went on quoting providers removed since)."""
        cls = self.plugins.load(registration.kind)
        try:
            adapter = cls.from_registration(registration, self.context)
        except (InvalidRegistration, ValueError):
            raise
        except Exception as err:  # a plugin is third-party code: any error of its own is the plugin's, named
            raise InvalidPlugin(
                f"provider plugin {registration.kind!r} could not build {registration.provider_id!r}: {err!r}"
            ) from err
        if adapter.provider_id != registration.provider_id:
            raise InvalidRegistration(
                f"plugin {registration.kind!r} built {adapter.provider_id!r} for {registration.provider_id!r}"
            )
        return adapter

    async def add(
        self, registration: ProviderRegistration, policy: ResiliencePolicy | None = None, source: str = "config"
    ) -> ResilientProvider:
        """Build, wrap and list a provider (not persisted)."""
        if registration.provider_id in self:
            raise AlreadyRegistered(f"provider {registration.provider_id!r} is already registered")
        adapter = self.build(registration)
        chosen = policy or self.default_policy
        if policy is not None and "quote_budget_seconds" not in policy.model_fields_set:
            # a registration's own policy still gets the platform's fan-out deadline as its quote budget
            chosen = policy.model_copy(update={"quote_budget_seconds": self.default_policy.quote_budget_seconds})
        breaker = await AsyncBreaker(registration.provider_id, chosen, self.store).start()
        wrapped = ResilientProvider(adapter, chosen, breaker, self._limiter(chosen), creditor=registration.creditor)
        self[registration.provider_id] = wrapped
        self._adapters.append(wrapped)
        self._sources[registration.provider_id] = source
        return wrapped

    async def register(
        self,
        registration: ProviderRegistration,
        policy: ResiliencePolicy | None = None,
        webhook_url: str | None = None,
        *,
        actor: str | None = None,
    ) -> ResilientProvider:
        """A registration through the API: validated (plugin loaded and checked, configuration parsed, a pool must
        answer its views, the ``webhook_url`` its loan events go to is a public http(s) URL), then persisted and
        listed. Raises ``InvalidRegistration`` saying what is wrong, ``AlreadyRegistered`` for an id registered and
        not deregistered — in this process, or in another at the same moment (its row inserted first) —, and
        ``PoolAlreadyServed`` for a pool another provider that quotes stands for (``_check_pool_unserved``)."""
        if self._database is None:
            raise InvalidRegistration("this registry has no database to persist registrations in")
        database = self._database
        async with self._lock:
            if registration.provider_id in self and not self.deregistered(registration.provider_id):
                raise AlreadyRegistered(f"provider {registration.provider_id!r} is already registered")
            adapter = self.build(registration)
            await adapter.check_destination()  # what is wrong with the registration itself first (422), then clashes
            pool = adapter.lending_pool()
            self._check_creditor(registration, pool)
            if pool is not None:
                quoting = [(other.provider_id, other.lending_pool()) for other in self._adapters]
                self._check_pool_unserved(registration.provider_id, pool, quoting)
            if webhook_url is not None:
                await self.check_webhook_url(registration.provider_id, webhook_url)
                if not isinstance(registration.config.get("secret"), str):
                    raise InvalidRegistration(
                        f"{registration.provider_id}: a webhook_url needs the HMAC secret its events are signed with"
                    )
            if adapter.kind == "pool":
                health = await adapter.health()
                if not health.healthy:
                    raise InvalidRegistration(
                        f"{registration.provider_id}: the pool does not answer its views ({health.detail})"
                    )

            stored: list[ProviderRegistrationRow] = []

            def persist() -> None:
                with database.unit_of_work() as uow:
                    repository = ProviderRepository(uow.session)
                    # first: the counter's row lock orders this against another process's registration (no unique
                    # index holds a pool's address: its stored registrations are read under that lock instead)
                    repository.bump_version()
                    existing = repository.registration(registration.provider_id)
                    if existing is not None and existing.enabled:
                        raise AlreadyRegistered(f"provider {registration.provider_id!r} is already registered")
                    if pool is not None:
                        others = [(other.provider_id, stored_pool(other)) for other in repository.registrations()]
                        self._check_pool_unserved(registration.provider_id, pool, others)
                    row = existing or ProviderRegistrationRow(provider_id=registration.provider_id)
                    row.kind = registration.kind
                    row.config = self._at_rest(registration.provider_id, registration.config)
                    row.capabilities = (
                        None if registration.capabilities is None else registration.capabilities.as_document()
                    )
                    row.resilience = None if policy is None else policy.model_dump(exclude_unset=True)
                    row.enabled = True
                    row.created_at = datetime.now(UTC)
                    row.webhook_url = webhook_url
                    creditor = registration.creditor
                    row.legal_name = None if creditor is None else creditor.name
                    row.postal_address = None if creditor is None else creditor.address
                    if existing is None:  # a deregistered provider registered again takes its old row back
                        repository.add(row)
                    repository.registered(row, existing is not None, actor, type(adapter).audited_config)
                    uow.commit()
                    stored.append(row)

            try:
                await asyncio.to_thread(persist)
            except IntegrityError as err:  # another process inserted its row after this one read none
                raise AlreadyRegistered(f"provider {registration.provider_id!r} is already registered") from err
            if registration.provider_id in self:  # deregistered: its new registration serves its loans from now on
                self._remove(registration.provider_id)
            added = await self.add(registration, policy, source="api")
            # this process's next poll finds the row it built this from and leaves the provider as it is
            self._stored[registration.provider_id] = fingerprint(stored[0])
            return added

    def _check_creditor(self, registration: ProviderRegistration, pool: tuple[str, str] | None) -> None:
        """``InvalidRegistration`` for a pool given a legal name (a LendingPool contract is no legal person: its
        notices name the contract and its chain) and, in production (``creditor_required``), for a lender given
        none: every adverse-action notice given for a lender names its legal name and postal address (12 CFR
        1002.9(g)), and a provider id is not a creditor's identity."""
        provider_id = registration.provider_id
        if pool is not None and registration.creditor is not None:
            raise InvalidRegistration(
                f"{provider_id}: a lending pool is no legal person: give it no legal_name or address (its "
                "adverse-action notices name its contract and chain)"
            )
        if pool is None and registration.creditor is None and self.context.creditor_required:
            raise InvalidRegistration(
                f"{provider_id}: give the lender's legal_name and postal address: in production every adverse-action "
                "notice given for it names them (12 CFR 1002.9(g))"
            )

    def _check_pool_unserved(
        self, provider_id: str, pool: tuple[str, str], serving: Iterable[tuple[str, tuple[str, str] | None]]
    ) -> None:
        """``PoolAlreadyServed`` when one of ``serving`` (provider id, its pool) other than ``provider_id`` stands for
        ``pool`` (chain, address): the same pool registered under a second id had its offers quoted twice. Asked of
        the providers that quote here (from the deployment records or the API) and of the enabled registrations
        stored by every process; a deregistered provider does not count: it no longer quotes."""
        wanted = (pool[0], pool[1].lower())
        for other_id, other_pool in serving:
            if other_id != provider_id and other_pool and (other_pool[0], other_pool[1].lower()) == wanted:
                how = "from the deployment records" if self.source(other_id) == "deployment" else "deregister it first"
                raise PoolAlreadyServed(
                    f"{provider_id}: the pool at {pool[1]} on {pool[0]} is already served by provider {other_id!r} "
                    f"({how})"
                )

    async def deregister(
        self, provider_id: str, with_it: Callable[[Session], object] | None = None, *, actor: str | None = None
    ) -> list[str]:
        """Take a provider registered through the API out of quoting, in this process at once and in every other
        within ``CREDITMESH_PROVIDERS_RELOAD_SECONDS``. Only quoting stops: its registration is kept, disabled, and so
        is the provider in every process (``deregistered``), so its loans are serviced as before — its signed webhooks
        (``payment.received``, ``offer.funding_failed``) are verified, an accept whose loan is open is funded or
        cancelled, a loan's funding asked — and its loans, quotes, incidents and webhook events keep naming it, and
        its loans' events are still posted to it. Its quotes still acceptable (``offered``, or ``superseded`` by an
        accept under way) are withdrawn in the same transaction (one written later is refused at accept), and one
        being accepted goes to ``withdrawn`` if its accept is cancelled (``store.accepts``). The same id may be
        registered again: the new registration (its URL and secret) serves the old loans too; the withdrawn quotes
        stay withdrawn. ``with_it`` runs in the
        transaction that disables it (its API keys revoked: all or none). ``UnknownProvider`` for one that is not
        registered through the API, or deregistered already. Returns the ids of the quotes withdrawn."""
        if self._database is None:
            raise UnknownProvider(f"no provider {provider_id!r} registered through the API")
        database = self._database
        disabled: list[ProviderRegistrationRow] = []
        withdrawn: list[str] = []

        def disable() -> None:
            with database.unit_of_work() as uow:
                repository = ProviderRepository(uow.session)
                row = repository.registration(provider_id)
                if row is None or not row.enabled:
                    raise UnknownProvider(f"no provider {provider_id!r} registered through the API")
                row.enabled = False
                repository.bump_version()
                now = datetime.now(UTC)
                withdrawn.extend(withdraw_quotes_of(uow.session, provider_id, now))
                repository.deregistered(row, len(withdrawn), now, actor)
                if with_it is not None:
                    with_it(uow.session)
                uow.commit()
                disabled.append(row)

        async with self._lock:
            if provider_id in self and self.source(provider_id) != "api":
                raise UnknownProvider(f"no provider {provider_id!r} registered through the API")
            await asyncio.to_thread(disable)
            if provider_id in self:
                self._set_quoting(provider_id, False)
                # this process's next poll finds the row it changed and leaves the provider as it is
                self._stored[provider_id] = fingerprint(disabled[0])
        return withdrawn

    async def set_webhook_url(self, provider_id: str, url: str | None, *, actor: str | None = None) -> None:
        """Change (or with None remove) where a provider registered through the API gets its loan events; the
        relay reads it on every delivery, so pending events go to the new URL. ``UnknownProvider`` for a provider
        that was not registered through the API (one from the settings is configured there), raised before the URL
        is looked at: an unknown provider's URL is never resolved. ``InvalidRegistration`` for a URL of a provider
        whose registration has no HMAC secret to sign its events with (a pool registered without one), as
        ``register`` refuses it: the relay could never send them."""
        if self._database is None:
            raise UnknownProvider(f"no provider {provider_id!r} registered through the API")
        database = self._database

        def registered() -> Mapping[str, Any] | None:
            """The registration's configuration, its secret opened; None for no registration."""
            with database.unit_of_work() as uow:
                row = ProviderRepository(uow.session).registration(provider_id)
                return None if row is None else registration_from_row(row, self.secrets)[0].config

        def store() -> None:
            with database.unit_of_work() as uow:
                # locked: a change made at once by another process is waited for, so this one's audit entry says
                # what it really changed from
                repository = ProviderRepository(uow.session)
                row = repository.registration(provider_id, for_update=True)
                if row is None:  # deleted while its URL was checked
                    raise UnknownProvider(f"no provider {provider_id!r} registered through the API")
                before, row.webhook_url = row.webhook_url, url
                if before != url:
                    repository.webhook_changed(row, before, datetime.now(UTC), actor)
                uow.commit()

        config = await asyncio.to_thread(registered)
        if config is None:
            raise UnknownProvider(f"no provider {provider_id!r} registered through the API")
        if url is not None:
            await self.check_webhook_url(provider_id, url)
            if not isinstance(config.get("secret"), str):
                raise InvalidRegistration(
                    f"{provider_id}: a webhook_url needs the HMAC secret its events are signed with; its "
                    "registration has none"
                )
        await asyncio.to_thread(store)

    async def check_webhook_url(self, provider_id: str, url: str) -> None:
        """Refuse a webhook URL that is not plain ``http(s)://host[:port][/path]`` (``https://`` in production) or
        whose host the SSRF guard refuses (the relay checks it again on every delivery)."""
        try:
            check_url_shape(url)
        except ValueError as err:
            raise InvalidRegistration(f"{provider_id}: webhook_url {err}") from err
        if self.context.https_only:
            try:
                check_https("webhook_url", url)
            except ValueError as err:
                raise InvalidRegistration(f"{provider_id}: {err}") from err
        if self.context.destinations is not None:
            try:
                await self.context.destinations.check(url)
            except DestinationRefused as err:
                raise InvalidRegistration(f"{provider_id}: webhook_url refused: {err}") from err

    async def load_persisted(self) -> None:
        """Add every registration from the store (a deregistered one kept out of quoting: ``deregister``). One that
        no longer loads (its plugin was uninstalled, its chain is gone) is left out and reported in ``load_errors``;
        it does not stop the platform."""
        if self._database is None:
            return
        database = self._database

        def read() -> tuple[int, list[ProviderRegistrationRow]]:
            with database.unit_of_work() as uow:
                repository = ProviderRepository(uow.session)
                rows = repository.registrations(deregistered=True)
                plaintext = [row for row in rows if isinstance(row.config.get("secret"), str)]
                if plaintext and self.secrets is not None:
                    # rows persisted before secrets were sealed are sealed now
                    for row in plaintext:
                        row.config = self._at_rest(row.provider_id, row.config)
                    repository.bump_version()
                    uow.commit()
                return repository.version(), rows

        async with self._lock:
            await self._apply_stored(*await asyncio.to_thread(read))

    async def sync_persisted(self) -> bool:
        """One poll of the registrations' change counter; when another process (or this one) changed them, the
        registry follows the store: new registrations added, changed ones rebuilt, disabled or deleted ones taken
        out — in place, so the live ``adapters()`` list the aggregator holds changes with it. Providers from the
        settings or the deployment records are never touched. True if the store had moved."""
        if self._database is None:
            return False
        database = self._database

        def version() -> int:
            # outside a transaction: a read-only unit of work's ROLLBACK, twice a second, would clear the pooled
            # connections' prepared statements (store.autocommit)
            with autocommit_session(database) as session:
                return ProviderRepository(session).version()

        def read() -> tuple[int, list[ProviderRegistrationRow]]:
            with database.unit_of_work() as uow:
                repository = ProviderRepository(uow.session)
                return repository.version(), repository.registrations(deregistered=True)

        if await asyncio.to_thread(version) == self.version:
            return False
        async with self._lock:  # read under the lock: a registration of this process is either in it or after it
            await self._apply_stored(*await asyncio.to_thread(read))
        return True

    async def _apply_stored(self, version: int, rows: list[ProviderRegistrationRow]) -> None:
        """Make the registrations from the API those of ``rows`` as of ``version``: the enabled ones quoting, the
        disabled ones kept out of quoting (``deregister``); under the lock."""
        wanted = {row.provider_id: row for row in rows}
        for provider_id in [p for p, source in self._sources.items() if source == "api" and p not in wanted]:
            self._remove(provider_id)
            log.info("provider %s removed (its registration is gone)", provider_id)
        for provider_id in [p for p in self.load_errors if p not in wanted]:
            del self.load_errors[provider_id]
        for row in rows:
            stored = fingerprint(row)
            if row.provider_id in self and self.source(row.provider_id) != "api":
                continue  # the settings or the deployment records name it: they win
            if self._stored.get(row.provider_id) == stored:
                continue
            try:
                registration, policy = registration_from_row(row, self.secrets)
                if row.provider_id in self:
                    await self._replace(registration, policy)
                    log.info("provider %s rebuilt from its changed registration", row.provider_id)
                else:
                    await self.add(registration, policy, source="api")
            except (InvalidPlugin, InvalidRegistration, UnknownProviderKind, ValueError) as err:
                self.load_errors[row.provider_id] = str(err)
                log.error("provider %s not loaded: %s", row.provider_id, err)
            else:
                self.load_errors.pop(row.provider_id, None)
            if row.provider_id in self:
                self._set_quoting(row.provider_id, row.enabled)
            self._stored[row.provider_id] = stored
        self.version = version

    async def _replace(self, registration: ProviderRegistration, policy: ResiliencePolicy | None) -> None:
        """Swap a listed provider for one built from its changed registration, at the same place in the list (a
        deregistered one's new adapter is left out of it)."""
        old = self[registration.provider_id]
        index = self._adapters.index(old) if old in self._adapters else None
        del self[registration.provider_id]
        try:
            new = await self.add(registration, policy, source="api")
        except BaseException:
            self[registration.provider_id] = old
            raise
        self._adapters.remove(new)
        if index is None:
            self._deregistered.add(registration.provider_id)
        else:
            self._adapters[index] = new

    def _set_quoting(self, provider_id: str, quoting: bool) -> None:
        """Put a listed provider in ``adapters()`` (registered again) or take it out (deregistered)."""
        adapter = self[provider_id]
        if quoting:
            self._deregistered.discard(provider_id)
            if adapter not in self._adapters:
                self._adapters.append(adapter)
        else:
            self._deregistered.add(provider_id)
            if adapter in self._adapters:
                self._adapters.remove(adapter)

    def _remove(self, provider_id: str) -> None:
        adapter = self.pop(provider_id)
        if adapter in self._adapters:
            self._adapters.remove(adapter)
        self._deregistered.discard(provider_id)
        self._sources.pop(provider_id, None)
        self._stored.pop(provider_id, None)

    def _at_rest(self, provider_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config) if self.secrets is None else self.secrets.seal_config(provider_id, config)

    async def record_incident(self, provider_id: str, operation: str, reason: str) -> None:
        """An input the provider itself sent (authenticated by its signature) that the protocol does not allow:
        persisted with its reason and shown in its health. Not a breaker failure: quoting is unaffected. Never call
        this for unauthenticated input (anyone could write rows or switch the provider off)."""
        self.get_provider(provider_id).tracker.fail(operation, reason)
        if self._database is None:
            return
        database = self._database

        def write() -> None:
            with database.unit_of_work() as uow:
                ProviderRepository(uow.session).add(
                    ProviderIncidentRow(
                        provider_id=provider_id, operation=operation, reason=reason[:512], at=datetime.now(UTC)
                    )
                )
                uow.commit()

        await asyncio.to_thread(write)

    async def close(self) -> None:
        if isinstance(self.store, RedisBreakerStore | DegradableBreakerStore):
            await self.store.aclose()
        for close in self.on_close:
            await close()
