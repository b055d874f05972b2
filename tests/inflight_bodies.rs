//! The memory of request bodies in flight is bounded across all connections: many clients
//! that each send most of a large body and then stall get 503 at once beyond
//! `--max-inflight-body-bytes`, the process's resident memory stays within the budget, a
//! normal review is still answered, and the budget comes back when the stalled clients are
//! cut off. One test in its own process, so that the resident memory is its own.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use spreadguard::certs::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::tls::*;

const MIB: usize = 1024 * 1024;
const BODY: usize = 3 * MIB;
const SENT: usize = BODY - 100 * 1024;
const BUDGET: usize = 8 * MIB;
const CLIENTS: usize = 40;

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_held_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.max_body_bytes = BODY + 1024;
    args.limits.max_inflight_body_bytes = BUDGET;
    args.limits.header_read_timeout = Duration::from_secs(4);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Client::new(&ca, &[b"http/1.1"], None);
    mutate_once(&client, server.addr).await.unwrap();
    let before = rss_bytes();

    // Each client declares a 3 MiB body, sends all but 100 KiB of it, and stalls.
    let filler: &'static [u8] = Box::leak(vec![b' '; SENT].into_boxed_slice());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut tls = client.connect(server.addr).await.unwrap();
        clients.push(tokio::spawn(async move {
            let head = format!(
                "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {BODY}\r\n\r\n"
            );
            tls.write_all(head.as_bytes()).await.unwrap();
            let (mut read, mut write) = tokio::io::split(tls);
            let writer = tokio::spawn(async move {
                let _ = write.write_all(filler).await;
                let _ = write.flush().await;
                // Stall, holding the connection open.
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(write);
            });
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            let started = Instant::now();
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        answer.extend_from_slice(&buf[..n]);
                        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            writer.abort();
            (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
        }));
    }

    // While they stall: the budget is full, not exceeded, and memory stays near it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let in_flight = metric(server.admin, "spreadguard_inflight_body_bytes")
        .await
        .unwrap();
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "{CLIENTS} stalled {} MiB bodies: {:.1} MiB in flight (budget {} MiB), resident memory +{:.1} MiB",
        BODY / MIB,
        in_flight / MIB as f64,
        BUDGET / MIB,
        grown as f64 / MIB as f64
    );
    assert!(in_flight <= BUDGET as f64, "{in_flight} bytes in flight");
    assert!(
        in_flight >= (BODY * 2) as f64,
        "two bodies fit: {in_flight}"
    );
    // Without the budget: 40 × 3 MiB ≈ 120 MiB.
    assert!(
        grown < 40 * MIB,
        "resident memory grew by {} MiB",
        grown / MIB
    );
    // A normal review still fits beside them.
    mutate_once(&client, server.addr).await.unwrap();

    // The refused ones were answered 503 at once; the admitted ones 408 at the read timeout.
    let mut refused = 0;
    let mut timed_out = 0;
    for handle in clients {
        let (answer, took) = handle.await.unwrap();
        if answer.starts_with("HTTP/1.1 503") {
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            assert!(took < Duration::from_secs(2), "503 after {took:?}");
            refused += 1;
        } else if answer.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        } else {
            panic!("unexpected answer {answer:?}");
        }
    }
    assert_eq!(refused + timed_out, CLIENTS);
    assert!(timed_out <= BUDGET / BODY, "{timed_out} admitted");
    assert_eq!(
        metric(
            server.admin,
            r#"spreadguard_http_rejections_total{code="503",reason="body_budget"}"#
        )
        .await,
        Some(refused as f64)
    );
    eventually("the budget is given back", async || {
        metric(server.admin, "spreadguard_inflight_body_bytes").await == Some(0.0)
    })
    .await;
    let _ = StatusCode::OK;
}
