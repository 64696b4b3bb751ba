//! The `cloudrun-observability` binary: parses the command line and starts
//! the service or the emulator. Everything else lives in the library.

use std::net::IpAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cloudrun_observability::config::Config;
use cloudrun_observability::emulator::{Emulator, EmulatorConfig};

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
    Emulator {
        /// Address to listen on; the emulator has no authentication, so
        /// keep it on loopback unless you mean otherwise.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port for gRPC (HTTP/2) and the web console (HTTP/1).
        #[arg(long, default_value_t = 8085)]
        port: u16,
        /// Spans kept in memory; the oldest are dropped beyond.
        #[arg(long, default_value_t = EmulatorConfig::default().max_spans)]
        max_spans: usize,
        /// Metric points kept in memory; the oldest are dropped beyond.
        #[arg(long, default_value_t = EmulatorConfig::default().max_points)]
        max_points: usize,
        /// `-`: read a service's stdout log lines from stdin and show them in
        /// the console (`cloudrun-observability serve | cloudrun-observability emulator --logs -`).
        #[arg(long, value_name = "-", value_parser = ["-"])]
        logs: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::from_env().context("invalid configuration")?;
            cloudrun_observability::run_service(config).await?;
        }
        Command::Emulator {
            host,
            port,
            max_spans,
            max_points,
            logs,
        } => {
            let config = EmulatorConfig {
                host,
                port,
                max_spans,
                max_points,
                ..EmulatorConfig::default()
            };
            Emulator::run_until_signal(config, logs.is_some()).await?;
        }
    }
    Ok(())
}
