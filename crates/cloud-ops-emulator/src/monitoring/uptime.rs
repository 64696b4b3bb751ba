//! Uptime checks: the `google_monitoring_uptime_check_config` resources of
//! the project's Terraform, probed locally the way Google's checkers probe,
//! with their results written as Google writes them.
//!
//! [`UptimeCheck::from_terraform`] reads a check (rule U1: a period of 60,
//! 300, 600 or 900 s; a timeout of 1 to 60 s; an HTTP check on an
//! `uptime_url`). Every period, [`probe_forever`] sends the check's request
//! once from each checker location and writes, per location, on resource
//! `uptime_url {project_id, host}` with metric labels `check_id`,
//! `checker_location` and `checked_resource_id` (the host, as Google's own
//! series carry it):
//! - `monitoring.googleapis.com/uptime_check/check_passed`, GAUGE BOOL;
//! - `monitoring.googleapis.com/uptime_check/request_latency`, GAUGE DOUBLE
//!   in ms, for every request that got a response (none for a refused or
//!   timed-out one: there is no latency to report).
//!
//! Locally the checkers are not around the world: the locations are labels,
//! all probes leave from this machine. The target replaces the check's
//! scheme, host and port, since the service's Cloud Run URL stand-in is not
//! reachable (the service listens on 127.0.0.1:PORT); the path, method,
//! headers and accepted statuses come from the check.
//!
//! Time scale: the period is monitoring time and is divided by the
//! [`TimeScale`] (60 s at 60x probes every second). The timeout is divided
//! too, but never below 1 s (Google's own minimum; a shorter one would
//! report a healthy but busy local service as down) and never above the
//! check's own timeout. A probe that fails in any way writes `false`; it
//! never panics nor stops the loop.
//!
//! Why one file: reading a check from Terraform, probing, and writing its two
//! metrics are one feature with one set of types; a quarter of it is tests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gcloud_sdk::google::api::metric_descriptor::{MetricKind, ValueType};
use gcloud_sdk::google::api::{Metric, MetricDescriptor, MonitoredResource};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, Point, TimeInterval, TimeSeries, TypedValue,
};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::json::{as_f64, first_object, is_empty, scalar_text};
use crate::logging::metrics::string_label;
use crate::monitoring::store::MetricStore;
use crate::terraform::arguments::Arguments;
use crate::terraform::{ResourceInstance, TerraformModule};
use crate::time::scale::TimeScale;
use crate::time::timestamp::{from_nanos, now_nanos};

/// Whether a location's probe passed, GAUGE BOOL.
pub const CHECK_PASSED: &str = "monitoring.googleapis.com/uptime_check/check_passed";
/// A probe's request latency in ms, GAUGE DOUBLE.
pub const REQUEST_LATENCY: &str = "monitoring.googleapis.com/uptime_check/request_latency";
/// U1: the only periods Google accepts, in seconds.
pub const ALLOWED_PERIODS_SECONDS: [u64; 4] = [60, 300, 600, 900];
/// The provider's default period.
const DEFAULT_PERIOD_SECONDS: u64 = 300;
/// Google's bounds on a check's timeout.
const TIMEOUT_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=60.0;
/// Google requires the selected regions to hold at least this many locations.
const MIN_LOCATIONS: usize = 3;
/// The least local probe timeout, whatever the time scale.
const MIN_LOCAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Checker locations (`checker_location` label values, as Google's series
/// carry them) of each `selected_regions` value.
const REGIONS: [(&str, &[&str]); 8] = [
    ("USA", &["usa-oregon", "usa-iowa", "usa-virginia"]),
    ("USA_OREGON", &["usa-oregon"]),
    ("USA_IOWA", &["usa-iowa"]),
    ("USA_VIRGINIA", &["usa-virginia"]),
    ("EUROPE", &["eur-belgium"]),
    ("SOUTH_AMERICA", &["sa-brazil-sao_paulo"]),
    ("ASIA_PACIFIC", &["apac-singapore"]),
    ("REGION_UNSPECIFIED", ALL_LOCATIONS),
];

/// Every location: what a check without `selected_regions` runs from.
pub const ALL_LOCATIONS: &[&str] = &[
    "usa-oregon",
    "usa-iowa",
    "usa-virginia",
    "eur-belgium",
    "apac-singapore",
    "sa-brazil-sao_paulo",
];

/// Arguments the emulator cannot honour; a check using them is refused
/// rather than probed differently from Google.
const UNSUPPORTED: [&str; 8] = [
    "tcp_check",
    "resource_group",
    "synthetic_monitor",
    "content_matchers",
    "ping_config",
    "http_check.auth_info",
    "http_check.service_agent_authentication",
    "http_check.body",
];

/// Why an uptime check cannot be evaluated: an argument it cannot take.
pub use crate::terraform::arguments::ArgumentError as UptimeError;

/// Which response statuses pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatcher {
    /// Exactly this status.
    Value(u16),
    /// Any status of this class: 2 for `STATUS_CLASS_2XX`.
    Class(u16),
    /// `STATUS_CLASS_ANY`.
    Any,
}

impl StatusMatcher {
    pub fn accepts(self, status: u16) -> bool {
        match self {
            Self::Value(value) => status == value,
            Self::Class(class) => status / 100 == class,
            Self::Any => true,
        }
    }
}

/// One uptime check, as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct UptimeCheck {
    /// The Terraform address, for messages.
    pub address: String,
    /// The `check_id` label: the resource's `uptime_check_id` (its name in the emulator).
    pub check_id: String,
    pub display_name: String,
    /// Monitoring time between two probes.
    pub period: Duration,
    /// How long a probe may take, in monitoring time.
    pub timeout: Duration,
    pub path: String,
    pub port: u16,
    pub use_ssl: bool,
    pub method: Method,
    pub headers: Vec<(String, String)>,
    pub accepted: Vec<StatusMatcher>,
    /// The `uptime_url` resource's labels.
    pub project_id: String,
    pub host: String,
    /// Checker locations, in a stable order.
    pub locations: Vec<&'static str>,
}

impl UptimeCheck {
    /// Every `google_monitoring_uptime_check_config` of `module`.
    ///
    /// # Errors
    /// The first check that cannot be evaluated.
    pub fn all_from(module: &TerraformModule) -> Result<Vec<Self>, UptimeError> {
        module
            .of_type("google_monitoring_uptime_check_config")
            .map(Self::from_terraform)
            .collect()
    }

    /// A check from its evaluated Terraform resource.
    ///
    /// # Errors
    /// A period or timeout Google refuses, a missing or invalid argument,
    /// too few checker locations, or something the emulator cannot probe
    /// (TCP checks, content matchers, authentication, other resource types).
    pub fn from_terraform(resource: &ResourceInstance) -> Result<Self, UptimeError> {
        let address = resource.address();
        let json = resource.to_json();
        let fields = Arguments::new(&address, &json);
        refuse_unsupported(&fields)?;
        let http = fields
            .block("http_check")?
            .ok_or_else(|| fields.missing("http_check"))?;
        let http = Value::Object(http);
        let http = Arguments::new(&address, &http);
        let use_ssl = http.bool("use_ssl");
        let (project_id, host) = monitored_resource(&fields)?;
        Ok(Self {
            check_id: fields
                .str("uptime_check_id")
                .unwrap_or_else(|| resource.name.clone()),
            display_name: fields.str("display_name").unwrap_or_default(),
            period: period(&fields)?,
            timeout: timeout(&fields)?,
            path: http_path(http.str("path")),
            port: port(&http, use_ssl)?,
            use_ssl,
            method: method(&http)?,
            headers: headers(&http)?,
            accepted: accepted_statuses(&http)?,
            project_id,
            host,
            locations: locations(&fields)?,
            address,
        })
    }

    /// The URL Google would probe: `http(s)://host:port/path`.
    ///
    /// # Errors
    /// When host and port do not form a URL.
    pub fn url(&self) -> Result<Url, String> {
        let scheme = if self.use_ssl { "https" } else { "http" };
        Url::parse(&format!(
            "{scheme}://{}:{}{}",
            self.host, self.port, self.path
        ))
        .map_err(|error| format!("{}: not a URL: {error}", self.address))
    }

    /// The URL probed locally: `target`'s scheme, host and port with the
    /// check's path; the check's own URL without a target.
    ///
    /// # Errors
    /// When the URL cannot be formed.
    pub fn url_with_target(&self, target: Option<&Url>) -> Result<Url, String> {
        let Some(target) = target else {
            return self.url();
        };
        if target.cannot_be_a_base() {
            return Err(format!("{}: cannot probe {target}", self.address));
        }
        // Set rather than joined: a path like `//host/x` must not change the host.
        let (path, query) = match self.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.path.as_str(), None),
        };
        let mut url = target.clone();
        url.set_path(path);
        url.set_query(query);
        url.set_fragment(None);
        Ok(url)
    }

    /// The local probe timeout under `scale`: see the module documentation.
    pub fn local_timeout(&self, scale: TimeScale) -> Duration {
        scale
            .scale(self.timeout)
            .max(MIN_LOCAL_TIMEOUT)
            .min(self.timeout.max(MIN_LOCAL_TIMEOUT))
    }

    fn passes(&self, status: u16) -> bool {
        self.accepted.iter().any(|m| m.accepts(status))
    }
}

/// The provider prepends `/` to a path that lacks it; the default is `/`.
fn http_path(path: Option<String>) -> String {
    match path {
        Some(path) if path.starts_with('/') => path,
        Some(path) => format!("/{path}"),
        None => "/".into(),
    }
}

// Reading an uptime check's own arguments.

fn refuse_unsupported(args: &Arguments<'_>) -> Result<(), UptimeError> {
    for path in UNSUPPORTED {
        let present = match path.split_once('.') {
            Some((block, key)) => args
                .get(block)
                .and_then(first_object)
                .is_some_and(|b| b.get(key).is_some_and(|v| !is_empty(v))),
            None => args.get(path).is_some(),
        };
        if present {
            return Err(UptimeError::Unsupported {
                address: args.address().to_owned(),
                what: path.to_owned(),
            });
        }
    }
    match args.str("checker_type").as_deref() {
        None | Some("STATIC_IP_CHECKERS" | "CHECKER_TYPE_UNSPECIFIED") => Ok(()),
        Some(other) => Err(UptimeError::Unsupported {
            address: args.address().to_owned(),
            what: format!("checker_type {other:?}"),
        }),
    }
}

/// U1: 60, 300, 600 or 900 s; 300 s when absent (the provider's default).
fn period(args: &Arguments<'_>) -> Result<Duration, UptimeError> {
    let Some(text) = args.str("period") else {
        return Ok(Duration::from_secs(DEFAULT_PERIOD_SECONDS));
    };
    let seconds = duration_seconds(&text).ok_or_else(|| {
        args.invalid("period", format!("{text:?} is not a duration like \"60s\""))
    })?;
    match ALLOWED_PERIODS_SECONDS
        .iter()
        .find(|p| **p as f64 == seconds)
    {
        Some(period) => Ok(Duration::from_secs(*period)),
        None => Err(args.invalid(
            "period",
            format!("{text:?}: uptime checks run every 60s, 300s, 600s or 900s"),
        )),
    }
}

/// Required, 1 to 60 s.
fn timeout(args: &Arguments<'_>) -> Result<Duration, UptimeError> {
    let text = args.str("timeout").ok_or_else(|| args.missing("timeout"))?;
    match duration_seconds(&text) {
        Some(seconds) if TIMEOUT_SECONDS.contains(&seconds) => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(args.invalid(
            "timeout",
            format!("{text:?}: must be a duration from 1s to 60s"),
        )),
    }
}

/// `monitored_resource`: an `uptime_url` with `project_id` and `host`.
fn monitored_resource(args: &Arguments<'_>) -> Result<(String, String), UptimeError> {
    let resource = args
        .block("monitored_resource")?
        .ok_or_else(|| args.missing("monitored_resource"))?;
    let resource_type = resource.get("type").and_then(scalar_text);
    if resource_type.as_deref() != Some("uptime_url") {
        return Err(UptimeError::Unsupported {
            address: args.address().to_owned(),
            what: format!(
                "monitored_resource type {:?} (only uptime_url)",
                resource_type.unwrap_or_default()
            ),
        });
    }
    let labels = resource.get("labels").and_then(Value::as_object);
    let label = |key: &str| {
        labels
            .and_then(|l| l.get(key))
            .and_then(scalar_text)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| args.missing(&format!("monitored_resource.labels.{key}")))
    };
    Ok((label("project_id")?, label("host")?))
}

/// `selected_regions` as checker locations; all of them by default.
fn locations(args: &Arguments<'_>) -> Result<Vec<&'static str>, UptimeError> {
    let Some(regions) = args.get("selected_regions") else {
        return Ok(ALL_LOCATIONS.to_vec());
    };
    let regions = regions
        .as_array()
        .ok_or_else(|| args.invalid("selected_regions", "expected a list".into()))?;
    let mut locations: Vec<&'static str> = Vec::new();
    for region in regions {
        let name = scalar_text(region).unwrap_or_default();
        let (_, found) = REGIONS.iter().find(|(r, _)| *r == name).ok_or_else(|| {
            args.invalid(
                "selected_regions",
                format!("{name:?} is not an uptime check region"),
            )
        })?;
        for location in *found {
            if !locations.contains(location) {
                locations.push(location);
            }
        }
    }
    if locations.is_empty() {
        return Ok(ALL_LOCATIONS.to_vec());
    }
    if locations.len() < MIN_LOCATIONS {
        return Err(args.invalid(
            "selected_regions",
            format!(
                "{} checker locations ({}); Google requires regions holding at least {MIN_LOCATIONS}",
                locations.len(),
                locations.join(", ")
            ),
        ));
    }
    Ok(locations)
}

/// The provider's default port: 443 with SSL, else 80.
fn port(args: &Arguments<'_>, use_ssl: bool) -> Result<u16, UptimeError> {
    let Some(value) = args.get("port") else {
        return Ok(if use_ssl { 443 } else { 80 });
    };
    as_f64(value)
        .filter(|p| p.fract() == 0.0 && (1.0..=65535.0).contains(p))
        .map(|p| p as u16)
        .ok_or_else(|| args.invalid("http_check.port", format!("{value} is not a port")))
}

fn method(args: &Arguments<'_>) -> Result<Method, UptimeError> {
    match args.str("request_method").as_deref() {
        None | Some("GET" | "METHOD_UNSPECIFIED") => Ok(Method::GET),
        Some("POST") => Ok(Method::POST),
        Some(other) => Err(args.invalid(
            "http_check.request_method",
            format!("{other:?} is not GET or POST"),
        )),
    }
}

fn headers(args: &Arguments<'_>) -> Result<Vec<(String, String)>, UptimeError> {
    let Some(headers) = args.get("headers") else {
        return Ok(Vec::new());
    };
    let headers = headers
        .as_object()
        .ok_or_else(|| args.invalid("http_check.headers", "expected a map".into()))?;
    headers
        .iter()
        .map(|(name, value)| {
            let value = scalar_text(value).ok_or_else(|| {
                args.invalid("http_check.headers", format!("{name}: not a string"))
            })?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// `accepted_response_status_codes`; any 2xx when absent (Google's default).
fn accepted_statuses(args: &Arguments<'_>) -> Result<Vec<StatusMatcher>, UptimeError> {
    let Some(blocks) = args.get("accepted_response_status_codes") else {
        return Ok(vec![StatusMatcher::Class(2)]);
    };
    let field = "http_check.accepted_response_status_codes";
    let blocks = blocks
        .as_array()
        .ok_or_else(|| args.invalid(field, "expected blocks".into()))?;
    blocks
        .iter()
        .map(|block| status_matcher(block).map_err(|message| args.invalid(field, message)))
        .collect()
}

/// One `accepted_response_status_codes` block: `status_value` or `status_class`.
fn status_matcher(block: &Value) -> Result<StatusMatcher, String> {
    let value = block.get("status_value").filter(|v| !is_empty(v));
    let class = block.get("status_class").and_then(scalar_text);
    match (value, class.as_deref()) {
        (Some(value), None) => as_f64(value)
            .filter(|v| v.fract() == 0.0 && (100.0..=599.0).contains(v))
            .map(|v| StatusMatcher::Value(v as u16))
            .ok_or_else(|| format!("status_value {value} is not an HTTP status")),
        (None, Some("STATUS_CLASS_ANY")) => Ok(StatusMatcher::Any),
        (None, Some(class)) => class
            .strip_prefix("STATUS_CLASS_")
            .and_then(|c| c.strip_suffix("XX"))
            .and_then(|digit| digit.parse::<u16>().ok())
            .filter(|digit| (1..=5).contains(digit))
            .map(StatusMatcher::Class)
            .ok_or_else(|| format!("status_class {class:?} is not STATUS_CLASS_1XX..5XX or ANY")),
        _ => Err("each block needs exactly one of status_value and status_class".into()),
    }
}

/// `"60s"`, `"1.5s"` in seconds; Terraform writes durations this way.
fn duration_seconds(text: &str) -> Option<f64> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

/// The outcome of one location's probe.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    pub location: &'static str,
    pub passed: bool,
    /// Until the whole response was read; `None` without a response.
    pub latency: Option<Duration>,
    /// The status, or why there was none.
    pub detail: String,
}

/// One round: every location's result and what the store refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeRound {
    pub results: Vec<ProbeResult>,
    pub write_errors: Vec<String>,
}

/// Probes one check against one target, for [`probe_forever`] and tests.
#[derive(Debug)]
pub struct UptimeProber {
    check: UptimeCheck,
    url: Result<Url, String>,
    client: Result<reqwest::Client, String>,
    timeout: Duration,
    interval: Duration,
}

impl UptimeProber {
    /// A prober of `check` at `target` (see [`UptimeCheck::url_with_target`])
    /// under `scale`. Never fails: a URL or client that cannot be made
    /// makes every probe fail, as an unreachable host would on Google.
    pub fn new(check: UptimeCheck, target: Option<&Url>, scale: TimeScale) -> Self {
        let timeout = check.local_timeout(scale);
        let client = reqwest::Client::builder()
            // Google's checkers do not follow redirects: a 3xx is judged as is.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {error}"));
        Self {
            url: check.url_with_target(target),
            interval: scale.scale(check.period),
            check,
            client,
            timeout,
        }
    }

    pub fn check(&self) -> &UptimeCheck {
        &self.check
    }

    /// Local wall time between rounds: the period divided by the time scale.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Local timeout of one probe.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Probes from every location at once and writes the results to
    /// `store` in `project`, all at the time the round ended.
    pub async fn probe_once(&self, store: &MetricStore, project: &str) -> ProbeRound {
        let probes = self
            .check
            .locations
            .iter()
            .map(|location| self.probe_from(location));
        let results = futures::future::join_all(probes).await;
        let write_errors = self.write(store, project, &results, now_nanos());
        ProbeRound {
            results,
            write_errors,
        }
    }

    async fn probe_from(&self, location: &'static str) -> ProbeResult {
        let failed = |detail: String| ProbeResult {
            location,
            passed: false,
            latency: None,
            detail,
        };
        let (url, client) = match (&self.url, &self.client) {
            (Ok(url), Ok(client)) => (url.clone(), client),
            (Err(error), _) | (_, Err(error)) => return failed(error.clone()),
        };
        let mut request = client.request(self.check.method.clone(), url);
        for (name, value) in &self.check.headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return failed(request_error(&error)),
        };
        let status = response.status().as_u16();
        if let Err(error) = response.bytes().await {
            return failed(format!(
                "status {status}, body unreadable: {}",
                request_error(&error)
            ));
        }
        ProbeResult {
            location,
            passed: self.check.passes(status),
            latency: Some(started.elapsed()),
            detail: format!("status {status}"),
        }
    }

    fn write(
        &self,
        store: &MetricStore,
        project: &str,
        results: &[ProbeResult],
        now: i64,
    ) -> Vec<String> {
        for descriptor in descriptors() {
            store.upsert_descriptor(project, descriptor);
        }
        let series: Vec<TimeSeries> = results
            .iter()
            .flat_map(|result| {
                let passed = self.gauge(
                    CHECK_PASSED,
                    result.location,
                    typed_value::Value::BoolValue(result.passed),
                    now,
                );
                let latency = result.latency.map(|latency| {
                    let ms = latency.as_secs_f64() * 1000.0;
                    self.gauge(
                        REQUEST_LATENCY,
                        result.location,
                        typed_value::Value::DoubleValue(ms),
                        now,
                    )
                });
                std::iter::once(passed).chain(latency)
            })
            .collect();
        let outcome = store.write_as_google(project, &series, now);
        outcome
            .errors
            .into_iter()
            .map(|(index, reason)| format!("{}: timeSeries[{index}]: {reason}", self.check.address))
            .collect()
    }

    fn gauge(
        &self,
        metric_type: &str,
        location: &str,
        value: typed_value::Value,
        now: i64,
    ) -> TimeSeries {
        let labels: HashMap<String, String> = [
            ("check_id", self.check.check_id.as_str()),
            ("checker_location", location),
            ("checked_resource_id", self.check.host.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let resource_labels: HashMap<String, String> = [
            ("project_id", self.check.project_id.clone()),
            ("host", self.check.host.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let at = from_nanos(now);
        TimeSeries {
            metric: Some(Metric {
                r#type: metric_type.into(),
                labels,
            }),
            resource: Some(MonitoredResource {
                r#type: "uptime_url".into(),
                labels: resource_labels,
            }),
            metric_kind: MetricKind::Gauge as i32,
            points: vec![Point {
                interval: Some(TimeInterval {
                    start_time: Some(at),
                    end_time: Some(at),
                }),
                value: Some(TypedValue { value: Some(value) }),
            }],
            ..TimeSeries::default()
        }
    }
}

/// A request error with its cause (reqwest's own message is only "error sending request").
fn request_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// The two uptime metrics' descriptors, as Google defines them.
fn descriptors() -> [MetricDescriptor; 2] {
    let labels = vec![
        string_label("check_id", "The uptime check's id."),
        string_label("checker_location", "Where the checker ran."),
        string_label("checked_resource_id", "The checked resource: the host."),
    ];
    [
        MetricDescriptor {
            r#type: CHECK_PASSED.into(),
            metric_kind: MetricKind::Gauge as i32,
            value_type: ValueType::Bool as i32,
            unit: String::new(),
            display_name: "Check passed".into(),
            description: "Whether the resource passed the uptime check.".into(),
            labels: labels.clone(),
            ..MetricDescriptor::default()
        },
        MetricDescriptor {
            r#type: REQUEST_LATENCY.into(),
            metric_kind: MetricKind::Gauge as i32,
            value_type: ValueType::Double as i32,
            unit: "ms".into(),
            display_name: "Request latency".into(),
            description: "Request latency of the uptime check, in ms.".into(),
            labels,
            ..MetricDescriptor::default()
        },
    ]
}

/// Probes `check` every scaled period, forever, at the target `targets`
/// holds, writing each round's results to `store` in `project`. It waits
/// until a target is known: the URL Terraform gives is a stand-in that does
/// not resolve locally, and probing it would report a service down that was
/// never asked about. A new target applies from the next round. The first
/// round starts at once; a slow round delays the next rather than
/// overlapping it. Refused writes are logged.
pub async fn probe_forever(
    check: UptimeCheck,
    mut targets: tokio::sync::watch::Receiver<Option<Url>>,
    scale: TimeScale,
    store: MetricStore,
    project: String,
) {
    loop {
        let target = match targets.wait_for(Option::is_some).await {
            Ok(target) => target.clone(),
            // The sender is gone: the emulator is stopping.
            Err(_) => return,
        };
        let prober = UptimeProber::new(check.clone(), target.as_ref(), scale);
        // `interval` refuses a zero period; U1 and the time scale's bounds keep it above 16 ms anyway.
        let mut ticks = tokio::time::interval(prober.interval().max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        targets.mark_unchanged();
        while !targets.has_changed().unwrap_or(true) {
            ticks.tick().await;
            let round = prober.probe_once(&store, &project).await;
            for error in &round.write_errors {
                tracing::warn!(check = %prober.check().address, %error, "uptime result not stored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(value: Value) -> ResourceInstance {
        ResourceInstance {
            resource_type: "google_monitoring_uptime_check_config".into(),
            name: "frontend".into(),
            index: None,
            value: serde_json::from_value(value).unwrap(),
        }
    }

    fn config() -> Value {
        json!({
            "uptime_check_id": "frontend",
            "display_name": "frontend /healthz",
            "period": "60s",
            "timeout": "10s",
            "http_check": [{
                "path": "/healthz",
                "port": 443,
                "use_ssl": true,
                "validate_ssl": true,
                "request_method": "GET",
                "accepted_response_status_codes": [{"status_value": 200}]
            }],
            "monitored_resource": [{
                "type": "uptime_url",
                "labels": {"project_id": "proj", "host": "frontend.run.app"}
            }]
        })
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut config = config();
        let mut target = &mut config;
        for key in &path[..path.len() - 1] {
            target = match target {
                Value::Array(items) => &mut items[0][*key],
                other => &mut other[*key],
            };
            if let Value::Array(items) = target {
                target = &mut items[0];
            }
        }
        target[path[path.len() - 1]] = value;
        config
    }

    fn error_of(config: Value) -> UptimeError {
        UptimeCheck::from_terraform(&resource(config)).unwrap_err()
    }

    #[test]
    fn the_projects_check_reads_as_configured() {
        let check = UptimeCheck::from_terraform(&resource(config())).unwrap();
        assert_eq!(check.check_id, "frontend");
        assert_eq!(check.period, Duration::from_secs(60));
        assert_eq!(check.timeout, Duration::from_secs(10));
        assert_eq!(
            (check.path.as_str(), check.port, check.use_ssl),
            ("/healthz", 443, true)
        );
        assert_eq!(check.accepted, vec![StatusMatcher::Value(200)]);
        assert_eq!(
            (check.project_id.as_str(), check.host.as_str()),
            ("proj", "frontend.run.app")
        );
        assert_eq!(check.locations, ALL_LOCATIONS);
        assert_eq!(
            check.url().unwrap().as_str(),
            "https://frontend.run.app/healthz"
        );
        let target = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            check.url_with_target(Some(&target)).unwrap().as_str(),
            "http://127.0.0.1:8080/healthz"
        );
        let sneaky = UptimeCheck {
            path: "//elsewhere.example/x?a=1".into(),
            ..check.clone()
        };
        let url = sneaky.url_with_target(Some(&target)).unwrap();
        assert_eq!(
            (url.host_str(), url.port()),
            (Some("127.0.0.1"), Some(8080))
        );
        assert_eq!(url.query(), Some("a=1"));
    }

    #[test]
    fn the_terraform_files_uptime_check_loads() {
        let module = crate::terraform::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform"),
            &crate::terraform::VariableInputs::default(),
        )
        .unwrap();
        let checks = UptimeCheck::all_from(&module).unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].check_id, "frontend");
        assert_eq!(checks[0].path, "/healthz");
    }

    #[test]
    fn periods_and_timeouts_google_refuses_are_refused() {
        for period in ["120s", "30s", "0s", "1m", "soon"] {
            let error = error_of(with(&["period"], json!(period)));
            assert!(
                matches!(&error, UptimeError::Invalid { field, .. } if field == "period"),
                "{period}: {error}"
            );
        }
        assert!(error_of(with(&["period"], json!("120s")))
            .to_string()
            .contains("60s, 300s, 600s or 900s"));
        for timeout in ["0.5s", "61s", "ten"] {
            assert!(matches!(
                error_of(with(&["timeout"], json!(timeout))),
                UptimeError::Invalid { .. }
            ));
        }
        assert!(matches!(
            error_of(with(&["timeout"], Value::Null)),
            UptimeError::Missing { .. }
        ));
        let defaulted =
            UptimeCheck::from_terraform(&resource(with(&["period"], Value::Null))).unwrap();
        assert_eq!(defaulted.period, Duration::from_secs(300));
    }

    #[test]
    fn regions_become_locations_and_too_few_are_refused() {
        let three =
            UptimeCheck::from_terraform(&resource(with(&["selected_regions"], json!(["USA"]))))
                .unwrap();
        assert_eq!(three.locations, ["usa-oregon", "usa-iowa", "usa-virginia"]);
        let mixed = UptimeCheck::from_terraform(&resource(with(
            &["selected_regions"],
            json!(["EUROPE", "ASIA_PACIFIC", "USA_IOWA", "USA"]),
        )))
        .unwrap();
        assert_eq!(mixed.locations.len(), 5);
        assert!(matches!(
            error_of(with(
                &["selected_regions"],
                json!(["EUROPE", "SOUTH_AMERICA"])
            )),
            UptimeError::Invalid { .. }
        ));
        assert!(matches!(
            error_of(with(&["selected_regions"], json!(["MARS"]))),
            UptimeError::Invalid { .. }
        ));
    }

    #[test]
    fn what_cannot_be_probed_like_google_is_refused() {
        let unsupported = [
            with(&["tcp_check"], json!([{"port": 443}])),
            with(&["content_matchers"], json!([{"content": "ok"}])),
            with(&["http_check", "auth_info"], json!([{"username": "u"}])),
            with(&["checker_type"], json!("VPC_CHECKERS")),
            with(&["monitored_resource", "type"], json!("gce_instance")),
        ];
        for config in unsupported {
            assert!(
                matches!(error_of(config.clone()), UptimeError::Unsupported { .. }),
                "{config}"
            );
        }
        let invalid = [
            with(&["http_check", "request_method"], json!("DELETE")),
            with(&["http_check", "port"], json!(70000)),
            with(
                &["http_check", "accepted_response_status_codes"],
                json!([{"status_class": "STATUS_CLASS_7XX"}]),
            ),
            with(
                &["http_check", "accepted_response_status_codes"],
                json!([{"status_value": 200, "status_class": "STATUS_CLASS_2XX"}]),
            ),
        ];
        for config in invalid {
            assert!(
                matches!(error_of(config.clone()), UptimeError::Invalid { .. }),
                "{config}"
            );
        }
        assert!(matches!(
            error_of(with(
                &["monitored_resource", "labels"],
                json!({"project_id": "p"})
            )),
            UptimeError::Missing { .. }
        ));
    }

    #[test]
    fn statuses_match_by_value_or_class() {
        let check = UptimeCheck::from_terraform(&resource(with(
            &["http_check", "accepted_response_status_codes"],
            json!([{"status_class": "STATUS_CLASS_2XX"}, {"status_value": 404}]),
        )))
        .unwrap();
        assert!(check.passes(204) && check.passes(404));
        assert!(!check.passes(301) && !check.passes(500));
        let default = UptimeCheck::from_terraform(&resource(with(
            &["http_check", "accepted_response_status_codes"],
            Value::Null,
        )))
        .unwrap();
        assert_eq!(default.accepted, vec![StatusMatcher::Class(2)]);
    }

    #[test]
    fn the_local_timeout_is_scaled_but_at_least_a_second() {
        let check = UptimeCheck::from_terraform(&resource(config())).unwrap();
        let scale = |f: f64| TimeScale::new(f).unwrap();
        assert_eq!(check.local_timeout(scale(1.0)), Duration::from_secs(10));
        assert_eq!(check.local_timeout(scale(2.0)), Duration::from_secs(5));
        assert_eq!(check.local_timeout(scale(60.0)), Duration::from_secs(1));
        let prober = UptimeProber::new(check, None, scale(60.0));
        assert_eq!(prober.interval(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_refused_connection_fails_from_every_location_and_is_stored() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let target = Url::parse("http://127.0.0.1:1").unwrap();
        let check = UptimeCheck::from_terraform(&resource(config())).unwrap();
        let prober = UptimeProber::new(check, Some(&target), TimeScale::REAL_TIME);
        let store = MetricStore::new(100, Duration::from_secs(5));
        let round = prober.probe_once(&store, "p").await;
        assert_eq!(round.results.len(), ALL_LOCATIONS.len());
        assert!(round
            .results
            .iter()
            .all(|r| !r.passed && r.latency.is_none()));
        assert!(round.write_errors.is_empty(), "{:?}", round.write_errors);
        let filter =
            crate::monitoring::filter::parse(&format!("metric.type = \"{CHECK_PASSED}\"")).unwrap();
        let series = store.series("p", &filter);
        assert_eq!(series.len(), ALL_LOCATIONS.len());
        assert!(series.iter().all(|s| {
            s.key.resource_labels["host"] == "frontend.run.app"
                && s.key.metric_labels["check_id"] == "frontend"
                && s.points[0].value.value == Some(typed_value::Value::BoolValue(false))
        }));
    }
}
