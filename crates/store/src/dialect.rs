//! The few places where SQLite and Postgres SQL differ: placeholders, column types, and casts for U256
//! (NUMERIC on Postgres) and JSON (JSONB on Postgres), which travel as text.

use gemgate_projections::{ColumnKind, TableDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The n-th (1-based) bind placeholder.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// The current time as a timestamp column's value.
    pub fn now(self) -> &'static str {
        match self {
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            Dialect::Postgres => "now()",
        }
    }

    /// A placeholder with the cast its column needs.
    pub fn param_as(self, n: usize, kind: ColumnKind) -> String {
        match (self, kind) {
            (Dialect::Postgres, ColumnKind::Num) => format!("${n}::numeric"),
            (Dialect::Postgres, ColumnKind::Json) => format!("${n}::jsonb"),
            _ => self.param(n),
        }
    }

    /// How to select a column so it decodes as its `Cell` kind (NUMERIC and JSONB come back as text).
    pub fn read(self, column: &str, kind: ColumnKind) -> String {
        match (self, kind) {
            (Dialect::Postgres, ColumnKind::Num | ColumnKind::Json) => format!("{column}::text"),
            _ => column.to_string(),
        }
    }

    /// A timestamp column as RFC 3339 text in UTC (SQLite stores it so already).
    pub fn read_time(self, column: &str) -> String {
        match self {
            Dialect::Postgres => {
                format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
            }
            Dialect::Sqlite => column.to_string(),
        }
    }

    pub fn column_type(self, kind: ColumnKind) -> &'static str {
        match (self, kind) {
            (Dialect::Sqlite, ColumnKind::Int | ColumnKind::Bool) => "INTEGER",
            (Dialect::Sqlite, _) => "TEXT",
            (Dialect::Postgres, ColumnKind::Int) => "BIGINT",
            (Dialect::Postgres, ColumnKind::Text) => "TEXT",
            (Dialect::Postgres, ColumnKind::Num) => "NUMERIC(78,0)",
            (Dialect::Postgres, ColumnKind::Bool) => "BOOLEAN",
            (Dialect::Postgres, ColumnKind::Json) => "JSONB",
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for a projection table: a text key plus its columns.
    pub fn create_table(self, table: &TableDef) -> String {
        self.create_table_as(table.name, table)
    }

    /// `CREATE TABLE IF NOT EXISTS` of a table named `name` with `table`'s columns (a rebuild's shadow).
    pub fn create_table_as(self, name: &str, table: &TableDef) -> String {
        let columns: Vec<String> =
            table.columns.iter().map(|c| format!("{} {}", c.name, self.column_type(c.kind))).collect();
        format!("CREATE TABLE IF NOT EXISTS {name} (key TEXT PRIMARY KEY, {})", columns.join(", "))
    }

    /// Upsert of a whole row by key.
    pub fn upsert(self, table: &TableDef) -> String {
        self.upsert_into(table.name, table)
    }

    /// Upsert of a whole row of `table` by key into the table named `name`.
    pub fn upsert_into(self, name: &str, table: &TableDef) -> String {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let params: Vec<String> =
            table.columns.iter().enumerate().map(|(i, c)| self.param_as(i + 2, c.kind)).collect();
        let updates: Vec<String> = names.iter().map(|n| format!("{n} = excluded.{n}")).collect();
        format!(
            "INSERT INTO {name} (key, {}) VALUES ({}, {}) ON CONFLICT (key) DO UPDATE SET {}",
            names.join(", "),
            self.param(1),
            params.join(", "),
            updates.join(", ")
        )
    }

    pub fn select_row(self, table: &TableDef) -> String {
        self.select_row_from(table.name, table)
    }

    /// A row of `table` by key, from the table named `name`.
    pub fn select_row_from(self, name: &str, table: &TableDef) -> String {
        let columns: Vec<String> = table.columns.iter().map(|c| self.read(c.name, c.kind)).collect();
        format!("SELECT {} FROM {name} WHERE key = {}", columns.join(", "), self.param(1))
    }
}
