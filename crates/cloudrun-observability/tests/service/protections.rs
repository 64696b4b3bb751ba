//! The service's protections against hostile input (issue #18), over real
//! sockets: credentials are redacted from logged URLs however their names
//! are spelled.

use crate::helpers::spawn_service;

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
