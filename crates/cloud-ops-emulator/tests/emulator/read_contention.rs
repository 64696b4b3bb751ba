//! A pathological `ListTimeSeries` or `ListMetricDescriptors` beside a
//! steady `CreateTimeSeries` stream: the read must not hold the writes up,
//! and must stop when its client's deadline passes (issue #18, part 3).

use std::time::Duration;

use cloud_ops_emulator::time::timestamp::now_nanos;
use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::api::MetricDescriptor;
use gcloud_sdk::google::monitoring::v3::{
    ListMetricDescriptorsRequest, ListTimeSeriesRequest, TimeInterval,
};

use crate::helpers::metrics::{double, gauge, labels, request, series};
use futures::future::BoxFuture;

use crate::helpers::contention::{assert_stops_at_deadline, read_beside_writes};
use crate::helpers::{now_seconds, ts, ts_at, TestEmulator, PROJECT};

const SERIES: usize = 40_000;
const READ_TYPE: &str = "custom.googleapis.com/crowded";
const PAGE: i32 = 10;

/// `SERIES` one-point series of one metric type, written straight into
/// the store (through gRPC it would take the test longer than the read).
fn crowd(emu: &TestEmulator) {
    let store = emu.emulator.store().metrics.clone();
    let now = now_nanos();
    let batch: Vec<_> = (0..SERIES)
        .map(|n| {
            series(
                READ_TYPE,
                labels(&[("path", &format!("/books/{n}"))]),
                gcloud_sdk::google::api::metric_descriptor::MetricKind::Gauge,
                None,
                ts(-30),
                double(n as f64),
            )
        })
        .collect();
    for chunk in batch.chunks(200) {
        let outcome = store.write(PROJECT, chunk, now);
        assert!(outcome.errors.is_empty(), "{:?}", &outcome.errors[..1]);
    }
}

/// A read that matches every series against a long chain of comparisons:
/// seconds of filtering.
fn slow_read() -> ListTimeSeriesRequest {
    let misses: Vec<String> = (0..400)
        .map(|n| format!("metric.labels.path = \"/nowhere/{n}\""))
        .collect();
    ListTimeSeriesRequest {
        name: format!("projects/{PROJECT}"),
        filter: format!(
            "metric.type = \"{READ_TYPE}\" AND ({} OR metric.labels.path = starts_with(\"/books/\"))",
            misses.join(" OR ")
        ),
        interval: Some(TimeInterval {
            start_time: Some(ts_at(now_seconds() - 3600)),
            end_time: Some(ts_at(now_seconds())),
        }),
        // The whole read is done before it is paged: a small page keeps
        // the answer under the client's 4 MiB, not the work.
        page_size: PAGE,
        ..ListTimeSeriesRequest::default()
    }
}

fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        // Each write below is a new point of one series every 20 ms.
        min_sampling_period: Duration::ZERO,
        ..EmulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_not_held_up_by_a_slow_read() {
    let emu = TestEmulator::start_with(emulator_config()).await;
    crowd(&emu);

    let mut reader = emu.metrics();
    let read = async move {
        let answer = reader.list_time_series(slow_read()).await;
        answer.map(|r| r.into_inner().time_series.len())
    };
    let (answer, beside) = read_beside_writes(read, steady_write(&emu)).await;
    assert_eq!(answer.expect("the read succeeds"), PAGE as usize);
    // Before the fix a write waited for the whole read.
    beside.assert_writes_were_not_held_up();
}

/// A write of one more point of a steady gauge, each a millisecond after
/// the last (always in order), for [`read_beside_writes`].
pub fn steady_write(emu: &TestEmulator) -> impl FnMut(usize) -> BoxFuture<'static, ()> {
    let writer = emu.metrics();
    move |n| {
        let mut writer = writer.clone();
        let end = prost_types::Timestamp {
            seconds: now_seconds() - 60,
            nanos: i32::try_from((n + 1) % 1_000_000_000).unwrap(),
        };
        Box::pin(async move {
            writer
                .create_time_series(request(vec![gauge(
                    "custom.googleapis.com/steady",
                    end,
                    1.0,
                )]))
                .await
                .expect("the write succeeds");
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_stops_when_its_deadline_passes() {
    let emu = TestEmulator::start_with(emulator_config()).await;
    crowd(&emu);
    let store = emu.emulator.store().metrics.clone();

    assert_stops_at_deadline(
        slow_read(),
        async |read| emu.metrics().list_time_series(read).await,
        async || store.stats().reads_timed_out,
    )
    .await;
}

/// Descriptors of the descriptor reads: each is cheaper to filter than a
/// series, so twice as many make a read of seconds.
const DESCRIPTORS: usize = 2 * SERIES;

/// `DESCRIPTORS` metric descriptors, created straight in the store: at Google a
/// descriptor is configuration and is never evicted, so a client can make
/// any number of them.
fn crowd_descriptors(emu: &TestEmulator) {
    let store = emu.emulator.store().metrics.clone();
    for n in 0..DESCRIPTORS {
        store.upsert_descriptor(
            PROJECT,
            MetricDescriptor {
                r#type: format!("{READ_TYPE}/{n}"),
                metric_kind: gcloud_sdk::google::api::metric_descriptor::MetricKind::Gauge as i32,
                value_type: gcloud_sdk::google::api::metric_descriptor::ValueType::Double as i32,
                ..MetricDescriptor::default()
            },
        );
    }
}

/// A descriptor read that matches every descriptor against a long chain
/// of comparisons.
fn slow_descriptor_read() -> ListMetricDescriptorsRequest {
    let misses: Vec<String> = (0..400)
        .map(|n| format!("metric.type = starts_with(\"custom.googleapis.com/nowhere/{n}\")"))
        .collect();
    ListMetricDescriptorsRequest {
        name: format!("projects/{PROJECT}"),
        filter: format!(
            "{} OR metric.type = starts_with(\"{READ_TYPE}/\")",
            misses.join(" OR ")
        ),
        page_size: PAGE,
        ..ListMetricDescriptorsRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_not_held_up_by_a_slow_descriptor_read() {
    let emu = TestEmulator::start_with(emulator_config()).await;
    crowd_descriptors(&emu);

    let mut reader = emu.metrics();
    let read = async move {
        let answer = reader.list_metric_descriptors(slow_descriptor_read()).await;
        answer.map(|r| r.into_inner().metric_descriptors.len())
    };
    let (answer, beside) = read_beside_writes(read, steady_write(&emu)).await;
    assert_eq!(answer.expect("the read succeeds"), PAGE as usize);
    // Before the fix the read filtered every descriptor under the lock.
    beside.assert_writes_were_not_held_up();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_read_stops_when_its_deadline_passes() {
    let emu = TestEmulator::start_with(emulator_config()).await;
    crowd_descriptors(&emu);
    let store = emu.emulator.store().metrics.clone();

    // Before the fix the filter ran to its end on an async worker and
    // never looked at the deadline.
    assert_stops_at_deadline(
        slow_descriptor_read(),
        async |read| emu.metrics().list_metric_descriptors(read).await,
        async || store.stats().reads_timed_out,
    )
    .await;
}
