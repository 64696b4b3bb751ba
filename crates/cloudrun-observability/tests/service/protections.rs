//! The service's protections against hostile input (issue #18), over real
//! sockets: string caps keep every log entry (the ERROR entry above all)
//! under Cloud Logging's 256 KiB, the client address is the
//! `X-Forwarded-For` entry the trusted front end wrote, and credentials are
//! redacted from logged URLs however their names are spelled.

use crate::helpers::spawn_service;

/// Cloud Logging's limit on one entry.
const ENTRY_LIMIT: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_entry_of_a_request_with_a_huge_user_agent_is_written_whole() {
    let service = spawn_service(&[]);
    // Big enough to push the entry past 256 KiB, small enough for hyper
    // (which refuses heads over about 400 KB).
    let user_agent = format!("huge/{}", "u".repeat(300 * 1024));
    let response = service
        .http
        .get(service.url("/api/faults/error?ua=huge"))
        .header("user-agent", &user_agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let errors = service
        .wait_for_entries(1, |entry| entry["@type"].as_str().is_some())
        .await;
    assert_eq!(errors.len(), 1, "the ERROR entry is written");
    let error = &errors[0];
    assert_eq!(error["severity"], "ERROR");
    assert_eq!(error["context"]["httpRequest"]["responseStatusCode"], 500);
    let logged = error["context"]["httpRequest"]["userAgent"]
        .as_str()
        .unwrap();
    assert!(logged.starts_with("huge/uuu"), "{}", &logged[..40]);
    assert!(logged.ends_with(" bytes]"), "marked as cut");
    let request = &service.request_lines("/api/faults/error?ua=huge", 1).await[0];
    assert_eq!(request["httpRequest"]["status"], 500);
    // Every line of the service, these two included, is within the limit.
    for line in service.lines() {
        assert!(line.len() < ENTRY_LIMIT, "a line of {} bytes", line.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_the_entry_the_trusted_front_end_appended() {
    // What Cloud Run's front end passes on when the client forged a header:
    // the client's own value first, the address it saw last.
    let forged = "203.0.113.66, 198.51.100.7";
    let cloud_run = spawn_service(&[]);
    let behind_a_load_balancer = spawn_service(&[("FORWARDED_FOR_TRUSTED_HOPS", "2")]);
    for (service, expected) in [
        (&cloud_run, "198.51.100.7"),
        (&behind_a_load_balancer, "203.0.113.66"),
    ] {
        let response = service
            .http
            .get(service.url("/api/books/1?xff=1"))
            .header("x-forwarded-for", forged)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let line = &service.request_lines("/api/books/1?xff=1", 1).await[0];
        assert_eq!(line["httpRequest"]["remoteIp"], expected, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_redacted_however_their_names_are_spelled() {
    let service = spawn_service(&[]);
    let url = "/api/books/1?pass%77ord=hunter2;page=2&ACCESS-TOKEN=t0k3n;%53ig=s1g";
    let response = service.get(url).await;
    assert_eq!(response.status(), 200);
    let redacted = "/api/books/1?pass%77ord=REDACTED;page=2&ACCESS-TOKEN=REDACTED;%53ig=REDACTED";
    let lines = service.request_lines(redacted, 1).await;
    assert_eq!(lines.len(), 1, "logged as {redacted}");
    for secret in ["hunter2", "t0k3n", "s1g"] {
        let leaked = service.entries_containing(secret);
        assert!(leaked.is_empty(), "{secret} leaked: {leaked:#?}");
    }
}
