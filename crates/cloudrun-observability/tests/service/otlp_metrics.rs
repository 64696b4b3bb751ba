//! `OTEL_METRICS_EXPORTER=otlp`: the service's four metrics leave over
//! OTLP/gRPC `MetricsService/Export`, cumulative, with the resource
//! attributes Google derives `prometheus_target` from; and in the emulator
//! (which ingests OTLP as Google's Telemetry API does) they become
//! `prometheus.googleapis.com/NAME/KIND` series on `prometheus_target`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::emulator_helpers::{now_seconds, TestEmulator};
use crate::helpers::{serve_grpc, spawn_service, ServiceProcess};

/// What a loopback `MetricsService` received, export by export.
#[derive(Clone, Default)]
struct StandIn(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for StandIn {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn stop(service: &mut ServiceProcess) {
    service.sigterm();
    assert!(
        service.wait_exit(Duration::from_secs(10)).is_some(),
        "exits within Cloud Run's 10 s"
    );
}

fn string(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(AnyValue::StringValue(text)) => text.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_leave_cumulative_with_the_resource_prometheus_target_needs() {
    let stand_in = StandIn::default();
    let addr = serve_grpc(tonic::service::Routes::new(MetricsServiceServer::new(
        stand_in.clone(),
    )))
    .await;
    let endpoint = format!("http://{addr}");
    let mut service = spawn_service(&[
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("OTEL_SERVICE_NAME", "bookshop"),
    ]);
    for _ in 0..3 {
        assert_eq!(service.get("/api/books").await.status(), 200);
    }
    stop(&mut service).await;

    let received = stand_in.0.lock().unwrap().clone();
    assert!(!received.is_empty(), "no OTLP metrics export arrived");
    let last = received.last().unwrap();
    let resource = last.resource_metrics[0].resource.as_ref().unwrap();
    let attributes: BTreeMap<String, String> = resource
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), string(kv.value.as_ref())))
        .collect();
    assert_eq!(attributes["service.name"], "bookshop");
    assert_eq!(attributes["gcp.project_id"], "local");
    assert_eq!(attributes["location"], "global");
    assert!(attributes["service.instance.id"].starts_with("local-"));

    let metrics: BTreeMap<String, Data> = last
        .resource_metrics
        .iter()
        .flat_map(|r| r.scope_metrics.iter())
        .flat_map(|s| s.metrics.iter())
        .filter_map(|m| Some((m.name.clone(), m.data.clone()?)))
        .collect();
    let Some(Data::Histogram(duration)) = metrics.get("http.server.request.duration") else {
        panic!("no duration histogram in {metrics:#?}");
    };
    // Cumulative (2), as Cloud Monitoring's CUMULATIVE DISTRIBUTION.
    assert_eq!(duration.aggregation_temporality, 2);
    let books = duration
        .data_points
        .iter()
        .find(|point| {
            point
                .attributes
                .iter()
                .any(|kv| kv.key == "http.route" && string(kv.value.as_ref()) == "/api/books")
        })
        .expect("a /api/books point");
    assert_eq!(books.count, 3);
    assert!(matches!(
        metrics.get("app.sessions.active"),
        Some(Data::Gauge(_))
    ));
    let flushed = service
        .entries()
        .into_iter()
        .find(|entry| entry["message"] == "metrics flushed")
        .expect("a flush summary");
    assert_eq!(flushed["failed"], 0, "{flushed}");
}

/// Needs the emulator's OTLP metrics ingest (branch `otlp-emulator`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_reach_the_emulator_as_prometheus_target_series() {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", &host),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("OTEL_SERVICE_NAME", "bookshop"),
    ]);
    for _ in 0..4 {
        assert_eq!(service.get("/api/books").await.status(), 200);
    }
    stop(&mut service).await;

    let metric_type = "prometheus.googleapis.com/http.server.request.duration/histogram";
    let filter = format!("metric.type = \"{metric_type}\"");
    let deadline = Instant::now() + Duration::from_secs(5);
    let series = loop {
        let now = now_seconds();
        let series = emulator
            .list_series("local", &filter, now - 3600, now + 1)
            .await;
        if !series.is_empty() || Instant::now() > deadline {
            break series;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let books = series
        .iter()
        .find(|series| {
            series.metric.as_ref().is_some_and(|metric| {
                metric.labels.get("http.route").map(String::as_str) == Some("/api/books")
            })
        })
        .unwrap_or_else(|| panic!("no /api/books series of {metric_type} in {series:#?}"));
    let resource = books.resource.as_ref().unwrap();
    assert_eq!(resource.r#type, "prometheus_target");
    assert_eq!(resource.labels["location"], "global");
    assert_eq!(resource.labels["job"], "bookshop");
    assert!(
        resource.labels["instance"].starts_with("local-"),
        "{resource:?}"
    );
    let newest = books.points.first().expect("a point");
    match newest.value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(gcloud_sdk::google::monitoring::v3::typed_value::Value::DistributionValue(
            distribution,
        )) => assert_eq!(distribution.count, 4),
        other => panic!("expected a distribution, got {other:?}"),
    }
    // A gauge keeps its kind in the name.
    let now = now_seconds();
    let sessions = emulator
        .list_series(
            "local",
            "metric.type = \"prometheus.googleapis.com/app.sessions.active/gauge\"",
            now - 3600,
            now + 1,
        )
        .await;
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
}
