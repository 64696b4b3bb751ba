//! Where OTLP goes and how the `opentelemetry-otlp` tonic exporters are set
//! up for it, once for traces and metrics alike.
//!
//! - Toward Google: `https://telemetry.googleapis.com` (port 443), TLS with
//!   rustls and the webpki roots, and [`GoogleCredentials`] on every call.
//! - Toward an emulator (`CLOUD_OPS_EMULATOR_HOST`, or the embedded one):
//!   `http://host:port`, its main port, in plaintext and without credentials.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (or the signal's own variable) overrides
//!   both, e.g. for a collector; credentials go only to a `googleapis.com`
//!   host over https, so a token never leaves for anywhere else.
//!
//! The rest is the crate's: deadline (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s),
//! retries of retryable codes with exponential backoff, headers
//! (`OTEL_EXPORTER_OTLP_HEADERS`), compression
//! (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).

use std::future::Future;

use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use thiserror::Error;

use crate::telemetry::export::google_auth::{AuthError, GoogleCredentials};
use crate::telemetry::export::Endpoint;

/// Google's Telemetry (OTLP) API; gRPC on port 443.
pub const GOOGLE_TELEMETRY_ENDPOINT: &str = "https://telemetry.googleapis.com";

/// One signal's OTLP destination.
#[derive(Clone, Debug)]
pub struct OtlpTarget {
    /// `http://` or `https://` URL of the gRPC server.
    pub endpoint: String,
    /// Google's credentials, when the endpoint is Google's.
    pub credentials: Option<GoogleCredentials>,
}

/// An OTLP export failed.
#[derive(Debug, Error)]
pub enum OtlpExportError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Export(OTelSdkError),
}

impl OtlpTarget {
    /// `explicit` (the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables) when set,
    /// else the backend's OTLP endpoint.
    pub fn resolve(explicit: Option<&str>, backend: &Endpoint) -> Self {
        let endpoint = match (explicit, backend) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Endpoint::Google) => GOOGLE_TELEMETRY_ENDPOINT.to_owned(),
            (None, Endpoint::Emulator(host)) => format!("http://{host}"),
        };
        let credentials = is_google(&endpoint).then(GoogleCredentials::from_adc);
        Self {
            endpoint,
            credentials,
        }
    }

    /// Points an `opentelemetry-otlp` tonic builder at this target.
    pub fn configure<B: WithExportConfig + WithTonicConfig>(&self, builder: B) -> B {
        let builder = builder.with_endpoint(self.endpoint.clone());
        let builder = if self.endpoint.starts_with("https://") {
            // The crate's default TLS config has no roots: Google's
            // certificates are checked against the webpki roots (no OpenSSL,
            // no system store needed in the distroless image).
            builder.with_tls_config(ClientTlsConfig::new().with_webpki_roots())
        } else {
            builder
        };
        match &self.credentials {
            Some(credentials) => builder.with_interceptor(credentials.interceptor()),
            None => builder,
        }
    }

    /// Runs `export` with fresh credentials: asks them for the current token
    /// first (the interceptor then sends it), and does not call at all
    /// without one.
    pub async fn export_with_credentials(
        &self,
        export: impl Future<Output = OTelSdkResult>,
    ) -> Result<(), OtlpExportError> {
        if let Some(credentials) = &self.credentials {
            credentials.refresh().await?;
        }
        export.await.map_err(OtlpExportError::Export)
    }
}

impl std::fmt::Display for OtlpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials = match self.credentials {
            Some(_) => "Google credentials",
            None => "no credentials",
        };
        write!(f, "OTLP/gRPC {} ({credentials})", self.endpoint)
    }
}

/// Whether `endpoint` is one of Google's APIs, reached over TLS.
fn is_google(endpoint: &str) -> bool {
    endpoint.parse::<http::Uri>().is_ok_and(|uri| {
        uri.scheme_str() == Some("https")
            && uri
                .host()
                .is_some_and(|host| host == "googleapis.com" || host.ends_with(".googleapis.com"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_gets_tls_and_credentials_an_emulator_neither() {
        let google = OtlpTarget::resolve(None, &Endpoint::Google);
        assert_eq!(google.endpoint, "https://telemetry.googleapis.com");
        assert!(google.credentials.is_some());
        let emulator = OtlpTarget::resolve(None, &Endpoint::Emulator("127.0.0.1:8085".into()));
        assert_eq!(emulator.endpoint, "http://127.0.0.1:8085");
        assert!(emulator.credentials.is_none());
    }

    #[test]
    fn an_explicit_endpoint_wins_and_gets_credentials_only_if_it_is_google() {
        let collector = OtlpTarget::resolve(Some("http://localhost:4317"), &Endpoint::Google);
        assert_eq!(collector.endpoint, "http://localhost:4317");
        assert!(collector.credentials.is_none());
        let elsewhere = OtlpTarget::resolve(Some("https://otlp.example.com"), &Endpoint::Google);
        assert!(elsewhere.credentials.is_none());
        let google = OtlpTarget::resolve(
            Some("https://telemetry.googleapis.com:443/"),
            &Endpoint::Emulator("127.0.0.1:1".into()),
        );
        assert_eq!(google.endpoint, "https://telemetry.googleapis.com:443");
        assert!(google.credentials.is_some());
        // Plaintext to Google: no token on the wire.
        assert!(!is_google("http://telemetry.googleapis.com"));
        assert!(!is_google("https://googleapis.com.evil.example"));
    }
}
