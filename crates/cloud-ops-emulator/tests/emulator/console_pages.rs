//! Console pages stay a size a browser opens, whatever the stores hold:
//! lists are paginated and long values shown as previews (issue #18).

use gcloud_sdk::google::devtools::cloudtrace::v2::{
    BatchWriteSpansRequest, Span, TruncatableString,
};

use crate::helpers::{ts, TestEmulator, PROJECT};

const MIB: usize = 1024 * 1024;

async fn get(emu: &TestEmulator, path: &str) -> String {
    let response = reqwest::get(format!("http://{}{path}", emu.emulator.local_addr()))
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_logs_page_of_300_large_entries_is_paged_and_small() {
    let emu = TestEmulator::start().await;
    let logs = emu.emulator.store().logs;
    // 300 lines of 150 KB; shown whole, each twice (the summary and the
    // payload), they made a page of 90 MB.
    let line = format!("{{\"message\":\"{}\"}}", "x".repeat(150_000));
    for _ in 0..300 {
        logs.ingest_line(&line);
    }
    let page = get(&emu, "/logs").await;
    assert!(page.len() < 2 * MIB, "the page is {} bytes", page.len());
    assert!(page.contains("id=\"older\""), "no link to older entries");
    let second = get(&emu, "/logs?page=1").await;
    assert!(second.contains("newer"));
    // One entry on its own page is shown whole.
    let id = logs.entries()[0].id;
    let whole = get(&emu, &format!("/logs?id={id}")).await;
    assert!(whole.len() > 150_000, "{}", whole.len());
}

#[tokio::test]
async fn a_trace_of_thousands_of_spans_is_paged() {
    let emu = TestEmulator::start().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for batch in 0..4u64 {
        let spans = (0..500u64)
            .map(|n| {
                let id = format!("{:016x}", batch * 500 + n + 1);
                Span {
                    name: format!("projects/{PROJECT}/traces/{trace}/spans/{id}"),
                    span_id: id,
                    display_name: Some(TruncatableString {
                        value: "x".repeat(128),
                        truncated_byte_count: 0,
                    }),
                    start_time: Some(ts(-2)),
                    end_time: Some(ts(-1)),
                    ..Span::default()
                }
            })
            .collect();
        emu.trace_writer()
            .batch_write_spans(BatchWriteSpansRequest {
                name: format!("projects/{PROJECT}"),
                spans,
            })
            .await
            .unwrap();
    }
    let page = get(&emu, &format!("/traces/{trace}")).await;
    assert_eq!(
        page.matches("span-detail\"").count(),
        300,
        "spans on the first page"
    );
    assert!(page.contains("id=\"next-page\""));
    let last = get(&emu, &format!("/traces/{trace}?page=6")).await;
    assert_eq!(last.matches("span-detail\"").count(), 2_000 - 6 * 300);
}
