//! Cloud Monitoring write rules M1-M14, driven over real gRPC with
//! gcloud-sdk's generated `MetricServiceClient`.

use crate::helpers::metrics::{distribution, double, gauge, int, labels, request, series};
use crate::helpers::{ts, ts_at, TestEmulator, PROJECT};
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{label_descriptor, LabelDescriptor, MetricDescriptor};
use gcloud_sdk::google::monitoring::v3::{
    CreateMetricDescriptorRequest, CreateTimeSeriesRequest, CreateTimeSeriesSummary,
    GetMetricDescriptorRequest, TimeSeries,
};
use prost::Message;
use tonic::Code;

const GAUGE: &str = "workload.googleapis.com/books.in_stock";
const COUNTER: &str = "workload.googleapis.com/http.server.requests";

async fn write(emu: &TestEmulator, req: CreateTimeSeriesRequest) -> Result<(), tonic::Status> {
    emu.metrics().create_time_series(req).await.map(|_| ())
}

async fn rejected(emu: &TestEmulator, series: Vec<TimeSeries>) -> String {
    let status = write(emu, request(series))
        .await
        .expect_err("must be rejected");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status.message().to_string()
}

fn points_stored(emu: &TestEmulator) -> u64 {
    emu.emulator.store().metrics.stats().points_stored
}

#[tokio::test]
async fn m1_partial_failure_writes_valid_series_and_reports_the_rest() {
    let emu = TestEmulator::start().await;
    let mut bad = gauge(GAUGE, ts(-10), 1.0);
    bad.resource.as_mut().unwrap().r#type = "cloud_run_revision".into();
    let good = gauge("workload.googleapis.com/other", ts(-10), 2.0);
    let status = write(&emu, request(vec![good, bad.clone(), bad]))
        .await
        .unwrap_err();
    assert_eq!(
        status.message(),
        "One or more TimeSeries could not be written: Metrics cannot be written to cloud_run_revision. \
         See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list \
         of writable resource types.: timeSeries[1-2]"
    );
    assert_eq!(points_stored(&emu), 1);
    let details = gcloud_sdk::google::rpc::Status::decode(status.details()).unwrap();
    let summary = CreateTimeSeriesSummary::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(
        (summary.total_point_count, summary.success_point_count),
        (3, 1)
    );
    assert_eq!(summary.errors[0].point_count, 2);
}

#[tokio::test]
async fn m2_more_than_200_series_reject_the_request() {
    let emu = TestEmulator::start().await;
    let many: Vec<TimeSeries> = (0..201)
        .map(|i| {
            let mut s = gauge(GAUGE, ts(-10), 1.0);
            s.metric.as_mut().unwrap().labels = labels(&[("n", &i.to_string())]);
            s
        })
        .collect();
    let message = rejected(&emu, many.clone()).await;
    assert!(message.contains("200"), "{message}");
    assert_eq!(points_stored(&emu), 0);
    write(&emu, request(many[..200].to_vec())).await.unwrap();
    assert_eq!(points_stored(&emu), 200);
}

#[tokio::test]
async fn m3_only_one_point_per_series() {
    let emu = TestEmulator::start().await;
    let mut two = gauge(GAUGE, ts(-20), 1.0);
    let extra = two.points[0].clone();
    two.points.push(extra);
    let message = rejected(&emu, vec![gauge(COUNTER, ts(-10), 1.0), two]).await;
    assert_eq!(
        message,
        "One or more TimeSeries could not be written: Field timeSeries[1].points had an invalid value: \
         Only one point can be written per TimeSeries per request.: timeSeries[1]"
    );
}

#[tokio::test]
async fn m4_duplicate_series_in_a_request_are_rejected() {
    let emu = TestEmulator::start().await;
    let message = rejected(
        &emu,
        vec![gauge(GAUGE, ts(-10), 1.0), gauge(GAUGE, ts(-10), 2.0)],
    )
    .await;
    assert!(message.contains(
        "Field timeSeries[1] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request.: timeSeries[1]"
    ), "{message}");
    assert_eq!(points_stored(&emu), 1);
}

#[tokio::test]
async fn m5_interval_rules_by_kind() {
    let emu = TestEmulator::start().await;
    let now = crate::helpers::now_seconds();
    let mut gauge_with_start = gauge(GAUGE, ts(-10), 1.0);
    gauge_with_start.points[0]
        .interval
        .as_mut()
        .unwrap()
        .start_time = Some(ts(-20));
    let message = rejected(&emu, vec![gauge_with_start]).await;
    assert!(
        message.contains("The start time must be equal to the end time ("),
        "{message}"
    );
    assert!(
        message.contains(&format!("for the gauge metric '{GAUGE}'")),
        "{message}"
    );

    let cumulative = |start: i64, end: i64, v: i64| {
        series(
            COUNTER,
            labels(&[]),
            MetricKind::Cumulative,
            // One clock reading for the whole test keeps the expected message exact.
            Some(ts_at(now + start)),
            ts_at(now + end),
            int(v),
        )
    };
    let message = rejected(&emu, vec![cumulative(-10, -10, 1)]).await;
    assert!(
        message.contains(&format!(
            "The start time must be before the end time ({}) for the non-gauge metric '{COUNTER}'.",
            time_text(now - 10)
        )),
        "{message}"
    );

    write(&emu, request(vec![cumulative(-600, -300, 1)]))
        .await
        .unwrap();
    write(&emu, request(vec![cumulative(-600, -240, 5)]))
        .await
        .unwrap();
    // A reset must start after the previous end.
    let message = rejected(&emu, vec![cumulative(-250, -180, 1)]).await;
    assert!(
        message.contains("older start time than the most recent point"),
        "{message}"
    );
    write(&emu, request(vec![cumulative(-239, -180, 1)]))
        .await
        .unwrap();
}

fn time_text(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn m6_points_outside_25h_past_and_5m_future_are_rejected() {
    let emu = TestEmulator::start().await;
    let message = rejected(&emu, vec![gauge(GAUGE, ts(-25 * 3600 - 60), 1.0)]).await;
    assert!(
        message
            .contains("Field timeSeries[0].points[0].interval.end_time had an invalid value of \""),
        "{message}"
    );
    assert!(
        message.contains("Data points cannot be written more than 25h10s in the past."),
        "{message}"
    );
    let message = rejected(&emu, vec![gauge(GAUGE, ts(6 * 60), 1.0)]).await;
    assert!(message.contains("in the future"), "{message}");
    write(&emu, request(vec![gauge(GAUGE, ts(-24 * 3600), 1.0)]))
        .await
        .unwrap();
    write(&emu, request(vec![gauge(GAUGE, ts(4 * 60), 1.0)]))
        .await
        .unwrap();
}

#[tokio::test]
async fn m7_points_must_be_written_in_order() {
    let emu = TestEmulator::start().await;
    write(&emu, request(vec![gauge(GAUGE, ts(-100), 1.0)]))
        .await
        .unwrap();
    let message = rejected(&emu, vec![gauge(GAUGE, ts(-200), 1.0)]).await;
    assert!(message.contains(
        "Points must be written in order. One or more of the points specified had an older end time than the most recent point."
    ), "{message}");
}

#[tokio::test]
async fn m8_one_point_per_5_seconds_per_series() {
    let emu = TestEmulator::start().await;
    write(&emu, request(vec![gauge(GAUGE, ts(-100), 1.0)]))
        .await
        .unwrap();
    let message = rejected(&emu, vec![gauge(GAUGE, ts(-97), 1.0)]).await;
    assert!(message.contains(
        "One or more points were written more frequently than the maximum sampling period configured for the metric. {Metric: workload.googleapis.com/books.in_stock, Timestamps: {Youngest Existing: '"
    ), "{message}");
    write(&emu, request(vec![gauge(GAUGE, ts(-95), 1.0)]))
        .await
        .unwrap();
    assert_eq!(points_stored(&emu), 2);
}

#[tokio::test]
async fn m9_only_user_defined_prefixes_are_writable() {
    let emu = TestEmulator::start().await;
    for bad in [
        "run.googleapis.com/request_count",
        "logging.googleapis.com/user/errors",
        "custom.googleapis.com/bad-name",
        "custom.googleapis.com/",
    ] {
        let message = rejected(&emu, vec![gauge(bad, ts(-10), 1.0)]).await;
        assert!(
            message.contains(&format!(
                "Field timeSeries[0].metric.type had an invalid value of \"{bad}\""
            )),
            "{message}"
        );
    }
    for good in [
        "custom.googleapis.com/a/b_c",
        "external.googleapis.com/x",
        "prometheus.googleapis.com/up/gauge",
        "workload.googleapis.com/http.server.duration",
    ] {
        write(&emu, request(vec![gauge(good, ts(-10), 1.0)]))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn m10_label_limits() {
    let emu = TestEmulator::start().await;
    let mut many = gauge(GAUGE, ts(-10), 1.0);
    many.metric.as_mut().unwrap().labels = (0..31)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let message = rejected(&emu, vec![many]).await;
    assert!(
        message.contains(&format!(
            "The new labels would cause the metric {GAUGE} to have over 30 labels."
        )),
        "{message}"
    );
    let mut bad_key = gauge(GAUGE, ts(-10), 1.0);
    bad_key.metric.as_mut().unwrap().labels = labels(&[("Route", "/")]);
    assert!(rejected(&emu, vec![bad_key])
        .await
        .contains("label keys must match"));
    let mut long_value = gauge(GAUGE, ts(-10), 1.0);
    long_value.metric.as_mut().unwrap().labels = labels(&[("route", &"x".repeat(1025))]);
    assert!(rejected(&emu, vec![long_value])
        .await
        .contains("at most 1024"));

    // Labels added over several writes count together.
    let mut first = gauge(COUNTER, ts(-100), 1.0);
    first.metric.as_mut().unwrap().labels = (0..20)
        .map(|i| (format!("a{i}"), "v".to_string()))
        .collect();
    write(&emu, request(vec![first])).await.unwrap();
    let mut second = gauge(COUNTER, ts(-50), 1.0);
    second.metric.as_mut().unwrap().labels = (0..11)
        .map(|i| (format!("b{i}"), "v".to_string()))
        .collect();
    assert!(rejected(&emu, vec![second])
        .await
        .contains("over 30 labels"));

    let workload_int_label = CreateMetricDescriptorRequest {
        name: format!("projects/{PROJECT}"),
        metric_descriptor: Some(MetricDescriptor {
            r#type: "workload.googleapis.com/typed".into(),
            metric_kind: MetricKind::Gauge as i32,
            value_type: ValueType::Int64 as i32,
            labels: vec![
                LabelDescriptor {
                    key: "a".into(),
                    ..Default::default()
                },
                LabelDescriptor {
                    key: "b".into(),
                    ..Default::default()
                },
                LabelDescriptor {
                    key: "c".into(),
                    value_type: label_descriptor::ValueType::Int64 as i32,
                    description: String::new(),
                },
            ],
            ..Default::default()
        }),
    };
    let status = emu
        .metrics()
        .create_metric_descriptor(workload_int_label)
        .await
        .unwrap_err();
    assert_eq!(
        status.message(),
        "Field labels[2].valueType had an invalid value of \"INT64\": Metric labels for this user-defined metric are required to be of type 'STRING'"
    );
}

#[tokio::test]
async fn m12_writable_resources_and_label_completeness() {
    let emu = TestEmulator::start().await;
    let mut run = gauge(GAUGE, ts(-10), 1.0);
    run.resource.as_mut().unwrap().r#type = "cloud_run_revision".into();
    assert!(rejected(&emu, vec![run]).await.contains("Metrics cannot be written to cloud_run_revision. See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list of writable resource types."));

    let mut incomplete = gauge(GAUGE, ts(-10), 1.0);
    let resource = incomplete.resource.as_mut().unwrap();
    resource.labels.remove("namespace");
    resource.labels.remove("task_id");
    assert!(rejected(&emu, vec![incomplete]).await.contains(
        "The set of resource labels is incomplete. Missing labels: (namespace task_id)."
    ));

    let mut nowhere = gauge(GAUGE, ts(-10), 1.0);
    nowhere
        .resource
        .as_mut()
        .unwrap()
        .labels
        .insert("location".into(), "moon-base".into());
    assert!(rejected(&emu, vec![nowhere])
        .await
        .contains("Unrecognized region or location."));

    let mut global = gauge(GAUGE, ts(-10), 1.0);
    global.resource.as_mut().unwrap().r#type = "global".into();
    global.resource.as_mut().unwrap().labels.clear();
    write(&emu, request(vec![global])).await.unwrap();
}

#[tokio::test]
async fn m12_resource_label_values_are_at_most_1024_characters() {
    let emu = TestEmulator::start().await;
    let with_job = |job: String, seconds: i64| {
        let mut ts = gauge(GAUGE, ts(seconds), 1.0);
        ts.resource
            .as_mut()
            .unwrap()
            .labels
            .insert("job".into(), job);
        ts
    };
    let message = rejected(&emu, vec![with_job("j".repeat(1025), -10)]).await;
    assert!(
        message.contains("Field timeSeries[0].resource.labels[job] had an invalid value: label values can have at most 1024 characters."),
        "{message}"
    );
    assert_eq!(emu.emulator.store().metrics.stats().series, 0);
    // Characters, not bytes: 1024 two-byte characters are within the limit.
    write(&emu, request(vec![with_job("é".repeat(1024), -10)]))
        .await
        .unwrap();
}

#[tokio::test]
async fn m13_distribution_consistency() {
    let emu = TestEmulator::start().await;
    let dist_series = |value| {
        series(
            "workload.googleapis.com/latency",
            labels(&[]),
            MetricKind::Gauge,
            None,
            ts(-10),
            value,
        )
    };
    let cases = [
        (distribution(&[0, 2, 2, 0, 0], 10.0), None),
        (
            {
                let mut v = distribution(&[0, 2, 2, 0, 0], 10.0);
                if let gcloud_sdk::google::monitoring::v3::typed_value::Value::DistributionValue(d) = &mut v { d.count = 2 }
                v
            },
            Some("Distribution value has |bucket_counts| fields that sum to 4 which does not equal the |count| field value of 2."),
        ),
        (distribution(&[0, 0, 0, 0, 0, 0], 0.0), Some("Distribution value has 6 |bucket_counts| fields, which is more than the 5 buckets allowed by the bucketing options.")),
        (distribution(&[], 3.0), Some("Distribution value with |count| of 0 has a non-zero |mean| value of 3.")),
        (distribution(&[0, 3, -1], 1.0), Some("Distribution bucket_counts(2) has a negative count.")),
        (
            {
                let mut v = distribution(&[1], 1.0);
                if let gcloud_sdk::google::monitoring::v3::typed_value::Value::DistributionValue(d) = &mut v {
                    d.bucket_options = Some(gcloud_sdk::google::api::distribution::BucketOptions {
                        options: Some(gcloud_sdk::google::api::distribution::bucket_options::Options::ExplicitBuckets(Default::default())),
                    });
                }
                v
            },
            Some("Distribution |explicit_buckets.bounds| does not have at least one entry."),
        ),
    ];
    for (value, expected) in cases {
        let result = write(&emu, request(vec![dist_series(value)])).await;
        match expected {
            None => result.unwrap(),
            Some(text) => {
                let message = result.unwrap_err().message().to_string();
                assert!(message.contains(text), "{message} lacks {text}");
            }
        }
    }
}

#[tokio::test]
async fn m11_m14_descriptor_auto_creation_and_kind_type_conflicts() {
    let emu = TestEmulator::start().await;
    let mut first = series(
        COUNTER,
        labels(&[("route", "/books")]),
        MetricKind::Cumulative,
        Some(ts(-600)),
        ts(-300),
        int(3),
    );
    first.unit = "1".into();
    write(&emu, request(vec![first])).await.unwrap();
    let descriptor = emu
        .metrics()
        .get_metric_descriptor(GetMetricDescriptorRequest {
            name: format!("projects/{PROJECT}/metricDescriptors/{COUNTER}"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(descriptor.metric_kind, MetricKind::Cumulative as i32);
    assert_eq!(descriptor.value_type, ValueType::Int64 as i32);
    assert_eq!(descriptor.labels.len(), 1);
    assert_eq!(descriptor.labels[0].key, "route");
    assert_eq!(
        descriptor.name,
        format!("projects/{PROJECT}/metricDescriptors/{COUNTER}")
    );

    let as_double = series(
        COUNTER,
        labels(&[("route", "/books")]),
        MetricKind::Cumulative,
        Some(ts(-600)),
        ts(-200),
        double(1.0),
    );
    assert!(rejected(&emu, vec![as_double]).await.contains(&format!(
        "Value type for metric {COUNTER} must be INT64, but is DOUBLE."
    )));
    let as_gauge = series(
        COUNTER,
        labels(&[("route", "/books")]),
        MetricKind::Gauge,
        None,
        ts(-200),
        int(1),
    );
    assert!(rejected(&emu, vec![as_gauge]).await.contains(&format!(
        "Metric kind for metric {COUNTER} must be CUMULATIVE, but is GAUGE."
    )));

    let delta = series(
        "workload.googleapis.com/new_delta",
        labels(&[]),
        MetricKind::Delta,
        Some(ts(-60)),
        ts(-10),
        int(1),
    );
    assert!(rejected(&emu, vec![delta])
        .await
        .contains("GAUGE or CUMULATIVE"));
    let bool_cumulative = series(
        "workload.googleapis.com/flag",
        labels(&[]),
        MetricKind::Cumulative,
        Some(ts(-60)),
        ts(-10),
        gcloud_sdk::google::monitoring::v3::typed_value::Value::BoolValue(true),
    );
    assert!(rejected(&emu, vec![bool_cumulative])
        .await
        .contains("not supported with value type BOOL"));
    let custom_string = series(
        "custom.googleapis.com/s",
        labels(&[]),
        MetricKind::Gauge,
        None,
        ts(-10),
        gcloud_sdk::google::monitoring::v3::typed_value::Value::StringValue("x".into()),
    );
    assert!(rejected(&emu, vec![custom_string])
        .await
        .contains("not supported with value type STRING"));
}
