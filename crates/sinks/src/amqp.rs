//! AMQP 0.9.1 (RabbitMQ) through lapin: a durable topic exchange (`exchange`, default `gemgate`), routing
//! key `<chain_id>.<contract>.<event>` (`<chain_id>.transaction.<state>` for transaction updates),
//! persistent messages with `message_id` = the message id, and publisher confirms: a batch is spread over
//! `CHANNELS` channels by ordering key (a channel keeps its order), published pipelined and confirmed
//! message by message. As CloudEvents (`format = "cloudevents"`): structured, the body is the event in JSON
//! with `content_type = application/cloudevents+json`; binary, the body stays the envelope and each
//! attribute is a `cloudEvents_<attribute>` header (the AMQP binding's application properties). With `queue`, that durable queue is declared too and bound to the exchange with `#`.
//!
//! A lost connection is reopened on the next publish; until then the sink reports itself unavailable.

use async_trait::async_trait;
use gemgate_config::MessageFormat;
use gemgate_domain::ports::{Sink, SinkFailure};
use gemgate_domain::{OutboxMessage, SinkError};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use crate::cloudevents;

pub struct AmqpSink {
    name: String,
    url: url::Url,
    exchange: String,
    queue: Option<String>,
    format: MessageFormat,
    open: Mutex<Option<(Connection, Vec<Channel>)>>,
}

/// Channels publishing at once per sink.
pub const CHANNELS: usize = 4;

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the broker password: never printed.
        f.debug_struct("AmqpSink")
            .field("name", &self.name)
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    pub fn new(name: &str, url: url::Url, exchange: &str, queue: Option<String>) -> Self {
        Self {
            name: name.to_string(),
            url,
            exchange: exchange.to_string(),
            queue,
            format: MessageFormat::Envelope,
            open: Mutex::new(None),
        }
    }

    /// Sends each message in `format` (the envelope by default).
    pub fn with_format(mut self, format: MessageFormat) -> Self {
        self.format = format;
        self
    }

    fn unavailable(&self, what: &str, error: &lapin::Error) -> SinkError {
        // lapin's error texts do not include the URL; they name the protocol failure.
        SinkError::Unavailable { sink: self.name.clone(), message: format!("{what}: {error}") }
    }

    /// Connects, declares the exchange (and queue) and opens `CHANNELS` confirming channels.
    async fn connect(&self) -> Result<(Connection, Vec<Channel>), SinkError> {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection = Connection::connect(self.url.as_str(), properties)
            .await
            .map_err(|e| self.unavailable("cannot connect to the broker", &e))?;
        let channel =
            connection.create_channel().await.map_err(|e| self.unavailable("cannot open a channel", &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.unavailable("cannot enable publisher confirms", &e))?;
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(&self.exchange, ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .map_err(|e| self.unavailable("cannot declare the exchange", &e))?;
        if let Some(queue) = &self.queue {
            let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
            channel
                .queue_declare(queue, durable, FieldTable::default())
                .await
                .map_err(|e| self.unavailable("cannot declare the queue", &e))?;
            channel
                .queue_bind(queue, &self.exchange, "#", QueueBindOptions::default(), FieldTable::default())
                .await
                .map_err(|e| self.unavailable("cannot bind the queue", &e))?;
        }
        let mut channels = vec![channel];
        while channels.len() < CHANNELS {
            channels.push(
                connection
                    .create_channel()
                    .await
                    .map_err(|e| self.unavailable("cannot open a channel", &e))?,
            );
        }
        for channel in &channels {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| self.unavailable("cannot enable publisher confirms", &e))?;
        }
        Ok((connection, channels))
    }
}

#[async_trait]
impl Sink for AmqpSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Messages are spread over `CHANNELS` channels by ordering key (one key always on the same channel,
    /// which keeps its order); each channel publishes its share pipelined and then awaits the confirms.
    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        let mut guard = self.open.lock().await;
        let healthy = guard.as_ref().is_some_and(|(connection, channels)| {
            connection.status().connected() && channels.iter().all(|c| c.status().connected())
        });
        if !healthy {
            *guard = None;
            *guard = Some(self.connect().await.map_err(|error| SinkFailure { delivered: 0, error })?);
        }
        let Some((_, channels)) = guard.as_ref() else { unreachable!("opened above") };
        let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); channels.len()];
        for (i, message) in messages.iter().enumerate() {
            lanes[lane_of(&message.ordering_key, channels.len())].push(i);
        }
        let sends = lanes
            .iter()
            .zip(channels)
            .filter(|(lane, _)| !lane.is_empty())
            .map(|(lane, channel)| self.publish_lane(channel, messages, lane));
        let failures: Vec<(usize, SinkError)> =
            futures::future::join_all(sends).await.into_iter().filter_map(Result::err).collect();
        let Some(first) = failures.iter().map(|(index, _)| *index).min() else { return Ok(()) };
        if failures.iter().any(|(_, error)| error.is_retryable()) {
            *guard = None;
        }
        let error = failures.into_iter().find(|(index, _)| *index == first).map(|(_, e)| e);
        Err(SinkFailure { delivered: first, error: error.unwrap_or_else(|| unreachable!("found above")) })
    }
}

/// The channel of an ordering key.
fn lane_of(key: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

impl AmqpSink {
    /// Publishes the messages at `indexes` (in order) on one channel and awaits their confirms; on failure,
    /// the index of the first message not confirmed.
    async fn publish_lane(
        &self,
        channel: &Channel,
        messages: &[OutboxMessage],
        indexes: &[usize],
    ) -> Result<(), (usize, SinkError)> {
        let mut confirms = Vec::with_capacity(indexes.len());
        let mut send_error = None;
        for &i in indexes {
            let message = &messages[i];
            let encoded = cloudevents::encode(self.format, message);
            let body = encoded.body.as_bytes();
            let mut properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(encoded.content_type.into())
                .with_message_id(message.id.as_str().into())
                .with_type(message.kind.as_str().into());
            if let Some(event) = &encoded.event {
                let mut headers = FieldTable::default();
                for (name, value) in event.attributes() {
                    headers.insert(format!("cloudEvents_{name}").into(), AMQPValue::LongString(value.into()));
                }
                properties = properties.with_headers(headers);
            }
            match channel
                .basic_publish(
                    &self.exchange,
                    &crate::routing_suffix(message),
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await
            {
                Ok(confirm) => confirms.push((i, confirm)),
                Err(e) => {
                    send_error = Some((i, self.unavailable("publish failed", &e)));
                    break;
                }
            }
        }
        for (i, confirm) in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => {}
                Ok(Confirmation::Nack(_)) => {
                    let error = SinkError::Rejected {
                        sink: self.name.clone(),
                        message_id: messages[i].id.clone(),
                        message: "the broker nacked the message".into(),
                    };
                    return Err((i, error));
                }
                Err(e) => return Err((i, self.unavailable("no confirm", &e))),
            }
        }
        send_error.map_or(Ok(()), Err)
    }
}
