//! Bounded in-memory store of log entries, parsed the way Cloud Logging
//! parses a Cloud Run container's stdout.
//!
//! On Cloud Run every stdout line becomes a log entry: a line holding a JSON
//! object becomes a `jsonPayload` whose special fields (`severity`, `time`,
//! `httpRequest`, `logging.googleapis.com/trace`, ...) are lifted into the
//! entry itself; any other line becomes a `textPayload` with severity
//! `DEFAULT`. The console shows these entries, so they are parsed here once,
//! on ingestion, never while rendering.
//!
//! Lines arrive three ways: from the embedded emulator's own service through
//! a [`LogSink`] (a bounded channel, so logging never waits for the console),
//! from `POST /api/logs`, and from stdin with `emulator --logs -`. Memory is
//! bounded twice: by entry count and by total line bytes; the oldest entries
//! go first and are counted.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{Map, Value};

use super::timestamp::now_nanos;

/// Cloud Logging's limit on one entry; longer lines are cut to a stub.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// What is kept of an over-long line, for a human to recognise it.
const OVERSIZED_PREVIEW_BYTES: usize = 1024;
/// Lines the embedded service may have in flight to the store; beyond it
/// lines are counted as lost rather than blocking the logging thread.
const SINK_CAPACITY: usize = 4096;

const TRACE_FIELD: &str = "logging.googleapis.com/trace";
const SPAN_FIELD: &str = "logging.googleapis.com/spanId";
const SAMPLED_FIELD: &str = "logging.googleapis.com/trace_sampled";
const SOURCE_FIELD: &str = "logging.googleapis.com/sourceLocation";
const INSERT_ID_FIELD: &str = "logging.googleapis.com/insertId";
const LABELS_FIELD: &str = "logging.googleapis.com/labels";
/// The `@type` that makes Error Reporting pick an entry up.
pub const REPORTED_ERROR_EVENT: &str =
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent";

/// `LogSeverity`, in Cloud Logging's order (so `>=` filters work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Default,
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 9] = [
        Self::Default,
        Self::Debug,
        Self::Info,
        Self::Notice,
        Self::Warning,
        Self::Error,
        Self::Critical,
        Self::Alert,
        Self::Emergency,
    ];

    /// The name Cloud Logging shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Notice => "NOTICE",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
            Self::Alert => "ALERT",
            Self::Emergency => "EMERGENCY",
        }
    }

    /// Parses a severity as the logging agent does: case-insensitive, with
    /// the common abbreviations; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        Some(match upper.as_str() {
            "DEFAULT" => Self::Default,
            "DEBUG" | "TRACE" | "D" => Self::Debug,
            "INFO" | "I" => Self::Info,
            "NOTICE" | "N" => Self::Notice,
            "WARNING" | "WARN" | "W" => Self::Warning,
            "ERROR" | "ERR" | "E" => Self::Error,
            "CRITICAL" | "FATAL" | "C" => Self::Critical,
            "ALERT" | "A" => Self::Alert,
            "EMERGENCY" | "EMERG" => Self::Emergency,
            _ => return None,
        })
    }
}

/// `httpRequest`, lifted from the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpRequest {
    pub request_method: Option<String>,
    pub request_url: Option<String>,
    pub status: Option<i64>,
    pub response_size: Option<i64>,
    pub user_agent: Option<String>,
    pub remote_ip: Option<String>,
    /// As written, e.g. `"0.000403s"`.
    pub latency: Option<String>,
    pub protocol: Option<String>,
}

/// `logging.googleapis.com/sourceLocation` or Error Reporting's `reportLocation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: Option<u32>,
    pub function: Option<String>,
}

/// The Error Reporting part of an entry (`@type` ReportedErrorEvent, or an
/// `errorType` with a `context.reportLocation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorEvent {
    /// `errorType` (`handler_error`, `panic`, `downstream_failure`), or `unknown`.
    pub error_type: String,
    pub location: Option<SourceLocation>,
    /// `serviceContext.service` / `.version`.
    pub service: Option<String>,
    pub version: Option<String>,
    /// `context.httpRequest`, as Error Reporting shows it.
    pub http_request: Option<HttpRequest>,
}

/// One log entry as Cloud Logging would hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Arrival sequence number: stable, unique, used in links (`/logs?id=N`).
    pub id: u64,
    /// When the emulator received the line, nanoseconds since the epoch.
    pub received_nanos: i64,
    /// The entry's own `time` when it had one, as written.
    pub time: Option<String>,
    /// The entry's timestamp, nanoseconds since the epoch: its `time` when
    /// that is RFC 3339, else when it was received (as Cloud Logging does).
    pub timestamp_nanos: i64,
    pub severity: Severity,
    /// `message` of a JSON payload, or the whole text payload.
    pub message: String,
    /// True for a `textPayload` (a line that was not a JSON object).
    pub text_payload: bool,
    pub http_request: Option<HttpRequest>,
    /// Project and trace id of `logging.googleapis.com/trace`.
    pub trace: Option<(String, String)>,
    pub span_id: Option<String>,
    pub trace_sampled: bool,
    pub source_location: Option<SourceLocation>,
    pub error: Option<ErrorEvent>,
    /// The route template the service wrote (`route`), if any.
    pub route: Option<String>,
    /// The `jsonPayload` left after lifting the special fields.
    pub payload: Map<String, Value>,
    /// Bytes of the line as received, for the memory bound.
    pub size: usize,
}

/// Counters shown by `/api/status` and the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Entries currently held.
    pub entries_stored: u64,
    /// Lines received since start, including those later dropped.
    pub entries_received: u64,
    /// Entries evicted by the count or byte cap (oldest first).
    pub entries_dropped: u64,
    /// Lines over [`MAX_LINE_BYTES`], stored as a truncated text stub.
    pub lines_oversized: u64,
    /// Lines the embedded service's sink could not queue (store too slow).
    pub lines_lost: u64,
}

/// Cheap clonable handle to the log store.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    /// Outside the lock: counted by the logging thread, which must not wait.
    lost: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Inner {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    next_id: u64,
    entries: VecDeque<LogEntry>,
    stats: LogStats,
}

impl LogStore {
    /// An empty store keeping at most `max_entries` entries and about
    /// `max_bytes` bytes of lines.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max_entries,
                max_bytes,
                bytes: 0,
                next_id: 1,
                entries: VecDeque::new(),
                stats: LogStats::default(),
            })),
            lost: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation completes under the lock, so a poisoned lock still
        // guards consistent data; the console must keep working after a panic.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Parses and stores one line (without its newline); blank lines are skipped.
    pub fn ingest_line(&self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        let received = now_nanos();
        let (mut entry, oversized) = parse_line(line, received);
        let mut inner = self.lock();
        entry.id = inner.next_id;
        inner.next_id += 1;
        inner.stats.entries_received += 1;
        inner.stats.lines_oversized += u64::from(oversized);
        inner.bytes += entry.size;
        inner.entries.push_back(entry);
        inner.evict();
    }

    /// Stores each line of `text`; returns how many non-blank lines there were.
    pub fn ingest_text(&self, text: &str) -> usize {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for line in &lines {
            self.ingest_line(line);
        }
        lines.len()
    }

    /// Reads lines from `reader` until it ends (stdin with `--logs -`);
    /// a line that is not UTF-8 is stored with replacement characters.
    ///
    /// # Errors
    /// A read error of `reader`.
    pub fn ingest_reader(&self, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            // Reads at most a little more than the cap per line, so a
            // newline-free stream cannot grow the buffer without bound.
            let read = reader
                .by_ref()
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buffer)?;
            if read == 0 {
                return Ok(());
            }
            if buffer.last() != Some(&b'\n') && read > MAX_LINE_BYTES {
                skip_rest_of_line(&mut reader)?;
            }
            self.ingest_line(&String::from_utf8_lossy(&buffer));
        }
    }

    /// A handle for the embedded service's logging: lines are queued to a
    /// thread that parses them, so the service's writes never wait for the store.
    pub fn sink(&self) -> LogSink {
        let (tx, rx) = mpsc::sync_channel::<String>(SINK_CAPACITY);
        let store = self.clone();
        // Ends when the last sender (the subscriber's writer) is dropped.
        let spawned = std::thread::Builder::new()
            .name("emulator-log-ingest".into())
            .spawn(move || {
                for line in rx {
                    store.ingest_line(&line);
                }
            });
        LogSink {
            tx: spawned.ok().map(|_| tx),
            lost: Arc::clone(&self.lost),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> LogStats {
        let mut stats = self.lock().stats;
        stats.lines_lost = self.lost.load(Ordering::Relaxed);
        stats
    }

    /// Every stored entry, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.lock().entries.iter().cloned().collect()
    }

    /// The newest `limit` entries matching `keep`, newest timestamp first
    /// (lines from several processes arrive in batches, out of order).
    pub fn newest(&self, limit: usize, keep: impl Fn(&LogEntry) -> bool) -> Vec<LogEntry> {
        let inner = self.lock();
        let mut matching: Vec<&LogEntry> = inner.entries.iter().filter(|e| keep(e)).collect();
        matching.sort_by_key(|e| std::cmp::Reverse((e.timestamp_nanos, e.id)));
        matching.into_iter().take(limit).cloned().collect()
    }
}

impl Inner {
    fn evict(&mut self) {
        while self.entries.len() > self.max_entries
            || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.size;
            self.stats.entries_dropped += 1;
        }
        self.stats.entries_stored = self.entries.len() as u64;
    }
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// Where the embedded service's logging hands each line; cheap to call.
#[derive(Debug, Clone)]
pub struct LogSink {
    /// `None` when the ingest thread could not be started: lines are then lost (and counted).
    tx: Option<SyncSender<String>>,
    lost: Arc<AtomicU64>,
}

impl LogSink {
    /// Queues `line` for the store, or counts it lost when the queue is full.
    pub fn offer(&self, line: &[u8]) {
        let queued = self.tx.as_ref().is_some_and(|tx| {
            let line = String::from_utf8_lossy(line).into_owned();
            !matches!(
                tx.try_send(line),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            )
        });
        if !queued {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl crate::telemetry::logging::LineSink for LogSink {
    fn offer_line(&self, line: &[u8]) {
        self.offer(line);
    }
}

/// Parses one line as Cloud Logging would; the flag says it was over the size limit.
pub fn parse_line(line: &str, received_nanos: i64) -> (LogEntry, bool) {
    if line.len() > MAX_LINE_BYTES {
        let preview = truncate_at_char(line, OVERSIZED_PREVIEW_BYTES);
        let message = format!(
            "{preview}… [line of {} bytes over Cloud Logging's {} byte limit; truncated]",
            line.len(),
            MAX_LINE_BYTES
        );
        return (text_entry(message, received_nanos, line.len()), true);
    }
    let entry = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => json_entry(object, received_nanos, line.len()),
        _ => text_entry(line.to_owned(), received_nanos, line.len()),
    };
    (entry, false)
}

fn truncate_at_char(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn text_entry(message: String, received_nanos: i64, size: usize) -> LogEntry {
    LogEntry {
        id: 0,
        received_nanos,
        time: None,
        timestamp_nanos: received_nanos,
        severity: Severity::Default,
        message,
        text_payload: true,
        http_request: None,
        trace: None,
        span_id: None,
        trace_sampled: false,
        source_location: None,
        error: None,
        route: None,
        payload: Map::new(),
        size,
    }
}

/// Lifts the special fields out of `object`; what is left is the payload.
fn json_entry(mut object: Map<String, Value>, received_nanos: i64, size: usize) -> LogEntry {
    let severity = object
        .remove("severity")
        .and_then(|v| v.as_str().and_then(Severity::parse))
        .unwrap_or(Severity::Default);
    let time = ["time", "timestamp"]
        .iter()
        .find_map(|k| object.remove(*k).and_then(as_string));
    let timestamp_nanos = time
        .as_deref()
        .and_then(rfc3339_nanos)
        .unwrap_or(received_nanos);
    let http_request = object.remove("httpRequest").as_ref().and_then(http_request);
    let trace = object
        .remove(TRACE_FIELD)
        .and_then(as_string)
        .and_then(|t| parse_trace(&t));
    let span_id = object.remove(SPAN_FIELD).and_then(as_string);
    let trace_sampled = object.remove(SAMPLED_FIELD).and_then(|v| v.as_bool()) == Some(true);
    let source_location = object
        .remove(SOURCE_FIELD)
        .as_ref()
        .and_then(|v| source_location(v, "file", "line", "function"));
    object.remove(INSERT_ID_FIELD);
    object.remove(LABELS_FIELD);
    let message = object
        .get("message")
        .map(|m| as_string(m.clone()).unwrap_or_default())
        .unwrap_or_default();
    let route = object.get("route").cloned().and_then(as_string);
    let error = error_event(&object);
    LogEntry {
        id: 0,
        received_nanos,
        time,
        timestamp_nanos,
        severity,
        message,
        text_payload: false,
        http_request,
        trace,
        span_id,
        trace_sampled,
        source_location,
        error,
        route,
        payload: object,
        size,
    }
}

fn rfc3339_nanos(text: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos()).ok()
}

/// A string as is, any other scalar printed; `None` for null.
fn as_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A number, or a string holding one (Cloud Logging accepts both for sizes).
fn as_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

fn string_field(object: &Value, key: &str) -> Option<String> {
    object.get(key).cloned().and_then(as_string)
}

fn http_request(value: &Value) -> Option<HttpRequest> {
    value.as_object()?;
    Some(HttpRequest {
        request_method: string_field(value, "requestMethod"),
        request_url: string_field(value, "requestUrl"),
        status: value.get("status").and_then(as_i64),
        response_size: value.get("responseSize").and_then(as_i64),
        user_agent: string_field(value, "userAgent"),
        remote_ip: string_field(value, "remoteIp"),
        latency: string_field(value, "latency"),
        protocol: string_field(value, "protocol"),
    })
}

fn source_location(
    value: &Value,
    file: &str,
    line: &str,
    function: &str,
) -> Option<SourceLocation> {
    Some(SourceLocation {
        file: string_field(value, file)?,
        line: value
            .get(line)
            .and_then(as_i64)
            .and_then(|n| u32::try_from(n).ok()),
        function: string_field(value, function),
    })
}

/// `projects/P/traces/T` into `(P, t)`; a bare trace id gets project `""`.
fn parse_trace(text: &str) -> Option<(String, String)> {
    let (project, id) = match text.strip_prefix("projects/") {
        Some(rest) => {
            let (project, id) = rest.split_once("/traces/")?;
            (project.to_owned(), id)
        }
        None => (String::new(), text),
    };
    let id = id.trim().to_ascii_lowercase();
    let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some((project, id))
}

/// The Error Reporting fields, when the entry is an error event.
fn error_event(object: &Map<String, Value>) -> Option<ErrorEvent> {
    let typed = object.get("@type").and_then(Value::as_str) == Some(REPORTED_ERROR_EVENT);
    let context = object.get("context");
    let location = context
        .and_then(|c| c.get("reportLocation"))
        .and_then(|l| source_location(l, "filePath", "lineNumber", "functionName"));
    let error_type = object.get("errorType").cloned().and_then(as_string);
    if !typed && (error_type.is_none() || location.is_none()) {
        return None;
    }
    let service_context = object.get("serviceContext");
    Some(ErrorEvent {
        error_type: error_type.unwrap_or_else(|| "unknown".to_owned()),
        location,
        service: service_context.and_then(|s| string_field(s, "service")),
        version: service_context.and_then(|s| string_field(s, "version")),
        http_request: context
            .and_then(|c| c.get("httpRequest"))
            .and_then(http_request),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST_LINE: &str = r#"{"time":"2026-11-24T16:36:40.202009799Z","severity":"INFO","latencyMs":"0.403","message":"GET /api/books/3 200","route":"/api/books/{id}","httpRequest":{"latency":"0.000403s","protocol":"HTTP/1.1","remoteIp":"127.0.0.1","requestMethod":"GET","requestUrl":"/api/books/3","responseSize":119,"status":200,"userAgent":"Mozilla/5.0"},"logging.googleapis.com/trace":"projects/local/traces/4bf92f3577b34da6a3ce929d0e0e4736","logging.googleapis.com/spanId":"2f75984dfd66ce2f","logging.googleapis.com/trace_sampled":true,"logging.googleapis.com/sourceLocation":{"file":"src/telemetry/request_telemetry.rs","line":"164","function":"cloudrun_observability::telemetry::request_telemetry"}}"#;

    const ERROR_LINE: &str = r#"{"severity":"ERROR","message":"cannot parse record 7: invalid digit","@type":"type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent","errorType":"handler_error","serviceContext":{"service":"bookshop","version":"1.0"},"context":{"reportLocation":{"filePath":"src/app/faults.rs","lineNumber":42,"functionName":"faults::error"},"httpRequest":{"method":"GET","url":"/api/faults/error","responseStatusCode":500}}}"#;

    #[test]
    fn a_request_line_has_its_special_fields_lifted() {
        let (entry, oversized) = parse_line(REQUEST_LINE, 1);
        assert!(!oversized);
        assert_eq!(entry.severity, Severity::Info);
        assert_eq!(entry.message, "GET /api/books/3 200");
        let http = entry.http_request.unwrap();
        assert_eq!(http.status, Some(200));
        assert_eq!(http.latency.as_deref(), Some("0.000403s"));
        assert_eq!(
            entry.trace,
            Some(("local".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into()))
        );
        assert_eq!(entry.source_location.unwrap().line, Some(164));
        assert!(entry.trace_sampled);
        assert!(!entry.payload.contains_key("httpRequest"));
        assert!(entry.payload.contains_key("latencyMs"));
        assert_eq!(entry.route.as_deref(), Some("/api/books/{id}"));
        assert_eq!(entry.timestamp_nanos, 1_795_538_200_202_009_799);
    }

    #[test]
    fn an_error_reporting_line_has_its_type_and_location() {
        let (entry, _) = parse_line(ERROR_LINE, 1);
        let error = entry.error.unwrap();
        assert_eq!(error.error_type, "handler_error");
        let location = error.location.unwrap();
        assert_eq!(
            (location.file.as_str(), location.line),
            ("src/app/faults.rs", Some(42))
        );
        assert_eq!(error.service.as_deref(), Some("bookshop"));
    }

    #[test]
    fn a_line_that_is_not_a_json_object_is_a_text_payload() {
        for line in ["plain text", "[1,2]", "{\"unterminated\": ", "\"s\""] {
            let (entry, _) = parse_line(line, 1);
            assert!(entry.text_payload, "{line}");
            assert_eq!(entry.severity, Severity::Default);
            assert_eq!(entry.message, line);
        }
    }

    #[test]
    fn wrongly_typed_special_fields_do_not_fail_the_entry() {
        let line = r#"{"severity":5,"httpRequest":"x","logging.googleapis.com/trace":"nope","message":{"a":1}}"#;
        let (entry, _) = parse_line(line, 1);
        assert_eq!(entry.severity, Severity::Default);
        assert!(entry.http_request.is_none() && entry.trace.is_none());
        assert_eq!(entry.message, r#"{"a":1}"#);
    }

    #[test]
    fn an_oversized_line_is_cut_to_a_stub_and_counted() {
        let store = LogStore::new(10, usize::MAX);
        store.ingest_line(&"é".repeat(MAX_LINE_BYTES));
        let entry = &store.entries()[0];
        assert!(entry.message.len() < 2 * OVERSIZED_PREVIEW_BYTES);
        assert!(entry.message.contains("truncated"));
        assert_eq!(store.stats().lines_oversized, 1);
    }

    #[test]
    fn the_oldest_entries_go_first_beyond_the_count_cap() {
        let store = LogStore::new(3, usize::MAX);
        for n in 0..5 {
            store.ingest_line(&format!("line {n}"));
        }
        let stats = store.stats();
        assert_eq!((stats.entries_stored, stats.entries_dropped), (3, 2));
        assert_eq!(store.entries()[0].message, "line 2");
        assert_eq!(store.newest(1, |_| true)[0].id, 5);
    }

    #[test]
    fn the_byte_cap_bounds_memory_too() {
        let store = LogStore::new(1000, 100);
        for _ in 0..10 {
            store.ingest_line(&"x".repeat(40));
        }
        assert_eq!(store.stats().entries_stored, 2);
    }

    #[test]
    fn a_reader_without_newlines_is_read_in_bounded_pieces() {
        let store = LogStore::new(10, usize::MAX);
        let mut input = "y".repeat(MAX_LINE_BYTES + 10);
        input.push_str("\nnext\n");
        store.ingest_reader(input.as_bytes()).unwrap();
        let entries = store.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].message, "next");
    }

    #[test]
    fn the_sink_delivers_lines_through_its_thread() {
        let store = LogStore::new(10, usize::MAX);
        let sink = store.sink();
        sink.offer(REQUEST_LINE.as_bytes());
        for _ in 0..200 {
            if store.stats().entries_stored == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("the line never arrived");
    }
}
