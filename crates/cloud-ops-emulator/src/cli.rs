//! The emulator's command line, as `clap` arguments that a binary flattens
//! into its own CLI (`cloudrun-observability emulator ...`), and the one
//! place an [`AlertingConfig`] is built from user input.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::alerting::AlertingConfig;
use crate::logging::store::LogSource;
use crate::terraform::VariableInputs;
use crate::time::scale::TimeScale;
use crate::EmulatorConfig;

const MIB: usize = 1024 * 1024;

/// Run the local Cloud Trace and Cloud Monitoring emulator.
///
/// Point a service at it with CLOUD_OPS_EMULATOR_HOST=HOST:PORT.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on; the emulator has no authentication, so
    /// keep it on loopback unless you mean otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port for gRPC (HTTP/2) and the web console (HTTP/1).
    #[arg(long, default_value_t = 8085)]
    pub port: u16,
    /// Spans kept in memory; the oldest are dropped beyond.
    #[arg(long, default_value_t = EmulatorConfig::default().max_spans)]
    pub max_spans: usize,
    /// Metric points kept in memory; the oldest are dropped beyond.
    #[arg(long, default_value_t = EmulatorConfig::default().max_points)]
    pub max_points: usize,
    /// Memory for spans, in MiB (estimated); the oldest are dropped beyond.
    #[arg(long, value_name = "MIB", default_value_t = EmulatorConfig::default().max_span_bytes / MIB)]
    pub max_span_mib: usize,
    /// Memory for metric series and points, in MiB (estimated); the oldest
    /// points, and series left without any, are dropped beyond.
    #[arg(long, value_name = "MIB", default_value_t = EmulatorConfig::default().max_metric_bytes / MIB)]
    pub max_metric_mib: usize,
    /// Memory for log entries, in MiB (estimated from the parsed entries,
    /// not their lines); the oldest are dropped beyond.
    #[arg(long, value_name = "MIB", default_value_t = EmulatorConfig::default().max_log_bytes / MIB)]
    pub max_log_mib: usize,
    /// `-`: read a service's stdout log lines from stdin and show them in
    /// the console (`cloudrun-observability serve | cloudrun-observability emulator --logs -`).
    #[arg(long, value_name = "-", value_parser = ["-"])]
    pub logs: Option<String>,
    /// Evaluate the log-based metrics, uptime checks and alert policies
    /// of this Terraform directory (e.g. `terraform`) against what the
    /// emulator receives.
    #[arg(long, value_name = "DIR")]
    pub terraform: Option<PathBuf>,
    /// A `.tfvars` file for the Terraform variables.
    #[arg(long, value_name = "FILE", requires = "terraform")]
    pub var_file: Option<PathBuf>,
    /// `NAME=VALUE`, as `terraform -var`; repeatable, wins over --var-file.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var, requires = "terraform")]
    pub vars: Vec<(String, hcl::Value)>,
    /// Run monitoring time this many times faster: with 60 a 5-minute
    /// alert condition holds after 5 s and a 60 s uptime check probes
    /// every second. Printed at start-up.
    #[arg(long, default_value = "1", value_name = "FACTOR")]
    pub time_scale: TimeScale,
    /// The project the service writes its metrics to (`local` unless it
    /// has GOOGLE_CLOUD_PROJECT); alert policies are evaluated there.
    #[arg(long, default_value = "local")]
    pub project: String,
    /// The local service's URL, probed by the uptime checks in place of
    /// the Cloud Run URL (e.g. http://127.0.0.1:8080).
    #[arg(long, value_name = "URL", requires = "terraform")]
    pub service_url: Option<reqwest::Url>,
    /// The Cloud Run service name the log lines read from stdin are
    /// attributed to (their `resource.labels.service_name`).
    #[arg(long, value_name = "NAME")]
    pub log_service: Option<String>,
    /// Also take OTLP on this port (OTLP/gRPC's standard one), so that
    /// OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 just works; 0: off.
    /// OTLP is always served on --port too. A taken port is a warning.
    #[arg(long, default_value_t = 4317, value_name = "PORT")]
    pub otlp_grpc_port: u16,
    /// Also take OTLP on this port (OTLP/HTTP's standard one); 0: off.
    #[arg(long, default_value_t = 4318, value_name = "PORT")]
    pub otlp_http_port: u16,
    /// The project of OTLP data whose resource has no `gcp.project_id`
    /// attribute. Without it such data is rejected, as Google rejects it.
    #[arg(long, value_name = "PROJECT")]
    pub otlp_project: Option<String>,
}

impl EmulatorArgs {
    /// The configuration these arguments ask for.
    pub fn config(&self) -> EmulatorConfig {
        let alerting = self.terraform.clone().map(|terraform_dir| {
            AlertingConfig::new(
                terraform_dir,
                VariableInputs {
                    var_file: self.var_file.clone(),
                    overrides: self.vars.clone(),
                },
                self.time_scale,
                self.project.clone(),
            )
            .with_service_url(self.service_url.clone())
        });
        let mut config = EmulatorConfig {
            host: self.host,
            port: self.port,
            max_spans: self.max_spans,
            max_points: self.max_points,
            max_span_bytes: self.max_span_mib.saturating_mul(MIB),
            max_metric_bytes: self.max_metric_mib.saturating_mul(MIB),
            max_log_bytes: self.max_log_mib.saturating_mul(MIB),
            alerting,
            otlp_grpc_port: Some(self.otlp_grpc_port).filter(|p| *p != 0),
            otlp_http_port: Some(self.otlp_http_port).filter(|p| *p != 0),
            otlp_default_project: self.otlp_project.clone(),
            ..EmulatorConfig::default()
        };
        if let Some(service_name) = &self.log_service {
            config.log_source = LogSource::local(service_name);
        }
        config
    }

    /// Whether stdin carries a service's log lines (`--logs -`).
    pub fn logs_from_stdin(&self) -> bool {
        self.logs.is_some()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_variables_are_typed_as_terraform_types_them() {
        assert_eq!(parse_var("x=3").unwrap().1, hcl::Value::from(3.0));
        assert_eq!(parse_var("x=true").unwrap().1, hcl::Value::Bool(true));
        assert_eq!(
            parse_var(" x =a=b").unwrap(),
            ("x".to_owned(), hcl::Value::String("a=b".into()))
        );
        assert!(parse_var("novalue").is_err());
    }
}
