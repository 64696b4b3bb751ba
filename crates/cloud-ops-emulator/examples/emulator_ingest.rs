//! Measures how many spans and points per second an emulator ingests over
//! gRPC: 8 concurrent writers send batches of 100 spans, and single-series
//! CreateTimeSeries calls of 200 series each (Cloud Monitoring's maximum);
//! then the same through OTLP (the Telemetry API's way in): batches of 100
//! spans over gRPC and OTLP/HTTP protobuf, and requests of 200 points (the
//! Telemetry API's maximum) over gRPC. One line per API.
//!
//! ```sh
//! cargo run --release --example emulator_ingest -- 127.0.0.1:8085 [seconds]
//! ```
//!
//! `scripts/bench` runs it against a fresh emulator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gcloud_sdk::google::api::{metric_descriptor::MetricKind, Metric, MonitoredResource};
use gcloud_sdk::google::devtools::cloudtrace::v2::trace_service_client::TraceServiceClient;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    BatchWriteSpansRequest, Span, TruncatableString,
};
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
use gcloud_sdk::google::monitoring::v3::{
    typed_value, CreateTimeSeriesRequest, Point, TimeInterval, TimeSeries, TypedValue,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient as OtlpMetricsClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient as OtlpTraceClient;
use prost::Message;
use prost_types::Timestamp;
use std::future::Future;
use tonic::transport::Channel;

const WRITERS: u64 = 8;
const SPANS_PER_BATCH: u64 = 100;
const SERIES_PER_REQUEST: u64 = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let emulator = args.first().map_or("127.0.0.1:8085", String::as_str);
    let seconds: u64 = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let channel = Channel::from_shared(format!("http://{emulator}"))?
        .connect()
        .await?;

    let span_rate = rate(seconds, SPANS_PER_BATCH, {
        let channel = channel.clone();
        move |writer, batch_number| {
            let mut client = TraceServiceClient::new(channel.clone());
            async move {
                let batch = (0..SPANS_PER_BATCH)
                    .map(|n| span(writer, batch_number, n))
                    .collect();
                client
                    .batch_write_spans(BatchWriteSpansRequest {
                        name: "projects/bench".into(),
                        spans: batch,
                    })
                    .await?;
                Ok(())
            }
        }
    })
    .await?;

    // Points: each series may take one point per 5 s, so every request
    // writes 200 new series (fresh label values) with one point each.
    let point_rate = rate(seconds, SERIES_PER_REQUEST, {
        let channel = channel.clone();
        move |writer, request_number| {
            let mut client = MetricServiceClient::new(channel.clone());
            async move {
                let series = (0..SERIES_PER_REQUEST)
                    .map(|n| series(writer, request_number, n))
                    .collect();
                client
                    .create_time_series(CreateTimeSeriesRequest {
                        name: "projects/bench".into(),
                        time_series: series,
                    })
                    .await?;
                Ok(())
            }
        }
    })
    .await?;
    println!(
        "emulator ingest: {span_rate:.0} spans/s (batches of {SPANS_PER_BATCH}), {point_rate:.0} points/s (requests of {SERIES_PER_REQUEST} series), {WRITERS} writers"
    );

    let otlp_span_rate = rate(seconds, SPANS_PER_BATCH, {
        let channel = channel.clone();
        move |writer, batch_number| {
            let mut client = OtlpTraceClient::new(channel.clone());
            async move {
                client.export(otlp::spans(writer, batch_number)).await?;
                Ok(())
            }
        }
    })
    .await?;
    let http = reqwest::Client::new();
    let url = format!("http://{emulator}/v1/traces");
    let otlp_http_span_rate = rate(seconds, SPANS_PER_BATCH, move |writer, batch_number| {
        let request = http
            .post(url.clone())
            .header("content-type", "application/x-protobuf")
            .body(otlp::spans(writer, batch_number).encode_to_vec());
        async move {
            request.send().await?.error_for_status()?;
            Ok(())
        }
    })
    .await?;
    let otlp_point_rate = rate(seconds, SERIES_PER_REQUEST, {
        let channel = channel.clone();
        move |writer, request_number| {
            let mut client = OtlpMetricsClient::new(channel.clone());
            async move {
                let response = client
                    .export(otlp::points(writer, request_number, SERIES_PER_REQUEST))
                    .await?
                    .into_inner();
                if let Some(partial) = response.partial_success {
                    anyhow::bail!("points rejected: {}", partial.error_message);
                }
                Ok(())
            }
        }
    })
    .await?;
    println!(
        "emulator OTLP ingest: {otlp_span_rate:.0} spans/s over gRPC, {otlp_http_span_rate:.0} spans/s over HTTP/protobuf (batches of {SPANS_PER_BATCH}), {otlp_point_rate:.0} points/s over gRPC (requests of {SERIES_PER_REQUEST} points), {WRITERS} writers"
    );
    Ok(())
}

/// Items per second that `WRITERS` concurrent writers get through in
/// `seconds`, each calling `write(writer, request_number)` in a loop; every
/// call carries `per_request` items.
async fn rate<W, F>(seconds: u64, per_request: u64, write: W) -> anyhow::Result<f64>
where
    W: Fn(u64, u64) -> F + Clone + Send + 'static,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let items = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let items = Arc::clone(&items);
        let write = write.clone();
        writers.push(tokio::spawn(async move {
            let mut request_number = 0u64;
            while Instant::now() < deadline {
                request_number += 1;
                write(writer, request_number).await?;
                items.fetch_add(per_request, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for writer in writers {
        writer.await??;
    }
    Ok(items.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

fn span(writer: u64, batch: u64, n: u64) -> Span {
    let trace = format!("{:016x}{:016x}", writer + 1, batch);
    let id = format!("{:016x}", n + 1);
    let mut start = now();
    start.seconds -= 1;
    Span {
        name: format!("projects/bench/traces/{trace}/spans/{id}"),
        span_id: id,
        display_name: Some(TruncatableString {
            value: "GET /api/books/{id}".into(),
            truncated_byte_count: 0,
        }),
        start_time: Some(start),
        end_time: Some(now()),
        ..Span::default()
    }
}

fn series(writer: u64, request: u64, n: u64) -> TimeSeries {
    let labels = HashMap::from([("series".to_owned(), format!("{writer}-{request}-{n}"))]);
    let resource_labels = HashMap::from([
        ("project_id".to_owned(), "bench".to_owned()),
        ("location".to_owned(), "global".to_owned()),
        ("namespace".to_owned(), "bench".to_owned()),
        ("job".to_owned(), "bench".to_owned()),
        ("task_id".to_owned(), writer.to_string()),
    ]);
    TimeSeries {
        metric: Some(Metric {
            r#type: "workload.googleapis.com/bench.gauge".into(),
            labels,
        }),
        resource: Some(MonitoredResource {
            r#type: "generic_task".into(),
            labels: resource_labels,
        }),
        metric_kind: MetricKind::Gauge as i32,
        points: vec![Point {
            interval: Some(TimeInterval {
                start_time: None,
                end_time: Some(now()),
            }),
            value: Some(TypedValue {
                value: Some(typed_value::Value::DoubleValue(n as f64)),
            }),
        }],
        ..TimeSeries::default()
    }
}

/// OTLP requests like the ones above.
mod otlp {
    use std::time::SystemTime;

    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: String) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value)),
            }),
        }
    }

    fn resource(writer: u64) -> Resource {
        Resource {
            attributes: vec![
                kv("gcp.project_id", "bench".into()),
                kv("service.name", "bench".into()),
                kv("service.instance.id", writer.to_string()),
                kv("cloud.region", "europe-west1".into()),
            ],
            ..Resource::default()
        }
    }

    fn now_nanos() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    pub fn spans(writer: u64, batch: u64) -> ExportTraceServiceRequest {
        let mut trace_id = (writer + 1).to_be_bytes().to_vec();
        trace_id.extend(batch.to_be_bytes());
        let end = now_nanos();
        let spans = (0..super::SPANS_PER_BATCH)
            .map(|n| Span {
                trace_id: trace_id.clone(),
                span_id: (n + 1).to_be_bytes().to_vec(),
                name: "GET /api/books/{id}".into(),
                start_time_unix_nano: end - 1_000_000_000,
                end_time_unix_nano: end,
                ..Span::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource(writer)),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    /// `count` gauge points of one metric, each its own series.
    pub fn points(writer: u64, request: u64, count: u64) -> ExportMetricsServiceRequest {
        let time = now_nanos();
        let data_points = (0..count)
            .map(|n| NumberDataPoint {
                attributes: vec![kv("series", format!("{request}-{n}"))],
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(n as f64)),
                ..NumberDataPoint::default()
            })
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource(writer)),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "bench.gauge".into(),
                        data: Some(metric::Data::Gauge(Gauge { data_points })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }
}
