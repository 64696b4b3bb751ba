//! The alert policies of `terraform/` evaluated by the emulator against what
//! the real service emitted: its log lines (fed to the emulator as
//! `emulator --logs -` does), its metrics (exported over gRPC) and the uptime
//! checks' probes. Time runs faster (`time_scale`) so 5-minute conditions
//! hold in seconds; nothing of the evaluation is stubbed.
//!
//! - 30 % payment failures open the 5xx-ratio incident, and a webhook on
//!   loopback receives Cloud Monitoring's incident JSON; the same traffic
//!   judged by a copy of `terraform/` whose threshold was raised opens
//!   nothing (the policies are read, not copied);
//! - without failures no 5xx-ratio incident opens;
//! - slow requests open the latency incident;
//! - a stopped service opens the uptime incident;
//! - what the emulator cannot evaluate is reported at load (nothing of
//!   `terraform/` itself: its SLO burn-rate alerts are in `slo.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{spawn_service, ServiceProcess};
use axum::routing::post;
use axum::{Json, Router};
use cloud_ops_emulator::alerting::incidents::Incident;
use cloud_ops_emulator::alerting::{self, AlertingConfig, AlertingHandle};
use cloud_ops_emulator::logging::store::LogSource;
use cloud_ops_emulator::monitoring::filter;
use cloud_ops_emulator::terraform::VariableInputs;
use cloud_ops_emulator::time::scale::TimeScale;
use cloud_ops_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::Value;

const FRONTEND: &str = "cloudrun-obs-frontend";

pub(crate) fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform")
}

/// A webhook receiver on loopback that keeps every JSON body POSTed to it.
pub(crate) struct Webhook {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub(crate) async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let app = Router::new().route(
            "/hook",
            post(move |Json(body): Json<Value>| {
                let sink = Arc::clone(&sink);
                async move {
                    sink.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hook?auth_token=test-token"),
            received,
        }
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

/// An emulator evaluating `dir` at `scale`, with the webhook channel set.
pub(crate) async fn emulator(dir: &Path, scale: f64, webhook: &Webhook) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        port: 0,
        log_source: LogSource::local(FRONTEND),
        alerting: Some(AlertingConfig {
            terraform_dir: dir.to_owned(),
            inputs: VariableInputs {
                var_file: None,
                overrides: vec![(
                    "notification_webhook_url".to_owned(),
                    hcl::Value::String(webhook.url.clone()),
                )],
            },
            time_scale: TimeScale::new(scale).unwrap(),
            project: "local".to_owned(),
            service_url: None,
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts with terraform/")
}

pub(crate) fn alerting_of(emulator: &RunningEmulator) -> AlertingHandle {
    emulator.store().alerting.expect("alerting is loaded")
}

/// The service as Cloud Run would run the frontend, exporting to `emulator`.
pub(crate) fn frontend(emulator: &RunningEmulator, payment_failure_rate: &str) -> ServiceProcess {
    let host = emulator.local_addr().to_string();
    let service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", host.as_str()),
        ("OTEL_SERVICE_NAME", FRONTEND),
        ("PAYMENT_FAILURE_RATE", payment_failure_rate),
        ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
    ]);
    let url = reqwest::Url::parse(&format!("http://{}", service.addr)).unwrap();
    alerting_of(emulator).set_service_url(url);
    service
}

/// Copies the service's stdout lines into the emulators' log stores as they
/// come, as `service | emulator --logs -` would.
pub(crate) fn forward_logs(
    service: &ServiceProcess,
    emulators: &[&RunningEmulator],
) -> tokio::task::JoinHandle<()> {
    let lines = service.line_buffer();
    let stores: Vec<_> = emulators.iter().map(|e| e.store().logs).collect();
    tokio::spawn(async move {
        let mut sent = 0;
        loop {
            let new: Vec<String> = lines.lock().unwrap()[sent..].to_vec();
            sent += new.len();
            for line in &new {
                for store in &stores {
                    store.ingest_line(line);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Orders at `per_second` until `stop`, as a steady stream of visitors.
fn order_traffic(service: &ServiceProcess, per_second: u32) -> tokio::task::JoinHandle<()> {
    let http = service.http.clone();
    let url = service.url("/api/orders");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second);
        loop {
            ticks.tick().await;
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let _ = http
                    .post(url)
                    .json(&serde_json::json!({"book_id": 1, "quantity": 1}))
                    .send()
                    .await;
            });
        }
    })
}

fn has_5xx_request_counts(emulator: &RunningEmulator) -> bool {
    let filter = filter::parse(
        "metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\"",
    )
    .unwrap();
    !emulator.store().metrics.series("local", &filter).is_empty()
}

fn incidents_of(alerting: &AlertingHandle, policy: &str) -> Vec<Incident> {
    alerting
        .incidents
        .incidents()
        .into_iter()
        .filter(|incident| incident.policy_id == policy)
        .collect()
}

async fn wait_for_incident(alerting: &AlertingHandle, policy: &str, within: Duration) -> Incident {
    let deadline = Instant::now() + within;
    loop {
        if let Some(incident) = incidents_of(alerting, policy).into_iter().next() {
            return incident;
        }
        assert!(
            Instant::now() < deadline,
            "no {policy} incident within {within:?}; errors: {:?}; incidents: {:#?}",
            alerting.evaluation_errors(),
            alerting.incidents.incidents()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_failures_open_the_error_ratio_incident_and_notify_the_webhook() {
    let webhook = Webhook::start().await;
    let deployed = emulator(&terraform_dir(), 30.0, &webhook).await;
    // The same Terraform with only the threshold raised, fed the same log lines.
    let edited_dir = tempfile_copy_of_terraform();
    let variables = edited_dir.join("variables.tf");
    let text = std::fs::read_to_string(&variables).unwrap();
    let edited = raise_default(&text, "error_ratio_threshold", "0.5");
    std::fs::write(&variables, edited).unwrap();
    let raised = emulator(&edited_dir, 30.0, &webhook).await;

    let service = frontend(&deployed, "0.3");
    let forwarder = forward_logs(&service, &[&deployed, &raised]);
    let traffic = order_traffic(&service, 30);
    let started = Instant::now();

    let incident = wait_for_incident(
        &alerting_of(&deployed),
        "error_ratio",
        Duration::from_secs(60),
    )
    .await;
    // The condition must hold for its duration (300 s / 30) before it opens.
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "opened after {:?}",
        started.elapsed()
    );
    assert!(incident.is_open());
    assert_eq!(incident.metric_type, "run.googleapis.com/request_count");
    assert_eq!(incident.resource_labels["service_name"], FRONTEND);
    assert!(incident.observed_value.unwrap() > 0.05, "{incident:#?}");
    assert!(
        incident.summary.contains("above the threshold of 0.05"),
        "{}",
        incident.summary
    );
    assert!(incident.documentation.content.contains("Error Reporting"));

    // The webhook got Cloud Monitoring's incident JSON, token and all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let notification = loop {
        let found = webhook
            .bodies()
            .into_iter()
            .find(|body| body["incident"]["incident_id"] == incident.id.as_str());
        if let Some(body) = found {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook received nothing for {}",
            incident.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(notification["version"], "1.2");
    assert_eq!(notification["incident"]["state"], "open");
    assert_eq!(notification["incident"]["scoping_project_id"], "local");
    assert_eq!(
        notification["incident"]["policy_name"],
        incident.policy_name.as_str()
    );
    assert!(notification["incident"]["documentation"]["content"]
        .as_str()
        .unwrap()
        .contains("Check first"));
    // The email channel wrote to the outbox, the webhook was delivered.
    let sent = alerting_of(&deployed).incidents.notifications();
    let for_incident: Vec<_> = sent
        .iter()
        .filter(|n| n.incident_id == incident.id)
        .collect();
    assert!(for_incident.iter().any(|n| n.channel_type == "email"));
    assert!(for_incident
        .iter()
        .any(|n| n.channel_type == "webhook" && !n.target.contains("test-token")));

    // Same lines, threshold raised to 50 %: the 5xx series are there, nothing opened.
    assert!(has_5xx_request_counts(&raised));
    assert!(
        incidents_of(&alerting_of(&raised), "error_ratio").is_empty(),
        "the raised threshold must not fire: {:#?}",
        alerting_of(&raised).incidents.incidents()
    );
    traffic.abort();
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_failures_the_error_ratio_incident_never_opens() {
    let webhook = Webhook::start().await;
    let deployed = emulator(&terraform_dir(), 30.0, &webhook).await;
    let service = frontend(&deployed, "0");
    let forwarder = forward_logs(&service, &[&deployed]);
    let traffic = order_traffic(&service, 30);
    // Three times the condition's scaled duration.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let alerting = alerting_of(&deployed);
    // The condition had data to judge: Cloud Run's request count of the frontend.
    let counted = deployed.store().metrics.series(
        "local",
        &filter::parse(&format!(
            "metric.type=\"run.googleapis.com/request_count\" AND resource.labels.service_name=\"{FRONTEND}\""
        ))
        .unwrap(),
    );
    assert!(!counted.is_empty());
    assert!(!has_5xx_request_counts(&deployed));
    assert!(
        alerting.evaluation_errors().is_empty(),
        "{:?}",
        alerting.evaluation_errors()
    );
    assert!(
        incidents_of(&alerting, "error_ratio").is_empty(),
        "{:#?}",
        alerting.incidents.incidents()
    );
    assert!(webhook.bodies().is_empty(), "{:#?}", webhook.bodies());
    traffic.abort();
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_open_the_latency_incident() {
    let webhook = Webhook::start().await;
    let deployed = emulator(&terraform_dir(), 30.0, &webhook).await;
    let service = frontend(&deployed, "0");
    let forwarder = forward_logs(&service, &[&deployed]);
    // 20 visitors each waiting on 1.5 s pages: p95 far above the 1 s threshold.
    let mut visitors = Vec::new();
    for _ in 0..20 {
        let http = service.http.clone();
        let url = service.url("/api/faults/slow?ms=1500");
        visitors.push(tokio::spawn(async move {
            loop {
                let _ = http.get(&url).send().await;
            }
        }));
    }
    let incident = wait_for_incident(
        &alerting_of(&deployed),
        "latency_p95",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        incident.metric_type,
        "workload.googleapis.com/http.server.request.duration"
    );
    assert_eq!(incident.resource_labels["namespace"], FRONTEND);
    assert!(incident.observed_value.unwrap() > 1.0, "{incident:#?}");
    for visitor in visitors {
        visitor.abort();
    }
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_opens_the_uptime_incident() {
    let webhook = Webhook::start().await;
    let deployed = emulator(&terraform_dir(), 60.0, &webhook).await;
    let alerting = alerting_of(&deployed);
    let service = frontend(&deployed, "0");
    // While it serves, the checks pass and nothing opens.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        incidents_of(&alerting, "uptime").is_empty(),
        "{:#?}",
        alerting.incidents.incidents()
    );
    drop(service);
    let incident = wait_for_incident(&alerting, "uptime", Duration::from_secs(30)).await;
    assert_eq!(
        incident.metric_type,
        "monitoring.googleapis.com/uptime_check/check_passed"
    );
    assert_eq!(incident.resource_type, "uptime_url");
    assert!(
        incident.observed_value.unwrap() > 1.0,
        "more than one checker location failed"
    );
    assert!(incident.documentation.subject.contains("is down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_that_stops_opens_the_no_requests_incident_and_resuming_closes_it() {
    // The opt-in condition_absent policy: no request line but /healthz for
    // 600 s, aligned over 300 s; at 120x, 5 s and 2.5 s.
    let emulator = Emulator::start(EmulatorConfig {
        port: 0,
        log_source: LogSource::local(FRONTEND),
        alerting: Some(AlertingConfig {
            terraform_dir: terraform_dir(),
            inputs: VariableInputs {
                var_file: None,
                overrides: vec![("expected_min_requests".to_owned(), hcl::Value::Bool(true))],
            },
            time_scale: TimeScale::new(120.0).unwrap(),
            project: "local".to_owned(),
            service_url: None,
        }),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let alerting = alerting_of(&emulator);
    let service = frontend(&emulator, "0");
    let forwarder = forward_logs(&service, &[&emulator]);
    let browse = |count: u32| {
        let http = service.http.clone();
        let url = service.url("/api/books");
        async move {
            for _ in 0..count {
                http.get(&url).send().await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Traffic for twice the scaled duration: the series exists, nothing opens.
    browse(100).await;
    assert!(
        incidents_of(&alerting, "no_requests-0").is_empty(),
        "{:#?}",
        alerting.incidents.incidents()
    );
    // Only the uptime checks' /healthz now: the request-latency series goes absent.
    let incident = wait_for_incident(&alerting, "no_requests-0", Duration::from_secs(30)).await;
    assert_eq!(
        incident.metric_type,
        "logging.googleapis.com/user/cloudrun-obs-request-latency"
    );
    assert!(
        incident.summary.ends_with("is absent."),
        "{}",
        incident.summary
    );
    assert_eq!(incident.observed_value, None);
    // Traffic again: the incident closes.
    browse(30).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while alerting.incidents.incident(&incident.id).unwrap().is_open() {
        assert!(
            Instant::now() < deadline,
            "the no-traffic incident did not close"
        );
        browse(5).await;
    }
    forwarder.abort();
}

#[test]
fn what_cannot_be_evaluated_is_reported_at_load() {
    let config = |dir: &Path| AlertingConfig {
        terraform_dir: dir.to_owned(),
        inputs: VariableInputs::default(),
        time_scale: TimeScale::REAL_TIME,
        project: "local".to_owned(),
        service_url: None,
    };
    let deployed = alerting::load(&config(&terraform_dir())).unwrap();
    // Everything in terraform/ is evaluated, the SLO burn-rate policies included.
    assert!(
        deployed.report.problems.is_empty(),
        "{:#?}",
        deployed.report.problems
    );
    assert!(deployed
        .report
        .policies
        .iter()
        .any(|p| p.address.ends_with(".error_ratio")));
    assert_eq!(deployed.report.slos.len(), 2, "{:?}", deployed.report.slos);

    let dir = tempfile_copy_of_terraform();
    std::fs::write(
        dir.join("unsupported.tf"),
        r#"
resource "google_monitoring_alert_policy" "mql" {
  display_name = "mql"
  combiner     = "OR"
  conditions {
    display_name = "an MQL query"
    condition_monitoring_query_language {
      query    = "fetch cloud_run_revision | metric 'run.googleapis.com/request_count'"
      duration = "60s"
    }
  }
}

resource "google_monitoring_alert_policy" "aligner" {
  display_name = "aligner"
  combiner     = "OR"
  conditions {
    display_name = "a made-up aligner"
    condition_threshold {
      filter     = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\""
      comparison = "COMPARISON_GT"
      duration   = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_SOMETIMES"
      }
    }
  }
}
"#,
    )
    .unwrap();
    let loaded = alerting::load(&config(&dir)).unwrap();
    let problems = loaded.report.problems.join("\n");
    assert!(
        problems.contains(
            "google_monitoring_alert_policy.mql: conditions[0]: an MQL condition is not evaluated"
        ),
        "{problems}"
    );
    assert!(problems.contains("google_monitoring_alert_policy.aligner: conditions[0]: aggregations: unknown per_series_aligner \"ALIGN_SOMETIMES\""), "{problems}");
}

#[test]
fn the_emulator_command_prints_the_time_scale_and_what_it_cannot_evaluate() {
    let output = std::process::Command::new(crate::helpers::BINARY)
        .args([
            "emulator",
            "--port",
            "0",
            "--time-scale",
            "60",
            "--terraform",
        ])
        .arg(terraform_dir())
        .args(["--var", "error_ratio_threshold=0.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = output.id();
    std::thread::sleep(Duration::from_millis(1500));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = output.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("time scale: 60x faster than real time"),
        "{stdout}"
    );
    assert!(
        stdout.contains("alert policies, 3 log-based metrics, 1 uptime checks"),
        "{stdout}"
    );
    assert!(stdout.contains("2 SLOs"), "{stdout}");
    assert!(!stdout.contains("not evaluated:"), "{stdout}");
    assert!(
        stdout.contains("uptime checks wait for the local service's URL"),
        "{stdout}"
    );
    assert!(stdout.contains("/incidents"), "{stdout}");
}

/// A fresh copy of `terraform/*.tf` (and its dashboards) in a temporary directory.
pub(crate) fn tempfile_copy_of_terraform() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "alerts-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dashboards")).unwrap();
    for entry in std::fs::read_dir(terraform_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "tf") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    for entry in std::fs::read_dir(terraform_dir().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.join("dashboards").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    dir
}

/// `variables.tf` with `name`'s default replaced.
fn raise_default(text: &str, name: &str, value: &str) -> String {
    let start = text
        .find(&format!("variable \"{name}\""))
        .unwrap_or_else(|| panic!("variable {name} is declared"));
    let default_at = start + text[start..].find("default").expect("it has a default");
    let line_end = default_at + text[default_at..].find('\n').unwrap();
    format!(
        "{}default     = {value}{}",
        &text[..default_at],
        &text[line_end..]
    )
}
