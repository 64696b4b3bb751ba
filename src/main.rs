//! The `cloudrun-observability` binary: parses the command line and starts
//! the service. Everything else lives in the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cloudrun_observability::config::Config;

/// An observable bookshop API for Google Cloud Run.
///
/// Configuration comes from the environment (see the README's table):
/// PORT, GOOGLE_CLOUD_PROJECT, DOWNSTREAM_URL, PAYMENT_FAILURE_RATE,
/// ENABLE_FAULT_ROUTES, TELEMETRY, LOG_FORMAT, RUST_LOG, and on Cloud Run
/// K_SERVICE, K_REVISION, K_CONFIGURATION.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::from_env().context("invalid configuration")?;
            cloudrun_observability::run_service(config).await?;
        }
    }
    Ok(())
}
