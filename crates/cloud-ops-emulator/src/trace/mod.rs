//! Cloud Trace: the v2 write API and the v1 read API.
//!
//! - [`service`]: the two gRPC services.
//! - [`validation`]: Google's rules for spans (T1-T8), with its wording.
//! - [`store`]: the bounded span store everything reads from; [`footprint`]
//!   estimates what a span costs in memory; [`shared`] holds the attributes
//!   many OTLP spans share (their resource's), merged in on read.
//! - [`filter`]: the v1 `ListTraces` filter language.

pub mod filter;
pub(crate) mod footprint;
pub mod service;
pub mod shared;
pub mod store;
pub mod validation;

pub use store::TraceStore;
