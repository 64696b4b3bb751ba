//! Distributed tracing: `tracing` spans become OpenTelemetry spans, which
//! the SDK's batch processor hands to the exporter `OTEL_TRACES_EXPORTER`
//! chose: OTLP ([`otlp`], the default) or Cloud Trace v2 ([`cloud_trace`]).
//!
//! The processor is the SDK's, with a bounded queue; a thin wrapper in front
//! of it counts the spans it holds, so that a span that would overflow the
//! queue is dropped *and counted* here (the SDK counts its drops privately).
//! Requests never wait for an export.

pub(crate) mod cloud_trace;
pub(crate) mod cloud_trace_mapping;
pub mod context;
pub(crate) mod otlp;
pub(crate) mod sampler;
pub mod server_span;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry::export::health::ExportHealth;
use crate::telemetry::export::otlp::OtlpTarget;
use crate::telemetry::export::Endpoint as TraceEndpoint;
use crate::telemetry::traces::cloud_trace::CloudTraceExporter;
use crate::telemetry::traces::context::{RemoteParent, SpanId, TraceContext};
use crate::telemetry::traces::otlp::OtlpSpanExporter;
use crate::telemetry::traces::sampler::CloudRunSampler;

/// Where spans go, and through which exporter.
#[derive(Clone, Debug)]
pub enum TraceExport {
    /// OTLP/gRPC (`OTEL_TRACES_EXPORTER=otlp`).
    Otlp(OtlpTarget),
    /// Cloud Trace v2 `BatchWriteSpans` (`OTEL_TRACES_EXPORTER=gcp_trace`).
    CloudTrace {
        project_id: String,
        endpoint: TraceEndpoint,
    },
}

impl std::fmt::Display for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Otlp(target) => target.fmt(f),
            Self::CloudTrace { endpoint, .. } => write!(f, "Cloud Trace v2, {endpoint}"),
        }
    }
}

/// Builds the tracer provider: sampler, batch processor, exporter. Fails
/// only on an exporter configuration the OTLP crate rejects.
pub fn tracer_provider(
    resource: Resource,
    export: TraceExport,
    sampling_ratio: f64,
    queue_size: usize,
    health: Arc<ExportHealth>,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let queued = Arc::new(AtomicUsize::new(0));
    let accounting = ExportAccounting {
        health: Arc::clone(&health),
        queued: Arc::clone(&queued),
        runtime: tokio::runtime::Handle::current(),
    };
    let batch = match export {
        TraceExport::Otlp(target) => {
            batch_processor(OtlpSpanExporter::new(target, accounting)?, queue_size)
        }
        TraceExport::CloudTrace {
            project_id,
            endpoint,
        } => batch_processor(
            CloudTraceExporter::new(project_id, endpoint, accounting),
            queue_size,
        ),
    };
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(CloudRunSampler::new(sampling_ratio))
        .with_span_processor(CountingProcessor {
            inner: batch,
            queued,
            capacity: queue_size,
            health,
        })
        .build())
}

/// What every exporter does around its own call, whichever API it speaks:
/// runs the export on the service's tokio runtime (the SDK's processor
/// thread has none), counts its outcome in [`ExportHealth`], and tells the
/// queue counter in [`CountingProcessor`] that those spans have left.
#[derive(Clone, Debug)]
pub struct ExportAccounting {
    health: Arc<ExportHealth>,
    queued: Arc<AtomicUsize>,
    runtime: tokio::runtime::Handle,
}

impl ExportAccounting {
    /// `export` of `spans` spans, accounted for. A failure is counted and
    /// reported by [`ExportHealth`], once a minute at most, and answered
    /// `Ok` to the SDK, which would log every failed batch again.
    pub fn run<E>(
        &self,
        spans: usize,
        export: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send
    where
        E: std::fmt::Display + Send + 'static,
    {
        let health = Arc::clone(&self.health);
        let queued = Arc::clone(&self.queued);
        let task = self.runtime.spawn(async move {
            match export.await {
                Ok(()) => health.record_exported(spans),
                Err(error) => health.record_failed(spans, &error),
            }
            queued.fetch_sub(spans, Ordering::AcqRel);
        });
        async move {
            task.await
                .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
        }
    }
}

/// The SDK's batch processor around `exporter`. OTEL_BSP_* variables still
/// tune the delay and batch size; the queue bound is the same for the SDK's
/// queue and the counting in front of it, so the SDK never drops a span
/// uncounted.
fn batch_processor(
    exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
    queue_size: usize,
) -> BatchSpanProcessor {
    BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(queue_size)
                .build(),
        )
        .build()
}

/// Counts the spans between `on_end` and the end of their export, and drops
/// (and counts) those that would overflow the batch processor's queue.
#[derive(Debug)]
struct CountingProcessor {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    health: Arc<ExportHealth>,
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let admitted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < self.capacity).then_some(queued + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            self.health.record_dropped(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OpenTelemetry context of a caller, to set as a span's parent.
///
/// `X-Cloud-Trace-Context` may carry a trace id without a span id; a
/// parent needs one, so a random one stands in: the trace continues, and the
/// (never exported) parent shows as missing, as Cloud Run's own span often
/// does.
pub fn remote_context(parent: &RemoteParent, trace_state: Option<&str>) -> Context {
    let flags = if parent.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let span_id = parent.span_id.unwrap_or_else(SpanId::random);
    let state = trace_state
        .and_then(|state| state.parse::<TraceState>().ok())
        .unwrap_or_default();
    Context::new().with_remote_span_context(SpanContext::new(
        opentelemetry::trace::TraceId::from(parent.trace_id.0),
        opentelemetry::trace::SpanId::from(span_id.0),
        flags,
        true,
        state,
    ))
}

/// The trace context of `span` as OpenTelemetry assigned it, or `None` when
/// no OpenTelemetry layer is installed.
pub fn trace_context_of(span: &tracing::Span) -> Option<TraceContext> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context
        .is_valid()
        .then(|| TraceContext::from(span_context))
}

/// The `tracestate` to send on with a downstream call.
pub fn trace_state_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let state = context.span().span_context().trace_state().header();
    (!state.is_empty()).then_some(state)
}
