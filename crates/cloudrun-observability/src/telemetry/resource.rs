//! Which process the telemetry comes from: the OpenTelemetry resource, and
//! the Cloud Monitoring `generic_task` labels built from the same facts.
//!
//! On Cloud Run the region and the instance id come from the metadata
//! server (`GCE_METADATA_HOST` is honoured, as Google's libraries do, so
//! tests run a loopback stand-in). Elsewhere the instance id is random, so
//! that two local instances never write the same series.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use rand::Rng;

use crate::config::Config;
use crate::platform::metadata::MetadataClient;

/// What identifies this instance in traces and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceIdentity {
    pub project_id: String,
    pub service_name: String,
    pub service_version: String,
    /// `K_REVISION` on Cloud Run, else the version.
    pub revision: String,
    /// The region, e.g. `europe-west1`; `None` off Google Cloud.
    pub region: Option<String>,
    /// The instance id from the metadata server, or a random local one.
    pub instance_id: String,
    pub on_cloud_run: bool,
}

impl InstanceIdentity {
    /// Reads the metadata server when on Cloud Run or when
    /// `GCE_METADATA_HOST` points at one; never fails.
    pub async fn detect(config: &Config) -> Self {
        let (region, instance_id) = match config.metadata_server() {
            Some(host) => {
                let client = MetadataClient::new(host);
                tokio::join!(client.region(), client.instance_id())
            }
            None => (None, None),
        };
        Self {
            project_id: config.trace_project().to_owned(),
            service_name: config.service_name().to_owned(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: config.service_version().to_owned(),
            region,
            instance_id: instance_id.unwrap_or_else(local_instance_id),
            on_cloud_run: config.cloud_run.is_some(),
        }
    }

    /// The OpenTelemetry resource, with the semantic conventions for Cloud
    /// Run (`cloud.*`, `faas.*`).
    pub fn to_resource(&self) -> Resource {
        let mut attributes = vec![
            KeyValue::new("service.name", self.service_name.clone()),
            KeyValue::new("service.version", self.service_version.clone()),
            KeyValue::new("service.instance.id", self.instance_id.clone()),
            // Where Google's Telemetry (OTLP) API stores the data: without
            // it, every export is INVALID_ARGUMENT.
            KeyValue::new("gcp.project_id", self.project_id.clone()),
        ];
        if self.on_cloud_run {
            attributes.extend([
                KeyValue::new("cloud.provider", "gcp"),
                KeyValue::new("cloud.platform", "gcp_cloud_run"),
                KeyValue::new("faas.name", self.service_name.clone()),
                KeyValue::new("faas.version", self.revision.clone()),
                KeyValue::new("faas.instance", self.instance_id.clone()),
            ]);
        }
        if let Some(region) = &self.region {
            attributes.push(KeyValue::new("cloud.region", region.clone()));
        }
        Resource::builder_empty()
            .with_attributes(attributes)
            .build()
    }

    /// Cloud Monitoring's `location` label: the region, else `global`.
    pub fn location(&self) -> &str {
        self.region.as_deref().unwrap_or("global")
    }
}

fn local_instance_id() -> String {
    format!("local-{:016x}", rand::rng().random::<u64>())
}
