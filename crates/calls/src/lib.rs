//! The view-call proxy (the seed's read pattern: a frontend's calls made through the backend): calls
//! encoded from the configured ABIs (`abi`), pinned to a block and answered with its number and hash,
//! results cached by block hash in bounded memory, identical calls in flight coalesced, batches sent as one
//! Multicall3 `aggregate3` (`proxy`), reverts read as reasons, panics or the ABI's custom errors. The API's
//! `POST /v1/call` and `gemgate call` use it; it reaches the chain through the domain's `ViewCaller` port.

pub mod abi;
mod cache;
pub mod metrics;
mod multicall;
pub mod proxy;
pub mod reconcile;
pub mod snapshot;
pub mod view;

pub use abi::{AbiError, Catalog, Revert};
pub use metrics::CallMetrics;
pub use proxy::{CallAnswer, CallError, CallOptions, CallProxy, ViewCall};
pub use view::{CallFailure, CallInput, CallResult, Prepared};
