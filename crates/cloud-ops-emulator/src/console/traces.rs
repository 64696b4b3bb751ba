//! `/traces`: the traces the emulator holds, newest first, as Cloud Trace's
//! list shows them; `/traces/{trace_id}`: one trace as a waterfall, with each
//! span's attributes, events and status.
//!
//! A trace's spans arrive from several processes in several batches (the
//! frontend's and the backend's exporters); they are joined into one tree by
//! their parent span ids, whoever sent them.
//!
//! A page reads the store for at most the console's page budget
//! ([`EmulatorConfig::console_page_budget`](crate::EmulatorConfig); 100 000
//! spans of many attributes take seconds to copy and group in a debug
//! build), in chunks so that writes go on beside it; past that it shows what
//! it read and says it was cut short, rather than keep a browser (and a
//! thread) for many seconds.
//!
//! Why one file: the trace list and the waterfall are built from the same
//! trace view (tree, processes, root); a sixth of it is tests.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gcloud_sdk::google::devtools::cloudtrace::v2::attribute_value;
use gcloud_sdk::google::devtools::cloudtrace::v2::span::{time_event, Attributes, SpanKind};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Section};
use crate::deadline::Deadline;
use crate::time::timestamp::to_nanos;
use crate::trace::store::StoredSpan;
use crate::EmulatorStore;

/// Traces listed on one page.
const LIST_LIMIT: usize = 200;
/// Spans of one trace shown on one page of its waterfall: a trace may hold
/// all of the store's spans.
const WATERFALL_SPANS: usize = 300;
/// What a page shows of a span's status message, which Google does not bound.
const STATUS_MESSAGE_BYTES: usize = 1024;

/// A span with the numbers the pages need, computed once.
#[derive(Debug, Clone)]
pub struct SpanView {
    pub stored: StoredSpan,
    pub name: String,
    pub start: i64,
    pub end: i64,
    pub failed: bool,
    /// The service that sent it (`service.name`), when the span says.
    pub service: Option<String>,
}

impl SpanView {
    fn new(stored: StoredSpan) -> Self {
        let span = &stored.span;
        let time = |t: &Option<prost_types::Timestamp>| {
            t.as_ref().and_then(|t| to_nanos(t).ok()).unwrap_or(0)
        };
        let start = time(&span.start_time);
        let end = time(&span.end_time).max(start);
        let name = span
            .display_name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_default();
        let failed = span.status.as_ref().is_some_and(|s| s.code != 0);
        let service = ["service.name", "g.co/r/generic_task/job", "faas.name"]
            .iter()
            .find_map(|key| attribute(span.attributes.as_ref(), key));
        Self {
            stored,
            name,
            start,
            end,
            failed,
            service,
        }
    }

    fn span_id(&self) -> &str {
        &self.stored.span.span_id
    }

    fn parent_id(&self) -> &str {
        &self.stored.span.parent_span_id
    }
}

/// One trace's spans and summary.
#[derive(Debug, Clone)]
pub struct TraceView {
    pub project: String,
    pub trace_id: String,
    pub spans: Vec<SpanView>,
    pub start: i64,
    pub end: i64,
}

impl TraceView {
    /// `None` for no spans.
    pub fn new(project: String, trace_id: String, spans: Vec<StoredSpan>) -> Option<Self> {
        let spans: Vec<SpanView> = spans.into_iter().map(SpanView::new).collect();
        let start = spans.iter().map(|s| s.start).min()?;
        let end = spans.iter().map(|s| s.end).max()?;
        Some(Self {
            project,
            trace_id,
            spans,
            start,
            end,
        })
    }

    /// The earliest span whose parent is not in the trace; when parents
    /// form a cycle and there is none, the earliest span.
    pub fn root(&self) -> Option<&SpanView> {
        let ids: HashSet<&str> = self.spans.iter().map(SpanView::span_id).collect();
        self.spans
            .iter()
            .filter(|s| s.parent_id().is_empty() || !ids.contains(s.parent_id()))
            .min_by_key(|s| s.start)
            .or_else(|| self.spans.iter().min_by_key(|s| s.start))
    }

    pub fn failed(&self) -> bool {
        self.spans.iter().any(|s| s.failed)
    }

    /// Distinct processes that sent spans.
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self.processes().into_values().collect();
        services.sort();
        services.dedup();
        services
    }

    /// The process of each span, by span id: its `service.name` when it has
    /// one; else a span with a remote (or missing) parent starts a process
    /// named by the address it served on (`/http/host` and `server.port`, or
    /// the URL its caller's client span called), and every other span
    /// belongs to its parent's process.
    pub fn processes(&self) -> HashMap<&str, String> {
        let by_id: HashMap<&str, &SpanView> = self.spans.iter().map(|s| (s.span_id(), s)).collect();
        let mut processes: HashMap<&str, String> = HashMap::new();
        for (_, span) in self.tree() {
            let remote = span.stored.span.same_process_as_parent_span == Some(false);
            let inherited = (!remote)
                .then(|| processes.get(span.parent_id()).cloned())
                .flatten();
            let label = span
                .service
                .clone()
                .or(inherited)
                .or_else(|| served_address(span, by_id.get(span.parent_id()).copied()))
                .unwrap_or_else(|| "unknown process".to_owned());
            processes.insert(span.span_id(), label);
        }
        processes
    }

    /// Spans depth first from the roots, each with its depth; children by start time.
    pub fn tree(&self) -> Vec<(usize, &SpanView)> {
        let ids: HashSet<&str> = self.spans.iter().map(SpanView::span_id).collect();
        let mut children: HashMap<&str, Vec<&SpanView>> = HashMap::new();
        let mut roots = Vec::new();
        for span in &self.spans {
            if span.parent_id().is_empty() || !ids.contains(span.parent_id()) {
                roots.push(span);
            } else {
                children.entry(span.parent_id()).or_default().push(span);
            }
        }
        roots.sort_by_key(|s| s.start);
        children
            .values_mut()
            .for_each(|c| c.sort_by_key(|s| s.start));
        let mut out = Vec::with_capacity(self.spans.len());
        let mut seen = HashSet::new();
        let mut stack: Vec<(usize, &SpanView)> = roots.into_iter().rev().map(|s| (0, s)).collect();
        loop {
            while let Some((depth, span)) = stack.pop() {
                // A span id repeated by a buggy client must not loop forever.
                if !seen.insert(span.span_id()) {
                    continue;
                }
                out.push((depth, span));
                if let Some(kids) = children.get(span.span_id()) {
                    stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
                }
            }
            // Spans whose parents form a cycle hang from no root: the
            // earliest of those left starts a tree of its own, so that no
            // span the emulator stored is missing from the page.
            match self
                .spans
                .iter()
                .filter(|s| !seen.contains(s.span_id()))
                .min_by_key(|s| s.start)
            {
                Some(orphan) => stack.push((0, orphan)),
                None => break,
            }
        }
        out
    }
}

/// The traces a page could read within its budget.
#[derive(Debug, Default)]
pub struct TraceList {
    /// Newest first.
    pub traces: Vec<TraceView>,
    /// The budget ran out: `traces` are those of the oldest spans only.
    pub cut_short: bool,
}

/// The traces of the spans read before `deadline`, newest first.
pub(crate) fn traces_within(store: &EmulatorStore, deadline: Deadline) -> TraceList {
    let mut groups: HashMap<(String, String), Vec<StoredSpan>> = HashMap::new();
    let read = store.traces.scan(
        deadline,
        |_| true,
        |span| {
            groups
                .entry((span.project.clone(), span.trace_id.clone()))
                .or_default()
                .push(span);
        },
    );
    let mut traces: Vec<TraceView> = groups
        .into_iter()
        .filter_map(|((project, id), spans)| TraceView::new(project, id, spans))
        .collect();
    traces.sort_by(|a, b| b.start.cmp(&a.start).then(a.trace_id.cmp(&b.trace_id)));
    TraceList {
        traces,
        cut_short: read.is_err(),
    }
}

/// `/traces?route=&status=&min_ms=`: Cloud Trace explorer's filters, on the
/// root span. `route` is the root's `http.route` (or its name), `status` an
/// HTTP status (`502`), a class (`5xx`) or `error` (a span failed),
/// `min_ms` the least duration.
#[derive(Debug, Default, Deserialize)]
pub struct TraceFilter {
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub min_ms: Option<String>,
    /// Which page of [`LIST_LIMIT`] traces, from 0.
    #[serde(default)]
    pub page: Option<usize>,
}

impl TraceFilter {
    fn min_nanos(&self) -> Option<i64> {
        let ms: f64 = self.min_ms.as_deref()?.trim().parse().ok()?;
        (ms.is_finite() && ms >= 0.0).then_some((ms * 1e6) as i64)
    }

    /// Whether `trace` passes every filter that is set.
    pub fn matches(&self, trace: &TraceView) -> bool {
        let root = trace.root();
        let attributes = root.and_then(|r| r.stored.span.attributes.as_ref());
        let route_ok = match self
            .route
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            None => true,
            Some(wanted) => {
                attribute(attributes, "/http/route")
                    .or_else(|| attribute(attributes, "http.route"))
                    .is_some_and(|route| route == wanted)
                    || root.is_some_and(|r| r.name.contains(wanted))
            }
        };
        let status_ok = match self
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => true,
            Some("error") => trace.failed(),
            Some(wanted) => attribute(attributes, "/http/status_code")
                .or_else(|| attribute(attributes, "http.response.status_code"))
                .is_some_and(|code| match wanted.strip_suffix("xx") {
                    Some(class) => code.starts_with(class) && code.len() == 3,
                    None => code == wanted,
                }),
        };
        let long_enough = self
            .min_nanos()
            .is_none_or(|least| trace.end - trace.start >= least);
        route_ok && status_ok && long_enough
    }
}

/// `GET /traces`.
pub async fn list_page(
    State(store): State<EmulatorStore>,
    Query(filter): Query<TraceFilter>,
) -> Markup {
    let budget = store.page_budget;
    let deadline = Deadline::after(budget);
    // Off the runtime's threads: a long read must not hold up other requests.
    let list = tokio::task::spawn_blocking(move || traces_within(&store, deadline))
        .await
        .unwrap_or_default();
    list_body(&list, &filter, budget)
}

fn list_body(list: &TraceList, filter: &TraceFilter, budget: Duration) -> Markup {
    let all = &list.traces;
    let total = all.len();
    let page = filter.page.unwrap_or(0);
    let traces: Vec<&TraceView> = all.iter().filter(|t| filter.matches(t)).collect();
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/traces" {
            label { "Route " input type="text" name="route" placeholder="/api/orders" value=(field(&filter.route)); }
            " "
            label { "Status " input type="text" name="status" size="6" placeholder="5xx, 502, error" value=(field(&filter.status)); }
            " "
            label { "Min latency (ms) " input type="text" name="min_ms" size="6" placeholder="500" value=(field(&filter.min_ms)); }
            " "
            button type="submit" { "Filter" }
            " " a href="/traces" { "clear" }
        }
        @if list.cut_short { (super::cut_short_note(budget)) }
        p.muted { (traces.len()) " of " (total) " traces, newest first" @if traces.len() > LIST_LIMIT { " (" (LIST_LIMIT) " a page, page " (page + 1) ")" } "." }
        @if traces.is_empty() {
            @if total == 0 {
                p { "No traces yet. Point a service at this emulator with CLOUD_OPS_EMULATOR_HOST." }
            } @else {
                p { "No trace matches these filters." }
            }
        } @else {
            table #trace-list {
                tr { th { "Start (UTC)" } th { "Root span" } th { "Duration" } th { "Spans" } th { "Processes" } th { "Status" } th { "Trace id" } }
                @for trace in traces.iter().skip(page.saturating_mul(LIST_LIMIT)).take(LIST_LIMIT) { (trace_row(trace)) }
            }
            (pager(&list_link(filter), page, traces.len().div_ceil(LIST_LIMIT)))
        }
    };
    layout::page(Section::Traces, "Traces", body)
}

fn trace_row(trace: &TraceView) -> Markup {
    let root = trace.root().map_or("(no root)", |r| r.name.as_str());
    let href = format!("/traces/{}", trace.trace_id);
    html! {
        tr.trace data-trace-id=(trace.trace_id) {
            td.mono { (layout::time(trace.start)) }
            td { a href=(href) { (root) } }
            td { (layout::duration(trace.end - trace.start)) }
            td.span-count { (trace.spans.len()) }
            td { (trace.services().join(", ")) }
            td { @if trace.failed() { span.err title="a span has an error status" { "⚠ error" } } @else { span.ok { "ok" } } }
            td.mono { a href=(href) { (trace.trace_id) } }
        }
    }
}

/// `/traces?...&page=` without its page number, the filter kept.
fn list_link(filter: &TraceFilter) -> String {
    let mut url = "/traces?".to_owned();
    for (key, value) in [
        ("route", &filter.route),
        ("status", &filter.status),
        ("min_ms", &filter.min_ms),
    ] {
        if let Some(value) = value {
            url.push_str(&format!("{key}={}&", super::url_encode(value)));
        }
    }
    url
}

/// Links to the previous and next of `pages` pages; `base` ends in `?` or `&`.
fn pager(base: &str, page: usize, pages: usize) -> Markup {
    html! {
        @if pages > 1 {
            p.pager {
                @if page > 0 { a href=(format!("{base}page={}", page - 1)) { "← previous" } " " }
                "page " (page + 1) " of " (pages)
                @if page + 1 < pages { " " a #next-page href=(format!("{base}page={}", page + 1)) { "next →" } }
            }
        }
    }
}

/// `?page=N` of a trace's waterfall.
#[derive(Debug, Default, Deserialize)]
pub struct WaterfallPage {
    #[serde(default)]
    pub page: Option<usize>,
}

/// `GET /traces/{trace_id}`.
pub async fn trace_page(
    State(store): State<EmulatorStore>,
    Path(trace_id): Path<String>,
    Query(WaterfallPage { page }): Query<WaterfallPage>,
) -> (StatusCode, Markup) {
    let wanted = trace_id.to_ascii_lowercase();
    let budget = store.page_budget;
    let deadline = Deadline::after(budget);
    let (spans, cut_short) = tokio::task::spawn_blocking(move || {
        let mut spans = Vec::new();
        let read = store
            .traces
            .scan(deadline, |s| s.trace_id == wanted, |span| spans.push(span));
        (spans, read.is_err())
    })
    .await
    .unwrap_or_default();
    let wanted = trace_id.to_ascii_lowercase();
    let project = spans.first().map(|s| s.project.clone()).unwrap_or_default();
    match TraceView::new(project, wanted, spans) {
        Some(trace) => (
            StatusCode::OK,
            waterfall_page(&trace, page.unwrap_or(0), cut_short.then_some(budget)),
        ),
        None => (
            StatusCode::NOT_FOUND,
            layout::page(
                Section::Traces,
                "Trace not found",
                html! {
                    p { "No spans of trace " code { (trace_id) } " are stored." }
                    @if cut_short { (super::cut_short_note(budget)) }
                },
            ),
        ),
    }
}

/// `cut_short`: the budget the read of the trace's spans ran out of.
fn waterfall_page(trace: &TraceView, page: usize, cut_short: Option<Duration>) -> Markup {
    let whole = trace.tree();
    let pages = whole.len().div_ceil(WATERFALL_SPANS);
    let tree: Vec<_> = whole
        .into_iter()
        .skip(page.saturating_mul(WATERFALL_SPANS))
        .take(WATERFALL_SPANS)
        .collect();
    let base = format!("/traces/{}?", trace.trace_id);
    let processes = trace.processes();
    let total = (trace.end - trace.start).max(1) as f64;
    let title = format!(
        "Trace {}",
        trace
            .root()
            .map_or(trace.trace_id.as_str(), |r| r.name.as_str())
    );
    let body = html! {
        p {
            code { (trace.trace_id) } " · project " (trace.project) " · "
            (layout::duration(trace.end - trace.start)) " · " (trace.spans.len()) " spans · processes: "
            (trace.services().join(", ")) " · "
            a href=(format!("/logs?trace={}", trace.trace_id)) { "log entries of this trace" }
        }
        @if let Some(budget) = cut_short { (super::cut_short_note(budget)) }
        table.wf #waterfall {
            tr { th { "Span" } th { "Process" } th { "Kind" } th { "Duration" } th.bar-cell { "Timeline" } }
            @for (depth, span) in &tree {
                tr.span data-span-id=(span.span_id()) data-depth=(depth) {
                    td style=(format!("padding-left:{}px", 8 + depth * 18)) {
                        @if *depth > 0 { span.muted { "└ " } }
                        a href=(format!("#span-{}", span.span_id())) { (span.name) }
                        @if span.failed { " " span.err { "⚠" } }
                    }
                    td.process {
                        (processes.get(span.span_id()).map_or("", String::as_str))
                        @if span.stored.span.same_process_as_parent_span == Some(false) { " " span.muted title="the parent span is in another process" { "⇠ remote parent" } }
                    }
                    td.muted { (kind_name(span.stored.span.span_kind)) }
                    td { (layout::duration(span.end - span.start)) }
                    td.bar-cell {
                        div class=(if span.failed { "bar error" } else { "bar" })
                            style=(format!("left:{:.2}%;width:{:.2}%",
                                (span.start - trace.start) as f64 / total * 100.0,
                                (span.end - span.start) as f64 / total * 100.0)) {}
                    }
                }
            }
        }
        (pager(&base, page, pages))
        h2 { "Spans" }
        @for (_, span) in &tree { (span_details(span, trace.start)) }
        (pager(&base, page, pages))
    };
    layout::page(Section::Traces, &title, body)
}

fn span_details(span: &SpanView, trace_start: i64) -> Markup {
    let s = &span.stored.span;
    let mut attributes: Vec<(String, String)> = s
        .attributes
        .as_ref()
        .map(|a| {
            a.attribute_map
                .iter()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect()
        })
        .unwrap_or_default();
    attributes.sort();
    let events = s
        .time_events
        .as_ref()
        .map(|e| e.time_event.as_slice())
        .unwrap_or_default();
    html! {
        div.chart.span-detail id=(format!("span-{}", s.span_id)) style="margin-bottom:10px" {
            b { (span.name) } " "
            span.muted { code { (s.span_id) } @if !s.parent_span_id.is_empty() { " parent " code { (s.parent_span_id) } } }
            " · starts at +" (layout::duration(span.start - trace_start)) ", " (layout::duration(span.end - span.start))
            div.status {
                "Status: "
                @match &s.status {
                    Some(status) if status.code != 0 => span.err { "code " (status.code) ": " (crate::grpc::clip_to(&status.message, STATUS_MESSAGE_BYTES)) },
                    _ => span.ok { "OK" },
                }
            }
            @if !attributes.is_empty() {
                dl.kv.attributes {
                    @for (k, v) in &attributes { dt.mono { (k) } dd.mono { (v) } }
                }
            }
            @for event in events { (event_line(event, trace_start)) }
        }
    }
}

fn event_line(
    event: &gcloud_sdk::google::devtools::cloudtrace::v2::span::TimeEvent,
    trace_start: i64,
) -> Markup {
    let at = event
        .time
        .as_ref()
        .and_then(|t| to_nanos(t).ok())
        .unwrap_or(trace_start);
    html! {
        div.event {
            "Event at +" (layout::duration(at - trace_start)) ": "
            @match &event.value {
                Some(time_event::Value::Annotation(a)) => {
                    b { (a.description.as_ref().map(|d| d.value.as_str()).unwrap_or("")) }
                    @if let Some(attrs) = &a.attributes {
                        @for (k, v) in sorted(attrs) { " " code { (k) "=" (v) } }
                    }
                },
                Some(time_event::Value::MessageEvent(m)) => { "message " (m.id) " (" (m.uncompressed_size_bytes) " B)" },
                None => {},
            }
        }
    }
}

fn sorted(attributes: &Attributes) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = attributes
        .attribute_map
        .iter()
        .map(|(k, v)| (k.clone(), value_text(v)))
        .collect();
    pairs.sort();
    pairs
}

/// The address a span with a remote parent served on: the authority of the
/// URL its caller's client span called (`127.0.0.1:8081`), else its own
/// `/http/host` (and `server.port` when recorded).
fn served_address(span: &SpanView, parent: Option<&SpanView>) -> Option<String> {
    let called = parent
        .and_then(|p| {
            let attributes = p.stored.span.attributes.as_ref();
            // Cloud Trace v2's key, then OpenTelemetry's (spans sent as OTLP).
            attribute(attributes, "/http/url").or_else(|| attribute(attributes, "url.full"))
        })
        .map(|url| {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_owned()
        });
    let attributes = span.stored.span.attributes.as_ref();
    called.or_else(|| {
        let host = attribute(attributes, "/http/host")
            .or_else(|| attribute(attributes, "server.address"))?;
        Some(match attribute(attributes, "server.port") {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    })
}

fn attribute(attributes: Option<&Attributes>, key: &str) -> Option<String> {
    attributes?.attribute_map.get(key).map(value_text)
}

fn value_text(value: &gcloud_sdk::google::devtools::cloudtrace::v2::AttributeValue) -> String {
    match &value.value {
        Some(attribute_value::Value::StringValue(s)) => s.value.clone(),
        Some(attribute_value::Value::IntValue(i)) => i.to_string(),
        Some(attribute_value::Value::BoolValue(b)) => b.to_string(),
        None => String::new(),
    }
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::devtools::cloudtrace::v2::{Span, TruncatableString};

    fn span(id: &str, parent: &str, start: i64, end: i64) -> StoredSpan {
        StoredSpan {
            project: "p".into(),
            trace_id: "t".into(),
            span: Span {
                span_id: id.into(),
                parent_span_id: parent.into(),
                display_name: Some(TruncatableString {
                    value: format!("span {id}"),
                    truncated_byte_count: 0,
                }),
                start_time: Some(prost_types::Timestamp {
                    seconds: start,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: end,
                    nanos: 0,
                }),
                ..Span::default()
            },
        }
    }

    #[test]
    fn spans_from_two_batches_form_one_tree() {
        let trace = TraceView::new(
            "p".into(),
            "t".into(),
            vec![
                span("c", "b", 3, 4),
                span("a", "", 1, 9),
                span("b", "a", 2, 5),
                span("d", "a", 6, 7),
            ],
        )
        .unwrap();
        let order: Vec<(usize, &str)> = trace
            .tree()
            .iter()
            .map(|(d, s)| (*d, s.span_id()))
            .collect();
        assert_eq!(order, vec![(0, "a"), (1, "b"), (2, "c"), (1, "d")]);
        assert_eq!(trace.root().unwrap().span_id(), "a");
        assert_eq!(trace.end - trace.start, 8_000_000_000);
    }

    #[test]
    fn a_page_past_its_budget_says_it_was_cut_short() {
        let store = EmulatorStore::new(&crate::EmulatorConfig::default());
        store.traces.insert_batch(vec![span("a", "", 1, 2)], 0, 0);
        let whole = traces_within(&store, Deadline::NONE);
        assert!(!whole.cut_short);
        assert_eq!(whole.traces.len(), 1);
        let late = traces_within(&store, Deadline::after(Duration::ZERO));
        assert!(late.cut_short && late.traces.is_empty());
        let page = list_body(&late, &TraceFilter::default(), Duration::from_secs(2)).into_string();
        assert!(page.contains("id=\"cut-short\""), "{page}");
        let page = list_body(&whole, &TraceFilter::default(), Duration::from_secs(2)).into_string();
        assert!(!page.contains("cut-short"), "{page}");
    }

    #[test]
    fn a_parent_cycle_does_not_loop() {
        let trace = TraceView::new(
            "p".into(),
            "t".into(),
            vec![span("a", "b", 1, 2), span("b", "a", 1, 2)],
        )
        .unwrap();
        let tree: Vec<&str> = trace.tree().iter().map(|(_, s)| s.span_id()).collect();
        assert_eq!(tree.len(), 2, "every span shows: {tree:?}");
        assert!(
            trace.root().is_some(),
            "a trace of only a cycle still has a root"
        );
    }

    #[test]
    fn the_list_filters_by_route_status_and_latency_of_the_root() {
        let with = |route: &str, status: &str, start: i64, end: i64| {
            let mut root = span("r", "", start, end);
            root.span.attributes = Some(Attributes::default());
            if let Some(attrs) = root.span.attributes.as_mut() {
                for (key, value) in [("/http/route", route), ("/http/status_code", status)] {
                    attrs.attribute_map.insert(
                        key.to_owned(),
                        gcloud_sdk::google::devtools::cloudtrace::v2::AttributeValue {
                            value: Some(attribute_value::Value::StringValue(
                                gcloud_sdk::google::devtools::cloudtrace::v2::TruncatableString {
                                    value: value.to_owned(),
                                    truncated_byte_count: 0,
                                },
                            )),
                        },
                    );
                }
            }
            TraceView::new("p".into(), "t".into(), vec![root]).unwrap()
        };
        // Times in seconds: a 2 s failed order and an instant read.
        let slow_failure = with("/api/orders", "502", 0, 2);
        let quick_read = with("/api/books/{id}", "200", 0, 0);
        let filter = |route: &str, status: &str, min_ms: &str| TraceFilter {
            route: Some(route.into()),
            status: Some(status.into()),
            min_ms: Some(min_ms.into()),
            page: None,
        };
        assert!(filter("/api/orders", "5xx", "500").matches(&slow_failure));
        assert!(filter("", "502", "").matches(&slow_failure));
        assert!(!filter("/api/orders", "", "").matches(&quick_read));
        assert!(!filter("", "5xx", "").matches(&quick_read));
        assert!(!filter("", "", "500").matches(&quick_read));
        assert!(filter("/api/books/{id}", "2xx", "0").matches(&quick_read));
        assert!(TraceFilter::default().matches(&quick_read));
    }
}
