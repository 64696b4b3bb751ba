//! Typed data attached to `tracing` spans.
//!
//! The request middleware stores the request's [`TraceContext`] and
//! [`HttpContext`] on its span; the log writer and the panic hook, which see
//! only "the current span", read them back. This is the same mechanism
//! `tracing-opentelemetry` uses for its span data: the registry's per-span
//! extensions.
//!
//! [`TraceContext`]: crate::telemetry::traces::context::TraceContext
//! [`HttpContext`]: crate::telemetry::logs::error_reporting::HttpContext

use tracing::Span;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

/// Stores `value` on `span`, replacing an earlier value of the same type.
/// Does nothing when no registry-based subscriber is installed (telemetry
/// off), or when the span is disabled.
pub fn attach<T: Send + Sync + 'static>(span: &Span, value: T) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().replace(value);
        }
    });
}

/// The innermost value of type `T` on the current span or its parents.
pub fn current<T: Clone + Send + Sync + 'static>() -> Option<T> {
    Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let span = registry.span(id)?;
            span.scope()
                .find_map(|span| span.extensions().get::<T>().cloned())
        })
        .flatten()
}
