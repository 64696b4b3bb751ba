//! The Cloud Logging JSON layer: each `tracing` event becomes one line,
//! serialized straight into a reused buffer and handed to a [`LineOutput`]
//! whole.
//!
//! A line, in this order (the format `tracing-stackdriver` 0.10 defined,
//! which this layer replaced, field for field):
//!
//! - `time` (RFC 3339, UTC), `target`, `severity` (from the level, or from a
//!   `severity` field);
//! - the event's fields sorted by name, each key camel-cased (`latency_ms` ->
//!   `latencyMs`); `http_request.*` fields gathered into `httpRequest`,
//!   `labels.*` into `logging.googleapis.com/labels`, `insert_id` as
//!   `logging.googleapis.com/insertId`;
//! - `logging.googleapis.com/trace`, `/spanId`, `/trace_sampled` from the
//!   [`TraceContext`] on the current span;
//! - for an error entry, the Error Reporting fields (see
//!   [`error_reporting`](crate::telemetry::logs::error_reporting)) and the
//!   error's own `sourceLocation`; otherwise the event's callsite as
//!   `logging.googleapis.com/sourceLocation`.
//!
//! Values are escaped as they are written, so user input stays inside JSON
//! strings; no `serde_json::Value` or `String` is made per field.

use std::cell::RefCell;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::telemetry::logs::error_reporting::{self, ServiceContext};
use crate::telemetry::logs::json;
use crate::telemetry::traces::context::TraceContext;

/// Where complete lines go: the batched stdout writer in the service, a
/// buffer in tests and benchmarks.
pub trait LineOutput: Send + Sync + 'static {
    /// Takes one complete line, with its trailing newline.
    fn write_line(&self, line: &[u8]);
}

/// The layer; see the module documentation for the line it writes.
pub struct CloudLoggingLayer<O> {
    output: O,
    /// `projects/{project}/traces/`, ready to prefix a trace id.
    trace_prefix: Box<[u8]>,
    /// `"serviceContext":{…}`, serialized once.
    service_context_field: Box<[u8]>,
}

impl<O: LineOutput> CloudLoggingLayer<O> {
    pub fn new(output: O, project_id: &str, service_context: &ServiceContext) -> Self {
        let service_context = serde_json::to_string(service_context).unwrap_or_default();
        Self {
            output,
            trace_prefix: format!("projects/{project_id}/traces/").into_bytes().into(),
            service_context_field: format!("\"serviceContext\":{service_context}")
                .into_bytes()
                .into(),
        }
    }
}

/// One field of the event being formatted: its value's JSON is
/// `values[start..end]`.
#[derive(Clone, Copy)]
struct FieldValue {
    name: &'static str,
    start: usize,
    end: usize,
    is_string: bool,
}

/// The buffers one thread formats its lines in, kept between lines so that
/// formatting allocates only while they grow.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    values: Vec<u8>,
    fields: Vec<FieldValue>,
    /// Camel-cased keys of `httpRequest` or labels, to sort them by.
    keys: Vec<u8>,
    nested: Vec<(usize, usize, FieldValue)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl<S, O> Layer<S> for CloudLoggingLayer<O>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    O: LineOutput,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let trace = ctx.lookup_current().and_then(|span| {
            span.scope()
                .find_map(|span| span.extensions().get::<TraceContext>().copied())
        });
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => self.format(&mut scratch, event, trace.as_ref()),
            // An event logged while formatting another (a field's `Debug`
            // that logs): format it in buffers of its own.
            Err(_) => self.format(&mut Scratch::default(), event, trace.as_ref()),
        });
    }
}

impl<O: LineOutput> CloudLoggingLayer<O> {
    fn format(&self, scratch: &mut Scratch, event: &Event<'_>, trace: Option<&TraceContext>) {
        let Scratch {
            line,
            values,
            fields,
            keys,
            nested,
        } = scratch;
        line.clear();
        values.clear();
        fields.clear();
        event.record(&mut Collect { values, fields });
        // Sorted by name, as a map keyed by name would list them; of two
        // fields with one name the later wins.
        fields.sort_by(|a, b| a.name.cmp(b.name));
        dedup_keep_last(fields, |a, b| a.name == b.name);

        let meta = event.metadata();
        line.extend_from_slice(b"{\"time\":\"");
        json::push_now(line);
        line.extend_from_slice(b"\",\"target\":");
        json::push_string(line, meta.target());
        line.extend_from_slice(b",\"severity\":\"");
        let severity = fields
            .iter()
            .find(|field| field.name == "severity")
            .map_or_else(
                || severity_of_level(*meta.level()),
                |field| severity_of_field(field, values),
            );
        line.extend_from_slice(severity.as_bytes());
        line.push(b'"');

        let mut has_http = false;
        let mut has_labels = false;
        for field in fields.iter() {
            let (head, rest) = match field.name.split_once('.') {
                Some((head, rest)) => (head, Some(rest)),
                None => (field.name, None),
            };
            match (head, rest) {
                (_, None) if field.name == "severity" => {}
                ("http_request", Some(_)) => has_http = true,
                ("labels", Some(_)) => has_labels = true,
                ("insert_id", None) => {
                    line.extend_from_slice(b",\"logging.googleapis.com/insertId\":");
                    push_as_string(line, field, values);
                }
                _ => {
                    line.extend_from_slice(b",\"");
                    json::push_camel_case_cached(line, field.name);
                    line.extend_from_slice(b"\":");
                    line.extend_from_slice(&values[field.start..field.end]);
                }
            }
        }
        if has_http {
            line.extend_from_slice(b",\"httpRequest\":");
            nested_object(line, "http_request.", fields, values, keys, nested, false);
        }
        if has_labels {
            line.extend_from_slice(b",\"logging.googleapis.com/labels\":");
            nested_object(line, "labels.", fields, values, keys, nested, true);
        }

        if let Some(trace) = trace {
            line.extend_from_slice(b",\"logging.googleapis.com/trace\":\"");
            line.extend_from_slice(&self.trace_prefix);
            json::push_hex(line, trace.trace_id.0, 32);
            line.extend_from_slice(b"\",\"logging.googleapis.com/spanId\":\"");
            json::push_hex(line, u128::from(trace.span_id.0), 16);
            line.extend_from_slice(b"\",\"logging.googleapis.com/trace_sampled\":");
            line.extend_from_slice(if trace.sampled { b"true" } else { b"false" });
        }
        error_reporting::with_pending_report(|report| match report {
            Some(report) => {
                line.push(b',');
                line.extend_from_slice(report.json_fields.as_bytes());
                line.push(b',');
                line.extend_from_slice(&self.service_context_field);
                push_source_location(
                    line,
                    &report.location.file_path,
                    report.location.line_number,
                    &report.location.function_name,
                );
            }
            None => {
                if let (Some(file), Some(number)) = (meta.file(), meta.line()) {
                    push_source_location(
                        line,
                        file,
                        number,
                        meta.module_path().unwrap_or_default(),
                    );
                }
            }
        });
        line.extend_from_slice(b"}\n");
        self.output.write_line(line);
    }
}

/// The fields under `prefix` as one object, keyed by the camel-cased rest of
/// their names and sorted by those keys (of two equal keys the later wins);
/// with `as_strings`, every value a string (labels are strings).
fn nested_object(
    line: &mut Vec<u8>,
    prefix: &str,
    fields: &[FieldValue],
    values: &[u8],
    keys: &mut Vec<u8>,
    nested: &mut Vec<(usize, usize, FieldValue)>,
    as_strings: bool,
) {
    keys.clear();
    nested.clear();
    for field in fields {
        if let Some(rest) = field.name.strip_prefix(prefix) {
            let start = keys.len();
            json::push_camel_case_cached(keys, rest);
            nested.push((start, keys.len(), *field));
        }
    }
    nested.sort_by(|a, b| keys[a.0..a.1].cmp(&keys[b.0..b.1]));
    dedup_keep_last(nested, |a, b| keys[a.0..a.1] == keys[b.0..b.1]);
    line.push(b'{');
    for (index, (start, end, field)) in nested.iter().enumerate() {
        if index > 0 {
            line.push(b',');
        }
        line.push(b'"');
        line.extend_from_slice(&keys[*start..*end]);
        line.extend_from_slice(b"\":");
        if as_strings {
            push_as_string(line, field, values);
        } else {
            line.extend_from_slice(&values[field.start..field.end]);
        }
    }
    line.push(b'}');
}

/// Of each run of equal neighbours, keeps the last (what inserting them into
/// a map one after the other leaves).
fn dedup_keep_last<T: Copy>(items: &mut Vec<T>, same: impl Fn(&T, &T) -> bool) {
    let mut write = 0;
    for read in 0..items.len() {
        if read + 1 < items.len() && same(&items[read], &items[read + 1]) {
            continue;
        }
        items[write] = items[read];
        write += 1;
    }
    items.truncate(write);
}

/// A string value as it is; any other as a string of its JSON.
fn push_as_string(line: &mut Vec<u8>, field: &FieldValue, values: &[u8]) {
    let json = &values[field.start..field.end];
    if field.is_string {
        line.extend_from_slice(json);
    } else {
        line.push(b'"');
        line.extend_from_slice(json);
        line.push(b'"');
    }
}

fn push_source_location(line: &mut Vec<u8>, file: &str, number: u32, function: &str) {
    line.extend_from_slice(b",\"logging.googleapis.com/sourceLocation\":{\"file\":");
    json::push_string(line, file);
    line.extend_from_slice(b",\"line\":\"");
    json::push_u64(line, u64::from(number));
    line.extend_from_slice(b"\",\"function\":");
    json::push_string(line, function);
    line.push(b'}');
}

fn severity_of_level(level: Level) -> &'static str {
    match level {
        Level::TRACE | Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARNING",
        _ => "ERROR",
    }
}

/// A `severity` field overrides the level: one of Cloud Logging's severity
/// names, in any case (`warn` and `trace` too), else `DEFAULT`.
fn severity_of_field(field: &FieldValue, values: &[u8]) -> &'static str {
    if !field.is_string {
        return "DEFAULT";
    }
    // Between the quotes; a severity name has nothing that was escaped.
    let name = &values[field.start + 1..field.end - 1];
    let known = [
        ("debug", "DEBUG"),
        ("trace", "DEBUG"),
        ("info", "INFO"),
        ("notice", "NOTICE"),
        ("warn", "WARNING"),
        ("warning", "WARNING"),
        ("error", "ERROR"),
        ("critical", "CRITICAL"),
        ("alert", "ALERT"),
        ("emergency", "EMERGENCY"),
    ];
    known
        .iter()
        .find(|(word, _)| name.eq_ignore_ascii_case(word.as_bytes()))
        .map_or("DEFAULT", |(_, severity)| severity)
}

/// Writes each field's value as JSON into `values`: integers and booleans as
/// themselves, strings escaped, anything else as its `Debug` text in a string
/// (floats, errors and `%` values included, as they always were).
struct Collect<'a> {
    values: &'a mut Vec<u8>,
    fields: &'a mut Vec<FieldValue>,
}

impl Collect<'_> {
    fn push(&mut self, field: &Field, is_string: bool, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.values.len();
        write(self.values);
        self.fields.push(FieldValue {
            name: field.name(),
            start,
            end: self.values.len(),
            is_string,
        });
    }
}

impl Visit for Collect<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, false, |out| json::push_i64(out, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, false, |out| json::push_u64(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, false, |out| {
            out.extend_from_slice(if value { b"true" } else { b"false" })
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, true, |out| json::push_string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, true, |out| json::push_debug_string(out, value));
    }
}
