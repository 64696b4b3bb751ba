//! OTLP metrics into the [`MetricStore`](crate::MetricStore), as Google's
//! Telemetry API writes them: "as for Managed Service for Prometheus",
//! series `prometheus.googleapis.com/NAME/SUFFIX` on the monitored resource
//! `prometheus_target` (rules O15-O27 of `otlp-telemetry-api.md`).
//!
//! | OTLP point | kind, value type | type suffix |
//! |---|---|---|
//! | Sum, monotonic, cumulative | CUMULATIVE DOUBLE | `/counter` |
//! | Sum, monotonic, delta | DELTA DOUBLE | `/delta` |
//! | Sum, non-monotonic, cumulative; Gauge | GAUGE DOUBLE | `/gauge` |
//! | Sum, non-monotonic, delta | rejected | |
//! | Histogram (and exponential) cumulative / delta | CUMULATIVE / DELTA DISTRIBUTION | `/histogram` / `/histogram:delta` |
//! | Summary | `NAME_count/summary`, `NAME_sum/summary:counter` CUMULATIVE; `NAME/summary` GAUGE per `quantile` | |
//!
//! Integers are stored as doubles (O25). Names under
//! `workload.googleapis.com/` or `custom.googleapis.com/` keep their type
//! and go on a `generic_task` built from the same labels (O23). A point that
//! breaks a rule is rejected alone, in `partial_success`; a request over
//! the size limits (O17) or without a project is rejected whole. Each
//! resource with accepted points also writes `target_info` (O26).

use std::collections::BTreeMap;

use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{label_descriptor, Distribution, LabelDescriptor, MetricDescriptor};
use gcloud_sdk::google::monitoring::v3::{typed_value, TypedValue};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, SummaryDataPoint,
};

use super::{attribute, nanos, text, OtlpError, OtlpIngest, Rejections};
use crate::monitoring::validation::{
    too_long_label, SeriesKey, StoredPoint, ValidSeries, MAX_FUTURE_NANOS, MAX_LABEL_VALUE_CHARS,
    MAX_PAST_NANOS,
};
use crate::time::timestamp::now_nanos;

/// O17: per request.
const MAX_POINTS_PER_REQUEST: usize = 200;
const MAX_RESOURCE_METRICS_PER_REQUEST: usize = 200;
const MAX_QUANTILES: usize = 10;
/// OTLP's data point flag for "no recorded value" (a staleness marker).
const NO_RECORDED_VALUE: u32 = 1;

/// The monitored resource every Prometheus-style series is written on.
pub const PROMETHEUS_TARGET: &str = "prometheus_target";
const PROMETHEUS_DOMAIN: &str = "prometheus.googleapis.com/";
/// Domains a metric name may name itself (O23).
const KEPT_DOMAINS: [&str; 2] = ["workload.googleapis.com/", "custom.googleapis.com/"];

/// Writes the valid points of `request`.
///
/// # Errors
/// [`OtlpError`] when the request is over the size limits or a resource
/// names no project: nothing is written.
pub fn export(
    ingest: &OtlpIngest,
    request: ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, OtlpError> {
    let checked = check_request(ingest, &request);
    let projects = match checked {
        Ok(projects) => projects,
        Err(error) => {
            ingest.store.metrics.record_rejected();
            return Err(error);
        }
    };
    let now = now_nanos();
    let mut rejections = Rejections::default();
    for (index, (resource_metrics, project)) in
        request.resource_metrics.iter().zip(projects).enumerate()
    {
        write_resource(
            ingest,
            index,
            resource_metrics,
            &project,
            now,
            &mut rejections,
        );
    }
    Ok(ExportMetricsServiceResponse {
        partial_success: (!rejections.is_empty()).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: rejections.count(),
            error_message: rejections.message(),
        }),
    })
}

fn check_request(
    ingest: &OtlpIngest,
    request: &ExportMetricsServiceRequest,
) -> Result<Vec<String>, OtlpError> {
    if request.resource_metrics.len() > MAX_RESOURCE_METRICS_PER_REQUEST {
        return Err(OtlpError::InvalidArgument(format!(
            "At most {MAX_RESOURCE_METRICS_PER_REQUEST} ResourceMetrics can be written in one request, got {}.",
            request.resource_metrics.len()
        )));
    }
    let points: usize = request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(point_count)
        .sum();
    if points > MAX_POINTS_PER_REQUEST {
        return Err(OtlpError::InvalidArgument(format!(
            "At most {MAX_POINTS_PER_REQUEST} data points can be written in one request, got {points}."
        )));
    }
    request
        .resource_metrics
        .iter()
        .map(|rm| ingest.project_of(rm.resource.as_ref()))
        .collect()
}

fn point_count(metric: &Metric) -> usize {
    match &metric.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

/// The `prometheus_target` labels of a resource (O18-O21), and the
/// attributes they used up.
#[derive(Debug, Default)]
struct Target {
    labels: BTreeMap<String, String>,
    used: Vec<&'static str>,
}

/// The first non-empty attribute of `keys`, noted in `used`.
fn first(resource: &[KeyValue], used: &mut Vec<&'static str>, keys: &[&'static str]) -> String {
    for key in keys {
        if let Some(value) = attribute(resource, key).map(text).filter(|v| !v.is_empty()) {
            used.push(*key);
            return value;
        }
    }
    String::new()
}

fn target(project: &str, resource: &[KeyValue]) -> Target {
    let mut used = Vec::new();
    let location = first(
        resource,
        &mut used,
        &["location", "cloud.availability_zone", "cloud.region"],
    );
    let mut cluster = first(resource, &mut used, &["cluster", "k8s.cluster.name"]);
    let platform = attribute(resource, "cloud.platform").map(text);
    if cluster.is_empty() {
        cluster = match platform.as_deref() {
            Some("gcp_compute_engine") => "__gce__".into(),
            Some("gcp_cloud_run") => "__run__".into(),
            _ => String::new(),
        };
    }
    let namespace = first(
        resource,
        &mut used,
        &["namespace", "k8s.namespace.name", "service.namespace"],
    );
    let service = attribute(resource, "service.name")
        .map(text)
        .unwrap_or_default();
    let service_namespace = attribute(resource, "service.namespace")
        .map(text)
        .unwrap_or_default();
    let known_service = !service.is_empty() && !service.starts_with("unknown_service");
    let mut job = first(resource, &mut used, &["job"]);
    if job.is_empty() && known_service {
        used.push("service.name");
        job = if service_namespace.is_empty() {
            service.clone()
        } else {
            format!("{service_namespace}/{service}")
        };
    }
    if job.is_empty() {
        job = first(
            resource,
            &mut used,
            &[
                "faas.name",
                "k8s.deployment.name",
                "k8s.statefulset.name",
                "k8s.daemonset.name",
                "k8s.job.name",
                "k8s.cronjob.name",
            ],
        );
    }
    if job.is_empty() && !service.is_empty() {
        used.push("service.name");
        job = service;
    }
    let mut instance = first(
        resource,
        &mut used,
        &["instance", "service.instance.id", "faas.instance"],
    );
    if instance.is_empty() {
        if let Some(pod) = attribute(resource, "k8s.pod.name").map(text) {
            used.push("k8s.pod.name");
            instance = match attribute(resource, "k8s.container.name").map(text) {
                Some(container) => {
                    used.push("k8s.container.name");
                    format!("{pod}/{container}")
                }
                None => pod,
            };
        }
    }
    if instance.is_empty() {
        instance = first(resource, &mut used, &["host.id"]);
    }
    let labels = [
        ("project_id", project.to_owned()),
        ("location", location),
        ("cluster", cluster),
        ("namespace", namespace),
        ("job", job),
        ("instance", instance),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Target { labels, used }
}

/// One converted point, before it meets the store.
struct Converted {
    metric_type: String,
    kind: MetricKind,
    value_type: ValueType,
    labels: BTreeMap<String, String>,
    start: i64,
    end: i64,
    value: typed_value::Value,
}

fn write_resource(
    ingest: &OtlpIngest,
    index: usize,
    resource_metrics: &ResourceMetrics,
    project: &str,
    now: i64,
    rejections: &mut Rejections,
) {
    let attributes: &[KeyValue] = resource_metrics
        .resource
        .as_ref()
        .map_or(&[], |r| r.attributes.as_slice());
    let target = target(project, attributes);
    let mut latest: Option<i64> = None;
    for (scope_index, scope) in resource_metrics.scope_metrics.iter().enumerate() {
        for (metric_index, metric) in scope.metrics.iter().enumerate() {
            let at = format!(
                "resourceMetrics[{index}].scopeMetrics[{scope_index}].metrics[{metric_index}]"
            );
            let converted = match convert_metric(metric) {
                Ok(points) => points,
                Err(reason) => {
                    rejections.add(
                        point_count(metric),
                        format!("{at} ({}): {reason}", metric.name),
                    );
                    continue;
                }
            };
            for point in converted {
                let point = match point {
                    Ok(point) => point,
                    Err(reason) => {
                        rejections.add(1, format!("{at} ({}): {reason}", metric.name));
                        continue;
                    }
                };
                match write_point(ingest, project, &target, metric, point, now) {
                    Ok(end) => latest = latest.max(Some(end)),
                    Err(reason) => rejections.add(1, format!("{at} ({}): {reason}", metric.name)),
                }
            }
        }
    }
    if let Some(end) = latest {
        write_target_info(ingest, project, &target, attributes, end, now);
    }
}

/// O19, O20, O6 window, then the store's own checks.
fn write_point(
    ingest: &OtlpIngest,
    project: &str,
    target: &Target,
    metric: &Metric,
    point: Converted,
    now: i64,
) -> Result<i64, String> {
    for required in ["location", "instance"] {
        if target.labels.get(required).is_none_or(String::is_empty) {
            return Err(format!(
                "the resource gives no {required} label: set one of the resource attributes it is taken from ({}).",
                match required {
                    "location" => "location, cloud.availability_zone, cloud.region",
                    _ => "instance, service.instance.id, faas.instance, k8s.pod.name, host.id",
                }
            ));
        }
    }
    // Monitoring stores these as the series' resource labels, which are
    // bounded as a v3 write's are.
    if let Some(key) = too_long_label(&target.labels) {
        return Err(format!(
            "the resource label {key} is longer than {MAX_LABEL_VALUE_CHARS} characters: shorten the resource attribute it is taken from."
        ));
    }
    if point.end < now.saturating_sub(MAX_PAST_NANOS) {
        return Err("Data points cannot be written more than 25h10s in the past.".into());
    }
    if point.end > now.saturating_add(MAX_FUTURE_NANOS) {
        return Err("Data points cannot be written more than 5m in the future.".into());
    }
    let (resource_type, resource_labels) = resource_for(&point.metric_type, target);
    let descriptor = MetricDescriptor {
        r#type: point.metric_type.clone(),
        metric_kind: point.kind as i32,
        value_type: point.value_type as i32,
        unit: metric.unit.clone(),
        description: metric.description.clone(),
        labels: point
            .labels
            .keys()
            .map(|key| LabelDescriptor {
                key: key.clone(),
                value_type: label_descriptor::ValueType::String as i32,
                description: String::new(),
            })
            .collect(),
        ..MetricDescriptor::default()
    };
    let end = point.end;
    let valid = ValidSeries {
        key: SeriesKey {
            project: project.to_owned(),
            metric_type: point.metric_type,
            metric_labels: point.labels,
            resource_type,
            resource_labels,
        },
        kind: point.kind,
        value_type: point.value_type,
        point: StoredPoint {
            start: point.start,
            end: point.end,
            value: TypedValue {
                value: Some(point.value),
            },
        },
        descriptor_update: Some(descriptor),
    };
    ingest.store.metrics.write_otlp(valid).map(|()| end)
}

/// `prometheus_target`, or `generic_task` for a name that kept its domain (O23).
fn resource_for(metric_type: &str, target: &Target) -> (String, BTreeMap<String, String>) {
    if metric_type.starts_with(PROMETHEUS_DOMAIN) {
        return (PROMETHEUS_TARGET.into(), target.labels.clone());
    }
    let get = |k: &str| target.labels.get(k).cloned().unwrap_or_default();
    let labels = [
        ("project_id", get("project_id")),
        ("location", get("location")),
        ("namespace", get("namespace")),
        ("job", get("job")),
        ("task_id", get("instance")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    ("generic_task".into(), labels)
}

/// O26: one `target_info` gauge (value 1) per resource, labelled with the
/// resource attributes that did not become target labels.
fn write_target_info(
    ingest: &OtlpIngest,
    project: &str,
    target: &Target,
    attributes: &[KeyValue],
    end: i64,
    now: i64,
) {
    let labels: BTreeMap<String, String> = attributes
        .iter()
        .filter(|kv| !target.used.contains(&kv.key.as_str()) && kv.key != super::PROJECT_ATTRIBUTE)
        .filter(|kv| is_label_key(&kv.key))
        .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.clone(), text(v))))
        .collect();
    let point = Converted {
        metric_type: format!("{PROMETHEUS_DOMAIN}target_info/gauge"),
        kind: MetricKind::Gauge,
        value_type: ValueType::Double,
        labels,
        start: end,
        end,
        value: typed_value::Value::DoubleValue(1.0),
    };
    let metric = Metric {
        name: "target_info".into(),
        description: "Target metadata".into(),
        ..Metric::default()
    };
    // A second export at the same instant already wrote it; nothing to report.
    let _ = write_point(ingest, project, target, &metric, point, now);
}

/// O15: the metric name; O22, O23: the type it is written as.
fn metric_type(name: &str, suffix: &str) -> Result<String, String> {
    if let Some(domain) = KEPT_DOMAINS.iter().find(|d| name.starts_with(**d)) {
        let rest = &name[domain.len()..];
        return if !rest.is_empty() && rest.chars().all(is_name_char) {
            Ok(name.to_owned())
        } else {
            Err(format!(
                "the metric name \"{name}\" is not valid after {domain}."
            ))
        };
    }
    if name.contains(".googleapis.com/") {
        return Err(format!(
            "the metric name \"{name}\" names a domain; only {} may be named.",
            KEPT_DOMAINS.join(" and ")
        ));
    }
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(is_name_char);
    if !valid {
        return Err(format!(
            "the metric name \"{}\" does not match [a-zA-Z][a-zA-Z0-9_:./-]*.",
            crate::grpc::clip_to(name, crate::grpc::MAX_QUOTED_BYTES)
        ));
    }
    Ok(format!("{PROMETHEUS_DOMAIN}{name}/{suffix}"))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '/' | '-')
}

/// O16: `[a-zA-Z_][a-zA-Z0-9_.]*`.
fn is_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
}

fn labels(attributes: &[KeyValue]) -> Result<BTreeMap<String, String>, String> {
    attributes
        .iter()
        .map(|kv| {
            if is_label_key(&kv.key) {
                Ok((
                    kv.key.clone(),
                    kv.value.as_ref().map(text).unwrap_or_default(),
                ))
            } else {
                Err(format!(
                    "the attribute key \"{}\" does not match [a-zA-Z_][a-zA-Z0-9_.]*.",
                    crate::grpc::clip_to(&kv.key, crate::grpc::MAX_QUOTED_BYTES)
                ))
            }
        })
        .collect()
}

type Points = Vec<Result<Converted, String>>;

/// The points of one metric; an error rejects all of them.
fn convert_metric(metric: &Metric) -> Result<Points, String> {
    let Some(data) = &metric.data else {
        return Ok(Vec::new());
    };
    let cumulative = |temporality: i32| match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Cumulative) => Ok(true),
        Ok(AggregationTemporality::Delta) => Ok(false),
        _ => Err("the aggregation temporality is unspecified.".to_owned()),
    };
    Ok(match data {
        Data::Gauge(gauge) => {
            let metric_type = metric_type(&metric.name, "gauge")?;
            numbers(&metric_type, MetricKind::Gauge, &gauge.data_points)
        }
        Data::Sum(sum) => {
            let cumulative = cumulative(sum.aggregation_temporality)?;
            let (suffix, kind) = match (sum.is_monotonic, cumulative) {
                (true, true) => ("counter", MetricKind::Cumulative),
                (true, false) => ("delta", MetricKind::Delta),
                (false, true) => ("gauge", MetricKind::Gauge),
                (false, false) => return Err("non-monotonic delta sums are not supported.".into()),
            };
            numbers(&metric_type(&metric.name, suffix)?, kind, &sum.data_points)
        }
        Data::Histogram(histogram) => {
            let (suffix, kind) = histogram_kind(cumulative(histogram.aggregation_temporality)?);
            let metric_type = metric_type(&metric.name, suffix)?;
            recorded(
                &histogram.data_points,
                |p| p.flags,
                |p| histogram_point(&metric_type, kind, p),
            )
        }
        Data::ExponentialHistogram(histogram) => {
            let (suffix, kind) = histogram_kind(cumulative(histogram.aggregation_temporality)?);
            let metric_type = metric_type(&metric.name, suffix)?;
            recorded(
                &histogram.data_points,
                |p| p.flags,
                |p| exponential_point(&metric_type, kind, p),
            )
        }
        Data::Summary(summary) => {
            let count_type = metric_type(&format!("{}_count", metric.name), "summary")?;
            let sum_type = metric_type(&format!("{}_sum", metric.name), "summary:counter")?;
            let quantile_type = metric_type(&metric.name, "summary")?;
            summary
                .data_points
                .iter()
                .filter(|p| p.flags & NO_RECORDED_VALUE == 0)
                .flat_map(|p| summary_points(&count_type, &sum_type, &quantile_type, p))
                .collect()
        }
    })
}

/// The points that carry a value (not flagged "no recorded value"), converted.
fn recorded<P>(
    points: &[P],
    flags: impl Fn(&P) -> u32,
    convert: impl Fn(&P) -> Result<Converted, String>,
) -> Points {
    points
        .iter()
        .filter(|p| flags(p) & NO_RECORDED_VALUE == 0)
        .map(convert)
        .collect()
}

fn histogram_kind(cumulative: bool) -> (&'static str, MetricKind) {
    if cumulative {
        ("histogram", MetricKind::Cumulative)
    } else {
        ("histogram:delta", MetricKind::Delta)
    }
}

/// The interval of a point of `kind` (Monitoring's rules: a gauge is an
/// instant, other kinds start strictly before they end).
fn interval(kind: MetricKind, start: u64, time: u64) -> Result<(i64, i64), String> {
    let end = nanos(time);
    if end == 0 {
        return Err("time_unix_nano is required.".into());
    }
    if kind == MetricKind::Gauge {
        return Ok((end, end));
    }
    let start = nanos(start);
    if start == 0 || start >= end {
        return Err(
            "start_time_unix_nano must be set and before time_unix_nano for a cumulative or delta point."
                .into(),
        );
    }
    Ok((start, end))
}

fn numbers(metric_type: &str, kind: MetricKind, points: &[NumberDataPoint]) -> Points {
    points
        .iter()
        .filter(|p| p.flags & NO_RECORDED_VALUE == 0)
        .map(|p| {
            let (start, end) = interval(kind, p.start_time_unix_nano, p.time_unix_nano)?;
            // O25: integers are stored as doubles.
            let value = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => return Err("the point has no value.".into()),
            };
            Ok(Converted {
                metric_type: metric_type.to_owned(),
                kind,
                value_type: ValueType::Double,
                labels: labels(&p.attributes)?,
                start,
                end,
                value: typed_value::Value::DoubleValue(value),
            })
        })
        .collect()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn distribution(
    count: u64,
    sum: Option<f64>,
    options: bucket_options::Options,
    counts: Vec<i64>,
) -> typed_value::Value {
    let mean = match (count, sum) {
        (0, _) | (_, None) => 0.0,
        (n, Some(sum)) => sum / n as f64,
    };
    typed_value::Value::DistributionValue(Distribution {
        count: to_i64(count),
        mean,
        sum_of_squared_deviation: 0.0,
        range: None,
        bucket_options: Some(BucketOptions {
            options: Some(options),
        }),
        bucket_counts: counts,
        exemplars: Vec::new(),
    })
}

fn histogram_point(
    metric_type: &str,
    kind: MetricKind,
    p: &HistogramDataPoint,
) -> Result<Converted, String> {
    let (start, end) = interval(kind, p.start_time_unix_nano, p.time_unix_nano)?;
    let (bounds, counts) = if p.explicit_bounds.is_empty() {
        // One bucket holding everything: Monitoring needs at least one bound.
        (vec![0.0], vec![0, to_i64(p.count)])
    } else {
        if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return Err(format!(
                "{} bucket counts for {} explicit bounds; expected one more count than bounds.",
                p.bucket_counts.len(),
                p.explicit_bounds.len()
            ));
        }
        (
            p.explicit_bounds.clone(),
            p.bucket_counts.iter().copied().map(to_i64).collect(),
        )
    };
    Ok(Converted {
        metric_type: metric_type.to_owned(),
        kind,
        value_type: ValueType::Distribution,
        labels: labels(&p.attributes)?,
        start,
        end,
        value: distribution(
            p.count,
            p.sum,
            bucket_options::Options::ExplicitBuckets(bucket_options::Explicit { bounds }),
            counts,
        ),
    })
}

/// O27: an exponential histogram as Monitoring's exponential buckets:
/// bucket `i` of OTLP's positive range `(base^(offset+i), base^(offset+i+1)]`
/// is finite bucket `i + 1` with `scale = base^offset`, `growth = base`;
/// zero and negative counts go to the underflow bucket.
fn exponential_point(
    metric_type: &str,
    kind: MetricKind,
    p: &ExponentialHistogramDataPoint,
) -> Result<Converted, String> {
    let (start, end) = interval(kind, p.start_time_unix_nano, p.time_unix_nano)?;
    let base = 2f64.powf(2f64.powi(-p.scale));
    let positive = p.positive.clone().unwrap_or_default();
    let negative: u64 = p
        .negative
        .as_ref()
        .map_or(0, |n| n.bucket_counts.iter().sum());
    let mut counts = vec![to_i64(p.zero_count.saturating_add(negative))];
    counts.extend(positive.bucket_counts.iter().copied().map(to_i64));
    let finite = positive.bucket_counts.len().max(1);
    counts.resize(finite + 2, 0);
    Ok(Converted {
        metric_type: metric_type.to_owned(),
        kind,
        value_type: ValueType::Distribution,
        labels: labels(&p.attributes)?,
        start,
        end,
        value: distribution(
            p.count,
            p.sum,
            bucket_options::Options::ExponentialBuckets(bucket_options::Exponential {
                num_finite_buckets: i32::try_from(finite).unwrap_or(i32::MAX),
                growth_factor: base,
                scale: base.powi(positive.offset),
            }),
            counts,
        ),
    })
}

fn summary_points(
    count_type: &str,
    sum_type: &str,
    quantile_type: &str,
    p: &SummaryDataPoint,
) -> Points {
    let base = || -> Result<(BTreeMap<String, String>, i64, i64), String> {
        let (start, end) = interval(
            MetricKind::Cumulative,
            p.start_time_unix_nano,
            p.time_unix_nano,
        )?;
        if p.quantile_values.len() > MAX_QUANTILES {
            return Err(format!(
                "{} quantiles, more than the limit of {MAX_QUANTILES}.",
                p.quantile_values.len()
            ));
        }
        Ok((labels(&p.attributes)?, start, end))
    };
    let (labels, start, end) = match base() {
        Ok(base) => base,
        Err(reason) => return vec![Err(reason)],
    };
    let cumulative = |metric_type: &str, value: f64| {
        Ok(Converted {
            metric_type: metric_type.to_owned(),
            kind: MetricKind::Cumulative,
            value_type: ValueType::Double,
            labels: labels.clone(),
            start,
            end,
            value: typed_value::Value::DoubleValue(value),
        })
    };
    let mut points = vec![
        cumulative(count_type, p.count as f64),
        cumulative(sum_type, p.sum),
    ];
    for quantile in &p.quantile_values {
        let mut labels = labels.clone();
        labels.insert("quantile".into(), quantile.quantile.to_string());
        points.push(Ok(Converted {
            metric_type: quantile_type.to_owned(),
            kind: MetricKind::Gauge,
            value_type: ValueType::Double,
            labels,
            start: end,
            end,
            value: typed_value::Value::DoubleValue(quantile.value),
        }));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
        }
    }

    #[test]
    fn target_labels_fall_back_as_google_documents() {
        let target = target(
            "p",
            &[
                kv("cloud.region", "europe-west1"),
                kv("cloud.platform", "gcp_cloud_run"),
                kv("service.namespace", "shop"),
                kv("service.name", "api"),
                kv("faas.instance", "0042"),
            ],
        );
        let label = |k: &str| target.labels[k].as_str();
        assert_eq!(label("location"), "europe-west1");
        assert_eq!(label("cluster"), "__run__");
        assert_eq!(label("namespace"), "shop");
        assert_eq!(label("job"), "shop/api");
        assert_eq!(label("instance"), "0042");
        let unnamed = super::target("p", &[kv("service.name", "unknown_service:python")]);
        assert_eq!(unnamed.labels["job"], "unknown_service:python");
        assert_eq!(unnamed.labels["instance"], "");
    }

    #[test]
    fn metric_names_keep_dots_and_slashes_and_reject_other_domains() {
        assert_eq!(
            metric_type("http.server.duration", "histogram").unwrap(),
            "prometheus.googleapis.com/http.server.duration/histogram"
        );
        assert_eq!(
            metric_type("workload.googleapis.com/app/orders", "counter").unwrap(),
            "workload.googleapis.com/app/orders"
        );
        assert!(metric_type("compute.googleapis.com/x", "gauge").is_err());
        assert!(metric_type("1abc", "gauge").is_err());
        assert!(metric_type("a b", "gauge").is_err());
        assert!(is_label_key("http.route") && !is_label_key("http-route") && !is_label_key("9x"));
    }
}
