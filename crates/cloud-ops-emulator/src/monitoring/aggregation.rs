//! `ListTimeSeries` alignment and cross-series reduction (M16).
//!
//! Alignment windows end at the request's `end_time` and step back by
//! `alignment_period`: the point at `t` summarises `(t - period, t]`, as
//! Monitoring aligns. Each series is aligned on its own, then series are
//! grouped by `resource.type` plus `group_by_fields` and reduced per timestamp.
//!
//! Methods where Google publishes no formula (documented in `docs/emulator.md`):
//! - deltas of CUMULATIVE series subtract the last point at or before the
//!   window start from the last point in the window; a series that starts
//!   (or resets) inside the window counts from zero; with no earlier point the
//!   first point's value is prorated to the part of its interval in the window;
//! - `ALIGN_RATE` is that delta divided by the alignment period (Google's
//!   `(y1 - y0) / (t1 - t0)` over the period);
//! - percentiles of a distribution interpolate linearly inside the bucket
//!   holding the rank `q * count` (underflow and overflow buckets answer their
//!   finite bound); percentiles of plain numbers interpolate linearly between
//!   order statistics.
//!
//! Why one file: every aligner and reducer shares the period arithmetic and
//! the value conversions, and each is defined by how it differs from the
//! others; split, the differences would hide.

use std::collections::BTreeMap;

use gcloud_sdk::google::api::distribution::{bucket_options::Options, BucketOptions};
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{Distribution, Metric, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Aggregation, Point, TimeInterval, TimeSeries, TypedValue,
};

use crate::deadline::{Deadline, DeadlineExceeded};
use crate::monitoring::filter::Filter;
use crate::monitoring::store::{MetricStore, StoredSeries};
use crate::monitoring::validation::StoredPoint;
use crate::time::timestamp::{duration_nanos, from_nanos, NANOS_PER_SECOND};

const MIN_PERIOD_NANOS: i64 = 60 * NANOS_PER_SECOND;
const MAX_PERIOD_NANOS: i64 = 104 * 7 * 86_400 * NANOS_PER_SECOND;

/// Why an aggregation cannot be computed; the text is the gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregationError {
    #[error("Field aggregation.alignmentPeriod had an invalid value of \"{0}s\": The alignment period must be at least 60 seconds and at most 104 weeks.")]
    BadPeriod(i64),
    #[error("Field aggregation.alignmentPeriod had an invalid value: An alignment period is required when an aligner other than ALIGN_NONE is specified.")]
    MissingPeriod,
    #[error("Field aggregation.perSeriesAligner had an invalid value of \"ALIGN_NONE\": The aligner cannot be ALIGN_NONE if cross series reduction is requested.")]
    ReducerWithoutAligner,
    #[error("Field aggregation.perSeriesAligner had an invalid value of \"{aligner}\": The aligner cannot be applied to metrics with kind {kind} and value type {value_type}.")]
    AlignerNotApplicable {
        aligner: &'static str,
        kind: &'static str,
        value_type: &'static str,
    },
    #[error("Field aggregation.crossSeriesReducer had an invalid value of \"{reducer}\": The reducer cannot be applied to value type {value_type}.")]
    ReducerNotApplicable {
        reducer: &'static str,
        value_type: &'static str,
    },
    #[error("Field aggregation.{field} had an invalid value of \"{value}\": the emulator does not implement it.")]
    Unsupported { field: &'static str, value: String },
    #[error("Field aggregation.groupByFields had an invalid value of \"{0}\": expected metric.labels.KEY, resource.labels.KEY, metric.type or resource.type.")]
    BadGroupBy(String),
    /// The client's deadline passed during the read.
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

/// A checked aggregation.
#[derive(Debug, Clone)]
pub struct Spec {
    pub period: i64,
    pub aligner: Aligner,
    pub reducer: Reducer,
    pub group_by: Vec<GroupField>,
}

/// A `group_by_fields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupField {
    MetricType,
    ResourceType,
    MetricLabel(String),
    ResourceLabel(String),
    /// `metric.labels.*`: every metric label.
    AllMetricLabels,
    /// `resource.labels.*`: every resource label (the uptime alert's grouping).
    AllResourceLabels,
}

/// Checks an aggregation; `None` when there is nothing to align or reduce.
///
/// # Errors
/// See [`AggregationError`].
pub fn parse_spec(aggregation: Option<&Aggregation>) -> Result<Option<Spec>, AggregationError> {
    let Some(agg) = aggregation else {
        return Ok(None);
    };
    let aligner =
        Aligner::try_from(agg.per_series_aligner).map_err(|_| AggregationError::Unsupported {
            field: "perSeriesAligner",
            value: agg.per_series_aligner.to_string(),
        })?;
    let reducer =
        Reducer::try_from(agg.cross_series_reducer).map_err(|_| AggregationError::Unsupported {
            field: "crossSeriesReducer",
            value: agg.cross_series_reducer.to_string(),
        })?;
    let period = agg.alignment_period.as_ref().map(duration_nanos);
    if let Some(p) = period {
        if !(MIN_PERIOD_NANOS..=MAX_PERIOD_NANOS).contains(&p)
            && (p != 0 || aligner != Aligner::AlignNone)
        {
            return Err(AggregationError::BadPeriod(p / NANOS_PER_SECOND));
        }
    }
    if reducer != Reducer::ReduceNone && aligner == Aligner::AlignNone {
        return Err(AggregationError::ReducerWithoutAligner);
    }
    if aligner == Aligner::AlignNone {
        return Ok(None);
    }
    let period = period
        .filter(|p| *p > 0)
        .ok_or(AggregationError::MissingPeriod)?;
    let group_by = agg
        .group_by_fields
        .iter()
        .map(|f| parse_group_field(f))
        .collect::<Result<_, _>>()?;
    Ok(Some(Spec {
        period,
        aligner,
        reducer,
        group_by,
    }))
}

fn parse_group_field(field: &str) -> Result<GroupField, AggregationError> {
    let label = |prefixes: [&str; 2]| {
        prefixes
            .iter()
            .find_map(|p| field.strip_prefix(p))
            .filter(|k| !k.is_empty())
    };
    match field {
        "metric.type" => Ok(GroupField::MetricType),
        "resource.type" => Ok(GroupField::ResourceType),
        "metric.labels.*" | "metric.label.*" => Ok(GroupField::AllMetricLabels),
        "resource.labels.*" | "resource.label.*" => Ok(GroupField::AllResourceLabels),
        _ => label(["metric.labels.", "metric.label."])
            .map(|k| GroupField::MetricLabel(k.into()))
            .or_else(|| {
                label(["resource.labels.", "resource.label."])
                    .map(|k| GroupField::ResourceLabel(k.into()))
            })
            .ok_or_else(|| AggregationError::BadGroupBy(field.into())),
    }
}

/// Series as returned without aggregation: points in `(start, end]`, newest first.
pub fn raw(series: &StoredSeries, start: i64, end: i64) -> Option<TimeSeries> {
    let points: Vec<Point> = series
        .points
        .iter()
        .rev()
        .filter(|p| p.end > start && p.end <= end)
        .map(|p| Point {
            interval: Some(TimeInterval {
                start_time: Some(from_nanos(p.start)),
                end_time: Some(from_nanos(p.end)),
            }),
            value: Some(p.value.clone()),
        })
        .collect();
    (!points.is_empty()).then(|| TimeSeries {
        metric: Some(Metric {
            r#type: series.key.metric_type.clone(),
            labels: series.key.metric_labels.clone().into_iter().collect(),
        }),
        resource: Some(MonitoredResource {
            r#type: series.key.resource_type.clone(),
            labels: series.key.resource_labels.clone().into_iter().collect(),
        }),
        metric_kind: series.kind as i32,
        value_type: series.value_type as i32,
        points,
        ..TimeSeries::default()
    })
}

/// The series of `project` matching `filter` over `(start, end]`: their raw
/// points, or aligned and reduced by `spec`. Only the points the read needs
/// are copied out of the store.
///
/// # Errors
/// When the aligner or reducer does not apply to a series' kind and type.
pub fn read(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    interval: (i64, i64),
    spec: Option<&Spec>,
) -> Result<Vec<TimeSeries>, AggregationError> {
    read_by(store, project, filter, interval, spec, Deadline::NONE)
}

/// Series a read aligns between two looks at its deadline.
const DEADLINE_STRIDE: usize = 256;

/// [`read`] that stops when `deadline` passes: while it copies series out
/// of the store, and while it aligns them.
///
/// # Errors
/// As [`read`], and [`AggregationError::Deadline`].
pub fn read_by(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    (start, end): (i64, i64),
    spec: Option<&Spec>,
    deadline: Deadline,
) -> Result<Vec<TimeSeries>, AggregationError> {
    let series =
        store.series_within_by(project, filter, (reads_from(start, spec), end), deadline)?;
    match spec {
        Some(spec) => aggregate_by(&series, start, end, spec, deadline),
        None => {
            let mut out = Vec::with_capacity(series.len());
            for chunk in series.chunks(DEADLINE_STRIDE) {
                deadline.check()?;
                out.extend(chunk.iter().filter_map(|s| raw(s, start, end)));
            }
            Ok(out)
        }
    }
}

/// The earliest point end a read over `(start, end]` uses, the point before
/// it aside: an aggregation's first window opens one alignment period before
/// `start`; raw points are read from `start` on.
pub fn reads_from(start: i64, spec: Option<&Spec>) -> i64 {
    spec.map_or(start, |spec| start.saturating_sub(spec.period))
}

/// Aligns and reduces `series` over `(start, end]`.
///
/// # Errors
/// When the aligner or reducer does not apply to the series' kind and type.
pub fn aggregate(
    series: &[StoredSeries],
    start: i64,
    end: i64,
    spec: &Spec,
) -> Result<Vec<TimeSeries>, AggregationError> {
    aggregate_by(series, start, end, spec, Deadline::NONE)
}

fn aggregate_by(
    series: &[StoredSeries],
    start: i64,
    end: i64,
    spec: &Spec,
    deadline: Deadline,
) -> Result<Vec<TimeSeries>, AggregationError> {
    let mut aligned = Vec::with_capacity(series.len());
    for chunk in series.chunks(DEADLINE_STRIDE) {
        deadline.check()?;
        for s in chunk {
            check_aligner(spec.aligner, s)?;
            aligned.push(align(s, start, end, spec));
        }
    }
    deadline.check()?;
    if spec.reducer == Reducer::ReduceNone {
        return Ok(aligned
            .into_iter()
            .filter(|a| !a.values.is_empty())
            .map(|a| a.into_time_series(spec.period))
            .collect());
    }
    reduce(aligned, spec)
}

/// A value after alignment or reduction.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Double(f64),
    Bool(bool),
    Dist(Dist),
}

impl Value {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Double(d) => Some(*d),
            Self::Bool(b) => Some(f64::from(u8::from(*b))),
            Self::Dist(_) => None,
        }
    }

    fn value_type(&self) -> ValueType {
        match self {
            Self::Int(_) => ValueType::Int64,
            Self::Double(_) => ValueType::Double,
            Self::Bool(_) => ValueType::Bool,
            Self::Dist(_) => ValueType::Distribution,
        }
    }

    fn typed(&self) -> TypedValue {
        let value = match self {
            Self::Int(i) => typed_value::Value::Int64Value(*i),
            Self::Double(d) => typed_value::Value::DoubleValue(*d),
            Self::Bool(b) => typed_value::Value::BoolValue(*b),
            Self::Dist(d) => typed_value::Value::DistributionValue(d.to_proto()),
        };
        TypedValue { value: Some(value) }
    }

    fn from_point(point: &StoredPoint) -> Option<Self> {
        match point.value.value.as_ref()? {
            typed_value::Value::Int64Value(i) => Some(Self::Int(*i)),
            typed_value::Value::DoubleValue(d) => Some(Self::Double(*d)),
            typed_value::Value::BoolValue(b) => Some(Self::Bool(*b)),
            typed_value::Value::DistributionValue(d) => Dist::from_proto(d).map(Self::Dist),
            typed_value::Value::StringValue(_) => None,
        }
    }
}

/// A distribution with its finite bucket bounds made explicit.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    pub count: i64,
    pub mean: f64,
    pub ssd: f64,
    pub options: BucketOptions,
    /// Finite bounds `b0 < b1 < ...`; bucket 0 is `(-inf, b0)`, the last `[b_last, +inf)`.
    pub bounds: Vec<f64>,
    /// One count per bucket, `bounds.len() + 1` of them.
    pub counts: Vec<i64>,
}

impl Dist {
    /// The distribution of a point, with its bounds made explicit.
    pub fn from_proto(d: &Distribution) -> Option<Self> {
        let options = d.bucket_options.clone()?;
        let bounds = match options.options.as_ref()? {
            Options::LinearBuckets(l) => (0..=l.num_finite_buckets)
                .map(|i| l.offset + l.width * f64::from(i))
                .collect(),
            Options::ExponentialBuckets(e) => (0..=e.num_finite_buckets)
                .map(|i| e.scale * e.growth_factor.powi(i))
                .collect(),
            Options::ExplicitBuckets(e) => e.bounds.clone(),
        };
        let mut counts = d.bucket_counts.clone();
        counts.resize(bounds.len() + 1, 0);
        Some(Self {
            count: d.count,
            mean: d.mean,
            ssd: d.sum_of_squared_deviation,
            options,
            bounds,
            counts,
        })
    }

    fn to_proto(&self) -> Distribution {
        Distribution {
            count: self.count,
            mean: self.mean,
            sum_of_squared_deviation: self.ssd,
            bucket_options: Some(self.options.clone()),
            bucket_counts: self.counts.clone(),
            ..Distribution::default()
        }
    }

    fn sum_of_squares(&self) -> f64 {
        self.ssd + self.count as f64 * self.mean * self.mean
    }

    fn with_moments(mut self, count: i64, sum: f64, sum_sq: f64) -> Self {
        self.count = count.max(0);
        self.mean = if count > 0 { sum / count as f64 } else { 0.0 };
        self.ssd = if count > 0 {
            (sum_sq - count as f64 * self.mean * self.mean).max(0.0)
        } else {
            0.0
        };
        self
    }

    /// `self + other`; `None` when the bucketing differs.
    pub fn merge(&self, other: &Self) -> Option<Self> {
        if self.bounds != other.bounds {
            return None;
        }
        let counts = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(a, b)| a.saturating_add(*b))
            .collect();
        let sum = self.mean * self.count as f64 + other.mean * other.count as f64;
        let sum_sq = self.sum_of_squares() + other.sum_of_squares();
        Some(
            Self {
                counts,
                ..self.clone()
            }
            .with_moments(self.count.saturating_add(other.count), sum, sum_sq),
        )
    }

    /// `self - earlier` for cumulative distributions.
    fn minus(&self, earlier: &Self) -> Option<Self> {
        if self.bounds != earlier.bounds {
            return None;
        }
        let counts = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(a, b)| (a - b).max(0))
            .collect();
        let sum = self.mean * self.count as f64 - earlier.mean * earlier.count as f64;
        let sum_sq = self.sum_of_squares() - earlier.sum_of_squares();
        Some(
            Self {
                counts,
                ..self.clone()
            }
            .with_moments(self.count - earlier.count, sum, sum_sq),
        )
    }

    /// The `q` quantile (0..=1), interpolated within its bucket.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        if self.count <= 0 || self.bounds.is_empty() {
            return None;
        }
        let rank = q * self.count as f64;
        let mut before = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            let c = c as f64;
            if c > 0.0 && before + c >= rank {
                if i == 0 {
                    return Some(self.bounds[0]);
                }
                if i == self.bounds.len() {
                    return self.bounds.last().copied();
                }
                let (lo, hi) = (self.bounds[i - 1], self.bounds[i]);
                return Some(lo + (hi - lo) * ((rank - before) / c).clamp(0.0, 1.0));
            }
            before += c;
        }
        self.bounds.last().copied()
    }
}

/// The `q` quantile of plain values, linear between order statistics.
pub fn percentile_of(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let pos = q * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(values[lo] + (values[hi] - values[lo]) * (pos - lo as f64))
}

fn aligner_name(aligner: Aligner) -> &'static str {
    aligner.as_str_name()
}

fn check_aligner(aligner: Aligner, s: &StoredSeries) -> Result<(), AggregationError> {
    use Aligner::*;
    let numeric = matches!(s.value_type, ValueType::Int64 | ValueType::Double);
    let dist = s.value_type == ValueType::Distribution;
    let ok = match aligner {
        AlignDelta | AlignRate => {
            s.kind != MetricKind::Gauge && (numeric || (dist && aligner == AlignDelta))
        }
        AlignMean | AlignSum => s.kind != MetricKind::Cumulative && (numeric || dist),
        AlignMin | AlignMax => s.kind != MetricKind::Cumulative && numeric,
        AlignCount | AlignNextOlder => true,
        AlignPercentile50 | AlignPercentile95 | AlignPercentile99 | AlignPercentile05 => {
            dist || (numeric && s.kind != MetricKind::Cumulative)
        }
        _ => {
            return Err(AggregationError::Unsupported {
                field: "perSeriesAligner",
                value: aligner_name(aligner).into(),
            })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(AggregationError::AlignerNotApplicable {
            aligner: aligner_name(aligner),
            kind: s.kind.as_str_name(),
            value_type: s.value_type.as_str_name(),
        })
    }
}

/// One series after alignment: value per window end, newest first.
#[derive(Debug, Clone)]
struct Aligned {
    key: crate::monitoring::validation::SeriesKey,
    kind: MetricKind,
    values: Vec<(i64, Value)>,
}

impl Aligned {
    fn into_time_series(self, period: i64) -> TimeSeries {
        let value_type = self
            .values
            .first()
            .map(|(_, v)| v.value_type())
            .unwrap_or(ValueType::Double);
        let points = self
            .values
            .iter()
            .map(|(t, v)| point(*t, self.kind, period, v))
            .collect();
        TimeSeries {
            metric: Some(Metric {
                r#type: self.key.metric_type,
                labels: self.key.metric_labels.into_iter().collect(),
            }),
            resource: Some(MonitoredResource {
                r#type: self.key.resource_type,
                labels: self.key.resource_labels.into_iter().collect(),
            }),
            metric_kind: self.kind as i32,
            value_type: value_type as i32,
            points,
            ..TimeSeries::default()
        }
    }
}

fn point(t: i64, kind: MetricKind, period: i64, value: &Value) -> Point {
    let start = if kind == MetricKind::Delta {
        t - period
    } else {
        t
    };
    Point {
        interval: Some(TimeInterval {
            start_time: Some(from_nanos(start)),
            end_time: Some(from_nanos(t)),
        }),
        value: Some(value.typed()),
    }
}

fn output_kind(aligner: Aligner) -> MetricKind {
    match aligner {
        Aligner::AlignDelta => MetricKind::Delta,
        _ => MetricKind::Gauge,
    }
}

fn align(s: &StoredSeries, start: i64, end: i64, spec: &Spec) -> Aligned {
    let points: Vec<&StoredPoint> = s.points.iter().collect();
    let mut values = Vec::new();
    // Windows ending before the first point hold nothing: stopping there keeps
    // a read from the epoch with a 60 s period from looping millions of times.
    let first_end = points.first().map_or(end, |p| p.end);
    let mut t = end;
    while t > start && t >= first_end {
        let window_start = t.saturating_sub(spec.period);
        if let Some(v) = align_window(s, &points, window_start, t, spec) {
            values.push((t, v));
        }
        t = t.saturating_sub(spec.period);
    }
    Aligned {
        key: crate::monitoring::validation::SeriesKey::clone(&s.key),
        kind: output_kind(spec.aligner),
        values,
    }
}

fn quantile(aligner: Aligner) -> Option<f64> {
    match aligner {
        Aligner::AlignPercentile99 => Some(0.99),
        Aligner::AlignPercentile95 => Some(0.95),
        Aligner::AlignPercentile50 => Some(0.50),
        Aligner::AlignPercentile05 => Some(0.05),
        _ => None,
    }
}

fn align_window(
    s: &StoredSeries,
    points: &[&StoredPoint],
    t0: i64,
    t1: i64,
    spec: &Spec,
) -> Option<Value> {
    let first = points.partition_point(|p| p.end <= t0);
    let last = points.partition_point(|p| p.end <= t1);
    let window = &points[first..last];
    if window.is_empty() {
        return None;
    }
    let previous = first.checked_sub(1).map(|i| points[i]);
    let period_seconds = spec.period as f64 / NANOS_PER_SECOND as f64;
    match spec.aligner {
        Aligner::AlignCount => Some(Value::Int(window.len() as i64)),
        Aligner::AlignNextOlder => window.last().and_then(|p| Value::from_point(p)),
        Aligner::AlignDelta => window_delta(s.kind, previous, window, t0),
        Aligner::AlignRate => window_delta(s.kind, previous, window, t0)?
            .as_f64()
            .map(|d| Value::Double(d / period_seconds)),
        aligner if s.value_type == ValueType::Distribution => {
            align_distribution(aligner, window_distribution(s.kind, previous, window)?)
        }
        aligner => align_numbers(aligner, window),
    }
}

/// Percentile, mean or sum of the window's distribution.
fn align_distribution(aligner: Aligner, dist: Dist) -> Option<Value> {
    match (aligner, quantile(aligner)) {
        (_, Some(q)) => dist.percentile(q).map(Value::Double),
        (Aligner::AlignMean, _) => Some(Value::Double(dist.mean)),
        _ => Some(Value::Dist(dist)),
    }
}

/// Mean, sum, min, max or percentile of the window's plain values.
fn align_numbers(aligner: Aligner, window: &[&StoredPoint]) -> Option<Value> {
    let values: Vec<Value> = window.iter().filter_map(|p| Value::from_point(p)).collect();
    let mut numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    if numbers.is_empty() {
        return None;
    }
    let all_int = values.iter().all(|v| matches!(v, Value::Int(_)));
    match aligner {
        Aligner::AlignMean => Some(Value::Double(
            numbers.iter().sum::<f64>() / numbers.len() as f64,
        )),
        Aligner::AlignSum if all_int => Some(Value::Int(
            values
                .iter()
                .map(|v| if let Value::Int(i) = v { *i } else { 0 })
                .fold(0i64, i64::saturating_add),
        )),
        Aligner::AlignSum => Some(Value::Double(numbers.iter().sum())),
        Aligner::AlignMin => numbers
            .iter()
            .copied()
            .reduce(f64::min)
            .map(|m| numeric(m, all_int)),
        Aligner::AlignMax => numbers
            .iter()
            .copied()
            .reduce(f64::max)
            .map(|m| numeric(m, all_int)),
        a => percentile_of(&mut numbers, quantile(a)?).map(Value::Double),
    }
}

fn numeric(value: f64, as_int: bool) -> Value {
    if as_int {
        Value::Int(value as i64)
    } else {
        Value::Double(value)
    }
}

/// Increase over the window; see the module docs for the method.
fn window_delta(
    kind: MetricKind,
    previous: Option<&StoredPoint>,
    window: &[&StoredPoint],
    t0: i64,
) -> Option<Value> {
    if window.iter().any(|p| {
        matches!(
            p.value.value,
            Some(typed_value::Value::DistributionValue(_))
        )
    }) {
        return window_distribution(kind, previous, window).map(Value::Dist);
    }
    let all_int = window
        .iter()
        .all(|p| matches!(p.value.value, Some(typed_value::Value::Int64Value(_))));
    let number = |p: &StoredPoint| Value::from_point(p).and_then(|v| v.as_f64());
    let mut delta = 0.0;
    let mut prev = previous;
    for p in window {
        let v = number(p)?;
        delta += match (kind, prev) {
            (MetricKind::Delta, _) => v,
            (_, Some(before)) if before.start == p.start => v - number(before)?,
            _ if p.start >= t0 => v,
            _ => v * (p.end - t0) as f64 / (p.end - p.start).max(1) as f64,
        };
        prev = Some(p);
    }
    Some(if all_int {
        Value::Int(delta.round() as i64)
    } else {
        Value::Double(delta)
    })
}

/// The distribution of what happened in the window: a cumulative series'
/// last value minus its value before the window, or the sum of delta/gauge points.
fn window_distribution(
    kind: MetricKind,
    previous: Option<&StoredPoint>,
    window: &[&StoredPoint],
) -> Option<Dist> {
    let dist = |p: &StoredPoint| match Value::from_point(p) {
        Some(Value::Dist(d)) => Some(d),
        _ => None,
    };
    if kind != MetricKind::Cumulative {
        let mut dists = window.iter().filter_map(|p| dist(p));
        let first = dists.next()?;
        return dists.try_fold(first, |acc, d| acc.merge(&d));
    }
    let last = window.last()?;
    let last_dist = dist(last)?;
    // The last point before the window, if of the same cumulative run, is the
    // baseline; otherwise the run started in or before the window and counts whole.
    match previous.filter(|p| p.start == last.start).and_then(dist) {
        Some(before) => last_dist.minus(&before),
        None => Some(last_dist),
    }
}

fn reducer_name(reducer: Reducer) -> &'static str {
    reducer.as_str_name()
}

fn reducer_quantile(reducer: Reducer) -> Option<f64> {
    match reducer {
        Reducer::ReducePercentile99 => Some(0.99),
        Reducer::ReducePercentile95 => Some(0.95),
        Reducer::ReducePercentile50 => Some(0.50),
        Reducer::ReducePercentile05 => Some(0.05),
        _ => None,
    }
}

type GroupKey = (
    String,
    BTreeMap<String, String>,
    String,
    BTreeMap<String, String>,
);

fn group_key(key: &crate::monitoring::validation::SeriesKey, fields: &[GroupField]) -> GroupKey {
    let mut metric_labels = BTreeMap::new();
    let mut resource_labels = BTreeMap::new();
    for field in fields {
        match field {
            GroupField::MetricLabel(k) => {
                if let Some(v) = key.metric_labels.get(k) {
                    metric_labels.insert(k.clone(), v.clone());
                }
            }
            GroupField::ResourceLabel(k) => {
                if let Some(v) = key.resource_labels.get(k) {
                    resource_labels.insert(k.clone(), v.clone());
                }
            }
            GroupField::AllMetricLabels => metric_labels.extend(key.metric_labels.clone()),
            GroupField::AllResourceLabels => resource_labels.extend(key.resource_labels.clone()),
            GroupField::MetricType | GroupField::ResourceType => {}
        }
    }
    (
        key.metric_type.clone(),
        metric_labels,
        key.resource_type.clone(),
        resource_labels,
    )
}

fn reduce(aligned: Vec<Aligned>, spec: &Spec) -> Result<Vec<TimeSeries>, AggregationError> {
    let mut groups: BTreeMap<GroupKey, Vec<Aligned>> = BTreeMap::new();
    for a in aligned {
        groups
            .entry(group_key(&a.key, &spec.group_by))
            .or_default()
            .push(a);
    }
    let mut out = Vec::new();
    for ((metric_type, metric_labels, resource_type, resource_labels), members) in groups {
        let mut by_time: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
        for m in &members {
            for (t, v) in &m.values {
                by_time.entry(*t).or_default().push(v.clone());
            }
        }
        let mut values = Vec::new();
        for (t, vs) in by_time.into_iter().rev() {
            if let Some(v) = reduce_values(spec.reducer, vs)? {
                values.push((t, v));
            }
        }
        if values.is_empty() {
            continue;
        }
        let kind = match spec.reducer {
            Reducer::ReduceSum => output_kind(spec.aligner),
            _ => MetricKind::Gauge,
        };
        let key = crate::monitoring::validation::SeriesKey {
            project: String::new(),
            metric_type,
            metric_labels,
            resource_type,
            resource_labels,
        };
        out.push(Aligned { key, kind, values }.into_time_series(spec.period));
    }
    Ok(out)
}

fn reduce_values(reducer: Reducer, values: Vec<Value>) -> Result<Option<Value>, AggregationError> {
    let dists: Vec<&Dist> = values
        .iter()
        .filter_map(|v| {
            if let Value::Dist(d) = v {
                Some(d)
            } else {
                None
            }
        })
        .collect();
    let mut numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    let all_int = values.iter().all(|v| matches!(v, Value::Int(_)));
    let merged = || {
        dists
            .iter()
            .skip(1)
            .try_fold((*dists.first()?).clone(), |acc, d| acc.merge(d))
    };
    let not_applicable = || AggregationError::ReducerNotApplicable {
        reducer: reducer_name(reducer),
        value_type: "DISTRIBUTION",
    };
    if !dists.is_empty() {
        return match reducer {
            Reducer::ReduceSum => Ok(merged().map(Value::Dist)),
            Reducer::ReduceMean => Ok(merged().map(|d| Value::Double(d.mean))),
            Reducer::ReduceCount => Ok(Some(Value::Int(dists.len() as i64))),
            r => match reducer_quantile(r) {
                Some(q) => Ok(merged().and_then(|d| d.percentile(q)).map(Value::Double)),
                None => Err(not_applicable()),
            },
        };
    }
    let reduced = match reducer {
        Reducer::ReduceSum => Some(numeric(numbers.iter().sum(), all_int)),
        Reducer::ReduceMean => Some(Value::Double(
            numbers.iter().sum::<f64>() / numbers.len().max(1) as f64,
        )),
        Reducer::ReduceMin => numbers
            .iter()
            .copied()
            .reduce(f64::min)
            .map(|v| numeric(v, all_int)),
        Reducer::ReduceMax => numbers
            .iter()
            .copied()
            .reduce(f64::max)
            .map(|v| numeric(v, all_int)),
        Reducer::ReduceCount => Some(Value::Int(numbers.len() as i64)),
        Reducer::ReduceCountTrue => Some(Value::Int(
            values
                .iter()
                .filter(|v| matches!(v, Value::Bool(true)))
                .count() as i64,
        )),
        Reducer::ReduceCountFalse => Some(Value::Int(
            values
                .iter()
                .filter(|v| matches!(v, Value::Bool(false)))
                .count() as i64,
        )),
        r => match reducer_quantile(r) {
            Some(q) => percentile_of(&mut numbers, q).map(Value::Double),
            None => {
                return Err(AggregationError::Unsupported {
                    field: "crossSeriesReducer",
                    value: reducer_name(r).into(),
                })
            }
        },
    };
    Ok(reduced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::api::distribution::bucket_options::Explicit;

    fn dist(counts: Vec<i64>) -> Dist {
        let proto = Distribution {
            count: counts.iter().sum(),
            bucket_options: Some(BucketOptions {
                options: Some(Options::ExplicitBuckets(Explicit {
                    bounds: vec![0.0, 10.0, 20.0, 30.0],
                })),
            }),
            bucket_counts: counts,
            ..Distribution::default()
        };
        Dist::from_proto(&proto).unwrap()
    }

    #[test]
    fn distribution_percentiles_interpolate_within_buckets() {
        let d = dist(vec![0, 50, 40, 10, 0]);
        assert_eq!(d.percentile(0.99), Some(29.0));
        assert_eq!(d.percentile(0.95), Some(25.0));
        assert_eq!(d.percentile(0.50), Some(10.0));
    }

    #[test]
    fn numeric_percentiles_interpolate_between_values() {
        assert_eq!(percentile_of(&mut [4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        assert_eq!(percentile_of(&mut [10.0, 20.0], 0.99), Some(19.9));
    }

    #[test]
    fn a_wildcard_groups_by_every_label_of_its_kind() {
        assert_eq!(
            parse_group_field("resource.label.*"),
            Ok(GroupField::AllResourceLabels)
        );
        assert_eq!(
            parse_group_field("metric.labels.*"),
            Ok(GroupField::AllMetricLabels)
        );
        let key = crate::monitoring::validation::SeriesKey {
            project: "p".into(),
            metric_type: "m".into(),
            metric_labels: [("check_id".to_owned(), "c".to_owned())].into(),
            resource_type: "uptime_url".into(),
            resource_labels: [("host".to_owned(), "h".to_owned())].into(),
        };
        let (_, metric, _, resource) = group_key(&key, &[GroupField::AllResourceLabels]);
        assert!(metric.is_empty());
        assert_eq!(resource.get("host").map(String::as_str), Some("h"));
    }
}
