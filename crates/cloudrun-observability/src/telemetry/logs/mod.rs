//! Structured logs in the format Cloud Run's logging agent ingests.
//!
//! On Cloud Run, whatever a container writes to stdout becomes a log entry;
//! a line that is a JSON object is parsed, and its special fields (`severity`,
//! `message`, `httpRequest`, `logging.googleapis.com/trace`, ...) become the
//! entry's own fields. `tracing-stackdriver` formats those lines; the
//! [`CorrelatingMakeWriter`] completes them. Locally `LOG_FORMAT=pretty`
//! prints human-readable lines instead.

pub mod error_reporting;
pub mod writer;

use std::backtrace::{Backtrace, BacktraceStatus};
use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracer;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Config, LogFormat};
use crate::telemetry::logs::error_reporting::{
    ErrorReport, ErrorType, HttpContext, ReportLocation,
};
use crate::telemetry::logs::writer::CorrelatingMakeWriter;
use crate::telemetry::traces::span_data;
use crate::telemetry::TelemetryError;

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
            .with(json_layer(config, TeeStdout { tee }))
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
/// would. It is called on the logging thread, so it must not block.
pub trait LineSink: Send + Sync {
    /// Takes one complete line (with its trailing newline, if any).
    fn offer_line(&self, line: &[u8]);
}

impl LineSink for cloud_ops_emulator::logging::store::LogSink {
    fn offer_line(&self, line: &[u8]) {
        self.offer(line);
    }
}

/// stdout, and a copy of each line to an optional [`LineSink`].
struct TeeStdout {
    tee: Option<Arc<dyn LineSink>>,
}

impl<'a> MakeWriter<'a> for TeeStdout {
    type Writer = TeeWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter {
            stdout: io::stdout(),
            tee: self.tee.as_deref(),
        }
    }
}

/// Writes to stdout first, then offers the same bytes to the tee. The
/// [`CorrelatingMakeWriter`] in front hands over each line in one
/// `write_all`, so the tee sees whole lines.
struct TeeWriter<'a> {
    stdout: io::Stdout,
    tee: Option<&'a dyn LineSink>,
}

impl Write for TeeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stdout.write_all(buf)?;
        if let Some(tee) = self.tee {
            tee.offer_line(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// `RUST_LOG`'s filter, or [`DEFAULT_FILTER`].
pub fn env_filter(directives: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    Ok(EnvFilter::builder().parse(directives.unwrap_or(DEFAULT_FILTER))?)
}

/// The Cloud Logging JSON layer, writing to `writer`: stdout in the service,
/// a buffer in tests.
pub fn json_layer<S, W>(config: &Config, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let service_context = error_reporting::ServiceContext {
        service: config.service_name().to_owned(),
        version: config.service_version().to_owned(),
    };
    let writer = CorrelatingMakeWriter::new(writer, config.trace_project(), &service_context);
    tracing_stackdriver::layer()
        // The writer adds `sourceLocation` itself, so that an error entry
        // can point at the error rather than at the line that logs it.
        .with_source_location(false)
        .with_writer(writer)
        .with_filter(EventsOnly)
}

/// What the JSON layer sees: events, not spans. A span reaches Cloud Logging
/// as the entry's trace and span ids, which the writer adds and which lead to
/// the span itself in Cloud Trace. Its fields are OpenTelemetry's naming hints
/// (`otel.name`, `otel.kind`); copied into every line as `span` and `spans`
/// they made a request line a third longer (ingestion is billed by the byte)
/// and cost serializing each span's fields on creation and parsing them back
/// on every line (issue #10).
struct EventsOnly;

impl<S> Filter<S> for EventsOnly {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        metadata.is_event()
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_event() {
            Interest::always()
        } else {
            Interest::never()
        }
    }
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
