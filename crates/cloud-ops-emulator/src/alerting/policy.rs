//! Alert policies and notification channels, read from the evaluated
//! Terraform (`google_monitoring_alert_policy`,
//! `google_monitoring_notification_channel`) into a checked model.
//!
//! Everything the evaluator cannot honour is an error naming the policy and
//! why: an MQL or PromQL condition, an SLO selector it does not know, an
//! unknown aligner, a chain of aggregations. A policy that loaded is one the
//! emulator evaluates exactly as written; nothing is silently skipped.
//!
//! Why one file: the typed model of an alert policy and the reader that
//! builds it from Terraform change together, one condition kind at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};
use serde_json::Value;

use super::slo::SloSelector;
use crate::json::{blocks, text};
use crate::monitoring::aggregation::{self, Spec};
use crate::monitoring::filter::{self, Filter};
use crate::terraform::ResourceInstance;

/// Why a policy or channel cannot be evaluated locally.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{address}: {reason}")]
pub struct PolicyError {
    pub address: String,
    pub reason: String,
}

/// How conditions combine into an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combiner {
    And,
    Or,
    AndWithMatchingResource,
}

/// `COMPARISON_GT` or `COMPARISON_LT` (F2; the others are accepted by the
/// API but rarely meaningful, and supported too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }

    /// The words of Cloud Monitoring's incident summaries.
    pub fn words(self) -> &'static str {
        match self {
            Self::Gt => "above",
            Self::Ge => "at or above",
            Self::Lt => "below",
            Self::Le => "at or below",
            Self::Eq => "equal to",
            Self::Ne => "not equal to",
        }
    }
}

/// `trigger { count }` or `trigger { percent }`; default count 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    Count(usize),
    Percent(f64),
}

impl Trigger {
    /// Whether `violating` of `total` series are enough to fire.
    pub fn fires(self, violating: usize, total: usize) -> bool {
        match self {
            Self::Count(count) => violating >= count.max(1),
            Self::Percent(percent) => {
                violating > 0 && total > 0 && violating as f64 * 100.0 / total as f64 >= percent
            }
        }
    }
}

/// A Monitoring filter with the one aggregation applied to it.
#[derive(Debug, Clone)]
pub struct Query {
    pub filter_text: String,
    pub filter: Filter,
    /// `None` reads raw points (no `aggregations` block).
    pub aggregation: Option<Spec>,
}

impl Query {
    /// The metric type the filter pins (F2 requires one).
    pub fn metric_type(&self) -> &str {
        self.filter.metric_types().first().copied().unwrap_or("")
    }

    /// The alignment period in monitoring time, or the raw-read default.
    pub fn period_nanos(&self) -> i64 {
        self.aggregation
            .as_ref()
            .map_or(60 * 1_000_000_000, |spec| spec.period)
    }
}

#[derive(Debug, Clone)]
pub struct Threshold {
    pub query: Query,
    pub denominator: Option<Query>,
    pub comparison: Comparison,
    pub threshold_value: f64,
    pub duration: Duration,
    pub trigger: Trigger,
}

#[derive(Debug, Clone)]
pub struct Absent {
    pub query: Query,
    pub duration: Duration,
    pub trigger: Trigger,
}

/// A `condition_threshold` whose filter is an SLO time-series selector:
/// only the filter, comparison, threshold, duration and trigger apply.
#[derive(Debug, Clone)]
pub struct SloThreshold {
    pub filter_text: String,
    pub selector: SloSelector,
    pub comparison: Comparison,
    pub threshold_value: f64,
    pub duration: Duration,
    pub trigger: Trigger,
}

#[derive(Debug, Clone)]
pub enum ConditionKind {
    Threshold(Threshold),
    Absent(Absent),
    Slo(SloThreshold),
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub display_name: String,
    pub kind: ConditionKind,
}

impl Condition {
    /// How often the condition's value can change, in monitoring time: its
    /// alignment period, or an SLO selector's lookback (a minute without one).
    pub fn period_nanos(&self) -> i64 {
        match &self.kind {
            ConditionKind::Threshold(threshold) => threshold.query.period_nanos(),
            ConditionKind::Absent(absent) => absent.query.period_nanos(),
            ConditionKind::Slo(slo) => slo
                .selector
                .lookback
                .map_or(60 * 1_000_000_000, |lookback| lookback.as_nanos() as i64),
        }
    }

    /// The comparison and threshold, for a condition that has them.
    pub fn threshold(&self) -> Option<(Comparison, f64)> {
        match &self.kind {
            ConditionKind::Threshold(t) => Some((t.comparison, t.threshold_value)),
            ConditionKind::Slo(t) => Some((t.comparison, t.threshold_value)),
            ConditionKind::Absent(_) => None,
        }
    }
}

/// `documentation { subject content mime_type }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Documentation {
    pub subject: String,
    pub content: String,
    pub mime_type: String,
}

#[derive(Debug, Clone)]
pub struct AlertPolicy {
    /// The Terraform address, e.g. `google_monitoring_alert_policy.error_ratio`.
    pub address: String,
    /// The resource name, used as the policy's id in the emulator.
    pub id: String,
    pub display_name: String,
    pub combiner: Combiner,
    pub severity: String,
    pub enabled: bool,
    pub conditions: Vec<Condition>,
    /// Channel names as Terraform resolved them (`google_monitoring_notification_channel.X.name`).
    pub notification_channels: Vec<String>,
    pub documentation: Documentation,
    pub user_labels: BTreeMap<String, String>,
}

/// A notification channel: how the emulator delivers an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// Written to the emulator's outbox, shown in the console.
    Email { address: String },
    /// POSTed, as Cloud Monitoring does, with the incident JSON.
    Webhook { url: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationChannel {
    pub address: String,
    /// What policies refer to: the channel's `name` attribute.
    pub name: String,
    pub display_name: String,
    pub kind: ChannelKind,
}

/// Reads a `google_monitoring_notification_channel`.
///
/// # Errors
/// A channel type the emulator cannot deliver locally, or missing labels.
pub fn channel_from_terraform(
    resource: &ResourceInstance,
) -> Result<NotificationChannel, PolicyError> {
    let json = resource.to_json();
    let fail = |reason: String| PolicyError {
        address: resource.address(),
        reason,
    };
    let label = |key: &str| {
        json["labels"][key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| fail(format!("labels.{key} is required")))
    };
    let kind = match json["type"].as_str().unwrap_or_default() {
        "email" => ChannelKind::Email {
            address: label("email_address")?,
        },
        "webhook_tokenauth" | "webhook_basicauth" => ChannelKind::Webhook { url: label("url")? },
        other => {
            return Err(fail(format!(
            "channel type {other:?} cannot be delivered locally (email and webhook_tokenauth can)"
        )))
        }
    };
    Ok(NotificationChannel {
        address: resource.address(),
        name: json["name"]
            .as_str()
            .map_or_else(|| resource.name.clone(), str::to_owned),
        display_name: text(&json, "display_name"),
        kind,
    })
}

/// Reads a `google_monitoring_alert_policy`.
///
/// # Errors
/// Anything the emulator would otherwise have to ignore; see the module docs.
pub fn policy_from_terraform(resource: &ResourceInstance) -> Result<AlertPolicy, PolicyError> {
    let json = resource.to_json();
    let address = resource.address();
    let fail = |reason: String| PolicyError {
        address: address.clone(),
        reason,
    };
    let conditions = blocks(&json, "conditions")
        .iter()
        .enumerate()
        .map(|(index, condition)| {
            parse_condition(condition)
                .map_err(|reason| fail(format!("conditions[{index}]: {reason}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(1..=6).contains(&conditions.len()) {
        return Err(fail(format!(
            "a policy has 1 to 6 conditions, this one has {}",
            conditions.len()
        )));
    }
    let combiner = match json["combiner"].as_str().unwrap_or("OR") {
        "OR" => Combiner::Or,
        "AND" => Combiner::And,
        "AND_WITH_MATCHING_RESOURCE" => Combiner::AndWithMatchingResource,
        other => return Err(fail(format!("unknown combiner {other:?}"))),
    };
    let documentation = blocks(&json, "documentation")
        .first()
        .map(|doc| Documentation {
            subject: text(doc, "subject"),
            content: text(doc, "content"),
            mime_type: doc["mime_type"]
                .as_str()
                .unwrap_or("text/markdown")
                .to_owned(),
        })
        .unwrap_or_default();
    Ok(AlertPolicy {
        id: match resource.index {
            Some(index) => format!("{}-{index}", resource.name),
            None => resource.name.clone(),
        },
        address: address.clone(),
        display_name: text(&json, "display_name"),
        combiner,
        severity: json["severity"].as_str().unwrap_or("").to_owned(),
        enabled: json["enabled"].as_bool().unwrap_or(true),
        conditions,
        notification_channels: json["notification_channels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect(),
        documentation,
        user_labels: json["user_labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
    })
}

/// Condition kinds Cloud Monitoring has that the emulator does not evaluate.
const UNSUPPORTED_CONDITIONS: &[(&str, &str)] = &[
    ("condition_monitoring_query_language", "an MQL condition"),
    ("condition_prometheus_query_language", "a PromQL condition"),
    ("condition_matched_log", "a log-match condition"),
    ("condition_sql", "a SQL condition"),
];

fn parse_condition(condition: &Value) -> Result<Condition, String> {
    if let Some((_, what)) = UNSUPPORTED_CONDITIONS
        .iter()
        .find(|(key, _)| !blocks(condition, key).is_empty())
    {
        return Err(format!(
            "{what} is not evaluated by the emulator (condition_threshold and condition_absent are)"
        ));
    }
    let display_name = text(condition, "display_name");
    let threshold = blocks(condition, "condition_threshold");
    let absent = blocks(condition, "condition_absent");
    let kind = match (threshold.first(), absent.first()) {
        (Some(threshold), None) if is_slo_selector(threshold) => {
            ConditionKind::Slo(parse_slo_threshold(threshold)?)
        }
        (Some(threshold), None) => ConditionKind::Threshold(parse_threshold(threshold)?),
        (None, Some(absent)) => ConditionKind::Absent(parse_absent(absent)?),
        _ => {
            return Err(
                "expected exactly one of condition_threshold or condition_absent".to_owned(),
            )
        }
    };
    Ok(Condition { display_name, kind })
}

fn is_slo_selector(block: &Value) -> bool {
    block["filter"]
        .as_str()
        .is_some_and(|filter| filter.trim_start().starts_with("select_slo_"))
}

/// A threshold on an SLO selector (Google: "the only field used in a
/// condition for an SLO is the filter field").
fn parse_slo_threshold(block: &Value) -> Result<SloThreshold, String> {
    let filter_text = block["filter"].as_str().unwrap_or_default().to_owned();
    let selector = SloSelector::parse(&filter_text).map_err(|error| format!("filter: {error}"))?;
    for key in [
        "aggregations",
        "denominator_filter",
        "denominator_aggregations",
    ] {
        let used = match &block[key] {
            Value::Null => false,
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            _ => true,
        };
        if used {
            return Err(format!(
                "{key} does not apply to an SLO selector filter; Cloud Monitoring uses only the filter"
            ));
        }
    }
    let (comparison, threshold_value) = parse_comparison(block)?;
    Ok(SloThreshold {
        filter_text,
        selector,
        comparison,
        threshold_value,
        duration: parse_duration(block, 0)?,
        trigger: parse_trigger(block)?,
    })
}

fn parse_threshold(block: &Value) -> Result<Threshold, String> {
    let query = parse_query(block, "filter", "aggregations")?;
    let denominator = match block["denominator_filter"].as_str() {
        Some(text) if !text.is_empty() => Some(parse_query(
            block,
            "denominator_filter",
            "denominator_aggregations",
        )?),
        _ => None,
    };
    if let Some(denominator) = &denominator {
        if denominator.period_nanos() != query.period_nanos() {
            return Err(
                "denominator_aggregations must use the same alignment_period as aggregations"
                    .to_owned(),
            );
        }
    }
    let (comparison, threshold_value) = parse_comparison(block)?;
    Ok(Threshold {
        query,
        denominator,
        comparison,
        threshold_value,
        duration: parse_duration(block, 0)?,
        trigger: parse_trigger(block)?,
    })
}

fn parse_comparison(block: &Value) -> Result<(Comparison, f64), String> {
    let comparison = match block["comparison"].as_str().unwrap_or_default() {
        "COMPARISON_GT" => Comparison::Gt,
        "COMPARISON_GE" => Comparison::Ge,
        "COMPARISON_LT" => Comparison::Lt,
        "COMPARISON_LE" => Comparison::Le,
        "COMPARISON_EQ" => Comparison::Eq,
        "COMPARISON_NE" => Comparison::Ne,
        other => return Err(format!("comparison {other:?} is not a ComparisonType")),
    };
    let threshold_value = match &block["threshold_value"] {
        Value::Null => 0.0,
        value => value
            .as_f64()
            .ok_or_else(|| format!("threshold_value {value} is not a number"))?,
    };
    Ok((comparison, threshold_value))
}

fn parse_absent(block: &Value) -> Result<Absent, String> {
    let duration = parse_duration(block, 120)?;
    Ok(Absent {
        query: parse_query(block, "filter", "aggregations")?,
        duration,
        trigger: parse_trigger(block)?,
    })
}

/// `duration`: a multiple of 60 s, at least `minimum` seconds (F2, F3).
fn parse_duration(block: &Value, minimum: u64) -> Result<Duration, String> {
    let text = block["duration"].as_str().unwrap_or("0s");
    let seconds = seconds(text).ok_or_else(|| format!("duration {text:?} is not like \"300s\""))?;
    if seconds % 60 != 0 || seconds < minimum {
        return Err(format!(
            "duration {text:?} must be a multiple of 60s{}",
            if minimum > 0 {
                format!(" and at least {minimum}s")
            } else {
                String::new()
            }
        ));
    }
    Ok(Duration::from_secs(seconds))
}

fn parse_trigger(block: &Value) -> Result<Trigger, String> {
    let Some(trigger) = blocks(block, "trigger").first().copied() else {
        return Ok(Trigger::Count(1));
    };
    match (trigger["count"].as_u64(), trigger["percent"].as_f64()) {
        (Some(count), None) => Ok(Trigger::Count(count as usize)),
        (None, Some(percent)) if (0.0..=100.0).contains(&percent) => Ok(Trigger::Percent(percent)),
        (None, None) => Ok(Trigger::Count(1)),
        _ => Err("trigger takes either count or a percent from 0 to 100".to_owned()),
    }
}

fn parse_query(block: &Value, filter_key: &str, aggregations_key: &str) -> Result<Query, String> {
    let filter_text = block[filter_key]
        .as_str()
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| format!("{filter_key} is required"))?
        .to_owned();
    if filter_text.trim_start().starts_with("select_slo_") {
        return Err(format!(
            "{filter_key} {filter_text:?} selects an SLO time series, which only a condition_threshold's filter can"
        ));
    }
    if filter_text.len() > 2048 {
        return Err(format!("{filter_key} is longer than 2048 characters"));
    }
    let filter = filter::parse(&filter_text).map_err(|error| format!("{filter_key}: {error}"))?;
    if filter.metric_types().len() != 1 {
        return Err(format!("{filter_key} must name exactly one metric.type"));
    }
    let aggregations = blocks(block, aggregations_key);
    if aggregations.len() > 1 {
        return Err(format!(
            "{aggregations_key}: the emulator applies one aggregation, this condition chains {}",
            aggregations.len()
        ));
    }
    let aggregation = aggregations
        .first()
        .map(|agg| parse_aggregation(agg).map_err(|reason| format!("{aggregations_key}: {reason}")))
        .transpose()?
        .flatten();
    Ok(Query {
        filter_text,
        filter,
        aggregation,
    })
}

/// One `aggregations` block, checked with the same rules as `ListTimeSeries`
/// (M16), except that alert policies allow periods up to 25 h.
fn parse_aggregation(block: &Value) -> Result<Option<Spec>, String> {
    let aligner_name = block["per_series_aligner"].as_str().unwrap_or("ALIGN_NONE");
    let reducer_name = block["cross_series_reducer"]
        .as_str()
        .unwrap_or("REDUCE_NONE");
    let aligner = Aligner::from_str_name(aligner_name)
        .ok_or_else(|| format!("unknown per_series_aligner {aligner_name:?}"))?;
    let reducer = Reducer::from_str_name(reducer_name)
        .ok_or_else(|| format!("unknown cross_series_reducer {reducer_name:?}"))?;
    let period = match block["alignment_period"].as_str() {
        Some(text) => Some(
            seconds(text)
                .ok_or_else(|| format!("alignment_period {text:?} is not like \"60s\""))?,
        ),
        None => None,
    };
    if let Some(period) = period {
        if !(60..=25 * 3600).contains(&period) {
            return Err(format!(
                "alignment_period \"{period}s\" must be from 60s to 25h in an alert policy"
            ));
        }
    }
    let proto = gcloud_sdk::google::monitoring::v3::Aggregation {
        alignment_period: period.map(|seconds| gcloud_sdk::prost_types::Duration {
            seconds: seconds as i64,
            nanos: 0,
        }),
        per_series_aligner: aligner as i32,
        cross_series_reducer: reducer as i32,
        group_by_fields: block["group_by_fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|field| field.as_str().map(str::to_owned))
            .collect(),
    };
    let spec = aggregation::parse_spec(Some(&proto)).map_err(|error| error.to_string())?;
    if let Some(spec) = &spec {
        check_implemented(spec)?;
    }
    Ok(spec)
}

/// Aligners and reducers the aggregation module computes; anything else is
/// refused at load rather than failing at every evaluation.
fn check_implemented(spec: &Spec) -> Result<(), String> {
    use Aligner::*;
    use Reducer::*;
    let aligner_ok = matches!(
        spec.aligner,
        AlignDelta
            | AlignRate
            | AlignMean
            | AlignSum
            | AlignMin
            | AlignMax
            | AlignCount
            | AlignNextOlder
            | AlignPercentile99
            | AlignPercentile95
            | AlignPercentile50
            | AlignPercentile05
    );
    let reducer_ok = matches!(
        spec.reducer,
        ReduceNone
            | ReduceSum
            | ReduceMean
            | ReduceMin
            | ReduceMax
            | ReduceCount
            | ReduceCountTrue
            | ReduceCountFalse
            | ReducePercentile99
            | ReducePercentile95
            | ReducePercentile50
            | ReducePercentile05
    );
    if !aligner_ok {
        return Err(format!(
            "per_series_aligner {} is not implemented by the emulator",
            spec.aligner.as_str_name()
        ));
    }
    if !reducer_ok {
        return Err(format!(
            "cross_series_reducer {} is not implemented by the emulator",
            spec.reducer.as_str_name()
        ));
    }
    Ok(())
}

/// `"300s"` → 300.
fn seconds(text: &str) -> Option<u64> {
    text.trim().strip_suffix('s')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcl::Map;

    fn resource(kind: &str, json: Value) -> ResourceInstance {
        let value: Map<String, hcl::Value> = serde_json::from_value(json).unwrap();
        ResourceInstance {
            resource_type: kind.to_owned(),
            name: "p".to_owned(),
            index: None,
            value,
        }
    }

    fn policy_with(condition: Value) -> Result<AlertPolicy, PolicyError> {
        policy_from_terraform(&resource(
            "google_monitoring_alert_policy",
            serde_json::json!({
                "display_name": "p",
                "combiner": "OR",
                "conditions": [condition],
            }),
        ))
    }

    fn threshold(extra: Value) -> Value {
        let mut block = serde_json::json!({
            "filter": "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\"",
            "comparison": "COMPARISON_GT",
            "threshold_value": 1,
            "duration": "60s",
            "aggregations": [{"alignment_period": "60s", "per_series_aligner": "ALIGN_RATE"}],
        });
        for (key, value) in extra.as_object().unwrap() {
            block[key] = value.clone();
        }
        serde_json::json!({"display_name": "c", "condition_threshold": [block]})
    }

    #[test]
    fn a_threshold_condition_loads_with_its_aggregation() {
        let policy = policy_with(threshold(serde_json::json!({}))).unwrap();
        let ConditionKind::Threshold(threshold) = &policy.conditions[0].kind else {
            panic!("threshold expected");
        };
        assert_eq!(
            threshold.query.metric_type(),
            "run.googleapis.com/request_count"
        );
        assert_eq!(threshold.duration, Duration::from_secs(60));
        assert_eq!(threshold.trigger, Trigger::Count(1));
        assert_eq!(
            threshold.query.aggregation.as_ref().unwrap().aligner,
            Aligner::AlignRate
        );
    }

    #[test]
    fn what_the_emulator_cannot_evaluate_is_an_error_naming_it() {
        let cases = [
            (
                serde_json::json!({"display_name": "c", "condition_monitoring_query_language": [{"query": "fetch x", "duration": "60s"}]}),
                "an MQL condition",
            ),
            (
                serde_json::json!({"display_name": "c", "condition_prometheus_query_language": [{"query": "up == 0"}]}),
                "a PromQL condition",
            ),
            (
                threshold(
                    serde_json::json!({"aggregations": [{"alignment_period": "60s", "per_series_aligner": "ALIGN_SOMETIMES"}]}),
                ),
                "unknown per_series_aligner \"ALIGN_SOMETIMES\"",
            ),
            (
                threshold(serde_json::json!({"filter": "select_slo_burn_rate(\"x\", \"3600s\")"})),
                "aggregations does not apply to an SLO selector filter",
            ),
            (
                threshold(
                    serde_json::json!({"filter": "select_slo_counts(\"x\")", "aggregations": []}),
                ),
                "select_slo_counts is not an SLO selector the emulator evaluates",
            ),
            (
                threshold(serde_json::json!({"duration": "90s"})),
                "multiple of 60s",
            ),
            (
                threshold(serde_json::json!({"filter": "metric.typo=\"x\""})),
                "unknown selector",
            ),
            (
                threshold(
                    serde_json::json!({"aggregations": [{"alignment_period": "60s", "per_series_aligner": "ALIGN_FRACTION_TRUE"}]}),
                ),
                "not implemented by the emulator",
            ),
        ];
        for (condition, expected) in cases {
            let error = policy_with(condition).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{error} should mention {expected}"
            );
            assert!(error
                .to_string()
                .starts_with("google_monitoring_alert_policy.p: conditions[0]"));
        }
    }

    #[test]
    fn an_absent_condition_needs_two_minutes() {
        let condition = serde_json::json!({"display_name": "c", "condition_absent": [{
            "filter": "metric.type=\"x.googleapis.com/y\"",
            "duration": "60s",
        }]});
        assert!(policy_with(condition)
            .unwrap_err()
            .to_string()
            .contains("at least 120s"));
    }

    #[test]
    fn triggers_count_series_or_a_percentage() {
        assert!(Trigger::Count(1).fires(1, 5));
        assert!(!Trigger::Count(2).fires(1, 5));
        assert!(Trigger::Percent(50.0).fires(2, 4));
        assert!(!Trigger::Percent(50.0).fires(1, 4));
        assert!(!Trigger::Percent(0.0).fires(0, 4));
    }

    #[test]
    fn channels_of_unknown_types_are_refused() {
        let email = channel_from_terraform(&resource(
            "google_monitoring_notification_channel",
            serde_json::json!({"name": "email", "type": "email", "labels": {"email_address": "a@b.c"}}),
        ))
        .unwrap();
        assert_eq!(
            email.kind,
            ChannelKind::Email {
                address: "a@b.c".into()
            }
        );
        let sms = channel_from_terraform(&resource(
            "google_monitoring_notification_channel",
            serde_json::json!({"name": "s", "type": "sms", "labels": {"number": "1"}}),
        ))
        .unwrap_err();
        assert!(sms.reason.contains("cannot be delivered locally"));
    }
}
