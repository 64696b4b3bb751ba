//! Service-level objectives, read from the deployment's Terraform
//! (`google_monitoring_custom_service`, `google_monitoring_slo`), and the
//! SLO time-series selectors alert policies use (`select_slo_burn_rate`,
//! `select_slo_health`, `select_slo_budget_fraction`, `select_slo_budget`).
//!
//! An SLI is `good_service / total_service` over an interval
//! (`google/monitoring/v3/service.proto`, `ServiceLevelIndicator`):
//!
//! - `request_based_sli.good_total_ratio`: exactly two of good, bad and total
//!   filters, with `good + bad = total` assumed; each filter's series are
//!   summed over the interval (`ALIGN_DELTA`, `REDUCE_SUM`, the code
//!   `ListTimeSeries` uses);
//! - `request_based_sli.distribution_cut`: the distribution series summed
//!   over the interval, `good` the count of values `x` with
//!   `range.min <= x < range.max`, `total` the count of all values;
//! - `windows_based_sli`: `good` the count of good windows of
//!   `window_period`, `total` the count of windows with data; a window is good
//!   when a BOOL series has a `true` in it (`good_bad_metric_filter`), when a
//!   request-based SLI over it reaches a threshold
//!   (`good_total_ratio_threshold`), or when a gauge's value averaged or
//!   summed across series is in range (`metric_mean_in_range`,
//!   `metric_sum_in_range`).
//!
//! From the counts over an interval follow the numbers the selectors return
//! ([`SloNumbers`]): the error budget of a compliance period is
//! `(1 - goal) x eligible events`, the burn rate over a lookback period is
//! the share of bad events in it divided by `1 - goal` (1 spends the budget
//! exactly over the period), and so on; docs/alerts.md lists the sources.
//!
//! Every span (rolling period, lookback) is monitoring time, divided by the
//! [`TimeScale`] when read from the store.
//!
//! Why one file: an SLO's definition, its SLI counts and the four selectors
//! computed from them are one model; each selector is a few lines over the
//! same counts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};
use gcloud_sdk::google::monitoring::v3::typed_value;
use serde_json::Value;

use crate::json::blocks;
use crate::monitoring::aggregation::AggregationError;
use crate::monitoring::aggregation::{self, Dist, Spec};
use crate::monitoring::filter::{self, Filter};
use crate::monitoring::store::MetricStore;
use crate::terraform::ResourceInstance;
use crate::time::scale::TimeScale;
use crate::time::timestamp::to_nanos;

/// Why an SLI cannot be computed from the stored series.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliError {
    #[error("{0}")]
    Aggregation(#[from] AggregationError),
    #[error("{metric_type} cannot be counted for an SLO: good_total_ratio needs INT64 or DOUBLE DELTA or CUMULATIVE series, distribution_cut DISTRIBUTION ones")]
    NotCountable { metric_type: String },
}

/// Why an SLO cannot be evaluated locally.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{address}: {reason}")]
pub struct SloError {
    pub address: String,
    pub reason: String,
}

/// How good and total service are counted.
#[derive(Debug, Clone)]
pub enum Sli {
    /// Two of good, bad and total, each a filter of DELTA or CUMULATIVE
    /// INT64 or DOUBLE series.
    GoodTotalRatio {
        good: Option<Filter>,
        bad: Option<Filter>,
        total: Option<Filter>,
    },
    /// A distribution cut: good values are in `[min, max)`.
    DistributionCut { filter: Filter, min: f64, max: f64 },
    /// Good service is the count of good windows of `period` (monitoring
    /// time), total service the count of windows with data.
    WindowsBased {
        period: Duration,
        criterion: WindowCriterion,
    },
}

/// When a window of a windows-based SLI is good (`WindowsBasedSli`).
#[derive(Debug, Clone)]
pub enum WindowCriterion {
    /// `good_bad_metric_filter`: a BOOL series; good if any `true` value appears.
    GoodBadMetric(Filter),
    /// `good_total_ratio_threshold`: good if the request-based SLI over the
    /// window is at least `threshold`.
    Performance { sli: Box<Sli>, threshold: f64 },
    /// `metric_mean_in_range` (`sum = false`) or `metric_sum_in_range`: good
    /// if the window's value, averaged (or summed) across the series, is in
    /// `[min, max)`.
    InRange {
        filter: Filter,
        min: f64,
        max: f64,
        sum: bool,
    },
}

/// A `google_monitoring_slo` the emulator evaluates.
#[derive(Debug, Clone)]
pub struct Slo {
    /// The Terraform address, e.g. `google_monitoring_slo.availability`.
    pub address: String,
    /// `projects/P/services/S/serviceLevelObjectives/ID`, as alert filters name it.
    pub name: String,
    pub service_id: String,
    pub slo_id: String,
    pub display_name: String,
    /// Fraction of service that must be good, `0 < goal < 1`.
    pub goal: f64,
    /// The rolling compliance period, in monitoring time.
    pub rolling_period: Duration,
    pub sli: Sli,
}

/// Good and total service over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    pub good: f64,
    pub total: f64,
}

impl Counts {
    pub fn bad(self) -> f64 {
        (self.total - self.good).max(0.0)
    }
}

/// The arithmetic of an SLO over counted service; `None` where there was no
/// eligible event to judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloNumbers {
    pub goal: f64,
    pub counts: Counts,
}

impl SloNumbers {
    /// The SLI, `good / total`.
    pub fn sli(self) -> Option<f64> {
        (self.counts.total > 0.0).then(|| self.counts.good / self.counts.total)
    }

    /// `(1 - goal) x eligible events`: the bad events the period may have.
    pub fn budget_total(self) -> f64 {
        (1.0 - self.goal) * self.counts.total
    }

    /// The budget not yet spent, in events; negative once overspent.
    pub fn budget_remaining(self) -> f64 {
        self.budget_total() - self.counts.bad()
    }

    /// The budget left as a fraction of the whole: 1 untouched, 0 spent,
    /// negative overspent.
    pub fn budget_fraction(self) -> Option<f64> {
        (self.counts.total > 0.0).then(|| self.budget_remaining() / self.budget_total())
    }

    /// How many times faster than sustainable the budget is being spent:
    /// the share of bad events over `1 - goal`.
    pub fn burn_rate(self) -> Option<f64> {
        (self.counts.total > 0.0)
            .then(|| (self.counts.bad() / self.counts.total) / (1.0 - self.goal))
    }
}

impl Slo {
    /// Reads a `google_monitoring_slo` evaluated from Terraform.
    ///
    /// # Errors
    /// A windows-based or basic SLI, a missing goal or period, a filter that
    /// does not parse: anything the emulator would otherwise ignore.
    pub fn from_terraform(resource: &ResourceInstance) -> Result<Self, SloError> {
        let json = resource.to_json();
        let fail = |reason: String| SloError {
            address: resource.address(),
            reason,
        };
        let goal = json["goal"]
            .as_f64()
            .ok_or_else(|| fail("goal is required".to_owned()))?;
        if !(goal > 0.0 && goal < 1.0) {
            return Err(fail(format!("goal {goal} must be above 0 and below 1")));
        }
        if json["calendar_period"].is_string() {
            return Err(fail(
                "calendar_period is not evaluated by the emulator (rolling_period_days is)"
                    .to_owned(),
            ));
        }
        let days = json["rolling_period_days"]
            .as_u64()
            .ok_or_else(|| fail("rolling_period_days is required".to_owned()))?;
        if !(1..=30).contains(&days) {
            return Err(fail(format!(
                "rolling_period_days {days} must be from 1 to 30"
            )));
        }
        if !blocks(&json, "basic_sli").is_empty() {
            return Err(fail(
                "a basic SLI is not evaluated by the emulator (request_based_sli and windows_based_sli are)"
                    .to_owned(),
            ));
        }
        let sli = match (
            blocks(&json, "request_based_sli").first(),
            blocks(&json, "windows_based_sli").first(),
        ) {
            (Some(request_based), None) => parse_request_based(request_based)
                .map_err(|reason| fail(format!("request_based_sli: {reason}")))?,
            (None, Some(windows_based)) => parse_windows_based(windows_based)
                .map_err(|reason| fail(format!("windows_based_sli: {reason}")))?,
            _ => {
                return Err(fail(
                    "expected exactly one of request_based_sli or windows_based_sli".to_owned(),
                ))
            }
        };
        let service_id = json["service"].as_str().unwrap_or_default().to_owned();
        let slo_id = json["slo_id"]
            .as_str()
            .map_or_else(|| resource.name.clone(), str::to_owned);
        let name = json["name"].as_str().map_or_else(
            || format!("projects/local/services/{service_id}/serviceLevelObjectives/{slo_id}"),
            str::to_owned,
        );
        Ok(Self {
            address: resource.address(),
            name,
            service_id,
            display_name: json["display_name"]
                .as_str()
                .map_or_else(|| slo_id.clone(), str::to_owned),
            slo_id,
            goal,
            rolling_period: Duration::from_secs(days * 86_400),
            sli,
        })
    }

    /// Whether an alert filter's SLO name means this SLO: the full resource
    /// name, or its `services/S/serviceLevelObjectives/ID` part (the project
    /// is whatever the emulator evaluates in).
    pub fn is_named(&self, name: &str) -> bool {
        let tail = format!(
            "services/{}/serviceLevelObjectives/{}",
            self.service_id, self.slo_id
        );
        name == self.name || name == tail || name.ends_with(&format!("/{tail}"))
    }

    /// Good and total service in `(start, end]` (local time, nanoseconds);
    /// a windows-based SLI's window is divided by `scale`.
    ///
    /// # Errors
    /// When the series cannot be summed (a gauge, a string).
    pub fn counts(
        &self,
        store: &MetricStore,
        project: &str,
        (start, end): (i64, i64),
        scale: TimeScale,
    ) -> Result<Counts, SliError> {
        sli_counts(&self.sli, store, project, (start, end), scale)
    }

    /// The SLO's numbers over the `span` of monitoring time ending at `now`.
    ///
    /// # Errors
    /// See [`Slo::counts`].
    pub fn numbers(
        &self,
        store: &MetricStore,
        project: &str,
        now: i64,
        span: Duration,
        scale: TimeScale,
    ) -> Result<SloNumbers, SliError> {
        let start = now - scale.scale_nanos(span.as_nanos() as i64);
        Ok(SloNumbers {
            goal: self.goal,
            counts: self.counts(store, project, (start, now), scale)?,
        })
    }

    /// What `selector` returns for this SLO at `now`.
    ///
    /// # Errors
    /// See [`Slo::counts`].
    pub fn select(
        &self,
        selector: &SloSelector,
        store: &MetricStore,
        project: &str,
        now: i64,
        scale: TimeScale,
    ) -> Result<Option<f64>, SliError> {
        let span = selector.lookback.unwrap_or(self.rolling_period);
        let numbers = self.numbers(store, project, now, span, scale)?;
        Ok(match selector.kind {
            SelectorKind::BurnRate => numbers.burn_rate(),
            SelectorKind::Health => numbers.sli(),
            SelectorKind::BudgetFraction => numbers.budget_fraction(),
            SelectorKind::Budget => {
                (numbers.counts.total > 0.0).then(|| numbers.budget_remaining())
            }
        })
    }
}

fn parse_request_based(block: &Value) -> Result<Sli, String> {
    if let Some(ratio) = blocks(block, "good_total_ratio").first() {
        let filter_of = |key: &str| -> Result<Option<Filter>, String> {
            match ratio[key].as_str() {
                Some(text) if !text.trim().is_empty() => {
                    let parsed = filter::parse(text).map_err(|error| format!("{key}: {error}"))?;
                    if parsed.metric_types().len() != 1 {
                        return Err(format!("{key} must name exactly one metric.type"));
                    }
                    Ok(Some(parsed))
                }
                _ => Ok(None),
            }
        };
        let good = filter_of("good_service_filter")?;
        let bad = filter_of("bad_service_filter")?;
        let total = filter_of("total_service_filter")?;
        let given = [&good, &bad, &total].iter().filter(|f| f.is_some()).count();
        if given != 2 {
            return Err(format!(
                "good_total_ratio takes exactly two of good_service_filter, bad_service_filter and total_service_filter, this one has {given}"
            ));
        }
        return Ok(Sli::GoodTotalRatio { good, bad, total });
    }
    if let Some(cut) = blocks(block, "distribution_cut").first() {
        let text = cut["distribution_filter"]
            .as_str()
            .filter(|text| !text.trim().is_empty())
            .ok_or("distribution_cut.distribution_filter is required")?;
        let filter = filter::parse(text)
            .map_err(|error| format!("distribution_cut.distribution_filter: {error}"))?;
        let range = blocks(cut, "range");
        let range = range.first().ok_or("distribution_cut.range is required")?;
        // An unset bound is open: Terraform leaves it out for "-infinity" / "infinity".
        let min = range["min"].as_f64().unwrap_or(f64::NEG_INFINITY);
        let max = range["max"].as_f64().unwrap_or(f64::INFINITY);
        if min >= max {
            return Err(format!(
                "distribution_cut.range: min {min} must be below max {max}"
            ));
        }
        return Ok(Sli::DistributionCut { filter, min, max });
    }
    Err("expected good_total_ratio or distribution_cut".to_owned())
}

fn parse_windows_based(block: &Value) -> Result<Sli, String> {
    let text = block["window_period"]
        .as_str()
        .ok_or("window_period is required")?;
    let seconds = text
        .trim()
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| format!("window_period {text:?} is not like \"60s\""))?;
    if seconds < 60 || 86_400 % seconds != 0 {
        return Err(format!(
            "window_period {text:?} must be at least 60s and divide a day"
        ));
    }
    let filter_in = |value: &Value, key: &str| -> Result<Filter, String> {
        let text = value[key]
            .as_str()
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| format!("{key} is required"))?;
        filter::parse(text).map_err(|error| format!("{key}: {error}"))
    };
    let range_of = |value: &Value| -> Result<(f64, f64), String> {
        let range = blocks(value, "range");
        let range = range.first().ok_or("range is required")?;
        let min = range["min"].as_f64().unwrap_or(f64::NEG_INFINITY);
        let max = range["max"].as_f64().unwrap_or(f64::INFINITY);
        if min >= max {
            return Err(format!("range: min {min} must be below max {max}"));
        }
        Ok((min, max))
    };
    let mut criteria = Vec::new();
    if block["good_bad_metric_filter"].is_string() {
        criteria.push(WindowCriterion::GoodBadMetric(filter_in(
            block,
            "good_bad_metric_filter",
        )?));
    }
    if let Some(threshold) = blocks(block, "good_total_ratio_threshold").first() {
        if !blocks(threshold, "basic_sli_performance").is_empty() {
            return Err("good_total_ratio_threshold.basic_sli_performance is not evaluated by the emulator (performance is)".to_owned());
        }
        let performance = blocks(threshold, "performance");
        let performance = performance
            .first()
            .ok_or("good_total_ratio_threshold.performance is required")?;
        let sli = parse_request_based(performance)
            .map_err(|error| format!("good_total_ratio_threshold.performance: {error}"))?;
        let value = threshold["threshold"]
            .as_f64()
            .ok_or("good_total_ratio_threshold.threshold is required")?;
        criteria.push(WindowCriterion::Performance {
            sli: Box::new(sli),
            threshold: value,
        });
    }
    for (key, sum) in [
        ("metric_mean_in_range", false),
        ("metric_sum_in_range", true),
    ] {
        if let Some(range) = blocks(block, key).first() {
            let filter = filter_in(range, "time_series").map_err(|e| format!("{key}.{e}"))?;
            let (min, max) = range_of(range).map_err(|e| format!("{key}.{e}"))?;
            criteria.push(WindowCriterion::InRange {
                filter,
                min,
                max,
                sum,
            });
        }
    }
    if criteria.len() != 1 {
        return Err(format!(
            "expected exactly one of good_bad_metric_filter, good_total_ratio_threshold, metric_mean_in_range and metric_sum_in_range, got {}",
            criteria.len()
        ));
    }
    Ok(Sli::WindowsBased {
        period: Duration::from_secs(seconds),
        criterion: criteria.remove(0),
    })
}

/// Good and total service of `sli` in `(start, end]`.
fn sli_counts(
    sli: &Sli,
    store: &MetricStore,
    project: &str,
    (start, end): (i64, i64),
    scale: TimeScale,
) -> Result<Counts, SliError> {
    match sli {
        Sli::WindowsBased { period, criterion } => {
            let period = scale.scale_nanos(period.as_nanos() as i64).max(1);
            window_counts(criterion, store, project, (start, end), period)
        }
        request_based => Ok(request_counts(
            request_based,
            store,
            project,
            (start, end),
            (end - start).max(1),
        )?
        .into_values()
        .fold(Counts::default(), |sum, counts| Counts {
            good: sum.good + counts.good,
            total: sum.total + counts.total,
        })),
    }
}

/// A request-based SLI's good and total service per window of `period`
/// ending in `(start, end]`, by window end.
fn request_counts(
    sli: &Sli,
    store: &MetricStore,
    project: &str,
    window: (i64, i64),
    period: i64,
) -> Result<BTreeMap<i64, Counts>, SliError> {
    match sli {
        Sli::GoodTotalRatio { good, bad, total } => {
            let sums = |filter: &Option<Filter>| {
                filter
                    .as_ref()
                    .map(|filter| sum_numbers(store, project, filter, window, period))
                    .transpose()
            };
            let (good, bad, total) = (sums(good)?, sums(bad)?, sums(total)?);
            let ends: BTreeSet<i64> = [&good, &bad, &total]
                .into_iter()
                .flatten()
                .flat_map(|sums| sums.keys().copied())
                .collect();
            let at = |sums: &Option<BTreeMap<i64, f64>>, end: i64| {
                sums.as_ref()
                    .map(|sums| sums.get(&end).copied().unwrap_or(0.0))
            };
            Ok(ends
                .into_iter()
                .map(|end| {
                    let counts = match (at(&good, end), at(&bad, end), at(&total, end)) {
                        (Some(good), _, Some(total)) => Counts { good, total },
                        (Some(good), Some(bad), None) => Counts {
                            good,
                            total: good + bad,
                        },
                        (None, Some(bad), Some(total)) => Counts {
                            good: (total - bad).max(0.0),
                            total,
                        },
                        _ => Counts::default(),
                    };
                    (end, counts)
                })
                .collect())
        }
        Sli::DistributionCut { filter, min, max } => {
            Ok(sum_distributions(store, project, filter, window, period)?
                .into_iter()
                .map(|(end, dist)| {
                    let counts = Counts {
                        good: count_in_range(&dist, *min, *max),
                        total: dist.count as f64,
                    };
                    (end, counts)
                })
                .collect())
        }
        Sli::WindowsBased { .. } => Err(SliError::NotCountable {
            metric_type: "a windows-based SLI inside a windows-based SLI".to_owned(),
        }),
    }
}

/// Good windows and windows with data, each `period` long, ending in `(start, end]`.
fn window_counts(
    criterion: &WindowCriterion,
    store: &MetricStore,
    project: &str,
    (start, end): (i64, i64),
    period: i64,
) -> Result<Counts, SliError> {
    let judged: Vec<bool> = match criterion {
        WindowCriterion::Performance { sli, threshold } => {
            request_counts(sli, store, project, (start, end), period)?
                .into_values()
                .filter(|counts| counts.total > 0.0)
                .map(|counts| counts.good / counts.total >= *threshold)
                .collect()
        }
        WindowCriterion::GoodBadMetric(filter) => {
            let mut windows: BTreeMap<i64, bool> = BTreeMap::new();
            for (_, window, value) in raw_points(store, project, filter, (start, end), period)? {
                let typed_value::Value::BoolValue(good) = value else {
                    return Err(not_countable(filter));
                };
                *windows.entry(window).or_default() |= good;
            }
            windows.into_values().collect()
        }
        WindowCriterion::InRange {
            filter,
            min,
            max,
            sum,
        } => {
            // Per window, each series' mean, then their mean or sum.
            let mut per_series: BTreeMap<(i64, usize), (f64, f64)> = BTreeMap::new();
            for (series, window, value) in raw_points(store, project, filter, (start, end), period)?
            {
                let number = match value {
                    typed_value::Value::Int64Value(v) => v as f64,
                    typed_value::Value::DoubleValue(v) => v,
                    _ => return Err(not_countable(filter)),
                };
                let entry = per_series.entry((window, series)).or_default();
                entry.0 += number;
                entry.1 += 1.0;
            }
            let mut windows: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
            for ((window, _), (total, points)) in per_series {
                let entry = windows.entry(window).or_default();
                entry.0 += total / points;
                entry.1 += 1.0;
            }
            windows
                .into_values()
                .map(|(total, streams)| {
                    let value = if *sum { total } else { total / streams };
                    *min <= value && value < *max
                })
                .collect()
        }
    };
    Ok(Counts {
        good: judged.iter().filter(|good| **good).count() as f64,
        total: judged.len() as f64,
    })
}

fn not_countable(filter: &Filter) -> SliError {
    SliError::NotCountable {
        metric_type: filter
            .metric_types()
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The raw points of the series matching `filter` in `(start, end]`: the
/// series' index, the window (0 the newest, `period` long, ending at `end`)
/// and the value.
fn raw_points(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    (start, end): (i64, i64),
    period: i64,
) -> Result<Vec<(usize, i64, typed_value::Value)>, SliError> {
    let output = aggregation::read(store, project, filter, (start, end), None)?;
    let mut points = Vec::new();
    for (index, series) in output.into_iter().enumerate() {
        for point in series.points {
            let at = point
                .interval
                .as_ref()
                .and_then(|interval| interval.end_time.as_ref())
                .and_then(|time| to_nanos(time).ok());
            if let (Some(at), Some(value)) = (at, point.value.and_then(|v| v.value)) {
                points.push((index, (end - at) / period, value));
            }
        }
    }
    Ok(points)
}

/// Every point of the series matching `filter`, aligned (`ALIGN_DELTA`) and
/// summed across series (`REDUCE_SUM`) per window of `period` ending in
/// `(start, end]`: the metric type, the window's end and the value.
fn summed_points(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    (start, end): (i64, i64),
    period: i64,
) -> Result<Vec<(String, i64, Option<typed_value::Value>)>, SliError> {
    let spec = Spec {
        period,
        aligner: Aligner::AlignDelta,
        reducer: Reducer::ReduceSum,
        group_by: Vec::new(),
    };
    let output = aggregation::read(store, project, filter, (start, end), Some(&spec))?;
    Ok(output
        .into_iter()
        .flat_map(|series| {
            let metric_type = series.metric.map(|m| m.r#type).unwrap_or_default();
            series.points.into_iter().map(move |point| {
                let at = point
                    .interval
                    .as_ref()
                    .and_then(|interval| interval.end_time.as_ref())
                    .and_then(|time| to_nanos(time).ok())
                    .unwrap_or(end);
                (metric_type.clone(), at, point.value.and_then(|v| v.value))
            })
        })
        .collect())
}

fn sum_numbers(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    window: (i64, i64),
    period: i64,
) -> Result<BTreeMap<i64, f64>, SliError> {
    let mut sums = BTreeMap::new();
    for (metric_type, at, value) in summed_points(store, project, filter, window, period)? {
        let number = match value {
            Some(typed_value::Value::Int64Value(v)) => v as f64,
            Some(typed_value::Value::DoubleValue(v)) => v,
            _ => return Err(SliError::NotCountable { metric_type }),
        };
        *sums.entry(at).or_insert(0.0) += number;
    }
    Ok(sums)
}

fn sum_distributions(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    window: (i64, i64),
    period: i64,
) -> Result<BTreeMap<i64, Dist>, SliError> {
    let mut sums: BTreeMap<i64, Dist> = BTreeMap::new();
    for (metric_type, at, value) in summed_points(store, project, filter, window, period)? {
        let Some(typed_value::Value::DistributionValue(proto)) = value else {
            return Err(SliError::NotCountable { metric_type });
        };
        let Some(dist) = Dist::from_proto(&proto) else {
            continue;
        };
        let merged = match sums.remove(&at) {
            None => dist,
            Some(sum) => sum.merge(&dist).unwrap_or(sum),
        };
        sums.insert(at, merged);
    }
    Ok(sums)
}

/// The values of `dist` in `[min, max)`: whole buckets inside the range, and
/// of a bucket the range cuts, the share of its width inside (values spread
/// evenly within a bucket). The open-ended last bucket counts only when the
/// range covers it entirely; the first bucket, `(-inf, b0)`, is taken as
/// `[0, b0)` when `b0 > 0`, since SLO distributions (latencies, sizes) are
/// of quantities that are never negative.
pub fn count_in_range(dist: &Dist, min: f64, max: f64) -> f64 {
    let mut good = 0.0;
    for (index, &count) in dist.counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let low = match (index, dist.bounds.first()) {
            (0, Some(&first)) if first > 0.0 => 0.0,
            (0, _) => f64::NEG_INFINITY,
            _ => dist.bounds[index - 1],
        };
        let high = dist.bounds.get(index).copied().unwrap_or(f64::INFINITY);
        let (from, to) = (low.max(min), high.min(max));
        if from >= to {
            continue;
        }
        if from == low && to == high {
            good += count as f64;
        } else if low.is_finite() && high.is_finite() {
            good += count as f64 * (to - from) / (high - low);
        }
    }
    good
}

/// Which SLO series a selector returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    /// `select_slo_burn_rate(SLO, LOOKBACK)`.
    BurnRate,
    /// `select_slo_health(SLO[, LOOKBACK])`: the SLI.
    Health,
    /// `select_slo_budget_fraction(SLO)`: the budget left, as a fraction.
    BudgetFraction,
    /// `select_slo_budget(SLO)`: the budget left, in events.
    Budget,
}

impl SelectorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::BurnRate => "select_slo_burn_rate",
            Self::Health => "select_slo_health",
            Self::BudgetFraction => "select_slo_budget_fraction",
            Self::Budget => "select_slo_budget",
        }
    }
}

/// A parsed SLO time-series selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloSelector {
    pub kind: SelectorKind,
    /// The SLO's resource name as written.
    pub slo_name: String,
    /// In monitoring time; `None` means the SLO's compliance period.
    pub lookback: Option<Duration>,
}

impl SloSelector {
    /// Parses `SELECTOR_NAME("SLO_NAME")` or
    /// `SELECTOR_NAME("SLO_NAME", "LOOKBACK_PERIOD")`, lookback units `ns`,
    /// `us`, `ms`, `s`, `m`, `h`.
    ///
    /// # Errors
    /// A selector the emulator does not evaluate, a lookback on a selector
    /// that takes none, or one missing where it is required, bad syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let open = text
            .find('(')
            .ok_or_else(|| format!("expected SELECTOR_NAME(\"SLO_NAME\"...) in {text:?}"))?;
        let name = text[..open].trim();
        let kind = match name {
            "select_slo_burn_rate" => SelectorKind::BurnRate,
            "select_slo_health" => SelectorKind::Health,
            "select_slo_budget_fraction" => SelectorKind::BudgetFraction,
            "select_slo_budget" => SelectorKind::Budget,
            other => {
                return Err(format!(
                    "{other} is not an SLO selector the emulator evaluates (select_slo_burn_rate, select_slo_health, select_slo_budget_fraction and select_slo_budget are)"
                ))
            }
        };
        let inner = text[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{name}: expected a closing parenthesis at the end"))?;
        let arguments = string_arguments(inner).map_err(|error| format!("{name}: {error}"))?;
        let (slo_name, lookback) = match arguments.as_slice() {
            [slo] => (slo.clone(), None),
            [slo, lookback] => (slo.clone(), Some(lookback.clone())),
            _ => {
                return Err(format!(
                    "{name} takes an SLO name and at most a lookback period, got {} arguments",
                    arguments.len()
                ))
            }
        };
        if slo_name.is_empty() {
            return Err(format!("{name}: the SLO name is empty"));
        }
        let lookback = lookback
            .map(|text| parse_lookback(&text).map_err(|error| format!("{name}: {error}")))
            .transpose()?;
        match (kind, lookback) {
            (SelectorKind::BurnRate, None) => {
                return Err(format!("{name} needs a lookback period, e.g. \"3600s\""))
            }
            (SelectorKind::Budget | SelectorKind::BudgetFraction, Some(_)) => {
                return Err(format!(
                    "{name} takes only the SLO name: the budget is over the SLO's compliance period"
                ))
            }
            _ => {}
        }
        Ok(Self {
            kind,
            slo_name,
            lookback,
        })
    }
}

/// `"a", "b"` → `["a", "b"]`.
fn string_arguments(text: &str) -> Result<Vec<String>, String> {
    let mut arguments = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err("arguments are double-quoted strings".to_owned());
        }
        let mut argument = String::new();
        loop {
            match chars.next() {
                Some('\\') => argument.extend(chars.next()),
                Some('"') => break,
                Some(c) => argument.push(c),
                None => return Err("an argument's string is not closed".to_owned()),
            }
        }
        arguments.push(argument);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Ok(arguments),
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected {c:?} after an argument")),
        }
    }
}

/// `"3600s"`, `"60m"`, `"1h"`, `"1.5h"`, `"500ms"`.
pub fn parse_lookback(text: &str) -> Result<Duration, String> {
    let units: [(&str, f64); 6] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let text = text.trim();
    let (number, factor) = units
        .iter()
        .find_map(|(unit, factor)| {
            text.strip_suffix(unit)
                .filter(|n| n.chars().all(|c| c.is_ascii_digit() || c == '.') && !n.is_empty())
                .map(|n| (n, *factor))
        })
        .ok_or_else(|| {
            format!("lookback period {text:?} is not a number with a unit ns, us, ms, s, m or h")
        })?;
    let seconds = number
        .parse::<f64>()
        .map_err(|_| format!("lookback period {text:?} is not a number"))?
        * factor;
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("lookback period {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
    use hcl::Map;

    fn numbers(goal: f64, good: f64, total: f64) -> SloNumbers {
        SloNumbers {
            goal,
            counts: Counts { good, total },
        }
    }

    /// Rounded to 9 decimals: what the documents print, without binary
    /// floating point's last-place noise (1 - 0.95 = 0.050000000000000044).
    fn digits(value: f64) -> String {
        format!("{:.9}", (value * 1e9).round() / 1e9 + 0.0)
    }

    #[test]
    fn the_error_budget_is_one_minus_the_goal_times_the_eligible_events() {
        // Cloud Monitoring, "Alerting on your burn rate": "Your error budget for a
        // compliance period is (1 - SLO goal) x (eligible events in compliance
        // period). If your SLO goal is 95%, then it is acceptable for 5% of the
        // events measured by your SLI to fail before your SLO goal is missed."
        let spent = numbers(0.95, 950.0, 1000.0);
        assert_eq!(digits(spent.budget_total()), digits(50.0));
        assert_eq!(digits(spent.budget_remaining()), digits(0.0));
        assert_eq!(digits(spent.budget_fraction().unwrap()), digits(0.0));
        assert_eq!(digits(spent.burn_rate().unwrap()), digits(1.0));
        assert_eq!(digits(spent.sli().unwrap()), digits(0.95));
        let one_more = numbers(0.95, 949.0, 1000.0);
        assert!(
            one_more.budget_remaining() < 0.0,
            "one more failure misses the goal"
        );
    }

    #[test]
    fn the_sre_workbook_burn_rates_consume_its_budget_shares_to_the_digit() {
        // Google's SRE Workbook, "Alerting on SLOs", for a 99.9 % SLO over 30 days:
        // burn rate 14.4 for 1 h spends 2 % of the budget, 6 for 6 h 5 %,
        // 1 for 3 days 10 %. Traffic: 100 000 eligible requests an hour.
        let per_hour = 100_000.0;
        let period_total = per_hour * 24.0 * 30.0;
        for (hours, burn_rate, consumed) in [(1.0, 14.4, 0.02), (6.0, 6.0, 0.05), (72.0, 1.0, 0.10)]
        {
            let total = per_hour * hours;
            let bad = total * (1.0 - 0.999) * burn_rate;
            let window = numbers(0.999, total - bad, total);
            assert_eq!(digits(window.burn_rate().unwrap()), digits(burn_rate));
            // The rest of the 30 days without a failure: the budget left.
            let period = numbers(0.999, period_total - bad, period_total);
            assert_eq!(
                digits(1.0 - period.budget_fraction().unwrap()),
                digits(consumed),
                "{hours} h at {burn_rate}x"
            );
        }
    }

    #[test]
    fn without_eligible_events_there_is_no_value() {
        let none = numbers(0.995, 0.0, 0.0);
        assert_eq!(
            (none.sli(), none.burn_rate(), none.budget_fraction()),
            (None, None, None)
        );
    }

    #[test]
    fn selectors_parse_with_google_lookback_units() {
        let burn = SloSelector::parse(
            r#"select_slo_burn_rate("projects/p/services/s/serviceLevelObjectives/a", "3600s")"#,
        )
        .unwrap();
        assert_eq!(burn.kind, SelectorKind::BurnRate);
        assert_eq!(
            burn.slo_name,
            "projects/p/services/s/serviceLevelObjectives/a"
        );
        assert_eq!(burn.lookback, Some(Duration::from_secs(3600)));
        for (text, seconds) in [
            ("60m", 3600.0),
            ("1h", 3600.0),
            ("300s", 300.0),
            ("1.5h", 5400.0),
            ("500ms", 0.5),
        ] {
            assert_eq!(
                parse_lookback(text).unwrap().as_secs_f64(),
                seconds,
                "{text}"
            );
        }
        assert_eq!(
            SloSelector::parse(r#" select_slo_budget_fraction( "x" ) "#).unwrap(),
            SloSelector {
                kind: SelectorKind::BudgetFraction,
                slo_name: "x".into(),
                lookback: None
            }
        );
        assert_eq!(
            SloSelector::parse(r#"select_slo_health("x", "1h")"#)
                .unwrap()
                .lookback,
            Some(Duration::from_secs(3600))
        );
        for (text, expected) in [
            (r#"select_slo_burn_rate("x")"#, "needs a lookback period"),
            (r#"select_slo_budget("x", "1h")"#, "takes only the SLO name"),
            (
                r#"select_slo_burn_rate("x", "1d")"#,
                "unit ns, us, ms, s, m or h",
            ),
            (
                r#"select_slo_burn_rate("x", "-5s")"#,
                "unit ns, us, ms, s, m or h",
            ),
            (
                r#"select_slo_counts("x")"#,
                "not an SLO selector the emulator evaluates",
            ),
            (r#"select_slo_burn_rate(x, "1h")"#, "double-quoted"),
            (r#"select_slo_burn_rate("x", "1h""#, "closing parenthesis"),
        ] {
            let error = SloSelector::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    fn dist(bounds: &[f64], counts: &[i64]) -> Dist {
        let proto = gcloud_sdk::google::api::Distribution {
            count: counts.iter().sum(),
            bucket_options: Some(BucketOptions {
                options: Some(bucket_options::Options::ExplicitBuckets(
                    bucket_options::Explicit {
                        bounds: bounds.to_vec(),
                    },
                )),
            }),
            bucket_counts: counts.to_vec(),
            ..Default::default()
        };
        Dist::from_proto(&proto).unwrap()
    }

    #[test]
    fn a_distribution_cut_counts_values_from_min_up_to_max() {
        // Buckets (-inf, 0.1) [0.1, 0.5) [0.5, 1) [1, +inf).
        let d = dist(&[0.1, 0.5, 1.0], &[40, 50, 8, 2]);
        assert_eq!(
            count_in_range(&d, 0.0, 0.5),
            90.0,
            "range on a bound: whole buckets"
        );
        assert_eq!(count_in_range(&d, f64::NEG_INFINITY, 0.5), 90.0);
        assert_eq!(count_in_range(&d, 0.5, f64::INFINITY), 10.0);
        assert_eq!(count_in_range(&d, 0.1, 0.5), 50.0);
        // A cut inside a bucket takes its share of the bucket's width.
        assert_eq!(count_in_range(&d, 0.0, 0.75), 94.0);
    }

    fn slo_resource(sli: serde_json::Value) -> ResourceInstance {
        let mut json = serde_json::json!({
            "service": "shop-frontend",
            "slo_id": "availability",
            "name": "projects/local/services/shop-frontend/serviceLevelObjectives/availability",
            "goal": 0.995,
            "rolling_period_days": 28,
        });
        for (key, value) in sli.as_object().unwrap() {
            json[key] = value.clone();
        }
        let value: Map<String, hcl::Value> = serde_json::from_value(json).unwrap();
        ResourceInstance {
            resource_type: "google_monitoring_slo".into(),
            name: "availability".into(),
            index: None,
            value,
        }
    }

    #[test]
    fn slos_load_from_terraform_and_what_cannot_be_evaluated_is_named() {
        let count = r#"metric.type="run.googleapis.com/request_count""#;
        let slo = Slo::from_terraform(&slo_resource(serde_json::json!({
            "request_based_sli": [{"good_total_ratio": [{
                "total_service_filter": count,
                "bad_service_filter": format!("{count} AND metric.labels.response_code_class=\"5xx\""),
            }]}],
        })))
        .unwrap();
        assert_eq!(slo.rolling_period, Duration::from_secs(28 * 86_400));
        assert!(matches!(
            slo.sli,
            Sli::GoodTotalRatio {
                good: None,
                bad: Some(_),
                total: Some(_)
            }
        ));
        assert!(slo
            .is_named("projects/local/services/shop-frontend/serviceLevelObjectives/availability"));
        assert!(
            slo.is_named("projects/123/services/shop-frontend/serviceLevelObjectives/availability")
        );
        assert!(!slo.is_named("projects/local/services/other/serviceLevelObjectives/availability"));

        let cases = [
            (
                serde_json::json!({"request_based_sli": [{"good_total_ratio": [{"total_service_filter": count}]}]}),
                "exactly two of good_service_filter",
            ),
            (
                serde_json::json!({"windows_based_sli": [{"window_period": "60s"}]}),
                "expected exactly one of good_bad_metric_filter",
            ),
            (
                serde_json::json!({"windows_based_sli": [{"window_period": "70s", "good_bad_metric_filter": count}]}),
                "must be at least 60s and divide a day",
            ),
            (
                serde_json::json!({"basic_sli": [{"latency": [{"threshold": "1s"}]}]}),
                "a basic SLI is not evaluated by the emulator",
            ),
            (
                serde_json::json!({"request_based_sli": [{"distribution_cut": [{"distribution_filter": count, "range": [{"min": 1, "max": 1}]}]}]}),
                "min 1 must be below max 1",
            ),
        ];
        for (sli, expected) in cases {
            let error = Slo::from_terraform(&slo_resource(sli)).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(error
                .to_string()
                .starts_with("google_monitoring_slo.availability: "));
        }
    }
}
