//! NATS JetStream through async-nats: subject `<subject>.<chain_id>.<contract>.<event>`
//! (`<subject>.<chain_id>.<kind>` for other messages) in the stream `stream` (default `GEMGATE`, created if
//! missing with subjects `<subject>.>`), headers `Gemgate-Id` (the event id), `Gemgate-Status` and
//! `Nats-Msg-Id`, and a publish ack awaited for every message. A batch is published pipelined and its acks
//! awaited in order.
//!
//! `Nats-Msg-Id` is `<event id>:<outbox position>`, one value per outbox row: JetStream drops a re-send of
//! the same row within its duplicate window, while a retraction (same event id) or an event a second reorg
//! brings back (same id again) is a row of its own and gets through. With the bare event id, JetStream
//! would drop both.
//!
//! As CloudEvents (`format = "cloudevents"`), per the NATS binding: structured, the payload is the event in
//! JSON; binary, the payload stays the envelope and every attribute is a `ce-<attribute>` header
//! (`ce-datacontenttype` included), values percent-encoded as the binding says. Structured events carry a
//! `content-type: application/cloudevents+json` header as well, so receivers can tell the mode.

use async_nats::jetstream;
use std::future::IntoFuture;

use async_trait::async_trait;
use gemgate_config::MessageFormat;
use gemgate_domain::ports::{Sink, SinkFailure};
use gemgate_domain::{OutboxMessage, SinkError};
use tokio::sync::Mutex;

use crate::{cloudevents, routing_suffix};

/// JetStream's deduplication key: one per outbox row (see the module docs).
pub fn msg_id(message: &OutboxMessage) -> String {
    message.delivery_id()
}

/// The longest one connect, publish or ack may take before the server counts as unavailable.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct NatsSink {
    name: String,
    url: url::Url,
    subject: String,
    stream: String,
    format: MessageFormat,
    context: Mutex<Option<jetstream::Context>>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry credentials: never printed.
        f.debug_struct("NatsSink")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    pub fn new(name: &str, url: url::Url, subject: &str, stream: &str) -> Self {
        Self {
            name: name.to_string(),
            url,
            subject: subject.trim_end_matches('.').to_string(),
            stream: stream.to_string(),
            format: MessageFormat::Envelope,
            context: Mutex::new(None),
        }
    }

    /// Sends each message in `format` (the envelope by default).
    pub fn with_format(mut self, format: MessageFormat) -> Self {
        self.format = format;
        self
    }

    fn unavailable(&self, message: String) -> SinkError {
        SinkError::Unavailable { sink: self.name.clone(), message }
    }

    /// The subject of a message.
    pub fn subject_of(&self, message: &OutboxMessage) -> String {
        format!("{}.{}", self.subject, routing_suffix(message))
    }

    async fn connect(&self) -> Result<jetstream::Context, SinkError> {
        let options = async_nats::ConnectOptions::new().connection_timeout(TIMEOUT);
        let client = tokio::time::timeout(TIMEOUT, options.connect(self.url.as_str()))
            .await
            .map_err(|_| self.unavailable("connecting to NATS timed out".into()))?
            .map_err(|e| self.unavailable(format!("cannot connect to NATS: {e}")))?;
        let context = jetstream::new(client);
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.subject)],
                ..Default::default()
            })
            .await
            .map_err(|e| self.unavailable(format!("cannot create or read stream {}: {e}", self.stream)))?;
        Ok(context)
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        let mut guard = self.context.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await.map_err(|error| SinkFailure { delivered: 0, error })?);
        }
        let Some(context) = guard.as_ref() else { unreachable!("connected above") };
        let mut acks = Vec::with_capacity(messages.len());
        let mut failure = None;
        for (i, message) in messages.iter().enumerate() {
            let encoded = cloudevents::encode(self.format, message);
            let body = bytes::Bytes::copy_from_slice(encoded.body.as_bytes());
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", msg_id(message).as_str());
            headers.insert("Gemgate-Id", message.id.as_str());
            headers.insert("Gemgate-Status", message.status.as_str());
            if let Some(event) = &encoded.event {
                for (name, value) in event.attributes() {
                    headers.insert(format!("ce-{name}").as_str(), cloudevents::header_value(value).as_ref());
                }
                headers.insert("ce-datacontenttype", encoded.content_type);
            } else if self.format != MessageFormat::Envelope {
                // Structured: the binding defines no header, but a receiver tells the mode by it.
                headers.insert("content-type", encoded.content_type);
            }
            let publish = context.publish_with_headers(self.subject_of(message), headers, body);
            match tokio::time::timeout(TIMEOUT, publish).await {
                Ok(Ok(ack)) => acks.push(ack),
                Ok(Err(e)) => {
                    failure = Some((i, self.unavailable(format!("publish failed: {e}"))));
                    break;
                }
                Err(_) => {
                    failure = Some((i, self.unavailable("publish timed out".into())));
                    break;
                }
            }
        }
        for (i, ack) in acks.into_iter().enumerate() {
            let acked = match tokio::time::timeout(TIMEOUT, ack.into_future()).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("no publish ack: {e}")),
                Err(_) => Some("publish ack timed out".to_string()),
            };
            if let Some(message) = acked {
                failure = Some((i, self.unavailable(message)));
                break;
            }
        }
        match failure {
            None => Ok(()),
            Some((delivered, error)) => {
                *guard = None;
                Err(SinkFailure { delivered, error })
            }
        }
    }
}
