//! Calls to the services an order depends on: inventory and payments.
//!
//! Both are plain HTTP JSON endpoints under `DOWNSTREAM_URL`; locally that is
//! this same process, on Cloud Run a second, private service. Each call is a
//! CLIENT span and carries its trace context as `traceparent`, so the
//! downstream service's logs and spans join the caller's trace. On Cloud Run
//! each call also carries a Google-signed ID token for the downstream URL,
//! from the metadata server: that is what lets only this service's account
//! invoke the private backend.

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::Status;
use tokio::sync::Mutex;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::platform::metadata::MetadataClient;
use crate::telemetry::traces;
use crate::telemetry::traces::context::format_traceparent;

/// How long one downstream call may take before the order gives up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// ID tokens are valid for an hour; this one is renewed well before.
const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(45 * 60);

/// A client for the downstream services.
#[derive(Clone, Debug)]
pub struct DownstreamClient {
    http: reqwest::Client,
    base_url: String,
    id_tokens: Option<Arc<IdTokenSource>>,
}

/// Google-signed ID tokens for the downstream URL, from the metadata server,
/// cached until they near expiry.
#[derive(Debug)]
struct IdTokenSource {
    metadata: MetadataClient,
    audience: String,
    cached: Mutex<Option<(String, Instant)>>,
}

impl IdTokenSource {
    async fn token(&self) -> Option<String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, fetched)) = cached.as_ref() {
            if fetched.elapsed() < ID_TOKEN_LIFETIME {
                return Some(token.clone());
            }
        }
        let token = self.metadata.identity_token(&self.audience).await?;
        *cached = Some((token.clone(), Instant::now()));
        Some(token)
    }
}

/// A downstream call that failed: which dependency, doing what, and why.
#[derive(Debug, Error)]
#[error("could not {operation}")]
pub struct DownstreamError {
    pub dependency: &'static str,
    pub operation: &'static str,
    #[source]
    pub failure: DownstreamFailure,
    location: &'static Location<'static>,
}

/// Why a downstream call failed.
#[derive(Debug, Error)]
pub enum DownstreamFailure {
    #[error("POST {url} failed")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("POST {url} answered {status}: {message} (code {code})")]
    Rejected {
        url: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("no ID token for {audience} from the metadata server")]
    NoIdToken { audience: String },
    #[error("POST {url} answered {status} with a body that is not the expected JSON")]
    BadResponse {
        url: String,
        status: StatusCode,
        #[source]
        source: reqwest::Error,
    },
}

impl DownstreamError {
    #[cfg(test)]
    #[track_caller]
    fn new(dependency: &'static str, operation: &'static str, failure: DownstreamFailure) -> Self {
        Self {
            dependency,
            operation,
            failure,
            location: Location::caller(),
        }
    }

    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    pub fn dependency(&self) -> &'static str {
        self.dependency
    }

    /// The error code the client of an order sees.
    pub fn code(&self) -> &'static str {
        match self.dependency {
            "payments" => "payment_failed",
            "inventory" => "inventory_unavailable",
            _ => "dependency_failed",
        }
    }

    /// What the client is told: which step failed, without internal URLs.
    pub fn client_message(&self) -> String {
        match &self.failure {
            DownstreamFailure::Rejected { message, .. } => {
                format!("{} failed: {message}", self.dependency)
            }
            DownstreamFailure::Unreachable { .. }
            | DownstreamFailure::BadResponse { .. }
            | DownstreamFailure::NoIdToken { .. } => {
                format!("{} is unavailable; please retry", self.dependency)
            }
        }
    }
}

/// The error body every service of this project answers with.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorFields,
}

#[derive(Debug, Deserialize)]
struct ErrorFields {
    code: String,
    message: String,
}

impl DownstreamClient {
    /// A client for `base_url`; with `metadata`, every call carries an ID
    /// token for `base_url` (on Cloud Run, for an `https` downstream).
    pub fn new(base_url: String, metadata: Option<MetadataClient>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .user_agent(concat!(
                "cloudrun-observability/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        let id_tokens = metadata.map(|metadata| {
            Arc::new(IdTokenSource {
                metadata,
                audience: base_url.clone(),
                cached: Mutex::new(None),
            })
        });
        Ok(Self {
            http,
            base_url,
            id_tokens,
        })
    }

    /// POSTs `body` as JSON to `path` in a CLIENT span and decodes the JSON
    /// answer.
    #[track_caller]
    pub fn post_json<'a, B, R>(
        &'a self,
        dependency: &'static str,
        operation: &'static str,
        path: &'static str,
        body: &'a B,
    ) -> impl std::future::Future<Output = Result<R, DownstreamError>> + Send + 'a
    where
        B: Serialize + Sync,
        R: DeserializeOwned,
    {
        // Captured here, outside the future, so the error points at the call.
        let caller = Location::caller();
        let url = format!("{}{path}", self.base_url);
        let span = client_span(path, &url);
        let call = {
            let span = span.clone();
            async move {
                let fail = |failure| DownstreamError {
                    dependency,
                    operation,
                    failure,
                    location: caller,
                };
                let mut request = self.http.post(&url).json(body);
                if let Some(trace) = traces::trace_context_of(&span) {
                    request = request.header("traceparent", format_traceparent(&trace));
                    if let Some(state) = traces::trace_state_of(&span) {
                        request = request.header("tracestate", state);
                    }
                }
                if let Some(tokens) = &self.id_tokens {
                    let token = tokens.token().await.ok_or_else(|| {
                        fail(DownstreamFailure::NoIdToken {
                            audience: tokens.audience.clone(),
                        })
                    })?;
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.map_err(|source| {
                    fail(DownstreamFailure::Unreachable {
                        url: url.clone(),
                        source,
                    })
                })?;
                let status = response.status();
                span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
                if status.is_success() {
                    return response.json::<R>().await.map_err(|source| {
                        fail(DownstreamFailure::BadResponse {
                            url: url.clone(),
                            status,
                            source,
                        })
                    });
                }
                match response.json::<ErrorEnvelope>().await {
                    Ok(envelope) => Err(fail(DownstreamFailure::Rejected {
                        url,
                        status,
                        code: envelope.error.code,
                        message: envelope.error.message,
                    })),
                    Err(source) => Err(fail(DownstreamFailure::BadResponse {
                        url,
                        status,
                        source,
                    })),
                }
            }
        };
        async move {
            let result = call.instrument(span.clone()).await;
            if let Err(error) = &result {
                span.set_status(Status::error(
                    crate::telemetry::logs::error_reporting::cause_chain(error),
                ));
            }
            result
        }
    }
}

/// The CLIENT span of one downstream call, named after the route template.
fn client_span(path: &str, url: &str) -> tracing::Span {
    let span = tracing::info_span!("downstream", otel.name = %format!("POST {path}"), otel.kind = "client");
    span.set_attribute("http.request.method", "POST");
    span.set_attribute("url.full", url.to_owned());
    if let Ok(parsed) = reqwest::Url::parse(url) {
        if let Some(host) = parsed.host_str() {
            span.set_attribute("server.address", host.to_owned());
        }
        if let Some(port) = parsed.port_or_known_default() {
            span.set_attribute("server.port", i64::from(port));
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_hide_internal_urls() {
        let error = DownstreamError::new(
            "payments",
            "charge the payment",
            DownstreamFailure::Rejected {
                url: "http://10.0.0.1/internal/payments/charge".into(),
                status: StatusCode::PAYMENT_REQUIRED,
                code: "card_declined".into(),
                message: "card declined by the issuer".into(),
            },
        );
        assert_eq!(error.code(), "payment_failed");
        assert_eq!(
            error.client_message(),
            "payments failed: card declined by the issuer"
        );
        assert!(!error.client_message().contains("10.0.0.1"));
        assert!(error.location().file().ends_with("downstream.rs"));
    }
}
