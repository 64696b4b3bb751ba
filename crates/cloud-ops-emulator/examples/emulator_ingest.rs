//! Measures how many spans and points per second an emulator ingests over
//! gRPC: 8 concurrent writers send batches of 100 spans, and single-series
//! CreateTimeSeries calls of 200 series each (Cloud Monitoring's maximum).
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
use prost_types::Timestamp;
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

    let spans = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = TraceServiceClient::new(channel.clone());
        let spans = Arc::clone(&spans);
        writers.push(tokio::spawn(async move {
            let mut batch_number = 0u64;
            while Instant::now() < deadline {
                batch_number += 1;
                let batch = (0..SPANS_PER_BATCH)
                    .map(|n| span(writer, batch_number, n))
                    .collect();
                client
                    .batch_write_spans(BatchWriteSpansRequest {
                        name: "projects/bench".into(),
                        spans: batch,
                    })
                    .await?;
                spans.fetch_add(SPANS_PER_BATCH, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for writer in writers {
        writer.await??;
    }
    let span_rate = spans.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();

    // Points: each series may take one point per 5 s, so every request
    // writes 200 new series (fresh label values) with one point each.
    let points = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = MetricServiceClient::new(channel.clone());
        let points = Arc::clone(&points);
        writers.push(tokio::spawn(async move {
            let mut request_number = 0u64;
            while Instant::now() < deadline {
                request_number += 1;
                let series = (0..SERIES_PER_REQUEST)
                    .map(|n| series(writer, request_number, n))
                    .collect();
                client
                    .create_time_series(CreateTimeSeriesRequest {
                        name: "projects/bench".into(),
                        time_series: series,
                    })
                    .await?;
                points.fetch_add(SERIES_PER_REQUEST, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for writer in writers {
        writer.await??;
    }
    let point_rate = points.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "emulator ingest: {span_rate:.0} spans/s (batches of {SPANS_PER_BATCH}), {point_rate:.0} points/s (requests of {SERIES_PER_REQUEST} series), {WRITERS} writers"
    );
    Ok(())
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
