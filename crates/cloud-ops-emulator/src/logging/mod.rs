//! Cloud Logging, as far as the console and log-based metrics need it.
//!
//! - [`store`]: log entries parsed from a service's stdout lines;
//!   [`footprint`] estimates what each costs in memory.
//! - [`query`]: the Logging query language.
//! - [`metrics`]: log-based metrics and Cloud Run's built-in request
//!   metrics, computed from stored entries.

pub(crate) mod footprint;
pub mod metrics;
pub mod query;
pub mod store;

pub use store::LogStore;
