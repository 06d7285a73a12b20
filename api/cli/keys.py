"""``creditmesh keys …``: an admin's key management on the platform's database (``CREDITMESH_DATABASE_URL`` or the
local one), the same as ``/v1/api-keys``, for when no API is running or no admin key is at hand.

  issue --role ROLE [--subject ID] [--label TEXT] [--expires-at RFC3339 | --expires-in-days N]
                           prints the key once, then its id
  list [--role ROLE] [--all]   the keys (never the keys themselves); ``--all`` lists revoked ones too
  expire KEY_ID (--at RFC3339 | --in-days N | --never)
  revoke KEY_ID"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from api.cli._common import positive_number

if TYPE_CHECKING:
    from api.key_subjects import KeySubjects


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[Any]:
    from api.settings import Settings
    from store.db import Database

    database = Database(args.database_url or Settings().resolved_database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


#: the longest expiry in days a key may be given from the command line (a hundred years)
MAX_DAYS = 36_500
#: a key's label, as the API takes it
MAX_LABEL = 128


#: ``--expires-in-days`` / ``--in-days``: days after now, more than 0 (to end a key now: ``revoke``)
_days = positive_number("days", MAX_DAYS, " (revoke ends a key now)")


def _label(text: str) -> str:
    if not 1 <= len(text) <= MAX_LABEL:
        raise argparse.ArgumentTypeError(f"a label is 1 to {MAX_LABEL} characters, not {len(text)}")
    return text


def _moment(at: str | None, in_days: float | None) -> datetime | None:
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
            if moment.tzinfo is None:
                raise SystemExit(f"--at/--expires-at needs a zone (e.g. {at}Z or {at}+00:00)")
            return moment.astimezone(UTC)
        except (ValueError, OverflowError) as err:
            raise SystemExit(f"--at/--expires-at {at!r} is not an RFC 3339 moment (e.g. 2027-01-31T09:00:00Z)") from err
    if in_days is not None:
        return datetime.now(UTC) + timedelta(days=in_days)
    return None


def _row(info: Any) -> str:
    expires = "never" if info.expires_at is None else info.expires_at.isoformat(timespec="seconds")
    subject = info.subject_id or "-"
    state = info.state(datetime.now(UTC))
    return f"{info.key_id}  {info.role.value:<8}  {state:<7}  expires {expires:<25}  {subject}  {info.label}"


#: who acted, in the audit log, for a command run on the database's host (``creditmesh keys``)
CLI_ACTOR = "cli:creditmesh keys"


def cmd_issue(args: argparse.Namespace) -> None:
    from api import auth
    from api.key_subjects import UnknownSubject, check_subject

    role = auth.Role(args.role)
    if role in auth.SUBJECT_ROLES and args.subject is None:
        raise SystemExit(f"refused: a {role.value} key acts for a {role.value}: give --subject (its id)")
    with _database(args) as database:
        try:
            check_subject(_subjects(database, role), role, args.subject)
        except UnknownSubject as err:
            raise SystemExit(f"refused: {err} (as POST /v1/api-keys answers 404)") from err
        try:
            issued = auth.issue(
                database,
                role,
                args.subject,
                args.label or f"{role.value} key (cli)",
                _moment(args.expires_at, args.expires_in_days),
                actor=CLI_ACTOR,
            )
        except auth.ApiKeyError as err:
            raise SystemExit(f"refused: {err}") from err
    print(issued.key)
    print(f"id {issued.info.key_id} (the key above is shown once; only its hash is stored)")


def _subjects(database: Any, role: Any) -> KeySubjects:
    """Who a key may act for, as the platform would know them: its borrowers; for a provider key, the providers of
    the settings, the deployment records and the stored registrations (``providers.assembly.provider_ids``)."""
    from api import auth
    from api.key_subjects import KeySubjects

    def borrower_exists(borrower_id: str) -> bool:
        return _borrower_exists(database, borrower_id)

    if role is not auth.Role.PROVIDER:
        return KeySubjects(borrower_exists, frozenset(), lambda _: False)
    known, deregistered = _providers(database)
    return KeySubjects(borrower_exists, known, deregistered.__contains__)


def _providers(database: Any) -> tuple[frozenset[str], frozenset[str]]:
    from api.bootstrap import chain_registry, load_records
    from api.settings import Settings
    from chain.errors import ConfigurationError
    from providers.assembly import provider_ids

    settings = Settings()
    try:
        records = load_records(settings.resolved_deployments_dir, chain_registry(settings))
    except ConfigurationError:  # not deployed yet: no pool provider; the configured and registered ones all the same
        records = {}
    return provider_ids(settings, records, database)


def _borrower_exists(database: Any, borrower_id: str) -> bool:
    from aggregator.borrower_accounts import BorrowerAccounts
    from store.borrowers import SqlBorrowerStore

    return BorrowerAccounts(SqlBorrowerStore(database)).exists(borrower_id)


def cmd_list(args: argparse.Namespace) -> None:
    from api import auth

    with _database(args) as database:
        role = None if args.role is None else auth.Role(args.role)
        after = None
        while True:
            rows = auth.list_keys(database, after, 200, role, include_revoked=args.all)
            for info in rows:
                print(_row(info))
            if len(rows) < 200:
                break
            after = (rows[-1].created_at, rows[-1].key_id)


def cmd_expire(args: argparse.Namespace) -> None:
    from api import auth

    if not args.never and args.at is None and args.in_days is None:
        raise SystemExit("say when: --at RFC3339, --in-days N or --never")
    with _database(args) as database:
        try:
            moment = None if args.never else _moment(args.at, args.in_days)
            info = auth.set_expiry(database, args.key_id, moment, actor=CLI_ACTOR)
        except auth.ApiKeyError as err:
            raise SystemExit(f"refused: {err}") from err
    print(_row(info))


def cmd_revoke(args: argparse.Namespace) -> None:
    from api import auth

    with _database(args) as database:
        try:
            info = auth.revoke(database, args.key_id, actor=CLI_ACTOR)
        except auth.ApiKeyError as err:
            raise SystemExit(f"refused: {err}") from err
    print(_row(info))


def register(commands: argparse._SubParsersAction[Any]) -> None:
    roles = ["borrower", "provider", "admin", "auditor"]
    keys = commands.add_parser("keys", help="API keys for every role: issue, list, expire, revoke")
    sub = keys.add_subparsers(dest="keys_command", required=True)

    issue = sub.add_parser("issue", help="a new key (printed once)")
    issue.add_argument("--role", required=True, choices=roles)
    issue.add_argument("--subject", default=None, help="the borrower's or provider's id (borrower and provider keys)")
    issue.add_argument("--label", type=_label, default=None, help="who or what holds the key (1 to 128 characters)")
    when = issue.add_mutually_exclusive_group()
    when.add_argument("--expires-at", default=None, help="RFC 3339 with a zone")
    when.add_argument("--expires-in-days", type=_days, default=None, help="days from now (more than 0)")
    issue.set_defaults(func=cmd_issue)

    listing = sub.add_parser("list", help="the keys, newest first (never the keys themselves)")
    listing.add_argument("--role", choices=roles, default=None)
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.set_defaults(func=cmd_list)

    expire = sub.add_parser("expire", help="set or clear a key's expiry")
    expire.add_argument("key_id")
    moment = expire.add_mutually_exclusive_group()
    moment.add_argument("--at", default=None, help="RFC 3339 with a zone")
    moment.add_argument("--in-days", type=_days, default=None, help="days from now (more than 0; revoke ends it now)")
    moment.add_argument("--never", action="store_true")
    expire.set_defaults(func=cmd_expire)

    revoke = sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_revoke)

    for parser in (issue, listing, expire, revoke):
        parser.add_argument("--database-url", default=None, help="default: CREDITMESH_DATABASE_URL or the local one")
