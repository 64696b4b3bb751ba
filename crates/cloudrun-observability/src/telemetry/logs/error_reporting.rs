//! Error entries that Cloud Error Reporting picks up from the logs.
//!
//! Error Reporting parses stack traces of Java, Python, Go and a few other
//! languages, but not Rust's. A Rust service must therefore mark an error
//! entry itself: `@type` names it a `ReportedErrorEvent`, `serviceContext`
//! groups it by service and version, and `context.reportLocation` says where
//! it happened (the entry carries no parsable stack trace). Each error is
//! logged once, as one ERROR entry built here: by the request middleware for
//! a handler's error, by the panic hook for a panic.

use std::borrow::Cow;
use std::cell::RefCell;
use std::panic::Location;

use serde::Serialize;

use crate::telemetry::logs::format::MAX_VALUE_BYTES;
use crate::telemetry::logs::json;

/// What kind of failure an error entry reports; the `errorType` field of the
/// entry and, later, the `error.type` attribute of the error metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// A handler returned an error it could not answer with a 4xx.
    HandlerError,
    /// A handler panicked; the panic was caught and answered 500.
    Panic,
    /// A call to a downstream service failed.
    DownstreamFailure,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandlerError => "handler_error",
            Self::Panic => "panic",
            Self::DownstreamFailure => "downstream_failure",
        }
    }
}

/// Where an error happened, in the shape of Error Reporting's
/// `context.reportLocation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLocation {
    pub file_path: Cow<'static, str>,
    pub line_number: u32,
    pub function_name: Cow<'static, str>,
}

impl ReportLocation {
    /// The location a `#[track_caller]` function was called from. Rust keeps
    /// no function names at run time, so the module the file holds stands in:
    /// Error Reporting shows it and groups by it.
    pub fn from_caller(location: &'static Location<'static>) -> Self {
        Self {
            file_path: Cow::Borrowed(location.file()),
            line_number: location.line(),
            function_name: Cow::Owned(module_of(location.file())),
        }
    }
}

/// The request an error happened in, in the shape of Error Reporting's
/// `context.httpRequest`. Kept on the request's span, so that the panic hook,
/// which knows nothing of the request, can still report it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpContext {
    pub method: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status_code: Option<u16>,
}

/// One error, ready to be logged as an Error Reporting entry.
#[derive(Clone, Debug)]
pub struct ErrorReport {
    pub error_type: ErrorType,
    /// The whole cause chain (`outer: inner: innermost`), or for a panic its
    /// message, location and backtrace.
    pub message: String,
    pub location: ReportLocation,
    /// For a downstream failure: which dependency failed (`payments`, ...).
    pub dependency: Option<&'static str>,
}

/// Marks the response to a caught panic, with the panic's message, for the
/// span's exception event. (The panic hook has already logged it.)
#[derive(Clone, Debug)]
pub struct CaughtPanic {
    pub message: String,
}

/// `serviceContext`: which service and version an error belongs to. Error
/// Reporting requires `service`.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceContext {
    pub service: String,
    pub version: String,
}

const REPORTED_ERROR_EVENT: &str =
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent";

thread_local! {
    /// The Error Reporting fields of the event being logged on this thread.
    /// `emit` fills it just before it logs the event and empties it right
    /// after; the log writer splices it into that one line. Logging is
    /// synchronous, so no other event can come between.
    static PENDING_REPORT: RefCell<Option<PendingReport>> = const { RefCell::new(None) };
}

/// What the log writer adds to the line of an error entry.
pub(crate) struct PendingReport {
    /// `"@type":…,"context":{…}` without the surrounding braces.
    pub json_fields: Vec<u8>,
    pub location: ReportLocation,
}

/// Logs `report` once, as an ERROR entry with the Error Reporting fields.
/// Its strings are capped as every logged string is (the request's user
/// agent and URL come from the client), so that the entry stays within
/// Cloud Logging's limit and reaches Error Reporting.
pub fn emit(report: &ErrorReport, http: Option<&HttpContext>) {
    let json_fields = report_fields(&report.location, http);
    PENDING_REPORT.with(|pending| {
        *pending.borrow_mut() = Some(PendingReport {
            json_fields,
            location: report.location.clone(),
        })
    });
    match report.dependency {
        Some(dependency) => tracing::error!(
            error_type = report.error_type.as_str(),
            dependency,
            "{}",
            report.message
        ),
        None => tracing::error!(
            error_type = report.error_type.as_str(),
            "{}",
            report.message
        ),
    }
    // The event may have been filtered out; never let its fields leak into
    // the next line.
    PENDING_REPORT.with(|pending| pending.borrow_mut().take());
}

/// `"@type":…,"context":{"reportLocation":{…},"httpRequest":{…}}`, every
/// string capped at [`MAX_VALUE_BYTES`].
fn report_fields(location: &ReportLocation, http: Option<&HttpContext>) -> Vec<u8> {
    let string =
        |out: &mut Vec<u8>, value: &str| json::push_string_capped(out, value, MAX_VALUE_BYTES);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"\"@type\":\"");
    out.extend_from_slice(REPORTED_ERROR_EVENT.as_bytes());
    out.extend_from_slice(b"\",\"context\":{\"reportLocation\":{\"filePath\":");
    string(&mut out, &location.file_path);
    out.extend_from_slice(b",\"lineNumber\":");
    json::push_u64(&mut out, u64::from(location.line_number));
    out.extend_from_slice(b",\"functionName\":");
    string(&mut out, &location.function_name);
    out.push(b'}');
    if let Some(http) = http {
        out.extend_from_slice(b",\"httpRequest\":{\"method\":");
        string(&mut out, &http.method);
        out.extend_from_slice(b",\"url\":");
        string(&mut out, &http.url);
        if let Some(user_agent) = &http.user_agent {
            out.extend_from_slice(b",\"userAgent\":");
            string(&mut out, user_agent);
        }
        if let Some(remote_ip) = &http.remote_ip {
            out.extend_from_slice(b",\"remoteIp\":");
            string(&mut out, remote_ip);
        }
        if let Some(status) = http.response_status_code {
            out.extend_from_slice(b",\"responseStatusCode\":");
            json::push_u64(&mut out, u64::from(status));
        }
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// Runs `f` on the Error Reporting fields pending for the line being written.
pub(crate) fn with_pending_report<R>(f: impl FnOnce(Option<&PendingReport>) -> R) -> R {
    PENDING_REPORT.with(|pending| f(pending.borrow().as_ref()))
}

/// Formats an error and its sources as `outer: inner: innermost`, the way
/// an operator reads a cause chain.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // thiserror's `#[error(transparent)]` and hand-written messages that
        // already include their source would repeat it.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The Rust module a source file of this crate holds, e.g.
/// `crates/cloudrun-observability/src/app/faults.rs` ->
/// `cloudrun_observability::app::faults`. Paths are as the compiler saw
/// them: relative to the workspace root, which is the repository's root,
/// so Error Reporting's links to the source are right as they are.
pub fn module_of(file: &str) -> String {
    let crate_src = concat!("crates/", env!("CARGO_PKG_NAME"), "/src/");
    let Some(relative) = file
        .strip_prefix(crate_src)
        .or_else(|| file.strip_prefix("src/"))
    else {
        return file.to_owned();
    };
    let path = relative.strip_suffix(".rs").unwrap_or(relative);
    let path = path.strip_suffix("/mod").unwrap_or(path);
    match path {
        "lib" | "main" => env!("CARGO_CRATE_NAME").to_owned(),
        _ => format!("{}::{}", env!("CARGO_CRATE_NAME"), path.replace('/', "::")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading record 7")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("invalid price '12,5'")]
    struct Inner(#[source] std::num::ParseFloatError);

    #[test]
    fn cause_chain_joins_every_source() {
        let error = Outer(Inner("12,5".parse::<f64>().unwrap_err()));
        assert_eq!(
            cause_chain(&error),
            "loading record 7: invalid price '12,5': invalid float literal"
        );
    }

    #[test]
    fn the_report_fields_are_what_serde_wrote_before() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ReportContext<'a> {
            report_location: &'a ReportLocation,
            #[serde(skip_serializing_if = "Option::is_none")]
            http_request: Option<&'a HttpContext>,
        }
        let location = ReportLocation {
            file_path: Cow::Borrowed("src/app/\"x\".rs"),
            line_number: 12,
            function_name: Cow::Borrowed("app::x"),
        };
        let full = HttpContext {
            method: "GET".to_owned(),
            url: "/a?b=\u{1}".to_owned(),
            user_agent: Some("curl/8 é".to_owned()),
            remote_ip: Some("203.0.113.9".to_owned()),
            response_status_code: Some(500),
        };
        let bare = HttpContext {
            user_agent: None,
            remote_ip: None,
            response_status_code: None,
            ..full.clone()
        };
        for http in [None, Some(&full), Some(&bare)] {
            let context = ReportContext {
                report_location: &location,
                http_request: http,
            };
            let expected = format!(
                "\"@type\":\"{REPORTED_ERROR_EVENT}\",\"context\":{}",
                serde_json::to_string(&context).unwrap()
            );
            let written = String::from_utf8(report_fields(&location, http)).unwrap();
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn a_megabyte_user_agent_is_capped_in_the_report() {
        let location = ReportLocation::from_caller(Location::caller());
        let http = HttpContext {
            method: "GET".to_owned(),
            url: format!("/{}", "u".repeat(1024 * 1024)),
            user_agent: Some("a".repeat(1024 * 1024)),
            ..HttpContext::default()
        };
        let fields = report_fields(&location, Some(&http));
        assert!(fields.len() < 3 * MAX_VALUE_BYTES, "{}", fields.len());
        let object: serde_json::Value =
            serde_json::from_slice(&[b"{", &fields[..], b"}"].concat()).unwrap();
        let user_agent = object["context"]["httpRequest"]["userAgent"]
            .as_str()
            .unwrap();
        assert!(
            user_agent.ends_with(" bytes]"),
            "{}",
            &user_agent[user_agent.len() - 40..]
        );
    }

    #[test]
    fn module_of_maps_files_to_module_paths() {
        assert_eq!(
            module_of("crates/cloudrun-observability/src/app/faults.rs"),
            "cloudrun_observability::app::faults"
        );
        assert_eq!(
            module_of("src/telemetry/mod.rs"),
            "cloudrun_observability::telemetry"
        );
        assert_eq!(module_of("src/lib.rs"), "cloudrun_observability");
        assert_eq!(module_of("/elsewhere/x.rs"), "/elsewhere/x.rs");
    }
}
