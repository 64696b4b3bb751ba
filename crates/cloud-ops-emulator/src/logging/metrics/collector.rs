//! The collector: reads the entries received since its last call (a cursor
//! on entry ids, so each entry counts exactly once) and writes one DELTA
//! point per metric, label values and resource, for the user-defined
//! metrics and Cloud Run's built-in ones alike.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use gcloud_sdk::google::api::{Metric, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Point, TimeInterval, TimeSeries, TypedValue,
};

use crate::logging::store::{LogEntry, LogResource, LogStore};
use crate::monitoring::store::MetricStore;
use crate::time::timestamp::from_nanos;

use super::*;

/// What one [`LogMetricsCollector::collect`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Entries read since the previous collect.
    pub entries_read: usize,
    /// Entries evicted from the log store before they could be read: they
    /// count in no metric.
    pub entries_missed: u64,
    /// Points written.
    pub points_written: usize,
    /// Series whose point waits for the next collect because their previous
    /// point is younger than the store's sampling period (M8); nothing is lost.
    pub series_held_back: usize,
    /// Points the store refused, with why; their counts are lost.
    pub errors: Vec<String>,
}

/// One series of one metric: (metric index, metric labels, resource).
type SeriesId = (usize, BTreeMap<String, String>, LogResource);

/// What a series accumulated since its last point.
#[derive(Clone, Debug)]
struct Pending {
    /// The interval's start: the collect before the first counted entry.
    start: i64,
    count: i64,
    distribution: Option<DistributionBuilder>,
}

/// Turns log entries into DELTA points of log-based metrics and of Cloud
/// Run's request metrics; see the module documentation.
#[derive(Debug)]
pub struct LogMetricsCollector {
    metrics: Vec<Box<dyn EntryMetric>>,
    project: String,
    /// The id of the last entry read.
    cursor: u64,
    last_collect: Option<i64>,
    pending: BTreeMap<SeriesId, Pending>,
    /// End of each series' last point, for the sampling period.
    last_end: HashMap<SeriesId, i64>,
    descriptors_written: bool,
}

impl LogMetricsCollector {
    /// The given log-based metrics and Cloud Run's built-in request metrics
    /// (`run.googleapis.com/request_count`, `.../request_latencies`), written
    /// to `project` (unless a metric names its own).
    pub fn new(metrics: Vec<LogMetric>, project: impl Into<String>) -> Self {
        let mut all: Vec<Box<dyn EntryMetric>> = metrics
            .into_iter()
            .map(|m| Box::new(m) as Box<dyn EntryMetric>)
            .collect();
        all.extend(cloud_run::all());
        Self::with_metrics(all, project)
    }

    /// Exactly `metrics`, written to `project`.
    pub fn with_metrics(metrics: Vec<Box<dyn EntryMetric>>, project: impl Into<String>) -> Self {
        Self {
            metrics,
            project: project.into(),
            cursor: 0,
            last_collect: None,
            pending: BTreeMap::new(),
            last_end: HashMap::new(),
            descriptors_written: false,
        }
    }

    /// The metric types computed.
    pub fn metric_types(&self) -> Vec<String> {
        self.metrics
            .iter()
            .map(|m| m.descriptor().r#type.clone())
            .collect()
    }

    /// Counts the entries received since the previous call and writes one
    /// DELTA point per series that had entries, over (previous call, now].
    /// The first call's interval starts just before its oldest entry. A call
    /// with `now_nanos` not after the previous one does nothing.
    pub fn collect(
        &mut self,
        logs: &LogStore,
        store: &MetricStore,
        now_nanos: i64,
    ) -> CollectReport {
        let mut report = CollectReport::default();
        if self.last_collect.is_some_and(|last| now_nanos <= last) {
            return report;
        }
        self.write_descriptors(store);
        let entries = logs.entries_after(self.cursor);
        report.entries_read = entries.len();
        report.entries_missed = entries
            .first()
            .map_or(0, |first| first.id.saturating_sub(self.cursor + 1));
        let start = self.last_collect.unwrap_or_else(|| {
            let oldest = entries.iter().map(|e| e.received_nanos).min();
            oldest.unwrap_or(now_nanos).min(now_nanos).saturating_sub(1)
        });
        for entry in &entries {
            self.observe(entry, start);
        }
        if let Some(last) = entries.last() {
            self.cursor = last.id;
        }
        self.flush(store, now_nanos, &mut report);
        self.last_collect = Some(now_nanos);
        report
    }

    /// Descriptors with their labels and descriptions, before the first point.
    fn write_descriptors(&mut self, store: &MetricStore) {
        if self.descriptors_written {
            return;
        }
        for metric in &self.metrics {
            let project = metric.project().unwrap_or(&self.project);
            store.upsert_descriptor(project, metric.descriptor().clone());
        }
        self.descriptors_written = true;
    }

    fn observe(&mut self, entry: &LogEntry, start: i64) {
        let json = entry.to_cloud_logging_json();
        for (index, metric) in self.metrics.iter().enumerate() {
            let Some(observation) = metric.observe(entry, &json) else {
                continue;
            };
            let key = (index, observation.labels, entry.resource.clone());
            let pending = self.pending.entry(key).or_insert_with(|| Pending {
                start,
                count: 0,
                distribution: metric.buckets().map(DistributionBuilder::new),
            });
            pending.count += 1;
            if let (Some(builder), Some(value)) = (&mut pending.distribution, observation.value) {
                builder.add(value);
            }
        }
    }

    /// Writes every pending series whose previous point is old enough.
    fn flush(&mut self, store: &MetricStore, now: i64, report: &mut CollectReport) {
        let min_gap = i64::try_from(store.min_sampling_period().as_nanos()).unwrap_or(i64::MAX);
        let ready: Vec<SeriesId> = self
            .pending
            .keys()
            .filter(|key| {
                self.last_end
                    .get(*key)
                    .is_none_or(|last| now.saturating_sub(*last) >= min_gap)
            })
            .cloned()
            .collect();
        report.series_held_back = self.pending.len() - ready.len();
        let mut by_project: BTreeMap<String, Vec<(SeriesId, TimeSeries)>> = BTreeMap::new();
        for key in ready {
            let Some(pending) = self.pending.remove(&key) else {
                continue;
            };
            let metric = &self.metrics[key.0];
            let project = metric.project().unwrap_or(&self.project).to_owned();
            let series = time_series(metric.as_ref(), &key, &pending, now);
            by_project.entry(project).or_default().push((key, series));
        }
        for (project, batch) in by_project {
            let series: Vec<TimeSeries> = batch.iter().map(|(_, s)| s.clone()).collect();
            let outcome = store.write_as_google(&project, &series, now);
            report.points_written += outcome.points_written;
            let failed: HashMap<usize, String> = outcome.errors.into_iter().collect();
            for (index, (key, series)) in batch.into_iter().enumerate() {
                match failed.get(&index) {
                    Some(reason) => report.errors.push(format!(
                        "{}: {reason}",
                        series.metric.map(|m| m.r#type).unwrap_or_default()
                    )),
                    None => {
                        self.last_end.insert(key, now);
                    }
                }
            }
        }
    }
}

/// The DELTA point of one series over (pending.start, now].
fn time_series(
    metric: &dyn EntryMetric,
    key: &SeriesId,
    pending: &Pending,
    now: i64,
) -> TimeSeries {
    let descriptor = metric.descriptor();
    let (_, labels, resource) = key;
    let value = match &pending.distribution {
        Some(builder) => typed_value::Value::DistributionValue(builder.build()),
        None => typed_value::Value::Int64Value(pending.count),
    };
    TimeSeries {
        metric: Some(Metric {
            r#type: descriptor.r#type.clone(),
            labels: labels.clone().into_iter().collect(),
        }),
        resource: Some(MonitoredResource {
            r#type: resource.resource_type.clone(),
            labels: resource.labels.clone().into_iter().collect(),
        }),
        metric_kind: descriptor.metric_kind,
        value_type: descriptor.value_type,
        unit: descriptor.unit.clone(),
        points: vec![Point {
            interval: Some(TimeInterval {
                start_time: Some(from_nanos(pending.start)),
                end_time: Some(from_nanos(now)),
            }),
            value: Some(TypedValue { value: Some(value) }),
        }],
        ..TimeSeries::default()
    }
}
