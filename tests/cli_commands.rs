//! The small commands as a CI job or an operator runs them: `certs generate` (its refusals,
//! file modes and a reused CA), `policy check` and `policy schema`, and `serve`'s startup
//! lines in JSON (the startup error included) and its quiet `RUST_LOG=debug`.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");

fn run(args: &[&str], out: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    cmd.output().unwrap()
}

fn generate(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "certs",
        "generate",
        "--service",
        "spreadguard",
        "--namespace",
        "ops",
    ];
    args.extend_from_slice(extra);
    run(&args, Some(out))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn certs_generate_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let o = generate(&out, &["--days", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--days"), "{}", stderr(&o));
    for (service, namespace) in [
        ("Spreadguard", "ops"),
        ("spreadguard", "ops.example"),
        ("x-", "ops"),
    ] {
        let service = format!("--service={service}");
        let namespace = format!("--namespace={namespace}");
        let o = run(&["certs", "generate", &service, &namespace], Some(&out));
        assert!(!o.status.success(), "{service} {namespace}");
        assert!(stderr(&o).contains("DNS-1123"), "{}", stderr(&o));
    }
    assert!(!out.exists(), "nothing written");
}

#[cfg(unix)]
#[test]
fn certs_generate_writes_keys_0600_refuses_to_overwrite_and_reuses_a_ca() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let o = generate(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert_eq!(mode(&out.join("ca.key")), 0o600);
    assert_eq!(mode(&out.join("tls.key")), 0o600);
    let first_key = std::fs::read(out.join("tls.key")).unwrap();

    // Again: refused, nothing replaced.
    let o = generate(&out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("tls.key")).unwrap(), first_key);

    // With --force over a key someone made world-writable: 0600 again.
    std::fs::set_permissions(out.join("tls.key"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = generate(&out, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&out.join("tls.key")), 0o600);
    assert_ne!(std::fs::read(out.join("tls.key")).unwrap(), first_key);

    // Renewal with the same CA: only tls.crt and tls.key, signed by the CA given.
    let renewed = dir.path().join("renewed");
    let ca_cert = out.join("ca.crt");
    let ca_key = out.join("ca.key");
    let o = generate(
        &renewed,
        &[
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!renewed.join("ca.crt").exists() && !renewed.join("ca.key").exists());
    assert_eq!(mode(&renewed.join("tls.key")), 0o600);
    let ca = std::fs::read(&ca_cert).unwrap();
    let ca = x509_parser::pem::parse_x509_pem(&ca).unwrap().1;
    let ca = ca.parse_x509().unwrap();
    let leaf = std::fs::read(renewed.join("tls.crt")).unwrap();
    let leaf = x509_parser::pem::parse_x509_pem(&leaf).unwrap().1;
    let leaf = leaf.parse_x509().unwrap();
    assert_eq!(leaf.issuer(), ca.subject());
    leaf.verify_signature(Some(ca.public_key()))
        .expect("signed by the reused CA");

    // A CA key that is not the CA's: refused, without quoting either file.
    let o = generate(
        &dir.path().join("mismatch"),
        &[
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "--ca-key",
            renewed.join("tls.key").to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not belong"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("PRIVATE KEY"), "{}", stderr(&o));
}

#[test]
fn policy_check_exits_non_zero_with_the_servers_message() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "mode: warn\nrules: {HA004: warn}\n").unwrap();
    let o = run(&["policy", "check", good.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mode=warn"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "antiAffinityWeight: 101\n").unwrap();
    let o = run(&["policy", "check", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    let check_message = stderr(&o);
    assert!(
        check_message.contains("antiAffinityWeight"),
        "{check_message}"
    );

    // The same message as serve's startup error.
    let o = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().last(), check_message.lines().last());
}

#[test]
fn policy_schema_lists_every_rule_and_field() {
    let o = run(&["policy", "schema"], None);
    assert!(o.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema, spreadguard::policy_file::schema());
    let rules = schema["properties"]["rules"]["propertyNames"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), spreadguard::engine::RuleId::ALL.len());
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn startup_errors_and_the_startup_line_are_json_with_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let o = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let last = stderr(&o);
    let last = last.lines().last().unwrap();
    let event: serde_json::Value = serde_json::from_str(last).expect("a JSON line");
    assert_eq!(event["level"], "ERROR");
    assert!(
        event["error"].as_str().unwrap().contains("missing.yaml"),
        "{event}"
    );
}
