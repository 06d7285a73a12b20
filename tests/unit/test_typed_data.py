"""The Python EIP-712 types: signing round-trips and every field is bound by the signature."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from contracts.typed_data import (
    ZERO_ADDRESS,
    Acceptance,
    Domain,
    Offer,
    Permit,
    Repayment,
    RiskAttestation,
    TokenDomain,
    acceptance_typed_data,
    digest,
    offer_typed_data,
    permit_abi_tuple,
    permit_typed_data,
    recover,
    repayment_typed_data,
    risk_attestation_typed_data,
    sign,
)

pytestmark = pytest.mark.unit

SIGNER = Account.from_key(keccak(b"quote signer"))
BORROWER = Account.from_key(keccak(b"borrower"))
DOMAIN = Domain(chain_id=31337, verifying_contract=Account.from_key(keccak(b"contract")).address)


def _offer(**changes: object) -> Offer:
    offer = Offer(
        providerId=keccak(b"provider"),
        pool=ZERO_ADDRESS,
        borrower=BORROWER.address,
        asset=SIGNER.address,
        principal=1_500_000_000,
        rateBps=875,
        term=30 * 86_400,
        originationFee=15_000_000,
        collateralAsset=BORROWER.address,
        collateralAmount=10**18,
        chainId=31337,
        termsHash=keccak(b"disclosure"),
        expiry=2_000_000_000,
        nonce=7,
    )
    return dataclasses.replace(offer, **changes)  # type: ignore[arg-type]


def test_offer_signature_recovers_signer() -> None:
    typed = offer_typed_data(DOMAIN, _offer())
    assert recover(typed, sign(typed, SIGNER.key)) == SIGNER.address


@pytest.mark.parametrize(
    "change",
    [{"principal": 1_500_000_001}, {"rateBps": 874}, {"chainId": 31338}, {"termsHash": keccak(b"other")}, {"nonce": 8}],
)
def test_every_offer_field_changes_the_digest(change: dict[str, object]) -> None:
    assert digest(offer_typed_data(DOMAIN, _offer(**change))) != digest(offer_typed_data(DOMAIN, _offer()))


def test_domain_binds_chain_and_contract() -> None:
    other_chain = Domain(chain_id=31338, verifying_contract=DOMAIN.verifying_contract)
    assert digest(offer_typed_data(other_chain, _offer())) != digest(offer_typed_data(DOMAIN, _offer()))


def test_acceptance_nests_the_offer() -> None:
    typed = acceptance_typed_data(DOMAIN, Acceptance(offer=_offer(), deadline=1_900_000_000))
    signature = sign(typed, BORROWER.key)
    assert recover(typed, signature) == BORROWER.address
    tampered = acceptance_typed_data(DOMAIN, Acceptance(offer=_offer(rateBps=1), deadline=1_900_000_000))
    assert recover(tampered, signature) != BORROWER.address


def test_risk_attestation_round_trip() -> None:
    attestation = RiskAttestation(
        borrower=BORROWER.address,
        grade=2,
        maxLtvBps=6_500,
        expiry=2_000_000_000,
        decisionHash=keccak(b"d"),
        nonce=2**64 + 7,
    )
    typed = risk_attestation_typed_data(DOMAIN, attestation)
    signature = sign(typed, SIGNER.key)
    assert recover(typed, signature) == SIGNER.address
    # The nonce is signed: the attestation cannot be moved to another offer.
    other_offer = risk_attestation_typed_data(DOMAIN, dataclasses.replace(attestation, nonce=2**64 + 8))
    assert recover(other_offer, signature) != SIGNER.address


def test_a_repayment_binds_loan_amount_nonce_and_deadline() -> None:
    repayment = Repayment(loanId=3, amount=100_000_000, nonce=2**64, deadline=2_000_000_000)
    typed = repayment_typed_data(DOMAIN, repayment)
    signature = sign(typed, BORROWER.key)
    assert recover(typed, signature) == BORROWER.address
    for change in ({"loanId": 4}, {"amount": 100_000_001}, {"nonce": 2**64 + 1}, {"deadline": 2_000_000_001}):
        other = repayment_typed_data(DOMAIN, dataclasses.replace(repayment, **change))
        assert recover(other, signature) != BORROWER.address
    other_chain = Domain(chain_id=31338, verifying_contract=DOMAIN.verifying_contract)
    assert digest(repayment_typed_data(other_chain, repayment)) != digest(typed)


def test_a_permit_is_signed_under_the_tokens_domain() -> None:
    token = TokenDomain("USD Coin", "1", 31337, SIGNER.address)
    permit = Permit(BORROWER.address, DOMAIN.verifying_contract, 10**8, 0, 2_000_000_000)
    signature = sign(permit_typed_data(token, permit), BORROWER.key)
    assert recover(permit_typed_data(token, permit), signature) == BORROWER.address
    renamed = TokenDomain("Other", "1", 31337, SIGNER.address)
    assert recover(permit_typed_data(renamed, permit), signature) != BORROWER.address
    value, deadline, v, r, s = permit_abi_tuple(permit, signature)
    assert (value, deadline, v, r + s) == (10**8, 2_000_000_000, signature[64], signature[:64])


def test_messages_are_the_structs_fields_in_order_as_asdict_gave_them() -> None:
    attestation = RiskAttestation(BORROWER.address, 2, 6_500, 2_000_000_000, keccak(b"d"), 7)
    permit = Permit(BORROWER.address, SIGNER.address, 1, 2, 3)
    for struct in (_offer(), attestation, Repayment(3, 100, 2**64, 2_000_000_000), permit):
        assert list(struct.as_message().items()) == list(dataclasses.asdict(struct).items())
    acceptance = Acceptance(_offer(), 1_900_000_000)
    assert list(acceptance.as_message()["offer"].items()) == list(dataclasses.asdict(acceptance)["offer"].items())
