//! Slowloris on a real TLS listener on 127.0.0.1: clients that trickle a request's headers (or
//! the TLS handshake, or the body) a byte at a time, never finishing, are cut off by the read
//! timeout even though they keep sending, and an ordinary client is served promptly
//! meanwhile, on new connections and on a kept-alive one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use spreadguard::certs::Authority;
use spreadguard::server::{ServeArgs, Server};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

const REVIEW: &str = include_str!("fixtures/admission/deployment-create.json");
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slowloris connections of each kind.
const SLOW: usize = 4;
/// Time between two trickled bytes: far shorter than the timeout, so only a deadline on the
/// whole header (not an idle timer) can cut them off.
const DRIP: Duration = Duration::from_millis(100);

async fn start(dir: &std::path::Path, ca: &Authority) -> (SocketAddr, oneshot::Sender<()>) {
    let leaf = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()], 1)
        .unwrap();
    std::fs::write(dir.join("tls.crt"), &leaf.cert).unwrap();
    std::fs::write(dir.join("tls.key"), &leaf.key).unwrap();
    let mut args = ServeArgs::new(dir.join("tls.crt"), dir.join("tls.key"));
    args.listen = Some("127.0.0.1:0".parse().unwrap());
    args.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    args.nodes = Some(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nodes-3-zones.yaml"
    )));
    args.limits.header_read_timeout = HEADER_TIMEOUT;
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Server::bind(&args).await.expect("the server starts");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn connector(ca: &Authority) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().cert.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn tls(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Writes `prefix`, then one byte of `drip` every [`DRIP`] (cycling), until a write fails or
/// the server closes. Returns how long the connection lived and what the server sent.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    prefix: &[u8],
    drip: &[u8],
) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut received = Vec::new();
    if stream.write_all(prefix).await.is_err() || stream.flush().await.is_err() {
        return (started.elapsed(), received);
    }
    let mut buf = [0u8; 256];
    for byte in drip.iter().cycle() {
        tokio::select! {
            read = stream.read(&mut buf) => {
                // A close (0), a reset, or a 408/400 answer followed by a close: cut off.
                match read {
                    Ok(0) | Err(_) => return (started.elapsed(), received),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
            _ = tokio::time::sleep(DRIP) => {
                let sent = stream.write_all(std::slice::from_ref(byte)).await;
                if sent.is_err() || stream.flush().await.is_err() {
                    return (started.elapsed(), received);
                }
            }
        }
        assert!(
            started.elapsed() < HEADER_TIMEOUT * 10,
            "a slowloris connection was never cut off"
        );
    }
    unreachable!("cycle never ends")
}

/// POSTs the review on an HTTP/1.1 sender and checks it is answered with a review.
async fn post(send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> Duration {
    let started = Instant::now();
    send.ready().await.unwrap();
    let response = send
        .send_request(
            Request::post("/mutate")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(REVIEW.as_bytes())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(review["response"]["allowed"], true);
    started.elapsed()
}

async fn connect_http(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (send, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls(connector, addr).await))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_off_and_do_not_delay_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let (addr, stop) = start(dir.path(), &ca).await;
    let connector = connector(&ca);

    let mut slow = Vec::new();
    for i in 0..SLOW {
        // Headers that never end: a request line, then an endless header value.
        let stream = tls(&connector, addr).await;
        let prefix = format!(
            "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-slow-{i}: "
        );
        slow.push(tokio::spawn(async move {
            trickle(stream, prefix.as_bytes(), b"abcdefgh").await
        }));
        // A TLS handshake that never ends: a ClientHello record header announcing 16 KiB,
        // then its bytes one at a time.
        let tcp = TcpStream::connect(addr).await.unwrap();
        slow.push(tokio::spawn(async move {
            trickle(tcp, &[0x16, 0x03, 0x01, 0x40, 0x00, 0x01], &[0x00]).await
        }));
    }
    let opened = Instant::now();

    // Meanwhile an ordinary client is served promptly: a kept-alive connection and fresh ones.
    let mut kept = connect_http(&connector, addr).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        slowest = slowest.max(post(&mut kept).await);
        let mut fresh = connect_http(&connector, addr).await;
        slowest = slowest.max(post(&mut fresh).await);
    }
    // Generous: a request takes milliseconds; the point is that none waits for the timeout.
    assert!(
        slowest < Duration::from_millis(750),
        "slowest request took {slowest:?}"
    );
    assert!(
        opened.elapsed() < HEADER_TIMEOUT,
        "the ordinary client was done before the slowloris connections timed out"
    );

    // Every slowloris connection is cut off around the header timeout, still sending.
    for handle in slow {
        let (lived, _) = handle.await.unwrap();
        assert!(
            lived >= HEADER_TIMEOUT - Duration::from_millis(300),
            "cut off after only {lived:?}"
        );
        assert!(
            lived < HEADER_TIMEOUT + Duration::from_secs(3),
            "cut off only after {lived:?}"
        );
    }

    // And the server still serves on the kept-alive connection and new ones.
    post(&mut kept).await;
    post(&mut connect_http(&connector, addr).await).await;
    let _ = stop.send(());
}

/// Complete headers, then a body trickled a byte at a time: answered 408 and closed at the
/// read timeout (before the fix such a client held its connection slot for as long as it
/// kept sending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_answered_408_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let (addr, stop) = start(dir.path(), &ca).await;
    let connector = connector(&ca);

    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let stream = tls(&connector, addr).await;
        let prefix = "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{";
        slow.push(tokio::spawn(async move {
            trickle(stream, prefix.as_bytes(), b" ").await
        }));
    }
    let mut kept = connect_http(&connector, addr).await;
    for _ in 0..5 {
        let took = post(&mut kept).await;
        assert!(took < Duration::from_millis(750), "took {took:?}");
    }
    for handle in slow {
        let (lived, received) = handle.await.unwrap();
        let head = String::from_utf8_lossy(&received);
        assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
        assert!(
            lived >= HEADER_TIMEOUT - Duration::from_millis(300),
            "cut off after only {lived:?}"
        );
        assert!(
            lived < HEADER_TIMEOUT + Duration::from_secs(3),
            "cut off only after {lived:?}"
        );
    }
    post(&mut kept).await;
    let _ = stop.send(());
}
