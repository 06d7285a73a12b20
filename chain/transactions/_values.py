"""What callers hand the lifecycle and get back: a ``Call``, its ``Submission``, its ``Receipt``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from chain.artifacts import Artifact
from chain.errors import TransactionDropped, TransactionRejected, TransactionReverted
from chain.types import Wei
from store.chain import CONFIRMED, DROPPED, FAILED, REVERTED, IntentRecord, MinedUpdate

ZERO_WEI = Wei(0)


@dataclass(frozen=True, slots=True)
class Call:
    """What a transaction does: ``to`` (None deploys ``data`` as init code), calldata, value, optional gas."""

    to: ChecksumAddress | None
    data: bytes = b""
    value: Wei = ZERO_WEI
    gas: int | None = None

    @classmethod
    def function(cls, contract: Any, name: str, *args: Any, value: int = 0, gas: int | None = None) -> Call:
        """A contract function call, encoded with the contract's ABI (a web3 ``Contract`` or ``AsyncContract``)."""
        data = contract.encode_abi(name, args=list(args))
        return cls(to=contract.address, data=bytes(HexBytes(data)), value=Wei(value), gas=gas)

    @classmethod
    def deploy(cls, artifact: Artifact, *args: Any, value: int = 0, gas: int | None = None) -> Call:
        factory = Web3().eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(*args).data_in_transaction
        return cls(to=None, data=bytes(HexBytes(data)), value=Wei(value), gas=gas)

    @classmethod
    def transfer(cls, to: str, value: int) -> Call:
        return cls(to=to_checksum_address(to), value=Wei(value), gas=21_000)

    def payload_hash(self, chain_id: int, sender: str) -> str:
        parts = [
            str(chain_id),
            sender.lower(),
            (self.to or "").lower(),
            self.data.hex(),
            str(self.value),
            str(self.gas),
        ]
        return "0x" + keccak(text="|".join(parts)).hex()


@dataclass(frozen=True, slots=True)
class Receipt:
    """A settled intent."""

    intent_key: str
    chain_id: int
    status: str  # confirmed | reverted
    tx_hash: str
    nonce: int
    block_number: int
    block_hash: str
    gas_used: int
    contract_address: ChecksumAddress | None
    #: the receipt's logs as the node sent them, when the watcher read the receipt itself (empty when the outcome
    #: came from the chain store: read the receipt from the node then)
    logs: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Submission:
    intent_key: str
    status: str
    tx_hash: str | None
    nonce: int | None


def _receipt(chain_id: int, nonce: int, mined: MinedUpdate) -> Receipt:
    return Receipt(
        intent_key=mined.intent_key,
        chain_id=chain_id,
        status=CONFIRMED if mined.success else REVERTED,
        tx_hash=mined.tx_hash,
        nonce=nonce,
        block_number=mined.block_number,
        block_hash=mined.block_hash,
        gas_used=mined.gas_used,
        contract_address=to_checksum_address(mined.contract_address) if mined.contract_address else None,
        logs=mined.logs,
    )


def _receipt_or_raise(stored: IntentRecord) -> Receipt:
    if stored.status == CONFIRMED:
        assert stored.tx_hash
        assert stored.block_number is not None
        assert stored.block_hash
        assert stored.nonce is not None
        return Receipt(
            intent_key=stored.key,
            chain_id=stored.chain_id,
            status=CONFIRMED,
            tx_hash=stored.tx_hash,
            nonce=stored.nonce,
            block_number=stored.block_number,
            block_hash=stored.block_hash,
            gas_used=stored.gas_used or 0,
            contract_address=to_checksum_address(stored.contract_address) if stored.contract_address else None,
        )
    if stored.status == REVERTED:
        raise TransactionReverted(stored.error or f"{stored.key} reverted", tx_hash=stored.tx_hash)
    if stored.status == DROPPED:
        raise TransactionDropped(stored.error or f"{stored.key} dropped", stored.key)
    assert stored.status == FAILED
    raise TransactionRejected(stored.error or f"{stored.key} failed", stored.key, stored.tx_hash)
