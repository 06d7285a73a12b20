"""What ``creditmesh admin`` makes of its arguments: a settlement address proposed from a key, operation ids and
salts that are not 32 bytes of hex, ``--fork`` without ``--dry-run``, and a proposal file submitted on some of its
chains."""

from __future__ import annotations

import re

import pytest
from eth_utils.crypto import keccak

from chain.signers import devnet_account
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
