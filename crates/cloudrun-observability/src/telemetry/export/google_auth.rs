//! Google credentials for the OTLP exporters: an OAuth access token on every
//! call to `telemetry.googleapis.com`, and `x-goog-user-project` when the
//! credentials name a quota project.
//!
//! The token comes from the credentials the rest of the service uses:
//! gcloud-sdk's [`GoogleAuthHeaders`] over Application Default Credentials
//! (on Cloud Run, the metadata server). They mint, cache and refresh the
//! token (it expires after an hour), and add `x-goog-user-project` from
//! `GOOGLE_CLOUD_QUOTA_PROJECT` or the credentials file's
//! `quota_project_id`; this module only carries their headers into the gRPC
//! metadata.
//!
//! [`GoogleAuthHeaders`]: gcloud_sdk::GoogleAuthHeaders
//!
//! tonic's interceptor, the one hook `opentelemetry-otlp` offers for
//! per-call metadata, is synchronous, and asking the credentials is not. So
//! the export wrapper calls [`GoogleCredentials::refresh`] (async) just
//! before each export, and the interceptor copies the headers that left in
//! place into every call of that export, retries included: each export
//! carries the token the credentials consider current at that moment.

use std::sync::{Arc, PoisonError, RwLock};

use futures::future::BoxFuture;
use http::HeaderMap;
use thiserror::Error;
use tokio::sync::OnceCell;
use tonic::metadata::{MetadataKey, MetadataValue};

/// The quota project header, as the credentials send it.
#[cfg(test)]
const USER_PROJECT_HEADER: &str = "x-goog-user-project";

/// Where the authentication headers come from: gcloud-sdk's credentials in
/// the service, a stand-in in tests.
pub trait HeaderSource: Send + Sync + std::fmt::Debug {
    /// The headers to send now (`authorization: Bearer ...` and whatever
    /// else the credentials add).
    fn headers(&self) -> BoxFuture<'_, Result<Arc<HeaderMap>, AuthError>>;
}

impl HeaderSource for gcloud_sdk::GoogleAuthHeaders {
    fn headers(&self) -> BoxFuture<'_, Result<Arc<HeaderMap>, AuthError>> {
        Box::pin(async move {
            gcloud_sdk::GoogleAuthHeaders::headers(self)
                .await
                .map_err(|error| AuthError(error.to_string()))
        })
    }
}

/// The credentials could not be built or could not mint a token.
#[derive(Clone, Debug, Error)]
#[error("no Google access token: {0}")]
pub struct AuthError(pub String);

/// Google credentials shared by an exporter and its interceptor.
#[derive(Clone, Debug)]
pub struct GoogleCredentials {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Built on the first export, so that start-up waits for nothing.
    source: OnceCell<Arc<dyn HeaderSource>>,
    /// The headers of the latest refresh.
    current: RwLock<Option<Arc<HeaderMap>>>,
}

impl GoogleCredentials {
    /// Application Default Credentials (on Cloud Run, the metadata server),
    /// built on first use.
    pub fn from_adc() -> Self {
        Self::new(OnceCell::new())
    }

    /// Credentials from `source` (tests use a stand-in).
    pub fn with_source(source: Arc<dyn HeaderSource>) -> Self {
        Self::new(OnceCell::new_with(Some(source)))
    }

    fn new(source: OnceCell<Arc<dyn HeaderSource>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                current: RwLock::new(None),
            }),
        }
    }

    /// Asks the credentials for the headers to send now; the interceptor
    /// sends them from then on. On failure the previous headers are dropped,
    /// so that no call goes out with a token the credentials no longer vouch
    /// for.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let source = self
            .shared
            .source
            .get_or_try_init(|| async {
                gcloud_sdk::GoogleAuthHeaders::from_adc()
                    .await
                    .map(|headers| Arc::new(headers) as Arc<dyn HeaderSource>)
                    .map_err(|error| AuthError(error.to_string()))
            })
            .await?;
        let fetched = source.headers().await;
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match fetched {
            Ok(headers) => {
                *current = Some(headers);
                Ok(())
            }
            Err(error) => {
                *current = None;
                Err(error)
            }
        }
    }

    /// The interceptor for `opentelemetry-otlp`'s tonic exporters.
    pub fn interceptor(&self) -> GoogleAuthInterceptor {
        GoogleAuthInterceptor {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Puts the current Google headers on each gRPC call; refuses the call
/// (UNAUTHENTICATED, before anything is sent) when there are none.
#[derive(Clone, Debug)]
pub struct GoogleAuthInterceptor {
    shared: Arc<Shared>,
}

impl tonic::service::Interceptor for GoogleAuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let headers = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| tonic::Status::unauthenticated("no Google access token"))?;
        let metadata = request.metadata_mut();
        for (name, value) in headers.iter() {
            let (Ok(key), Ok(value)) = (
                MetadataKey::from_bytes(name.as_str().as_bytes()),
                MetadataValue::try_from(value.as_bytes()),
            ) else {
                continue;
            };
            metadata.insert(key, value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tonic::service::Interceptor as _;

    /// Hands out `token-1`, `token-2`, ... (a new token on every refresh, as
    /// if each had expired), or fails when `fail` is set.
    #[derive(Debug, Default)]
    struct Tokens {
        minted: AtomicUsize,
        user_project: Option<&'static str>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl HeaderSource for Tokens {
        fn headers(&self) -> BoxFuture<'_, Result<Arc<HeaderMap>, AuthError>> {
            Box::pin(async move {
                if self.fail.load(Ordering::SeqCst) {
                    return Err(AuthError("metadata server unreachable".into()));
                }
                let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::AUTHORIZATION,
                    format!("Bearer token-{n}").parse().unwrap(),
                );
                if let Some(project) = self.user_project {
                    headers.insert(USER_PROJECT_HEADER, project.parse().unwrap());
                }
                Ok(Arc::new(headers))
            })
        }
    }

    fn call(
        interceptor: &mut GoogleAuthInterceptor,
    ) -> Result<tonic::metadata::MetadataMap, tonic::Status> {
        interceptor
            .call(tonic::Request::new(()))
            .map(|request| request.metadata().clone())
    }

    fn header<'a>(metadata: &'a tonic::metadata::MetadataMap, name: &str) -> Option<&'a str> {
        metadata.get(name).map(|value| value.to_str().unwrap())
    }

    #[tokio::test]
    async fn each_refresh_puts_the_current_token_on_the_calls_that_follow() {
        let credentials = GoogleCredentials::with_source(Arc::new(Tokens::default()));
        let mut interceptor = credentials.interceptor();
        credentials.refresh().await.unwrap();
        let first = call(&mut interceptor).unwrap();
        assert_eq!(header(&first, "authorization"), Some("Bearer token-1"));
        // A retry within the same export: the same token.
        let retry = call(&mut interceptor).unwrap();
        assert_eq!(header(&retry, "authorization"), Some("Bearer token-1"));
        credentials.refresh().await.unwrap();
        let next = call(&mut interceptor).unwrap();
        assert_eq!(header(&next, "authorization"), Some("Bearer token-2"));
        assert_eq!(header(&next, USER_PROJECT_HEADER), None);
    }

    #[tokio::test]
    async fn without_a_token_no_call_goes_out() {
        let tokens = Arc::new(Tokens::default());
        let credentials = GoogleCredentials::with_source(tokens.clone());
        let mut interceptor = credentials.interceptor();
        let refused = call(&mut interceptor).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        credentials.refresh().await.unwrap();
        assert!(call(&mut interceptor).is_ok());
        // The credentials fail: the old token is not sent on.
        tokens.fail.store(true, Ordering::SeqCst);
        let error = credentials.refresh().await.unwrap_err();
        assert!(error.to_string().contains("metadata server unreachable"));
        assert_eq!(
            call(&mut interceptor).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[tokio::test]
    async fn every_header_of_the_credentials_goes_out_the_quota_project_too() {
        let credentials = GoogleCredentials::with_source(Arc::new(Tokens {
            user_project: Some("billing-project"),
            ..Tokens::default()
        }));
        credentials.refresh().await.unwrap();
        let metadata = call(&mut credentials.interceptor()).unwrap();
        assert_eq!(header(&metadata, "authorization"), Some("Bearer token-1"));
        assert_eq!(
            header(&metadata, USER_PROJECT_HEADER),
            Some("billing-project")
        );
    }
}
