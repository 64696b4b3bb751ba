//! The emulator's local web console: what Cloud Logging, Cloud Trace, Cloud
//! Monitoring and Error Reporting would show for this service, from the data
//! the emulator really received.
//!
//! Plain server-rendered HTML on the emulator's own port (HTTP/1 next to
//! gRPC), with no login: the emulator binds to loopback by default. Pages are
//! written with `maud`, which escapes every interpolated value, because log
//! lines and span attributes carry user input. Charts are SVG drawn here
//! ([`chart`]); nothing is fetched from anywhere at run time.
//!
//! - [`overview`]: `/`, counters and links;
//! - [`logs`]: `/logs` and the `POST /api/logs` ingest endpoint;
//! - [`traces`]: `/traces` and the `/traces/{trace_id}` waterfall;
//! - [`metrics`]: `/metrics`, request rate, 5xx share, latency percentiles,
//!   active sessions, per route;
//! - [`errors`]: `/errors`, error entries grouped as Error Reporting does;
//! - [`incidents`]: `/incidents` and `GET /api/incidents`, the alert
//!   policies loaded from Terraform, their incidents and notifications;
//! - [`slo`]: `/slo`, each SLO's goal, SLI, error budget left and burn
//!   rates, with the incidents its burn-rate alerts opened.

pub mod chart;
pub mod errors;
pub mod incidents;
pub mod layout;
pub mod logs;
pub mod metrics;
pub mod overview;
pub mod slo;
pub mod traces;

use axum::routing::{get, post};
use axum::Router;

use super::EmulatorStore;

/// The console's routes, to merge into the emulator's router.
pub fn routes(store: EmulatorStore) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/logs", get(logs::page))
        .route("/api/logs", post(logs::ingest))
        .route("/traces", get(traces::list_page))
        .route("/traces/{trace_id}", get(traces::trace_page))
        .route("/metrics", get(metrics::page))
        .route("/errors", get(errors::page))
        .route("/incidents", get(incidents::page))
        .route("/api/incidents", get(incidents::api))
        .route("/slo", get(slo::page))
        .layer(logs::body_limit())
        .with_state(store)
}
