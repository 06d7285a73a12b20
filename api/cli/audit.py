"""``creditmesh audit …``: the hash-chained audit log (``compliance.audit``).

seal      number and chain the entries written since the last seal (the audit worker does this continuously)
verify    walk the sealed log and name the first altered, inserted, deleted or reordered entry; exit status 1 if
          any entry or anchor does not hold"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from api.settings import Settings
from compliance.audit import verify
from store.compliance import SqlAuditLog
from store.db import Database


def _database() -> Database:
    database = Database(Settings().resolved_database_url)
    database.migrate()
    return database


def cmd_seal(args: argparse.Namespace) -> None:
    database = _database()
    try:
        with database.unit_of_work() as uow:
            sealed = SqlAuditLog(uow.session).seal()
            uow.commit()
        print(f"sealed {sealed} entries", flush=True)
    finally:
        database.dispose()


def cmd_verify(args: argparse.Namespace) -> None:
    database = _database()
    try:
        with database.unit_of_work() as uow:
            log = SqlAuditLog(uow.session)
            entries, pending = log.entries(), log.pending()
    finally:
        database.dispose()
    report = verify(entries, (), pending)
    print(f"{report.entries} entries, head {report.head}, {report.pending} not yet sealed", flush=True)
    if report.ok:
        print("audit log verified", flush=True)
        return
    print(f"FIRST BAD: {report.first_bad}", flush=True)
    for problem in report.problems[1:]:
        print(f"also: {problem}", flush=True)
    sys.exit(1)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    audit = commands.add_parser("audit", help="the hash-chained audit log: seal, verify")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    seal = sub.add_parser("seal", help="number and chain the entries written since the last seal")
    seal.set_defaults(func=cmd_seal)
    check = sub.add_parser("verify", help="name the first altered, inserted, deleted or reordered entry")
    check.set_defaults(func=cmd_verify)
