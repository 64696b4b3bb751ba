//! The tests' stand-in for a misbehaving Google: the real emulator's router
//! (and its store) on a port of its own, behind a switch that delays every
//! gRPC call, answers it with an error status without looking at it, or
//! stops listening altogether and later listens again on the same address.
//!
//! It is the peer the service's exporters talk to, not a mock of their
//! code: what reaches the store went through the emulator's validation.
//! The switch sits in front of every gRPC call on the port, so it faults
//! OTLP `TraceService/Export` and `MetricsService/Export` exactly as it
//! faults `BatchWriteSpans` and `CreateTimeSeries`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use cloud_ops_emulator::{router, EmulatorConfig, EmulatorStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the peer answers gRPC calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// As the emulator does.
    None,
    /// As the emulator does, after this long.
    Delay(Duration),
    /// This status, at once, without reading the request.
    Status(tonic::Code),
}

#[derive(Debug)]
struct Switch {
    fault: Mutex<Fault>,
    /// gRPC calls delayed or answered with an injected status.
    faulted: AtomicU64,
    /// gRPC calls the emulator answered (after any delay).
    served: AtomicU64,
}

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running (or stopped) fault-injecting peer.
pub struct FaultPeer {
    pub addr: SocketAddr,
    /// What the emulator behind the switch stored.
    pub store: EmulatorStore,
    switch: Arc<Switch>,
    app: Router,
    server: Option<Server>,
}

impl FaultPeer {
    /// A healthy peer on a free loopback port.
    pub async fn start() -> Self {
        let store = EmulatorStore::new(&EmulatorConfig::default());
        let switch = Arc::new(Switch {
            fault: Mutex::new(Fault::None),
            faulted: AtomicU64::new(0),
            served: AtomicU64::new(0),
        });
        let app = router(store.clone()).layer(axum::middleware::from_fn_with_state(
            Arc::clone(&switch),
            inject,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Some(serve(listener, app.clone()));
        Self {
            addr,
            store,
            switch,
            app,
            server,
        }
    }

    /// `host:port`, for `CLOUD_OPS_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set(&self, fault: Fault) {
        *self.switch.fault.lock().unwrap() = fault;
    }

    /// gRPC calls delayed or refused so far.
    pub fn faulted_calls(&self) -> u64 {
        self.switch.faulted.load(Ordering::SeqCst)
    }

    /// gRPC calls the emulator answered so far.
    pub fn served_calls(&self) -> u64 {
        self.switch.served.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection: connecting is refused.
    pub async fn stop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let _ = server.stop.send(());
        // Graceful: GOAWAY to the clients, which then close. A client that
        // would not is cut off.
        let abort = server.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }

    /// Listens again on the same address, healthy.
    pub async fn restart(&mut self) {
        self.set(Fault::None);
        if self.server.is_some() {
            return;
        }
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    eprintln!("rebinding {}: {error}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("cannot listen on {} again: {error}", self.addr),
            }
        };
        self.server = Some(serve(listener, self.app.clone()));
    }
}

fn serve(listener: TcpListener, app: Router) -> Server {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Server { stop, task }
}

async fn inject(State(switch): State<Arc<Switch>>, request: Request, next: Next) -> Response {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return next.run(request).await;
    }
    let fault = *switch.fault.lock().unwrap();
    match fault {
        Fault::None => {}
        Fault::Delay(delay) => {
            switch.faulted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
        }
        Fault::Status(code) => {
            switch.faulted.fetch_add(1, Ordering::SeqCst);
            // A "trailers-only" gRPC answer: the status in the headers.
            return Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", (code as i32).to_string())
                .header("grpc-message", "fault injected by the test")
                .body(Body::empty())
                .unwrap();
        }
    }
    let response = next.run(request).await;
    switch.served.fetch_add(1, Ordering::SeqCst);
    response
}
