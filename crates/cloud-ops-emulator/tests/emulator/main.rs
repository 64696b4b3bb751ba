//! The emulator's integration tests, in one binary: each module starts a
//! real emulator on a random loopback port and talks to it with Google's
//! own generated gRPC clients (gcloud-sdk), as an exporter would.

mod helpers;

mod concurrency;
mod console_pages;
mod memory;
mod metrics_read;
mod metrics_write;
mod otlp;
mod page_budgets;

mod properties;
mod read_contention;
mod robustness;
mod slo;
mod terraform_model;
mod trace;
mod trace_read_contention;
