//! The request this thread is working on, for the code that is not handed
//! it: the log layer (every line inside a request carries its trace) and the
//! panic hook (the panic's entry names the request).
//!
//! The middleware polls the handler inside [`InRequest`], which makes the
//! request current on the polling thread for the length of each poll, and
//! the request's OpenTelemetry context current with it (so that spans made
//! in the handler are the SERVER span's children). A `tracing` span with
//! the same data in its registry extensions did this before (issue #16);
//! entering and leaving it on every poll, through every layer, and making
//! and closing it cost about 3.5 us per request in place. Two thread-local
//! writes do the same here.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::telemetry::logs::error_reporting::HttpContext;
use crate::telemetry::traces::context::TraceContext;

thread_local! {
    static TRACE: Cell<Option<TraceContext>> = const { Cell::new(None) };
    static HTTP: RefCell<Option<Arc<HttpContext>>> = const { RefCell::new(None) };
}

/// The trace of the request this thread is working on.
pub(crate) fn current_trace() -> Option<TraceContext> {
    TRACE.with(Cell::get)
}

/// The HTTP fields of the request this thread is working on.
pub(crate) fn current_http() -> Option<Arc<HttpContext>> {
    HTTP.with(|http| http.borrow().clone())
}

/// Makes a request current until dropped; what was current before comes
/// back then, also when a panic unwinds through it.
#[must_use = "the request is current only while this lives"]
pub struct Entered {
    trace: Option<TraceContext>,
    http: Option<Arc<HttpContext>>,
}

pub(crate) fn enter(trace: TraceContext, http: Option<Arc<HttpContext>>) -> Entered {
    Entered {
        trace: TRACE.with(|current| current.replace(Some(trace))),
        http: HTTP.with(|current| current.replace(http)),
    }
}

/// Makes `trace` current until the guard drops, as for a request without
/// its HTTP fields: for benchmarks and tests of the log layer.
pub fn enter_trace(trace: TraceContext) -> Entered {
    enter(trace, None)
}

impl Drop for Entered {
    fn drop(&mut self) {
        TRACE.with(|current| current.set(self.trace));
        HTTP.with(|current| *current.borrow_mut() = self.http.take());
    }
}

pin_project_lite::pin_project! {
    /// A request's handler, polled with the request current
    /// ([`current_trace`], [`current_http`]) and, when its SERVER span was
    /// made, inside that span's OpenTelemetry context.
    pub(crate) struct InRequest<F> {
        #[pin]
        handler: F,
        trace: TraceContext,
        http: Arc<HttpContext>,
        otel: Option<opentelemetry::Context>,
    }
}

impl<F> InRequest<F> {
    pub(crate) fn new(
        handler: F,
        trace: TraceContext,
        http: Arc<HttpContext>,
        otel: Option<opentelemetry::Context>,
    ) -> Self {
        Self {
            handler,
            trace,
            http,
            otel,
        }
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _otel = this.otel.as_ref().map(|otel| otel.clone().attach());
        let _request = enter(*this.trace, Some(Arc::clone(this.http)));
        this.handler.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::context::{SpanId, TraceId};

    fn trace() -> TraceContext {
        TraceContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            sampled: true,
        }
    }

    #[test]
    fn a_request_is_current_while_entered_and_the_previous_one_after() {
        assert_eq!(current_trace(), None);
        let outer = trace();
        let inner = trace();
        {
            let _outer = enter_trace(outer);
            {
                let _inner = enter_trace(inner);
                assert_eq!(current_trace(), Some(inner));
            }
            assert_eq!(current_trace(), Some(outer));
        }
        assert_eq!(current_trace(), None);
    }

    #[test]
    fn a_panic_unwinding_through_a_request_leaves_none_current() {
        let caught = std::panic::catch_unwind(|| {
            let _request = enter_trace(trace());
            panic!("inside the request");
        });
        assert!(caught.is_err());
        assert_eq!(current_trace(), None);
        assert!(current_http().is_none());
    }

    #[test]
    fn the_request_is_current_only_while_its_handler_is_polled() {
        let request = trace();
        let http = Arc::new(HttpContext::default());
        let seen = InRequest::new(
            async {
                tokio::task::yield_now().await;
                (current_trace(), current_http().is_some())
            },
            request,
            http,
            None,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(seen), (Some(request), true));
        assert_eq!(current_trace(), None);
    }
}
