//! The HTTP service: a small bookshop whose every request is observable.
//!
//! [`Application::build`] binds the listener (so the port is known, and
//! tests can bind port 0), [`Application::run_until_stopped`] serves until
//! the shutdown signal and drains in-flight requests. [`router`] assembles
//! the routes and middleware; tests use it through the same functions the
//! binary uses.

pub mod books;
pub mod catalog;
pub mod downstream;
pub mod error;
pub mod extract;
pub mod faults;
pub mod internal;
pub mod orders;
pub mod server;
pub mod sessions;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use thiserror::Error;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use self::downstream::DownstreamClient;
use self::server::ReadTimeouts;
use self::sessions::{SessionLayerState, SessionTracker};
use crate::config::Config;
use crate::platform::metadata::MetadataClient;
use crate::telemetry::http_request::TrustedHops;
use crate::telemetry::middleware;

/// How long in-flight requests may take to finish after the shutdown signal.
/// Cloud Run kills the container 10 s after SIGTERM; this leaves time to
/// flush telemetry afterwards.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(7);

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub service: Arc<ServiceInfo>,
    pub downstream: DownstreamClient,
    pub sessions: Arc<SessionTracker>,
    pub payment_failure_rate: f64,
}

/// Who this service is, as `GET /` tells.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceInfo {
    pub service: String,
    pub revision: String,
    pub version: &'static str,
}

/// The service could not start.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not build the HTTP client for downstream calls")]
    HttpClient(#[from] reqwest::Error),
}

/// The service, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    sessions: Arc<SessionTracker>,
    timeouts: ReadTimeouts,
}

impl Application {
    /// Binds `config.listen_addr` and assembles the service.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let bind_error = |source| StartupError::Bind {
            addr: config.listen_addr,
            source,
        };
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        // Without a DOWNSTREAM_URL this process plays the downstream services.
        let downstream_url = config
            .downstream_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", local_addr.port()));
        let sessions = Arc::new(SessionTracker::default());
        let state = AppState {
            service: Arc::new(ServiceInfo {
                service: config.service_name().to_owned(),
                revision: config
                    .cloud_run
                    .as_ref()
                    .map(|run| run.revision.clone())
                    .unwrap_or_else(|| "local".to_owned()),
                version: env!("CARGO_PKG_VERSION"),
            }),
            downstream: DownstreamClient::new(downstream_url, id_token_source(config))?,
            sessions: Arc::clone(&sessions),
            payment_failure_rate: config.payment_failure_rate,
        };
        let options = RouterOptions {
            fault_routes: config.enable_fault_routes,
            telemetry: config.telemetry_enabled,
            secure_cookies: config.cloud_run.is_some(),
            trusted_hops: TrustedHops(config.forwarded_for_trusted_hops),
        };
        Ok(Self {
            listener,
            local_addr,
            router: router(state, options),
            sessions,
            timeouts: ReadTimeouts {
                header: config.header_read_timeout,
                body: config.body_read_timeout,
            },
        })
    }

    /// The address the service listens on (with the real port when 0 was
    /// asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The session tracker, for the active-sessions metric.
    pub fn sessions(&self) -> Arc<SessionTracker> {
        Arc::clone(&self.sessions)
    }

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// in-flight requests finish, for at most [`DRAIN_TIMEOUT`].
    pub async fn run_until_stopped<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown signal received; draining in-flight requests");
            let _ = stopping_tx.send(());
        };
        let server = async {
            server::serve(self.listener, self.router, self.timeouts, signal).await;
            Ok(())
        };
        let drain_deadline = async {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result,
            () = drain_deadline => {
                tracing::warn!(
                    timeout_s = DRAIN_TIMEOUT.as_secs(),
                    "in-flight requests did not finish in time; stopping anyway"
                );
                Ok(())
            }
        }
    }
}

/// On Cloud Run, the downstream service is a second, private Cloud Run
/// service, which only accepts calls with a Google-signed ID token; the
/// metadata server provides it. (Without `DOWNSTREAM_URL` this process is
/// its own downstream and needs none.)
fn id_token_source(config: &Config) -> Option<MetadataClient> {
    if config.cloud_run.is_none() || config.downstream_url.is_none() {
        return None;
    }
    config.metadata_server().map(MetadataClient::new)
}

/// Which optional parts the router has.
#[derive(Clone, Copy, Debug)]
pub struct RouterOptions {
    pub fault_routes: bool,
    pub telemetry: bool,
    pub secure_cookies: bool,
    /// Whose `X-Forwarded-For` entries name the client.
    pub trusted_hops: TrustedHops,
}

/// All routes and middleware.
pub fn router(state: AppState, options: RouterOptions) -> Router {
    let session_state = SessionLayerState {
        tracker: Arc::clone(&state.sessions),
        secure: options.secure_cookies,
    };
    let mut public = Router::new()
        .route("/", get(root))
        .route("/api/books", get(books::list_books))
        .route("/api/books/{id}", get(books::get_book))
        .route("/api/orders", post(orders::create_order));
    if options.fault_routes {
        public = public
            .route("/api/faults/error", get(faults::error))
            .route("/api/faults/panic", get(faults::panic))
            .route("/api/faults/slow", get(faults::slow));
    }
    // Health checks and service-to-service calls are not visitors: they
    // would count as a new session each time.
    let public = public.route_layer(axum::middleware::from_fn_with_state(
        session_state,
        sessions::track_session,
    ));
    let unsessioned = Router::new()
        .route("/healthz", get(healthz))
        .route("/internal/inventory/reserve", post(internal::reserve))
        .route("/internal/payments/charge", post(internal::charge));

    let router = public
        .merge(unsessioned)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state);
    if options.telemetry {
        router.layer(axum::middleware::from_fn_with_state(
            options.trusted_hops,
            middleware::track_request,
        ))
    } else {
        router
    }
}

/// `GET /`: which service, revision and version answered.
async fn root(State(state): State<AppState>) -> Json<ServiceInfo> {
    Json(ServiceInfo::clone(&state.service))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// `GET /healthz`: liveness, for Cloud Run's probes and the uptime check.
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}
