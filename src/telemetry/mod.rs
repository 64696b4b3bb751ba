//! Telemetry: what the service tells the outside world about itself.
//!
//! - [`logging`]: Cloud Logging structured JSON on stdout (or pretty lines
//!   locally), installed once per process by [`init`].
//! - [`log_writer`]: completes each JSON line with trace correlation, source
//!   location and Error Reporting fields.
//! - [`trace_context`]: reading and writing `traceparent` and
//!   `X-Cloud-Trace-Context`.
//! - [`request_telemetry`]: the HTTP middleware that gives each request its
//!   span and trace context and writes its request log line.
//! - [`error_reporting`]: error entries that Cloud Error Reporting groups,
//!   including panics.

pub mod error_reporting;
pub mod log_writer;
pub mod logging;
pub mod request_telemetry;
pub mod span_data;
pub mod trace_context;

use thiserror::Error;

use crate::config::Config;

/// Telemetry could not be set up.
#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("invalid log filter (RUST_LOG): {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// Flushes and shuts telemetry down when the service stops. Logs are written
/// synchronously and need no flush; exporters added later hang off this.
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    _private: (),
}

impl TelemetryGuard {
    /// Flushes what is buffered, within Cloud Run's shutdown grace period.
    pub async fn shutdown(self) {}
}

/// Installs the process-wide logging (unless `TELEMETRY=off`) and the panic
/// hook that reports panics to Error Reporting.
pub fn init(config: &Config) -> Result<TelemetryGuard, TelemetryError> {
    if config.telemetry_enabled {
        logging::install(config)?;
        logging::install_panic_hook();
    }
    Ok(TelemetryGuard { _private: () })
}
