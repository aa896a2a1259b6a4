//! The transaction ledger's values: a request as accepted, its attempts, the changes a worker makes to it,
//! the lease that makes one worker per (chain, sender) the only writer, and what accepting answers. The
//! rules that move a request along live in `tx` (`TxState::can_become`) and in the transaction manager; the
//! SQL that stores these lives in the store crate. Nothing here does I/O.

use alloy_primitives::U256;

use crate::TxState;

/// A request to send a transaction, as the API validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransaction {
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the request body: the same key with another body is a conflict.
    pub body_sha256: String,
    pub chain_id: u64,
    /// The configured signer's name.
    pub signer: String,
    /// The signer's address, lower case `0x` hex.
    pub sender: String,
    pub to: Option<String>,
    /// Wei, decimal.
    pub value: String,
    /// Calldata, `0x` hex.
    pub data: String,
    pub gas_limit: Option<u64>,
    pub speed: String,
    /// RFC 3339.
    pub valid_until: Option<String>,
    /// `valid_until` as Unix milliseconds.
    pub valid_until_ms: Option<u64>,
    /// When set, the request is refused unless the sender's balance covers it and everything it has pending.
    pub funds: Option<Funds>,
    /// The ERC-2771 requests the transaction relays (empty for the signer's own calls): stored with it, and
    /// the transaction's origin is then `relay`.
    pub relayed: Vec<crate::relay::RelayedCall>,
}

/// What a balance check needs: the sender's balance and the price per gas a pending request may pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funds {
    pub balance: U256,
    pub max_fee_per_gas: u128,
}

/// A request in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    pub id: String,
    pub chain_id: u64,
    pub signer: String,
    pub sender: String,
    pub nonce: u64,
    pub to: Option<String>,
    pub value: String,
    pub data: String,
    pub gas_limit: Option<u64>,
    pub speed: String,
    pub state: TxState,
    pub error: Option<String>,
    /// `api` (signed by us), `relay` (signed by us, carrying users' ERC-2771 requests) or `raw` (signed by
    /// the client).
    pub origin: String,
    /// A cancellation or expiry in flight: the state the request takes when its no-op is included.
    pub ending: Option<TxState>,
    /// Bumped by every change; lifecycle writes compare it.
    pub revision: u64,
    pub tx_hash: Option<String>,
    pub block_number: Option<u64>,
    pub block_hash: Option<String>,
    /// The receipt summary as JSON text.
    pub receipt: Option<String>,
    pub valid_until: Option<String>,
    pub valid_until_ms: Option<u64>,
}

impl TxRecord {
    /// A request as accepted (revision 0, nothing sent, nothing included) before its contents are set.
    pub fn new(chain_id: u64, sender: &str, nonce: u64, origin: &str, state: TxState) -> Self {
        Self {
            id: request_id(chain_id, sender, nonce),
            chain_id,
            signer: String::new(),
            sender: sender.to_string(),
            nonce,
            to: None,
            value: "0".into(),
            data: "0x".into(),
            gas_limit: None,
            speed: "normal".into(),
            state,
            error: None,
            origin: origin.to_string(),
            ending: None,
            revision: 0,
            tx_hash: None,
            block_number: None,
            block_hash: None,
            receipt: None,
            valid_until: None,
            valid_until_ms: None,
        }
    }
}

/// A request's id: one per (chain, sender, nonce).
pub fn request_id(chain_id: u64, sender: &str, nonce: u64) -> String {
    format!("{chain_id}-{sender}-{nonce}")
}

/// One signed attempt at a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    /// `send` (the request itself) or `noop` (a zero-value self-transfer for a cancel or an expiry).
    pub purpose: String,
    pub hash: String,
    /// The signed EIP-2718 bytes, `0x` hex.
    pub raw: String,
    pub gas_limit: u64,
    /// The fee cap (the gas price on legacy chains), wei per gas, decimal.
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: Option<String>,
    /// First broadcast, Unix milliseconds (the re-pricing clock runs from it; sending the same bytes again
    /// does not move it); `None` if it was stored but never sent.
    pub sent_ms: Option<u64>,
}

/// A request the workers still follow, with its attempts in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTx {
    pub record: TxRecord,
    pub attempts: Vec<Attempt>,
    /// When the request was accepted, Unix milliseconds (for the queued-to-included time).
    pub created_ms: u64,
}

/// What accepting a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new request, with its nonce.
    New(TxRecord),
    /// The idempotency key was seen with the same body: the original request.
    Existing(TxRecord),
    /// The idempotency key was seen with another body (or, for a raw transaction, its nonce is tracked
    /// already with other bytes): the original request's id.
    Conflict { id: String },
    /// The balance does not cover this request and everything pending before it (wei).
    InsufficientFunds { balance: U256, needed: U256 },
}

/// A client-signed transaction to track, decoded and checked by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSubmission {
    pub chain_id: u64,
    pub sender: String,
    pub nonce: u64,
    pub to: Option<String>,
    pub value: String,
    pub data: String,
    pub speed: String,
    pub attempt: Attempt,
}

/// A worker's right to write for one (chain, sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub chain_id: u64,
    pub sender: String,
    pub token: u64,
}

/// A lifecycle change to one request, applied only if its revision is still `revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct TxChange {
    pub id: String,
    pub revision: u64,
    pub from: TxState,
    pub to: TxState,
    /// A new attempt to store (signed bytes, before they are broadcast).
    pub attempt: Option<Attempt>,
    /// An attempt broadcast at this time: (attempt number, Unix milliseconds).
    pub sent: Option<(u32, u64)>,
    /// Where it was included; `Some(None)` clears a previous inclusion (a reorg removed it).
    pub inclusion: Option<Option<Inclusion>>,
    pub gas_limit: Option<u64>,
    pub error: Option<String>,
    /// Sets or clears the pending ending.
    pub ending: Option<Option<TxState>>,
    /// The outbox payload announcing the new state (written only when `to != from`); `revision + 1` is the
    /// revision the payload describes.
    pub payload: Option<String>,
    pub chain_id: u64,
    pub ordering_key: String,
}

impl TxChange {
    /// No change yet to request `id` (at `revision`, in `state`): set what changes on the result.
    pub fn new(id: &str, revision: u64, state: TxState, chain_id: u64, ordering_key: String) -> Self {
        Self {
            id: id.to_string(),
            revision,
            from: state,
            to: state,
            attempt: None,
            sent: None,
            inclusion: None,
            gas_limit: None,
            error: None,
            ending: None,
            payload: None,
            chain_id,
            ordering_key,
        }
    }
}

impl TxChange {
    /// The record as this change leaves it: what the ledger writes when the change applies.
    pub fn applied_to(&self, record: &TxRecord) -> TxRecord {
        let mut after = record.clone();
        after.state = self.to;
        after.revision = self.revision + 1;
        if let Some(inclusion) = &self.inclusion {
            after.tx_hash = inclusion.as_ref().map(|i| i.tx_hash.clone());
            after.block_number = inclusion.as_ref().map(|i| i.block_number);
            after.block_hash = inclusion.as_ref().map(|i| i.block_hash.clone());
            after.receipt = inclusion.as_ref().map(|i| i.receipt.clone());
        }
        if let Some(error) = &self.error {
            after.error = Some(error.clone());
        }
        if let Some(ending) = self.ending {
            after.ending = ending;
        }
        if let Some(gas) = self.gas_limit {
            after.gas_limit = Some(gas);
        }
        after
    }
}

impl LiveTx {
    /// The request as an applied `change` leaves it: its record, a new attempt, an attempt's first send.
    pub fn apply(&mut self, change: &TxChange) {
        self.record = change.applied_to(&self.record);
        self.attempts.extend(change.attempt.clone());
        if let Some((number, ms)) = change.sent
            && let Some(attempt) = self.attempts.iter_mut().find(|a| a.attempt == number)
        {
            attempt.sent_ms = Some(ms);
        }
    }
}

/// Which requests `list_transactions` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxListQuery {
    pub signer: Option<String>,
    pub chain_id: Option<u64>,
    pub state: Option<TxState>,
    /// Created at or after this time: RFC 3339 in UTC with milliseconds (`2026-12-02T10:00:00.000Z`).
    pub from_time: Option<String>,
    /// The cursor: requests created before this (creation time, id) pair.
    pub before: Option<(String, String)>,
    pub limit: u32,
}

/// A page of requests, each with its creation time, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPage {
    pub items: Vec<(TxRecord, String)>,
    pub next: Option<(String, String)>,
}

/// Where a transaction was included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub tx_hash: String,
    pub block_number: u64,
    pub block_hash: String,
    pub receipt: String,
}

/// The states the workers still act on.
pub const LIVE_STATES: [TxState; 5] =
    [TxState::Queued, TxState::Signed, TxState::Submitted, TxState::Included, TxState::Safe];

/// Orders the messages of one sender's transactions (nonce order is their natural order).
pub fn ordering_key(chain_id: u64, sender: &str) -> String {
    format!("tx:{chain_id}:{sender}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(number: u32) -> Attempt {
        Attempt {
            attempt: number,
            purpose: "send".into(),
            hash: format!("0x{number:064x}"),
            raw: "0x02".into(),
            gas_limit: 21_000,
            max_fee_per_gas: "100".into(),
            max_priority_fee_per_gas: Some("1".into()),
            sent_ms: None,
        }
    }

    #[test]
    fn a_change_moves_the_record_and_bumps_its_revision() {
        let record = TxRecord::new(1, "0xabc", 7, "api", TxState::Submitted);
        let mut change = TxChange::new(&record.id, 0, TxState::Submitted, 1, ordering_key(1, "0xabc"));
        change.to = TxState::Included;
        change.inclusion = Some(Some(Inclusion {
            tx_hash: "0x01".into(),
            block_number: 9,
            block_hash: "0x02".into(),
            receipt: "{}".into(),
        }));
        let after = change.applied_to(&record);
        assert_eq!((after.state, after.revision, after.block_number), (TxState::Included, 1, Some(9)));
        assert_eq!(after.error, None, "fields the change leaves alone stay");

        // A reorg clears the inclusion; `None` would have left it.
        let mut back = TxChange::new(&after.id, 1, TxState::Included, 1, ordering_key(1, "0xabc"));
        back.to = TxState::Submitted;
        back.inclusion = Some(None);
        let again = back.applied_to(&after);
        assert_eq!((again.tx_hash, again.block_number, again.revision), (None, None, 2));
    }

    #[test]
    fn a_live_request_takes_new_attempts_and_first_sends() {
        let record = TxRecord::new(1, "0xabc", 0, "api", TxState::Signed);
        let mut live = LiveTx { record: record.clone(), attempts: vec![attempt(0)], created_ms: 0 };
        let mut sent = TxChange::new(&record.id, 0, TxState::Signed, 1, ordering_key(1, "0xabc"));
        sent.to = TxState::Submitted;
        sent.sent = Some((0, 1_000));
        live.apply(&sent);
        assert_eq!(live.attempts[0].sent_ms, Some(1_000));

        let mut bump = TxChange::new(&record.id, 1, TxState::Submitted, 1, ordering_key(1, "0xabc"));
        bump.attempt = Some(attempt(1));
        live.apply(&bump);
        assert_eq!(live.attempts.len(), 2);
        assert_eq!((live.attempts[1].sent_ms, live.record.revision), (None, 2));
    }
}
