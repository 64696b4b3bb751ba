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

pub(crate) mod app;
pub mod config;
pub mod loadgen;
pub(crate) mod platform;
pub mod telemetry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::app::{Application, StartupError};
use crate::config::{Config, TelemetryBackend};
use crate::telemetry::{Endpoint, TelemetryError};
use cloud_ops_emulator::{Emulator, EmulatorConfig, EmulatorError, RunningEmulator};

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
    #[error(
        "on Cloud Run (K_SERVICE is set) but no Google Cloud project: GOOGLE_CLOUD_PROJECT is unset and the metadata server at {metadata} did not give project/project-id; set GOOGLE_CLOUD_PROJECT (traces and metrics would otherwise go nowhere)"
    )]
    NoProject { metadata: String },
}

/// Runs the service until SIGTERM or Ctrl-C: sets up telemetry (starting an
/// emulator of its own when no Google project or emulator is configured),
/// serves, drains in-flight requests, flushes telemetry.
pub async fn run_service(mut config: Config) -> Result<(), ServiceError> {
    // Dropped last, on every way out: the log lines still queued reach
    // stdout before the process exits.
    let _flush_logs = telemetry::logs::FlushOnDrop;
    resolve_project(&mut config).await?;
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
        announce_console(&config, addr, console);
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

/// The embedded console's address in a line a person reads, on stderr:
/// on stdout it would be one more JSON log line among many. Only in this
/// local mode, which Cloud Run never runs.
fn announce_console(config: &Config, service: std::net::SocketAddr, console: std::net::SocketAddr) {
    use std::io::IsTerminal as _;
    eprintln!(
        "\n  service  http://127.0.0.1:{}/\n  console  http://{console}/   (logs, traces, metrics every {} s, errors)\n",
        service.port(),
        config.metric_export_interval.interval.as_secs_f64()
    );
    if std::io::stdout().is_terminal() && config.log_format == config::LogFormat::Json {
        eprintln!("  tip: LOG_FORMAT=pretty prints readable log lines in a terminal\n");
    }
}

/// On Cloud Run without `GOOGLE_CLOUD_PROJECT` (Cloud Run does not set it),
/// the project comes from the metadata server, as Google's own libraries
/// find it. Without one, the service would start its embedded emulator and
/// its traces and metrics would silently stay inside the instance: it
/// refuses to start instead, saying why.
async fn resolve_project(config: &mut Config) -> Result<(), ServiceError> {
    let chosen = config.project_id.is_some() || config.emulator_host.is_some();
    if chosen || config.cloud_run.is_none() || !config.telemetry_enabled {
        return Ok(());
    }
    let Some(metadata) = config.metadata_server() else {
        return Ok(());
    };
    match platform::metadata::MetadataClient::new(metadata.clone())
        .project_id()
        .await
    {
        Some(project) => {
            config.project_id = Some(project);
            Ok(())
        }
        None => Err(ServiceError::NoProject { metadata }),
    }
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
    match Emulator::start_isolated(emulator_config.clone()).await {
        Ok(emulator) => Ok(emulator),
        Err(EmulatorError::Bind { .. }) => {
            Emulator::start_isolated(EmulatorConfig {
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

    /// A metadata server on loopback that knows the project, or nothing.
    async fn metadata_server(project: Option<&'static str>) -> String {
        use axum::routing::get;
        let mut router = axum::Router::new();
        if let Some(project) = project {
            router = router.route(
                "/computeMetadata/v1/project/project-id",
                get(move || async move { ([("metadata-flavor", "Google")], project) }),
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr.to_string()
    }

    fn cloud_run_config(metadata: &str, extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![("K_SERVICE", "frontend"), ("GCE_METADATA_HOST", metadata)];
        vars.extend_from_slice(extra);
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap()
    }

    #[tokio::test]
    async fn on_cloud_run_without_google_cloud_project_the_metadata_server_names_the_project() {
        let metadata = metadata_server(Some("shop-prod")).await;
        let mut config = cloud_run_config(&metadata, &[]);
        assert_eq!(
            config.telemetry_backend(),
            TelemetryBackend::EmbeddedEmulator
        );
        resolve_project(&mut config).await.unwrap();
        assert_eq!(config.project_id.as_deref(), Some("shop-prod"));
        assert_eq!(config.telemetry_backend(), TelemetryBackend::Google);
    }

    #[tokio::test]
    async fn on_cloud_run_with_no_project_anywhere_the_service_refuses_to_start() {
        let metadata = metadata_server(None).await;
        let mut config = cloud_run_config(&metadata, &[]);
        let error = resolve_project(&mut config).await.unwrap_err();
        assert!(matches!(error, ServiceError::NoProject { .. }));
        assert!(
            error.to_string().contains("set GOOGLE_CLOUD_PROJECT"),
            "{error}"
        );
        // A project or an emulator chosen explicitly is never second-guessed.
        for chosen in [
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("CLOUD_OPS_EMULATOR_HOST", "127.0.0.1:1"),
        ] {
            let mut config = cloud_run_config(&metadata, &[chosen]);
            resolve_project(&mut config).await.unwrap();
        }
    }

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
