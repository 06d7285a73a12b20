"""``creditmesh admin deploy`` and ``verify`` on the devnets: a re-run sends nothing, a tampered address is reported,
and the ape front end verifies the chain of its network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
