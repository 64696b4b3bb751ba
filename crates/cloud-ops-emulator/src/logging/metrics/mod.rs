//! Log-based metrics: the `google_logging_metric` resources of the project's
//! Terraform, computed from the stored log entries the way Cloud Logging
//! computes them, and written to the metric store as
//! `logging.googleapis.com/user/NAME` series that alert policies read.
//!
//! [`LogMetric::from_terraform`] turns a resource into a metric: its filter
//! parsed with the Logging query language, its descriptor (DELTA INT64 with
//! unit `1` unless it says otherwise), its label extractors and, for a
//! distribution, its value extractor and bucket layout. Anything the emulator
//! cannot compute faithfully is an error naming the resource, never ignored:
//! a metric that silently counted nothing would make an alert look safe.
//!
//! [`LogMetricsCollector::collect`] reads the entries received since its last
//! call (a cursor on entry ids, so each entry counts exactly once) and writes
//! one DELTA point per metric, label values and resource over
//! (previous collect, now]. As on Google, a metric with no matching entries
//! in an interval gets no point at all: the no-traffic alert relies on that
//! absence. The same step computes Cloud Run's built-in request metrics (see
//! [`crate::logging::metrics::cloud_run`]), which Cloud Run also derives from request logs.
//!
//! Rules (`gcp-api-rules.md` L2, L3): a label whose extraction fails gets its
//! type's default (`""`, `0`, `false`); for a distribution, an entry whose
//! value cannot be extracted or is not a number is skipped; values are
//! converted to double.

pub mod cloud_run;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{
    label_descriptor, Distribution, LabelDescriptor, Metric, MetricDescriptor, MonitoredResource,
};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Point, TimeInterval, TimeSeries, TypedValue,
};
use regex::Regex;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::logging::query::{snake_to_camel, LogFilter, LogFilterError};
use crate::logging::store::{LogEntry, LogResource, LogStore};
use crate::monitoring::store::MetricStore;
use crate::terraform::{ResourceInstance, TerraformModule};
use crate::time::timestamp::from_nanos;

/// Prefix of the metric types Cloud Logging gives user-defined log metrics.
pub const USER_METRIC_PREFIX: &str = "logging.googleapis.com/user/";
/// Cloud Logging's limit on a metric name.
const MAX_NAME_CHARS: usize = 100;
/// Monitoring's limit on a label value (M10); longer extracted values are
/// cut rather than having the whole point rejected.
const MAX_LABEL_VALUE_CHARS: usize = 1024;
/// Monitoring's limit on buckets, underflow and overflow included (M13).
const MAX_BUCKETS: usize = 200;
/// The LogEntry fields an extractor may start from.
const EXTRACTABLE_FIELDS: &[&str] = &[
    "jsonPayload",
    "textPayload",
    "httpRequest",
    "labels",
    "resource",
    "severity",
    "trace",
    "spanId",
    "sourceLocation",
    "logName",
    "insertId",
    "timestamp",
    "operation",
];

/// Why a `google_logging_metric` cannot be evaluated.
#[derive(Debug, Error)]
pub enum LogMetricError {
    #[error("{address}: {field} is required")]
    Missing {
        address: String,
        field: &'static str,
    },
    #[error("{address}: {field}: {message}")]
    Invalid {
        address: String,
        field: String,
        message: String,
    },
    #[error("{address}: {what} is not supported by the emulator")]
    Unsupported { address: String, what: String },
    #[error("{address}: the filter does not parse: {source}")]
    Filter {
        address: String,
        #[source]
        source: LogFilterError,
    },
}

/// `EXTRACT(field)` or `REGEXP_EXTRACT(field, "re")`: a value taken from a
/// LogEntry (as Cloud Logging JSON).
#[derive(Clone, Debug)]
pub struct Extractor {
    path: Vec<String>,
    regex: Option<Regex>,
    expression: String,
}

impl Extractor {
    /// Parses an extractor expression.
    ///
    /// # Errors
    /// A message saying what is wrong: not one of the two functions, an
    /// unknown LogEntry field, a regex that does not compile or that has not
    /// exactly one capture group.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let text = expression.trim();
        let (path, regex) = if let Some(inner) = call_argument(text, "REGEXP_EXTRACT") {
            let (field, literal) = split_field_and_literal(inner)?;
            (parse_field_path(field)?, Some(parse_regex(literal)?))
        } else if let Some(inner) = call_argument(text, "EXTRACT") {
            (parse_field_path(inner)?, None)
        } else {
            return Err(format!(
                "{text:?} is neither EXTRACT(field) nor REGEXP_EXTRACT(field, \"regex\")"
            ));
        };
        Ok(Self {
            path,
            regex,
            expression: text.to_owned(),
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The extracted text, `None` when the field is missing, not a scalar,
    /// or the regex does not match.
    pub fn extract(&self, entry: &Value) -> Option<String> {
        let text = scalar_text(lookup(entry, &self.path)?)?;
        match &self.regex {
            None => Some(text),
            Some(regex) => regex
                .captures(&text)
                .and_then(|captures| captures.get(1))
                .map(|group| group.as_str().to_owned()),
        }
    }
}

/// `NAME( ... )`'s argument text, when `text` is that call.
fn call_argument<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(name)?.trim_start();
    rest.strip_prefix('(')?.strip_suffix(')').map(str::trim)
}

/// `field, "literal"`: split at the first comma outside quotes.
fn split_field_and_literal(inner: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    for (i, c) in inner.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => return Ok((inner[..i].trim(), inner[i + 1..].trim())),
            _ => {}
        }
    }
    Err(format!(
        "REGEXP_EXTRACT({inner}) needs a field and a quoted regex"
    ))
}

/// A `"..."` literal's content: `\"` is a quote, other escapes stay for the regex.
fn parse_regex(literal: &str) -> Result<Regex, String> {
    let body = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(|| format!("the regex {literal} must be a double-quoted string"))?;
    let pattern = body.replace("\\\"", "\"");
    let regex = Regex::new(&pattern).map_err(|error| format!("bad regex {pattern:?}: {error}"))?;
    // captures_len counts the whole match as group 0.
    match regex.captures_len() - 1 {
        1 => Ok(regex),
        groups => Err(format!(
            "the regex {pattern:?} must have exactly one capture group, it has {groups}"
        )),
    }
}

/// `jsonPayload.a."b.c"` into its segments, the first a LogEntry field.
fn parse_field_path(field: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in field.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => segments.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    segments.push(current);
    if quoted || segments.iter().any(|s| s.trim().is_empty()) {
        return Err(format!("{field:?} is not a field path"));
    }
    let first = snake_to_camel(&segments[0]);
    if !EXTRACTABLE_FIELDS.contains(&first.as_str()) {
        return Err(format!(
            "{field:?} does not start with a LogEntry field ({})",
            EXTRACTABLE_FIELDS.join(", ")
        ));
    }
    segments[0] = first;
    Ok(segments)
}

/// The value at `path`, accepting snake_case for camelCase LogEntry fields
/// (`http_request.status`), as Cloud Logging does.
fn lookup<'a>(entry: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(entry, |current, segment| {
        let object = current.as_object()?;
        object
            .get(segment)
            .or_else(|| object.get(&snake_to_camel(segment)))
    })
}

/// A string, number or boolean as text; objects, arrays and null are not extractable.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The value type of a log metric label: what its default is when extraction fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelType {
    String,
    Int64,
    Bool,
}

impl LabelType {
    fn descriptor_type(self) -> label_descriptor::ValueType {
        match self {
            Self::String => label_descriptor::ValueType::String,
            Self::Int64 => label_descriptor::ValueType::Int64,
            Self::Bool => label_descriptor::ValueType::Bool,
        }
    }

    /// L2: the extracted text as this type, or the type's default.
    fn label_value(self, extracted: Option<String>) -> String {
        match self {
            Self::String => extracted
                .map(|text| text.chars().take(MAX_LABEL_VALUE_CHARS).collect())
                .unwrap_or_default(),
            Self::Int64 => extracted
                .and_then(|text| text.trim().parse::<i64>().ok())
                .unwrap_or(0)
                .to_string(),
            Self::Bool => extracted
                .and_then(|text| text.trim().to_ascii_lowercase().parse::<bool>().ok())
                .unwrap_or(false)
                .to_string(),
        }
    }
}

/// One metric label and how its value is taken from an entry.
#[derive(Clone, Debug)]
pub struct LabelExtractor {
    pub key: String,
    pub label_type: LabelType,
    pub extractor: Extractor,
}

/// A distribution's bucket layout (`bucket_options`).
#[derive(Clone, Debug, PartialEq)]
pub enum Buckets {
    Linear {
        num_finite_buckets: i32,
        width: f64,
        offset: f64,
    },
    Exponential {
        num_finite_buckets: i32,
        growth_factor: f64,
        scale: f64,
    },
    Explicit {
        bounds: Vec<f64>,
    },
}

impl Buckets {
    /// M13's constraints on the layout.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        let finite = match self {
            Self::Linear {
                num_finite_buckets,
                width,
                offset,
            } => {
                if *num_finite_buckets <= 0 || !positive(*width) || !offset.is_finite() {
                    return Err("linear_buckets needs num_finite_buckets > 0 and width > 0".into());
                }
                *num_finite_buckets as usize
            }
            Self::Exponential {
                num_finite_buckets,
                growth_factor,
                scale,
            } => {
                if *num_finite_buckets <= 0 || !positive(*growth_factor - 1.0) || !positive(*scale)
                {
                    return Err("exponential_buckets needs num_finite_buckets > 0, growth_factor > 1 and scale > 0".into());
                }
                *num_finite_buckets as usize
            }
            Self::Explicit { bounds } => {
                let increasing = bounds.windows(2).all(|w| w[1] > w[0]);
                if bounds.is_empty() || !increasing || bounds.iter().any(|b| !b.is_finite()) {
                    return Err(
                        "explicit_buckets needs at least one bound, finite and strictly increasing"
                            .into(),
                    );
                }
                bounds.len() - 1
            }
        };
        if finite + 2 > MAX_BUCKETS {
            return Err(format!(
                "{} buckets with underflow and overflow, more than Monitoring's {MAX_BUCKETS}",
                finite + 2
            ));
        }
        Ok(())
    }

    /// The lower bounds of buckets 1..N+1: a value's bucket is how many of
    /// them are at or below it (bucket 0 is the underflow, the last the overflow).
    pub fn bounds(&self) -> Vec<f64> {
        match self {
            Self::Linear {
                num_finite_buckets,
                width,
                offset,
            } => (0..=*num_finite_buckets)
                .map(|i| offset + width * f64::from(i))
                .collect(),
            Self::Exponential {
                num_finite_buckets,
                growth_factor,
                scale,
            } => (0..=*num_finite_buckets)
                .map(|i| scale * growth_factor.powi(i))
                .collect(),
            Self::Explicit { bounds } => bounds.clone(),
        }
    }

    /// As Monitoring's `BucketOptions`.
    pub fn to_proto(&self) -> BucketOptions {
        let options = match self {
            Self::Linear {
                num_finite_buckets,
                width,
                offset,
            } => bucket_options::Options::LinearBuckets(bucket_options::Linear {
                num_finite_buckets: *num_finite_buckets,
                width: *width,
                offset: *offset,
            }),
            Self::Exponential {
                num_finite_buckets,
                growth_factor,
                scale,
            } => bucket_options::Options::ExponentialBuckets(bucket_options::Exponential {
                num_finite_buckets: *num_finite_buckets,
                growth_factor: *growth_factor,
                scale: *scale,
            }),
            Self::Explicit { bounds } => {
                bucket_options::Options::ExplicitBuckets(bucket_options::Explicit {
                    bounds: bounds.clone(),
                })
            }
        };
        BucketOptions {
            options: Some(options),
        }
    }
}

/// Strictly positive, and so not NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// Values of one interval as a Monitoring distribution: counts per bucket,
/// mean and sum of squared deviation (Welford's running form, which stays
/// accurate for values far from zero).
#[derive(Clone, Debug)]
pub struct DistributionBuilder {
    buckets: Buckets,
    bounds: Vec<f64>,
    counts: Vec<i64>,
    count: i64,
    mean: f64,
    squared_deviation: f64,
}

impl DistributionBuilder {
    /// An empty distribution over `buckets`, which should have passed
    /// [`Buckets::validate`] (that bounds the bucket count).
    pub fn new(buckets: &Buckets) -> Self {
        let bounds = buckets.bounds();
        Self {
            counts: vec![0; bounds.len() + 1],
            buckets: buckets.clone(),
            bounds,
            count: 0,
            mean: 0.0,
            squared_deviation: 0.0,
        }
    }

    /// Adds one value; non-finite values are ignored (Monitoring could not store them).
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let bucket = self.bounds.partition_point(|bound| *bound <= value);
        self.counts[bucket] += 1;
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.squared_deviation += delta * (value - self.mean);
    }

    pub fn count(&self) -> i64 {
        self.count
    }

    pub fn build(&self) -> Distribution {
        Distribution {
            count: self.count,
            mean: self.mean,
            sum_of_squared_deviation: self.squared_deviation.max(0.0),
            bucket_options: Some(self.buckets.to_proto()),
            bucket_counts: self.counts.clone(),
            ..Distribution::default()
        }
    }
}

/// What one entry contributes to a metric: its label values, and for a
/// distribution its value (`None`: the entry counts one).
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub labels: BTreeMap<String, String>,
    pub value: Option<f64>,
}

/// A metric computed from log entries: a Terraform log-based metric or one
/// of Cloud Run's request metrics.
pub trait EntryMetric: Debug + Send + Sync {
    /// Its descriptor: type, DELTA, INT64 or DISTRIBUTION, unit, labels.
    fn descriptor(&self) -> &MetricDescriptor;
    /// The bucket layout of a distribution.
    fn buckets(&self) -> Option<&Buckets>;
    /// What `entry` (and `json`, the same entry as Cloud Logging JSON) adds,
    /// `None` when it does not count.
    fn observe(&self, entry: &LogEntry, json: &Value) -> Option<Observation>;
    /// The project it lives in, when not the collector's.
    fn project(&self) -> Option<&str> {
        None
    }
}

/// One `google_logging_metric`.
#[derive(Clone, Debug)]
pub struct LogMetric {
    /// The Terraform address, for messages.
    pub address: String,
    /// The metric's `name`; its type is `logging.googleapis.com/user/NAME`.
    pub name: String,
    pub project: Option<String>,
    pub filter: LogFilter,
    pub filter_text: String,
    pub descriptor: MetricDescriptor,
    pub labels: Vec<LabelExtractor>,
    /// Only for distributions.
    pub value_extractor: Option<Extractor>,
    /// Only for distributions.
    pub buckets: Option<Buckets>,
    /// A disabled metric counts nothing.
    pub disabled: bool,
}

impl LogMetric {
    /// Every `google_logging_metric` of `module`.
    ///
    /// # Errors
    /// The first resource that cannot be evaluated.
    pub fn all_from(module: &TerraformModule) -> Result<Vec<Self>, LogMetricError> {
        module
            .of_type("google_logging_metric")
            .map(Self::from_terraform)
            .collect()
    }

    /// A metric from its evaluated Terraform resource.
    ///
    /// # Errors
    /// A missing or invalid argument, a filter or extractor that does not
    /// parse, or something the emulator cannot compute (a log bucket, a
    /// kind other than DELTA, a value type other than INT64 or DISTRIBUTION,
    /// an unknown bucket layout).
    pub fn from_terraform(resource: &ResourceInstance) -> Result<Self, LogMetricError> {
        let address = resource.address();
        let config = Config::new(&address, resource.to_json());
        let name = config.required_str("name")?;
        check_name(&name).map_err(|message| config.invalid("name", message))?;
        let filter_text = config.required_str("filter")?;
        let filter = LogFilter::parse(&filter_text).map_err(|source| LogMetricError::Filter {
            address: address.clone(),
            source,
        })?;
        if config.str("bucket_name").is_some_and(|b| !b.is_empty()) {
            return Err(config.unsupported("bucket_name (a metric over a user log bucket)"));
        }
        let descriptor_block = config.single_block("metric_descriptor")?;
        let mut descriptor = descriptor_config(&config, descriptor_block.as_ref(), &name)?;
        let label_types = label_types(&config, descriptor_block.as_ref())?;
        descriptor.labels = label_types
            .iter()
            .map(|(key, label_type, description)| LabelDescriptor {
                key: key.clone(),
                value_type: label_type.descriptor_type() as i32,
                description: description.clone(),
            })
            .collect();
        let labels = label_extractors(&config, &label_types)?;
        let distribution = descriptor.value_type == ValueType::Distribution as i32;
        let (value_extractor, buckets) = distribution_parts(&config, distribution)?;
        Ok(Self {
            name,
            project: config.str("project"),
            filter,
            filter_text,
            descriptor,
            labels,
            value_extractor,
            buckets,
            disabled: config.bool("disabled"),
            address,
        })
    }

    /// `logging.googleapis.com/user/NAME`.
    pub fn metric_type(&self) -> &str {
        &self.descriptor.r#type
    }
}

impl EntryMetric for LogMetric {
    fn descriptor(&self) -> &MetricDescriptor {
        &self.descriptor
    }

    fn buckets(&self) -> Option<&Buckets> {
        self.buckets.as_ref()
    }

    fn observe(&self, _entry: &LogEntry, json: &Value) -> Option<Observation> {
        if self.disabled || !self.filter.matches(json) {
            return None;
        }
        let value = match &self.value_extractor {
            // L3: an entry without a numeric value is skipped.
            Some(extractor) => Some(
                extractor
                    .extract(json)?
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())?,
            ),
            None => None,
        };
        let labels = self
            .labels
            .iter()
            .map(|label| {
                let value = label.label_type.label_value(label.extractor.extract(json));
                (label.key.clone(), value)
            })
            .collect();
        Some(Observation { labels, value })
    }

    fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }
}

/// Cloud Logging's metric name rule: at most 100 of `A-Za-z0-9_-.,+!*',()%/`.
fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.,+!*',()%/".contains(c);
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(format!(
            "{name:?} must be 1 to {MAX_NAME_CHARS} letters, digits or _-.,+!*',()%/"
        ));
    }
    Ok(())
}

/// The metric descriptor; L2's defaults when the block is absent.
fn descriptor_config(
    config: &Config,
    block: Option<&Map<String, Value>>,
    name: &str,
) -> Result<MetricDescriptor, LogMetricError> {
    let field = |key: &str| block.and_then(|b| b.get(key)).and_then(non_null_str);
    let kind = field("metric_kind").unwrap_or_else(|| "DELTA".into());
    if kind != "DELTA" {
        return Err(config.unsupported(&format!(
            "metric_descriptor.metric_kind {kind:?} (log-based metrics are DELTA)"
        )));
    }
    let value_type = match field("value_type").as_deref().unwrap_or("INT64") {
        "INT64" => ValueType::Int64,
        "DISTRIBUTION" => ValueType::Distribution,
        other => {
            return Err(config.unsupported(&format!(
                "metric_descriptor.value_type {other:?} (only INT64 counters and DISTRIBUTION)"
            )))
        }
    };
    Ok(MetricDescriptor {
        r#type: format!("{USER_METRIC_PREFIX}{name}"),
        metric_kind: MetricKind::Delta as i32,
        value_type: value_type as i32,
        unit: field("unit").unwrap_or_else(|| "1".into()),
        display_name: field("display_name").unwrap_or_default(),
        description: config.str("description").unwrap_or_default(),
        ..MetricDescriptor::default()
    })
}

/// `metric_descriptor.labels`: key and value type of each.
fn label_types(
    config: &Config,
    block: Option<&Map<String, Value>>,
) -> Result<Vec<(String, LabelType, String)>, LogMetricError> {
    let Some(labels) = block.and_then(|b| b.get("labels")).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let labels = labels.as_array().ok_or_else(|| {
        config.invalid("metric_descriptor.labels", "expected label blocks".into())
    })?;
    let mut out: Vec<(String, LabelType, String)> = Vec::new();
    for label in labels {
        let key = label
            .get("key")
            .and_then(non_null_str)
            .ok_or(LogMetricError::Missing {
                address: config.address.clone(),
                field: "metric_descriptor.labels.key",
            })?;
        let label_type = match label.get("value_type").and_then(non_null_str).as_deref() {
            None | Some("STRING") => LabelType::String,
            Some("INT64") => LabelType::Int64,
            Some("BOOL") => LabelType::Bool,
            Some(other) => {
                return Err(config.invalid(
                    "metric_descriptor.labels.value_type",
                    format!("{other:?} is not STRING, INT64 or BOOL"),
                ))
            }
        };
        if out.iter().any(|(k, _, _)| *k == key) {
            return Err(config.invalid("metric_descriptor.labels", format!("{key:?} twice")));
        }
        let description = label
            .get("description")
            .and_then(non_null_str)
            .unwrap_or_default();
        out.push((key, label_type, description));
    }
    Ok(out)
}

/// `label_extractors`, which must name exactly the descriptor's labels.
fn label_extractors(
    config: &Config,
    label_types: &[(String, LabelType, String)],
) -> Result<Vec<LabelExtractor>, LogMetricError> {
    let extractors = match config.json.get("label_extractors") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(config.invalid("label_extractors", "expected a map".into()));
        }
    };
    if let Some(key) = extractors
        .keys()
        .find(|k| !label_types.iter().any(|(l, _, _)| l == *k))
    {
        return Err(config.invalid(
            &format!("label_extractors.{key}"),
            "not a label of metric_descriptor.labels".into(),
        ));
    }
    label_types
        .iter()
        .map(|(key, label_type, _)| {
            let field = format!("label_extractors.{key}");
            let expression = extractors
                .get(key)
                .and_then(non_null_str)
                .ok_or_else(|| config.invalid(&field, "every label needs an extractor".into()))?;
            let extractor = Extractor::parse(&expression).map_err(|m| config.invalid(&field, m))?;
            Ok(LabelExtractor {
                key: key.clone(),
                label_type: *label_type,
                extractor,
            })
        })
        .collect()
}

/// `value_extractor` and `bucket_options`: required for a distribution, refused otherwise.
fn distribution_parts(
    config: &Config,
    distribution: bool,
) -> Result<(Option<Extractor>, Option<Buckets>), LogMetricError> {
    let value_extractor = config.str("value_extractor").filter(|v| !v.is_empty());
    let bucket_block = config.single_block("bucket_options")?;
    if !distribution {
        if value_extractor.is_some() || bucket_block.is_some() {
            return Err(config.invalid(
                "value_extractor",
                "value_extractor and bucket_options are only for DISTRIBUTION metrics".into(),
            ));
        }
        return Ok((None, None));
    }
    let expression = value_extractor.ok_or(LogMetricError::Missing {
        address: config.address.clone(),
        field: "value_extractor",
    })?;
    let extractor =
        Extractor::parse(&expression).map_err(|m| config.invalid("value_extractor", m))?;
    let block = bucket_block.ok_or(LogMetricError::Missing {
        address: config.address.clone(),
        field: "bucket_options",
    })?;
    Ok((Some(extractor), Some(buckets_config(config, &block)?)))
}

/// Exactly one of `linear_buckets`, `exponential_buckets`, `explicit_buckets`.
fn buckets_config(config: &Config, block: &Map<String, Value>) -> Result<Buckets, LogMetricError> {
    let present: Vec<(&String, &Value)> = block.iter().filter(|(_, v)| !is_empty(v)).collect();
    let [(kind, value)] = present.as_slice() else {
        return Err(config.invalid(
            "bucket_options",
            format!(
                "needs exactly one of linear_buckets, exponential_buckets, explicit_buckets; has {}",
                present.len()
            ),
        ));
    };
    let inner = first_object(value).ok_or_else(|| {
        config.invalid(&format!("bucket_options.{kind}"), "expected a block".into())
    })?;
    let number = |key: &str| -> Result<f64, LogMetricError> {
        inner.get(key).and_then(as_f64).ok_or_else(|| {
            config.invalid(
                &format!("bucket_options.{kind}.{key}"),
                "a number is required".into(),
            )
        })
    };
    let count = |key: &str| -> Result<i32, LogMetricError> {
        let value = number(key)?;
        if value.fract() != 0.0 || value < f64::from(i32::MIN) || value > f64::from(i32::MAX) {
            return Err(config.invalid(
                &format!("bucket_options.{kind}.{key}"),
                format!("{value} is not a whole number"),
            ));
        }
        Ok(value as i32)
    };
    let buckets = match kind.as_str() {
        "linear_buckets" => Buckets::Linear {
            num_finite_buckets: count("num_finite_buckets")?,
            width: number("width")?,
            offset: number("offset")?,
        },
        "exponential_buckets" => Buckets::Exponential {
            num_finite_buckets: count("num_finite_buckets")?,
            growth_factor: number("growth_factor")?,
            scale: number("scale")?,
        },
        "explicit_buckets" => Buckets::Explicit {
            bounds: inner
                .get("bounds")
                .and_then(Value::as_array)
                .map(|bounds| bounds.iter().map(as_f64).collect::<Option<Vec<f64>>>())
                .and_then(|bounds| bounds)
                .ok_or_else(|| {
                    config.invalid(
                        "bucket_options.explicit_buckets.bounds",
                        "a list of numbers is required".into(),
                    )
                })?,
        },
        other => return Err(config.unsupported(&format!("bucket_options.{other}"))),
    };
    buckets
        .validate()
        .map_err(|message| config.invalid(&format!("bucket_options.{kind}"), message))?;
    Ok(buckets)
}

/// A resource's evaluated configuration, with its address for errors.
struct Config {
    address: String,
    json: Value,
}

impl Config {
    fn new(address: &str, json: Value) -> Self {
        Self {
            address: address.to_owned(),
            json,
        }
    }

    fn str(&self, key: &str) -> Option<String> {
        self.json.get(key).and_then(non_null_str)
    }

    fn required_str(&self, key: &'static str) -> Result<String, LogMetricError> {
        self.str(key).ok_or(LogMetricError::Missing {
            address: self.address.clone(),
            field: key,
        })
    }

    fn bool(&self, key: &str) -> bool {
        match self.json.get(key) {
            Some(Value::Bool(flag)) => *flag,
            Some(Value::String(text)) => text == "true",
            _ => false,
        }
    }

    /// A nested block that may appear once: `None` when absent.
    fn single_block(&self, key: &str) -> Result<Option<Map<String, Value>>, LogMetricError> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if items.is_empty() => Ok(None),
            Some(value @ Value::Array(items)) if items.len() == 1 => Ok(first_object(value)),
            Some(Value::Object(object)) => Ok(Some(object.clone())),
            Some(_) => Err(self.invalid(key, "expected one block".into())),
        }
    }

    fn invalid(&self, field: &str, message: String) -> LogMetricError {
        LogMetricError::Invalid {
            address: self.address.clone(),
            field: field.to_owned(),
            message,
        }
    }

    fn unsupported(&self, what: &str) -> LogMetricError {
        LogMetricError::Unsupported {
            address: self.address.clone(),
            what: what.to_owned(),
        }
    }
}

/// A string, or a number or boolean as text; `None` for null and structures.
pub(crate) fn non_null_str(value: &Value) -> Option<String> {
    scalar_text(value)
}

/// A number, or a string holding one.
pub(crate) fn as_f64(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A block's object: itself, or the first of a one-block list.
pub(crate) fn first_object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(object) => Some(object.clone()),
        Value::Array(items) => items.first().and_then(Value::as_object).cloned(),
        _ => None,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

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

/// A label descriptor of a metric computed here.
pub(crate) fn string_label(key: &str, description: &str) -> LabelDescriptor {
    LabelDescriptor {
        key: key.into(),
        value_type: label_descriptor::ValueType::String as i32,
        description: description.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::store::parse_line;
    use serde_json::json;

    fn resource(value: Value) -> ResourceInstance {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        ResourceInstance {
            resource_type: "google_logging_metric".into(),
            name: "m".into(),
            index: None,
            value: serde_json::from_value(Value::Object(map)).unwrap(),
        }
    }

    fn counter_with(extractors: Value) -> Value {
        json!({
            "name": "app-errors",
            "filter": "severity>=ERROR",
            "metric_descriptor": [{
                "metric_kind": "DELTA",
                "value_type": "INT64",
                "labels": [{"key": "error_type"}]
            }],
            "label_extractors": extractors
        })
    }

    fn distribution_with(buckets: Value) -> Value {
        json!({
            "name": "latency",
            "filter": "jsonPayload.latencyMs>=0",
            "metric_descriptor": [{"metric_kind": "DELTA", "value_type": "DISTRIBUTION", "unit": "ms"}],
            "value_extractor": "EXTRACT(jsonPayload.latencyMs)",
            "bucket_options": [buckets]
        })
    }

    fn entry_json(line: &str) -> (LogEntry, Value) {
        let entry = parse_line(line, 1).0;
        let json = entry.to_cloud_logging_json();
        (entry, json)
    }

    #[test]
    fn extract_takes_a_field_and_regexp_extract_its_one_group() {
        let (_, json) = entry_json(
            r#"{"severity":"ERROR","errorType":"panic","message":"order 42 failed","httpRequest":{"status":502}}"#,
        );
        let extract = |e: &str| Extractor::parse(e).unwrap().extract(&json);
        assert_eq!(
            extract("EXTRACT(jsonPayload.errorType)").as_deref(),
            Some("panic")
        );
        assert_eq!(
            extract("EXTRACT(httpRequest.status)").as_deref(),
            Some("502")
        );
        assert_eq!(
            extract(r#"REGEXP_EXTRACT(jsonPayload.message, "order (\d+)")"#).as_deref(),
            Some("42")
        );
        assert_eq!(extract("EXTRACT(jsonPayload.missing)"), None);
        assert_eq!(
            extract(r#"REGEXP_EXTRACT(jsonPayload.message, "invoice (\d+)")"#),
            None
        );
        assert_eq!(
            extract("EXTRACT(http_request.status)").as_deref(),
            Some("502")
        );
    }

    #[test]
    fn regexp_extract_needs_exactly_one_capture_group() {
        for bad in [
            r#"REGEXP_EXTRACT(jsonPayload.message, "order \d+")"#,
            r#"REGEXP_EXTRACT(jsonPayload.message, "(order) (\d+)")"#,
            r#"REGEXP_EXTRACT(jsonPayload.message, "(unclosed")"#,
            r#"REGEXP_EXTRACT(jsonPayload.message)"#,
            r#"REGEXP_EXTRACT(jsonPayload.message, unquoted)"#,
            "EXTRACT(jsonPaylod.errorType)",
            "EXTRACT()",
            "jsonPayload.errorType",
        ] {
            assert!(Extractor::parse(bad).is_err(), "{bad}");
        }
        let error = Extractor::parse(r#"REGEXP_EXTRACT(jsonPayload.m, "(a)(b)")"#).unwrap_err();
        assert!(error.contains("exactly one capture group"), "{error}");
        assert!(Extractor::parse(r#"REGEXP_EXTRACT(jsonPayload.m, "(?:x)(\d+)")"#).is_ok());
    }

    #[test]
    fn a_counter_gets_the_defaults_and_its_labels() {
        let metric = LogMetric::from_terraform(&resource(counter_with(
            json!({"error_type": "EXTRACT(jsonPayload.errorType)"}),
        )))
        .unwrap();
        assert_eq!(
            metric.metric_type(),
            "logging.googleapis.com/user/app-errors"
        );
        assert_eq!(metric.descriptor.metric_kind, MetricKind::Delta as i32);
        assert_eq!(metric.descriptor.value_type, ValueType::Int64 as i32);
        assert_eq!(metric.descriptor.unit, "1");
        assert_eq!(metric.descriptor.labels[0].key, "error_type");
        let (entry, json) = entry_json(r#"{"severity":"ERROR","errorType":"panic"}"#);
        let seen = metric.observe(&entry, &json).unwrap();
        assert_eq!(seen.labels["error_type"], "panic");
        assert_eq!(seen.value, None);
        // L2: a failed extraction gives the default.
        let (entry, json) = entry_json(r#"{"severity":"ERROR","message":"5xx"}"#);
        assert_eq!(
            metric.observe(&entry, &json).unwrap().labels["error_type"],
            ""
        );
        let (entry, json) = entry_json(r#"{"severity":"INFO"}"#);
        assert!(metric.observe(&entry, &json).is_none());
    }

    #[test]
    fn labels_and_extractors_must_match_and_nothing_unsupported_passes() {
        let cases = [
            counter_with(json!({})),
            counter_with(
                json!({"error_type": "EXTRACT(jsonPayload.a)", "other": "EXTRACT(jsonPayload.b)"}),
            ),
            counter_with(json!({"error_type": "REGEXP_EXTRACT(jsonPayload.a, \"x\")"})),
            json!({"name": "x", "filter": "severity>=ERROR", "bucket_name": "projects/p/locations/global/buckets/b"}),
            json!({"name": "x", "filter": "severity>>ERROR"}),
            json!({"name": "x"}),
            json!({"name": "x y", "filter": ""}),
            json!({"name": "x", "filter": "", "metric_descriptor": [{"metric_kind": "GAUGE", "value_type": "INT64"}]}),
            json!({"name": "x", "filter": "", "metric_descriptor": [{"metric_kind": "DELTA", "value_type": "DOUBLE"}]}),
            json!({"name": "x", "filter": "", "value_extractor": "EXTRACT(jsonPayload.v)"}),
            distribution_with(json!({"fancy_buckets": [{"n": 3}]})),
            distribution_with(json!({})),
            distribution_with(
                json!({"linear_buckets": [{"num_finite_buckets": 0, "width": 1, "offset": 0}]}),
            ),
            distribution_with(
                json!({"exponential_buckets": [{"num_finite_buckets": 300, "growth_factor": 2, "scale": 1}]}),
            ),
            distribution_with(json!({"explicit_buckets": [{"bounds": [1, 1]}]})),
        ];
        for case in cases {
            let result = LogMetric::from_terraform(&resource(case.clone()));
            let error = result.expect_err(&case.to_string());
            assert!(
                error.to_string().starts_with("google_logging_metric.m: "),
                "{error}"
            );
        }
        let unknown = LogMetric::from_terraform(&resource(distribution_with(
            json!({"fancy_buckets": [{"n": 3}]}),
        )))
        .unwrap_err();
        assert!(
            matches!(unknown, LogMetricError::Unsupported { .. }),
            "{unknown}"
        );
    }

    #[test]
    fn buckets_place_values_as_monitoring_defines_them() {
        let linear = Buckets::Linear {
            num_finite_buckets: 2,
            width: 10.0,
            offset: 0.0,
        };
        let mut builder = DistributionBuilder::new(&linear);
        for value in [-1.0, 0.0, 9.9, 10.0, 20.0, 35.0] {
            builder.add(value);
        }
        assert_eq!(builder.build().bucket_counts, vec![1, 2, 1, 2]);
        let exponential = Buckets::Exponential {
            num_finite_buckets: 3,
            growth_factor: 2.0,
            scale: 1.0,
        };
        assert_eq!(exponential.bounds(), vec![1.0, 2.0, 4.0, 8.0]);
        let mut builder = DistributionBuilder::new(&exponential);
        for value in [0.5, 1.0, 3.0, 7.9, 8.0] {
            builder.add(value);
        }
        assert_eq!(builder.build().bucket_counts, vec![1, 1, 1, 1, 1]);
        let explicit = Buckets::Explicit {
            bounds: vec![0.0, 10.0],
        };
        let mut builder = DistributionBuilder::new(&explicit);
        for value in [-5.0, 5.0, 10.0] {
            builder.add(value);
        }
        assert_eq!(builder.build().bucket_counts, vec![1, 1, 1]);
    }

    #[test]
    fn a_distribution_has_mean_and_squared_deviation_and_passes_m13() {
        let mut builder = DistributionBuilder::new(&Buckets::Exponential {
            num_finite_buckets: 26,
            growth_factor: 1.5,
            scale: 1.0,
        });
        for value in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            builder.add(value);
        }
        let distribution = builder.build();
        assert_eq!(distribution.count, 8);
        assert!((distribution.mean - 5.0).abs() < 1e-12);
        assert!((distribution.sum_of_squared_deviation - 32.0).abs() < 1e-9);
        crate::monitoring::validation::check_distribution(&distribution).unwrap();
    }

    #[test]
    fn a_distribution_skips_entries_without_a_number() {
        let metric = LogMetric::from_terraform(&resource(distribution_with(json!({
            "exponential_buckets": [{"num_finite_buckets": 26, "growth_factor": 1.5, "scale": 1}]
        }))))
        .unwrap();
        let (entry, json) = entry_json(r#"{"latencyMs":"0.403"}"#);
        assert_eq!(metric.observe(&entry, &json).unwrap().value, Some(0.403));
        for line in [r#"{"latencyMs":"fast"}"#, r#"{"message":"no latency"}"#] {
            let (entry, json) = entry_json(line);
            assert!(metric.observe(&entry, &json).is_none(), "{line}");
        }
    }

    fn store() -> (LogStore, MetricStore) {
        (
            LogStore::new(100, usize::MAX),
            MetricStore::new(1000, std::time::Duration::from_secs(5)),
        )
    }

    fn errors_metric() -> LogMetric {
        LogMetric::from_terraform(&resource(counter_with(
            json!({"error_type": "EXTRACT(jsonPayload.errorType)"}),
        )))
        .unwrap()
    }

    fn points(
        store: &MetricStore,
        metric_type: &str,
    ) -> Vec<(BTreeMap<String, String>, i64, i64, i64)> {
        let filter =
            crate::monitoring::filter::parse(&format!("metric.type = \"{metric_type}\"")).unwrap();
        store
            .series("p", &filter)
            .into_iter()
            .flat_map(|series| {
                let labels = series.key.metric_labels.clone();
                series.points.into_iter().map(move |point| {
                    let value = match point.value.value {
                        Some(typed_value::Value::Int64Value(v)) => v,
                        Some(typed_value::Value::DistributionValue(d)) => d.count,
                        _ => -1,
                    };
                    (labels.clone(), point.start, point.end, value)
                })
            })
            .collect()
    }

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn each_entry_counts_once_in_contiguous_delta_points_and_idle_writes_nothing() {
        let (logs, metrics) = store();
        let mut collector = LogMetricsCollector::new(vec![errors_metric()], "p");
        logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        logs.ingest_line(r#"{"severity":"ERROR","message":"GET / 500","httpRequest":{"status":500,"latency":"0.002s"}}"#);
        let t0 = crate::time::timestamp::now_nanos() + SECOND;
        let first = collector.collect(&logs, &metrics, t0);
        assert_eq!(
            (first.entries_read, first.points_written),
            (3, 4),
            "{first:?}"
        );
        assert!(first.errors.is_empty(), "{first:?}");
        // Nothing new: no point at all (absence is what no-traffic alerts see).
        let idle = collector.collect(&logs, &metrics, t0 + 10 * SECOND);
        assert_eq!((idle.entries_read, idle.points_written), (0, 0));
        logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        let second = collector.collect(&logs, &metrics, t0 + 20 * SECOND);
        assert_eq!(second.points_written, 1, "{second:?}");
        let mut written = points(&metrics, "logging.googleapis.com/user/app-errors");
        written.sort_by_key(|(labels, start, _, _)| (labels.clone(), *start));
        let panic_label = BTreeMap::from([("error_type".to_owned(), "panic".to_owned())]);
        let empty_label = BTreeMap::from([("error_type".to_owned(), String::new())]);
        assert_eq!(written.len(), 3);
        assert_eq!(written[0].0, empty_label);
        assert_eq!(written[0].3, 1);
        assert_eq!(
            (written[1].0.clone(), written[1].3),
            (panic_label.clone(), 2)
        );
        // The second panic point covers (previous collect, now], after the first.
        assert_eq!(
            (written[2].1, written[2].2, written[2].3),
            (t0 + 10 * SECOND, t0 + 20 * SECOND, 1)
        );
        assert!(written[1].2 <= written[2].1);
        let requests = points(&metrics, cloud_run::REQUEST_COUNT);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0["response_code_class"], "5xx");
    }

    #[test]
    fn a_point_due_within_the_sampling_period_waits_instead_of_being_rejected() {
        let (logs, metrics) = store();
        let mut collector = LogMetricsCollector::with_metrics(vec![Box::new(errors_metric())], "p");
        let t0 = crate::time::timestamp::now_nanos() + SECOND;
        logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        assert_eq!(collector.collect(&logs, &metrics, t0).points_written, 1);
        logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        let early = collector.collect(&logs, &metrics, t0 + SECOND);
        assert_eq!((early.points_written, early.series_held_back), (0, 1));
        logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        let later = collector.collect(&logs, &metrics, t0 + 6 * SECOND);
        assert_eq!((later.points_written, later.series_held_back), (1, 0));
        assert!(later.errors.is_empty(), "{later:?}");
        let written = points(&metrics, "logging.googleapis.com/user/app-errors");
        assert_eq!(written.iter().map(|p| p.3).sum::<i64>(), 3);
        assert_eq!((written[1].1, written[1].2), (t0, t0 + 6 * SECOND));
    }

    #[test]
    fn entries_evicted_before_a_collect_are_reported_missed() {
        let logs = LogStore::new(2, usize::MAX);
        let metrics = MetricStore::new(1000, std::time::Duration::from_secs(5));
        let mut collector = LogMetricsCollector::with_metrics(vec![Box::new(errors_metric())], "p");
        for _ in 0..5 {
            logs.ingest_line(r#"{"severity":"ERROR","errorType":"panic"}"#);
        }
        let report = collector.collect(
            &logs,
            &metrics,
            crate::time::timestamp::now_nanos() + SECOND,
        );
        assert_eq!((report.entries_read, report.entries_missed), (2, 3));
    }

    #[test]
    fn the_project_terraform_metrics_all_load() {
        let module = crate::terraform::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform"),
            &crate::terraform::VariableInputs::default(),
        )
        .unwrap();
        let metrics = LogMetric::all_from(&module).unwrap();
        assert_eq!(metrics.len(), 3);
        let latency = metrics
            .iter()
            .find(|m| m.value_extractor.is_some())
            .unwrap();
        assert_eq!(latency.descriptor.unit, "ms");
        assert!(matches!(
            latency.buckets,
            Some(Buckets::Exponential {
                num_finite_buckets: 26,
                ..
            })
        ));
    }
}
