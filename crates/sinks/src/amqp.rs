//! AMQP 0.9.1 (RabbitMQ) through lapin: a durable topic exchange (`exchange`, default `gemgate`), routing
//! key `<chain_id>.<contract>.<event>` (`<chain_id>.transaction.<state>` for transaction updates),
//! persistent messages with `message_id` = the message id, and publisher confirms: a batch is published
//! pipelined on one channel (which keeps its order) and confirmed message by message. With `queue`, that
//! durable queue is declared too and bound to the exchange with `#`.
//!
//! A lost connection is reopened on the next publish; until then the sink reports itself unavailable.

use async_trait::async_trait;
use gemgate_domain::ports::{Sink, SinkFailure};
use gemgate_domain::{OutboxMessage, SinkError};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

pub struct AmqpSink {
    name: String,
    url: url::Url,
    exchange: String,
    queue: Option<String>,
    channel: Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the broker password: never printed.
        f.debug_struct("AmqpSink")
            .field("name", &self.name)
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

/// The routing key of a message: `<chain_id>.<contract>.<event>` for chain events.
pub fn routing_key(message: &OutboxMessage) -> String {
    let field = |key: &str| message.payload.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    if message.kind == "event" {
        let event = if field("event").is_empty() { "unknown" } else { field("event") };
        let contract = if field("contract").is_empty() { "unknown" } else { field("contract") };
        format!("{}.{contract}.{event}", message.chain_id)
    } else {
        format!("{}.{}", message.chain_id, message.kind)
    }
}

impl AmqpSink {
    pub fn new(name: &str, url: url::Url, exchange: &str, queue: Option<String>) -> Self {
        Self { name: name.to_string(), url, exchange: exchange.to_string(), queue, channel: Mutex::new(None) }
    }

    fn unavailable(&self, what: &str, error: &lapin::Error) -> SinkError {
        // lapin's error texts do not include the URL; they name the protocol failure.
        SinkError::Unavailable { sink: self.name.clone(), message: format!("{what}: {error}") }
    }

    /// Connects, opens a confirming channel and declares the exchange (and queue).
    async fn open(&self) -> Result<(Connection, Channel), SinkError> {
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
        Ok((connection, channel))
    }
}

#[async_trait]
impl Sink for AmqpSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        let mut guard = self.channel.lock().await;
        if guard.as_ref().is_none_or(|(connection, channel)| {
            !connection.status().connected() || !channel.status().connected()
        }) {
            *guard = None;
            *guard = Some(self.open().await.map_err(|error| SinkFailure { delivered: 0, error })?);
        }
        let Some((_, channel)) = guard.as_ref() else { unreachable!("opened above") };
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let body = serde_json::to_vec(&message.payload).unwrap_or_default();
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.id.as_str().into())
                .with_type(message.kind.as_str().into());
            let published = channel
                .basic_publish(
                    &self.exchange,
                    &routing_key(message),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await;
            match published {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => {
                    // Nothing after this one was sent; the ones before may still confirm.
                    let error = self.unavailable("publish failed", &e);
                    return Err(self.settle(confirms, error, &mut guard).await);
                }
            }
        }
        let result = self.settle_all(confirms, messages).await;
        if let Err(failure) = &result
            && failure.error.is_retryable()
        {
            *guard = None;
        }
        result
    }
}

impl AmqpSink {
    /// Awaits the confirms in order; the first nack (refused) or error (unavailable) ends the batch.
    async fn settle_all(
        &self,
        confirms: Vec<lapin::publisher_confirm::PublisherConfirm>,
        messages: &[OutboxMessage],
    ) -> Result<(), SinkFailure> {
        for (delivered, confirm) in confirms.into_iter().enumerate() {
            match confirm.await {
                Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => {}
                Ok(Confirmation::Nack(_)) => {
                    let error = SinkError::Rejected {
                        sink: self.name.clone(),
                        message_id: messages[delivered].id.clone(),
                        message: "the broker nacked the message".into(),
                    };
                    return Err(SinkFailure { delivered, error });
                }
                Err(e) => return Err(SinkFailure { delivered, error: self.unavailable("no confirm", &e) }),
            }
        }
        Ok(())
    }

    /// After a failed publish: counts the leading confirms and drops the connection.
    async fn settle(
        &self,
        confirms: Vec<lapin::publisher_confirm::PublisherConfirm>,
        error: SinkError,
        guard: &mut Option<(Connection, Channel)>,
    ) -> SinkFailure {
        let mut delivered = 0;
        for confirm in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => delivered += 1,
                _ => break,
            }
        }
        *guard = None;
        SinkFailure { delivered, error }
    }
}
