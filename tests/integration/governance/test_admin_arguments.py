"""What ``creditmesh admin`` makes of its arguments: a settlement address proposed from a key, operation ids and
salts that are not 32 bytes of hex, ``--fork`` without ``--dry-run``, and a proposal file submitted on some of its
chains."""

from __future__ import annotations

import re

import pytest
from eth_utils.crypto import keccak

from chain.signers import devnet_account
from contracts.governance.service import Governance, GovernanceError, GovernedChain
from tests.integration.governance.support import Admin

pytestmark = pytest.mark.integration


def test_a_settlement_address_is_proposed_from_a_key(admin: Admin) -> None:
    """The positional account and the key's --account shared one dest: `--via key` crashed (the settlement account
    taken for a devnet index, or the key's index for the settlement account)."""
    chain = admin.chains["ethereum-local"]
    settlement = devnet_account(17).address

    propose = ("--chains", chain.name, "propose", "settlement-address", "sim-bank", settlement, "--via", "key")

    out = admin(*propose)
    with_key = admin(*propose, "--account", "0")

    provider = "0x" + keccak(text="sim-bank").hex()
    for proposed in (out, with_key):
        assert f"CreditAggregator.setSettlementAddress(providerId={provider}, account={settlement})" in proposed
        assert re.search(r"scheduled 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", proposed)
    assert [row.proposer for row in admin.rows()] == [devnet_account(0).address] * 2


@pytest.mark.parametrize("operation_id", ["latest", "0x3f…", "0x" + "zz" * 32, "ab" * 32])
def test_an_operation_id_that_is_not_32_bytes_of_hex_is_refused_not_a_traceback(
    admin: Admin, operation_id: str
) -> None:
    """The parser refuses it on the command line; Governance.find refuses it too (a GovernanceError the command
    ends with in one line) rather than bytes.fromhex's ValueError."""
    chain = admin.chains["ethereum-local"]
    with pytest.raises(SystemExit) as parsed:
        admin("--chains", chain.name, "execute", operation_id)
    assert parsed.value.code == 2
    assert "is not 32 bytes of hex: 0x and 64 hex digits" in admin.capsys.readouterr().err
    governed = GovernedChain(chain.name, chain.w3, chain.record)
    with Governance([governed]) as governance, pytest.raises(GovernanceError, match="is not an operation id"):
        governance.find(governed, operation_id)
