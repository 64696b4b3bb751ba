//! Google credentials on the wire: the OTLP trace exporter, given Google
//! credentials (a stand-in token source: Google cannot be reached from a
//! test), sends each export with the token current at that moment, the quota
//! project and the `gcp.project_id` resource attribute, to a loopback OTLP
//! `TraceService` that records what it receives. Without a token nothing is
//! sent, and the loss is counted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudrun_observability::telemetry::export::google_auth::{
    AuthError, GoogleCredentials, HeaderSource,
};
use cloudrun_observability::telemetry::export::health::ExportHealth;
use cloudrun_observability::telemetry::export::otlp::OtlpTarget;
use cloudrun_observability::telemetry::traces::{tracer_provider, TraceExport};
use futures::future::BoxFuture;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_sdk::Resource;

use crate::helpers::serve_grpc;

/// One export as the stand-in received it.
#[derive(Clone, Debug)]
struct Received {
    authorization: Option<String>,
    user_project: Option<String>,
    project_attribute: Option<String>,
    spans: usize,
}

#[derive(Clone, Default)]
struct StandIn(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for StandIn {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        let (authorization, user_project) =
            (header("authorization"), header("x-goog-user-project"));
        let body = request.into_inner();
        let project_attribute = body
            .resource_spans
            .iter()
            .flat_map(|spans| spans.resource.iter().flat_map(|r| r.attributes.iter()))
            .find(|attribute| attribute.key == "gcp.project_id")
            .and_then(
                |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(project) => Some(project.clone()),
                    _ => None,
                },
            );
        let spans = body
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter())
            .map(|s| s.spans.len())
            .sum();
        self.0.lock().unwrap().push(Received {
            authorization,
            user_project,
            project_attribute,
            spans,
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Mints `token-1`, `token-2`, ...: a new token on each refresh, as if the
/// previous one had expired, with a quota project; fails while `down` is
/// set.
#[derive(Debug, Default)]
struct Tokens {
    minted: AtomicUsize,
    down: AtomicBool,
}

impl HeaderSource for Tokens {
    fn headers(&self) -> BoxFuture<'_, Result<Arc<http::HeaderMap>, AuthError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(AuthError("the metadata server did not answer".into()));
            }
            let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer token-{n}").parse().unwrap(),
            );
            // As google-cloud-auth adds it from GOOGLE_CLOUD_QUOTA_PROJECT
            // or the credentials file's quota_project_id.
            headers.insert("x-goog-user-project", "billing-project".parse().unwrap());
            Ok(Arc::new(headers))
        })
    }
}

/// Ends one span and waits until the batch processor exported it.
async fn export_one_span(provider: &opentelemetry_sdk::trace::SdkTracerProvider) {
    provider
        .tracer("otlp-credentials-test")
        .in_span("GET /api/books", |_| {});
    let provider = provider.clone();
    // The flush blocks until the processor's thread has exported, and that
    // export runs on this runtime.
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_otlp_export_carries_the_current_token_the_quota_project_and_gcp_project_id() {
    let stand_in = StandIn::default();
    let addr = serve_grpc(tonic::service::Routes::new(TraceServiceServer::new(
        stand_in.clone(),
    )))
    .await;
    let tokens = Arc::new(Tokens::default());
    let target = OtlpTarget {
        endpoint: format!("http://{addr}"),
        credentials: Some(GoogleCredentials::with_source(tokens.clone())),
    };
    let health = Arc::new(ExportHealth::new("traces"));
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "frontend"),
            KeyValue::new("gcp.project_id", "shop-prod"),
        ])
        .build();
    let provider = tracer_provider(
        resource,
        TraceExport::Otlp(target),
        1.0,
        16,
        Arc::clone(&health),
    )
    .unwrap();

    export_one_span(&provider).await;
    export_one_span(&provider).await;
    let received = stand_in.0.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "{received:#?}");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer token-1"));
    assert_eq!(received[1].authorization.as_deref(), Some("Bearer token-2"));
    for export in &received {
        assert_eq!(export.user_project.as_deref(), Some("billing-project"));
        assert_eq!(export.project_attribute.as_deref(), Some("shop-prod"));
        assert_eq!(export.spans, 1);
    }
    assert_eq!(health.counts().exported, 2);

    // The credentials fail: nothing is sent with the old token, and the
    // span is counted as lost.
    tokens.down.store(true, Ordering::SeqCst);
    export_one_span(&provider).await;
    assert_eq!(stand_in.0.lock().unwrap().len(), 2);
    assert_eq!(health.counts().failed, 1);
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}

/// Not a check: what the OTLP path costs per span, measured in release
/// (`cargo test --release --test service -- --ignored otlp_cost --nocapture`):
/// on the thread that ends the span (the request's), and on the export
/// thread (conversion, encoding, the call to a loopback `TraceService`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand in release"]
async fn otlp_cost_per_span() {
    const BATCH: usize = 2_000;
    const BATCHES: usize = 20;
    let stand_in = StandIn::default();
    let addr = serve_grpc(tonic::service::Routes::new(TraceServiceServer::new(
        stand_in.clone(),
    )))
    .await;
    let target = OtlpTarget {
        endpoint: format!("http://{addr}"),
        credentials: None,
    };
    let health = Arc::new(ExportHealth::new("traces"));
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "frontend"),
            KeyValue::new("gcp.project_id", "shop-prod"),
        ])
        .build();
    let provider = tracer_provider(
        resource,
        TraceExport::Otlp(target),
        1.0,
        BATCH,
        Arc::clone(&health),
    )
    .unwrap();
    let tracer = provider.tracer("otlp-cost");
    let (mut ending, mut exporting) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..BATCHES {
        let started = Instant::now();
        for _ in 0..BATCH {
            let mut span = tracer
                .span_builder("GET /api/books/{id}")
                .with_kind(opentelemetry::trace::SpanKind::Server)
                .with_attributes([
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("http.route", "/api/books/{id}"),
                    KeyValue::new("url.path", "/api/books/3"),
                    KeyValue::new("http.response.status_code", 200),
                    KeyValue::new("server.address", "127.0.0.1"),
                    KeyValue::new("user_agent.original", "curl/8.5.0"),
                    KeyValue::new("client.address", "127.0.0.1"),
                ])
                .start(&tracer);
            opentelemetry::trace::Span::end(&mut span);
        }
        ending += started.elapsed();
        let flushing = Instant::now();
        let flushed = provider.clone();
        tokio::task::spawn_blocking(move || flushed.force_flush())
            .await
            .unwrap()
            .unwrap();
        exporting += flushing.elapsed();
    }
    let spans = (BATCH * BATCHES) as u32;
    assert_eq!(health.counts().exported, u64::from(spans));
    eprintln!(
        "OTLP, {spans} spans of 7 attributes: {:?} per span to start and end (the request's thread), {:?} per span to export (batches of {BATCH}, loopback gRPC)",
        ending / spans,
        exporting / spans
    );
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}
