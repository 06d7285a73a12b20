"""``creditmesh sanctions …``: OFAC list updates, and the sanctions review queue.

``creditmesh sanctions import --sdn SDN.CSV --alt ALT.CSV --add ADD.CSV --published 2026-11-20`` (or
``--xml SDN.XML``) validates the files as an operator downloads them from OFAC and stores the names, and the EVM
digital currency addresses the same files list, as new list versions in the database, where every process of the
platform reads them: screening uses the newest lists (these, or the shipped files if those are newer) — every running
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
from typing import Any


def cmd_import(args: argparse.Namespace) -> None:
    from api.settings import Settings
    from compliance.errors import SanctionsListInvalid
    from compliance.sanctions.ofac import parse_csv_set_lists, parse_xml_lists
    from store.db import Database
    from store.sanctions_lists import SqlSanctionsListRepository

    try:
        if args.xml is not None:
            names, addresses = parse_xml_lists(args.xml.read_bytes())
        else:
            if args.sdn is None or args.published is None:
                raise SystemExit("give --xml SDN.XML, or --sdn SDN.CSV with --published YYYY-MM-DD (and --alt, --add)")
            names, addresses = parse_csv_set_lists(
                args.sdn.read_bytes(),
                args.alt.read_bytes() if args.alt else None,
                args.add.read_bytes() if args.add else None,
                _published(args.published),
            )
    except SanctionsListInvalid as err:
        raise SystemExit(f"refused: {err}") from err
    except OSError as err:  # a file that is not there, a directory, unreadable
        raise SystemExit(f"refused: {err.strerror}: {err.filename}") from err
    if names.version.published.date() > datetime.now(UTC).date():
        # the newest publication date is the list screened against: a date to come would pin this list for years
        raise SystemExit(f"refused: the list says it was published on {names.version.published.date()}, after today")
    database = Database(args.database_url or Settings().resolved_database_url)
    database.migrate()
    try:
        with database.unit_of_work() as uow:  # both lists or neither
            lists, now = SqlSanctionsListRepository(uow.session), datetime.now(UTC)
            stored = lists.add(names, now)
            stored_addresses = addresses is not None and lists.add_addresses(addresses, now)
            uow.commit()
    finally:
        database.dispose()
    entries = len({n.ent_num for n in names.names})
    verb = "stored" if stored else "already stored"
    print(f"{verb} {names.version.label}: {entries:,} entries, {len(names.names):,} names ({names.version.source})")
    if addresses is None:
        print("no EVM digital currency address in these files: the address list in use stays")
    else:
        verb = "stored" if stored_addresses else "already stored"
        print(f"{verb} {addresses.version.label}: {len(addresses.entries):,} EVM addresses")


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
    imported.add_argument("--alt", type=Path, help="ALT.CSV: the aliases")
    imported.add_argument("--add", type=Path, help="ADD.CSV: the addresses (checked against SDN.CSV)")
    imported.add_argument("--published", help="the CSV set's publication date, YYYY-MM-DD (the XML carries its own)")
    imported.add_argument("--xml", type=Path, help="SDN.XML instead of the CSV set")
    imported.add_argument("--database-url", default=None, help="default: CREDITMESH_DATABASE_URL or the local one")
    imported.set_defaults(func=cmd_import)
    reviews = sanctions_commands.add_parser(
        "reviews", help="list the sanctions review queue (verdicts are given through the admin API)"
    )
    reviews.add_argument("--state", choices=["pending", "cleared", "confirmed", "all"], default="pending")
    reviews.add_argument("--limit", type=int, default=50, help="the newest reviews to list (default 50)")
    reviews.add_argument("--database-url", default=None, help="default: CREDITMESH_DATABASE_URL or the local one")
    reviews.set_defaults(func=cmd_reviews)
