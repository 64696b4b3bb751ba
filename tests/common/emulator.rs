//! Shared helpers for the emulator's integration tests: start an emulator on a
//! random port and connect gcloud-sdk's real generated clients to it.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use cloudrun_observability::emulator::{Emulator, EmulatorConfig, RunningEmulator};
use gcloud_sdk::google::devtools::cloudtrace::v1::trace_service_client::TraceServiceClient as TraceReadClient;
use gcloud_sdk::google::devtools::cloudtrace::v2::trace_service_client::TraceServiceClient as TraceWriteClient;
use gcloud_sdk::google::monitoring::v3::metric_service_client::MetricServiceClient;
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
