// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice The head of creditmesh's hash-chained audit log, anchored on-chain: each anchor commits the platform to
/// the log up to entry `seq` (the keccak256 chain hash of that entry), so a database rewritten afterwards —
/// recomputed hashes included — no longer matches the chain. Only holders of ANCHOR_ROLE anchor.
interface IAuditAnchor {
    /// @notice The log's entry `seq` has hash `head` (its chain hash over every entry before it).
    /// @param anchoredAt the block's timestamp, seconds.
    event Anchored(uint64 indexed seq, bytes32 head, uint64 anchoredAt);

    /// @notice An anchor must move the log forward: `seq` above the latest anchored sequence number.
    error AnchorNotAfterLatest(uint64 seq, uint64 latestSeq);
    /// @notice The zero hash commits to nothing.
    error ZeroHead();

    /// @notice Anchor entry `seq` with hash `head`; reverts unless the caller holds ANCHOR_ROLE, `seq` is above
    /// `latestSeq()` and `head` is not zero.
    function anchor(uint64 seq, bytes32 head) external;

    /// @notice The latest anchored sequence number (0 before the first anchor).
    function latestSeq() external view returns (uint64);

    /// @notice The latest anchored head hash (zero before the first anchor).
    function latestHead() external view returns (bytes32);
}
