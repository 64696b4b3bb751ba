//! The service's protections against hostile input (issue #18), over real
//! sockets: the client address is the `X-Forwarded-For` entry the trusted
//! front end wrote, and credentials are redacted from logged URLs however
//! their names are spelled.

use crate::helpers::spawn_service;

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
