//! The server over real TLS on 127.0.0.1, with certificates generated in each test: HTTP/1.1
//! and HTTP/2, client authentication, certificate rotation by `..data` symlink swap under
//! load, and graceful shutdown with a request in flight.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::Bytes;
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use spreadguard::certs::Authority;
use tokio::net::TcpStream;

mod support;

use support::tls::*;

// === tests ===

#[tokio::test]
async fn http1_and_http2_over_tls_with_an_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let root = Authority::new("test root", 10).unwrap();
    let intermediate = root.intermediate("test intermediate", 10).unwrap();
    let mut args = args(dir.path(), &intermediate);
    // Serve the chain (leaf + intermediate); clients trust only the root.
    let leaf = std::fs::read_to_string(dir.path().join("tls.crt")).unwrap();
    write(
        &dir.path().join("tls.crt"),
        &format!("{leaf}{}", intermediate.pem().cert),
    );
    args.limits.shutdown_grace = Duration::ZERO;
    let mut server = Running::start(args).await;

    for (alpn, expected) in [
        (&[b"h2" as &[u8]][..], Some(&b"h2"[..])),
        (&[b"http/1.1" as &[u8]][..], Some(&b"http/1.1"[..])),
        (&[][..], None),
    ] {
        let client = Client::new(&root, alpn, None);
        let tls = client.connect(server.addr).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), expected);
        let mut conn = Conn::open(tls).await.unwrap();
        for _ in 0..3 {
            let (status, body) = conn.post("/mutate", REVIEW).await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["response"]["allowed"], true);
            assert!(body["response"]["patch"].is_string());
        }
        let (status, body) = conn.post("/validate", "{").await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let client = Client::with_versions(&root, &[b"h2"], None, &[version]);
        let tls = client.connect(server.addr).await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
        let mut conn = Conn::open(tls).await.unwrap();
        let (status, _) = conn.post("/mutate", REVIEW).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }

    let (status, _) = admin_get(server.admin, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    let (_, metrics) = admin_get(server.admin, "/metrics").await;
    assert!(metrics.contains("spreadguard_certificate_expiry_timestamp_seconds "));
    assert!(
        metrics.contains("spreadguard_topology_zones 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"webhook="mutate",kind="Deployment",operation="CREATE",decision="patched""#
        )
    );

    server.shutdown();
    server.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn old_protocol_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    // rustls cannot speak TLS 1.1; a raw TLS 1.1 ClientHello must get an alert, not a session.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hello: &[u8] = &[
        0x16, 0x03, 0x02, 0x00, 0x2d, // record: handshake, TLS 1.1, 45 bytes
        0x01, 0x00, 0x00, 0x29, 0x03, 0x02, // ClientHello (41 bytes), TLS 1.1
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,    // random
        0x00, // session id
        0x00, 0x02, 0x00, 0x2f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0x01, 0x00, // no compression
    ];
    tcp.write_all(hello).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "expected an alert or a close, got {:?}",
        &buf[..n]
    );
}

#[tokio::test]
async fn client_ca_refuses_clients_without_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let clients = Authority::new("API server client CA", 10).unwrap();
    let strangers = Authority::new("someone else", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    write(&dir.path().join("client-ca.crt"), &clients.pem().cert);
    args.client_ca = Some(dir.path().join("client-ca.crt"));
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;

    let good = clients.issue_client("kube-apiserver", 1).unwrap();
    let client = Client::new(&ca, &[b"h2"], Some(&good));
    mutate_once(&client, server.addr)
        .await
        .expect("a client with a valid certificate is served");

    let bad = strangers.issue_client("kube-apiserver", 1).unwrap();
    for (why, client) in [
        ("no certificate", Client::new(&ca, &[b"h2"], None)),
        (
            "certificate from another CA",
            Client::new(&ca, &[b"http/1.1"], Some(&bad)),
        ),
    ] {
        // With TLS 1.3 the refusal may surface on the first read rather than the handshake.
        let result = mutate_once(&client, server.addr).await;
        assert!(result.is_err(), "{why}: {result:?}");
    }
}

/// A Kubernetes Secret volume: files are symlinks into `..data`, itself a symlink to a
/// timestamped directory; an update writes a new directory and renames a new `..data` over
/// the old one.
struct SecretVolume {
    dir: PathBuf,
    generation: usize,
}

impl SecretVolume {
    fn new(dir: &Path, files: &[(&str, &str)]) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: dir.to_owned(),
            generation: 0,
        };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        volume
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let version = format!(
            "..2026_11_24_00_00_{:02}.{}",
            self.generation, self.generation
        );
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        for (name, text) in files {
            write(&self.dir.join(&version).join(name), text);
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

#[tokio::test]
async fn certificate_rotation_by_symlink_swap_drops_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let first = ca.issue_server(&names, 1).unwrap();
    let second = ca.issue_server(&names, 2).unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    let mut volume = SecretVolume::new(
        &secret,
        &[("tls.crt", &first.cert), ("tls.key", &first.key)],
    );
    let mut args = args(dir.path(), &ca);
    args.tls_cert = Some(secret.join("tls.crt"));
    args.tls_key = Some(secret.join("tls.key"));
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Arc::new(Client::new(&ca, &[b"h2", b"http/1.1"], None));
    assert_eq!(served_cert(&client, server.addr).await, der(&first));

    // A long-lived connection opened before the swap must keep working after it.
    let mut kept = Conn::open(client.connect(server.addr).await.unwrap())
        .await
        .unwrap();

    // Clients send continuously, reconnecting often so that handshakes span the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let client = Client::new(&ca, &[alpn], None);
        let (stop, sent, failures, addr) =
            (stop.clone(), sent.clone(), failures.clone(), server.addr);
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = async {
                    let tls = client.connect(addr).await.map_err(|e| e.to_string())?;
                    let mut conn = Conn::open(tls).await.map_err(|e| e.to_string())?;
                    for _ in 0..5 {
                        let (status, _) = conn.post("/mutate", REVIEW).await?;
                        if status != StatusCode::OK {
                            return Err(status.to_string());
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<_, String>(())
                }
                .await;
                if let Err(e) = result {
                    failures.lock().unwrap().push(e);
                }
            }
        }));
    }

    let before = sent.load(Ordering::Relaxed);
    eventually("requests before the swap", async || {
        sent.load(Ordering::Relaxed) > before + 20
    })
    .await;
    volume.update(&[("tls.crt", &second.cert), ("tls.key", &second.key)]);
    eventually("the new certificate to be served", async || {
        served_cert(&client, server.addr).await == der(&second)
    })
    .await;
    let after = sent.load(Ordering::Relaxed);
    eventually("requests after the swap", async || {
        sent.load(Ordering::Relaxed) > after + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let (status, _) = kept.post("/mutate", REVIEW).await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "an existing connection is untouched"
    );

    let (_, metrics) = admin_get(server.admin, "/metrics").await;
    assert!(
        metrics.contains(r#"spreadguard_reloads_total{what="certificate",result="success"} 1"#),
        "{metrics}"
    );

    // A broken update keeps the current certificate and is counted.
    volume.update(&[("tls.crt", "not a certificate"), ("tls.key", &second.key)]);
    eventually("the failed reload to be counted", async || {
        admin_get(server.admin, "/metrics")
            .await
            .1
            .contains(r#"spreadguard_reloads_total{what="certificate",result="failure"} 1"#)
    })
    .await;
    assert_eq!(served_cert(&client, server.addr).await, der(&second));
}

#[tokio::test]
async fn policy_reload_by_symlink_swap_changes_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let mut volume = SecretVolume::new(&config, &[("policy.yaml", "mode: enforce\n")]);
    let mut args = args(dir.path(), &ca);
    args.config = Some(config.join("policy.yaml"));
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Client::new(&ca, &[b"h2"], None);
    let one_replica = include_str!("fixtures/admission/deployment-create-1-replica.json");
    let validate = async || {
        let tls = client.connect(server.addr).await.unwrap();
        let mut conn = Conn::open(tls).await.unwrap();
        conn.post("/validate", one_replica).await.unwrap().1["response"]["allowed"]
            .as_bool()
            .unwrap()
    };
    assert!(!validate().await, "enforce denies a single replica");

    volume.update(&[("policy.yaml", "mode: warn\n")]);
    eventually("the warn policy to apply", async || validate().await).await;

    volume.update(&[("policy.yaml", "mode: bogus\n")]);
    eventually("the failed reload to be counted", async || {
        admin_get(server.admin, "/metrics")
            .await
            .1
            .contains(r#"spreadguard_reloads_total{what="policy",result="failure"} 1"#)
    })
    .await;
    assert!(validate().await, "a bad policy keeps the previous one");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.shutdown_grace = Duration::from_millis(500);
    let mut server = Running::start(args).await;
    let client = Client::new(&ca, &[b"http/1.1"], None);

    // A request whose body arrives in two parts: in flight until the second is sent.
    let tls = client.connect(server.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
    let body = StreamBody::new(tokio_stream_from(rx));
    let request = Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let (head, tail) = REVIEW.split_at(REVIEW.len() / 2);
    tx.send(Ok(Frame::data(Bytes::from(head.to_owned()))))
        .await
        .unwrap();
    let in_flight = tokio::spawn(send.send_request(request));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (status, _) = admin_get(server.admin, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    server.shutdown();
    eventually("readiness to turn false", async || {
        admin_get(server.admin, "/readyz").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // During the grace period new connections are still served.
    mutate_once(&client, server.addr)
        .await
        .expect("accepted during the grace period");

    // Past the grace period the server drains: it waits for the request in flight.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !server.done.is_finished(),
        "still draining the open request"
    );
    tx.send(Ok(Frame::data(Bytes::from(tail.to_owned()))))
        .await
        .unwrap();
    drop(tx);
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["response"]["allowed"], true);

    tokio::time::timeout(Duration::from_secs(5), &mut server.done)
        .await
        .expect("the server exits after draining")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}

/// A `Stream` over an mpsc receiver, without pulling in tokio-stream.
fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn silent_clients_are_cut_off_by_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.header_read_timeout = Duration::from_millis(300);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Client::new(&ca, &[b"http/1.1"], None);

    // One client never starts the TLS handshake, another completes it and sends no headers.
    let started = Instant::now();
    let mut silent_tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut silent_tls = client.connect(server.addr).await.unwrap();

    // Meanwhile others are served at once.
    for _ in 0..5 {
        mutate_once(&client, server.addr).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(300));

    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), silent_tcp.read(&mut buf))
        .await
        .expect("the server closes a connection that never handshakes")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let closed = tokio::time::timeout(Duration::from_secs(3), silent_tls.read(&mut buf))
        .await
        .expect("the server closes a connection that sends no headers");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    args.limits.max_connections = 1;
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Client::new(&ca, &[b"http/1.1"], None);

    let mut first = Conn::open(client.connect(server.addr).await.unwrap())
        .await
        .unwrap();
    first.post("/mutate", REVIEW).await.unwrap();
    // The second connection is not accepted while the first holds the only slot.
    let second = tokio::spawn({
        let client = Client::new(&ca, &[b"http/1.1"], None);
        let addr = server.addr;
        async move { mutate_once(&client, addr).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "served beyond the connection limit");
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("served once the slot is free")
        .unwrap();
    assert!(answer.is_ok(), "{answer:?}");
}
