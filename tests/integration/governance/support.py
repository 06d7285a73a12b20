"""The admin CLI on the session's devnets, as the governance tests drive it: ``Admin`` runs ``creditmesh admin …``
against a chains file and deployments records of the test's own and reads what it recorded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from web3.types import RPCEndpoint

from api.bootstrap import write_chains_file
from api.cli import main
from chain.signers import LocalSigner, devnet_account
from store.governance import GovernanceActionRow, GovernanceProposalRow
from tests.contracts.harness import Harness
from tests.support.devnet import DeployedChain

GUARDIAN = LocalSigner(devnet_account(5))
NEW_QUOTE_SIGNER = devnet_account(15).address


@dataclass
class Admin:
    chains: dict[str, DeployedChain]
    tmp: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> str:
        """Run ``creditmesh admin …`` on every devnet; its output (stdout and stderr)."""
        self.capsys.readouterr()
        main(
            [
                "admin",
                "--chains-file",
                str(self.tmp / "chains.json"),
                "--deployments-dir",
                str(self.tmp / "deployments"),
                "--database-url",
                f"sqlite:///{self.tmp / 'admin.db'}",
                *argv,
            ]
        )
        out = self.capsys.readouterr()
        return out.out + out.err

    def refused(self, *argv: str) -> str:
        """Run a command that must be refused (exit status 1); its message."""
        with pytest.raises(SystemExit) as exit_info:
            self(*argv)
        assert exit_info.value.code == 1
        return self.capsys.readouterr().err

    def advance(self, seconds: int) -> None:
        for chain in self.chains.values():
            Harness(chain).advance(seconds)

    def hold_pending(self, name: str, delay: int = 3_600) -> None:
        """Chain ``name``'s Timelock takes ``delay`` seconds from now on (its own ``updateDelay``, impersonated; the
        chain is reverted after the test): an operation scheduled there stays pending however long the commands take.
        With the devnets' 2 s, a test that expects one pending fails when a loaded machine's commands take longer."""
        chain = self.chains[name]
        timelock = chain.record.address("Timelock")
        chain.w3.provider.make_request(RPCEndpoint("anvil_impersonateAccount"), [timelock])
        chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [timelock, hex(10**18)])
        chain.w3.eth.wait_for_transaction_receipt(
            chain.contract("Timelock").functions.updateDelay(delay).transact({"from": timelock})
        )
        chain.w3.provider.make_request(RPCEndpoint("anvil_stopImpersonatingAccount"), [timelock])

    def rows(self) -> list[GovernanceProposalRow]:
        engine = create_engine(f"sqlite:///{self.tmp / 'admin.db'}")
        try:
            with Session(engine) as session:
                return list(session.scalars(select(GovernanceProposalRow).order_by(GovernanceProposalRow.id)))
        finally:
            engine.dispose()

    def actions(self) -> list[GovernanceActionRow]:
        """The guardian's recorded actions (pauses); none before the first admin command made the database."""
        if not (self.tmp / "admin.db").exists():
            return []
        engine = create_engine(f"sqlite:///{self.tmp / 'admin.db'}")
        try:
            with Session(engine) as session:
                return list(session.scalars(select(GovernanceActionRow).order_by(GovernanceActionRow.id)))
        finally:
            engine.dispose()

    def point(self, name: str, rpc_url: str) -> None:
        """Give chain ``name`` another RPC URL in the chains file."""
        configs = [c.config for c in self.chains.values()]
        moved = [c.model_copy(update={"rpc_urls": [rpc_url]}) if c.name == name else c for c in configs]
        write_chains_file(self.tmp / "chains.json", moved)


def grace_period(chain: DeployedChain) -> int:
    return int(chain.contract("CreditAggregator").functions.gracePeriod().call())


def aggregator_paused(chain: DeployedChain) -> bool:
    return bool(chain.contract("CreditAggregator").functions.paused().call())
