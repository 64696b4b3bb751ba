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
//! bounded twice: by entry count and by the entries' estimated size in
//! memory ([`footprint`](crate::logging::footprint)), not their lines'; the
//! oldest entries go first and are counted.
//!
//! Stdout lines do not say which service wrote them: Cloud Run attaches the
//! monitored resource (`cloud_run_revision` with the service, revision and
//! location) itself. A store is therefore configured with a [`LogSource`]
//! that plays that part, so log-based metrics and filters such as
//! `resource.labels.service_name="..."` see what they would see on Cloud Run.
//! [`LogEntry::to_cloud_logging_json`] gives an entry in Cloud Logging's
//! LogEntry shape, the one the Logging query language evaluates, and
//! [`LogStore::entries_after`] lets a consumer read each entry once.
//!
//! Why one file: parsing a line into an entry, bounding the store by entries
//! and bytes, and reading it with a cursor share the entry type and its size
//! accounting.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::deadline::{CutShort, Deadline, DeadlineExceeded};
use crate::logging::footprint;
use crate::time::timestamp::{from_nanos, now_nanos, rfc3339};

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

/// The monitored resource type Cloud Run attaches to its services' log entries.
pub const CLOUD_RUN_REVISION: &str = "cloud_run_revision";

/// The Cloud Run service, revision and place whose container wrote the
/// lines: what Cloud Run puts in each entry's `resource` (a `cloud_run_revision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSource {
    pub project_id: String,
    pub service_name: String,
    pub revision_name: String,
    pub configuration_name: String,
    pub location: String,
}

impl Default for LogSource {
    /// A local run: the service's default name, nothing deployed.
    fn default() -> Self {
        Self::local("cloudrun-observability")
    }
}

impl LogSource {
    /// `service_name` running locally: project, revision and location `local`,
    /// configuration named after the service (as Cloud Run names it).
    pub fn local(service_name: &str) -> Self {
        Self {
            project_id: "local".into(),
            service_name: service_name.into(),
            revision_name: "local".into(),
            configuration_name: service_name.into(),
            location: "local".into(),
        }
    }

    /// The `cloud_run_revision` resource of every entry from this source.
    pub fn resource(&self) -> LogResource {
        let labels = [
            ("project_id", &self.project_id),
            ("service_name", &self.service_name),
            ("revision_name", &self.revision_name),
            ("configuration_name", &self.configuration_name),
            ("location", &self.location),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.clone()))
        .collect();
        LogResource {
            resource_type: CLOUD_RUN_REVISION.into(),
            labels,
        }
    }
}

/// A LogEntry's `resource`: a monitored resource type and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LogResource {
    pub resource_type: String,
    pub labels: BTreeMap<String, String>,
}

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
    /// `logging.googleapis.com/labels`: the entry's user labels.
    pub labels: BTreeMap<String, String>,
    /// `logging.googleapis.com/insertId`, when the line set one.
    pub insert_id: Option<String>,
    /// What Cloud Run attaches: the store's [`LogSource`] as a `cloud_run_revision`.
    pub resource: LogResource,
    /// Estimated bytes the entry takes in memory, for the byte cap; the
    /// store sets it when the entry comes in.
    pub size: usize,
    /// The log's name within the project (URL-encoded) when not Cloud
    /// Run's stdout: OTLP records name theirs (`otel` by default).
    pub log_name: Option<String>,
    /// For entries written through OTLP: the record's resource and scope,
    /// the `otel` field the Telemetry API adds to each entry.
    pub otel: Option<Value>,
}

impl LogEntry {
    /// The entry as Cloud Logging's LogEntry JSON (the REST shape, which
    /// the Logging query language and [`crate::logging::query::LogFilter`]
    /// evaluate): `logName`, `resource`, `timestamp`, `severity`,
    /// `jsonPayload` or `textPayload`, `httpRequest` with its camelCase
    /// fields, `trace` as `projects/P/traces/T`, `spanId`, `labels`,
    /// `sourceLocation`. As in the REST API, int64 fields (`responseSize`,
    /// `sourceLocation.line`) are strings.
    pub fn to_cloud_logging_json(&self) -> Value {
        let project = self
            .resource
            .labels
            .get("project_id")
            .cloned()
            .unwrap_or_default();
        let mut entry = Map::new();
        let mut put = |key: &str, value: Value| {
            entry.insert(key.to_owned(), value);
        };
        // Cloud Run files container stdout under this log.
        let log = self
            .log_name
            .as_deref()
            .unwrap_or("run.googleapis.com%2Fstdout");
        put(
            "logName",
            Value::from(format!("projects/{project}/logs/{log}")),
        );
        put("resource", self.resource_json());
        put("timestamp", Value::from(nanos_text(self.timestamp_nanos)));
        put(
            "receiveTimestamp",
            Value::from(nanos_text(self.received_nanos)),
        );
        put("severity", Value::from(self.severity.as_str()));
        put(
            "insertId",
            Value::from(
                self.insert_id
                    .clone()
                    .unwrap_or_else(|| format!("{:016x}", self.id)),
            ),
        );
        if self.text_payload {
            put("textPayload", Value::from(self.message.clone()));
        } else {
            put("jsonPayload", Value::Object(self.payload.clone()));
        }
        if let Some(http) = &self.http_request {
            put("httpRequest", http.to_cloud_logging_json());
        }
        if !self.labels.is_empty() {
            put("labels", string_map(&self.labels));
        }
        if let Some((trace_project, trace_id)) = &self.trace {
            // A bare trace id is taken to belong to the entry's own project.
            let trace_project = if trace_project.is_empty() {
                &project
            } else {
                trace_project
            };
            put(
                "trace",
                Value::from(format!("projects/{trace_project}/traces/{trace_id}")),
            );
        }
        if let Some(span_id) = &self.span_id {
            put("spanId", Value::from(span_id.clone()));
        }
        if self.trace_sampled {
            put("traceSampled", Value::Bool(true));
        }
        if let Some(location) = &self.source_location {
            put("sourceLocation", location.to_cloud_logging_json());
        }
        if let Some(otel) = &self.otel {
            put("otel", otel.clone());
        }
        Value::Object(entry)
    }

    fn resource_json(&self) -> Value {
        let mut resource = Map::new();
        resource.insert(
            "type".into(),
            Value::from(self.resource.resource_type.clone()),
        );
        resource.insert("labels".into(), string_map(&self.resource.labels));
        Value::Object(resource)
    }
}

impl HttpRequest {
    /// `httpRequest` as Cloud Logging's REST API shows it.
    fn to_cloud_logging_json(&self) -> Value {
        let mut http = Map::new();
        let strings = [
            ("requestMethod", &self.request_method),
            ("requestUrl", &self.request_url),
            ("userAgent", &self.user_agent),
            ("remoteIp", &self.remote_ip),
            ("latency", &self.latency),
            ("protocol", &self.protocol),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                http.insert(key.to_owned(), Value::from(value.clone()));
            }
        }
        if let Some(status) = self.status {
            http.insert("status".into(), Value::from(status));
        }
        if let Some(size) = self.response_size {
            http.insert("responseSize".into(), Value::from(size.to_string()));
        }
        Value::Object(http)
    }
}

impl SourceLocation {
    /// `sourceLocation` as Cloud Logging's REST API shows it.
    fn to_cloud_logging_json(&self) -> Value {
        let mut location = Map::new();
        location.insert("file".into(), Value::from(self.file.clone()));
        if let Some(line) = self.line {
            location.insert("line".into(), Value::from(line.to_string()));
        }
        if let Some(function) = &self.function {
            location.insert("function".into(), Value::from(function.clone()));
        }
        Value::Object(location)
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect(),
    )
}

fn nanos_text(nanos: i64) -> String {
    rfc3339(&from_nanos(nanos))
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
    /// Estimated bytes of the entries held.
    pub bytes_stored: u64,
    /// Lines over [`MAX_LINE_BYTES`], stored as a truncated text stub.
    pub lines_oversized: u64,
    /// Lines the embedded service's sink could not queue (store too slow).
    pub lines_lost: u64,
}

/// Cheap clonable handle to the log store.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    /// Given to every entry; one store holds the lines of one service. It
    /// never changes, so it is read without the lock.
    resource: Arc<LogResource>,
    /// Outside the lock: counted by the logging thread, which must not wait.
    lost: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Inner {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    next_id: u64,
    /// Shared with reads, which take a chunk of them under the lock and
    /// look at them without it.
    entries: VecDeque<Arc<LogEntry>>,
    stats: LogStats,
}

/// Entries a read takes per turn of the lock: copying this many pointers
/// keeps a writer waiting microseconds, not the length of the read.
const READ_CHUNK: usize = 1024;

impl LogStore {
    /// An empty store keeping at most `max_entries` entries taking about
    /// `max_bytes` bytes of memory, from the default (local) [`LogSource`].
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self::with_source(max_entries, max_bytes, LogSource::default())
    }

    /// [`LogStore::new`] for lines written by `source`'s container.
    pub fn with_source(max_entries: usize, max_bytes: usize, source: LogSource) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max_entries,
                max_bytes,
                bytes: 0,
                next_id: 1,
                entries: VecDeque::new(),
                stats: LogStats::default(),
            })),
            resource: Arc::new(source.resource()),
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
        self.ingest_line_from(line, None);
    }

    /// [`LogStore::ingest_line`] for a line written by another service than
    /// the store's own source (`POST /api/logs?service=NAME`).
    pub fn ingest_line_from(&self, line: &str, source: Option<&LogSource>) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        let received = now_nanos();
        // Parsed and measured before the lock: writers and readers wait for
        // the insertion only.
        let (mut entry, oversized) = parse_line(line, received);
        entry.resource = source.map_or_else(|| (*self.resource).clone(), LogSource::resource);
        entry.size = footprint::entry_bytes(&entry);
        let mut inner = self.lock();
        inner.stats.lines_oversized += u64::from(oversized);
        inner.push(entry);
        inner.evict();
    }

    /// Stores entries made elsewhere (OTLP log records), in order, each
    /// with its own resource; their ids are given here.
    pub fn insert_entries(&self, mut entries: Vec<LogEntry>) {
        for entry in &mut entries {
            entry.size = footprint::entry_bytes(entry);
        }
        let mut inner = self.lock();
        for entry in entries {
            inner.push(entry);
        }
        inner.evict();
    }

    /// Stores each line of `text`; returns how many non-blank lines there were.
    pub fn ingest_text(&self, text: &str) -> usize {
        self.ingest_text_from(text, None)
    }

    /// [`LogStore::ingest_text`] for lines of another service, see
    /// [`LogStore::ingest_line_from`].
    pub fn ingest_text_from(&self, text: &str, source: Option<&LogSource>) -> usize {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for line in &lines {
            self.ingest_line_from(line, source);
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

    /// Every stored entry, oldest first. The lock is held to copy
    /// pointers; the entries are copied after it is let go.
    pub fn entries(&self) -> Vec<LogEntry> {
        let shared: Vec<Arc<LogEntry>> = self.lock().entries.iter().cloned().collect();
        shared.iter().map(|e| (**e).clone()).collect()
    }

    /// The entries with an id above `id`, oldest first: a cursor for
    /// consumers that must see each entry once (log-based metrics). Start
    /// with 0 and pass the last id returned.
    ///
    /// Ids are given in arrival order without gaps and eviction removes the
    /// oldest first, so entries evicted before they were read show as a gap
    /// at the front: the first id returned is then above `id + 1`, and the
    /// difference is how many were lost to the consumer. They are not
    /// returned later.
    pub fn entries_after(&self, id: u64) -> Vec<LogEntry> {
        let shared: Vec<Arc<LogEntry>> = {
            let inner = self.lock();
            // Ids increase along the queue, so the first newer one is found by bisection.
            let start = inner.entries.partition_point(|entry| entry.id <= id);
            inner.entries.range(start..).cloned().collect()
        };
        shared.iter().map(|e| (**e).clone()).collect()
    }

    /// The newest `limit` entries matching `keep`, newest timestamp first
    /// (lines from several processes arrive in batches, out of order).
    pub fn newest(&self, limit: usize, keep: impl Fn(&LogEntry) -> bool) -> Vec<LogEntry> {
        match self.newest_by(limit, keep, Deadline::NONE) {
            Ok(entries) | Err(CutShort(entries)) => entries,
        }
    }

    /// [`newest`](Self::newest) that stops looking when `deadline` passes.
    /// It looks from the latest arrival back, so what it found by then is
    /// the newest part of the store.
    ///
    /// # Errors
    /// [`CutShort`] with the entries found among those looked at, when the
    /// deadline passed first.
    pub fn newest_by(
        &self,
        limit: usize,
        keep: impl Fn(&LogEntry) -> bool,
        deadline: Deadline,
    ) -> Result<Vec<LogEntry>, CutShort<Vec<LogEntry>>> {
        let mut matching: Vec<Arc<LogEntry>> = Vec::new();
        let finished = self.scan_newest_first(deadline, |entry| {
            if keep(entry) {
                matching.push(Arc::clone(entry));
            }
        });
        matching.sort_by_key(|e| std::cmp::Reverse((e.timestamp_nanos, e.id)));
        let found: Vec<LogEntry> = matching
            .into_iter()
            .take(limit)
            .map(|e| (*e).clone())
            .collect();
        match finished {
            Ok(()) => Ok(found),
            Err(DeadlineExceeded) => Err(CutShort(found)),
        }
    }

    /// Visits the entries from the latest arrival back until `deadline`
    /// passes, without holding the store's lock while `visit` runs: for
    /// readers that summarise the whole store (the console's error groups
    /// and counters).
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when the deadline passed before the oldest entry
    /// was visited.
    pub fn visit_newest_first(
        &self,
        deadline: Deadline,
        mut visit: impl FnMut(&LogEntry),
    ) -> Result<(), DeadlineExceeded> {
        self.scan_newest_first(deadline, |entry| visit(entry))
    }

    /// Visits the entries from the latest arrival back, [`READ_CHUNK`] of
    /// them per turn of the lock, with `visit` (which may be slow: a text
    /// search) run without it. An entry written during the scan is not
    /// seen; one evicted during it may still be.
    fn scan_newest_first(
        &self,
        deadline: Deadline,
        mut visit: impl FnMut(&Arc<LogEntry>),
    ) -> Result<(), DeadlineExceeded> {
        // Ids only grow, so "below the last id seen" resumes where the
        // previous chunk ended whatever was written or evicted meanwhile.
        let mut below = u64::MAX;
        let mut chunk: Vec<Arc<LogEntry>> = Vec::with_capacity(READ_CHUNK);
        loop {
            deadline.check()?;
            chunk.clear();
            {
                let inner = self.lock();
                let end = inner.entries.partition_point(|entry| entry.id < below);
                let start = end.saturating_sub(READ_CHUNK);
                chunk.extend(inner.entries.range(start..end).rev().cloned());
            }
            let Some(last) = chunk.last() else {
                return Ok(());
            };
            below = last.id;
            chunk.iter().for_each(&mut visit);
        }
    }
}

impl Inner {
    /// Numbers `entry` and appends it; [`evict`](Self::evict) follows.
    fn push(&mut self, mut entry: LogEntry) {
        entry.id = self.next_id;
        self.next_id += 1;
        self.stats.entries_received += 1;
        self.bytes += entry.size;
        self.entries.push_back(Arc::new(entry));
    }

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
        self.stats.bytes_stored = self.bytes as u64;
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
        labels: BTreeMap::new(),
        insert_id: None,
        resource: LogSource::default().resource(),
        size,
        log_name: None,
        otel: None,
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
    let insert_id = object.remove(INSERT_ID_FIELD).and_then(as_string);
    let labels = object
        .remove(LABELS_FIELD)
        .as_ref()
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), as_string(v.clone())?)))
                .collect()
        })
        .unwrap_or_default();
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
        labels,
        insert_id,
        resource: LogSource::default().resource(),
        size,
        log_name: None,
        otel: None,
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

pub(crate) fn http_request(value: &Value) -> Option<HttpRequest> {
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
        let one = {
            let store = LogStore::new(1000, usize::MAX);
            store.ingest_line(&"x".repeat(40));
            store.stats().bytes_stored
        };
        let store = LogStore::new(1000, 2 * one as usize);
        for _ in 0..10 {
            store.ingest_line(&"x".repeat(40));
        }
        assert_eq!(store.stats().entries_stored, 2);
    }

    #[test]
    fn the_byte_cap_counts_parsed_json_not_line_bytes() {
        // 1 MiB of lines whose parsed JSON is sixteen times larger.
        let cap = 1024 * 1024;
        let store = LogStore::new(100_000, cap);
        let line = format!("{{\"a\":[{}0]}}", "0,".repeat(5_000));
        for _ in 0..(cap / line.len()) {
            store.ingest_line(&line);
        }
        let stats = store.stats();
        assert!(stats.bytes_stored <= cap as u64, "{stats:?}");
        assert!(stats.entries_stored < 20, "{stats:?}");
        let held: usize = store.entries().iter().map(|e| e.size).sum();
        assert_eq!(held as u64, stats.bytes_stored);
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

    fn frontend_store(max_entries: usize) -> LogStore {
        LogStore::with_source(
            max_entries,
            usize::MAX,
            LogSource::local("cloudrun-obs-frontend"),
        )
    }

    #[test]
    fn an_entry_as_cloud_logging_json_has_the_logentry_shape() {
        let store = frontend_store(10);
        store.ingest_line(REQUEST_LINE);
        store.ingest_line("plain text");
        let entries = store.entries();
        let json = entries[0].to_cloud_logging_json();
        assert_eq!(json["resource"]["type"], "cloud_run_revision");
        assert_eq!(
            json["resource"]["labels"]["service_name"],
            "cloudrun-obs-frontend"
        );
        assert_eq!(json["resource"]["labels"]["revision_name"], "local");
        assert_eq!(json["severity"], "INFO");
        assert_eq!(json["timestamp"], "2026-11-24T16:36:40.202009799Z");
        assert_eq!(json["httpRequest"]["status"], 200);
        assert_eq!(json["httpRequest"]["requestMethod"], "GET");
        assert_eq!(json["httpRequest"]["responseSize"], "119");
        assert_eq!(json["httpRequest"]["latency"], "0.000403s");
        assert_eq!(
            json["trace"],
            "projects/local/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(json["spanId"], "2f75984dfd66ce2f");
        assert_eq!(json["traceSampled"], true);
        assert_eq!(json["sourceLocation"]["line"], "164");
        assert_eq!(json["jsonPayload"]["latencyMs"], "0.403");
        assert_eq!(json["jsonPayload"]["route"], "/api/books/{id}");
        assert!(json["jsonPayload"].get("httpRequest").is_none());
        assert!(json.get("textPayload").is_none());
        let text = entries[1].to_cloud_logging_json();
        assert_eq!(text["textPayload"], "plain text");
        assert_eq!(text["severity"], "DEFAULT");
        assert!(text.get("jsonPayload").is_none());
    }

    #[test]
    fn user_labels_and_insert_ids_are_kept() {
        let (entry, _) = parse_line(
            r#"{"message":"m","logging.googleapis.com/labels":{"tenant":"a","n":3},"logging.googleapis.com/insertId":"x1"}"#,
            1,
        );
        let json = entry.to_cloud_logging_json();
        assert_eq!(json["labels"]["tenant"], "a");
        assert_eq!(json["labels"]["n"], "3");
        assert_eq!(json["insertId"], "x1");
        assert!(json["jsonPayload"]
            .get("logging.googleapis.com/labels")
            .is_none());
    }

    #[test]
    fn the_terraform_log_filters_match_the_services_real_lines() {
        use crate::logging::query::LogFilter;
        let run_logs = r#"resource.type="cloud_run_revision" AND resource.labels.service_name=("cloudrun-obs-frontend" OR "cloudrun-obs-backend")"#;
        let errors = LogFilter::parse(&format!("{run_logs} AND severity>=ERROR")).unwrap();
        let payments = LogFilter::parse(&format!(
            r#"{run_logs} AND severity>=ERROR AND jsonPayload.dependency="payments""#
        ))
        .unwrap();
        let latency =
            LogFilter::parse(&format!("{run_logs} AND jsonPayload.latencyMs>=0")).unwrap();
        let payment_line = r#"{"severity":"ERROR","dependency":"payments","errorType":"downstream_failure","message":"could not charge the payment"}"#;
        let store = frontend_store(10);
        for line in [REQUEST_LINE, ERROR_LINE, payment_line] {
            store.ingest_line(line);
        }
        let json: Vec<Value> = store
            .entries()
            .iter()
            .map(LogEntry::to_cloud_logging_json)
            .collect();
        let matching = |filter: &LogFilter| -> Vec<bool> {
            json.iter().map(|entry| filter.matches(entry)).collect()
        };
        assert_eq!(matching(&errors), [false, true, true]);
        assert_eq!(matching(&payments), [false, false, true]);
        assert_eq!(matching(&latency), [true, false, false]);
        // Lines of another service are not these services' logs.
        let other = LogStore::new(10, usize::MAX);
        other.ingest_line(ERROR_LINE);
        assert!(!errors.matches(&other.entries()[0].to_cloud_logging_json()));
    }

    #[test]
    fn entries_after_is_a_cursor_and_shows_evicted_entries_as_a_gap() {
        let store = frontend_store(3);
        assert!(store.entries_after(0).is_empty());
        for n in 1..=2 {
            store.ingest_line(&format!("line {n}"));
        }
        let first = store.entries_after(0);
        assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        assert!(store.entries_after(2).is_empty());
        for n in 3..=7 {
            store.ingest_line(&format!("line {n}"));
        }
        // 3 and 4 were evicted unread: the next id after the cursor is 5.
        let next = store.entries_after(2);
        assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), [5, 6, 7]);
        assert_eq!(next[0].message, "line 5");
        assert_eq!(store.entries_after(6).len(), 1);
        assert!(store.entries_after(u64::MAX).is_empty());
    }
}
