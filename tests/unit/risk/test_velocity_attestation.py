"""Velocity rules stop what they should (in memory), and attestations recover to the risk signer."""

from __future__ import annotations

from decimal import Decimal

import pytest
import rfc8785
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from contracts.typed_data import Domain
from risk.attestation import AttestationRefused, attest, attestation_signer
from risk.errors import VelocityLimitExceeded
from risk.policy import assess
from risk.profile import CreditProfile, CreditRequestFacts
from risk.velocity import InMemoryVelocityStore, VelocityLimits, check_velocity, velocity_reason_code
from tests.unit.risk.test_policy import REQUEST, STRONG

pytestmark = pytest.mark.unit

LIMITS = VelocityLimits(window_seconds=60, per_borrower=3, per_wallet=3, per_ip=4)
WALLET = "0x" + "ab" * 20


async def test_per_borrower_limit_stops_the_fourth_request_in_the_window() -> None:
    store = InMemoryVelocityStore()
    for i in range(3):
        await check_velocity(store, LIMITS, borrower_id="b1", wallet=None, ip=None, now=1000.0 + i)
    with pytest.raises(VelocityLimitExceeded) as stopped:
        await check_velocity(store, LIMITS, borrower_id="b1", wallet=None, ip=None, now=1003.0)
    assert stopped.value.rule == "borrower"
    assert velocity_reason_code(stopped.value) == "R50"
    # the window slides: a minute after the first burst the borrower may ask again
    await check_velocity(store, LIMITS, borrower_id="b1", wallet=None, ip=None, now=1064.0)


async def test_ip_limit_spans_borrowers() -> None:
    store = InMemoryVelocityStore()
    for i in range(4):
        await check_velocity(store, LIMITS, borrower_id=f"b{i}", wallet=None, ip="10.0.0.7", now=1000.0)
    with pytest.raises(VelocityLimitExceeded) as stopped:
        await check_velocity(store, LIMITS, borrower_id="b9", wallet=None, ip="10.0.0.7", now=1001.0)
    assert stopped.value.rule == "ip"


async def test_one_wallet_claimed_by_two_identities_is_stopped() -> None:
    store = InMemoryVelocityStore()
    await check_velocity(store, LIMITS, borrower_id="alice", wallet=WALLET, ip=None, now=1.0)
    await check_velocity(
        store, LIMITS, borrower_id="alice", wallet=WALLET.upper().replace("0X", "0x"), ip=None, now=2.0
    )
    with pytest.raises(VelocityLimitExceeded) as stopped:
        await check_velocity(store, LIMITS, borrower_id="mallory", wallet=WALLET, ip=None, now=3.0)
    assert stopped.value.rule == "wallet_identities"
    assert velocity_reason_code(stopped.value) == "R51"


RISK_SIGNER = Account.from_key("0x" + "11" * 32)
DOMAIN = Domain(31337, to_checksum_address("0x" + "22" * 20))


def test_attestation_carries_the_decision_and_recovers_to_the_signer() -> None:
    decision = assess(STRONG, REQUEST, None)
    attestation, signature = attest(decision, WALLET, DOMAIN, RISK_SIGNER.key, expiry=2_000_000_000, nonce=42)
    assert attestation.grade == decision.grade
    assert attestation.maxLtvBps == decision.max_ltv_bps
    assert attestation.decisionHash == decision.decision_hash()
    assert attestation.borrower == to_checksum_address(WALLET)
    assert attestation.nonce == 42
    assert len(signature) == 65
    assert attestation_signer(DOMAIN, attestation, signature) == RISK_SIGNER.address
    other_domain = Domain(31338, DOMAIN.verifying_contract)
    assert attestation_signer(other_domain, attestation, signature) != RISK_SIGNER.address


def test_declined_decision_is_not_attested() -> None:
    declined = assess(
        CreditProfile(), CreditRequestFacts(amount=Decimal(1), asset="USDC", term_days=30, purpose="x"), None
    )
    assert not declined.approved
    with pytest.raises(AttestationRefused):
        attest(declined, WALLET, DOMAIN, RISK_SIGNER.key, expiry=2_000_000_000, nonce=42)


def test_the_decision_hash_is_computed_once_and_a_changed_copy_hashes_again() -> None:
    decision = assess(STRONG, REQUEST, None)
    fresh = keccak(rfc8785.dumps(decision.model_dump(mode="json")))
    assert decision.decision_hash() == fresh
    assert decision.decision_hash() is decision.decision_hash(), "kept, not hashed again"
    declined = decision.model_copy(update={"approved": False})
    assert declined.decision_hash() == keccak(rfc8785.dumps(declined.model_dump(mode="json")))
    assert declined.decision_hash() != fresh
    assert decision.model_copy().decision_hash() == fresh
    assert decision == assess(STRONG, REQUEST, None), "a kept hash is no part of the decision's equality"
    assert decision.model_dump() == assess(STRONG, REQUEST, None).model_dump()
    assert decision.document() == decision.model_dump(mode="json")
    assert decision.document() is decision.document(), "dumped once, for the hash and the stored row"
    assert declined.document()["approved"] is False


async def test_the_ip_limit_counts_an_ipv6_network_of_64_bits_as_one_client() -> None:
    """Addresses of one /64 (one subscriber's or host's) share the per-IP count; another /64 does not. Counted each
    apart, a client passed the limit by rotating through its own network's addresses."""
    store = InMemoryVelocityStore()
    for i in range(4):
        ip = f"2001:db8:1:2::{i + 1:x}"  # a new address each time, in one /64
        await check_velocity(store, LIMITS, borrower_id=f"b{i}", wallet=None, ip=ip, now=1000.0)
    with pytest.raises(VelocityLimitExceeded) as stopped:
        await check_velocity(store, LIMITS, borrower_id="b9", wallet=None, ip="2001:db8:1:2:ffff::9", now=1001.0)
    assert (stopped.value.rule, stopped.value.key) == ("ip", "ip:2001:db8:1:2::/64")
    await check_velocity(store, LIMITS, borrower_id="b10", wallet=None, ip="2001:db8:1:3::1", now=1001.0)
    for i in range(4):  # an IPv4-mapped address counts as its IPv4 address
        await check_velocity(store, LIMITS, borrower_id=f"c{i}", wallet=None, ip="10.0.0.8", now=1000.0)
    with pytest.raises(VelocityLimitExceeded):
        await check_velocity(store, LIMITS, borrower_id="c9", wallet=None, ip="::ffff:10.0.0.8", now=1001.0)


async def test_a_processs_first_wallet_claim_outlives_the_next_sweep() -> None:
    """A claim was stamped with the time of the last hit before it: 0 for the first in a process, so the next sweep
    dropped it and another identity could claim the same wallet."""
    store = InMemoryVelocityStore(claim_ttl_seconds=100, sweep_every=1)
    await check_velocity(store, LIMITS, borrower_id="alice", wallet=WALLET, ip=None, now=1_000.0)
    with pytest.raises(VelocityLimitExceeded) as stopped:
        await check_velocity(store, LIMITS, borrower_id="mallory", wallet=WALLET, ip=None, now=1_001.0)
    assert stopped.value.rule == "wallet_identities"
