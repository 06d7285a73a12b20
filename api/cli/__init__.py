"""The ``creditmesh`` command, one module per command group: ``run`` and ``reset`` (:mod:`api.cli.run`), ``serve``
(:mod:`api.cli.serve`: the API, or N API processes behind a local balancer), ``index`` (:mod:`api.cli.index`),
``relay`` (:mod:`api.cli.relay`: loan events out), ``keeper`` (:mod:`api.cli.keeper`: liquidations), ``wallet …``
(:mod:`api.cli.wallet`), ``admin …`` (:mod:`api.cli.admin`: governance), ``sanctions import``
(:mod:`api.cli.sanctions`: OFAC list updates), ``keys …`` (:mod:`api.cli.keys`: API keys for every role),
``audit …`` (:mod:`api.cli.audit`: the audit log), ``reconcile`` (:mod:`api.cli.reconcile`: chain facts against our
records). Each group module has ``register(commands)``, which adds its sub-parsers and sets ``func`` on them.

A group's module is imported only when one of its commands runs (``main`` reads the command first): the groups
import web3, the contracts, the app, each several seconds on a busy machine, and a process started for one command
need not pay for the others. ``--help`` without a command, or an unknown command, imports them all."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from types import ModuleType

from pydantic import ValidationError
from pydantic_settings import SettingsError

#: each command and the module of its group (``api.cli.<module>``), in the order ``--help`` lists them
COMMANDS = {
    "run": "run",
    "reset": "run",
    "serve": "serve",
    "index": "index",
    "relay": "relay",
    "keeper": "keeper",
    "wallet": "wallet",
    "admin": "admin",
    "sanctions": "sanctions",
    "keys": "keys",
    "audit": "audit",
    "reconcile": "reconcile",
}
DESCRIPTION = (
    "The ``creditmesh`` command: ``run`` (the whole platform locally), ``serve`` (the API only, or ``--processes N`` "
    "behind a local balancer), ``index`` (the chain indexers alone), ``relay`` (loan events to webhooks), ``keeper`` "
    "(the liquidation keepers alone), ``wallet …``, ``admin …`` (governance), "
    "``sanctions import`` (OFAC list updates), "
    "``keys …`` (API keys for every role), ``audit …`` (seal, anchor and verify the audit log), "
    "``reconcile`` (chain facts against our records)."
)


def group(command: str) -> ModuleType:
    """The module of ``command``'s group, imported now."""
    return importlib.import_module(f"{__name__}.{COMMANDS[command]}")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``commands`` (default: every command; each group's module imported)."""
    parser = argparse.ArgumentParser(prog="creditmesh", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True)
    wanted = COMMANDS if commands is None else commands
    for module in dict.fromkeys(group(command) for command in wanted):  # a group once, though it has two commands
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    command = next((argument for argument in arguments if not argument.startswith("-")), None)
    args = build_parser([command] if command in COMMANDS else None).parse_args(arguments)
    try:
        args.func(args)
    except ValidationError as err:
        if err.title not in CONFIGURATIONS:
            raise
        raise SystemExit(configuration_refused(err)) from None
    except SettingsError as err:  # a CREDITMESH_* value that is not the JSON its setting takes
        raise SystemExit(f"creditmesh: the configuration is invalid: {err}") from None


#: the settings classes whose refusals are the operator's configuration, not a bug
CONFIGURATIONS = frozenset({"Settings", "AdminSettings"})


def configuration_refused(err: ValidationError) -> str:
    """What is wrong with the ``CREDITMESH_*`` environment, one line a variable, without the values (secrets)."""
    lines = [f"creditmesh: the configuration is invalid ({err.error_count()} problem(s)):"]
    for error in err.errors(include_input=False, include_url=False):
        if not error["loc"]:  # a rule over several settings (production's): its message names them
            lines.append(f"  {error['msg']}")
            continue
        field, *inside = error["loc"]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in inside)
        lines.append(f"  CREDITMESH_{str(field).upper()}{where}: {error['msg']}")
    return "\n".join(lines)
