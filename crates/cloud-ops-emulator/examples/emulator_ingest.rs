//! Measures how many spans and points per second an emulator ingests, each
//! API beside the one it stands in for: Cloud Trace v2 `BatchWriteSpans`
//! (batches of 100 spans) against OTLP `TraceService/Export` over gRPC and
//! over OTLP/HTTP protobuf (batches of 100 spans), and Monitoring v3
//! `CreateTimeSeries` (200 series of one point, Cloud Monitoring's maximum)
//! against OTLP `MetricsService/Export` (200 points, the Telemetry API's
//! maximum). 8 concurrent writers per API.
//!
//! OTLP spans are stored with their resource's attributes (4 here: O13),
//! which the plain v2 spans do not carry; v2 spans carrying the same 4
//! attributes are measured too, to tell the cost of that data from the cost
//! of the OTLP path.
//!
//! ```sh
//! EMULATOR_PID=1234 cargo run --release --example emulator_ingest -- 127.0.0.1:8085 [seconds] [rounds]
//! ```
//!
//! The APIs take turns, `seconds` each, for `rounds` rounds (every other
//! round in reverse order), so that a change in the machine's load falls on
//! all of them alike; each line gives the median and every round's rate.
//! With `EMULATOR_PID` it also gives the emulator's CPU time per item (from
//! `/proc/PID/stat`), which other work on a shared machine disturbs far less
//! than the rate. `INGEST_APIS=v2,otlp-grpc` (keys: v2, v2-attributes,
//! otlp-grpc, otlp-http, v3, otlp-points) measures only those, e.g. under
//! `perf record`. `scripts/bench` runs it against a fresh emulator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gcloud_sdk::google::api::{metric_descriptor::MetricKind, Metric, MonitoredResource};
use gcloud_sdk::google::devtools::cloudtrace::v2::trace_service_client::TraceServiceClient;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, span, AttributeValue, BatchWriteSpansRequest, Span, TruncatableString,
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

/// One way in, measured on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    TraceV2,
    TraceV2WithAttributes,
    OtlpGrpcSpans,
    OtlpHttpSpans,
    MonitoringV3,
    OtlpGrpcPoints,
}

impl Api {
    const ALL: [Self; 6] = [
        Self::TraceV2,
        Self::TraceV2WithAttributes,
        Self::OtlpGrpcSpans,
        Self::OtlpHttpSpans,
        Self::MonitoringV3,
        Self::OtlpGrpcPoints,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::TraceV2 => "Cloud Trace v2 BatchWriteSpans",
            Self::TraceV2WithAttributes => "v2, the resource's 4 attributes",
            Self::OtlpGrpcSpans => "OTLP/gRPC TraceService/Export",
            Self::OtlpHttpSpans => "OTLP/HTTP protobuf /v1/traces",
            Self::MonitoringV3 => "Monitoring v3 CreateTimeSeries",
            Self::OtlpGrpcPoints => "OTLP/gRPC MetricsService/Export",
        }
    }

    /// Its name in `INGEST_APIS`.
    fn key(self) -> &'static str {
        match self {
            Self::TraceV2 => "v2",
            Self::TraceV2WithAttributes => "v2-attributes",
            Self::OtlpGrpcSpans => "otlp-grpc",
            Self::OtlpHttpSpans => "otlp-http",
            Self::MonitoringV3 => "v3",
            Self::OtlpGrpcPoints => "otlp-points",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::MonitoringV3 | Self::OtlpGrpcPoints => "points",
            _ => "spans",
        }
    }

    /// The APIs an OTLP one is compared with, for the ratio lines.
    fn baselines(self) -> &'static [Self] {
        match self {
            Self::OtlpGrpcSpans | Self::OtlpHttpSpans => {
                &[Self::TraceV2, Self::TraceV2WithAttributes]
            }
            Self::OtlpGrpcPoints => &[Self::MonitoringV3],
            _ => &[],
        }
    }
}

/// What the writers connect to.
#[derive(Clone)]
struct Target {
    channel: Channel,
    http: reqwest::Client,
    traces_url: String,
}

/// One API's turn in one round.
#[derive(Debug, Clone, Copy)]
struct Sample {
    per_second: f64,
    /// The emulator's CPU microseconds per item, when its pid is known.
    cpu_us: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let emulator = args.first().map_or("127.0.0.1:8085", String::as_str);
    let seconds: u64 = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let rounds: u64 = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let pid: Option<u32> = std::env::var("EMULATOR_PID")
        .ok()
        .map(|p| p.parse())
        .transpose()?;
    let target = Target {
        channel: Channel::from_shared(format!("http://{emulator}"))?
            .connect()
            .await?,
        http: reqwest::Client::new(),
        traces_url: format!("http://{emulator}/v1/traces"),
    };
    println!(
        "emulator ingest: {WRITERS} writers, {seconds} s per API, {rounds} alternating round(s); spans in batches of {SPANS_PER_BATCH}, points in requests of {SERIES_PER_REQUEST}"
    );
    let chosen = std::env::var("INGEST_APIS").unwrap_or_default();
    let apis: Vec<Api> = Api::ALL
        .into_iter()
        .filter(|api| chosen.is_empty() || chosen.split(',').any(|key| key == api.key()))
        .collect();
    let mut samples: HashMap<&str, Vec<Sample>> = HashMap::new();
    for round in 0..rounds {
        let mut order = apis.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for api in order {
            let sample = measure(api, &target, seconds, round, pid).await?;
            samples.entry(api.label()).or_default().push(sample);
        }
    }
    for &api in &apis {
        println!("{}", report(api, &samples[api.label()]));
    }
    for &api in &apis {
        for &baseline in api.baselines().iter().filter(|b| apis.contains(b)) {
            println!(
                "{}",
                ratio(
                    api,
                    &samples[api.label()],
                    baseline,
                    &samples[baseline.label()]
                )
            );
        }
    }
    Ok(())
}

/// `api`'s rate for `seconds`, with the emulator's CPU time per item.
async fn measure(
    api: Api,
    target: &Target,
    seconds: u64,
    round: u64,
    pid: Option<u32>,
) -> anyhow::Result<Sample> {
    let cpu_before = pid.map(cpu_seconds).transpose()?;
    // Request numbers go on from round to round: a series takes one point
    // per 5 s, and trace ids stay distinct.
    let first = round << 32;
    let (items, elapsed) = match api {
        Api::TraceV2 => trace_v2(target, seconds, first, false).await?,
        Api::TraceV2WithAttributes => trace_v2(target, seconds, first, true).await?,
        Api::OtlpGrpcSpans => otlp_grpc_spans(target, seconds, first).await?,
        Api::OtlpHttpSpans => otlp_http_spans(target, seconds, first).await?,
        Api::MonitoringV3 => monitoring_v3(target, seconds, first).await?,
        Api::OtlpGrpcPoints => otlp_grpc_points(target, seconds, first).await?,
    };
    let cpu_us = match (pid, cpu_before) {
        (Some(pid), Some(before)) => Some((cpu_seconds(pid)? - before) * 1e6 / items as f64),
        _ => None,
    };
    Ok(Sample {
        per_second: items as f64 / elapsed.as_secs_f64(),
        cpu_us,
    })
}

/// CPU time (user and system) process `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat is short"))?
            .parse::<f64>()?)
    };
    // utime and stime, fields 14 and 15 of stat(5), 12 and 13 after the name.
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / hz)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn report(api: Api, samples: &[Sample]) -> String {
    let rates: Vec<String> = samples
        .iter()
        .map(|s| format!("{:.0}", s.per_second))
        .collect();
    let mut line = format!(
        "{:<32} {:>8.0} {}/s",
        api.label(),
        median(samples.iter().map(|s| s.per_second)),
        api.unit()
    );
    if samples.iter().all(|s| s.cpu_us.is_some()) {
        let cpu: Vec<String> = samples
            .iter()
            .filter_map(|s| s.cpu_us)
            .map(|c| format!("{c:.2}"))
            .collect();
        line += &format!(
            "   emulator CPU {:.2} us/{}",
            median(samples.iter().filter_map(|s| s.cpu_us)),
            api.unit().trim_end_matches('s')
        );
        line += &format!(
            "   (rounds: {}; CPU us: {})",
            rates.join(" "),
            cpu.join(" ")
        );
    } else {
        line += &format!("   (rounds: {})", rates.join(" "));
    }
    line
}

fn ratio(api: Api, samples: &[Sample], baseline: Api, base: &[Sample]) -> String {
    let rate = |s: &[Sample]| median(s.iter().map(|s| s.per_second));
    let mut line = format!(
        "{} / {}: {:.2} of the rate",
        api.label(),
        baseline.label(),
        rate(samples) / rate(base)
    );
    let cpu = |s: &[Sample]| median(s.iter().filter_map(|s| s.cpu_us));
    if samples.iter().chain(base).all(|s| s.cpu_us.is_some()) {
        line += &format!(", {:.2} of the CPU per item", cpu(samples) / cpu(base));
    }
    line
}

async fn trace_v2(
    target: &Target,
    seconds: u64,
    first: u64,
    with_attributes: bool,
) -> anyhow::Result<(u64, Duration)> {
    let channel = target.channel.clone();
    rate(
        seconds,
        SPANS_PER_BATCH,
        first,
        move |writer, batch_number| {
            let mut client = TraceServiceClient::new(channel.clone());
            async move {
                let batch = (0..SPANS_PER_BATCH)
                    .map(|n| span(writer, batch_number, n, with_attributes))
                    .collect();
                client
                    .batch_write_spans(BatchWriteSpansRequest {
                        name: "projects/bench".into(),
                        spans: batch,
                    })
                    .await?;
                Ok(())
            }
        },
    )
    .await
}

async fn otlp_grpc_spans(
    target: &Target,
    seconds: u64,
    first: u64,
) -> anyhow::Result<(u64, Duration)> {
    let channel = target.channel.clone();
    rate(
        seconds,
        SPANS_PER_BATCH,
        first,
        move |writer, batch_number| {
            let mut client = OtlpTraceClient::new(channel.clone());
            async move {
                let response = client
                    .export(otlp::spans(writer, batch_number))
                    .await?
                    .into_inner();
                if let Some(partial) = response.partial_success {
                    anyhow::bail!("spans rejected: {}", partial.error_message);
                }
                Ok(())
            }
        },
    )
    .await
}

async fn otlp_http_spans(
    target: &Target,
    seconds: u64,
    first: u64,
) -> anyhow::Result<(u64, Duration)> {
    let (http, url) = (target.http.clone(), target.traces_url.clone());
    rate(
        seconds,
        SPANS_PER_BATCH,
        first,
        move |writer, batch_number| {
            let request = http
                .post(url.clone())
                .header("content-type", "application/x-protobuf")
                .body(otlp::spans(writer, batch_number).encode_to_vec());
            async move {
                request.send().await?.error_for_status()?;
                Ok(())
            }
        },
    )
    .await
}

/// Each series may take one point per 5 s, so every request writes 200 new
/// series (fresh label values) with one point each.
async fn monitoring_v3(
    target: &Target,
    seconds: u64,
    first: u64,
) -> anyhow::Result<(u64, Duration)> {
    let channel = target.channel.clone();
    rate(
        seconds,
        SERIES_PER_REQUEST,
        first,
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
        },
    )
    .await
}

async fn otlp_grpc_points(
    target: &Target,
    seconds: u64,
    first: u64,
) -> anyhow::Result<(u64, Duration)> {
    let channel = target.channel.clone();
    rate(
        seconds,
        SERIES_PER_REQUEST,
        first,
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
        },
    )
    .await
}

/// Items written and the time taken when `WRITERS` concurrent writers call
/// `write(writer, request_number)` in a loop for `seconds`, numbering their
/// requests from `first` + 1; every call carries `per_request` items.
async fn rate<W, F>(
    seconds: u64,
    per_request: u64,
    first: u64,
    write: W,
) -> anyhow::Result<(u64, Duration)>
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
            let mut request_number = first;
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
    Ok((items.load(Ordering::Relaxed), started.elapsed()))
}

fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

/// A v2 span; `with_attributes`: carrying the attributes of the OTLP
/// requests' resource.
fn span(writer: u64, batch: u64, n: u64, with_attributes: bool) -> Span {
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
        attributes: with_attributes.then(|| span::Attributes {
            attribute_map: otlp::RESOURCE
                .iter()
                .map(|(key, value)| {
                    let value = value.map_or_else(|| writer.to_string(), str::to_owned);
                    ((*key).to_owned(), text_value(value))
                })
                .collect(),
            dropped_attributes_count: 0,
        }),
        ..Span::default()
    }
}

fn text_value(value: String) -> AttributeValue {
    AttributeValue {
        value: Some(attribute_value::Value::StringValue(TruncatableString {
            value,
            truncated_byte_count: 0,
        })),
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

    /// The resource's attributes; `None`: the writer's number.
    pub const RESOURCE: [(&str, Option<&str>); 4] = [
        ("gcp.project_id", Some("bench")),
        ("service.name", Some("bench")),
        ("service.instance.id", None),
        ("cloud.region", Some("europe-west1")),
    ];

    fn resource(writer: u64) -> Resource {
        Resource {
            attributes: RESOURCE
                .iter()
                .map(|(key, value)| {
                    kv(key, value.map_or_else(|| writer.to_string(), str::to_owned))
                })
                .collect(),
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
