//! `/`: the console's landing page: what the emulator holds, with links to
//! each page. It names the emulator and its gRPC services, as the status
//! page it replaces did. Its counters are read within the console's page
//! budget, and it says when it stopped early.

use axum::extract::State;
use maud::{html, Markup};

use super::layout::{self, Section};
use super::{errors, traces};
use crate::deadline::Deadline;
use crate::logging::store::Severity;
use crate::status;
use crate::EmulatorStore;

/// `GET /`.
pub async fn page(State(store): State<EmulatorStore>) -> Markup {
    let body = super::within_budget(store, render).await;
    layout::page(Section::Overview, "Overview", body)
}

/// The page's body: the counters read in one pass over each store, within
/// the console's budget (a store of 100 000 entries and spans takes seconds
/// to group in a debug build).
fn render(store: &EmulatorStore, deadline: Deadline) -> Markup {
    let report = status::report(store);
    let mut errors_logged = 0;
    let mut warnings = 0;
    let mut error_groups = errors::ErrorGroups::default();
    let logs_read = store.logs.visit_newest_first(deadline, |entry| {
        match entry.severity {
            Severity::Warning => warnings += 1,
            severity if severity >= Severity::Error => errors_logged += 1,
            _ => {}
        }
        error_groups.add(entry);
    });
    let traces = traces::traces_within(store, deadline);
    let failed = traces.traces.iter().filter(|t| t.failed()).count();
    let cut_short = logs_read.is_err() || traces.cut_short;
    html! {
        @if cut_short { (super::cut_short_note(store.page_budget)) }
        p {
            "Local Cloud Trace / Cloud Monitoring emulator: gRPC services google.devtools.cloudtrace.v2.TraceService, "
            "google.devtools.cloudtrace.v1.TraceService and google.monitoring.v3.MetricService on this port, "
            "and this console showing what Cloud Logging, Cloud Trace, Cloud Monitoring and Error Reporting would show."
        }
        div.cards #counters {
            (card("/logs", "Log entries", report.logs.entries_stored, &format!("{warnings} warnings, {errors_logged} errors")))
            (card("/traces", "Traces", traces.traces.len() as u64, &format!("{} spans, {failed} with errors", report.traces.spans_stored)))
            (card("/metrics", "Time series", report.metrics.series, &format!("{} points", report.metrics.points_stored)))
            (card("/errors", "Error groups", error_groups.len() as u64, "by type and location"))
        }
        h2 { "Storage" }
        ul {
            li { "spans: " (report.traces.spans_stored) " stored, " (report.traces.spans_dropped) " dropped (cap), " (report.traces.spans_truncated) " truncated, " (report.traces.requests_rejected) " trace requests rejected" }
            li { "metrics: " (report.metrics.series) " series, " (report.metrics.points_stored) " points stored, " (report.metrics.points_dropped) " dropped (cap), " (report.metrics.requests_rejected) " metric requests rejected" }
            li { "logs: " (report.logs.entries_stored) " entries stored, " (report.logs.entries_dropped) " dropped (cap), " (report.logs.lines_oversized) " oversized, " (report.logs.lines_lost) " lost" }
        }
        p { "JSON counters: " a href="/api/status" { "/api/status" } }
    }
}

fn card(href: &str, label: &str, n: u64, detail: &str) -> Markup {
    html! {
        div.card {
            a href=(href) {
                div.muted { (label) }
                div.n { (n) }
            }
            div.muted { (detail) }
        }
    }
}
