"""``creditmesh sanctions …``: OFAC list updates.

``creditmesh sanctions import --sdn SDN.CSV --alt ALT.CSV --add ADD.CSV --published 2026-11-20`` (or
``--xml SDN.XML``) validates the files as an operator downloads them from OFAC and stores the names, and the EVM
digital currency addresses the same files list, as new list versions in the database, where every process of the
platform reads them: screening uses the newest lists (these, or the shipped files if those are newer) — every running
API process picks them up within ``CREDITMESH_SANCTIONS_RELOAD_SECONDS`` (5 s; ``api/sanctions_reload.py``), without
a restart — and every decision records their versions."""

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
