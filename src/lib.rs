//! # cloudrun-observability
//!
//! A small bookshop API for Google Cloud Run that is observable end to end:
//! Cloud Logging JSON on stdout, OpenTelemetry spans to Cloud Trace, custom
//! metrics to Cloud Monitoring, and an embedded emulator of the Cloud Trace and
//! Cloud Monitoring APIs so that all of it can be seen and tested offline.
//!
//! - [`config`]: the environment, as the Cloud Run container contract sets it.
//! - [`app`]: routes, handlers, the error type; [`app::Application`] is the
//!   one way to start the service, for the binary and the tests alike.
//! - [`telemetry`]: logs, trace context, Error Reporting.
//! - [`emulator`]: the local stand-in for Cloud Trace and Cloud Monitoring.

pub mod app;
pub mod config;
pub mod emulator;
pub mod telemetry;

use thiserror::Error;

use crate::app::{Application, StartupError};
use crate::config::Config;
use crate::telemetry::TelemetryError;

/// How long telemetry may take to flush at shutdown: what is left of Cloud
/// Run's 10 s grace period after draining.
pub const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the service stopped with an error.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("the server failed")]
    Serve(#[from] std::io::Error),
}

/// Runs the service until SIGTERM or Ctrl-C: sets up telemetry, serves,
/// drains in-flight requests, flushes telemetry.
pub async fn run_service(config: Config) -> Result<(), ServiceError> {
    let telemetry = telemetry::init(&config)?;
    let application = Application::build(&config).await?;
    let addr = application.local_addr();
    tracing::info!(
        address = %addr,
        service = config.service_name(),
        version = config.service_version(),
        "listening on http://{addr}"
    );
    application.run_until_stopped(shutdown_signal()).await?;
    if tokio::time::timeout(FLUSH_TIMEOUT, telemetry.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("telemetry did not flush within {FLUSH_TIMEOUT:?}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (what Cloud Run sends before stopping an
/// instance).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
