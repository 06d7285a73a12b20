"""An attestation signed here is accepted by the CreditScoringOracle on a devnet; tampered or expired ones are not."""

from __future__ import annotations

import dataclasses

import pytest
from web3.exceptions import ContractCustomError

from chain.revert import decode_revert
from chain.signers import Role, devnet_account, devnet_signer
from contracts.typed_data import Domain
from risk.attestation import attest
from risk.policy import assess
from tests.support.devnet import DeployedChain
from tests.unit.risk.test_policy import REQUEST, STRONG

pytestmark = pytest.mark.integration


def test_oracle_accepts_ours_and_rejects_tampered_or_expired(ethereum_local: DeployedChain) -> None:
    chain = ethereum_local
    oracle = chain.contract("CreditScoringOracle")
    domain = Domain(chain.chain_id, chain.record.address("CreditScoringOracle"))
    risk_key = devnet_account(3).key
    assert devnet_signer(Role.RISK_SIGNER).address == devnet_account(3).address
    now = chain.w3.eth.get_block("latest")["timestamp"]
    borrower = devnet_account(6).address
    decision = assess(STRONG, REQUEST, None)

    attestation, signature = attest(decision, borrower, domain, risk_key, expiry=now + 600, nonce=1)
    oracle.functions.validateAttestation(attestation.as_abi_tuple(), signature).call()

    tampered = dataclasses.replace(attestation, maxLtvBps=9_500)
    with pytest.raises(ContractCustomError) as bad_signer:
        oracle.functions.validateAttestation(tampered.as_abi_tuple(), signature).call()
    assert "InvalidAttestationSigner" in str(decode_revert(bad_signer.value.data))

    _, stranger_sig = attest(decision, borrower, domain, devnet_account(7).key, expiry=now + 600, nonce=1)
    with pytest.raises(ContractCustomError):
        oracle.functions.validateAttestation(attestation.as_abi_tuple(), stranger_sig).call()

    expired, expired_sig = attest(decision, borrower, domain, risk_key, expiry=now - 1, nonce=1)
    with pytest.raises(ContractCustomError) as too_late:
        oracle.functions.validateAttestation(expired.as_abi_tuple(), expired_sig).call()
    assert "AttestationExpired" in str(decode_revert(too_late.value.data))
