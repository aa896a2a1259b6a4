//! Signing: a queued request's first attempt (or the no-op that fills its nonce when it must not go out),
//! and the re-priced attempts that replace a pending one.

use alloy::primitives::{Address, Bytes, U256};
use gemgate_domain::ledger::{Attempt, LiveTx, TxChange, TxRecord};
use gemgate_domain::{SignerError, TxState};

use super::change::Step;
use super::{PassError, SenderWorker};
use crate::draft::{Draft, Price, Signing};
use crate::fees::Speed;
use crate::signers::NamedSigner;

impl SenderWorker {
    /// Signs a queued request, or the no-op that fills its nonce when it must not go out.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %live.record.id))]
    pub(super) async fn sign_queued(
        &self,
        signer: &NamedSigner,
        live: &LiveTx,
        mined: u64,
    ) -> Result<Option<TxChange>, PassError> {
        let r = &live.record;
        let mut step = Step::new(live);
        if r.nonce < mined {
            // Someone else used this key's nonce: ours can never be included.
            step.moves_to(TxState::Replaced).error =
                Some(format!("nonce {} was used on chain by a transaction gemgate did not send", r.nonce));
            return Ok(step.finish());
        }
        let expired = r.valid_until_ms.is_some_and(|until| until <= self.now_ms());
        let ending = r.ending.or(expired.then_some(TxState::Expired));
        let speed = Speed::parse(&r.speed).unwrap_or_default();
        let market = self.manager.market(self.chain_id, speed).await?;
        let (draft, purpose) = match ending {
            Some(ending) => {
                step.change().ending = Some(Some(ending));
                (Draft::noop(self.chain_id, r.nonce, signer.address, market), "noop")
            }
            None => {
                if let Some(limit) = self.manager.options.max_fee_per_gas
                    && market.max_per_gas() > limit
                {
                    tracing::info!(id = %r.id, needed = market.max_per_gas(), limit, "fees above the cap; waiting");
                    return Ok(None);
                }
                (self.draft_of(r, market)?, "send")
            }
        };
        let attempt = match self.sign(signer, &draft, r, 0, purpose).await {
            Ok(Some(attempt)) => attempt,
            Ok(None) => return Ok(None), // held for approval
            Err(SignerError::Rejected { reason, .. }) => {
                // Refused by policy: fill the nonce so later requests are not held hostage.
                step.change().ending = Some(Some(TxState::Failed));
                step.change().error = Some(format!("rejected by the signer's policy: {reason}"));
                let noop = Draft::noop(self.chain_id, r.nonce, signer.address, market);
                match self.sign(signer, &noop, r, 0, "noop").await? {
                    Some(attempt) => attempt,
                    None => return Ok(step.finish()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let change = step.moves_to(TxState::Signed);
        change.gas_limit = Some(draft.gas_limit);
        change.attempt = Some(attempt);
        Ok(step.finish())
    }

    pub(super) fn draft_of(&self, r: &TxRecord, price: Price) -> Result<Draft, PassError> {
        let bad = |what: &str| PassError::Ledger(format!("request {}: stored {what} does not parse", r.id));
        Ok(Draft {
            chain_id: self.chain_id,
            nonce: r.nonce,
            to: r.to.as_deref().map(|t| t.parse::<Address>()).transpose().map_err(|_| bad("to"))?,
            value: r.value.parse::<U256>().map_err(|_| bad("value"))?,
            data: r.data.parse::<Bytes>().map_err(|_| bad("data"))?,
            gas_limit: r.gas_limit.ok_or_else(|| bad("gas limit"))?,
            price,
        })
    }

    /// Signs `draft` as attempt `number`; `None` while a policy holds it.
    async fn sign(
        &self,
        signer: &NamedSigner,
        draft: &Draft,
        r: &TxRecord,
        number: u32,
        purpose: &str,
    ) -> Result<Option<Attempt>, SignerError> {
        let key = format!("{}:{number}:{purpose}", r.id);
        match draft.sign(signer.signer.as_ref(), &signer.name, &key).await? {
            Signing::Signed(signed) => {
                let (max_fee, priority) = draft.price.stored();
                Ok(Some(Attempt {
                    attempt: number,
                    purpose: purpose.into(),
                    hash: signed.hash.to_string(),
                    raw: signed.raw.to_string(),
                    gas_limit: draft.gas_limit,
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: priority,
                    sent_ms: None,
                }))
            }
            Signing::Pending { request_id } => {
                tracing::info!(id = %r.id, request_id, "signature held for approval");
                Ok(None)
            }
        }
    }

    /// A new attempt at a higher price (or the no-op for `purpose = noop`), stored by the caller's change
    /// and broadcast on the next pass.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %live.record.id, purpose = ?purpose))]
    pub(super) async fn reprice(
        &self,
        live: &LiveTx,
        mut step: Step<'_>,
        purpose: Option<&str>,
    ) -> Result<Option<TxChange>, PassError> {
        let Some(signer) = &self.signer else { return Ok(step.finish()) };
        let r = &live.record;
        let Some(last) = live.attempts.last() else { return Ok(step.finish()) };
        let speed = Speed::parse(&r.speed).unwrap_or_default();
        let market = self.manager.market(self.chain_id, speed).await?;
        let previous = Price::from_stored(&last.max_fee_per_gas, last.max_priority_fee_per_gas.as_deref())
            .unwrap_or(market);
        let price = previous.bumped(market);
        let purpose = purpose.unwrap_or(if r.ending.is_some() { "noop" } else { &last.purpose });
        let draft = if purpose == "noop" {
            Draft::noop(self.chain_id, r.nonce, signer.address, price)
        } else {
            let mut draft = self.draft_of(r, price)?;
            draft.gas_limit = last.gas_limit;
            draft
        };
        let number = last.attempt + 1;
        match self.sign(signer, &draft, r, number, purpose).await {
            Ok(Some(attempt)) => {
                tracing::debug!(id = %r.id, attempt = number, purpose, max_fee = price.max_per_gas(), "re-priced");
                // A new attempt goes out on the next pass: back to `signed` if it was never accepted.
                let to = if r.state == TxState::Queued { TxState::Signed } else { r.state };
                step.moves_to(to).attempt = Some(attempt);
                Ok(step.finish())
            }
            Ok(None) => Ok(step.finish()),
            Err(e) => Err(e.into()),
        }
    }
}
