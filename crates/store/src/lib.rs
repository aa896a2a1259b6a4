//! Storage: the `Store` port on SQLite (the embedded default, WAL mode) and Postgres, with migrations
//! per backend (`migrations/`), the write path (`write`), bulk inserts (`bulk`) and the reads the API
//! serves (`read`), and the outbox as dispatchers read it (`delivery`). Every committed batch and every revert is one database transaction.
//!
//! Projection tables are created from their definitions (`gemgate-projections`) at migration time; the
//! core tables come from the SQL migrations.

mod bulk;
mod cells;
mod conn;
mod dialect;
pub mod read;
mod reads_port;
mod write;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use gemgate_domain::cluster::Fence;
use gemgate_domain::ports::{Batch, Heads, RevertSummary, Store};
use gemgate_domain::{BlockRef, ChainId, StoreError};
use gemgate_projections::{ColumnKind, ProjectionSet};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use conn::{Bind, Conn};
pub use dialect::Dialect;
pub use write::Tx;

use conn::db_error;

/// SQLite waits this long for a lock held by another connection before reporting the database busy.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool,
    projections: ProjectionSet,
    /// SQLite has one writer at a time; writers of this process take turns here instead of in SQLite's busy
    /// handler, which sleeps in growing steps while the lock is held (most of the time under load).
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Runs `$body` with `$tx: &mut dyn Tx` inside a transaction, committing on `Ok`.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite(pool) => {
                let _turn = $store.write_gate.lock().await;
                // IMMEDIATE takes the write lock up front, so two writers wait in turn instead of deadlocking.
                let mut owned = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
                let result = {
                    let $tx: &mut dyn Tx = &mut owned;
                    $body
                };
                if result.is_ok() {
                    owned.commit().await.map_err(db_error)?;
                }
                result
            }
            Pool::Postgres(pool) => {
                let mut owned = pool.begin().await.map_err(db_error)?;
                let result = {
                    let $tx: &mut dyn Tx = &mut owned;
                    $body
                };
                if result.is_ok() {
                    owned.commit().await.map_err(db_error)?;
                }
                result
            }
        }
    };
}

// After `in_tx!`, which it uses.
mod audit;
pub mod delivery;
mod drift;
mod leases;
pub mod ledger;
pub mod rebuild;
mod refetch;
pub mod snapshot;
mod state;

impl SqlStore {
    /// Connects to `sqlite://FILE` (created if missing, WAL mode) or `postgres://...`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        projections: ProjectionSet,
    ) -> Result<Self, StoreError> {
        Self::connect_with(url, max_connections, projections, None).await
    }

    /// `connect`, and on Postgres with `idle_in_transaction`: the server ends a session that sits inside a
    /// transaction that long (a process paused mid-commit), so the row locks it held (a lease, a cursor) do
    /// not keep the process that takes over waiting.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        projections: ProjectionSet,
        idle_in_transaction: Option<Duration>,
    ) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(db_error)?;
            if let Some(idle) = idle_in_transaction {
                let ms = idle.as_millis().max(1).to_string();
                options = options.options([("idle_in_transaction_session_timeout", ms.as_str())]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .map_err(db_error)?;
            Pool::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Database { message: format!("bad SQLite URL: {e}") })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // With WAL, NORMAL loses nothing on a process crash; only an OS crash can drop the last commits.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options)
                .await
                .map_err(db_error)?;
            Pool::Sqlite(pool)
        };
        Ok(Self { pool, projections, write_gate: Default::default() })
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn projections(&self) -> &ProjectionSet {
        &self.projections
    }

    /// Writes projection rows outside any batch, in one transaction and without journal entries: for state
    /// read from the chain itself that no event explains (the Diamond loupe repair), which a reorg of
    /// later blocks must not undo.
    pub async fn write_rows(&self, writes: &[gemgate_projections::RowWrite]) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            for w in writes {
                write::write_row(tx, w.table, &w.key, w.row.as_ref()).await?;
            }
            Ok::<(), StoreError>(())
        })
    }

    /// Applies the SQL migrations (sqlx takes its own lock for them) and creates missing projection tables.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrated = match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        migrated.map_err(|e| StoreError::Database { message: format!("migration failed: {e}") })?;
        self.create_projection_tables().await
    }

    /// Creates the projection tables that are missing. On Postgres, processes starting together take turns
    /// (a transaction advisory lock): `CREATE TABLE IF NOT EXISTS` is not safe to race there.
    async fn create_projection_tables(&self) -> Result<(), StoreError> {
        let tables = self.projections.tables();
        in_tx!(self, tx => {
            let mut result = Ok(());
            if tx.dialect() == Dialect::Postgres {
                // "gemgate" in ASCII: one key for every gemgate database on the server is fine (a brief wait).
                result = tx.execute("SELECT pg_advisory_xact_lock(29111316066103909)", Vec::new()).await.map(|_| ());
            }
            for table in tables.iter().filter(|_| result.is_ok()) {
                let sql = tx.dialect().create_table(table);
                if let Err(e) = tx.execute(&sql, Vec::new()).await {
                    result = Err(e);
                    break;
                }
            }
            result
        })
    }

    /// Runs a read-only closure in a transaction (used by `read`).
    pub(crate) async fn with_tx<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t mut dyn Tx,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 't>,
        >,
    {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                f(&mut tx).await
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                f(&mut tx).await
            }
        }
    }

    /// Begins a write transaction the caller commits (for consumers keeping their own tables in the same
    /// database transaction as their bookkeeping). Dropped without `commit`, it rolls back.
    pub async fn begin(&self) -> Result<OwnedTx, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool) => {
                let turn = self.write_gate.clone().lock_owned().await;
                OwnedTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?, turn)
            }
            Pool::Postgres(pool) => OwnedTx::Postgres(pool.begin().await.map_err(db_error)?),
        })
    }

    /// Closes the pool (tests reopen databases).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn cursor(&self, chain_id: ChainId) -> Result<Option<BlockRef>, StoreError> {
        self.with_tx(|tx| Box::pin(write::stored_cursor(tx, chain_id))).await
    }

    async fn window(&self, chain_id: ChainId) -> Result<Vec<BlockRef>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT number, hash, parent_hash FROM blocks WHERE chain_id = {} ORDER BY number",
                    tx.dialect().param(1)
                );
                let rows = tx
                    .fetch(
                        &sql,
                        vec![Bind::int(chain_id)],
                        &[ColumnKind::Int, ColumnKind::Text, ColumnKind::Text],
                    )
                    .await?;
                rows.iter().map(|r| cells::block_from_cells(r)).collect()
            })
        })
        .await
    }

    async fn commit_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        let projections = &self.projections;
        in_tx!(self, tx => {
            leases::check(tx, batch.fence.as_ref()).await?;
            write::commit_batch(tx, projections, batch).await
        })
    }

    async fn revert_to(
        &self,
        chain_id: ChainId,
        ancestor: &BlockRef,
        fence: Option<&Fence>,
    ) -> Result<RevertSummary, StoreError> {
        let projections = &self.projections;
        in_tx!(self, tx => {
            leases::check(tx, fence).await?;
            write::revert_to(tx, projections, chain_id, ancestor).await
        })
    }

    async fn record_heads(
        &self,
        chain_id: ChainId,
        heads: &Heads,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            leases::check(tx, fence).await?;
            write::record_heads(tx, chain_id, heads).await
        })
    }
}

/// An open write transaction on either backend.
#[derive(Debug)]
pub enum OwnedTx {
    /// With this process's turn at writing (released when the transaction ends).
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>, tokio::sync::OwnedMutexGuard<()>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl OwnedTx {
    pub fn tx(&mut self) -> &mut dyn Tx {
        match self {
            OwnedTx::Sqlite(tx, _) => tx,
            OwnedTx::Postgres(tx) => tx,
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            OwnedTx::Sqlite(tx, _) => tx.commit().await,
            OwnedTx::Postgres(tx) => tx.commit().await,
        }
        .map_err(db_error)
    }
}

impl SqlStore {
    /// Runs one statement outside any transaction (`CREATE DATABASE` for tests and benchmarks).
    pub async fn execute_admin(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
        .map_err(db_error)
    }
}
