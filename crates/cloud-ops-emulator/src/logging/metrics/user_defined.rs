//! User-defined log-based metrics: a `google_logging_metric` resource read
//! into a [`LogMetric`] (filter, descriptor, label and value extractors,
//! buckets). Anything the emulator cannot compute faithfully is an error
//! naming the resource, never ignored.

use std::fmt::Debug;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{LabelDescriptor, MetricDescriptor};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::logging::query::{LogFilter, LogFilterError};
use crate::logging::store::LogEntry;
use crate::terraform::{ResourceInstance, TerraformModule};

use super::*;
use crate::json::{as_f64, first_object, is_empty, scalar_text};
use crate::terraform::arguments::{ArgumentError, Arguments};

/// Prefix of the metric types Cloud Logging gives user-defined log metrics.
pub const USER_METRIC_PREFIX: &str = "logging.googleapis.com/user/";
/// Cloud Logging's limit on a metric name.
const MAX_NAME_CHARS: usize = 100;
/// Why a `google_logging_metric` cannot be evaluated.
#[derive(Debug, Error)]
pub enum LogMetricError {
    #[error(transparent)]
    Argument(#[from] ArgumentError),
    #[error("{address}: the filter does not parse: {source}")]
    Filter {
        address: String,
        #[source]
        source: LogFilterError,
    },
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
        let json = resource.to_json();
        let config = Arguments::new(&address, &json);
        let name = config.required_str("name")?;
        check_name(&name).map_err(|message| config.invalid("name", message))?;
        let filter_text = config.required_str("filter")?;
        let filter = LogFilter::parse(&filter_text).map_err(|source| LogMetricError::Filter {
            address: address.clone(),
            source,
        })?;
        if config.str("bucket_name").is_some_and(|b| !b.is_empty()) {
            return Err(config
                .unsupported("bucket_name (a metric over a user log bucket)")
                .into());
        }
        let descriptor_block = config.block("metric_descriptor")?;
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
    config: &Arguments<'_>,
    block: Option<&Map<String, Value>>,
    name: &str,
) -> Result<MetricDescriptor, LogMetricError> {
    let field = |key: &str| block.and_then(|b| b.get(key)).and_then(scalar_text);
    let kind = field("metric_kind").unwrap_or_else(|| "DELTA".into());
    if kind != "DELTA" {
        return Err(config
            .unsupported(&format!(
                "metric_descriptor.metric_kind {kind:?} (log-based metrics are DELTA)"
            ))
            .into());
    }
    let value_type = match field("value_type").as_deref().unwrap_or("INT64") {
        "INT64" => ValueType::Int64,
        "DISTRIBUTION" => ValueType::Distribution,
        other => {
            return Err(config
                .unsupported(&format!(
                    "metric_descriptor.value_type {other:?} (only INT64 counters and DISTRIBUTION)"
                ))
                .into())
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
    config: &Arguments<'_>,
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
            .and_then(scalar_text)
            .ok_or_else(|| config.missing("metric_descriptor.labels.key"))?;
        let label_type = match label.get("value_type").and_then(scalar_text).as_deref() {
            None | Some("STRING") => LabelType::String,
            Some("INT64") => LabelType::Int64,
            Some("BOOL") => LabelType::Bool,
            Some(other) => {
                return Err(config
                    .invalid(
                        "metric_descriptor.labels.value_type",
                        format!("{other:?} is not STRING, INT64 or BOOL"),
                    )
                    .into())
            }
        };
        if out.iter().any(|(k, _, _)| *k == key) {
            return Err(config
                .invalid("metric_descriptor.labels", format!("{key:?} twice"))
                .into());
        }
        let description = label
            .get("description")
            .and_then(scalar_text)
            .unwrap_or_default();
        out.push((key, label_type, description));
    }
    Ok(out)
}

/// `label_extractors`, which must name exactly the descriptor's labels.
fn label_extractors(
    config: &Arguments<'_>,
    label_types: &[(String, LabelType, String)],
) -> Result<Vec<LabelExtractor>, LogMetricError> {
    let extractors = match config.get("label_extractors") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(config
                .invalid("label_extractors", "expected a map".into())
                .into());
        }
    };
    if let Some(key) = extractors
        .keys()
        .find(|k| !label_types.iter().any(|(l, _, _)| l == *k))
    {
        return Err(config
            .invalid(
                &format!("label_extractors.{key}"),
                "not a label of metric_descriptor.labels".into(),
            )
            .into());
    }
    label_types
        .iter()
        .map(|(key, label_type, _)| {
            let field = format!("label_extractors.{key}");
            let expression = extractors
                .get(key)
                .and_then(scalar_text)
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
    config: &Arguments<'_>,
    distribution: bool,
) -> Result<(Option<Extractor>, Option<Buckets>), LogMetricError> {
    let value_extractor = config.str("value_extractor").filter(|v| !v.is_empty());
    let bucket_block = config.block("bucket_options")?;
    if !distribution {
        if value_extractor.is_some() || bucket_block.is_some() {
            return Err(config
                .invalid(
                    "value_extractor",
                    "value_extractor and bucket_options are only for DISTRIBUTION metrics".into(),
                )
                .into());
        }
        return Ok((None, None));
    }
    let expression = value_extractor.ok_or_else(|| config.missing("value_extractor"))?;
    let extractor =
        Extractor::parse(&expression).map_err(|m| config.invalid("value_extractor", m))?;
    let block = bucket_block.ok_or_else(|| config.missing("bucket_options"))?;
    Ok((Some(extractor), Some(buckets_config(config, &block)?)))
}

/// Exactly one of `linear_buckets`, `exponential_buckets`, `explicit_buckets`.
fn buckets_config(
    config: &Arguments<'_>,
    block: &Map<String, Value>,
) -> Result<Buckets, LogMetricError> {
    let present: Vec<(&String, &Value)> = block.iter().filter(|(_, v)| !is_empty(v)).collect();
    let [(kind, value)] = present.as_slice() else {
        return Err(config.invalid(
            "bucket_options",
            format!(
                "needs exactly one of linear_buckets, exponential_buckets, explicit_buckets; has {}",
                present.len()
            ),
        ).into());
    };
    let inner = first_object(value).ok_or_else(|| {
        config.invalid(&format!("bucket_options.{kind}"), "expected a block".into())
    })?;
    let number = |key: &str| -> Result<f64, LogMetricError> {
        inner.get(key).and_then(as_f64).ok_or_else(|| {
            config
                .invalid(
                    &format!("bucket_options.{kind}.{key}"),
                    "a number is required".into(),
                )
                .into()
        })
    };
    let count = |key: &str| -> Result<i32, LogMetricError> {
        let value = number(key)?;
        if value.fract() != 0.0 || value < f64::from(i32::MIN) || value > f64::from(i32::MAX) {
            return Err(config
                .invalid(
                    &format!("bucket_options.{kind}.{key}"),
                    format!("{value} is not a whole number"),
                )
                .into());
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
        other => {
            return Err(config
                .unsupported(&format!("bucket_options.{other}"))
                .into())
        }
    };
    buckets
        .validate()
        .map_err(|message| config.invalid(&format!("bucket_options.{kind}"), message))?;
    Ok(buckets)
}
