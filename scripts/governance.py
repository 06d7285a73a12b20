"""``ape run governance …``: the same governance as ``creditmesh admin …`` (``api/cli/admin.py`` over
``contracts/governance``), for admins who work in ape. The ape network (ape-config.yaml names the three devnets)
selects the chain; ``--all-chains`` acts on every configured chain at once. Everything after the options is
``creditmesh admin``'s command line, e.g.

    ape run governance --network ethereum:polygon-local:node list
    ape run governance --network ethereum:ethereum-local:node --all-chains pause
    ape run governance --network ethereum:ethereum-local:node --all-chains propose grace-period 86400 --out p.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from ape.cli import ConnectedProviderCommand, network_option


@click.command(
    cls=ConnectedProviderCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    short_help="governance: propose, sign, submit, list, execute, cancel, pause",
)
@network_option()
@click.option("--all-chains", is_flag=True, help="act on every configured chain, not only the ape network's")
@click.argument("admin_args", nargs=-1, type=click.UNPROCESSED)
def cli(network: Any, all_chains: bool, admin_args: tuple[str, ...]) -> None:
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # ape runs scripts with its own import path
        sys.path.insert(0, root)
    from api.cli import main

    main(["admin", "--chains", "all" if all_chains else network.name, *admin_args])
