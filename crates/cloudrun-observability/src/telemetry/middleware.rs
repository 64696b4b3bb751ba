//! The HTTP middleware that makes each request observable.
//!
//! For every request it:
//! 1. continues the caller's trace (`traceparent`, else
//!    `X-Cloud-Trace-Context`) or starts one, and gives the request its own
//!    span id;
//! 2. runs the handler inside a `request` span that carries that
//!    [`TraceContext`] and the request's [`HttpContext`], so every line logged
//!    on the way (and a panic) is correlated;
//! 3. logs the error the handler reported, once, as an Error Reporting entry;
//! 4. writes one request log line with `httpRequest`, at INFO for 2xx/3xx,
//!    WARNING for 4xx, ERROR for 5xx;
//! 5. records the `http.server.request.duration` histogram (route template,
//!    never the raw path) and, for the error it reported, `app.errors`.
//!
//! It never logs a header other than `User-Agent`: `Authorization` and
//! cookies cannot leak into the logs.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use tracing::Instrument as _;

use opentelemetry::trace::Status;
use opentelemetry::KeyValue;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry::http_request::http_context;
use crate::telemetry::logs::error_reporting::{
    self, CaughtPanic, ErrorReport, ErrorType, HttpContext,
};
use crate::telemetry::traces::context::{extract_remote_parent, SpanId, TraceContext, TraceId};
use crate::telemetry::traces::span_data;
use crate::telemetry::{metrics, traces};

/// The route label of a request no route matched: one value, so that
/// scanners probing random paths cannot blow up cardinality.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The middleware; add it with `Router::layer` so that it sees the matched
/// route template.
pub async fn track_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, |path| intern_route(path.as_str()));
    let http = http_context(&request);
    let protocol = protocol_name(request.version());

    let span = server_span(&request, &http, route);
    let trace = traces::trace_context_of(&span)
        .unwrap_or_else(|| fallback_trace_context(request.headers()));
    span_data::attach(&span, trace);
    span_data::attach(&span, http.clone());
    // Handlers read it to propagate the trace to downstream calls.
    request.extensions_mut().insert(trace);

    let response = next.run(request).instrument(span.clone()).await;
    let latency = started.elapsed();

    let _entered = span.enter();
    let status = response.status().as_u16();
    record_outcome(&span, &response, status);
    if let Some(report) = response.extensions().get::<ErrorReport>() {
        let http = HttpContext {
            response_status_code: Some(status),
            ..http.clone()
        };
        error_reporting::emit(report, Some(&http));
    }
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

/// The request's SERVER span, named after the route template (never the raw
/// path), child of the caller's span when the headers name one, with
/// OpenTelemetry's HTTP semantic conventions.
fn server_span(request: &Request, http: &HttpContext, route: &'static str) -> tracing::Span {
    let name = if route == UNMATCHED_ROUTE {
        http.method.clone()
    } else {
        format!("{} {route}", http.method)
    };
    let span = tracing::info_span!("request", otel.name = %name, otel.kind = "server");
    let headers = request.headers();
    if let Some(parent) = extract_remote_parent(headers) {
        let trace_state = headers
            .get("tracestate")
            .and_then(|value| value.to_str().ok())
            .filter(|_| headers.contains_key("traceparent"));
        // Fails only when no OpenTelemetry layer is installed.
        let _ = span.set_parent(traces::remote_context(&parent, trace_state));
    }
    span.set_attribute("http.request.method", http.method.clone());
    if route != UNMATCHED_ROUTE {
        span.set_attribute("http.route", route);
    }
    span.set_attribute("url.path", request.uri().path().to_owned());
    if let Some(host) = request.uri().host().or_else(|| host_header(headers)) {
        span.set_attribute("server.address", host.to_owned());
    }
    if let Some(user_agent) = &http.user_agent {
        span.set_attribute("user_agent.original", user_agent.clone());
    }
    if let Some(client) = &http.remote_ip {
        span.set_attribute("client.address", client.clone());
    }
    span
}

/// The route templates seen so far, each leaked once: a request's route
/// then costs no allocation for its span attribute, metric label and log
/// line (issue #10). Templates come from the router, so there are only as
/// many as it has routes.
fn intern_route(route: &str) -> &'static str {
    static ROUTES: RwLock<BTreeSet<&'static str>> = RwLock::new(BTreeSet::new());
    let known = ROUTES
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(route)
        .copied();
    known.unwrap_or_else(|| {
        let mut routes = ROUTES
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match routes.get(route) {
            Some(known) => known,
            None => {
                let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
                routes.insert(leaked);
                leaked
            }
        }
    })
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

/// Status code on the span; for a 5xx, error status and an `exception`
/// event with what went wrong.
fn record_outcome(span: &tracing::Span, response: &Response, status: u16) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status < 500 {
        return;
    }
    let (exception_type, message) = if let Some(report) = response.extensions().get::<ErrorReport>()
    {
        (
            report.error_type.as_str().to_owned(),
            report.message.clone(),
        )
    } else if let Some(panic) = response.extensions().get::<CaughtPanic>() {
        ("panic".to_owned(), panic.message.clone())
    } else {
        ("http_error".to_owned(), format!("HTTP {status}"))
    };
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", exception_type),
            KeyValue::new("exception.message", message.clone()),
        ],
    );
    span.set_status(Status::error(message));
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
                tracing::event!(
                    $level,
                    http_request.request_method = %self.http.method,
                    http_request.request_url = %self.http.url,
                    http_request.status = self.status,
                    http_request.response_size = self.response_size.unwrap_or(0),
                    http_request.user_agent = self.http.user_agent.as_deref().unwrap_or(""),
                    http_request.remote_ip = self.http.remote_ip.as_deref().unwrap_or(""),
                    http_request.latency = %format_latency(self.latency),
                    http_request.protocol = self.protocol,
                    route = self.route,
                    latency_ms = %format_latency_ms(self.latency),
                    "{} {} {}",
                    self.http.method,
                    self.http.url,
                    self.status
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
fn format_latency_ms(latency: Duration) -> String {
    format!("{:.3}", latency.as_secs_f64() * 1000.0)
}

/// Cloud Logging's duration format: seconds with a trailing `s`.
fn format_latency(latency: Duration) -> String {
    format!("{:.6}s", latency.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_seconds_with_an_s() {
        assert_eq!(format_latency(Duration::from_micros(12_345)), "0.012345s");
        assert_eq!(format_latency(Duration::from_secs(2)), "2.000000s");
    }

    #[test]
    fn unsampled_callers_stay_unsampled_and_new_traces_are_sampled() {
        let mut headers = HeaderMap::new();
        let fresh = fallback_trace_context(&headers);
        assert!(fresh.sampled);
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
                .parse()
                .unwrap(),
        );
        let continued = fallback_trace_context(&headers);
        assert_eq!(
            continued.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(continued.span_id.to_string(), "00f067aa0ba902b7");
        assert!(!continued.sampled);
    }
}
