//! How OpenTelemetry metrics become Cloud Monitoring time series: pure
//! functions, no I/O, so that every rule is unit-tested.
//!
//! The mapping follows Google's official exporters (see
//! `shared/reference/exporter-behaviour.md`):
//! - metric types under `workload.googleapis.com/`, names sanitised to what
//!   Cloud Monitoring accepts (rule M9), label keys to `[a-z0-9_]` (M10);
//! - monotonic sums -> CUMULATIVE INT64/DOUBLE with the SDK's stable start
//!   time, histograms -> CUMULATIVE DISTRIBUTION with explicit bounds,
//!   gauges (and non-monotonic sums) -> GAUGE (M5, M11);
//! - every series on the `generic_task` of this instance, so two instances
//!   never write the same series (M12).
//!
//! The SDK does not track the sum of squared deviation a distribution
//! carries; [`Deviations`] does, next to the histogram, and when it has not
//! seen exactly the points the SDK collected the value is estimated from the
//! buckets instead.
//!
//! Why one file: each instrument's descriptor and its point mapping are
//! defined side by side, as Google's exporters do, so a type and its values
//! never disagree.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{
    label_descriptor, Distribution, LabelDescriptor, Metric, MetricDescriptor, MonitoredResource,
};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Point, TimeInterval, TimeSeries, TypedValue,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Gauge, Histogram, MetricData, ResourceMetrics, Sum,
};
use opentelemetry_sdk::metrics::Temporality;
use prost_types::Timestamp;

use crate::telemetry::resource::InstanceIdentity;

/// Where user-defined metrics of workloads live; Google's exporters' default.
pub const METRIC_TYPE_PREFIX: &str = "workload.googleapis.com/";

/// The longest relative metric name Cloud Monitoring accepts (M9).
pub const MAX_METRIC_NAME_CHARS: usize = 100;

/// The longest label value Cloud Monitoring accepts, in bytes (M10).
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// Google's Go exporter keeps a cumulative point's end at least this far
/// after its start, since M5 wants start strictly before end.
const MIN_CUMULATIVE_SPAN: Duration = Duration::from_millis(1);

/// What one custom metric is: the source of its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    /// The OpenTelemetry instrument name, e.g. `app.orders`.
    pub name: &'static str,
    pub description: &'static str,
    /// UCUM, as Cloud Monitoring takes it: `s`, `1`.
    pub unit: &'static str,
    pub kind: MetricKind,
    pub value_type: ValueType,
    /// The label keys as written (already sanitised).
    pub labels: &'static [&'static str],
}

/// `workload.googleapis.com/<name>`, with characters Cloud Monitoring does
/// not accept replaced by `_` and the name cut to 100 characters.
pub fn metric_type(name: &str) -> String {
    let relative: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_METRIC_NAME_CHARS)
        .collect();
    let relative = if relative.is_empty() {
        "unnamed".to_owned()
    } else {
        relative
    };
    format!("{METRIC_TYPE_PREFIX}{relative}")
}

/// A label key as Cloud Monitoring accepts it: `[a-z][a-z0-9_]*`. Like
/// Google's exporters, every other character becomes `_`, and a key that
/// does not start with a letter gets the prefix `key_`.
pub fn label_key(key: &str) -> String {
    let sanitised: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if sanitised.starts_with(|c: char| c.is_ascii_lowercase()) {
        sanitised
    } else {
        format!("key_{sanitised}")
    }
}

/// A label value: metric labels are STRING on workload metrics (M10), so
/// numbers are written in decimal (`200` for a status code).
pub fn label_value(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.as_str().to_owned(),
        other => other.to_string(),
    };
    truncate_utf8(text, MAX_LABEL_VALUE_BYTES)
}

fn truncate_utf8(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The metric labels of a set of attributes, in a stable order.
pub fn labels_of<'a>(
    attributes: impl IntoIterator<Item = &'a KeyValue>,
) -> BTreeMap<String, String> {
    attributes
        .into_iter()
        .map(|kv| (label_key(kv.key.as_str()), label_value(&kv.value)))
        .collect()
}

/// The `generic_task` this instance writes to: one task per instance, so
/// instances never collide on a series.
pub fn generic_task(identity: &InstanceIdentity) -> MonitoredResource {
    let labels = [
        ("project_id", identity.project_id.as_str()),
        ("location", identity.location()),
        ("namespace", identity.service_name.as_str()),
        ("job", identity.revision.as_str()),
        ("task_id", identity.instance_id.as_str()),
    ];
    MonitoredResource {
        r#type: "generic_task".to_owned(),
        labels: labels
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    }
}

/// The descriptor of `spec`, to create once at start-up.
pub fn descriptor(project_id: &str, spec: &MetricSpec) -> MetricDescriptor {
    let metric_type = metric_type(spec.name);
    MetricDescriptor {
        name: format!("projects/{project_id}/metricDescriptors/{metric_type}"),
        r#type: metric_type,
        labels: spec
            .labels
            .iter()
            .map(|key| LabelDescriptor {
                key: (*key).to_owned(),
                value_type: label_descriptor::ValueType::String as i32,
                description: String::new(),
            })
            .collect(),
        metric_kind: spec.kind as i32,
        value_type: spec.value_type as i32,
        unit: spec.unit.to_owned(),
        description: spec.description.to_owned(),
        display_name: spec.name.to_owned(),
        ..MetricDescriptor::default()
    }
}

/// What a histogram point says, in Cloud Monitoring's terms.
#[derive(Clone, Copy, Debug)]
pub struct HistogramPoint<'a> {
    /// Explicit bucket bounds, strictly increasing.
    pub bounds: &'a [f64],
    /// `bounds.len() + 1` counts: underflow, finite buckets, overflow.
    pub bucket_counts: &'a [u64],
    pub count: u64,
    pub sum: f64,
    /// Exact when known; else estimated from the buckets.
    pub sum_of_squared_deviation: Option<f64>,
}

/// A DISTRIBUTION value with explicit buckets (M13): mean = sum / count,
/// and all-zero statistics for an empty distribution.
pub fn distribution(point: &HistogramPoint<'_>) -> Distribution {
    let count = saturating_i64(point.count);
    let mean = if point.count == 0 {
        0.0
    } else {
        point.sum / point.count as f64
    };
    let sum_of_squared_deviation = if point.count == 0 {
        0.0
    } else {
        point
            .sum_of_squared_deviation
            .unwrap_or_else(|| {
                estimated_sum_of_squared_deviation(point.bounds, point.bucket_counts, mean)
            })
            .max(0.0)
    };
    Distribution {
        count,
        mean,
        sum_of_squared_deviation,
        range: None,
        bucket_options: Some(BucketOptions {
            options: Some(bucket_options::Options::ExplicitBuckets(
                bucket_options::Explicit {
                    bounds: point.bounds.to_vec(),
                },
            )),
        }),
        bucket_counts: point
            .bucket_counts
            .iter()
            .copied()
            .map(saturating_i64)
            .collect(),
        exemplars: Vec::new(),
    }
}

/// The sum of squared deviation when only the buckets are known: each value
/// taken at its bucket's midpoint (the underflow bucket's at half its upper
/// bound, the overflow bucket's at the last bound).
pub fn estimated_sum_of_squared_deviation(bounds: &[f64], bucket_counts: &[u64], mean: f64) -> f64 {
    bucket_counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(index, count)| {
            let representative = match (
                index.checked_sub(1).and_then(|i| bounds.get(i)),
                bounds.get(index),
            ) {
                (Some(lower), Some(upper)) => (lower + upper) / 2.0,
                (None, Some(upper)) => upper / 2.0,
                (Some(lower), None) => *lower,
                (None, None) => mean,
            };
            *count as f64 * (representative - mean).powi(2)
        })
        .sum()
}

/// Count, mean and sum of squared deviation of the values seen, updated one
/// value at a time (Welford's method, numerically stable).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunningDeviation {
    pub count: u64,
    pub mean: f64,
    pub sum_of_squared_deviation: f64,
}

impl RunningDeviation {
    pub fn add(&mut self, value: f64) {
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.sum_of_squared_deviation += delta * (value - self.mean);
    }
}

/// A histogram series: its instrument's name and its labels.
type SeriesId = (String, BTreeMap<String, String>);

/// The sum of squared deviation of each histogram series, tracked beside
/// the SDK's histogram. Bounded: past `capacity` series, new ones are not
/// tracked and their value is estimated from the buckets.
#[derive(Debug)]
pub struct Deviations {
    series: Mutex<DeviationSeries>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct DeviationSeries {
    running: Vec<RunningDeviation>,
    /// Index into `running` by series, for the exporter.
    by_id: HashMap<SeriesId, usize>,
    /// Index into `running` by a hash of the instrument's name and the
    /// attributes as recorded, then by those attributes: a request's
    /// recording finds its series without building its labels (issue #10:
    /// that took seven allocations per request).
    by_attributes: HashMap<u64, Vec<(String, Vec<KeyValue>, usize)>>,
}

/// One series of [`Deviations`], to record into without finding it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviationSeriesId(usize);

impl Deviations {
    pub fn new(capacity: usize) -> Self {
        Self {
            series: Mutex::new(DeviationSeries::default()),
            capacity,
        }
    }

    /// Records `value` for the series of instrument `name` with `attributes`.
    pub fn record(&self, name: &str, attributes: &[KeyValue], value: f64) {
        if let Some(series) = self.series_of(name, attributes) {
            self.record_in(series, value);
        }
    }

    /// Records `value` in a series [`Deviations::series_of`] found.
    pub fn record_in(&self, series: DeviationSeriesId, value: f64) {
        self.lock().running[series.0].add(value);
    }

    /// The series of instrument `name` with `attributes`, made if new;
    /// `None` past the capacity.
    pub fn series_of(&self, name: &str, attributes: &[KeyValue]) -> Option<DeviationSeriesId> {
        let hash = attributes_hash(name, attributes);
        let mut series = self.lock();
        let known = series.by_attributes.get(&hash).and_then(|entries| {
            entries
                .iter()
                .find(|(known_name, known, _)| known_name == name && known.as_slice() == attributes)
                .map(|(_, _, index)| *index)
        });
        let index = match known {
            Some(index) => index,
            None => {
                let id = (name.to_owned(), labels_of(attributes));
                let index = match series.by_id.get(&id) {
                    // The same series, its attributes in another order.
                    Some(index) => *index,
                    None if series.running.len() >= self.capacity => return None,
                    None => {
                        let index = series.running.len();
                        series.running.push(RunningDeviation::default());
                        series.by_id.insert(id, index);
                        index
                    }
                };
                // A NaN never equals itself: such attributes would be
                // cached again at every recording.
                let has_nan = attributes
                    .iter()
                    .any(|kv| matches!(kv.value, Value::F64(number) if number.is_nan()));
                if !has_nan {
                    series.by_attributes.entry(hash).or_default().push((
                        name.to_owned(),
                        attributes.to_vec(),
                        index,
                    ));
                }
                index
            }
        };
        Some(DeviationSeriesId(index))
    }

    /// The exact value, when exactly `count` values were recorded (a value
    /// recorded while the SDK collected would make it disagree).
    pub fn lookup(&self, name: &str, labels: &BTreeMap<String, String>, count: u64) -> Option<f64> {
        let series = self.lock();
        series
            .by_id
            .get(&(name.to_owned(), labels.clone()))
            .map(|index| series.running[*index])
            .filter(|running| running.count == count)
            .map(|running| running.sum_of_squared_deviation)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeviationSeries> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A hash of an instrument's name and attributes as recorded (in their
/// order), computed without allocating.
fn attributes_hash(name: &str, attributes: &[KeyValue]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    for kv in attributes {
        kv.key.as_str().hash(&mut hasher);
        match &kv.value {
            Value::String(text) => text.as_str().hash(&mut hasher),
            Value::I64(number) => number.hash(&mut hasher),
            Value::Bool(flag) => flag.hash(&mut hasher),
            Value::F64(number) => number.to_bits().hash(&mut hasher),
            // Arrays (never recorded here) all share one hash; the
            // comparison of the attributes still tells them apart.
            _ => 0u8.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// One point to write, and what identifies its series among this
/// instance's (the resource is the same for all).
#[derive(Clone, Debug, PartialEq)]
pub struct MappedSeries {
    pub key: String,
    pub end: SystemTime,
    pub series: TimeSeries,
}

/// Every point of `metrics` as a time series on `resource`.
///
/// Kinds the service does not produce (DELTA temporality, exponential
/// histograms) are left out rather than written wrongly.
pub fn to_time_series(
    metrics: &ResourceMetrics,
    resource: &MonitoredResource,
    deviations: &Deviations,
) -> Vec<MappedSeries> {
    let mut out = Vec::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let context = SeriesContext {
                name: metric.name(),
                metric_type: metric_type(metric.name()),
                resource,
                deviations,
            };
            match metric.data() {
                AggregatedMetrics::F64(data) => context.map(data, &mut out),
                AggregatedMetrics::U64(data) => context.map(data, &mut out),
                AggregatedMetrics::I64(data) => context.map(data, &mut out),
            }
        }
    }
    out
}

/// A number the SDK aggregates, as Cloud Monitoring's typed values.
trait Number: Copy {
    fn typed(self) -> typed_value::Value;
    fn as_f64(self) -> f64;
}

impl Number for f64 {
    fn typed(self) -> typed_value::Value {
        typed_value::Value::DoubleValue(self)
    }
    fn as_f64(self) -> f64 {
        self
    }
}

impl Number for u64 {
    fn typed(self) -> typed_value::Value {
        typed_value::Value::Int64Value(saturating_i64(self))
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Number for i64 {
    fn typed(self) -> typed_value::Value {
        typed_value::Value::Int64Value(self)
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

struct SeriesContext<'a> {
    name: &'a str,
    metric_type: String,
    resource: &'a MonitoredResource,
    deviations: &'a Deviations,
}

impl SeriesContext<'_> {
    fn map<T: Number>(&self, data: &MetricData<T>, out: &mut Vec<MappedSeries>) {
        match data {
            MetricData::Gauge(gauge) => self.gauge(gauge, out),
            MetricData::Sum(sum) => self.sum(sum, out),
            MetricData::Histogram(histogram) => self.histogram(histogram, out),
            MetricData::ExponentialHistogram(_) => {}
        }
    }

    fn gauge<T: Number>(&self, gauge: &Gauge<T>, out: &mut Vec<MappedSeries>) {
        for point in gauge.data_points() {
            let labels = labels_of(point.attributes());
            out.push(self.series(
                labels,
                MetricKind::Gauge,
                None,
                gauge.time(),
                point.value().typed(),
            ));
        }
    }

    fn sum<T: Number>(&self, sum: &Sum<T>, out: &mut Vec<MappedSeries>) {
        if sum.temporality() != Temporality::Cumulative {
            return;
        }
        // An up-down counter is a level, not a total: Google maps it to GAUGE.
        let start = sum.is_monotonic().then(|| sum.start_time());
        let kind = if start.is_some() {
            MetricKind::Cumulative
        } else {
            MetricKind::Gauge
        };
        for point in sum.data_points() {
            let labels = labels_of(point.attributes());
            out.push(self.series(labels, kind, start, sum.time(), point.value().typed()));
        }
    }

    fn histogram<T: Number>(&self, histogram: &Histogram<T>, out: &mut Vec<MappedSeries>) {
        if histogram.temporality() != Temporality::Cumulative {
            return;
        }
        for point in histogram.data_points() {
            let labels = labels_of(point.attributes());
            let bounds: Vec<f64> = point.bounds().collect();
            let bucket_counts: Vec<u64> = point.bucket_counts().collect();
            let exact = self.deviations.lookup(self.name, &labels, point.count());
            let value = distribution(&HistogramPoint {
                bounds: &bounds,
                bucket_counts: &bucket_counts,
                count: point.count(),
                sum: point.sum().as_f64(),
                sum_of_squared_deviation: exact,
            });
            out.push(self.series(
                labels,
                MetricKind::Cumulative,
                Some(histogram.start_time()),
                histogram.time(),
                typed_value::Value::DistributionValue(value),
            ));
        }
    }

    fn series(
        &self,
        labels: BTreeMap<String, String>,
        kind: MetricKind,
        start: Option<SystemTime>,
        end: SystemTime,
        value: typed_value::Value,
    ) -> MappedSeries {
        let end = match start {
            Some(start) => end.max(start + MIN_CUMULATIVE_SPAN),
            None => end,
        };
        let key = series_key(&self.metric_type, &labels);
        let value_type = match &value {
            typed_value::Value::DistributionValue(_) => ValueType::Distribution,
            typed_value::Value::DoubleValue(_) => ValueType::Double,
            _ => ValueType::Int64,
        };
        MappedSeries {
            key,
            end,
            series: TimeSeries {
                metric: Some(Metric {
                    r#type: self.metric_type.clone(),
                    labels: labels.into_iter().collect(),
                }),
                resource: Some(self.resource.clone()),
                metric_kind: kind as i32,
                value_type: value_type as i32,
                points: vec![Point {
                    interval: Some(TimeInterval {
                        start_time: start.map(timestamp),
                        end_time: Some(timestamp(end)),
                    }),
                    value: Some(TypedValue { value: Some(value) }),
                }],
                ..TimeSeries::default()
            },
        }
    }
}

/// `type{k=v,...}`: unique per series of one resource.
fn series_key(metric_type: &str, labels: &BTreeMap<String, String>) -> String {
    let mut key = metric_type.to_owned();
    key.push('{');
    for (name, value) in labels {
        key.push_str(name);
        key.push('=');
        key.push_str(value);
        key.push(',');
    }
    key.push('}');
    key
}

/// A protobuf timestamp; times before 1970 (a broken clock) become 1970.
pub fn timestamp(time: SystemTime) -> Timestamp {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_types_are_workload_metrics_with_safe_names() {
        assert_eq!(
            metric_type("http.server.request.duration"),
            "workload.googleapis.com/http.server.request.duration"
        );
        assert_eq!(
            metric_type("app orders-µ"),
            "workload.googleapis.com/app_orders__"
        );
        let long = "a".repeat(150);
        assert_eq!(metric_type(&long).len(), METRIC_TYPE_PREFIX.len() + 100);
    }

    #[test]
    fn label_keys_are_lowercase_alphanumeric_starting_with_a_letter() {
        assert_eq!(label_key("http.request.method"), "http_request_method");
        assert_eq!(label_key("error.type"), "error_type");
        assert_eq!(label_key("Service-Name"), "service_name");
        assert_eq!(label_key("9lives"), "key_9lives");
        assert_eq!(label_key("_private"), "key__private");
    }

    #[test]
    fn label_values_are_strings_within_1024_bytes() {
        assert_eq!(label_value(&Value::I64(200)), "200");
        assert_eq!(label_value(&Value::from("GET")), "GET");
        let long = "é".repeat(600); // 1200 bytes
        let cut = label_value(&Value::from(long));
        assert!(cut.len() <= 1024 && cut.chars().all(|c| c == 'é'));
    }

    /// Five latencies in seconds, placed in buckets and summarised by hand:
    /// bounds [0.01, 0.1, 1]; values 0.005 | 0.02, 0.05 | 0.5 | 2.0.
    /// count 5, sum 2.575, mean 0.515;
    /// deviations -0.51, -0.495, -0.465, -0.015, 1.485, whose squares
    /// 0.2601 + 0.245025 + 0.216225 + 0.000225 + 2.205225 = 2.9268.
    #[test]
    fn a_distribution_has_the_buckets_mean_and_deviation_computed_by_hand() {
        let values = [0.005, 0.02, 0.05, 0.5, 2.0];
        let mut running = RunningDeviation::default();
        values.iter().for_each(|value| running.add(*value));
        assert_eq!(running.count, 5);
        assert!((running.mean - 0.515).abs() < 1e-12);
        assert!((running.sum_of_squared_deviation - 2.9268).abs() < 1e-12);

        let bounds = [0.01, 0.1, 1.0];
        let counts = [1, 2, 1, 1];
        let value = distribution(&HistogramPoint {
            bounds: &bounds,
            bucket_counts: &counts,
            count: 5,
            sum: 2.575,
            sum_of_squared_deviation: Some(running.sum_of_squared_deviation),
        });
        assert_eq!(value.count, 5);
        assert!((value.mean - 0.515).abs() < 1e-12);
        assert!((value.sum_of_squared_deviation - 2.9268).abs() < 1e-12);
        assert_eq!(value.bucket_counts, vec![1, 2, 1, 1]);
        assert_eq!(
            value.bucket_options.unwrap().options,
            Some(bucket_options::Options::ExplicitBuckets(
                bucket_options::Explicit {
                    bounds: vec![0.01, 0.1, 1.0]
                }
            ))
        );
    }

    /// Midpoints 0.005, 0.055, 0.55 and the last bound 1.0 for the overflow:
    /// mean 0.515, so 1*(0.51)^2 + 2*(0.46)^2 + 1*(0.035)^2 + 1*(0.485)^2
    /// = 0.2601 + 0.4232 + 0.001225 + 0.235225 = 0.91975.
    #[test]
    fn without_the_exact_value_the_deviation_is_estimated_from_the_buckets() {
        let estimate = estimated_sum_of_squared_deviation(&[0.01, 0.1, 1.0], &[1, 2, 1, 1], 0.515);
        assert!((estimate - 0.91975).abs() < 1e-12, "{estimate}");
    }

    #[test]
    fn an_empty_distribution_has_zero_mean_and_deviation() {
        let value = distribution(&HistogramPoint {
            bounds: &[1.0],
            bucket_counts: &[0, 0],
            count: 0,
            sum: 0.0,
            sum_of_squared_deviation: Some(3.0),
        });
        assert_eq!(
            (value.count, value.mean, value.sum_of_squared_deviation),
            (0, 0.0, 0.0)
        );
    }

    #[test]
    fn deviations_are_exact_only_when_the_counts_agree_and_stay_bounded() {
        let deviations = Deviations::new(1);
        let get = [KeyValue::new("http.request.method", "GET")];
        deviations.record("d", &get, 1.0);
        deviations.record("d", &get, 3.0);
        let labels = labels_of(&get);
        assert_eq!(deviations.lookup("d", &labels, 2), Some(2.0));
        assert_eq!(deviations.lookup("d", &labels, 3), None);
        let post = [KeyValue::new("http.request.method", "POST")];
        deviations.record("d", &post, 1.0);
        assert_eq!(deviations.lookup("d", &labels_of(&post), 1), None);
    }

    #[test]
    fn the_resource_is_this_instances_generic_task() {
        let identity = InstanceIdentity {
            project_id: "shop".into(),
            service_name: "frontend".into(),
            service_version: "0.1.0".into(),
            revision: "frontend-00002".into(),
            region: Some("europe-west1".into()),
            instance_id: "00bf4bf0".into(),
            on_cloud_run: true,
        };
        let resource = generic_task(&identity);
        assert_eq!(resource.r#type, "generic_task");
        let label = |key: &str| resource.labels.get(key).map(String::as_str);
        assert_eq!(label("project_id"), Some("shop"));
        assert_eq!(label("location"), Some("europe-west1"));
        assert_eq!(label("namespace"), Some("frontend"));
        assert_eq!(label("job"), Some("frontend-00002"));
        assert_eq!(label("task_id"), Some("00bf4bf0"));
    }

    /// Maps what the SDK itself aggregated, on the export path.
    #[derive(Debug)]
    struct Capture {
        mapped: std::sync::Arc<Mutex<Vec<MappedSeries>>>,
        deviations: std::sync::Arc<Deviations>,
    }

    impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Capture {
        fn export(
            &self,
            metrics: &ResourceMetrics,
        ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send
        {
            let resource = MonitoredResource::default();
            let mapped = to_time_series(metrics, &resource, &self.deviations);
            self.mapped.lock().unwrap().extend(mapped);
            std::future::ready(Ok(()))
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }

    #[test]
    fn the_sdks_histogram_counter_and_gauge_map_to_distribution_cumulative_and_gauge() {
        use opentelemetry::metrics::MeterProvider as _;
        let mapped = std::sync::Arc::new(Mutex::new(Vec::new()));
        let deviations = std::sync::Arc::new(Deviations::new(10));
        let exporter = Capture {
            mapped: std::sync::Arc::clone(&mapped),
            deviations: std::sync::Arc::clone(&deviations),
        };
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build())
            .build();
        let meter = provider.meter("test");
        let histogram = meter
            .f64_histogram("latency")
            .with_boundaries(vec![0.01, 0.1, 1.0])
            .build();
        let attributes = [
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200_i64),
        ];
        for value in [0.005, 0.02, 0.05, 0.5, 2.0] {
            histogram.record(value, &attributes);
            deviations.record("latency", &attributes, value);
        }
        meter.u64_counter("orders").build().add(2, &[]);
        let _gauge = meter
            .u64_observable_gauge("active")
            .with_callback(|observer| observer.observe(7, &[]))
            .build();
        provider.force_flush().unwrap();

        let mapped = mapped.lock().unwrap().clone();
        let find = |suffix: &str| {
            mapped
                .iter()
                .find(|m| m.series.metric.as_ref().unwrap().r#type.ends_with(suffix))
                .unwrap_or_else(|| panic!("no {suffix} in {mapped:#?}"))
                .series
                .clone()
        };
        let value = |series: &TimeSeries| series.points[0].value.clone().unwrap().value.unwrap();

        let latency = find("/latency");
        assert_eq!(latency.metric_kind, MetricKind::Cumulative as i32);
        assert_eq!(
            latency.metric.as_ref().unwrap().labels,
            [
                ("http_request_method".to_owned(), "GET".to_owned()),
                ("http_response_status_code".to_owned(), "200".to_owned())
            ]
            .into()
        );
        let interval = latency.points[0].interval.unwrap();
        assert!(interval.start_time.unwrap() != interval.end_time.unwrap());
        let typed_value::Value::DistributionValue(distribution) = value(&latency) else {
            panic!("not a distribution");
        };
        assert_eq!(distribution.bucket_counts, vec![1, 2, 1, 1]);
        assert_eq!(distribution.count, 5);
        assert!((distribution.mean - 0.515).abs() < 1e-12);
        assert!((distribution.sum_of_squared_deviation - 2.9268).abs() < 1e-12);

        let orders = find("/orders");
        assert_eq!(orders.metric_kind, MetricKind::Cumulative as i32);
        assert_eq!(value(&orders), typed_value::Value::Int64Value(2));

        let active = find("/active");
        assert_eq!(active.metric_kind, MetricKind::Gauge as i32);
        assert_eq!(active.points[0].interval.as_ref().unwrap().start_time, None);
        assert_eq!(value(&active), typed_value::Value::Int64Value(7));
    }
}
