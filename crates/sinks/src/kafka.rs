//! Kafka through librdkafka (rdkafka): an idempotent producer (`enable.idempotence`, so the client's own
//! retries never write a message twice or out of order), message key = the ordering key (one key, one
//! partition, so order per key holds), value = the envelope, and headers `gemgate-id` (the message id),
//! `gemgate-kind` and `gemgate-status`. As CloudEvents (`format = "cloudevents"`), per the Kafka protocol
//! binding: structured, the value is the event in JSON with `content-type: application/cloudevents+json`;
//! binary, the value stays the envelope with `content-type: application/json` and a `ce_<attribute>`
//! header per attribute; the key is the ordering key (the `partitionkey` attribute) either way. The topic must exist (or the broker must create topics on first
//! use); until it does, delivery waits as for an unreachable broker. A batch is handed to the producer at
//! once and the delivery reports awaited in order.

use async_trait::async_trait;
use gemgate_config::MessageFormat;
use gemgate_domain::ports::{Sink, SinkFailure};
use gemgate_domain::{OutboxMessage, SinkError};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Mutex;

use crate::cloudevents;

/// How long librdkafka tries to deliver one message before reporting it failed (`message.timeout.ms`).
const DELIVERY_TIMEOUT_MS: &str = "10000";

pub struct KafkaSink {
    name: String,
    brokers: String,
    topic: String,
    format: MessageFormat,
    producer: Mutex<Option<FutureProducer>>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    pub fn new(name: &str, brokers: &[String], topic: &str) -> Self {
        Self {
            name: name.to_string(),
            brokers: brokers.join(","),
            topic: topic.to_string(),
            format: MessageFormat::Envelope,
            producer: Mutex::new(None),
        }
    }

    /// Sends each message in `format` (the envelope by default).
    pub fn with_format(mut self, format: MessageFormat) -> Self {
        self.format = format;
        self
    }

    fn producer(&self) -> Result<FutureProducer, SinkError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("gemgate-{}", self.name))
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", DELIVERY_TIMEOUT_MS)
            .set("linger.ms", "2")
            .create()
            .map_err(|e| self.error(None, &e))
    }

    /// A message the broker refuses as such (too large, invalid) is rejected; anything else may pass later.
    fn error(&self, message: Option<&OutboxMessage>, error: &KafkaError) -> SinkError {
        let refused = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidRecord)
        );
        match message {
            Some(message) if refused => SinkError::Rejected {
                sink: self.name.clone(),
                message_id: message.id.clone(),
                message: error.to_string(),
            },
            _ => SinkError::Unavailable { sink: self.name.clone(), message: error.to_string() },
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        let mut guard = self.producer.lock().await;
        if guard.is_none() {
            *guard = Some(self.producer().map_err(|error| SinkFailure { delivered: 0, error })?);
        }
        let Some(producer) = guard.as_ref() else { unreachable!("created above") };
        let mut reports = Vec::with_capacity(messages.len());
        let mut failure = None;
        for (i, message) in messages.iter().enumerate() {
            let status = message.status.as_str();
            let encoded = cloudevents::encode(self.format, message);
            let mut headers = OwnedHeaders::new_with_capacity(11)
                .insert(Header { key: "gemgate-id", value: Some(message.id.as_str()) })
                .insert(Header { key: "gemgate-kind", value: Some(message.kind.as_str()) })
                .insert(Header { key: "gemgate-status", value: Some(status) });
            if self.format != MessageFormat::Envelope {
                headers = headers.insert(Header { key: "content-type", value: Some(encoded.content_type) });
            }
            let names: Vec<(String, &str)> = encoded
                .event
                .as_ref()
                .map(|event| event.attributes().map(|(name, value)| (format!("ce_{name}"), value)).to_vec())
                .unwrap_or_default();
            for (name, value) in &names {
                headers = headers.insert(Header { key: name, value: Some(*value) });
            }
            let record = FutureRecord::to(&self.topic)
                .key(message.ordering_key.as_str())
                .payload(encoded.body.as_bytes())
                .headers(headers);
            match producer.send_result(record) {
                Ok(report) => reports.push(report),
                Err((e, _)) => {
                    failure = Some((i, self.error(Some(message), &e)));
                    break;
                }
            }
        }
        for (i, report) in reports.into_iter().enumerate() {
            let error = match report.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => self.error(Some(&messages[i]), &e),
                Err(_) => SinkError::Unavailable {
                    sink: self.name.clone(),
                    message: "the producer dropped the delivery report".into(),
                },
            };
            failure = Some((i, error));
            break;
        }
        match failure {
            None => Ok(()),
            Some((delivered, error)) => {
                // A fresh producer after any failure: an idempotent producer may be left in a fatal state.
                if !matches!(error, SinkError::Rejected { .. }) {
                    *guard = None;
                }
                Err(SinkFailure { delivered, error })
            }
        }
    }
}
