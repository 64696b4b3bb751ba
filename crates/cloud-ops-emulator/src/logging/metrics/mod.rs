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
pub mod collector;
pub mod distribution;
pub mod extract;
pub mod user_defined;

use std::collections::BTreeMap;
use std::fmt::Debug;

use gcloud_sdk::google::api::{label_descriptor, LabelDescriptor, MetricDescriptor};
use serde_json::Value;

pub use collector::{CollectReport, LogMetricsCollector};
pub use distribution::{Buckets, DistributionBuilder};
pub use extract::{Extractor, LabelExtractor, LabelType};
pub use user_defined::{LogMetric, LogMetricError, USER_METRIC_PREFIX};

use crate::logging::store::LogEntry;

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

/// A label descriptor of a metric computed here.
pub(crate) fn string_label(key: &str, description: &str) -> LabelDescriptor {
    LabelDescriptor {
        key: key.into(),
        value_type: label_descriptor::ValueType::String as i32,
        description: description.into(),
    }
}

#[cfg(test)]
mod tests;
