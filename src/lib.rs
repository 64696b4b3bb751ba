//! # cloudrun-observability
//!
//! A small bookshop API for Google Cloud Run that is observable end to end:
//! Cloud Logging JSON on stdout, OpenTelemetry spans to Cloud Trace, custom
//! metrics to Cloud Monitoring, and an embedded emulator of the Cloud Trace and
//! Cloud Monitoring APIs so that all of it can be seen and tested offline.
//!
//! The crate is a library with a thin binary (`src/main.rs`): tests start the
//! same [`app::Application`] the binary starts.

pub mod app;
pub mod config;
pub mod emulator;
pub mod telemetry;
