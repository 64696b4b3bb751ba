//! The project's Cloud Trace exporter: an OpenTelemetry `SpanExporter` that
//! calls `BatchWriteSpans` with gcloud-sdk's `TraceServiceClient`.
//!
//! `opentelemetry-gcloud-trace` hard-codes Google's endpoint and
//! credentials, so it could not be pointed at the emulator. This one takes
//! the endpoint as Google's official exporters do: Google's with Application
//! Default Credentials (on Cloud Run, the metadata server), or an emulator's
//! `host:port` in plaintext without credentials.
//!
//! The SDK's batch processor calls `export` from its own thread; the gRPC
//! call runs on the service's tokio runtime, with a deadline and retries for
//! UNAVAILABLE. Failures are counted in [`ExportHealth`] and reported at most
//! once a minute; they never reach a request.

use std::sync::Arc;
use std::time::Duration;

use gcloud_sdk::google::devtools::cloudtrace::v2::trace_service_client::TraceServiceClient;
use gcloud_sdk::google::devtools::cloudtrace::v2::BatchWriteSpansRequest;
use gcloud_sdk::GoogleAuthMiddleware;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use thiserror::Error;
use tokio::sync::OnceCell;
use tonic::transport::Channel;
use tonic::Code;

use crate::telemetry::export::Endpoint as TraceEndpoint;
use crate::telemetry::export::{ConnectError, GrpcClient};
use crate::telemetry::traces::cloud_trace_mapping::{agent_label, to_cloud_trace_span, SpanLabels};
use crate::telemetry::traces::ExportAccounting;

/// Google's Cloud Trace endpoint.
pub const GOOGLE_TRACE_ENDPOINT: &str = "https://cloudtrace.googleapis.com";

/// How long one `BatchWriteSpans` call may take (Google's Java exporter uses
/// 10 s, Go's 12 s).
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Waits before each retry of an UNAVAILABLE call.
const RETRY_BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// Why an export failed.
#[derive(Debug, Error)]
pub enum TraceExportError {
    #[error("could not connect to Cloud Trace")]
    Connect(#[from] ConnectError),
    #[error("BatchWriteSpans failed: {}: {}", .0.code(), .0.message())]
    Rpc(tonic::Status),
}

type TraceClient =
    GrpcClient<TraceServiceClient<Channel>, TraceServiceClient<GoogleAuthMiddleware>>;

impl TraceClient {
    async fn connect(endpoint: &TraceEndpoint) -> Result<Self, ConnectError> {
        GrpcClient::connect_to(
            endpoint,
            GOOGLE_TRACE_ENDPOINT,
            TraceServiceClient::new,
            TraceServiceClient::new,
        )
        .await
    }

    async fn batch_write(&self, request: BatchWriteSpansRequest) -> Result<(), tonic::Status> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(CALL_DEADLINE);
        match self {
            Self::Plain(client) => client.clone().batch_write_spans(request).await?,
            Self::Google(api) => api.get().batch_write_spans(request).await?,
        };
        Ok(())
    }
}

/// Exports spans to Cloud Trace (or the emulator).
#[derive(Debug)]
pub struct CloudTraceExporter {
    shared: Arc<Shared>,
    accounting: ExportAccounting,
}

#[derive(Debug)]
struct Shared {
    project_id: String,
    endpoint: TraceEndpoint,
    agent: String,
    /// The resource's `service.name`, set once by the SDK before any export.
    service_name: std::sync::OnceLock<String>,
    client: OnceCell<TraceClient>,
}

impl CloudTraceExporter {
    /// Must be called inside the tokio runtime the exports will run on.
    pub fn new(project_id: String, endpoint: TraceEndpoint, accounting: ExportAccounting) -> Self {
        Self {
            shared: Arc::new(Shared {
                project_id,
                endpoint,
                agent: agent_label(),
                service_name: std::sync::OnceLock::new(),
                client: OnceCell::new(),
            }),
            accounting,
        }
    }
}

impl Shared {
    async fn export(&self, batch: Vec<SpanData>) -> Result<(), TraceExportError> {
        let labels = SpanLabels {
            agent: self.agent.clone(),
            service_name: self.service_name.get().cloned(),
        };
        let client = self
            .client
            .get_or_try_init(|| TraceClient::connect(&self.endpoint))
            .await?;
        let mut backoff = RETRY_BACKOFF.iter();
        loop {
            // Converted again for a retry rather than cloned for every
            // attempt: retries are rare, and a clone of the whole request
            // cost as much as converting it (issue #10).
            let request = BatchWriteSpansRequest {
                name: format!("projects/{}", self.project_id),
                spans: batch
                    .iter()
                    .map(|span| to_cloud_trace_span(span, &self.project_id, &labels))
                    .collect(),
            };
            match client.batch_write(request).await {
                Ok(()) => return Ok(()),
                Err(status) if status.code() == Code::Unavailable => match backoff.next() {
                    Some(wait) => tokio::time::sleep(*wait).await,
                    None => return Err(TraceExportError::Rpc(status)),
                },
                Err(status) => return Err(TraceExportError::Rpc(status)),
            }
        }
    }
}

impl SpanExporter for CloudTraceExporter {
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        if let Some(service) = resource.get(&opentelemetry::Key::from_static_str("service.name")) {
            let _ = self.shared.service_name.set(service.to_string());
        }
    }

    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let shared = Arc::clone(&self.shared);
        self.accounting
            .run(batch.len(), async move { shared.export(batch).await })
    }
}
