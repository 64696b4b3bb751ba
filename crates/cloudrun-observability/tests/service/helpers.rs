//! Helpers shared by the integration tests: start the real service binary
//! on a random loopback port, capture its stdout line by line, and talk
//! HTTP to it.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The service binary Cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_cloudrun-observability");

/// A running service process; killed when dropped.
pub struct ServiceProcess {
    child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

/// Starts the service with `env` on a random port and waits until it
/// listens. The environment is cleared of variables that would change the
/// service's behaviour, so tests do not depend on the developer's shell.
pub fn spawn_service(env: &[(&str, &str)]) -> ServiceProcess {
    let mut command = Command::new(BINARY);
    command
        .arg("serve")
        .env("PORT", "0")
        .env("PAYMENT_FAILURE_RATE", "0")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .env_remove("LOG_FORMAT")
        .env_remove("K_SERVICE")
        .env_remove("K_REVISION")
        .env_remove("K_CONFIGURATION")
        .env_remove("GOOGLE_CLOUD_PROJECT")
        .env_remove("DOWNSTREAM_URL")
        .env_remove("ENABLE_FAULT_ROUTES")
        .env_remove("TELEMETRY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start the service binary");
    let stdout = child.stdout.take().expect("stdout is piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    let logs_address = !env
        .iter()
        .any(|(name, value)| *name == "TELEMETRY" && *value == "off");
    // Owned by the guard before waiting, so a start-up failure still kills it.
    let mut process = ServiceProcess {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        lines,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    };
    process.addr = wait_for_address(&process.lines, &mut process.child, logs_address);
    process
}

/// Reads the port from the "listening" line; with `TELEMETRY=off` there is
/// none, so the port is then found by asking the kernel about the child
/// (which then runs no embedded emulator, so it has one listening socket).
fn wait_for_address(
    lines: &Arc<Mutex<Vec<String>>>,
    child: &mut Child,
    logs_address: bool,
) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(port) = lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| listening_port(line))
        {
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
        if let Some(port) = (!logs_address)
            .then(|| listening_port_of(child.id()))
            .flatten()
        {
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the service exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the service did not start listening within 20 s");
}

/// The port in the service's "listening on http://0.0.0.0:PORT" line, in
/// JSON or pretty format.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on http://").nth(1)?;
    let after_colon = rest.split(':').nth(1)?;
    let digits: String = after_colon
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The TCP port a process listens on, from /proc (Linux).
fn listening_port_of(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let columns: Vec<&str> = row.split_whitespace().collect();
            // State 0A is LISTEN.
            if columns.len() > 9 && columns[3] == "0A" && inodes.iter().any(|i| i == columns[9]) {
                let port = columns[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

impl ServiceProcess {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`, panicking if the request cannot be sent.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET sent")
    }

    /// `POST path` with a JSON body, panicking if the request cannot be sent.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST sent")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The live buffer of stdout lines, for a task that forwards them as
    /// they come (to an emulator's log store, as `emulator --logs -` reads them).
    pub fn line_buffer(&self) -> Arc<Mutex<Vec<String>>> {
        Arc::clone(&self.lines)
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines so far that contain `needle`, parsed as JSON (without
    /// copying or parsing the others: cheap when there are many big lines).
    pub fn entries_containing(&self, needle: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
            })
            .collect()
    }

    /// The resident memory of the process, in KiB (`VmRSS` in
    /// /proc/PID/status; Linux).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id()).expect("the service's /proc/PID/status has VmRSS")
    }

    /// Every line so far, parsed; panics on a line that is not JSON.
    pub fn entries(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
            })
            .collect()
    }

    /// Waits until `count` entries match `predicate`; returns them.
    pub async fn wait_for_entries(
        &self,
        count: usize,
        predicate: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let matching: Vec<Value> = self.entries().into_iter().filter(&predicate).collect();
            if matching.len() >= count || Instant::now() > deadline {
                return matching;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The request log lines (those with `httpRequest`) whose URL is `url`.
    pub async fn request_lines(&self, url: &str, count: usize) -> Vec<Value> {
        self.wait_for_entries(count, |entry| {
            entry["httpRequest"]["requestUrl"].as_str() == Some(url)
        })
        .await
    }

    /// Sends SIGTERM, as Cloud Run does before stopping an instance.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Kills the process with SIGKILL, which nothing in it can outlast (no
    /// flush runs), and waits for it to be gone.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; returns how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident memory of process `pid` in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The trace id at the end of `logging.googleapis.com/trace`.
pub fn trace_id_of(entry: &Value) -> Option<&str> {
    entry["logging.googleapis.com/trace"]
        .as_str()?
        .rsplit('/')
        .next()
}

/// Serves gRPC `routes` (stand-ins for an OTLP endpoint) on a random
/// loopback port, over axum as the emulator serves its own.
pub async fn serve_grpc(routes: tonic::service::Routes) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes.into_axum_router()).await });
    addr
}
