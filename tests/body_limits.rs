//! Request bodies at and beyond the limit, over TLS on 127.0.0.1, on both protocols the API
//! server may negotiate: the largest review the API server can legally send is answered, and
//! anything over the limit gets a prompt 413, even from an HTTP/2 client that sends its whole
//! body before it reads the answer.

mod support;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use hyper::body::Bytes;
use serde_json::{Value, json};
use spreadguard::certs::Authority;
use spreadguard::server::args::DEFAULT_MAX_BODY_BYTES;

use support::tls::*;

/// etcd's default request limit: no stored object is larger.
const ETCD_MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// A Deployment whose serialised size is `bytes`, most of it one annotation.
fn deployment_of_size(bytes: usize, image: &str) -> Value {
    let mut d: Value = serde_json::from_str::<Value>(REVIEW).unwrap()["request"]["object"].clone();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    let base = serde_json::to_vec(&d).unwrap().len();
    d["metadata"]["annotations"] = json!({"example.com/blob": "x".repeat(bytes - base - 40)});
    d
}

/// An UPDATE review carrying `object` and `oldObject` at etcd's limit each.
fn largest_update() -> String {
    let mut review: Value = serde_json::from_str(REVIEW).unwrap();
    review["request"]["operation"] = json!("UPDATE");
    review["request"]["object"] = deployment_of_size(ETCD_MAX_OBJECT_BYTES, "app:v2");
    review["request"]["oldObject"] = deployment_of_size(ETCD_MAX_OBJECT_BYTES, "app:v1");
    serde_json::to_string(&review).unwrap()
}

async fn server(max_body: Option<usize>) -> (tempfile::TempDir, Authority, Running) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("body limits CA", 1).unwrap();
    let mut args = args(dir.path(), &ca);
    if let Some(limit) = max_body {
        args.limits.max_body_bytes = limit;
    }
    let running = Running::start(args).await;
    (dir, ca, running)
}

#[tokio::test]
async fn the_largest_legal_update_is_answered_on_both_protocols() {
    let (_dir, ca, running) = server(None).await;
    let body = largest_update();
    assert!(
        body.len() > 2 * ETCD_MAX_OBJECT_BYTES && body.len() < DEFAULT_MAX_BODY_BYTES,
        "{} bytes",
        body.len()
    );
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let client = Client::new(&ca, &[alpn], None);
        let mut conn = Conn::open(client.connect(running.addr).await.unwrap())
            .await
            .unwrap();
        let (status, answer) = conn.post("/mutate", &body).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{alpn:?}: {answer}");
        assert_eq!(answer["response"]["allowed"], true);
        assert!(
            answer["response"]["patch"].is_string(),
            "{alpn:?}: a template change is mutated"
        );
    }
}

#[tokio::test]
async fn over_the_limit_is_413_over_http1() {
    let (_dir, ca, running) = server(Some(1024 * 1024)).await;
    let body = "x".repeat(3_500_000);
    let client = Client::new(&ca, &[b"http/1.1"], None);
    let mut conn = Conn::open(client.connect(running.addr).await.unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let (status, answer) = conn.post("/mutate", &body).await.unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Sends `body` on one HTTP/2 stream, all of it before reading the answer, as Python's h2
/// clients do; fails if the server stops granting flow-control credit first.
async fn h2_send_all_then_read(
    client: &Client,
    running: &Running,
    body: Bytes,
    declare_length: bool,
) -> Result<StatusCode, String> {
    let tls = client
        .connect(running.addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut h2, conn) = h2::client::handshake(tls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut request =
        hyper::Request::post("https://localhost/mutate").header("content-type", "application/json");
    if declare_length {
        request = request.header("content-length", body.len());
    }
    let (response, mut stream) = h2
        .send_request(request.body(()).unwrap(), false)
        .map_err(|e| e.to_string())?;
    let mut rest = body;
    while !rest.is_empty() {
        stream.reserve_capacity(rest.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .ok_or("the stream closed before the whole body was sent")?
            .map_err(|e| format!("the server stopped reading: {e}"))?;
        let chunk = rest.split_to(granted.min(rest.len()));
        stream
            .send_data(chunk, rest.is_empty())
            .map_err(|e| format!("the server stopped reading: {e}"))?;
    }
    let response = response.await.map_err(|e| e.to_string())?;
    Ok(response.status())
}

#[tokio::test]
async fn over_the_limit_is_413_over_http2_even_to_clients_that_send_everything_first() {
    let (_dir, ca, running) = server(Some(1024 * 1024)).await;
    let client = Client::new(&ca, &[b"h2"], None);
    let body = Bytes::from("x".repeat(3_500_000));
    for declare_length in [true, false] {
        let started = Instant::now();
        let status = tokio::time::timeout(
            Duration::from_secs(10),
            h2_send_all_then_read(&client, &running, body.clone(), declare_length),
        )
        .await
        .expect("answered before the client gave up")
        .unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
