//! The `cloudrun-observability` binary: parses the command line and starts
//! the service, the emulator or the load generator. Everything else lives in
//! the libraries.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cloud_ops_emulator::terraform::check_filters::check_filters;
use cloud_ops_emulator::{Emulator, EmulatorArgs};
use cloudrun_observability::config::Config;
use cloudrun_observability::loadgen::{self, LoadgenArgs};

/// An observable bookshop API for Google Cloud Run.
///
/// Configuration comes from the environment (see the README's table):
/// PORT, GOOGLE_CLOUD_PROJECT, CLOUD_OPS_EMULATOR_HOST, DOWNSTREAM_URL,
/// PAYMENT_FAILURE_RATE, ENABLE_FAULT_ROUTES, TELEMETRY, LOG_FORMAT,
/// RUST_LOG, OTEL_* and on Cloud Run K_SERVICE, K_REVISION, K_CONFIGURATION.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API on 0.0.0.0:$PORT (the default command).
    Serve,
    /// Run the local Cloud Trace and Cloud Monitoring emulator.
    ///
    /// Point a service at it with CLOUD_OPS_EMULATOR_HOST=HOST:PORT.
    Emulator(Box<EmulatorArgs>),
    /// Send realistic traffic (visitors with session cookies, catalog reads,
    /// orders, faults) and print requests, status counts and latencies.
    Loadgen(LoadgenArgs),
    /// Check filters with the emulator's parsers: reads JSON lines
    /// {resource, attribute, language, filter} from stdin, as
    /// `infra-check/checks.py filters terraform` prints them.
    CheckFilters,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::from_env().context("invalid configuration")?;
            cloudrun_observability::run_service(config).await?;
        }
        Command::Emulator(args) => {
            Emulator::run_until_signal(args.config(), args.logs_from_stdin()).await?;
        }
        Command::Loadgen(args) => {
            let summary = loadgen::run(args.into()).await?;
            println!("{}", summary.report());
        }
        Command::CheckFilters => check_filter_lines()?,
    }
    Ok(())
}

/// Prints what `check-filters` found; exits 1 when a filter failed.
fn check_filter_lines() -> anyhow::Result<()> {
    let report = check_filters(std::io::stdin().lock())?;
    for failure in &report.failures {
        eprintln!("FAILED: {failure}");
    }
    println!(
        "filters: {} parsed, {} failed",
        report.checked,
        report.failures.len()
    );
    if !report.failures.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
