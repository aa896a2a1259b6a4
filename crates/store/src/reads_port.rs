//! The `ReadModel` and `DeliveryControl` ports over the SQL reads (`read.rs`) and delivery control
//! (`delivery.rs`): what the API serves.

use std::collections::BTreeMap;

use async_trait::async_trait;
use gemgate_domain::ports::{DeliveryControl, Heads, ReadModel};
use gemgate_domain::reads::{ChainStatus, EventPage, EventQuery, ReplayFrom, SinkBacklog};
use gemgate_domain::{ChainId, StoreError};

use crate::SqlStore;

#[async_trait]
impl ReadModel for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn heads(&self) -> Result<BTreeMap<ChainId, Heads>, StoreError> {
        SqlStore::heads(self).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = ?query.chain_id, limit = query.limit))]
    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        SqlStore::events(self, query).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn chain_status(&self) -> Result<Vec<ChainStatus>, StoreError> {
        SqlStore::chain_status(self).await
    }

    fn projection_tables(&self) -> Vec<&'static str> {
        self.projections().tables().iter().map(|t| t.name).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(table = %table, limit))]
    async fn projection_rows(
        &self,
        table: &str,
        key: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<Option<Vec<serde_json::Value>>, StoreError> {
        match self.projections().table(table) {
            Some(table) => SqlStore::projection_rows(self, table, key, after, limit).await.map(Some),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl DeliveryControl for SqlStore {
    #[tracing::instrument(level = "debug", skip_all, fields(sinks = sinks.len()))]
    async fn sink_backlogs(&self, sinks: &[String]) -> Result<Vec<SinkBacklog>, StoreError> {
        SqlStore::sink_backlogs(self, sinks).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink = %sink, paused))]
    async fn set_sink_paused(&self, sink: &str, paused: bool) -> Result<(), StoreError> {
        SqlStore::set_sink_paused(self, sink, paused).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(from = ?from))]
    async fn position_before(&self, from: ReplayFrom) -> Result<u64, StoreError> {
        SqlStore::position_before(self, from).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink = %sink, position))]
    async fn rewind_sink(&self, sink: &str, position: u64) -> Result<(), StoreError> {
        SqlStore::rewind_sink(self, sink, position).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sink = %sink))]
    async fn requeue_dead_letters(&self, sink: &str) -> Result<u64, StoreError> {
        SqlStore::requeue_dead_letters(self, sink).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(source = %source, id = %id))]
    async fn store_inbound_webhook(
        &self,
        source: &str,
        id: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        SqlStore::store_inbound_webhook(self, source, id, payload).await
    }
}
