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
//!   [`TraceContext`] of the request the event happens in
//!   ([`request_scope`]);
//! - for an error entry, the Error Reporting fields (see
//!   [`error_reporting`](crate::telemetry::logs::error_reporting)) and the
//!   error's own `sourceLocation`; otherwise the event's callsite as
//!   `logging.googleapis.com/sourceLocation`.
//!
//! Values are escaped as they are written, so user input stays inside JSON
//! strings; no `serde_json::Value` or `String` is made per field.
//!
//! Cloud Logging refuses an entry over 256 KiB, and an error entry it
//! refuses is missing from Error Reporting and the ERROR log-based metric
//! too. So every string value is capped as it is written
//! ([`MAX_MESSAGE_BYTES`] for `message`, [`MAX_VALUE_BYTES`] for the
//! others), and a line that still comes out over [`MAX_LINE_BYTES`] (an
//! event with many big fields) is written again with the
//! [`Caps::TIGHT`] caps. The entry is always written, whole and valid.

use std::cell::RefCell;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::telemetry::logs::error_reporting::{self, ServiceContext};
use crate::telemetry::logs::json;
use crate::telemetry::request_scope;
use crate::telemetry::traces::context::TraceContext;

/// The most bytes of a line, newline included: Cloud Logging's 256 KiB
/// entry limit less room for what the logging agent adds (resource,
/// labels, timestamps, log name).
pub const MAX_LINE_BYTES: usize = 240 * 1024;

/// The most bytes of the `message` field, escapes included: the error's
/// whole cause chain or a panic's message and bounded backtrace fit.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The most bytes of any other string value (a user agent, a URL).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// The caps on string values a line is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub message: usize,
    pub value: usize,
}

impl Caps {
    /// For every line.
    pub const NORMAL: Self = Self {
        message: MAX_MESSAGE_BYTES,
        value: MAX_VALUE_BYTES,
    };
    /// For a line that came out too long with [`Caps::NORMAL`]: with
    /// `tracing`'s 32 fields an event at most, it stays far below the limit.
    pub const TIGHT: Self = Self {
        message: 16 * 1024,
        value: 1024,
    };

    fn of(self, field: &Field) -> usize {
        if field.name() == "message" {
            self.message
        } else {
            self.value
        }
    }
}

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
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let trace = request_scope::current_trace();
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => self.format_within_limit(&mut scratch, event, trace.as_ref()),
            // An event logged while formatting another (a field's `Debug`
            // that logs): format it in buffers of its own.
            Err(_) => self.format_within_limit(&mut Scratch::default(), event, trace.as_ref()),
        });
    }
}

impl<O: LineOutput> CloudLoggingLayer<O> {
    /// Formats the event's line, again with tighter caps when it came out
    /// over [`MAX_LINE_BYTES`], and hands it to the output.
    fn format_within_limit(
        &self,
        scratch: &mut Scratch,
        event: &Event<'_>,
        trace: Option<&TraceContext>,
    ) {
        self.format(scratch, event, trace, Caps::NORMAL);
        if scratch.line.len() > MAX_LINE_BYTES {
            self.format(scratch, event, trace, Caps::TIGHT);
        }
        self.output.write_line(&scratch.line);
    }

    fn format(
        &self,
        scratch: &mut Scratch,
        event: &Event<'_>,
        trace: Option<&TraceContext>,
        caps: Caps,
    ) {
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
        event.record(&mut Collect {
            values,
            fields,
            caps,
        });
        // Sorted by name, as a map keyed by name would list them; of two
        // fields with one name the later wins. The request line's fields
        // come sorted already (see the middleware), and checking costs
        // less than sorting.
        if !fields.is_sorted_by(|a, b| a.name <= b.name) {
            fields.sort_by(|a, b| a.name.cmp(b.name));
        }
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
            // Prefix tests, not a search for the `.`: this runs for every
            // field of every line.
            match field.name {
                "severity" => {}
                name if name.starts_with("http_request.") => has_http = true,
                name if name.starts_with("labels.") => has_labels = true,
                "insert_id" => {
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
                line.extend_from_slice(&report.json_fields);
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
    caps: Caps,
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
        let max = self.caps.of(field);
        self.push(field, true, |out| json::push_string_capped(out, value, max));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let max = self.caps.of(field);
        self.push(field, true, |out| {
            json::push_debug_string_capped(out, value, max)
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::telemetry::logs::error_reporting::{
        ErrorReport, ErrorType, HttpContext, ReportLocation,
    };

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<Vec<u8>>>>);

    impl LineOutput for Lines {
        fn write_line(&self, line: &[u8]) {
            self.0.lock().unwrap().push(line.to_vec());
        }
    }

    /// The lines `log` writes, each checked to be within the limit and
    /// parsed.
    fn lines_of(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let context = ServiceContext {
            service: "shop".to_owned(),
            version: "1".to_owned(),
        };
        let layer = CloudLoggingLayer::new(lines.clone(), "p", &context);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        let written = lines.0.lock().unwrap();
        written
            .iter()
            .map(|line| {
                assert!(
                    line.len() <= MAX_LINE_BYTES,
                    "a line of {} bytes",
                    line.len()
                );
                serde_json::from_slice(line).unwrap()
            })
            .collect()
    }

    const MIB: usize = 1024 * 1024;

    #[test]
    fn an_error_entry_with_a_megabyte_user_agent_url_and_message_is_written_whole() {
        let report = ErrorReport {
            error_type: ErrorType::HandlerError,
            message: format!("loading book: {}", "m".repeat(MIB)),
            location: ReportLocation::from_caller(std::panic::Location::caller()),
            dependency: None,
        };
        let http = HttpContext {
            method: "GET".to_owned(),
            url: format!("/api/books/1?q={}", "u".repeat(MIB)),
            user_agent: Some(format!("evil/{}", "\u{1}".repeat(MIB))),
            remote_ip: Some("203.0.113.9".to_owned()),
            response_status_code: Some(500),
        };
        let lines = lines_of(|| error_reporting::emit(&report, Some(&http)));
        assert_eq!(lines.len(), 1);
        let entry = &lines[0];
        assert_eq!(entry["severity"], "ERROR");
        assert_eq!(
            entry["@type"],
            "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
        );
        assert_eq!(entry["serviceContext"]["service"], "shop");
        let message = entry["message"].as_str().unwrap();
        assert!(message.starts_with("loading book: mmm"));
        assert!(
            message.ends_with(" bytes]"),
            "{}",
            &message[message.len() - 40..]
        );
        let request = &entry["context"]["httpRequest"];
        assert_eq!(request["remoteIp"], "203.0.113.9");
        assert_eq!(request["responseStatusCode"], 500);
        for field in ["url", "userAgent"] {
            let value = request[field].as_str().unwrap();
            assert!(value.contains("…[truncated "), "{field}");
        }
    }

    #[test]
    fn a_request_line_with_huge_fields_stays_within_the_limit() {
        let huge = "h".repeat(MIB);
        let lines = lines_of(|| {
            tracing::info!(
                http_request.request_url = %huge,
                http_request.user_agent = huge.as_str(),
                route = huge.as_str(),
                "GET {huge} 200"
            )
        });
        let entry = &lines[0];
        let url = entry["httpRequest"]["requestUrl"].as_str().unwrap();
        assert!(
            url.len() <= MAX_VALUE_BYTES && url.ends_with(" bytes]"),
            "{}",
            url.len()
        );
        assert!(entry["message"].as_str().unwrap().len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn an_event_too_big_for_the_normal_caps_is_written_with_the_tight_ones() {
        let big = "b".repeat(MAX_VALUE_BYTES);
        let lines = lines_of(|| {
            tracing::warn!(
                a0 = %big, a1 = %big, a2 = %big, a3 = %big, a4 = %big, a5 = %big,
                a6 = %big, a7 = %big, a8 = %big, a9 = %big, b0 = %big, b1 = %big,
                b2 = %big, b3 = %big, b4 = %big, b5 = %big, b6 = %big, b7 = %big,
                "{big}"
            )
        });
        let entry = &lines[0];
        assert_eq!(entry["severity"], "WARNING");
        let a0 = entry["a0"].as_str().unwrap();
        assert!(
            a0.len() <= Caps::TIGHT.value && a0.ends_with(" bytes]"),
            "{a0}"
        );
        assert_eq!(
            entry["message"].as_str().unwrap(),
            big,
            "the message fits the tight cap"
        );
    }
}
