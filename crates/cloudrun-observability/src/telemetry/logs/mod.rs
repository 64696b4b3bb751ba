//! Structured logs in the format Cloud Run's logging agent ingests.
//!
//! On Cloud Run, whatever a container writes to stdout becomes a log entry;
//! a line that is a JSON object is parsed, and its special fields (`severity`,
//! `message`, `httpRequest`, `logging.googleapis.com/trace`, ...) become the
//! entry's own fields. [`format`] writes those lines, [`stdout`] writes them
//! out in batches from a thread of its own. Locally `LOG_FORMAT=pretty`
//! prints human-readable lines instead.

pub mod error_reporting;
pub mod format;
pub mod json;
pub mod stdout;

use std::backtrace::{Backtrace, BacktraceStatus};
use std::borrow::Cow;
use std::io;
use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracer;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Config, LogFormat};
use crate::telemetry::logs::error_reporting::{
    ErrorReport, ErrorType, HttpContext, ReportLocation,
};
use crate::telemetry::logs::format::{CloudLoggingLayer, LineOutput};
use crate::telemetry::logs::stdout::BatchedStdout;
use crate::telemetry::traces::span_data;
use crate::telemetry::TelemetryError;

pub use self::stdout::{flush, FlushOnDrop};

/// The filter when `RUST_LOG` is not set: this service at `info`, the
/// dependencies that narrate every connection at `warn`.
pub const DEFAULT_FILTER: &str =
    "info,hyper=warn,hyper_util=warn,h2=warn,tonic=warn,tower=warn,reqwest=warn,rustls=warn,opentelemetry=warn,opentelemetry_sdk=warn";

/// Installs the global subscriber for `config`, writing to stdout; with a
/// `tracer`, `tracing` spans also become OpenTelemetry spans. With a
/// `tee`, each JSON line also goes there (the embedded emulator's console);
/// pretty lines are for a terminal only and are not copied.
pub fn install(
    config: &Config,
    tracer: Option<SdkTracer>,
    tee: Option<Arc<dyn LineSink>>,
) -> Result<(), TelemetryError> {
    let filter = env_filter(config.log_filter.as_deref())?;
    match config.log_format {
        LogFormat::Json => Registry::default()
            .with(filter)
            .with(json_layer(config, BatchedStdout::install(tee)))
            .with(tracer.map(otel_layer))
            .try_init()?,
        LogFormat::Pretty => Registry::default()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(io::stdout))
            .with(tracer.map(otel_layer))
            .try_init()?,
    }
    Ok(())
}

/// A second destination for the service's log lines, besides stdout: the
/// embedded emulator's log store, so its console shows what Cloud Logging
/// would. It is called on the log writer's thread, after the line's batch
/// reached stdout, so it must not block for long.
pub trait LineSink: Send + Sync {
    /// Takes one complete line (with its trailing newline, if any).
    fn offer_line(&self, line: &[u8]);
}

impl LineSink for cloud_ops_emulator::logging::store::LogSink {
    fn offer_line(&self, line: &[u8]) {
        self.offer(line);
    }
}

/// `RUST_LOG`'s filter, or [`DEFAULT_FILTER`].
pub fn env_filter(directives: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    Ok(EnvFilter::builder().parse(directives.unwrap_or(DEFAULT_FILTER))?)
}

/// The Cloud Logging JSON layer, writing each line to `output`: the
/// batched stdout in the service, a buffer in tests and benchmarks. It sees
/// events only: a span reaches Cloud Logging as the entry's trace and span
/// ids, which lead to the span itself in Cloud Trace (issue #10).
pub fn json_layer<O: LineOutput>(config: &Config, output: O) -> CloudLoggingLayer<O> {
    let service_context = error_reporting::ServiceContext {
        service: config.service_name().to_owned(),
        version: config.service_version().to_owned(),
    };
    CloudLoggingLayer::new(output, config.trace_project(), &service_context)
}

/// Crates whose spans must never become traces: the exporters' own HTTP/2
/// and gRPC stack would otherwise trace its own exports, forever.
const UNTRACED_TARGETS: &[&str] = &["h2", "hyper", "tonic", "tower", "reqwest", "rustls"];

/// The layer that turns `tracing` spans into OpenTelemetry spans. Events are
/// left out: the request middleware adds the span events that matter
/// (exceptions) itself, and log lines already go to Cloud Logging.
fn otel_layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_level(false)
        .with_filter(filter_fn(|metadata| {
            metadata.is_span()
                && !UNTRACED_TARGETS
                    .iter()
                    .any(|target| metadata.target().starts_with(target))
        }))
}

/// Replaces the default panic hook, which prints plain text to stderr, with
/// one that logs the panic once as an Error Reporting entry: message,
/// location, backtrace when `RUST_BACKTRACE=1`, and the request it happened
/// in. The request middleware's catch then answers 500 and keeps serving.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let report = panic_report(info);
        let http = span_data::current::<HttpContext>().map(|mut http| {
            http.response_status_code = Some(500);
            http
        });
        error_reporting::emit(&report, http.as_ref());
        // The process may end right after (a panic outside a request, or
        // with `panic = "abort"`): the entry must be on stdout by then.
        flush(stdout::FLUSH_TIMEOUT);
    }));
}

fn panic_report(info: &std::panic::PanicHookInfo<'_>) -> ErrorReport {
    let payload = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| Cow::Borrowed(*s))
        .or_else(|| {
            info.payload()
                .downcast_ref::<String>()
                .map(|s| Cow::Borrowed(s.as_str()))
        })
        .unwrap_or(Cow::Borrowed("Box<dyn Any>"));
    let (location, at) = match info.location() {
        Some(location) => (
            ReportLocation {
                file_path: Cow::Owned(location.file().to_owned()),
                line_number: location.line(),
                function_name: Cow::Owned(error_reporting::module_of(location.file())),
            },
            format!(
                " at {}:{}:{}",
                location.file(),
                location.line(),
                location.column()
            ),
        ),
        None => (
            ReportLocation {
                file_path: Cow::Borrowed("unknown"),
                line_number: 0,
                function_name: Cow::Borrowed("unknown"),
            },
            String::new(),
        ),
    };
    let thread = std::thread::current();
    let mut message = format!(
        "thread '{}' panicked{at}: {payload}",
        thread.name().unwrap_or("<unnamed>")
    );
    let backtrace = Backtrace::capture();
    if backtrace.status() == BacktraceStatus::Captured {
        message.push_str("\nstack backtrace:\n");
        message.push_str(&backtrace.to_string());
    }
    ErrorReport {
        error_type: ErrorType::Panic,
        message,
        location,
        dependency: None,
    }
}
