//! Bounded, thread-safe in-memory storage of metric descriptors and series.
//!
//! A `CreateTimeSeries` request is validated and applied under one lock, so
//! the checks that depend on stored state (descriptor conflicts, point order,
//! sampling period) see a consistent view and concurrent writers never lose
//! points. Points of all series share one arrival-order queue: when the cap is
//! reached the oldest point overall is dropped and counted.
//!
//! The store is bounded twice: by a number of points and by an estimate of
//! its bytes ([`footprint`](crate::monitoring::footprint)), so that long
//! labels, distributions and exemplar attachments count for what they
//! hold. A series whose last point is evicted goes with it: one-point
//! series would otherwise pile up under any point cap. Descriptors stay,
//! as at Google, where a descriptor is configuration, not data.
//!
//! Reads never hold the lock for long: for each chunk of series they take
//! the keys under the lock, run the filter without it, and take it again to
//! copy the series that matched; writes interleave between, and a read
//! stops when the caller's [`Deadline`] passes. A long filter over many
//! series held the lock for 14 s before.
//!
//! Clients write through [`MetricStore::write`], held to every rule; the
//! emulator's own stand-ins for Google's producers (log-based metrics, Cloud
//! Run's request metrics, uptime checks) use [`MetricStore::write_as_google`],
//! which allows system metric types and resources and nothing else more.
//!
//! Why one file: the store's bounds, eviction and reads share one lock and
//! one index; more than 40 % of it is tests.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::MetricDescriptor;
use gcloud_sdk::google::monitoring::v3::TimeSeries;
use serde::Serialize;

use crate::deadline::{CutShort, Deadline, DeadlineExceeded};
use crate::monitoring::filter::{Filter, Selector, Subject};
use crate::monitoring::footprint;
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
    /// Series dropped because their last point was evicted.
    pub series_dropped: u64,
    /// Estimated bytes of the series and points held.
    pub bytes_stored: u64,
    /// Reads stopped because their client's deadline passed.
    pub reads_timed_out: u64,
}

/// A series with its points, oldest first.
#[derive(Debug, Clone)]
pub struct StoredSeries {
    /// Shared with the store's index, and with reads: a read filters
    /// series by their keys without holding the lock.
    pub key: Arc<SeriesKey>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    /// Never empty while the series is stored (it goes with its last
    /// point), so the newest is what the order and sampling rules check a
    /// write against: no second copy of it is kept.
    pub points: VecDeque<StoredPoint>,
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
    max_bytes: usize,
    min_sampling_nanos: i64,
    /// Shared with reads, which filter them without the lock.
    descriptors: BTreeMap<(String, String), Arc<MetricDescriptor>>,
    /// Slots of series; an evicted series leaves `None`, reused through `free`.
    series: Vec<Option<StoredSeries>>,
    free: Vec<usize>,
    index: HashMap<Arc<SeriesKey>, usize>,
    arrival: VecDeque<usize>,
    bytes: usize,
    stats: MetricStats,
}

/// Series a read copies per turn of the lock: small enough that a write
/// waits microseconds, not the length of the read.
const READ_CHUNK: usize = 256;

/// The default byte cap of [`MetricStore`]: a million scalar points take
/// about a quarter of it.
pub const DEFAULT_MAX_BYTES: usize = 512 * 1024 * 1024;

impl MetricStore {
    /// An empty store keeping at most `max_points` points.
    pub fn new(max_points: usize, min_sampling_period: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max_points,
                max_bytes: DEFAULT_MAX_BYTES,
                min_sampling_nanos: i64::try_from(min_sampling_period.as_nanos())
                    .unwrap_or(i64::MAX),
                descriptors: BTreeMap::new(),
                series: Vec::new(),
                free: Vec::new(),
                index: HashMap::new(),
                arrival: VecDeque::new(),
                bytes: 0,
                stats: MetricStats::default(),
            })),
        }
    }

    /// The same store, holding at most about `max_bytes` of series and points.
    #[must_use]
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        self.lock().max_bytes = max_bytes;
        self
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

    /// Counts a read stopped by its client's deadline.
    pub fn record_read_timeout(&self) {
        self.lock().stats.reads_timed_out += 1;
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
        let shared = self
            .lock()
            .descriptors
            .get(&(project.to_string(), metric_type.to_string()))
            .cloned();
        shared.map(|d| (*d).clone())
    }

    /// Descriptors of `project` matching `filter`, ordered by type.
    pub fn descriptors(&self, project: &str, filter: Option<&Filter>) -> Vec<MetricDescriptor> {
        self.descriptors_by(project, filter, Deadline::NONE)
            .unwrap_or_default()
    }

    /// [`descriptors`](Self::descriptors) that gives up when `deadline`
    /// passes. Descriptors are never evicted, so a client can make any
    /// number of them: they are read as series are, [`READ_CHUNK`] per
    /// turn of the lock, filtered without it.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when it passed before the read was done.
    pub fn descriptors_by(
        &self,
        project: &str,
        filter: Option<&Filter>,
        deadline: Deadline,
    ) -> Result<Vec<MetricDescriptor>, DeadlineExceeded> {
        let mut out = Vec::new();
        let mut chunk: Vec<Arc<MetricDescriptor>> = Vec::with_capacity(READ_CHUNK);
        // The project's descriptors are contiguous in the map; each chunk
        // resumes after the last type seen, whatever was written meanwhile.
        let mut after: Option<String> = None;
        loop {
            deadline.check()?;
            chunk.clear();
            {
                let inner = self.lock();
                let from = match after.take() {
                    Some(t) => Bound::Excluded((project.to_owned(), t)),
                    None => Bound::Included((project.to_owned(), String::new())),
                };
                chunk.extend(
                    inner
                        .descriptors
                        .range((from, Bound::Unbounded))
                        .take_while(|((p, _), _)| p == project)
                        .take(READ_CHUNK)
                        .map(|(_, d)| Arc::clone(d)),
                );
            }
            let Some(last) = chunk.last() else {
                return Ok(out);
            };
            after = Some(last.r#type.clone());
            out.extend(
                chunk
                    .iter()
                    .filter(|d| filter.is_none_or(|f| f.matches(&DescriptorSubject(d, project))))
                    .map(|d| (**d).clone()),
            );
        }
    }

    /// M15: creates or replaces a descriptor, never removing labels it had.
    pub fn upsert_descriptor(
        &self,
        project: &str,
        mut descriptor: MetricDescriptor,
    ) -> MetricDescriptor {
        let mut inner = self.lock();
        let key = (project.to_string(), descriptor.r#type.clone());
        if let Some(old) = inner.descriptors.get(&key).cloned() {
            for label in &old.labels {
                if !descriptor.labels.iter().any(|l| l.key == label.key) {
                    descriptor.labels.push(label.clone());
                }
            }
        }
        descriptor.name = descriptor_name(project, &descriptor.r#type);
        inner.descriptors.insert(key, Arc::new(descriptor.clone()));
        inner.stats.descriptors = inner.descriptors.len() as u64;
        descriptor
    }

    /// The projects that have series, sorted (the console shows them all).
    pub fn projects(&self) -> Vec<String> {
        match self.projects_by(Deadline::NONE) {
            Ok(projects) | Err(CutShort(projects)) => projects,
        }
    }

    /// [`projects`](Self::projects) that stops looking when `deadline` passes.
    ///
    /// # Errors
    /// [`CutShort`] with the projects seen by then.
    pub fn projects_by(&self, deadline: Deadline) -> Result<Vec<String>, CutShort<Vec<String>>> {
        let mut projects = std::collections::BTreeSet::new();
        let scanned = self.scan_matching(
            deadline,
            |key| {
                if !projects.contains(&key.project) {
                    projects.insert(key.project.clone());
                }
                false
            },
            |_| {},
        );
        let projects = projects.into_iter().collect();
        match scanned {
            Ok(()) => Ok(projects),
            Err(DeadlineExceeded) => Err(CutShort(projects)),
        }
    }

    /// Copies of the series of `project` matching `filter`, with all their points.
    pub fn series(&self, project: &str, filter: &Filter) -> Vec<StoredSeries> {
        let mut out = Vec::new();
        let _ = self.scan(Deadline::NONE, |s| {
            if s.key.project == project && filter.matches(s.key.as_ref()) {
                out.push(s.clone());
            }
        });
        out
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
        self.series_within_by(project, filter, (from, to), Deadline::NONE)
            .unwrap_or_default()
    }

    /// [`series_within`](Self::series_within) that gives up when `deadline` passes.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when it passed before the read was done.
    pub fn series_within_by(
        &self,
        project: &str,
        filter: &Filter,
        (from, to): (i64, i64),
        deadline: Deadline,
    ) -> Result<Vec<StoredSeries>, DeadlineExceeded> {
        let mut out = Vec::new();
        self.scan_matching(
            deadline,
            |key| key.project == project && filter.matches(key),
            |s| out.push(s.within(from, to)),
        )?;
        Ok(out)
    }

    /// Visits every series, [`READ_CHUNK`] slots per turn of the lock,
    /// checking `deadline` between turns. A series written during the scan
    /// may or may not be seen; each one seen is consistent.
    fn scan(
        &self,
        deadline: Deadline,
        mut visit: impl FnMut(&StoredSeries),
    ) -> Result<(), DeadlineExceeded> {
        self.scan_matching(deadline, |_| true, |s| visit(s))
    }

    /// [`scan`](Self::scan) of the series whose key passes `keep`. The keys
    /// of a chunk are taken under the lock, `keep` (a filter, which may be
    /// long) runs without it, and the lock is taken again to visit the
    /// series kept: writers wait for copies, never for a filter.
    fn scan_matching(
        &self,
        deadline: Deadline,
        mut keep: impl FnMut(&SeriesKey) -> bool,
        mut visit: impl FnMut(&StoredSeries),
    ) -> Result<(), DeadlineExceeded> {
        let mut next = 0;
        let mut keys: Vec<(usize, Arc<SeriesKey>)> = Vec::with_capacity(READ_CHUNK);
        loop {
            deadline.check()?;
            keys.clear();
            let last = {
                let inner = self.lock();
                let end = (next + READ_CHUNK).min(inner.series.len());
                for id in next.min(end)..end {
                    if let Some(series) = &inner.series[id] {
                        keys.push((id, Arc::clone(&series.key)));
                    }
                }
                next = end;
                end >= inner.series.len()
            };
            keys.retain(|(_, key)| keep(key));
            if !keys.is_empty() {
                let inner = self.lock();
                for (id, key) in &keys {
                    // The slot may have been evicted and reused meanwhile.
                    match &inner.series[*id] {
                        Some(series) if Arc::ptr_eq(&series.key, key) => visit(series),
                        _ => {}
                    }
                }
            }
            if last {
                return Ok(());
            }
        }
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
            .get(&(project.to_string(), metric_type.clone()))
            .map(Arc::as_ref);
        let valid = validate_series_as(writer, index, project, ts, descriptor, now_nanos)?;
        if !seen.insert(valid.key.clone()) {
            return Err(format!(
                "Field timeSeries[{index}] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request."
            ));
        }
        if let Some(series) = self.stored(&valid.key) {
            if let Some(last) = series.points.back() {
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
                    let mut descriptor = (**existing).clone();
                    descriptor.labels.extend(new_labels);
                    valid.descriptor_update = Some(descriptor);
                }
            }
            (None, wanted) => valid.descriptor_update = wanted,
        }
        if let Some(series) = self.stored(&valid.key) {
            if let Some(last) = series.points.back() {
                check_against_last(&metric_type, series.kind, last, &valid.point, 0)?;
            }
        }
        Ok(())
    }

    fn stored(&self, key: &SeriesKey) -> Option<&StoredSeries> {
        self.index.get(key).and_then(|id| self.series[*id].as_ref())
    }

    fn apply(&mut self, project: &str, valid: ValidSeries) {
        if let Some(mut descriptor) = valid.descriptor_update {
            descriptor.name = descriptor_name(project, &descriptor.r#type);
            self.descriptors.insert(
                (project.to_string(), descriptor.r#type.clone()),
                Arc::new(descriptor),
            );
            self.stats.descriptors = self.descriptors.len() as u64;
        }
        let id = match self.index.get(&valid.key) {
            Some(id) => *id,
            None => self.insert_series(valid.key, valid.kind, valid.value_type),
        };
        self.bytes += footprint::point_bytes(&valid.point);
        if let Some(series) = self.series[id].as_mut() {
            series.points.push_back(valid.point);
        }
        self.arrival.push_back(id);
        self.stats.points_accepted += 1;
        self.evict();
    }

    fn insert_series(&mut self, key: SeriesKey, kind: MetricKind, value_type: ValueType) -> usize {
        self.bytes += footprint::series_bytes(&key);
        let key = Arc::new(key);
        let series = StoredSeries {
            key: Arc::clone(&key),
            kind,
            value_type,
            points: VecDeque::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id] = Some(series);
                id
            }
            None => {
                self.series.push(Some(series));
                self.series.len() - 1
            }
        };
        self.index.insert(key, id);
        self.stats.series += 1;
        id
    }

    /// Drops the oldest points while either cap is exceeded, and a series
    /// with its last point, so a later write starts it afresh.
    fn evict(&mut self) {
        while self.arrival.len() > self.max_points || self.bytes > self.max_bytes {
            let Some(id) = self.arrival.pop_front() else {
                break;
            };
            // Each series' points are in arrival order, so its front is the
            // point this queue entry stands for.
            let Some(series) = self.series[id].as_mut() else {
                continue;
            };
            if let Some(point) = series.points.pop_front() {
                self.bytes -= footprint::point_bytes(&point);
            }
            self.stats.points_dropped += 1;
            if series.points.is_empty() {
                self.remove_series(id);
            }
        }
        self.stats.points_stored = self.arrival.len() as u64;
        self.stats.bytes_stored = self.bytes as u64;
    }

    fn remove_series(&mut self, id: usize) {
        if let Some(series) = self.series[id].take() {
            self.bytes -= footprint::series_bytes(&series.key);
            self.index.remove(series.key.as_ref());
            self.free.push(id);
            self.stats.series -= 1;
            self.stats.series_dropped += 1;
        }
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

    /// A gauge of `custom.googleapis.com/requests` on a task, its series told
    /// apart by `label`.
    fn labelled(label: &str, end: i64) -> TimeSeries {
        let mut ts = counted(MetricKind::Gauge, end, end, 1);
        ts.metric
            .as_mut()
            .unwrap()
            .labels
            .insert("path".into(), label.into());
        ts
    }

    #[test]
    fn a_series_goes_with_its_last_point() {
        let now = now_nanos();
        let store = MetricStore::new(10, Duration::from_secs(5));
        for n in 0..100 {
            let outcome = store.write("p", &[labelled(&n.to_string(), now)], now);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        }
        let stats = store.stats();
        assert_eq!(
            (stats.series, stats.series_dropped, stats.points_stored),
            (10, 90, 10)
        );
        let filter =
            crate::monitoring::filter::parse("metric.type = \"custom.googleapis.com/requests\"")
                .unwrap();
        let kept: Vec<String> = store
            .series("p", &filter)
            .iter()
            .map(|s| s.key.metric_labels["path"].clone())
            .collect();
        assert_eq!(kept.len(), 10);
        assert!(
            kept.iter().all(|l| l.parse::<u32>().unwrap() >= 90),
            "{kept:?}"
        );
        // An evicted series starts afresh: an older point is taken again.
        let earlier = store.write("p", &[labelled("0", now - NANOS_PER_SECOND)], now);
        assert!(earlier.errors.is_empty(), "{:?}", earlier.errors);
    }

    #[test]
    fn the_byte_cap_counts_long_labels_not_just_points() {
        let now = now_nanos();
        let cap = 1024 * 1024;
        let store = MetricStore::new(1_000_000, Duration::from_secs(5)).with_max_bytes(cap);
        let long = "x".repeat(1000);
        for n in 0..2_000 {
            let outcome = store.write("p", &[labelled(&format!("{n}{long}"), now)], now);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        }
        let stats = store.stats();
        assert!(stats.bytes_stored <= cap as u64, "{stats:?}");
        // A point cap alone kept all 2 000 series; the byte cap keeps what
        // fits, and fills up to it.
        assert!(stats.series < 2_000, "{stats:?}");
        assert!(stats.bytes_stored > cap as u64 / 10 * 9, "{stats:?}");
        assert_eq!(stats.series + stats.series_dropped, 2_000);
    }

    #[test]
    fn bytes_are_given_back_exactly_when_everything_is_evicted() {
        let now = now_nanos();
        let store = MetricStore::new(1, Duration::from_secs(5));
        store.write("p", &[labelled(&"a".repeat(500), now)], now);
        let one = store.stats().bytes_stored;
        store.write("p", &[labelled("b", now)], now);
        let stats = store.stats();
        assert!(stats.bytes_stored < one, "{stats:?}");
        assert_eq!((stats.series, stats.points_stored), (1, 1));
    }

    #[test]
    fn resource_labels_the_type_does_not_define_are_refused() {
        let now = now_nanos();
        let mut ts = counted(MetricKind::Gauge, now, now, 1);
        ts.resource
            .as_mut()
            .unwrap()
            .labels
            .insert("pod_id".into(), "x".repeat(100_000));
        let outcome = store().write("p", &[ts], now);
        assert_eq!(
            outcome.errors,
            vec![(0, "Unrecognized resource label: pod_id".to_owned())]
        );
        // project_id is defined for every type.
        let mut ts = counted(MetricKind::Gauge, now, now, 1);
        ts.resource
            .as_mut()
            .unwrap()
            .labels
            .insert("project_id".into(), "p".into());
        assert!(store().write("p", &[ts], now).errors.is_empty());
        // And for Google's own resources too.
        let mut extra = REVISION.to_vec();
        extra.push(("zone", "a"));
        let delta = series(
            "run.googleapis.com/request_count",
            "cloud_run_revision",
            &extra,
            MetricKind::Delta,
            Some(now - NANOS_PER_SECOND),
            now,
        );
        let outcome = store().write_as_google("p", &[delta], now);
        assert_eq!(outcome.errors[0].1, "Unrecognized resource label: zone");
    }

    #[test]
    fn a_read_past_its_deadline_stops() {
        let now = now_nanos();
        let store = MetricStore::new(10_000, Duration::from_secs(5));
        for n in 0..1_000 {
            store.write("p", &[labelled(&n.to_string(), now)], now);
        }
        let filter =
            crate::monitoring::filter::parse("metric.type = \"custom.googleapis.com/requests\"")
                .unwrap();
        let all = store.series_within_by("p", &filter, (0, now), Deadline::NONE);
        assert_eq!(all.map(|s| s.len()), Ok(1_000));
        let late = Deadline::after(Duration::ZERO);
        assert_eq!(
            store
                .series_within_by("p", &filter, (0, now), late)
                .map(|s| s.len()),
            Err(DeadlineExceeded)
        );
    }
}
