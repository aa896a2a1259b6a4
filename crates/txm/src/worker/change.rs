//! The change a step makes to one request, built as the step decides.

use gemgate_domain::TxState;
use gemgate_domain::ledger::{LiveTx, TxChange, TxRecord, ordering_key};

use crate::view;

/// What a worker does with one request in one pass.
pub(super) struct Step<'a> {
    live: &'a LiveTx,
    change: Option<TxChange>,
}

impl<'a> Step<'a> {
    pub(super) fn new(live: &'a LiveTx) -> Self {
        Self { live, change: None }
    }

    pub(super) fn record(&self) -> &TxRecord {
        &self.live.record
    }

    /// The change being built (created on first use, in the request's current state).
    pub(super) fn change(&mut self) -> &mut TxChange {
        let r = &self.live.record;
        self.change.get_or_insert_with(|| {
            TxChange::new(&r.id, r.revision, r.state, r.chain_id, ordering_key(r.chain_id, &r.sender))
        })
    }

    pub(super) fn moves_to(&mut self, state: TxState) -> &mut TxChange {
        let change = self.change();
        change.to = state;
        change
    }

    /// The change with its outbox payload (the record as it will be).
    pub(super) fn finish(self) -> Option<TxChange> {
        let mut change = self.change?;
        change.payload = Some(view::payload(&change.applied_to(&self.live.record)));
        Some(change)
    }
}
