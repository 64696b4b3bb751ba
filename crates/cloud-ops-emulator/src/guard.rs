//! What every plain-HTTP request to the emulator passes, as local
//! development servers guard themselves: the emulator has no login and
//! listens on loopback, so the threats are a web page in the developer's
//! browser, not a remote attacker.
//!
//! - **DNS rebinding**: a page on `evil.example` whose name is made to point
//!   at 127.0.0.1 could read the console. A request bound to a loopback
//!   address must name a loopback host (`localhost`, `127.0.0.1`, `[::1]`);
//!   anything else is 403.
//! - **Cross-site posts**: a page may `POST` to any address as a "simple"
//!   request (`text/plain`, a form) without asking first. The one ingest
//!   route that takes a body from a browser-reachable port,
//!   `POST /api/logs`, refuses those content types (415): a page would
//!   need a CORS preflight, which the emulator never grants.
//! - **Unknown paths** are 404 with a JSON reason, not gRPC's
//!   "unimplemented" with status 200 (which a gRPC client still gets).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

/// `router` with the Host check when it listens on `bound` and that is a
/// loopback address.
pub(crate) fn protect(router: Router, bound: IpAddr) -> Router {
    if bound.is_loopback() {
        router.layer(axum::middleware::from_fn_with_state(
            LoopbackOnly,
            loopback_host_only,
        ))
    } else {
        router
    }
}

#[derive(Clone, Copy)]
struct LoopbackOnly;

async fn loopback_host_only(
    State(_): State<LoopbackOnly>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(host) if !is_loopback_host(&host) => error(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "the emulator listens on loopback and answers only requests for localhost, 127.0.0.1 or [::1], not {host:?}"
            ),
        ),
        _ => next.run(request).await,
    }
}

/// `localhost`, a loopback IP, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// 415 for the content types a cross-site page may post without a
/// preflight; `None` when the request may go on.
pub(crate) fn refuse_simple_post(headers: &HeaderMap) -> Option<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let simple = matches!(
        content_type.as_str(),
        "" | "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
    );
    simple.then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            format!(
                "send log lines with Content-Type: application/x-ndjson (got {:?}); a type a web page may post across sites is refused",
                if content_type.is_empty() { "none" } else { &content_type }
            ),
        )
    })
}

/// The emulator's answer to a path it does not serve: gRPC's
/// "unimplemented" to a gRPC client, 404 to anything else.
pub(crate) async fn not_found(
    method: Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        let (parts, ()) = tonic::Status::unimplemented("")
            .into_http::<()>()
            .into_parts();
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {method} {}; the console's pages are /, /logs, /traces, /metrics, /errors, /incidents",
            uri.path()
        ),
    )
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_pass_and_others_do_not() {
        for host in [
            "localhost",
            "localhost:8085",
            "127.0.0.1:8085",
            "127.1.2.3",
            "[::1]:8085",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8085",
            "10.0.0.1:8085",
            "localhost.evil.example",
            "[2001:db8::1]:80",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn simple_content_types_are_refused_and_others_pass() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            if !value.is_empty() {
                headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            }
            refuse_simple_post(&headers).map(|r| r.status())
        };
        assert_eq!(with("text/plain"), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(
            with("text/plain; charset=utf-8"),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            with("application/x-www-form-urlencoded"),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(with(""), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(with("application/x-ndjson"), None);
        assert_eq!(with("application/json"), None);
    }
}
