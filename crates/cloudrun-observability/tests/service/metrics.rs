//! Custom metrics, end to end: service processes export to an in-process
//! emulator over real gRPC, and the emulator's `ListTimeSeries` and its
//! validation (Cloud Monitoring's rules) are the referee.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::emulator_helpers::{now_seconds, TestEmulator};
use crate::helpers::{spawn_service, ServiceProcess};
use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::api::metric_descriptor::MetricKind;
use gcloud_sdk::google::monitoring::v3::{typed_value, TimeSeries};
use serde_json::json;

const DURATION: &str = "workload.googleapis.com/http.server.request.duration";
const ERRORS: &str = "workload.googleapis.com/app.errors";
const SESSIONS: &str = "workload.googleapis.com/app.sessions.active";
const ORDERS: &str = "workload.googleapis.com/app.orders";

/// The project metrics go to without GOOGLE_CLOUD_PROJECT.
const PROJECT: &str = "local";

fn exporting_to<'a>(host: &'a str, interval_ms: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CLOUD_OPS_EMULATOR_HOST", host),
        ("OTEL_METRIC_EXPORT_INTERVAL", interval_ms),
        ("OTEL_SERVICE_NAME", "bookshop"),
    ]
}

async fn stop(service: &mut ServiceProcess) {
    service.sigterm();
    assert!(
        service.wait_exit(Duration::from_secs(10)).is_some(),
        "exits within Cloud Run's 10 s"
    );
}

/// A session cookie; the same value is the same visitor.
fn cookie(visitor: u128) -> String {
    format!("sid={visitor:032x}")
}

async fn get(service: &ServiceProcess, path: &str, visitor: u128) -> u16 {
    service
        .http
        .get(service.url(path))
        .header("cookie", cookie(visitor))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn order(service: &ServiceProcess, body: serde_json::Value, visitor: u128) -> u16 {
    service
        .http
        .post(service.url("/api/orders"))
        .header("cookie", cookie(visitor))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every series of `metric_type` in the last hour, newest point first.
async fn list(emulator: &TestEmulator, metric_type: &str) -> Vec<TimeSeries> {
    let filter = format!("metric.type = \"{metric_type}\"");
    let now = now_seconds();
    emulator
        .list_series(PROJECT, &filter, now - 3600, now + 1)
        .await
}

fn labels(series: &TimeSeries) -> BTreeMap<String, String> {
    series
        .metric
        .as_ref()
        .map(|metric| metric.labels.clone().into_iter().collect())
        .unwrap_or_default()
}

fn resource_label<'a>(series: &'a TimeSeries, key: &str) -> &'a str {
    series
        .resource
        .as_ref()
        .and_then(|resource| resource.labels.get(key))
        .map_or("", String::as_str)
}

/// The newest point's value.
fn latest(series: &TimeSeries) -> &typed_value::Value {
    series.points[0]
        .value
        .as_ref()
        .and_then(|value| value.value.as_ref())
        .expect("a point with a value")
}

fn int(series: &TimeSeries) -> i64 {
    match latest(series) {
        typed_value::Value::Int64Value(value) => *value,
        other => panic!("expected INT64, got {other:?}"),
    }
}

fn distribution_count(series: &TimeSeries) -> i64 {
    match latest(series) {
        typed_value::Value::DistributionValue(value) => value.count,
        other => panic!("expected a distribution, got {other:?}"),
    }
}

/// `label value -> latest INT64` for a metric with one label.
async fn counts_by(
    emulator: &TestEmulator,
    metric_type: &str,
    label: &str,
) -> BTreeMap<String, i64> {
    list(emulator, metric_type)
        .await
        .iter()
        .map(|series| (labels(series)[label].clone(), int(series)))
        .collect()
}

fn assert_every_write_accepted(emulator: &TestEmulator) {
    let stats = emulator.emulator.store().metrics.stats();
    assert_eq!(stats.requests_rejected, 0, "{stats:?}");
    assert_eq!(stats.series_rejected, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_known_requests_and_sigterm_the_emulator_holds_exactly_what_was_served() {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    // One export only: the final one at shutdown.
    let mut service = spawn_service(&exporting_to(&host, "60000"));
    let (alice, bob, carol) = (1, 2, 3);

    for _ in 0..3 {
        assert_eq!(get(&service, "/api/books", alice).await, 200);
    }
    assert_eq!(get(&service, "/api/books/1", bob).await, 200);
    assert_eq!(get(&service, "/api/books/999", bob).await, 404);
    assert_eq!(get(&service, "/no/such/page", carol).await, 404);
    assert_eq!(get(&service, "/api/faults/error", alice).await, 500);
    assert_eq!(get(&service, "/api/faults/error", bob).await, 500);
    assert_eq!(get(&service, "/api/faults/panic", carol).await, 500);
    let valid = json!({"book_id": 2, "quantity": 1});
    assert_eq!(order(&service, valid.clone(), alice).await, 201);
    assert_eq!(order(&service, valid, bob).await, 201);
    assert_eq!(
        order(&service, json!({"book_id": 2, "quantity": 0}), carol).await,
        422
    );
    assert_eq!(
        order(&service, json!({"book_id": 5, "quantity": 9}), carol).await,
        409
    );
    stop(&mut service).await;

    // 15 requests from the test, and each accepted order's two calls to
    // the inventory and payments routes of the same process (the order
    // out of stock reserved and was refused: one more).
    let expected: BTreeMap<(&str, &str, &str), i64> = [
        (("GET", "/api/books", "200"), 3),
        (("GET", "/api/books/{id}", "200"), 1),
        (("GET", "/api/books/{id}", "404"), 1),
        (("GET", "unmatched", "404"), 1),
        (("GET", "/api/faults/error", "500"), 2),
        (("GET", "/api/faults/panic", "500"), 1),
        (("POST", "/api/orders", "201"), 2),
        (("POST", "/api/orders", "422"), 1),
        (("POST", "/api/orders", "409"), 1),
        (("POST", "/internal/inventory/reserve", "200"), 2),
        (("POST", "/internal/inventory/reserve", "409"), 1),
        (("POST", "/internal/payments/charge", "200"), 2),
    ]
    .into_iter()
    .collect();
    let series = list(&emulator, DURATION).await;
    let actual: BTreeMap<(String, String, String), i64> = series
        .iter()
        .map(|series| {
            let labels = labels(series);
            (
                (
                    labels["http_request_method"].clone(),
                    labels["http_route"].clone(),
                    labels["http_response_status_code"].clone(),
                ),
                distribution_count(series),
            )
        })
        .collect();
    let expected_owned: BTreeMap<(String, String, String), i64> = expected
        .iter()
        .map(|((m, r, s), n)| ((m.to_string(), r.to_string(), s.to_string()), *n))
        .collect();
    assert_eq!(actual, expected_owned);
    assert!(series
        .iter()
        .all(|series| series.metric_kind == MetricKind::Cumulative as i32));

    assert_eq!(
        counts_by(&emulator, ERRORS, "error_type").await,
        [("handler_error".to_owned(), 2), ("panic".to_owned(), 1)].into()
    );
    assert_eq!(
        counts_by(&emulator, ORDERS, "outcome").await,
        [("accepted".to_owned(), 2), ("rejected".to_owned(), 2)].into()
    );
    let sessions = list(&emulator, SESSIONS).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(int(&sessions[0]), 3, "alice, bob and carol");
    assert_eq!(sessions[0].metric_kind, MetricKind::Gauge as i32);

    let descriptor = emulator
        .emulator
        .store()
        .metrics
        .descriptor(PROJECT, DURATION)
        .expect("descriptor created at start-up");
    assert_eq!(descriptor.unit, "s");
    assert!(!descriptor.description.is_empty());
    assert_every_write_accepted(&emulator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_write_two_series_and_count_downstream_failures() {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut first = spawn_service(&exporting_to(&host, "60000"));
    let mut env = exporting_to(&host, "60000");
    // Nothing listens on port 9: every order fails at the inventory call.
    env.push(("DOWNSTREAM_URL", "http://127.0.0.1:9"));
    let mut second = spawn_service(&env);

    for _ in 0..2 {
        assert_eq!(get(&first, "/api/books", 1).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&second, "/api/books", 1).await, 200);
    }
    assert_eq!(
        order(&second, json!({"book_id": 1, "quantity": 1}), 1).await,
        502
    );
    stop(&mut first).await;
    stop(&mut second).await;

    let books: Vec<TimeSeries> = list(&emulator, DURATION)
        .await
        .into_iter()
        .filter(|series| labels(series)["http_route"] == "/api/books")
        .collect();
    assert_eq!(books.len(), 2, "one series per instance: {books:#?}");
    let task_ids: Vec<&str> = books
        .iter()
        .map(|series| resource_label(series, "task_id"))
        .collect();
    assert_ne!(task_ids[0], task_ids[1]);
    let mut counts: Vec<i64> = books.iter().map(distribution_count).collect();
    counts.sort_unstable();
    assert_eq!(counts, [2, 3]);
    for series in &books {
        assert_eq!(series.resource.as_ref().unwrap().r#type, "generic_task");
        assert_eq!(resource_label(series, "namespace"), "bookshop");
        assert_eq!(resource_label(series, "location"), "global");
    }

    assert_eq!(
        counts_by(&emulator, ERRORS, "error_type").await,
        [("downstream_failure".to_owned(), 1)].into()
    );
    assert_eq!(
        counts_by(&emulator, ORDERS, "outcome").await,
        [("failed".to_owned(), 1)].into()
    );
    assert_every_write_accepted(&emulator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_right_after_a_periodic_export_never_writes_within_5_s() {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&exporting_to(&host, "5000"));
    for _ in 0..3 {
        assert_eq!(get(&service, "/api/books", 1).await, 200);
    }
    // Wait for the first periodic export, then stop at once.
    let deadline = Instant::now() + Duration::from_secs(15);
    while emulator.emulator.store().metrics.stats().points_accepted == 0 {
        assert!(Instant::now() < deadline, "no periodic export within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&service, "/api/books", 1).await, 200);
    assert_eq!(get(&service, "/api/books", 1).await, 200);
    stop(&mut service).await;

    let series = list(&emulator, DURATION).await;
    assert_eq!(series.len(), 1);
    assert_eq!(
        distribution_count(&series[0]),
        5,
        "the final export has all"
    );
    assert_every_write_accepted(&emulator);
}

/// The WARNING lines about metric exports.
fn metric_warnings(service: &ServiceProcess) -> Vec<String> {
    service
        .lines()
        .into_iter()
        .filter(|line| line.contains("metrics export failed"))
        .collect()
}

/// Requests stay fast, and the failures are one WARNING, not one per export.
async fn requests_are_unaffected_and_failures_warned_once(service: &ServiceProcess) {
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(service, "/api/books", 1).await, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Three export intervals.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let started = Instant::now();
    assert_eq!(get(service, "/api/books", 1).await, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let warnings = metric_warnings(service);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_emulator_down_requests_are_unaffected_and_failures_warned_once() {
    // A port nothing listens on.
    let mut service = spawn_service(&exporting_to("127.0.0.1:9", "5000"));
    requests_are_unaffected_and_failures_warned_once(&service).await;
    assert!(
        service
            .lines()
            .iter()
            .any(|line| line.contains("could not create the metric descriptors")),
        "the descriptor failure is logged"
    );
    stop(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_emulator_rejecting_points_the_reason_is_warned_once() {
    // An emulator allowing one point per minute rejects every export after
    // the first: each is a partial failure (M1) for the M8 reason.
    let emulator = TestEmulator::start_with(EmulatorConfig {
        min_sampling_period: Duration::from_secs(60),
        ..EmulatorConfig::default()
    })
    .await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&exporting_to(&host, "5000"));
    requests_are_unaffected_and_failures_warned_once(&service).await;
    let warning = &metric_warnings(&service)[0];
    assert!(
        warning.contains("One or more TimeSeries could not be written")
            && warning.contains("maximum sampling period"),
        "{warning}"
    );
    assert!(emulator.emulator.store().metrics.stats().series_rejected > 0);
    stop(&mut service).await;
}
