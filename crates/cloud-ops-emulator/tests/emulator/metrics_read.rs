//! Reading metrics back: ListTimeSeries filters, intervals and aggregation
//! checked against hand-computed values, and the descriptor methods.

use std::collections::HashMap;

use crate::helpers::metrics::{distribution, double, generic_task, int, labels, request, series};
use crate::helpers::{now_seconds, ts_at, TestEmulator, PROJECT};
use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{LabelDescriptor, MetricDescriptor};
use gcloud_sdk::google::monitoring::v3::aggregation::{Aligner, Reducer};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Aggregation, CreateMetricDescriptorRequest, GetMetricDescriptorRequest,
    ListMetricDescriptorsRequest, ListTimeSeriesRequest, TimeInterval, TimeSeries,
};
use tonic::Code;

const COUNTER: &str = "workload.googleapis.com/http.server.requests";
const LATENCY: &str = "workload.googleapis.com/http.server.duration";
const QUEUE: &str = "workload.googleapis.com/queue.depth";

fn list_request(
    filter: &str,
    start: Option<i64>,
    end: i64,
    aggregation: Option<Aggregation>,
) -> ListTimeSeriesRequest {
    ListTimeSeriesRequest {
        name: format!("projects/{PROJECT}"),
        filter: filter.into(),
        interval: Some(TimeInterval {
            start_time: start.map(ts_at),
            end_time: Some(ts_at(end)),
        }),
        aggregation,
        ..Default::default()
    }
}

fn aggregation(
    period: i64,
    aligner: Aligner,
    reducer: Reducer,
    group_by: &[&str],
) -> Option<Aggregation> {
    Some(Aggregation {
        alignment_period: Some(prost_types::Duration {
            seconds: period,
            nanos: 0,
        }),
        per_series_aligner: aligner as i32,
        cross_series_reducer: reducer as i32,
        group_by_fields: group_by.iter().map(|s| s.to_string()).collect(),
    })
}

async fn list(emu: &TestEmulator, req: ListTimeSeriesRequest) -> Vec<TimeSeries> {
    emu.metrics()
        .list_time_series(req)
        .await
        .unwrap()
        .into_inner()
        .time_series
}

/// (end seconds, numeric value) of each point, newest first.
fn points(series: &TimeSeries) -> Vec<(i64, f64)> {
    series
        .points
        .iter()
        .map(|p| {
            let t = p
                .interval
                .as_ref()
                .unwrap()
                .end_time
                .as_ref()
                .unwrap()
                .seconds;
            let v = match p.value.as_ref().unwrap().value.as_ref().unwrap() {
                typed_value::Value::Int64Value(i) => *i as f64,
                typed_value::Value::DoubleValue(d) => *d,
                other => panic!("numeric value expected, got {other:?}"),
            };
            (t, v)
        })
        .collect()
}

/// Writes a cumulative counter: start at e-360, points every 60 s up to e.
async fn write_counter(emu: &TestEmulator, e: i64) {
    for (age, value) in [
        (300, 10),
        (240, 40),
        (180, 100),
        (120, 100),
        (60, 160),
        (0, 280),
    ] {
        let s = series(
            COUNTER,
            labels(&[]),
            MetricKind::Cumulative,
            Some(ts_at(e - 360)),
            ts_at(e - age),
            int(value),
        );
        emu.metrics()
            .create_time_series(request(vec![s]))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn raw_reads_return_points_in_the_half_open_interval_newest_first() {
    let emu = TestEmulator::start().await;
    let e = now_seconds() - 60;
    write_counter(&emu, e).await;
    let got = list(
        &emu,
        list_request(
            &format!("metric.type = \"{COUNTER}\""),
            Some(e - 240),
            e,
            None,
        ),
    )
    .await;
    assert_eq!(got.len(), 1);
    let values: Vec<(i64, f64)> = points(&got[0]);
    assert_eq!(
        values,
        [
            (e, 280.0),
            (e - 60, 160.0),
            (e - 120, 100.0),
            (e - 180, 100.0)
        ]
    );
    assert_eq!(got[0].metric_kind, MetricKind::Cumulative as i32);
    assert_eq!(
        got[0].resource.as_ref().unwrap().labels["project_id"],
        PROJECT
    );
}

#[tokio::test]
async fn align_rate_of_a_cumulative_counter_matches_hand_computed_slopes() {
    let emu = TestEmulator::start().await;
    let e = now_seconds() - 60;
    write_counter(&emu, e).await;
    let filter = format!("metric.type = \"{COUNTER}\"");
    let rate = list(
        &emu,
        list_request(
            &filter,
            Some(e - 240),
            e,
            aggregation(60, Aligner::AlignRate, Reducer::ReduceNone, &[]),
        ),
    )
    .await;
    assert_eq!(rate[0].value_type, ValueType::Double as i32);
    assert_eq!(rate[0].metric_kind, MetricKind::Gauge as i32);
    // (280-160)/60, (160-100)/60, (100-100)/60, (100-40)/60
    assert_eq!(
        points(&rate[0]),
        [(e, 2.0), (e - 60, 1.0), (e - 120, 0.0), (e - 180, 1.0)]
    );

    let wide = list(
        &emu,
        list_request(
            &filter,
            Some(e - 240),
            e,
            aggregation(120, Aligner::AlignRate, Reducer::ReduceNone, &[]),
        ),
    )
    .await;
    // (280-100)/120 and (100-40)/120
    assert_eq!(points(&wide[0]), [(e, 1.5), (e - 120, 0.5)]);

    let delta = list(
        &emu,
        list_request(
            &filter,
            Some(e - 240),
            e,
            aggregation(60, Aligner::AlignDelta, Reducer::ReduceNone, &[]),
        ),
    )
    .await;
    assert_eq!(delta[0].metric_kind, MetricKind::Delta as i32);
    assert_eq!(delta[0].value_type, ValueType::Int64 as i32);
    assert_eq!(
        points(&delta[0]),
        [(e, 120.0), (e - 60, 60.0), (e - 120, 0.0), (e - 180, 60.0)]
    );
}

#[tokio::test]
async fn align_percentiles_of_a_cumulative_distribution_use_the_window_delta() {
    let emu = TestEmulator::start().await;
    let e = now_seconds() - 60;
    // Buckets (-inf,0) [0,10) [10,20) [20,30) [30,inf). In the window (e-120, e]
    // the delta is [0, 50, 40, 10, 0]: p99 = 20 + 10 * (99-90)/10 = 29,
    // p95 = 20 + 10 * (95-90)/10 = 25, p50 = 0 + 10 * 50/50 = 10.
    for (age, counts) in [(120, [0, 10, 5, 0, 0]), (0, [0, 60, 45, 10, 0])] {
        let s = series(
            LATENCY,
            labels(&[]),
            MetricKind::Cumulative,
            Some(ts_at(e - 600)),
            ts_at(e - age),
            distribution(&counts, 9.0),
        );
        emu.metrics()
            .create_time_series(request(vec![s]))
            .await
            .unwrap();
    }
    let filter = format!("metric.type = \"{LATENCY}\"");
    for (aligner, expected) in [
        (Aligner::AlignPercentile99, 29.0),
        (Aligner::AlignPercentile95, 25.0),
        (Aligner::AlignPercentile50, 10.0),
    ] {
        let got = list(
            &emu,
            list_request(
                &filter,
                Some(e - 120),
                e,
                aggregation(120, aligner, Reducer::ReduceNone, &[]),
            ),
        )
        .await;
        assert_eq!(points(&got[0]), [(e, expected)], "{aligner:?}");
    }
    // The same percentile across series: ALIGN_DELTA then REDUCE_PERCENTILE_99.
    let got = list(
        &emu,
        list_request(
            &filter,
            Some(e - 120),
            e,
            aggregation(120, Aligner::AlignDelta, Reducer::ReducePercentile99, &[]),
        ),
    )
    .await;
    assert_eq!(points(&got[0]), [(e, 29.0)]);
}

async fn write_queue_depths(emu: &TestEmulator, e: i64) {
    let mut batch = Vec::new();
    for (task, route, value) in [("t1", "/a", 1.0), ("t2", "/a", 2.0), ("t3", "/b", 6.0)] {
        let mut s = series(
            QUEUE,
            labels(&[("route", route)]),
            MetricKind::Gauge,
            None,
            ts_at(e),
            double(value),
        );
        s.resource = Some(generic_task(task));
        batch.push(s);
    }
    emu.metrics()
        .create_time_series(request(batch))
        .await
        .unwrap();
}

#[tokio::test]
async fn reducers_group_by_fields_and_combine_series() {
    let emu = TestEmulator::start().await;
    let e = now_seconds() - 60;
    write_queue_depths(&emu, e).await;
    let filter = format!("metric.type = \"{QUEUE}\"");
    let by_route = list(
        &emu,
        list_request(
            &filter,
            Some(e - 60),
            e,
            aggregation(
                60,
                Aligner::AlignMean,
                Reducer::ReduceSum,
                &["metric.label.route"],
            ),
        ),
    )
    .await;
    let sums: HashMap<String, Vec<(i64, f64)>> = by_route
        .iter()
        .map(|s| {
            (
                s.metric.as_ref().unwrap().labels["route"].clone(),
                points(s),
            )
        })
        .collect();
    assert_eq!(sums["/a"], [(e, 3.0)]);
    assert_eq!(sums["/b"], [(e, 6.0)]);
    assert!(by_route
        .iter()
        .all(|s| s.resource.as_ref().unwrap().labels.is_empty()));

    for (reducer, expected) in [
        (Reducer::ReduceMean, 3.0),
        (Reducer::ReducePercentile50, 2.0),
        (Reducer::ReducePercentile99, 5.92),
    ] {
        let got = list(
            &emu,
            list_request(
                &filter,
                Some(e - 60),
                e,
                aggregation(60, Aligner::AlignMean, reducer, &[]),
            ),
        )
        .await;
        assert_eq!(got.len(), 1);
        let (t, v) = points(&got[0])[0];
        assert_eq!(t, e);
        assert!(
            (v - expected).abs() < 1e-9,
            "{reducer:?}: {v} != {expected}"
        );
    }
}

#[tokio::test]
async fn filters_select_series_by_labels_and_functions() {
    let emu = TestEmulator::start().await;
    let e = now_seconds() - 60;
    write_queue_depths(&emu, e).await;
    let count = |filter: String| {
        let emu = &emu;
        async move {
            list(emu, list_request(&filter, Some(e - 60), e, None))
                .await
                .len()
        }
    };
    let base = format!("metric.type = \"{QUEUE}\"");
    assert_eq!(count(base.clone()).await, 3);
    assert_eq!(
        count(format!("{base} AND metric.labels.route = \"/a\"")).await,
        2
    );
    assert_eq!(
        count(format!("{base} AND metric.labels.route != \"/a\"")).await,
        1
    );
    assert_eq!(
        count(format!(
            "{base} AND resource.labels.task_id = one_of(\"t1\", \"t3\")"
        ))
        .await,
        2
    );
    assert_eq!(
        count(format!(
            "{base} AND resource.type = starts_with(\"generic_\")"
        ))
        .await,
        3
    );
    assert_eq!(
        count(format!("{base} AND resource.type = \"gce_instance\"")).await,
        0
    );
}

#[tokio::test]
async fn list_time_series_rejects_what_monitoring_rejects() {
    let emu = TestEmulator::start().await;
    let e = now_seconds();
    let one = format!("metric.type = \"{QUEUE}\"");
    let cases = [
        list_request("", None, e, None),
        list_request("resource.type = \"generic_task\"", None, e, None),
        list_request(
            &format!("{one} OR metric.type = \"{COUNTER}\""),
            None,
            e,
            None,
        ),
        list_request("metric.tpye = \"x\"", None, e, None),
        list_request(
            &one,
            None,
            e,
            aggregation(30, Aligner::AlignMean, Reducer::ReduceNone, &[]),
        ),
        list_request(
            &one,
            None,
            e,
            Some(Aggregation {
                per_series_aligner: Aligner::AlignMean as i32,
                ..Default::default()
            }),
        ),
        list_request(
            &one,
            None,
            e,
            aggregation(60, Aligner::AlignNone, Reducer::ReduceSum, &[]),
        ),
        ListTimeSeriesRequest {
            interval: None,
            ..list_request(&one, None, e, None)
        },
    ];
    for req in cases {
        let status = emu
            .metrics()
            .list_time_series(req.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{req:?}");
    }
    let status = emu
        .metrics()
        .list_time_series(list_request("metric.tpye = \"x\"", None, e, None))
        .await
        .unwrap_err();
    assert!(
        status
            .message()
            .contains("unknown selector \"metric.tpye\""),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn metric_descriptors_can_be_created_listed_and_fetched() {
    let emu = TestEmulator::start().await;
    let create = |labels: Vec<&str>| CreateMetricDescriptorRequest {
        name: format!("projects/{PROJECT}"),
        metric_descriptor: Some(MetricDescriptor {
            r#type: "custom.googleapis.com/orders".into(),
            metric_kind: MetricKind::Cumulative as i32,
            value_type: ValueType::Int64 as i32,
            labels: labels
                .into_iter()
                .map(|k| LabelDescriptor {
                    key: k.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    emu.metrics()
        .create_metric_descriptor(create(vec!["shop"]))
        .await
        .unwrap();
    // Upsert never removes labels (M15).
    let updated = emu
        .metrics()
        .create_metric_descriptor(create(vec!["country"]))
        .await
        .unwrap()
        .into_inner();
    let mut keys: Vec<String> = updated.labels.iter().map(|l| l.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, ["country", "shop"]);
    let bad = CreateMetricDescriptorRequest {
        metric_descriptor: Some(MetricDescriptor {
            metric_kind: MetricKind::Delta as i32,
            ..create(vec![]).metric_descriptor.unwrap()
        }),
        ..create(vec![])
    };
    assert_eq!(
        emu.metrics()
            .create_metric_descriptor(bad)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    let e = now_seconds() - 60;
    write_queue_depths(&emu, e).await;
    let listed = emu
        .metrics()
        .list_metric_descriptors(ListMetricDescriptorsRequest {
            name: format!("projects/{PROJECT}"),
            filter: "metric.type = starts_with(\"custom.googleapis.com/\")".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.metric_descriptors.len(), 1);
    assert_eq!(
        listed.metric_descriptors[0].r#type,
        "custom.googleapis.com/orders"
    );

    let missing = emu
        .metrics()
        .get_metric_descriptor(GetMetricDescriptorRequest {
            name: format!("projects/{PROJECT}/metricDescriptors/custom.googleapis.com/nope"),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        missing.message(),
        "Could not find descriptor for metric 'custom.googleapis.com/nope'."
    );
}
