//! `/slo`: what Cloud Monitoring's Services page shows for each SLO loaded
//! from Terraform: its goal, the SLI over its rolling compliance period, the
//! error budget left, a burn-rate chart for every lookback an alert policy
//! watches (with the policy's threshold), and the incidents those burn-rate
//! conditions opened.
//!
//! Every number is computed from the stored series with the same code the
//! alert engine uses ([`crate::alerting::slo`]), at the emulator's time
//! scale.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use maud::{html, Markup};

use super::chart::{Chart, Line};
use super::layout::{self, Section};
use crate::alerting::incidents::Incident;
use crate::alerting::policy::ConditionKind;
use crate::alerting::slo::{SelectorKind, Slo, SloNumbers};
use crate::alerting::AlertingHandle;
use crate::time::timestamp::now_nanos;
use crate::EmulatorStore;

/// Points per burn-rate chart.
const CHART_POINTS: i64 = 60;

/// `GET /slo`.
pub async fn page(State(store): State<EmulatorStore>) -> Markup {
    let body = match &store.alerting {
        None => html! {
            p.muted {
                "No SLOs loaded. Start the emulator with "
                code { "--terraform terraform" }
                " to evaluate the deployment's google_monitoring_slo resources here."
            }
        },
        Some(alerting) if alerting.slos.is_empty() => html! {
            p.muted { "The Terraform defines no google_monitoring_slo the emulator evaluates." }
        },
        Some(alerting) => {
            let now = now_nanos();
            html! {
                p #time-scale {
                    "SLOs from " code { (alerting.report.terraform_dir) } ", computed from the stored series. Time scale: "
                    strong { (alerting.report.time_scale) }
                    @if !alerting.report.time_scale.is_real_time() {
                        " — rolling periods and lookbacks are divided by it."
                    }
                }
                @for slo in alerting.slos.iter() { (slo_section(&store, alerting, slo, now)) }
            }
        }
    };
    layout::page(Section::Slo, "Service-level objectives", body)
}

/// A burn-rate window an alert policy watches, with its thresholds.
#[derive(Debug, Default)]
struct Window {
    thresholds: Vec<f64>,
    conditions: Vec<String>,
}

/// The burn-rate lookbacks alert conditions select for `slo`.
fn alert_windows(alerting: &AlertingHandle, slo: &Slo) -> BTreeMap<Duration, Window> {
    let mut windows: BTreeMap<Duration, Window> = BTreeMap::new();
    for policy in alerting.policies.iter() {
        for condition in &policy.conditions {
            let ConditionKind::Slo(slo_condition) = &condition.kind else {
                continue;
            };
            let selector = &slo_condition.selector;
            if selector.kind != SelectorKind::BurnRate || !slo.is_named(&selector.slo_name) {
                continue;
            }
            let Some(lookback) = selector.lookback else {
                continue;
            };
            let window = windows.entry(lookback).or_default();
            if !window.thresholds.contains(&slo_condition.threshold_value) {
                window.thresholds.push(slo_condition.threshold_value);
            }
            window.conditions.push(format!(
                "{}: {}",
                policy.display_name, condition.display_name
            ));
        }
    }
    if windows.is_empty() {
        // No policy watches it: show the hour Google's console proposes.
        windows.insert(Duration::from_secs(3600), Window::default());
    }
    windows
}

fn slo_section(store: &EmulatorStore, alerting: &AlertingHandle, slo: &Slo, now: i64) -> Markup {
    let scale = alerting.report.time_scale;
    let period = slo.numbers(
        &store.metrics,
        &alerting.project,
        now,
        slo.rolling_period,
        scale,
    );
    let windows = alert_windows(alerting, slo);
    let longest = windows
        .keys()
        .max()
        .copied()
        .unwrap_or(Duration::from_secs(3600));
    // Four of the longest lookbacks, at least six hours, at most the period.
    let span = (longest * 4)
        .max(Duration::from_secs(6 * 3600))
        .min(slo.rolling_period);
    let from = now - scale.scale_nanos(span.as_nanos() as i64);
    let incidents: Vec<Incident> = alerting
        .incidents
        .incidents()
        .into_iter()
        .filter(|incident| {
            incident.metric_type.starts_with("select_slo_")
                && incident.resource_labels.get("slo_id") == Some(&slo.slo_id)
                && incident.resource_labels.get("service_id") == Some(&slo.service_id)
        })
        .collect();
    html! {
        section.slo data-slo=(slo.slo_id) {
            h2 { (slo.display_name) }
            p.muted.mono { (slo.address) " · " (slo.name) }
            @match period {
                Err(error) => p.err { "Cannot compute: " (error) },
                Ok(numbers) => (summary(slo, numbers)),
            }
            div.charts {
                @for (lookback, window) in &windows {
                    (burn_rate_chart(store, alerting, slo, *lookback, window, (from, now)))
                }
            }
            h3 { "Incidents opened by its burn-rate alerts" }
            @if incidents.is_empty() {
                p.muted { "None." }
            } @else {
                table.incidents {
                    tr { th { "state" } th { "policy" } th { "condition" } th { "opened" } th { "closed" } th { "value" } }
                    @for incident in &incidents {
                        tr {
                            td { @if incident.is_open() { span.err { "open" } } @else { span.ok { "closed" } } }
                            td { a href="/incidents" { (incident.policy_name) } }
                            td { (incident.condition_name) }
                            td { (layout::time(incident.started_nanos)) }
                            td { @if let Some(ended) = incident.ended_nanos { (layout::time(ended)) } }
                            td { @if let Some(value) = incident.observed_value { (layout::number(value)) "x" } }
                        }
                    }
                }
            }
        }
    }
}

/// Goal, SLI and error budget over the rolling period.
fn summary(slo: &Slo, numbers: SloNumbers) -> Markup {
    let percent = |v: f64| format!("{} %", trim(v * 100.0, 3));
    html! {
        div.cards {
            div.card data-field="goal" { div.muted { "Goal" } div.n { (percent(slo.goal)) } div.muted { "over " (days(slo.rolling_period)) } }
            div.card data-field="sli" {
                div.muted { "SLI (rolling period)" }
                div.n { @match numbers.sli() { Some(sli) => (percent(sli)), None => "–" } }
                div.muted { (trim(numbers.counts.good, 1)) " good of " (trim(numbers.counts.total, 1)) }
            }
            div.card data-field="budget" {
                div.muted { "Error budget left" }
                div.n class=[numbers.budget_fraction().filter(|f| *f < 0.0).map(|_| "err")] {
                    @match numbers.budget_fraction() { Some(fraction) => (percent(fraction)), None => "100 %" }
                }
                div.muted {
                    (trim(numbers.budget_remaining(), 1)) " of " (trim(numbers.budget_total(), 1)) " bad events left"
                }
            }
        }
    }
}

fn burn_rate_chart(
    store: &EmulatorStore,
    alerting: &AlertingHandle,
    slo: &Slo,
    lookback: Duration,
    window: &Window,
    (from, to): (i64, i64),
) -> Markup {
    let scale = alerting.report.time_scale;
    let step = ((to - from) / CHART_POINTS).max(1);
    let mut burn = Vec::new();
    let mut error = None;
    for i in 0..=CHART_POINTS {
        let at = from + step * i;
        match slo.numbers(&store.metrics, &alerting.project, at, lookback, scale) {
            Ok(numbers) => burn.extend(numbers.burn_rate().map(|rate| (at, rate))),
            Err(cause) => error = Some(cause.to_string()),
        }
    }
    let mut lines = vec![Line {
        name: format!("burn rate over {}", span(lookback)),
        points: burn,
    }];
    for threshold in &window.thresholds {
        lines.push(Line {
            name: format!("alert threshold {}x", layout::number(*threshold)),
            points: vec![(from, *threshold), (to, *threshold)],
        });
    }
    let id = format!("burn-{}-{}", slo.slo_id, lookback.as_secs());
    let title = format!("{}: burn rate over {}", slo.slo_id, span(lookback));
    html! {
        div {
            (Chart { id: &id, title: &title, format: times, from, to, lines }.render())
            @if let Some(error) = error { p.err { (error) } }
            @for condition in &window.conditions { div.muted { (condition) } }
        }
    }
}

fn times(v: f64) -> String {
    format!("{}x", layout::number(v))
}

/// `1 h`, `5 min`, `90 s`.
fn span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds > 0 && seconds % 3600 == 0 {
        format!("{} h", seconds / 3600)
    } else if seconds > 0 && seconds % 60 == 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{} s", layout::number(duration.as_secs_f64()))
    }
}

fn days(duration: Duration) -> String {
    format!("{} days", duration.as_secs() / 86_400)
}

/// At most `decimals` decimals, no trailing zeros.
fn trim(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_numbers_read_well() {
        assert_eq!(span(Duration::from_secs(3600)), "1 h");
        assert_eq!(span(Duration::from_secs(300)), "5 min");
        assert_eq!(span(Duration::from_secs(90)), "90 s");
        assert_eq!(trim(99.5, 3), "99.5");
        assert_eq!(trim(-950.0, 1), "-950");
        assert_eq!(days(Duration::from_secs(28 * 86_400)), "28 days");
    }
}
