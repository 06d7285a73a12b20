"""``creditmesh admin …``: govern the deployed contracts on one chain or all (``--chains all``).

  deploy / verify          deploy a profile from its per-chain configuration file (default: the devnet profile;
                           idempotent; a re-run naming other role holders than the deployed contracts' is refused)
                           and verify the runtime code at every recorded address
  propose KIND …           simulate as the Timelock on every chain, then schedule (``--via key``) or write the Safe
                           transactions to a proposal file for the owners (``--via safe``); ``--dry-run`` only shows
                           each value before and after
  sign PROPOSAL            one Safe owner signs every chain's SafeTx off-line, after checking it is the one that
                           schedules (or cancels) the file's operation, and shows the calls decoded from their
                           calldata; writes a signature file
  submit PROPOSAL SIG…     M of N owners' signatures → execTransaction on every chain (schedules the operation),
                           each SafeTx checked against its operation and the chain's deployments record first
  list                     the Timelock's operations per chain with their calls decoded and their state
  execute / cancel         a ready operation, on every chain where it is ready, each chain's outcome said (anyone
                           executes); a pending one (a proposer cancels)
  pause                    the guardian pauses at once (``--liquidations``: liquidations only; ``--reason``),
                           each pause recorded as a governance action; unpausing is a proposal (``propose unpause``).
                           Pause and cancel by key try every chain, whatever fails on the others, and exit non-zero
                           naming each chain that failed and why; every other command refuses before sending when
                           one of its chains is not as configured (its RPC silent or serving another chain id)

Keys: ``--account N`` (devnet account N) or ``--key-env VAR`` (a private key in that environment variable). With
``CREDITMESH_ENVIRONMENT=production`` devnet keys and addresses are refused. How each chain is reached and checked
before a command acts on it: ``api/cli/_admin_chains.py``."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.exceptions import Web3Exception

from api.cli._admin_chains import (
    AdminSettings,
    admin_settings,
    chosen_chains,
    connect_all,
    governing,
    opened,
    production_guard_chains,
)
from api.cli._admin_proposals import PROPOSALS
from api.cli._common import bytes32_hex, devnet_index
from chain.deployment import DeploymentRecord
from chain.errors import ChainError
from chain.signers import DEVNET_ROLE_INDEX, LocalSigner, Role, Signer, devnet_account, is_production
from chain.signers import production_guard as guard
from chain.timelock import OperationState, describe_call
from chain.verification import CodeStatus, verify_record
from contracts.deploy_config import DeployConfigError
from contracts.governance.catalog import CatalogError
from contracts.governance.service import (
    CHAIN_FAILURES,
    CallsFor,
    ChainProposal,
    Execution,
    ExecutionStatus,
    GovernanceError,
    GovernedChain,
    describe_calls,
    dry_run,
    failure,
    fork_dry_run,
    load_proposals,
    load_signatures,
    prepare,
    save_proposals,
    save_signatures,
    sign_proposals,
)
from store.unreadable import UnreadableRow


def _signer(args: argparse.Namespace, default_index: int | None) -> Signer:
    if getattr(args, "key_env", None):
        key = (os.environ.get(args.key_env) or "").strip()
        if not key:
            raise SystemExit(f"environment variable {args.key_env} holds no private key")
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", key):  # 63 digits signed as another account; never shown
            raise SystemExit(f"environment variable {args.key_env} holds no private key: 64 hex digits, 0x or not")
        return LocalSigner.from_key(key)
    index = args.account if getattr(args, "account", None) is not None else default_index
    if index is None:
        raise SystemExit("say whose key: --account N (devnet) or --key-env VAR")
    return LocalSigner(devnet_account(index))


def _say(chain: str, message: str) -> None:
    print(f"[{chain}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------- commands


def cmd_deploy(args: argparse.Namespace) -> None:
    """Every chain's configuration checked first (production's guards; on a chain already deployed, its role holders
    against the deployed contracts': a re-run changes none), then each chain deployed or finished."""
    from contracts.deploy import deploy_from_config
    from contracts.deploy_config import DEVNET_CONFIG, load_deploy_config, production_delay_refusal
    from contracts.deploy_roles import RoleHoldersDiffer, role_differences

    settings = admin_settings(args)
    if args.config is None and is_production(settings.environment):
        raise SystemExit(
            "a production deploy needs --config FILE: the production profile's per-chain addresses and keys "
            "(contracts/config/production.example.toml); the default is the devnet profile, with mocks"
        )
    configs = chosen_chains(args, settings)
    production_guard_chains(settings, configs)
    deployer = _signer(args, DEVNET_ROLE_INDEX[Role.DEPLOYER])
    planned, differing = [], []
    for config in configs:
        chain_config = load_deploy_config(
            args.config or DEVNET_CONFIG, config.name, require_chain=args.config is not None
        )
        guard(environment=settings.environment, role_holders={"deployer": deployer.address, **chain_config.holders()})
        refusal = production_delay_refusal(config.name, chain_config) if is_production(settings.environment) else None
        if refusal is not None:
            raise SystemExit(refusal)
        path = settings.resolved_deployments_dir / f"{config.name}.json"
        w3 = Web3(Web3.HTTPProvider(config.rpc_urls[0], request_kwargs={"timeout": 30}))
        if path.exists():
            for difference in role_differences(w3, DeploymentRecord.load(path), chain_config):
                _say(config.name, f"DIFFERS {difference}")
                differing.append(f"{config.name}: {difference.what}")
        planned.append((config, chain_config, path, w3))
    if differing:
        raise RoleHoldersDiffer(
            f"the configuration's role holders differ from the deployed contracts' ({'; '.join(differing)}): a re-run "
            "of deploy changes no role holder, nothing was sent; change them through governance (each difference "
            "above says how), then write the new holders into the configuration"
        )
    mismatches = 0
    for config, chain_config, path, w3 in planned:
        _say(config.name, f"deploying the {chain_config.profile} profile to {config.rpc_urls[0]} (record {path})")
        sent_before = w3.eth.get_transaction_count(deployer.address)
        record = deploy_from_config(config.name, config.chain_id, config.rpc_urls[0], chain_config, deployer, path)
        sent = w3.eth.get_transaction_count(deployer.address) - sent_before
        _say(config.name, "nothing to send: already deployed" if sent == 0 else f"{sent} transaction(s) sent")
        mismatches += _report_checks(config.name, w3, record)
    if mismatches:
        raise SystemExit(f"{mismatches} contract(s) do not match their artifacts")


def cmd_verify(args: argparse.Namespace) -> None:
    with governing(args) as governance:
        mismatches = sum(_report_checks(c.name, c.w3, c.record) for c in governance.chains.values())
        if mismatches:
            raise SystemExit(f"{mismatches} contract(s) do not match their artifacts")


def _report_checks(chain: str, w3: Web3, record: DeploymentRecord) -> int:
    checks = verify_record(w3, record)
    bad = [check for check in checks if check.status is not CodeStatus.VERIFIED]
    for check in bad:
        _say(chain, f"MISMATCH {check}")
    _say(chain, f"bytecode verified for {len(checks) - len(bad)} of {len(checks)} contracts")
    return len(bad)


def cmd_propose(args: argparse.Namespace) -> None:
    if args.fork and not args.dry_run:  # it was ignored, and the proposal made for real
        raise SystemExit("--fork goes with --dry-run only (it runs the dry run on a local fork): nothing was proposed")
    _refuse_unwritten_out(args, "proposal", "nothing was proposed")
    with governing(args) as governance:
        chains = list(governance.chains.values())
        calls_for: CallsFor = args.build(args)
        if args.dry_run:
            for chain in chains:
                lines = fork_dry_run(chain, calls_for(chain)) if args.fork else dry_run(chain, calls_for(chain))
                for line in lines:
                    _say(chain.name, f"{line.call}: {line.before} -> {line.after}")
            return
        salt = bytes.fromhex(args.salt[2:]) if args.salt else secrets.token_bytes(32)
        proposals = prepare(chains, calls_for, via_safe=args.via == "safe", salt=salt)
        for proposal in proposals:
            _say(proposal.chain_name, f"operation {proposal.operation_id} (delay {proposal.delay} s)")
            for call in proposal.calls:
                _say(proposal.chain_name, f"  {call}")
        if args.via == "safe":
            out = args.out or Path(".creditmesh/proposals") / f"proposal-{salt.hex()[:12]}.json"
            save_proposals(out, proposals)
            for proposal in proposals:
                assert proposal.safe_tx is not None
                _say(
                    proposal.chain_name,
                    f"SafeTx {proposal.safe_tx.safe_tx_hash.hex()} (Safe nonce {proposal.safe_tx.nonce})",
                )
            print(f"proposal written to {out}: owners sign it with `creditmesh admin sign {out} …`", flush=True)
            return
        with _each_sent(proposals, "schedule"):
            governance.schedule_directly(proposals, _signer(args, DEVNET_ROLE_INDEX[Role.DEPLOYER]))
        for proposal in proposals:
            _say(proposal.chain_name, f"scheduled {proposal.operation_id}: tx {proposal.tx_hashes['schedule']}")


@contextmanager
def _each_sent(proposals: list[ChainProposal], action: str | None = None) -> Iterator[None]:
    """On a refusal part-way (one chain reverting, or not answering), say which chains' transactions were sent before
    it and which were not, before the refusal itself: the sent ones stay scheduled or cancelled there."""
    try:
        yield
    except Exception:
        for proposal in proposals:
            tx_hash = proposal.tx_hashes.get(action or proposal.action)
            sent = f"{action or proposal.action} sent: tx {tx_hash}" if tx_hash else "nothing sent"
            _say(proposal.chain_name, f"{proposal.operation_id}: {sent}")
        raise


def cmd_sign(args: argparse.Namespace) -> None:
    owner = _signer(args, None)
    proposals = load_proposals(args.proposal)
    records = _local_records(args, [proposal.chain_name for proposal in proposals])
    signatures = sign_proposals(proposals, owner, records)
    out = args.out or args.proposal.with_name(f"{args.proposal.stem}.{owner.address}.sig.json")
    save_signatures(out, signatures)
    for proposal, signed in zip(proposals, signatures, strict=True):
        transaction = signed.transaction
        _say(
            proposal.chain_name,
            f"{owner.address} signed SafeTx {transaction.safe_tx_hash.hex()} (Safe {transaction.safe}, nonce "
            f"{transaction.nonce}): {describe_call(transaction.data)} on Timelock {transaction.to}, calling:",
        )
        for call in describe_calls(proposal, records.get(proposal.chain_name)):
            _say(proposal.chain_name, f"    {call}")
    print(f"signatures written to {out}", flush=True)


def _local_records(args: argparse.Namespace, chains: list[str]) -> dict[str, DeploymentRecord]:
    """The deployments records at hand for ``chains`` (signing is off-line: an owner may have none)."""
    directory = admin_settings(args).resolved_deployments_dir
    paths = {chain: directory / f"{chain}.json" for chain in chains}
    return {chain: DeploymentRecord.load(path) for chain, path in paths.items() if path.exists()}


def cmd_submit(args: argparse.Namespace) -> None:
    """Every chain's SafeTx of the file; with ``--chains`` naming some chains, only theirs (the others' are left for
    another submit, each said). A chain of the file the chains file does not know is refused with ``all``."""
    with governing(args) as governance:
        proposals = load_proposals(args.proposal)
        if args.chains != "all":
            for proposal in proposals:
                if proposal.chain_name not in governance.chains:
                    _say(proposal.chain_name, "not submitted: not among --chains")
            proposals = [proposal for proposal in proposals if proposal.chain_name in governance.chains]
            if not proposals:
                raise GovernanceError(f"{args.proposal} has no proposal for --chains {args.chains}: nothing was sent")
        signatures = [signature for path in args.signatures for signature in load_signatures(path)]
        with _each_sent(proposals):
            governance.submit(proposals, signatures, _signer(args, DEVNET_ROLE_INDEX[Role.DEPLOYER]))
        for proposal in proposals:
            tx_hash = proposal.tx_hashes[proposal.action]
            if proposal.action == "cancel":
                _say(proposal.chain_name, f"Safe cancelled {proposal.operation_id}: tx {tx_hash}")
            else:
                after = f"(executable after {proposal.delay} s)"
                _say(proposal.chain_name, f"Safe scheduled {proposal.operation_id}: tx {tx_hash} {after}")


def cmd_list(args: argparse.Namespace) -> None:
    with governing(args) as governance:
        for name, chain in governance.chains.items():
            operations = governance.operations(name)
            shown = [op for op in operations if args.state is None or op.state.value == args.state]
            _say(name, f"{len(shown)} operation(s)")
            for scheduled in shown:
                ready = f" ready at {scheduled.ready_at}" if scheduled.state is OperationState.PENDING else ""
                _say(name, f"0x{scheduled.operation_id.hex()} {scheduled.state.value}{ready}")
                for call in scheduled.operation.calls:
                    _say(name, f"    {chain.describe(call)}")


def _operations(args: argparse.Namespace, chains: Iterable[str]) -> list[tuple[str, str]]:
    """(chain, operation id) on each of ``chains``: the proposal file's, or the one id given."""
    if args.proposal is not None:
        return [(p.chain_name, p.operation_id) for p in load_proposals(args.proposal) if p.chain_name in chains]
    if args.operation_id is None:
        raise SystemExit("give an operation id or --proposal FILE")
    return [(name, args.operation_id) for name in chains]


def cmd_execute(args: argparse.Namespace) -> None:
    """Each chain's operation executed where it is ready, whatever the others say: an id given is looked for on every
    chain of ``--chains`` (it is scheduled on some only, or ready on one and pending on another); each chain's
    outcome is said, then which chains have the operation. Non-zero exit when it executed on no chain, or failed on
    one (reverted, or the RPC failed)."""
    with governing(args) as governance:
        sender = _signer(args, DEVNET_ROLE_INDEX[Role.DEPLOYER])
        executions = []
        for chain, operation_id in _operations(args, governance.chains):
            execution = governance.try_execute(chain, operation_id, sender)
            executions.append(execution)
            _say(chain, _executed(execution))
    _report_executions(executions, by_id=args.proposal is None)


def _executed(execution: Execution) -> str:
    if execution.status is ExecutionStatus.EXECUTED:
        return f"executed {execution.operation_id}: tx {execution.detail}"
    if execution.status is ExecutionStatus.FAILED:
        return f"execute FAILED: {execution.detail}"
    return f"{execution.status.value}: {execution.detail}"


def _report_executions(executions: list[Execution], *, by_id: bool) -> None:
    """Say which chains have the operation (scheduled, in whatever state) and where it executed; refuse (exit 1) when
    it failed on a chain or executed on none."""
    found = [e.chain for e in executions if e.status is not ExecutionStatus.NOT_FOUND]
    missing = [e.chain for e in executions if e.status is ExecutionStatus.NOT_FOUND]
    executed = [e.chain for e in executions if e.status is ExecutionStatus.EXECUTED]
    failed = [e for e in executions if e.status is ExecutionStatus.FAILED]
    what = f"operation {executions[0].operation_id}" if by_id and executions else "the proposal's operations"
    where = f"scheduled on {', '.join(found) or 'no chain'}" + (f" (not on {', '.join(missing)})" if missing else "")
    print(f"{what}: {where}; executed on {', '.join(executed) or 'none'}", flush=True)
    if failed:
        reasons = "; ".join(f"{e.chain}: {e.detail}" for e in failed)
        raise GovernanceError(f"execute failed on {len(failed)} of {len(executions)} chain(s) ({reasons})")
    if not executed:
        reasons = "; ".join(f"{e.chain}: {e.status.value}: {e.detail}" for e in executions)
        raise GovernanceError(f"{what} executed on none of {len(executions)} chain(s) ({reasons})")


def _refuse_unwritten_out(args: argparse.Namespace, what: str, nothing_done: str) -> None:
    """Refuse ``--out`` where no file would be written (before 2026-11-29 it was ignored, silently): the Safe path
    alone writes one — the SafeTxs the owners sign — while ``--via key`` sends from the key and a dry run sends
    nothing; each prints its operation ids, which ``execute`` takes."""
    if args.out is None:
        return
    if args.via == "key":
        raise SystemExit(
            f"--out {args.out} is the {what} file of the Safe path (--via safe: the SafeTxs the owners sign); "
            f"--via key sends from the key and writes no file, and prints each chain's operation id (`creditmesh "
            f"admin execute 0x…` takes it): drop --out, or use --via safe; {nothing_done}"
        )
    if getattr(args, "dry_run", False):
        raise SystemExit(f"--out {args.out}: a dry run writes no {what} file; drop --out or --dry-run; {nothing_done}")


def cmd_cancel(args: argparse.Namespace) -> None:
    _refuse_unwritten_out(args, "cancellation", "nothing was cancelled")
    if args.via == "safe":
        _cancel_via_safe(args)
        return
    canceller = _signer(args, DEVNET_ROLE_INDEX[Role.DEPLOYER])
    connected = connect_all(args)
    with opened(args, connected) as governance:
        operations = dict(_operations(args, connected))

        def cancel(chain: str) -> None:
            _say(chain, f"cancelled {operations[chain]}: tx {governance.cancel(chain, operations[chain], canceller)}")

        _on_every_chain("cancel", {name: connected[name] for name in operations}, cancel)


def _cancel_via_safe(args: argparse.Namespace) -> None:
    with governing(args) as governance:
        proposals = [governance.prepare_cancel(chain, op) for chain, op in _operations(args, governance.chains)]
        out = args.out or Path(".creditmesh/proposals") / f"cancel-{secrets.token_hex(6)}.json"
        save_proposals(out, proposals)
        for proposal in proposals:
            _say(proposal.chain_name, f"SafeTx cancelling {proposal.operation_id} (Safe nonce {_nonce(proposal)})")
        print(f"cancellation written to {out}: owners sign it, then `creditmesh admin submit`", flush=True)


def _nonce(proposal: ChainProposal) -> int:
    assert proposal.safe_tx is not None
    return proposal.safe_tx.nonce


def cmd_pause(args: argparse.Namespace) -> None:
    guardian = _guardian(args)
    connected = connect_all(args)
    with opened(args, connected) as governance:

        def pause(chain: str) -> None:
            outcome = governance.pause(chain, guardian, liquidations=args.liquidations, reason=args.reason)
            for what, tx_hash in outcome.sent:
                _say(chain, f"{what}: tx {tx_hash}")
            if outcome.refused:
                raise GovernanceError("; ".join(f"{what}: {why}" for what, why in outcome.refused))
            if not outcome.sent:
                _say(chain, "already paused")

        _on_every_chain("pause", connected, pause)


def _on_every_chain(action: str, chains: dict[str, GovernedChain | ChainError], act: Callable[[str], None]) -> None:
    """An emergency action on every chain whatever happens on the others (one RPC down, or the key without its role
    on one chain, must not leave the rest undone), each chain's outcome said; then exit non-zero naming each chain
    that failed and why (a chain ``connect`` refused has failed already)."""
    failed = {}
    for chain, connected in chains.items():
        why = failure(chain, connected) if isinstance(connected, ChainError) else _attempt(chain, act)
        if why is not None:
            failed[chain] = why
            _say(chain, f"{action} FAILED: {why}")
    if failed:
        reasons = "; ".join(f"{chain}: {why}" for chain, why in failed.items())
        raise GovernanceError(f"{action} failed on {len(failed)} of {len(chains)} chain(s) ({reasons})")


def _attempt(chain: str, act: Callable[[str], None]) -> str | None:
    """Why ``act`` failed on ``chain``, or None when it did not."""
    try:
        act(chain)
    except CHAIN_FAILURES as err:
        return failure(chain, err)
    return None


def _guardian(args: argparse.Namespace) -> Signer:
    configured = AdminSettings().guardian_key
    if args.key_env is None and args.account is None and configured:
        return LocalSigner.from_key(configured)
    return _signer(args, DEVNET_ROLE_INDEX[Role.GUARDIAN])


# ---------------------------------------------------------------------------------------------- parser

EXECUTE_DESCRIPTION = (
    "Execute a ready operation (anyone may). OPERATION_ID is looked for on every chain of --chains: an operation's id "
    "differs per chain unless its targets' addresses do not, so it may be scheduled on some chains only, or be ready "
    "on one and pending on another. Each chain's outcome is said (executed, not found, not ready, FAILED), then which "
    "chains have the operation and where it executed. --proposal FILE executes each chain's own operation from the "
    "proposal file. Exit status 1 when it executed on no chain, or failed on one (reverted, or its RPC failed); "
    "0 when it executed somewhere and failed nowhere, even if other chains do not have it or it is not ready there."
)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", type=devnet_index, default=None, help="devnet account index of the key to use")
    parser.add_argument("--key-env", default=None, help="environment variable holding the private key to use")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    admin = commands.add_parser("admin", help="govern the contracts: timelock, Safe, guardian, roles, parameters")
    admin.add_argument("--chains", default="all", help="'all' or comma-separated chain names")
    admin.add_argument("--chains-file", type=Path, default=None)
    admin.add_argument("--deployments-dir", type=Path, default=None)
    admin.add_argument("--database-url", default=None)
    sub = admin.add_subparsers(dest="admin_command", required=True)

    deploy = sub.add_parser(
        "deploy", help="deploy a profile from its configuration file (idempotent: other role holders refused), verify"
    )
    deploy.add_argument(
        "--config",
        type=Path,
        default=None,
        help="per-chain TOML (default: the devnet profile's; required in production)",
    )
    _key_options(deploy)
    deploy.set_defaults(func=_run(cmd_deploy))
    sub.add_parser("verify", help="verify the runtime code at every recorded address").set_defaults(
        func=_run(cmd_verify)
    )

    propose = sub.add_parser(
        "propose", help="propose a timelock operation on each chain of --chains (default: every chain)"
    )
    kinds = propose.add_subparsers(dest="kind", required=True)
    for kind, (summary, arguments, build) in PROPOSALS.items():
        parser = kinds.add_parser(kind, help=summary)
        for name, options in arguments:
            parser.add_argument(name, **options)
        parser.add_argument("--via", choices=("safe", "key"), default="safe", help="schedule from the Safe or a key")
        parser.add_argument(
            "--out", type=Path, default=None, help="proposal file (--via safe only; refused with --via key, --dry-run)"
        )
        parser.add_argument(
            "--salt", type=bytes32_hex, default=None, help="0x and 64 hex digits, 32 bytes (default: random)"
        )
        parser.add_argument("--dry-run", action="store_true", help="simulate and show values before and after")
        parser.add_argument(
            "--fork",
            action="store_true",
            help="with --dry-run only: execute on a local anvil fork, read the values after",
        )
        _key_options(parser)
        parser.set_defaults(func=_run(cmd_propose), build=build)

    sign = sub.add_parser("sign", help="sign a proposal's Safe transactions as one owner (off-line)")
    sign.add_argument("proposal", type=Path)
    sign.add_argument("--out", type=Path, default=None)
    _key_options(sign)
    sign.set_defaults(func=_run(cmd_sign))

    submit = sub.add_parser("submit", help="execute a proposal's Safe transactions with M of N signatures")
    submit.add_argument("proposal", type=Path)
    submit.add_argument("signatures", type=Path, nargs="+")
    _key_options(submit)
    submit.set_defaults(func=_run(cmd_submit))

    listing = sub.add_parser("list", help="timelock operations with decoded calls")
    listing.add_argument("--state", choices=[s.value for s in OperationState if s is not OperationState.UNSET])
    listing.set_defaults(func=_run(cmd_list))

    for name, command, summary, description in (
        ("execute", cmd_execute, "execute an operation on every chain where it is ready", EXECUTE_DESCRIPTION),
        (
            "cancel",
            cmd_cancel,
            "cancel a pending operation (--via safe: a SafeTx for the owners, else a key)",
            None,
        ),
    ):
        parser = sub.add_parser(name, help=summary, description=description)
        if name == "cancel":
            parser.add_argument("--via", choices=("safe", "key"), default="key")
            parser.add_argument(
                "--out", type=Path, default=None, help="cancellation file (--via safe only; refused with --via key)"
            )
        parser.add_argument("operation_id", nargs="?", type=bytes32_hex, default=None, help="0x and 64 hex digits")
        parser.add_argument("--proposal", type=Path, default=None, help="every chain's operation in this file")
        _key_options(parser)
        parser.set_defaults(func=_run(command))

    pause = sub.add_parser("pause", help="guardian: pause at once (unpause only through the timelock)")
    pause.add_argument("--liquidations", action="store_true", help="pause liquidations only")
    pause.add_argument("--reason", default=None, help="why (kept with the governance action and in the audit log)")
    _key_options(pause)
    pause.set_defaults(func=_run(cmd_pause))


def _run(command: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Governance and chain errors, and an RPC's connection errors, end the command with their message in one line
    (exit status 1), not a traceback."""

    def run(args: argparse.Namespace) -> None:
        try:
            command(args)
        except (GovernanceError, CatalogError, ChainError, DeployConfigError, UnreadableRow) as err:
            print(f"refused: {err}", file=sys.stderr, flush=True)
            raise SystemExit(1) from err
        except (OSError, Web3Exception) as err:  # an RPC that stops answering (requests' errors are OSErrors)
            print(f"refused: {type(err).__name__}: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
            raise SystemExit(1) from err

    return run
