//! The request's SERVER span, made with the OpenTelemetry API directly.
//!
//! Through the `tracing-opentelemetry` bridge, a request span cost about
//! 10 % of the service's CPU at the paced benchmark load (issue #16): the
//! bridge formats the span name into a field, keeps a span builder in the
//! registry's extensions, converts every attribute on the way in, and
//! rebuilds the span at close. Here the span is started once with all its
//! attributes, from static keys, its name interned per method and route,
//! and ended once.
//!
//! The bridge stays for everything else: `tracing` events, and spans made
//! inside handlers (the downstream CLIENT span). Those find this span as
//! their parent because the middleware polls the handler inside this span's
//! [`Context`] ([`ServerSpan::context`]), which the bridge reads when a
//! `tracing` span has no OpenTelemetry parent of its own.

use std::borrow::Cow;
use std::sync::OnceLock;

use http::{HeaderMap, Method};
use opentelemetry::trace::{
    SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::telemetry::http_request::known_method;
use crate::telemetry::intern::Interner;
use crate::telemetry::traces::context::{extract_remote_parent, TraceContext, TRACEPARENT};
use crate::telemetry::traces::remote_context;

/// The tracer of the process's SERVER spans, once telemetry is on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Makes `provider` the source of the request spans. Until this runs (and
/// with telemetry off, never) [`start`] returns `None`.
pub fn install(provider: &SdkTracerProvider) {
    let _ = TRACER.set(provider.tracer(env!("CARGO_PKG_NAME")));
}

/// What the request says about itself, for the span's attributes
/// (OpenTelemetry's HTTP server semantic conventions).
pub struct RequestAttributes<'a> {
    pub method: &'a Method,
    /// The route template, or `None` when no route matched.
    pub route: Option<&'static str>,
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub client_address: Option<&'a str>,
}

/// Why a 5xx failed, for the span's `exception` event and error status.
pub struct Exception {
    pub kind: Cow<'static, str>,
    pub message: String,
}

/// A started SERVER span; [`ServerSpan::end`] ends it.
pub struct ServerSpan {
    context: Context,
}

/// Starts the request's span, child of the caller's when `headers` name one
/// (`traceparent` with its `tracestate`, or `X-Cloud-Trace-Context`); `None`
/// when telemetry is off.
pub fn start(headers: &HeaderMap, request: &RequestAttributes<'_>) -> Option<ServerSpan> {
    let tracer = TRACER.get()?;
    let parent = match extract_remote_parent(headers) {
        Some(parent) => {
            let trace_state = headers
                .get("tracestate")
                .and_then(|value| value.to_str().ok())
                .filter(|_| headers.contains_key(&TRACEPARENT));
            remote_context(&parent, trace_state)
        }
        None => Context::new(),
    };
    let span = tracer
        .span_builder(span_name(request.method, request.route))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes(request))
        .start_with_context(tracer, &parent);
    Some(ServerSpan {
        context: parent.with_span(span),
    })
}

impl ServerSpan {
    /// The ids the request's log lines and downstream calls carry.
    pub fn trace_context(&self) -> TraceContext {
        TraceContext::from(self.context.span().span_context())
    }

    /// The context to poll the handler in, so that spans started inside it
    /// are this span's children.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Records the response's status (and for a 5xx, what went wrong) and
    /// ends the span, which hands it to the exporter's queue.
    pub fn end(self, status: u16, exception: Option<Exception>) {
        let span = self.context.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if let Some(Exception { kind, message }) = exception {
            span.add_event(
                "exception",
                vec![
                    KeyValue::new("exception.type", kind),
                    KeyValue::new("exception.message", message.clone()),
                ],
            );
            span.set_status(Status::error(message));
        }
        span.end();
    }
}

fn attributes(request: &RequestAttributes<'_>) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(6);
    attributes.push(KeyValue::new(
        "http.request.method",
        method_value(request.method),
    ));
    if let Some(route) = request.route {
        attributes.push(KeyValue::new("http.route", route));
    }
    attributes.push(KeyValue::new("url.path", capped(request.path)));
    let optional = [
        ("server.address", request.host),
        ("user_agent.original", request.user_agent),
        ("client.address", request.client_address),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, capped(value)));
        }
    }
    attributes
}

/// The longest attribute value kept from the request: the values come from
/// the client (a user agent can be a megabyte), and Cloud Trace keeps 256
/// bytes of an attribute value anyway.
const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// `value`, cut at a character boundary to at most [`MAX_ATTRIBUTE_BYTES`].
fn capped(value: &str) -> String {
    let mut end = value.len().min(MAX_ATTRIBUTE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// The method as a static string for the standard methods (no allocation),
/// owned for an extension method.
fn method_value(method: &Method) -> Value {
    match known_method(method.as_str()) {
        Some(name) => Value::String(StringValue::from(name)),
        None => Value::String(StringValue::from(method.as_str().to_owned())),
    }
}

/// `METHOD /route/{template}`, or the method alone when no route matched
/// (never the raw path: span names must stay few). Interned for the
/// standard methods, whose number times the router's routes bounds the set.
fn span_name(method: &Method, route: Option<&'static str>) -> Cow<'static, str> {
    let Some(name) = known_method(method.as_str()) else {
        return Cow::Owned(match route {
            Some(route) => format!("{method} {route}"),
            None => method.as_str().to_owned(),
        });
    };
    let Some(route) = route else {
        return Cow::Borrowed(name);
    };
    static NAMES: Interner<(&'static str, &'static str)> = Interner::new();
    let key = (name, route);
    Cow::Borrowed(NAMES.get(&key, || key, || format!("{name} {route}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_route_template_or_the_method_alone() {
        assert_eq!(
            span_name(&Method::GET, Some("/api/books/{id}")),
            "GET /api/books/{id}"
        );
        assert_eq!(span_name(&Method::POST, None), "POST");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(span_name(&custom, Some("/x")), "PURGE /x");
        assert_eq!(span_name(&custom, None), "PURGE");
    }

    #[test]
    fn interned_names_are_made_once() {
        let first = span_name(&Method::DELETE, Some("/api/orders/{id}"));
        let second = span_name(&Method::DELETE, Some("/api/orders/{id}"));
        match (first, second) {
            (Cow::Borrowed(a), Cow::Borrowed(b)) => assert!(std::ptr::eq(a, b)),
            _ => panic!("standard methods with a route are interned"),
        }
    }

    #[test]
    fn values_from_the_client_are_capped_at_a_character_boundary() {
        assert_eq!(capped("wrk/4.1.0"), "wrk/4.1.0");
        let long = "é".repeat(MAX_ATTRIBUTE_BYTES);
        let kept = capped(&long);
        assert!(kept.len() <= MAX_ATTRIBUTE_BYTES && kept.len() >= MAX_ATTRIBUTE_BYTES - 1);
        assert!(long.starts_with(&kept));
    }

    #[test]
    fn standard_methods_are_static_and_others_kept() {
        assert_eq!(method_value(&Method::PATCH).as_str(), "PATCH");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_value(&custom).as_str(), "PURGE");
    }
}
