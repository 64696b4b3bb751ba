//! The SLOs of `terraform/slo.tf` and their burn-rate alerting, evaluated by
//! the emulator against what the real service emitted while `loadgen` drove
//! it: Cloud Run's request count (from the request log lines) for the
//! availability SLO, the service's own request-duration histogram (exported
//! over gRPC) for the latency SLO. Time runs 60 to 120 times faster, so a
//! one-hour lookback is a minute or half a minute.
//!
//! - a steady 0.5 % of errors spends the 99.5 % availability SLO's budget at
//!   about 1x and opens no incident;
//! - a burst of 5xx opens the availability burn-rate incident within its
//!   (scaled) window, and recovery closes it;
//! - requests slower than the latency threshold do the same for the latency
//!   SLO.
//!
//! The tests find burn-rate incidents by what they select
//! (`select_slo_burn_rate("…/serviceLevelObjectives/ID", …)`), not by policy
//! name, so they hold whether `terraform/` alerts with one window or with
//! fast- and slow-burn policies pairing a long and a short window.

use std::time::{Duration, Instant};

use cloud_ops_emulator::alerting::incidents::Incident;
use cloud_ops_emulator::alerting::policy::ConditionKind;
use cloud_ops_emulator::alerting::slo::{SelectorKind, SloSelector};
use cloud_ops_emulator::time::timestamp::now_nanos;
use cloud_ops_emulator::RunningEmulator;
use cloudrun_observability::loadgen::{self, LoadSummary, LoadgenConfig};

use crate::alerts::{alerting_of, emulator, forward_logs, frontend, terraform_dir, Webhook};
use crate::helpers::ServiceProcess;

/// What `selector` (with `SLO` standing for the SLO's name) returns now.
fn slo_value(emulator: &RunningEmulator, slo_id: &str, selector: &str) -> Option<f64> {
    let alerting = alerting_of(emulator);
    let slo = alerting
        .slos
        .iter()
        .find(|slo| slo.slo_id == slo_id)
        .unwrap_or_else(|| panic!("terraform/ defines the {slo_id} SLO"));
    let selector = SloSelector::parse(&selector.replace("SLO", &slo.name)).unwrap();
    slo.select(
        &selector,
        &emulator.store().metrics,
        &alerting.project,
        now_nanos(),
        alerting.report.time_scale,
    )
    .unwrap()
}

/// Incidents opened on a burn rate of the `slo_id` SLO, whatever the policy
/// (one window, or a fast and a slow burn pairing a long and a short one).
fn burn_rate_incidents(emulator: &RunningEmulator, slo_id: &str) -> Vec<Incident> {
    let selects = format!("/serviceLevelObjectives/{slo_id}\"");
    alerting_of(emulator)
        .incidents
        .incidents()
        .into_iter()
        .filter(|incident| {
            incident.metric_type.starts_with("select_slo_burn_rate(")
                && incident.metric_type.contains(&selects)
        })
        .collect()
}

/// The highest burn-rate threshold an alert condition sets for `slo_id`:
/// the fast burn, where `terraform/` pairs fast and slow ones.
fn fast_burn_threshold(emulator: &RunningEmulator, slo_id: &str) -> f64 {
    let alerting = alerting_of(emulator);
    let slo = alerting.slos.iter().find(|s| s.slo_id == slo_id).unwrap();
    alerting
        .policies
        .iter()
        .flat_map(|policy| &policy.conditions)
        .filter_map(|condition| match &condition.kind {
            ConditionKind::Slo(c)
                if c.selector.kind == SelectorKind::BurnRate
                    && slo.is_named(&c.selector.slo_name) =>
            {
                Some(c.threshold_value)
            }
            _ => None,
        })
        .fold(f64::NAN, f64::max)
}

/// Waits for the fast-burn incident of `slo_id`.
async fn wait_for_burn_rate_incident(
    emulator: &RunningEmulator,
    slo_id: &str,
    within: Duration,
) -> Incident {
    let threshold = fast_burn_threshold(emulator, slo_id);
    assert!(
        threshold > 1.0,
        "terraform/ alerts on the {slo_id} burn rate"
    );
    let deadline = Instant::now() + within;
    loop {
        if let Some(incident) = burn_rate_incidents(emulator, slo_id)
            .into_iter()
            .find(|incident| incident.threshold_value == Some(threshold))
        {
            return incident;
        }
        assert!(
            Instant::now() < deadline,
            "no {slo_id} burn-rate incident within {within:?}; errors: {:?}",
            alerting_of(emulator).evaluation_errors()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until_closed(emulator: &RunningEmulator, incident: &Incident, within: Duration) {
    let deadline = Instant::now() + within;
    let alerting = alerting_of(emulator);
    while alerting.incidents.incident(&incident.id).unwrap().is_open() {
        assert!(
            Instant::now() < deadline,
            "{} did not close within {within:?}",
            incident.condition_name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `loadgen` against the service, in the background.
fn load(
    service: &ServiceProcess,
    rps: f64,
    duration: Duration,
    error_share: f64,
) -> tokio::task::JoinHandle<LoadSummary> {
    let config = LoadgenConfig {
        target: service.url(""),
        rps,
        duration,
        error_share,
        slow_ms: 0,
        visitors: 5,
        progress: false,
    };
    tokio::spawn(async move { loadgen::run(config).await.expect("loadgen runs") })
}

/// One SLO scenario at a time: on a small machine, three services under
/// load at once slow each other past the latency threshold and into
/// downstream timeouts, which is a real 5xx but not the scenario's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_half_percent_of_errors_spends_the_availability_budget_at_about_1x() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let webhook = Webhook::start().await;
    let deployed = emulator(&terraform_dir(), 60.0, &webhook).await;
    let service = frontend(&deployed, "0");
    let forwarder = forward_logs(&service, &[&deployed]);
    // 25 local seconds at 60x: 25 minutes of a 99.5 % SLO's traffic at 0.5 % errors.
    let summary = load(&service, 60.0, Duration::from_secs(25), 0.005)
        .await
        .unwrap();
    assert_eq!(summary.sent, 1500, "{}", summary.report());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The last hour (a local minute) holds the whole run. Orders' downstream
    // calls and the uptime probes are requests too, which dilutes the share of
    // errors below loadgen's 0.5 %; randomness does the rest.
    let burn = slo_value(
        &deployed,
        "availability",
        r#"select_slo_burn_rate("SLO", "3600s")"#,
    )
    .expect("the hour had requests");
    assert!(
        (0.2..=2.5).contains(&burn),
        "burn rate {burn} after {}",
        summary.report()
    );
    let health = slo_value(&deployed, "availability", r#"select_slo_health("SLO")"#).unwrap();
    assert!(health > 0.98 && health < 1.0, "SLI {health}");
    // All the traffic so far is inside the 28-day period: what is left of
    // the budget is what a burn rate of about 1 leaves.
    let left = slo_value(
        &deployed,
        "availability",
        r#"select_slo_budget_fraction("SLO")"#,
    )
    .unwrap();
    assert!((-1.5..=0.8).contains(&left), "budget left {left}");

    let alerting = alerting_of(&deployed);
    assert!(
        alerting.evaluation_errors().is_empty(),
        "{:?}",
        alerting.evaluation_errors()
    );
    assert!(
        burn_rate_incidents(&deployed, "availability").is_empty()
            && burn_rate_incidents(&deployed, "latency").is_empty(),
        "{:#?}",
        alerting.incidents.incidents()
    );
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5xx_opens_the_availability_burn_rate_incident_and_recovery_closes_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let webhook = Webhook::start().await;
    // 120x: an hour's lookback is 30 local seconds, five minutes 2.5.
    let deployed = emulator(&terraform_dir(), 120.0, &webhook).await;
    let service = frontend(&deployed, "0");
    let forwarder = forward_logs(&service, &[&deployed]);
    load(&service, 40.0, Duration::from_secs(4), 0.0)
        .await
        .unwrap();
    assert!(burn_rate_incidents(&deployed, "availability").is_empty());

    // Half of the requests fail for 4 s: a burn rate near 100.
    let burst_started = Instant::now();
    let burst = load(&service, 40.0, Duration::from_secs(4), 0.5);
    let incident =
        wait_for_burn_rate_incident(&deployed, "availability", Duration::from_secs(30)).await;
    assert!(
        burst_started.elapsed() < Duration::from_secs(30),
        "opened within the scaled hour"
    );
    assert!(incident.is_open());
    assert!(
        incident.observed_value.unwrap() > incident.threshold_value.unwrap(),
        "{incident:#?}"
    );
    assert!(
        incident.summary.contains("select_slo_burn_rate("),
        "{}",
        incident.summary
    );
    assert!(!incident.documentation.content.is_empty());
    burst.await.unwrap();

    // The console's SLO page: both SLOs, a burn-rate chart per alert window
    // with points in it, the budget spent, and the incident.
    let page = reqwest::get(format!("http://{}/slo", deployed.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"data-slo="availability""#), "{page}");
    assert!(page.contains(r#"data-slo="latency""#));
    assert!(
        page.contains(r#"data-chart="burn-availability-3600""#),
        "{page}"
    );
    assert!(!page.contains(r#"data-chart="burn-availability-3600" data-points="0""#));
    assert!(page.contains("Error budget left"));
    assert!(page.contains(&incident.policy_name), "{page}");

    // Healthy traffic again: once the burst leaves the windows, it closes.
    let recovery = load(&service, 40.0, Duration::from_secs(45), 0.0);
    wait_until_closed(&deployed, &incident, Duration::from_secs(45)).await;
    recovery.abort();
    // Opening and closing each reached the webhook channel.
    let states: Vec<String> = webhook
        .bodies()
        .iter()
        .filter(|body| body["incident"]["incident_id"] == incident.id.as_str())
        .map(|body| body["incident"]["state"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(states.contains(&"open".to_owned()), "{states:?}");
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_slower_than_the_threshold_open_the_latency_burn_rate_incident_and_recovery_closes_it(
) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let webhook = Webhook::start().await;
    let deployed = emulator(&terraform_dir(), 120.0, &webhook).await;
    let service = frontend(&deployed, "0");
    let forwarder = forward_logs(&service, &[&deployed]);
    let background = load(&service, 5.0, Duration::from_secs(90), 0.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(burn_rate_incidents(&deployed, "latency").is_empty());

    // Visitors waiting on 700 ms pages, over the 500 ms threshold: most of
    // the requests are slow, against a 5 % budget.
    let mut visitors = Vec::new();
    for _ in 0..50 {
        let http = service.http.clone();
        let url = service.url("/api/faults/slow?ms=700");
        visitors.push(tokio::spawn(async move {
            loop {
                let _ = http.get(&url).send().await;
            }
        }));
    }
    let incident = wait_for_burn_rate_incident(&deployed, "latency", Duration::from_secs(30)).await;
    assert!(
        incident.observed_value.unwrap() > incident.threshold_value.unwrap(),
        "{incident:#?}"
    );
    let sli = slo_value(&deployed, "latency", r#"select_slo_health("SLO", "300s")"#).unwrap();
    assert!(sli < 0.5, "the last five minutes' SLI is {sli}");
    for visitor in visitors {
        visitor.abort();
    }
    // Fast pages only: the incident closes.
    wait_until_closed(&deployed, &incident, Duration::from_secs(45)).await;
    assert!(burn_rate_incidents(&deployed, "availability").is_empty());
    background.abort();
    forwarder.abort();
}
