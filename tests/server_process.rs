//! The `spreadguard` binary as a process: `certs generate` writes usable material, and
//! `serve` turns unready on SIGTERM, keeps serving through the grace period and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");

#[test]
fn certs_generate_writes_a_ca_and_a_serving_pair_for_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let status = Command::new(BIN)
        .args([
            "certs",
            "generate",
            "--service",
            "spreadguard",
            "--namespace",
            "ops",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let cert = std::fs::read(out.join("tls.crt")).unwrap();
    let key = std::fs::read(out.join("tls.key")).unwrap();
    spreadguard::server::tls::load_serving_cert(&cert, &key).expect("a matching pair");

    let pem = x509_parser::pem::parse_x509_pem(&cert).unwrap().1;
    let parsed = pem.parse_x509().unwrap();
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    for expected in [
        "spreadguard",
        "spreadguard.ops",
        "spreadguard.ops.svc",
        "spreadguard.ops.svc.cluster.local",
    ] {
        assert!(
            names.iter().any(|n| n == &format!("DNSName({expected})")),
            "{expected} missing from {names:?}"
        );
    }
    let ca = std::fs::read(out.join("ca.crt")).unwrap();
    let ca = x509_parser::pem::parse_x509_pem(&ca).unwrap().1;
    assert!(ca.parse_x509().unwrap().is_ca());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }
}

/// A minimal HTTP/1.1 GET over plain TCP: the status code.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

#[test]
fn serve_turns_unready_on_sigterm_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args([
            "certs",
            "generate",
            "--service",
            "localhost",
            "--namespace",
            "test",
        ])
        .arg("--out")
        .arg(dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let mut child = Command::new(BIN)
        .arg("serve")
        .env("SPREADGUARD_TLS_CERT", dir.path().join("tls.crt"))
        .env("SPREADGUARD_TLS_KEY", dir.path().join("tls.key"))
        .env("SPREADGUARD_LISTEN", "127.0.0.1:0")
        .env("SPREADGUARD_ADMIN_LISTEN", "127.0.0.1:0")
        .env(
            "SPREADGUARD_NODES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nodes-3-zones.yaml"),
        )
        .env("SPREADGUARD_SHUTDOWN_GRACE", "1s")
        .env("SPREADGUARD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut admin = None;
    let mut startup = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if event["message"] == "starting spreadguard" {
            startup = Some(event.clone());
        }
        if event["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("admin port")
        {
            admin = event["addr"]
                .as_str()
                .map(|a| a.parse::<SocketAddr>().unwrap());
        }
    }
    let admin = admin.expect("the admin port is logged");
    // The startup line says what runs, with what policy, against which topology.
    let startup = startup.expect("a startup line");
    assert_eq!(startup["version"], env!("CARGO_PKG_VERSION"));
    assert!(startup["commit"].is_string());
    assert!(
        startup["policy"].as_str().unwrap().contains("mode=enforce"),
        "{startup}"
    );
    assert!(
        startup["topology"]
            .as_str()
            .unwrap()
            .contains("nodes-3-zones.yaml"),
        "{startup}"
    );
    std::thread::spawn(move || for _ in lines {});

    assert_eq!(get_status(admin, "/livez"), Some(200));
    assert_eq!(
        get_status(admin, "/readyz"),
        Some(200),
        "ready: certificate, default policy, assumed topology"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if get_status(admin, "/readyz") == Some(503) {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never turned false");
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// Entries of a directory.
fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits for the child to exit; its exit code.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_dev_removes_its_temporary_folder_after_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--dev"])
        .env("TMPDIR", tmp.path())
        .env("SPREADGUARD_LISTEN", "127.0.0.1:0")
        .env("SPREADGUARD_ADMIN_LISTEN", "127.0.0.1:0")
        .env("SPREADGUARD_SHUTDOWN_GRACE", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first line names the folder with the certificates and the private key.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    std::thread::spawn(move || for _ in lines {});
    let dir = first
        .rsplit(" in ")
        .next()
        .map(std::path::PathBuf::from)
        .expect("the folder is printed");
    assert!(dir.starts_with(tmp.path()), "{first}");
    assert!(
        dir.join("tls.key").exists(),
        "the key is there while serving"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

#[test]
fn serve_dev_removes_its_temporary_folder_after_a_failed_start() {
    let tmp = tempfile::tempdir().unwrap();
    // The port is taken, so binding fails after the dev material was written.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--dev"])
        .env("TMPDIR", tmp.path())
        .env(
            "SPREADGUARD_LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .env("SPREADGUARD_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(15));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        entries(tmp.path()).is_empty(),
        "left behind: {:?}",
        entries(tmp.path())
    );
    drop(taken);
}
