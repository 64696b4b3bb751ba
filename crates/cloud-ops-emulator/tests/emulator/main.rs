//! The emulator's integration tests, in one binary: each module starts a
//! real emulator on a random loopback port and talks to it with Google's
//! own generated gRPC clients (gcloud-sdk), as an exporter would.

mod helpers;

mod concurrency;
mod metrics_read;
mod metrics_write;
mod otlp;
mod robustness;
mod terraform_model;
mod trace;
