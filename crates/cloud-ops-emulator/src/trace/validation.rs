//! Cloud Trace v2 write rules (T1-T8 of `gcp-api-rules.md`).
//!
//! A batch is checked span by span; one malformed span fails the whole batch
//! (T8). Values over a limit are truncated or dropped and counted in the span,
//! never rejected (T6, T7). Spans outside the accepted time window are dropped
//! silently (T5: dropping is the safer emulation of an unverified behaviour).

use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, span, stack_trace, AttributeValue, BatchWriteSpansRequest, Module, Span,
    StackTrace, TruncatableString,
};

use crate::time::timestamp::{self, NANOS_PER_SECOND};
use crate::trace::store::StoredSpan;

const DISPLAY_NAME_BYTES: usize = 128;
const ATTRIBUTES_PER_SPAN: usize = 32;
const ATTRIBUTE_KEY_BYTES: usize = 128;
const ATTRIBUTE_STRING_BYTES: usize = 256;
const ANNOTATIONS_PER_SPAN: usize = 32;
const MESSAGE_EVENTS_PER_SPAN: usize = 128;
const ATTRIBUTES_PER_ANNOTATION: usize = 4;
const ANNOTATION_DESCRIPTION_BYTES: usize = 256;
const LINKS_PER_SPAN: usize = 128;
const ATTRIBUTES_PER_LINK: usize = 32;
const STACK_FRAMES: usize = 128;
const FUNCTION_NAME_BYTES: usize = 1024;
const FILE_NAME_BYTES: usize = 256;
const SOURCE_VERSION_BYTES: usize = 128;
const MODULE_BYTES: usize = 256;
const BUILD_ID_BYTES: usize = 128;
const DAY_NANOS: i64 = 86_400 * NANOS_PER_SECOND;
const MAX_PAST_NANOS: i64 = 14 * DAY_NANOS;
const MAX_FUTURE_NANOS: i64 = 3 * DAY_NANOS;

/// Why a span or a batch was rejected; the `Display` text is the gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceValidationError {
    #[error("Invalid resource name \"{0}\": expected projects/[PROJECT_ID].")]
    BadProjectName(String),
    #[error("Field spans is required: at least one span must be written.")]
    NoSpans,
    #[error("Invalid span name \"{name}\" in spans[{index}]: expected projects/[PROJECT_ID]/traces/[TRACE_ID]/spans/[SPAN_ID] with a 32-hex-digit trace id and a 16-hex-digit span id, neither all zeros.")]
    BadSpanName { index: usize, name: String },
    #[error("Span spans[{index}] belongs to project {span_project}, not to the request's project {request_project}.")]
    ProjectMismatch {
        index: usize,
        span_project: String,
        request_project: String,
    },
    #[error("Field spans[{index}].span_id \"{span_id}\" does not match the span id in the span name \"{name}\".")]
    SpanIdMismatch {
        index: usize,
        span_id: String,
        name: String,
    },
    #[error("Invalid parent id!")]
    InvalidParentId,
    #[error("Missing span display name!")]
    MissingDisplayName,
    #[error("Field spans[{index}].{field} is required.")]
    MissingTime { index: usize, field: &'static str },
    #[error("Field spans[{index}].{field} is not a valid timestamp.")]
    BadTime { index: usize, field: &'static str },
    #[error("Field spans[{index}].end_time is before its start_time.")]
    EndBeforeStart { index: usize },
}

/// What survives validation of a batch.
#[derive(Debug, Default)]
pub struct ValidatedBatch {
    /// Spans to store, already truncated.
    pub spans: Vec<StoredSpan>,
    /// How many of them had something truncated or dropped.
    pub truncated: u64,
    /// Spans dropped because they were outside the time window.
    pub out_of_window: u64,
}

/// Validates a `BatchWriteSpans` request against the clock `now_nanos`.
///
/// # Errors
/// The first malformed span or request field; the whole batch is then rejected (T8).
pub fn validate_batch(
    request: BatchWriteSpansRequest,
    now_nanos: i64,
) -> Result<ValidatedBatch, TraceValidationError> {
    let project = parse_project_name(&request.name)?;
    if request.spans.is_empty() {
        return Err(TraceValidationError::NoSpans);
    }
    let mut batch = ValidatedBatch::default();
    for (index, span) in request.spans.into_iter().enumerate() {
        let checked = validate_span(index, project, span, now_nanos)?;
        if !checked.in_window {
            batch.out_of_window += 1;
            continue;
        }
        batch.truncated += u64::from(checked.truncated);
        batch.spans.push(checked.stored);
    }
    Ok(batch)
}

/// One span after validation.
#[derive(Debug)]
pub struct CheckedSpan {
    pub stored: StoredSpan,
    pub truncated: bool,
    pub in_window: bool,
}

/// Validates and truncates one span; `project` is the request's project, or
/// `None` for `CreateSpan` where the span name alone carries it.
///
/// # Errors
/// See [`TraceValidationError`].
pub fn validate_span<'a>(
    index: usize,
    project: impl Into<Option<&'a str>>,
    mut span: Span,
    now_nanos: i64,
) -> Result<CheckedSpan, TraceValidationError> {
    let ids = parse_span_name(index, &span.name)?;
    if let Some(request_project) = project.into() {
        if ids.project != request_project {
            return Err(TraceValidationError::ProjectMismatch {
                index,
                span_project: ids.project.to_string(),
                request_project: request_project.to_string(),
            });
        }
    }
    if span.span_id != ids.span_id {
        return Err(TraceValidationError::SpanIdMismatch {
            index,
            span_id: span.span_id.clone(),
            name: span.name.clone(),
        });
    }
    if !span.parent_span_id.is_empty() && !is_hex_id(&span.parent_span_id, 16) {
        return Err(TraceValidationError::InvalidParentId);
    }
    if span
        .display_name
        .as_ref()
        .is_none_or(|d| d.value.is_empty())
    {
        return Err(TraceValidationError::MissingDisplayName);
    }
    let (start, end) = span_times(index, &span)?;
    let in_window = start >= now_nanos.saturating_sub(MAX_PAST_NANOS)
        && end <= now_nanos.saturating_add(MAX_FUTURE_NANOS);
    let project = ids.project.to_string();
    let trace_id = ids.trace_id.to_ascii_lowercase();
    let truncated = truncate_span(&mut span);
    Ok(CheckedSpan {
        stored: StoredSpan {
            project,
            trace_id,
            span,
        },
        truncated,
        in_window,
    })
}

/// The project id of `projects/[PROJECT_ID]`.
///
/// # Errors
/// [`TraceValidationError::BadProjectName`] for anything else.
pub fn parse_project_name(name: &str) -> Result<&str, TraceValidationError> {
    match name.strip_prefix("projects/") {
        Some(project) if is_project_id(project) => Ok(project),
        _ => Err(TraceValidationError::BadProjectName(name.to_string())),
    }
}

fn is_project_id(project: &str) -> bool {
    !project.is_empty()
        && project.len() <= 63
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

struct SpanIds<'a> {
    project: &'a str,
    trace_id: &'a str,
    span_id: &'a str,
}

fn parse_span_name(index: usize, name: &str) -> Result<SpanIds<'_>, TraceValidationError> {
    let bad = || TraceValidationError::BadSpanName {
        index,
        name: name.to_string(),
    };
    let parts: Vec<&str> = name.split('/').collect();
    let [p, project, t, trace_id, s, span_id] = parts.as_slice() else {
        return Err(bad());
    };
    let well_formed = *p == "projects"
        && *t == "traces"
        && *s == "spans"
        && is_project_id(project)
        && is_hex_id(trace_id, 32)
        && is_hex_id(span_id, 16);
    if !well_formed {
        return Err(bad());
    }
    Ok(SpanIds {
        project,
        trace_id,
        span_id,
    })
}

/// `len` hex digits, not all zeros (an all-zero id is the "invalid" id in W3C and Cloud Trace).
pub fn is_hex_id(id: &str, len: usize) -> bool {
    id.len() == len && id.chars().all(|c| c.is_ascii_hexdigit()) && id.chars().any(|c| c != '0')
}

fn span_times(index: usize, span: &Span) -> Result<(i64, i64), TraceValidationError> {
    let time = |value: &Option<prost_types::Timestamp>, field| {
        let ts = value
            .as_ref()
            .ok_or(TraceValidationError::MissingTime { index, field })?;
        timestamp::to_nanos(ts).map_err(|_| TraceValidationError::BadTime { index, field })
    };
    let start = time(&span.start_time, "start_time")?;
    let end = time(&span.end_time, "end_time")?;
    // [unverified] whether Google rejects this; a span ending before it starts
    // is always an exporter bug, so the emulator surfaces it.
    if end < start {
        return Err(TraceValidationError::EndBeforeStart { index });
    }
    Ok((start, end))
}

/// Applies every T6 limit in place; true when anything was cut or dropped.
fn truncate_span(span: &mut Span) -> bool {
    let mut changed = truncate_opt(&mut span.display_name, DISPLAY_NAME_BYTES);
    if let Some(attributes) = span.attributes.as_mut() {
        changed |= limit_attributes(attributes, ATTRIBUTES_PER_SPAN);
    }
    if let Some(events) = span.time_events.as_mut() {
        changed |= limit_time_events(events);
    }
    if let Some(links) = span.links.as_mut() {
        changed |= limit_links(links);
    }
    if let Some(stack) = span.stack_trace.as_mut() {
        changed |= limit_stack_trace(stack);
    }
    changed
}

/// Keeps the first `limit` bytes cut on a UTF-8 boundary and counts the rest.
pub fn truncate_string(value: &mut TruncatableString, limit: usize) -> bool {
    if value.value.len() <= limit {
        return false;
    }
    let mut cut = limit;
    while !value.value.is_char_boundary(cut) {
        cut -= 1;
    }
    let removed = value.value.len() - cut;
    value.value.truncate(cut);
    value.truncated_byte_count = value
        .truncated_byte_count
        .saturating_add(i32::try_from(removed).unwrap_or(i32::MAX));
    true
}

fn truncate_opt(value: &mut Option<TruncatableString>, limit: usize) -> bool {
    value.as_mut().is_some_and(|v| truncate_string(v, limit))
}

fn add_dropped(counter: &mut i32, dropped: usize) {
    *counter = counter.saturating_add(i32::try_from(dropped).unwrap_or(i32::MAX));
}

/// Drops attributes with over-long keys, then the surplus beyond `limit` (in key
/// order, so the result is deterministic), and truncates string values.
fn limit_attributes(attributes: &mut span::Attributes, limit: usize) -> bool {
    let before = attributes.attribute_map.len();
    attributes
        .attribute_map
        .retain(|key, _| key.len() <= ATTRIBUTE_KEY_BYTES);
    if attributes.attribute_map.len() > limit {
        let mut keys: Vec<String> = attributes.attribute_map.keys().cloned().collect();
        keys.sort();
        for key in keys.into_iter().skip(limit) {
            attributes.attribute_map.remove(&key);
        }
    }
    let dropped = before - attributes.attribute_map.len();
    add_dropped(&mut attributes.dropped_attributes_count, dropped);
    let mut changed = dropped > 0;
    for value in attributes.attribute_map.values_mut() {
        changed |= truncate_attribute_value(value);
    }
    changed
}

fn truncate_attribute_value(value: &mut AttributeValue) -> bool {
    match value.value.as_mut() {
        Some(attribute_value::Value::StringValue(s)) => truncate_string(s, ATTRIBUTE_STRING_BYTES),
        _ => false,
    }
}

fn limit_time_events(events: &mut span::TimeEvents) -> bool {
    use span::time_event::Value;
    let (mut annotations, mut messages) = (0usize, 0usize);
    let (mut dropped_annotations, mut dropped_messages) = (0usize, 0usize);
    let mut changed = false;
    events
        .time_event
        .retain_mut(|event| match event.value.as_mut() {
            Some(Value::Annotation(annotation)) => {
                annotations += 1;
                if annotations > ANNOTATIONS_PER_SPAN {
                    dropped_annotations += 1;
                    return false;
                }
                changed |= truncate_opt(&mut annotation.description, ANNOTATION_DESCRIPTION_BYTES);
                if let Some(attributes) = annotation.attributes.as_mut() {
                    changed |= limit_attributes(attributes, ATTRIBUTES_PER_ANNOTATION);
                }
                true
            }
            Some(Value::MessageEvent(_)) => {
                messages += 1;
                if messages > MESSAGE_EVENTS_PER_SPAN {
                    dropped_messages += 1;
                    return false;
                }
                true
            }
            None => true,
        });
    add_dropped(&mut events.dropped_annotations_count, dropped_annotations);
    add_dropped(&mut events.dropped_message_events_count, dropped_messages);
    changed || dropped_annotations > 0 || dropped_messages > 0
}

fn limit_links(links: &mut span::Links) -> bool {
    let dropped = links.link.len().saturating_sub(LINKS_PER_SPAN);
    links.link.truncate(LINKS_PER_SPAN);
    add_dropped(&mut links.dropped_links_count, dropped);
    let mut changed = dropped > 0;
    for link in &mut links.link {
        if let Some(attributes) = link.attributes.as_mut() {
            changed |= limit_attributes(attributes, ATTRIBUTES_PER_LINK);
        }
    }
    changed
}

fn limit_stack_trace(stack: &mut StackTrace) -> bool {
    let Some(frames) = stack.stack_frames.as_mut() else {
        return false;
    };
    let dropped = frames.frame.len().saturating_sub(STACK_FRAMES);
    frames.frame.truncate(STACK_FRAMES);
    add_dropped(&mut frames.dropped_frames_count, dropped);
    let mut changed = dropped > 0;
    for frame in &mut frames.frame {
        changed |= limit_frame(frame);
    }
    changed
}

fn limit_frame(frame: &mut stack_trace::StackFrame) -> bool {
    let mut changed = truncate_opt(&mut frame.function_name, FUNCTION_NAME_BYTES);
    changed |= truncate_opt(&mut frame.original_function_name, FUNCTION_NAME_BYTES);
    changed |= truncate_opt(&mut frame.file_name, FILE_NAME_BYTES);
    changed |= truncate_opt(&mut frame.source_version, SOURCE_VERSION_BYTES);
    if let Some(Module { module, build_id }) = frame.load_module.as_mut() {
        changed |= truncate_opt(module, MODULE_BYTES);
        changed |= truncate_opt(build_id, BUILD_ID_BYTES);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_a_utf8_boundary_and_counts_bytes() {
        let mut s = TruncatableString {
            value: "aé".repeat(100),
            truncated_byte_count: 0,
        };
        assert!(truncate_string(&mut s, 128));
        assert!(s.value.len() <= 128);
        assert_eq!(s.value.len() + s.truncated_byte_count as usize, 300);
    }

    #[test]
    fn hex_ids_must_have_the_right_length_and_not_be_zero() {
        assert!(is_hex_id("00f067aa0ba902b7", 16));
        assert!(!is_hex_id("0000000000000000", 16));
        assert!(!is_hex_id("00f067aa0ba902b", 16));
        assert!(!is_hex_id("00f067aa0ba902bz", 16));
    }
}
