//! Evaluates one condition against the stored series, tick after tick.
//!
//! At each tick the condition's query is aligned over the latest alignment
//! window `(now - period, now]` with the aggregation module (the same code
//! `ListTimeSeries` uses), giving one value per output series; a ratio
//! divides numerator by denominator series with the same labels. A series
//! violates while its value meets the comparison, and *fires* once it has
//! violated continuously for the condition's `duration`: the state that
//! carries a violation from tick to tick is [`ConditionState`].
//!
//! A window without data (no request in the last minute, a metric export
//! that landed just after the tick) leaves a series' state as it was, as
//! Cloud Monitoring does not resolve a condition for a missing point; a
//! series silent for longer than its duration plus two periods is forgotten,
//! which closes its incident.
//!
//! `condition_absent` fires for a series (or group) that had points before
//! and has none in the last `duration`, or for the whole condition when no
//! series has been seen for `duration` since evaluation started.
//!
//! Every span of monitoring time is divided by the [`TimeScale`].

use std::collections::{BTreeMap, HashMap};

use gcloud_sdk::google::monitoring::v3::{typed_value, TimeSeries};

use super::policy::{
    Absent, Comparison, Condition, ConditionKind, Query, SloThreshold, Threshold, Trigger,
};
use super::slo::{SliError, Slo};
use crate::monitoring::aggregation::{self, AggregationError, Spec};
use crate::monitoring::store::MetricStore;
use crate::time::scale::TimeScale;

/// Why a condition could not be evaluated at this tick (reported, and the
/// condition keeps its state).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluationError {
    #[error("{0}")]
    Aggregation(#[from] AggregationError),
    #[error("no google_monitoring_slo is named {0:?}")]
    UnknownSlo(String),
    #[error("{metric_type} gives distribution values, which a threshold cannot compare; align or reduce them to a percentile, or use ALIGN_COUNT")]
    DistributionValue { metric_type: String },
    #[error(transparent)]
    Sli(#[from] SliError),
}

/// Which time series a value belongs to: its type and labels after aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesIdentity {
    pub metric_type: String,
    pub metric_labels: BTreeMap<String, String>,
    pub resource_type: String,
    pub resource_labels: BTreeMap<String, String>,
}

impl SeriesIdentity {
    fn of(series: &TimeSeries) -> Self {
        let metric = series.metric.clone().unwrap_or_default();
        let resource = series.resource.clone().unwrap_or_default();
        Self {
            metric_type: metric.r#type,
            metric_labels: metric.labels.into_iter().collect(),
            resource_type: resource.r#type,
            resource_labels: resource.labels.into_iter().collect(),
        }
    }

    /// Labels only: a ratio pairs numerator and denominator series on them.
    fn labels(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (self.metric_labels.clone(), self.resource_labels.clone())
    }
}

/// A series that fires, with the value that made it fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub identity: SeriesIdentity,
    /// `None` for an absence.
    pub value: Option<f64>,
}

/// What a condition says at one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Series that have violated for the whole duration.
    pub firing: Vec<Firing>,
    /// Series with a known state: what a trigger percentage is taken of.
    pub tracked: usize,
    /// Whether the trigger is met: the condition as a whole is violated.
    pub met: bool,
}

/// What an evaluation reads from: the stored series of `project`, the SLOs
/// selectors name, at the time scale.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub store: &'a MetricStore,
    pub project: &'a str,
    pub scale: TimeScale,
    pub slos: &'a [Slo],
}

/// How a threshold judges values, its spans in local time.
struct Judge {
    comparison: Comparison,
    threshold_value: f64,
    duration: i64,
    period: i64,
    trigger: Trigger,
}

/// The one series an SLO selector returns: the selector as its type, the
/// SLO's service and id as its labels.
fn slo_identity(slo: &Slo, condition: &SloThreshold) -> SeriesIdentity {
    SeriesIdentity {
        metric_type: condition.filter_text.clone(),
        metric_labels: BTreeMap::new(),
        resource_type: String::new(),
        resource_labels: [
            ("service_id".to_owned(), slo.service_id.clone()),
            ("slo_id".to_owned(), slo.slo_id.clone()),
        ]
        .into(),
    }
}

#[derive(Debug, Clone)]
struct Track {
    violating_since: Option<i64>,
    last_value: Option<f64>,
    last_seen: i64,
}

/// The memory of one condition between ticks.
#[derive(Debug, Default)]
pub struct ConditionState {
    tracks: HashMap<SeriesIdentity, Track>,
    /// When evaluation started: an absence needs `duration` of watching.
    started: Option<i64>,
}

impl ConditionState {
    /// Evaluates `condition` at `now` and updates the state.
    ///
    /// # Errors
    /// When the stored series cannot be aggregated as the condition asks.
    pub fn evaluate(
        &mut self,
        condition: &Condition,
        context: &Context<'_>,
        now: i64,
    ) -> Result<Verdict, EvaluationError> {
        let started = *self.started.get_or_insert(now);
        let Context {
            store,
            project,
            scale,
            slos,
        } = *context;
        match &condition.kind {
            ConditionKind::Threshold(threshold) => {
                self.threshold(threshold, store, project, now, scale)
            }
            ConditionKind::Absent(absent) => {
                self.absent(absent, store, project, now, started, scale)
            }
            ConditionKind::Slo(slo_threshold) => {
                self.slo_threshold(slo_threshold, slos, store, project, now, scale)
            }
        }
    }

    /// An SLO selector's value for the whole SLO: one series, named by the
    /// selector, as Cloud Monitoring returns SLO data.
    fn slo_threshold(
        &mut self,
        condition: &SloThreshold,
        slos: &[Slo],
        store: &MetricStore,
        project: &str,
        now: i64,
        scale: TimeScale,
    ) -> Result<Verdict, EvaluationError> {
        let slo = slos
            .iter()
            .find(|slo| slo.is_named(&condition.selector.slo_name))
            .ok_or_else(|| EvaluationError::UnknownSlo(condition.selector.slo_name.clone()))?;
        let value = slo.select(&condition.selector, store, project, now, scale)?;
        let values: Vec<(SeriesIdentity, f64)> = value
            .map(|value| (slo_identity(slo, condition), value))
            .into_iter()
            .collect();
        let judge = Judge {
            comparison: condition.comparison,
            threshold_value: condition.threshold_value,
            duration: scale.scale_nanos(condition.duration.as_nanos() as i64),
            period: scale.scale_nanos(
                condition
                    .selector
                    .lookback
                    .unwrap_or(slo.rolling_period)
                    .as_nanos() as i64,
            ),
            trigger: condition.trigger,
        };
        Ok(self.judge(values, &judge, now))
    }

    fn threshold(
        &mut self,
        threshold: &Threshold,
        store: &MetricStore,
        project: &str,
        now: i64,
        scale: TimeScale,
    ) -> Result<Verdict, EvaluationError> {
        let values = match &threshold.denominator {
            None => latest_values(&threshold.query, store, project, now, scale)?,
            Some(denominator) => ratios(
                latest_values(&threshold.query, store, project, now, scale)?,
                latest_values(denominator, store, project, now, scale)?,
            ),
        };
        let judge = Judge {
            comparison: threshold.comparison,
            threshold_value: threshold.threshold_value,
            duration: scale.scale_nanos(threshold.duration.as_nanos() as i64),
            period: scale.scale_nanos(threshold.query.period_nanos()),
            trigger: threshold.trigger,
        };
        Ok(self.judge(values, &judge, now))
    }

    /// Carries each series' violation from tick to tick: a series fires once
    /// it has violated for the whole duration.
    fn judge(&mut self, values: Vec<(SeriesIdentity, f64)>, judge: &Judge, now: i64) -> Verdict {
        for (identity, value) in values {
            let track = self.tracks.entry(identity).or_insert(Track {
                violating_since: None,
                last_value: None,
                last_seen: now,
            });
            track.last_seen = now;
            track.last_value = Some(value);
            if judge.comparison.holds(value, judge.threshold_value) {
                track.violating_since.get_or_insert(now);
            } else {
                track.violating_since = None;
            }
        }
        self.forget_silent(now, judge.duration + 2 * judge.period);
        let firing: Vec<Firing> = self
            .tracks
            .iter()
            .filter(|(_, track)| {
                track
                    .violating_since
                    .is_some_and(|since| now - since >= judge.duration)
            })
            .map(|(identity, track)| Firing {
                identity: identity.clone(),
                value: track.last_value,
            })
            .collect();
        self.verdict(firing, judge.trigger)
    }

    fn absent(
        &mut self,
        absent: &Absent,
        store: &MetricStore,
        project: &str,
        now: i64,
        started: i64,
        scale: TimeScale,
    ) -> Result<Verdict, EvaluationError> {
        let duration = scale.scale_nanos(absent.duration.as_nanos() as i64);
        let present = present_series(&absent.query, store, project, now - duration, now, scale)?;
        for identity in present {
            self.tracks.insert(
                identity,
                Track {
                    violating_since: None,
                    last_value: None,
                    last_seen: now,
                },
            );
        }
        let mut firing: Vec<Firing> = self
            .tracks
            .iter()
            .filter(|(_, track)| track.last_seen < now)
            .map(|(identity, _)| Firing {
                identity: identity.clone(),
                value: None,
            })
            .collect();
        if self.tracks.is_empty() && now - started >= duration {
            // Nothing ever matched: the condition's whole filter is absent.
            firing.push(Firing {
                identity: SeriesIdentity {
                    metric_type: absent.query.metric_type().to_owned(),
                    metric_labels: BTreeMap::new(),
                    resource_type: String::new(),
                    resource_labels: BTreeMap::new(),
                },
                value: None,
            });
        }
        let mut verdict = self.verdict(firing, absent.trigger);
        verdict.tracked = verdict.tracked.max(verdict.firing.len());
        verdict.met = absent.trigger.fires(verdict.firing.len(), verdict.tracked);
        Ok(verdict)
    }

    fn forget_silent(&mut self, now: i64, grace: i64) {
        self.tracks
            .retain(|_, track| now - track.last_seen <= grace);
    }

    fn verdict(&self, mut firing: Vec<Firing>, trigger: Trigger) -> Verdict {
        firing.sort_by(|a, b| a.identity.cmp(&b.identity));
        let tracked = self.tracks.len();
        Verdict {
            met: trigger.fires(firing.len(), tracked),
            firing,
            tracked,
        }
    }
}

/// The query's value per output series over the latest window.
fn latest_values(
    query: &Query,
    store: &MetricStore,
    project: &str,
    now: i64,
    scale: TimeScale,
) -> Result<Vec<(SeriesIdentity, f64)>, EvaluationError> {
    let start = now - scale.scale_nanos(query.period_nanos());
    let spec = query.aggregation.as_ref().map(|spec| scaled(spec, scale));
    let output = aggregation::read(store, project, &query.filter, (start, now), spec.as_ref())?;
    let mut values = Vec::with_capacity(output.len());
    for series in &output {
        // Points are newest first; a single window gives one.
        let Some(value) = series.points.first().and_then(|p| p.value.as_ref()) else {
            continue;
        };
        let number = match &value.value {
            Some(typed_value::Value::Int64Value(v)) => *v as f64,
            Some(typed_value::Value::DoubleValue(v)) => *v,
            Some(typed_value::Value::BoolValue(v)) => f64::from(u8::from(*v)),
            Some(typed_value::Value::DistributionValue(_)) => {
                return Err(EvaluationError::DistributionValue {
                    metric_type: query.metric_type().to_owned(),
                })
            }
            _ => continue,
        };
        values.push((SeriesIdentity::of(series), number));
    }
    Ok(values)
}

/// Series with at least one point in `(start, now]`, as the query groups them.
fn present_series(
    query: &Query,
    store: &MetricStore,
    project: &str,
    start: i64,
    now: i64,
    scale: TimeScale,
) -> Result<Vec<SeriesIdentity>, EvaluationError> {
    // One window as long as the duration: any point in it counts.
    let spec = query.aggregation.as_ref().map(|spec| Spec {
        period: (now - start).max(1),
        ..scaled(spec, scale)
    });
    let output = aggregation::read(store, project, &query.filter, (start, now), spec.as_ref())?;
    Ok(output
        .iter()
        .filter(|series| !series.points.is_empty())
        .map(SeriesIdentity::of)
        .collect())
}

/// Numerator over denominator, paired on labels. A denominator without a
/// numerator series is a ratio of 0 (no 5xx at all); a zero denominator has
/// no ratio.
fn ratios(
    numerators: Vec<(SeriesIdentity, f64)>,
    denominators: Vec<(SeriesIdentity, f64)>,
) -> Vec<(SeriesIdentity, f64)> {
    let numerators: HashMap<_, f64> = numerators
        .into_iter()
        .map(|(identity, value)| (identity.labels(), value))
        .collect();
    denominators
        .into_iter()
        .filter(|(_, denominator)| *denominator != 0.0)
        .map(|(identity, denominator)| {
            let numerator = numerators.get(&identity.labels()).copied().unwrap_or(0.0);
            (identity, numerator / denominator)
        })
        .collect()
}

/// The aggregation with its period in local time.
fn scaled(spec: &Spec, scale: TimeScale) -> Spec {
    Spec {
        period: scale.scale_nanos(spec.period),
        ..spec.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(service: &str) -> SeriesIdentity {
        SeriesIdentity {
            metric_type: "run.googleapis.com/request_count".into(),
            metric_labels: BTreeMap::new(),
            resource_type: "cloud_run_revision".into(),
            resource_labels: [("service_name".to_owned(), service.to_owned())].into(),
        }
    }

    #[test]
    fn ratios_pair_on_labels_and_a_missing_numerator_is_zero() {
        let result = ratios(
            vec![(identity("a"), 3.0)],
            vec![
                (identity("a"), 10.0),
                (identity("b"), 4.0),
                (identity("c"), 0.0),
            ],
        );
        assert_eq!(result, vec![(identity("a"), 0.3), (identity("b"), 0.0)]);
    }
}
