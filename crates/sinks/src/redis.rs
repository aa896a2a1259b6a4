//! Redis Streams: `XADD <stream> [MAXLEN ~ <maxlen>] * id <event id> kind <kind> status <status> body <JSON>`
//! for every message, a batch sent as one pipeline (one round trip, applied in order). With `maxlen`,
//! Redis trims the stream approximately (`~`) to about that many entries; without it nothing is trimmed.
//! With `format = "cloudevents"`, `body` holds the structured CloudEvent in JSON (Redis has no binding with
//! headers, so binary mode is refused by the configuration).

use async_trait::async_trait;
use gemgate_config::MessageFormat;
use gemgate_domain::ports::{Sink, SinkFailure};
use gemgate_domain::{OutboxMessage, SinkError};
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

/// The longest a connect or a pipeline may take before Redis counts as unavailable.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct RedisSink {
    name: String,
    url: url::Url,
    stream: String,
    maxlen: Option<u64>,
    format: MessageFormat,
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("RedisSink")
            .field("name", &self.name)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    pub fn new(name: &str, url: url::Url, stream: &str, maxlen: Option<u64>) -> Self {
        Self {
            name: name.to_string(),
            url,
            stream: stream.to_string(),
            maxlen,
            format: MessageFormat::Envelope,
            connection: Mutex::new(None),
        }
    }

    /// Sends each message in `format` (the envelope by default; binary CloudEvents fall back to
    /// structured, there being no headers).
    pub fn with_format(mut self, format: MessageFormat) -> Self {
        self.format = match format {
            MessageFormat::CloudeventsBinary => MessageFormat::CloudeventsStructured,
            other => other,
        };
        self
    }

    fn timed_out(&self, what: &str) -> SinkError {
        SinkError::Unavailable {
            sink: self.name.clone(),
            message: format!("{what} timed out after {TIMEOUT:?}"),
        }
    }

    fn unavailable(&self, what: &str, error: &redis::RedisError) -> SinkError {
        // Redis error texts name the failure, not the URL.
        SinkError::Unavailable { sink: self.name.clone(), message: format!("{what}: {error}") }
    }
}

#[async_trait]
impl Sink for RedisSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        let mut guard = self.connection.lock().await;
        if guard.is_none() {
            let client = redis::Client::open(self.url.as_str())
                .map_err(|e| SinkFailure { delivered: 0, error: self.unavailable("bad Redis URL", &e) })?;
            let connection =
                match tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection()).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(e)) => {
                        return Err(SinkFailure {
                            delivered: 0,
                            error: self.unavailable("cannot connect to Redis", &e),
                        });
                    }
                    Err(_) => return Err(SinkFailure { delivered: 0, error: self.timed_out("connecting") }),
                };
            *guard = Some(connection);
        }
        let Some(connection) = guard.as_mut() else { unreachable!("connected above") };
        let mut pipeline = redis::pipe();
        for message in messages {
            let encoded = crate::cloudevents::encode(self.format, message);
            let body: &str = &encoded.body;
            let status = message.status.as_str();
            let command = pipeline.cmd("XADD").arg(&self.stream);
            if let Some(maxlen) = self.maxlen {
                command.arg("MAXLEN").arg("~").arg(maxlen);
            }
            command
                .arg("*")
                .arg("id")
                .arg(&message.id)
                .arg("kind")
                .arg(&message.kind)
                .arg("status")
                .arg(status)
                .arg("body")
                .arg(body);
        }
        let Ok(result) = tokio::time::timeout(TIMEOUT, pipeline.query_async::<Vec<String>>(connection)).await
        else {
            *guard = None;
            return Err(SinkFailure { delivered: 0, error: self.timed_out("XADD") });
        };
        match result {
            Ok(ids) if ids.len() == messages.len() => Ok(()),
            Ok(ids) => Err(SinkFailure {
                delivered: ids.len(),
                error: SinkError::Unavailable {
                    sink: self.name.clone(),
                    message: "Redis answered fewer entries than sent".into(),
                },
            }),
            Err(e) => {
                *guard = None;
                // A pipeline is applied in order; which entries landed is unknown, so all are sent again.
                Err(SinkFailure { delivered: 0, error: self.unavailable("XADD failed", &e) })
            }
        }
    }
}
