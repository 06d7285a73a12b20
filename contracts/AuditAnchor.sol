// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IAuditAnchor} from "./interfaces/IAuditAnchor.sol";

/// @notice Anchors the audit log's head (see IAuditAnchor). The anchor key holds ANCHOR_ROLE; the Timelock is the
/// admin (grants and revokes it, e.g. to rotate the key).
contract AuditAnchor is IAuditAnchor, AccessControl {
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");

    /// @inheritdoc IAuditAnchor
    uint64 public latestSeq;
    /// @inheritdoc IAuditAnchor
    bytes32 public latestHead;

    constructor(address admin, address anchorer) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHOR_ROLE, anchorer);
    }

    /// @inheritdoc IAuditAnchor
    function anchor(uint64 seq, bytes32 head) external onlyRole(ANCHOR_ROLE) {
        if (seq <= latestSeq) revert AnchorNotAfterLatest(seq, latestSeq);
        if (head == bytes32(0)) revert ZeroHead();
        latestSeq = seq;
        latestHead = head;
        emit Anchored(seq, head, uint64(block.timestamp));
    }
}
