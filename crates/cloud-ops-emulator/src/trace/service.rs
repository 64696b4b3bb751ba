//! The Cloud Trace gRPC services: v2 writes and v1 reads.
//!
//! Writes go through [`trace_validation`](crate::trace::validation) into the
//! [`TraceStore`]. Reads present stored v2 spans the way Cloud Trace's v1 API
//! does, so Google's own clients (and the console, and tests) can read back
//! what an exporter wrote. A read over many spans computes for a while: it
//! runs off the runtime's threads, reads the store in chunks so writes go on
//! beside it, and stops with DEADLINE_EXCEEDED when its client's
//! `grpc-timeout` passes.

use std::collections::HashMap;

use gcloud_sdk::google::devtools::cloudtrace::{v1, v2};
use tonic::{Request, Response, Status};

use crate::deadline::{read_off_the_runtime, Deadline, DeadlineExceeded};
use crate::grpc::{bounded, Page};
use crate::time::timestamp::{self, now_nanos};
use crate::trace::filter;
use crate::trace::store::{StoredSpan, TraceStore};
use crate::trace::validation::{self, validate_batch, validate_span};

use v1::list_traces_request::ViewType;
use v1::trace_span::SpanKind as V1Kind;
use v2::span::SpanKind as V2Kind;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

/// The `google.devtools.cloudtrace.v2.TraceService` server over `store`.
pub fn trace_v2_server(
    store: TraceStore,
) -> crate::grpc::trace_v2::trace_service_server::TraceServiceServer<TraceWriter> {
    crate::grpc::trace_v2::trace_service_server::TraceServiceServer::new(TraceWriter { store })
}

/// The `google.devtools.cloudtrace.v1.TraceService` server over `store`.
pub fn trace_v1_server(
    store: TraceStore,
) -> crate::grpc::trace_v1::trace_service_server::TraceServiceServer<TraceReader> {
    crate::grpc::trace_v1::trace_service_server::TraceServiceServer::new(TraceReader { store })
}

/// Implements v2 `BatchWriteSpans` and `CreateSpan`.
#[derive(Debug, Clone)]
pub struct TraceWriter {
    store: TraceStore,
}

#[tonic::async_trait]
impl crate::grpc::trace_v2::trace_service_server::TraceService for TraceWriter {
    async fn batch_write_spans(
        &self,
        request: Request<v2::BatchWriteSpansRequest>,
    ) -> Result<Response<()>, Status> {
        self.handle_batch_write_spans(request).map_err(bounded)
    }

    async fn create_span(&self, request: Request<v2::Span>) -> Result<Response<v2::Span>, Status> {
        self.handle_create_span(request).map_err(bounded)
    }
}

/// The methods; their errors are [`bounded`] on the way out.
impl TraceWriter {
    fn handle_batch_write_spans(
        &self,
        request: Request<v2::BatchWriteSpansRequest>,
    ) -> Result<Response<()>, Status> {
        match validate_batch(request.into_inner(), now_nanos()) {
            Ok(batch) => {
                self.store
                    .insert_batch(batch.spans, batch.truncated, batch.out_of_window);
                Ok(Response::new(()))
            }
            Err(error) => {
                self.store.record_rejected();
                Err(Status::invalid_argument(error.to_string()))
            }
        }
    }

    fn handle_create_span(&self, request: Request<v2::Span>) -> Result<Response<v2::Span>, Status> {
        match validate_span(0, None, request.into_inner(), now_nanos()) {
            Ok(checked) => {
                let span = checked.stored.span.clone();
                let (stored, out) = if checked.in_window {
                    (vec![checked.stored], 0)
                } else {
                    (Vec::new(), 1)
                };
                self.store
                    .insert_batch(stored, u64::from(checked.truncated), out);
                Ok(Response::new(span))
            }
            Err(error) => {
                self.store.record_rejected();
                Err(Status::invalid_argument(error.to_string()))
            }
        }
    }
}

/// Implements v1 `ListTraces` and `GetTrace`.
#[derive(Debug, Clone)]
pub struct TraceReader {
    store: TraceStore,
}

#[tonic::async_trait]
impl crate::grpc::trace_v1::trace_service_server::TraceService for TraceReader {
    async fn list_traces(
        &self,
        request: Request<v1::ListTracesRequest>,
    ) -> Result<Response<v1::ListTracesResponse>, Status> {
        self.off_the_runtime(request, list_traces).await
    }

    async fn get_trace(
        &self,
        request: Request<v1::GetTraceRequest>,
    ) -> Result<Response<v1::Trace>, Status> {
        self.off_the_runtime(request, get_trace).await
    }
}

/// A read failed: a status for the client, or its deadline passed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Status(#[from] Status),
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

impl TraceReader {
    /// Runs `read` on a blocking thread, with the request's deadline; its
    /// errors are [`bounded`] on the way out.
    async fn off_the_runtime<T, R>(
        &self,
        request: Request<T>,
        read: fn(&TraceStore, T, Deadline) -> Result<R, ReadError>,
    ) -> Result<Response<R>, Status>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        let outcome = read_off_the_runtime(
            self.store.clone(),
            request,
            move |store, request, deadline| {
                let outcome = read(store, request, deadline);
                // Counted here: by now the client has usually gone, and with it
                // the future awaiting this thread.
                if let Err(ReadError::Deadline(_)) = outcome {
                    store.record_read_timeout();
                }
                outcome
            },
        )
        .await?;
        match outcome {
            Ok(response) => Ok(Response::new(response)),
            Err(ReadError::Status(status)) => Err(bounded(status)),
            Err(ReadError::Deadline(exceeded)) => Err(exceeded.into()),
        }
    }
}

fn get_trace(
    store: &TraceStore,
    request: v1::GetTraceRequest,
    deadline: Deadline,
) -> Result<v1::Trace, ReadError> {
    check_project_id(&request.project_id)?;
    let spans = store.trace_by(&request.project_id, &request.trace_id, deadline)?;
    if spans.is_empty() {
        return Err(Status::not_found(format!(
            "Trace {} not found in project {}.",
            request.trace_id, request.project_id
        ))
        .into());
    }
    Ok(to_v1_trace(
        &request.project_id,
        &request.trace_id.to_ascii_lowercase(),
        &spans,
        ViewType::Complete,
    ))
}

fn check_project_id(project_id: &str) -> Result<(), Status> {
    validation::parse_project_name(&format!("projects/{project_id}"))
        .map(|_| ())
        .map_err(|_| Status::invalid_argument(format!("Invalid project id \"{project_id}\".")))
}

fn list_traces(
    store: &TraceStore,
    request: v1::ListTracesRequest,
    deadline: Deadline,
) -> Result<v1::ListTracesResponse, ReadError> {
    check_project_id(&request.project_id)?;
    let terms =
        filter::parse(&request.filter).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let window = time_window(&request)?;
    let view = ViewType::try_from(request.view).unwrap_or(ViewType::Minimal);
    let mut traces: Vec<(i64, String, Vec<StoredSpan>)> = Vec::new();
    for (id, spans) in store.traces_by(&request.project_id, deadline)? {
        // A filter converts each trace whole: the long part of a long read.
        deadline.check()?;
        let kept = spans.iter().any(|s| window.contains(span_end(s)))
            && (terms.is_empty()
                || filter::matches(
                    &terms,
                    &to_v1_trace(&request.project_id, &id, &spans, ViewType::Complete).spans,
                ));
        if kept {
            traces.push((latest_start(&spans), id, spans));
        }
    }
    // Newest first, as the Cloud Trace console and API list them by default.
    traces.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let page = Page::read(
        &request.page_token,
        request.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        |token| format!("Invalid page token \"{token}\"."),
    )?;
    let next_page_token = page.next_token(traces.len());
    let traces = page
        .of(traces.iter())
        .map(|(_, id, spans)| to_v1_trace(&request.project_id, id, spans, view))
        .collect();
    Ok(v1::ListTracesResponse {
        traces,
        next_page_token,
    })
}

struct Window {
    start: i64,
    end: i64,
}

impl Window {
    fn contains(&self, nanos: i64) -> bool {
        (self.start..=self.end).contains(&nanos)
    }
}

fn time_window(request: &v1::ListTracesRequest) -> Result<Window, Status> {
    let bound = |ts: &Option<prost_types::Timestamp>, default: i64| match ts {
        None => Ok(default),
        Some(ts) => timestamp::to_nanos(ts)
            .map_err(|e| Status::invalid_argument(format!("Invalid time bound: {e}"))),
    };
    Ok(Window {
        start: bound(&request.start_time, i64::MIN)?,
        end: bound(&request.end_time, i64::MAX)?,
    })
}

fn span_start(span: &StoredSpan) -> i64 {
    span.span
        .start_time
        .as_ref()
        .and_then(|t| timestamp::to_nanos(t).ok())
        .unwrap_or(0)
}

fn span_end(span: &StoredSpan) -> i64 {
    span.span
        .end_time
        .as_ref()
        .and_then(|t| timestamp::to_nanos(t).ok())
        .unwrap_or(0)
}

fn latest_start(spans: &[StoredSpan]) -> i64 {
    spans.iter().map(span_start).max().unwrap_or(0)
}

/// A v1 trace from the stored spans of one trace.
///
/// ROOTSPAN keeps the spans without a parent (or, when the root has not
/// arrived, the earliest span); MINIMAL keeps only the ids.
pub fn to_v1_trace(
    project: &str,
    trace_id: &str,
    spans: &[StoredSpan],
    view: ViewType,
) -> v1::Trace {
    let selected: Vec<&StoredSpan> = match view {
        ViewType::Complete => spans.iter().collect(),
        ViewType::Rootspan => root_spans(spans),
        ViewType::Minimal | ViewType::Unspecified => Vec::new(),
    };
    let mut v1_spans: Vec<v1::TraceSpan> =
        selected.into_iter().map(|s| to_v1_span(&s.span)).collect();
    v1_spans.sort_by_key(|s| s.start_time.as_ref().map(|t| (t.seconds, t.nanos)));
    v1::Trace {
        project_id: project.to_string(),
        trace_id: trace_id.to_string(),
        spans: v1_spans,
    }
}

fn root_spans(spans: &[StoredSpan]) -> Vec<&StoredSpan> {
    let roots: Vec<&StoredSpan> = spans
        .iter()
        .filter(|s| s.span.parent_span_id.is_empty())
        .collect();
    if !roots.is_empty() {
        return roots;
    }
    spans
        .iter()
        .min_by_key(|s| span_start(s))
        .into_iter()
        .collect()
}

/// A v2 span as Cloud Trace v1 presents it: numeric ids, RPC kinds, string labels.
pub fn to_v1_span(span: &v2::Span) -> v1::TraceSpan {
    v1::TraceSpan {
        span_id: hex_id(&span.span_id),
        kind: v1_kind(span.span_kind) as i32,
        name: span
            .display_name
            .as_ref()
            .map(|d| d.value.clone())
            .unwrap_or_default(),
        start_time: span.start_time,
        end_time: span.end_time,
        parent_span_id: hex_id(&span.parent_span_id),
        labels: v1_labels(span),
    }
}

fn hex_id(id: &str) -> u64 {
    u64::from_str_radix(id, 16).unwrap_or(0)
}

fn v1_kind(kind: i32) -> V1Kind {
    match V2Kind::try_from(kind) {
        Ok(V2Kind::Server) => V1Kind::RpcServer,
        Ok(V2Kind::Client) => V1Kind::RpcClient,
        _ => V1Kind::Unspecified,
    }
}

fn v1_labels(span: &v2::Span) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = span
        .attributes
        .iter()
        .flat_map(|a| a.attribute_map.iter())
        .filter_map(|(key, value)| attribute_string(value).map(|v| (key.clone(), v)))
        .collect();
    if let Some(stack) = span.stack_trace.as_ref() {
        labels.insert("/stacktrace".into(), stack_trace_json(stack));
    }
    labels
}

fn attribute_string(value: &v2::AttributeValue) -> Option<String> {
    use v2::attribute_value::Value;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.value.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
    }
}

/// The JSON shape Cloud Trace uses for the `/stacktrace` label.
fn stack_trace_json(stack: &v2::StackTrace) -> String {
    let frames: Vec<serde_json::Value> = stack
        .stack_frames
        .iter()
        .flat_map(|f| f.frame.iter())
        .map(|frame| {
            let text = |s: &Option<v2::TruncatableString>| {
                s.as_ref().map(|s| s.value.clone()).unwrap_or_default()
            };
            serde_json::json!({
                "method_name": text(&frame.function_name),
                "file_name": text(&frame.file_name),
                "line_number": frame.line_number,
                "column_number": frame.column_number,
            })
        })
        .collect();
    serde_json::json!({ "stack_frame": frames }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_kinds_ids_and_labels() {
        let mut attributes = v2::span::Attributes::default();
        attributes.attribute_map.insert(
            "/http/status_code".into(),
            v2::AttributeValue {
                value: Some(v2::attribute_value::Value::IntValue(200)),
            },
        );
        let span = v2::Span {
            span_id: "00000000000000ff".into(),
            parent_span_id: "0000000000000010".into(),
            span_kind: V2Kind::Server as i32,
            attributes: Some(attributes),
            ..v2::Span::default()
        };
        let v1 = to_v1_span(&span);
        assert_eq!((v1.span_id, v1.parent_span_id), (255, 16));
        assert_eq!(v1.kind, V1Kind::RpcServer as i32);
        assert_eq!(v1.labels["/http/status_code"], "200");
        let client = v2::Span {
            span_kind: V2Kind::Internal as i32,
            ..span
        };
        assert_eq!(to_v1_span(&client).kind, V1Kind::Unspecified as i32);
    }
}
