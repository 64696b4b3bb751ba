//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with a body in
//! binary protobuf (`application/x-protobuf`) or OTLP/JSON
//! (`application/json`), gzip-compressed or not (O2, O3).
//!
//! The answer is the `Export*ServiceResponse` in the request's encoding;
//! an error is a `google.rpc.Status` (`{"code": 3, "message": ...}` in
//! JSON) with the HTTP status of its code, as the OTLP specification
//! describes.

use std::borrow::Cow;
use std::io::Read;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{logs, metrics, traces, OtlpError, OtlpIngest, MAX_REQUEST_BYTES};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The OTLP/HTTP routes.
pub fn routes(ingest: &OtlpIngest) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces))
        .route("/v1/metrics", post(export_metrics))
        .route("/v1/logs", post(export_logs))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(ingest.clone())
}

async fn export_traces(
    State(ingest): State<OtlpIngest>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&headers, &body, |request| traces::export(&ingest, request))
}

async fn export_metrics(
    State(ingest): State<OtlpIngest>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&headers, &body, |request| metrics::export(&ingest, request))
}

async fn export_logs(
    State(ingest): State<OtlpIngest>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&headers, &body, |request| logs::export(&ingest, request))
}

/// How a request body is encoded; the answer uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A failure of the transport itself, before any data is looked at.
struct Rejection {
    status: StatusCode,
    code: tonic::Code,
    message: String,
}

/// Decodes, exports with `export`, and encodes the answer.
fn handle<Req, Resp>(
    headers: &HeaderMap,
    body: &[u8],
    export: impl FnOnce(Req) -> Result<Resp, OtlpError>,
) -> Response
where
    Req: Message + Default + DeserializeOwned,
    Resp: Message + Serialize,
{
    let encoding = match encoding_of(headers) {
        Ok(encoding) => encoding,
        Err(rejection) => return error_response(Encoding::Json, rejection),
    };
    let request = match decompress(headers, body).and_then(|bytes| decode::<Req>(encoding, &bytes))
    {
        Ok(request) => request,
        Err(rejection) => return error_response(encoding, rejection),
    };
    match export(request) {
        Ok(response) => encode(encoding, StatusCode::OK, &response),
        Err(OtlpError::InvalidArgument(message)) => error_response(
            encoding,
            Rejection {
                status: StatusCode::BAD_REQUEST,
                code: tonic::Code::InvalidArgument,
                message,
            },
        ),
    }
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, Rejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        PROTOBUF => Ok(Encoding::Protobuf),
        JSON => Ok(Encoding::Json),
        _ => Err(Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: tonic::Code::InvalidArgument,
            message: format!(
                "Unsupported Content-Type \"{}\": OTLP/HTTP takes {PROTOBUF} or {JSON}.",
                crate::grpc::clip_to(content_type, 128)
            ),
        }),
    }
}

/// The body, inflated if gzipped; as it came (not copied) if not.
fn decompress<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Cow<'a, [u8]>, Rejection> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(Cow::Borrowed(body)),
        "gzip" => {
            let mut out = Vec::new();
            // Reads one byte past the cap to tell a body at the cap from a bigger one.
            let read = flate2::read::GzDecoder::new(body)
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Ok(n) if n > MAX_REQUEST_BYTES => Err(Rejection {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: tonic::Code::InvalidArgument,
                    message: format!(
                        "The decompressed request is larger than {MAX_REQUEST_BYTES} bytes."
                    ),
                }),
                Ok(_) => Ok(Cow::Owned(out)),
                Err(error) => Err(Rejection {
                    status: StatusCode::BAD_REQUEST,
                    code: tonic::Code::InvalidArgument,
                    message: format!("The request body is not valid gzip: {error}."),
                }),
            }
        }
        other => Err(Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: tonic::Code::InvalidArgument,
            message: format!(
                "Unsupported Content-Encoding \"{}\": OTLP/HTTP takes gzip or none.",
                crate::grpc::clip_to(other, 128)
            ),
        }),
    }
}

fn decode<Req: Message + Default + DeserializeOwned>(
    encoding: Encoding,
    bytes: &[u8],
) -> Result<Req, Rejection> {
    let invalid = |message: String| Rejection {
        status: StatusCode::BAD_REQUEST,
        code: tonic::Code::InvalidArgument,
        message: crate::grpc::clip_message(&message),
    };
    match encoding {
        Encoding::Protobuf => Req::decode(bytes)
            .map_err(|e| invalid(format!("Invalid protobuf payload received: {e}."))),
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("Invalid JSON payload received: {e}."))),
    }
}

fn encode<Resp: Message + Serialize>(
    encoding: Encoding,
    status: StatusCode,
    response: &Resp,
) -> Response {
    match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, PROTOBUF)],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, Message, Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error_response(encoding: Encoding, rejection: Rejection) -> Response {
    encode(
        encoding,
        rejection.status,
        &RpcStatus {
            code: rejection.code as i32,
            message: rejection.message,
        },
    )
}
