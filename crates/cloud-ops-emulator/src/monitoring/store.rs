//! Bounded, thread-safe in-memory storage of metric descriptors and series.
//!
//! A `CreateTimeSeries` request is validated and applied under one lock, so
//! the checks that depend on stored state (descriptor conflicts, point order,
//! sampling period) see a consistent view and concurrent writers never lose
//! points. Points of all series share one arrival-order queue: when the cap is
//! reached the oldest point overall is dropped and counted.
//!
//! Clients write through [`MetricStore::write`], held to every rule; the
//! emulator's own stand-ins for Google's producers (log-based metrics, Cloud
//! Run's request metrics, uptime checks) use [`MetricStore::write_as_google`],
//! which allows system metric types and resources and nothing else more.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::MetricDescriptor;
use gcloud_sdk::google::monitoring::v3::TimeSeries;
use serde::Serialize;

use crate::monitoring::filter::{Filter, Selector, Subject};
use crate::monitoring::validation::{
    check_against_last, validate_series_as, SeriesKey, StoredPoint, ValidSeries, Writer,
};

/// Counters shown by `/api/status` and read by tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricStats {
    /// Distinct series known.
    pub series: u64,
    /// Points currently held.
    pub points_stored: u64,
    /// Points accepted since start, including those later dropped by the cap.
    pub points_accepted: u64,
    /// Points evicted because `max_points` was reached (oldest first).
    pub points_dropped: u64,
    /// Series rejected inside write requests.
    pub series_rejected: u64,
    /// Write requests that returned an error (fully or partly rejected).
    pub requests_rejected: u64,
    /// Metric descriptors known.
    pub descriptors: u64,
}

/// A series with its points, oldest first.
#[derive(Debug, Clone)]
pub struct StoredSeries {
    pub key: SeriesKey,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub points: VecDeque<StoredPoint>,
    /// Kept even when the point itself was evicted, so order and sampling
    /// rules still hold after eviction.
    last: Option<StoredPoint>,
}

impl Subject for SeriesKey {
    fn field(&self, selector: &Selector) -> Option<&str> {
        match selector {
            Selector::MetricType => Some(&self.metric_type),
            Selector::ResourceType => Some(&self.resource_type),
            Selector::Project => Some(&self.project),
            Selector::MetricLabel(k) => self.metric_labels.get(k).map(String::as_str),
            Selector::ResourceLabel(k) => self.resource_labels.get(k).map(String::as_str),
            _ => None,
        }
    }
}

struct DescriptorSubject<'a>(&'a MetricDescriptor, &'a str);

impl Subject for DescriptorSubject<'_> {
    fn field(&self, selector: &Selector) -> Option<&str> {
        match selector {
            Selector::MetricType => Some(&self.0.r#type),
            Selector::MetricDisplayName => Some(&self.0.display_name),
            Selector::Project => Some(self.1),
            _ => None,
        }
    }
}

/// Result of a write: indices of rejected series with their reasons.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    pub errors: Vec<(usize, String)>,
    pub points_written: usize,
}

/// Cheap clonable handle to the metric store.
#[derive(Debug, Clone)]
pub struct MetricStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    max_points: usize,
    min_sampling_nanos: i64,
    descriptors: BTreeMap<(String, String), MetricDescriptor>,
    series: Vec<StoredSeries>,
    index: HashMap<SeriesKey, usize>,
    arrival: VecDeque<usize>,
    stats: MetricStats,
}

impl MetricStore {
    /// An empty store keeping at most `max_points` points.
    pub fn new(max_points: usize, min_sampling_period: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max_points,
                min_sampling_nanos: i64::try_from(min_sampling_period.as_nanos())
                    .unwrap_or(i64::MAX),
                descriptors: BTreeMap::new(),
                series: Vec::new(),
                index: HashMap::new(),
                arrival: VecDeque::new(),
                stats: MetricStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation completes under the lock, so a poisoned lock still guards consistent data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Validates and writes the series of one request; valid series are
    /// written even when others fail (M1).
    pub fn write(&self, project: &str, series: &[TimeSeries], now_nanos: i64) -> WriteOutcome {
        self.write_as(Writer::Client, project, series, now_nanos)
    }

    /// [`MetricStore::write`] for Google's own producers: system metric
    /// types (`logging.googleapis.com/user/...`, `run.googleapis.com/...`,
    /// `monitoring.googleapis.com/uptime_check/...`) on system resources
    /// (`cloud_run_revision`, `uptime_url`), with descriptors created on
    /// first write whatever their kind (DELTA included). Every other rule
    /// still applies: labels, kinds, intervals, distributions, order, sampling.
    pub fn write_as_google(
        &self,
        project: &str,
        series: &[TimeSeries],
        now_nanos: i64,
    ) -> WriteOutcome {
        self.write_as(Writer::Google, project, series, now_nanos)
    }

    fn write_as(
        &self,
        writer: Writer,
        project: &str,
        series: &[TimeSeries],
        now_nanos: i64,
    ) -> WriteOutcome {
        let mut inner = self.lock();
        let mut outcome = WriteOutcome::default();
        let mut seen: HashSet<SeriesKey> = HashSet::new();
        for (index, ts) in series.iter().enumerate() {
            match inner.write_one(writer, index, project, ts, now_nanos, &mut seen) {
                Ok(()) => outcome.points_written += 1,
                Err(reason) => outcome.errors.push((index, reason)),
            }
        }
        inner.stats.series_rejected += outcome.errors.len() as u64;
        if !outcome.errors.is_empty() {
            inner.stats.requests_rejected += 1;
        }
        outcome
    }

    /// Writes one point that came through OTLP (the Telemetry API), already
    /// checked by its own rules (`otlp::metrics`): only what needs stored
    /// state is checked here. Its descriptor (`descriptor_update`) is
    /// created on first write, of any kind, and must agree with an existing
    /// one; points must be in order (M5, M7); there is no sampling period
    /// (M8 is a `CreateTimeSeries` rule).
    ///
    /// # Errors
    /// The reason, in Google's wording; the point is counted as a rejected series.
    pub fn write_otlp(&self, mut valid: ValidSeries) -> Result<(), String> {
        let mut inner = self.lock();
        let result = inner.write_otlp(&mut valid);
        match result {
            Ok(()) => {
                let project = valid.key.project.clone();
                inner.apply(&project, valid);
            }
            Err(_) => inner.stats.series_rejected += 1,
        }
        result
    }

    /// Counts a request rejected before any series was looked at.
    pub fn record_rejected(&self) {
        self.lock().stats.requests_rejected += 1;
    }

    /// Current counters.
    pub fn stats(&self) -> MetricStats {
        self.lock().stats
    }

    /// The least time between two points of one series (M8): producers
    /// hold points back rather than have them rejected.
    pub fn min_sampling_period(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.lock().min_sampling_nanos).unwrap_or(0))
    }

    /// The descriptor of `metric_type` in `project`.
    pub fn descriptor(&self, project: &str, metric_type: &str) -> Option<MetricDescriptor> {
        self.lock()
            .descriptors
            .get(&(project.to_string(), metric_type.to_string()))
            .cloned()
    }

    /// Descriptors of `project` matching `filter`, ordered by type.
    pub fn descriptors(&self, project: &str, filter: Option<&Filter>) -> Vec<MetricDescriptor> {
        self.lock()
            .descriptors
            .iter()
            .filter(|((p, _), _)| p == project)
            .map(|(_, d)| d)
            .filter(|d| filter.is_none_or(|f| f.matches(&DescriptorSubject(d, project))))
            .cloned()
            .collect()
    }

    /// M15: creates or replaces a descriptor, never removing labels it had.
    pub fn upsert_descriptor(
        &self,
        project: &str,
        mut descriptor: MetricDescriptor,
    ) -> MetricDescriptor {
        let mut inner = self.lock();
        let key = (project.to_string(), descriptor.r#type.clone());
        if let Some(old) = inner.descriptors.get(&key) {
            for label in &old.labels {
                if !descriptor.labels.iter().any(|l| l.key == label.key) {
                    descriptor.labels.push(label.clone());
                }
            }
        }
        descriptor.name = descriptor_name(project, &descriptor.r#type);
        inner.descriptors.insert(key, descriptor.clone());
        inner.stats.descriptors = inner.descriptors.len() as u64;
        descriptor
    }

    /// The projects that have series, sorted (the console shows them all).
    pub fn projects(&self) -> Vec<String> {
        let inner = self.lock();
        let projects: std::collections::BTreeSet<&String> =
            inner.series.iter().map(|s| &s.key.project).collect();
        projects.into_iter().cloned().collect()
    }

    /// Copies of the series of `project` matching `filter`, with all their points.
    pub fn series(&self, project: &str, filter: &Filter) -> Vec<StoredSeries> {
        self.lock()
            .series
            .iter()
            .filter(|s| s.key.project == project && filter.matches(&s.key))
            .cloned()
            .collect()
    }

    /// Like [`series`](Self::series), with only the points ending in
    /// `(from, to]` and the one before them (a cumulative series' first delta
    /// starts there); [`aggregation::reads_from`](crate::monitoring::aggregation::reads_from)
    /// says which `from` a read needs. The alert engine reads the last minutes
    /// of series that keep hours of points, every tick: copying them whole
    /// cost more than evaluating them.
    pub fn series_within(
        &self,
        project: &str,
        filter: &Filter,
        from: i64,
        to: i64,
    ) -> Vec<StoredSeries> {
        self.lock()
            .series
            .iter()
            .filter(|s| s.key.project == project && filter.matches(&s.key))
            .map(|s| s.within(from, to))
            .collect()
    }
}

impl StoredSeries {
    /// A copy with the points ending in `(from, to]` and the one before them.
    /// Points are in order of their end times (writes out of order are
    /// refused), so both bounds are binary searches.
    fn within(&self, from: i64, to: i64) -> StoredSeries {
        let first = self
            .points
            .partition_point(|p| p.end <= from)
            .saturating_sub(1);
        let last = self.points.partition_point(|p| p.end <= to).max(first);
        StoredSeries {
            key: self.key.clone(),
            kind: self.kind,
            value_type: self.value_type,
            points: self.points.range(first..last).cloned().collect(),
            last: self.last.clone(),
        }
    }
}

/// `projects/P/metricDescriptors/TYPE`, the resource name Google gives a descriptor.
pub fn descriptor_name(project: &str, metric_type: &str) -> String {
    format!("projects/{project}/metricDescriptors/{metric_type}")
}

impl Inner {
    fn write_one(
        &mut self,
        writer: Writer,
        index: usize,
        project: &str,
        ts: &TimeSeries,
        now_nanos: i64,
        seen: &mut HashSet<SeriesKey>,
    ) -> Result<(), String> {
        let metric_type = ts
            .metric
            .as_ref()
            .map(|m| m.r#type.clone())
            .unwrap_or_default();
        let descriptor = self
            .descriptors
            .get(&(project.to_string(), metric_type.clone()));
        let valid = validate_series_as(writer, index, project, ts, descriptor, now_nanos)?;
        if !seen.insert(valid.key.clone()) {
            return Err(format!(
                "Field timeSeries[{index}] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request."
            ));
        }
        if let Some(series) = self.index.get(&valid.key).map(|i| &self.series[*i]) {
            if let Some(last) = series.last.as_ref() {
                check_against_last(
                    &metric_type,
                    series.kind,
                    last,
                    &valid.point,
                    self.min_sampling_nanos,
                )?;
            }
        }
        self.apply(project, valid);
        Ok(())
    }

    /// The stateful checks of [`MetricStore::write_otlp`]; leaves in
    /// `valid.descriptor_update` only a descriptor that changes.
    fn write_otlp(&mut self, valid: &mut ValidSeries) -> Result<(), String> {
        let metric_type = valid.key.metric_type.clone();
        let key = (valid.key.project.clone(), metric_type.clone());
        let wanted = valid.descriptor_update.take();
        match (self.descriptors.get(&key), wanted) {
            (Some(existing), wanted) => {
                let kind = MetricKind::try_from(existing.metric_kind).unwrap_or(MetricKind::Gauge);
                let value_type =
                    ValueType::try_from(existing.value_type).unwrap_or(ValueType::Unspecified);
                if value_type != valid.value_type {
                    return Err(format!(
                        "Value type for metric {metric_type} conflicts with the existing value type ({}).",
                        value_type.as_str_name()
                    ));
                }
                if kind != valid.kind {
                    return Err(format!(
                        "Metric kind for metric {metric_type} must be {}, but is {}.",
                        kind.as_str_name(),
                        valid.kind.as_str_name()
                    ));
                }
                let new_labels: Vec<_> = wanted
                    .map(|w| w.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|l| !existing.labels.iter().any(|e| e.key == l.key))
                    .collect();
                if !new_labels.is_empty() {
                    let mut descriptor = existing.clone();
                    descriptor.labels.extend(new_labels);
                    valid.descriptor_update = Some(descriptor);
                }
            }
            (None, wanted) => valid.descriptor_update = wanted,
        }
        if let Some(series) = self.index.get(&valid.key).map(|i| &self.series[*i]) {
            if let Some(last) = series.last.as_ref() {
                check_against_last(&metric_type, series.kind, last, &valid.point, 0)?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, project: &str, valid: ValidSeries) {
        if let Some(mut descriptor) = valid.descriptor_update {
            descriptor.name = descriptor_name(project, &descriptor.r#type);
            self.descriptors
                .insert((project.to_string(), descriptor.r#type.clone()), descriptor);
            self.stats.descriptors = self.descriptors.len() as u64;
        }
        let id = match self.index.get(&valid.key) {
            Some(id) => *id,
            None => {
                self.series.push(StoredSeries {
                    key: valid.key.clone(),
                    kind: valid.kind,
                    value_type: valid.value_type,
                    points: VecDeque::new(),
                    last: None,
                });
                self.index.insert(valid.key, self.series.len() - 1);
                self.stats.series = self.series.len() as u64;
                self.series.len() - 1
            }
        };
        let series = &mut self.series[id];
        series.last = Some(valid.point.clone());
        series.points.push_back(valid.point);
        self.arrival.push_back(id);
        self.stats.points_accepted += 1;
        self.evict();
    }

    fn evict(&mut self) {
        while self.arrival.len() > self.max_points {
            let Some(id) = self.arrival.pop_front() else {
                break;
            };
            // Each series' points are in arrival order, so its front is the
            // point this queue entry stands for.
            self.series[id].points.pop_front();
            self.stats.points_dropped += 1;
        }
        self.stats.points_stored = self.arrival.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::api::{Metric, MonitoredResource};
    use gcloud_sdk::google::monitoring::v3::{typed_value, Point, TimeInterval, TypedValue};

    use crate::time::timestamp::{from_nanos, now_nanos, NANOS_PER_SECOND};

    fn series(
        metric_type: &str,
        resource_type: &str,
        resource_labels: &[(&str, &str)],
        kind: MetricKind,
        start: Option<i64>,
        end: i64,
    ) -> TimeSeries {
        TimeSeries {
            metric: Some(Metric {
                r#type: metric_type.into(),
                labels: [("response_code_class".to_owned(), "5xx".to_owned())].into(),
            }),
            resource: Some(MonitoredResource {
                r#type: resource_type.into(),
                labels: resource_labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            metric_kind: kind as i32,
            points: vec![Point {
                interval: Some(TimeInterval {
                    start_time: start.map(from_nanos),
                    end_time: Some(from_nanos(end)),
                }),
                value: Some(TypedValue {
                    value: Some(typed_value::Value::Int64Value(3)),
                }),
            }],
            ..TimeSeries::default()
        }
    }

    const REVISION: &[(&str, &str)] = &[
        ("service_name", "frontend"),
        ("revision_name", "local"),
        ("configuration_name", "frontend"),
        ("location", "local"),
    ];

    fn store() -> MetricStore {
        MetricStore::new(100, Duration::from_secs(5))
    }

    /// One point of a `custom.googleapis.com/requests` series on a task,
    /// cumulative from `start` or a gauge.
    fn counted(kind: MetricKind, start: i64, end: i64, value: i64) -> TimeSeries {
        let mut ts = series(
            "custom.googleapis.com/requests",
            "generic_task",
            &[
                ("location", "europe-west1"),
                ("namespace", "bench"),
                ("job", "frontend"),
                ("task_id", "1"),
            ],
            kind,
            (kind == MetricKind::Cumulative).then_some(start),
            end,
        );
        ts.points[0].value = Some(TypedValue {
            value: Some(typed_value::Value::Int64Value(value)),
        });
        ts
    }

    #[test]
    fn a_read_of_a_window_sees_what_it_would_see_in_the_whole_series() {
        use crate::monitoring::aggregation::{aggregate, raw, reads_from, Spec};
        use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};

        let now = now_nanos();
        let second = NANOS_PER_SECOND;
        let store = MetricStore::new(10_000, Duration::from_secs(5));
        let filter =
            crate::monitoring::filter::parse("metric.type = \"custom.googleapis.com/requests\"")
                .unwrap();
        for kind in [MetricKind::Cumulative, MetricKind::Gauge] {
            let project = format!("{kind:?}");
            // An hour of points every 10 s; the count grows unevenly.
            for n in 0..360 {
                let end = now - (360 - n) * 10 * second;
                let point = counted(kind, now - 3_700 * second, end, n * 7 + n * n % 7);
                let outcome = store.write(&project, &[point], now);
                assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            }
            for (start, end) in [
                (now - 600 * second, now),
                (now - 95 * second, now - 35 * second),
                // The first window's previous point is older than the
                // window's period: only the point kept before `from` has it.
                (now - 95 * second - 1, now - 35 * second),
                (now - 5_000 * second, now - 3_000 * second),
                (now - 5 * second, now),
            ] {
                let whole = store.series(&project, &filter);
                let read = |from| store.series_within(&project, &filter, from, end);
                let raw_of = |series: &[StoredSeries]| -> Vec<TimeSeries> {
                    series.iter().filter_map(|s| raw(s, start, end)).collect()
                };
                assert_eq!(raw_of(&read(reads_from(start, None))), raw_of(&whole));
                let aligners = match kind {
                    MetricKind::Cumulative => [Aligner::AlignRate, Aligner::AlignDelta],
                    _ => [Aligner::AlignMean, Aligner::AlignMax],
                };
                for aligner in aligners
                    .into_iter()
                    .chain([Aligner::AlignNextOlder, Aligner::AlignCount])
                {
                    for period in [60 * second, 300 * second] {
                        let spec = Spec {
                            period,
                            aligner,
                            reducer: Reducer::ReduceNone,
                            group_by: Vec::new(),
                        };
                        let trimmed = read(reads_from(start, Some(&spec)));
                        assert!(trimmed[0].points.len() < whole[0].points.len());
                        assert_eq!(
                            aggregate(&trimmed, start, end, &spec).unwrap(),
                            aggregate(&whole, start, end, &spec).unwrap(),
                            "{kind:?} {aligner:?} {period} over ({start}, {end}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn google_may_write_system_metrics_on_system_resources_clients_may_not() {
        let now = now_nanos();
        let delta = |metric_type: &str| {
            series(
                metric_type,
                "cloud_run_revision",
                REVISION,
                MetricKind::Delta,
                Some(now - NANOS_PER_SECOND),
                now,
            )
        };
        for metric_type in [
            "run.googleapis.com/request_count",
            "logging.googleapis.com/user/app-errors",
        ] {
            let client = store().write("p", &[delta(metric_type)], now);
            assert_eq!(client.errors.len(), 1, "{metric_type}");
            let google = store();
            let outcome = google.write_as_google("p", &[delta(metric_type)], now);
            assert!(
                outcome.errors.is_empty(),
                "{metric_type}: {:?}",
                outcome.errors
            );
            let descriptor = google.descriptor("p", metric_type).unwrap();
            assert_eq!(descriptor.metric_kind, MetricKind::Delta as i32);
        }
        // A writable type on a system resource is still refused to a client.
        let client = store().write("p", &[delta("workload.googleapis.com/x")], now);
        assert!(
            client.errors[0].1.contains("cloud_run_revision"),
            "{:?}",
            client.errors
        );
    }

    #[test]
    fn google_writes_keep_every_other_rule() {
        let now = now_nanos();
        let google = store();
        let cases = [
            // M12: incomplete system resource.
            series(
                "run.googleapis.com/request_count",
                "cloud_run_revision",
                &[("service_name", "frontend")],
                MetricKind::Delta,
                Some(now - NANOS_PER_SECOND),
                now,
            ),
            // Unknown resource type.
            series(
                "run.googleapis.com/request_count",
                "moon_base",
                &[],
                MetricKind::Delta,
                Some(now - NANOS_PER_SECOND),
                now,
            ),
            // M5: DELTA start not before end.
            series(
                "run.googleapis.com/request_count",
                "cloud_run_revision",
                REVISION,
                MetricKind::Delta,
                Some(now),
                now,
            ),
            // Not a Google metric type.
            series(
                "request_count",
                "cloud_run_revision",
                REVISION,
                MetricKind::Delta,
                Some(now - NANOS_PER_SECOND),
                now,
            ),
            // M6: too far in the past.
            series(
                "run.googleapis.com/request_count",
                "cloud_run_revision",
                REVISION,
                MetricKind::Delta,
                Some(now - 30 * 3600 * NANOS_PER_SECOND),
                now - 26 * 3600 * NANOS_PER_SECOND,
            ),
        ];
        for (i, case) in cases.iter().enumerate() {
            let outcome = google.write_as_google("p", std::slice::from_ref(case), now);
            assert_eq!(outcome.errors.len(), 1, "case {i}");
        }
        // M5/M7 against the previous point: overlapping DELTA intervals.
        let first = series(
            "run.googleapis.com/request_count",
            "cloud_run_revision",
            REVISION,
            MetricKind::Delta,
            Some(now - 20 * NANOS_PER_SECOND),
            now - 10 * NANOS_PER_SECOND,
        );
        assert!(google.write_as_google("p", &[first], now).errors.is_empty());
        let overlapping = series(
            "run.googleapis.com/request_count",
            "cloud_run_revision",
            REVISION,
            MetricKind::Delta,
            Some(now - 15 * NANOS_PER_SECOND),
            now,
        );
        let outcome = google.write_as_google("p", &[overlapping], now);
        assert!(outcome.errors[0]
            .1
            .contains("Points must be written in order"));
    }

    #[test]
    fn uptime_urls_need_their_host() {
        let now = now_nanos();
        let gauge = |labels: &[(&str, &str)]| {
            series(
                "monitoring.googleapis.com/uptime_check/check_passed",
                "uptime_url",
                labels,
                MetricKind::Gauge,
                None,
                now,
            )
        };
        let google = store();
        assert_eq!(
            google.write_as_google("p", &[gauge(&[])], now).errors.len(),
            1
        );
        assert!(google
            .write_as_google("p", &[gauge(&[("host", "a.run.app")])], now)
            .errors
            .is_empty());
        assert_eq!(
            store()
                .write("p", &[gauge(&[("host", "a.run.app")])], now)
                .errors
                .len(),
            1
        );
    }
}
