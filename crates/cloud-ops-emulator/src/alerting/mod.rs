//! Alerts that can be tested before they are deployed: the emulator reads
//! the deployment's Terraform and runs its monitoring against the data the
//! service really emitted.
//!
//! From `terraform/*.tf` (evaluated by [`crate::terraform`]) it
//! loads the log-based metrics (computed from the log entries it received,
//! [`crate::logging::metrics`], together with the Cloud Run request
//! metrics Cloud Run derives from request logs,
//! [`crate::logging::metrics::cloud_run`]), the uptime checks (probing the local
//! service, [`crate::monitoring::uptime`]), the notification channels and the
//! alert policies ([`policy`]). A loop then, at every tick, turns new log
//! entries into metric points and evaluates every condition ([`evaluation`]),
//! opening and closing [`incidents`] and notifying channels
//! ([`notifications`]).
//!
//! The SLOs (`google_monitoring_slo`, [`slo`]) are read too: alert
//! conditions select their burn rate, SLI or error budget with
//! `select_slo_*` filters, and the console's SLO page shows them.
//!
//! What cannot be evaluated (an MQL condition, a basic SLI, an
//! unknown aligner, a channel type with no local delivery) is listed in the
//! [`LoadReport`], printed at start-up and shown in the console; never
//! silently dropped. The [`TimeScale`] divides every monitoring duration
//! and is printed too.
//!
//! Why one file: loading the monitoring, the tick loop and the load report
//! are the engine's one lifecycle; the policy model, evaluation, incidents,
//! notifications and SLOs are its submodules.

pub mod evaluation;
pub mod incidents;
pub mod notifications;
pub mod policy;
pub mod slo;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::evaluation::{ConditionState, Firing, SeriesIdentity, Verdict};
use self::incidents::{new_incident_id, DocumentationView, Incident, IncidentStore};
use self::notifications::{resource_display, Notifier};
use self::policy::{AlertPolicy, Combiner, ConditionKind, NotificationChannel};
use self::slo::Slo;
use super::EmulatorStore;
use crate::logging::metrics::{LogMetric, LogMetricsCollector};
use crate::monitoring::uptime::{self, UptimeCheck};
use crate::terraform::{self, TerraformError, VariableInputs};
use crate::time::scale::TimeScale;
use crate::time::timestamp::now_nanos;

/// Cloud Logging writes log-based metric points about once a minute.
const LOG_METRIC_PERIOD: Duration = Duration::from_secs(60);

/// Where the monitoring comes from and how fast it runs.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// The directory holding the deployment's `.tf` files.
    pub terraform_dir: PathBuf,
    pub inputs: VariableInputs,
    pub time_scale: TimeScale,
    /// The project the service's metrics are written to in the emulator
    /// (`local` unless `GOOGLE_CLOUD_PROJECT` is set); policies are evaluated
    /// there and log-based, Cloud Run and uptime series are written there.
    pub project: String,
    /// Where the uptime checks probe: the local stand-in for the Cloud Run
    /// URL Terraform would give them. Can be set later, see
    /// [`AlertingHandle::set_service_url`].
    pub service_url: Option<reqwest::Url>,
}

impl AlertingConfig {
    /// Monitoring from `terraform_dir`, evaluated in `project` at `time_scale`;
    /// the uptime checks wait for a URL.
    pub fn new(
        terraform_dir: PathBuf,
        inputs: VariableInputs,
        time_scale: TimeScale,
        project: String,
    ) -> Self {
        Self {
            terraform_dir,
            inputs,
            time_scale,
            project,
            service_url: None,
        }
    }

    /// The same, with the uptime checks probing `service_url`.
    #[must_use]
    pub fn with_service_url(self, service_url: Option<reqwest::Url>) -> Self {
        Self {
            service_url,
            ..self
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("cannot load the monitoring from {dir}: {source}")]
    Terraform {
        dir: PathBuf,
        #[source]
        source: TerraformError,
    },
}

/// What was loaded, and what could not be: printed at start-up, shown in the console.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LoadReport {
    pub terraform_dir: String,
    /// Shown as "60x faster than real time", never implicit.
    pub time_scale: TimeScale,
    pub policies: Vec<PolicyView>,
    pub log_metrics: Vec<String>,
    pub uptime_checks: Vec<String>,
    pub channels: Vec<String>,
    /// The SLOs, as `display name (address)`.
    pub slos: Vec<String>,
    /// Everything not evaluated, with the resource address and why.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub address: String,
    pub display_name: String,
    pub severity: String,
    pub conditions: Vec<String>,
    pub channels: Vec<String>,
}

impl LoadReport {
    /// The start-up lines; `uptime_waits` adds that the uptime checks have
    /// no local URL to probe yet.
    pub fn summary_lines(&self, uptime_waits: bool) -> Vec<String> {
        let mut lines = vec![
            format!(
                "monitoring from {}: {} alert policies, {} log-based metrics, {} uptime checks, {} notification channels, {} SLOs; time scale: {}",
                self.terraform_dir,
                self.policies.len(),
                self.log_metrics.len(),
                self.uptime_checks.len(),
                self.channels.len(),
                self.slos.len(),
                self.time_scale,
            ),
        ];
        if uptime_waits && !self.uptime_checks.is_empty() {
            lines.push(
                "uptime checks wait for the local service's URL (--service-url) before probing"
                    .to_owned(),
            );
        }
        lines.extend(
            self.problems
                .iter()
                .map(|problem| format!("not evaluated: {problem}")),
        );
        lines
    }
}

/// Everything read from Terraform, ready to run.
pub struct Monitoring {
    policies: Vec<AlertPolicy>,
    channels: Vec<NotificationChannel>,
    log_metrics: Vec<LogMetric>,
    uptime_checks: Vec<UptimeCheck>,
    slos: Vec<Slo>,
    pub report: LoadReport,
}

/// Reads the Terraform in `config.terraform_dir`.
///
/// # Errors
/// When the files cannot be read or parsed at all; individual resources
/// that cannot be evaluated are listed in [`LoadReport::problems`] instead.
pub fn load(config: &AlertingConfig) -> Result<Monitoring, AlertingError> {
    let module = terraform::load(&config.terraform_dir, &config.inputs).map_err(|source| {
        AlertingError::Terraform {
            dir: config.terraform_dir.clone(),
            source,
        }
    })?;
    let mut problems = module.problems.clone();
    let channels: Vec<NotificationChannel> = loaded(
        &module,
        "google_monitoring_notification_channel",
        &mut problems,
        policy::channel_from_terraform,
    );
    let slos: Vec<Slo> = loaded(
        &module,
        "google_monitoring_slo",
        &mut problems,
        Slo::from_terraform,
    );
    let policies: Vec<AlertPolicy> = loaded(
        &module,
        "google_monitoring_alert_policy",
        &mut problems,
        policy::policy_from_terraform,
    )
    .into_iter()
    .filter(|policy| match unknown_slo(policy, &slos) {
        Some(problem) => {
            problems.push(problem);
            false
        }
        None => true,
    })
    .collect();
    let log_metrics: Vec<LogMetric> = loaded(
        &module,
        "google_logging_metric",
        &mut problems,
        LogMetric::from_terraform,
    );
    let uptime_checks: Vec<UptimeCheck> = loaded(
        &module,
        "google_monitoring_uptime_check_config",
        &mut problems,
        UptimeCheck::from_terraform,
    );
    for policy in &policies {
        for name in &policy.notification_channels {
            if !channels.iter().any(|channel| &channel.name == name) {
                problems.push(format!(
                    "{}: notification channel {name:?} is not one the emulator can deliver to",
                    policy.address
                ));
            }
        }
    }
    let report = LoadReport {
        terraform_dir: config.terraform_dir.display().to_string(),
        time_scale: config.time_scale,
        policies: policies.iter().map(policy_view).collect(),
        log_metrics: log_metrics
            .iter()
            .map(|m| m.metric_type().to_owned())
            .collect(),
        uptime_checks: uptime_checks
            .iter()
            .map(|check| check.display_name.clone())
            .collect(),
        channels: channels
            .iter()
            .map(|c| format!("{} ({})", c.display_name, c.address))
            .collect(),
        slos: slos
            .iter()
            .map(|s| format!("{} ({})", s.display_name, s.address))
            .collect(),
        problems,
    };
    Ok(Monitoring {
        policies,
        channels,
        log_metrics,
        uptime_checks,
        slos,
        report,
    })
}

/// A policy whose SLO selector names no SLO that loaded: the problem to report.
fn unknown_slo(policy: &AlertPolicy, slos: &[Slo]) -> Option<String> {
    policy
        .conditions
        .iter()
        .enumerate()
        .find_map(|(index, condition)| match &condition.kind {
            ConditionKind::Slo(slo_condition)
                if !slos
                    .iter()
                    .any(|slo| slo.is_named(&slo_condition.selector.slo_name)) =>
            {
                Some(format!(
                    "{}: conditions[{index}]: filter {:?} names an SLO that is not loaded (loaded: {})",
                    policy.address,
                    slo_condition.filter_text,
                    slos.iter()
                        .map(|slo| slo.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            _ => None,
        })
}

/// The resources of one type that load; the others' errors go to `problems`.
fn loaded<T, E: std::fmt::Display>(
    module: &terraform::TerraformModule,
    resource_type: &str,
    problems: &mut Vec<String>,
    read: impl Fn(&terraform::ResourceInstance) -> Result<T, E>,
) -> Vec<T> {
    module
        .of_type(resource_type)
        .filter_map(|resource| match read(resource) {
            Ok(value) => Some(value),
            Err(error) => {
                problems.push(error.to_string());
                None
            }
        })
        .collect()
}

fn policy_view(policy: &AlertPolicy) -> PolicyView {
    PolicyView {
        address: policy.address.clone(),
        display_name: policy.display_name.clone(),
        severity: policy.severity.clone(),
        conditions: policy
            .conditions
            .iter()
            .map(|c| c.display_name.clone())
            .collect(),
        channels: policy.notification_channels.clone(),
    }
}

/// The running monitoring, for the console and tests; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertingHandle {
    pub incidents: IncidentStore,
    pub report: Arc<LoadReport>,
    /// The SLOs loaded, for the console's SLO page.
    pub slos: Arc<Vec<Slo>>,
    /// The policies loaded, for the console's SLO page.
    pub policies: Arc<Vec<AlertPolicy>>,
    /// The project policies and SLOs are evaluated in.
    pub project: String,
    /// The latest evaluation error of each condition that has one.
    errors: Arc<Mutex<BTreeMap<String, String>>>,
    service_url: Arc<watch::Sender<Option<reqwest::Url>>>,
    tasks: Arc<Vec<JoinHandle<()>>>,
}

impl AlertingHandle {
    /// Points the uptime checks at the local service (when its port is
    /// known only after the emulator started).
    pub fn set_service_url(&self, url: reqwest::Url) {
        self.service_url.send_replace(Some(url));
    }

    /// The start-up lines, saying whether the uptime checks still wait for a URL.
    pub fn summary_lines(&self) -> Vec<String> {
        self.report
            .summary_lines(self.service_url.borrow().is_none())
    }

    /// Conditions that failed to evaluate at their latest tick, by name.
    pub fn evaluation_errors(&self) -> BTreeMap<String, String> {
        self.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Stops the evaluation loop and the uptime probers.
    pub fn stop(&self) {
        for task in self.tasks.iter() {
            task.abort();
        }
    }
}

/// Starts the collection and evaluation loop and the uptime probers.
pub fn start(
    monitoring: Monitoring,
    config: &AlertingConfig,
    store: EmulatorStore,
    console_url: String,
) -> AlertingHandle {
    let scale = config.time_scale;
    let incidents = IncidentStore::default();
    let errors = Arc::new(Mutex::new(BTreeMap::new()));
    let (service_url, service_url_rx) = watch::channel(config.service_url.clone());
    let mut tasks = Vec::new();
    for check in monitoring.uptime_checks {
        tasks.push(tokio::spawn(uptime::probe_forever(
            check,
            service_url_rx.clone(),
            scale,
            store.metrics.clone(),
            config.project.clone(),
        )));
    }
    let slos = Arc::new(monitoring.slos);
    let policies = Arc::new(monitoring.policies);
    let evaluator = Evaluator {
        policies: policies
            .iter()
            .filter(|p| p.enabled)
            .cloned()
            .map(PolicyRuntime::new)
            .collect(),
        slos: Arc::clone(&slos),
        channels: monitoring.channels,
        collector: LogMetricsCollector::new(monitoring.log_metrics, config.project.clone()),
        notifier: Notifier::new(incidents.clone(), config.project.clone(), console_url),
        incidents: incidents.clone(),
        errors: Arc::clone(&errors),
        store,
        project: config.project.clone(),
        scale,
    };
    tasks.push(tokio::spawn(evaluator.run()));
    AlertingHandle {
        incidents,
        report: Arc::new(monitoring.report),
        slos,
        policies,
        project: config.project.clone(),
        errors,
        service_url: Arc::new(service_url),
        tasks: Arc::new(tasks),
    }
}

struct Evaluator {
    policies: Vec<PolicyRuntime>,
    slos: Arc<Vec<Slo>>,
    channels: Vec<NotificationChannel>,
    collector: LogMetricsCollector,
    notifier: Notifier,
    incidents: IncidentStore,
    errors: Arc<Mutex<BTreeMap<String, String>>>,
    store: EmulatorStore,
    project: String,
    scale: TimeScale,
}

impl Evaluator {
    /// Ticks a few times per (scaled) alignment period, so a condition's
    /// state follows its windows closely without spinning.
    fn tick_interval(&self) -> Duration {
        let shortest = self
            .policies
            .iter()
            .flat_map(|p| &p.policy.conditions)
            .map(policy::Condition::period_nanos)
            .min()
            .unwrap_or(60_000_000_000);
        let tick = Duration::from_nanos((self.scale.scale_nanos(shortest) / 4) as u64);
        tick.clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.tick_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let collect_every = self.scale.scale_nanos(LOG_METRIC_PERIOD.as_nanos() as i64);
        let mut next_collect = 0;
        loop {
            ticks.tick().await;
            let now = now_nanos();
            if now >= next_collect {
                self.collector
                    .collect(&self.store.logs, &self.store.metrics, now);
                next_collect = now + collect_every;
            }
            for index in 0..self.policies.len() {
                self.evaluate_policy(index, now);
            }
        }
    }

    fn evaluate_policy(&mut self, index: usize, now: i64) {
        let runtime = &mut self.policies[index];
        let mut verdicts = Vec::with_capacity(runtime.states.len());
        for (condition, state) in runtime.policy.conditions.iter().zip(&mut runtime.states) {
            let key = format!("{} / {}", runtime.policy.address, condition.display_name);
            let context = evaluation::Context {
                store: &self.store.metrics,
                project: &self.project,
                scale: self.scale,
                slos: &self.slos,
            };
            let result = state.evaluate(condition, &context, now);
            let mut errors = self
                .errors
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match result {
                Ok(verdict) => {
                    errors.remove(&key);
                    verdicts.push(verdict);
                }
                Err(error) => {
                    if errors.get(&key) != Some(&error.to_string()) {
                        tracing::warn!(condition = %key, cause = %error, "cannot evaluate an alert condition");
                    }
                    errors.insert(key, error.to_string());
                }
            }
        }
        // A condition that could not be evaluated leaves incidents as they are.
        if verdicts.len() != runtime.policy.conditions.len() {
            return;
        }
        let wanted = runtime.wanted_incidents(&verdicts);
        self.apply(index, wanted, now);
    }

    /// Opens incidents for newly firing series, updates and closes the rest.
    fn apply(&mut self, index: usize, wanted: HashMap<IncidentKey, Firing>, now: i64) {
        let runtime = &mut self.policies[index];
        let channels: Vec<&NotificationChannel> = self
            .channels
            .iter()
            .filter(|c| runtime.policy.notification_channels.contains(&c.name))
            .collect();
        let closing: Vec<IncidentKey> = runtime
            .open
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in closing {
            let Some(id) = runtime.open.remove(&key) else {
                continue;
            };
            let Some(open) = self.incidents.incident(&id) else {
                continue;
            };
            let summary = closed_summary(&open);
            if let Some(closed) = self.incidents.close(&id, now, summary) {
                self.notifier.notify(&closed, &channels);
            }
        }
        for (key, firing) in wanted {
            if let Some(id) = runtime.open.get(&key) {
                self.incidents.observe(id, firing.value);
                continue;
            }
            let incident = runtime.incident(key.0, &firing, now);
            runtime.open.insert(key, incident.id.clone());
            self.incidents.open(incident.clone());
            self.notifier.notify(&incident, &channels);
        }
    }
}

/// The condition (or [`ALL_CONDITIONS`]) and the series an incident is about.
type IncidentKey = (usize, SeriesIdentity);

/// The "condition" of an incident opened by an AND of all conditions.
const ALL_CONDITIONS: usize = usize::MAX;

struct PolicyRuntime {
    policy: AlertPolicy,
    states: Vec<ConditionState>,
    /// Open incident ids by what they are about.
    open: HashMap<IncidentKey, String>,
}

impl PolicyRuntime {
    fn new(policy: AlertPolicy) -> Self {
        let states = policy
            .conditions
            .iter()
            .map(|_| ConditionState::default())
            .collect();
        Self {
            policy,
            states,
            open: HashMap::new(),
        }
    }

    /// The incidents the verdicts call for, by the policy's combiner: one
    /// per firing series and condition for OR; one for AND when every
    /// condition is met; one per resource firing in every condition for
    /// AND_WITH_MATCHING_RESOURCE.
    fn wanted_incidents(&self, verdicts: &[Verdict]) -> HashMap<IncidentKey, Firing> {
        let mut wanted = HashMap::new();
        match self.policy.combiner {
            Combiner::Or => {
                for (index, verdict) in verdicts.iter().enumerate() {
                    if verdict.met {
                        for firing in &verdict.firing {
                            wanted.insert((index, firing.identity.clone()), firing.clone());
                        }
                    }
                }
            }
            Combiner::And => {
                if verdicts.iter().all(|v| v.met) {
                    if let Some(firing) = verdicts[0].firing.first() {
                        wanted.insert((ALL_CONDITIONS, firing.identity.clone()), firing.clone());
                    }
                }
            }
            Combiner::AndWithMatchingResource => {
                if verdicts.iter().all(|v| v.met) {
                    for firing in &verdicts[0].firing {
                        let same_resource = |other: &Firing| {
                            other.identity.resource_type == firing.identity.resource_type
                                && other.identity.resource_labels == firing.identity.resource_labels
                        };
                        if verdicts[1..]
                            .iter()
                            .all(|v| v.firing.iter().any(same_resource))
                        {
                            wanted
                                .insert((ALL_CONDITIONS, firing.identity.clone()), firing.clone());
                        }
                    }
                }
            }
        }
        wanted
    }

    fn incident(&self, condition_index: usize, firing: &Firing, now: i64) -> Incident {
        let condition = self
            .policy
            .conditions
            .get(condition_index)
            .unwrap_or(&self.policy.conditions[0]);
        let condition_name = if condition_index == ALL_CONDITIONS {
            "all conditions".to_owned()
        } else {
            condition.display_name.clone()
        };
        let threshold = condition.threshold();
        let mut incident = Incident {
            id: new_incident_id(),
            policy_id: self.policy.id.clone(),
            policy_address: self.policy.address.clone(),
            policy_name: self.policy.display_name.clone(),
            condition_name,
            severity: self.policy.severity.clone(),
            metric_type: firing.identity.metric_type.clone(),
            metric_labels: firing.identity.metric_labels.clone(),
            resource_type: firing.identity.resource_type.clone(),
            resource_labels: firing.identity.resource_labels.clone(),
            observed_value: firing.value,
            threshold_value: threshold.map(|(_, value)| value),
            summary: String::new(),
            documentation: DocumentationView::from(&self.policy.documentation),
            started_nanos: now,
            ended_nanos: None,
        };
        incident.summary = match (threshold, firing.value) {
            (Some((comparison, value)), Some(observed)) => format!(
                "{} is {} the threshold of {} with a value of {}.",
                series_text(&incident),
                comparison.words(),
                round(value),
                round(observed)
            ),
            _ => format!("{} is absent.", series_text(&incident)),
        };
        incident
    }
}

/// "METRIC for RESOURCE with metric labels {k=v}", as Monitoring words it.
fn series_text(incident: &Incident) -> String {
    let mut text = format!(
        "{} for {}",
        incident.metric_type,
        resource_display(incident)
    );
    if !incident.metric_labels.is_empty() {
        let labels: Vec<String> = incident
            .metric_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        text.push_str(&format!(" with metric labels {{{}}}", labels.join(", ")));
    }
    text
}

fn closed_summary(incident: &Incident) -> String {
    match incident.observed_value {
        Some(value) => format!(
            "{} returned to normal; last violating value {}.",
            series_text(incident),
            round(value)
        ),
        None => format!("{} is present again.", series_text(incident)),
    }
}

/// Four significant decimals: enough to compare with a threshold, short to read.
fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}
