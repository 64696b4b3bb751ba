//! `cloudrun-observability loadgen`: realistic traffic for the bookshop, so
//! that logs, traces, metrics and alerts have something to show.
//!
//! Simulated visitors keep their `sid` cookie (so the active-sessions gauge
//! counts them), browse the catalog, look at books and place orders; a
//! chosen share of requests hit the fault routes. Requests are started at a
//! fixed rate whatever the answers' latency (an open model, as real users
//! arrive), with a bound on those in flight so a stalled target cannot make
//! the generator grow without limit. It prints a progress bar and, at the
//! end, requests, status counts and latency percentiles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use rand::Rng;
use thiserror::Error;
use tokio::sync::Semaphore;

/// At most this many requests in flight; past it, a due request is skipped
/// and counted rather than queued.
pub const MAX_IN_FLIGHT: usize = 512;

/// What to send, how fast, for how long.
#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    /// Base URL of the service, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Requests started per second.
    pub rps: f64,
    pub duration: Duration,
    /// Share of requests sent to `/api/faults/error` (0.0 to 1.0).
    pub error_share: f64,
    /// When above 0, a tenth of the requests go to `/api/faults/slow?ms=N`.
    pub slow_ms: u64,
    /// How many distinct visitors (session cookies) the traffic comes from.
    pub visitors: usize,
    pub progress: bool,
}

/// Send realistic traffic (visitors with session cookies, catalog reads,
/// orders, faults) and print requests, status counts and latencies.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Requests started per second.
    #[arg(long, default_value_t = 20.0)]
    pub rps: f64,
    /// How long: `90` (seconds), `90s`, `2m`, `500ms`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Share of requests sent to /api/faults/error (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub errors: f64,
    /// Send a tenth of the requests to /api/faults/slow?ms=N (0: none).
    #[arg(long, default_value_t = 0)]
    pub slow_ms: u64,
    /// Distinct visitors (session cookies).
    #[arg(long, default_value_t = 20)]
    pub visitors: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl From<LoadgenArgs> for LoadgenConfig {
    fn from(args: LoadgenArgs) -> Self {
        Self {
            target: args.target,
            rps: args.rps,
            duration: args.duration,
            error_share: args.errors,
            slow_ms: args.slow_ms,
            visitors: args.visitors,
            progress: !args.quiet,
        }
    }
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

#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("--rps must be a positive number, got {0}")]
    Rate(f64),
    #[error("--errors must be between 0.0 and 1.0, got {0}")]
    ErrorShare(f64),
    #[error("--visitors must be at least 1")]
    Visitors,
    #[error("invalid --target {target:?}: expected an http:// or https:// URL")]
    Target { target: String },
    #[error("could not build the HTTP client")]
    Client(#[from] reqwest::Error),
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct LoadSummary {
    pub sent: u64,
    /// Requests that got no answer (connection refused, timeout).
    pub failed: u64,
    /// Requests not started because too many were in flight.
    pub skipped: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Latencies of answered requests, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl LoadSummary {
    /// The latency at quantile `q` (0.0 to 1.0) of answered requests.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((self.latencies.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
        self.latencies.get(rank).copied()
    }

    /// The summary as printed at the end of a run.
    pub fn report(&self) -> String {
        let answered: u64 = self.statuses.values().sum();
        let mut lines = vec![format!(
            "requests: {} sent in {:.1} s ({:.1}/s), {} answered, {} without answer, {} skipped (too many in flight)",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9),
            answered,
            self.failed,
            self.skipped
        )];
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect();
        lines.push(format!("statuses: {}", statuses.join(", ")));
        let ms = |q: f64| self.percentile(q).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        lines.push(format!(
            "latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(1.0)
        ));
        lines.join("\n")
    }
}

/// One simulated visitor: a session cookie once the service has set one.
#[derive(Debug, Default)]
struct Visitor {
    cookie: Mutex<Option<String>>,
}

/// A request the traffic mix picked.
#[derive(Debug)]
enum Action {
    Catalog,
    Book(u32),
    Order { book_id: u32, quantity: u32 },
    Fault,
    Slow(u64),
}

impl Action {
    fn pick(config: &LoadgenConfig) -> Self {
        let mut rng = rand::rng();
        if rng.random::<f64>() < config.error_share {
            return Self::Fault;
        }
        if config.slow_ms > 0 && rng.random::<f64>() < 0.1 {
            return Self::Slow(config.slow_ms);
        }
        match rng.random_range(0..10) {
            0..=2 => Self::Catalog,
            3..=7 => Self::Book(rng.random_range(1..=8)),
            _ => Self::Order {
                book_id: rng.random_range(1..=8),
                quantity: rng.random_range(1..=2),
            },
        }
    }

    fn request(&self, http: &reqwest::Client, target: &str) -> reqwest::RequestBuilder {
        match self {
            Self::Catalog => http.get(format!("{target}/api/books")),
            Self::Book(id) => http.get(format!("{target}/api/books/{id}")),
            Self::Order { book_id, quantity } => http
                .post(format!("{target}/api/orders"))
                .json(&serde_json::json!({"book_id": book_id, "quantity": quantity})),
            Self::Fault => http.get(format!("{target}/api/faults/error")),
            Self::Slow(ms) => http.get(format!("{target}/api/faults/slow?ms={ms}")),
        }
    }
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    latencies: Vec<Duration>,
    failed: u64,
}

/// Sends the configured traffic and returns what happened.
pub async fn run(config: LoadgenConfig) -> Result<LoadSummary, LoadgenError> {
    validate(&config)?;
    let target = config.target.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!(
            "cloudrun-observability-loadgen/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()?;
    let visitors: Arc<Vec<Visitor>> =
        Arc::new((0..config.visitors).map(|_| Visitor::default()).collect());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let total = (config.rps * config.duration.as_secs_f64()).round() as u64;
    let bar = progress_bar(config.progress, total);

    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rps));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let (mut sent, mut skipped) = (0u64, 0u64);
    while sent + skipped < total {
        ticker.tick().await;
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        sent += 1;
        let action = Action::pick(&config);
        let visitor = rand::rng().random_range(0..config.visitors);
        let (http, target, visitors, tally, bar) = (
            http.clone(),
            target.clone(),
            Arc::clone(&visitors),
            Arc::clone(&tally),
            bar.clone(),
        );
        tasks.spawn(async move {
            send(&http, &target, &visitors[visitor], &action, &tally).await;
            bar.inc(1);
            drop(permit);
        });
        // Reap finished tasks as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    bar.finish_and_clear();

    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    let mut latencies = tally.latencies;
    latencies.sort();
    Ok(LoadSummary {
        sent,
        failed: tally.failed,
        skipped,
        statuses: tally.statuses,
        latencies,
        elapsed: started.elapsed(),
    })
}

fn validate(config: &LoadgenConfig) -> Result<(), LoadgenError> {
    if !(config.rps.is_finite() && config.rps > 0.0) {
        return Err(LoadgenError::Rate(config.rps));
    }
    if !(0.0..=1.0).contains(&config.error_share) {
        return Err(LoadgenError::ErrorShare(config.error_share));
    }
    if config.visitors == 0 {
        return Err(LoadgenError::Visitors);
    }
    if !(config.target.starts_with("http://") || config.target.starts_with("https://")) {
        return Err(LoadgenError::Target {
            target: config.target.clone(),
        });
    }
    Ok(())
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} requests ({rate})")
    {
        // indicatif's own {per_sec} prints four decimals ("7.0000/s").
        let rate = |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.1}/s", state.per_sec());
        };
        bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
    }
    bar
}

async fn send(
    http: &reqwest::Client,
    target: &str,
    visitor: &Visitor,
    action: &Action,
    tally: &Mutex<Tally>,
) {
    let mut request = action.request(http, target);
    let cookie = visitor
        .cookie
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(cookie) = cookie {
        request = request.header(reqwest::header::COOKIE, cookie);
    }
    let started = Instant::now();
    let result = request.send().await;
    let latency = started.elapsed();
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(response) => {
            remember_session(visitor, &response);
            *tally
                .statuses
                .entry(response.status().as_u16())
                .or_default() += 1;
            tally.latencies.push(latency);
        }
        Err(_) => tally.failed += 1,
    }
}

/// Keeps the `sid=...` part of a `Set-Cookie`, as a browser would.
fn remember_session(visitor: &Visitor, response: &reqwest::Response) {
    let Some(set_cookie) = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
    else {
        return;
    };
    if let Some(pair) = set_cookie
        .split(';')
        .next()
        .filter(|p| p.starts_with("sid="))
    {
        *visitor.cookie.lock().unwrap_or_else(|p| p.into_inner()) = Some(pair.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let summary = LoadSummary {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..LoadSummary::default()
        };
        assert_eq!(summary.percentile(0.5), Some(Duration::from_millis(51)));
        assert_eq!(summary.percentile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(summary.percentile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(LoadSummary::default().percentile(0.5), None);
    }

    #[test]
    fn bad_settings_are_refused() {
        let good = LoadgenConfig {
            target: "http://127.0.0.1:8080".into(),
            rps: 10.0,
            duration: Duration::from_secs(1),
            error_share: 0.1,
            slow_ms: 0,
            visitors: 5,
            progress: false,
        };
        assert!(validate(&good).is_ok());
        assert!(validate(&LoadgenConfig {
            rps: 0.0,
            ..good.clone()
        })
        .is_err());
        assert!(validate(&LoadgenConfig {
            error_share: 1.5,
            ..good.clone()
        })
        .is_err());
        assert!(validate(&LoadgenConfig {
            visitors: 0,
            ..good.clone()
        })
        .is_err());
        assert!(validate(&LoadgenConfig {
            target: "localhost:8080".into(),
            ..good
        })
        .is_err());
    }
}
