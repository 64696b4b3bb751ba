//! A plain HTTP/1 route next to gRPC: the JSON status.
//!
//! It lets a developer (and the tests) check with `curl` that the emulator
//! runs and what it holds; the web [`console`](crate::console) serves `/`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::EmulatorStore;
use crate::logging::store::LogStats;
use crate::monitoring::store::MetricStats;
use crate::trace::store::TraceStats;

/// Body of `GET /api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub traces: TraceStats,
    pub metrics: MetricStats,
    pub logs: LogStats,
}

pub(crate) fn routes(store: EmulatorStore) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .with_state(store)
}

/// The counters `/api/status` serves.
pub fn report(store: &EmulatorStore) -> StatusReport {
    StatusReport {
        traces: store.traces.stats(),
        metrics: store.metrics.stats(),
        logs: store.logs.stats(),
    }
}

async fn status(State(store): State<EmulatorStore>) -> Json<StatusReport> {
    Json(report(&store))
}
