//! Calls to the services an order depends on: inventory and payments.
//!
//! Both are plain HTTP JSON endpoints under `DOWNSTREAM_URL`; locally that is
//! this same process, on Cloud Run a second service. Each call carries the
//! request's trace context as `traceparent`, so the downstream service's
//! logs and spans join the caller's trace.

use std::panic::Location;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::telemetry::trace_context::{format_traceparent, TraceContext};

/// How long one downstream call may take before the order gives up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for the downstream services.
#[derive(Clone, Debug)]
pub struct DownstreamClient {
    http: reqwest::Client,
    base_url: String,
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
            DownstreamFailure::Unreachable { .. } | DownstreamFailure::BadResponse { .. } => {
                format!("{} is unavailable; please retry", self.dependency)
            }
        }
    }

    /// The HTTP status the dependency answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.failure {
            DownstreamFailure::Rejected { status, .. }
            | DownstreamFailure::BadResponse { status, .. } => Some(*status),
            DownstreamFailure::Unreachable { .. } => None,
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
    pub fn new(base_url: String) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .user_agent(concat!(
                "cloudrun-observability/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self { http, base_url })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// POSTs `body` as JSON to `path` and decodes the JSON answer.
    #[track_caller]
    pub fn post_json<'a, B, R>(
        &'a self,
        dependency: &'static str,
        operation: &'static str,
        path: &'static str,
        body: &'a B,
        trace: Option<TraceContext>,
    ) -> impl std::future::Future<Output = Result<R, DownstreamError>> + Send + 'a
    where
        B: Serialize + Sync,
        R: DeserializeOwned,
    {
        // Captured here, outside the future, so the error points at the call.
        let caller = Location::caller();
        let url = format!("{}{path}", self.base_url);
        async move {
            let fail = |failure| DownstreamError {
                dependency,
                operation,
                failure,
                location: caller,
            };
            let mut request = self.http.post(&url).json(body);
            if let Some(trace) = trace {
                request = request.header("traceparent", format_traceparent(&trace));
            }
            let response = request.send().await.map_err(|source| {
                fail(DownstreamFailure::Unreachable {
                    url: url.clone(),
                    source,
                })
            })?;
            let status = response.status();
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
    }
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
