//! One database transaction, whichever the backend: a small interface (`Conn`) that the write and read
//! logic is written against once, implemented for SQLite and Postgres transactions. Values travel as
//! `Bind`s; NUMERIC and JSONB are text on the wire, cast by the SQL the dialect writes.

use std::str::FromStr;

use alloy_primitives::U256;
use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_projections::{Cell, ColumnKind};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Sqlite, Transaction};

use crate::dialect::Dialect;

/// A value to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

impl Bind {
    pub fn int(v: u64) -> Self {
        Bind::Int(Some(v as i64))
    }

    pub fn text(v: impl Into<String>) -> Self {
        Bind::Text(Some(v.into()))
    }

    /// A cell as the value of a column of `kind`.
    pub fn cell(cell: Option<&Cell>, kind: ColumnKind) -> Self {
        match (cell, kind) {
            (None | Some(Cell::Null), ColumnKind::Int) => Bind::Int(None),
            (None | Some(Cell::Null), ColumnKind::Bool) => Bind::Bool(None),
            (None | Some(Cell::Null), _) => Bind::Text(None),
            (Some(Cell::Int(i)), _) => Bind::Int(Some(*i)),
            (Some(Cell::Bool(b)), _) => Bind::Bool(Some(*b)),
            (Some(Cell::Text(s)), _) => Bind::Text(Some(s.clone())),
            (Some(Cell::Num(n)), _) => Bind::Text(Some(n.to_string())),
            (Some(Cell::Json(v)), _) => Bind::Text(Some(v.to_string())),
        }
    }
}

/// Database errors, typed for retry loops: connection-level trouble is retryable, the rest is not.
pub fn db_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable { message: error.to_string() },
        sqlx::Error::Database(ref db) if db.message().contains("database is locked") => {
            StoreError::Unavailable { message: error.to_string() }
        }
        // Postgres ended the session (an idle-in-transaction timeout after this process was paused, an
        // administrator, a restart), lost the connection, or gave up a transaction to a conflict: try again.
        sqlx::Error::Database(ref db)
            if db.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57")
                    || ["25P03", "40001", "40P01"].contains(&&*code)
            }) =>
        {
            StoreError::Unavailable { message: error.to_string() }
        }
        other => StoreError::Database { message: other.to_string() },
    }
}

/// Decodes a text column into a cell of `kind`.
fn text_cell(text: Option<String>, kind: ColumnKind) -> Result<Cell, StoreError> {
    let bad = |what: &str| StoreError::Database { message: format!("stored {what} does not parse") };
    Ok(match (text, kind) {
        (None, _) => Cell::Null,
        (Some(t), ColumnKind::Num) => Cell::Num(U256::from_str(&t).map_err(|_| bad("number"))?),
        (Some(t), ColumnKind::Json) => Cell::Json(serde_json::from_str(&t).map_err(|_| bad("JSON"))?),
        (Some(t), _) => Cell::Text(t),
    })
}

/// A transaction the store logic runs in.
#[async_trait]
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;
    async fn execute(&mut self, sql: &str, binds: Vec<Bind>) -> Result<u64, StoreError>;
    /// Rows of cells, each column decoded as its kind.
    async fn fetch(
        &mut self,
        sql: &str,
        binds: Vec<Bind>,
        kinds: &[ColumnKind],
    ) -> Result<Vec<Vec<Cell>>, StoreError>;
}

/// A query with its binds applied in order.
fn bound<DB>(
    sql: &str,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    Option<i64>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    Option<String>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    Option<bool>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    binds.into_iter().fold(sqlx::query::<DB>(AssertSqlSafe(sql.to_string())), |query, bind| match bind {
        Bind::Int(v) => query.bind(v),
        Bind::Text(v) => query.bind(v),
        Bind::Bool(v) => query.bind(v),
    })
}

macro_rules! impl_conn {
    ($db:ty, $dialect:expr) => {
        #[async_trait]
        impl Conn for Transaction<'static, $db> {
            fn dialect(&self) -> Dialect {
                $dialect
            }

            async fn execute(&mut self, sql: &str, binds: Vec<Bind>) -> Result<u64, StoreError> {
                let query = bound::<$db>(sql, binds);
                Ok(query.execute(&mut **self).await.map_err(db_error)?.rows_affected())
            }

            async fn fetch(
                &mut self,
                sql: &str,
                binds: Vec<Bind>,
                kinds: &[ColumnKind],
            ) -> Result<Vec<Vec<Cell>>, StoreError> {
                let query = bound::<$db>(sql, binds);
                let rows = query.fetch_all(&mut **self).await.map_err(db_error)?;
                rows.iter()
                    .map(|row| {
                        kinds
                            .iter()
                            .enumerate()
                            .map(|(i, kind)| match kind {
                                ColumnKind::Int => Ok(row
                                    .try_get::<Option<i64>, _>(i)
                                    .map_err(db_error)?
                                    .map_or(Cell::Null, Cell::Int)),
                                ColumnKind::Bool => Ok(row
                                    .try_get::<Option<bool>, _>(i)
                                    .map_err(db_error)?
                                    .map_or(Cell::Null, Cell::Bool)),
                                _ => text_cell(row.try_get::<Option<String>, _>(i).map_err(db_error)?, *kind),
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    };
}

impl_conn!(Sqlite, Dialect::Sqlite);
impl_conn!(Postgres, Dialect::Postgres);
