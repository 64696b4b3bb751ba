//! OTLP spans into the [`TraceStore`](crate::TraceStore), as Cloud Trace
//! v2 spans: Cloud Trace stores spans from either API in one schema, so the
//! v1 reads, the console's waterfall and log correlation see them alike.
//!
//! Attributes are kept verbatim (O13): span attributes over the resource's
//! (`service.name`, `gcp.project_id`, ...), with no `/http/*` or `g.co/r/*`
//! renaming. A request's resource attributes are converted once and shared
//! by its spans ([`SharedAttributes`]), the scope's name and version layered
//! over them, rather than copied into each span: readers merge them back, and with the Telemetry API's limits (O9-O12), not v2's 32
//! attributes of 256 bytes. A span breaking a rule is rejected on its own
//! and reported in `partial_success` (O7, O8, O14); a request without a
//! project is rejected whole (O6).

use std::collections::HashMap;
use std::sync::Arc;

use gcloud_sdk::google::devtools::cloudtrace::v2::{
    self, attribute_value, span, AttributeValue, TruncatableString,
};
use gcloud_sdk::google::rpc;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, ResourceSpans, Span, Status};

use super::{hex_id, nanos, OtlpError, OtlpIngest, Rejections};
use crate::time::timestamp::from_nanos;
use crate::trace::shared::SharedAttributes;
use crate::trace::store::StoredSpan;

const ATTRIBUTE_KEY_BYTES: usize = 512;
const ATTRIBUTE_VALUE_BYTES: usize = 64 * 1024;
const NAME_BYTES: usize = 1024;
const ATTRIBUTES_PER_SPAN: usize = 1024;
const RESOURCE_ATTRIBUTES: usize = 1024;
const ATTRIBUTES_PER_RESOURCE_SPANS: usize = 8192;
const EVENTS_PER_SPAN: usize = 256;
const LINKS_PER_SPAN: usize = 128;
const ATTRIBUTES_PER_EVENT_OR_LINK: usize = 1024;
const SCHEMA_URL_BYTES: usize = 8192;

/// OTLP span flags: whether the parent is known to be remote, and if so whether it is.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// Stores the valid spans of `request`, moving its strings into the stored
/// spans rather than copying them.
///
/// # Errors
/// [`OtlpError`] when a resource names no project: nothing is stored.
pub fn export(
    ingest: &OtlpIngest,
    request: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, OtlpError> {
    let projects = request
        .resource_spans
        .iter()
        .map(|rs| ingest.project_of(rs.resource.as_ref()))
        .collect::<Result<Vec<_>, _>>();
    let projects = match projects {
        Ok(projects) => projects,
        Err(error) => {
            ingest.store.traces.record_rejected();
            return Err(error);
        }
    };
    let mut rejections = Rejections::default();
    let mut stored = Vec::with_capacity(span_count(&request.resource_spans));
    for (index, (resource_spans, project)) in
        request.resource_spans.into_iter().zip(projects).enumerate()
    {
        convert_resource_spans(
            index,
            resource_spans,
            &project,
            &mut stored,
            &mut rejections,
        );
    }
    ingest.store.traces.insert_sharing(stored);
    ingest
        .store
        .traces
        .record_spans_rejected(u64::try_from(rejections.count()).unwrap_or(0));
    Ok(ExportTraceServiceResponse {
        partial_success: (!rejections.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: rejections.count(),
            error_message: rejections.message(),
        }),
    })
}

fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn convert_resource_spans(
    index: usize,
    resource_spans: ResourceSpans,
    project: &str,
    stored: &mut Vec<(StoredSpan, Option<Arc<SharedAttributes>>)>,
    rejections: &mut Rejections,
) {
    let resource_attributes: &[KeyValue] = resource_spans
        .resource
        .as_ref()
        .map_or(&[], |r| r.attributes.as_slice());
    if let Err(reason) = check_resource(&resource_spans, resource_attributes) {
        rejections.add(
            span_count(std::slice::from_ref(&resource_spans)),
            format!("resourceSpans[{index}]: {reason}"),
        );
        return;
    }
    let resource = Arc::new(SharedAttributes::new(
        attribute_map(resource_attributes),
        None,
    ));
    for (scope_index, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
        let shared = match scope_spans.scope.filter(|s| !s.name.is_empty()) {
            Some(scope) => Arc::new(SharedAttributes::new(
                scope_attributes(scope.name, scope.version),
                Some(Arc::clone(&resource)),
            )),
            None => Arc::clone(&resource),
        };
        for (span_index, span) in scope_spans.spans.into_iter().enumerate() {
            match check_span(&span) {
                Ok(()) => stored.push((convert_span(project, span), Some(Arc::clone(&shared)))),
                Err(reason) => rejections.add(
                    1,
                    format!(
                        "resourceSpans[{index}].scopeSpans[{scope_index}].spans[{span_index}]: {reason}"
                    ),
                ),
            }
        }
    }
}

/// What a named scope adds over its resource's attributes.
fn scope_attributes(name: String, version: String) -> HashMap<String, AttributeValue> {
    let mut attributes = HashMap::with_capacity(2);
    attributes.insert("otel.scope.name".into(), string_value(name));
    if !version.is_empty() {
        attributes.insert("otel.scope.version".into(), string_value(version));
    }
    attributes
}

/// O10, O12: the limits on a whole `ResourceSpans`.
fn check_resource(resource_spans: &ResourceSpans, resource: &[KeyValue]) -> Result<(), String> {
    if resource.len() > RESOURCE_ATTRIBUTES {
        return Err(format!(
            "the resource has {} attributes, more than the limit of {RESOURCE_ATTRIBUTES}.",
            resource.len()
        ));
    }
    check_attributes(resource)?;
    let schema_urls = std::iter::once(&resource_spans.schema_url)
        .chain(resource_spans.scope_spans.iter().map(|s| &s.schema_url));
    for url in schema_urls {
        if url.len() > SCHEMA_URL_BYTES {
            return Err(format!(
                "a schema URL has {} bytes, more than the limit of {SCHEMA_URL_BYTES}.",
                url.len()
            ));
        }
    }
    let total: usize = resource.len()
        + resource_spans
            .scope_spans
            .iter()
            .map(|scope| {
                scope.scope.as_ref().map_or(0, |s| s.attributes.len())
                    + scope
                        .spans
                        .iter()
                        .map(|span| {
                            span.attributes.len()
                                + span
                                    .events
                                    .iter()
                                    .map(|e| e.attributes.len())
                                    .sum::<usize>()
                                + span.links.iter().map(|l| l.attributes.len()).sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum::<usize>();
    if total > ATTRIBUTES_PER_RESOURCE_SPANS {
        return Err(format!(
            "{total} attributes in one ResourceSpans (resource, scopes, spans, events and links), more than the limit of {ATTRIBUTES_PER_RESOURCE_SPANS}."
        ));
    }
    Ok(())
}

/// O9: key and value sizes.
fn check_attributes(attributes: &[KeyValue]) -> Result<(), String> {
    for kv in attributes {
        if kv.key.len() > ATTRIBUTE_KEY_BYTES {
            return Err(format!(
                "attribute key \"{}...\" has {} bytes, more than the limit of {ATTRIBUTE_KEY_BYTES}.",
                crate::grpc::clip_to(&kv.key, 64),
                kv.key.len()
            ));
        }
        let size = kv.value.as_ref().map_or(0, |v| match &v.value {
            Some(Any::StringValue(s)) => s.len(),
            Some(Any::BytesValue(b)) => b.len(),
            // As text a number or a bool has at most a few hundred bytes,
            // far under the limit: only arrays and maps need writing out.
            Some(Any::ArrayValue(_) | Any::KvlistValue(_)) => super::text(v).len(),
            Some(_) | None => 0,
        });
        if size > ATTRIBUTE_VALUE_BYTES {
            return Err(format!(
                "the value of attribute \"{}\" has {size} bytes, more than the limit of {ATTRIBUTE_VALUE_BYTES}.",
                kv.key
            ));
        }
    }
    Ok(())
}

/// O7: a 16-byte trace id or 8-byte span id, not all zeros.
fn check_id(field: &str, id: &[u8], len: usize) -> Result<(), String> {
    if id.len() != len || id.iter().all(|b| *b == 0) {
        return Err(format!(
            "{field} had an invalid value of \"{}\": expected {len} bytes, not all zero.",
            hex_id(id)
        ));
    }
    Ok(())
}

fn check_span(span: &Span) -> Result<(), String> {
    check_id("trace_id", &span.trace_id, 16)?;
    check_id("span_id", &span.span_id, 8)?;
    if !span.parent_span_id.is_empty() {
        check_id("parent_span_id", &span.parent_span_id, 8)?;
    }
    if span.name.is_empty() {
        return Err("name is required.".into());
    }
    if span.name.len() > NAME_BYTES {
        return Err(format!(
            "name has {} bytes, more than the limit of {NAME_BYTES}.",
            span.name.len()
        ));
    }
    if span.start_time_unix_nano == 0 || span.end_time_unix_nano == 0 {
        return Err("start_time_unix_nano and end_time_unix_nano are required.".into());
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err("end_time_unix_nano is before start_time_unix_nano.".into());
    }
    if span.attributes.len() > ATTRIBUTES_PER_SPAN {
        return Err(format!(
            "{} attributes, more than the limit of {ATTRIBUTES_PER_SPAN}.",
            span.attributes.len()
        ));
    }
    check_attributes(&span.attributes)?;
    if span.events.len() > EVENTS_PER_SPAN {
        return Err(format!(
            "{} events, more than the limit of {EVENTS_PER_SPAN}.",
            span.events.len()
        ));
    }
    if span.links.len() > LINKS_PER_SPAN {
        return Err(format!(
            "{} links, more than the limit of {LINKS_PER_SPAN}.",
            span.links.len()
        ));
    }
    for event in &span.events {
        if event.name.len() > NAME_BYTES {
            return Err(format!(
                "an event name has {} bytes, more than the limit of {NAME_BYTES}.",
                event.name.len()
            ));
        }
        if event.attributes.len() > ATTRIBUTES_PER_EVENT_OR_LINK {
            return Err(format!(
                "an event has {} attributes, more than the limit of {ATTRIBUTES_PER_EVENT_OR_LINK}.",
                event.attributes.len()
            ));
        }
        check_attributes(&event.attributes)?;
    }
    for link in &span.links {
        check_id("links.trace_id", &link.trace_id, 16)?;
        check_id("links.span_id", &link.span_id, 8)?;
        if link.attributes.len() > ATTRIBUTES_PER_EVENT_OR_LINK {
            return Err(format!(
                "a link has {} attributes, more than the limit of {ATTRIBUTES_PER_EVENT_OR_LINK}.",
                link.attributes.len()
            ));
        }
        check_attributes(&link.attributes)?;
    }
    Ok(())
}

/// A checked span as Cloud Trace stores it, its strings and its own
/// attributes moved in (the resource's and the scope's are shared).
fn convert_span(project: &str, span: Span) -> StoredSpan {
    let trace_id = hex_id(&span.trace_id);
    let span_id = hex_id(&span.span_id);
    let attributes = attribute_entries(span.attributes).collect();
    let same_process_as_parent_span = (!span.parent_span_id.is_empty()
        && span.flags & HAS_IS_REMOTE != 0)
        .then_some(span.flags & IS_REMOTE == 0);
    StoredSpan {
        project: project.to_owned(),
        span: v2::Span {
            name: span_name(project, &trace_id, &span_id),
            span_id,
            parent_span_id: hex_id(&span.parent_span_id),
            display_name: Some(truncatable(span.name)),
            start_time: Some(from_nanos(nanos(span.start_time_unix_nano))),
            end_time: Some(from_nanos(nanos(span.end_time_unix_nano))),
            attributes: Some(span::Attributes {
                attribute_map: attributes,
                dropped_attributes_count: count(span.dropped_attributes_count),
            }),
            stack_trace: None,
            time_events: Some(span::TimeEvents {
                time_event: span.events.into_iter().map(annotation).collect(),
                dropped_annotations_count: count(span.dropped_events_count),
                dropped_message_events_count: 0,
            }),
            links: Some(span::Links {
                link: span.links.into_iter().map(link).collect(),
                dropped_links_count: count(span.dropped_links_count),
            }),
            status: span.status.and_then(status),
            same_process_as_parent_span,
            child_span_count: None,
            // OTLP's kinds and v2's share their numbers (INTERNAL = 1 ... CONSUMER = 5).
            span_kind: span.kind.clamp(0, 5),
        },
        trace_id,
    }
}

/// `projects/{project}/traces/{trace_id}/spans/{span_id}`, in one allocation.
fn span_name(project: &str, trace_id: &str, span_id: &str) -> String {
    const PARTS: [&str; 3] = ["projects/", "/traces/", "/spans/"];
    let mut name = String::with_capacity(
        PARTS.iter().map(|p| p.len()).sum::<usize>()
            + project.len()
            + trace_id.len()
            + span_id.len(),
    );
    for (part, value) in PARTS.iter().zip([project, trace_id, span_id]) {
        name.push_str(part);
        name.push_str(value);
    }
    name
}

fn annotation(event: Event) -> span::TimeEvent {
    span::TimeEvent {
        time: Some(from_nanos(nanos(event.time_unix_nano))),
        value: Some(span::time_event::Value::Annotation(
            span::time_event::Annotation {
                description: Some(truncatable(event.name)),
                attributes: Some(attributes_of(
                    event.attributes,
                    event.dropped_attributes_count,
                )),
            },
        )),
    }
}

fn link(link: Link) -> span::Link {
    span::Link {
        trace_id: hex_id(&link.trace_id),
        span_id: hex_id(&link.span_id),
        r#type: span::link::Type::Unspecified as i32,
        attributes: Some(attributes_of(
            link.attributes,
            link.dropped_attributes_count,
        )),
    }
}

fn status(status: Status) -> Option<rpc::Status> {
    let code = match StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset) {
        StatusCode::Unset => return None,
        StatusCode::Ok => 0,
        // What Google's exporters write for an error status: UNKNOWN.
        StatusCode::Error => 2,
    };
    Some(rpc::Status {
        code,
        message: status.message,
        details: Vec::new(),
    })
}

fn count(dropped: u32) -> i32 {
    i32::try_from(dropped).unwrap_or(i32::MAX)
}

fn attributes_of(attributes: Vec<KeyValue>, dropped: u32) -> span::Attributes {
    span::Attributes {
        attribute_map: attribute_entries(attributes).collect(),
        dropped_attributes_count: count(dropped),
    }
}

/// OTLP attributes as v2 attribute values, keys verbatim: strings, ints
/// and bools keep their type; doubles, arrays, maps and bytes become text
/// (v2 has no other types).
fn attribute_entries(attributes: Vec<KeyValue>) -> impl Iterator<Item = (String, AttributeValue)> {
    attributes.into_iter().filter_map(|kv| {
        let value = kv.value?;
        let converted = match value.value {
            Some(Any::StringValue(s)) => string_value(s),
            Some(Any::IntValue(i)) => AttributeValue {
                value: Some(attribute_value::Value::IntValue(i)),
            },
            Some(Any::BoolValue(b)) => AttributeValue {
                value: Some(attribute_value::Value::BoolValue(b)),
            },
            None => return None,
            Some(_) => string_value(super::text(&value)),
        };
        Some((kv.key, converted))
    })
}

/// The resource's attributes, converted once for all its spans.
fn attribute_map(attributes: &[KeyValue]) -> HashMap<String, AttributeValue> {
    attribute_entries(attributes.to_vec()).collect()
}

fn string_value(text: String) -> AttributeValue {
    AttributeValue {
        value: Some(attribute_value::Value::StringValue(truncatable(text))),
    }
}

fn truncatable(text: String) -> TruncatableString {
    TruncatableString {
        value: text,
        truncated_byte_count: 0,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

    use super::*;
    use crate::{EmulatorConfig, EmulatorStore};

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn text(value: &str) -> Any {
        Any::StringValue(value.into())
    }

    fn span(attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: (1..=16).collect(),
            span_id: vec![0xab; 8],
            name: "GET /books".into(),
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            attributes,
            ..Span::default()
        }
    }

    /// Exports `spans` under a resource of project `p` and scope `lib` 1.2.
    fn export_spans(spans: Vec<Span>) -> (ExportTraceServiceResponse, Vec<StoredSpan>) {
        let store = EmulatorStore::new(&EmulatorConfig::default());
        let ingest = OtlpIngest::new(store.clone(), None);
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv(super::super::PROJECT_ATTRIBUTE, text("p")),
                        kv("service.name", text("shop")),
                        kv("shared", text("from the resource")),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.2".into(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let response = export(&ingest, request).expect("the request names its project");
        (response, store.traces.spans())
    }

    fn string_of(value: &AttributeValue) -> &str {
        match &value.value {
            Some(attribute_value::Value::StringValue(s)) => &s.value,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn a_span_is_stored_under_its_hex_ids_with_its_attributes_over_the_resources() {
        let (response, stored) = export_spans(vec![span(vec![
            kv("shared", text("from the span")),
            kv("http.response.status_code", Any::IntValue(200)),
            kv("ratio", Any::DoubleValue(0.5)),
        ])]);
        assert_eq!(response.partial_success, None);
        let [stored] = stored.as_slice() else {
            panic!("one span stored: {stored:?}")
        };
        let trace_id = "0102030405060708090a0b0c0d0e0f10";
        assert_eq!(
            (stored.project.as_str(), stored.trace_id.as_str()),
            ("p", trace_id)
        );
        assert_eq!(
            stored.span.name,
            format!("projects/p/traces/{trace_id}/spans/abababababababab")
        );
        assert_eq!(stored.span.span_id, "abababababababab");
        assert_eq!(stored.span.parent_span_id, "");
        let display = stored.span.display_name.as_ref().expect("a display name");
        assert_eq!(display.value, "GET /books");
        let map = &stored
            .span
            .attributes
            .as_ref()
            .expect("attributes")
            .attribute_map;
        assert_eq!(string_of(&map["shared"]), "from the span");
        assert_eq!(string_of(&map["service.name"]), "shop");
        assert_eq!(string_of(&map["otel.scope.name"]), "lib");
        assert_eq!(string_of(&map["otel.scope.version"]), "1.2");
        assert_eq!(string_of(&map["ratio"]), "0.5");
        assert_eq!(
            map["http.response.status_code"].value,
            Some(attribute_value::Value::IntValue(200))
        );
        assert_eq!(map.len(), 7);
    }

    #[test]
    fn an_array_attribute_is_held_to_the_value_limit_as_text_and_a_number_passes() {
        let big = Any::ArrayValue(ArrayValue {
            values: (0..ATTRIBUTE_VALUE_BYTES / 4)
                .map(|_| AnyValue {
                    value: Some(text("ab")),
                })
                .collect(),
        });
        let (response, stored) = export_spans(vec![
            span(vec![kv("big", big)]),
            span(vec![
                kv("n", Any::IntValue(i64::MIN)),
                kv("x", Any::DoubleValue(f64::MAX)),
            ]),
        ]);
        let partial = response.partial_success.expect("the big array is rejected");
        assert_eq!(partial.rejected_spans, 1);
        assert!(
            partial.error_message.contains("spans[0]") && partial.error_message.contains("\"big\""),
            "{}",
            partial.error_message
        );
        assert_eq!(stored.len(), 1);
    }
}
