//! A user's ERC-2771 request as OpenZeppelin's `ERC2771Forwarder` defines it: the EIP-712 `ForwardRequest`
//! the user signs (with the forwarder nonce), the `ForwardRequestData` the forwarder executes (with the
//! signature instead of the nonce), the forwarder's domain as `eip712Domain()` (ERC-5267) reports it, and the
//! signature checks that need no chain: 65 bytes, low `s`, recovers to `from`.

use alloy::sol_types::{Eip712Domain, SolCall, SolStruct};
use alloy_primitives::{Address, B256, Bytes, Signature, U256};

use crate::RelayError;

alloy::sol! {
    /// The struct users sign (typehash `ForwardRequest(address from,address to,uint256 value,uint256 gas,
    /// uint256 nonce,uint48 deadline,bytes data)`).
    #[derive(Debug, PartialEq, Eq)]
    struct ForwardRequest {
        address from;
        address to;
        uint256 value;
        uint256 gas;
        uint256 nonce;
        uint48 deadline;
        bytes data;
    }

    /// What `execute` takes: the request without its nonce (the forwarder reads it), with the signature.
    #[derive(Debug, PartialEq, Eq)]
    struct ForwardRequestData {
        address from;
        address to;
        uint256 value;
        uint256 gas;
        uint48 deadline;
        bytes data;
        bytes signature;
    }

    function execute(ForwardRequestData request) external payable;
    function executeBatch(ForwardRequestData[] requests, address refundReceiver) external payable;
    function nonces(address owner) external view returns (uint256);
    function eip712Domain() external view returns (bytes1 fields, string name, string version, uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions);
    function isTrustedForwarder(address forwarder) external view returns (bool);
}

/// The errors `ERC2771Forwarder` reverts with (OpenZeppelin 5), to name them in refusals.
pub const FORWARDER_ERRORS: [&str; 8] = [
    "error ERC2771ForwarderInvalidSigner(address signer, address from)",
    "error ERC2771ForwarderNoRefundReceiver()",
    "error InsufficientBalance(uint256 balance, uint256 needed)",
    "error InvalidAccountNonce(address account, uint256 currentNonce)",
    "error ERC2771ForwarderMismatchedValue(uint256 requestedValue, uint256 msgValue)",
    "error ERC2771ForwarderExpiredRequest(uint48 deadline)",
    "error ERC2771UntrustfulTarget(address target, address forwarder)",
    "error FailedCall()",
];

/// secp256k1's group order halved: signatures with a larger `s` are the malleable twin of a low-`s` one
/// (EIP-2), refused by OpenZeppelin's `ECDSA` and here.
const HALF_ORDER: U256 =
    alloy_primitives::uint!(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0_U256);

const INTRINSIC_GAS: u64 = 21_000;
/// The forwarder's work around the call, with a wide margin.
const FORWARDER_OVERHEAD: u64 = 80_000;

/// What calldata costs (EIP-2028): 16 gas a non-zero byte, 4 a zero byte.
pub fn calldata_gas(data: &[u8]) -> u64 {
    data.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum()
}

/// The domain a forwarder signs under, as its `eip712Domain()` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderDomain {
    pub name: String,
    pub version: String,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl ForwarderDomain {
    /// From `eip712Domain()`'s return data; `None` when the contract does not answer it (not a forwarder).
    pub fn decode(data: &[u8]) -> Option<Self> {
        let d = eip712DomainCall::abi_decode_returns(data).ok()?;
        Some(Self {
            name: d.name,
            version: d.version,
            chain_id: d.chainId.try_into().ok()?,
            verifying_contract: d.verifyingContract,
        })
    }

    fn eip712(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(self.name.clone().into()),
            Some(self.version.clone().into()),
            Some(U256::from(self.chain_id)),
            Some(self.verifying_contract),
            None,
        )
    }
}

/// A request with the user's signature, as the API parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub request: ForwardRequest,
    pub signature: Bytes,
}

impl SignedRequest {
    /// The EIP-712 digest the user signed under `domain`.
    pub fn digest(&self, domain: &ForwarderDomain) -> B256 {
        self.request.eip712_signing_hash(&domain.eip712())
    }

    /// Checks the signature against `digest`: 65 bytes `r || s || v` (v 27/28, or 0/1), `s` in the lower
    /// half of the order, recovering to `from`. Returns the signature as the forwarder's `ECDSA` needs it
    /// (v 27/28; the digest does not cover the signature, so only that byte may change).
    pub fn verified_signature(&self, digest: &B256) -> Result<Bytes, RelayError> {
        let bytes = self.signature.as_ref();
        if bytes.len() != 65 {
            return Err(RelayError::BadSignature(format!(
                "the signature has {} bytes; r || s || v is 65",
                bytes.len()
            )));
        }
        let v = bytes[64];
        let parity = match v {
            27 | 28 => v == 28,
            0 | 1 => v == 1,
            other => return Err(RelayError::BadSignature(format!("v is {other}; 27 or 28 expected"))),
        };
        let r = U256::from_be_slice(&bytes[..32]);
        let s = U256::from_be_slice(&bytes[32..64]);
        if s > HALF_ORDER {
            return Err(RelayError::HighS);
        }
        let signature = Signature::new(r, s, parity);
        let signer = signature
            .recover_address_from_prehash(digest)
            .map_err(|e| RelayError::BadSignature(format!("the signature does not recover: {e}")))?;
        if signer != self.request.from {
            return Err(RelayError::BadSignature(format!(
                "the signature recovers to {signer}, not the request's from {}",
                self.request.from
            )));
        }
        let mut normalized = bytes.to_vec();
        normalized[64] = 27 + u8::from(parity);
        Ok(normalized.into())
    }

    /// The gas limit of the transaction carrying this request in `calldata`: the intrinsic cost (21,000 and
    /// the calldata), the forwarder's own work (signature recovery, the nonce write, the target's trust
    /// check, the event: well under `FORWARDER_OVERHEAD`), and the request's `gas` with the 1/64 a call keeps
    /// back (EIP-150), since the forwarder checks the target was given all of it. Unused gas is not paid for.
    pub fn gas_limit(&self, calldata: &[u8]) -> u64 {
        let inner: u64 = self.request.gas.try_into().unwrap_or(u64::MAX / 2);
        INTRINSIC_GAS
            .saturating_add(calldata_gas(calldata))
            .saturating_add(FORWARDER_OVERHEAD)
            .saturating_add(inner.saturating_mul(64).div_ceil(63))
    }

    /// `execute(request)` calldata with `signature` (as `verified_signature` returned it).
    pub fn execute_call(&self, signature: Bytes) -> Bytes {
        executeCall { request: self.data(signature) }.abi_encode().into()
    }

    /// The request as `execute`/`executeBatch` take it.
    pub fn data(&self, signature: Bytes) -> ForwardRequestData {
        let r = &self.request;
        ForwardRequestData {
            from: r.from,
            to: r.to,
            value: r.value,
            gas: r.gas,
            deadline: r.deadline,
            data: r.data.clone(),
            signature,
        }
    }

    /// The call the forwarder makes to the target: `data` with `from` appended (ERC-2771).
    pub fn inner_call(&self) -> Bytes {
        let mut data = self.request.data.to_vec();
        data.extend_from_slice(self.request.from.as_slice());
        data.into()
    }

    /// The first four bytes of the call, if it has them.
    pub fn selector(&self) -> Option<[u8; 4]> {
        self.request.data.get(..4).and_then(|s| s.try_into().ok())
    }
}

/// `nonces(from)` calldata, and its answer read.
pub fn nonces_call(from: Address) -> Bytes {
    noncesCall { owner: from }.abi_encode().into()
}

pub fn read_nonce(data: &[u8]) -> Option<U256> {
    noncesCall::abi_decode_returns(data).ok()
}

/// `isTrustedForwarder(forwarder)` calldata, and its answer read (`false` for anything but `true`).
pub fn trust_call(forwarder: Address) -> Bytes {
    isTrustedForwarderCall { forwarder }.abi_encode().into()
}

pub fn read_trust(data: &[u8]) -> bool {
    isTrustedForwarderCall::abi_decode_returns(data).unwrap_or(false)
}

pub fn domain_call() -> Bytes {
    eip712DomainCall {}.abi_encode().into()
}

#[cfg(test)]
mod tests {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;
    use alloy_primitives::address;

    use super::*;

    fn domain() -> ForwarderDomain {
        ForwarderDomain {
            name: "GemforceForwarder".into(),
            version: "1".into(),
            chain_id: 31337,
            verifying_contract: address!("e7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
        }
    }

    fn signed(user: &PrivateKeySigner, domain: &ForwarderDomain) -> SignedRequest {
        let request = ForwardRequest {
            from: user.address(),
            to: address!("5FbDB2315678afecb367f032d93F642f64180aa3"),
            value: U256::ZERO,
            gas: U256::from(100_000u64),
            nonce: U256::ZERO,
            deadline: alloy_primitives::aliases::U48::from(1_900_000_000u64),
            data: Bytes::from(vec![0x12, 0x34, 0x56, 0x78, 0x01]),
        };
        let digest = request.eip712_signing_hash(&domain.eip712());
        let signature = user.sign_hash_sync(&digest).unwrap();
        SignedRequest { request, signature: signature.as_bytes().to_vec().into() }
    }

    #[test]
    fn a_signature_by_from_verifies_and_comes_back_with_v_27_or_28() {
        let user = PrivateKeySigner::random();
        let request = signed(&user, &domain());
        let normalized = request.verified_signature(&request.digest(&domain())).unwrap();
        assert!(matches!(normalized[64], 27 | 28));
        // v as 0/1 is accepted and normalized.
        let mut zero_one = request;
        let mut bytes = zero_one.signature.to_vec();
        bytes[64] -= 27;
        zero_one.signature = bytes.into();
        assert_eq!(zero_one.verified_signature(&zero_one.digest(&domain())).unwrap(), normalized);
    }

    #[test]
    fn another_domain_another_signer_or_a_changed_field_does_not_verify() {
        let user = PrivateKeySigner::random();
        let request = signed(&user, &domain());
        let other_chain = ForwarderDomain { chain_id: 1, ..domain() };
        assert!(matches!(
            request.verified_signature(&request.digest(&other_chain)),
            Err(RelayError::BadSignature(_))
        ));
        let mut changed = request.clone();
        changed.request.gas = U256::from(100_001u64);
        assert!(matches!(
            changed.verified_signature(&changed.digest(&domain())),
            Err(RelayError::BadSignature(_))
        ));
        let mut short = request.clone();
        short.signature = Bytes::from(request.signature[..64].to_vec());
        assert!(matches!(
            short.verified_signature(&short.digest(&domain())),
            Err(RelayError::BadSignature(_))
        ));
    }

    #[test]
    fn the_malleable_high_s_twin_is_refused() {
        let user = PrivateKeySigner::random();
        let request = signed(&user, &domain());
        let bytes = request.signature.to_vec();
        let s = U256::from_be_slice(&bytes[32..64]);
        let order = HALF_ORDER * U256::from(2) + U256::from(1);
        let twin_s = order - s;
        let mut twin = bytes.clone();
        twin[32..64].copy_from_slice(&twin_s.to_be_bytes::<32>());
        twin[64] = if bytes[64] == 27 { 28 } else { 27 };
        let malleable = SignedRequest { signature: twin.into(), ..request.clone() };
        assert!(matches!(malleable.verified_signature(&request.digest(&domain())), Err(RelayError::HighS)));
    }

    #[test]
    fn the_forwarder_call_carries_the_user_at_the_end() {
        let user = PrivateKeySigner::random();
        let request = signed(&user, &domain());
        let inner = request.inner_call();
        assert_eq!(&inner[inner.len() - 20..], user.address().as_slice());
        assert_eq!(request.selector(), Some([0x12, 0x34, 0x56, 0x78]));
        let call = request.execute_call(request.signature.clone());
        assert_eq!(&call[..4], &executeCall::SELECTOR);
    }
}
