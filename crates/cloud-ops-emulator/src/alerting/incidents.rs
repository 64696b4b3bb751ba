//! Incidents and the notifications sent for them, kept for the console and
//! for tests (`GET /api/incidents`).
//!
//! An incident is opened when a policy's conditions fire for a time series
//! and closed when they stop, as Cloud Monitoring does; each opening and
//! closing notifies the policy's channels. Memory is bounded: the oldest
//! closed incidents and the oldest notifications go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::policy::Documentation;

const MAX_INCIDENTS: usize = 1000;
const MAX_NOTIFICATIONS: usize = 2000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incident {
    /// Cloud Monitoring's shape: `0.` and 12 lowercase letters or digits.
    pub id: String,
    pub policy_id: String,
    pub policy_address: String,
    pub policy_name: String,
    pub condition_name: String,
    pub severity: String,
    pub metric_type: String,
    pub metric_labels: std::collections::BTreeMap<String, String>,
    pub resource_type: String,
    pub resource_labels: std::collections::BTreeMap<String, String>,
    /// The value that fired it (none for an absence).
    pub observed_value: Option<f64>,
    pub threshold_value: Option<f64>,
    pub summary: String,
    pub documentation: DocumentationView,
    pub started_nanos: i64,
    pub ended_nanos: Option<i64>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.ended_nanos.is_none()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DocumentationView {
    pub subject: String,
    pub content: String,
    pub mime_type: String,
}

impl From<&Documentation> for DocumentationView {
    fn from(doc: &Documentation) -> Self {
        Self {
            subject: doc.subject.clone(),
            content: doc.content.clone(),
            mime_type: doc.mime_type.clone(),
        }
    }
}

/// How a notification went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Delivery {
    Pending,
    /// Written to the emulator's outbox (email).
    InOutbox,
    /// The webhook answered this HTTP status.
    Delivered {
        http_status: u16,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notification {
    pub seq: u64,
    pub incident_id: String,
    pub policy_name: String,
    /// `open` or `closed`, as in Cloud Monitoring's payload.
    pub state: &'static str,
    pub channel_address: String,
    pub channel_name: String,
    /// `email` or `webhook`.
    pub channel_type: &'static str,
    /// The email address, or the webhook URL without its query string (the
    /// token of `webhook_tokenauth` lives there and is a secret).
    pub target: String,
    pub subject: String,
    /// The email body, or the JSON POSTed.
    pub body: String,
    pub at_nanos: i64,
    pub delivery: Delivery,
}

/// Cheap clonable handle to the incidents and notifications.
#[derive(Debug, Clone, Default)]
pub struct IncidentStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    incidents: VecDeque<Incident>,
    notifications: VecDeque<Notification>,
    next_seq: u64,
}

impl IncidentStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a newly opened incident.
    pub fn open(&self, incident: Incident) {
        let mut inner = self.lock();
        inner.incidents.push_back(incident);
        while inner.incidents.len() > MAX_INCIDENTS {
            match inner.incidents.iter().position(|i| !i.is_open()) {
                Some(oldest_closed) => {
                    inner.incidents.remove(oldest_closed);
                }
                None => break,
            }
        }
    }

    /// Closes incident `id`; returns it as closed.
    pub fn close(&self, id: &str, ended_nanos: i64, summary: String) -> Option<Incident> {
        let mut inner = self.lock();
        let incident = inner.incidents.iter_mut().find(|i| i.id == id)?;
        incident.ended_nanos = Some(ended_nanos);
        incident.summary = summary;
        Some(incident.clone())
    }

    /// Updates the observed value of an open incident.
    pub fn observe(&self, id: &str, value: Option<f64>) {
        if let Some(incident) = self.lock().incidents.iter_mut().find(|i| i.id == id) {
            incident.observed_value = value;
        }
    }

    /// Every incident kept, newest first.
    pub fn incidents(&self) -> Vec<Incident> {
        self.lock().incidents.iter().rev().cloned().collect()
    }

    pub fn incident(&self, id: &str) -> Option<Incident> {
        self.lock().incidents.iter().find(|i| i.id == id).cloned()
    }

    /// Records a notification; returns its sequence number for updates.
    pub fn record(&self, mut notification: Notification) -> u64 {
        let mut inner = self.lock();
        inner.next_seq += 1;
        notification.seq = inner.next_seq;
        inner.notifications.push_back(notification);
        while inner.notifications.len() > MAX_NOTIFICATIONS {
            inner.notifications.pop_front();
        }
        inner.next_seq
    }

    pub fn set_delivery(&self, seq: u64, delivery: Delivery) {
        if let Some(n) = self.lock().notifications.iter_mut().find(|n| n.seq == seq) {
            n.delivery = delivery;
        }
    }

    /// Every notification kept, newest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.lock().notifications.iter().rev().cloned().collect()
    }
}

/// A new incident id in Cloud Monitoring's shape.
pub fn new_incident_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("0.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: &str, open: bool) -> Incident {
        Incident {
            id: id.to_owned(),
            policy_id: "p".into(),
            policy_address: "a".into(),
            policy_name: "p".into(),
            condition_name: "c".into(),
            severity: String::new(),
            metric_type: "m".into(),
            metric_labels: Default::default(),
            resource_type: "r".into(),
            resource_labels: Default::default(),
            observed_value: None,
            threshold_value: None,
            summary: String::new(),
            documentation: DocumentationView {
                subject: String::new(),
                content: String::new(),
                mime_type: String::new(),
            },
            started_nanos: 0,
            ended_nanos: (!open).then_some(1),
        }
    }

    #[test]
    fn the_oldest_closed_incidents_go_first_and_open_ones_stay() {
        let store = IncidentStore::default();
        store.open(incident("open", true));
        for i in 0..MAX_INCIDENTS + 5 {
            store.open(incident(&format!("closed-{i}"), false));
        }
        let all = store.incidents();
        assert_eq!(all.len(), MAX_INCIDENTS);
        assert!(all.iter().any(|i| i.id == "open"));
        assert!(!all.iter().any(|i| i.id == "closed-0"));
    }

    #[test]
    fn ids_look_like_cloud_monitorings() {
        let id = new_incident_id();
        assert_eq!(id.len(), 14);
        assert!(id.starts_with("0."));
        assert_ne!(id, new_incident_id());
    }
}
