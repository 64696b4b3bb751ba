//! How an OpenTelemetry span becomes a Cloud Trace v2 span.
//!
//! The mapping follows Google's official exporters (opentelemetry-operations
//! Go, Python, Java and `opentelemetry-gcloud-trace` in Rust), and the limits
//! of the Cloud Trace API, which truncates or drops what exceeds them rather
//! than failing (see `gcp-api-rules.md`, T2-T7, T10):
//!
//! - name `projects/P/traces/T/spans/S`, ids in lowercase hex;
//! - display name truncated to 128 bytes, on a UTF-8 boundary;
//! - at most 32 attributes (the rest counted in `dropped_attributes_count`),
//!   keys at most 128 bytes, string values at most 256 bytes; OpenTelemetry's
//!   HTTP keys renamed to the labels the Trace UI shows specially
//!   (`/http/method`, `/http/status_code`, ...), plus `g.co/agent` and the
//!   resource's `service.name` (so spans of one trace written by several
//!   services say which wrote them);
//! - events become annotations (32 at most, 4 attributes each), links stay
//!   links (128, 32 attributes each);
//! - span kind one to one, INTERNAL for unspecified; status ERROR becomes
//!   code 2 (UNKNOWN) with its message, OK and unset send no status;
//! - `same_process_as_parent_span` is false for a remote parent.

use std::collections::HashMap;
use std::time::SystemTime;

use gcloud_sdk::google::devtools::cloudtrace::v2::attribute_value::Value as ProtoValue;
use gcloud_sdk::google::devtools::cloudtrace::v2::span::time_event::{
    Annotation, Value as EventValue,
};
use gcloud_sdk::google::devtools::cloudtrace::v2::span::{
    Attributes, Link as ProtoLink, Links, SpanKind as ProtoSpanKind, TimeEvent, TimeEvents,
};
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    AttributeValue, Span as ProtoSpan, TruncatableString,
};
use gcloud_sdk::google::rpc::Status as RpcStatus;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// Cloud Trace's limits (trace.proto; Cloud Trace quotas).
pub const MAX_DISPLAY_NAME_BYTES: usize = 128;
pub const MAX_ATTRIBUTES: usize = 32;
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 128;
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 256;
pub const MAX_ANNOTATIONS: usize = 32;
pub const MAX_ANNOTATION_ATTRIBUTES: usize = 4;
pub const MAX_ANNOTATION_DESCRIPTION_BYTES: usize = 256;
pub const MAX_LINKS: usize = 128;
pub const MAX_LINK_ATTRIBUTES: usize = 32;

/// The `g.co/agent` label: which library wrote the span.
pub fn agent_label() -> String {
    format!(
        "opentelemetry-rust 0.33; {} {}",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    )
}

/// Labels every span carries, whatever its own attributes.
#[derive(Clone, Debug, Default)]
pub struct SpanLabels {
    /// `g.co/agent`.
    pub agent: String,
    /// The resource's `service.name`.
    pub service_name: Option<String>,
}

/// Converts one span, for project `project_id`.
pub fn to_cloud_trace_span(span: &SpanData, project_id: &str, labels: &SpanLabels) -> ProtoSpan {
    let trace_id = span.span_context.trace_id();
    let span_id = span.span_context.span_id();
    let has_parent = span.parent_span_id != SpanId::INVALID;
    ProtoSpan {
        name: format!("projects/{project_id}/traces/{trace_id}/spans/{span_id}"),
        span_id: span_id.to_string(),
        parent_span_id: if has_parent {
            span.parent_span_id.to_string()
        } else {
            String::new()
        },
        display_name: Some(truncatable(&span.name, MAX_DISPLAY_NAME_BYTES)),
        start_time: Some(timestamp(span.start_time)),
        end_time: Some(timestamp(span.end_time)),
        attributes: Some(span_attributes(span, labels)),
        stack_trace: None,
        time_events: Some(time_events(span)),
        links: Some(links(span)),
        status: status(&span.status),
        same_process_as_parent_span: has_parent.then_some(!span.parent_span_is_remote),
        child_span_count: None,
        span_kind: span_kind(&span.span_kind) as i32,
    }
}

fn span_kind(kind: &SpanKind) -> ProtoSpanKind {
    match kind {
        SpanKind::Internal => ProtoSpanKind::Internal,
        SpanKind::Server => ProtoSpanKind::Server,
        SpanKind::Client => ProtoSpanKind::Client,
        SpanKind::Producer => ProtoSpanKind::Producer,
        SpanKind::Consumer => ProtoSpanKind::Consumer,
    }
}

fn status(status: &Status) -> Option<RpcStatus> {
    match status {
        Status::Error { description } => Some(RpcStatus {
            // google.rpc.Code.UNKNOWN, as the official exporters send.
            code: 2,
            message: description.to_string(),
            details: Vec::new(),
        }),
        Status::Ok | Status::Unset => None,
    }
}

/// The span's attributes, mapped and limited, with the common labels always
/// kept: they take their places among the 32 before any other attribute.
fn span_attributes(span: &SpanData, labels: &SpanLabels) -> Attributes {
    let reserved = 1 + usize::from(labels.service_name.is_some());
    let mut attributes = attributes(&span.attributes, MAX_ATTRIBUTES - reserved);
    attributes.dropped_attributes_count = attributes
        .dropped_attributes_count
        .saturating_add(i32::try_from(span.dropped_attributes_count).unwrap_or(i32::MAX));
    attributes
        .attribute_map
        .insert("g.co/agent".to_owned(), string_value(&labels.agent));
    if let Some(service) = &labels.service_name {
        attributes
            .attribute_map
            .insert("service.name".to_owned(), string_value(service));
    }
    attributes
}

/// At most `limit` attributes; keys over 128 bytes are dropped (and counted)
/// as Cloud Trace does, string values are truncated.
fn attributes(key_values: &[KeyValue], limit: usize) -> Attributes {
    let mut attribute_map = HashMap::with_capacity(key_values.len().min(limit));
    let mut dropped = 0i32;
    for key_value in key_values {
        let key = well_known_label(key_value.key.as_str());
        if key.len() > MAX_ATTRIBUTE_KEY_BYTES
            || (attribute_map.len() >= limit && !attribute_map.contains_key(key))
        {
            dropped = dropped.saturating_add(1);
            continue;
        }
        attribute_map.insert(key.to_owned(), attribute_value(&key_value.value));
    }
    Attributes {
        attribute_map,
        dropped_attributes_count: dropped,
    }
}

/// OpenTelemetry's keys (old and current semantic conventions) renamed to the
/// labels Cloud Trace's UI shows specially.
pub fn well_known_label(key: &str) -> &str {
    match key {
        "http.method" | "http.request.method" => "/http/method",
        "http.host" | "server.address" => "/http/host",
        "http.path" | "http.target" | "url.path" => "/http/path",
        "http.user_agent" | "user_agent.original" => "/http/user_agent",
        "http.status_code" | "http.response.status_code" => "/http/status_code",
        "http.route" => "/http/route",
        "http.url" | "url.full" => "/http/url",
        "http.scheme" | "url.scheme" => "/http/client_protocol",
        "http.request_content_length" | "http.request.body.size" => "/http/request/size",
        "http.response_content_length" | "http.response.body.size" => "/http/response/size",
        "exception.type" => "/error/name",
        "exception.message" => "/error/message",
        "thread.id" => "/tid",
        other => other,
    }
}

/// Strings (truncated to 256 bytes), integers and booleans keep their type;
/// Cloud Trace has no float or array values, so those become strings.
fn attribute_value(value: &Value) -> AttributeValue {
    let value = match value {
        Value::Bool(value) => ProtoValue::BoolValue(*value),
        Value::I64(value) => ProtoValue::IntValue(*value),
        Value::String(value) => {
            ProtoValue::StringValue(truncatable(value.as_str(), MAX_ATTRIBUTE_VALUE_BYTES))
        }
        other => {
            ProtoValue::StringValue(truncatable(&other.to_string(), MAX_ATTRIBUTE_VALUE_BYTES))
        }
    };
    AttributeValue { value: Some(value) }
}

fn string_value(value: &str) -> AttributeValue {
    AttributeValue {
        value: Some(ProtoValue::StringValue(truncatable(
            value,
            MAX_ATTRIBUTE_VALUE_BYTES,
        ))),
    }
}

fn time_events(span: &SpanData) -> TimeEvents {
    let kept = span.events.iter().take(MAX_ANNOTATIONS);
    let time_event = kept
        .map(|event| TimeEvent {
            time: Some(timestamp(event.timestamp)),
            value: Some(EventValue::Annotation(Annotation {
                description: Some(truncatable(&event.name, MAX_ANNOTATION_DESCRIPTION_BYTES)),
                attributes: Some(attributes(&event.attributes, MAX_ANNOTATION_ATTRIBUTES)),
            })),
        })
        .collect::<Vec<_>>();
    let dropped = span.events.len() - time_event.len();
    TimeEvents {
        time_event,
        dropped_annotations_count: to_i32(dropped)
            .saturating_add(to_i32(span.events.dropped_count as usize)),
        dropped_message_events_count: 0,
    }
}

fn links(span: &SpanData) -> Links {
    let link = span
        .links
        .iter()
        .take(MAX_LINKS)
        .map(|link| ProtoLink {
            trace_id: link.span_context.trace_id().to_string(),
            span_id: link.span_context.span_id().to_string(),
            r#type: 0,
            attributes: Some(attributes(&link.attributes, MAX_LINK_ATTRIBUTES)),
        })
        .collect::<Vec<_>>();
    let dropped = span.links.len() - link.len();
    Links {
        link,
        dropped_links_count: to_i32(dropped)
            .saturating_add(to_i32(span.links.dropped_count as usize)),
    }
}

/// The first `max_bytes` of `value`, cut on a character boundary, with the
/// number of bytes cut off.
pub fn truncatable(value: &str, max_bytes: usize) -> TruncatableString {
    if value.len() <= max_bytes {
        return TruncatableString {
            value: value.to_owned(),
            truncated_byte_count: 0,
        };
    }
    let mut end = max_bytes;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    TruncatableString {
        value: value[..end].to_owned(),
        truncated_byte_count: to_i32(value.len() - end),
    }
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(time)
}

fn to_i32(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::borrow::Cow;
    use std::time::Duration;

    const AGENT: &str = "test-agent";

    fn labels() -> SpanLabels {
        SpanLabels {
            agent: AGENT.to_owned(),
            service_name: None,
        }
    }

    fn span_data(name: &str) -> SpanData {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from_hex("1111111111111111").unwrap(),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: Cow::Owned(name.to_owned()),
            start_time: start,
            end_time: start + Duration::from_millis(12),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn string_of(value: &AttributeValue) -> &TruncatableString {
        match value.value.as_ref().unwrap() {
            ProtoValue::StringValue(value) => value,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn names_ids_times_and_kind_follow_cloud_trace() {
        let span = to_cloud_trace_span(&span_data("GET /api/books/{id}"), "shop", &labels());
        assert_eq!(
            span.name,
            "projects/shop/traces/4bf92f3577b34da6a3ce929d0e0e4736/spans/00f067aa0ba902b7"
        );
        assert_eq!(span.span_id, "00f067aa0ba902b7");
        assert_eq!(span.parent_span_id, "1111111111111111");
        assert_eq!(span.display_name.unwrap().value, "GET /api/books/{id}");
        assert_eq!(span.start_time.unwrap().seconds, 1_700_000_000);
        assert_eq!(span.end_time.unwrap().nanos, 12_000_000);
        assert_eq!(span.span_kind, ProtoSpanKind::Server as i32);
        assert_eq!(span.same_process_as_parent_span, Some(false));
        assert_eq!(span.status, None);
    }

    #[test]
    fn a_root_span_has_no_parent_and_internal_is_the_default_kind() {
        let mut data = span_data("job");
        data.parent_span_id = SpanId::INVALID;
        data.span_kind = SpanKind::Internal;
        let span = to_cloud_trace_span(&data, "p", &labels());
        assert_eq!(span.parent_span_id, "");
        assert_eq!(span.same_process_as_parent_span, None);
        assert_eq!(span.span_kind, ProtoSpanKind::Internal as i32);
    }

    #[test]
    fn display_names_are_cut_to_128_bytes_on_a_char_boundary() {
        // 'é' is two bytes: 127 ASCII bytes then 'é' would end at byte 129.
        let name = format!("{}é{}", "a".repeat(127), "b".repeat(10));
        let span = to_cloud_trace_span(&span_data(&name), "p", &labels());
        let display = span.display_name.unwrap();
        assert_eq!(display.value, "a".repeat(127));
        assert_eq!(display.truncated_byte_count, 2 + 10);
    }

    #[test]
    fn http_keys_become_well_known_labels_and_the_agent_is_added() {
        let mut data = span_data("GET /api/books/{id}");
        data.attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/api/books/{id}"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("url.path", "/api/books/7"),
            KeyValue::new("user_agent.original", "curl/8"),
            KeyValue::new("server.address", "localhost"),
            KeyValue::new("sampling.ratio", 0.25),
            KeyValue::new("cache.hit", true),
        ];
        let span = to_cloud_trace_span(&data, "p", &labels());
        let map = span.attributes.unwrap().attribute_map;
        assert_eq!(string_of(&map["/http/method"]).value, "GET");
        assert_eq!(string_of(&map["/http/route"]).value, "/api/books/{id}");
        assert_eq!(string_of(&map["/http/path"]).value, "/api/books/7");
        assert_eq!(string_of(&map["/http/user_agent"]).value, "curl/8");
        assert_eq!(string_of(&map["/http/host"]).value, "localhost");
        assert_eq!(
            map["/http/status_code"].value,
            Some(ProtoValue::IntValue(200))
        );
        assert_eq!(map["cache.hit"].value, Some(ProtoValue::BoolValue(true)));
        assert_eq!(string_of(&map["sampling.ratio"]).value, "0.25");
        assert_eq!(string_of(&map["g.co/agent"]).value, AGENT);
        assert_eq!(map.len(), 9);
    }

    #[test]
    fn attributes_past_32_are_dropped_and_counted_keeping_the_agent() {
        let mut data = span_data("many");
        data.attributes = (0..40)
            .map(|i| KeyValue::new(format!("key.{i}"), i))
            .collect();
        data.dropped_attributes_count = 3;
        let attributes = to_cloud_trace_span(&data, "p", &labels())
            .attributes
            .unwrap();
        assert_eq!(attributes.attribute_map.len(), 32);
        assert!(attributes.attribute_map.contains_key("g.co/agent"));
        assert!(attributes.attribute_map.contains_key("key.30"));
        assert!(!attributes.attribute_map.contains_key("key.31"));
        // 9 over the limit here, 3 already dropped by the SDK.
        assert_eq!(attributes.dropped_attributes_count, 9 + 3);

        let with_service = SpanLabels {
            agent: AGENT.to_owned(),
            service_name: Some("frontend".to_owned()),
        };
        let attributes = to_cloud_trace_span(&data, "p", &with_service)
            .attributes
            .unwrap();
        assert_eq!(attributes.attribute_map.len(), 32);
        assert_eq!(
            string_of(&attributes.attribute_map["service.name"]).value,
            "frontend"
        );
        assert!(!attributes.attribute_map.contains_key("key.30"));
        assert_eq!(attributes.dropped_attributes_count, 10 + 3);
    }

    #[test]
    fn long_keys_are_dropped_and_long_values_truncated() {
        let mut data = span_data("limits");
        data.attributes = vec![
            KeyValue::new("k".repeat(129), "dropped"),
            KeyValue::new("long", "v".repeat(300)),
        ];
        let attributes = to_cloud_trace_span(&data, "p", &labels())
            .attributes
            .unwrap();
        assert_eq!(attributes.dropped_attributes_count, 1);
        let long = string_of(&attributes.attribute_map["long"]);
        assert_eq!(long.value.len(), 256);
        assert_eq!(long.truncated_byte_count, 44);
    }

    #[test]
    fn an_error_status_becomes_code_unknown_with_its_message() {
        let mut data = span_data("failing");
        data.status = Status::error("payment declined");
        let status = to_cloud_trace_span(&data, "p", &labels()).status.unwrap();
        assert_eq!(status.code, 2);
        assert_eq!(status.message, "payment declined");
        data.status = Status::Ok;
        assert_eq!(to_cloud_trace_span(&data, "p", &labels()).status, None);
    }

    #[test]
    fn events_become_annotations_limited_to_32_with_4_attributes_each() {
        let mut data = span_data("events");
        let at = data.start_time + Duration::from_millis(3);
        data.events.events = (0..35)
            .map(|i| {
                opentelemetry::trace::Event::new(
                    if i == 0 {
                        "exception".to_owned()
                    } else {
                        format!("event {i}")
                    },
                    at,
                    vec![
                        KeyValue::new("exception.type", "FaultError"),
                        KeyValue::new("exception.message", "could not load"),
                        KeyValue::new("a", 1),
                        KeyValue::new("b", 2),
                        KeyValue::new("c", 3),
                    ],
                    0,
                )
            })
            .collect();
        let events = to_cloud_trace_span(&data, "p", &labels())
            .time_events
            .unwrap();
        assert_eq!(events.time_event.len(), 32);
        assert_eq!(events.dropped_annotations_count, 3);
        let Some(EventValue::Annotation(first)) = &events.time_event[0].value else {
            panic!("an annotation");
        };
        assert_eq!(first.description.as_ref().unwrap().value, "exception");
        let attributes = first.attributes.as_ref().unwrap();
        assert_eq!(attributes.attribute_map.len(), 4);
        assert_eq!(attributes.dropped_attributes_count, 1);
        assert_eq!(
            string_of(&attributes.attribute_map["/error/name"]).value,
            "FaultError"
        );
        assert_eq!(
            events.time_event[0].time.unwrap().nanos,
            3_000_000,
            "event time kept"
        );
    }

    #[test]
    fn links_keep_their_ids() {
        let mut data = span_data("linked");
        let other = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        data.links.links = vec![opentelemetry::trace::Link::new(other, vec![], 0)];
        let links = to_cloud_trace_span(&data, "p", &labels()).links.unwrap();
        assert_eq!(links.link[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(links.link[0].span_id, "b7ad6b7169203331");
        assert_eq!(links.dropped_links_count, 0);
    }
}
