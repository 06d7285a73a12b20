// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MockERC20} from "./MockERC20.sol";

/// @notice A test token with EIP-2612 permit but without EIP-5267's eip712Domain(), as tokens made before 2022
/// are (USDC's FiatToken, wstETH): a permit's domain can only be read as DOMAIN_SEPARATOR(). Deployed only by tests.
contract MockLegacyPermitERC20 is MockERC20 {
    error Eip712DomainNotImplemented();

    constructor(string memory name_, string memory symbol_, uint8 decimals_) MockERC20(name_, symbol_, decimals_) {}

    function eip712Domain()
        public
        pure
        override
        returns (bytes1, string memory, string memory, uint256, address, bytes32, uint256[] memory)
    {
        revert Eip712DomainNotImplemented();
    }
}
