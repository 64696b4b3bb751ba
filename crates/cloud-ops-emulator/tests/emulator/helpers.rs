//! Shared helpers for the emulator's integration tests: start an emulator on a
//! random port and connect gcloud-sdk's real generated clients to it.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use cloud_ops_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use gcloud_sdk::google::devtools::cloudtrace::v1::trace_service_client::TraceServiceClient as TraceReadClient;
use gcloud_sdk::google::devtools::cloudtrace::v2::trace_service_client::TraceServiceClient as TraceWriteClient;
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
use gcloud_sdk::google::monitoring::v3::{ListTimeSeriesRequest, TimeInterval, TimeSeries};
use prost_types::Timestamp;
use tonic::transport::Channel;

pub const PROJECT: &str = "test-project";

pub struct TestEmulator {
    pub emulator: RunningEmulator,
    pub channel: Channel,
}

impl TestEmulator {
    pub async fn start() -> Self {
        Self::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> Self {
        let config = EmulatorConfig { port: 0, ..config };
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let channel = Channel::from_shared(format!("http://{}", emulator.local_addr()))
            .expect("valid uri")
            .connect()
            .await
            .expect("connects to the emulator");
        Self { emulator, channel }
    }

    pub fn trace_writer(&self) -> TraceWriteClient<Channel> {
        TraceWriteClient::new(self.channel.clone())
    }

    pub fn trace_reader(&self) -> TraceReadClient<Channel> {
        TraceReadClient::new(self.channel.clone())
    }

    pub fn metrics(&self) -> MetricServiceClient<Channel> {
        MetricServiceClient::new(self.channel.clone())
    }

    /// Every series of `project` matching `filter` with points in
    /// `(start, end]` (seconds since the epoch), read with `ListTimeSeries`.
    pub async fn list_series(
        &self,
        project: &str,
        filter: &str,
        start: i64,
        end: i64,
    ) -> Vec<TimeSeries> {
        self.metrics()
            .list_time_series(ListTimeSeriesRequest {
                name: format!("projects/{project}"),
                filter: filter.to_owned(),
                interval: Some(TimeInterval {
                    start_time: Some(ts_at(start)),
                    end_time: Some(ts_at(end)),
                }),
                ..ListTimeSeriesRequest::default()
            })
            .await
            .expect("ListTimeSeries succeeds")
            .into_inner()
            .time_series
    }
}

/// Seconds since the epoch now.
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A timestamp `offset` seconds from now (negative: past), on a whole second.
pub fn ts(offset: i64) -> Timestamp {
    Timestamp {
        seconds: now_seconds() + offset,
        nanos: 0,
    }
}

pub fn ts_at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

pub mod metrics {
    //! Builders of Monitoring write requests.
    use std::collections::HashMap;

    use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
    use gcloud_sdk::google::api::metric_descriptor::MetricKind;
    use gcloud_sdk::google::api::{Distribution, Metric, MonitoredResource};
    use gcloud_sdk::google::monitoring::v3::{
        typed_value, CreateTimeSeriesRequest, Point, TimeInterval, TimeSeries, TypedValue,
    };
    use prost_types::Timestamp;

    use super::PROJECT;

    pub fn generic_task(task_id: &str) -> MonitoredResource {
        MonitoredResource {
            r#type: "generic_task".into(),
            labels: [
                ("location", "europe-west1"),
                ("namespace", "bookshop"),
                ("job", "api"),
                ("task_id", task_id),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    pub fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn int(v: i64) -> typed_value::Value {
        typed_value::Value::Int64Value(v)
    }

    pub fn double(v: f64) -> typed_value::Value {
        typed_value::Value::DoubleValue(v)
    }

    /// An explicit-bucket distribution with bounds [0, 10, 20, 30].
    pub fn distribution(counts: &[i64], mean: f64) -> typed_value::Value {
        typed_value::Value::DistributionValue(Distribution {
            count: counts.iter().sum(),
            mean,
            bucket_options: Some(BucketOptions {
                options: Some(bucket_options::Options::ExplicitBuckets(
                    bucket_options::Explicit {
                        bounds: vec![0.0, 10.0, 20.0, 30.0],
                    },
                )),
            }),
            bucket_counts: counts.to_vec(),
            ..Distribution::default()
        })
    }

    /// One series with one point.
    pub fn series(
        metric_type: &str,
        metric_labels: HashMap<String, String>,
        kind: MetricKind,
        start: Option<Timestamp>,
        end: Timestamp,
        value: typed_value::Value,
    ) -> TimeSeries {
        TimeSeries {
            metric: Some(Metric {
                r#type: metric_type.into(),
                labels: metric_labels,
            }),
            resource: Some(generic_task("task-1")),
            metric_kind: kind as i32,
            points: vec![Point {
                interval: Some(TimeInterval {
                    start_time: start,
                    end_time: Some(end),
                }),
                value: Some(TypedValue { value: Some(value) }),
            }],
            ..TimeSeries::default()
        }
    }

    pub fn gauge(metric_type: &str, end: Timestamp, value: f64) -> TimeSeries {
        series(
            metric_type,
            HashMap::new(),
            MetricKind::Unspecified,
            None,
            end,
            double(value),
        )
    }

    pub fn request(time_series: Vec<TimeSeries>) -> CreateTimeSeriesRequest {
        CreateTimeSeriesRequest {
            name: format!("projects/{PROJECT}"),
            time_series,
        }
    }
}

/// A slow read with writes going on beside it, or with a deadline far
/// shorter than its work: the "no long lock" and "stops at its deadline"
/// tests of issue #18, for each store.
pub mod contention {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use tonic::{Code, Request, Status};

    /// How the writes fared beside the read.
    #[derive(Debug)]
    pub struct Beside {
        pub read_took: Duration,
        pub worst_write: Duration,
        pub writes: usize,
    }

    /// Starts `read` and, until it is done, awaits `write(n)` every 20 ms;
    /// the read's answer and how long it and the slowest write took.
    pub async fn read_beside_writes<R, W, F>(
        read: impl Future<Output = R> + Send + 'static,
        mut write: W,
    ) -> (R, Beside)
    where
        R: Send + 'static,
        W: FnMut(usize) -> F,
        F: Future<Output = ()>,
    {
        let read = tokio::spawn(async move {
            let started = Instant::now();
            let answer = read.await;
            (started.elapsed(), answer)
        });
        let mut worst_write = Duration::ZERO;
        let mut writes = 0;
        while !read.is_finished() {
            let started = Instant::now();
            write(writes).await;
            worst_write = worst_write.max(started.elapsed());
            writes += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (read_took, answer) = read.await.expect("the read's task");
        let beside = Beside {
            read_took,
            worst_write,
            writes,
        };
        eprintln!("{beside:?}");
        (answer, beside)
    }

    impl Beside {
        /// The read was slow enough for the test to mean something, and no
        /// write waited long beside it: 500 ms is generous for a busy 2-core
        /// machine; before the fixes a write waited for the whole read.
        pub fn assert_writes_were_not_held_up(&self) {
            assert!(
                self.read_took > Duration::from_millis(1500),
                "the read took only {:?}",
                self.read_took
            );
            assert!(
                self.worst_write < Duration::from_millis(500),
                "a write waited {:?} beside a read of {:?} ({} writes)",
                self.worst_write,
                self.read_took,
                self.writes
            );
        }
    }

    /// Sends `request` through `call` with a 300 ms deadline, far shorter
    /// than the read's seconds of work, and asserts that the client hears
    /// of it within a second and that the emulator stops the work within two
    /// more: `reads_timed_out` reads the emulator's count of reads it stopped.
    pub async fn assert_stops_at_deadline<Q, A>(
        request: Q,
        call: impl AsyncFnOnce(Request<Q>) -> Result<A, Status>,
        mut reads_timed_out: impl AsyncFnMut() -> u64,
    ) {
        let mut request = Request::new(request);
        request.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let Err(status) = call(request).await else {
            panic!("the read finished before its deadline");
        };
        eprintln!("the client heard {status:?}");
        // The client gives up on its own (tonic says CANCELLED), or hears the
        // server's DEADLINE_EXCEEDED first.
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        // The emulator notices too, and stops the work soon after.
        let deadline = Instant::now() + Duration::from_secs(2);
        while reads_timed_out().await == 0 {
            assert!(
                Instant::now() < deadline,
                "the read went on past its client's deadline"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
