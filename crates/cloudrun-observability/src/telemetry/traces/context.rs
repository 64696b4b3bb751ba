//! The identity of a request within a distributed trace: which trace it
//! belongs to, which span it is, and whether the trace is sampled.
//!
//! Cloud Run's front end sends two headers on every request: the W3C
//! `traceparent` and Google's older `X-Cloud-Trace-Context`. Either one lets
//! this service continue the caller's trace, so that its log lines nest under
//! Cloud Run's own request log and its spans join the caller's trace. A header
//! that does not parse is ignored (a new trace starts): a client's malformed
//! header must never turn into a 4xx or a panic.

use std::fmt;

use http::{HeaderMap, HeaderName};
use opentelemetry::trace::SpanContext;
use rand::Rng;

/// Trace id, span id and sampling decision of one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// A 128-bit trace id, never zero. Displays as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub u128);

/// A 64-bit span id, never zero. Displays as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub u64);

impl From<&SpanContext> for TraceContext {
    /// The ids of a span OpenTelemetry started, as log lines and downstream
    /// calls carry them.
    fn from(span: &SpanContext) -> Self {
        Self {
            trace_id: TraceId(u128::from_be_bytes(span.trace_id().to_bytes())),
            span_id: SpanId(u64::from_be_bytes(span.span_id().to_bytes())),
            sampled: span.is_sampled(),
        }
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl TraceId {
    pub fn random() -> Self {
        // Zero is the one invalid value; the odds of drawing it are nil, but a
        // loop costs nothing and makes the invariant hold by construction.
        loop {
            let id = rand::rng().random::<u128>();
            if id != 0 {
                return Self(id);
            }
        }
    }
}

impl SpanId {
    pub fn random() -> Self {
        loop {
            let id = rand::rng().random::<u64>();
            if id != 0 {
                return Self(id);
            }
        }
    }
}

/// The caller's side of a trace, as read from the request headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent {
    pub trace_id: TraceId,
    /// The caller's span. `None` when `X-Cloud-Trace-Context` carries no span
    /// id: the trace continues but this span has no known parent.
    pub span_id: Option<SpanId>,
    pub sampled: bool,
}

/// Reads the caller's trace context: `traceparent` first, as the W3C
/// standard, else `X-Cloud-Trace-Context`. Returns `None` when neither is
/// present or parses.
pub fn extract_remote_parent(headers: &HeaderMap) -> Option<RemoteParent> {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    header(&TRACEPARENT)
        .and_then(parse_traceparent)
        .or_else(|| header(&X_CLOUD_TRACE_CONTEXT).and_then(parse_cloud_trace_context))
}

/// Made once: a name looked up as a `&str` is parsed and checked again on
/// every request.
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_CLOUD_TRACE_CONTEXT: HeaderName = HeaderName::from_static("x-cloud-trace-context");

/// Parses `version-traceid-parentid-flags` (W3C Trace Context, level 1).
///
/// Version `ff` is invalid; a version above `00` may carry extra fields after
/// the flags, which are ignored as the specification asks.
pub fn parse_traceparent(value: &str) -> Option<RemoteParent> {
    let value = value.trim();
    // A real traceparent is 55 bytes; refuse to scan anything absurdly long.
    if value.len() > 512 {
        return None;
    }
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = parse_hex_u128(trace_id)?;
    let span_id = parse_hex_u64(span_id)?;
    if flags.len() != 2 || !is_lower_hex(flags) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(RemoteParent {
        trace_id,
        span_id: Some(span_id),
        sampled: flags & 0x01 == 0x01,
    })
}

/// Parses `TRACE_ID/SPAN_ID;o=OPTIONS`, the span id in decimal.
///
/// The span id and options are optional, as Google's own parsers accept
/// (`^([0-9a-fA-F]{32})(?:/([0-9]+))?(?:;o=(.*))?`). `o=1` means sampled.
pub fn parse_cloud_trace_context(value: &str) -> Option<RemoteParent> {
    let value = value.trim();
    if value.len() > 512 {
        return None;
    }
    let (ids, options) = match value.split_once(";o=") {
        Some((ids, options)) => (ids, Some(options)),
        None => (value, None),
    };
    let (trace_id, span_id) = match ids.split_once('/') {
        Some((trace_id, span_id)) => (trace_id, Some(span_id)),
        None => (ids, None),
    };
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trace_id = TraceId(u128::from_str_radix(trace_id, 16).ok()?);
    if trace_id.0 == 0 {
        return None;
    }
    let span_id = match span_id {
        // A zero or unparseable span id keeps the trace but not the parent.
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse::<u64>().ok().filter(|id| *id != 0).map(SpanId)
        }
        Some(_) => return None,
        None => None,
    };
    let sampled = options.is_some_and(|options| options.trim() == "1");
    Some(RemoteParent {
        trace_id,
        span_id,
        sampled,
    })
}

/// Formats a W3C `traceparent` header for a call made from `context`.
pub fn format_traceparent(context: &TraceContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id,
        context.span_id,
        u8::from(context.sampled)
    )
}

fn is_lower_hex(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_hex_u128(value: &str) -> Option<TraceId> {
    if value.len() != 32 || !is_lower_hex(value) {
        return None;
    }
    u128::from_str_radix(value, 16)
        .ok()
        .filter(|id| *id != 0)
        .map(TraceId)
}

fn parse_hex_u64(value: &str) -> Option<SpanId> {
    if value.len() != 16 || !is_lower_hex(value) {
        return None;
    }
    u64::from_str_radix(value, 16)
        .ok()
        .filter(|id| *id != 0)
        .map(SpanId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn traceparent_from_the_w3c_example_parses() {
        let parent =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(parent.sampled);
    }

    #[test]
    fn traceparent_with_unsampled_flag_is_not_sampled() {
        let parent =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!parent.sampled);
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn future_traceparent_versions_may_carry_extra_fields() {
        let parent =
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
                .unwrap();
        assert!(parent.sampled);
    }

    #[test]
    fn cloud_trace_context_reads_the_decimal_span_id() {
        let parent = parse_cloud_trace_context("105445aa7843bc8bf206b12000100000/1;o=1").unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "105445aa7843bc8bf206b12000100000"
        );
        assert_eq!(parent.span_id, Some(SpanId(1)));
        assert!(parent.sampled);
    }

    #[test]
    fn cloud_trace_context_without_span_or_options_keeps_the_trace() {
        let parent = parse_cloud_trace_context("105445aa7843bc8bf206b12000100000").unwrap();
        assert_eq!(parent.span_id, None);
        assert!(!parent.sampled);
        let parent = parse_cloud_trace_context("105445aa7843bc8bf206b12000100000/42;o=0").unwrap();
        assert_eq!(parent.span_id, Some(SpanId(42)));
        assert!(!parent.sampled);
        // A span id past 64 bits keeps the trace, not the parent.
        let parent = parse_cloud_trace_context(
            "105445aa7843bc8bf206b12000100000/99999999999999999999999;o=1",
        )
        .unwrap();
        assert_eq!(parent.span_id, None);
    }

    #[test]
    fn malformed_cloud_trace_contexts_are_rejected() {
        for bad in [
            "",
            "xyz",
            "105445aa7843bc8bf206b1200010000/1;o=1",
            "105445aa7843bc8bf206b12000100000/abc;o=1",
            "00000000000000000000000000000000/1;o=1",
        ] {
            assert_eq!(
                parse_cloud_trace_context(bad),
                None,
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn traceparent_wins_over_cloud_trace_context() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1".parse().unwrap(),
        );
        let parent = extract_remote_parent(&headers).unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn a_bad_traceparent_falls_back_to_cloud_trace_context() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "garbage".parse().unwrap());
        headers.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1".parse().unwrap(),
        );
        let parent = extract_remote_parent(&headers).unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "105445aa7843bc8bf206b12000100000"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(input in ".{0,200}") {
            let _ = parse_traceparent(&input);
            let _ = parse_cloud_trace_context(&input);
        }

        #[test]
        fn traceparent_round_trips(trace in 1u128.., span in 1u64.., sampled: bool) {
            let context = TraceContext { trace_id: TraceId(trace), span_id: SpanId(span), sampled };
            let parent = parse_traceparent(&format_traceparent(&context)).unwrap();
            prop_assert_eq!(parent.trace_id, context.trace_id);
            prop_assert_eq!(parent.span_id, Some(context.span_id));
            prop_assert_eq!(parent.sampled, sampled);
        }

        #[test]
        fn cloud_trace_context_round_trips(trace in 1u128.., span in 1u64.., sampled: bool) {
            let header = format!("{:032x}/{};o={}", trace, span, u8::from(sampled));
            let parent = parse_cloud_trace_context(&header).unwrap();
            prop_assert_eq!(parent.trace_id, TraceId(trace));
            prop_assert_eq!(parent.span_id, Some(SpanId(span)));
            prop_assert_eq!(parent.sampled, sampled);
        }
    }
}
