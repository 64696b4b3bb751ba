//! The deployment's SLOs (`terraform/slo.tf`) read by the emulator, their
//! selectors computed from stored series at a time scale, and burn-rate
//! policies of any lookback, combined with AND, evaluated by the alert
//! engine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloud_ops_emulator::alerting::slo::{SelectorKind, Sli, Slo, SloSelector};
use cloud_ops_emulator::alerting::{self, AlertingConfig};
use cloud_ops_emulator::logging::store::LogSource;
use cloud_ops_emulator::monitoring::store::MetricStore;
use cloud_ops_emulator::terraform::{self, VariableInputs};
use cloud_ops_emulator::time::scale::TimeScale;
use cloud_ops_emulator::time::timestamp::now_nanos;
use cloud_ops_emulator::{Emulator, EmulatorConfig};
use gcloud_sdk::google::api::{metric_descriptor::MetricKind, metric_descriptor::ValueType};
use gcloud_sdk::google::api::{Metric, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Point, TimeInterval, TimeSeries, TypedValue,
};

const FRONTEND: &str = "cloudrun-obs-frontend";
const SECOND: i64 = 1_000_000_000;

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform")
}

fn deployment_slos() -> Vec<Slo> {
    let module = terraform::load(&terraform_dir(), &VariableInputs::default()).unwrap();
    module
        .of_type("google_monitoring_slo")
        .map(|resource| Slo::from_terraform(resource).unwrap())
        .collect()
}

#[test]
fn the_deployments_slos_and_burn_rate_policies_all_load() {
    let slos = deployment_slos();
    let availability = slos.iter().find(|s| s.slo_id == "availability").unwrap();
    assert_eq!(availability.goal, 0.995);
    assert_eq!(
        availability.rolling_period,
        Duration::from_secs(28 * 86_400)
    );
    assert_eq!(
        availability.name,
        format!("projects/local/services/{FRONTEND}/serviceLevelObjectives/availability")
    );
    assert!(matches!(
        availability.sli,
        Sli::GoodTotalRatio {
            good: None,
            bad: Some(_),
            total: Some(_)
        }
    ));
    let latency = slos.iter().find(|s| s.slo_id == "latency").unwrap();
    // latency_slo_threshold_ms = 500, the histogram's unit is s.
    assert!(
        matches!(latency.sli, Sli::DistributionCut { min, max, .. } if min == 0.0 && max == 0.5)
    );

    let loaded = alerting::load(&AlertingConfig::new(
        terraform_dir(),
        VariableInputs::default(),
        TimeScale::REAL_TIME,
        "local".to_owned(),
    ))
    .unwrap();
    assert!(
        loaded.report.problems.is_empty(),
        "nothing in terraform/ is left unevaluated: {:#?}",
        loaded.report.problems
    );
    assert_eq!(loaded.report.slos.len(), 2, "{:?}", loaded.report.slos);
    // Every policy loaded, burn-rate ones (whatever their windows) included.
    let module = terraform::load(&terraform_dir(), &VariableInputs::default()).unwrap();
    let policies: Vec<_> = module.of_type("google_monitoring_alert_policy").collect();
    assert_eq!(loaded.report.policies.len(), policies.len());
    assert!(policies.iter().any(|policy| policy
        .to_json()
        .to_string()
        .contains("select_slo_burn_rate(")));
}

/// One DELTA point of `run.googleapis.com/request_count` for the frontend.
fn request_count(class: &str, count: i64, end: i64) -> TimeSeries {
    TimeSeries {
        metric: Some(Metric {
            r#type: "run.googleapis.com/request_count".into(),
            labels: [
                ("response_code_class".to_owned(), class.to_owned()),
                (
                    "response_code".to_owned(),
                    if class == "5xx" { "500" } else { "200" }.to_owned(),
                ),
            ]
            .into(),
        }),
        resource: Some(MonitoredResource {
            r#type: "cloud_run_revision".into(),
            labels: [
                ("service_name".to_owned(), FRONTEND.to_owned()),
                ("revision_name".to_owned(), format!("{FRONTEND}-00001")),
                ("location".to_owned(), "europe-west1".to_owned()),
                ("configuration_name".to_owned(), FRONTEND.to_owned()),
            ]
            .into(),
        }),
        metric_kind: MetricKind::Delta as i32,
        value_type: ValueType::Int64 as i32,
        points: vec![Point {
            interval: Some(TimeInterval {
                start_time: Some(timestamp(end - SECOND)),
                end_time: Some(timestamp(end)),
            }),
            value: Some(TypedValue {
                value: Some(typed_value::Value::Int64Value(count)),
            }),
        }],
        ..TimeSeries::default()
    }
}

fn timestamp(nanos: i64) -> gcloud_sdk::prost_types::Timestamp {
    gcloud_sdk::prost_types::Timestamp {
        seconds: nanos.div_euclid(SECOND),
        nanos: nanos.rem_euclid(SECOND) as i32,
    }
}

#[test]
fn selectors_compute_burn_rate_sli_and_budget_from_the_stored_counts_at_scale() {
    let slos = deployment_slos();
    let availability = slos.iter().find(|s| s.slo_id == "availability").unwrap();
    let store = MetricStore::new(100_000, Duration::ZERO);
    let now = now_nanos();
    // At 60x a monitoring minute is a local second: one point a second for
    // 120 s. The older 60 at 0.5 % errors, the newer 60 at 10 %.
    for k in (0..120).rev() {
        let end = now - k * SECOND;
        let bad = if k < 60 { 100 } else { 5 };
        let outcome = store.write_as_google(
            "local",
            &[
                request_count("2xx", 1000 - bad, end),
                request_count("5xx", bad, end),
            ],
            end,
        );
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    }
    let scale = TimeScale::new(60.0).unwrap();
    let select = |text: &str| {
        let selector = SloSelector::parse(&text.replace("SLO", &availability.name)).unwrap();
        availability
            .select(&selector, &store, "local", now, scale)
            .unwrap()
            .unwrap()
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // The last 3600 s (60 local seconds): 10 % bad over a 0.5 % budget.
    let burn_hour = select(r#"select_slo_burn_rate("SLO", "3600s")"#);
    assert!(close(burn_hour, 20.0), "{burn_hour}");
    // Any lookback: 5 minutes, and 2 hours (all 120 points).
    assert!(close(select(r#"select_slo_burn_rate("SLO", "5m")"#), 20.0));
    let burn_two_hours = select(r#"select_slo_burn_rate("SLO", "2h")"#);
    assert!(close(burn_two_hours, 10.5), "{burn_two_hours}");
    assert!(close(select(r#"select_slo_health("SLO", "1h")"#), 0.9));
    // Over the 28-day period: 6 300 bad of 120 000, a budget of 600.
    assert!(close(
        select(r#"select_slo_health("SLO")"#),
        1.0 - 6300.0 / 120_000.0
    ));
    assert!(close(select(r#"select_slo_budget("SLO")"#), 600.0 - 6300.0));
    assert!(close(select(r#"select_slo_budget_fraction("SLO")"#), -9.5));
    assert_eq!(
        SloSelector::parse(r#"select_slo_budget("x")"#)
            .unwrap()
            .kind,
        SelectorKind::Budget
    );
}

#[test]
fn a_windows_based_sli_counts_good_windows_at_scale() {
    // 99 % of each one-minute window's requests must succeed: the older hour
    // (0.5 % errors) has good windows, the newer (10 %) bad ones.
    let count =
        r#"metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision""#;
    let json = serde_json::json!({
        "service": FRONTEND,
        "slo_id": "windows",
        "goal": 0.9,
        "rolling_period_days": 1,
        "windows_based_sli": [{
            "window_period": "60s",
            "good_total_ratio_threshold": [{
                "threshold": 0.99,
                "performance": [{"good_total_ratio": [{
                    "total_service_filter": count,
                    "bad_service_filter": format!("{count} AND metric.labels.response_code_class=\"5xx\""),
                }]}],
            }],
        }],
    });
    let resource = terraform::ResourceInstance {
        resource_type: "google_monitoring_slo".into(),
        name: "windows".into(),
        index: None,
        value: serde_json::from_value(json).unwrap(),
    };
    let slo = Slo::from_terraform(&resource).unwrap();
    assert!(
        matches!(slo.sli, Sli::WindowsBased { period, .. } if period == Duration::from_secs(60))
    );
    let store = MetricStore::new(100_000, Duration::ZERO);
    let now = now_nanos();
    for k in (0..120).rev() {
        let end = now - k * SECOND;
        let bad = if k < 60 { 100 } else { 5 };
        store.write_as_google(
            "local",
            &[
                request_count("2xx", 1000 - bad, end),
                request_count("5xx", bad, end),
            ],
            end,
        );
    }
    let scale = TimeScale::new(60.0).unwrap();
    let hour = slo
        .numbers(&store, "local", now, Duration::from_secs(3600), scale)
        .unwrap();
    assert_eq!((hour.counts.good, hour.counts.total), (0.0, 60.0));
    let two_hours = slo
        .numbers(&store, "local", now, Duration::from_secs(7200), scale)
        .unwrap();
    assert_eq!(
        (two_hours.counts.good, two_hours.counts.total),
        (60.0, 120.0)
    );
    assert_eq!(two_hours.sli(), Some(0.5));
}

/// A request line as Cloud Run logs it for the frontend.
fn request_line(status: u16) -> String {
    format!(
        r#"{{"severity":"INFO","message":"GET /api/books","httpRequest":{{"requestMethod":"GET","requestUrl":"/api/books","status":{status},"latency":"0.010s"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_window_burn_rate_policy_opens_only_when_both_windows_burn_and_closes_after() {
    // terraform/ plus a fast-burn policy as the SRE Workbook pairs them: the
    // 1 h and 5 min burn rates both above 14.4, combined with AND.
    let dir = std::env::temp_dir().join(format!("slo-emulator-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dashboards")).unwrap();
    for folder in ["", "dashboards"] {
        for entry in std::fs::read_dir(terraform_dir().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(folder).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::write(
        dir.join("fast_burn_test.tf"),
        r#"
resource "google_monitoring_alert_policy" "fast_burn_test" {
  display_name = "availability fast burn"
  combiner     = "AND"
  dynamic "conditions" {
    for_each = { long = "3600s", short = "300s" }
    content {
      display_name = "burn rate over ${conditions.value}"
      condition_threshold {
        filter          = "select_slo_burn_rate(\"${google_monitoring_slo.availability.name}\", \"${conditions.value}\")"
        comparison      = "COMPARISON_GT"
        threshold_value = 14.4
        duration        = "0s"
      }
    }
  }
}
"#,
    )
    .unwrap();
    let emulator = Emulator::start(EmulatorConfig {
        port: 0,
        log_source: LogSource::local(FRONTEND),
        alerting: Some(AlertingConfig::new(
            dir.clone(),
            VariableInputs::default(),
            TimeScale::new(120.0).unwrap(),
            "local".to_owned(),
        )),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let store = emulator.store();
    let alerting = store.alerting.clone().unwrap();
    assert!(
        alerting.report.problems.is_empty(),
        "{:#?}",
        alerting.report.problems
    );
    // At 120x: the 1 h window is 30 s, the 5 min one 2.5 s; Cloud Run's
    // request count is written every half second.
    let send = |good: usize, bad: usize| {
        for _ in 0..good {
            store.logs.ingest_line(&request_line(200));
        }
        for _ in 0..bad {
            store.logs.ingest_line(&request_line(500));
        }
    };
    let fast_burn = |alerting: &alerting::AlertingHandle| {
        alerting
            .incidents
            .incidents()
            .into_iter()
            .filter(|i| i.policy_id == "fast_burn_test")
            .collect::<Vec<_>>()
    };
    // Healthy traffic for a while: nothing opens.
    for _ in 0..20 {
        send(100, 0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(fast_burn(&alerting).is_empty());
    // Half the requests fail: a burn rate of 100 in both windows.
    let started = Instant::now();
    let incident = loop {
        send(50, 50);
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(incident) = fast_burn(&alerting).into_iter().next() {
            break incident;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no fast-burn incident; errors {:?}",
            alerting.evaluation_errors()
        );
    };
    assert_eq!(incident.condition_name, "all conditions");
    assert!(incident.observed_value.unwrap() > 14.4, "{incident:#?}");
    assert!(
        incident.summary.contains("select_slo_burn_rate"),
        "{}",
        incident.summary
    );
    // Recovery: the 5 min window clears within seconds, and with it the AND.
    let recovering = Instant::now();
    while alerting.incidents.incident(&incident.id).unwrap().is_open() {
        send(100, 0);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            recovering.elapsed() < Duration::from_secs(20),
            "the fast-burn incident did not close"
        );
    }
    // The short window closed it while the hour still burns above 14.4:
    // the AND needs both.
    assert!(
        recovering.elapsed() < Duration::from_secs(15),
        "closed after {:?}",
        recovering.elapsed()
    );
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
