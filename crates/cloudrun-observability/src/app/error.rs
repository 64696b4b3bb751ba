//! The one error type of the HTTP API and how it becomes a response.
//!
//! Every failure a handler can meet is an [`AppError`]; its `IntoResponse`
//! answers with the JSON body `{"error": {"code", "message"[, "field"]}}` and
//! a fitting status. Client errors (4xx) say exactly what is wrong. Server
//! errors (5xx) hide their internals from the client, and put an
//! [`ErrorReport`] with the whole cause chain and the place the error arose
//! into the response's extensions, where the request middleware logs it once.

use std::panic::Location;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use thiserror::Error;

use super::downstream::DownstreamError;
use crate::telemetry::logs::error_reporting::{
    cause_chain, CaughtPanic, ErrorReport, ErrorType, ReportLocation,
};

/// Everything that can go wrong while answering a request.
#[derive(Debug, Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    #[error("{message}")]
    Unprocessable { message: String, field: String },
    #[error("request body is larger than the {limit} bytes allowed")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within its budget (`BODY_READ_TIMEOUT_MS`).
    #[error(transparent)]
    BodyTimeout(#[from] super::server::BodyReadTimeout),
    #[error("expected a request with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Conflict(String),
    /// A payment the (simulated) card issuer refused.
    #[error("{0}")]
    PaymentDeclined(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A dependency failed; answered 502.
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// A bug in this service; answered 500.
    #[error(transparent)]
    Fault(BugReport),
}

/// A bug in this service, which knows where it surfaced: Error Reporting
/// groups by that place. Handlers' own error types implement it, so this
/// module depends on none of them.
pub trait Bug: std::error::Error + Send + Sync + 'static {
    fn location(&self) -> &'static std::panic::Location<'static>;
}

/// A [`Bug`] as an error value: its message and causes, unchanged.
#[derive(Debug)]
pub struct BugReport(pub Box<dyn Bug>);

impl std::fmt::Display for BugReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BugReport {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The JSON error body.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            message: message.into(),
            field: field.to_owned(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Downstream(_) => StatusCode::BAD_GATEWAY,
            Self::Fault(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name for the error.
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::BadRequest { .. } => "bad_request",
            Self::Unprocessable { .. } => "invalid_field",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout(_) => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Conflict(_) => "conflict",
            Self::PaymentDeclined(_) => "card_declined",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Downstream(error) => error.code(),
            Self::Fault(_) => "internal",
        }
    }

    /// What the client is told: everything for its own mistakes, a summary
    /// for ours (the details go to the logs).
    fn client_message(&self) -> String {
        match self {
            Self::Downstream(error) => error.client_message(),
            Self::Fault(_) => "internal error; it has been logged".to_owned(),
            other => other.to_string(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } => field.as_deref(),
            Self::Unprocessable { field, .. } => Some(field),
            _ => None,
        }
    }

    fn error_type(&self) -> Option<ErrorType> {
        match self {
            Self::Downstream(_) => Some(ErrorType::DownstreamFailure),
            Self::Fault(_) => Some(ErrorType::HandlerError),
            _ => None,
        }
    }

    fn dependency(&self) -> Option<&'static str> {
        match self {
            Self::Downstream(error) => Some(error.dependency()),
            _ => None,
        }
    }

    fn origin(&self) -> Option<&'static Location<'static>> {
        match self {
            Self::Downstream(error) => Some(error.location()),
            Self::Fault(error) => Some(error.0.location()),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.client_message(),
                field: self.field(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let (Some(error_type), Some(origin)) = (self.error_type(), self.origin()) {
            response.extensions_mut().insert(ErrorReport {
                error_type,
                message: cause_chain(&self),
                location: ReportLocation::from_caller(origin),
                dependency: self.dependency(),
            });
        }
        response
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

/// Answers requests no route matches.
pub async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::NotFound(format!("no route for {}", uri.path()))
}

/// Answers a known path with the wrong method.
pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// The response to a caught panic. The panic hook has already logged it,
/// with its location and the request, so only the client is answered here.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    let body = ErrorBody {
        error: ErrorDetail {
            code: "internal",
            message: "internal error; it has been logged".to_owned(),
            field: None,
        },
    };
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    response.extensions_mut().insert(CaughtPanic { message });
    response
}
