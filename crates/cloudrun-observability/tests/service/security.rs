//! Security properties of the service and its deployment: credentials a
//! client sends (Authorization, cookies, API keys) reach neither the logs
//! nor the spans; the embedded emulator, which has no authentication,
//! listens on loopback only; the container runs as a non-root user; and the
//! deployment keeps the fault routes off. (That the fault routes are off on
//! Cloud Run unless enabled is `tests/api.rs`'s.)

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::emulator_helpers::TestEmulator;
use crate::helpers::{spawn_service, ServiceProcess};

const SECRETS: [&str; 6] = [
    "bearer-secret-0001",
    "proxy-secret-0002",
    "api-key-secret-0003",
    "cookie-secret-0004",
    "goog-iap-secret-0005",
    "basic-secret-0006",
];

/// Sends requests carrying every kind of credential, on each route kind
/// (a read, an order with its downstream calls, an error, a 404).
async fn send_credentials(service: &ServiceProcess) {
    for (method, path) in [
        ("GET", "/api/books/1"),
        ("POST", "/api/orders"),
        ("GET", "/api/faults/error"),
        ("GET", "/no/such/page"),
    ] {
        let mut request = if method == "POST" {
            service
                .http
                .post(service.url(path))
                .json(&serde_json::json!({"book_id": 1, "quantity": 1}))
        } else {
            service.http.get(service.url(path))
        };
        request = request
            .header("authorization", format!("Bearer {}", SECRETS[0]))
            .header("proxy-authorization", format!("Basic {}", SECRETS[1]))
            .header("x-api-key", SECRETS[2])
            .header(
                "cookie",
                format!(
                    "sid=5ec2e75ec2e75ec2e75ec2e75ec2e75e; remember={}",
                    SECRETS[3]
                ),
            )
            .header("x-goog-iap-jwt-assertion", SECRETS[4])
            .header("x-forwarded-authorization", format!("Basic {}", SECRETS[5]));
        let response = request.send().await.unwrap();
        assert!(response.status().as_u16() < 600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_headers_and_cookies_reach_neither_logs_nor_spans() {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", &host),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("RUST_LOG", "debug"),
    ]);
    send_credentials(&service).await;
    service.request_lines("/no/such/page", 1).await;
    service.sigterm();
    assert!(service.wait_exit(Duration::from_secs(10)).is_some());

    let logs = service.lines().join("\n");
    assert!(logs.contains("/api/orders"), "the requests were logged");
    let spans = emulator.emulator.store().traces.spans();
    assert!(
        spans.len() >= 6,
        "the requests were traced: {}",
        spans.len()
    );
    let spans = format!("{spans:?}");
    for secret in SECRETS.iter().chain(&["5ec2e75ec2e75ec2e75ec2e75ec2e75e"]) {
        assert!(!logs.contains(secret), "{secret} is in the logs");
        assert!(!spans.contains(secret), "{secret} is in a span");
    }
}

/// Query parameters that commonly carry credentials.
const QUERY_SECRETS: [(&str, &str); 5] = [
    ("access_token", "query-secret-0001"),
    ("token", "query-secret-0002"),
    ("api_key", "query-secret-0003"),
    ("key", "query-secret-0004"),
    ("password", "query-secret-0005"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_query_string_stay_out_of_the_spans() {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", &host),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    for (name, value) in QUERY_SECRETS {
        let url = format!("/api/books/1?{name}={value}&page=2");
        assert_eq!(service.get(&url).await.status(), 200);
    }
    service.sigterm();
    assert!(service.wait_exit(Duration::from_secs(10)).is_some());
    let spans = emulator.emulator.store().traces.spans();
    assert_eq!(spans.len(), QUERY_SECRETS.len());
    let spans = format!("{spans:?}");
    assert!(spans.contains("/api/books/1"), "the path is in the spans");
    for (_, secret) in QUERY_SECRETS {
        assert!(!spans.contains(secret), "{secret} is in a span");
    }
}

/// Cloud Logging's `httpRequest.requestUrl` is the whole URL; a credential
/// sent in the query string would land in the logs with it, so its value is
/// redacted (the parameter's name stays, to show one was sent).
#[tokio::test]
async fn credentials_in_the_query_string_stay_out_of_the_logs() {
    let service = spawn_service(&[]);
    for (name, value) in QUERY_SECRETS {
        let url = format!("/api/books/1?{name}={value}&page=2");
        assert_eq!(service.get(&url).await.status(), 200);
        service
            .wait_for_entries(1, |entry| {
                entry["httpRequest"]["requestUrl"]
                    .as_str()
                    .is_some_and(|logged| logged.contains(name))
            })
            .await;
    }
    let logs = service.lines().join("\n");
    for (_, secret) in QUERY_SECRETS {
        assert!(!logs.contains(secret), "{secret} is in the logs");
    }
}

/// This machine's non-loopback IPv4 addresses (from /proc/net/fib_trie).
fn non_loopback_addresses() -> Vec<Ipv4Addr> {
    let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") else {
        return Vec::new();
    };
    let lines: Vec<&str> = trie.lines().collect();
    let mut addresses: Vec<Ipv4Addr> = lines
        .windows(2)
        .filter(|pair| pair[1].trim() == "/32 host LOCAL")
        .filter_map(|pair| pair[0].trim().trim_start_matches("|-- ").parse().ok())
        .filter(|ip: &Ipv4Addr| !ip.is_loopback())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The local addresses of the TCP sockets `pid` listens on (IPv4, Linux).
fn listening_addresses(pid: u32) -> Vec<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let columns: Vec<&str> = row.split_whitespace().collect();
            // State 0A is LISTEN.
            if columns.len() <= 9 || columns[3] != "0A" || !inodes.iter().any(|i| i == columns[9]) {
                return None;
            }
            let (ip, port) = columns[1].split_once(':')?;
            // The kernel prints the address in host byte order (little endian).
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.swap_bytes());
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_str_radix(port, 16).ok()?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_emulator_listens_on_loopback_only() {
    let service = spawn_service(&[]);
    let line = service
        .wait_for_entries(1, |entry| entry["emulator"].is_string())
        .await
        .pop()
        .expect("the start-up line naming the embedded emulator");
    let console: SocketAddr = line["emulator"].as_str().unwrap().parse().unwrap();
    assert!(console.ip().is_loopback(), "{console}");

    // What the process really listens on: the service on every interface
    // (Cloud Run's contract), the emulator on loopback, nothing else.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listening = loop {
        let listening = listening_addresses(service.pid());
        if listening.len() >= 2 || Instant::now() > deadline {
            break listening;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut expected = vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), service.addr.port()),
        console,
    ];
    let mut listening_sorted = listening.clone();
    listening_sorted.sort();
    expected.sort();
    assert_eq!(listening_sorted, expected);

    // From another local address: the service answers, the emulator
    // refuses the connection.
    let others = non_loopback_addresses();
    if others.is_empty() {
        eprintln!("no non-loopback IPv4 address here; checked /proc only");
    }
    for ip in others {
        let timeout = Duration::from_secs(2);
        let service_there = SocketAddr::new(IpAddr::V4(ip), service.addr.port());
        assert!(
            TcpStream::connect_timeout(&service_there, timeout).is_ok(),
            "the service is reachable at {service_there}"
        );
        let console_there = SocketAddr::new(IpAddr::V4(ip), console.port());
        let refused = TcpStream::connect_timeout(&console_there, timeout);
        assert!(
            refused.is_err(),
            "the emulator must not be reachable at {console_there}"
        );
    }
}

/// The instructions of the Dockerfile's last stage, continuation lines
/// joined.
fn final_stage(dockerfile: &str) -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let last_from = instructions
        .iter()
        .rposition(|instruction| instruction.to_ascii_uppercase().starts_with("FROM "))
        .expect("a FROM");
    instructions.split_off(last_from)
}

#[test]
fn the_container_runs_as_a_non_root_user() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile")).unwrap();
    let stage = final_stage(&dockerfile);
    let base = stage[0].split_whitespace().nth(1).unwrap();
    assert!(
        base.starts_with("gcr.io/distroless/") && base.ends_with(":nonroot"),
        "the runtime image is a distroless :nonroot one (uid 65532), not {base}"
    );
    let user = stage
        .iter()
        .rev()
        .find_map(|instruction| {
            let (keyword, rest) = instruction.split_once(char::is_whitespace)?;
            keyword.eq_ignore_ascii_case("USER").then(|| rest.trim())
        })
        .expect("the final stage says which USER runs the service");
    let name = user.split(':').next().unwrap();
    assert!(
        !["root", "0"].contains(&name),
        "the service must not run as root: USER {user}"
    );
    // No shell in the image: the entrypoint is exec form, the binary itself.
    let entrypoint = stage
        .iter()
        .find(|instruction| instruction.starts_with("ENTRYPOINT"))
        .expect("an ENTRYPOINT");
    assert_eq!(entrypoint, r#"ENTRYPOINT ["/cloudrun-observability"]"#);
}

#[test]
fn the_deployment_keeps_the_fault_routes_off_by_default() {
    let terraform = concat!(env!("CARGO_MANIFEST_DIR"), "/../../terraform");
    let variables: hcl::Body =
        hcl::from_str(&std::fs::read_to_string(format!("{terraform}/variables.tf")).unwrap())
            .unwrap();
    let default = variables
        .blocks()
        .find(|block| {
            block.identifier() == "variable"
                && block
                    .labels()
                    .first()
                    .is_some_and(|label| label.as_str() == "enable_fault_routes")
        })
        .expect("variable enable_fault_routes")
        .body()
        .attributes()
        .find(|attribute| attribute.key() == "default")
        .map(|attribute| attribute.expr().clone());
    assert_eq!(default, Some(hcl::Expression::Bool(false)));
    let run = std::fs::read_to_string(format!("{terraform}/run.tf")).unwrap();
    let wired: Vec<&str> = run
        .lines()
        .filter(|line| line.contains("ENABLE_FAULT_ROUTES"))
        .map(str::trim)
        .collect();
    assert_eq!(
        wired,
        ["ENABLE_FAULT_ROUTES         = tostring(var.enable_fault_routes)"],
        "the services get the variable, nothing else"
    );
}
