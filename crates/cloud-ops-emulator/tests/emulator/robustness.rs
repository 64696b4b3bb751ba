//! Bad input never panics the emulator: malformed protobuf and gRPC
//! framing, 10 MB requests, out-of-range timestamps and extreme values, and
//! filters nested 100 000 deep get clear gRPC errors, and the emulator
//! keeps serving.

use crate::helpers::metrics::{distribution, gauge, labels, request, series};
use crate::helpers::{ts, TestEmulator, PROJECT};
use gcloud_sdk::google::api::metric_descriptor::MetricKind;
use gcloud_sdk::google::devtools::cloudtrace::v1::ListTracesRequest;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, span, AttributeValue, BatchWriteSpansRequest, Span, TruncatableString,
};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, ListMetricDescriptorsRequest, ListTimeSeriesRequest, TimeInterval,
};
use prost_types::Timestamp;
use tonic::Code;

/// Sends one gRPC frame holding `payload` (not valid protobuf) over h2c.
async fn post_raw_grpc(emu: &TestEmulator, path: &str, payload: &[u8]) -> reqwest::Response {
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(payload);
    post_raw_body(emu, path, body).await
}

/// Sends `body` as a gRPC request body over h2c, framing and all.
async fn post_raw_body(emu: &TestEmulator, path: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!("http://{}{path}", emu.emulator.local_addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_as_at_google_and_the_emulator_keeps_serving() {
    let emu = TestEmulator::start().await;
    for path in [
        "/google.monitoring.v3.MetricService/CreateTimeSeries",
        "/google.monitoring.v3.MetricService/ListTimeSeries",
        "/google.devtools.cloudtrace.v2.TraceService/BatchWriteSpans",
        "/google.devtools.cloudtrace.v1.TraceService/ListTraces",
    ] {
        let response = post_raw_grpc(&emu, path, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]).await;
        let status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string());
        // 3 is INVALID_ARGUMENT: the client's fault, not retried; tonic's
        // own codec answered 13 (INTERNAL).
        assert_eq!(
            status.as_deref(),
            Some("3"),
            "{path}: {:?}",
            response.headers()
        );
    }
    emu.metrics()
        .create_time_series(request(vec![gauge(
            "workload.googleapis.com/alive",
            ts(-10),
            1.0,
        )]))
        .await
        .unwrap();
}

#[tokio::test]
async fn extreme_values_are_rejected_not_panicked_on() {
    let emu = TestEmulator::start().await;
    let mut far = gauge("workload.googleapis.com/x", ts(-10), 1.0);
    far.points[0].interval.as_mut().unwrap().end_time = Some(Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    });
    let mut nan_mean = series(
        "workload.googleapis.com/d",
        labels(&[]),
        MetricKind::Gauge,
        None,
        ts(-10),
        distribution(&[0, 1], 1.0),
    );
    if let Some(typed_value::Value::DistributionValue(d)) = nan_mean.points[0]
        .value
        .as_mut()
        .and_then(|v| v.value.as_mut())
    {
        d.mean = f64::NAN;
    }
    let mut huge_counts = series(
        "workload.googleapis.com/d2",
        labels(&[]),
        MetricKind::Gauge,
        None,
        ts(-10),
        distribution(&[1, 1], 1.0),
    );
    if let Some(typed_value::Value::DistributionValue(d)) = huge_counts.points[0]
        .value
        .as_mut()
        .and_then(|v| v.value.as_mut())
    {
        d.bucket_counts = vec![i64::MAX, i64::MAX];
        d.count = 5;
    }
    let status = emu
        .metrics()
        .create_time_series(request(vec![far, nan_mean, huge_counts]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("timeSeries[0]")
            && status.message().contains("timeSeries[1]")
            && status.message().contains("timeSeries[2]"),
        "{}",
        status.message()
    );

    let read = ListTimeSeriesRequest {
        name: format!("projects/{PROJECT}"),
        filter: "metric.type = \"workload.googleapis.com/x\"".into(),
        interval: Some(TimeInterval {
            start_time: Some(Timestamp {
                seconds: i64::MIN,
                nanos: 0,
            }),
            end_time: Some(Timestamp {
                seconds: 0,
                nanos: -1,
            }),
        }),
        ..Default::default()
    };
    let status = emu.metrics().list_time_series(read).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn methods_the_emulator_does_not_serve_answer_unimplemented() {
    let emu = TestEmulator::start().await;
    let status = emu
        .metrics()
        .delete_metric_descriptor(
            gcloud_sdk::google::monitoring::v3::DeleteMetricDescriptorRequest {
                name: format!("projects/{PROJECT}/metricDescriptors/custom.googleapis.com/x"),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

const BATCH_WRITE_SPANS: &str = "/google.devtools.cloudtrace.v2.TraceService/BatchWriteSpans";
const CREATE_TIME_SERIES: &str = "/google.monitoring.v3.MetricService/CreateTimeSeries";

/// The grpc-status of a raw answer (in its headers, or its trailers).
async fn grpc_status_of(response: reqwest::Response) -> Option<String> {
    if let Some(status) = response.headers().get("grpc-status") {
        return Some(status.to_str().unwrap().to_owned());
    }
    // Trailers are not exposed by reqwest; a body-carrying answer to a bad
    // request would have been an OK one, which the caller rules out.
    let _ = response.bytes().await;
    None
}

/// The emulator still stores a span and a point.
async fn keeps_serving(emu: &TestEmulator, span_id: &str) {
    emu.trace_writer()
        .batch_write_spans(BatchWriteSpansRequest {
            name: format!("projects/{PROJECT}"),
            spans: vec![trace_span(span_id)],
        })
        .await
        .expect("a valid span is still stored");
    emu.metrics()
        .create_time_series(request(vec![gauge(
            &format!("workload.googleapis.com/alive_{span_id}"),
            ts(-10),
            1.0,
        )]))
        .await
        .expect("a valid point is still stored");
}

fn text(value: String) -> Option<TruncatableString> {
    Some(TruncatableString {
        value,
        truncated_byte_count: 0,
    })
}

fn trace_span(span_id: &str) -> Span {
    Span {
        name: format!("projects/{PROJECT}/traces/4bf92f3577b34da6a3ce929d0e0e4736/spans/{span_id}"),
        span_id: span_id.into(),
        display_name: text("GET /books".into()),
        start_time: Some(ts(-10)),
        end_time: Some(ts(-9)),
        span_kind: span::SpanKind::Server as i32,
        ..Span::default()
    }
}

#[tokio::test]
async fn ten_megabyte_requests_are_refused_with_a_clear_status() {
    let emu = TestEmulator::start().await;
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let mut huge_span = trace_span("00f067aa0ba902b7");
    huge_span.display_name = text(ten_mb.clone());
    let status = emu
        .trace_writer()
        .batch_write_spans(BatchWriteSpansRequest {
            name: format!("projects/{PROJECT}"),
            spans: vec![huge_span],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(status.message().contains("too large"), "{status:?}");

    let huge_series = series(
        "workload.googleapis.com/huge",
        labels(&[("label", ten_mb.as_str())]),
        MetricKind::Gauge,
        None,
        ts(-10),
        typed_value::Value::DoubleValue(1.0),
    );
    let status = emu
        .metrics()
        .create_time_series(request(vec![huge_series]))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(status.message().contains("too large"), "{status:?}");

    // The same, as raw frames of garbage.
    for path in [BATCH_WRITE_SPANS, CREATE_TIME_SERIES] {
        let response = post_raw_grpc(&emu, path, ten_mb.as_bytes()).await;
        let status = grpc_status_of(response).await;
        assert!(
            matches!(status.as_deref(), Some(s) if s != "0"),
            "{path}: {status:?}"
        );
    }
    let stats = emu.emulator.store().traces.stats();
    assert_eq!(stats.spans_stored, 0);
    keeps_serving(&emu, "00f067aa0ba902b8").await;
}

#[tokio::test]
async fn broken_grpc_framing_gets_an_error_status() {
    let emu = TestEmulator::start().await;
    let valid_empty_message: Vec<u8> = Vec::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Says 100 bytes, carries 10.
        (
            "a truncated frame",
            [&[0u8, 0, 0, 0, 100][..], &[0x0a; 10]].concat(),
        ),
        // Compressed, with no grpc-encoding to say how.
        (
            "a compressed flag without an encoding",
            [&[1u8, 0, 0, 0, 0][..], &valid_empty_message].concat(),
        ),
        // Not even a whole frame header.
        ("three bytes", vec![0, 0, 0]),
        // A flag byte gRPC does not define.
        ("an unknown flag", vec![7, 0, 0, 0, 0]),
        // Protobuf wire types that do not exist.
        (
            "wire type 7",
            [&[0u8, 0, 0, 0, 2][..], &[0x0f, 0x00]].concat(),
        ),
        // Nested messages deeper than prost allows.
        ("deep nesting", {
            // Field 2 (spans), length-delimited, nested inside itself.
            let mut message: Vec<u8> = Vec::new();
            for _ in 0..200 {
                let mut outer = vec![0x12];
                let mut len = message.len();
                loop {
                    let byte = (len & 0x7f) as u8;
                    len >>= 7;
                    if len == 0 {
                        outer.push(byte);
                        break;
                    }
                    outer.push(byte | 0x80);
                }
                outer.extend_from_slice(&message);
                message = outer;
            }
            let mut framed = vec![0u8];
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            framed
        }),
    ];
    for (what, body) in cases {
        for path in [BATCH_WRITE_SPANS, CREATE_TIME_SERIES] {
            let response = post_raw_body(&emu, path, body.clone()).await;
            let status = grpc_status_of(response).await;
            assert!(
                matches!(status.as_deref(), Some(s) if s != "0"),
                "{what} to {path}: {status:?}"
            );
        }
    }
    keeps_serving(&emu, "00f067aa0ba902b9").await;
}

#[tokio::test]
async fn out_of_range_span_values_are_rejected_or_clamped_never_panicked_on() {
    let emu = TestEmulator::start().await;
    let write = |spans: Vec<Span>| {
        let mut client = emu.trace_writer();
        async move {
            client
                .batch_write_spans(BatchWriteSpansRequest {
                    name: format!("projects/{PROJECT}"),
                    spans,
                })
                .await
        }
    };
    // Times an i64 of nanoseconds cannot hold: rejected, naming the field.
    let overflowing = [
        (i64::MIN, 0),
        (i64::MAX, 0),
        // Fits in seconds, overflows once the nanoseconds are added.
        (9_223_372_036, 999_999_999),
        (0, 1_000_000_000),
        (0, i32::MIN),
    ];
    for (seconds, nanos) in overflowing {
        let mut span = trace_span("00f067aa0ba902b7");
        span.end_time = Some(prost_types::Timestamp { seconds, nanos });
        let status = write(vec![span]).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{seconds}s {nanos}ns");
        assert!(status.message().contains("end_time"), "{status:?}");
    }
    // Extreme but representable values are stored, with limits applied.
    let mut extreme = trace_span("00f067aa0ba902ba");
    extreme.attributes = Some(span::Attributes {
        attribute_map: (0..10_000)
            .map(|n| {
                let value = match n % 3 {
                    0 => attribute_value::Value::IntValue(i64::MIN),
                    1 => attribute_value::Value::IntValue(i64::MAX),
                    _ => attribute_value::Value::BoolValue(true),
                };
                (format!("k{n}"), AttributeValue { value: Some(value) })
            })
            .collect(),
        dropped_attributes_count: i32::MAX,
    });
    extreme.child_span_count = Some(i32::MIN);
    write(vec![extreme]).await.expect("stored");
    let stored = emu.emulator.store().traces.spans();
    let attributes = stored[0].span.attributes.as_ref().unwrap();
    assert_eq!(attributes.attribute_map.len(), 32);
    assert_eq!(attributes.dropped_attributes_count, i32::MAX, "saturated");

    // Reads with extreme paging and time bounds.
    let mut reader = emu.trace_reader();
    for (page_size, page_token) in [(i32::MIN, ""), (i32::MAX, ""), (0, "99999999999999999999")] {
        let result = reader
            .list_traces(ListTracesRequest {
                project_id: PROJECT.into(),
                page_size,
                page_token: page_token.into(),
                ..ListTracesRequest::default()
            })
            .await;
        match result {
            Ok(list) => assert_eq!(list.into_inner().traces.len(), 1),
            Err(status) => assert_eq!(status.code(), Code::InvalidArgument),
        }
    }
    let status = reader
        .list_traces(ListTracesRequest {
            project_id: PROJECT.into(),
            filter: format!("root:\"{}", "x".repeat(100_000)),
            ..ListTracesRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    keeps_serving(&emu, "00f067aa0ba902bb").await;
}

#[tokio::test]
async fn filters_nested_100_000_deep_are_invalid_arguments_not_a_crash() {
    let emu = TestEmulator::start().await;
    for deep in ["(".repeat(100_000), "NOT ".repeat(100_000)] {
        let status = emu
            .metrics()
            .list_time_series(ListTimeSeriesRequest {
                name: format!("projects/{PROJECT}"),
                filter: deep.clone(),
                interval: Some(TimeInterval {
                    start_time: Some(ts(-60)),
                    end_time: Some(ts(0)),
                }),
                ..ListTimeSeriesRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("deeper than"), "{status:?}");
        let status = emu
            .metrics()
            .list_metric_descriptors(ListMetricDescriptorsRequest {
                name: format!("projects/{PROJECT}"),
                filter: deep,
                ..ListMetricDescriptorsRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    keeps_serving(&emu, "00f067aa0ba902bc").await;
}

#[tokio::test]
async fn non_finite_doubles_are_kept_as_at_google_non_finite_distribution_means_are_not() {
    use gcloud_sdk::google::monitoring::v3::{aggregation, Aggregation};

    let emu = TestEmulator::start().await;
    let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    for (n, value) in values.into_iter().enumerate() {
        let mut point = gauge(
            "workload.googleapis.com/odd",
            ts(-300 + 60 * n as i64),
            value,
        );
        point.resource = Some(crate::helpers::metrics::generic_task("odd"));
        emu.metrics()
            .create_time_series(request(vec![point]))
            .await
            .expect("a non-finite double is accepted");
    }
    let now = crate::helpers::now_seconds();
    let filter = "metric.type = \"workload.googleapis.com/odd\"";
    let raw = emu.list_series(PROJECT, filter, now - 600, now).await;
    let read: Vec<f64> = raw[0]
        .points
        .iter()
        .filter_map(|p| match p.value.as_ref()?.value.as_ref()? {
            typed_value::Value::DoubleValue(v) => Some(*v),
            _ => None,
        })
        .collect();
    assert_eq!(read.len(), 3);
    assert!(read[0] == f64::NEG_INFINITY && read[1] == f64::INFINITY && read[2].is_nan());
    // Aligned and reduced, they do not fail the read.
    for aligner in [
        aggregation::Aligner::AlignMean,
        aggregation::Aligner::AlignPercentile99,
        aggregation::Aligner::AlignMax,
    ] {
        let answer = emu
            .metrics()
            .list_time_series(ListTimeSeriesRequest {
                name: format!("projects/{PROJECT}"),
                filter: filter.into(),
                interval: Some(TimeInterval {
                    start_time: Some(crate::helpers::ts_at(now - 600)),
                    end_time: Some(crate::helpers::ts_at(now)),
                }),
                aggregation: Some(Aggregation {
                    alignment_period: Some(prost_types::Duration {
                        seconds: 60,
                        nanos: 0,
                    }),
                    per_series_aligner: aligner as i32,
                    cross_series_reducer: aggregation::Reducer::ReduceMax as i32,
                    ..Aggregation::default()
                }),
                ..ListTimeSeriesRequest::default()
            })
            .await;
        assert!(answer.is_ok(), "{aligner:?}: {answer:?}");
    }

    let mut nan_mean = series(
        "workload.googleapis.com/d",
        labels(&[]),
        MetricKind::Gauge,
        None,
        ts(-10),
        distribution(&[0, 1], 1.0),
    );
    if let Some(typed_value::Value::DistributionValue(d)) = nan_mean.points[0]
        .value
        .as_mut()
        .and_then(|v| v.value.as_mut())
    {
        d.mean = f64::NAN;
    }
    let status = emu
        .metrics()
        .create_time_series(request(vec![nan_mean]))
        .await
        .unwrap_err();
    assert!(
        status
            .message()
            .contains("Distribution value with a non-finite |mean| of nan."),
        "{}",
        status.message()
    );
}
