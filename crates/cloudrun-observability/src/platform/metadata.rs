//! The Google Cloud metadata server, as far as this service asks it: the
//! region and instance id for telemetry, and ID tokens for calling a private
//! Cloud Run service (`app::downstream`).
//!
//! `GCE_METADATA_HOST` is honoured, as Google's libraries do, so tests run a
//! loopback stand-in.

use std::time::Duration;

/// How long start-up waits for the metadata server; on Cloud Run it answers
/// in milliseconds, and start-up must not hang when it does not.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

/// The few metadata server calls this service makes.
#[derive(Clone, Debug)]
pub struct MetadataClient {
    root: String,
    http: reqwest::Client,
}

impl MetadataClient {
    pub fn new(host: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(METADATA_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            root: format!("http://{host}/computeMetadata/v1"),
            http,
        }
    }

    /// `projects/123/regions/europe-west1` -> `europe-west1`.
    pub async fn region(&self) -> Option<String> {
        let region = self.get("instance/region").await?;
        region.rsplit('/').next().map(str::to_owned)
    }

    /// The project the instance runs in, as Google's client libraries
    /// find it when `GOOGLE_CLOUD_PROJECT` is unset (Cloud Run does not set it).
    pub async fn project_id(&self) -> Option<String> {
        self.get("project/project-id").await
    }

    pub async fn instance_id(&self) -> Option<String> {
        self.get("instance/id").await
    }

    /// A Google-signed ID token for `audience`, for calling a private Cloud
    /// Run service.
    pub async fn identity_token(&self, audience: &str) -> Option<String> {
        self.get_with_query(
            "instance/service-accounts/default/identity",
            &[("audience", audience), ("format", "full")],
        )
        .await
    }

    async fn get(&self, path: &str) -> Option<String> {
        self.get_with_query(path, &[]).await
    }

    /// Only an answer with `Metadata-Flavor: Google` counts: anything else
    /// at that address is not the metadata server.
    async fn get_with_query(&self, path: &str, query: &[(&str, &str)]) -> Option<String> {
        let response = self
            .http
            .get(format!("{}/{path}", self.root))
            .query(query)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .ok()?;
        let flavor_ok = response
            .headers()
            .get("metadata-flavor")
            .is_some_and(|value| value == "Google");
        if !response.status().is_success() || !flavor_ok {
            return None;
        }
        let text = response.text().await.ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}
