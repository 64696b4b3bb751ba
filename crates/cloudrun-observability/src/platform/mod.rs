//! What the service asks of the platform it runs on.
//!
//! - [`metadata`]: the Google Cloud metadata server.

pub mod metadata;
