//! Sinks: one module and one cargo feature per destination, each implementing the `Sink` port.
//! `build` turns a configured `[[sinks]]` entry into a sink. `signature` holds the webhook signing and
//! verification helpers (also for receivers written in Rust).
//!
//! Built: AMQP (`amqp`, RabbitMQ), Kafka (`kafka`, librdkafka built from source: needs a C compiler and
//! make), NATS JetStream (`nats`), Redis Streams (`redis`) and signed webhooks (`webhook`).

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod cloudevents;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "webhook")]
pub mod webhook;

use std::sync::Arc;

/// Webhook signing and verification (`gemgate_sinks::signature::verify` for receivers written in Rust).
pub use gemgate_domain::signature;

#[cfg(feature = "webhook")]
use gemgate_config::WebhookSignature;
use gemgate_config::{SinkKind, SinkSettings};
use gemgate_domain::ports::Sink;

/// Why a configured sink cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("sink {sink}: kind {kind:?} is not built into this gemgate ({why})")]
    NotBuilt { sink: String, kind: &'static str, why: &'static str },
    #[error("sink {sink}: {message}")]
    Invalid { sink: String, message: String },
}

/// The sink for a configured `[[sinks]]` entry.
pub fn build(settings: &SinkSettings) -> Result<Arc<dyn Sink>, BuildError> {
    let not_built =
        |why| BuildError::NotBuilt { sink: settings.name.clone(), kind: settings.kind.name(), why };
    let format = settings.format;
    match &settings.kind {
        #[cfg(feature = "amqp")]
        SinkKind::Amqp { url, exchange, queue } => {
            if url.scheme() == "amqps" && !cfg!(feature = "amqp-tls") {
                return Err(not_built("amqps needs the amqp-tls cargo feature"));
            }
            let sink = amqp::AmqpSink::new(&settings.name, url.expose().clone(), exchange, queue.clone());
            Ok(Arc::new(sink.with_format(format)))
        }
        #[cfg(feature = "webhook")]
        SinkKind::Webhook { url, secrets, strict_order, signature } => {
            let invalid = |message: String| BuildError::Invalid { sink: settings.name.clone(), message };
            let keys = secrets
                .iter()
                .map(|s| match signature {
                    WebhookSignature::Standard => gemgate_domain::signature::standard_key(s.expose())
                        .map_err(|e| invalid(e.to_string())),
                    WebhookSignature::Gemgate => Ok(s.expose().as_bytes().to_vec()),
                })
                .collect::<Result<_, _>>()?;
            let sink = webhook::WebhookSink::new(&settings.name, url.expose().clone(), keys, *strict_order)
                .map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(sink.with_signature(*signature).with_format(format)))
        }
        #[cfg(feature = "nats")]
        SinkKind::Nats { url, subject, stream } => {
            let sink = nats::NatsSink::new(&settings.name, url.expose().clone(), subject, stream);
            Ok(Arc::new(sink.with_format(format)))
        }
        #[cfg(feature = "redis")]
        SinkKind::Redis { url, stream, maxlen } => {
            let sink = redis::RedisSink::new(&settings.name, url.expose().clone(), stream, *maxlen);
            Ok(Arc::new(sink.with_format(format)))
        }
        #[cfg(feature = "kafka")]
        SinkKind::Kafka { brokers, topic } => {
            Ok(Arc::new(kafka::KafkaSink::new(&settings.name, brokers, topic).with_format(format)))
        }
        #[allow(unreachable_patterns)]
        _ => Err(not_built("its cargo feature is off")),
    }
}

/// `<chain_id>.<contract>.<event>` for chain events, `<chain_id>.<kind>` for other messages: the AMQP
/// routing key and the tail of NATS subjects.
pub fn routing_suffix(message: &gemgate_domain::OutboxMessage) -> String {
    if message.kind == "event" {
        let event = if message.event.is_empty() { "unknown" } else { &message.event };
        let contract = if message.contract.is_empty() { "unknown" } else { &message.contract };
        format!("{}.{contract}.{event}", message.chain_id)
    } else {
        format!("{}.{}", message.chain_id, message.kind)
    }
}
