//! OTLP ingest, as Google's Telemetry API (`telemetry.googleapis.com`)
//! takes it: the three OTLP `Export` services over gRPC, and
//! `POST /v1/traces`, `/v1/metrics`, `/v1/logs` over HTTP in protobuf or
//! JSON, gzip or not.
//!
//! Laid out like `opentelemetry-otlp` itself: the transports ([`grpc`],
//! [`http`]) are written once and hand each request to its signal's file,
//! which holds only the mapping into the emulator's stores:
//!
//! - [`traces`]: OTLP spans become stored Cloud Trace v2 spans, so the v1
//!   read API, the console's waterfall and log correlation see them.
//! - [`metrics`]: points become `prometheus.googleapis.com/NAME/KIND` series
//!   on `prometheus_target`, readable with `ListTimeSeries`.
//! - [`logs`]: log records become log entries (console, log-based metrics).
//!
//! Every signal takes its project from the resource attribute
//! `gcp.project_id` (rule O6 of `otlp-telemetry-api.md`); the emulator can
//! be told a default project for data that lacks it.

pub mod grpc;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod traces;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value as Json;

use crate::EmulatorStore;

/// OTLP alone, both transports: what the emulator serves on OTLP's own
/// ports (4317, 4318), and merges into its main router.
pub fn routes(ingest: &OtlpIngest) -> axum::Router {
    grpc::add_services(tonic::service::Routes::default(), ingest)
        .into_axum_router()
        .merge(http::routes(ingest))
}

/// The resource attribute naming the project the data is written to.
pub const PROJECT_ATTRIBUTE: &str = "gcp.project_id";

/// Largest OTLP request accepted, compressed or not (bytes).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// How many rejection reasons an `error_message` quotes; the rest are counted.
const MAX_REASONS: usize = 5;

/// What the OTLP services share: where data goes and the project to use
/// when a resource does not name one.
#[derive(Debug, Clone)]
pub struct OtlpIngest {
    pub(crate) store: EmulatorStore,
    pub(crate) default_project: Option<String>,
}

impl OtlpIngest {
    /// Ingest into `store`; `default_project` stands in for a missing
    /// `gcp.project_id` (Google rejects such data).
    pub fn new(store: EmulatorStore, default_project: Option<String>) -> Self {
        Self {
            store,
            default_project: default_project.filter(|p| !p.is_empty()),
        }
    }

    /// The project of `resource`: its `gcp.project_id`, else the default.
    ///
    /// # Errors
    /// [`OtlpError::InvalidArgument`] when neither is there, as Google's
    /// 400 INVALID_ARGUMENT.
    pub(crate) fn project_of(&self, resource: Option<&Resource>) -> Result<String, OtlpError> {
        let named = resource
            .and_then(|r| attribute(&r.attributes, PROJECT_ATTRIBUTE))
            .map(text)
            .filter(|p| !p.is_empty());
        match named.or_else(|| self.default_project.clone()) {
            Some(project) if is_project_id(&project) => Ok(project),
            Some(project) => Err(OtlpError::InvalidArgument(format!(
                "Resource attribute {PROJECT_ATTRIBUTE} had an invalid value of \"{}\": expected a project id.",
                crate::grpc::clip_to(&project, crate::grpc::MAX_QUOTED_BYTES)
            ))),
            None => Err(OtlpError::InvalidArgument(format!(
                "Resource attribute {PROJECT_ATTRIBUTE} is required: it names the Google Cloud project the data is written to (e.g. OTEL_RESOURCE_ATTRIBUTES={PROJECT_ATTRIBUTE}=PROJECT_ID)."
            ))),
        }
    }
}

/// A project id as a resource name segment: non-empty, no `/`.
fn is_project_id(project: &str) -> bool {
    !project.is_empty()
        && project.len() <= 100
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// A request-level failure: nothing of the request is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    /// 400 / INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidArgument(String),
}

impl OtlpError {
    /// As a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Self::InvalidArgument(message) => {
                crate::grpc::bounded(tonic::Status::invalid_argument(message.clone()))
            }
        }
    }
}

/// Items of one request that were not written, and why: OTLP's
/// `partial_success` (O14).
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    count: i64,
    reasons: Vec<String>,
}

impl Rejections {
    /// `count` items rejected for `reason`.
    pub(crate) fn add(&mut self, count: usize, reason: String) {
        if count == 0 {
            return;
        }
        self.count += i64::try_from(count).unwrap_or(i64::MAX);
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason);
        } else if self.reasons.len() == MAX_REASONS {
            self.reasons.push("...".into());
        }
    }

    pub(crate) fn count(&self) -> i64 {
        self.count
    }

    /// The `error_message`: the first reasons, joined.
    pub(crate) fn message(&self) -> String {
        crate::grpc::clip_message(&self.reasons.join("; "))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The value of attribute `key`, if present.
pub(crate) fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// An attribute as text: strings as they are, anything else as JSON.
pub(crate) fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        _ => json(value).to_string(),
    }
}

/// An attribute value as JSON: arrays and maps nested, bytes in base64 as
/// OTLP/JSON writes them.
pub(crate) fn json(value: &AnyValue) -> Json {
    match &value.value {
        None | Some(Any::StringValueStrindex(_)) => Json::Null,
        Some(Any::StringValue(s)) => Json::from(s.clone()),
        Some(Any::BoolValue(b)) => Json::from(*b),
        Some(Any::IntValue(i)) => Json::from(*i),
        Some(Any::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::from(d.to_string())),
        Some(Any::ArrayValue(array)) => Json::Array(array.values.iter().map(json).collect()),
        Some(Any::KvlistValue(list)) => Json::Object(json_map(&list.values)),
        Some(Any::BytesValue(bytes)) => Json::from(STANDARD.encode(bytes)),
    }
}

/// Key-value pairs as a JSON object (a later duplicate key wins).
pub(crate) fn json_map(attributes: &[KeyValue]) -> serde_json::Map<String, Json> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, json)))
        .collect()
}

/// Lowercase hex of an id. Through `hex::encode_to_slice`, since
/// `hex::encode` collects the digits one `char` at a time: a tenth of the
/// emulator's CPU under OTLP span ingest in a profile.
pub(crate) fn hex_id(bytes: &[u8]) -> String {
    let mut digits = vec![0; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut digits).expect("the buffer holds two digits a byte");
    String::from_utf8(digits).expect("hex digits are ASCII")
}

/// Nanoseconds since the epoch as OTLP sends them, clamped into `i64`.
pub(crate) fn nanos(unix_nano: u64) -> i64 {
    i64::try_from(unix_nano).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_become_text_and_json_as_otlp_json_writes_them() {
        let value = |v| AnyValue { value: Some(v) };
        assert_eq!(text(&value(Any::StringValue("a".into()))), "a");
        assert_eq!(text(&value(Any::IntValue(-3))), "-3");
        assert_eq!(text(&value(Any::DoubleValue(0.5))), "0.5");
        let bytes = |b: &[u8]| value(Any::BytesValue(b.to_vec()));
        assert_eq!(text(&bytes(b"hello")), "\"aGVsbG8=\"");
        assert_eq!(json(&bytes(b"hi!")), "aGkh");
        assert_eq!(hex_id(&[0, 255, 16]), "00ff10");
        assert_eq!(hex_id(&[]), "");
    }

    #[test]
    fn rejections_quote_the_first_reasons_and_count_all() {
        let mut rejections = Rejections::default();
        for i in 0..8 {
            rejections.add(2, format!("reason {i}"));
        }
        assert_eq!(rejections.count(), 16);
        assert!(rejections.message().ends_with("reason 4; ..."));
    }
}
