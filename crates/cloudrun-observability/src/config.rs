//! Configuration read from the environment, following the Cloud Run
//! container contract.
//!
//! Cloud Run tells a container who it is through `PORT`, `K_SERVICE`,
//! `K_REVISION` and `K_CONFIGURATION`; everything else this service needs is
//! an environment variable too, so the same image runs locally, in tests and
//! on Cloud Run. Each variable is documented in the README's configuration
//! table. Reading goes through a lookup function so tests can pass their own
//! environment without touching the process's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

/// Everything the service reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen: `0.0.0.0:$PORT` (default 8080) as Cloud Run expects.
    pub listen_addr: SocketAddr,
    /// `GOOGLE_CLOUD_PROJECT`: `None` locally, where the embedded emulator
    /// stands in for Google.
    pub project_id: Option<String>,
    /// `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION`: set only on Cloud Run.
    pub cloud_run: Option<CloudRunIdentity>,
    /// `DOWNSTREAM_URL`: where orders reserve stock and charge payments.
    /// `None` means this process itself.
    pub downstream_url: Option<String>,
    /// `PAYMENT_FAILURE_RATE`: the share of payments that fail, 0.0 to 1.0.
    pub payment_failure_rate: f64,
    /// `ENABLE_FAULT_ROUTES`: serve `/api/faults/*`. Default: on locally,
    /// off on Cloud Run.
    pub enable_fault_routes: bool,
    /// `TELEMETRY=off` turns off logs, spans and metrics (for benchmarks).
    pub telemetry_enabled: bool,
    /// `LOG_FORMAT`: `json` (Cloud Logging, the default) or `pretty`.
    pub log_format: LogFormat,
    /// `RUST_LOG`: the log filter; `None` means the default.
    pub log_filter: Option<String>,
    /// `OTEL_SERVICE_NAME`: the service name when not on Cloud Run.
    pub otel_service_name: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the share of traces sampled when the
    /// caller did not sample (0.0 to 1.0, default 1.0).
    pub trace_sampling_ratio: f64,
    /// `CLOUD_OPS_EMULATOR_HOST`: send traces and metrics to the emulator at
    /// this `host:port`, in plaintext, without credentials.
    pub emulator_host: Option<String>,
    /// `GCE_METADATA_HOST`: where the metadata server is (tests run a
    /// stand-in); on Cloud Run, `metadata.google.internal`.
    pub metadata_host: Option<String>,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: the most finished spans waiting for export
    /// (default 2048); past it, spans are dropped and counted.
    pub span_queue_size: usize,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, as the OpenTelemetry
    /// spec says): how often metrics are exported. Default 60 s (5 s toward
    /// the embedded emulator); never below [`MIN_METRIC_EXPORT_INTERVAL`]
    /// toward Google, nor below the embedded emulator's M8 limit at its time
    /// scale.
    pub metric_export_interval: MetricExportInterval,
    /// `EMULATOR_TERRAFORM_DIR`: with the embedded emulator, evaluate this
    /// Terraform directory's log-based metrics, uptime checks and alert
    /// policies (e.g. `terraform`). Unset: no alerting.
    pub emulator_terraform_dir: Option<std::path::PathBuf>,
    /// `EMULATOR_TIME_SCALE`: how much faster the embedded emulator runs
    /// monitoring time (default 1, real time).
    pub emulator_time_scale: cloud_ops_emulator::time::scale::TimeScale,
    /// `OTEL_TRACES_EXPORTER`: `otlp` (the default) or `gcp_trace`.
    pub traces_exporter: TracesExporter,
    /// `OTEL_METRICS_EXPORTER`: `gcp_monitoring` (the default) or `otlp`.
    pub metrics_exporter: MetricsExporter,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`:
    /// where OTLP spans go instead of the backend's own endpoint.
    pub otlp_traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_metrics_endpoint: Option<String>,
    /// `FORWARDED_FOR_TRUSTED_HOPS`: how many entries at the right end of
    /// `X-Forwarded-For` trusted proxies wrote; the client's address is the
    /// last of them. Default [`DEFAULT_FORWARDED_FOR_TRUSTED_HOPS`] (Cloud
    /// Run's front end); 2 behind an external Application Load Balancer; 0
    /// logs the connection's peer.
    pub forwarded_for_trusted_hops: usize,
    /// `HEADER_READ_TIMEOUT_MS`: how long an HTTP/1 connection may take to
    /// send a request's head, idle keep-alive time included, and an HTTP/2
    /// connection may go without a request in flight (default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_MS`: how long a request may take to send its body
    /// once its head arrived (default [`DEFAULT_BODY_READ_TIMEOUT`]).
    pub body_read_timeout: Duration,
}

/// Which exporter sends the spans (`OTEL_TRACES_EXPORTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracesExporter {
    /// OTLP over gRPC: Google's Telemetry API (`telemetry.googleapis.com`),
    /// an emulator, or any OTLP endpoint.
    Otlp,
    /// The Cloud Trace v2 API (`BatchWriteSpans`), the exporter before OTLP.
    GcpTrace,
}

/// Which exporter sends the metric points (`OTEL_METRICS_EXPORTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsExporter {
    /// The Cloud Monitoring v3 API (`CreateTimeSeries`), as
    /// `workload.googleapis.com/*` on `generic_task`: what the alert policies
    /// and dashboards in `terraform/` read.
    GcpMonitoring,
    /// OTLP over gRPC: Google stores the points as Managed Service for
    /// Prometheus series, `prometheus.googleapis.com/*` on `prometheus_target`.
    Otlp,
}

/// The shortest export interval: Cloud Monitoring accepts one point per
/// series every 5 s (rule M8).
pub const MIN_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The shortest export interval to an emulator, which enforces M8 itself,
/// divided by its time scale when one runs monitoring faster
/// (`emulator --time-scale 60` accepts a point every 83 ms).
pub const MIN_EMULATOR_METRIC_EXPORT_INTERVAL: Duration = Duration::from_millis(100);

/// The metadata server's name on Google Cloud.
pub const METADATA_SERVER: &str = "metadata.google.internal";

/// The default export interval, the OpenTelemetry spec's.
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The default toward the embedded emulator: a developer's own requests
/// show on the console's charts within seconds, not a minute.
pub const DEFAULT_EMBEDDED_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The metric export interval, and what was asked for when that was too
/// short (so telemetry can warn once logging is up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricExportInterval {
    pub interval: Duration,
    /// The requested interval when it was raised to the minimum.
    pub raised_from: Option<Duration>,
}

impl Default for MetricExportInterval {
    fn default() -> Self {
        Self {
            interval: DEFAULT_METRIC_EXPORT_INTERVAL,
            raised_from: None,
        }
    }
}

/// Where traces and metrics go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelemetryBackend {
    /// Google's Cloud Trace and Cloud Monitoring, with Application Default
    /// Credentials.
    Google,
    /// An emulator at `host:port` (`CLOUD_OPS_EMULATOR_HOST`).
    Emulator(String),
    /// No project and no emulator configured: the service starts its own
    /// emulator on loopback.
    EmbeddedEmulator,
}

/// Who this instance is on Cloud Run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudRunIdentity {
    pub service: String,
    pub revision: String,
    pub configuration: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A variable that is set but cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Finished spans waiting for export, at most, by default: OpenTelemetry's
/// default, a few MB at a few hundred bytes a span.
pub const DEFAULT_SPAN_QUEUE_SIZE: usize = 2048;

/// Cloud Run's front end appends the address it received the request from
/// to `X-Forwarded-For` and keeps what the client sent before it: the last
/// entry is the client's.
pub const DEFAULT_FORWARDED_FOR_TRUSTED_HOPS: usize = 1;

/// Longer than the 600 s Google's load balancers keep an idle connection
/// to a backend (their fixed "backend keepalive timeout"; whether Cloud
/// Run's own front end reuses connections as long is unverified, see
/// `docs/reliability.md`): the header timeout also closes idle keep-alive
/// connections, and closing one the front end is about to reuse fails that
/// request. Cloud Run's front end forwards a request only once it has its
/// whole head, so a slow client cannot hold the container's connections.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(620);

/// A 64 KiB body (the largest accepted) in 30 s is 2 KiB/s: slower than any
/// real client, well within Cloud Run's 300 s default request timeout.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// More trusted proxies than any real chain has: a typo, not a setting.
const MAX_FORWARDED_FOR_TRUSTED_HOPS: usize = 16;

/// The service name used when not on Cloud Run.
pub const LOCAL_SERVICE_NAME: &str = "cloudrun-observability";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let port = match var("PORT") {
            Some(value) => value
                .trim()
                .parse::<u16>()
                .map_err(|_| ConfigError::Invalid {
                    name: "PORT",
                    value,
                    reason: "expected a port number from 0 to 65535",
                })?,
            None => 8080,
        };
        let cloud_run = var("K_SERVICE").map(|service| CloudRunIdentity {
            service,
            revision: var("K_REVISION").unwrap_or_default(),
            configuration: var("K_CONFIGURATION").unwrap_or_default(),
        });
        let payment_failure_rate =
            parse_ratio("PAYMENT_FAILURE_RATE", var("PAYMENT_FAILURE_RATE"), 0.02)?;
        let enable_fault_routes = match var("ENABLE_FAULT_ROUTES") {
            Some(value) => parse_bool("ENABLE_FAULT_ROUTES", value)?,
            None => cloud_run.is_none(),
        };
        let telemetry_enabled = match var("TELEMETRY") {
            Some(value) => parse_bool("TELEMETRY", value)?,
            None => true,
        };
        let log_format = match var("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    value: other.to_owned(),
                    reason: "expected json or pretty",
                })
            }
        };
        let project_id = var("GOOGLE_CLOUD_PROJECT");
        let emulator_host = var("CLOUD_OPS_EMULATOR_HOST").map(|host| host.trim().to_owned());
        let emulator_time_scale = match var("EMULATOR_TIME_SCALE") {
            Some(value) => value.parse().map_err(|_| ConfigError::Invalid {
                name: "EMULATOR_TIME_SCALE",
                value,
                reason: "expected a factor from 1 to 3600 (1 is real time)",
            })?,
            None => cloud_ops_emulator::time::scale::TimeScale::REAL_TIME,
        };
        let export_limits = match (&project_id, &emulator_host) {
            (Some(_), None) => (DEFAULT_METRIC_EXPORT_INTERVAL, MIN_METRIC_EXPORT_INTERVAL),
            // An emulator elsewhere may run faster than real time: it
            // enforces M8 itself, at its own scale.
            (_, Some(_)) => (
                DEFAULT_METRIC_EXPORT_INTERVAL,
                MIN_EMULATOR_METRIC_EXPORT_INTERVAL,
            ),
            // The embedded emulator's scale is known: its M8 limit, scaled.
            (None, None) => (
                DEFAULT_EMBEDDED_METRIC_EXPORT_INTERVAL,
                emulator_time_scale
                    .scale(MIN_METRIC_EXPORT_INTERVAL)
                    .max(MIN_EMULATOR_METRIC_EXPORT_INTERVAL),
            ),
        };
        let downstream_url = var("DOWNSTREAM_URL")
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .map(|url| validate_url("DOWNSTREAM_URL", url))
            .transpose()?;
        Ok(Self {
            listen_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            project_id,
            cloud_run,
            downstream_url,
            payment_failure_rate,
            enable_fault_routes,
            telemetry_enabled,
            log_format,
            log_filter: var("RUST_LOG"),
            otel_service_name: var("OTEL_SERVICE_NAME"),
            trace_sampling_ratio: parse_ratio(
                "OTEL_TRACES_SAMPLER_ARG",
                var("OTEL_TRACES_SAMPLER_ARG"),
                1.0,
            )?,
            emulator_host,
            metadata_host: var("GCE_METADATA_HOST").map(|host| host.trim().to_owned()),
            span_queue_size: match var("OTEL_BSP_MAX_QUEUE_SIZE") {
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(size) if size > 0 => size,
                    _ => {
                        return Err(ConfigError::Invalid {
                            name: "OTEL_BSP_MAX_QUEUE_SIZE",
                            value,
                            reason: "expected a positive number of spans",
                        })
                    }
                },
                None => DEFAULT_SPAN_QUEUE_SIZE,
            },
            emulator_terraform_dir: var("EMULATOR_TERRAFORM_DIR").map(Into::into),
            emulator_time_scale,
            metric_export_interval: parse_export_interval(
                var("OTEL_METRIC_EXPORT_INTERVAL"),
                export_limits,
            )?,
            traces_exporter: match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
                None | Some("otlp") => TracesExporter::Otlp,
                Some("gcp_trace") => TracesExporter::GcpTrace,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "OTEL_TRACES_EXPORTER",
                        value: other.to_owned(),
                        reason: "expected otlp or gcp_trace",
                    })
                }
            },
            metrics_exporter: match var("OTEL_METRICS_EXPORTER").as_deref().map(str::trim) {
                None | Some("gcp_monitoring") => MetricsExporter::GcpMonitoring,
                Some("otlp") => MetricsExporter::Otlp,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "OTEL_METRICS_EXPORTER",
                        value: other.to_owned(),
                        reason: "expected gcp_monitoring or otlp",
                    })
                }
            },
            otlp_traces_endpoint: otlp_endpoint(&var, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?,
            otlp_metrics_endpoint: otlp_endpoint(&var, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")?,
            forwarded_for_trusted_hops: match var("FORWARDED_FOR_TRUSTED_HOPS") {
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(hops) if hops <= MAX_FORWARDED_FOR_TRUSTED_HOPS => hops,
                    _ => {
                        return Err(ConfigError::Invalid {
                            name: "FORWARDED_FOR_TRUSTED_HOPS",
                            value,
                            reason: "expected a number of trusted proxies from 0 to 16 (1 on Cloud Run, 2 behind an external Application Load Balancer)",
                        })
                    }
                },
                None => DEFAULT_FORWARDED_FOR_TRUSTED_HOPS,
            },
            header_read_timeout: parse_timeout(
                "HEADER_READ_TIMEOUT_MS",
                var("HEADER_READ_TIMEOUT_MS"),
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            body_read_timeout: parse_timeout(
                "BODY_READ_TIMEOUT_MS",
                var("BODY_READ_TIMEOUT_MS"),
                DEFAULT_BODY_READ_TIMEOUT,
            )?,
        })
    }

    /// The service's name: `K_SERVICE` on Cloud Run, else
    /// `OTEL_SERVICE_NAME`, else a fixed local name.
    pub fn service_name(&self) -> &str {
        match (&self.cloud_run, &self.otel_service_name) {
            (Some(run), _) => &run.service,
            (None, Some(name)) => name,
            (None, None) => LOCAL_SERVICE_NAME,
        }
    }

    /// Where traces and metrics go: the emulator when
    /// `CLOUD_OPS_EMULATOR_HOST` is set, Google when a project is, else an
    /// emulator of the service's own.
    pub fn telemetry_backend(&self) -> TelemetryBackend {
        match (&self.emulator_host, &self.project_id) {
            (Some(host), _) => TelemetryBackend::Emulator(host.clone()),
            (None, Some(_)) => TelemetryBackend::Google,
            (None, None) => TelemetryBackend::EmbeddedEmulator,
        }
    }

    /// The metadata server to ask, `host[:port]`: `GCE_METADATA_HOST`, else
    /// Cloud Run's own when on Cloud Run; `None` elsewhere.
    pub fn metadata_server(&self) -> Option<String> {
        match (&self.metadata_host, &self.cloud_run) {
            (Some(host), _) => Some(host.clone()),
            (None, Some(_)) => Some(METADATA_SERVER.to_owned()),
            (None, None) => None,
        }
    }

    /// The deployed revision on Cloud Run, else the crate's version.
    pub fn service_version(&self) -> &str {
        match &self.cloud_run {
            Some(run) if !run.revision.is_empty() => &run.revision,
            _ => env!("CARGO_PKG_VERSION"),
        }
    }

    /// The project named in trace ids of log lines; `local` without one.
    pub fn trace_project(&self) -> &str {
        self.project_id.as_deref().unwrap_or("local")
    }
}

/// The OTLP endpoint of one signal: its own variable, else the general
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; an `http://` or `https://` URL, used as it
/// is (gRPC appends no path). Checks the protocol variables on the way: only
/// `grpc` is served.
fn otlp_endpoint(
    var: &impl Fn(&str) -> Option<String>,
    signal_variable: &'static str,
) -> Result<Option<String>, ConfigError> {
    let protocol_variable = match signal_variable {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        _ => "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    };
    for name in ["OTEL_EXPORTER_OTLP_PROTOCOL", protocol_variable] {
        if let Some(protocol) = var(name) {
            if protocol.trim() != "grpc" {
                return Err(ConfigError::Invalid {
                    name,
                    value: protocol,
                    reason: "only grpc is supported (Google recommends OTLP/gRPC for export from an SDK: its per-call credentials carry a fresh OAuth token)",
                });
            }
        }
    }
    let (name, value) = match (var(signal_variable), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        (Some(value), _) => (signal_variable, value),
        (None, Some(value)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", value),
        (None, None) => return Ok(None),
    };
    validate_url(name, value.trim().to_owned()).map(Some)
}

/// A number from 0.0 to 1.0, or `default` when unset.
fn parse_ratio(
    name: &'static str,
    value: Option<String>,
    default: f64,
) -> Result<f64, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(ConfigError::Invalid {
            name,
            value,
            reason: "expected a number from 0.0 to 1.0",
        }),
    }
}

/// Milliseconds, raised to the minimum when shorter; the default when unset.
fn parse_export_interval(
    value: Option<String>,
    (default, minimum): (Duration, Duration),
) -> Result<MetricExportInterval, ConfigError> {
    let Some(value) = value else {
        return Ok(MetricExportInterval {
            interval: default,
            raised_from: None,
        });
    };
    let millis = value
        .trim()
        .parse::<u64>()
        .map_err(|_| ConfigError::Invalid {
            name: "OTEL_METRIC_EXPORT_INTERVAL",
            value,
            reason: "expected a number of milliseconds",
        })?;
    let requested = Duration::from_millis(millis);
    Ok(if requested < minimum {
        MetricExportInterval {
            interval: minimum,
            raised_from: Some(requested),
        }
    } else {
        MetricExportInterval {
            interval: requested,
            raised_from: None,
        }
    })
}

/// A positive number of milliseconds, or `default` when unset.
fn parse_timeout(
    name: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(millis) if millis > 0 => Ok(Duration::from_millis(millis)),
        _ => Err(ConfigError::Invalid {
            name,
            value,
            reason: "expected a positive number of milliseconds",
        }),
    }
}

/// Accepts the spellings people write in environment files.
fn parse_bool(name: &'static str, value: String) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            value,
            reason: "expected true or false",
        }),
    }
}

fn validate_url(name: &'static str, url: String) -> Result<String, ConfigError> {
    match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            Ok(url)
        }
        _ => Err(ConfigError::Invalid {
            name,
            value: url,
            reason: "expected an http:// or https:// URL",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_suit_a_local_run() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen_addr.port(), 8080);
        assert!(config.enable_fault_routes);
        assert!(config.telemetry_enabled);
        assert_eq!(config.payment_failure_rate, 0.02);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.service_name(), LOCAL_SERVICE_NAME);
        assert_eq!(config.trace_project(), "local");
    }

    #[test]
    fn on_cloud_run_fault_routes_are_off_unless_enabled() {
        let on_run =
            config(&[("K_SERVICE", "frontend"), ("K_REVISION", "frontend-00001")]).unwrap();
        assert!(!on_run.enable_fault_routes);
        assert_eq!(on_run.service_name(), "frontend");
        assert_eq!(on_run.service_version(), "frontend-00001");
        let enabled =
            config(&[("K_SERVICE", "frontend"), ("ENABLE_FAULT_ROUTES", "true")]).unwrap();
        assert!(enabled.enable_fault_routes);
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        let error = config(&[("PAYMENT_FAILURE_RATE", "2")]).unwrap_err();
        assert!(error.to_string().contains("PAYMENT_FAILURE_RATE"));
        assert!(config(&[("PORT", "http")]).is_err());
        assert!(config(&[("TELEMETRY", "maybe")]).is_err());
        assert!(config(&[("LOG_FORMAT", "xml")]).is_err());
        assert!(config(&[("DOWNSTREAM_URL", "backend")]).is_err());
    }

    #[test]
    fn the_telemetry_backend_follows_emulator_host_then_project() {
        assert_eq!(
            config(&[]).unwrap().telemetry_backend(),
            TelemetryBackend::EmbeddedEmulator
        );
        assert_eq!(
            config(&[("GOOGLE_CLOUD_PROJECT", "p")])
                .unwrap()
                .telemetry_backend(),
            TelemetryBackend::Google
        );
        assert_eq!(
            config(&[
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("CLOUD_OPS_EMULATOR_HOST", "127.0.0.1:8085")
            ])
            .unwrap()
            .telemetry_backend(),
            TelemetryBackend::Emulator("127.0.0.1:8085".to_owned())
        );
        assert!(config(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).is_err());
        assert_eq!(
            config(&[("OTEL_SERVICE_NAME", "shop")])
                .unwrap()
                .service_name(),
            "shop"
        );
    }

    #[test]
    fn metric_export_interval_is_milliseconds_and_never_below_5_s_for_google() {
        let interval = |value: &str| {
            config(&[
                ("OTEL_METRIC_EXPORT_INTERVAL", value),
                ("GOOGLE_CLOUD_PROJECT", "p"),
            ])
            .unwrap()
            .metric_export_interval
        };
        assert_eq!(
            config(&[("GOOGLE_CLOUD_PROJECT", "p")])
                .unwrap()
                .metric_export_interval
                .interval,
            Duration::from_secs(60)
        );
        assert_eq!(
            interval("15000"),
            MetricExportInterval {
                interval: Duration::from_secs(15),
                raised_from: None
            }
        );
        assert_eq!(
            interval("1000"),
            MetricExportInterval {
                interval: Duration::from_secs(5),
                raised_from: Some(Duration::from_secs(1))
            }
        );
        assert!(config(&[("OTEL_METRIC_EXPORT_INTERVAL", "60s")]).is_err());
        // An emulator checks M8 itself, possibly time-scaled: 250 ms is allowed there.
        let to_emulator = |value: &str| {
            config(&[
                ("OTEL_METRIC_EXPORT_INTERVAL", value),
                ("CLOUD_OPS_EMULATOR_HOST", "127.0.0.1:1"),
                ("GOOGLE_CLOUD_PROJECT", "p"),
            ])
            .unwrap()
            .metric_export_interval
        };
        assert_eq!(to_emulator("250").interval, Duration::from_millis(250));
        assert_eq!(to_emulator("10").interval, Duration::from_millis(100));
    }

    #[test]
    fn the_embedded_emulator_gets_points_every_5_s_and_never_faster_than_it_accepts() {
        let embedded = |env: &[(&str, &str)]| config(env).unwrap().metric_export_interval;
        assert_eq!(embedded(&[]).interval, Duration::from_secs(5));
        // At real time the emulator takes a point per series every 5 s (M8):
        // 1 s would have points rejected, so it is raised, with a warning.
        assert_eq!(
            embedded(&[("OTEL_METRIC_EXPORT_INTERVAL", "1000")]),
            MetricExportInterval {
                interval: Duration::from_secs(5),
                raised_from: Some(Duration::from_secs(1))
            }
        );
        // At 60x it takes one every 83 ms: 500 ms is fine.
        assert_eq!(
            embedded(&[
                ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
                ("EMULATOR_TIME_SCALE", "60")
            ])
            .interval,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn otlp_is_the_default_trace_exporter_and_cloud_monitoring_the_default_metric_one() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.traces_exporter, TracesExporter::Otlp);
        assert_eq!(defaults.metrics_exporter, MetricsExporter::GcpMonitoring);
        assert_eq!(defaults.otlp_traces_endpoint, None);
        let chosen = config(&[
            ("OTEL_TRACES_EXPORTER", "gcp_trace"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
        ])
        .unwrap();
        assert_eq!(chosen.traces_exporter, TracesExporter::GcpTrace);
        assert_eq!(chosen.metrics_exporter, MetricsExporter::Otlp);
        let error = config(&[("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "OTEL_TRACES_EXPORTER=\"zipkin\" is not valid: expected otlp or gcp_trace"
        );
        assert!(config(&[("OTEL_METRICS_EXPORTER", "prometheus")]).is_err());
    }

    #[test]
    fn the_signal_endpoint_wins_over_the_general_one() {
        let both = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://telemetry.googleapis.com",
            ),
        ])
        .unwrap();
        assert_eq!(
            both.otlp_traces_endpoint.as_deref(),
            Some("https://telemetry.googleapis.com")
        );
        assert_eq!(
            both.otlp_metrics_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert!(config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]).is_err());
    }

    #[test]
    fn only_the_grpc_protocol_is_accepted() {
        assert!(config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).is_ok());
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            let error = config(&[(name, "http/protobuf")]).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{name}=\"http/protobuf\" is not valid: only grpc")),
                "{message}"
            );
        }
    }

    #[test]
    fn forwarded_for_trusts_one_hop_unless_told_otherwise() {
        assert_eq!(config(&[]).unwrap().forwarded_for_trusted_hops, 1);
        let behind_lb = config(&[("FORWARDED_FOR_TRUSTED_HOPS", "2")]).unwrap();
        assert_eq!(behind_lb.forwarded_for_trusted_hops, 2);
        for bad in ["-1", "one", "17"] {
            let error = config(&[("FORWARDED_FOR_TRUSTED_HOPS", bad)]).unwrap_err();
            assert!(
                error.to_string().starts_with(&format!(
                    "FORWARDED_FOR_TRUSTED_HOPS=\"{bad}\" is not valid"
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn read_timeouts_are_milliseconds_with_defaults_for_cloud_run() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(620));
        assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
        let set = config(&[
            ("HEADER_READ_TIMEOUT_MS", "500"),
            ("BODY_READ_TIMEOUT_MS", "1500"),
        ])
        .unwrap();
        assert_eq!(set.header_read_timeout, Duration::from_millis(500));
        assert_eq!(set.body_read_timeout, Duration::from_millis(1500));
        for name in ["HEADER_READ_TIMEOUT_MS", "BODY_READ_TIMEOUT_MS"] {
            for bad in ["0", "10s", "-5"] {
                let error = config(&[(name, bad)]).unwrap_err();
                assert_eq!(
                    error.to_string(),
                    format!(
                        "{name}=\"{bad}\" is not valid: expected a positive number of milliseconds"
                    )
                );
            }
        }
    }

    #[test]
    fn downstream_url_loses_its_trailing_slash() {
        let config = config(&[("DOWNSTREAM_URL", "https://backend.example/")]).unwrap();
        assert_eq!(
            config.downstream_url.as_deref(),
            Some("https://backend.example")
        );
    }
}
