//! Cloud Run's built-in request metrics, derived from request log entries.
//!
//! On Cloud Run, every request that reaches a revision is counted in
//! `run.googleapis.com/request_count` and timed in
//! `run.googleapis.com/request_latencies`, both DELTA on the revision's
//! `cloud_run_revision` resource, labelled `response_code` (`"502"`) and
//! `response_code_class` (`"5xx"`). Locally nothing sits in front of the
//! service, so they are computed from what stands in for Cloud Run's request
//! log: the service's own request lines, the entries with an
//! `httpRequest.status`. [`crate::logging::metrics::LogMetricsCollector`] computes
//! them in the same pass as the log-based metrics.
//!
//! Google's metric list documents more labels for these metrics (`route`);
//! only the two response-code labels are produced, because they are the ones
//! whose meaning could be confirmed and that the project's queries use.
//! Google does not document the bucket layout of `request_latencies`; the
//! emulator uses [`latency_buckets`], documented there.

use std::collections::BTreeMap;

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::MetricDescriptor;
use serde_json::Value;

use crate::logging::metrics::{string_label, Buckets, EntryMetric, Observation};
use crate::logging::store::LogEntry;

/// Requests reaching a revision, DELTA INT64.
pub const REQUEST_COUNT: &str = "run.googleapis.com/request_count";
/// Their latency in ms, DELTA DISTRIBUTION.
pub const REQUEST_LATENCIES: &str = "run.googleapis.com/request_latencies";

/// `request_latencies`' layout: exponential from 0.1 ms growing by 1.4x over
/// 52 finite buckets, up to about 4 000 s. Sub-millisecond local requests
/// still land in finite buckets, and the top passes Cloud Run's longest
/// request timeout (3 600 s), so no real latency falls in the overflow; each
/// bucket is 40 % wider than the one below, which keeps a percentile's error
/// within that.
pub fn latency_buckets() -> Buckets {
    Buckets::Exponential {
        num_finite_buckets: 52,
        growth_factor: 1.4,
        scale: 0.1,
    }
}

/// Which of the two metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Count,
    Latencies,
}

/// One of Cloud Run's request metrics.
#[derive(Clone, Debug)]
pub struct RunMetric {
    kind: Kind,
    descriptor: MetricDescriptor,
    buckets: Option<Buckets>,
}

/// Both request metrics, ready for a collector.
pub fn all() -> Vec<Box<dyn EntryMetric>> {
    vec![
        Box::new(RunMetric::request_count()),
        Box::new(RunMetric::request_latencies()),
    ]
}

impl RunMetric {
    /// `run.googleapis.com/request_count`.
    pub fn request_count() -> Self {
        Self {
            kind: Kind::Count,
            descriptor: descriptor(
                REQUEST_COUNT,
                ValueType::Int64,
                "1",
                "Request Count",
                "Number of requests reaching the revision.",
            ),
            buckets: None,
        }
    }

    /// `run.googleapis.com/request_latencies`.
    pub fn request_latencies() -> Self {
        Self {
            kind: Kind::Latencies,
            descriptor: descriptor(
                REQUEST_LATENCIES,
                ValueType::Distribution,
                "ms",
                "Request Latencies",
                "Distribution of request latency in milliseconds reaching the revision.",
            ),
            buckets: Some(latency_buckets()),
        }
    }
}

fn descriptor(
    metric_type: &str,
    value_type: ValueType,
    unit: &str,
    display_name: &str,
    description: &str,
) -> MetricDescriptor {
    MetricDescriptor {
        r#type: metric_type.into(),
        metric_kind: MetricKind::Delta as i32,
        value_type: value_type as i32,
        unit: unit.into(),
        display_name: display_name.into(),
        description: description.into(),
        labels: vec![
            string_label("response_code", "Response code of a request, e.g. 502."),
            string_label(
                "response_code_class",
                "Response code class of a request, e.g. 5xx.",
            ),
        ],
        ..MetricDescriptor::default()
    }
}

impl EntryMetric for RunMetric {
    fn descriptor(&self) -> &MetricDescriptor {
        &self.descriptor
    }

    fn buckets(&self) -> Option<&Buckets> {
        self.buckets.as_ref()
    }

    fn observe(&self, entry: &LogEntry, _json: &Value) -> Option<Observation> {
        let http = entry.http_request.as_ref()?;
        let status = http.status?;
        let class = response_code_class(status)?;
        let value = match self.kind {
            Kind::Count => None,
            Kind::Latencies => Some(latency_seconds(http.latency.as_deref()?)? * 1000.0),
        };
        let labels = BTreeMap::from([
            ("response_code".to_owned(), status.to_string()),
            ("response_code_class".to_owned(), class),
        ]);
        Some(Observation { labels, value })
    }
}

/// `"5xx"` for 500-599; `None` for what is not an HTTP status (such an
/// entry is not a request Cloud Run would have answered).
pub fn response_code_class(status: i64) -> Option<String> {
    (100..=599)
        .contains(&status)
        .then(|| format!("{}xx", status / 100))
}

/// `httpRequest.latency` (a protobuf Duration in JSON, `"0.012s"`) in seconds.
pub fn latency_seconds(latency: &str) -> Option<f64> {
    let seconds: f64 = latency.trim().strip_suffix('s')?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::store::parse_line;

    fn request(status: i64, latency: &str) -> LogEntry {
        let line = format!(
            r#"{{"severity":"INFO","message":"GET /x","httpRequest":{{"requestMethod":"GET","requestUrl":"/x","status":{status},"latency":"{latency}"}}}}"#
        );
        parse_line(&line, 1).0
    }

    #[test]
    fn classes_and_latencies_parse_like_cloud_run_writes_them() {
        assert_eq!(response_code_class(502).as_deref(), Some("5xx"));
        assert_eq!(response_code_class(200).as_deref(), Some("2xx"));
        assert_eq!(response_code_class(0), None);
        assert_eq!(response_code_class(600), None);
        assert_eq!(latency_seconds("0.012s"), Some(0.012));
        assert_eq!(latency_seconds("3s"), Some(3.0));
        for bad in ["", "12", "s", "-1s", "NaNs", "1.5ms"] {
            assert_eq!(latency_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_request_line_counts_with_its_code_and_its_latency_in_ms() {
        let entry = request(502, "0.25s");
        let json = entry.to_cloud_logging_json();
        let count = RunMetric::request_count().observe(&entry, &json).unwrap();
        assert_eq!(count.labels["response_code"], "502");
        assert_eq!(count.labels["response_code_class"], "5xx");
        assert_eq!(count.value, None);
        let latency = RunMetric::request_latencies()
            .observe(&entry, &json)
            .unwrap();
        assert_eq!(latency.value, Some(250.0));
    }

    #[test]
    fn lines_without_a_status_or_a_latency_do_not_count_where_they_cannot() {
        let plain = parse_line(r#"{"severity":"INFO","message":"hi"}"#, 1).0;
        let json = plain.to_cloud_logging_json();
        assert!(RunMetric::request_count().observe(&plain, &json).is_none());
        let no_latency = parse_line(r#"{"httpRequest":{"status":200}}"#, 1).0;
        let json = no_latency.to_cloud_logging_json();
        assert!(RunMetric::request_count()
            .observe(&no_latency, &json)
            .is_some());
        assert!(RunMetric::request_latencies()
            .observe(&no_latency, &json)
            .is_none());
    }

    #[test]
    fn the_latency_layout_is_valid_and_spans_sub_ms_to_an_hour() {
        let buckets = latency_buckets();
        buckets.validate().unwrap();
        let bounds = buckets.bounds();
        assert!(bounds[0] <= 0.1);
        assert!(*bounds.last().unwrap() > 3_600_000.0);
    }
}
