//! What every exporter shares: where telemetry goes, the one way a gRPC
//! client to Google (or an emulator) is set up, the OTLP exporters' target
//! ([`otlp`]) and Google credentials ([`google_auth`]), and the export
//! health counters ([`health`]).

pub mod google_auth;
pub mod health;
pub mod otlp;

use std::time::Duration;

use gcloud_sdk::{GoogleApi, GoogleAuthMiddleware};
use thiserror::Error;
use tonic::transport::Channel;

/// Where traces and metrics are sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Google's APIs, with Application Default Credentials.
    Google,
    /// An emulator's `host:port`, in plaintext, without credentials.
    Emulator(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Google => f.write_str("Google (Application Default Credentials)"),
            Self::Emulator(host) => write!(f, "emulator {host} (plaintext, no credentials)"),
        }
    }
}

/// A client could not be set up (a malformed emulator address, or no
/// Google credentials).
#[derive(Debug, Error)]
#[error("cannot connect to {endpoint}: {source}")]
pub struct ConnectError {
    pub endpoint: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// A generated gRPC client, toward an emulator in plaintext (`P`, the client
/// over a [`Channel`]) or toward Google with credentials (`G`, the same
/// client over [`GoogleAuthMiddleware`]).
#[derive(Clone)]
pub enum GrpcClient<P, G: Clone + Send + Sync + 'static> {
    Plain(P),
    Google(GoogleApi<G>),
}

impl<P, G: Clone + Send + Sync + 'static> std::fmt::Debug for GrpcClient<P, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "GrpcClient::Plain",
            Self::Google(_) => "GrpcClient::Google",
        })
    }
}

impl<P, G: Clone + Send + Sync + 'static> GrpcClient<P, G> {
    /// A client for `endpoint`: `google_url` with Application Default
    /// Credentials, or the emulator's address in plaintext. The emulator's
    /// channel connects on first use and reconnects after a restart.
    pub async fn connect_to(
        endpoint: &Endpoint,
        google_url: &'static str,
        plain: fn(Channel) -> P,
        google: fn(GoogleAuthMiddleware) -> G,
    ) -> Result<Self, ConnectError> {
        match endpoint {
            Endpoint::Emulator(host) => {
                let channel = Channel::from_shared(format!("http://{host}"))
                    .map_err(|source| ConnectError {
                        endpoint: host.clone(),
                        source: Box::new(source),
                    })?
                    .connect_timeout(Duration::from_secs(2))
                    .connect_lazy();
                Ok(Self::Plain(plain(channel)))
            }
            Endpoint::Google => {
                let api = GoogleApi::from_function(google, google_url, None)
                    .await
                    .map_err(|source| ConnectError {
                        endpoint: google_url.to_owned(),
                        source: Box::new(source),
                    })?;
                Ok(Self::Google(api))
            }
        }
    }
}
