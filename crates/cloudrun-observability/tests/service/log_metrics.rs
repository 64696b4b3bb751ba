//! Log-based metrics and Cloud Run's request metrics, end to end: the real
//! service's stdout lines go into an in-process emulator's log store exactly
//! as `emulator --logs -` puts them there, the project's real `terraform/`
//! defines the metrics, and the emulator's gRPC `ListTimeSeries` reads back
//! what the collector wrote. Expectations are computed from the very lines
//! the store was fed, so the counts must match exactly.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::emulator_helpers::{now_seconds, TestEmulator};
use crate::helpers::{spawn_service, ServiceProcess};
use cloud_ops_emulator::logging::metrics::{LogMetric, LogMetricsCollector};
use cloud_ops_emulator::logging::store::{LogSource, Severity};
use cloud_ops_emulator::terraform::{load, VariableInputs};
use cloud_ops_emulator::time::timestamp::now_nanos;
use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::monitoring::v3::{typed_value, TimeSeries};
use serde_json::{json, Value};

const PROJECT: &str = "test-project";
const SERVICE: &str = "cloudrun-obs-frontend";

fn terraform_metrics() -> Vec<LogMetric> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform");
    let module = load(&dir, &VariableInputs::default()).expect("terraform/ loads");
    LogMetric::all_from(&module).expect("every log metric is supported")
}

fn metric_type(metrics: &[LogMetric], suffix: &str) -> String {
    metrics
        .iter()
        .find(|m| m.name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no log metric named *{suffix}"))
        .metric_type()
        .to_owned()
}

/// Every series of `metric_type` written so far, read over gRPC.
async fn read(emulator: &TestEmulator, metric_type: &str) -> Vec<TimeSeries> {
    let filter = format!("metric.type = \"{metric_type}\"");
    let now = now_seconds();
    emulator
        .list_series(PROJECT, &filter, now - 3600, now + 120)
        .await
}

/// Sum of the points' counts (INT64 value or distribution count) by the value of `label`.
fn totals_by(series: &[TimeSeries], label: &str) -> BTreeMap<String, i64> {
    let mut totals = BTreeMap::new();
    for s in series {
        let metric = s.metric.as_ref().expect("metric");
        let key = metric.labels.get(label).cloned().unwrap_or_default();
        let resource = s.resource.as_ref().expect("resource");
        assert_eq!(resource.r#type, "cloud_run_revision");
        assert_eq!(resource.labels["service_name"], SERVICE);
        for point in &s.points {
            let count = match point.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(typed_value::Value::Int64Value(n)) => *n,
                Some(typed_value::Value::DistributionValue(d)) => {
                    assert_eq!(d.bucket_counts.iter().sum::<i64>(), d.count);
                    d.count
                }
                other => panic!("unexpected value {other:?}"),
            };
            *totals.entry(key.clone()).or_insert(0) += count;
        }
    }
    totals.retain(|_, n| *n > 0);
    totals
}

fn total(totals: &BTreeMap<String, i64>) -> i64 {
    totals.values().sum()
}

/// ERROR or worse, in Cloud Logging's severity order.
fn at_least_error(line: &Value) -> bool {
    line["severity"].as_str().and_then(Severity::parse) >= Some(Severity::Error)
}

/// Counts of `lines` matching `keep`, by the text `key` gives.
fn expected(
    lines: &[Value],
    keep: impl Fn(&Value) -> bool,
    key: impl Fn(&Value) -> String,
) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for line in lines.iter().filter(|l| keep(l)) {
        *counts.entry(key(line)).or_insert(0) += 1;
    }
    counts
}

fn status_class(line: &Value) -> String {
    format!(
        "{}xx",
        line["httpRequest"]["status"].as_i64().unwrap_or(0) / 100
    )
}

/// Ok requests, handled errors, a panic, not-found, and orders whose payment fails.
async fn drive_traffic(service: &ServiceProcess, round: usize) {
    for path in ["/api/books", "/api/books/3", "/healthz", "/api/books/999"] {
        assert!(service.get(path).await.status().as_u16() < 500, "{path}");
    }
    assert_eq!(service.get("/api/faults/error").await.status(), 500);
    if round == 0 {
        assert_eq!(service.get("/api/faults/panic").await.status(), 500);
    }
    let order = json!({"book_id": 3, "quantity": 1});
    for _ in 0..=round {
        let response = service.post_json("/api/orders", &order).await;
        assert_eq!(
            response.status(),
            502,
            "PAYMENT_FAILURE_RATE=1 fails every order"
        );
    }
}

/// The lines written so far, once the last request of the round has logged.
async fn lines_after_round(service: &ServiceProcess, orders: usize) -> Vec<String> {
    service.request_lines("/api/orders", orders).await;
    // The order's own request line comes last; give the logging thread a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.lines()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_metrics_count_exactly_what_the_service_logged() {
    let emulator = TestEmulator::start_with(EmulatorConfig {
        log_source: LogSource::local(SERVICE),
        // Two collects a second apart must both be writable (M8).
        min_sampling_period: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let store = emulator.emulator.store();
    let host = emulator.emulator.local_addr().to_string();
    let service = spawn_service(&[
        ("OTEL_SERVICE_NAME", SERVICE),
        ("PAYMENT_FAILURE_RATE", "1"),
        ("CLOUD_OPS_EMULATOR_HOST", &host),
    ]);
    let metrics = terraform_metrics();
    let errors_type = metric_type(&metrics, "-errors");
    let payments_type = metric_type(&metrics, "-payment-failures");
    let latency_type = metric_type(&metrics, "-request-latency");
    let mut collector = LogMetricsCollector::new(metrics, PROJECT);

    // Two rounds, each fed and collected: every line must count exactly once.
    let mut fed = 0;
    let mut orders = 0;
    for round in 0..2 {
        drive_traffic(&service, round).await;
        orders += round + 1;
        let lines = lines_after_round(&service, orders).await;
        for line in &lines[fed..] {
            store.logs.ingest_line(line);
        }
        fed = lines.len();
        let report = collector.collect(
            &store.logs,
            &store.metrics,
            now_nanos() + round as i64 * 1_000_000_000,
        );
        assert!(report.errors.is_empty(), "{report:?}");
        assert_eq!(report.entries_missed, 0);
        assert_eq!(report.series_held_back, 0, "{report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lines: Vec<Value> = service.entries()[..fed].to_vec();

    let errors = totals_by(&read(&emulator, &errors_type).await, "error_type");
    let error_lines = expected(&lines, at_least_error, |l| {
        l["errorType"].as_str().unwrap_or_default().to_owned()
    });
    assert_eq!(errors, error_lines);
    for kind in ["handler_error", "panic", "downstream_failure", ""] {
        assert!(errors.contains_key(kind), "{kind:?} in {errors:?}");
    }

    let payments = totals_by(&read(&emulator, &payments_type).await, "none");
    let payment_lines = expected(
        &lines,
        |l| at_least_error(l) && l["dependency"] == "payments",
        |_| String::new(),
    );
    assert_eq!(total(&payments), total(&payment_lines));
    assert_eq!(total(&payments), 3, "one payment failure per order");

    let request_lines = expected(
        &lines,
        |l| l["latencyMs"].as_str().is_some(),
        |l| l["route"].as_str().unwrap_or_default().to_owned(),
    );
    let latency = totals_by(&read(&emulator, &latency_type).await, "route");
    assert_eq!(latency, request_lines);
    assert!(latency.contains_key("/healthz") && latency.contains_key("/api/books/{id}"));

    let with_status = |l: &Value| l["httpRequest"]["status"].as_i64().is_some();
    let by_class = expected(&lines, with_status, status_class);
    let requests = totals_by(
        &read(&emulator, "run.googleapis.com/request_count").await,
        "response_code_class",
    );
    assert_eq!(requests, by_class);
    assert!(requests["5xx"] >= 6 && requests["2xx"] > 0 && requests["4xx"] > 0);
    let latencies = totals_by(
        &read(&emulator, "run.googleapis.com/request_latencies").await,
        "response_code_class",
    );
    assert_eq!(latencies, by_class);
    let codes = totals_by(
        &read(&emulator, "run.googleapis.com/request_count").await,
        "response_code",
    );
    assert_eq!(codes["502"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_interval_writes_no_point() {
    let emulator = TestEmulator::start_with(EmulatorConfig {
        log_source: LogSource::local(SERVICE),
        ..EmulatorConfig::default()
    })
    .await;
    let store = emulator.emulator.store();
    let metrics = terraform_metrics();
    let latency_type = metric_type(&metrics, "-request-latency");
    let mut collector = LogMetricsCollector::new(metrics, PROJECT);
    store.logs.ingest_line(
        r#"{"severity":"INFO","latencyMs":"1.5","route":"/api/books","message":"GET /api/books 200","httpRequest":{"status":200,"latency":"0.0015s"}}"#,
    );
    let now = now_nanos();
    assert_eq!(
        collector
            .collect(&store.logs, &store.metrics, now)
            .points_written,
        3
    );
    let idle = collector.collect(&store.logs, &store.metrics, now + 60_000_000_000);
    assert_eq!((idle.entries_read, idle.points_written), (0, 0));
    let series = read(&emulator, &latency_type).await;
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].points.len(),
        1,
        "no zero point for the idle minute"
    );
}
