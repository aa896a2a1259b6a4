//! From a request to signed bytes: the typed transaction (EIP-1559, or legacy with EIP-155 on chains
//! without a base fee), its signing hash for the `Signer` port, the signature attached and checked to
//! recover to the signer's address before anything is stored or sent. Also the reverse, for client-signed
//! transactions: decode, recover the sender, read the fields.

use alloy::consensus::transaction::SignerRecoverable;
use alloy::consensus::{SignableTransaction, Transaction as _, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::{Decodable2718, Encodable2718};
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use gemgate_domain::ports::{SignOutcome, SignRequest, Signer};
use gemgate_domain::{ChainId, SignerError};

use crate::fees::Fees;

/// What a transaction pays per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Price {
    Eip1559(Fees),
    Legacy { gas_price: u128 },
}

impl Price {
    /// From its two parts: a priority fee means EIP-1559, none a legacy gas price.
    pub fn from_parts(max_per_gas: u128, priority: Option<u128>) -> Price {
        match priority {
            Some(priority) => {
                Price::Eip1559(Fees { max_fee_per_gas: max_per_gas, max_priority_fee_per_gas: priority })
            }
            None => Price::Legacy { gas_price: max_per_gas },
        }
    }

    /// The fee cap (the gas price on legacy chains) and the priority fee (none on legacy).
    pub fn parts(self) -> (u128, Option<u128>) {
        match self {
            Price::Eip1559(fees) => (fees.max_fee_per_gas, Some(fees.max_priority_fee_per_gas)),
            Price::Legacy { gas_price } => (gas_price, None),
        }
    }

    /// The most it can pay per gas.
    pub fn max_per_gas(self) -> u128 {
        self.parts().0
    }

    /// A replacement's price: +10% (rounded up) on both fields and at least `market`.
    pub fn bumped(self, market: Price) -> Price {
        // A legacy gas price is both the cap and the tip.
        let as_fees = |p: Price| {
            let (max_fee, priority) = p.parts();
            Fees { max_fee_per_gas: max_fee, max_priority_fee_per_gas: priority.unwrap_or(max_fee) }
        };
        let fees = crate::fees::bump(as_fees(self), as_fees(market));
        Price::from_parts(fees.max_fee_per_gas, self.parts().1.map(|_| fees.max_priority_fee_per_gas))
    }

    /// As stored with an attempt: the fee cap (gas price) and the priority fee (none on legacy).
    pub fn stored(self) -> (String, Option<String>) {
        let (max_fee, priority) = self.parts();
        (max_fee.to_string(), priority.map(|p| p.to_string()))
    }

    /// Back from an attempt's stored fields.
    pub fn from_stored(max_fee: &str, priority: Option<&str>) -> Option<Price> {
        let priority = priority.map(str::parse::<u128>).transpose().ok()?;
        Some(Price::from_parts(max_fee.parse().ok()?, priority))
    }
}

/// A transaction ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub chain_id: ChainId,
    pub nonce: u64,
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: u64,
    pub price: Price,
}

/// Signed bytes and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub raw: Bytes,
    pub hash: B256,
}

/// What signing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    Signed(SignedTx),
    /// Held for approval by the signer's policy.
    Pending {
        request_id: String,
    },
}

enum Unsigned {
    Eip1559(TxEip1559),
    Legacy(TxLegacy),
}

impl Draft {
    /// A zero-value transfer to oneself at this nonce: what a cancel, an expiry or a gap fill sends.
    pub fn noop(chain_id: ChainId, nonce: u64, from: Address, price: Price) -> Draft {
        Draft {
            chain_id,
            nonce,
            to: Some(from),
            value: U256::ZERO,
            data: Bytes::new(),
            gas_limit: 21_000,
            price,
        }
    }

    fn unsigned(&self) -> Unsigned {
        let to = self.to.map_or(TxKind::Create, TxKind::Call);
        match self.price {
            Price::Eip1559(fees) => Unsigned::Eip1559(TxEip1559 {
                chain_id: self.chain_id,
                nonce: self.nonce,
                gas_limit: self.gas_limit,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                to,
                value: self.value,
                access_list: Default::default(),
                input: self.data.clone(),
            }),
            Price::Legacy { gas_price } => Unsigned::Legacy(TxLegacy {
                chain_id: Some(self.chain_id),
                nonce: self.nonce,
                gas_price,
                gas_limit: self.gas_limit,
                to,
                value: self.value,
                input: self.data.clone(),
            }),
        }
    }

    /// Asks `signer` to sign, attaches the signature and checks it recovers to the signer's address.
    /// `idempotency_key` lets a remote signer answer a retried request with its first answer.
    pub async fn sign(
        &self,
        signer: &dyn Signer,
        name: &str,
        idempotency_key: &str,
    ) -> Result<Signing, SignerError> {
        let unsigned = self.unsigned();
        let (encoded, hash) = match &unsigned {
            Unsigned::Eip1559(tx) => (tx.encoded_for_signing(), tx.signature_hash()),
            Unsigned::Legacy(tx) => (tx.encoded_for_signing(), tx.signature_hash()),
        };
        let request = SignRequest {
            chain_id: self.chain_id,
            unsigned: encoded.into(),
            signing_hash: hash,
            idempotency_key: idempotency_key.to_string(),
        };
        let signature = match signer.sign_transaction(&request).await? {
            SignOutcome::Signed { signature } => signature,
            SignOutcome::Pending { request_id } => return Ok(Signing::Pending { request_id }),
        };
        let envelope: TxEnvelope = match unsigned {
            Unsigned::Eip1559(tx) => tx.into_signed(signature).into(),
            Unsigned::Legacy(tx) => tx.into_signed(signature).into(),
        };
        let bad =
            |message: String| SignerError::Backend { signer: name.to_string(), message, retryable: false };
        // A signature from outside this process is checked before the bytes are stored or sent.
        let recovered = if signer.signs_in_process() {
            signer.address()
        } else {
            envelope.recover_signer().map_err(|e| bad(format!("the signature does not recover: {e}")))?
        };
        if recovered != signer.address() {
            return Err(bad(format!(
                "the signature recovers to {recovered}, not the signer's {}",
                signer.address()
            )));
        }
        Ok(Signing::Signed(SignedTx { raw: envelope.encoded_2718().into(), hash: *envelope.tx_hash() }))
    }
}

/// A client-signed transaction, decoded and its signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub sender: Address,
    pub chain_id: Option<ChainId>,
    pub hash: B256,
    pub nonce: u64,
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: u64,
    pub price: Price,
}

/// Why raw bytes are not a transaction we can track.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a signed transaction (EIP-2718): {0}")]
    Malformed(String),
    #[error("the signature does not recover to a sender: {0}")]
    BadSignature(String),
    #[error("transaction type {0} is not supported (legacy, EIP-2930 and EIP-1559 are)")]
    Unsupported(u8),
}

/// Decodes signed EIP-2718 bytes and recovers the sender.
pub fn decode(raw: &[u8]) -> Result<Decoded, DecodeError> {
    let mut slice = raw;
    let envelope = TxEnvelope::decode_2718(&mut slice).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !slice.is_empty() {
        return Err(DecodeError::Malformed(format!("{} trailing bytes", slice.len())));
    }
    let price = match &envelope {
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) => Price::from_parts(envelope.max_fee_per_gas(), None),
        TxEnvelope::Eip1559(_) => Price::from_parts(
            envelope.max_fee_per_gas(),
            Some(envelope.max_priority_fee_per_gas().unwrap_or_default()),
        ),
        other => return Err(DecodeError::Unsupported(other.tx_type() as u8)),
    };
    let sender = envelope.recover_signer().map_err(|e| DecodeError::BadSignature(e.to_string()))?;
    Ok(Decoded {
        sender,
        chain_id: envelope.chain_id(),
        hash: *envelope.tx_hash(),
        nonce: envelope.nonce(),
        to: envelope.to(),
        value: envelope.value(),
        data: envelope.input().clone(),
        gas_limit: envelope.gas_limit(),
        price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signers::LocalSigner;

    const ANVIL_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn draft(price: Price) -> Draft {
        Draft {
            chain_id: 31337,
            nonce: 7,
            to: Some(Address::repeat_byte(0x11)),
            value: U256::from(5u64),
            data: Bytes::from_static(&[0xde, 0xad]),
            gas_limit: 50_000,
            price,
        }
    }

    #[tokio::test]
    async fn signed_bytes_decode_back_to_the_draft_and_its_sender() {
        let signer = LocalSigner::from_hex("ops", ANVIL_KEY).unwrap();
        let fees = Fees { max_fee_per_gas: 30, max_priority_fee_per_gas: 2 };
        for price in [Price::Eip1559(fees), Price::Legacy { gas_price: 9 }] {
            let d = draft(price);
            let Signing::Signed(signed) = d.sign(&signer, "ops", "k").await.unwrap() else {
                panic!("pending")
            };
            let back = decode(&signed.raw).unwrap();
            assert_eq!(back.sender, signer.address());
            assert_eq!(back.hash, signed.hash);
            assert_eq!(
                (back.chain_id, back.nonce, back.to, back.value, back.data, back.gas_limit, back.price),
                (Some(31337), 7, d.to, d.value, d.data.clone(), 50_000, price)
            );
        }
    }

    #[tokio::test]
    async fn tampered_bytes_do_not_recover_to_the_signer() {
        let signer = LocalSigner::from_hex("ops", ANVIL_KEY).unwrap();
        let d = draft(Price::Eip1559(Fees { max_fee_per_gas: 30, max_priority_fee_per_gas: 2 }));
        let Signing::Signed(signed) = d.sign(&signer, "ops", "k").await.unwrap() else { panic!("pending") };
        let mut raw = signed.raw.to_vec();
        let len = raw.len();
        raw[len - 40] ^= 0x01; // inside the signature's r
        match decode(&raw) {
            Ok(decoded) => {
                assert_ne!(decoded.sender, signer.address(), "a changed signature is another sender");
            }
            Err(e) => assert!(matches!(e, DecodeError::BadSignature(_) | DecodeError::Malformed(_)), "{e}"),
        }
        assert!(matches!(decode(&[0x02, 0x01]), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn a_bumped_price_pays_at_least_ten_percent_more_on_both_fields() {
        let old = Price::Eip1559(Fees { max_fee_per_gas: 100, max_priority_fee_per_gas: 10 });
        let low_market = Price::Eip1559(Fees { max_fee_per_gas: 50, max_priority_fee_per_gas: 1 });
        assert_eq!(
            old.bumped(low_market),
            Price::Eip1559(Fees { max_fee_per_gas: 110, max_priority_fee_per_gas: 11 })
        );
        assert_eq!(
            Price::Legacy { gas_price: 100 }.bumped(Price::Legacy { gas_price: 500 }),
            Price::Legacy { gas_price: 500 }
        );
    }
}
