//! gemgate's domain: the values every part agrees on (blocks, events, cursors, outbox messages, transaction
//! states) and the ports, one trait per outside capability, through which the engines reach the world.
//!
//! This crate does no I/O and depends on no I/O crate. Adapters (the `chain`, `store`, `sinks` and `txm`
//! crates) implement the ports; only the binary wires concrete adapters to engines.

pub mod backoff;
pub mod block;
pub mod broadcast;
pub mod calls;
pub mod cluster;
pub mod error;
pub mod event;
pub mod finality;
pub mod ledger;
pub mod outbox;
pub mod ports;
pub mod reads;
pub mod relay;
pub mod signature;
pub mod state;
pub mod tx;

pub use block::{BlockRef, ChainId, Header};
pub use error::{ChainError, RangeHint, SendError, SignerError, SinkError, StoreError};
pub use event::{ChainEvent, ENVELOPE_SCHEMA, EventId, EventStatus};
pub use finality::{Finality, FinalityLevel};
pub use outbox::{MessageFilter, OutboxMessage};
pub use tx::TxState;
