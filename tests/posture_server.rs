//! `serve --ui`: the posture page and `/api/posture` on the admin port, off by default, and
//! the document it serves is the one `audit -o json` writes for the same workloads.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use spreadguard::audit::Report;
use spreadguard::certs::Authority;
use spreadguard::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workloads");
const NODES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nodes-3-zones.yaml");

/// A plain HTTP/1.0 GET: status, headers (lower-cased names) and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn start(ui: bool) -> (SocketAddr, oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 1).unwrap();
    let mut args = support::tls::args(dir.path(), &ca);
    args.ui = ui;
    args.ui_manifests = vec![PathBuf::from(MANIFESTS)];
    let server = Server::bind(&args).await.expect("the server starts");
    let admin = server.admin_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (admin, stop, dir)
}

#[tokio::test]
async fn the_page_is_off_by_default() {
    let (admin, _stop, _dir) = start(false).await;
    assert_eq!(get(admin, "/livez").await.0, 200);
    assert_eq!(get(admin, "/").await.0, 404);
    assert_eq!(get(admin, "/api/posture").await.0, 404);
}

#[tokio::test]
async fn ui_serves_the_page_and_the_document_audit_writes() {
    let (admin, _stop, _dir) = start(true).await;

    let (status, headers, page) = get(admin, "/").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        header(&headers, "content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(page.contains(r#"<script id="posture-data" type="application/json"></script>"#));
    assert!(!page.contains("http://") && !page.contains("https://"));

    let deadline = Instant::now() + Duration::from_secs(20);
    let (served, headers) = loop {
        let (status, headers, body) = get(admin, "/api/posture").await;
        if status == 200 {
            break (body, headers);
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no scan finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let mut served: Value = serde_json::from_str(&served).unwrap();
    let scan = served.as_object_mut().unwrap().remove("scan").unwrap();
    assert_eq!(scan["workloads"], "manifests");
    assert_eq!(scan["pods"], false);
    assert!(scan["at"].as_str().unwrap().ends_with('Z'));

    // The same manifests and nodes through audit's path: the same document.
    let policy = Default::default();
    let topology = spreadguard::load::topology(Some(NODES.as_ref()), &policy).unwrap();
    let docs = spreadguard::load::manifests(&[PathBuf::from(MANIFESTS)]).unwrap();
    let audit: Value = serde_json::from_str(&spreadguard::posture::document(&Report::build(
        &docs, &topology, &policy,
    )))
    .unwrap();
    assert_eq!(served, audit);
}
