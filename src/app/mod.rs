//! The HTTP service: routes, handlers and the error type they share.
