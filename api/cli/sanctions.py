"""``creditmesh sanctions …``: OFAC list updates, and the sanctions review queue.

``creditmesh sanctions import --sdn SDN.CSV --alt ALT.CSV --add ADD.CSV --published 2026-11-20`` (or
``--xml SDN.XML``) validates the files as an operator downloads them from OFAC and stores the names, and the EVM
digital currency addresses the same files list — merged with the address list in use: an address whose entry is still
listed stays, as SDN.CSV's Remarks are cut at 1,000 characters (``compliance.sanctions.updates``; ``--force`` takes
the files' lists as they are, and also accepts files with far fewer entries than the list in use, refused otherwise
as a file cut short would be) — as new list versions in the database, where every process of the platform reads
them: screening uses the newest lists (these, or the shipped files if those are newer) — every running
API process picks them up within ``CREDITMESH_SANCTIONS_RELOAD_SECONDS`` (5 s; ``api/sanctions_reload.py``), without
a restart — and every decision records their versions.

``creditmesh sanctions reviews [--state pending]`` lists the review queue, newest first, as the admin API does
(``GET /v1/admin/sanctions-reviews``): name hits on SDN entries and names that could not be screened in Latin script
(``name-not-screened``, no entry), by borrower id — no personal data. A verdict is given through the admin API
(``POST /v1/admin/sanctions-reviews/{id}/clear`` or ``/confirm``), which records the admin key that gave it."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from compliance.sanctions.lists import AddressList, NameList
    from compliance.sanctions.ofac import CsvImport
    from compliance.sanctions.updates import PreparedImport
    from store.db import Database

_List = TypeVar("_List", "NameList", "AddressList")


def cmd_import(args: argparse.Namespace) -> None:
    from api.settings import Settings
    from compliance.errors import SanctionsListInvalid
    from compliance.sanctions.ofac import CsvImport, parse_csv_set_import, parse_xml_lists
    from store.db import Database

    try:
        if args.xml is not None:
            parsed = CsvImport(*parse_xml_lists(args.xml.read_bytes()))
        else:
            if args.sdn is None or args.published is None:
                raise SystemExit("give --xml SDN.XML, or --sdn SDN.CSV with --published YYYY-MM-DD (and --alt, --add)")
            parsed = parse_csv_set_import(
                args.sdn.read_bytes(),
                args.alt.read_bytes() if args.alt else None,
                args.add.read_bytes() if args.add else None,
                _published(args.published),
            )
    except SanctionsListInvalid as err:
        raise SystemExit(f"refused: {err}") from err
    except OSError as err:  # a file that is not there, a directory, unreadable
        raise SystemExit(f"refused: {err.strerror}: {err.filename}") from err
    names = parsed.names
    if names.version.published.date() > datetime.now(UTC).date():
        # the newest publication date is the list screened against: a date to come would pin this list for years
        raise SystemExit(f"refused: the list says it was published on {names.version.published.date()}, after today")
    for warning in parsed.warnings:
        print(f"warning: {warning}")
    settings = Settings()
    database = Database(args.database_url or settings.resolved_database_url)
    database.migrate()
    try:
        prepared, stored, stored_addresses = _store(database, parsed, settings.sanctions_dir, args.force)
    finally:
        database.dispose()
    entries = len({n.ent_num for n in names.names})
    verb = "stored" if stored else "already stored"
    aliases = sum(1 for n in names.names if n.alias_of)
    print(
        f"{verb} {names.version.label}: {entries:,} entries, {len(names.names):,} names of which {aliases:,} aliases "
        f"({names.version.source}{'' if args.xml or args.alt else '; aliases from the Remarks: give --alt ALT.CSV'})"
    )
    if not aliases:
        print("WARNING: no alias at all: names are screened on their primary names only (give --alt ALT.CSV)")
    addresses = prepared.addresses
    if addresses is None:
        print("no EVM digital currency address in these files: the address list in use stays")
    else:
        verb = "stored" if stored_addresses else "already stored"
        kept = (
            f" ({prepared.imported_addresses:,} from the files, {prepared.kept_addresses:,} kept from the list in use: "
            "their entries are still listed)"
            if prepared.kept_addresses
            else ""
        )
        print(f"{verb} {addresses.version.label}: {len(addresses.entries):,} EVM addresses{kept}")


def _store(
    database: Database, parsed: CsvImport, sanctions_dir: Path | None, force: bool
) -> tuple[PreparedImport, bool, bool]:
    """Store an import's lists, checked against and merged with the lists in use (``compliance.sanctions.updates``),
    in one transaction: both lists or neither. The lists in use are the newest of the shipped (or dropped-in) files
    and the stored lists, as the platform picks them at start-up."""
    from compliance.errors import SanctionsListInvalid
    from compliance.sanctions.lists import SHIPPED_DIR, load_newest
    from compliance.sanctions.updates import prepare_import
    from store.sanctions_lists import SqlSanctionsListRepository

    shipped_addresses, shipped_names = load_newest(sanctions_dir or SHIPPED_DIR)
    with database.unit_of_work() as uow:
        lists, now = SqlSanctionsListRepository(uow.session), datetime.now(UTC)
        stored_names, stored_address_list = lists.newest(), lists.newest_addresses()
        in_use_names = _newer(stored_names, shipped_names)
        in_use_addresses = _newer(stored_address_list, shipped_addresses)
        try:
            prepared = prepare_import(parsed.names, parsed.addresses, in_use_names, in_use_addresses, force=force)
        except SanctionsListInvalid as err:
            raise SystemExit(f"refused: {err}") from err
        stored = lists.add(prepared.names, now)
        stored_addresses = prepared.addresses is not None and lists.add_addresses(prepared.addresses, now)
        uow.commit()
    return prepared, stored, stored_addresses


def _newer(stored: _List | None, shipped: _List) -> _List:
    """The list screening uses of a stored one and a shipped one: the stored one when published on or after."""
    return stored if stored is not None and stored.version.published >= shipped.version.published else shipped


def cmd_reviews(args: argparse.Namespace) -> None:
    from api.settings import Settings
    from compliance.sanctions.review import ReviewState
    from store.db import Database
    from store.sanctions_reviews import SqlSanctionsReviewRepository

    url = args.database_url or Settings().resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise SystemExit(f"no database at {url.removeprefix('sqlite:///')} (nothing was created)")
    state = None if args.state == "all" else ReviewState(args.state)
    database = Database(url)
    database.migrate()
    try:
        with database.unit_of_work() as uow:
            reviews = SqlSanctionsReviewRepository(uow.session).page(state, None, args.limit)
    finally:
        database.dispose()
    for review in reviews:
        what = (
            "name not screened in Latin script"
            if review.ent_num is None
            else f"SDN entry {review.ent_num} {review.primary_name!r} ({review.program}) at {review.score:.0f}/100"
        )
        verdict = "" if review.reviewer is None else f" by {review.reviewer} at {review.reviewed_at:%Y-%m-%d %H:%M}"
        print(
            f"{review.id}  {review.created_at:%Y-%m-%d %H:%M}  {review.state}{verdict}  {review.kind}  "
            f"borrower {review.borrower_id}: {what}, {review.outcome}"
        )
    print(f"{len(reviews)} review{'' if len(reviews) == 1 else 's'} ({args.state}, newest first, at most {args.limit})")


def _published(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise SystemExit(f"refused: --published {text!r} is not a date YYYY-MM-DD") from err


def register(commands: argparse._SubParsersAction[Any]) -> None:
    sanctions = commands.add_parser("sanctions", help="sanctions list updates")
    sanctions_commands = sanctions.add_subparsers(dest="sanctions_command", required=True)
    imported = sanctions_commands.add_parser(
        "import", help="validate OFAC's SDN files and store their names and EVM addresses as new list versions"
    )
    imported.add_argument("--sdn", type=Path, help="SDN.CSV")
    imported.add_argument(
        "--alt",
        type=Path,
        help="ALT.CSV: the aliases (without it, the a.k.a.s in SDN.CSV's Remarks, which may miss some)",
    )
    imported.add_argument("--add", type=Path, help="ADD.CSV: the addresses (checked against SDN.CSV)")
    imported.add_argument("--published", help="the CSV set's publication date, YYYY-MM-DD (the XML carries its own)")
    imported.add_argument("--xml", type=Path, help="SDN.XML instead of the CSV set")
    imported.add_argument(
        "--force",
        action="store_true",
        help="take the files' lists as they are: without it, the EVM addresses of the address list in use whose "
        "entries are still listed are kept (SDN.CSV's Remarks, cut at 1,000 characters, miss some), and files with "
        "fewer than 90%% of the entries of the name list in use are refused (a file cut short)",
    )
    imported.add_argument("--database-url", default=None, help="default: CREDITMESH_DATABASE_URL or the local one")
    imported.set_defaults(func=cmd_import)
    reviews = sanctions_commands.add_parser(
        "reviews", help="list the sanctions review queue (verdicts are given through the admin API)"
    )
    reviews.add_argument("--state", choices=["pending", "cleared", "confirmed", "all"], default="pending")
    reviews.add_argument("--limit", type=int, default=50, help="the newest reviews to list (default 50)")
    reviews.add_argument("--database-url", default=None, help="default: CREDITMESH_DATABASE_URL or the local one")
    reviews.set_defaults(func=cmd_reviews)
