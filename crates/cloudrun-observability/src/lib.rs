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
//! - [`telemetry`]: logs, traces and metrics, one folder per signal.
//! - [`platform`]: the Google Cloud metadata server.
//! - [`loadgen`]: realistic traffic for the service.
//!
//! The emulator is its own crate, [`cloud_ops_emulator`]; the service
//! starts it in-process when no Google project is configured.

pub mod app;
pub mod config;
pub mod loadgen;
pub mod platform;
pub mod telemetry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::app::{Application, StartupError};
use crate::config::{Config, TelemetryBackend};
use cloud_ops_emulator::{Emulator, EmulatorConfig, EmulatorError, RunningEmulator};
use crate::telemetry::{Endpoint, TelemetryError};

/// How long Cloud Run waits after SIGTERM before it kills the container.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Kept free at the end of the grace period, for logging "stopped" and
/// exiting before SIGKILL.
const EXIT_MARGIN: Duration = Duration::from_millis(500);

/// The least time telemetry gets to flush, even when draining used up the
/// grace period (SIGKILL then cuts it short; without it, nothing is sent).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long telemetry may take to flush once requests have drained: what
/// is left of the grace period since the signal, and never less than
/// [`FLUSH_TIMEOUT`]. The metric flush may need up to 5 s of it, to keep
/// its final points 5 s after the previous ones (Cloud Monitoring's
/// sampling period); after a quick drain there is time for that.
pub fn flush_budget(since_signal: Duration) -> Duration {
    GRACE_PERIOD
        .saturating_sub(EXIT_MARGIN)
        .saturating_sub(since_signal)
        .max(FLUSH_TIMEOUT)
}

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
    // Dropped last, on every way out: the log lines still queued reach
    // stdout before the process exits.
    let _flush_logs = telemetry::logs::FlushOnDrop;
    let (endpoint, embedded) = telemetry_endpoint(&config).await?;
    // The embedded emulator's console shows this service's own log lines.
    let log_tee = embedded.as_ref().map(|emulator| {
        Arc::new(emulator.store().logs.sink()) as Arc<dyn telemetry::logs::LineSink>
    });
    let telemetry = telemetry::init(&config, endpoint, log_tee).await?;
    let application = Application::build(&config).await?;
    telemetry.observe_sessions(application.sessions());
    let addr = application.local_addr();
    if let Some(alerting) = embedded.as_ref().and_then(|e| e.store().alerting) {
        // The uptime checks probe this very service.
        if let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1:{}", addr.port())) {
            alerting.set_service_url(url);
        }
        for line in alerting.summary_lines() {
            tracing::info!("{line}");
        }
    }
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
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel();
    let signal = async move {
        shutdown_signal().await;
        let _ = signalled_tx.send(Instant::now());
    };
    application.run_until_stopped(signal).await?;
    let since_signal = signalled_rx.await.map_or(Duration::ZERO, |at| at.elapsed());
    telemetry.shutdown(flush_budget(since_signal)).await;
    if let Some(emulator) = embedded {
        emulator.shutdown().await;
    }
    match telemetry::logs::stdout::stats() {
        // The log queue's high-water mark: what SIGKILL could have lost.
        Some(logs) => tracing::info!(
            log_lines = logs.lines_written,
            log_batches = logs.batches_written,
            log_max_queued_lines = logs.max_queued_lines,
            log_full_waits = logs.full_waits,
            "stopped"
        ),
        None => tracing::info!("stopped"),
    }
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
            let emulator = start_embedded_emulator(config).await?;
            let host = emulator.local_addr().to_string();
            Ok((Endpoint::Emulator(host), Some(emulator)))
        }
    }
}

/// On the usual port 8085 when it is free (a stable console address), else
/// on any free loopback port (a second local service, tests). Its log
/// entries are attributed to this service; with `EMULATOR_TERRAFORM_DIR` it
/// evaluates that Terraform's monitoring.
async fn start_embedded_emulator(config: &Config) -> Result<RunningEmulator, EmulatorError> {
    let emulator_config = EmulatorConfig::embedded(
        config.service_name(),
        config.emulator_terraform_dir.clone(),
        config.emulator_time_scale,
        config.trace_project(),
    );
    match Emulator::start(emulator_config.clone()).await {
        Ok(emulator) => Ok(emulator),
        Err(EmulatorError::Bind { .. }) => {
            Emulator::start(EmulatorConfig {
                port: 0,
                ..emulator_config
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_gets_what_draining_left_of_the_grace_period() {
        assert_eq!(flush_budget(Duration::ZERO), Duration::from_millis(9_500));
        assert_eq!(
            flush_budget(Duration::from_secs(3)),
            Duration::from_millis(6_500)
        );
        assert_eq!(
            flush_budget(Duration::from_secs(7)),
            Duration::from_millis(2_500)
        );
        assert_eq!(flush_budget(Duration::from_secs(8)), FLUSH_TIMEOUT);
        assert_eq!(flush_budget(Duration::from_secs(30)), FLUSH_TIMEOUT);
    }
}
