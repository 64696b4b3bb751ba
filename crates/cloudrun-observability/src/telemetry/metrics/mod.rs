//! Custom metrics: the OpenTelemetry instruments the service records, and
//! the meter provider that exports them to Cloud Monitoring.
//!
//! | instrument | kind | recorded by |
//! |---|---|---|
//! | `http.server.request.duration` (s) | histogram | the request middleware |
//! | `app.errors` | counter by `error.type` | the request middleware, where each error is reported once |
//! | `app.sessions.active` | observable gauge | read from the [`ActiveSessions`] source at each export |
//! | `app.orders` | counter by `outcome` | `POST /api/orders` |
//!
//! The instruments live in one process-wide slot that [`install`] fills:
//! recording before that (or with `TELEMETRY=off`, when it never happens)
//! does nothing, and a request never waits for an export. The SDK's
//! periodic reader exports every `OTEL_METRIC_EXPORT_INTERVAL`, on its own
//! thread.

pub(crate) mod cloud_monitoring;
pub(crate) mod cloud_monitoring_mapping;
pub(crate) mod otlp;

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use opentelemetry::metrics::{
    BoundHistogram, Counter, Histogram, MeterProvider as _, ObservableGauge,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use rustc_hash::FxHashMap;

use crate::telemetry::export::health::ExportHealth;
use crate::telemetry::export::otlp::OtlpTarget;
use crate::telemetry::export::Endpoint;
use crate::telemetry::http_request::known_method;
use crate::telemetry::logs::error_reporting::ErrorType;
use crate::telemetry::metrics::cloud_monitoring::{
    sampling_period_for, CloudMonitoringExporter, ExporterSettings, MetricsExporterHandle,
};
use crate::telemetry::metrics::cloud_monitoring_mapping::{
    generic_task, DeviationSeriesId, Deviations, MetricSpec,
};
use crate::telemetry::metrics::otlp::OtlpMetricExporter;
use crate::telemetry::resource::InstanceIdentity;

/// Where metric points go, and through which exporter.
#[derive(Clone, Debug)]
pub enum MetricExport {
    /// Cloud Monitoring v3 `CreateTimeSeries` (`OTEL_METRICS_EXPORTER=gcp_monitoring`).
    CloudMonitoring(Endpoint),
    /// OTLP/gRPC (`OTEL_METRICS_EXPORTER=otlp`).
    Otlp(OtlpTarget),
}

impl std::fmt::Display for MetricExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CloudMonitoring(endpoint) => write!(f, "Cloud Monitoring v3, {endpoint}"),
            Self::Otlp(target) => target.fmt(f),
        }
    }
}

/// Where the `app.sessions.active` gauge reads its value: the application's
/// session tracker. A trait of telemetry's own, so that telemetry does not
/// depend on the application that depends on it.
pub trait ActiveSessions: Send + Sync + std::fmt::Debug {
    /// Sessions seen recently, as of `now`.
    fn active_sessions(&self, now: Instant) -> usize;
}

/// Request durations in seconds: 1 ms to 10 s, about three buckets per
/// decade, so that percentiles from 1 ms up to the 10 s timeout resolve.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

pub const REQUEST_DURATION: MetricSpec = MetricSpec {
    name: "http.server.request.duration",
    description: "Duration of HTTP requests served, by method, route template and status code.",
    unit: "s",
    kind: MetricKind::Cumulative,
    value_type: ValueType::Distribution,
    labels: &[
        "http_request_method",
        "http_route",
        "http_response_status_code",
    ],
};

pub const ERRORS: MetricSpec = MetricSpec {
    name: "app.errors",
    description: "Errors reported (handler errors, panics, downstream failures).",
    unit: "1",
    kind: MetricKind::Cumulative,
    value_type: ValueType::Int64,
    labels: &["error_type"],
};

pub const SESSIONS_ACTIVE: MetricSpec = MetricSpec {
    name: "app.sessions.active",
    description: "Distinct sessions seen by this instance in the last 5 minutes.",
    unit: "1",
    kind: MetricKind::Gauge,
    value_type: ValueType::Int64,
    labels: &[],
};

pub const ORDERS: MetricSpec = MetricSpec {
    name: "app.orders",
    description: "Orders placed, by outcome (accepted, payment_failed, rejected, failed).",
    unit: "1",
    kind: MetricKind::Cumulative,
    value_type: ValueType::Int64,
    labels: &["outcome"],
};

/// Every custom metric, for the descriptors created at start-up.
pub const SPECS: [MetricSpec; 4] = [REQUEST_DURATION, ERRORS, SESSIONS_ACTIVE, ORDERS];

/// Added to the shortest export interval: the SDK's timer measures each
/// interval from the end of the previous export, so two collections 5 s
/// apart can be a few milliseconds short of the 5 s Cloud Monitoring wants
/// between points (M8), and every other export would be held back.
pub const READER_SLACK: Duration = Duration::from_millis(250);

/// The most histogram series whose exact sum of squared deviation is kept.
const MAX_DEVIATION_SERIES: usize = 2_000;

/// How an order ended, the `outcome` label of `app.orders`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderOutcome {
    Accepted,
    /// The payment was declined or the payments service failed.
    PaymentFailed,
    /// The client's fault: invalid order, or out of stock.
    Rejected,
    /// Any other downstream failure.
    Failed,
}

impl OrderOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::PaymentFailed => "payment_failed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// The instruments the service records into.
#[derive(Debug)]
struct Instruments {
    request_duration: Histogram<f64>,
    errors: Counter<u64>,
    orders: Counter<u64>,
    deviations: Arc<Deviations>,
    /// Each request series bound once: a request then records without the
    /// SDK hashing and comparing its attributes, and the deviation without
    /// finding its series again (issue #16).
    request_series: RwLock<FxHashMap<RequestSeriesKey, Arc<RequestSeries>>>,
}

/// Method label, route template, status: a request series.
type RequestSeriesKey = (&'static str, &'static str, u16);

#[derive(Debug)]
struct RequestSeries {
    duration: BoundHistogram<f64>,
    deviation: Option<DeviationSeriesId>,
}

impl Instruments {
    /// The bound series for `key`, made on its first request; `None` once
    /// [`MAX_DEVIATION_SERIES`] are bound (a request then records unbound).
    fn request_series(&self, key: RequestSeriesKey) -> Option<Arc<RequestSeries>> {
        let known = self
            .request_series
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .cloned();
        if known.is_some() {
            return known;
        }
        let mut series = self
            .request_series
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if series.len() >= MAX_DEVIATION_SERIES {
            return None;
        }
        let attributes = request_attributes(key);
        let bound = series.entry(key).or_insert_with(|| {
            Arc::new(RequestSeries {
                duration: self.request_duration.bind(&attributes),
                deviation: self
                    .deviations
                    .series_of(REQUEST_DURATION.name, &attributes),
            })
        });
        Some(Arc::clone(bound))
    }
}

impl Instruments {
    fn record_request(&self, key: RequestSeriesKey, duration: Duration) {
        let seconds = duration.as_secs_f64();
        match self.request_series(key) {
            Some(series) => {
                series.duration.record(seconds);
                if let Some(deviation) = series.deviation {
                    self.deviations.record_in(deviation, seconds);
                }
            }
            None => {
                let attributes = request_attributes(key);
                self.request_duration.record(seconds, &attributes);
                self.deviations
                    .record(REQUEST_DURATION.name, &attributes, seconds);
            }
        }
    }
}

fn request_attributes((method, route, status): RequestSeriesKey) -> [KeyValue; 3] {
    [
        KeyValue::new("http.request.method", method),
        KeyValue::new("http.route", route),
        KeyValue::new("http.response.status_code", i64::from(status)),
    ]
}

/// The instruments of the installed pipeline; `None` before [`install`],
/// after shutdown, and with `TELEMETRY=off`.
static CURRENT: RwLock<Option<Arc<Instruments>>> = RwLock::new(None);

fn current() -> Option<Arc<Instruments>> {
    CURRENT
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

fn set_current(instruments: Option<Arc<Instruments>>) {
    *CURRENT
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = instruments;
}

/// Records one request served.
///
/// `route` is `'static` (the middleware interns route templates) so that the
/// label costs no allocation per request.
pub fn record_request(method: &str, route: &'static str, status: u16, duration: Duration) {
    let Some(instruments) = current() else {
        return;
    };
    instruments.record_request((normalise_method(method), route, status), duration);
}

/// Records one error, where it is reported.
pub fn record_error(error_type: ErrorType) {
    if let Some(instruments) = current() {
        instruments
            .errors
            .add(1, &[KeyValue::new("error.type", error_type.as_str())]);
    }
}

/// Records one order and how it ended.
pub fn record_order(outcome: OrderOutcome) {
    if let Some(instruments) = current() {
        instruments
            .orders
            .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
    }
}

/// The methods of OpenTelemetry's HTTP conventions; any other becomes
/// `_OTHER`, so that made-up methods cannot add series.
fn normalise_method(method: &str) -> &'static str {
    known_method(method).unwrap_or("_OTHER")
}

/// The installed metrics pipeline.
#[derive(Debug)]
pub struct MetricsPipeline {
    provider: SdkMeterProvider,
    /// The Cloud Monitoring exporter's, for its final-export wait (none
    /// with OTLP).
    exporter: Option<MetricsExporterHandle>,
    sessions: Arc<OnceLock<Arc<dyn ActiveSessions>>>,
    // Held so that the callback stays registered.
    _sessions_gauge: ObservableGauge<u64>,
}

/// Builds the meter provider exporting through `export` every `interval`,
/// and makes its instruments the ones recorded into. Must run inside the
/// tokio runtime; waits for nothing. Fails only on an exporter
/// configuration the OTLP crate rejects.
pub fn install(
    identity: &InstanceIdentity,
    export: MetricExport,
    interval: Duration,
    health: Arc<ExportHealth>,
) -> Result<MetricsPipeline, opentelemetry_otlp::ExporterBuildError> {
    let deviations = Arc::new(Deviations::new(MAX_DEVIATION_SERIES));
    let (provider, handle) = match export {
        MetricExport::CloudMonitoring(endpoint) => {
            let sampling_period = sampling_period_for(&endpoint, interval);
            let exporter = CloudMonitoringExporter::new(ExporterSettings {
                project_id: identity.project_id.clone(),
                endpoint,
                resource: generic_task(identity),
                specs: &SPECS,
                deviations: Arc::clone(&deviations),
                health,
                sampling_period,
            });
            let handle = exporter.handle();
            let reader = PeriodicReader::builder(exporter)
                .with_interval(interval.max(sampling_period + READER_SLACK.min(sampling_period)))
                .build();
            let provider = SdkMeterProvider::builder()
                .with_resource(identity.to_resource())
                .with_reader(reader)
                .build();
            (provider, Some(handle))
        }
        MetricExport::Otlp(target) => {
            let reader = PeriodicReader::builder(OtlpMetricExporter::new(target, health)?)
                .with_interval(interval)
                .build();
            let provider = SdkMeterProvider::builder()
                .with_resource(otlp::resource(identity))
                .with_reader(reader)
                .build();
            (provider, None)
        }
    };
    let meter = provider.meter(env!("CARGO_PKG_NAME"));

    let sessions: Arc<OnceLock<Arc<dyn ActiveSessions>>> = Arc::new(OnceLock::new());
    let observed = Arc::clone(&sessions);
    let sessions_gauge = meter
        .u64_observable_gauge(SESSIONS_ACTIVE.name)
        .with_description(SESSIONS_ACTIVE.description)
        .with_unit(SESSIONS_ACTIVE.unit)
        .with_callback(move |observer| {
            if let Some(tracker) = observed.get() {
                let active = tracker.active_sessions(Instant::now());
                observer.observe(u64::try_from(active).unwrap_or(u64::MAX), &[]);
            }
        })
        .build();
    set_current(Some(Arc::new(Instruments {
        request_duration: meter
            .f64_histogram(REQUEST_DURATION.name)
            .with_description(REQUEST_DURATION.description)
            .with_unit(REQUEST_DURATION.unit)
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        errors: meter
            .u64_counter(ERRORS.name)
            .with_description(ERRORS.description)
            .with_unit(ERRORS.unit)
            .build(),
        orders: meter
            .u64_counter(ORDERS.name)
            .with_description(ORDERS.description)
            .with_unit(ORDERS.unit)
            .build(),
        deviations,
        request_series: RwLock::default(),
    })));
    Ok(MetricsPipeline {
        provider,
        exporter: handle,
        sessions,
        _sessions_gauge: sessions_gauge,
    })
}

impl MetricsPipeline {
    /// Reports `tracker`'s active sessions as `app.sessions.active`.
    pub fn observe_sessions(&self, tracker: Arc<dyn ActiveSessions>) {
        // Set once: the application has one tracker.
        let _ = self.sessions.set(tracker);
    }

    /// Writes the final points and stops, by `deadline`.
    ///
    /// The final export must not land within 5 s of a series' previous
    /// point (M8, the classic failure of a shutdown flush right after a
    /// periodic export): when the deadline allows, this first waits until
    /// every series may take a point; otherwise the exporter holds back the
    /// series that may not, and their previous point stays the last word.
    /// (Requests have drained by then: a periodic export that slips in
    /// during the wait already carries the final values.)
    pub async fn shutdown(self, deadline: Instant) {
        set_current(None);
        let wait = self.exporter.as_ref().map_or(
            Duration::ZERO,
            MetricsExporterHandle::wait_before_final_export,
        );
        // The export itself needs a moment too.
        let export_allowance = Duration::from_millis(500);
        let waits = Instant::now() + wait + export_allowance <= deadline;
        tracing::debug!(
            wait_ms = wait.as_millis(),
            waits,
            "final metric export: waiting for the sampling period"
        );
        if waits {
            tokio::time::sleep(wait).await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        // The SDK's shutdown blocks until its reader thread has exported;
        // that export runs on this runtime, so block elsewhere.
        let provider = self.provider;
        let flush = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(remaining, flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "metrics could not be flushed"),
            Ok(Err(error)) => tracing::warn!(%error, "metrics could not be flushed"),
            Err(_) => tracing::warn!("metrics could not be flushed in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_resolve_1_ms_to_10_s() {
        assert_eq!(DURATION_BUCKETS.first(), Some(&0.001));
        assert_eq!(DURATION_BUCKETS.last(), Some(&10.0));
        assert!(DURATION_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn unknown_methods_share_one_label_value() {
        assert_eq!(normalise_method("GET"), "GET");
        assert_eq!(normalise_method("BREW"), "_OTHER");
        assert_eq!(normalise_method("get"), "_OTHER");
    }

    #[test]
    fn the_descriptors_use_the_names_the_dashboard_expects() {
        use crate::telemetry::metrics::cloud_monitoring_mapping::{
            descriptor, label_key, metric_type,
        };
        let types: Vec<String> = SPECS.iter().map(|spec| metric_type(spec.name)).collect();
        assert_eq!(
            types,
            [
                "workload.googleapis.com/http.server.request.duration",
                "workload.googleapis.com/app.errors",
                "workload.googleapis.com/app.sessions.active",
                "workload.googleapis.com/app.orders",
            ]
        );
        assert_eq!(
            REQUEST_DURATION.labels,
            [
                label_key("http.request.method"),
                label_key("http.route"),
                label_key("http.response.status_code")
            ]
        );
        assert_eq!(ERRORS.labels, [label_key("error.type")]);
        let duration = descriptor("p", &REQUEST_DURATION);
        assert_eq!(duration.unit, "s");
        assert_eq!(duration.metric_kind, MetricKind::Cumulative as i32);
        assert_eq!(duration.value_type, ValueType::Distribution as i32);
    }

    fn instruments(deviation_capacity: usize) -> Instruments {
        let meter = SdkMeterProvider::builder().build().meter("test");
        Instruments {
            request_duration: meter.f64_histogram(REQUEST_DURATION.name).build(),
            errors: meter.u64_counter(ERRORS.name).build(),
            orders: meter.u64_counter(ORDERS.name).build(),
            deviations: Arc::new(Deviations::new(deviation_capacity)),
            request_series: RwLock::default(),
        }
    }

    #[test]
    fn a_request_series_is_bound_once_and_its_deviation_stays_exact() {
        let instruments = instruments(MAX_DEVIATION_SERIES);
        let key = ("GET", "/api/books/{id}", 200);
        for millis in [1, 2, 3, 6] {
            instruments.record_request(key, Duration::from_millis(millis));
        }
        let first = instruments.request_series(key).unwrap();
        let again = instruments.request_series(key).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the series is bound once");
        // Mean 3 ms: (-2)² + (-1)² + 0² + 3² = 14 ms².
        let labels = cloud_monitoring_mapping::labels_of(&request_attributes(key));
        let deviation = instruments
            .deviations
            .lookup(REQUEST_DURATION.name, &labels, 4)
            .expect("the exact deviation of the four requests");
        assert!((deviation - 14e-6).abs() < 1e-12, "{deviation}");
    }

    #[test]
    fn past_the_bound_series_cap_a_request_still_records_unbound() {
        let instruments = instruments(MAX_DEVIATION_SERIES + 1);
        for status in 0..u16::try_from(MAX_DEVIATION_SERIES).unwrap() {
            let _ = instruments.request_series(("GET", "/x", status)).unwrap();
        }
        let key = ("GET", "/y", 200);
        assert!(instruments.request_series(key).is_none());
        instruments.record_request(key, Duration::from_millis(2));
        instruments.record_request(key, Duration::from_millis(4));
        let labels = cloud_monitoring_mapping::labels_of(&request_attributes(key));
        assert_eq!(
            instruments
                .deviations
                .lookup(REQUEST_DURATION.name, &labels, 2),
            Some(2e-6)
        );
    }
}
