// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {MockERC20} from "./MockERC20.sol";

/// @notice A test token whose EIP-712 domain adds a salt to name, version, chain id and verifying contract (EIP-5267
/// `fields` 0x1f): its permits are signed and checked under that five-field domain, as `eip712Domain()` and
/// `DOMAIN_SEPARATOR()` report it. A reader that builds the usual four-field domain gets a separator the token does
/// not check permits under. Deployed only by tests.
contract MockSaltedDomainERC20 is MockERC20 {
    bytes32 private constant SALTED_DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)"
    );
    bytes32 private constant PERMIT_TYPEHASH_ =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    bytes32 public constant SALT = keccak256("creditmesh salted domain");
    string private _domainName;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) MockERC20(name_, symbol_, decimals_) {
        _domainName = name_;
    }

    function eip712Domain()
        public
        view
        override
        returns (bytes1, string memory, string memory, uint256, address, bytes32, uint256[] memory)
    {
        return (hex"1f", _domainName, "1", block.chainid, address(this), SALT, new uint256[](0));
    }

    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view override returns (bytes32) {
        return _saltedSeparator();
    }

    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        public
        override
    {
        if (block.timestamp > deadline) revert ERC2612ExpiredSignature(deadline);
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH_, owner, spender, value, _useNonce(owner), deadline));
        address signer = ECDSA.recover(MessageHashUtils.toTypedDataHash(_saltedSeparator(), structHash), v, r, s);
        if (signer != owner) revert ERC2612InvalidSigner(signer, owner);
        _approve(owner, spender, value);
    }

    function _saltedSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                SALTED_DOMAIN_TYPEHASH, keccak256(bytes(_domainName)), keccak256("1"), block.chainid, address(this), SALT
            )
        );
    }
}
