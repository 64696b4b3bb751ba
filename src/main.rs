//! The `cloudrun-observability` binary: parses the command line and starts
//! the service or the emulator. Everything else lives in the library.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cloudrun_observability::config::Config;
use cloudrun_observability::emulator::alerting::AlertingConfig;
use cloudrun_observability::emulator::filter_check::check_filters;
use cloudrun_observability::emulator::log_store::LogSource;
use cloudrun_observability::emulator::terraform::VariableInputs;
use cloudrun_observability::emulator::time_scale::TimeScale;
use cloudrun_observability::emulator::{Emulator, EmulatorConfig};
use cloudrun_observability::loadgen::{self, LoadgenConfig};

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

// Parsed once at start-up: a large variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
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
        /// Evaluate the log-based metrics, uptime checks and alert policies
        /// of this Terraform directory (e.g. `terraform`) against what the
        /// emulator receives.
        #[arg(long, value_name = "DIR")]
        terraform: Option<PathBuf>,
        /// A `.tfvars` file for the Terraform variables.
        #[arg(long, value_name = "FILE", requires = "terraform")]
        var_file: Option<PathBuf>,
        /// `NAME=VALUE`, as `terraform -var`; repeatable, wins over --var-file.
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var, requires = "terraform")]
        vars: Vec<(String, hcl::Value)>,
        /// Run monitoring time this many times faster: with 60 a 5-minute
        /// alert condition holds after 5 s and a 60 s uptime check probes
        /// every second. Printed at start-up.
        #[arg(long, default_value = "1", value_name = "FACTOR")]
        time_scale: TimeScale,
        /// The project the service writes its metrics to (`local` unless it
        /// has GOOGLE_CLOUD_PROJECT); alert policies are evaluated there.
        #[arg(long, default_value = "local")]
        project: String,
        /// The local service's URL, probed by the uptime checks in place of
        /// the Cloud Run URL (e.g. http://127.0.0.1:8080).
        #[arg(long, value_name = "URL", requires = "terraform")]
        service_url: Option<reqwest::Url>,
        /// The Cloud Run service name the log lines read from stdin are
        /// attributed to (their `resource.labels.service_name`).
        #[arg(long, value_name = "NAME")]
        log_service: Option<String>,
    },
    /// Send realistic traffic (visitors with session cookies, catalog reads,
    /// orders, faults) and print requests, status counts and latencies.
    Loadgen {
        /// Base URL of the service.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// Requests started per second.
        #[arg(long, default_value_t = 20.0)]
        rps: f64,
        /// How long: `90` (seconds), `90s`, `2m`, `500ms`.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Share of requests sent to /api/faults/error (0.0 to 1.0).
        #[arg(long, default_value_t = 0.0)]
        errors: f64,
        /// Send a tenth of the requests to /api/faults/slow?ms=N (0: none).
        #[arg(long, default_value_t = 0)]
        slow_ms: u64,
        /// Distinct visitors (session cookies).
        #[arg(long, default_value_t = 20)]
        visitors: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Check filters with the emulator's parsers: reads JSON lines
    /// {resource, attribute, language, filter} from stdin, as
    /// `infra-check/checks.py filters terraform` prints them.
    CheckFilters,
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
            terraform,
            var_file,
            vars,
            time_scale,
            project,
            service_url,
            log_service,
        } => {
            let alerting = terraform.map(|terraform_dir| AlertingConfig {
                terraform_dir,
                inputs: VariableInputs {
                    var_file,
                    overrides: vars,
                },
                time_scale,
                project,
                service_url,
            });
            let mut config = EmulatorConfig {
                host,
                port,
                max_spans,
                max_points,
                alerting,
                ..EmulatorConfig::default()
            };
            if let Some(service_name) = log_service {
                config.log_source = LogSource::local(&service_name);
            }
            Emulator::run_until_signal(config, logs.is_some()).await?;
        }
        Command::Loadgen {
            target,
            rps,
            duration,
            errors,
            slow_ms,
            visitors,
            quiet,
        } => {
            let summary = loadgen::run(LoadgenConfig {
                target,
                rps,
                duration,
                error_share: errors,
                slow_ms,
                visitors,
                progress: !quiet,
            })
            .await?;
            println!("{}", summary.report());
        }
        Command::CheckFilters => {
            let report = check_filters(std::io::stdin().lock())?;
            for skipped in &report.skipped {
                println!("skipped (an SLO selector, not a time-series filter): {skipped}");
            }
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
        }
    }
    Ok(())
}

/// `NAME=VALUE` as `terraform -var` takes it: numbers and booleans are
/// typed, anything else is a string.
fn parse_var(text: &str) -> Result<(String, hcl::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let value = match value {
        "true" => hcl::Value::Bool(true),
        "false" => hcl::Value::Bool(false),
        _ => match value.parse::<f64>() {
            Ok(number) if number.is_finite() => hcl::Value::from(number),
            _ => hcl::Value::String(value.to_owned()),
        },
    };
    Ok((name.trim().to_owned(), value))
}

/// `90`, `90s`, `2m`, `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 2m or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s or m"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}
