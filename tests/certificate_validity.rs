//! Certificates outside their validity, on a real TLS listener: an expired or not-yet-valid
//! serving certificate (or client CA bundle) is refused on reload, the valid one staying in
//! service and the failure counted; at startup the server binds but stays unready, loudly,
//! until a valid one is read. And failed handshakes are counted by reason.

use std::time::Duration;

use hyper::StatusCode;
use spreadguard::certs::Authority;
use time::OffsetDateTime;

mod support;

use support::tls::*;

fn names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

const CERT_FAILURES: &str = r#"spreadguard_reloads_total{what="certificate",result="failure"}"#;
const CERT_OK: &str = r#"spreadguard_config_last_reload_successful{config="certificate"}"#;

#[tokio::test]
async fn an_expired_certificate_at_startup_serves_but_stays_unready_until_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    let now = OffsetDateTime::now_utc();
    let expired = ca
        .issue_server_between(
            &names(),
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    write(&dir.path().join("tls.crt"), &expired.cert);
    write(&dir.path().join("tls.key"), &expired.key);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;

    let (status, body) = admin_get(server.admin, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("certificate expired or not yet valid"),
        "{body}"
    );
    assert_eq!(metric(server.admin, "spreadguard_ready").await, Some(0.0));
    assert_eq!(metric(server.admin, CERT_OK).await, Some(0.0));

    // The renewed Secret arrives: ready, without a restart.
    let renewed = ca.issue_server(&names(), 1).unwrap();
    write(&dir.path().join("tls.key"), &renewed.key);
    write(&dir.path().join("tls.crt"), &renewed.cert);
    eventually("ready after renewal", async || {
        admin_get(server.admin, "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(metric(server.admin, CERT_OK).await, Some(1.0));
    assert_eq!(metric(server.admin, "spreadguard_ready").await, Some(1.0));
    let client = Client::new(&ca, &[b"h2"], None);
    assert_eq!(served_cert(&client, server.addr).await, der(&renewed));
}

#[tokio::test]
async fn expired_and_future_certificates_are_refused_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    let valid = ca.issue_server(&names(), 1).unwrap();
    write(&dir.path().join("tls.crt"), &valid.cert);
    write(&dir.path().join("tls.key"), &valid.key);
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let client = Client::new(&ca, &[b"h2"], None);
    assert_eq!(served_cert(&client, server.addr).await, der(&valid));
    assert_eq!(metric(server.admin, CERT_FAILURES).await, Some(0.0));

    let now = OffsetDateTime::now_utc();
    let expired = ca
        .issue_server_between(
            &names(),
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    let future = ca
        .issue_server_between(
            &names(),
            now + time::Duration::days(1),
            now + time::Duration::days(30),
        )
        .unwrap();
    for (n, bad) in [expired, future].into_iter().enumerate() {
        write(&dir.path().join("tls.key"), &bad.key);
        write(&dir.path().join("tls.crt"), &bad.cert);
        let failures = (n + 1) as f64;
        eventually("the reload refused and counted", async || {
            metric(server.admin, CERT_FAILURES).await == Some(failures)
        })
        .await;
        assert_eq!(metric(server.admin, CERT_OK).await, Some(0.0));
        // The valid certificate is still served, and the server is still ready.
        assert_eq!(served_cert(&client, server.addr).await, der(&valid));
        assert_eq!(admin_get(server.admin, "/readyz").await.0, StatusCode::OK);
        mutate_once(&client, server.addr).await.unwrap();
    }
}

#[tokio::test]
async fn an_expired_client_ca_bundle_is_unready_at_startup_and_refused_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let now = OffsetDateTime::now_utc();
    let old_clients = Authority::new_between(
        "old client CA",
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    )
    .unwrap();
    let mut args = args(dir.path(), &ca);
    let ca_path = dir.path().join("client-ca.crt");
    write(&ca_path, &old_clients.pem().cert);
    args.client_ca = Some(ca_path.clone());
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let (status, body) = admin_get(server.admin, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("client CA bundle expired"), "{body}");
    assert_eq!(metric(server.admin, CERT_OK).await, Some(0.0));

    // A valid bundle is read by the reload loop: ready, and its clients are served.
    let clients = Authority::new("client CA", 10).unwrap();
    write(&ca_path, &clients.pem().cert);
    eventually("ready with the new bundle", async || {
        admin_get(server.admin, "/readyz").await.0 == StatusCode::OK
    })
    .await;
    let identity = clients.issue_client("kube-apiserver", 1).unwrap();
    let client = Client::new(&ca, &[b"h2"], Some(&identity));
    mutate_once(&client, server.addr).await.unwrap();

    // The expired bundle again: refused, the valid one stays.
    write(&ca_path, &old_clients.pem().cert);
    eventually("the reload refused", async || {
        metric(server.admin, CERT_FAILURES).await == Some(1.0)
    })
    .await;
    mutate_once(&client, server.addr).await.unwrap();
    assert_eq!(admin_get(server.admin, "/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn failed_handshakes_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA", 10).unwrap();
    let clients = Authority::new("client CA", 10).unwrap();
    let strangers = Authority::new("someone else", 10).unwrap();
    let mut args = args(dir.path(), &ca);
    write(&dir.path().join("client-ca.crt"), &clients.pem().cert);
    args.client_ca = Some(dir.path().join("client-ca.crt"));
    args.limits.shutdown_grace = Duration::ZERO;
    let server = Running::start(args).await;
    let reason = |r: &str| format!("spreadguard_tls_handshake_failures_total{{reason=\"{r}\"}}");
    for r in [
        "client_rejected_certificate",
        "no_client_certificate",
        "unknown_ca",
        "protocol",
    ] {
        assert_eq!(
            metric(server.admin, &reason(r)).await,
            Some(0.0),
            "{r} starts at 0"
        );
    }

    // The API server's "x509: certificate signed by unknown authority": a client that does
    // not trust our CA.
    let identity = clients.issue_client("kube-apiserver", 1).unwrap();
    let distrustful = Client::new(&strangers, &[b"h2"], Some(&identity));
    assert!(mutate_once(&distrustful, server.addr).await.is_err());
    // No client certificate, and one from a CA not in the bundle.
    assert!(
        mutate_once(&Client::new(&ca, &[b"h2"], None), server.addr)
            .await
            .is_err()
    );
    let stranger = strangers.issue_client("kube-apiserver", 1).unwrap();
    assert!(
        mutate_once(&Client::new(&ca, &[b"h2"], Some(&stranger)), server.addr)
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let _ = tcp.read(&mut buf).await;
    }
    for r in [
        "client_rejected_certificate",
        "no_client_certificate",
        "unknown_ca",
        "protocol",
    ] {
        eventually(&format!("{r} counted"), async || {
            metric(server.admin, &reason(r)).await == Some(1.0)
        })
        .await;
    }
    // And a good client is still served.
    mutate_once(&Client::new(&ca, &[b"h2"], Some(&identity)), server.addr)
        .await
        .unwrap();
}
