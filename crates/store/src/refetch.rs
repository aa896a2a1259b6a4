//! Stored events refreshed from the chain (`gemgate replay --from-chain`): a block range's logs, decoded
//! with the ABIs configured now, replace the stored events of those blocks in one transaction; events not
//! stored before (a contract's ABI or address added) are inserted with their outbox rows, so sinks hear
//! of them. The cursor is locked, so the indexer waits; a range above the cursor, or one whose blocks the
//! chain has replaced since they were indexed, is refused.

use std::collections::HashMap;

use async_trait::async_trait;
use gemgate_domain::ports::EventRefresh;
use gemgate_domain::{ChainEvent, ChainId, StoreError};
use gemgate_projections::ColumnKind;

use crate::conn::{Bind, db_error};
use crate::write::{self, Tx};
use crate::{Dialect, Pool, SqlStore};

fn moved(chain_id: ChainId, block: u64) -> StoreError {
    StoreError::Database {
        message: format!(
            "chain {chain_id}: block {block} is not the block the stored events came from (a reorg since it was \
             indexed): let `gemgate index` follow the chain, then replay again"
        ),
    }
}

async fn refresh(
    tx: &mut dyn Tx,
    chain_id: ChainId,
    from: u64,
    to: u64,
    last: u64,
    events: &[ChainEvent],
) -> Result<(u64, u64), StoreError> {
    let cursor = write::locked_cursor(tx, chain_id).await?;
    if cursor.is_none_or(|c| c.number < to) {
        return Err(StoreError::Database {
            message: format!("chain {chain_id}: block {to} is above the indexed cursor; index it first"),
        });
    }
    let d = tx.dialect();
    let range = || vec![Bind::int(chain_id), Bind::int(from), Bind::int(to)];
    let (p1, p2, p3) = (d.param(1), d.param(2), d.param(3));
    let stored: HashMap<(u64, u64), String> = tx
        .fetch(
            &format!(
                "SELECT block_number, log_index, id FROM events WHERE chain_id = {p1} AND block_number BETWEEN {p2} AND {p3}"
            ),
            range(),
            &[ColumnKind::Int, ColumnKind::Int, ColumnKind::Text],
        )
        .await?
        .iter()
        .map(|r| ((crate::cells::int(&r[0]), crate::cells::int(&r[1])), r[2].as_text().unwrap_or_default().to_string()))
        .collect();
    let window: HashMap<u64, String> = tx
        .fetch(
            &format!(
                "SELECT number, hash FROM blocks WHERE chain_id = {p1} AND number BETWEEN {p2} AND {p3}"
            ),
            range(),
            &[ColumnKind::Int, ColumnKind::Text],
        )
        .await?
        .iter()
        .map(|r| (crate::cells::int(&r[0]), r[1].as_text().unwrap_or_default().to_string()))
        .collect();
    let json = |n: usize| match d {
        Dialect::Postgres => format!("${n}::json"),
        Dialect::Sqlite => d.param(n),
    };
    let update = format!(
        "UPDATE events SET contract = {}, event = {}, signature = {}, args = {}, topics = {}, data = {}, \
         tx_from = COALESCE({}, tx_from) WHERE chain_id = {} AND block_number = {} AND log_index = {}",
        d.param(1),
        d.param(2),
        d.param(3),
        json(4),
        json(5),
        d.param(6),
        d.param(7),
        d.param(8),
        d.param(9),
        d.param(10)
    );
    let mut fresh = Vec::new();
    let mut updated = 0;
    for event in events {
        if window.get(&event.block_number).is_some_and(|hash| *hash != event.block_hash.to_string()) {
            return Err(moved(chain_id, event.block_number));
        }
        match stored.get(&(event.block_number, event.log_index)) {
            Some(id) if *id != event.id.to_string() => return Err(moved(chain_id, event.block_number)),
            Some(_) => {
                let row = &write::event_rows(std::slice::from_ref(event))[0];
                tx.execute(
                    &update,
                    vec![
                        Bind::text(row.contract.clone()),
                        Bind::text(row.event.clone()),
                        Bind::text(row.signature.clone()),
                        Bind::Text(row.args.clone()),
                        Bind::text(row.topics.clone()),
                        Bind::text(row.data.clone()),
                        Bind::Text(row.tx_from.clone()),
                        Bind::int(chain_id),
                        Bind::int(event.block_number),
                        Bind::int(event.log_index),
                    ],
                )
                .await?;
                updated += 1;
            }
            None => fresh.push(event.clone()),
        }
    }
    tx.insert_events(&write::event_rows(&fresh)).await?;
    let outbox: Vec<_> = fresh.iter().map(write::event_outbox_row).collect();
    tx.insert_outbox(&outbox).await?;
    tx.execute(
        &format!(
            "INSERT INTO refetch_positions (chain_id, next_block, last_block) VALUES ({p1}, {p2}, {p3}) \
             ON CONFLICT (chain_id) DO UPDATE SET next_block = excluded.next_block, last_block = excluded.last_block"
        ),
        vec![Bind::int(chain_id), Bind::int(to + 1), Bind::int(last)],
    )
    .await?;
    Ok((updated, fresh.len() as u64))
}

#[async_trait]
impl EventRefresh for SqlStore {
    async fn refetch_position(&self, chain_id: ChainId) -> Result<Option<(u64, u64)>, StoreError> {
        self.with_tx(move |tx| {
            Box::pin(async move {
                let p1 = tx.dialect().param(1);
                let rows = tx
                    .fetch(
                        &format!(
                            "SELECT next_block, last_block FROM refetch_positions WHERE chain_id = {p1}"
                        ),
                        vec![Bind::int(chain_id)],
                        &[ColumnKind::Int, ColumnKind::Int],
                    )
                    .await?;
                Ok(rows.first().map(|r| (crate::cells::int(&r[0]), crate::cells::int(&r[1]))))
            })
        })
        .await
    }

    async fn refresh_events(
        &self,
        chain_id: ChainId,
        from: u64,
        to: u64,
        last: u64,
        events: &[ChainEvent],
    ) -> Result<(u64, u64), StoreError> {
        in_tx!(self, tx => refresh(tx, chain_id, from, to, last, events).await)
    }

    async fn finish_refetch(&self, chain_id: ChainId) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let p1 = tx.dialect().param(1);
            tx.execute(&format!("DELETE FROM refetch_positions WHERE chain_id = {p1}"), vec![Bind::int(chain_id)])
                .await
                .map(|_| ())
        })
    }
}
