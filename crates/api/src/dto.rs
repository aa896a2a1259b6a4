//! The API's response bodies as types: what a handler returns is what the OpenAPI document describes
//! (each derives its schema), so the two cannot drift. Request bodies live beside their handlers.

use gemgate_domain::reads::{ChainStatus, SinkBacklog};
use gemgate_txm::view::{AttemptView, TxView};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::SinkInfo;

/// `{"status": "ok" | "ready" | "unavailable"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// A configured sink and its delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkState {
    pub name: String,
    /// `amqp`, `kafka`, `nats`, `redis` or `webhook`.
    pub kind: String,
    pub finality: String,
    /// Outbox seq up to which everything is delivered or dead-lettered.
    pub position: u64,
    /// Outbox rows after the position.
    pub backlog: u64,
    pub dead_letters: u64,
    pub paused: bool,
}

impl SinkState {
    pub fn of(info: &SinkInfo, backlog: &SinkBacklog) -> Self {
        Self {
            name: info.name.clone(),
            kind: info.kind.clone(),
            finality: info.finality.clone(),
            position: backlog.position,
            backlog: backlog.backlog,
            dead_letters: backlog.dead_letters,
            paused: backlog.paused,
        }
    }
}

/// `GET /v1/status`: every chain's progress and every sink's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub chains: Vec<ChainStatus>,
    pub sinks: Vec<SinkState>,
}

/// `GET /v1/sinks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sinks {
    pub sinks: Vec<SinkState>,
}

/// A sink paused or resumed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkPaused {
    pub name: String,
    pub paused: bool,
}

/// A sink rewound for a replay: it delivers again after `position`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkReplayed {
    pub name: String,
    pub position: u64,
}

/// A sink's dead letters sent again.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkRequeued {
    pub name: String,
    pub requeued: u64,
}

/// A page of trade deals (projection rows; U256 values as decimal strings).
#[derive(Debug, Serialize, ToSchema)]
pub struct TradeDeals {
    #[schema(value_type = Vec<Object>)]
    pub trade_deals: Vec<Value>,
    /// Pass as `after` for the next page.
    pub next: Option<String>,
}

/// A page of projection rows (U256 values as decimal strings).
#[derive(Debug, Serialize, ToSchema)]
pub struct Rows {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// Pass as `after` for the next page.
    pub next: Option<String>,
}

/// An inbound webhook accepted (`duplicate`: its id was stored before).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    pub id: String,
    pub duplicate: bool,
}

/// A transaction request: the record, with its attempts and confirmations (`GET /v1/transactions/{id}`)
/// or its creation time (in list pages).
#[derive(Debug, Serialize, ToSchema)]
pub struct Transaction<'a> {
    #[serde(flatten)]
    pub record: TxView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView<'a>>>,
    /// Blocks from the inclusion to the head, the including block counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// RFC 3339, in list pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<&'a str>,
    /// The users' ERC-2771 requests a relayed transaction (`origin` `relay`) carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relayed: Option<Vec<RelayedView<'a>>>,
}

impl<'a> Transaction<'a> {
    pub fn of(record: &'a gemgate_domain::ledger::TxRecord) -> Self {
        Self {
            record: TxView::of(record),
            attempts: None,
            confirmations: None,
            created_at: None,
            relayed: None,
        }
    }
}

/// A user's meta-request inside a relayed transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayedView<'a> {
    /// The user (`from` of the request, `_msgSender()` in the target).
    pub from: &'a str,
    /// The target contract.
    pub to: &'a str,
    /// The forwarder nonce the request spends, decimal.
    pub nonce: &'a str,
    /// The EIP-712 digest the user signed.
    pub digest: &'a str,
    pub relayer: &'a str,
    /// Unix seconds.
    pub deadline: u64,
}

impl<'a> RelayedView<'a> {
    pub fn of(call: &'a gemgate_domain::relay::RelayedCall) -> Self {
        Self {
            from: &call.from,
            to: &call.to,
            nonce: &call.nonce,
            digest: &call.digest,
            relayer: &call.relayer,
            deadline: call.deadline,
        }
    }
}

/// `GET /v1/transactions`: requests newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transactions<'a> {
    pub transactions: Vec<Transaction<'a>>,
    /// Pass as `after` for the next page.
    pub next: Option<String>,
}

/// `POST /v1/call` with an array: each call's result in order, each with its own `error` if it failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallResults {
    pub results: Vec<gemgate_calls::CallResult>,
}

/// `POST /v1/call`'s answer: one call's result, or `{"results": [...]}` for an array.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
#[allow(clippy::large_enum_variant)] // a schema for the document, never built
pub enum CallAnswerBody {
    One(gemgate_calls::CallResult),
    Many(CallResults),
}

/// Every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code (`invalid_parameter`, `not_found`, `unauthorized`, ...).
    pub code: &'static str,
    pub message: String,
}
