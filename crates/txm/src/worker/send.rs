//! Broadcasting a signed attempt and reading the node's answer into the ledger.

use alloy::primitives::{B256, Bytes};
use gemgate_domain::broadcast::SendFailure;
use gemgate_domain::ledger::{LiveTx, TxChange};
use gemgate_domain::{SendError, TxState};

use super::change::Step;
use super::{PassError, SenderWorker};

impl SenderWorker {
    pub(super) async fn broadcast(&self, live: &LiveTx) -> Result<B256, SendFailure> {
        let attempt = live.attempts.last().expect("filtered on a last attempt");
        let raw: Bytes = attempt.raw.parse().map_err(|_| {
            SendFailure::Refused(SendError::Other { code: 0, message: "stored bytes do not parse".into() })
        })?;
        self.rpc.send_raw(&raw).await
    }

    /// Reads a broadcast's answer into a change. The first send of an attempt is recorded (and moves a
    /// `signed` request to `submitted`); sending the same bytes again changes nothing in the ledger, so the
    /// re-pricing clock keeps running from the first send.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %live.record.id))]
    pub(super) async fn after_send(
        &self,
        live: &LiveTx,
        outcome: Result<B256, SendFailure>,
    ) -> Result<Option<TxChange>, PassError> {
        let r = &live.record;
        let Some(attempt) = live.attempts.last() else { return Ok(None) };
        let mut step = Step::new(live);
        let sent = |step: &mut Step| {
            if attempt.sent_ms.is_none() {
                let to = if step.record().state == TxState::Signed {
                    TxState::Submitted
                } else {
                    step.record().state
                };
                step.moves_to(to).sent = Some((attempt.attempt, self.now_ms()));
            }
        };
        match outcome {
            Ok(_) | Err(SendFailure::Refused(SendError::AlreadyKnown { .. })) => sent(&mut step),
            // Used on chain already: by this very attempt (a crash before we recorded the send), or by
            // another transaction. The watcher tells which from the receipts.
            Err(SendFailure::Refused(SendError::NonceTooLow { .. })) => sent(&mut step),
            Err(SendFailure::Refused(
                SendError::Underpriced { .. }
                | SendError::FeeCapTooLow { .. }
                | SendError::ReplacementUnderpriced { .. },
            )) => {
                self.manager.forget_market(self.chain_id);
                if let Some(change) = self.reprice(live, step, None).await? {
                    return Ok(Some(change));
                }
                return Ok(None);
            }
            Err(SendFailure::Refused(
                e @ (SendError::NonceTooHigh { .. }
                | SendError::InsufficientFunds { .. }
                | SendError::PoolFull { .. }),
            )) => {
                // Waits: the gap below is being filled, funds may arrive, the pool drains.
                tracing::warn!(id = %r.id, error = %e, "broadcast refused for now; will retry");
                return Ok(None);
            }
            Err(SendFailure::Refused(e)) => {
                // Cannot be sent as is: fail the request and fill its nonce.
                tracing::warn!(id = %r.id, error = %e, "broadcast refused");
                if r.origin == "raw" || attempt.purpose == "noop" {
                    step.moves_to(TxState::Failed).error = Some(e.to_string());
                    return Ok(step.finish());
                }
                step.change().ending = Some(Some(TxState::Failed));
                step.change().error = Some(format!("refused by the node: {e}"));
                return self.reprice(live, step, Some("noop")).await;
            }
            Err(SendFailure::Chain(e)) => return Err(e.into()),
        }
        Ok(step.finish())
    }
}
