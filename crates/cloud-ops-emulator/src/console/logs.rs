//! `/logs`: the service's log entries as Cloud Logging's Logs Explorer would
//! show them, newest first, filtered by minimum severity and by text; and
//! `POST /api/logs`, which takes newline-delimited log lines (what a
//! container writes to stdout) from a standalone service.

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Section};
use crate::deadline::{CutShort, Deadline};
use crate::logging::store::{HttpRequest, LogEntry, LogSource, Severity};
use crate::EmulatorStore;

/// The largest `POST /api/logs` body; a bigger one is answered 413.
pub const MAX_INGEST_BYTES: usize = 4 * 1024 * 1024;
/// Entries shown on one page: enough to read, small enough to stay fast.
const PAGE_ENTRIES: usize = 100;
/// What a page shows of one entry's message and payload; the entry's own
/// page (`?id=N`) shows it whole. Lines may be 256 KiB and their payload
/// pretty-printed several times that: 300 of them made a 235 MB page.
const PREVIEW_BYTES: usize = 4 * 1024;

/// The console's request body limit (only `POST /api/logs` takes a body).
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_INGEST_BYTES)
}

/// `/logs` query: `?severity=ERROR&q=text`, `?trace=ID`, `?id=N`.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Minimum severity, as in Cloud Logging's `severity>=`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Case-insensitive text anywhere in the entry.
    #[serde(default)]
    pub q: Option<String>,
    /// Only the entries of one trace.
    #[serde(default)]
    pub trace: Option<String>,
    /// Only one entry (links from the error groups).
    #[serde(default)]
    pub id: Option<u64>,
    /// Which page of [`PAGE_ENTRIES`] entries, from 0 (the newest).
    #[serde(default)]
    pub page: Option<usize>,
}

/// What the query asks for, checked.
struct LogFilter {
    min_severity: Option<Severity>,
    text: Option<String>,
    trace: Option<String>,
    id: Option<u64>,
}

impl LogFilter {
    fn from_query(query: &LogQuery) -> Self {
        let non_empty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            min_severity: query.severity.as_deref().and_then(Severity::parse),
            text: non_empty(&query.q).map(|q| q.to_lowercase()),
            trace: non_empty(&query.trace).map(|t| t.to_ascii_lowercase()),
            id: query.id,
        }
    }

    fn matches(&self, entry: &LogEntry) -> bool {
        self.id.is_none_or(|id| entry.id == id)
            && self.min_severity.is_none_or(|min| entry.severity >= min)
            && self
                .trace
                .as_deref()
                .is_none_or(|t| entry.trace.as_ref().is_some_and(|(_, id)| id == t))
            && self.text.as_deref().is_none_or(|q| contains_text(entry, q))
    }
}

/// Whether `q` (lowercase) appears anywhere in the entry, as Logs
/// Explorer's plain-text search looks in every field.
fn contains_text(entry: &LogEntry, q: &str) -> bool {
    let found = |s: &str| s.to_lowercase().contains(q);
    found(&entry.message)
        || entry.trace.as_ref().is_some_and(|(_, t)| found(t))
        || entry
            .http_request
            .as_ref()
            .and_then(|h| serde_json::to_string(h).ok())
            .is_some_and(|h| found(&h))
        || found(&serde_json::Value::Object(entry.payload.clone()).to_string())
}

/// `GET /logs`.
pub async fn page(State(store): State<EmulatorStore>, Query(query): Query<LogQuery>) -> Markup {
    let body = super::within_budget(store, move |store, deadline| {
        render(store, &query, deadline)
    })
    .await;
    layout::page(Section::Logs, "Logs", body)
}

/// The page's body: the entries matching `query` that the store's reader
/// found before `deadline`, newest first.
fn render(store: &EmulatorStore, query: &LogQuery, deadline: Deadline) -> Markup {
    let filter = LogFilter::from_query(query);
    let page = query.page.unwrap_or(0);
    let skip = page.saturating_mul(PAGE_ENTRIES);
    // One more than a page says whether there is a next one.
    let (mut entries, cut_short) = match store.logs.newest_by(
        skip.saturating_add(PAGE_ENTRIES + 1),
        |e| filter.matches(e),
        deadline,
    ) {
        Ok(entries) => (entries, false),
        Err(CutShort(entries)) => (entries, true),
    };
    let entries: Vec<LogEntry> = entries.drain(skip.min(entries.len())..).collect();
    let more = entries.len() > PAGE_ENTRIES;
    let entries = &entries[..entries.len().min(PAGE_ENTRIES)];
    // A single entry is shown whole; a list shows previews.
    let preview = if filter.id.is_some() {
        usize::MAX
    } else {
        PREVIEW_BYTES
    };
    let stats = store.logs.stats();
    html! {
        (filter_form(query))
        @if cut_short { (super::cut_short_note(store.page_budget)) }
        p.muted {
            "Showing " (entries.len()) " entries, newest first (page " (page + 1) ", " (PAGE_ENTRIES) " a page). "
            (stats.entries_stored) " stored, " (stats.entries_dropped) " dropped by the cap, "
            (stats.lines_lost) " lost. "
            "Send lines with " code { "POST /api/logs" } " or " code { "serve | cloudrun-observability emulator --logs -" } "."
        }
        @if entries.is_empty() {
            p #no-entries { "No log entries match." }
        } @else {
            table #log-entries {
                tr { th { "Time (UTC)" } th { "Severity" } th { "Entry" } }
                @for entry in entries { (entry_row(entry, preview)) }
            }
        }
        (pager(query, page, more))
    }
}

/// Links to the newer and older pages, keeping the filter.
fn pager(query: &LogQuery, page: usize, more: bool) -> Markup {
    let link = |page: usize| {
        let mut url = format!("/logs?page={page}");
        for (key, value) in [
            ("severity", &query.severity),
            ("q", &query.q),
            ("trace", &query.trace),
        ] {
            if let Some(value) = value {
                url.push_str(&format!("&{key}={}", super::url_encode(value)));
            }
        }
        url
    };
    html! {
        p.pager {
            @if page > 0 { a href=(link(page - 1)) { "← newer" } " " }
            @if more { a #older href=(link(page + 1)) { "older →" } }
        }
    }
}

fn filter_form(query: &LogQuery) -> Markup {
    let selected = query.severity.as_deref().and_then(Severity::parse);
    html! {
        form.filters method="get" action="/logs" {
            label { "Severity ≥ "
                select name="severity" {
                    option value="" { "any" }
                    @for s in Severity::ALL {
                        option value=(s.as_str()) selected[selected == Some(s)] { (s.as_str()) }
                    }
                }
            }
            input type="search" name="q" placeholder="text" value=(query.q.as_deref().unwrap_or(""));
            @if let Some(trace) = &query.trace { input type="hidden" name="trace" value=(trace); }
            button type="submit" { "Filter" }
            a href="/logs" { "clear" }
        }
    }
}

fn entry_row(entry: &LogEntry, preview: usize) -> Markup {
    html! {
        tr.entry id=(format!("e{}", entry.id)) data-severity=(entry.severity.as_str()) {
            td.mono {
                (layout::time(entry.timestamp_nanos))
            }
            td { (layout::severity(entry.severity)) }
            td {
                (summary(entry))
                @if let Some(error) = &entry.error { (error_box(error)) }
                (links(entry))
                (details(entry, preview))
            }
        }
    }
}

/// The request line readably, else the message's first line.
fn summary(entry: &LogEntry) -> Markup {
    let first_line = clip(
        entry.message.lines().next().unwrap_or_default(),
        PREVIEW_BYTES,
    );
    html! {
        @if let Some(http) = &entry.http_request {
            div.http { (http_request(http)) }
        } @else {
            div.message { (first_line) }
        }
    }
}

/// `GET /api/books/3 → 200 · 119 B · 0.4 ms · Mozilla/5.0 · 127.0.0.1 · HTTP/1.1`.
pub fn http_request(http: &HttpRequest) -> Markup {
    let status_class = match http.status {
        Some(s) if s >= 500 => "err",
        Some(s) if s >= 400 => "sev-WARNING",
        _ => "ok",
    };
    html! {
        span.mono {
            b { (http.request_method.as_deref().unwrap_or("?")) } " "
            (http.request_url.as_deref().unwrap_or("?"))
        }
        " → " span class=(status_class) { (http.status.map_or("?".to_owned(), |s| s.to_string())) }
        @if let Some(size) = http.response_size { " · " (size) " B" }
        @if let Some(latency) = &http.latency { " · " (readable_latency(latency)) }
        @if let Some(ua) = &http.user_agent { " · " span.muted { (ua) } }
        @if let Some(ip) = &http.remote_ip { " · " (ip) }
        @if let Some(protocol) = &http.protocol { " · " span.muted { (protocol) } }
    }
}

/// `"0.000403s"` as `403 µs`; anything else as written.
fn readable_latency(latency: &str) -> String {
    latency
        .strip_suffix('s')
        .and_then(|s| s.parse::<f64>().ok())
        .map_or_else(|| latency.to_owned(), layout::seconds)
}

fn error_box(error: &crate::logging::store::ErrorEvent) -> Markup {
    html! {
        div.errbox {
            span.err { "Error Reporting: " (error.error_type) }
            @if let Some(location) = &error.location {
                " at " code { (location.file) ":" (location.line.unwrap_or(0)) }
                @if let Some(function) = &location.function { " in " code { (function) } }
            }
            @if let Some(service) = &error.service {
                " · service " (service) @if let Some(v) = &error.version { " " (v) }
            }
        }
    }
}

fn links(entry: &LogEntry) -> Markup {
    html! {
        @if let Some((_, trace_id)) = &entry.trace {
            div.muted {
                "trace " a.trace-link href=(format!("/traces/{trace_id}")) { code { (trace_id) } }
                @if let Some(span) = &entry.span_id { " span " code { (span) } }
                @if entry.trace_sampled { " (sampled)" }
                " · " a href=(format!("/logs?trace={trace_id}")) { "all entries of this trace" }
            }
        }
    }
}

/// `text` cut to `limit` bytes on a character boundary, saying how much was cut.
fn clip(text: &str, limit: usize) -> String {
    crate::grpc::clip_to(text, limit)
}

fn details(entry: &LogEntry, preview: usize) -> Markup {
    let payload = clip(
        &serde_json::to_string_pretty(&entry.payload).unwrap_or_default(),
        preview,
    );
    let message = clip(&entry.message, preview);
    html! {
        details {
            summary { "details" }
            dl.kv {
                dt { "entry" } dd { "#" (entry.id) " · " a href=(format!("/logs?id={}", entry.id)) { "permalink" } }
                @if let Some(time) = &entry.time { dt { "time" } dd.mono { (time) } }
                @if let Some(source) = &entry.source_location {
                    dt { "sourceLocation" }
                    dd.mono { (source.file) ":" (source.line.unwrap_or(0)) " " (source.function.as_deref().unwrap_or("")) }
                }
                @if let Some(route) = &entry.route { dt { "route" } dd.mono { (route) } }
            }
            @if entry.text_payload {
                div.muted { "textPayload" }
                pre { (message) }
            } @else {
                div.muted { "jsonPayload" }
                pre { (payload) }
            }
        }
    }
}

/// Which service posted the lines: `?service=NAME` (their
/// `resource.labels.service_name`); without it, the emulator's own source.
#[derive(Debug, Deserialize)]
pub struct IngestOrigin {
    service: Option<String>,
}

/// `POST /api/logs`: each line of the body is one stdout line of a service.
pub async fn ingest(
    State(store): State<EmulatorStore>,
    Query(origin): Query<IngestOrigin>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refused) = crate::guard::refuse_simple_post(&headers) {
        return refused;
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let message = format!(
                "log lines rejected: {}; send at most {MAX_INGEST_BYTES} bytes per request",
                rejection.body_text()
            );
            return (rejection.status(), message).into_response();
        }
    };
    let source = origin.service.as_deref().map(LogSource::local);
    // Parsing megabytes of lines is CPU work: off the async workers, so
    // that gRPC ingest and the pages keep answering meanwhile.
    let logs = store.logs.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        logs.ingest_text_from(&String::from_utf8_lossy(&body), source.as_ref())
    })
    .await;
    let Ok(accepted) = parsed else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "log lines could not be parsed",
        )
            .into_response();
    };
    (
        StatusCode::OK,
        Json(serde_json::json!({ "accepted": accepted })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::store::parse_line;

    fn entry(line: &str) -> LogEntry {
        parse_line(line, 0).0
    }

    #[test]
    fn the_severity_filter_keeps_that_severity_and_above() {
        let filter = LogFilter::from_query(&LogQuery {
            severity: Some("warning".into()),
            ..LogQuery::default()
        });
        assert!(filter.matches(&entry(r#"{"severity":"ERROR","message":"x"}"#)));
        assert!(!filter.matches(&entry(r#"{"severity":"INFO","message":"x"}"#)));
    }

    #[test]
    fn the_text_filter_is_case_insensitive_and_looks_in_the_payload() {
        let filter = LogFilter::from_query(&LogQuery {
            q: Some("Corrupt".into()),
            ..LogQuery::default()
        });
        assert!(filter.matches(&entry(r#"{"message":"x","cause":"a corrupt record"}"#)));
        assert!(!filter.matches(&entry(r#"{"message":"fine"}"#)));
    }

    #[test]
    fn user_input_in_an_entry_is_escaped() {
        let html = entry_row(
            &entry(r#"{"message":"<img src=x onerror=alert(1)>"}"#),
            PREVIEW_BYTES,
        )
        .into_string();
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;img"));
    }

    #[test]
    fn latencies_read_in_the_right_unit() {
        assert_eq!(readable_latency("0.000403s"), "403 µs");
        assert_eq!(readable_latency("odd"), "odd");
    }
}
