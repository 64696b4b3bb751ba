//! Delivers an incident's opening and closing to a policy's channels, as
//! Cloud Monitoring would: a `webhook_tokenauth` channel is really POSTed
//! with Cloud Monitoring's incident JSON (schema version 1.2), an email
//! channel is written to the emulator's outbox, shown in the console.
//!
//! Delivery never blocks evaluation: webhooks are sent from their own task
//! with a timeout, and the outcome (status or error) is recorded next to
//! the notification.

use std::time::Duration;

use serde_json::{json, Value};

use super::incidents::{Delivery, Incident, IncidentStore, Notification};
use super::policy::{ChannelKind, NotificationChannel};
use crate::time::timestamp::now_nanos;

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends notifications; cheap to clone.
#[derive(Clone, Debug)]
pub struct Notifier {
    http: reqwest::Client,
    store: IncidentStore,
    project: String,
    /// The console's base URL, for the incident's `url`.
    console_url: String,
}

impl Notifier {
    pub fn new(store: IncidentStore, project: String, console_url: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            store,
            project,
            console_url,
        }
    }

    /// Notifies every channel of an incident's opening or closing.
    pub fn notify(&self, incident: &Incident, channels: &[&NotificationChannel]) {
        let payload = incident_payload(incident, &self.project, &self.console_url);
        for channel in channels {
            let state = if incident.is_open() { "open" } else { "closed" };
            let mut notification = Notification {
                seq: 0,
                incident_id: incident.id.clone(),
                policy_name: incident.policy_name.clone(),
                state,
                channel_address: channel.address.clone(),
                channel_name: channel.display_name.clone(),
                channel_type: "email",
                target: String::new(),
                subject: email_subject(incident),
                body: String::new(),
                at_nanos: now_nanos(),
                delivery: Delivery::Pending,
            };
            match &channel.kind {
                ChannelKind::Email { address } => {
                    notification.target = address.clone();
                    notification.body = email_body(incident, &self.console_url);
                    notification.delivery = Delivery::InOutbox;
                    self.store.record(notification);
                }
                ChannelKind::Webhook { url } => {
                    notification.channel_type = "webhook";
                    notification.target = without_query(url);
                    notification.body = serde_json::to_string_pretty(&payload).unwrap_or_default();
                    let seq = self.store.record(notification);
                    self.post(seq, url.clone(), payload.clone());
                }
            }
        }
    }

    fn post(&self, seq: u64, url: String, payload: Value) {
        let http = self.http.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            let delivery = match http.post(&url).json(&payload).send().await {
                Ok(response) => Delivery::Delivered {
                    http_status: response.status().as_u16(),
                },
                // Without the URL: its query holds the channel's token.
                Err(error) => Delivery::Failed {
                    reason: error.without_url().to_string(),
                },
            };
            store.set_delivery(seq, delivery);
        });
    }
}

/// Cloud Monitoring's webhook payload (version 1.2) for `incident`.
pub fn incident_payload(incident: &Incident, project: &str, console_url: &str) -> Value {
    let seconds = |nanos: i64| nanos / 1_000_000_000;
    json!({
        "version": "1.2",
        "incident": {
            "incident_id": incident.id,
            "scoping_project_id": project,
            "url": format!("{console_url}/incidents#{}", incident.id),
            "started_at": seconds(incident.started_nanos),
            "ended_at": incident.ended_nanos.map(seconds),
            "state": if incident.is_open() { "open" } else { "closed" },
            "summary": incident.summary,
            "observed_value": incident.observed_value.map(|v| v.to_string()),
            "threshold_value": incident.threshold_value.map(|v| v.to_string()),
            "resource": {
                "type": incident.resource_type,
                "labels": incident.resource_labels,
            },
            "resource_name": resource_display(incident),
            "metric": {
                "type": incident.metric_type,
                "labels": incident.metric_labels,
            },
            "policy_name": incident.policy_name,
            "condition_name": incident.condition_name,
            "severity": incident.severity,
            "documentation": {
                "subject": incident.documentation.subject,
                "content": incident.documentation.content,
                "mime_type": incident.documentation.mime_type,
            },
        },
    })
}

fn email_subject(incident: &Incident) -> String {
    let state = if incident.is_open() {
        "Opened"
    } else {
        "Closed"
    };
    let subject = if incident.documentation.subject.is_empty() {
        &incident.policy_name
    } else {
        &incident.documentation.subject
    };
    format!("[ALERT - {state}] {subject}")
}

fn email_body(incident: &Incident, console_url: &str) -> String {
    format!(
        "{summary}\n\nPolicy: {policy}\nCondition: {condition}\nIncident: {console_url}/incidents#{id}\n\n{doc}",
        summary = incident.summary,
        policy = incident.policy_name,
        condition = incident.condition_name,
        id = incident.id,
        doc = incident.documentation.content,
    )
}

/// `service_name=x` style text for a resource, as summaries show it.
pub fn resource_display(incident: &Incident) -> String {
    let labels: Vec<String> = incident
        .resource_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    match (labels.is_empty(), incident.resource_type.is_empty()) {
        (true, _) => incident.resource_type.clone(),
        // An SLO selector's series: no monitored resource, the SLO's labels.
        (false, true) => format!("{{{}}}", labels.join(", ")),
        (false, false) => format!("{} {{{}}}", incident.resource_type, labels.join(", ")),
    }
}

fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_target_is_shown_without_its_token() {
        assert_eq!(
            without_query("https://hooks.example/x?auth_token=secret"),
            "https://hooks.example/x"
        );
    }
}
