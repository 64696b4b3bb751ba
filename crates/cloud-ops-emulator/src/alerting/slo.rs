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
//!   `range.min <= x < range.max`, `total` the count of all values.
//!
//! From the counts over an interval follow the numbers the selectors return
//! ([`SloNumbers`]): the error budget of a compliance period is
//! `(1 - goal) x eligible events`, the burn rate over a lookback period is
//! the share of bad events in it divided by `1 - goal` (1 spends the budget
//! exactly over the period), and so on; docs/alerts.md lists the sources.
//!
//! Every span (rolling period, lookback) is monitoring time, divided by the
//! [`TimeScale`] when read from the store.

use std::time::Duration;

use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};
use gcloud_sdk::google::monitoring::v3::typed_value;
use serde_json::Value;

use super::evaluation::EvaluationError;
use super::policy::blocks;
use crate::monitoring::aggregation::{self, Dist, Spec};
use crate::monitoring::filter::{self, Filter};
use crate::monitoring::store::MetricStore;
use crate::terraform::ResourceInstance;
use crate::time::scale::TimeScale;

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
        for (key, what) in [
            ("windows_based_sli", "a windows-based SLI"),
            ("basic_sli", "a basic SLI"),
        ] {
            if !blocks(&json, key).is_empty() {
                return Err(fail(format!(
                    "{what} is not evaluated by the emulator (request_based_sli is)"
                )));
            }
        }
        let request_based = blocks(&json, "request_based_sli");
        let request_based = request_based
            .first()
            .ok_or_else(|| fail("request_based_sli is required".to_owned()))?;
        let sli = parse_request_based(request_based)
            .map_err(|reason| fail(format!("request_based_sli: {reason}")))?;
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

    /// Good and total service in `(start, end]` (local time, nanoseconds).
    ///
    /// # Errors
    /// When the series cannot be summed (a gauge, a string).
    pub fn counts(
        &self,
        store: &MetricStore,
        project: &str,
        (start, end): (i64, i64),
    ) -> Result<Counts, EvaluationError> {
        match &self.sli {
            Sli::GoodTotalRatio { good, bad, total } => {
                let sum = |filter: &Option<Filter>| -> Result<Option<f64>, EvaluationError> {
                    filter
                        .as_ref()
                        .map(|filter| sum_numbers(store, project, filter, (start, end)))
                        .transpose()
                };
                let (good, bad, total) = (sum(good)?, sum(bad)?, sum(total)?);
                Ok(match (good, bad, total) {
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
                })
            }
            Sli::DistributionCut { filter, min, max } => Ok(
                match sum_distribution(store, project, filter, (start, end))? {
                    Some(dist) => Counts {
                        good: count_in_range(&dist, *min, *max),
                        total: dist.count as f64,
                    },
                    None => Counts::default(),
                },
            ),
        }
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
    ) -> Result<SloNumbers, EvaluationError> {
        let start = now - scale.scale_nanos(span.as_nanos() as i64);
        Ok(SloNumbers {
            goal: self.goal,
            counts: self.counts(store, project, (start, now))?,
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
    ) -> Result<Option<f64>, EvaluationError> {
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

/// One window as long as the interval, every series summed into one value.
fn summing(start: i64, end: i64) -> Spec {
    Spec {
        period: (end - start).max(1),
        aligner: Aligner::AlignDelta,
        reducer: Reducer::ReduceSum,
        group_by: Vec::new(),
    }
}

/// Every point of the series matching `filter`, summed over `(start, end]`,
/// with its metric type.
fn summed_points(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    (start, end): (i64, i64),
) -> Result<Vec<(String, Option<typed_value::Value>)>, EvaluationError> {
    let output = aggregation::read(
        store,
        project,
        filter,
        (start, end),
        Some(&summing(start, end)),
    )?;
    Ok(output
        .into_iter()
        .flat_map(|series| {
            let metric_type = series.metric.map(|m| m.r#type).unwrap_or_default();
            series
                .points
                .into_iter()
                .map(move |point| (metric_type.clone(), point.value.and_then(|v| v.value)))
        })
        .collect())
}

fn sum_numbers(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    window: (i64, i64),
) -> Result<f64, EvaluationError> {
    let mut sum = 0.0;
    for (metric_type, value) in summed_points(store, project, filter, window)? {
        match value {
            Some(typed_value::Value::Int64Value(v)) => sum += v as f64,
            Some(typed_value::Value::DoubleValue(v)) => sum += v,
            _ => return Err(EvaluationError::NotCountable { metric_type }),
        }
    }
    Ok(sum)
}

fn sum_distribution(
    store: &MetricStore,
    project: &str,
    filter: &Filter,
    window: (i64, i64),
) -> Result<Option<Dist>, EvaluationError> {
    let mut total: Option<Dist> = None;
    for (metric_type, value) in summed_points(store, project, filter, window)? {
        let Some(typed_value::Value::DistributionValue(proto)) = value else {
            return Err(EvaluationError::NotCountable { metric_type });
        };
        let Some(dist) = Dist::from_proto(&proto) else {
            continue;
        };
        total = Some(match total {
            None => dist,
            Some(sum) => sum.merge(&dist).unwrap_or(sum),
        });
    }
    Ok(total)
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
                "a windows-based SLI is not evaluated by the emulator",
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
