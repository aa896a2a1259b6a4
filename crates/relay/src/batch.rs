//! Sending accepted requests: each in its own `execute`, or, where the relayer batches, those arriving
//! within `batch.wait` of each other (up to `batch.max`) together in one `executeBatch` with a refund
//! receiver, so that a member the forwarder finds invalid at execution is skipped (its value refunded)
//! and a member whose call reverts fails alone: neither sinks the others (OpenZeppelin's semantics).
//!
//! The first request of a batch opens it and a spawned task sends it when the wait ends or it is full, so a
//! client that goes away does not take the others' batch with it. If the batch as a whole cannot be
//! accepted (a member is already being relayed, say), each member is sent alone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, Bytes, U256, keccak256};
use gemgate_config::BatchSettings;
use gemgate_domain::relay::RelayedCall;
use gemgate_domain::{ChainId, StoreError};
use gemgate_txm::fees::Speed;
use gemgate_txm::{Submit, SubmitError, Submitted, TxManager};
use tokio::sync::{Notify, oneshot};

use crate::request::{ForwardRequestData, calldata_gas, executeBatchCall, executeCall};

/// A checked request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub data: ForwardRequestData,
    pub call: RelayedCall,
    /// The gas limit of its own `execute` (estimated, buffered).
    pub gas: u64,
}

type Answer = oneshot::Sender<Result<Submitted, SubmitError>>;

/// Where one relayer sends: its chain, forwarder and paying signer, and the batch being gathered.
pub(crate) struct Sender {
    pub txm: Arc<TxManager>,
    pub chain_id: ChainId,
    pub forwarder: Address,
    pub signer: String,
    pub payer: Address,
    pub batch: BatchSettings,
    open: Mutex<Option<Vec<(Member, Answer)>>>,
    full: Notify,
}

impl Sender {
    pub fn new(
        txm: Arc<TxManager>,
        chain_id: ChainId,
        forwarder: Address,
        signer: String,
        payer: Address,
        batch: BatchSettings,
    ) -> Self {
        Self { txm, chain_id, forwarder, signer, payer, batch, open: Mutex::new(None), full: Notify::new() }
    }

    /// Sends `member`, alone or in the batch being gathered; answers with its transaction.
    pub async fn send(self: &Arc<Self>, member: Member) -> Result<Submitted, SubmitError> {
        if self.batch.max <= 1 {
            return self.alone(member).await;
        }
        let (answer, answered) = oneshot::channel();
        let opens = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            match open.as_mut() {
                Some(waiting) => {
                    waiting.push((member, answer));
                    if waiting.len() == self.batch.max {
                        self.full.notify_one();
                    }
                    false
                }
                None => {
                    *open = Some(vec![(member, answer)]);
                    true
                }
            }
        };
        if opens {
            let sender = self.clone();
            tokio::spawn(async move { sender.gather().await });
        }
        answered.await.unwrap_or_else(|_| {
            Err(SubmitError::Store(StoreError::Unavailable { message: "the batch was dropped".into() }))
        })
    }

    /// Waits for the batch to fill or its wait to end, then sends it (in chunks of `max`).
    async fn gather(self: Arc<Self>) {
        tokio::select! {
            _ = tokio::time::sleep(self.batch.wait) => {}
            _ = self.full.notified() => {}
        }
        let waiting = self.open.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        let mut waiting = waiting.into_iter().peekable();
        while waiting.peek().is_some() {
            let chunk: Vec<_> = waiting.by_ref().take(self.batch.max).collect();
            self.send_batch(chunk).await;
        }
    }

    async fn send_batch(&self, chunk: Vec<(Member, Answer)>) {
        let (members, answers): (Vec<Member>, Vec<Answer>) = chunk.into_iter().unzip();
        if members.len() > 1
            && let Ok(submitted) = self.together(&members).await
        {
            for answer in answers {
                let _ = answer.send(Ok(submitted.clone()));
            }
            return;
        }
        // One member, or a batch that could not be accepted as a whole: each alone, with its own answer.
        let sends = members.into_iter().map(|m| self.alone(m));
        for (answer, result) in answers.into_iter().zip(futures::future::join_all(sends).await) {
            let _ = answer.send(result);
        }
    }

    /// One `executeBatch` for all `members`.
    async fn together(&self, members: &[Member]) -> Result<Submitted, SubmitError> {
        let refund = self.batch.refund_receiver.unwrap_or(self.payer);
        let requests: Vec<ForwardRequestData> = members.iter().map(|m| m.data.clone()).collect();
        let value = requests.iter().fold(U256::ZERO, |sum, r| sum.saturating_add(r.value));
        let data: Bytes = executeBatchCall { requests, refundReceiver: refund }.abi_encode().into();
        // Each member's own limit covers its call and the forwarder's work on it; the batch pays one base
        // cost instead of one each, so the sum is an upper bound.
        let gas = members.iter().map(|m| m.gas).sum::<u64>().saturating_add(calldata_gas(&data));
        let digests: Vec<u8> = members.iter().flat_map(|m| m.call.digest.as_bytes().to_vec()).collect();
        let key = format!("relay-batch:{}", keccak256(&digests));
        let deadline = members.iter().map(|m| m.call.deadline).max().unwrap_or_default();
        let calls = members.iter().map(|m| m.call.clone()).collect();
        self.txm.submit(self.submit(key, value, data, gas, deadline, calls)).await
    }

    /// One `execute` for `member`.
    async fn alone(&self, member: Member) -> Result<Submitted, SubmitError> {
        let key = format!("relay:{}", member.call.digest);
        let value = member.data.value;
        let data: Bytes = executeCall { request: member.data }.abi_encode().into();
        let submit = self.submit(key, value, data, member.gas, member.call.deadline, vec![member.call]);
        self.txm.submit(submit).await
    }

    fn submit(
        &self,
        key: String,
        value: U256,
        data: Bytes,
        gas: u64,
        deadline: u64,
        calls: Vec<RelayedCall>,
    ) -> Submit {
        let until = UNIX_EPOCH + Duration::from_secs(deadline);
        Submit {
            body_sha256: key.clone(),
            idempotency_key: Some(key),
            signer: self.signer.clone(),
            chain_id: self.chain_id,
            to: Some(self.forwarder),
            value,
            data,
            gas_limit: Some(gas),
            speed: Speed::Normal,
            // Not included by the (last) deadline, the forwarder would refuse it: the ledger expires it.
            valid_until: Some((humantime::format_rfc3339(until).to_string(), deadline * 1000)),
            relayed: calls,
        }
    }
}
