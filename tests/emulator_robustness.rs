//! Bad input never panics the emulator: malformed protobuf, out-of-range
//! timestamps and extreme values get clear gRPC errors and the emulator keeps serving.

mod common {
    pub mod emulator;
}

use common::emulator::metrics::{distribution, gauge, labels, request, series};
use common::emulator::{ts, TestEmulator, PROJECT};
use gcloud_sdk::google::api::metric_descriptor::MetricKind;
use gcloud_sdk::google::monitoring::v3::{typed_value, ListTimeSeriesRequest, TimeInterval};
use prost_types::Timestamp;
use tonic::Code;

/// Sends one gRPC frame holding `payload` (not valid protobuf) over h2c.
async fn post_raw_grpc(emu: &TestEmulator, path: &str, payload: &[u8]) -> reqwest::Response {
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(payload);
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
async fn malformed_protobuf_gets_a_grpc_error_and_the_emulator_keeps_serving() {
    let emu = TestEmulator::start().await;
    for path in [
        "/google.monitoring.v3.MetricService/CreateTimeSeries",
        "/google.devtools.cloudtrace.v2.TraceService/BatchWriteSpans",
    ] {
        let response = post_raw_grpc(&emu, path, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]).await;
        let status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            matches!(status.as_deref(), Some(s) if s != "0"),
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
