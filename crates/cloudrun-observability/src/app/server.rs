//! The HTTP server: accepts connections and serves the router on each, with
//! the read timeouts `axum::serve` cannot set.
//!
//! - Headers: hyper's HTTP/1 `header_read_timeout`. Its clock runs from the
//!   moment hyper waits for a request's head, which includes the idle time
//!   of a kept-alive connection, so it is also the keep-alive idle timeout
//!   (see `docs/reliability.md` for why its default is 620 s).
//! - Body: [`DeadlineBody`], one budget for the whole body from the moment
//!   the request reaches the service; a handler reading past it gets
//!   [`BodyReadTimeout`] and answers 408. Only requests that have a body
//!   get the wrapper (and its timer).
//!
//! - Before either, a new connection must send its first byte within the
//!   header timeout: until then hyper does not know the protocol and runs
//!   no clock.
//!
//! Shutdown is graceful as with `axum::serve`: stop accepting, let each
//! connection finish its requests.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// How long a connection may take to send a request's head, and a request
/// its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTimeouts {
    pub header: Duration,
    pub body: Duration,
}

/// A request body was not read within its budget.
#[derive(Debug, Error)]
#[error("the request body was not received within {budget_ms} ms")]
pub struct BodyReadTimeout {
    pub budget_ms: u128,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open connections finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ReadTimeouts,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let graceful = GracefulShutdown::new();
    // Tells connections still waiting for their first byte to go away.
    let (stopping, stop) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let body_budget = timeouts.body;
        let service = router
            .clone()
            .map_request(move |request: http::Request<Incoming>| {
                let mut request = request.map(|body| with_deadline(body, body_budget));
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let first_byte = tokio::select! {
                arrived = first_byte_within(&stream, timeouts.header) => arrived,
                _ = stop.changed() => false,
            };
            if !first_byte {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            // A client that went away or sent garbage: hyper has answered
            // what could be answered; nothing to log per connection.
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    drop(stopping);
    graceful.shutdown().await;
}

/// Whether the connection sent a first byte within `timeout`. hyper's
/// header clock starts only once it knows the protocol, which takes a
/// byte: a connection that never sends one would be held forever.
async fn first_byte_within(stream: &TcpStream, timeout: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut byte)).await,
        Ok(Ok(1))
    )
}

/// What `axum::serve` does: a connection that failed before it was
/// accepted is the client's business; anything else (out of file
/// descriptors) is logged and given a second before the next try.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The request's body, with a deadline when it has one to read.
fn with_deadline(body: Incoming, budget: Duration) -> Body {
    if body.is_end_stream() {
        return Body::new(body);
    }
    Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(Instant::now() + budget)),
        budget,
    })
}

/// A body that fails with [`BodyReadTimeout`] once its deadline passes
/// before it ends.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    budget: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout {
                budget_ms: self.budget.as_millis(),
            })))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
