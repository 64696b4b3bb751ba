//! The HTTP middleware that makes each request observable.
//!
//! For every request it:
//! 1. starts the request's SERVER span ([`server_span`]), continuing the
//!    caller's trace (`traceparent`, else `X-Cloud-Trace-Context`) or
//!    starting one, and polls the handler inside its OpenTelemetry context;
//! 2. polls the handler with the request current ([`request_scope`]): the
//!    span's [`TraceContext`] and the request's [`HttpContext`], so every
//!    line logged on the way (and a panic) is correlated;
//! 3. logs the error the handler reported, once, as an Error Reporting entry;
//! 4. writes one request log line with `httpRequest`, at INFO for 2xx/3xx,
//!    WARNING for 4xx, ERROR for 5xx;
//! 5. records the `http.server.request.duration` histogram (route template,
//!    never the raw path) and, for the error it reported, `app.errors`.
//!
//! It never logs a header other than `User-Agent`: `Authorization` and
//! cookies cannot leak into the logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;

use crate::telemetry::http_request::{http_context, TrustedHops};
use crate::telemetry::intern::Interner;
use crate::telemetry::logs::error_reporting::{
    self, CaughtPanic, ErrorReport, ErrorType, HttpContext,
};
use crate::telemetry::metrics;
use crate::telemetry::request_scope::{self, InRequest};
use crate::telemetry::traces::context::{extract_remote_parent, SpanId, TraceContext, TraceId};
use crate::telemetry::traces::server_span::{self, Exception, RequestAttributes, ServerSpan};

/// The route label of a request no route matched: one value, so that
/// scanners probing random paths cannot blow up cardinality.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The middleware; add it with `Router::layer` so that it sees the matched
/// route template.
pub async fn track_request(
    State(hops): State<TrustedHops>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| intern_route(path.as_str()));
    // Shared with the span (for the panic hook) rather than copied: four
    // strings fewer to allocate and free per request.
    let http = Arc::new(http_context(&request, hops));
    let protocol = protocol_name(request.version());

    let server_span = server_span::start(
        request.headers(),
        &RequestAttributes {
            method: request.method(),
            route,
            path: request.uri().path(),
            host: request
                .uri()
                .host()
                .or_else(|| host_header(request.headers())),
            user_agent: http.user_agent.as_deref(),
            client_address: http.remote_ip.as_deref(),
        },
    );
    let trace = server_span.as_ref().map_or_else(
        || fallback_trace_context(request.headers()),
        ServerSpan::trace_context,
    );
    // Handlers read it to propagate the trace to downstream calls.
    request.extensions_mut().insert(trace);

    let response = InRequest::new(
        next.run(request),
        trace,
        Arc::clone(&http),
        server_span.as_ref().map(|span| span.context().clone()),
    )
    .await;
    let latency = started.elapsed();

    // The request's own entries (its error, its line) carry its trace too.
    let _request = request_scope::enter(trace, Some(Arc::clone(&http)));
    let status = response.status().as_u16();
    if let Some(server_span) = server_span {
        server_span.end(status, exception(&response, status));
    }
    if let Some(report) = response.extensions().get::<ErrorReport>() {
        let http = HttpContext {
            response_status_code: Some(status),
            ..HttpContext::clone(&http)
        };
        error_reporting::emit(report, Some(&http));
    }
    let route = route.unwrap_or(UNMATCHED_ROUTE);
    record_metrics(&response, &http.method, route, status, latency);
    let line = RequestLine {
        http: &http,
        route,
        status,
        response_size: response.body().size_hint().exact(),
        latency,
        protocol,
    };
    line.log();
    response
}

/// The request's duration, and the error it reported: a handler or
/// downstream error carries an [`ErrorReport`]; a caught panic (already
/// reported by the panic hook) a [`CaughtPanic`].
fn record_metrics(
    response: &Response,
    method: &str,
    route: &'static str,
    status: u16,
    latency: Duration,
) {
    metrics::record_request(method, route, status, latency);
    let extensions = response.extensions();
    if let Some(report) = extensions.get::<ErrorReport>() {
        metrics::record_error(report.error_type);
    } else if extensions.get::<CaughtPanic>().is_some() {
        metrics::record_error(ErrorType::Panic);
    }
}

/// The route templates seen so far, each leaked once: a request's route
/// then costs no allocation for its span attribute, metric label and log
/// line (issue #10). Templates come from the router, so there are only as
/// many as it has routes.
fn intern_route(route: &str) -> &'static str {
    static ROUTES: Interner<Box<str>> = Interner::new();
    ROUTES.get(route, || route.into(), || route.to_owned())
}

/// `httpRequest.protocol`: what `Version`'s `Debug` writes, without
/// formatting it for every request.
fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// The host part of the `Host` header.
fn host_header(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    Some(host.rsplit_once(':').map_or(host, |(name, _)| name))
}

/// For a 5xx, what went wrong: the error the handler reported, the panic
/// it caught, or only the status.
fn exception(response: &Response, status: u16) -> Option<Exception> {
    if status < 500 {
        return None;
    }
    let extensions = response.extensions();
    Some(if let Some(report) = extensions.get::<ErrorReport>() {
        Exception {
            kind: report.error_type.as_str().into(),
            message: report.message.clone(),
        }
    } else if let Some(panic) = extensions.get::<CaughtPanic>() {
        Exception {
            kind: "panic".into(),
            message: panic.message.clone(),
        }
    } else {
        Exception {
            kind: "http_error".into(),
            message: format!("HTTP {status}"),
        }
    })
}

/// The trace context when no OpenTelemetry layer is installed: the
/// caller's trace continued, or a new one; a new span id either way.
fn fallback_trace_context(headers: &HeaderMap) -> TraceContext {
    match extract_remote_parent(headers) {
        Some(parent) => TraceContext {
            trace_id: parent.trace_id,
            span_id: SpanId::random(),
            sampled: parent.sampled,
        },
        None => TraceContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            sampled: true,
        },
    }
}

/// What one request log line says.
struct RequestLine<'a> {
    http: &'a HttpContext,
    route: &'a str,
    status: u16,
    response_size: Option<u64>,
    latency: Duration,
    protocol: &'a str,
}

impl RequestLine<'_> {
    fn log(&self) {
        macro_rules! request_event {
            ($level:expr) => {
                // In the order of their names, `message` included: the
                // line lists fields sorted by name, and sorted fields need
                // no sorting.
                tracing::event!(
                    $level,
                    http_request.latency = %format_latency(self.latency),
                    http_request.protocol = self.protocol,
                    http_request.remote_ip = self.http.remote_ip.as_deref().unwrap_or(""),
                    http_request.request_method = %self.http.method,
                    http_request.request_url = %self.http.url,
                    http_request.response_size = self.response_size.unwrap_or(0),
                    http_request.status = self.status,
                    http_request.user_agent = self.http.user_agent.as_deref().unwrap_or(""),
                    latency_ms = %format_latency_ms(self.latency),
                    message = format_args!("{} {} {}", self.http.method, self.http.url, self.status),
                    route = self.route,
                )
            };
        }
        match self.status {
            500.. => request_event!(tracing::Level::ERROR),
            400..=499 => request_event!(tracing::Level::WARN),
            _ => request_event!(tracing::Level::INFO),
        }
    }
}

/// Milliseconds with microsecond precision, e.g. `12.345`. A string, as the
/// log format has always written it (floats went through their `Debug` form);
/// log-based metrics convert the extracted value to a number.
fn format_latency_ms(latency: Duration) -> LatencyMs {
    LatencyMs(rounded_micros(latency))
}

/// Cloud Logging's duration format: seconds with a trailing `s`, to the
/// microsecond.
fn format_latency(latency: Duration) -> LatencySeconds {
    LatencySeconds(rounded_micros(latency))
}

/// Written by integer formatting straight into the line: no float
/// formatting and no `String` per request.
struct LatencyMs(u64);
struct LatencySeconds(u64);

impl std::fmt::Display for LatencyMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000, self.0 % 1_000)
    }
}

impl std::fmt::Display for LatencySeconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// In a `u64`: a `u128`'s division and formatting cost several times more,
/// on every request line.
fn rounded_micros(latency: Duration) -> u64 {
    let micros = latency.as_secs().saturating_mul(1_000_000);
    micros.saturating_add(u64::from((latency.subsec_nanos() + 500) / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_seconds_with_an_s() {
        let seconds = |latency| format_latency(latency).to_string();
        assert_eq!(seconds(Duration::from_micros(12_345)), "0.012345s");
        assert_eq!(seconds(Duration::from_secs(2)), "2.000000s");
        assert_eq!(seconds(Duration::from_nanos(1_234_567_890)), "1.234568s");
    }

    #[test]
    fn latency_ms_has_three_decimals_rounded_to_the_microsecond() {
        let ms = |latency| format_latency_ms(latency).to_string();
        assert_eq!(ms(Duration::from_micros(12_345)), "12.345");
        assert_eq!(ms(Duration::from_nanos(999_600)), "1.000");
        assert_eq!(ms(Duration::from_secs(3)), "3000.000");
        assert_eq!(ms(Duration::ZERO), "0.000");
    }

    proptest::proptest! {
        /// The integer formatting writes what `{:.3}` / `{:.6}` of the
        /// float wrote before, except where a float rounds a half the other
        /// way (at most one unit in the last digit).
        #[test]
        fn latency_strings_match_the_float_formatting(nanos in 0u64..100_000_000_000) {
            let latency = Duration::from_nanos(nanos);
            // Both sides to the same number of decimals, one unit apart at most.
            let close = |ours: String, float: String, unit: f64| {
                let decimals = |text: &str| text.trim_end_matches('s').split_once('.').map(|(_, d)| d.len());
                let value = |text: &str| text.trim_end_matches('s').parse::<f64>().unwrap();
                decimals(&ours) == decimals(&float) && (value(&ours) - value(&float)).abs() <= unit * 1.001
            };
            let float_seconds = format!("{:.6}s", latency.as_secs_f64());
            let float_ms = format!("{:.3}", latency.as_secs_f64() * 1000.0);
            let seconds = format_latency(latency).to_string();
            let ms = format_latency_ms(latency).to_string();
            proptest::prop_assert!(close(seconds, float_seconds, 1e-6));
            proptest::prop_assert!(close(ms, float_ms, 1e-3));
        }
    }
}
