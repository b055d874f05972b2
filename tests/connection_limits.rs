//! Connections that cannot be hoarded, on a real TLS listener on 127.0.0.1:
//!
//! - idle connections (HTTP/2 ones that answer pings included) are closed after
//!   `--idle-timeout`, so a flood of them cannot hold every `--max-connections` slot: a
//!   normal client waiting behind them is served once they are closed;
//! - a request in progress is never cut by the idle timeout;
//! - `--header-read-timeout` runs from accept over the TLS handshake, the first bytes and the
//!   first request's headers together: trickling each part just within the timeout no longer
//!   buys the sum of the three.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use spreadguard::certs::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::tls::*;

const FLOOD: usize = 8;
const IDLE: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_so_a_normal_client_gets_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.max_connections = FLOOD;
    args.limits.idle_timeout = IDLE;
    // Long, so that only the idle timeout can free the slots.
    args.limits.header_read_timeout = Duration::from_secs(30);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;

    // Every slot taken by an HTTP/2 connection that made one request and then idles (its
    // client task answers the server's pings, as the API server's would).
    let client = Client::new(&ca, &[b"h2"], None);
    let mut flood = Vec::new();
    let mut first_idle = None;
    for _ in 0..FLOOD {
        let tls = client.connect(server.addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let request = Request::post("/mutate")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from_static(
                REVIEW.as_bytes(),
            )))
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
        first_idle.get_or_insert_with(Instant::now);
        flood.push((send, driver));
    }
    let flooded = Instant::now();
    let first_idle = first_idle.unwrap();

    // A normal client now waits for a slot, and is served once the idle ones are closed.
    let normal = Client::new(&ca, &[b"h2"], None);
    let answer = tokio::time::timeout(IDLE * 4, mutate_once(&normal, server.addr))
        .await
        .expect("the normal client is served after the idle timeout");
    let waited = flooded.elapsed();
    answer.unwrap();
    // No slot is freed before the first flood connection has idled for the whole timeout.
    let idled = first_idle.elapsed();
    assert!(
        idled >= IDLE - Duration::from_millis(100),
        "served {idled:?} after the first connection went idle: the flood did not hold the slots"
    );
    eprintln!(
        "{FLOOD} idle HTTP/2 connections on {FLOOD} slots: a normal client served {waited:?} after the flood, {idled:?} after the first went idle (idle timeout {IDLE:?})"
    );
    // Each flood connection was told to go away (GOAWAY) and closed.
    for (send, driver) in flood {
        tokio::time::timeout(Duration::from_secs(2), driver)
            .await
            .expect("the idle connection is closed")
            .unwrap()
            .unwrap();
        assert!(send.is_closed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_progress_is_not_cut_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.idle_timeout = Duration::from_millis(300);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Client::new(&ca, &[b"h2"], None);
    let tls = client.connect(server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    // The body arrives in pieces over three idle timeouts.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let request = Request::post("/mutate")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let sender = tokio::spawn(async move {
        let bytes = REVIEW.as_bytes();
        for chunk in bytes.chunks(bytes.len() / 3 + 1) {
            tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk))))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    sender.await.unwrap();
}

const T: Duration = Duration::from_millis(2000);

/// A slow TLS handshake, then a pause, then headers trickled: each part alone within the
/// timeout, but the connection is cut at the timeout counted from accept. Before, the
/// handshake, the first bytes and the headers each had the whole timeout (up to three times
/// it in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_deadline_covers_handshake_first_bytes_and_headers_together() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.header_read_timeout = T;
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;

    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let client = Client::new(&ca, &[alpn], None);
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let accepted = Instant::now();
        // The handshake starts late: 60% of the timeout gone.
        tokio::time::sleep(T * 6 / 10).await;
        let mut tls = client.connect_over(tcp).await.unwrap();
        // Then silence for another 30%.
        tokio::time::sleep(T * 3 / 10).await;
        // Then a request whose headers never end, a byte every 100 ms.
        let start: &[u8] = if alpn == b"h2" {
            // The HTTP/2 preface and an empty SETTINGS frame, then a HEADERS frame announcing
            // more bytes than are ever sent.
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x01\x00\x01\x04\x00\x00\x00\x01"
        } else {
            b"POST /mutate HTTP/1.1\r\nhost: localhost\r\nx-slow: "
        };
        tls.write_all(start).await.unwrap();
        let drip = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tls.write_all(b"a").await.is_err() {
                    break;
                }
                let mut buf = [0u8; 1024];
                match tokio::time::timeout(Duration::from_millis(1), tls.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
                if accepted.elapsed() > T * 4 {
                    panic!("never cut off");
                }
            }
            accepted.elapsed()
        });
        let lived = drip.await.unwrap();
        let alpn = String::from_utf8_lossy(alpn);
        assert!(
            lived >= T - Duration::from_millis(200),
            "{alpn}: cut off after {lived:?}, before the deadline"
        );
        assert!(
            lived < T + Duration::from_millis(700),
            "{alpn}: cut off only after {lived:?}: the deadline is not counted from accept"
        );
    }

    // And a client that takes its time within the deadline is served.
    let client = Client::new(&ca, &[b"http/1.1"], None);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(T / 2).await;
    let tls = client.connect_over(tcp).await.unwrap();
    let mut conn = Conn::open(tls).await.unwrap();
    let (status, _) = conn.post("/mutate", REVIEW).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}
