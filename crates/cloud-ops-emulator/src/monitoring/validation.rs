//! Cloud Monitoring v3 write rules (M1-M15 of `gcp-api-rules.md`).
//!
//! Two kinds of writer are told apart ([`Writer`]): API clients, held to
//! every rule, and Google's own producers inside the emulator (log-based
//! metrics, Cloud Run's request metrics, uptime checks), which write system
//! metric types (`logging.googleapis.com/user/...`, `run.googleapis.com/...`)
//! on system resources (`cloud_run_revision`, `uptime_url`) that M9 and M12
//! forbid to clients, and may create DELTA descriptors. Every other rule
//! (labels, kinds, intervals, distributions, order, sampling) holds for both.
//!
//! Checks that need no stored state live in [`validate_series`]; checks
//! against the series' previous point (order, sampling period, interval
//! continuity) in [`check_against_last`]. Each failure is a reason string in
//! Google's wording; [`envelope`] joins them into the M1 partial-failure message.
//!
//! Why one file: it is Google's rule list M1-M16 in order, one function per
//! rule, so a reader checks it against `gcp-api-rules.md` top to bottom.

use std::collections::{BTreeMap, HashSet};

use gcloud_sdk::google::api::{
    distribution::bucket_options::Options, label_descriptor, metric_descriptor::MetricKind,
    metric_descriptor::ValueType, Distribution, LabelDescriptor, Metric, MetricDescriptor,
};
use gcloud_sdk::google::monitoring::v3::{typed_value, TimeSeries, TypedValue};

use crate::time::timestamp::{self, from_nanos, rfc3339, sampling_format, NANOS_PER_SECOND};

/// At most this many series per `CreateTimeSeries` (M2).
pub const MAX_SERIES_PER_REQUEST: usize = 200;
/// Labels per user-defined descriptor (M10).
pub const MAX_LABELS: usize = 30;
const MAX_LABEL_KEY_CHARS: usize = 100;
/// Label values, of metrics and of monitored resources alike: a resource
/// type's labels are `LabelDescriptor`s, whose STRING values are "not to
/// exceed 1,024 characters" (the LabelDescriptor reference); the quotas
/// page lists 1024 as the "string length for label value".
pub(crate) const MAX_LABEL_VALUE_CHARS: usize = 1024;
const MAX_RELATIVE_NAME_CHARS: usize = 100;
const MAX_BUCKETS: i64 = 200;
/// How far in the past and the future a point's end may be (M6).
pub(crate) const MAX_PAST_NANOS: i64 = 25 * 3600 * NANOS_PER_SECOND;
pub(crate) const MAX_FUTURE_NANOS: i64 = 5 * 60 * NANOS_PER_SECOND;
/// A cumulative reset must start at least this long after the previous end (M5).
const RESET_GAP_NANOS: i64 = 1_000_000;

/// Prefixes of metric types a client may write (M9).
pub const USER_DEFINED_PREFIXES: [&str; 4] = [
    "custom.googleapis.com/",
    "external.googleapis.com/",
    "workload.googleapis.com/",
    "prometheus.googleapis.com/",
];

/// Writable monitored resources and their required labels, `project_id`
/// excepted: Google fills it from the request (M12).
const WRITABLE_RESOURCES: [(&str, &[&str]); 9] = [
    ("global", &[]),
    ("generic_task", &["location", "namespace", "job", "task_id"]),
    ("generic_node", &["location", "namespace", "node_id"]),
    ("gce_instance", &["instance_id", "zone"]),
    (
        "k8s_container",
        &[
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ],
    ),
    (
        "k8s_pod",
        &["location", "cluster_name", "namespace_name", "pod_name"],
    ),
    ("k8s_node", &["location", "cluster_name", "node_name"]),
    ("k8s_cluster", &["location", "cluster_name"]),
    (
        "aws_ec2_instance",
        &["instance_id", "region", "aws_account"],
    ),
];

/// Monitored resources only Google writes to, with their required labels
/// (`project_id` excepted, as for the writable ones).
const SYSTEM_RESOURCES: [(&str, &[&str]); 2] = [
    (
        "cloud_run_revision",
        &[
            "service_name",
            "revision_name",
            "configuration_name",
            "location",
        ],
    ),
    ("uptime_url", &["host"]),
];

/// Who writes: an API client, or one of Google's own metric producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Held to every rule, M9 and M12 included.
    Client,
    /// Google's producers: system metric types and resources, DELTA
    /// descriptors created on first write; all other rules hold.
    Google,
}

/// Request-level failures: the whole request is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "Field name had an invalid value of \"{0}\": expected projects/[PROJECT_ID_OR_NUMBER]."
    )]
    BadName(String),
    #[error("Field timeSeries had an invalid value: at most {MAX_SERIES_PER_REQUEST} TimeSeries can be written in one request, got {0}.")]
    TooManySeries(usize),
    #[error("Field timeSeries had an invalid value: at least one TimeSeries is required.")]
    NoSeries,
}

/// The identity of a series: metric type and labels, resource type and labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub project: String,
    pub metric_type: String,
    pub metric_labels: BTreeMap<String, String>,
    pub resource_type: String,
    pub resource_labels: BTreeMap<String, String>,
}

/// One point as stored: its interval in nanoseconds and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub start: i64,
    pub end: i64,
    pub value: TypedValue,
}

/// A series that passed the stateless checks.
#[derive(Debug, Clone)]
pub struct ValidSeries {
    pub key: SeriesKey,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub point: StoredPoint,
    /// Descriptor to create or extend (new labels), when it changes.
    pub descriptor_update: Option<MetricDescriptor>,
}

/// The project of `projects/[PROJECT]`.
///
/// # Errors
/// [`RequestError::BadName`].
pub fn parse_project(name: &str) -> Result<String, RequestError> {
    match name.strip_prefix("projects/") {
        Some(p) if !p.is_empty() && !p.contains('/') => Ok(p.to_string()),
        _ => Err(RequestError::BadName(name.to_string())),
    }
}

/// M2: the request's size.
///
/// # Errors
/// [`RequestError::TooManySeries`] or [`RequestError::NoSeries`].
pub fn check_request_size(series: usize) -> Result<(), RequestError> {
    match series {
        0 => Err(RequestError::NoSeries),
        n if n > MAX_SERIES_PER_REQUEST => Err(RequestError::TooManySeries(n)),
        _ => Ok(()),
    }
}

/// All stateless checks of series `index` (M3, M5, M6, M9-M14) for an API client.
///
/// # Errors
/// The reason, in Google's wording, without the `: timeSeries[i]` suffix.
pub fn validate_series(
    index: usize,
    project: &str,
    series: &TimeSeries,
    descriptor: Option<&MetricDescriptor>,
    now_nanos: i64,
) -> Result<ValidSeries, String> {
    validate_series_as(
        Writer::Client,
        index,
        project,
        series,
        descriptor,
        now_nanos,
    )
}

/// [`validate_series`] for `writer`: see [`Writer`] for what differs.
///
/// # Errors
/// The reason, in Google's wording, without the `: timeSeries[i]` suffix.
pub fn validate_series_as(
    writer: Writer,
    index: usize,
    project: &str,
    series: &TimeSeries,
    descriptor: Option<&MetricDescriptor>,
    now_nanos: i64,
) -> Result<ValidSeries, String> {
    let metric = series
        .metric
        .as_ref()
        .ok_or_else(|| format!("Field timeSeries[{index}].metric is required."))?;
    let type_field = format!("timeSeries[{index}].metric.type");
    match writer {
        Writer::Client => check_metric_type(&type_field, &metric.r#type)?,
        Writer::Google => check_system_metric_type(&type_field, &metric.r#type)?,
    }
    check_metric_labels(index, &metric.r#type, &metric.labels)?;
    let resource = series
        .resource
        .as_ref()
        .ok_or_else(|| format!("Field timeSeries[{index}].resource is required."))?;
    check_resource(writer, index, &resource.r#type, &resource.labels)?;
    let point = single_point(index, series)?;
    let value = point
        .value
        .as_ref()
        .and_then(|v| v.value.as_ref())
        .ok_or_else(|| format!("Field timeSeries[{index}].points[0].value is required."))?;
    let value_type = value_type_of(value);
    let kind = resolve_kind(
        writer,
        index,
        series,
        &metric.r#type,
        value_type,
        descriptor,
    )?;
    if let typed_value::Value::DistributionValue(d) = value {
        check_distribution(d).map_err(|reason| {
            format!("Field timeSeries[{index}].points[0].distributionValue had an invalid value: {reason}")
        })?;
    }
    let (start, end) = interval(index, point, kind, &metric.r#type, now_nanos)?;
    let descriptor_update = descriptor_update(descriptor, metric, series, kind, value_type)?;
    let mut resource_labels: BTreeMap<String, String> = resource
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    resource_labels
        .entry("project_id".into())
        .or_insert_with(|| project.to_string());
    Ok(ValidSeries {
        key: SeriesKey {
            project: project.to_string(),
            metric_type: metric.r#type.clone(),
            metric_labels: metric
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resource_type: resource.r#type.clone(),
            resource_labels,
        },
        kind,
        value_type,
        point: StoredPoint {
            start,
            end,
            value: point.value.clone().unwrap_or_default(),
        },
        descriptor_update,
    })
}

/// M9: a user-defined type with a well-formed relative name.
///
/// # Errors
/// The reason in Google's style, naming `field`.
pub fn check_metric_type(field: &str, metric_type: &str) -> Result<(), String> {
    if metric_type.starts_with("logging.googleapis.com/user/") {
        return Err(format!(
            "Field {field} had an invalid value of \"{metric_type}\": logs-based metrics belong to Cloud Logging and cannot be written through the Monitoring API."
        ));
    }
    let Some(relative) = USER_DEFINED_PREFIXES
        .iter()
        .find_map(|p| metric_type.strip_prefix(p))
    else {
        return Err(format!(
            "Field {field} had an invalid value of \"{metric_type}\": the metric type must be user-defined, under one of {}.",
            USER_DEFINED_PREFIXES.join(", ")
        ));
    };
    let well_formed = !relative.is_empty()
        && relative.chars().count() <= MAX_RELATIVE_NAME_CHARS
        && relative
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.'));
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "Field {field} had an invalid value of \"{metric_type}\": the name after the prefix must be 1 to {MAX_RELATIVE_NAME_CHARS} letters, digits, '/', '_' or '.'."
        ))
    }
}

/// The metric types Google's producers write: `SERVICE.googleapis.com/NAME`.
/// The name is looser than M9's user-defined one: log-based metric names
/// may carry `-` and other punctuation (`logging.googleapis.com/user/app-errors`).
fn check_system_metric_type(field: &str, metric_type: &str) -> Result<(), String> {
    let well_formed = metric_type
        .split_once(".googleapis.com/")
        .is_some_and(|(service, name)| {
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
                && !name.is_empty()
                && name.chars().count() <= MAX_RELATIVE_NAME_CHARS
                && name.chars().all(|c| c.is_ascii_graphic())
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "Field {field} had an invalid value of \"{metric_type}\": expected SERVICE.googleapis.com/NAME."
        ))
    }
}

fn is_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= MAX_LABEL_KEY_CHARS
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_metric_labels(
    index: usize,
    metric_type: &str,
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "The new labels would cause the metric {metric_type} to have over {MAX_LABELS} labels."
        ));
    }
    for (key, value) in labels {
        if !is_label_key(key) {
            return Err(format!(
                "Field timeSeries[{index}].metric.labels[{key}] had an invalid value: label keys must match [a-z][a-z0-9_]* and have at most {MAX_LABEL_KEY_CHARS} characters."
            ));
        }
        if value.chars().count() > MAX_LABEL_VALUE_CHARS {
            return Err(format!(
                "Field timeSeries[{index}].metric.labels[{key}] had an invalid value: label values can have at most {MAX_LABEL_VALUE_CHARS} characters."
            ));
        }
    }
    Ok(())
}

fn check_resource(
    writer: Writer,
    index: usize,
    resource_type: &str,
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    if writer == Writer::Google {
        if let Some((_, required)) = SYSTEM_RESOURCES.iter().find(|(t, _)| *t == resource_type) {
            // Locations of system resources are Google's own (and `local` in
            // the emulator), so only the set of labels is checked.
            check_required_labels(required, labels)?;
            check_known_labels(required, labels)?;
            return check_resource_label_values(index, labels);
        }
    }
    if resource_type == "cloud_run_revision" {
        return Err("Metrics cannot be written to cloud_run_revision. See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list of writable resource types.".into());
    }
    let Some((_, required)) = WRITABLE_RESOURCES.iter().find(|(t, _)| *t == resource_type) else {
        return Err(format!(
            "Field timeSeries[{index}].resource.type had an invalid value of \"{resource_type}\": Metrics cannot be written to {resource_type}. See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list of writable resource types."
        ));
    };
    check_required_labels(required, labels)?;
    check_known_labels(required, labels)?;
    check_resource_label_values(index, labels)?;
    match labels.get("location") {
        Some(location) if !is_location(location) => Err("Unrecognized region or location.".into()),
        _ => Ok(()),
    }
}

fn check_required_labels(
    required: &[&str],
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|label| !labels.contains_key(*label))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "The set of resource labels is incomplete. Missing labels: ({}).",
            missing.join(" ")
        ))
    }
}

/// M12: a label the resource type does not define is refused, as Google
/// refuses it (`Unrecognized resource label: pod_id`); the types above
/// define their required labels and `project_id`, nothing else. Without
/// this, any number of labels of any size made new series.
fn check_known_labels(
    defined: &[&str],
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    let unknown = labels
        .keys()
        .filter(|key| *key != "project_id" && !defined.contains(&key.as_str()))
        .min();
    match unknown {
        Some(key) => Err(format!(
            "Unrecognized resource label: {}",
            crate::grpc::clip_to(key, MAX_LABEL_KEY_CHARS)
        )),
        None => Ok(()),
    }
}

/// A resource label value over [`MAX_LABEL_VALUE_CHARS`] is refused as a
/// metric label's is: the defined labels are bounded in number, this
/// bounds their size.
fn check_resource_label_values(
    index: usize,
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    match too_long_label(labels) {
        Some(key) => Err(format!(
            "Field timeSeries[{index}].resource.labels[{key}] had an invalid value: label values can have at most {MAX_LABEL_VALUE_CHARS} characters."
        )),
        None => Ok(()),
    }
}

/// The first key (in order) whose value is over [`MAX_LABEL_VALUE_CHARS`].
pub(crate) fn too_long_label<'a, V: AsRef<str> + 'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a V)>,
) -> Option<&'a str> {
    labels
        .into_iter()
        // A value has no more characters than bytes: most are settled by
        // their length alone.
        .filter(|(_, v)| {
            let v = v.as_ref();
            v.len() > MAX_LABEL_VALUE_CHARS && v.chars().count() > MAX_LABEL_VALUE_CHARS
        })
        .map(|(k, _)| k.as_str())
        .min()
}

/// `global`, a GCP region or zone (`europe-west1`, `us-central1-a`), or an
/// AWS region prefixed `aws:` as Google's generic resources accept.
fn is_location(location: &str) -> bool {
    if location == "global" {
        return true;
    }
    let name = location.strip_prefix("aws:").unwrap_or(location);
    let alpha = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase());
    let mut parts: Vec<&str> = name.split('-').collect();
    if parts.len() >= 3 && parts.last().is_some_and(|z| z.len() == 1 && alpha(z)) {
        parts.pop(); // a zone: region plus one letter
    }
    let Some((last, rest)) = parts.split_last() else {
        return false;
    };
    let digits = last.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let letters = &last[..last.len() - digits.len()];
    let numbered = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    // GCP `west1` carries letters and digits; AWS `us-east-1` a bare number.
    let last_ok = numbered && (alpha(letters) || (letters.is_empty() && rest.len() >= 2));
    last_ok && !rest.is_empty() && rest.iter().all(|p| alpha(p))
}

fn single_point(
    index: usize,
    series: &TimeSeries,
) -> Result<&gcloud_sdk::google::monitoring::v3::Point, String> {
    match series.points.as_slice() {
        [point] => Ok(point),
        _ => Err(format!(
            "Field timeSeries[{index}].points had an invalid value: Only one point can be written per TimeSeries per request."
        )),
    }
}

/// The value type of a point.
pub fn value_type_of(value: &typed_value::Value) -> ValueType {
    match value {
        typed_value::Value::BoolValue(_) => ValueType::Bool,
        typed_value::Value::Int64Value(_) => ValueType::Int64,
        typed_value::Value::DoubleValue(_) => ValueType::Double,
        typed_value::Value::StringValue(_) => ValueType::String,
        typed_value::Value::DistributionValue(_) => ValueType::Distribution,
    }
}

/// The enum name Google prints (`INT64`, `CUMULATIVE`).
pub fn kind_name(kind: MetricKind) -> &'static str {
    kind.as_str_name()
}

/// The enum name Google prints for a value type.
pub fn type_name(value_type: ValueType) -> &'static str {
    value_type.as_str_name()
}

/// M11 and M14: the kind the point is written with, checked against the
/// descriptor if there is one, else against what auto-creation allows.
fn resolve_kind(
    writer: Writer,
    index: usize,
    series: &TimeSeries,
    metric_type: &str,
    value_type: ValueType,
    descriptor: Option<&MetricDescriptor>,
) -> Result<MetricKind, String> {
    let declared_kind = MetricKind::try_from(series.metric_kind).unwrap_or(MetricKind::Unspecified);
    let declared_type = ValueType::try_from(series.value_type).unwrap_or(ValueType::Unspecified);
    if declared_type != ValueType::Unspecified && declared_type != value_type {
        return Err(format!(
            "Value type for metric {metric_type} must be {}, but is {}.",
            type_name(declared_type),
            type_name(value_type)
        ));
    }
    if let Some(descriptor) = descriptor {
        let kind = MetricKind::try_from(descriptor.metric_kind).unwrap_or(MetricKind::Gauge);
        let expected = ValueType::try_from(descriptor.value_type).unwrap_or(ValueType::Unspecified);
        if declared_kind != MetricKind::Unspecified && declared_kind != kind {
            return Err(format!(
                "Metric kind for metric {metric_type} must be {}, but is {}.",
                kind_name(kind),
                kind_name(declared_kind)
            ));
        }
        if expected != value_type {
            return Err(format!(
                "Value type for metric {metric_type} must be {}, but is {}.",
                type_name(expected),
                type_name(value_type)
            ));
        }
        return Ok(kind);
    }
    let kind = match declared_kind {
        MetricKind::Unspecified | MetricKind::Gauge => MetricKind::Gauge,
        MetricKind::Cumulative => MetricKind::Cumulative,
        // Google's producers declare their system descriptors, DELTA included.
        MetricKind::Delta if writer == Writer::Google => MetricKind::Delta,
        MetricKind::Delta => {
            return Err(format!(
                "Field timeSeries[{index}].metricKind had an invalid value of \"DELTA\": a metric descriptor is created automatically only for GAUGE or CUMULATIVE metrics; create the descriptor of {metric_type} first."
            ))
        }
    };
    check_kind_and_type(metric_type, kind, value_type)?;
    Ok(kind)
}

/// M11: the kind x value type combinations Monitoring supports.
///
/// # Errors
/// The reason when the combination is not allowed.
pub fn check_kind_and_type(
    metric_type: &str,
    kind: MetricKind,
    value_type: ValueType,
) -> Result<(), String> {
    let custom = metric_type.starts_with("custom.googleapis.com/");
    let allowed = match (value_type, kind) {
        (_, MetricKind::Unspecified) | (ValueType::Unspecified | ValueType::Money, _) => false,
        (ValueType::Bool, k) => k == MetricKind::Gauge,
        (ValueType::String, k) => k == MetricKind::Gauge && !custom,
        (_, MetricKind::Delta) => !custom,
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "The metric kind {} is not supported with value type {} for metric {metric_type}.",
            kind_name(kind),
            type_name(value_type)
        ))
    }
}

/// M5 and M6: the point's interval for its kind and the write window.
fn interval(
    index: usize,
    point: &gcloud_sdk::google::monitoring::v3::Point,
    kind: MetricKind,
    metric_type: &str,
    now: i64,
) -> Result<(i64, i64), String> {
    let field = format!("timeSeries[{index}].points[0].interval");
    let interval = point
        .interval
        .as_ref()
        .ok_or_else(|| format!("Field {field} is required."))?;
    let end_ts = interval
        .end_time
        .as_ref()
        .ok_or_else(|| format!("Field {field}.end_time is required."))?;
    let end = timestamp::to_nanos(end_ts)
        .map_err(|e| format!("Field {field}.end_time had an invalid value: {e}."))?;
    let start = match interval.start_time.as_ref() {
        None if kind == MetricKind::Gauge => end,
        None => 0,
        Some(ts) => timestamp::to_nanos(ts)
            .map_err(|e| format!("Field {field}.start_time had an invalid value: {e}."))?,
    };
    let (start_text, end_text) = (rfc3339(&from_nanos(start)), rfc3339(end_ts));
    if kind == MetricKind::Gauge && start != end {
        return Err(format!(
            "Field {field}.start_time had an invalid value of \"{start_text}\": The start time must be equal to the end time ({end_text}) for the gauge metric '{metric_type}'."
        ));
    }
    if kind != MetricKind::Gauge && start >= end {
        return Err(format!(
            "Field {field}.start_time had an invalid value of \"{start_text}\": The start time must be before the end time ({end_text}) for the non-gauge metric '{metric_type}'."
        ));
    }
    if end < now.saturating_sub(MAX_PAST_NANOS) {
        return Err(format!(
            "Field {field}.end_time had an invalid value of \"{end_text}\": Data points cannot be written more than 25h10s in the past."
        ));
    }
    if end > now.saturating_add(MAX_FUTURE_NANOS) {
        return Err(format!(
            "Field {field}.end_time had an invalid value of \"{end_text}\": Data points cannot be written more than 5m in the future."
        ));
    }
    Ok((start, end))
}

/// M14 auto-creation, or new labels added to an existing descriptor.
fn descriptor_update(
    existing: Option<&MetricDescriptor>,
    metric: &Metric,
    series: &TimeSeries,
    kind: MetricKind,
    value_type: ValueType,
) -> Result<Option<MetricDescriptor>, String> {
    let mut descriptor = match existing {
        Some(d) => d.clone(),
        None => MetricDescriptor {
            r#type: metric.r#type.clone(),
            metric_kind: kind as i32,
            value_type: value_type as i32,
            unit: series.unit.clone(),
            description: series.description.clone(),
            ..MetricDescriptor::default()
        },
    };
    let known: HashSet<String> = descriptor.labels.iter().map(|l| l.key.clone()).collect();
    let mut new_keys: Vec<&String> = metric
        .labels
        .keys()
        .filter(|k| !known.contains(*k))
        .collect();
    if existing.is_some() && new_keys.is_empty() {
        return Ok(None);
    }
    if known.len() + new_keys.len() > MAX_LABELS {
        return Err(format!(
            "The new labels would cause the metric {} to have over {MAX_LABELS} labels.",
            metric.r#type
        ));
    }
    new_keys.sort();
    descriptor
        .labels
        .extend(new_keys.into_iter().map(|key| LabelDescriptor {
            key: key.clone(),
            value_type: label_descriptor::ValueType::String as i32,
            description: String::new(),
        }));
    Ok(Some(descriptor))
}

/// M5, M7 and M8 against the series' most recent point.
///
/// # Errors
/// The reason in Google's wording.
pub fn check_against_last(
    metric_type: &str,
    kind: MetricKind,
    last: &StoredPoint,
    new: &StoredPoint,
    min_sampling_nanos: i64,
) -> Result<(), String> {
    const OLDER_START: &str = "Points must be written in order. One or more of the points specified had an older start time than the most recent point.";
    const OLDER_END: &str = "Points must be written in order. One or more of the points specified had an older end time than the most recent point.";
    if new.end < last.end {
        return Err(OLDER_END.into());
    }
    let continuous = match kind {
        MetricKind::Cumulative => {
            new.start == last.start || new.start >= last.end.saturating_add(RESET_GAP_NANOS)
        }
        MetricKind::Delta => new.start >= last.end,
        _ => true,
    };
    if !continuous {
        return Err(OLDER_START.into());
    }
    if new.end - last.end < min_sampling_nanos {
        return Err(format!(
            "One or more points were written more frequently than the maximum sampling period configured for the metric. {{Metric: {metric_type}, Timestamps: {{Youngest Existing: '{}', New: '{}'}}}}",
            sampling_format(last.end),
            sampling_format(new.end)
        ));
    }
    Ok(())
}

/// M13: a distribution's internal consistency.
///
/// # Errors
/// The reason in Google's wording.
pub fn check_distribution(d: &Distribution) -> Result<(), String> {
    if d.count < 0 {
        return Err(format!(
            "Distribution value has a negative |count| field value of {}.",
            d.count
        ));
    }
    // Google's wording (prometheus-engine #144): "Distribution value with a
    // non-finite |mean| of nan." Plain DOUBLE points may be NaN or infinite
    // (see docs/reliability.md); a distribution's moments may not.
    for (field, value) in [
        ("mean", d.mean),
        ("sum_of_squared_deviation", d.sum_of_squared_deviation),
    ] {
        if !value.is_finite() {
            return Err(format!(
                "Distribution value with a non-finite |{field}| of {}.",
                value.to_string().to_lowercase()
            ));
        }
    }
    if d.count == 0 {
        check_empty_distribution(d)?;
    }
    check_exemplars(d)?;
    let buckets = bucket_count(d)?;
    let counts = d.bucket_counts.len() as i64;
    if counts > buckets {
        return Err(format!(
            "Distribution value has {counts} |bucket_counts| fields, which is more than the {buckets} buckets allowed by the bucketing options."
        ));
    }
    if let Some(i) = d.bucket_counts.iter().position(|c| *c < 0) {
        return Err(format!(
            "Distribution bucket_counts({i}) has a negative count."
        ));
    }
    let sum = d
        .bucket_counts
        .iter()
        .fold(0i64, |acc, c| acc.saturating_add(*c));
    if !d.bucket_counts.is_empty() && sum != d.count {
        return Err(format!(
            "Distribution value has |bucket_counts| fields that sum to {sum} which does not equal the |count| field value of {}.",
            d.count
        ));
    }
    Ok(())
}

fn check_empty_distribution(d: &Distribution) -> Result<(), String> {
    if d.mean != 0.0 {
        return Err(format!(
            "Distribution value with |count| of 0 has a non-zero |mean| value of {}.",
            d.mean
        ));
    }
    if d.sum_of_squared_deviation != 0.0 {
        return Err(format!(
            "Distribution value with |count| of 0 has a non-zero |sum_of_squared_deviation| value of {}.",
            d.sum_of_squared_deviation
        ));
    }
    if d.range.is_some() {
        return Err("Distribution value with |count| of 0 has a |range|.".into());
    }
    Ok(())
}

/// "There may be only a single attachment of any given message type in a
/// single exemplar, and this is enforced by the system" (distribution.proto);
/// Google's wording is not published. What attachments hold is bounded by
/// the request size and counted in the store's byte cap.
fn check_exemplars(d: &Distribution) -> Result<(), String> {
    for (i, exemplar) in d.exemplars.iter().enumerate() {
        let mut seen = HashSet::new();
        if let Some(repeated) = exemplar
            .attachments
            .iter()
            .find(|a| !seen.insert(a.type_url.as_str()))
        {
            return Err(format!(
                "Distribution |exemplars[{i}]| has more than one attachment of type {}.",
                crate::grpc::clip_to(&repeated.type_url, MAX_LABEL_KEY_CHARS)
            ));
        }
    }
    Ok(())
}

/// Strictly positive, and so not NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// Underflow + finite + overflow buckets the options define.
fn bucket_count(d: &Distribution) -> Result<i64, String> {
    let options = d
        .bucket_options
        .as_ref()
        .and_then(|o| o.options.as_ref())
        .ok_or(
            "Distribution value has no |bucket_options|; exactly one bucketing option is required.",
        )?;
    let finite = match options {
        Options::LinearBuckets(l) => {
            if l.num_finite_buckets <= 0 || !positive(l.width) || !l.offset.is_finite() {
                return Err(
                    "Distribution |linear_buckets| needs num_finite_buckets > 0 and width > 0."
                        .into(),
                );
            }
            i64::from(l.num_finite_buckets)
        }
        Options::ExponentialBuckets(e) => {
            if e.num_finite_buckets <= 0 || !positive(e.growth_factor - 1.0) || !positive(e.scale) {
                return Err("Distribution |exponential_buckets| needs num_finite_buckets > 0, growth_factor > 1 and scale > 0.".into());
            }
            i64::from(e.num_finite_buckets)
        }
        Options::ExplicitBuckets(e) => {
            if e.bounds.is_empty() {
                return Err(
                    "Distribution |explicit_buckets.bounds| does not have at least one entry."
                        .into(),
                );
            }
            if e.bounds.windows(2).any(|w| !positive(w[1] - w[0]))
                || e.bounds.iter().any(|b| !b.is_finite())
            {
                return Err("Distribution |explicit_buckets.bounds| must be finite and strictly increasing.".into());
            }
            e.bounds.len() as i64 - 1
        }
    };
    let total = finite + 2;
    if total > MAX_BUCKETS {
        return Err(format!(
            "Distribution value has {total} buckets, which is more than the maximum of {MAX_BUCKETS}."
        ));
    }
    Ok(total)
}

/// M15 and M10: a descriptor given to `CreateMetricDescriptor`.
///
/// # Errors
/// The reason in Google's wording.
pub fn validate_descriptor(descriptor: &MetricDescriptor) -> Result<(), String> {
    check_metric_type("metricDescriptor.type", &descriptor.r#type)?;
    let kind = MetricKind::try_from(descriptor.metric_kind).unwrap_or(MetricKind::Unspecified);
    let value_type = ValueType::try_from(descriptor.value_type).unwrap_or(ValueType::Unspecified);
    check_kind_and_type(&descriptor.r#type, kind, value_type)?;
    if descriptor.labels.len() > MAX_LABELS {
        return Err(format!(
            "The new labels would cause the metric {} to have over {MAX_LABELS} labels.",
            descriptor.r#type
        ));
    }
    let workload = descriptor.r#type.starts_with("workload.googleapis.com/");
    let mut seen = HashSet::new();
    for (i, label) in descriptor.labels.iter().enumerate() {
        if !is_label_key(&label.key) || !seen.insert(label.key.as_str()) {
            return Err(format!(
                "Field labels[{i}].key had an invalid value of \"{}\": label keys must be unique, match [a-z][a-z0-9_]* and have at most {MAX_LABEL_KEY_CHARS} characters.",
                label.key
            ));
        }
        let label_type = label_descriptor::ValueType::try_from(label.value_type)
            .unwrap_or(label_descriptor::ValueType::String);
        if workload && label_type != label_descriptor::ValueType::String {
            return Err(format!(
                "Field labels[{i}].valueType had an invalid value of \"{}\": Metric labels for this user-defined metric are required to be of type 'STRING'",
                label_type.as_str_name()
            ));
        }
    }
    Ok(())
}

/// M1: `One or more TimeSeries could not be written: <reason>: timeSeries[i]; ...`,
/// identical reasons merged with their indices as ranges (`timeSeries[0-2,5]`).
pub fn envelope(errors: &[(usize, String)]) -> String {
    let mut grouped: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, reason) in errors {
        match grouped.iter_mut().find(|(r, _)| r == reason) {
            Some((_, indices)) => indices.push(*index),
            None => grouped.push((reason, vec![*index])),
        }
    }
    let parts: Vec<String> = grouped
        .into_iter()
        .map(|(reason, indices)| format!("{reason}: timeSeries[{}]", ranges(&indices)))
        .collect();
    format!(
        "One or more TimeSeries could not be written: {}",
        parts.join("; ")
    )
}

fn ranges(indices: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            indices[i].to_string()
        } else {
            format!("{}-{}", indices[i], indices[j])
        });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_merges_identical_reasons_into_ranges() {
        let errors = vec![
            (0, "A".to_string()),
            (1, "A".to_string()),
            (2, "A".to_string()),
            (4, "B".to_string()),
            (5, "A".to_string()),
        ];
        assert_eq!(
            envelope(&errors),
            "One or more TimeSeries could not be written: A: timeSeries[0-2,5]; B: timeSeries[4]"
        );
    }

    #[test]
    fn an_exemplar_holds_one_attachment_of_each_type_and_moments_are_finite() {
        use gcloud_sdk::google::api::distribution::Exemplar;
        let attachment = |type_url: &str| prost_types::Any {
            type_url: type_url.into(),
            value: vec![0; 8],
        };
        let mut d = Distribution {
            exemplars: vec![Exemplar {
                attachments: vec![attachment("a"), attachment("b")],
                ..Exemplar::default()
            }],
            ..Distribution::default()
        };
        assert_eq!(check_exemplars(&d), Ok(()));
        d.exemplars[0].attachments.push(attachment("a"));
        assert_eq!(
            check_exemplars(&d),
            Err("Distribution |exemplars[0]| has more than one attachment of type a.".into())
        );
        let infinite = Distribution {
            count: 1,
            sum_of_squared_deviation: f64::INFINITY,
            ..Distribution::default()
        };
        assert_eq!(
            check_distribution(&infinite),
            Err("Distribution value with a non-finite |sum_of_squared_deviation| of inf.".into())
        );
    }

    #[test]
    fn recognises_locations() {
        for ok in [
            "global",
            "europe-west1",
            "us-central1-a",
            "northamerica-northeast2",
            "aws:us-east-1",
        ] {
            assert!(is_location(ok), "{ok}");
        }
        for bad in ["", "mars", "europe_west1", "Europe-west1", "us-central"] {
            assert!(!is_location(bad), "{bad}");
        }
    }

    #[test]
    fn workload_metrics_accept_dots() {
        assert!(check_metric_type("t", "workload.googleapis.com/http.server.duration").is_ok());
        assert!(check_metric_type("t", "run.googleapis.com/request_count").is_err());
        assert!(check_metric_type("t", "custom.googleapis.com/a-b").is_err());
    }
}
