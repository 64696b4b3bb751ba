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
//!
//! Pages that list data are paginated, and every HTML page is cut at
//! [`MAX_PAGE_BYTES`] ([`cap_page`]): whatever was received, the console
//! never answers with a page a browser cannot open. Pages that search the
//! stores (logs, metrics) compute on a blocking thread within a time
//! budget ([`within_budget`]): over a huge store they stop, show what they
//! found and say so ([`cut_short_note`]), rather than run for seconds.

pub mod chart;
pub mod errors;
pub mod incidents;
pub mod layout;
pub mod logs;
pub mod metrics;
pub mod overview;
pub mod slo;
pub mod traces;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use super::EmulatorStore;
use crate::deadline::Deadline;

/// How long a page may search the stores by default
/// ([`EmulatorConfig::console_page_budget`](crate::EmulatorConfig)): a
/// person waits this long for a page, and the stores' writers never wait
/// for it (reads take the locks in short turns).
pub const DEFAULT_PAGE_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Renders a page on a blocking thread, its deadline the store's page
/// budget from now: a search over many entries is CPU work that must not
/// hold up the async workers serving gRPC ingest beside it.
pub(crate) async fn within_budget(
    store: EmulatorStore,
    render: impl FnOnce(&EmulatorStore, Deadline) -> Markup + Send + 'static,
) -> Markup {
    let deadline = Deadline::after(store.page_budget);
    tokio::task::spawn_blocking(move || render(&store, deadline))
        .await
        .unwrap_or_else(|e| html! { p #page-failed { "This page failed: " (e.to_string()) } })
}

/// Says that a page stopped at its time budget and shows only part of
/// what it would have.
pub(crate) fn cut_short_note(budget: std::time::Duration) -> Markup {
    html! {
        p #cut-short.warning {
            b { "This page was cut short" }
            ": it stopped searching after its time budget of " (budget.as_millis()) " ms and shows what it had found by then. Narrow the filter or the window."
        }
    }
}

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
        .layer(axum::middleware::map_response(cap_page))
        .with_state(store)
}

/// The largest HTML page the console sends.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Cuts an HTML page past [`MAX_PAGE_BYTES`] and says so at its end. The
/// pages bound what they render (pages of entries, previews of long
/// values); this is the backstop for shapes they did not foresee.
async fn cap_page(response: Response) -> Response {
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Pages are rendered whole before they are sent: reading the body back
    // costs no more memory than rendering it did.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if bytes.len() <= MAX_PAGE_BYTES {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut cut = MAX_PAGE_BYTES;
    while cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    let mut page = bytes[..cut].to_vec();
    page.extend_from_slice(
        format!(
            "<p id=\"page-cut\"><b>This page was cut at {MAX_PAGE_BYTES} bytes of {}.</b> Narrow the filter or follow a link to a single item.</p>",
            bytes.len()
        )
        .as_bytes(),
    );
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}

/// `text` percent-encoded for a query string value.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn capped(content_type: &str, body: String) -> (usize, String) {
        let response = Response::builder()
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let bytes = axum::body::to_bytes(cap_page(response).await.into_body(), usize::MAX)
            .await
            .unwrap();
        (bytes.len(), String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn html_past_the_cap_is_cut_on_a_character_boundary_and_says_so() {
        let (len, page) = capped("text/html; charset=utf-8", "é".repeat(MAX_PAGE_BYTES)).await;
        assert!(len < MAX_PAGE_BYTES + 300, "{len}");
        assert!(page.ends_with("follow a link to a single item.</p>"));
        let (len, _) = capped("text/html", "x".repeat(1000)).await;
        assert_eq!(len, 1000);
        // JSON is never cut: a cut document would not parse.
        let (len, _) = capped("application/json", "x".repeat(MAX_PAGE_BYTES + 1)).await;
        assert_eq!(len, MAX_PAGE_BYTES + 1);
    }
}
