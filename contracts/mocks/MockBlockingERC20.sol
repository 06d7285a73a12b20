// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MockERC20} from "./MockERC20.sol";

/// @notice A test token with a blocklist, as USDC's: it refuses to move tokens from or to a blocked account. Deployed
/// only by tests (a separate contract, so that the devnet tokens' transfers cost what an ERC-20's do).
contract MockBlockingERC20 is MockERC20 {
    mapping(address account => bool) public blocked;

    error AccountBlocked(address account);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) MockERC20(name_, symbol_, decimals_) {}

    function setBlocked(address account, bool blocked_) external {
        blocked[account] = blocked_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[from]) revert AccountBlocked(from);
        if (blocked[to]) revert AccountBlocked(to);
        super._update(from, to, value);
    }
}
