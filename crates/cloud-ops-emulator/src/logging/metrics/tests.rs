//! Tests of log-based metrics, from extraction to the points written.

use super::*;
use crate::logging::store::parse_line;
use crate::logging::store::LogEntry;
use crate::monitoring::store::MetricStore;
use crate::terraform::arguments::ArgumentError;
use crate::terraform::ResourceInstance;
use crate::LogStore;
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::monitoring::v3::typed_value;
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
        matches!(
            unknown,
            LogMetricError::Argument(ArgumentError::Unsupported { .. })
        ),
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
