//! The console's metrics page against known traffic: `loadgen` at several
//! rates into the real service, its metrics exported to an emulator slowly
//! (every 15 s, more than the 5m window's 10 s alignment) or fast (every
//! second), then every window of `/metrics` and its per-route table read
//! back as a browser gets them.
//!
//! What is known about the traffic: the service's own request lines (one per
//! request, with its route) and when the generator ran. The console's
//! windows and the points' timestamps are real time (a time scale shortens
//! only what alert policies measure), so a run of seconds cannot fill a 1d
//! window; each window is checked where its alignment allows:
//! - everything: the charted rates times the alignment period, summed, and
//!   the table's requests are the requests served, per route for the table;
//! - a period wholly inside the steady traffic charts the real rate;
//! - a period holding all of the traffic charts all of it over that period.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cloud_ops_emulator::EmulatorConfig;
use cloudrun_observability::loadgen::{self, LoadgenConfig};
use regex::Regex;

use crate::emulator_helpers::TestEmulator;
use crate::helpers::{spawn_service, ServiceProcess};

const WINDOWS: [&str; 5] = ["5m", "15m", "1h", "6h", "1d"];
const TRAFFIC: Duration = Duration::from_secs(35);
const TOLERANCE: f64 = 0.1;

/// One service exporting to the shared emulator under its own project.
struct Run {
    project: String,
    rps: f64,
    /// Seconds between metric exports.
    export: f64,
}

/// What the generator did, as the service logged it.
struct Traffic {
    /// Requests per `/api` route.
    per_route: BTreeMap<String, u64>,
    /// When the first request was sent and the last one answered, Unix seconds.
    start: f64,
    end: f64,
}

impl Traffic {
    fn total(&self) -> f64 {
        self.per_route.values().sum::<u64>() as f64
    }

    fn rate(&self) -> f64 {
        self.total() / (self.end - self.start)
    }
}

/// One window of `/metrics` as parsed from its HTML.
#[derive(Debug)]
struct Page {
    /// The alignment period and the window's end, seconds.
    period: f64,
    end: f64,
    /// The request rate of all `/api` routes in each period, by how many
    /// periods before the window's end it ends.
    rates: BTreeMap<i64, Charted>,
    /// The table's requests per `/api` route.
    table: BTreeMap<String, u64>,
}

/// A sum of charted rates, each shown rounded to two decimals.
#[derive(Debug, Default, Clone, Copy)]
struct Charted {
    rate: f64,
    lines: u32,
}

impl Charted {
    /// How far the sum may be from the exact one through the page's rounding.
    fn rounding(self) -> f64 {
        0.005 * f64::from(self.lines)
    }
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_and_the_route_table_chart_the_load_generators_real_rate() {
    // The emulator's 5 s sampling limit would refuse the fast exports.
    let emulator = TestEmulator::start_with(EmulatorConfig {
        min_sampling_period: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let host = emulator.emulator.local_addr().to_string();
    let runs = [
        Run::new(15.0, 5.0),
        Run::new(15.0, 40.0),
        Run::new(1.0, 5.0),
        Run::new(1.0, 40.0),
    ];
    // Started before any traffic: a start blocks the thread that paces the generators.
    let services: Vec<ServiceProcess> = runs.iter().map(|run| run.start(&host)).collect();
    let checks = runs
        .iter()
        .zip(&services)
        .map(|(run, service)| run.check(service, &host));
    futures::future::join_all(checks).await;
}

impl Run {
    fn new(export: f64, rps: f64) -> Self {
        Self {
            project: format!("rates-{export}s-{rps}rps").replace('.', "-"),
            rps,
            export,
        }
    }

    fn start(&self, host: &str) -> ServiceProcess {
        let interval = ((self.export * 1000.0) as u64).to_string();
        spawn_service(&[
            ("CLOUD_OPS_EMULATOR_HOST", host),
            ("GOOGLE_CLOUD_PROJECT", &self.project),
            ("OTEL_METRIC_EXPORT_INTERVAL", &interval),
        ])
    }

    async fn check(&self, service: &ServiceProcess, host: &str) {
        let traffic = self.send(service).await;
        let pages = self.read_back(host, &traffic).await;
        for (window, page) in WINDOWS.iter().zip(&pages) {
            let context = format!("{}, window {window}: {page:?}", self.describe(&traffic));
            page.check_counts(&traffic, &context);
            page.check_rates(&traffic, self.export, &context);
        }
    }

    fn describe(&self, traffic: &Traffic) -> String {
        format!(
            "{} req/s asked, {:.2} served, exported every {} s",
            self.rps,
            traffic.rate(),
            self.export
        )
    }

    async fn send(&self, service: &ServiceProcess) -> Traffic {
        let start = unix_seconds();
        let summary = loadgen::run(LoadgenConfig {
            target: service.url(""),
            rps: self.rps,
            duration: TRAFFIC,
            error_share: 0.1,
            slow_ms: 0,
            visitors: 5,
            progress: false,
        })
        .await
        .unwrap();
        let end = unix_seconds();
        assert_eq!(summary.failed + summary.skipped, 0, "{summary:?}");
        let lines = service
            .wait_for_entries(summary.sent as usize, |entry| {
                entry["route"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("/api/"))
            })
            .await;
        assert_eq!(lines.len() as u64, summary.sent, "every request is logged");
        let mut per_route = BTreeMap::new();
        for line in lines {
            *per_route
                .entry(line["route"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        Traffic {
            per_route,
            start,
            end,
        }
    }

    /// Every window, once the table counts every request (the last export
    /// has arrived) and the 5m window has a period inside the traffic: its
    /// periods end where the window does, so that takes reading again as
    /// time moves, for at most one period.
    async fn read_back(&self, host: &str, traffic: &Traffic) -> Vec<Page> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.export * 2.0 + 20.0);
        loop {
            let mut pages = Vec::new();
            for window in WINDOWS {
                pages.push(read_page(host, &self.project, window).await);
            }
            let exported = pages[0].table.values().sum::<u64>() as f64 >= traffic.total();
            if exported && !pages[0].steady_periods(traffic, self.export).is_empty() {
                return pages;
            }
            assert!(
                Instant::now() < deadline,
                "{}: not every request reached the 5m window with a period inside the traffic: {:?}",
                self.describe(traffic),
                pages[0]
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn read_page(host: &str, project: &str, window: &str) -> Page {
    let url = format!("http://{host}/metrics?window={window}&project={project}");
    let response = reqwest::get(&url).await.expect("GET /metrics");
    assert_eq!(response.status(), 200, "{url}");
    Page::parse(&response.text().await.unwrap())
}

impl Page {
    fn parse(html: &str) -> Self {
        let period: f64 = capture(html, r"aligned every ([0-9.]+) s")[0][0]
            .parse()
            .unwrap();
        let end = &capture(
            html,
            r"ending \d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d\.\d+) UTC",
        )[0];
        let end = unix_time_of_day(&end[0], &end[1], &end[2]);
        let chart_start = html
            .find("data-chart=\"request-rate\"")
            .expect("a rate chart");
        let chart = &html[chart_start..];
        let chart = &chart[..chart.find("</svg>").unwrap()];
        let mut rates = BTreeMap::new();
        for point in capture(
            chart,
            r"<title>(\S+) (\d\d):(\d\d):(\d\d): ([0-9.]+)</title>",
        ) {
            if !point[0].starts_with("/api/") {
                continue;
            }
            let at = unix_time_of_day(&point[1], &point[2], &point[3]);
            // The title's clock is to the second; the period's end is exact.
            let periods_before_end = ((end - at) / period).round() as i64;
            let sum: &mut Charted = rates.entry(periods_before_end).or_default();
            sum.rate += point[4].parse::<f64>().unwrap();
            sum.lines += 1;
        }
        let row = r#"<tr data-route="([^"]+)"><td class="mono">[^<]*</td><td class="requests">(\d+)</td>"#;
        let table = capture(html, row)
            .into_iter()
            .filter(|r| r[0].starts_with("/api/"))
            .map(|r| (r[0].clone(), r[1].parse().unwrap()))
            .collect();
        Self {
            period,
            end,
            rates,
            table,
        }
    }

    /// Where the period ending `k` periods before the window's end starts
    /// and ends, Unix seconds.
    fn period_of(&self, k: i64) -> (f64, f64) {
        let end = self.end - k as f64 * self.period;
        (end - self.period, end)
    }

    /// The charted rates of the periods whose counts lie inside the steady
    /// traffic: a period's count runs from the last export before it, up to
    /// `export` seconds earlier, to its own last export.
    fn steady_periods(&self, traffic: &Traffic, export: f64) -> Vec<Charted> {
        self.rates
            .iter()
            .filter(|(k, _)| {
                let (from, to) = self.period_of(**k);
                from - export >= traffic.start && to <= traffic.end
            })
            .map(|(_, rate)| *rate)
            .collect()
    }

    /// The charted rates of the periods that hold the whole traffic.
    fn whole_traffic_periods(&self, traffic: &Traffic) -> Vec<Charted> {
        self.rates
            .iter()
            .filter(|(k, _)| {
                let (from, to) = self.period_of(**k);
                from <= traffic.start && to >= traffic.end
            })
            .map(|(_, rate)| *rate)
            .collect()
    }

    fn check_counts(&self, traffic: &Traffic, context: &str) {
        let charted = Charted {
            rate: self.rates.values().map(|c| c.rate * self.period).sum(),
            lines: self.rates.values().map(|c| c.lines).sum(),
        };
        let what = format!("charted requests; {context}");
        assert_close(charted, traffic.total(), self.period, &what);
        for (route, served) in &traffic.per_route {
            let listed = self.table.get(route).copied().unwrap_or(0);
            let exact = Charted {
                rate: listed as f64,
                lines: 0,
            };
            assert_close(
                exact,
                *served as f64,
                1.0,
                &format!("table, {route}; {context}"),
            );
        }
    }

    fn check_rates(&self, traffic: &Traffic, export: f64, context: &str) {
        for charted in self.steady_periods(traffic, export) {
            let context = format!("a steady period; {context}");
            assert_close(charted, traffic.rate(), 1.0, &context);
        }
        let whole = self.whole_traffic_periods(traffic);
        // Periods of 2 min and more are longer than the run and its last export.
        assert!(
            self.period < 120.0 || !whole.is_empty(),
            "no period holds all of the traffic: {context}"
        );
        for charted in whole {
            let expected = traffic.total() / self.period;
            let context = format!("the period of all traffic; {context}");
            assert_close(charted, expected, 1.0, &context);
        }
    }
}

/// Within 10 %, and the page's rounding (times `scale`, for a rate made a count).
fn assert_close(actual: Charted, expected: f64, scale: f64, context: &str) {
    let slack = expected * TOLERANCE + actual.rounding() * scale;
    assert!(
        (actual.rate - expected).abs() <= slack,
        "{} is not within 10 % of {expected} (and {} of rounding): {context}",
        actual.rate,
        actual.rounding() * scale
    );
}

/// The capture groups of every match of `pattern`.
fn capture(text: &str, pattern: &str) -> Vec<Vec<String>> {
    Regex::new(pattern)
        .unwrap()
        .captures_iter(text)
        .map(|c| {
            c.iter()
                .skip(1)
                .map(|m| m.unwrap().as_str().to_owned())
                .collect()
        })
        .collect()
}

/// A UTC time of day as Unix seconds: today's, or yesterday's just after midnight.
fn unix_time_of_day(hours: &str, minutes: &str, seconds: &str) -> f64 {
    let of_day = hours.parse::<f64>().unwrap() * 3600.0
        + minutes.parse::<f64>().unwrap() * 60.0
        + seconds.parse::<f64>().unwrap();
    let now = unix_seconds();
    let at = (now / 86_400.0).floor() * 86_400.0 + of_day;
    if at > now + 43_200.0 {
        at - 86_400.0
    } else {
        at
    }
}
