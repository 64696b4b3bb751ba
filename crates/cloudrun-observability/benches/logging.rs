//! The cost of one request log line on one core: the service's own
//! subscriber (the Cloud Logging layer) formatting a typical request line
//! inside a request span that carries a trace context, as in the service;
//! first into a sink that keeps nothing (formatting alone), then through the
//! batched stdout queue to a writer thread writing to `/dev/null` (what a
//! request pays, plus the writer's share).
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
use cloudrun_observability::telemetry::traces::context::{SpanId, TraceContext, TraceId};
use cloudrun_observability::telemetry::traces::span_data;
use tracing_subscriber::layer::SubscriberExt;
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
    // current span, as it does there.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let span = tracing::info_span!("request");
    span_data::attach(
        &span,
        TraceContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            sampled: true,
        },
    );
    let _entered = span.enter();

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

/// The same fields as the service's request line.
fn request_line(n: u32) {
    tracing::info!(
        http_request.request_method = "GET",
        http_request.request_url = "/api/books/3",
        http_request.status = 200u64,
        http_request.response_size = 119u64,
        http_request.user_agent = "wrk/4.1.0",
        http_request.remote_ip = "127.0.0.1",
        http_request.latency = "0.000403s",
        http_request.protocol = "HTTP/1.1",
        route = "/api/books/{id}",
        latency_ms = "0.403",
        "GET /api/books/3 200 #{n}"
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
                " (logging thread only; writer thread: {} batches, at most {} lines queued, {} waits for room)",
                stats.batches_written, stats.max_queued_lines, stats.full_waits
            );
        }
        None => println!(),
    }
}
