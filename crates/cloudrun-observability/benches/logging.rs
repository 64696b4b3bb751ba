//! The cost of one request log line on one core: the service's own
//! subscriber (the Cloud Logging layer) formatting a typical request line
//! inside a request whose trace context is current, as in the service;
//! first into a sink that keeps nothing (formatting alone), then through the
//! batched stdout queue to a writer thread writing to `/dev/null` (what a
//! request pays, plus the writer's share). Last, the same line through
//! json-subscriber 0.3, the crate issue #16 named as the alternative to a
//! layer of our own, configured as near to Cloud Logging's line as its API
//! goes (see [`json_subscriber_layer`]): the measurement behind the choice.
//!
//! ```sh
//! cargo bench --bench logging
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use cloudrun_observability::config::Config;
use cloudrun_observability::telemetry::logs::format::LineOutput;
use cloudrun_observability::telemetry::logs::stdout::BatchedStdout;
use cloudrun_observability::telemetry::logs::{env_filter, json_layer};
use cloudrun_observability::telemetry::request_scope;
use cloudrun_observability::telemetry::traces::context::{SpanId, TraceContext, TraceId};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan as _;
use tracing_subscriber::Registry;

const LINES: u32 = 200_000;

/// The queue the second run's lines go to; unset during the first.
static OUTPUT: OnceLock<BatchedStdout> = OnceLock::new();

fn main() {
    let config = Config::from_lookup(|_| None).expect("default configuration");
    let subscriber = Registry::default()
        .with(env_filter(None).expect("default filter"))
        .with(json_layer(&config, Switch));
    // Global, as in the service: the layer reads the trace context of the
    // current request, as it does there.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let entered = request_scope::enter_trace(trace_context());

    let formatted = run();
    let first = String::from_utf8_lossy(FIRST_LINE.get().expect("a line was written"));
    assert!(
        first.contains("\"logging.googleapis.com/trace\":"),
        "the lines lack their trace fields: {first}"
    );
    report("formatted into a sink", formatted, None);

    let dev_null = std::fs::File::create("/dev/null").expect("/dev/null");
    let queue = BatchedStdout::start(dev_null, None);
    let _ = OUTPUT.set(queue.clone());
    let queued = run();
    assert!(queue.flush(Duration::from_secs(10)));
    report("formatted, queued, written", queued, Some(&queue));
    drop(entered);

    let json_subscriber = tracing::subscriber::with_default(
        Registry::default()
            .with(env_filter(None).expect("default filter"))
            .with(json_subscriber_layer()),
        || {
            let span = request_span();
            let _entered = span.enter();
            run()
        },
    );
    let first = String::from_utf8_lossy(FIRST_JSON_SUBSCRIBER_LINE.get().expect("a line"));
    assert!(
        first.contains("\"requestMethod\":\"GET\"") && first.contains("/traces/"),
        "json-subscriber's lines lack fields: {first}"
    );
    report(
        "json-subscriber 0.3, a flat line (a lower bound: see the bench's source), formatted into a sink",
        json_subscriber,
        None,
    );
    print!("logging: a line json-subscriber wrote: {first}");
}

fn trace_context() -> TraceContext {
    TraceContext {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        sampled: true,
    }
}

/// A request span for json-subscriber, which reads the trace context from
/// a span's registry extensions (where the service kept it until issue #16).
fn request_span() -> tracing::Span {
    let span = tracing::info_span!("request");
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        registry.span(id)?.extensions_mut().insert(trace_context());
        Some(())
    });
    span
}

/// json-subscriber configured for the Cloud Logging line as far as its API
/// goes: time, severity, target, source file and line, the event's fields
/// renamed to their camel-case names, the trace, span id and sampling
/// decision from the request span. It cannot nest the `http_request.*`
/// fields into `httpRequest` or `sourceLocation`, name the level `WARNING`,
/// or add the Error Reporting fields, so its line is flat and smaller than
/// the service's: the figure it gives is a lower bound of its cost.
fn json_subscriber_layer<S>() -> json_subscriber::JsonLayer<S, fn() -> FirstLineWriter>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let mut layer = json_subscriber::JsonLayer::new(FirstLineWriter::default as fn() -> _);
    layer
        .with_timer("time", tracing_subscriber::fmt::time::SystemTime)
        .with_level("severity")
        .with_target("target")
        .with_file("file")
        .with_line_number("line")
        .with_flattened_event_with_renames(|name, ()| camel_case_name(name), ());
    layer.add_from_extension::<TraceContext, _, _>("logging.googleapis.com/trace", |trace| {
        Some(format!("projects/bench-project/traces/{}", trace.trace_id))
    });
    layer.add_from_extension::<TraceContext, _, _>("logging.googleapis.com/spanId", |trace| {
        Some(trace.span_id.to_string())
    });
    layer.add_from_extension::<TraceContext, _, _>(
        "logging.googleapis.com/trace_sampled",
        |trace| Some(trace.sampled),
    );
    layer
}

/// The request line's field names as the Cloud Logging layer writes them
/// (without the `httpRequest` nesting json-subscriber cannot do).
fn camel_case_name(name: &str) -> &str {
    match name {
        "http_request.request_method" => "requestMethod",
        "http_request.request_url" => "requestUrl",
        "http_request.response_size" => "responseSize",
        "http_request.user_agent" => "userAgent",
        "http_request.remote_ip" => "remoteIp",
        "http_request.latency" => "latency",
        "http_request.protocol" => "protocol",
        "http_request.status" => "status",
        "latency_ms" => "latencyMs",
        other => other,
    }
}

static FIRST_JSON_SUBSCRIBER_LINE: OnceLock<Vec<u8>> = OnceLock::new();

/// json-subscriber's writer: keeps the first line, for the check after the
/// run, and drops the rest, as [`Switch`] does for the first run.
#[derive(Default)]
struct FirstLineWriter;

impl std::io::Write for FirstLineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        FIRST_JSON_SUBSCRIBER_LINE.get_or_init(|| line.to_vec());
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The CPU time this thread spent logging `LINES` lines: on a machine
/// shared with other work, wall-clock time measures the others too.
fn run() -> Duration {
    let started = thread_cpu_time();
    for n in 0..LINES {
        request_line(n);
    }
    thread_cpu_time() - started
}

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The first run's sink (keeps the first line, to check after the run that
/// the lines measured are complete; the rest go nowhere), then the queue.
struct Switch;

static FIRST_LINE: OnceLock<Vec<u8>> = OnceLock::new();

impl LineOutput for Switch {
    fn write_line(&self, line: &[u8]) {
        match OUTPUT.get() {
            Some(queue) => queue.write_line(line),
            None => {
                FIRST_LINE.get_or_init(|| line.to_vec());
            }
        }
    }
}

/// The same fields as the service's request line, in the same order.
fn request_line(n: u32) {
    tracing::info!(
        http_request.latency = "0.000403s",
        http_request.protocol = "HTTP/1.1",
        http_request.remote_ip = "127.0.0.1",
        http_request.request_method = "GET",
        http_request.request_url = "/api/books/3",
        http_request.response_size = 119u64,
        http_request.status = 200u64,
        http_request.user_agent = "wrk/4.1.0",
        latency_ms = "0.403",
        message = format_args!("GET /api/books/3 200 #{n}"),
        route = "/api/books/{id}",
    );
}

fn report(what: &str, elapsed: Duration, queue: Option<&BatchedStdout>) {
    let per_second = f64::from(LINES) / elapsed.as_secs_f64();
    print!(
        "logging: {per_second:.0} JSON request lines/s on one core ({:.2} us CPU/line, {LINES} lines), {what}",
        elapsed.as_secs_f64() * 1e6 / f64::from(LINES)
    );
    match queue {
        Some(queue) => {
            let stats = queue.stats();
            println!(
                " (logging thread only; writer thread: {} batches, woken {} times by a logger, at most {} lines queued, {} waits for room)",
                stats.batches_written, stats.logger_wakeups, stats.max_queued_lines, stats.full_waits
            );
        }
        None => println!(),
    }
}
