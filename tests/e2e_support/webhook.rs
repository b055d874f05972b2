//! A second admission webhook for tests (a sidecar injector, say), served over TLS on
//! 127.0.0.1 with a certificate from its own CA, and a TCP relay that delays connections to
//! a real server (a webhook slower than `timeoutSeconds`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use super::tls::Ca;

/// Computes the AdmissionReview `response` (without `uid`) for a `request`.
pub type Handler = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

pub struct TestWebhook {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    pub ca_pem: String,
    /// Reviews answered so far.
    pub calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestWebhook {
    /// Serves `handler` on the current runtime.
    pub async fn start(handler: Handler) -> TestWebhook {
        let ca = Ca::new("test webhook CA");
        let serving = ca.server(&["127.0.0.1"]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(serving.cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(serving.key.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let handler = handler.clone();
                            let counter = counter.clone();
                            async move {
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                let mut response = handler(&review["request"]);
                                response["uid"] = review["request"]["uid"].clone();
                                counter.fetch_add(1, Ordering::SeqCst);
                                let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                             "response": response});
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(out.to_string())))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestWebhook {
            url,
            ca_pem: ca.pem,
            calls,
            task,
        }
    }
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Allows with a JSON patch (base64, as the API requires).
pub fn patched(ops: &[Value]) -> Value {
    use base64::Engine as _;
    json!({
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(ops).unwrap()),
    })
}

/// A TCP relay to `target` that delivers everything the server sends `delay` late: the
/// webhook behind it answers every request, but late (connections, once up, stay slow: the
/// API server keeps its connections to a webhook open).
pub struct SlowRelay {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SlowRelay {
    pub async fn start(target: SocketAddr, delay: Duration) -> SlowRelay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = inbound.into_split();
                    let (mut server_read, mut server_write) = outbound.into_split();
                    // Client to server at once.
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    // Server to client: each chunk is held until `delay` after it arrived.
                    let (tx, mut rx) =
                        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
                    let reader = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = server_read.read(&mut buf).await {
                            if n == 0
                                || tx
                                    .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                                    .is_err()
                            {
                                break;
                            }
                        }
                    });
                    while let Some((at, chunk)) = rx.recv().await {
                        tokio::time::sleep_until(at + delay).await;
                        if client_write.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                    reader.abort();
                });
            }
        });
        SlowRelay { addr, task }
    }
}

impl Drop for SlowRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
