"""The ``creditmesh`` command, one module per command group: ``run`` and ``serve`` (:mod:`api.cli.run`),
``index`` (:mod:`api.cli.index`), ``relay`` (:mod:`api.cli.relay`: loan events out), ``keeper``
(:mod:`api.cli.keeper`: liquidations), ``wallet …``
(:mod:`api.cli.wallet`), ``admin …`` (:mod:`api.cli.admin`:
governance), ``sanctions import`` (:mod:`api.cli.sanctions`: OFAC list updates), ``keys …`` (:mod:`api.cli.keys`:
API keys for every role), ``audit …`` (:mod:`api.cli.audit`: the audit log), ``reconcile``
(:mod:`api.cli.reconcile`: chain facts against our records). Each group module has ``register(commands)``, which
adds its sub-parsers and sets ``func`` on them."""

from __future__ import annotations

import argparse

from api.cli import admin, audit, index, keeper, keys, reconcile, relay, run, sanctions, wallet

GROUPS = (run, index, relay, keeper, wallet, admin, sanctions, keys, audit, reconcile)
DESCRIPTION = (
    "The ``creditmesh`` command: ``run`` (the whole platform locally), ``serve`` (the API only), ``index`` (the "
    "chain indexers alone), ``relay`` (loan events to webhooks), ``keeper`` (the liquidation keepers alone), "
    "``wallet …``, ``admin …`` (governance), "
    "``sanctions import`` (OFAC list updates), "
    "``keys …`` (API keys for every role), ``audit …`` (seal, anchor and verify the audit log), "
    "``reconcile`` (chain facts against our records)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creditmesh", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)
