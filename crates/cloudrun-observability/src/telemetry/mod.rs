//! Telemetry: what the service tells the outside world about itself, one
//! folder per signal and the export plumbing they share.
//!
//! - [`logs`]: Cloud Logging structured JSON on stdout (or pretty lines
//!   locally), installed once per process by [`init`]; each line completed
//!   with trace correlation, source location and Error Reporting fields.
//! - [`traces`]: the trace context (`traceparent`, `X-Cloud-Trace-Context`),
//!   the sampler, and the Cloud Trace exporter.
//! - [`metrics`]: the request metrics and their Cloud Monitoring exporter.
//! - [`middleware`]: the HTTP middleware that gives each request its span
//!   and trace context, records its metrics and writes its request line.
//! - [`http_request`]: the request's `httpRequest` fields, read from
//!   untrusted input: the URL with its credentials redacted, the client's
//!   address.
//! - [`request_scope`]: the request a thread is working on, for the log
//!   layer and the panic hook.
//! - [`intern`]: route templates and span names made once per process.
//! - [`resource`]: who this instance is (Cloud Run service, revision, region).
//! - [`export`]: where telemetry goes, the one gRPC client setup, and the
//!   export health counters.

pub mod export;
pub(crate) mod http_request;
pub(crate) mod intern;
pub mod logs;
pub mod metrics;
pub(crate) mod middleware;
pub mod request_scope;
pub mod resource;
pub mod traces;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use thiserror::Error;

use self::export::health::{ExportCounts, ExportHealth};
use self::export::otlp::OtlpTarget;
pub use self::export::Endpoint;
use self::metrics::MetricsPipeline;
use self::resource::InstanceIdentity;
use crate::config::{Config, MetricsExporter, TracesExporter};

/// Telemetry could not be set up.
#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("invalid log filter (RUST_LOG): {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
    #[error("the OTLP exporter cannot be set up: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Flushes and shuts telemetry down when the service stops.
#[must_use = "dropping the guard loses the spans and points not yet exported"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    trace_health: Arc<ExportHealth>,
    metrics: Option<MetricsPipeline>,
    metric_health: Arc<ExportHealth>,
    identity: Option<InstanceIdentity>,
}

impl TelemetryGuard {
    /// What the trace exporter sent, lost and dropped so far.
    pub fn trace_counts(&self) -> ExportCounts {
        self.trace_health.counts()
    }

    /// What the metric exporter wrote and lost so far, in points.
    pub fn metric_counts(&self) -> ExportCounts {
        self.metric_health.counts()
    }

    /// Reports `tracker`'s count as `app.sessions.active` (nothing when
    /// telemetry is off).
    pub fn observe_sessions(&self, tracker: Arc<dyn metrics::ActiveSessions>) {
        if let Some(metrics) = &self.metrics {
            metrics.observe_sessions(tracker);
        }
    }

    /// Who this instance is, as its telemetry says (`None` when off).
    pub fn identity(&self) -> Option<&InstanceIdentity> {
        self.identity.as_ref()
    }

    /// Exports every finished span and the final metric points, within
    /// `timeout` (what is left of Cloud Run's 10 s grace period); traces and
    /// metrics flush side by side.
    pub async fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let traces = shutdown_traces(self.tracer_provider, &self.trace_health, timeout);
        let metrics = async {
            if let Some(metrics) = self.metrics {
                metrics.shutdown(deadline).await;
                let counts = self.metric_health.counts();
                tracing::info!(
                    exported = counts.exported,
                    failed = counts.failed,
                    "metrics flushed"
                );
            }
        };
        tokio::join!(traces, metrics);
    }
}

async fn shutdown_traces(
    provider: Option<SdkTracerProvider>,
    health: &ExportHealth,
    timeout: Duration,
) {
    let Some(provider) = provider else {
        return;
    };
    // The SDK's shutdown blocks until its processor thread has exported;
    // that thread's exports run on this runtime, so block elsewhere.
    let result = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout)).await;
    let counts = health.counts();
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(error) => Some(error.to_string()),
    };
    match error {
        None => tracing::info!(
            exported = counts.exported,
            failed = counts.failed,
            dropped = counts.dropped,
            "traces flushed"
        ),
        Some(error) => tracing::warn!(
            exported = counts.exported,
            failed = counts.failed,
            dropped = counts.dropped,
            %error,
            "traces could not be flushed"
        ),
    }
}

/// Sets up telemetry for `config`, sending traces and metrics to
/// `endpoint`: the process-wide logging (and the panic hook that reports
/// panics), OpenTelemetry tracing and metrics. With `TELEMETRY=off`,
/// nothing.
///
/// `log_tee` also receives every JSON log line: the embedded emulator's log
/// store, so its console shows the service's logs (`None` otherwise).
///
/// Must run inside the tokio runtime; it does not wait for any backend.
pub async fn init(
    config: &Config,
    endpoint: Endpoint,
    log_tee: Option<Arc<dyn logs::LineSink>>,
) -> Result<TelemetryGuard, TelemetryError> {
    let trace_health = Arc::new(ExportHealth::new("traces"));
    let metric_health = Arc::new(ExportHealth::new("metrics"));
    if !config.telemetry_enabled {
        return Ok(TelemetryGuard {
            tracer_provider: None,
            trace_health,
            metrics: None,
            metric_health,
            identity: None,
        });
    }
    let identity = InstanceIdentity::detect(config).await;
    let trace_export = match config.traces_exporter {
        TracesExporter::Otlp => traces::TraceExport::Otlp(OtlpTarget::resolve(
            config.otlp_traces_endpoint.as_deref(),
            &endpoint,
        )),
        TracesExporter::GcpTrace => traces::TraceExport::CloudTrace {
            project_id: identity.project_id.clone(),
            endpoint: endpoint.clone(),
        },
    };
    let traces_to = trace_export.to_string();
    let provider = traces::tracer_provider(
        identity.to_resource(),
        trace_export,
        config.trace_sampling_ratio,
        config.span_queue_size,
        Arc::clone(&trace_health),
    )?;
    traces::server_span::install(&provider);
    logs::install(
        config,
        Some(provider.tracer(env!("CARGO_PKG_NAME"))),
        log_tee,
    )?;
    logs::install_panic_hook();
    let interval = config.metric_export_interval;
    if let Some(requested) = interval.raised_from {
        tracing::warn!(
            requested_ms = requested.as_millis(),
            interval_ms = interval.interval.as_millis(),
            "OTEL_METRIC_EXPORT_INTERVAL is below the minimum (5 s towards Google and the embedded emulator at real time, divided by EMULATOR_TIME_SCALE; 100 ms towards another emulator); exporting every interval_ms"
        );
    }
    let metric_export = match config.metrics_exporter {
        MetricsExporter::GcpMonitoring => metrics::MetricExport::CloudMonitoring(endpoint),
        MetricsExporter::Otlp => metrics::MetricExport::Otlp(OtlpTarget::resolve(
            config.otlp_metrics_endpoint.as_deref(),
            &endpoint,
        )),
    };
    tracing::info!(
        traces = %traces_to,
        metrics = %metric_export,
        "telemetry: traces to {traces_to}, metrics to {metric_export}"
    );
    let metrics = metrics::install(
        &identity,
        metric_export,
        interval.interval,
        Arc::clone(&metric_health),
    )?;
    Ok(TelemetryGuard {
        tracer_provider: Some(provider),
        trace_health,
        metrics: Some(metrics),
        metric_health,
        identity: Some(identity),
    })
}
