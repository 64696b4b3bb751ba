//! Plain HTTP/1 routes next to gRPC: a landing page and a JSON status.
//!
//! They let a developer check with a browser or `curl` that the emulator runs
//! and what it holds; the web console of a later issue joins this router.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::metric_store::MetricStats;
use super::trace_store::TraceStats;
use super::EmulatorStore;

/// Body of `GET /api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub traces: TraceStats,
    pub metrics: MetricStats,
}

pub(crate) fn routes(store: EmulatorStore) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/status", get(status))
        .with_state(store)
}

/// The counters `/api/status` serves.
pub fn report(store: &EmulatorStore) -> StatusReport {
    StatusReport {
        traces: store.traces.stats(),
        metrics: store.metrics.stats(),
    }
}

async fn status(State(store): State<EmulatorStore>) -> Json<StatusReport> {
    Json(report(&store))
}

async fn index(State(store): State<EmulatorStore>) -> Html<String> {
    let r = report(&store);
    Html(format!(
        "<!doctype html><html><head><title>Cloud Ops emulator</title></head><body>\
         <h1>Cloud Trace / Cloud Monitoring emulator</h1>\
         <p>gRPC services: google.devtools.cloudtrace.v2.TraceService, \
         google.devtools.cloudtrace.v1.TraceService, google.monitoring.v3.MetricService.</p>\
         <ul><li>spans stored: {}</li><li>spans dropped (cap): {}</li>\
         <li>spans truncated: {}</li><li>trace requests rejected: {}</li>\
         <li>time series: {}</li><li>points stored: {}</li><li>points dropped (cap): {}</li>\
         <li>metric requests rejected: {}</li></ul>\
         <p>JSON: <a href=\"/api/status\">/api/status</a></p></body></html>",
        r.traces.spans_stored,
        r.traces.spans_dropped,
        r.traces.spans_truncated,
        r.traces.requests_rejected,
        r.metrics.series,
        r.metrics.points_stored,
        r.metrics.points_dropped,
        r.metrics.requests_rejected,
    ))
}
