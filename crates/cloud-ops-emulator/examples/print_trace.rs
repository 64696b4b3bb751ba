//! Prints one trace from a Cloud Trace emulator (or anything that serves
//! Cloud Trace's v1 read API in plaintext) as an indented tree:
//!
//! ```sh
//! cargo run --example print_trace -- 127.0.0.1:8085 4bf92f3577b34da6a3ce929d0e0e4736 [project]
//! ```
//!
//! The README's "Distributed tracing" section shows its output for a real
//! order.

use std::collections::HashMap;

use gcloud_sdk::google::devtools::cloudtrace::v1::trace_service_client::TraceServiceClient;
use gcloud_sdk::google::devtools::cloudtrace::v1::{
    trace_span::SpanKind, GetTraceRequest, TraceSpan,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [emulator, trace_id, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: print_trace HOST:PORT TRACE_ID [PROJECT]");
    };
    let project = rest.first().map_or("local", String::as_str);
    let channel = tonic::transport::Channel::from_shared(format!("http://{emulator}"))?
        .connect()
        .await?;
    let trace = TraceServiceClient::new(channel)
        .get_trace(GetTraceRequest {
            project_id: project.to_owned(),
            trace_id: trace_id.clone(),
        })
        .await?
        .into_inner();
    println!("trace {trace_id} ({} spans)", trace.spans.len());
    let ids: Vec<u64> = trace.spans.iter().map(|span| span.span_id).collect();
    let mut children: HashMap<u64, Vec<&TraceSpan>> = HashMap::new();
    for span in &trace.spans {
        // A parent outside the trace (the caller's span) makes a root here.
        let parent = if ids.contains(&span.parent_span_id) {
            span.parent_span_id
        } else {
            0
        };
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|span| start_nanos(span));
    }
    let origin = trace.spans.iter().map(start_nanos).min().unwrap_or(0);
    print_children(&children, 0, 0, origin);
    Ok(())
}

fn print_children(
    children: &HashMap<u64, Vec<&TraceSpan>>,
    parent: u64,
    depth: usize,
    origin: i128,
) {
    for span in children.get(&parent).into_iter().flatten() {
        let kind = match SpanKind::try_from(span.kind) {
            Ok(SpanKind::RpcServer) => "SERVER",
            Ok(SpanKind::RpcClient) => "CLIENT",
            _ => "INTERNAL",
        };
        let offset_ms = (start_nanos(span) - origin) as f64 / 1e6;
        let duration_ms = (end_nanos(span) - start_nanos(span)) as f64 / 1e6;
        // Cloud Trace v2's label, or OpenTelemetry's key for spans sent as OTLP.
        let status = span
            .labels
            .get("/http/status_code")
            .or_else(|| span.labels.get("http.response.status_code"))
            .map_or("", String::as_str);
        println!(
            "{:indent$}{} [{kind}] +{offset_ms:.1} ms, {duration_ms:.1} ms, status {status}, span {:016x}",
            "",
            span.name,
            span.span_id,
            indent = depth * 2
        );
        print_children(children, span.span_id, depth + 1, origin);
    }
}

fn start_nanos(span: &TraceSpan) -> i128 {
    span.start_time.as_ref().map_or(0, |t| {
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
    })
}

fn end_nanos(span: &TraceSpan) -> i128 {
    span.end_time.as_ref().map_or(0, |t| {
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
    })
}
