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
//! - HTTP/2 (h2c, which Cloud Run sends with `--use-http2`): hyper has no
//!   head timeout there, so each HTTP/2 connection (told from HTTP/1 by
//!   its first three bytes: HTTP/1 connections pay nothing for this) counts
//!   its requests in flight
//!   ([`InFlight`], from a request's complete head to its response's last
//!   byte), and one without any for the header timeout is closed: first
//!   with a GOAWAY, then, after [`CLOSE_GRACE`], by dropping it if the
//!   client has not gone (a client that sent the preface and nothing more,
//!   or half a header block). That is HTTP/1's rule too, where hyper's own
//!   timer fires at the same moment. Keep-alive pings
//!   ([`H2_PING_INTERVAL`], [`H2_PING_TIMEOUT`]) close a connection whose
//!   peer has gone without a word while a stream is open.
//!
//! Shutdown is graceful as with `axum::serve`: stop accepting, let each
//! connection finish its requests.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// How long a connection that told the server to go away (GOAWAY) has to
/// close before it is dropped: a client that answers closes within a round
/// trip.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take: a peer gone without a word is noticed within 80 s, while a stream
/// is open or not. Google's front end answers pings as any HTTP/2 peer must.
pub(crate) const H2_PING_INTERVAL: Duration = Duration::from_secs(60);
pub(crate) const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

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
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    // Tells the connections to finish; closed once every one has.
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
        let router = router.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut watch_stop = stop.clone();
            let protocol = tokio::select! {
                protocol = protocol_within(&stream, timeouts.header) => protocol,
                _ = watch_stop.changed() => None,
            };
            // HTTP/1 has hyper's own head timer: only HTTP/2 connections
            // pay for counting their requests.
            let watchdog = match protocol {
                None => return,
                Some(Protocol::Http1) => None,
                Some(Protocol::Http2) => Some((InFlight::default(), timeouts.header)),
            };
            let in_flight = watchdog.as_ref().map(|(in_flight, _)| in_flight.clone());
            let service = serve_request(router, peer, timeouts.body, in_flight);
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            serve_connection(connection, |c| c.graceful_shutdown(), watchdog, stop).await;
        });
    }
    drop(listener);
    drop(stop);
    // Every connection holds a receiver until it is done.
    let _ = stopping.send(());
    stopping.closed().await;
}

/// The router as a connection's service: each request with its peer's
/// address and its body's deadline and, on HTTP/2, counted in `in_flight`
/// until its response's last byte is sent (or the response dropped).
fn serve_request(
    router: Router,
    peer: std::net::SocketAddr,
    body_budget: Duration,
    in_flight: Option<InFlight>,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send,
> + Clone {
    tower::service_fn(move |request: http::Request<Incoming>| {
        let begun = in_flight.as_ref().map(InFlight::begin);
        let mut request = request.map(|body| with_deadline(body, body_budget));
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            Ok(match begun {
                Some(begun) => response.map(|body| begun.until_end_of(body)),
                None => response,
            })
        }
    })
}

/// Drives `connection` until it ends, the server stops (a graceful
/// shutdown, as long as its requests take) or, with a `watchdog`, it has
/// had no request in flight for the watchdog's limit (a graceful shutdown,
/// then a drop after [`CLOSE_GRACE`] once no request is in flight).
async fn serve_connection<C: Future>(
    connection: C,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
    watchdog: Option<(InFlight, Duration)>,
    mut stop: watch::Receiver<()>,
) {
    let mut connection = pin!(connection);
    let mut activity = watchdog.as_ref().map(|(in_flight, _)| in_flight.watch());
    let idle = async {
        match (&mut activity, &watchdog) {
            (Some(activity), Some((_, limit))) => idle_for(activity, *limit).await,
            _ => std::future::pending().await,
        }
    };
    let idle = tokio::select! {
        // A client that went away or sent garbage: hyper has answered
        // what could be answered; nothing to log per connection.
        _ = connection.as_mut() => return,
        () = idle => true,
        _ = stop.changed() => false,
    };
    graceful_shutdown(connection.as_mut());
    let Some(mut activity) = activity.filter(|_| idle) else {
        let _ = connection.await;
        return;
    };
    tokio::select! {
        _ = connection.as_mut() => {}
        () = async {
            tokio::time::sleep(CLOSE_GRACE).await;
            let _ = activity.wait_for(|n| *n == 0).await;
        } => {}
    }
}

/// Resolves once no request has been in flight for `limit`.
async fn idle_for(activity: &mut watch::Receiver<usize>, limit: Duration) {
    loop {
        if activity.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        tokio::select! {
            () = tokio::time::sleep(limit) => return,
            changed = activity.changed() => if changed.is_err() {
                return std::future::pending().await;
            },
        }
    }
}

/// The requests in flight on one connection.
#[derive(Clone, Default)]
struct InFlight(Arc<watch::Sender<usize>>);

/// One request in flight; it ends when this is dropped.
struct Begun(Arc<watch::Sender<usize>>);

impl InFlight {
    fn begin(&self) -> Begun {
        self.0.send_modify(|n| *n += 1);
        Begun(Arc::clone(&self.0))
    }

    fn watch(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }
}

impl Begun {
    /// `body`, holding this request in flight until hyper has sent its
    /// last byte and dropped it.
    fn until_end_of(self, body: Body) -> Body {
        Body::new(body.map_frame(move |frame| {
            let _held = &self;
            frame
        }))
    }
}

impl Drop for Begun {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The protocol a connection speaks, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// It began with HTTP/2's preface (`PRI * HTTP/2.0`): h2c.
    Http2,
}

/// The protocol the connection's first bytes announce, if they arrive within
/// `timeout`. hyper's header clock starts only once it knows the protocol,
/// which takes a byte: a connection that never sends one would be held
/// forever. Three bytes tell HTTP/2's preface from any HTTP/1 method.
async fn protocol_within(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    const PREFACE: &[u8] = b"PRI";
    let peek = async {
        let mut start = [0u8; 3];
        loop {
            let seen = stream.peek(&mut start).await.ok()?;
            if seen == 0 {
                return None;
            }
            if !PREFACE.starts_with(&start[..seen]) {
                return Some(Protocol::Http1);
            }
            if seen == PREFACE.len() {
                return Some(Protocol::Http2);
            }
            // Part of the preface, and the rest not yet here: a peek would
            // return the same bytes at once, so wait a little.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(timeout, peek).await.ok().flatten()
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
