"""The ``creditmesh`` command's parser: one module per command group, the same commands and options as before."""

from __future__ import annotations

import argparse
import re
import shlex
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account

from api import wallet as wallet_amounts
from api.cli import admin, build_parser, main, run, serve, wallet
from api.local_platform import ServicePortTaken
from api.settings import Settings
from api.wallet import signed_repayment
from chain.signers import LocalSigner

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


@pytest.mark.parametrize(
    ("service", "said"),
    [
        (
            "api",
            "port 8000 (api) is taken by another program (an earlier `creditmesh run` still going, or another "
            "server): stop it or run the API on another port (`creditmesh run --port N`)\n",
        ),
        (
            "lenders",
            "port 8600 (lenders) is taken by another program (an earlier `creditmesh run` still going, or "
            "another server): stop it\n",
        ),
    ],
)
def test_run_names_a_service_port_another_program_holds_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, service: str, said: str
) -> None:
    def taken(*_: object) -> None:
        raise ServicePortTaken(service, 8000 if service == "api" else 8600)

    monkeypatch.setattr(run, "_run", taken)
    with pytest.raises(SystemExit) as exited:
        run._start(argparse.Namespace(reset=False), Settings(data_dir=tmp_path))
    assert exited.value.code == 1
    assert said in capsys.readouterr().err


def test_run_refuses_an_api_port_another_program_holds_before_any_chain_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        args = argparse.Namespace(reset=False, port=port, fleet=None, journey=False)
        with pytest.raises(SystemExit) as exited:
            run._start(args, Settings(data_dir=tmp_path))
    assert exited.value.code == 1
    assert f"creditmesh: port {port} (api) is taken by another program" in capsys.readouterr().err
    assert not (tmp_path / "devnets").exists(), "no devnet was started"


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        (
            {"CREDITMESH_HTTP_LENDERS": '[{"provider_id": "b", "secret": "LENDER-SECRET-99"}]'},
            "HTTP_LENDERS[0].base_url",
        ),
        ({"CREDITMESH_PII_MASTER_KEY": "ab" * 31 + "LENDER-SECRET-99"}, "CREDITMESH_PII_MASTER_KEY"),
        ({"CREDITMESH_ENVIRONMENT": "Production"}, "CREDITMESH_ENVIRONMENT: Input should be 'local' or 'production'"),
    ],
    ids=["lender-without-url", "master-key-malformed", "environment-misspelt"],
)
def test_a_configuration_refused_names_the_variable_and_never_prints_its_value(
    environment: dict[str, str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a pydantic traceback ended with the refused input: a lender's secret, the PII master key, the admin
    key (printed by production's checks). ``admin`` reads its settings too, and a misspelt environment there
    passed as a local run."""
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for command in (["keys", "list"], ["admin", "list"]):
        if command[0] == "admin" and "CREDITMESH_ENVIRONMENT" not in environment:
            continue  # admin reads only where the chains are, the environment and the guardian's key
        with pytest.raises(SystemExit) as refused:
            main(command)
        message = str(refused.value.code)
        assert message.startswith("creditmesh: the configuration is invalid"), message
        assert named in message, message
        assert "LENDER-SECRET-99" not in message


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
@pytest.mark.parametrize(
    "command",
    [
        ["keeper", "--lease-seconds"],
        ["keeper", "--interval"],
        ["index", "--lease-seconds"],
        ["relay", "--lease-seconds"],
    ],
)
def test_the_workers_take_only_a_positive_number_of_seconds(
    command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workers' settings are copied with these values, which skips their own bounds: a lease of 0 or -5 (or nan)
    expired as it was taken and its renewal spun."""
    with pytest.raises(SystemExit) as refused:
        build_parser([command[0]]).parse_args([*command, value])
    assert refused.value.code == 2
    assert "seconds" in capsys.readouterr().err
    assert getattr(build_parser([command[0]]).parse_args([*command, "2.5"]), command[1][2:].replace("-", "_")) == 2.5


def test_reconcile_refuses_a_range_with_no_block_or_reports_it_cannot_write_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Such a run used to be stored and audited as a clean one (no block read), or its reports failed with a
    traceback after it was stored."""
    with pytest.raises(SystemExit, match="--from-block 9 is after --to-block 3"):
        main(["reconcile", "--from-block", "9", "--to-block", "3", "--out", str(tmp_path / "reports")])
    with pytest.raises(SystemExit) as negative:
        build_parser(["reconcile"]).parse_args(["reconcile", "--to-block", "-1"])
    assert negative.value.code == 2
    assert "0 or more" in capsys.readouterr().err
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(SystemExit, match="--out"):
        main(["reconcile", "--out", str(blocked / "reports")])


@pytest.mark.parametrize("command", [["verify", "--offline"], ["seal"], ["anchor"]])
def test_audit_refuses_a_database_that_is_not_there_and_creates_none(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from the wrong directory (the data directory is relative), ``audit verify --offline`` created an empty
    database and reported its empty log "verified": a clean audit of nothing; ``seal`` and ``anchor`` created one
    and reported an empty log."""
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="no database at"):
        main(["audit", *command])
    assert not (tmp_path / "nowhere" / "creditmesh.db").exists()


@pytest.mark.parametrize("command", [["wallet", "--account"], ["admin", "sign", "p.json", "--account"]])
@pytest.mark.parametrize("value", ["-1", "20", "x"])
def test_an_account_is_one_of_the_devnets(command: list[str], value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--account -1`` or ``99`` was an eth_utils traceback after the command had started."""
    with pytest.raises(SystemExit) as refused:
        build_parser([command[0]]).parse_args([*command, value, *(["address"] if command[0] == "wallet" else [])])
    assert refused.value.code == 2
    assert "is no devnet account: 0 to 19" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["ab" * 31 + "c", "not a key", ""])
def test_a_key_variable_that_holds_no_private_key_is_refused_without_showing_it(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """63 hex digits were taken and signed as another account; whitespace around a key was a traceback."""
    monkeypatch.setenv("ADMIN_TEST_KEY", key)
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(tmp_path))
    args = build_parser(["admin"]).parse_args(["admin", "sign", "p.json", "--key-env", "ADMIN_TEST_KEY"])
    with pytest.raises(SystemExit, match="ADMIN_TEST_KEY holds no private key") as refused:
        admin._signer(args, None)
    assert key in {"", "not a key"} or key not in str(refused.value.code)


def test_a_key_variable_with_whitespace_around_the_key_signs_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TEST_KEY", f"  0x{'11' * 32}\n")
    args = build_parser(["admin"]).parse_args(["admin", "sign", "p.json", "--key-env", "ADMIN_TEST_KEY"])
    assert admin._signer(args, None).address == LocalSigner.from_key("0x" + "11" * 32).address


def test_a_production_deploy_needs_its_configuration_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``--config`` the deploy took the devnet profile (mocks, devnet keys) in production too, and was
    refused only later, for its devnet keys."""
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    with pytest.raises(SystemExit, match="a production deploy needs --config FILE"):
        main(["admin", "deploy"])


def test_an_admin_command_whose_rpc_stops_answering_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A connection error part-way through a command (the RPC answered the chain id check, then went away) was a
    traceback: none of the errors ``_run`` caught."""

    def command(args: argparse.Namespace) -> None:
        raise requests.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=9):\n Max retries exceeded")

    with pytest.raises(SystemExit) as refused:
        admin._run(command)(argparse.Namespace())

    assert refused.value.code == 1
    assert capsys.readouterr().err == (
        "refused: ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["admin", "execute", "{}"],
        ["admin", "cancel", "{}"],
        ["admin", "propose", "grace-period", "3600", "--salt", "{}"],
    ],
)
@pytest.mark.parametrize("value", ["0x3f…", "latest", "0x" + "zz" * 32, "0x3f", "ab" * 32, "0x" + "ab" * 33])
def test_an_operation_id_or_salt_is_32_bytes_of_hex(
    command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``execute 0x3f…``, ``execute latest`` and ``--salt 0xzz`` ended with bytes.fromhex's traceback; a salt without
    0x lost its first two digits (taken for the 0x)."""
    with pytest.raises(SystemExit) as refused:
        build_parser(["admin"]).parse_args([part.replace("{}", value) for part in command])
    assert refused.value.code == 2
    assert f"{value!r} is not 32 bytes of hex: 0x and 64 hex digits" in capsys.readouterr().err


def test_an_operation_id_and_a_salt_in_any_case_are_read_in_lower_case() -> None:
    mixed = "0x" + "aB" * 32
    parser = build_parser(["admin"])
    assert parser.parse_args(["admin", "execute", mixed]).operation_id == mixed.lower()
    assert parser.parse_args(["admin", "propose", "grace-period", "1", "--salt", mixed]).salt == mixed.lower()


@pytest.mark.parametrize("amount", ["1,5", "abc", "0", "-2", "NaN", "Infinity", "1e400", "1E2", "+5", " 5", "٣"])
def test_a_repayment_amount_that_is_no_amount_is_one_line_before_any_chain_is_asked(amount: str) -> None:
    """``Decimal("1,5")`` raised InvalidOperation (an ArithmeticError the command does not catch): a traceback; and
    ``1e400`` passed, to end in eth_abi's ValueOutOfBounds. An amount is what the API takes: ASCII digits, an
    optional fraction."""
    account = Account.create()
    loan = {"contract": "0x" + "11" * 20, "onchain_loan_id": "1", "chain_id": 31337}
    with pytest.raises(SystemExit, match="is not an amount"):
        signed_repayment(account, loan, amount, "http://127.0.0.1:9")  # nothing listens: never asked


@pytest.mark.parametrize("port", [8000, 9001])
def test_the_wallet_commands_run_prints_go_to_the_api_it_started(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    """After ``run --port 9001`` the printed ``wallet accept`` and ``repay`` went to the wallet's default, port 8000:
    to nothing, or to another server there."""
    run._print_example(port, "cm_demo", "0x" + "11" * 20, "cm_admin")
    printed = capsys.readouterr().out.replace("\\\n", " ")
    commands = [line.split("creditmesh ", 1)[1] for line in printed.splitlines() if "creditmesh wallet" in line]
    assert [command.split()[1] for command in commands] == ["accept", "repay", "repay"]
    for command in commands:
        filled = re.sub(r"\$\(python3 .*\)$", "q1", command).replace("<loan id>", "l1").replace("$CM_KEY", "cm_demo")
        args = build_parser().parse_args(shlex.split(filled))
        assert args.api_url == f"http://127.0.0.1:{port}", command


@pytest.mark.parametrize(
    ("amount", "said"),
    [
        ("1" * 30, "1" * 30 + " is refused: larger than the largest USDC amount, 79228162514264337593543.950335"),
        ("1.0000001", "1.0000001 is refused: USDC has 6 decimals"),
    ],
)
def test_a_repayment_amount_the_contracts_cannot_hold_is_one_line(amount: str, said: str) -> None:
    with pytest.raises(SystemExit) as refused:
        wallet_amounts._base_units(amount, "USDC", 6)
    assert refused.value.code == said
    assert wallet_amounts._base_units("100.500000", "USDC", 6) == 100_500_000


@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize("port", ["70000", "65536", "0", "-1", "80a"])
def test_a_port_is_one_a_socket_can_take(
    command: str, port: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``run --port 70000`` ended in an OverflowError traceback from the socket; now the parser refuses it."""
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as refused:
        main([command, "--port", port])
    assert refused.value.code == 2
    assert f"argument --port: '{port}' is not a TCP port: 1 to 65535" in capsys.readouterr().err
    assert build_parser().parse_args([command, "--port", "65535"]).port == 65535


def test_ctrl_c_while_starting_is_one_line_and_says_what_is_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Ctrl-C before the platform was up (chains starting, contracts deploying, the journey) was a long traceback."""

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_run", interrupted)
    with pytest.raises(SystemExit) as stopped:
        run._start(argparse.Namespace(reset=False), Settings(data_dir=tmp_path))
    assert stopped.value.code == 130
    said = capsys.readouterr().err
    assert said.strip() == "creditmesh: stopped (Ctrl-C) while starting; what was done is kept, the next run carries on"


@pytest.mark.parametrize(
    ("steps", "after"), [(0, "before its first step"), (2, "after step '2. accept loan L1 opened'")]
)
def test_ctrl_c_during_the_journey_names_the_throwaway_wallet_and_where_it_stopped(
    steps: int, after: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The journey's wallet is new each run and its key is never kept: stopped half-way, it leaves a loan open that
    nobody can repay, and nothing said so."""
    wallets = []

    def journey(api_url: str, key: str, account: Any, rpc_for: Any, say: Any) -> None:
        wallets.append(account.address)
        for line in ["1. request  1,500 USDC", "2. accept   loan L1 opened"][:steps]:
            say(line)
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "fund_on_devnets", lambda *_: None)
    monkeypatch.setattr(run, "onboard", lambda *_: "cm_key")
    monkeypatch.setattr(run, "journey", journey)
    with pytest.raises(KeyboardInterrupt):  # on to _start, which ends the run
        run._show_journey("http://127.0.0.1:9", "cm_admin")
    said = capsys.readouterr().err
    assert f"the journey was stopped {after}. Its wallet {wallets[0]} (a throwaway: its key was not kept)" in said
