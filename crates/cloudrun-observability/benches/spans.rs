//! The cost of one request's SERVER span, from creation to export encoding:
//! the middleware's [`server_span`] started with a request's attributes
//! (the caller's `traceparent` continued), ended with its status, queued in
//! the SDK's batch processor, and encoded by its export thread into the OTLP
//! protobuf request that `opentelemetry-otlp` sends (the service's default
//! exporter). Only the network write is left out.
//!
//! The figure is the process's CPU time (both threads: the one making spans
//! and the processor's) per span, which other work on the machine disturbs
//! far less than wall-clock time.
//!
//! ```sh
//! cargo bench -p cloudrun-observability --bench spans
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cloudrun_observability::config::DEFAULT_SPAN_QUEUE_SIZE;
use cloudrun_observability::telemetry::traces::server_span::{self, RequestAttributes};
use http::{HeaderMap, HeaderValue, Method};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use prost::Message as _;

const SPANS: u32 = 200_000;
const QUEUE: usize = DEFAULT_SPAN_QUEUE_SIZE;
const CHUNK: u32 = 1000;

fn main() {
    let encoded = Arc::new(Encoded::default());
    let resource = Resource::builder()
        .with_service_name("cloudrun-observability")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(
            BatchSpanProcessor::builder(EncodingExporter {
                resource: (&resource).into(),
                encoded: Arc::clone(&encoded),
            })
            // The service's queue; the spans go in chunks that fit it, so
            // the bench measures their cost, not the drops of a producer
            // that outruns the exporter.
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE)
                    .build(),
            )
            .build(),
        )
        .build();
    server_span::install(&provider);

    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let started = process_cpu_time();
    for _ in 0..SPANS / CHUNK {
        for _ in 0..CHUNK {
            request_span(&headers);
        }
        provider.force_flush().expect("the spans are exported");
    }
    let elapsed = process_cpu_time() - started;
    provider.shutdown().expect("the provider shuts down");

    let spans = encoded.spans.load(Ordering::Relaxed);
    assert_eq!(spans, SPANS as usize, "every span reached the exporter");
    println!(
        "spans: {:.2} us CPU per sampled SERVER span, created, ended, queued and encoded as OTLP protobuf ({SPANS} spans, {} bytes each, both threads)",
        elapsed.as_secs_f64() * 1e6 / f64::from(SPANS),
        encoded.bytes.load(Ordering::Relaxed) / spans.max(1),
    );
}

/// What the middleware does for one `GET /api/books/3`.
fn request_span(headers: &HeaderMap) {
    let span = server_span::start(
        headers,
        &RequestAttributes {
            method: &Method::GET,
            route: Some("/api/books/{id}"),
            path: "/api/books/3",
            host: Some("127.0.0.1"),
            user_agent: Some("wrk/4.1.0"),
            client_address: Some("127.0.0.1"),
        },
    )
    .expect("the tracer is installed");
    std::hint::black_box(span.trace_context());
    span.end(200, None);
}

#[derive(Default)]
struct Encoded {
    spans: AtomicUsize,
    bytes: AtomicUsize,
}

/// Encodes each batch as `opentelemetry-otlp`'s tonic exporter does before
/// it writes it to the channel.
#[derive(Debug)]
struct EncodingExporter {
    resource: ResourceAttributesWithSchema,
    encoded: Arc<Encoded>,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encoded")
    }
}

impl SpanExporter for EncodingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let bytes = request.encode_to_vec().len();
        self.encoded.spans.fetch_add(spans, Ordering::Relaxed);
        self.encoded.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
