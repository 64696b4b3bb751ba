//! The project's Cloud Monitoring exporter: an OpenTelemetry
//! `PushMetricExporter` that calls `CreateTimeSeries` with gcloud-sdk's
//! `MetricServiceClient`.
//!
//! It mirrors [`crate::telemetry::traces::cloud_trace`]: Google's endpoint with
//! Application Default Credentials, or an emulator's `host:port` in
//! plaintext; a lazy client; the gRPC calls on the service's tokio runtime
//! (the SDK's periodic reader runs on a thread of its own and blocks on the
//! export); retries for UNAVAILABLE; failures counted in [`ExportHealth`]
//! and reported at most once a minute, never reaching a request.
//!
//! On top of that, what Cloud Monitoring's rules demand:
//! - descriptors created once, before the first write, without holding up
//!   start-up; when that fails, writes still auto-create them (M14);
//! - at most 200 series per request (M2), one point each (M3);
//! - a series is never written twice within 5 s (M8): each series' last
//!   written end time is remembered, and a point too close to it is left
//!   for the next export. [`MetricsExporterHandle::wait_before_final_export`]
//!   tells the shutdown how long to wait so that the final export can write
//!   every series.
//! - a partial failure (`One or more TimeSeries could not be written`)
//!   counts the points the summary says failed, with its reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gcloud_sdk::google::api::MonitoredResource;
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
use gcloud_sdk::google::monitoring::v3::{
    CreateMetricDescriptorRequest, CreateTimeSeriesRequest, CreateTimeSeriesSummary,
};
use gcloud_sdk::GoogleAuthMiddleware;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use prost::Message as _;
use thiserror::Error;
use tokio::sync::OnceCell;
use tonic::transport::Channel;
use tonic::Code;

use crate::telemetry::export::health::ExportHealth;
use crate::telemetry::export::Endpoint;
use crate::telemetry::export::{ConnectError, GrpcClient};
use crate::telemetry::metrics::cloud_monitoring_mapping::{
    descriptor, to_time_series, Deviations, MappedSeries, MetricSpec,
};

/// Google's Cloud Monitoring endpoint.
pub const GOOGLE_MONITORING_ENDPOINT: &str = "https://monitoring.googleapis.com";

/// How long one call may take.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Cloud Monitoring's limit of series per `CreateTimeSeries` (M2).
pub const MAX_SERIES_PER_REQUEST: usize = 200;

/// One point per series per this period (M8).
pub const MIN_SAMPLING_PERIOD: Duration = Duration::from_secs(5);

/// The most series whose last write is remembered. The SDK caps each
/// instrument at 2 000 attribute sets (plus one overflow series), so the
/// service's four instruments stay below it.
pub const MAX_REMEMBERED_SERIES: usize = 10_000;

/// Added to the wait before the final export, so that the collection after
/// it is surely 5 s past every series' previous point.
const FINAL_EXPORT_MARGIN: Duration = Duration::from_millis(100);

/// Waits before each retry of an UNAVAILABLE call.
const RETRY_BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// The start of Cloud Monitoring's partial-failure message (M1).
const PARTIAL_FAILURE: &str = "One or more TimeSeries could not be written";

/// Why an export (or part of one) failed.
#[derive(Debug, Error)]
pub enum MetricExportError {
    #[error("could not connect to Cloud Monitoring")]
    Connect(#[from] ConnectError),
    #[error("{method} failed: {}: {}", .status.code(), .status.message())]
    Rpc {
        method: &'static str,
        status: tonic::Status,
    },
}

type MetricClient =
    GrpcClient<MetricServiceClient<Channel>, MetricServiceClient<GoogleAuthMiddleware>>;

impl MetricClient {
    async fn connect(endpoint: &Endpoint) -> Result<Self, ConnectError> {
        GrpcClient::connect_to(
            endpoint,
            GOOGLE_MONITORING_ENDPOINT,
            MetricServiceClient::new,
            MetricServiceClient::new,
        )
        .await
    }

    async fn create_time_series(
        &self,
        request: CreateTimeSeriesRequest,
    ) -> Result<(), tonic::Status> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(CALL_DEADLINE);
        match self {
            Self::Plain(client) => client.clone().create_time_series(request).await?,
            Self::Google(api) => api.get().create_time_series(request).await?,
        };
        Ok(())
    }

    async fn create_metric_descriptor(
        &self,
        request: CreateMetricDescriptorRequest,
    ) -> Result<(), tonic::Status> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(CALL_DEADLINE);
        match self {
            Self::Plain(client) => client.clone().create_metric_descriptor(request).await?,
            Self::Google(api) => api.get().create_metric_descriptor(request).await?,
        };
        Ok(())
    }
}

/// Exports metrics to Cloud Monitoring (or the emulator).
#[derive(Debug)]
pub struct CloudMonitoringExporter {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
}

/// What the telemetry guard keeps of the exporter once the SDK owns it.
#[derive(Clone, Debug)]
pub struct MetricsExporterHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    project_id: String,
    endpoint: Endpoint,
    resource: MonitoredResource,
    specs: &'static [MetricSpec],
    deviations: Arc<Deviations>,
    client: OnceCell<MetricClient>,
    descriptors: OnceCell<()>,
    history: Mutex<SeriesHistory>,
    health: Arc<ExportHealth>,
}

/// Settings of a [`CloudMonitoringExporter`].
#[derive(Debug)]
pub struct ExporterSettings {
    pub project_id: String,
    pub endpoint: Endpoint,
    /// The `generic_task` of this instance.
    pub resource: MonitoredResource,
    /// The descriptors to create at start-up.
    pub specs: &'static [MetricSpec],
    pub deviations: Arc<Deviations>,
    pub health: Arc<ExportHealth>,
    /// The shortest gap between two points of a series: Google's
    /// [`MIN_SAMPLING_PERIOD`], or shorter towards an emulator running
    /// monitoring time faster (see [`sampling_period_for`]).
    pub sampling_period: Duration,
}

/// The sampling period to respect towards `endpoint` when exporting every
/// `interval`: Google's 5 s, or, towards an emulator asked for shorter
/// intervals, half the interval (a time-scaled emulator accepts points that
/// often; an unscaled one refuses them with M8's message, which is then
/// warned about, never hidden).
pub fn sampling_period_for(endpoint: &Endpoint, interval: Duration) -> Duration {
    match endpoint {
        Endpoint::Emulator(_) if interval < MIN_SAMPLING_PERIOD => interval / 2,
        _ => MIN_SAMPLING_PERIOD,
    }
}

impl CloudMonitoringExporter {
    /// Must be called inside the tokio runtime the exports will run on; it
    /// starts creating the descriptors there, without waiting.
    pub fn new(settings: ExporterSettings) -> Self {
        let shared = Arc::new(Shared {
            project_id: settings.project_id,
            endpoint: settings.endpoint,
            resource: settings.resource,
            specs: settings.specs,
            deviations: settings.deviations,
            client: OnceCell::new(),
            descriptors: OnceCell::new(),
            history: Mutex::new(SeriesHistory::new(
                MAX_REMEMBERED_SERIES,
                settings.sampling_period,
            )),
            health: settings.health,
        });
        let runtime = tokio::runtime::Handle::current();
        let early = Arc::clone(&shared);
        runtime.spawn(async move { early.ensure_descriptors().await });
        Self { shared, runtime }
    }

    pub fn handle(&self) -> MetricsExporterHandle {
        MetricsExporterHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl MetricsExporterHandle {
    /// How long until every series may take a new point (M8), so that the
    /// final export at shutdown writes all of them; zero when it already can.
    pub fn wait_before_final_export(&self) -> Duration {
        let latest = self.shared.history_lock().latest;
        latest
            .and_then(|latest| {
                (latest + self.shared.history_lock().sampling_period + FINAL_EXPORT_MARGIN)
                    .duration_since(SystemTime::now())
                    .ok()
            })
            .unwrap_or_default()
    }
}

impl Shared {
    fn history_lock(&self) -> std::sync::MutexGuard<'_, SeriesHistory> {
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn client(&self) -> Result<&MetricClient, MetricExportError> {
        self.client
            .get_or_try_init(|| MetricClient::connect(&self.endpoint))
            .await
            .map_err(MetricExportError::from)
    }

    /// Creates the descriptors, once per process; a failure is logged once
    /// and not retried: writes auto-create what is missing (M14), without
    /// units and descriptions.
    async fn ensure_descriptors(&self) {
        self.descriptors
            .get_or_init(|| async {
                if let Err(error) = self.create_descriptors().await {
                    tracing::warn!(
                        %error,
                        "could not create the metric descriptors; Cloud Monitoring will create them on first write, without units and descriptions"
                    );
                }
            })
            .await;
    }

    async fn create_descriptors(&self) -> Result<(), MetricExportError> {
        let client = self.client().await?;
        for spec in self.specs {
            let request = CreateMetricDescriptorRequest {
                name: format!("projects/{}", self.project_id),
                metric_descriptor: Some(descriptor(&self.project_id, spec)),
            };
            with_retries(|| client.create_metric_descriptor(request.clone()))
                .await
                .map_err(|status| MetricExportError::Rpc {
                    method: "CreateMetricDescriptor",
                    status,
                })?;
        }
        Ok(())
    }

    async fn export(&self, mapped: Vec<MappedSeries>) {
        self.ensure_descriptors().await;
        let (due, held_back) = self.history_lock().due(mapped);
        if held_back > 0 {
            tracing::debug!(
                held_back,
                "points held back until their series' previous point is 5 s old"
            );
        }
        for batch in due.chunks(MAX_SERIES_PER_REQUEST) {
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: &[MappedSeries]) {
        let points = batch.len();
        let client = match self.client().await {
            Ok(client) => client,
            Err(error) => return self.health.record_failed(points, &error),
        };
        let request = CreateTimeSeriesRequest {
            name: format!("projects/{}", self.project_id),
            time_series: batch.iter().map(|mapped| mapped.series.clone()).collect(),
        };
        match with_retries(|| client.create_time_series(request.clone())).await {
            Ok(()) => {
                self.health.record_exported(points);
                self.history_lock().written(batch);
            }
            Err(status) if is_partial_failure(&status) => {
                let failed = failed_points(&status).unwrap_or(points).min(points);
                self.health.record_exported(points - failed);
                let error = MetricExportError::Rpc {
                    method: "CreateTimeSeries",
                    status,
                };
                self.health.record_failed(failed, &error);
                // Which series were written is not said in a usable form;
                // assuming all were can only delay a point, never trip M8.
                self.history_lock().written(batch);
            }
            Err(status) => {
                let error = MetricExportError::Rpc {
                    method: "CreateTimeSeries",
                    status,
                };
                self.health.record_failed(points, &error);
            }
        }
    }
}

/// Calls `call`, again after a pause when it answers UNAVAILABLE.
async fn with_retries<F, Fut>(mut call: F) -> Result<(), tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut backoff = RETRY_BACKOFF.iter();
    loop {
        match call().await {
            Err(status) if status.code() == Code::Unavailable => match backoff.next() {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => return Err(status),
            },
            other => return other,
        }
    }
}

fn is_partial_failure(status: &tonic::Status) -> bool {
    status.code() == Code::InvalidArgument && status.message().starts_with(PARTIAL_FAILURE)
}

/// The points a partial failure lost, from the `CreateTimeSeriesSummary`
/// in its details (a `google.rpc.Status`).
fn failed_points(status: &tonic::Status) -> Option<usize> {
    let details = gcloud_sdk::google::rpc::Status::decode(status.details()).ok()?;
    let summary = details.details.iter().find(|any| {
        any.type_url
            .ends_with("google.monitoring.v3.CreateTimeSeriesSummary")
    })?;
    let summary = CreateTimeSeriesSummary::decode(summary.value.as_slice()).ok()?;
    let failed = summary
        .total_point_count
        .saturating_sub(summary.success_point_count);
    usize::try_from(failed).ok()
}

/// When each series last got a point, to keep to one point per 5 s (M8).
#[derive(Debug)]
struct SeriesHistory {
    last_end: HashMap<String, SystemTime>,
    /// The newest end time written, of any series.
    latest: Option<SystemTime>,
    capacity: usize,
    sampling_period: Duration,
}

impl SeriesHistory {
    fn new(capacity: usize, sampling_period: Duration) -> Self {
        Self {
            last_end: HashMap::new(),
            latest: None,
            capacity,
            sampling_period,
        }
    }

    /// The points that may be written now, and how many must wait.
    fn due(&self, mapped: Vec<MappedSeries>) -> (Vec<MappedSeries>, usize) {
        let total = mapped.len();
        let due: Vec<MappedSeries> = mapped
            .into_iter()
            .filter(|point| match self.last_end.get(&point.key) {
                Some(last) => point
                    .end
                    .duration_since(*last)
                    .is_ok_and(|gap| gap >= self.sampling_period),
                None => true,
            })
            .collect();
        let held_back = total - due.len();
        (due, held_back)
    }

    fn written(&mut self, batch: &[MappedSeries]) {
        for point in batch {
            if self.last_end.len() < self.capacity || self.last_end.contains_key(&point.key) {
                self.last_end.insert(point.key.clone(), point.end);
            }
            self.latest = Some(
                self.latest
                    .map_or(point.end, |latest| latest.max(point.end)),
            );
        }
    }
}

impl PushMetricExporter for CloudMonitoringExporter {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // Mapped here: `metrics` is borrowed and cannot go to the runtime.
        let mapped = to_time_series(metrics, &self.shared.resource, &self.shared.deviations);
        let shared = Arc::clone(&self.shared);
        // The gRPC client needs tokio; the SDK's reader thread has none.
        let task = self
            .runtime
            .spawn(async move { shared.export(mapped).await });
        async move {
            // Failures are counted and reported by `ExportHealth`, once a
            // minute at most; the SDK would log every failed export again.
            task.await
                .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::monitoring::v3::TimeSeries;

    #[test]
    fn only_an_emulator_gets_points_more_often_than_every_5_s() {
        let emulator = Endpoint::Emulator("127.0.0.1:8085".into());
        let half_second = Duration::from_millis(500);
        assert_eq!(
            sampling_period_for(&Endpoint::Google, half_second),
            MIN_SAMPLING_PERIOD
        );
        assert_eq!(
            sampling_period_for(&emulator, half_second),
            Duration::from_millis(250)
        );
        assert_eq!(
            sampling_period_for(&emulator, Duration::from_secs(60)),
            MIN_SAMPLING_PERIOD
        );
    }

    fn point(key: &str, end: SystemTime) -> MappedSeries {
        MappedSeries {
            key: key.to_owned(),
            end,
            series: TimeSeries::default(),
        }
    }

    #[test]
    fn a_series_gets_a_point_at_most_every_5_s() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut history = SeriesHistory::new(10, MIN_SAMPLING_PERIOD);
        history.written(&[point("a", t0)]);
        let (due, held_back) = history.due(vec![
            point("a", t0 + Duration::from_millis(4_999)),
            point("b", t0 + Duration::from_millis(100)),
        ]);
        assert_eq!(held_back, 1);
        assert_eq!(
            due.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        let (due, held_back) = history.due(vec![point("a", t0 + Duration::from_secs(5))]);
        assert_eq!((due.len(), held_back), (1, 0));
    }

    #[test]
    fn the_history_is_bounded() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut history = SeriesHistory::new(2, MIN_SAMPLING_PERIOD);
        history.written(&[point("a", t0), point("b", t0), point("c", t0)]);
        assert_eq!(history.last_end.len(), 2);
        assert_eq!(history.latest, Some(t0));
    }

    #[test]
    fn a_partial_failure_says_how_many_points_failed() {
        use gcloud_sdk::google::monitoring::v3::create_time_series_summary;
        let summary = CreateTimeSeriesSummary {
            total_point_count: 5,
            success_point_count: 3,
            errors: vec![create_time_series_summary::Error {
                status: None,
                point_count: 2,
            }],
        };
        let details = gcloud_sdk::google::rpc::Status {
            code: 3,
            message: String::new(),
            details: vec![prost_types::Any {
                type_url: "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary".into(),
                value: summary.encode_to_vec(),
            }],
        };
        let status = tonic::Status::with_details(
            Code::InvalidArgument,
            "One or more TimeSeries could not be written: bad: timeSeries[0-1]",
            details.encode_to_vec().into(),
        );
        assert!(is_partial_failure(&status));
        assert_eq!(failed_points(&status), Some(2));
        assert!(!is_partial_failure(&tonic::Status::unavailable("down")));
    }
}
