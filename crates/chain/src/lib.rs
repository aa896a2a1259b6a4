//! Chain adapters: the `ChainSource` port over alloy HTTP providers, with typed errors read from the real
//! error texts of nodes and providers, retries with backoff and jitter, and failover across several RPC
//! URLs by health. `classify_send` reads why a node refused a transaction (for the transaction manager).
//!
//! This crate reports blocks and logs as the nodes give them. It never decides what a reorg is (the
//! indexer's window does) and never retries a request whose error says retrying cannot help.

mod classify;
mod endpoints;
mod heads;
mod loupe;
mod metrics;
mod send_errors;
mod source;
mod txrpc;

pub use classify::{classify, range_hint};
pub use endpoints::{Endpoint, Endpoints, RetryPolicy};
pub use gemgate_domain::RangeHint;
pub use heads::{WsEndpoint, subscribe_heads};
pub use loupe::diamond_facets;
pub use metrics::RpcMetrics;
pub use send_errors::{classify_send, send_error};
pub use source::EvmChain;
pub use txrpc::TxRpc;
