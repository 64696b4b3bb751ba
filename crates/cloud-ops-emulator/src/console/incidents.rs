//! `/incidents`: what Cloud Monitoring's Alerting page would show for the
//! policies loaded from Terraform: open and closed incidents with the
//! policy's documentation, the notifications sent (the email outbox and the
//! webhook deliveries), the policies, and everything that could not be
//! evaluated. `GET /api/incidents` gives the same as JSON for scripts and
//! tests.

use axum::extract::State;
use axum::Json;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::layout::{self, Section};
use crate::alerting::incidents::{Delivery, Incident, Notification};
use crate::alerting::AlertingHandle;
use crate::EmulatorStore;

/// `GET /incidents`.
pub async fn page(State(store): State<EmulatorStore>) -> Markup {
    let body = match &store.alerting {
        None => html! {
            p.muted {
                "No alert policies loaded. Start the emulator with "
                code { "--terraform terraform" }
                " (or the service with "
                code { "EMULATOR_TERRAFORM_DIR=terraform" }
                ") to evaluate the deployment's log-based metrics, uptime checks and alert policies here."
            }
        },
        Some(alerting) => loaded(alerting),
    };
    layout::page(Section::Incidents, "Alerting", body)
}

/// `GET /api/incidents`: incidents, notifications, the load report and
/// evaluation errors as JSON.
pub async fn api(State(store): State<EmulatorStore>) -> Json<Value> {
    Json(match &store.alerting {
        None => json!({ "loaded": false }),
        Some(alerting) => json!({
            "loaded": true,
            "report": *alerting.report,
            "incidents": alerting.incidents.incidents(),
            "notifications": alerting.incidents.notifications(),
            "evaluation_errors": alerting.evaluation_errors(),
        }),
    })
}

fn loaded(alerting: &AlertingHandle) -> Markup {
    let report = &alerting.report;
    let incidents = alerting.incidents.incidents();
    let open = incidents.iter().filter(|i| i.is_open()).count();
    let errors = alerting.evaluation_errors();
    html! {
        p #time-scale {
            "Policies from " code { (report.terraform_dir) } ", evaluated locally. Time scale: "
            strong { (report.time_scale) }
            @if !report.time_scale.is_real_time() {
                " — durations, alignment periods and uptime periods are divided by it."
            }
        }
        @if !report.problems.is_empty() {
            h2 { "Not evaluated" }
            ul #problems { @for problem in &report.problems { li.err { (problem) } } }
        }
        @if !errors.is_empty() {
            h2 { "Evaluation errors" }
            ul { @for (condition, error) in &errors { li.err { (condition) ": " (error) } } }
        }
        h2 { "Incidents (" (open) " open)" }
        @if incidents.is_empty() {
            p.muted { "No incident yet." }
        } @else {
            @for incident in &incidents { (incident_card(incident)) }
        }
        h2 { "Notifications" }
        (notifications(&alerting.incidents.notifications()))
        h2 { "Policies" }
        table {
            tr { th { "Policy" } th { "Severity" } th { "Conditions" } th { "Channels" } }
            @for policy in &report.policies {
                tr {
                    td { (policy.display_name) div.muted.mono { (policy.address) } }
                    td { (policy.severity) }
                    td { @for c in &policy.conditions { div { (c) } } }
                    td.mono { (policy.channels.join(", ")) }
                }
            }
        }
        p.muted {
            "Log-based metrics: " (report.log_metrics.join(", ")) ". Uptime checks: "
            (report.uptime_checks.join(", ")) ". Channels: " (report.channels.join(", ")) "."
        }
    }
}

fn incident_card(incident: &Incident) -> Markup {
    let state = if incident.is_open() { "Open" } else { "Closed" };
    html! {
        div.incident.card id=(incident.id) style="margin:8px 0" {
            div {
                span class=(if incident.is_open() { "err" } else { "ok" }) { (state) }
                " · " strong { (incident.policy_name) }
                " · " span.muted { (incident.severity) }
            }
            div { (incident.summary) }
            dl.kv {
                dt { "Condition" } dd { (incident.condition_name) }
                dt { "Started" } dd { (layout::time(incident.started_nanos)) " UTC" }
                @if let Some(ended) = incident.ended_nanos {
                    dt { "Ended" } dd { (layout::time(ended)) " UTC" }
                }
                dt { "Incident" } dd.mono { (incident.id) }
                dt { "Policy" } dd.mono { (incident.policy_address) }
            }
            details open[incident.is_open()] {
                summary { (if incident.documentation.subject.is_empty() { "Documentation" } else { &incident.documentation.subject }) }
                pre { (incident.documentation.content) }
            }
        }
    }
}

fn notifications(notifications: &[Notification]) -> Markup {
    if notifications.is_empty() {
        return html! { p.muted { "Nothing sent yet." } };
    }
    html! {
        table #notifications {
            tr { th { "Time (UTC)" } th { "State" } th { "Channel" } th { "To" } th { "Subject" } th { "Delivery" } }
            @for n in notifications {
                tr {
                    td.mono { (layout::time(n.at_nanos)) }
                    td { (n.state) }
                    td { (n.channel_type) ": " (n.channel_name) }
                    td.mono { (n.target) }
                    td {
                        details {
                            summary { (n.subject) }
                            pre { (n.body) }
                        }
                    }
                    td { (delivery(&n.delivery)) }
                }
            }
        }
    }
}

fn delivery(delivery: &Delivery) -> Markup {
    match delivery {
        Delivery::Pending => html! { span.muted { "sending" } },
        Delivery::InOutbox => html! { span.ok { "in the outbox" } },
        Delivery::Delivered { http_status } if (200..300).contains(http_status) => {
            html! { span.ok { "HTTP " (http_status) } }
        }
        Delivery::Delivered { http_status } => html! { span.err { "HTTP " (http_status) } },
        Delivery::Failed { reason } => html! { span.err { "failed: " (reason) } },
    }
}
