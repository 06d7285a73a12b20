"""``creditmesh admin deploy`` and ``verify`` on the devnets: a re-run sends nothing, a tampered address is reported,
and the ape front end verifies the chain of its network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chain.signers import devnet_account
from contracts.deploy_config import DEVNET_CONFIG, RolesConfig
from contracts.deploy_roles import GRANTS, ROLES
from tests.contracts.harness import DEPLOYER
from tests.integration.governance.support import Admin

pytestmark = pytest.mark.integration


def test_redeploy_sends_nothing_and_verify_reports_a_tampered_address(admin: Admin) -> None:
    out = admin("deploy")
    assert out.count("nothing to send: already deployed") == 3
    assert len(re.findall(r"bytecode verified for (\d+) of \1 contracts", out)) == 3

    chain = admin.chains["polygon-local"]
    pool = chain.record.address("LendingPool:USDC")
    weth_code = chain.w3.eth.get_code(chain.record.address("WETH")).to_0x_hex()
    chain.w3.provider.make_request("anvil_setCode", [pool, weth_code])  # type: ignore[arg-type]
    with pytest.raises(SystemExit, match="1 contract"):
        admin("verify")
    out = admin.capsys.readouterr().out
    assert f"[polygon-local] MISMATCH LendingPool:USDC       {pool}" in out


@pytest.mark.slow  # ape's start-up (plugins, project) takes ~30 s on these shared machines: out of the default run
def test_ape_run_governance_verifies_the_chain_of_its_network(admin: Admin) -> None:
    chain = admin.chains["polygon-local"]
    env = os.environ | {
        "CREDITMESH_CHAINS_FILE": str(admin.tmp / "chains.json"),
        "CREDITMESH_DEPLOYMENTS_DIR": str(admin.tmp / "deployments"),
        "CREDITMESH_DATABASE_URL": f"sqlite:///{admin.tmp / 'admin.db'}",
    }
    network = f"ethereum:polygon-local:{chain.devnet.rpc_url}"
    ape = Path(sys.executable).parent / "ape"
    run = subprocess.run(
        [str(ape), "run", "governance", "--network", network, "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"\[polygon-local\] bytecode verified for (\d+) of \1 contracts", run.stdout)
    assert "ethereum-local" not in run.stdout


def _config(admin: Admin, replacements: dict[str, str]) -> Path:
    """The devnet profile's configuration file with each text replaced."""
    text = DEVNET_CONFIG.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = admin.tmp / "deploy.toml"
    path.write_text(text)
    return path


def test_a_redeploy_naming_other_role_holders_is_refused_naming_each_difference(admin: Admin) -> None:
    """Another guardian, other Safe owners and threshold, and no extra proposer than the deployment: `deploy` said
    "already deployed" and changed nothing, silently. It refuses before sending anything, naming each difference per
    chain and how governance makes it; once governance has rotated the guardian, that configuration re-runs as a
    no-op."""
    guardian, new_guardian, owner = (devnet_account(i).address for i in (5, 16, 18))
    config = _config(
        admin,
        {
            'guardian = "devnet:5"': 'guardian = "devnet:16"',
            '"devnet:14"]': '"devnet:18"]',
            "threshold = 2": "threshold = 3",
            'extra_proposers = ["devnet:0"]': "extra_proposers = []",
        },
    )
    sent = {name: chain.w3.eth.get_transaction_count(DEPLOYER.address) for name, chain in admin.chains.items()}

    with pytest.raises(SystemExit) as refused:
        admin("deploy", "--config", str(config))
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    (line,) = out.err.splitlines()
    assert line.startswith("refused: the configuration's role holders differ from the deployed contracts' (")
    assert "nothing was sent; change them through governance" in line
    for name, chain in admin.chains.items():
        safe = chain.record.address("Safe")
        assert (
            f"{name}: guardian: {new_guardian} does not hold GUARDIAN_ROLE on CreditAggregator, CollateralManager, "
            f"LendingPool:USDC (held by {guardian})"
        ) in line
        assert f"{name}: Timelock: {DEPLOYER.address} is a proposer the configuration does not list" in line
        unlisted = devnet_account(14).address
        assert f"{name}: Safe {safe}: {owner} (in the configuration) not an owner and {unlisted} an owner the " in line
        assert f"{name}: Safe {safe}: its threshold is 2, the configuration's 3" in line
        assert (
            f"(change it through governance: `creditmesh admin propose rotate guardian {guardian} {new_guardian}`)"
            in out.out
        )
        assert "(change it through governance: a transaction of the Safe's owners (addOwnerWithThreshold" in out.out
    assert "deploying" not in out.out
    assert {name: c.w3.eth.get_transaction_count(DEPLOYER.address) for name, c in admin.chains.items()} == sent

    # the guardian rotated through the Timelock on every chain: a configuration naming the new one is no difference
    proposed = admin("propose", "rotate", "guardian", guardian, new_guardian, "--via", "key")
    admin.advance(3)
    for name, operation_id in re.findall(r"\[(\S+)\] scheduled (0x[0-9a-f]{64})", proposed):
        admin("--chains", name, "execute", operation_id)
    rotated = _config(admin, {'guardian = "devnet:5"': 'guardian = "devnet:16"'})
    sent = {name: chain.w3.eth.get_transaction_count(DEPLOYER.address) for name, chain in admin.chains.items()}
    assert admin("deploy", "--config", str(rotated)).count("nothing to send: already deployed") == 3
    assert {name: c.w3.eth.get_transaction_count(DEPLOYER.address) for name, c in admin.chains.items()} == sent


def test_the_role_checks_cover_every_grant_step_of_the_deployment(admin: Admin) -> None:
    """contracts/deploy_roles.py checks a role only once the deployment's step granting it is recorded: a step renamed
    in contracts/deploy.py would leave its role unchecked, silently."""
    for chain in admin.chains.values():
        assert {step for _, _, step in GRANTS if step is not None} <= set(chain.record.steps)
        assert {key for _, key, _ in GRANTS} <= set(chain.record.contracts)
        assert set(ROLES) == set(RolesConfig.model_fields) - {"extra_proposers", "keeper"}
