"""Drives the deployed contract set on a devnet for the contract tests: signed offers, loans, reverts decoded to
custom errors, governance through the Timelock, time travel, and a Python model of per-loan interest."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.abi import get_abi_output_types
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD
from web3.types import RPCEndpoint, TxReceipt

from chain.artifacts import load_artifact
from chain.revert import DecodedError, decode_revert
from chain.signers import devnet_account
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
    offer_typed_data,
    permit_abi_tuple,
    permit_typed_data,
    repayment_typed_data,
    risk_attestation_typed_data,
    sign,
)
from tests.support.devnet import DeployedChain

USDC = 10**6
WETH = 10**18
BPS = 10_000
YEAR = 365 * 86_400
ERROR_ARTIFACTS = ("Errors", "CreditAggregator", "CollateralManager", "LendingPool", "MockERC20", "MockBlockingERC20")

DEPLOYER = devnet_account(0)
RELAYER = devnet_account(1)
QUOTE_SIGNER = devnet_account(2)
RISK_SIGNER = devnet_account(3)
OPERATOR = devnet_account(4)
GUARDIAN = devnet_account(5)
BORROWERS: tuple[LocalAccount, ...] = tuple(devnet_account(i) for i in (6, 7, 8, 9))
# Offer nonces (and governance salts) far from the platform's own counter, which starts at 1 for the same devnet
# quote signer: e2e tests quote on the shared session devnets too. 2**64 starts a bitmap word, so sequential
# nonces still share words.
_nonces = itertools.count(2**64)


class Reverted(AssertionError):
    """A call reverted; ``error`` is the decoded custom error (None when it is not one of ours)."""

    def __init__(self, error: DecodedError | None, raw: object) -> None:
        super().__init__(f"reverted: {error or raw}")
        self.error = error


def _checksummed(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return Web3.to_checksum_address(value)
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    """A view call encoded once: its contract, calldata and output types. web3 looks the function up in the ABI and
    encodes its arguments again on every call (~3 ms each here): the property run's invariants, a dozen reads after
    each of 1,000+ operations, spent a quarter of the run on it. Build a ``Read`` once and send it every step."""

    to: ChecksumAddress
    data: str
    outputs: tuple[str, ...]

    @classmethod
    def of(cls, contract: Contract, function: str, *args: Any) -> Read:
        abi = contract.get_function_by_name(function).abi
        return cls(contract.address, contract.encode_abi(function, args=list(args)), tuple(get_abi_output_types(abi)))


def loan_fields(aggregator: Contract, loan_id: int) -> dict[str, Any]:
    """``CreditAggregator.getLoan`` as a dict keyed by the ``Loan`` struct's field names (from the ABI)."""
    (output,) = aggregator.get_function_by_name("getLoan").abi["outputs"]
    names = [component["name"] for component in output["components"]]
    return dict(zip(names, aggregator.functions.getLoan(loan_id).call(), strict=True))


def simple_interest_up(principal: int, rate_bps: int, elapsed: int) -> int:
    """The Python model of ``InterestMath.simpleInterestUp``: ceil(principal × rate × seconds / (BPS × YEAR))."""
    return -(-(principal * rate_bps * elapsed) // (BPS * YEAR))


class Harness:
    def __init__(self, chain: DeployedChain) -> None:
        self.chain = chain
        self.w3: Web3 = chain.w3
        self.aggregator = chain.contract("CreditAggregator")
        self.manager = chain.contract("CollateralManager")
        self.pool = chain.contract("LendingPool:USDC")
        self.oracle = chain.contract("CreditScoringOracle")
        self.timelock = self.w3.eth.contract(
            address=chain.record.address("Timelock"), abi=load_artifact("TimelockController").abi
        )
        self.usdc = chain.contract("USDC")
        self.weth = chain.contract("WETH")
        self.weth_feed = chain.contract("PriceFeed:WETH")
        self.usdc_feed = chain.contract("PriceFeed:USDC")

    # ------------------------------------------------------------------ chain

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def loan(self, loan_id: int) -> dict[str, Any]:
        """``getLoan`` as a dict keyed by the ``Loan`` struct's field names."""
        return loan_fields(self.aggregator, loan_id)

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def read_latest(self, reads: Sequence[Read]) -> tuple[int, list[Any]]:
        """The latest block's timestamp and each read's value at it, in one JSON-RPC batch (a value as web3's call
        gives it: the single output itself, several as a tuple; addresses in lower case)."""
        requests: list[tuple[RPCEndpoint, Any]] = [(RPCEndpoint("eth_getBlockByNumber"), ["latest", False])]
        requests += [(RPCEndpoint("eth_call"), [{"to": read.to, "data": read.data}, "latest"]) for read in reads]
        answers = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
        assert isinstance(answers, list), f"the node refused the batch: {answers}"
        failed = [(read, answer["error"]) for read, answer in zip(reads, answers[1:], strict=True) if "error" in answer]
        assert not failed, f"reads failed: {failed}"
        values = []
        for read, answer in zip(reads, answers[1:], strict=True):
            decoded = self.w3.codec.decode(read.outputs, bytes.fromhex(answer["result"][2:]))
            values.append(decoded[0] if len(decoded) == 1 else tuple(decoded))
        return int(answers[0]["result"]["timestamp"], 16), values

    def hold_time(self) -> None:
        """The next block at the latest block's timestamp (anvil allows an equal one): nothing accrues between them."""
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [self.now()])  # type: ignore[arg-type]

    def send(self, call: ContractFunction, sender: ChecksumAddress | LocalAccount) -> TxReceipt:
        """Send from an anvil-unlocked account; raise ``Reverted`` with the decoded error on a revert."""
        address = sender if isinstance(sender, str) else sender.address
        try:
            tx_hash = call.transact({"from": address})
        except (ContractCustomError, ContractLogicError) as err:
            raise Reverted(decode_revert(err.data, ERROR_ARTIFACTS), err.data) from None
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def revert_of(self, call: ContractFunction, sender: ChecksumAddress | LocalAccount) -> DecodedError:
        address = sender if isinstance(sender, str) else sender.address
        try:
            call.call({"from": address})
        except (ContractCustomError, ContractLogicError) as err:
            data = err.data
        else:
            raise AssertionError("expected a revert")
        error = decode_revert(data, ERROR_ARTIFACTS)
        if error is None:
            raise AssertionError(f"undecodable revert {data!r}")
        return DecodedError(error.name, tuple(_checksummed(arg) for arg in error.args))

    def impersonate(self, address: ChecksumAddress) -> None:
        self.w3.provider.make_request("anvil_impersonateAccount", [address])  # type: ignore[arg-type]
        self.w3.provider.make_request("anvil_setBalance", [address, hex(10**20)])  # type: ignore[arg-type]

    # ------------------------------------------------------------------ tokens and prices

    def fund(self, account: ChecksumAddress, usdc: int = 0, weth: int = 0) -> None:
        if usdc:
            self.send(self.usdc.functions.mint(account, usdc), DEPLOYER)
        if weth:
            self.send(self.weth.functions.mint(account, weth), DEPLOYER)

    def approve_all(self, account: ChecksumAddress) -> None:
        for token in (self.usdc, self.weth):
            for spender in (self.aggregator.address, self.manager.address, self.pool.address):
                self.send(token.functions.approve(spender, 2**256 - 1), account)

    def set_weth_price(self, usd: int | float) -> None:
        self.send(self.weth_feed.functions.setAnswer(int(usd * 10**8)), DEPLOYER)

    # ------------------------------------------------------------------ offers

    def offer(self, borrower: ChecksumAddress, *, pool: bool = True, **changes: Any) -> Offer:
        offer = Offer(
            providerId=keccak(text="pool:usdc" if pool else "sim-bank"),
            pool=self.pool.address if pool else ZERO_ADDRESS,
            borrower=borrower,
            asset=self.usdc.address,
            principal=1_500 * USDC,
            rateBps=900,
            term=30 * 86_400,
            originationFee=15 * USDC,
            collateralAsset=self.weth.address,
            collateralAmount=1 * WETH,
            chainId=self.chain.chain_id,
            termsHash=keccak(text="disclosure"),
            expiry=self.now() + 3_600,
            nonce=next(_nonces),
        )
        return dataclasses.replace(offer, **changes)

    def attestation(self, offer: Offer, **changes: Any) -> RiskAttestation:
        """Grade B (75% LTV) for ``offer``'s borrower, bound to ``offer`` by its nonce."""
        attestation = RiskAttestation(
            borrower=offer.borrower,
            grade=2,
            maxLtvBps=7_500,
            expiry=self.now() + 3_600,
            decisionHash=keccak(text="d"),
            nonce=offer.nonce,
        )
        return dataclasses.replace(attestation, **changes)

    def open_args(
        self,
        offer: Offer,
        borrower_key: bytes,
        *,
        attestation: RiskAttestation | None = None,
        quote_key: bytes | None = None,
        risk_key: bytes | None = None,
        deadline: int | None = None,
        aggregator_domain: Domain | None = None,
    ) -> tuple[Any, ...]:
        domain = aggregator_domain or Domain(self.chain.chain_id, self.aggregator.address)
        acceptance = Acceptance(offer=offer, deadline=offer.expiry if deadline is None else deadline)
        attestation = attestation or self.attestation(offer)
        oracle_domain = Domain(self.chain.chain_id, self.oracle.address)
        return (
            acceptance.as_abi_tuple(),
            sign(offer_typed_data(domain, offer), quote_key or QUOTE_SIGNER.key),
            sign(acceptance_typed_data(domain, acceptance), borrower_key),
            attestation.as_abi_tuple(),
            sign(risk_attestation_typed_data(oracle_domain, attestation), risk_key or RISK_SIGNER.key),
        )

    def open_loan(
        self, borrower: LocalAccount, *, attestation: dict[str, Any] | None = None, **changes: Any
    ) -> tuple[int, TxReceipt]:
        """Open a loan through the relayer; ``attestation``: changes to the default risk attestation."""
        offer = self.offer(borrower.address, **changes)
        args = self.open_args(offer, borrower.key, attestation=self.attestation(offer, **(attestation or {})))
        receipt = self.send(self.aggregator.functions.openLoan(*args), RELAYER)
        (event,) = self.aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["loanId"]), receipt

    # ------------------------------------------------------------------ relayed repayments

    def debt_permit(
        self, owner: ChecksumAddress, owner_key: bytes, value: int, deadline: int
    ) -> tuple[int, int, int, bytes, bytes]:
        """The owner's EIP-2612 permit of ``value`` USDC to the CreditAggregator, as ``repayWithPermit`` takes it."""
        _, name, version, chain_id, verifying, _, _ = self.usdc.functions.eip712Domain().call()
        permit = Permit(owner, self.aggregator.address, value, self.usdc.functions.nonces(owner).call(), deadline)
        signature = sign(permit_typed_data(TokenDomain(name, version, chain_id, verifying), permit), owner_key)
        return permit_abi_tuple(permit, signature)

    def repayment_args(
        self,
        borrower: LocalAccount,
        loan_id: int,
        amount: int,
        *,
        nonce: int | None = None,
        deadline: int | None = None,
        permit_value: int | None = None,
        signer_key: bytes | None = None,
    ) -> tuple[tuple[int, int, int, int], bytes, tuple[int, int, int, bytes, bytes]]:
        """``repayWithPermit``'s arguments: the borrower's signed ``Repayment`` and a permit of ``permit_value``
        (default: ``amount``) USDC; ``signer_key`` signs the repayment instead of the borrower's key."""
        deadline = self.now() + 3_600 if deadline is None else deadline
        repayment = Repayment(loan_id, amount, next(_nonces) if nonce is None else nonce, deadline)
        domain = Domain(self.chain.chain_id, self.aggregator.address)
        signature = sign(repayment_typed_data(domain, repayment), signer_key or borrower.key)
        permit = self.debt_permit(
            borrower.address, borrower.key, amount if permit_value is None else permit_value, deadline
        )
        return repayment.as_abi_tuple(), signature, permit

    def min_rate(self, principal: int) -> int:
        return int(self.pool.functions.modelRateBps(principal).call())

    # ------------------------------------------------------------------ governance

    def govern(self, target: Contract, function: str, *args: Any) -> TxReceipt:
        """Schedule ``target.function(*args)`` on the Timelock, wait out its delay, execute it."""
        data = target.encode_abi(function, list(args))
        salt = keccak(text=f"salt-{next(_nonces)}")
        delay = int(self.timelock.functions.getMinDelay().call())
        zero = b"\x00" * 32
        self.send(self.timelock.functions.schedule(target.address, 0, data, zero, salt, delay), DEPLOYER)
        self.advance(delay + 1)
        return self.send(self.timelock.functions.execute(target.address, 0, data, zero, salt), RELAYER)
