//! Structured logs in the format Cloud Run's logging agent ingests.
//!
//! On Cloud Run, whatever a container writes to stdout becomes a log entry;
//! a line that is a JSON object is parsed, and its special fields (`severity`,
//! `message`, `httpRequest`, `logging.googleapis.com/trace`, ...) become the
//! entry's own fields. [`format`] writes those lines, [`stdout`] writes them
//! out in batches from a thread of its own. Locally `LOG_FORMAT=pretty`
//! prints human-readable lines instead.

pub(crate) mod error_reporting;
pub mod format;
pub(crate) mod json;
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
use crate::telemetry::request_scope;
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
/// (exceptions) itself, and log lines already go to Cloud Logging. The
/// request's own OpenTelemetry span is made directly, at a fraction of the
/// bridge's cost (`traces::server_span`).
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
        let http = request_scope::current_http().map(|http| HttpContext {
            response_status_code: Some(500),
            ..HttpContext::clone(&http)
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
        message.push_str(&bounded_backtrace(&backtrace.to_string()));
    }
    ErrorReport {
        error_type: ErrorType::Panic,
        message,
        location,
        dependency: None,
    }
}

/// Frames a panic entry carries at most: the panic's place and its callers
/// up to the handler, where Error Reporting's reader looks. A whole Rust
/// backtrace (tokio, hyper, tower) is about 35 KB an entry.
const MAX_PANIC_FRAMES: usize = 24;

/// `backtrace` (std's text: `N: symbol` lines, each followed by its `at
/// file:line` lines) without the panic machinery's own frames before the
/// panicking code, and cut after [`MAX_PANIC_FRAMES`] frames, saying how
/// many were left out.
fn bounded_backtrace(backtrace: &str) -> String {
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in backtrace.lines() {
        let starts_frame = line
            .trim_start()
            .split_once(':')
            .is_some_and(|(number, _)| {
                !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
            });
        match frames.last_mut() {
            Some(frame) if !starts_frame => frame.push(line),
            _ => frames.push(vec![line]),
        }
    }
    let machinery = |frame: &Vec<&str>| {
        let symbol = frame[0]
            .trim_start()
            .split_once(": ")
            .map_or("", |(_, s)| s);
        [
            "std::",
            "core::",
            "alloc::",
            "__rustc::",
            "rust_begin_unwind",
            "<alloc::",
        ]
        .iter()
        .any(|prefix| symbol.starts_with(prefix))
            || symbol.starts_with(concat!(env!("CARGO_CRATE_NAME"), "::telemetry::logs"))
    };
    let first = frames
        .iter()
        .position(|frame| !machinery(frame))
        .unwrap_or(0);
    let kept = &frames[first..];
    let mut out: Vec<&str> = kept
        .iter()
        .take(MAX_PANIC_FRAMES)
        .flatten()
        .copied()
        .collect();
    let more = kept.len().saturating_sub(MAX_PANIC_FRAMES);
    let note = format!("      ... {more} more frames");
    if more > 0 {
        out.push(&note);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtrace_keeps_the_panicking_code_and_at_most_24_frames() {
        let mut text = String::from(
            "   0: std::backtrace::Backtrace::capture\n             at /rustc/x/library/std/src/backtrace.rs:296:9\n   1: core::panicking::panic_fmt\n",
        );
        text.push_str("   2: cloudrun_observability::app::faults::panic\n             at ./crates/cloudrun-observability/src/app/faults.rs:130:5\n");
        for n in 3..100 {
            text.push_str(&format!(
                "  {n}: tokio::runtime::task::poll\n             at /x.rs:1:1\n"
            ));
        }
        let bounded = bounded_backtrace(&text);
        assert!(
            bounded.starts_with("   2: cloudrun_observability::app::faults::panic"),
            "{bounded}"
        );
        assert_eq!(
            bounded
                .lines()
                .filter(|l| l.contains(": ") && !l.contains(" at "))
                .count(),
            24
        );
        assert!(bounded.ends_with("... 74 more frames"), "{bounded}");
    }
}
