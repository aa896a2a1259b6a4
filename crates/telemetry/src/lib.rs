//! Telemetry: the tracing subscriber (human-readable on a terminal, one JSON object per line with
//! `--log-format json`) and the Prometheus registry that components fill with their metrics.
//!
//! Installing the subscriber is the binary's job, once, at start; libraries only emit `tracing` events.

mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

pub use metrics::{Metrics, latency_histogram};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Human-readable, coloured when stderr is a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber writing to stderr. `filter` uses tracing's `EnvFilter` syntax
/// (`info,gemgate_indexer=debug`).
pub fn init(style: LogStyle, filter: &str) -> Result<(), TelemetryError> {
    init_with_writer(style, filter, BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal())
}

/// Installs the global subscriber with a chosen writer (tests capture output this way).
pub fn init_with_writer(
    style: LogStyle,
    filter: &str,
    writer: BoxMakeWriter,
    ansi: bool,
) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter)
        .map_err(|e| TelemetryError::Filter { filter: filter.to_string(), message: e.to_string() })?;
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(writer);
    let result = match style {
        LogStyle::Text => builder.with_ansi(ansi).with_target(true).try_init(),
        LogStyle::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}
