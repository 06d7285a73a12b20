"""The chain layer's exceptions: one root, structured subclasses that keep the raw cause (``raise … from err``)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: a URL within a message: a scheme, "://", then anything up to a space, a quote or a closing bracket
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>)\]]+", re.IGNORECASE)


def url_origin(url: str) -> str | None:
    """``url``'s ``scheme://host[:port]`` (an IPv6 host in brackets); None when it does not parse (a port that is no
    number) or names no scheme or host. What a URL may show where a key could sit in the rest of it: a hosted RPC URL
    carries its API key in its path or user information, a webhook URL a token. Never raises."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if not parts.scheme or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def shown_url(url: str) -> str:
    """``url`` as a message shows it: its origin (``url_origin``), then ``/…`` when it has more (a path, a query,
    user information). An error's text reaches logs, the reconciliation runs auditors read and the append-only audit
    log."""
    origin = url_origin(url)
    if origin is None:
        return "<a URL that does not parse>"
    return origin if url.rstrip("/").lower() == origin.lower() else origin + "/…"


def without_urls(text: str) -> str:
    """``text`` with every URL in it as ``shown_url`` shows it (an exception's text that quotes the URL it failed on:
    aiohttp's, the node's)."""
    return _URL.sub(lambda found: shown_url(found.group(0)), text)


class ChainError(Exception):
    """Root of every error raised by ``chain/``."""


class ConfigurationError(ChainError):
    """A chain or deployment is configured wrongly (unknown name, missing contract, bad URL)."""


class ChainIdMismatch(ChainError):
    """The node at an RPC URL reports another chain id than the configured one."""

    def __init__(self, url: str, expected: int, actual: int) -> None:
        shown = without_urls(url)  # ``url`` may carry words after it: "<url> (given for <chain>)"
        super().__init__(f"RPC {shown} serves chain id {actual}, configured {expected}: refusing to connect")
        self.url, self.expected, self.actual = url, expected, actual


class RpcUnavailable(ChainError):
    """No configured RPC URL of a chain answered."""


class RpcBadAnswer(ChainError):
    """An RPC URL answered (HTTP 200) with something that is not a JSON-RPC answer: an HTML error page, an empty or
    truncated body, JSON of another shape. The URL's failure, counted and failed over as a transport failure is;
    raised to callers only inside ``RpcUnavailable`` (its cause)."""


class RpcRateLimited(RpcUnavailable):
    """The node kept refusing a call for the caller's rate (its provider's rate limit), after a few paced tries: an
    outage for now, the same call to be asked again later."""


class ArtifactNotFound(ChainError):
    """A compiled contract artifact is missing: run `make compile` (scripts/setup.sh)."""


class TransactionReverted(ChainError):
    """A transaction was mined with status 0, or its simulation reverted."""

    def __init__(self, message: str, tx_hash: str | None = None, revert_data: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash, self.revert_data = tx_hash, revert_data


class DevnetError(ChainError):
    """A local anvil devnet could not be started or stopped."""


class DevnetPortTaken(DevnetError):
    """Another process listens on the port a devnet was to start on."""


class GasEstimationFailed(TransactionReverted):
    """``eth_estimateGas`` refused the call (it would revert, or the node could not estimate it); nothing was
    signed or sent. ``decoded`` names the custom error when an artifact declares it."""

    def __init__(self, message: str, revert_data: str | None = None, decoded: str | None = None) -> None:
        super().__init__(message, revert_data=revert_data)
        self.decoded = decoded

    @property
    def reverts(self) -> bool:
        """Whether the node said the call reverts rather than that it could not estimate it for another reason (a
        provider's rate limit, an internal error, the sender short of funds for the fee, the call out of gas at the
        node's cap), which says nothing of what the contract would do. A revert is said by revert data (``0x…``: geth,
        erigon, anvil, besu, nethermind), by data ``Reverted 0x…`` (openethereum's and older nethermind's "VM
        execution error."), or by a message only a revert gets (``REVERT_MESSAGES``). Not by anvil's "EVM error …",
        which names funds problems too (``LackOfFundForMaxFee``), nor by old geth's "gas required exceeds allowance
        or always failing transaction", said of an out-of-gas call as well."""
        data = (self.revert_data or "").lower()
        message = str(self).lower()
        return data.startswith(("0x", "reverted")) or any(said in message for said in REVERT_MESSAGES)


#: eth_estimateGas error messages that say the call reverts, lower-cased: geth, erigon, anvil, besu and nethermind
#: ("execution reverted"; erigon said it with no data, code -32000, for a revert without data), ganache and hardhat
#: ("VM Exception while processing transaction: revert …" / "… reverted with reason string …", "Transaction reverted
#: without a reason string")
REVERT_MESSAGES = (
    "execution reverted",
    "vm exception while processing transaction: revert",
    "transaction reverted",
)


class TransactionRejected(ChainError):
    """The node refused a signed transaction outright (insufficient funds, fee below the floor, ...): it never
    entered the mempool, its nonce was released for reuse."""

    def __init__(self, message: str, intent_key: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.intent_key, self.tx_hash = intent_key, tx_hash


class TransactionDropped(ChainError):
    """A sent transaction vanished and its nonce was consumed by another transaction of the same account."""

    def __init__(self, message: str, intent_key: str) -> None:
        super().__init__(message)
        self.intent_key = intent_key


class IntentConflict(ChainError):
    """An intent key was submitted again with a different call: one key stands for exactly one transaction."""

    def __init__(self, intent_key: str) -> None:
        super().__init__(f"intent {intent_key!r} already exists with a different call")
        self.intent_key = intent_key


class FeeCapExceeded(ChainError):
    """The fee the market asks (or a 12.5 % replacement bump) is above the chain's configured fee policy."""


class ConfirmationTimeout(ChainError):
    """An intent was not confirmed within the caller's deadline; it stays tracked and may still confirm. ``state``
    says where its manager saw it last (sent, accepted, mined, re-checked …): what to look at when one is stuck."""

    def __init__(self, intent_key: str, timeout: float, state: str = "still tracked") -> None:
        super().__init__(f"intent {intent_key!r} not confirmed within {timeout} s ({state})")
        self.intent_key, self.timeout, self.state = intent_key, timeout, state


class NonceError(ChainError):
    """The nonce allocator's shared state could not be read or updated."""


class IntentNotHeld(NonceError):
    """A manager asked for a nonce for an intent it no longer holds (it stalled past its lease and another manager
    claimed it): nothing was bound and no nonce consumed."""

    def __init__(self, intent_key: str, owner: str) -> None:
        super().__init__(f"intent {intent_key!r} is no longer held by {owner}")
        self.intent_key, self.owner = intent_key, owner
