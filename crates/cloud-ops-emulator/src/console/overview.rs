//! `/`: the console's landing page: what the emulator holds, with links to
//! each page. It names the emulator and its gRPC services, as the status
//! page it replaces did.

use axum::extract::State;
use maud::{html, Markup};

use super::layout::{self, Section};
use super::{errors, traces};
use crate::logging::store::Severity;
use crate::status;
use crate::EmulatorStore;

/// `GET /`.
pub async fn page(State(store): State<EmulatorStore>) -> Markup {
    let report = status::report(&store);
    let entries = store.logs.entries();
    let errors_logged = entries
        .iter()
        .filter(|e| e.severity >= Severity::Error)
        .count();
    let warnings = entries
        .iter()
        .filter(|e| e.severity == Severity::Warning)
        .count();
    let error_groups = errors::group(&entries).len();
    let traces = traces::all_traces(&store);
    let failed = traces.iter().filter(|t| t.failed()).count();
    let body = html! {
        p {
            "Local Cloud Trace / Cloud Monitoring emulator: gRPC services google.devtools.cloudtrace.v2.TraceService, "
            "google.devtools.cloudtrace.v1.TraceService and google.monitoring.v3.MetricService on this port, "
            "and this console showing what Cloud Logging, Cloud Trace, Cloud Monitoring and Error Reporting would show."
        }
        div.cards #counters {
            (card("/logs", "Log entries", report.logs.entries_stored, &format!("{warnings} warnings, {errors_logged} errors")))
            (card("/traces", "Traces", traces.len() as u64, &format!("{} spans, {failed} with errors", report.traces.spans_stored)))
            (card("/metrics", "Time series", report.metrics.series, &format!("{} points", report.metrics.points_stored)))
            (card("/errors", "Error groups", error_groups as u64, "by type and location"))
        }
        h2 { "Storage" }
        ul {
            li { "spans: " (report.traces.spans_stored) " stored, " (report.traces.spans_dropped) " dropped (cap), " (report.traces.spans_truncated) " truncated, " (report.traces.requests_rejected) " trace requests rejected" }
            li { "metrics: " (report.metrics.series) " series, " (report.metrics.points_stored) " points stored, " (report.metrics.points_dropped) " dropped (cap), " (report.metrics.requests_rejected) " metric requests rejected" }
            li { "logs: " (report.logs.entries_stored) " entries stored, " (report.logs.entries_dropped) " dropped (cap), " (report.logs.lines_oversized) " oversized, " (report.logs.lines_lost) " lost" }
        }
        p { "JSON counters: " a href="/api/status" { "/api/status" } }
    };
    layout::page(Section::Overview, "Overview", body)
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
