//! JSON log lines per second on one core, for a typical request line: the
//! service's own subscriber (tracing-stackdriver and the correlating
//! writer) formatting into a sink, inside a request span that carries a
//! trace context, as in the service.
//!
//! ```sh
//! cargo bench --bench logging
//! ```

use std::time::{Duration, Instant};

use cloudrun_observability::config::Config;
use cloudrun_observability::telemetry::logging::{env_filter, json_layer};
use cloudrun_observability::telemetry::span_data;
use cloudrun_observability::telemetry::trace_context::{SpanId, TraceContext, TraceId};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Registry;

const LINES: u32 = 200_000;

fn main() {
    let config = Config::from_lookup(|_| None).expect("default configuration");
    let subscriber = Registry::default()
        .with(env_filter(None).expect("default filter"))
        .with(json_layer(&config, std::io::sink));
    let elapsed = tracing::subscriber::with_default(subscriber, || {
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
    });
    report(elapsed);
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
