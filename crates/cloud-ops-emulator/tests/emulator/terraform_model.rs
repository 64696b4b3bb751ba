//! The emulator reads the deployment's own Terraform: the alert policies,
//! log-based metrics, uptime check and notification channels of
//! `terraform/` evaluate completely, with the filters Terraform would send.

use cloud_ops_emulator::alerting::slo::SloSelector;
use cloud_ops_emulator::logging::query::LogFilter;
use cloud_ops_emulator::monitoring::filter;
use cloud_ops_emulator::terraform::{load, VariableInputs};

fn deployment() -> cloud_ops_emulator::terraform::TerraformModule {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../terraform");
    load(dir.as_ref(), &VariableInputs::default()).expect("terraform/ loads")
}

#[test]
fn every_monitoring_and_logging_resource_evaluates() {
    let module = deployment();
    assert!(module.problems.is_empty(), "{:#?}", module.problems);
    let count = |t: &str| module.of_type(t).count();
    assert_eq!(count("google_logging_metric"), 3);
    assert_eq!(count("google_monitoring_uptime_check_config"), 1);
    // The webhook channel exists only when its URL is set; no-traffic alert
    // only when expected traffic is set: neither by default.
    assert_eq!(count("google_monitoring_notification_channel"), 1);
    assert!(count("google_monitoring_alert_policy") >= 4);
}

#[test]
fn filters_resolve_and_parse_with_the_emulators_parsers() {
    let module = deployment();
    let errors = module
        .of_type("google_logging_metric")
        .find(|metric| metric.name == "errors")
        .unwrap()
        .to_json();
    assert_eq!(
        errors["filter"],
        "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"cloudrun-obs-frontend\" OR \"cloudrun-obs-backend\") AND severity>=ERROR"
    );
    for metric in module.of_type("google_logging_metric") {
        let filter = metric.to_json()["filter"].as_str().unwrap().to_owned();
        LogFilter::parse(&filter).unwrap_or_else(|e| panic!("{}: {e}", metric.address()));
    }
    for policy in module.of_type("google_monitoring_alert_policy") {
        let policy_json = policy.to_json();
        for condition in policy_json["conditions"].as_array().unwrap() {
            for kind in ["condition_threshold", "condition_absent"] {
                for inner in condition[kind].as_array().into_iter().flatten() {
                    let text = inner["filter"].as_str().unwrap();
                    if text.starts_with("select_slo_") {
                        SloSelector::parse(text)
                            .unwrap_or_else(|e| panic!("{}: {e}", policy.address()));
                        continue;
                    }
                    filter::parse(text).unwrap_or_else(|e| panic!("{}: {e}", policy.address()));
                }
            }
        }
    }
}

#[test]
fn thresholds_come_from_the_variables() {
    let module = deployment();
    let latency = module
        .of_type("google_monitoring_alert_policy")
        .find(|policy| policy.name == "latency_p95")
        .unwrap()
        .to_json();
    let threshold = &latency["conditions"][0]["condition_threshold"][0];
    // latency_p95_threshold_ms defaults to 1000; the metric's unit is s.
    assert_eq!(threshold["threshold_value"].as_f64(), Some(1.0));
    assert_eq!(threshold["duration"], "300s");
    assert_eq!(
        latency["notification_channels"],
        serde_json::json!(["email"])
    );
}
