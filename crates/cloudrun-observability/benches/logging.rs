//! JSON log lines per second on one core, for a typical request line: the
//! service's own subscriber (tracing-stackdriver and the correlating
//! writer) formatting into a sink, inside a request span that carries a
//! trace context, as in the service.
//!
//! ```sh
//! cargo bench --bench logging
//! ```

use std::io::{self, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cloudrun_observability::config::Config;
use cloudrun_observability::telemetry::logs::{env_filter, json_layer};
use cloudrun_observability::telemetry::traces::context::{SpanId, TraceContext, TraceId};
use cloudrun_observability::telemetry::traces::span_data;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Registry;

const LINES: u32 = 200_000;

fn main() {
    let config = Config::from_lookup(|_| None).expect("default configuration");
    let subscriber = Registry::default()
        .with(env_filter(None).expect("default filter"))
        .with(json_layer(&config, || FirstLineKept));
    // Global, as in the service: the writer reads the trace context of the
    // current span from inside the event's dispatch, which a scoped
    // (`with_default`) subscriber does not allow, and every line would then
    // lack its trace fields.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let elapsed = {
        let span = tracing::info_span!(
            "request",
            otel.name = "GET /api/books/{id}",
            otel.kind = "server"
        );
        span_data::attach(
            &span,
            TraceContext {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
                sampled: true,
            },
        );
        let _entered = span.enter();
        let started = Instant::now();
        for n in 0..LINES {
            request_line(n);
        }
        started.elapsed()
    };
    let first = String::from_utf8_lossy(FIRST_LINE.get().expect("a line was written"));
    assert!(
        first.contains("\"logging.googleapis.com/trace\":"),
        "the lines lack their trace fields: {first}"
    );
    report(elapsed);
}

/// A sink that keeps the first line, to check after the run that the lines
/// measured are complete; the rest go nowhere.
struct FirstLineKept;

static FIRST_LINE: OnceLock<Vec<u8>> = OnceLock::new();

impl Write for FirstLineKept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        FIRST_LINE.get_or_init(|| buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

fn report(elapsed: Duration) {
    let per_second = f64::from(LINES) / elapsed.as_secs_f64();
    println!(
        "logging: {per_second:.0} JSON request lines/s on one core ({:.2} us/line, {LINES} lines)",
        elapsed.as_secs_f64() * 1e6 / f64::from(LINES)
    );
}
