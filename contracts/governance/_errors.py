"""Governance's errors, one tree:

GovernanceError                 what was refused, on which chain, and why
├── ProposalRefused             a call would revert as the Timelock: nothing was sent
├── OperationNotReady           execute of an operation not ready (pending, done, cancelled)
│   └── OperationNotFound       an operation id never scheduled on this chain's Timelock
└── SafeTransactionMismatch     a proposal file's SafeTx is not the one its operation needs
"""

from __future__ import annotations


class GovernanceError(Exception):
    """Root of governance errors: what was refused, on which chain, and why."""


class ProposalRefused(GovernanceError):
    """A call would revert when the Timelock makes it (out of bounds, unknown pool, ...): nothing was sent."""


class OperationNotReady(GovernanceError):
    """Execute before the delay is over, or of an operation that is done, cancelled or unknown."""


class OperationNotFound(OperationNotReady):
    """An operation id that was never scheduled on this chain's Timelock (an operation's id differs per chain unless
    its calls' targets do not)."""


class SafeTransactionMismatch(GovernanceError):
    """A proposal file whose Safe transaction is not the one that schedules (or cancels) the operation the file
    shows: owners would sign, and ``submit`` send, something else than what they read."""
