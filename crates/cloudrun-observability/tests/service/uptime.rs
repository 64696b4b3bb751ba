//! Uptime checks, end to end: the project's real uptime check from
//! `terraform/`, probing the real service binary, with results read back
//! through the emulator's gRPC `ListTimeSeries`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::emulator_helpers::{now_seconds, TestEmulator};
use crate::helpers::spawn_service;
use cloud_ops_emulator::monitoring::uptime::{
    probe_forever, UptimeCheck, UptimeError, UptimeProber, ALL_LOCATIONS, CHECK_PASSED,
    REQUEST_LATENCY,
};
use cloud_ops_emulator::terraform::{load, VariableInputs};
use cloud_ops_emulator::time::scale::TimeScale;
use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::monitoring::v3::{typed_value, TimeSeries};
use reqwest::Url;

const PROJECT: &str = "test-project";

fn frontend_check() -> UptimeCheck {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform");
    let module = load(&dir, &VariableInputs::default()).expect("terraform/ loads");
    let mut checks = UptimeCheck::all_from(&module).expect("the uptime check is supported");
    assert_eq!(checks.len(), 1);
    checks.remove(0)
}

async fn emulator() -> TestEmulator {
    TestEmulator::start_with(EmulatorConfig {
        // Rounds a fraction of a second apart must all be writable (M8).
        min_sampling_period: Duration::from_millis(50),
        ..EmulatorConfig::default()
    })
    .await
}

async fn read(emulator: &TestEmulator, metric_type: &str) -> Vec<TimeSeries> {
    let filter =
        format!("metric.type = \"{metric_type}\" AND metric.labels.check_id = \"frontend\"");
    let now = now_seconds();
    emulator
        .list_series(PROJECT, &filter, now - 600, now + 60)
        .await
}

/// Each location's check_passed values, newest first.
async fn passed_by_location(emulator: &TestEmulator) -> BTreeMap<String, Vec<bool>> {
    read(emulator, CHECK_PASSED)
        .await
        .iter()
        .map(|series| {
            let resource = series.resource.as_ref().unwrap();
            assert_eq!(resource.r#type, "uptime_url");
            assert_eq!(resource.labels["host"], "frontend.run.app");
            let labels = &series.metric.as_ref().unwrap().labels;
            let values = series
                .points
                .iter()
                .map(|p| match p.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(typed_value::Value::BoolValue(b)) => *b,
                    other => panic!("not a bool: {other:?}"),
                })
                .collect();
            (labels["checker_location"].clone(), values)
        })
        .collect()
}

fn all_locations() -> Vec<String> {
    let mut locations: Vec<String> = ALL_LOCATIONS.iter().map(|l| l.to_string()).collect();
    locations.sort();
    locations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_service_passes_everywhere_and_a_killed_one_fails_everywhere() {
    let emulator = emulator().await;
    let store = emulator.emulator.store().metrics;
    let host = emulator.emulator.local_addr().to_string();
    let service = spawn_service(&[("CLOUD_OPS_EMULATOR_HOST", &host)]);
    let target = Url::parse(&service.url("/")).unwrap();
    let scale = TimeScale::new(60.0).unwrap();
    let prober = UptimeProber::new(frontend_check(), Some(&target), scale);

    let up = prober.probe_once(&store, PROJECT).await;
    assert!(up.write_errors.is_empty(), "{:?}", up.write_errors);
    assert!(up.results.iter().all(|r| r.passed), "{:?}", up.results);
    let passed = passed_by_location(&emulator).await;
    assert_eq!(passed.keys().cloned().collect::<Vec<_>>(), all_locations());
    assert!(passed.values().all(|v| v == &[true]), "{passed:?}");
    let latencies = read(&emulator, REQUEST_LATENCY).await;
    assert_eq!(latencies.len(), ALL_LOCATIONS.len());

    drop(service); // kills the process
    tokio::time::sleep(Duration::from_millis(100)).await;
    let down = prober.probe_once(&store, PROJECT).await;
    assert!(down.write_errors.is_empty(), "{:?}", down.write_errors);
    assert!(down.results.iter().all(|r| !r.passed), "{:?}", down.results);
    let passed = passed_by_location(&emulator).await;
    assert!(passed.values().all(|v| v == &[false, true]), "{passed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_status_fails_but_still_reports_its_latency() {
    let emulator = emulator().await;
    let store = emulator.emulator.store().metrics;
    let host = emulator.emulator.local_addr().to_string();
    let service = spawn_service(&[("CLOUD_OPS_EMULATOR_HOST", &host)]);
    let target = Url::parse(&service.url("/")).unwrap();
    let mut check = frontend_check();
    check.path = "/no-such-page".into();
    let prober = UptimeProber::new(check, Some(&target), TimeScale::REAL_TIME);
    let round = prober.probe_once(&store, PROJECT).await;
    assert!(round
        .results
        .iter()
        .all(|r| !r.passed && r.latency.is_some() && r.detail == "status 404"));
    assert_eq!(
        read(&emulator, REQUEST_LATENCY).await.len(),
        ALL_LOCATIONS.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_forever_probes_every_scaled_period() {
    let emulator = emulator().await;
    let store = emulator.emulator.store().metrics;
    let host = emulator.emulator.local_addr().to_string();
    let service = spawn_service(&[("CLOUD_OPS_EMULATOR_HOST", &host)]);
    let target = Url::parse(&service.url("/")).unwrap();
    // 60 s at 120x: a round every 500 ms.
    let scale = TimeScale::new(120.0).unwrap();
    let (_target_tx, targets) = tokio::sync::watch::channel(Some(target));
    let task = tokio::spawn(probe_forever(
        frontend_check(),
        targets,
        scale,
        store,
        PROJECT.to_owned(),
    ));
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    task.abort();
    let passed = passed_by_location(&emulator).await;
    assert_eq!(passed.len(), ALL_LOCATIONS.len());
    for (location, values) in &passed {
        assert!((2..=4).contains(&values.len()), "{location}: {values:?}");
        assert!(values.iter().all(|v| *v), "{location}: {values:?}");
    }
}

#[test]
fn a_check_with_a_period_google_refuses_is_refused_clearly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform");
    let module = load(&dir, &VariableInputs::default()).expect("terraform/ loads");
    let mut resource = module
        .of_type("google_monitoring_uptime_check_config")
        .next()
        .expect("the frontend check")
        .clone();
    resource
        .value
        .insert("period".into(), hcl::Value::from("120s"));
    let error = UptimeCheck::from_terraform(&resource).unwrap_err();
    assert!(
        matches!(&error, UptimeError::Invalid { field, .. } if field == "period"),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("google_monitoring_uptime_check_config.frontend")
            && message.contains("\"120s\"")
            && message.contains("60s, 300s, 600s or 900s"),
        "{message}"
    );
}
