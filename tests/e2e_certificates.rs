//! Certificate rotation on a real control plane with `failurePolicy: Fail` (issue 17 item 3):
//! a CA rollover in the documented order (certs/README.md, "Renewing without a gap") drops
//! no create, and a renewal with the same CA by `spreadguard certs generate --ca-cert
//! --ca-key` changes nothing the API server checks. Creates run back to back through the
//! API server for the whole rotation.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, BedOptions};
use e2e_support::objects::deployment;
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::tls::Pem;
use e2e_support::wait::until;
use serde_json::json;
use spreadguard::certs::Authority;

/// A CA made by `spreadguard certs generate` (ca.crt and ca.key in `dir`), loaded as the
/// command's `--ca-cert/--ca-key` would load it.
fn generated_ca(dir: &Path) -> Authority {
    let status = Command::new(env!("CARGO_BIN_EXE_spreadguard"))
        .args([
            "certs",
            "generate",
            "--service",
            "spreadguard",
            "--namespace",
            "e2e",
        ])
        .arg("--out")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    Authority::load(&read("ca.crt"), &read("ca.key")).expect("the generated CA loads")
}

/// The serving certificate the bed's API server needs (it calls https://127.0.0.1:PORT).
fn serving(ca: &Authority, days: i64) -> Pem {
    let pem = ca.issue_server(&["127.0.0.1".to_owned()], days).unwrap();
    Pem {
        cert: pem.cert,
        key: pem.key,
    }
}

/// Waits until spreadguard serves a certificate expiring `days` from now (its expiry metric).
async fn served(sg: &Spreadguard, days: i64) {
    let want = (time::OffsetDateTime::now_utc() + time::Duration::days(days)).unix_timestamp();
    until(
        Duration::from_secs(10),
        "the new certificate served",
        || async {
            let expiry = sg
                .metrics()
                .lines()
                .find(|l| l.starts_with("spreadguard_certificate_expiry_timestamp_seconds"))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as i64;
            if (expiry - want).abs() <= 60 {
                Ok(())
            } else {
                Err(format!("expiry {expiry}, want {want}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_ca_rollover_in_order_drops_no_create_under_fail() {
    let bed = Bed::start(BedOptions::new("rotation"));
    let client = bed.client().await;
    let dir = tempfile::tempdir().unwrap();
    let old_ca = generated_ca(&dir.path().join("old"));
    let new_ca = generated_ca(&dir.path().join("new"));

    // Installed with the old CA (the bed's failurePolicy is Fail for both webhooks).
    let mut sg = Spreadguard::start(&bed, Options::new("spreadguard")).await;
    sg.rotate_certificate(&serving(&old_ca, 30));
    sg.upgrade(
        &bed,
        json!({"certificates": {"existingSecret": {"caBundle": old_ca.pem().cert}}}),
    );
    sg.register(&bed).await;
    served(&sg, 30).await;
    let ns = api::namespace(&client, "rotation", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;

    // Creates back to back, through the API server, for the whole rollover.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let (client, ns, stop) = (client.clone(), ns.clone(), stop.clone());
        tokio::spawn(async move {
            let mut results = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let d = deployment(&ns, &format!("rolling-{i}"), Some(3));
                let answer = api::create(&client, &d, false).await;
                results.push((i, answer.status, answer.message().to_owned()));
                i += 1;
            }
            results
        })
    };
    let started = Instant::now();
    let pause = || tokio::time::sleep(Duration::from_millis(1500));

    // 1. Both CAs in the bundle, the old certificate still served.
    let both = format!("{}{}", old_ca.pem().cert, new_ca.pem().cert);
    sg.upgrade(
        &bed,
        json!({"certificates": {"existingSecret": {"caBundle": both}}}),
    );
    sg.register_only(&bed).await;
    pause().await;
    // 2. The certificate the new CA signed, swapped in as the kubelet updates a Secret.
    sg.rotate_certificate(&serving(&new_ca, 20));
    served(&sg, 20).await;
    pause().await;
    // 3. The new CA alone.
    sg.upgrade(
        &bed,
        json!({"certificates": {"existingSecret": {"caBundle": new_ca.pem().cert}}}),
    );
    sg.register_only(&bed).await;
    pause().await;
    // 4. A renewal with the same CA (certs generate --ca-cert --ca-key): nothing to publish.
    sg.rotate_certificate(&serving(&new_ca, 10));
    served(&sg, 10).await;
    pause().await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = creator.await.unwrap();
    let failed: Vec<_> = results.iter().filter(|r| r.1 != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {} creates failed: {failed:?}",
        failed.len(),
        results.len()
    );
    assert!(results.len() >= 10, "only {} creates", results.len());
    eprintln!(
        "{} creates through a CA rollover and a same-CA renewal in {:.1} s under failurePolicy Fail, none failed",
        results.len(),
        started.elapsed().as_secs_f64()
    );

    // And the old CA is really gone: a certificate it signed is now refused.
    sg.stop();
    sg.rotate_certificate(&serving(&old_ca, 30));
    sg.spawn();
    sg.wait_ready().await;
    let refused = api::create(&client, &deployment(&ns, "old-ca", Some(3)), true).await;
    assert!(
        refused
            .message()
            .contains("x509: certificate signed by unknown authority"),
        "{refused:?}"
    );
}
