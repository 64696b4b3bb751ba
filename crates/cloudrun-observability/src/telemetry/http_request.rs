//! The request's `httpRequest` fields as the logs, the error entries and
//! the request span carry them: method, URL with its credentials redacted,
//! user agent and the client's address.
//!
//! Kept apart from the request middleware because these are the parts that
//! read untrusted input (the query string, `User-Agent`,
//! `X-Forwarded-For`), and their rules are the service's protection against
//! it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use http::header::USER_AGENT;

use crate::telemetry::logs::error_reporting::HttpContext;

/// The request's [`HttpContext`] (no status yet).
pub(crate) fn http_context(request: &Request) -> HttpContext {
    let headers = request.headers();
    HttpContext {
        method: request.method().to_string(),
        url: redacted_url(request.uri()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        remote_ip: client_ip(request),
        response_status_code: None,
    }
}

/// Query parameter names whose values are credentials, matched without case
/// and as parts of a name (`access_token`, `X-Amz-Signature`, `apikey`).
const SECRET_PARAMETERS: &[&str] = &[
    "token",
    "key",
    "password",
    "passwd",
    "secret",
    "signature",
    "sig",
    "auth",
    "credential",
    "session",
    "code",
];

/// The URL as logged: the query's credential values replaced by `REDACTED`.
/// `httpRequest.requestUrl` goes to Cloud Logging, readable by everyone with
/// log access; a token in a link must not go with it.
fn redacted_url(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let lowered = name.to_ascii_lowercase();
            if pair.contains('=') && SECRET_PARAMETERS.iter().any(|s| lowered.contains(s)) {
                format!("{name}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
}

/// The client's address: the first hop of `X-Forwarded-For` (Cloud Run's
/// front end puts the client there), else the peer of the connection.
fn client_ip(request: &Request) -> Option<String> {
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .map(str::trim)
        .filter(|hop| hop.parse::<std::net::IpAddr>().is_ok());
    match forwarded {
        Some(hop) => Some(hop.to_owned()),
        None => request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_query_are_redacted_and_the_rest_kept() {
        let url = |text: &str| redacted_url(&text.parse().unwrap());
        assert_eq!(
            url("/api/books/1?access_token=abc&page=2&X-Amz-Signature=s&apiKey=k&q=key"),
            "/api/books/1?access_token=REDACTED&page=2&X-Amz-Signature=REDACTED&apiKey=REDACTED&q=key"
        );
        assert_eq!(url("/api/books?page=2&flag"), "/api/books?page=2&flag");
        assert_eq!(url("/healthz"), "/healthz");
    }
}
