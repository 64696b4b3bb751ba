//! OTLP ingest as Google's Telemetry API takes it: each transport and
//! signal sent over a real socket, read back through Google's read APIs
//! (Cloud Trace v1, Monitoring `ListTimeSeries`) and the stores.

use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::devtools::cloudtrace::v1::{self, GetTraceRequest, ListTracesRequest};
use gcloud_sdk::google::monitoring::v3::typed_value;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient as OtlpLogsClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient as OtlpMetricsClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient as OtlpTraceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::Code;

use crate::helpers::{now_seconds, TestEmulator, PROJECT};

pub const TRACE_ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
pub const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    }
}

/// A resource naming `project` (none when `None`) and the service.
pub fn resource(project: Option<&str>) -> Resource {
    let mut attributes = vec![
        string("service.name", "shop"),
        string("service.instance.id", "instance-1"),
        string("cloud.region", "europe-west1"),
    ];
    if let Some(project) = project {
        attributes.push(string("gcp.project_id", project));
    }
    Resource {
        attributes,
        ..Resource::default()
    }
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// A span of [`TRACE_ID`] with id `[n; 8]`, child of `parent` when given.
pub fn span(n: u8, parent: Option<u8>, name: &str) -> Span {
    let start = now_nanos() - 2_000_000_000;
    Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: vec![n; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: if parent.is_some() {
            span::SpanKind::Client as i32
        } else {
            span::SpanKind::Server as i32
        },
        start_time_unix_nano: start + u64::from(n) * 1_000_000,
        end_time_unix_nano: start + 500_000_000,
        attributes: vec![
            string("http.request.method", "GET"),
            int("http.response.status_code", 200),
        ],
        ..Span::default()
    }
}

pub fn trace_request(project: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(project)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "test-scope".into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

async fn otlp_traces(emulator: &TestEmulator) -> OtlpTraceClient<tonic::transport::Channel> {
    OtlpTraceClient::new(emulator.channel.clone())
}

async fn get_trace(emulator: &TestEmulator, project: &str) -> v1::Trace {
    emulator
        .trace_reader()
        .get_trace(GetTraceRequest {
            project_id: project.into(),
            trace_id: TRACE_HEX.into(),
        })
        .await
        .expect("GetTrace finds the trace")
        .into_inner()
}

#[tokio::test]
async fn otlp_grpc_spans_are_read_back_with_cloud_trace_v1() {
    let emulator = TestEmulator::start().await;
    let mut root = span(1, None, "GET /api/books");
    root.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "boom".into(),
    });
    let response = otlp_traces(&emulator)
        .await
        .export(trace_request(
            Some(PROJECT),
            vec![root, span(2, Some(1), "SELECT books")],
        ))
        .await
        .expect("Export succeeds")
        .into_inner();
    assert_eq!(response.partial_success, None);

    let trace = get_trace(&emulator, PROJECT).await;
    assert_eq!(trace.spans.len(), 2);
    let root = &trace.spans[0];
    assert_eq!(root.name, "GET /api/books");
    assert_eq!(root.span_id, 0x0101_0101_0101_0101);
    assert_eq!(root.parent_span_id, 0);
    assert_eq!(root.kind, v1::trace_span::SpanKind::RpcServer as i32);
    // O13: span and resource attributes verbatim, no /http/* renaming.
    assert_eq!(root.labels["http.request.method"], "GET");
    assert_eq!(root.labels["http.response.status_code"], "200");
    assert_eq!(root.labels["service.name"], "shop");
    assert_eq!(root.labels["gcp.project_id"], PROJECT);
    assert!(!root.labels.contains_key("/http/method"));
    let child = &trace.spans[1];
    assert_eq!(child.parent_span_id, 0x0101_0101_0101_0101);
    assert_eq!(child.kind, v1::trace_span::SpanKind::RpcClient as i32);

    let listed = emulator
        .trace_reader()
        .list_traces(ListTracesRequest {
            project_id: PROJECT.into(),
            filter: "root:GET".into(),
            ..ListTracesRequest::default()
        })
        .await
        .expect("ListTraces succeeds")
        .into_inner();
    assert_eq!(listed.traces.len(), 1);
    assert_eq!(listed.traces[0].trace_id, TRACE_HEX);

    let stored = emulator.emulator.store().traces.spans();
    let status = stored[0].span.status.as_ref().expect("error status kept");
    assert_eq!((status.code, status.message.as_str()), (2, "boom"));
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_without_gcp_project_id_is_invalid_argument_unless_a_default_project_is_set() {
    let emulator = TestEmulator::start().await;
    let error = otlp_traces(&emulator)
        .await
        .export(trace_request(None, vec![span(1, None, "root")]))
        .await
        .expect_err("Google rejects data without gcp.project_id");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("gcp.project_id"),
        "{}",
        error.message()
    );
    assert!(emulator.emulator.store().traces.spans().is_empty());
    emulator.emulator.shutdown().await;

    let emulator = TestEmulator::start_with(EmulatorConfig {
        otlp_default_project: Some("fallback".into()),
        ..EmulatorConfig::default()
    })
    .await;
    otlp_traces(&emulator)
        .await
        .export(trace_request(None, vec![span(1, None, "root")]))
        .await
        .expect("the default project stands in");
    assert_eq!(get_trace(&emulator, "fallback").await.spans.len(), 1);
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_bad_spans_are_rejected_one_by_one_in_partial_success() {
    let emulator = TestEmulator::start().await;
    let mut zero_trace = span(3, None, "zero trace id");
    zero_trace.trace_id = vec![0; 16];
    let nameless = span(4, None, "");
    let mut short_id = span(5, None, "short span id");
    short_id.span_id = vec![5; 4];
    let response = otlp_traces(&emulator)
        .await
        .export(trace_request(
            Some(PROJECT),
            vec![span(1, None, "good"), zero_trace, nameless, short_id],
        ))
        .await
        .expect("a request with bad spans still succeeds")
        .into_inner();
    let partial = response.partial_success.expect("partial_success is set");
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial.error_message.contains("trace_id")
            && partial.error_message.contains("name is required"),
        "{}",
        partial.error_message
    );
    let trace = get_trace(&emulator, PROJECT).await;
    assert_eq!(trace.spans.len(), 1);
    assert_eq!(emulator.emulator.store().traces.stats().spans_rejected, 3);
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_grpc_takes_gzip_and_listens_on_its_own_port_when_asked() {
    let emulator = TestEmulator::start_with(EmulatorConfig {
        otlp_grpc_port: Some(0),
        ..EmulatorConfig::default()
    })
    .await;
    let addr = emulator
        .emulator
        .otlp_grpc_addr()
        .expect("the OTLP gRPC port is bound");
    assert_ne!(addr, emulator.emulator.local_addr());
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connects to the OTLP port");
    OtlpTraceClient::new(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .export(trace_request(Some(PROJECT), vec![span(1, None, "gzipped")]))
        .await
        .expect("gzip is accepted");
    assert_eq!(get_trace(&emulator, PROJECT).await.spans[0].name, "gzipped");
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn a_taken_otlp_port_is_a_warning_not_a_failure() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let port = taken.local_addr().expect("has an address").port();
    let emulator = TestEmulator::start_with(EmulatorConfig {
        otlp_grpc_port: Some(port),
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(emulator.emulator.otlp_grpc_addr(), None);
    otlp_traces(&emulator)
        .await
        .export(trace_request(
            Some(PROJECT),
            vec![span(1, None, "main port")],
        ))
        .await
        .expect("the main port still takes OTLP");
    emulator.emulator.shutdown().await;
}

// ---- OTLP/HTTP ----

async fn post(
    emulator: &TestEmulator,
    path: &str,
    content_type: &str,
    gzip: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let body = if gzip {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    } else {
        body
    };
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", emulator.emulator.local_addr()))
        .header("content-type", content_type)
        .body(body);
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    request.send().await.expect("the emulator answers")
}

async fn post_json(
    emulator: &TestEmulator,
    path: &str,
    body: &impl serde::Serialize,
) -> reqwest::Response {
    let body = serde_json::to_vec(body).expect("serializes");
    post(emulator, path, "application/json", false, body).await
}

#[tokio::test]
async fn otlp_http_takes_protobuf_and_json_gzipped_or_not() {
    let emulator = TestEmulator::start().await;
    let cases = [
        ("application/x-protobuf", false, 1u8),
        ("application/x-protobuf", true, 2),
        ("application/json", false, 3),
        ("application/json", true, 4),
    ];
    for (content_type, gzip, n) in cases {
        let request = trace_request(Some(PROJECT), vec![span(n, None, &format!("span {n}"))]);
        let body = if content_type == "application/json" {
            serde_json::to_vec(&request).expect("serializes")
        } else {
            request.encode_to_vec()
        };
        let response = post(&emulator, "/v1/traces", content_type, gzip, body).await;
        assert_eq!(response.status(), 200, "{content_type} gzip={gzip}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            content_type
        );
        let bytes = response.bytes().await.expect("a body");
        if content_type == "application/json" {
            let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON answer");
            assert!(
                answer.get("partialSuccess").is_none_or(|p| p.is_null()),
                "{answer}"
            );
        } else {
            let answer = ExportTraceServiceResponse::decode(bytes).expect("protobuf answer");
            assert_eq!(answer.partial_success, None);
        }
    }
    let names: Vec<String> = get_trace(&emulator, PROJECT)
        .await
        .spans
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["span 1", "span 2", "span 3", "span 4"]);
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_http_json_uses_otlp_json_encoding_hex_ids_and_string_integers() {
    let emulator = TestEmulator::start().await;
    let start = now_nanos() - 1_000_000_000;
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "gcp.project_id", "value": {"stringValue": PROJECT}},
                {"key": "service.name", "value": {"stringValue": "json-shop"}}
            ]},
            "scopeSpans": [{"spans": [{
                "traceId": TRACE_HEX,
                "spanId": "0102030405060708",
                "name": "from JSON",
                "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 1000).to_string(),
                "attributes": [{"key": "retries", "value": {"intValue": "3"}}]
            }]}]
        }]
    });
    let response = post(
        &emulator,
        "/v1/traces",
        "application/json",
        false,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let trace = get_trace(&emulator, PROJECT).await;
    assert_eq!(trace.spans[0].name, "from JSON");
    assert_eq!(trace.spans[0].span_id, 0x0102_0304_0506_0708);
    assert_eq!(trace.spans[0].labels["retries"], "3");
    assert_eq!(trace.spans[0].labels["service.name"], "json-shop");
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_http_errors_are_statuses_with_the_right_http_code() {
    let emulator = TestEmulator::start().await;
    let missing_project = trace_request(None, vec![span(1, None, "x")]);
    let response = post_json(&emulator, "/v1/traces", &missing_project).await;
    assert_eq!(response.status(), 400);
    let status: serde_json::Value = response.json().await.expect("a JSON status");
    assert_eq!(status["code"], 3);
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("gcp.project_id"));

    let response = post(
        &emulator,
        "/v1/traces",
        "application/x-protobuf",
        false,
        missing_project.encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");

    let bad_bodies: [(&str, &[u8], u16); 3] = [
        ("text/plain", b"hello", 415),
        ("application/json", b"{not json", 400),
        ("application/x-protobuf", &[0xff, 0xff, 0xff], 400),
    ];
    for (content_type, body, status) in bad_bodies {
        let response = post(&emulator, "/v1/traces", content_type, false, body.to_vec()).await;
        assert_eq!(response.status(), status, "{content_type}");
    }

    let mut bad = trace_request(
        Some(PROJECT),
        vec![span(1, None, "good"), span(2, None, "")],
    );
    bad.resource_spans[0].scope_spans[0].spans[1].name.clear();
    let response = post_json(&emulator, "/v1/traces", &bad).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    assert_eq!(
        answer["partialSuccess"]["rejectedSpans"]
            .to_string()
            .trim_matches('"'),
        "1",
        "{answer}"
    );
    emulator.emulator.shutdown().await;
}
// ---- metrics ----

fn metrics_request(resource: Resource, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn number(
    attributes: Vec<KeyValue>,
    start: u64,
    time: u64,
    value: number_data_point::Value,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(value),
        ..NumberDataPoint::default()
    }
}

fn counter(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Metric::default()
    }
}

/// The emulator's answer to `request` sent over OTLP/gRPC, which must not
/// be an error.
async fn export_metrics(
    emulator: &TestEmulator,
    request: ExportMetricsServiceRequest,
) -> ExportMetricsServiceResponse {
    OtlpMetricsClient::new(emulator.channel.clone())
        .export(request)
        .await
        .expect("Export succeeds")
        .into_inner()
}

/// What the emulator rejected of `request`, which it must answer with a
/// partial success rather than an error.
async fn partly_rejected(
    emulator: &TestEmulator,
    request: ExportMetricsServiceRequest,
) -> ExportMetricsPartialSuccess {
    export_metrics(emulator, request)
        .await
        .partial_success
        .expect("partial_success is set")
}

#[tokio::test]
async fn otlp_metrics_become_prometheus_series_read_back_with_list_time_series() {
    let emulator = TestEmulator::start().await;
    let now = now_nanos();
    let start = now - 60_000_000_000;
    let histogram = Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![string("http.route", "/api/books")],
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: 4,
                sum: Some(0.4),
                bucket_counts: vec![1, 2, 1],
                explicit_bounds: vec![0.05, 0.2],
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Metric::default()
    };
    let gauge = Metric {
        name: "app.sessions.active".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![number(vec![], 0, now, number_data_point::Value::AsInt(7))],
        })),
        ..Metric::default()
    };
    let request = metrics_request(
        resource(Some(PROJECT)),
        vec![
            counter(
                "app.orders",
                vec![number(
                    vec![string("outcome", "ok")],
                    start,
                    now,
                    number_data_point::Value::AsInt(3),
                )],
            ),
            histogram,
            gauge,
        ],
    );
    let response = export_metrics(&emulator, request).await;
    assert_eq!(response.partial_success, None);

    let now_s = now_seconds();
    let series = emulator
        .list_series(
            PROJECT,
            r#"metric.type = "prometheus.googleapis.com/app.orders/counter""#,
            now_s - 300,
            now_s + 60,
        )
        .await;
    assert_eq!(series.len(), 1);
    let target = series[0].resource.as_ref().unwrap();
    assert_eq!(target.r#type, "prometheus_target");
    let label = |k: &str| target.labels.get(k).map(String::as_str).unwrap_or_default();
    assert_eq!(
        (
            label("project_id"),
            label("location"),
            label("job"),
            label("instance"),
            label("cluster")
        ),
        (PROJECT, "europe-west1", "shop", "instance-1", "")
    );
    assert_eq!(series[0].metric.as_ref().unwrap().labels["outcome"], "ok");
    assert_eq!(series[0].metric_kind, MetricKind::Cumulative as i32);
    // O25: integers are stored as doubles.
    assert_eq!(series[0].value_type, ValueType::Double as i32);
    assert_eq!(
        series[0].points[0].value.as_ref().unwrap().value,
        Some(typed_value::Value::DoubleValue(3.0))
    );

    let series = emulator
        .list_series(
            PROJECT,
            r#"metric.type = "prometheus.googleapis.com/http.server.request.duration/histogram""#,
            now_s - 300,
            now_s + 60,
        )
        .await;
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].metric.as_ref().unwrap().labels["http.route"],
        "/api/books"
    );
    let Some(typed_value::Value::DistributionValue(d)) =
        &series[0].points[0].value.as_ref().unwrap().value
    else {
        panic!("a distribution");
    };
    assert_eq!((d.count, d.bucket_counts.clone()), (4, vec![1, 2, 1]));
    assert!((d.mean - 0.1).abs() < 1e-9);

    let series = emulator
        .list_series(
            PROJECT,
            r#"metric.type = "prometheus.googleapis.com/app.sessions.active/gauge""#,
            now_s - 300,
            now_s + 60,
        )
        .await;
    assert_eq!(series[0].metric_kind, MetricKind::Gauge as i32);

    // O26: target_info carries the attributes that were not target labels.
    let series = emulator
        .list_series(
            PROJECT,
            r#"metric.type = "prometheus.googleapis.com/target_info/gauge""#,
            now_s - 300,
            now_s + 60,
        )
        .await;
    assert_eq!(series.len(), 1);
    let labels = &series[0].metric.as_ref().unwrap().labels;
    assert!(
        !labels.contains_key("service.name") && !labels.contains_key("gcp.project_id"),
        "{labels:?}"
    );

    // The console's metrics page charts the OTLP histogram per route.
    let view = cloud_ops_emulator::console::metrics::view(
        &emulator.emulator.store(),
        PROJECT,
        cloud_ops_emulator::console::metrics::Window::ending_at(Some("1h"), now as i64 + 1),
    );
    assert!(view.routes.contains_key("/api/books"), "{:?}", view.routes);

    // A second export of the cumulative counter, later, is its next point.
    let later = now + 10_000_000_000;
    let request = metrics_request(
        resource(Some(PROJECT)),
        vec![counter(
            "app.orders",
            vec![number(
                vec![string("outcome", "ok")],
                start,
                later,
                number_data_point::Value::AsInt(5),
            )],
        )],
    );
    let response = export_metrics(&emulator, request).await;
    assert_eq!(response.partial_success, None);
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_metric_points_breaking_googles_rules_are_rejected_in_partial_success() {
    let emulator = TestEmulator::start().await;
    let now = now_nanos();
    let start = now - 60_000_000_000;
    let ok = || number(vec![], start, now, number_data_point::Value::AsDouble(1.0));
    let non_monotonic_delta = Metric {
        name: "queue.depth".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![ok()],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: false,
        })),
        ..Metric::default()
    };
    let request = metrics_request(
        resource(Some(PROJECT)),
        vec![
            counter("good", vec![ok()]),
            counter("bad name", vec![ok()]),
            counter("compute.googleapis.com/x", vec![ok()]),
            counter(
                "bad.label",
                vec![number(
                    vec![string("http-route", "/")],
                    start,
                    now,
                    number_data_point::Value::AsDouble(1.0),
                )],
            ),
            non_monotonic_delta,
        ],
    );
    let partial = partly_rejected(&emulator, request).await;
    assert_eq!(partial.rejected_data_points, 4, "{}", partial.error_message);
    assert!(
        partial.error_message.contains("bad name"),
        "{}",
        partial.error_message
    );

    // O19: no instance (and O20: no location) rejects every point.
    let no_instance = Resource {
        attributes: vec![
            string("gcp.project_id", PROJECT),
            string("service.name", "shop"),
        ],
        ..Resource::default()
    };
    let partial = partly_rejected(
        &emulator,
        metrics_request(no_instance, vec![counter("lonely", vec![ok()])]),
    )
    .await;
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("location"),
        "{}",
        partial.error_message
    );

    // A resource attribute that becomes a resource label is bounded as a
    // v3 write's resource label is: 1024 characters.
    let mut long_instance = resource(Some(PROJECT));
    long_instance.attributes[1] = string("service.instance.id", &"i".repeat(1025));
    let partial = partly_rejected(
        &emulator,
        metrics_request(long_instance, vec![counter("long", vec![ok()])]),
    )
    .await;
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial
            .error_message
            .contains("the resource label instance is longer than 1024 characters"),
        "{}",
        partial.error_message
    );

    // O17: more than 200 points reject the request.
    let many = (0..201)
        .map(|i| {
            number(
                vec![string("i", &i.to_string())],
                start,
                now,
                number_data_point::Value::AsDouble(1.0),
            )
        })
        .collect();
    let error = OtlpMetricsClient::new(emulator.channel.clone())
        .export(metrics_request(
            resource(Some(PROJECT)),
            vec![counter("many", many)],
        ))
        .await
        .expect_err("over 200 points");
    assert_eq!(error.code(), Code::InvalidArgument);
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_http_metrics_in_json() {
    let emulator = TestEmulator::start().await;
    let now = now_nanos();
    let request = metrics_request(
        resource(Some(PROJECT)),
        vec![counter(
            "json.orders",
            vec![number(
                vec![],
                now - 1_000_000_000,
                now,
                number_data_point::Value::AsInt(2),
            )],
        )],
    );
    let response = post(
        &emulator,
        "/v1/metrics",
        "application/json",
        true,
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let now_s = now_seconds();
    let series = emulator
        .list_series(
            PROJECT,
            r#"metric.type = "prometheus.googleapis.com/json.orders/counter""#,
            now_s - 300,
            now_s + 60,
        )
        .await;
    assert_eq!(series.len(), 1);
    emulator.emulator.shutdown().await;
}
// ---- logs ----

fn log_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(Some(PROJECT))),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "test-scope".into(),
                    ..InstrumentationScope::default()
                }),
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

#[tokio::test]
async fn otlp_logs_become_log_entries_over_grpc_and_http() {
    let emulator = TestEmulator::start().await;
    let now = now_nanos();
    let text = LogRecord {
        time_unix_nano: now,
        severity_number: 17,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("payment failed".into())),
        }),
        attributes: vec![string("order.id", "42"), string("log.name", "app/payments")],
        trace_id: TRACE_ID.to_vec(),
        span_id: vec![1; 8],
        flags: 1,
        ..LogRecord::default()
    };
    let structured = LogRecord {
        observed_time_unix_nano: now,
        severity_text: "warn".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![string("message", "low stock"), int("remaining", 2)],
            })),
        }),
        ..LogRecord::default()
    };
    let response = OtlpLogsClient::new(emulator.channel.clone())
        .export(log_request(vec![text]))
        .await
        .expect("Export succeeds")
        .into_inner();
    assert_eq!(response.partial_success, None);
    let response = post(
        &emulator,
        "/v1/logs",
        "application/x-protobuf",
        true,
        log_request(vec![structured]).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);

    let entries = emulator.emulator.store().logs.entries();
    assert_eq!(entries.len(), 2);
    let first = entries[0].to_cloud_logging_json();
    assert_eq!(
        first["logName"],
        format!("projects/{PROJECT}/logs/app%2Fpayments")
    );
    assert_eq!(first["severity"], "ERROR");
    assert_eq!(first["textPayload"], "payment failed");
    assert_eq!(
        first["trace"],
        format!("projects/{PROJECT}/traces/{TRACE_HEX}")
    );
    assert_eq!(first["spanId"], "0101010101010101");
    assert_eq!(first["traceSampled"], true);
    assert_eq!(first["labels"]["order.id"], "42");
    assert_eq!(first["resource"]["type"], "generic_task");
    assert_eq!(first["resource"]["labels"]["job"], "shop");
    assert_eq!(first["otel"]["scope"]["name"], "test-scope");
    let second = entries[1].to_cloud_logging_json();
    assert_eq!(second["logName"], format!("projects/{PROJECT}/logs/otel"));
    assert_eq!(second["severity"], "WARNING");
    assert_eq!(second["jsonPayload"]["message"], "low stock");
    assert_eq!(second["jsonPayload"]["remaining"], 2);
    assert_eq!(entries[1].timestamp_nanos, now as i64);

    let error = OtlpLogsClient::new(emulator.channel.clone())
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource(None)),
                ..ResourceLogs::default()
            }],
        })
        .await
        .expect_err("no project");
    assert_eq!(error.code(), Code::InvalidArgument);
    emulator.emulator.shutdown().await;
}

#[tokio::test]
async fn otlp_exponential_histograms_summaries_and_delta_sums_get_their_types() {
    let emulator = TestEmulator::start().await;
    let now = now_nanos();
    let start = now - 60_000_000_000;
    let exponential = Metric {
        name: "rpc.duration".into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: 6,
                sum: Some(12.0),
                scale: 0,
                zero_count: 1,
                positive: Some(exponential_histogram_data_point::Buckets {
                    offset: 1,
                    bucket_counts: vec![2, 3],
                }),
                ..ExponentialHistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Metric::default()
    };
    let summary = Metric {
        name: "gc.pause".into(),
        data: Some(metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: 10,
                sum: 5.0,
                quantile_values: vec![summary_data_point::ValueAtQuantile {
                    quantile: 0.99,
                    value: 0.9,
                }],
                ..SummaryDataPoint::default()
            }],
        })),
        ..Metric::default()
    };
    let delta = Metric {
        name: "jobs.done".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![number(
                vec![],
                start,
                now,
                number_data_point::Value::AsInt(4),
            )],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Metric::default()
    };
    let response = export_metrics(
        &emulator,
        metrics_request(resource(Some(PROJECT)), vec![exponential, summary, delta]),
    )
    .await;
    assert_eq!(response.partial_success, None);
    let now_s = now_seconds();
    let read = |metric_type: &'static str| {
        let emulator = &emulator;
        async move {
            emulator
                .list_series(
                    PROJECT,
                    &format!("metric.type = \"{metric_type}\""),
                    now_s - 300,
                    now_s + 60,
                )
                .await
        }
    };
    let series = read("prometheus.googleapis.com/rpc.duration/histogram").await;
    let Some(typed_value::Value::DistributionValue(d)) =
        &series[0].points[0].value.as_ref().unwrap().value
    else {
        panic!("a distribution");
    };
    // Underflow holds the zero count; buckets (2, 4] and (4, 8]; an empty overflow.
    assert_eq!(d.bucket_counts, vec![1, 2, 3, 0]);
    assert_eq!(
        read("prometheus.googleapis.com/gc.pause_count/summary")
            .await
            .len(),
        1
    );
    assert_eq!(
        read("prometheus.googleapis.com/gc.pause_sum/summary:counter")
            .await
            .len(),
        1
    );
    let quantiles = read("prometheus.googleapis.com/gc.pause/summary").await;
    assert_eq!(
        quantiles[0].metric.as_ref().unwrap().labels["quantile"],
        "0.99"
    );
    let deltas = read("prometheus.googleapis.com/jobs.done/delta").await;
    assert_eq!(deltas[0].metric_kind, MetricKind::Delta as i32);
    emulator.emulator.shutdown().await;
}

// ---- alerting ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terraform_alert_policy_opens_an_incident_on_otlp_series() {
    // A policy a user writes after switching to OTLP metrics: the series is
    // prometheus.googleapis.com/NAME/counter on prometheus_target.
    let dir = std::env::temp_dir().join(format!("otlp-alert-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("alert.tf"),
        r#"
resource "google_monitoring_alert_policy" "orders" {
  display_name = "orders faster than 1/s"
  combiner     = "OR"
  conditions {
    display_name = "order rate"
    condition_threshold {
      filter          = "metric.type=\"prometheus.googleapis.com/shop_orders/counter\" AND resource.type=\"prometheus_target\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_RATE"
      }
    }
  }
}
"#,
    )
    .unwrap();
    let emulator = TestEmulator::start_with(EmulatorConfig {
        alerting: Some(cloud_ops_emulator::alerting::AlertingConfig::new(
            dir.clone(),
            cloud_ops_emulator::terraform::VariableInputs::default(),
            cloud_ops_emulator::time::scale::TimeScale::new(60.0).unwrap(),
            PROJECT.to_owned(),
        )),
        ..EmulatorConfig::default()
    })
    .await;
    let alerting = emulator.emulator.store().alerting.unwrap();
    assert!(
        alerting.report.problems.is_empty(),
        "{:#?}",
        alerting.report.problems
    );
    let start = now_nanos();
    let mut orders = 0;
    let started = std::time::Instant::now();
    let incident = loop {
        orders += 100;
        let request = metrics_request(
            resource(Some(PROJECT)),
            vec![counter(
                "shop_orders",
                vec![number(
                    vec![],
                    start,
                    now_nanos(),
                    number_data_point::Value::AsInt(orders),
                )],
            )],
        );
        let response = post(
            &emulator,
            "/v1/metrics",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
        assert_eq!(response.status(), 200);
        if let Some(incident) = alerting
            .incidents
            .incidents()
            .into_iter()
            .find(|i| i.policy_id == "orders")
        {
            break incident;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no incident; evaluation errors {:?}",
            alerting.evaluation_errors()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(incident.observed_value.unwrap() > 1.0, "{incident:#?}");
    emulator.emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
