//! `/metrics?window=15m`: the service's custom metrics charted the way Cloud
//! Monitoring's dashboards would: request rate, 5xx share, response time
//! p50/p95/p99, active sessions, per route.
//!
//! Every number comes from the emulator's own `ListTimeSeries` aggregation
//! ([`aggregation`](crate::monitoring::aggregation)): deltas of the cumulative
//! request-duration distributions per alignment period, summed or merged
//! across series, percentiles interpolated within buckets. The console only
//! picks aligners and reducers and turns the result into lines.
//!
//! Why one file: every chart of the page is one aggregation query over the
//! same window and alignment; a fifth of it is tests of those rates.

use std::cell::Cell;
use std::collections::BTreeMap;

use axum::extract::{Query, State};
use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};
use gcloud_sdk::google::monitoring::v3::{typed_value, TimeSeries, TypedValue};
use maud::{html, Markup};
use serde::Deserialize;

use super::chart::{Chart, Line};
use super::layout::{self, Section};
use crate::deadline::{CutShort, Deadline};
use crate::monitoring::aggregation::{read_by, AggregationError, GroupField, Spec};
use crate::monitoring::filter;
use crate::time::timestamp::{now_nanos, to_nanos, NANOS_PER_SECOND};
use crate::EmulatorStore;

/// The metric types the service writes.
pub const REQUEST_DURATION: &str = "workload.googleapis.com/http.server.request.duration";
pub const APP_ERRORS: &str = "workload.googleapis.com/app.errors";
pub const SESSIONS: &str = "workload.googleapis.com/app.sessions.active";
pub const ORDERS: &str = "workload.googleapis.com/app.orders";

const ROUTE: &str = "http_route";
const STATUS: &str = "http_response_status_code";

/// The same metrics written through OTLP (Google's Telemetry API writes
/// them as `prometheus.googleapis.com/NAME/KIND`, label keys as the
/// attributes are named): the page reads these when the workload types
/// have no series.
const OTLP_TYPES: [(&str, &str); 4] = [
    (
        REQUEST_DURATION,
        "prometheus.googleapis.com/http.server.request.duration/histogram",
    ),
    (APP_ERRORS, "prometheus.googleapis.com/app.errors/counter"),
    (
        SESSIONS,
        "prometheus.googleapis.com/app.sessions.active/gauge",
    ),
    (ORDERS, "prometheus.googleapis.com/app.orders/counter"),
];
const OTLP_LABELS: [(&str, &str); 3] = [
    (ROUTE, "http.route"),
    (STATUS, "http.response.status_code"),
    ("error_type", "error.type"),
];

fn to_otlp_label(key: &str) -> &str {
    OTLP_LABELS
        .iter()
        .find(|(workload, _)| *workload == key)
        .map_or(key, |(_, otlp)| otlp)
}

fn from_otlp_label(key: String) -> String {
    OTLP_LABELS
        .iter()
        .find(|(_, otlp)| *otlp == key)
        .map_or(key, |(workload, _)| (*workload).to_owned())
}

/// The windows offered, with the alignment period used for each (about 30 points a line).
pub const WINDOWS: [(&str, i64, i64); 5] = [
    ("5m", 5 * 60, 10),
    ("15m", 15 * 60, 30),
    ("1h", 3600, 120),
    ("6h", 6 * 3600, 600),
    ("1d", 86_400, 3600),
];
const DEFAULT_WINDOW: usize = 1;
/// Projects and routes listed on the page: clients choose how many there are.
const LISTED: usize = 100;

/// `/metrics` query.
#[derive(Debug, Default, Deserialize)]
pub struct MetricsQuery {
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

/// The time range and alignment of one page.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub name: &'static str,
    pub start: i64,
    pub end: i64,
    pub period: i64,
}

impl Window {
    /// The window named `name` (default 15m) ending at `now`.
    pub fn ending_at(name: Option<&str>, now: i64) -> Self {
        let (name, length, period) = WINDOWS
            .iter()
            .find(|(n, _, _)| Some(*n) == name)
            .copied()
            .unwrap_or(WINDOWS[DEFAULT_WINDOW]);
        Self {
            name,
            start: now - length * NANOS_PER_SECOND,
            end: now,
            period: period * NANOS_PER_SECOND,
        }
    }

    fn period_seconds(&self) -> f64 {
        self.period as f64 / NANOS_PER_SECOND as f64
    }

    /// The same window, its alignment period raised to a whole number of
    /// `sampling` intervals. Cloud Monitoring's charts never align a metric
    /// more finely than it is sampled (their "minimum interval"): a 10 s
    /// period over points written every 60 s would put a minute's requests
    /// into one 10 s bucket, six times the real rate, and leave the next
    /// five empty.
    fn aligned_to(self, sampling: Option<i64>) -> Self {
        match sampling {
            Some(interval) if interval > 0 && self.period % interval != 0 => Self {
                period: (self.period + interval - 1) / interval * interval,
                ..self
            },
            _ => self,
        }
    }
}

/// Requests and 5xx responses of one route over the whole window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteSummary {
    pub requests: i64,
    pub server_errors: i64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// Everything the page shows, computed from the store.
#[derive(Debug, Clone)]
pub struct MetricsView {
    pub window: Window,
    pub request_rate: Vec<Line>,
    pub error_share: Vec<Line>,
    pub latency: Vec<Line>,
    pub sessions: Vec<Line>,
    pub errors: Vec<Line>,
    pub orders: Vec<Line>,
    pub routes: BTreeMap<String, RouteSummary>,
    /// A read stopped at the page's deadline: the charts show part of the data.
    pub cut_short: bool,
}

/// Computes the view of `project` over `window`.
pub fn view(store: &EmulatorStore, project: &str, window: Window) -> MetricsView {
    view_by(store, project, window, Deadline::NONE)
}

/// [`view`] whose reads stop when `deadline` passes; the charts they were
/// for are then empty, and the view says it was cut short.
pub fn view_by(
    store: &EmulatorStore,
    project: &str,
    window: Window,
    deadline: Deadline,
) -> MetricsView {
    let mut query = Query_ {
        store,
        project,
        window,
        deadline,
        cut_short: Cell::new(false),
    };
    let window = window.aligned_to(query.sampling_interval(REQUEST_DURATION));
    query.window = window;
    let counts = query.run(
        REQUEST_DURATION,
        Aligner::AlignDelta,
        Reducer::ReduceSum,
        &[ROUTE, STATUS],
        window.period,
    );
    let (request_rate, error_share) = rates(&counts, window);
    let mut latency = Vec::new();
    for (name, reducer) in percentiles() {
        let series = query.run(
            REQUEST_DURATION,
            Aligner::AlignDelta,
            reducer,
            &[],
            window.period,
        );
        latency.extend(lines(&series, None).into_iter().map(|l| Line {
            name: name.into(),
            ..l
        }));
    }
    MetricsView {
        window,
        request_rate,
        error_share,
        latency,
        sessions: lines(
            &query.run(
                SESSIONS,
                Aligner::AlignMean,
                Reducer::ReduceSum,
                &[],
                window.period,
            ),
            None,
        )
        .into_iter()
        .map(|l| Line {
            name: "active sessions".into(),
            ..l
        })
        .collect(),
        errors: per_minute(lines(
            &query.run(
                APP_ERRORS,
                Aligner::AlignRate,
                Reducer::ReduceSum,
                &["error_type"],
                window.period,
            ),
            Some("error_type"),
        )),
        orders: per_minute(lines(
            &query.run(
                ORDERS,
                Aligner::AlignRate,
                Reducer::ReduceSum,
                &["outcome"],
                window.period,
            ),
            Some("outcome"),
        )),
        routes: route_summaries(&query),
        cut_short: query.cut_short.get(),
    }
}

fn percentiles() -> [(&'static str, Reducer); 3] {
    [
        ("p50", Reducer::ReducePercentile50),
        ("p95", Reducer::ReducePercentile95),
        ("p99", Reducer::ReducePercentile99),
    ]
}

/// One project's series over one window (named with a trailing `_`
/// so as not to shadow axum's `Query`).
struct Query_<'a> {
    store: &'a EmulatorStore,
    project: &'a str,
    window: Window,
    deadline: Deadline,
    /// Set when a read stopped at the deadline.
    cut_short: Cell<bool>,
}

impl Query_<'_> {
    /// How often `metric_type` is written: the median time between two
    /// points of a series in the window, rounded to the second (exports
    /// drift by milliseconds); `None` with fewer than two points.
    fn sampling_interval(&self, metric_type: &str) -> Option<i64> {
        let mut series = self.list(metric_type, None);
        // Sent as OTLP, the same metric is stored under its own type; the
        // charts read that one then, and so must their alignment.
        if let (true, Some((_, otlp_type))) = (
            series.is_empty(),
            OTLP_TYPES.iter().find(|(t, _)| *t == metric_type),
        ) {
            series = self.list(otlp_type, None);
        }
        let mut gaps: Vec<i64> = series
            .iter()
            .flat_map(|ts| {
                let mut ends: Vec<i64> = ts
                    .points
                    .iter()
                    .filter_map(|p| end_of(p.interval.as_ref()?))
                    .collect();
                ends.sort_unstable();
                ends.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
            })
            .filter(|gap| *gap > 0)
            .collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2];
        let seconds = (median + NANOS_PER_SECOND / 2) / NANOS_PER_SECOND;
        Some(seconds.max(1) * NANOS_PER_SECOND)
    }

    /// `ListTimeSeries` with this aggregation; nothing when the metric is
    /// absent or the aggregation does not apply to it.
    fn run(
        &self,
        metric_type: &str,
        aligner: Aligner,
        reducer: Reducer,
        group_by: &[&str],
        period: i64,
    ) -> Vec<TimeSeries> {
        let series = self.read(metric_type, aligner, reducer, group_by, period);
        let otlp_type = OTLP_TYPES.iter().find(|(t, _)| *t == metric_type);
        let Some((_, otlp_type)) = otlp_type.filter(|_| series.is_empty()) else {
            return series;
        };
        let otlp_keys: Vec<&str> = group_by.iter().map(|k| to_otlp_label(k)).collect();
        let mut series = self.read(otlp_type, aligner, reducer, &otlp_keys, period);
        for metric in series.iter_mut().filter_map(|ts| ts.metric.as_mut()) {
            metric.labels = std::mem::take(&mut metric.labels)
                .into_iter()
                .map(|(k, v)| (from_otlp_label(k), v))
                .collect();
        }
        series
    }

    /// `ListTimeSeries` of exactly `metric_type`.
    fn read(
        &self,
        metric_type: &str,
        aligner: Aligner,
        reducer: Reducer,
        group_by: &[&str],
        period: i64,
    ) -> Vec<TimeSeries> {
        let spec = Spec {
            period,
            aligner,
            reducer,
            group_by: group_by
                .iter()
                .map(|k| GroupField::MetricLabel((*k).to_owned()))
                .collect(),
        };
        self.list(metric_type, Some(&spec))
    }

    /// `ListTimeSeries` of exactly `metric_type` over the window, raw or
    /// aggregated by `spec`; nothing when it cannot be read.
    fn list(&self, metric_type: &str, spec: Option<&Spec>) -> Vec<TimeSeries> {
        let Ok(filter) = filter::parse(&format!("metric.type = \"{metric_type}\"")) else {
            return Vec::new();
        };
        let window = (self.window.start, self.window.end);
        match read_by(
            &self.store.metrics,
            self.project,
            &filter,
            window,
            spec,
            self.deadline,
        ) {
            Ok(series) => series,
            Err(AggregationError::Deadline(_)) => {
                self.cut_short.set(true);
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// The points of each series as `(end time, value)`, oldest first, one line
/// per value of `label` (or one line when `None`).
fn lines(series: &[TimeSeries], label: Option<&str>) -> Vec<Line> {
    series
        .iter()
        .map(|ts| {
            let name = label
                .and_then(|l| ts.metric.as_ref()?.labels.get(l).cloned())
                .unwrap_or_else(|| "all".to_owned());
            let mut points: Vec<(i64, f64)> = ts
                .points
                .iter()
                .filter_map(|p| Some((end_of(p.interval.as_ref()?)?, number(p.value.as_ref()?)?)))
                .collect();
            points.sort_by_key(|p| p.0);
            Line { name, points }
        })
        .collect()
}

fn end_of(interval: &gcloud_sdk::google::monitoring::v3::TimeInterval) -> Option<i64> {
    to_nanos(interval.end_time.as_ref()?).ok()
}

fn number(value: &TypedValue) -> Option<f64> {
    match value.value.as_ref()? {
        typed_value::Value::Int64Value(i) => Some(*i as f64),
        typed_value::Value::DoubleValue(d) => Some(*d),
        typed_value::Value::DistributionValue(d) => Some(d.count as f64),
        _ => None,
    }
}

fn per_minute(lines: Vec<Line>) -> Vec<Line> {
    lines
        .into_iter()
        .map(|l| Line {
            points: l.points.into_iter().map(|(t, v)| (t, v * 60.0)).collect(),
            ..l
        })
        .collect()
}

/// Requests per second and percentage of 5xx, one line per route, from the
/// request counts grouped by route and status.
fn rates(counts: &[TimeSeries], window: Window) -> (Vec<Line>, Vec<Line>) {
    let mut by_route: BTreeMap<String, BTreeMap<i64, (f64, f64)>> = BTreeMap::new();
    for ts in counts {
        let labels = ts.metric.as_ref().map(|m| &m.labels);
        let route = labels
            .and_then(|l| l.get(ROUTE))
            .cloned()
            .unwrap_or_else(|| "(no route)".into());
        let server_error = is_server_error(labels.and_then(|l| l.get(STATUS)));
        for line in lines(std::slice::from_ref(ts), None) {
            for (t, count) in line.points {
                let slot = by_route
                    .entry(route.clone())
                    .or_default()
                    .entry(t)
                    .or_default();
                slot.0 += count;
                if server_error {
                    slot.1 += count;
                }
            }
        }
    }
    let period = window.period_seconds();
    let rate = by_route
        .iter()
        .map(|(route, points)| Line {
            name: route.clone(),
            points: points.iter().map(|(t, (n, _))| (*t, n / period)).collect(),
        })
        .collect();
    let share = by_route
        .iter()
        .map(|(route, points)| Line {
            name: route.clone(),
            points: points
                .iter()
                .filter(|(_, (n, _))| *n > 0.0)
                .map(|(t, (n, e))| (*t, e / n * 100.0))
                .collect(),
        })
        .collect();
    (rate, share)
}

fn is_server_error(status: Option<&String>) -> bool {
    status
        .and_then(|s| s.parse::<u16>().ok())
        .is_some_and(|s| s >= 500)
}

/// Per route over the whole window: one alignment period as long as the window.
fn route_summaries(query: &Query_<'_>) -> BTreeMap<String, RouteSummary> {
    let whole = query.window.end - query.window.start;
    let mut routes: BTreeMap<String, RouteSummary> = BTreeMap::new();
    for ts in query.run(
        REQUEST_DURATION,
        Aligner::AlignDelta,
        Reducer::ReduceSum,
        &[ROUTE, STATUS],
        whole,
    ) {
        let labels = ts.metric.as_ref().map(|m| &m.labels);
        let route = labels
            .and_then(|l| l.get(ROUTE))
            .cloned()
            .unwrap_or_else(|| "(no route)".into());
        let count: f64 = ts
            .points
            .iter()
            .filter_map(|p| number(p.value.as_ref()?))
            .sum();
        let summary = routes.entry(route).or_default();
        summary.requests += count as i64;
        if is_server_error(labels.and_then(|l| l.get(STATUS))) {
            summary.server_errors += count as i64;
        }
    }
    for (name, reducer) in percentiles() {
        for line in lines(
            &query.run(
                REQUEST_DURATION,
                Aligner::AlignDelta,
                reducer,
                &[ROUTE],
                whole,
            ),
            Some(ROUTE),
        ) {
            let value = line.points.last().map(|p| p.1);
            let summary = routes.entry(line.name).or_default();
            match name {
                "p50" => summary.p50 = value,
                "p95" => summary.p95 = value,
                _ => summary.p99 = value,
            }
        }
    }
    routes
}

/// `GET /metrics`.
pub async fn page(State(store): State<EmulatorStore>, Query(query): Query<MetricsQuery>) -> Markup {
    let body = super::within_budget(store, move |store, deadline| {
        render(store, &query, deadline)
    })
    .await;
    layout::page(Section::Metrics, "Metrics", body)
}

/// The page's body: the charts of the chosen project over the chosen
/// window, from what the reads found before `deadline`.
fn render(store: &EmulatorStore, query: &MetricsQuery, deadline: Deadline) -> Markup {
    let (projects, projects_cut) = match store.metrics.projects_by(deadline) {
        Ok(projects) => (projects, false),
        Err(CutShort(projects)) => (projects, true),
    };
    let project = query
        .project
        .clone()
        .filter(|p| projects.contains(p))
        .or_else(|| projects.first().cloned())
        .unwrap_or_else(|| "local".to_owned());
    let view = view_by(
        store,
        &project,
        Window::ending_at(query.window.as_deref(), now_nanos()),
        deadline,
    );
    let window = view.window;
    let chart = |id, title, format: fn(f64) -> String, lines: &Vec<Line>| {
        Chart {
            id,
            title,
            format,
            from: window.start,
            to: window.end,
            lines: lines.clone(),
        }
        .render()
    };
    html! {
        @if view.cut_short || projects_cut { (super::cut_short_note(store.page_budget)) }
        p.window {
            "Window: "
            @for (name, _, _) in WINDOWS {
                @if name == window.name { b { (name) } } @else { a href=(format!("/metrics?window={name}&project={project}")) { (name) } }
                " "
            }
            span.muted { " · project " (project) " · aligned every " (layout::number(window.period_seconds())) " s" " · ending " (layout::time(window.end)) " UTC" }
        }
        @if projects.len() > 1 {
            p { "Projects: " @for p in projects.iter().take(LISTED) { a href=(format!("/metrics?window={}&project={}", window.name, super::url_encode(p))) { (p) } " " }
                @if projects.len() > LISTED { span.muted { "and " (projects.len() - LISTED) " more (" code { "?project=" } ")" } } }
        }
        div.charts {
            (chart("request-rate", "Request rate per route (req/s)", layout::number, &view.request_rate))
            (chart("error-rate", "Error rate per route (% of responses 5xx)", |v| format!("{}%", layout::number(v)), &view.error_share))
            (chart("latency", "Response time, all routes (p50 / p95 / p99)", layout::seconds, &view.latency))
            (chart("sessions", "Active sessions", layout::number, &view.sessions))
            (chart("app-errors", "Application errors per minute, by type", layout::number, &view.errors))
            (chart("orders", "Orders per minute, by outcome", layout::number, &view.orders))
        }
        h2 { "Per route over the window" }
        @if view.routes.len() > LISTED { p.muted { "The first " (LISTED) " of " (view.routes.len()) " routes." } }
        @if view.routes.is_empty() {
            p { "No " code { (REQUEST_DURATION) } " points in this window." }
        } @else {
            table #route-summary {
                tr { th { "Route" } th { "Requests" } th { "req/s" } th { "5xx" } th { "5xx share" } th { "p50" } th { "p95" } th { "p99" } }
                @for (route, s) in view.routes.iter().take(LISTED) {
                    tr data-route=(route) {
                        td.mono { (route) }
                        td.requests { (s.requests) }
                        td { (format!("{:.3}", s.requests as f64 / ((window.end - window.start) as f64 / NANOS_PER_SECOND as f64))) }
                        td.server-errors { (s.server_errors) }
                        td { (format!("{:.1}%", if s.requests > 0 { s.server_errors as f64 / s.requests as f64 * 100.0 } else { 0.0 })) }
                        td.p50 { (s.p50.map(layout::seconds).unwrap_or_default()) }
                        td.p95 { (s.p95.map(layout::seconds).unwrap_or_default()) }
                        td.p99 { (s.p99.map(layout::seconds).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmulatorConfig;
    use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
    use gcloud_sdk::google::api::metric_descriptor::MetricKind;
    use gcloud_sdk::google::api::{Distribution, Metric, MonitoredResource};
    use gcloud_sdk::google::monitoring::v3::{Point, TimeInterval};

    const S: i64 = NANOS_PER_SECOND;

    /// A cumulative latency distribution, buckets `[0.01, 0.1, 1]` seconds.
    fn requests(route: &str, status: &str, start: i64, end: i64, counts: &[i64]) -> TimeSeries {
        let ts = |n: i64| crate::time::timestamp::from_nanos(n);
        TimeSeries {
            metric: Some(Metric {
                r#type: REQUEST_DURATION.into(),
                labels: [
                    (ROUTE, route),
                    (STATUS, status),
                    ("http_request_method", "GET"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            }),
            resource: Some(MonitoredResource {
                r#type: "global".into(),
                labels: Default::default(),
            }),
            metric_kind: MetricKind::Cumulative as i32,
            points: vec![Point {
                interval: Some(TimeInterval {
                    start_time: Some(ts(start)),
                    end_time: Some(ts(end)),
                }),
                value: Some(TypedValue {
                    value: Some(typed_value::Value::DistributionValue(Distribution {
                        count: counts.iter().sum(),
                        mean: if counts.iter().sum::<i64>() > 0 {
                            0.05
                        } else {
                            0.0
                        },
                        bucket_options: Some(BucketOptions {
                            options: Some(bucket_options::Options::ExplicitBuckets(
                                bucket_options::Explicit {
                                    bounds: vec![0.01, 0.1, 1.0],
                                },
                            )),
                        }),
                        bucket_counts: counts.to_vec(),
                        ..Distribution::default()
                    })),
                }),
            }],
            ..TimeSeries::default()
        }
    }

    #[test]
    fn rates_shares_and_percentiles_come_from_the_stored_distributions() {
        let store = EmulatorStore::new(&EmulatorConfig::default());
        let now = now_nanos();
        let start = now - 600 * S;
        let write = |series: Vec<TimeSeries>| {
            let outcome = store.metrics.write("p", &series, now);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        };
        write(vec![
            requests("/api/orders", "201", start, now - 120 * S, &[0, 10, 0, 0]),
            requests("/api/orders", "500", start, now - 120 * S, &[0, 0, 0, 0]),
        ]);
        write(vec![
            requests("/api/orders", "201", start, now - 60 * S, &[0, 30, 0, 0]),
            requests("/api/orders", "500", start, now - 60 * S, &[0, 0, 10, 0]),
        ]);
        let view = view(&store, "p", Window::ending_at(Some("15m"), now));
        let orders = &view.routes["/api/orders"];
        assert_eq!((orders.requests, orders.server_errors), (40, 10));
        let p50 = orders.p50.unwrap();
        assert!((0.01..=0.1).contains(&p50), "{p50}");
        assert!(
            orders.p99.unwrap() > 0.1,
            "the slowest quarter were the 500s"
        );
        // The second period saw 20 more 201s and 10 new 500s: 1 in 3 failed.
        let share = &view.error_share[0].points;
        let (_, last) = share.last().unwrap();
        assert!((last - 100.0 / 3.0).abs() < 0.01, "{share:?}");
        // Points a minute apart: the 15m window's 30 s period becomes 60 s,
        // and the last minute's 30 requests are 0.5 per second.
        assert_eq!(view.window.period, 60 * S);
        let rate = &view.request_rate[0].points;
        assert_eq!(rate.last().unwrap().1, 30.0 / 60.0);
    }

    /// `rate` requests per second on one route for `history`, exported
    /// every `interval` as a cumulative distribution, as the service does.
    fn steady_traffic(rate: f64, interval: i64, history: i64, now: i64) -> EmulatorStore {
        let config = EmulatorConfig {
            max_points: 10_000_000,
            ..EmulatorConfig::default()
        };
        let store = EmulatorStore::new(&config);
        let start = now - history * S;
        let mut at = start + interval * S;
        while at <= now {
            let total = (rate * ((at - start) / S) as f64).round() as i64;
            let series = [requests("/api/books", "200", start, at, &[0, total, 0, 0])];
            let outcome = store.metrics.write("p", &series, at);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            at += interval * S;
        }
        store
    }

    #[test]
    fn every_window_charts_the_real_rate_for_slow_and_fast_exports() {
        let now = now_nanos();
        for (rate, interval) in [(7.0, 60), (20.0, 60), (7.0, 5), (0.5, 5)] {
            let store = steady_traffic(rate, interval, 25 * 3600, now);
            for (name, _, _) in WINDOWS {
                let view = view(&store, "p", Window::ending_at(Some(name), now));
                let context = format!("{rate} req/s exported every {interval} s, window {name}");
                let line = &view.request_rate[0].points;
                assert!(line.len() >= 2, "{context}: {line:?}");
                for (_, charted) in line {
                    assert!(
                        (charted - rate).abs() <= rate * 0.1,
                        "{context}: charted {charted}, {line:?}"
                    );
                }
                let seconds = (view.window.end - view.window.start) as f64 / S as f64;
                let table = view.routes["/api/books"].requests as f64 / seconds;
                assert!(
                    (table - rate).abs() <= rate * 0.1,
                    "{context}: the table says {table}"
                );
            }
        }
    }

    /// The service's request histogram sent as OTLP every `interval` s,
    /// `rate` requests a second, through the emulator's OTLP ingest.
    fn steady_otlp_traffic(rate: f64, interval: i64, history: i64, now: i64) -> EmulatorStore {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::metrics::v1::{
            metric, AggregationTemporality, Histogram, HistogramDataPoint, Metric as OtlpMetric,
            ResourceMetrics, ScopeMetrics,
        };
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let text = |key: &str, value: &str| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        };
        let store = EmulatorStore::new(&EmulatorConfig::default());
        let ingest = crate::otlp::OtlpIngest::new(store.clone(), Some("p".into()));
        let start = now - history * S;
        let mut at = start + interval * S;
        while at <= now {
            let total = (rate * ((at - start) / S) as f64).round() as u64;
            let point = HistogramDataPoint {
                attributes: vec![
                    text("http.route", "/api/books"),
                    text("http.response.status_code", "200"),
                ],
                start_time_unix_nano: start as u64,
                time_unix_nano: at as u64,
                count: total,
                sum: Some(0.05 * total as f64),
                bucket_counts: vec![0, total, 0, 0],
                explicit_bounds: vec![0.01, 0.1, 1.0],
                ..HistogramDataPoint::default()
            };
            let request = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![
                            text("service.name", "shop"),
                            text("gcp.project_id", "p"),
                            text("cloud.region", "europe-west1"),
                            text("service.instance.id", "i-1"),
                        ],
                        ..Resource::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![OtlpMetric {
                            name: "http.server.request.duration".into(),
                            unit: "s".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![point],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                            ..OtlpMetric::default()
                        }],
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                }],
            };
            let response = crate::otlp::metrics::export(&ingest, request).unwrap();
            assert!(response.partial_success.is_none(), "{response:?}");
            at += interval * S;
        }
        store
    }

    #[test]
    fn otlp_series_are_aligned_to_their_own_sampling_interval() {
        let now = now_nanos();
        let store = steady_otlp_traffic(7.0, 60, 3600, now);
        let view = view(&store, "p", Window::ending_at(Some("5m"), now));
        assert_eq!(view.window.period, 60 * S);
        let line = &view.request_rate[0].points;
        assert!(line.len() >= 2, "{line:?}");
        for (_, charted) in line {
            assert!((charted - 7.0).abs() <= 0.7, "charted {charted}, {line:?}");
        }
    }
}
