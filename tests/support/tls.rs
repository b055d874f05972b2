//! Test support for the server over real TLS on 127.0.0.1: a running server with short
//! timings, a TLS client of either HTTP version, the admin port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use spreadguard::certs::{Authority, Pem};
use spreadguard::server::{ServeArgs, Server};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const REVIEW: &str = include_str!("../fixtures/admission/deployment-create.json");

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A server on 127.0.0.1 with short timings, stopped by dropping or firing `stop`.
pub struct Running {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn start(args: ServeArgs) -> Running {
        let server = Server::bind(&args).await.expect("the server starts");
        let addr = server.local_addr();
        let admin = server.admin_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            admin,
            stop: Some(stop),
            done,
        }
    }

    pub fn shutdown(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }
}

pub fn args(dir: &Path, ca: &Authority) -> ServeArgs {
    let leaf = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()], 1)
        .unwrap();
    write(&dir.join("tls.crt"), &leaf.cert);
    write(&dir.join("tls.key"), &leaf.key);
    let mut args = ServeArgs::new(dir.join("tls.crt"), dir.join("tls.key"));
    args.listen = Some("127.0.0.1:0".parse().unwrap());
    args.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    args.nodes = Some(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nodes-3-zones.yaml"
    )));
    args.limits.reload_interval = Duration::from_millis(50);
    args.limits.shutdown_grace = Duration::from_millis(300);
    args.limits.drain_timeout = Duration::from_secs(10);
    args.limits.header_read_timeout = Duration::from_secs(5);
    args
}

pub struct Client {
    connector: TlsConnector,
}

impl Client {
    pub fn new(ca: &Authority, alpn: &[&[u8]], identity: Option<&Pem>) -> Client {
        Client::with_versions(ca, alpn, identity, rustls::DEFAULT_VERSIONS)
    }

    pub fn with_versions(
        ca: &Authority,
        alpn: &[&[u8]],
        identity: Option<&Pem>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem().cert.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(pem) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Client {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        self.connect_over(tcp).await
    }

    /// The TLS handshake over a TCP connection opened earlier.
    pub async fn connect_over(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }
}

/// An HTTP connection of either version over TLS.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    pub async fn open(tls: TlsStream<TcpStream>) -> hyper::Result<Conn> {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Ok(Conn::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Ok(Conn::H1(send))
        }
    }

    pub async fn post(&mut self, path: &str, body: &str) -> Result<(StatusCode, Value), String> {
        let request = Request::post(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = match self {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(request).await
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(request).await
            }
        }
        .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

pub async fn mutate_once(client: &Client, addr: SocketAddr) -> Result<Value, String> {
    let tls = client.connect(addr).await.map_err(|e| e.to_string())?;
    let mut conn = Conn::open(tls).await.map_err(|e| e.to_string())?;
    let (status, body) = conn.post("/mutate", REVIEW).await?;
    if status != StatusCode::OK {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

/// A plain HTTP GET on the admin port: status and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = send
        .send_request(
            Request::get(path)
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The leaf certificate the server presents to a fresh connection.
pub async fn served_cert(client: &Client, addr: SocketAddr) -> Vec<u8> {
    let tls = client.connect(addr).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

pub fn der(pem: &Pem) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.cert.as_bytes())
        .unwrap()
        .to_vec()
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample on the admin port's `/metrics`: `series` is the name with its
/// labels as exposed, e.g. `spreadguard_ready` or `spreadguard_reloads_total{what="certificate",result="failure"}`.
pub async fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let (_, text) = admin_get(admin, "/metrics").await;
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}
