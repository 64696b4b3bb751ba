//! The service's integration tests, in one binary: each module spawns the
//! real `cloudrun-observability` binary on a random loopback port (see
//! [`helpers`]) and, where telemetry matters, a real emulator beside it.

#[path = "../../../cloud-ops-emulator/tests/emulator/helpers.rs"]
mod emulator_helpers;
mod fault_peer;
mod helpers;

mod alerts;
mod api;
mod bad_input;
mod cloud_run;
mod console;
mod console_browser;
mod console_rates;
mod loadgen;
mod log_delivery;
mod log_metrics;
mod logging;
mod metrics;
mod otlp_credentials;
mod otlp_metrics;
mod protections;
mod security;
mod shutdown_under_load;
mod slo;
mod telemetry_faults;
mod traces;
mod uptime;
