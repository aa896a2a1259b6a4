//! Errors of the harness. Each names what it was doing, so a failing test says which step broke.

use alloy::primitives::B256;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TestkitError {
    #[error("anvil: {0}")]
    Anvil(String),
    #[error("installing anvil with npm failed: {0}")]
    Install(String),
    #[error("the JavaScript reference libraries: {0}")]
    Js(String),
    #[error("rpc call {method} failed")]
    Rpc {
        method: &'static str,
        #[source]
        source: alloy::transports::TransportError,
    },
    #[error("{what} failed")]
    Contract {
        what: String,
        #[source]
        source: Box<alloy::contract::Error>,
    },
    #[error("{what}: transaction {tx} reverted")]
    Reverted { what: String, tx: B256 },
    #[error("{what}: no receipt for {tx} within {seconds} s")]
    NoReceipt { what: String, tx: B256, seconds: u64 },
    #[error("artifact {name}: {message}")]
    Artifact { name: String, message: String },
    #[error("{context} failed")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl TestkitError {
    pub(crate) fn rpc(method: &'static str) -> impl FnOnce(alloy::transports::TransportError) -> Self {
        move |source| TestkitError::Rpc { method, source }
    }

    pub(crate) fn contract(what: impl Into<String>) -> impl FnOnce(alloy::contract::Error) -> Self {
        let what = what.into();
        move |source| TestkitError::Contract { what, source: Box::new(source) }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| TestkitError::Io { context, source }
    }
}
