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

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::app::{Application, StartupError};
use crate::config::{Config, TelemetryBackend};
use crate::emulator::{Emulator, EmulatorConfig, EmulatorError, RunningEmulator};
use crate::telemetry::{Endpoint, TelemetryError};

/// How long telemetry may take to flush at shutdown: what is left of Cloud
/// Run's 10 s grace period after draining.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the service stopped with an error.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("could not start the embedded Cloud Trace and Cloud Monitoring emulator")]
    Emulator(#[from] EmulatorError),
    #[error("the server failed")]
    Serve(#[from] std::io::Error),
}

/// Runs the service until SIGTERM or Ctrl-C: sets up telemetry (starting an
/// emulator of its own when no Google project or emulator is configured),
/// serves, drains in-flight requests, flushes telemetry.
pub async fn run_service(config: Config) -> Result<(), ServiceError> {
    let (endpoint, embedded) = telemetry_endpoint(&config).await?;
    // The embedded emulator's console shows this service's own log lines.
    let log_tee = embedded.as_ref().map(|emulator| {
        Arc::new(emulator.store().logs.sink()) as Arc<dyn telemetry::logging::LineSink>
    });
    let telemetry = telemetry::init(&config, endpoint, log_tee).await?;
    let application = Application::build(&config).await?;
    let addr = application.local_addr();
    tracing::info!(
        address = %addr,
        service = config.service_name(),
        version = config.service_version(),
        "listening on http://{addr}"
    );
    if let Some(emulator) = &embedded {
        let console = emulator.local_addr();
        tracing::info!(
            emulator = %console,
            "Cloud Trace and Cloud Monitoring emulator (no GOOGLE_CLOUD_PROJECT set): console at http://{console}/"
        );
    }
    application.run_until_stopped(shutdown_signal()).await?;
    telemetry.shutdown(FLUSH_TIMEOUT).await;
    if let Some(emulator) = embedded {
        emulator.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Where telemetry goes; starts the embedded emulator when that is where.
async fn telemetry_endpoint(
    config: &Config,
) -> Result<(Endpoint, Option<RunningEmulator>), EmulatorError> {
    match config.telemetry_backend() {
        TelemetryBackend::Google => Ok((Endpoint::Google, None)),
        TelemetryBackend::Emulator(host) => Ok((Endpoint::Emulator(host), None)),
        TelemetryBackend::EmbeddedEmulator if !config.telemetry_enabled => {
            Ok((Endpoint::Emulator(String::new()), None))
        }
        TelemetryBackend::EmbeddedEmulator => {
            let emulator = start_embedded_emulator().await?;
            let host = emulator.local_addr().to_string();
            Ok((Endpoint::Emulator(host), Some(emulator)))
        }
    }
}

/// On the usual port 8085 when it is free (a stable console address), else
/// on any free loopback port (a second local service, tests).
async fn start_embedded_emulator() -> Result<RunningEmulator, EmulatorError> {
    match Emulator::start(EmulatorConfig::default()).await {
        Ok(emulator) => Ok(emulator),
        Err(EmulatorError::Bind { .. }) => {
            Emulator::start(EmulatorConfig {
                port: 0,
                ..EmulatorConfig::default()
            })
            .await
        }
        Err(other) => Err(other),
    }
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
