//! Cloud Run specifics, against loopback stand-ins: the metadata server
//! (`GCE_METADATA_HOST`) for the region, the instance id and ID tokens, and a
//! private backend that must receive the frontend's ID token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::helpers::spawn_service;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloudrun_observability::config::Config;
use cloudrun_observability::telemetry::resource::InstanceIdentity;
use serde_json::{json, Value};

/// Serves `router` on a random loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn metadata_answer(body: String) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (StatusCode::OK, [("metadata-flavor", "Google")], body)
}

/// A metadata server that answers like Cloud Run's, and only to requests
/// carrying `Metadata-Flavor: Google`.
fn metadata_server() -> Router {
    async fn guarded(
        headers: &HeaderMap,
        body: String,
    ) -> Result<(StatusCode, [(&'static str, &'static str); 1], String), StatusCode> {
        if headers
            .get("metadata-flavor")
            .is_some_and(|v| v == "Google")
        {
            Ok(metadata_answer(body))
        } else {
            Err(StatusCode::FORBIDDEN)
        }
    }
    Router::new()
        .route(
            "/computeMetadata/v1/instance/region",
            get(|headers: HeaderMap| async move {
                guarded(&headers, "projects/123456/regions/europe-west1".into()).await
            }),
        )
        .route(
            "/computeMetadata/v1/instance/id",
            get(|headers: HeaderMap| async move { guarded(&headers, "00bf4bf02d".into()).await }),
        )
        .route(
            "/computeMetadata/v1/instance/service-accounts/default/identity",
            get(
                |headers: HeaderMap, Query(query): Query<HashMap<String, String>>| async move {
                    guarded(&headers, format!("id-token-for:{}", query["audience"])).await
                },
            ),
        )
}

fn config_with(vars: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

#[tokio::test]
async fn on_cloud_run_the_region_and_instance_come_from_the_metadata_server() {
    let metadata = serve(metadata_server()).await.to_string();
    let config = config_with(&[
        ("K_SERVICE", "frontend"),
        ("K_REVISION", "frontend-00007-abc"),
        ("K_CONFIGURATION", "frontend"),
        ("GOOGLE_CLOUD_PROJECT", "shop-prod"),
        ("GCE_METADATA_HOST", &metadata),
    ]);
    let identity = InstanceIdentity::detect(&config).await;
    assert_eq!(identity.region.as_deref(), Some("europe-west1"));
    assert_eq!(identity.instance_id, "00bf4bf02d");
    assert_eq!(identity.location(), "europe-west1");
    assert_eq!(identity.project_id, "shop-prod");

    let resource = identity.to_resource();
    let attribute = |key: &'static str| {
        resource
            .get(&opentelemetry::Key::from_static_str(key))
            .map(|value| value.to_string())
    };
    assert_eq!(attribute("service.name").as_deref(), Some("frontend"));
    assert_eq!(attribute("cloud.provider").as_deref(), Some("gcp"));
    assert_eq!(
        attribute("cloud.platform").as_deref(),
        Some("gcp_cloud_run")
    );
    assert_eq!(attribute("cloud.region").as_deref(), Some("europe-west1"));
    assert_eq!(attribute("faas.name").as_deref(), Some("frontend"));
    assert_eq!(
        attribute("faas.version").as_deref(),
        Some("frontend-00007-abc")
    );
    assert_eq!(attribute("faas.instance").as_deref(), Some("00bf4bf02d"));
}

#[tokio::test]
async fn off_cloud_run_no_metadata_server_is_asked_and_instances_differ() {
    let config = config_with(&[]);
    let first = InstanceIdentity::detect(&config).await;
    let second = InstanceIdentity::detect(&config).await;
    assert_eq!(first.region, None);
    assert_eq!(first.location(), "global");
    assert!(first.instance_id.starts_with("local-"));
    assert_ne!(first.instance_id, second.instance_id);
}

#[tokio::test]
async fn a_metadata_server_that_does_not_answer_does_not_block_start_up() {
    // Accepts connections but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = config_with(&[("K_SERVICE", "frontend"), ("GCE_METADATA_HOST", &host)]);
    let started = std::time::Instant::now();
    let identity = InstanceIdentity::detect(&config).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(identity.region, None);
    assert!(identity.instance_id.starts_with("local-"));
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Option<String>>>>);

/// A backend that records the `Authorization` header of each call.
fn backend(seen: Seen) -> Router {
    async fn record(State(seen): State<Seen>, headers: HeaderMap) {
        let auth = headers
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_owned());
        seen.0.lock().unwrap().push(auth);
    }
    Router::new()
        .route(
            "/internal/inventory/reserve",
            post(|state: State<Seen>, headers: HeaderMap| async move {
                record(state, headers).await;
                Json(json!({"reservation_id": "res_1", "book_id": 1, "quantity": 1}))
            }),
        )
        .route(
            "/internal/payments/charge",
            post(|state: State<Seen>, headers: HeaderMap| async move {
                record(state, headers).await;
                Json(json!({"payment_id": "pay_1", "amount_cents": 3999}))
            }),
        )
        .with_state(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cloud_run_the_frontend_calls_the_backend_with_an_id_token() {
    let metadata = serve(metadata_server()).await.to_string();
    let seen = Seen::default();
    let backend_url = format!("http://{}", serve(backend(seen.clone())).await);
    let frontend = spawn_service(&[
        ("K_SERVICE", "frontend"),
        ("GCE_METADATA_HOST", &metadata),
        ("DOWNSTREAM_URL", &backend_url),
        ("TELEMETRY", "off"),
    ]);
    let response = frontend
        .post_json("/api/orders", &json!({"book_id": 1, "quantity": 1}))
        .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let expected = format!("Bearer id-token-for:{backend_url}");
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![Some(expected.clone()), Some(expected)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_id_token_the_order_fails_clearly() {
    // A "metadata server" that is not one (no Metadata-Flavor header).
    let not_metadata = serve(Router::new().fallback(|| async { "hello" }))
        .await
        .to_string();
    let seen = Seen::default();
    let backend_url = format!("http://{}", serve(backend(seen.clone())).await);
    let frontend = spawn_service(&[
        ("K_SERVICE", "frontend"),
        ("GCE_METADATA_HOST", &not_metadata),
        ("DOWNSTREAM_URL", &backend_url),
    ]);
    let response = frontend
        .post_json("/api/orders", &json!({"book_id": 1, "quantity": 1}))
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "inventory_unavailable");
    assert!(seen.0.lock().unwrap().is_empty(), "no call without a token");
    let report = frontend
        .wait_for_entries(1, |entry| entry["errorType"] == "downstream_failure")
        .await;
    let message = report[0]["message"].as_str().unwrap();
    assert!(message.contains("no ID token for"), "{message}");
}
