//! What the transaction manager's tests share: a ledger, and a manager with its workers running on anvil.

use std::collections::HashMap;
use std::sync::Arc;

use gemgate_chain::{RetryPolicy, TxRpc};
use gemgate_domain::ports::Broadcaster;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::Anvil;
use gemgate_txm::{NamedSigner, TxManager, TxmOptions, worker};

/// A migrated ledger at `url`, or in a SQLite file in `dir`.
pub async fn ledger(url: Option<&str>, dir: &std::path::Path) -> SqlStore {
    let url = url.map(str::to_string).unwrap_or_else(|| format!("sqlite://{}", dir.join("txm.db").display()));
    let store = SqlStore::connect(&url, 8, ProjectionSet::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A manager sending with `signer` on anvil, its workers running until `stop` is sent `true`.
pub struct Running {
    pub manager: Arc<TxManager>,
    /// The ledger's database, for what the manager's port does not offer (the outbox, closing).
    #[allow(dead_code)] // the lifecycle tests read it; the DFNS and KMS tests share this module
    pub store: SqlStore,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub workers: Vec<tokio::task::JoinHandle<()>>,
}

/// A manager sending with `signer` on anvil, without workers (a front door that only accepts requests).
#[allow(dead_code)] // the lifecycle tests accept before any worker runs; the DFNS and KMS tests do not
pub fn manager(store: &SqlStore, anvil: &Anvil, signer: NamedSigner, options: TxmOptions) -> TxManager {
    let rpc_url: url::Url = anvil.endpoint().parse().unwrap();
    let rpc: Arc<dyn Broadcaster> =
        Arc::new(TxRpc::new(anvil.chain_id(), vec![(rpc_url, "anvil".into())], RetryPolicy::default()));
    TxManager::new(
        Arc::new(store.clone()),
        HashMap::from([(anvil.chain_id(), rpc)]),
        HashMap::from([(signer.name.clone(), signer)]),
        options,
    )
}

pub fn start(store: SqlStore, anvil: &Anvil, signer: NamedSigner, options: TxmOptions) -> Running {
    let manager = Arc::new(manager(&store, anvil, signer, options));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = worker::spawn_all(&manager, "test", &stopped);
    Running { manager, store, stop, workers }
}

impl Running {
    /// Stops the workers and waits for them (a worker that panicked fails the test here).
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        for worker in self.workers {
            worker.await.unwrap();
        }
    }
}
