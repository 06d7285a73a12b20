"""The ``creditmesh`` command's parser: one module per command group, the same commands and options as before."""

from __future__ import annotations

import pytest

from api.cli import build_parser, run, serve, wallet

pytestmark = pytest.mark.unit


def test_run_and_serve_take_a_port_with_the_api_default() -> None:
    args = build_parser().parse_args(["run"])
    assert (args.func, args.port) == (run.cmd_run, 8000)
    args = build_parser().parse_args(["serve", "--port", "9001"])
    assert (args.func, args.port, args.processes) == (serve.cmd_serve, 9001, 1)


def test_wallet_account_before_or_after_the_sub_command() -> None:
    before = build_parser().parse_args(["wallet", "--account", "7", "address"])
    after = build_parser().parse_args(["wallet", "accept", "--account", "8", "--quote-id", "q", "--api-key", "k"])
    assert (before.func, before.wallet_command, before.account) == (wallet.cmd_wallet, "address", 7)
    assert (after.account, after.quote_id, after.api_url) == (8, "q", "http://127.0.0.1:8000")
    assert build_parser().parse_args(["wallet", "address"]).account == 6


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
