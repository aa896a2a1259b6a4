//! Signed webhooks: each message is POSTed as its JSON envelope, signed per Standard Webhooks
//! (`webhook-id` = `<message id>:<outbox position>`, one per outbox row so a retraction is a message of its
//! own; `webhook-timestamp`; `webhook-signature`) or, with `signature = "gemgate"`, with `Gemgate-Id` (the
//! message id), `Gemgate-Timestamp` and `Gemgate-Signature` (see `signature`). As CloudEvents
//! (`format = "cloudevents"`), per the HTTP binding: structured, the body is the event in JSON with
//! `content-type: application/cloudevents+json`; binary, the body stays the envelope and each attribute is
//! a `ce-<attribute>` header. The signature covers the body as sent. A 2xx answer confirms it. 408, 429, 5xx, timeouts and
//! connection errors mean the endpoint is unavailable (the dispatcher backs off and keeps the backlog);
//! any other answer refuses the message (retried with backoff, then dead-lettered).
//!
//! With `strict_order`, messages are sent one at a time; otherwise up to `CONCURRENCY` requests are in
//! flight (order is then kept per ordering key only by the dispatcher's blocking of refused keys).

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gemgate_domain::ports::{Sink, SinkFailure};
use gemgate_domain::{OutboxMessage, SinkError};

use gemgate_config::{MessageFormat, WebhookSignature};
use gemgate_domain::signature::{sign, sign_standard, unix_now};

use crate::cloudevents;

const CONCURRENCY: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct WebhookSink {
    name: String,
    url: url::Url,
    secrets: Vec<Vec<u8>>,
    strict_order: bool,
    scheme: WebhookSignature,
    format: MessageFormat,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry credentials and the secrets are secret: neither is printed.
        f.debug_struct("WebhookSink").field("name", &self.name).finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink signing with gemgate's own headers, each secret's bytes being its key; see
    /// [`WebhookSink::with_signature`] for Standard Webhooks.
    pub fn new(
        name: &str,
        url: url::Url,
        secrets: Vec<Vec<u8>>,
        strict_order: bool,
    ) -> Result<Self, SinkError> {
        let client =
            reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| SinkError::Unavailable {
                sink: name.to_string(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            name: name.to_string(),
            url,
            secrets,
            strict_order,
            scheme: WebhookSignature::Gemgate,
            format: MessageFormat::Envelope,
            client,
        })
    }

    /// Signs with `scheme`; for Standard Webhooks, the secrets given to `new` are the keys
    /// ([`gemgate_domain::signature::standard_key`] of each `whsec_` secret).
    pub fn with_signature(mut self, scheme: WebhookSignature) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sends each message in `format` (the envelope by default).
    pub fn with_format(mut self, format: MessageFormat) -> Self {
        self.format = format;
        self
    }

    async fn post(&self, message: &OutboxMessage) -> Result<(), SinkError> {
        let encoded = cloudevents::encode(self.format, message);
        let body = encoded.body.as_bytes().to_vec();
        let timestamp = unix_now();
        let keys: Vec<&[u8]> = self.secrets.iter().map(Vec::as_slice).collect();
        let unavailable = |text: String| SinkError::Unavailable { sink: self.name.clone(), message: text };
        let mut request = self.client.post(self.url.clone()).header("content-type", encoded.content_type);
        request = match self.scheme {
            WebhookSignature::Standard => {
                let id = message.delivery_id();
                let signature = sign_standard(&keys, &id, timestamp, &body);
                request
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
            }
            WebhookSignature::Gemgate => request
                .header("Gemgate-Id", &message.id)
                .header("Gemgate-Timestamp", timestamp.to_string())
                .header("Gemgate-Signature", sign(&keys, &message.id, timestamp, &body)),
        };
        if let Some(event) = &encoded.event {
            for (name, value) in event.attributes() {
                request = request.header(format!("ce-{name}"), cloudevents::header_value(value).as_ref());
            }
        }
        let response = request
            .body(body)
            .send()
            .await
            // reqwest's error text names the URL without its password; still, say only what failed.
            .map_err(|e| unavailable(request_failure(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            return Err(unavailable(format!("endpoint answered {status}")));
        }
        Err(SinkError::Rejected {
            sink: self.name.clone(),
            message_id: message.id.clone(),
            message: format!("endpoint answered {status}"),
        })
    }
}

fn request_failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "request timed out".into()
    } else if error.is_connect() {
        "cannot connect to the endpoint".into()
    } else {
        "request failed".into()
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        let in_flight = if self.strict_order { 1 } else { CONCURRENCY };
        let posts: Vec<_> = messages.iter().map(|m| self.post(m)).collect();
        let mut results = futures::stream::iter(posts).buffered(in_flight);
        let mut delivered = 0;
        while let Some(result) = results.next().await {
            if let Err(error) = result {
                return Err(SinkFailure { delivered, error });
            }
            delivered += 1;
        }
        Ok(())
    }
}
