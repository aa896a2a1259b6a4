//! Watching what is out there: a nonce the chain used is settled by one of our receipts (or was taken by
//! someone else); a pending attempt is sent again or re-priced; an included one is checked against the
//! canonical chain and moves to `safe` and `finalized`.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes, U256};
use futures::StreamExt;
use gemgate_domain::broadcast::{CallRequest, ReceiptSummary};
use gemgate_domain::ledger::{Attempt, Inclusion, LiveTx, TxChange};
use gemgate_domain::{FinalityLevel, TxState};

use super::change::Step;
use super::{CONCURRENCY, CONFIRM_EVERY, PassError, REPLACED_AFTER, SCAN_DEPTH, SenderWorker};
use crate::draft::Price;
use crate::fees;
use crate::metrics::GapLabels;

impl SenderWorker {
    /// Settles, re-sends, re-prices and confirms what is out there.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, sender = %self.sender, live = live.len()))]
    pub(super) async fn watch(&self, live: &[LiveTx]) -> Result<Vec<TxChange>, PassError> {
        // Inclusions are re-checked (reorgs, safe, finalized) once per CONFIRM_EVERY, not every pass: a busy
        // sender has many included transactions waiting for finality.
        let confirm = self.last_confirm.lock().map(|mut at| {
            let due = at.elapsed() >= CONFIRM_EVERY;
            if due {
                *at = tokio::time::Instant::now();
            }
            due
        });
        let confirm = confirm.unwrap_or(true);
        let out: Vec<&LiveTx> = live
            .iter()
            .filter(|l| match l.record.state {
                TxState::Submitted => true,
                TxState::Included | TxState::Safe => confirm,
                _ => false,
            })
            .collect();
        if let Ok(mut resent) = self.resent.lock() {
            // Only requests still out there are remembered.
            let submitted: std::collections::HashSet<&str> = live
                .iter()
                .filter(|l| l.record.state == TxState::Submitted)
                .map(|l| l.record.id.as_str())
                .collect();
            resent.retain(|id, _| submitted.contains(id.as_str()));
        }
        if out.is_empty() {
            return Ok(Vec::new());
        }
        // The heads first, then the counts: a transaction counted as mined is in a block up to `latest` (or
        // one mined in between, found by its hash).
        let heads = self.heads().await?;
        // Mined counts per sender (one for a signer; one per client for the raw worker).
        let mut senders: Vec<&str> = out.iter().map(|l| l.record.sender.as_str()).collect();
        senders.dedup();
        let mut mined = HashMap::new();
        for sender in senders {
            let address: Address =
                sender.parse().map_err(|_| PassError::Ledger(format!("bad sender {sender}")))?;
            mined.insert(sender.to_string(), self.rpc.nonce(address, false).await?);
        }
        let out: Vec<(&LiveTx, u64)> =
            out.into_iter().map(|l| (l, mined.get(&l.record.sender).copied().unwrap_or_default())).collect();
        let settling = out
            .iter()
            .filter(|(l, mined)| l.record.state == TxState::Submitted && l.record.nonce < *mined)
            .count();
        let known = Known {
            receipts: self.recent_receipts(settling as u64, heads.latest).await,
            canonical: self.canonical_hashes(out.iter().map(|(l, _)| *l)).await?,
        };
        let watches: Vec<_> =
            out.into_iter().map(|(l, mined)| self.watch_one(l, mined, heads, &known)).collect();
        let results = futures::stream::iter(watches).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut changes = Vec::new();
        for result in results {
            if let Some(change) = result? {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// The receipts of the blocks mined since the last look (at most `SCAN_DEPTH` back), one call per block,
    /// when that is fewer calls than asking for each of the `settling` transactions by hash. Anything not
    /// found here is asked for by hash; a node without `eth_getBlockReceipts` is only ever asked by hash.
    async fn recent_receipts(&self, settling: u64, latest: u64) -> HashMap<B256, ReceiptSummary> {
        let mut receipts = HashMap::new();
        if settling == 0 || self.no_block_receipts.load(std::sync::atomic::Ordering::Relaxed) {
            return receipts;
        }
        let scanned = self.scanned.lock().ok().and_then(|s| *s).unwrap_or(0);
        let from = scanned.max(latest.saturating_sub(SCAN_DEPTH)) + 1;
        if from > latest || latest + 1 - from >= settling {
            return receipts;
        }
        let blocks: Vec<_> = (from..=latest).map(|number| self.rpc.block_receipts(number)).collect();
        let blocks = futures::stream::iter(blocks).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        for block in blocks {
            match block {
                Ok(Some(block)) => receipts.extend(block.into_iter().map(|r| (r.tx_hash, r))),
                Ok(None) => return receipts, // the node lags: the rest by hash, and the range again
                Err(e) => {
                    if matches!(e, gemgate_domain::ChainError::Rpc { .. }) {
                        tracing::info!(chain = self.chain_id, error = %e, "no eth_getBlockReceipts; receipts by hash");
                        self.no_block_receipts.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    return receipts;
                }
            }
        }
        if let Ok(mut scanned) = self.scanned.lock() {
            *scanned = Some(latest);
        }
        tracing::debug!(
            chain = self.chain_id,
            from,
            latest,
            settling,
            receipts = receipts.len(),
            "receipts by block"
        );
        receipts
    }

    /// The hash of each block that holds an included request being checked, one call per block.
    async fn canonical_hashes<'a>(
        &self,
        out: impl Iterator<Item = &'a LiveTx>,
    ) -> Result<HashMap<u64, Option<B256>>, PassError> {
        let mut numbers: Vec<u64> = out
            .filter(|l| matches!(l.record.state, TxState::Included | TxState::Safe))
            .filter_map(|l| l.record.block_number)
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let blocks: Vec<_> =
            numbers.iter().map(|n| async move { (*n, self.rpc.block_hash(*n).await) }).collect();
        let blocks = futures::stream::iter(blocks).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut hashes = HashMap::new();
        for (number, block) in blocks {
            hashes.insert(number, block?);
        }
        Ok(hashes)
    }

    /// When the request's last attempt was last sent again by this worker.
    fn resent_at(&self, id: &str) -> Option<u64> {
        self.resent.lock().ok().and_then(|resent| resent.get(id).copied())
    }

    /// The latest, safe and finalized block numbers (by depth where the node has no such tags).
    async fn heads(&self) -> Result<Heads, PassError> {
        let latest = self.rpc.head(FinalityLevel::Latest).await?.map_or(0, |b| b.0);
        let safe = self.rpc.head(FinalityLevel::Safe).await?.map(|b| b.0);
        let finalized = self.rpc.head(FinalityLevel::Finalized).await?.map(|b| b.0);
        // A node without the tags: the chain's configured depth stands in for both.
        let deep = latest.saturating_sub(self.manager.confirmations(self.chain_id));
        Ok(Heads { latest, safe: safe.unwrap_or(deep), finalized: finalized.unwrap_or(deep) })
    }

    async fn watch_one(
        &self,
        live: &LiveTx,
        mined: u64,
        heads: Heads,
        known: &Known,
    ) -> Result<Option<TxChange>, PassError> {
        let r = &live.record;
        let mut step = Step::new(live);
        match r.state {
            TxState::Submitted if r.nonce < mined => {
                // Settled on chain: find which of our attempts (newest first) holds the nonce.
                let mut hashes = Vec::new();
                for attempt in live.attempts.iter().rev() {
                    let hash: B256 = attempt
                        .hash
                        .parse()
                        .map_err(|_| PassError::Ledger(format!("bad hash in {}", r.id)))?;
                    if let Some(receipt) = known.receipts.get(&hash) {
                        return self.settled(step, attempt, receipt.clone()).await;
                    }
                    hashes.push((attempt, hash));
                }
                for (attempt, hash) in hashes {
                    if let Some(receipt) = self.rpc.receipt(hash).await? {
                        return self.settled(step, attempt, receipt).await;
                    }
                }
                // No receipt of ours yet. A node can report the new count a moment before it serves the
                // receipt (or one node of a pool lags another): only a nonce used for a while without a
                // receipt of ours is someone else's.
                let last_sent = live.attempts.iter().filter_map(|a| a.sent_ms).max().unwrap_or(0);
                let last_sent = last_sent.max(self.resent_at(&r.id).unwrap_or(0));
                if self.now_ms().saturating_sub(last_sent) < REPLACED_AFTER.as_millis() as u64 {
                    return Ok(None);
                }
                step.moves_to(TxState::Replaced).error = Some(format!(
                    "nonce {} was used on chain by a transaction gemgate did not send",
                    r.nonce
                ));
                Ok(step.finish())
            }
            TxState::Submitted => {
                let Some(last) = live.attempts.last() else { return Ok(None) };
                let options = &self.manager.options;
                // The re-pricing clock runs from the attempt's first send; the re-broadcast clock from the
                // last time the same bytes went out.
                let since = self.now_ms().saturating_sub(last.sent_ms.unwrap_or(0));
                let since_resent = self.resent_at(&r.id).map_or(since, |at| self.now_ms().saturating_sub(at));
                // A cancel or an expiry: replace with the no-op at once.
                let expired = r.valid_until_ms.is_some_and(|until| until <= self.now_ms());
                if self.signer.is_some() && (r.ending.is_some() || expired) && last.purpose != "noop" {
                    if r.ending.is_none() {
                        step.change().ending = Some(Some(TxState::Expired));
                    }
                    return self.reprice(live, step, Some("noop")).await;
                }
                if last.sent_ms.is_none() {
                    // Stored by a re-pricing, not sent yet.
                    let outcome = self.broadcast(live).await;
                    return self.after_send(live, outcome).await;
                }
                let bumps = live.attempts.len().saturating_sub(1) as u32;
                let bump_wait = fees::bump_after(bumps, options.bump_after, options.max_bump_after);
                if self.signer.is_some() && since >= bump_wait.as_millis() as u64 {
                    return self.reprice(live, step, None).await;
                }
                if since.min(since_resent) >= options.rebroadcast_after.as_millis() as u64 {
                    let hash: B256 =
                        last.hash.parse().map_err(|_| PassError::Ledger(format!("bad hash in {}", r.id)))?;
                    if !self.rpc.knows(hash).await? {
                        tracing::info!(id = %r.id, hash = %last.hash, "dropped by the node; sending again");
                        let labels = GapLabels { chain_id: self.chain_id, how: "rebroadcast" };
                        self.manager.metrics.gaps_repaired.get_or_create(&labels).inc();
                    }
                    // Sent again either way: a node that knows it answers "already known".
                    let outcome = self.broadcast(live).await;
                    if let Ok(mut resent) = self.resent.lock() {
                        resent.insert(r.id.clone(), self.now_ms());
                    }
                    return self.after_send(live, outcome).await;
                }
                Ok(None)
            }
            TxState::Included | TxState::Safe => {
                let (Some(number), Some(hash)) = (r.block_number, r.block_hash.as_deref()) else {
                    return Ok(None);
                };
                let canonical = match known.canonical.get(&number) {
                    Some(canonical) => *canonical,
                    None => self.rpc.block_hash(number).await?,
                };
                if canonical.map(|h| h.to_string()).as_deref() != Some(hash) {
                    // A reorg took its block: back to submitted, and out again with the same bytes.
                    tracing::warn!(id = %r.id, block = number, "block left the chain; sending again");
                    let included =
                        live.attempts.iter().find(|a| Some(a.hash.as_str()) == r.tx_hash.as_deref());
                    let change = step.moves_to(TxState::Submitted);
                    change.inclusion = Some(None);
                    if let Some(attempt) = included {
                        if let Ok(raw) = attempt.raw.parse::<Bytes>() {
                            // Any answer will do: the next pass reads the outcome from receipts.
                            let _ = self.rpc.send_raw(&raw).await;
                        }
                        change.sent = Some((attempt.attempt, self.now_ms()));
                    }
                    return Ok(step.finish());
                }
                if number <= heads.finalized {
                    step.moves_to(TxState::Finalized);
                } else if number <= heads.safe && r.state == TxState::Included {
                    step.moves_to(TxState::Safe);
                }
                Ok(step.finish())
            }
            _ => Ok(None),
        }
    }

    /// A receipt of one of our attempts: included (or failed with the revert reason), or the end the
    /// no-op was sent for.
    async fn settled(
        &self,
        mut step: Step<'_>,
        attempt: &Attempt,
        receipt: ReceiptSummary,
    ) -> Result<Option<TxChange>, PassError> {
        let r = step.record().clone();
        let summary = serde_json::json!({
            "status": if receipt.success { "success" } else { "reverted" },
            "gas_used": receipt.gas_used,
            "effective_gas_price": receipt.effective_gas_price.to_string(),
            "fee_paid": (U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)).to_string(),
        });
        let inclusion = Inclusion {
            tx_hash: attempt.hash.clone(),
            block_number: receipt.block_number,
            block_hash: receipt.block_hash.to_string(),
            receipt: summary.to_string(),
        };
        let to = if attempt.purpose == "noop" {
            r.ending.unwrap_or(TxState::Cancelled)
        } else if receipt.success {
            TxState::Included
        } else {
            let reason = match self.draft_of(&r, Price::Legacy { gas_price: 0 }) {
                Ok(draft) => {
                    let call = CallRequest {
                        from: r.sender.parse().unwrap_or_default(),
                        to: draft.to,
                        value: draft.value,
                        data: draft.data,
                        gas_limit: Some(attempt.gas_limit),
                    };
                    self.rpc.revert_reason(&call, receipt.block_number.saturating_sub(1)).await
                }
                Err(_) => None,
            };
            step.change().error =
                Some(format!("reverted: {}", reason.unwrap_or_else(|| "no reason given".into())));
            TxState::Failed
        };
        step.moves_to(to).inclusion = Some(Some(inclusion));
        Ok(step.finish())
    }
}

#[derive(Debug, Clone, Copy)]
struct Heads {
    latest: u64,
    safe: u64,
    finalized: u64,
}

/// What a pass learned in bulk before looking at each request.
struct Known {
    /// Receipts of recent blocks by transaction hash (may be empty: then receipts are asked for by hash).
    receipts: HashMap<B256, ReceiptSummary>,
    /// The canonical hash of each block holding an included request (`None`: no such block now).
    canonical: HashMap<u64, Option<B256>>,
}
