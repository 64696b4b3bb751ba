//! The OTLP metric exporter (`OTEL_METRICS_EXPORTER=otlp`):
//! `opentelemetry-otlp`'s tonic `MetricExporter` (`MetricsService/Export`),
//! cumulative, behind a thin wrapper like the span exporter's.
//!
//! Google's Telemetry API stores OTLP points as Managed Service for
//! Prometheus series: `prometheus.googleapis.com/<name>/<kind>` on the
//! `prometheus_target` resource, whose labels come from the resource
//! attributes (`location` from `cloud.region`, `job` from `service.name`,
//! `instance` from `service.instance.id`, `cluster` `__run__` on Cloud Run).
//! Off Google Cloud there is no region, so the resource says
//! `location=global`, as the Cloud Monitoring path does: a point without a
//! location is rejected.
//!
//! The wrapper
//! - polls the crate's export inside the service's tokio runtime (the SDK's
//!   periodic reader blocks on it from its own thread, and lends the
//!   points only for the call, so the export cannot move to a task);
//! - refreshes Google's credentials before each export toward Google;
//! - counts exported and lost data points in [`ExportHealth`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::Resource;

use crate::telemetry::export::health::ExportHealth;
use crate::telemetry::export::otlp::OtlpTarget;
use crate::telemetry::resource::InstanceIdentity;

/// Exports metric points over OTLP/gRPC.
#[derive(Debug)]
pub struct OtlpMetricExporter {
    inner: opentelemetry_otlp::MetricExporter,
    target: OtlpTarget,
    health: Arc<ExportHealth>,
    runtime: tokio::runtime::Handle,
}

impl OtlpMetricExporter {
    /// Must be called inside the tokio runtime the exports will run on.
    pub fn new(
        target: OtlpTarget,
        health: Arc<ExportHealth>,
    ) -> Result<Self, opentelemetry_otlp::ExporterBuildError> {
        let builder = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_temporality(Temporality::Cumulative);
        Ok(Self {
            inner: target.configure(builder).build()?,
            target,
            health,
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

/// The resource of OTLP metric points: the instance's, with
/// `location=global` when it has no region (see the module's docs).
pub fn resource(identity: &InstanceIdentity) -> Resource {
    let resource = identity.to_resource();
    if identity.region.is_some() {
        return resource;
    }
    Resource::builder_empty()
        .with_attributes(
            resource
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
                .chain([KeyValue::new("location", identity.location().to_owned())]),
        )
        .build()
}

impl PushMetricExporter for OtlpMetricExporter {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let points = data_points(metrics);
        let export = self
            .target
            .export_with_credentials(self.inner.export(metrics));
        let export = InRuntime {
            runtime: self.runtime.clone(),
            inner: Box::pin(export),
        };
        async move {
            match export.await {
                Ok(()) => self.health.record_exported(points),
                // Counted and reported by `ExportHealth`, once a minute at
                // most; the SDK would log every failed export again.
                Err(error) => self.health.record_failed(points, &error),
            }
            Ok(())
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Polls `inner` inside `runtime`'s context, so that the gRPC client finds
/// its timers and I/O driver from the reader's thread.
struct InRuntime<F> {
    runtime: tokio::runtime::Handle,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.runtime.enter();
        self.inner.as_mut().poll(cx)
    }
}

/// How many data points `metrics` holds (one per series).
fn data_points(metrics: &ResourceMetrics) -> usize {
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(gauge) => gauge.data_points().count(),
            MetricData::Sum(sum) => sum.data_points().count(),
            MetricData::Histogram(histogram) => histogram.data_points().count(),
            MetricData::ExponentialHistogram(histogram) => histogram.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(data) => count(data),
            AggregatedMetrics::U64(data) => count(data),
            AggregatedMetrics::I64(data) => count(data),
        })
        .sum()
}
