//! Cloud Monitoring v3: metric writes and reads, and what is computed from
//! the stored series.
//!
//! - [`service`]: the `MetricService` gRPC service.
//! - [`validation`]: Google's rules for series and descriptors (M1-M16).
//! - [`store`]: the bounded series store; [`footprint`] estimates what it holds.
//! - [`filter`]: the Monitoring filter language.
//! - [`aggregation`]: alignment and reduction, as `ListTimeSeries` applies them.
//! - [`uptime`]: uptime checks, probed from each checker location.

pub mod aggregation;
pub mod filter;
pub(crate) mod footprint;
pub mod service;
pub mod store;
pub mod uptime;
pub mod validation;

pub use store::MetricStore;
