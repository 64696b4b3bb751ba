//! The OTLP span exporter: `opentelemetry-otlp`'s tonic `SpanExporter`
//! (`TraceService/Export`), with a thin wrapper that adds what the service
//! guarantees on top of it.
//!
//! The crate does the work: the OTLP mapping (resource and scope grouping,
//! attributes verbatim), the gRPC call with its deadline, retries of
//! retryable codes. The wrapper
//! - runs each export on the service's tokio runtime (the SDK's batch
//!   processor calls `export` from its own thread, which has none);
//! - refreshes Google's credentials before each export toward Google;
//! - counts what was exported or lost, and tells the queue counter that
//!   those spans left ([`ExportAccounting`], shared with the Cloud Trace
//!   exporter).

use std::sync::Arc;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::telemetry::export::otlp::OtlpTarget;
use crate::telemetry::traces::ExportAccounting;

/// Exports spans over OTLP/gRPC.
pub struct OtlpSpanExporter {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    target: OtlpTarget,
    accounting: ExportAccounting,
}

impl std::fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSpanExporter")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl OtlpSpanExporter {
    /// Must be called inside the tokio runtime the exports will run on (the
    /// channel connects lazily, on the first export).
    pub fn new(
        target: OtlpTarget,
        accounting: ExportAccounting,
    ) -> Result<Self, opentelemetry_otlp::ExporterBuildError> {
        let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        let inner = target.configure(builder).build()?;
        Ok(Self {
            inner: Arc::new(inner),
            target,
            accounting,
        })
    }
}

impl SpanExporter for OtlpSpanExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let target = self.target.clone();
        self.accounting.run(batch.len(), async move {
            target.export_with_credentials(inner.export(batch)).await
        })
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called by the provider's builder, before any export shares `inner`.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}
