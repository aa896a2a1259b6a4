//! A fresh Postgres database per test (from `GEMGATE_TEST_POSTGRES_URL`, default the local server), or a
//! skip outside CI when Postgres is unreachable.

use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;

pub struct PostgresDb {
    pub url: String,
    server: SqlStore,
    name: String,
}

/// Creates the database `gemgate_<tag>_<pid>`; `None` (reported as skipped) when the server is unreachable
/// outside CI.
pub async fn postgres(test: &str, tag: &str) -> Option<PostgresDb> {
    let admin = std::env::var("GEMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
    let server = match SqlStore::connect(&admin, 1, ProjectionSet::default()).await {
        Ok(server) => server,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Postgres unreachable under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: Postgres unreachable ({e})");
            return None;
        }
    };
    let name = format!("gemgate_{tag}_{}", std::process::id());
    server.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    server.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    Some(PostgresDb { url, server, name })
}

impl PostgresDb {
    pub async fn drop(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        self.server.execute_admin(&sql).await.unwrap();
    }
}
