//! Checks that the deployment's filters parse: every Cloud Monitoring filter
//! of `terraform/` with the emulator's Monitoring filter parser (an SLO
//! selector, `select_slo_burn_rate("...", "3600s")`, with the alert engine's
//! selector parser), every log filter with its Logging query parser. A typo in an alert's filter is
//! otherwise found only when the alert never fires.
//!
//! Input: JSON lines `{"resource", "attribute", "language", "filter"}`, as
//! `infra-check/checks.py filters terraform` prints them (interpolations
//! resolved from the variables' defaults).

use std::io::BufRead;

use serde::Deserialize;
use thiserror::Error;

use crate::alerting::slo::SloSelector;
use crate::logging::query::LogFilter;
use crate::monitoring::filter;

/// Cloud Monitoring's limit on a condition's filter (alert.proto).
pub const MAX_MONITORING_FILTER_LEN: usize = 2048;

/// One filter of the deployment.
#[derive(Debug, Deserialize)]
pub struct DeployedFilter {
    pub resource: String,
    pub attribute: String,
    pub language: String,
    pub filter: String,
}

/// What the check found.
#[derive(Debug, Default)]
pub struct FilterReport {
    /// Filters that parsed, SLO selectors (`select_slo_burn_rate(...)`) included.
    pub checked: usize,
    pub failures: Vec<String>,
}

#[derive(Debug, Error)]
pub enum FilterCheckError {
    #[error("could not read the filter list")]
    Read(#[from] std::io::Error),
    #[error("line {line} is not a filter record: {source}")]
    Record {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Checks every filter in `input`.
pub fn check_filters(input: impl BufRead) -> Result<FilterReport, FilterCheckError> {
    let mut report = FilterReport::default();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: DeployedFilter =
            serde_json::from_str(&line).map_err(|source| FilterCheckError::Record {
                line: index + 1,
                source,
            })?;
        let name = format!("{} {}", record.resource, record.attribute);
        match check_one(&record) {
            Checked::Ok => report.checked += 1,
            Checked::Failed(reason) => report.failures.push(format!("{name}: {reason}")),
        }
    }
    Ok(report)
}

enum Checked {
    Ok,
    Failed(String),
}

fn check_one(record: &DeployedFilter) -> Checked {
    match record.language.as_str() {
        "logging" => match LogFilter::parse(&record.filter) {
            Ok(_) => Checked::Ok,
            Err(error) => Checked::Failed(error.to_string()),
        },
        "monitoring" if record.filter.trim_start().starts_with("select_slo_") => {
            match SloSelector::parse(&record.filter) {
                Ok(_) => Checked::Ok,
                Err(error) => Checked::Failed(format!("{error} in {:?}", record.filter)),
            }
        }
        "monitoring" if record.filter.len() > MAX_MONITORING_FILTER_LEN => {
            Checked::Failed(format!(
                "{} characters, more than the {MAX_MONITORING_FILTER_LEN} Cloud Monitoring allows",
                record.filter.len()
            ))
        }
        "monitoring" => match filter::parse(&record.filter) {
            Ok(_) => Checked::Ok,
            Err(error) => Checked::Failed(format!("{error} in {:?}", record.filter)),
        },
        other => Checked::Failed(format!("unknown filter language {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(lines: &str) -> FilterReport {
        check_filters(lines.as_bytes()).unwrap()
    }

    #[test]
    fn good_filters_and_slo_selectors_pass() {
        let report = check(concat!(
            r#"{"resource":"a","attribute":"filter","language":"logging","filter":"severity>=ERROR"}"#,
            "\n",
            r#"{"resource":"b","attribute":"filter","language":"monitoring","filter":"metric.type=\"x.googleapis.com/y\" AND resource.type=\"generic_task\""}"#,
            "\n",
            r#"{"resource":"c","attribute":"filter","language":"monitoring","filter":"select_slo_burn_rate(\"s\", \"3600s\")"}"#,
            "\n",
            r#"{"resource":"d","attribute":"filter","language":"monitoring","filter":"select_slo_budget_fraction(\"s\")"}"#,
        ));
        assert_eq!(report.checked, 4);
        assert!(report.failures.is_empty(), "{:?}", report.failures);
    }

    #[test]
    fn a_bad_slo_selector_fails_with_why() {
        let report = check(concat!(
            r#"{"resource":"p","attribute":"filter","language":"monitoring","filter":"select_slo_burn_rate(\"s\")"}"#,
            "\n",
            r#"{"resource":"q","attribute":"filter","language":"monitoring","filter":"select_slo_burn_rate(\"s\", \"1d\")"}"#,
        ));
        assert_eq!(report.checked, 0);
        assert!(
            report.failures[0]
                .starts_with("p filter: select_slo_burn_rate needs a lookback period"),
            "{:?}",
            report.failures
        );
        assert!(
            report.failures[1].contains("unit ns, us, ms, s, m or h"),
            "{:?}",
            report.failures
        );
    }

    #[test]
    fn typos_fail_with_the_resource_named() {
        let report = check(concat!(
            r#"{"resource":"google_logging_metric.errors","attribute":"filter","language":"logging","filter":"severity>=EROR"}"#,
            "\n",
            r#"{"resource":"google_monitoring_alert_policy.p95","attribute":"filter","language":"monitoring","filter":"metric.tpye=\"x\""}"#,
        ));
        assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
        assert!(
            report.failures[0].starts_with("google_logging_metric.errors filter: unknown severity")
        );
        assert!(report.failures[1].contains("metric.tpye"));
    }
}
