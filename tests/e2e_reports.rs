//! `serve --reports` on the real API server with the openreports.io CRD installed: two
//! `spreadguard serve` processes share the `coordination.k8s.io` Lease; the holder writes
//! one Report per namespace by server-side apply (field manager `spreadguard`) and deletes
//! the stale ones; when the holder is killed the other takes over within the lease duration
//! and writes in its place; a writer stopped by SIGTERM releases the Lease.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build` (or
//! `SPREADGUARD_E2E_BIN` pointing at a directory of them).

mod e2e_support;

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_support::api;
use e2e_support::bed::Bed;
use e2e_support::objects::deployment;
use e2e_support::procs::Proc;
use e2e_support::tls::Ca;
use e2e_support::wait::until;
use serde_json::{Value, json};

const LEASE_SECONDS: u64 = 4;

fn writer(bed: &Bed, dir: &std::path::Path, identity: &str, lease_ns: &str) -> Proc {
    let ca = Ca::new("reports-test");
    let pem = ca.server(&["127.0.0.1"]);
    let cert = dir.join(format!("{identity}.crt"));
    let key = dir.join(format!("{identity}.key"));
    std::fs::write(&cert, &pem.cert).unwrap();
    std::fs::write(&key, &pem.key).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_spreadguard"));
    command
        .arg("serve")
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--kubeconfig")
        .arg(&bed.kubeconfig)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--reports", "1s", "--reports-identity", identity])
        .args(["--reports-lease-namespace", lease_ns])
        .args(["--reports-lease-duration", &format!("{LEASE_SECONDS}s")])
        .args(["--log-format", "json"])
        .env_remove("SPREADGUARD_CONFIG")
        .env_remove("SPREADGUARD_NODES")
        .env("RUST_LOG", "info");
    Proc::spawn(identity, command, &dir.join(format!("{identity}.log")))
}

/// A GET that may find nothing.
async fn get(client: &kube::Client, path: &str) -> Option<Value> {
    let answer = api::send(
        client,
        axum::http::Method::GET,
        path,
        "application/json",
        None,
    )
    .await;
    answer.ok().then_some(answer.body)
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = get(
        client,
        &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/spreadguard-reports"),
    )
    .await?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

async fn report(client: &kube::Client, ns: &str) -> Option<Value> {
    get(
        client,
        &format!("/apis/openreports.io/v1alpha1/namespaces/{ns}/reports/spreadguard"),
    )
    .await
    .filter(|r| r["kind"] == "Report")
}

#[tokio::test]
async fn one_writer_applies_reports_deletes_stale_ones_and_hands_over() {
    let bed = Bed::shared();
    let client = bed.client().await;
    // The CRD as published (vendored for the schema tests).
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/schemas/openreports.io_reports.yaml"
    ))
    .unwrap();
    let crd: Value = serde_norway::from_str(&text).unwrap();
    api::send(
        &client,
        axum::http::Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        Some(&crd),
    )
    .await;
    until(Duration::from_secs(60), "the Report CRD served", || async {
        match get(&client, "/apis/openreports.io/v1alpha1/reports").await {
            Some(list) if list["kind"] == "ReportList" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let ns = api::namespace(&client, "reports", &[]).await;
    let gone = api::namespace(&client, "gone", &[]).await;
    api::create(&client, &deployment(&ns, "web", Some(1)), false)
        .await
        .expect_ok("web");
    // A report left from a workload that no longer exists.
    api::send(
        &client,
        axum::http::Method::POST,
        &format!("/apis/openreports.io/v1alpha1/namespaces/{gone}/reports"),
        "application/json",
        Some(
            &json!({"apiVersion": "openreports.io/v1alpha1", "kind": "Report",
                "metadata": {"name": "spreadguard", "namespace": gone,
                             "labels": {"app.kubernetes.io/managed-by": "spreadguard"}},
                "results": []}),
        ),
    )
    .await
    .expect_ok("stale report");

    let dir = tempfile::tempdir().unwrap();
    let mut a = writer(bed, dir.path(), "writer-a", &ns);
    let mut b = writer(bed, dir.path(), "writer-b", &ns);

    let written = until(
        Duration::from_secs(60),
        "the Report of web's namespace",
        || async {
            match report(&client, &ns).await {
                Some(r) => Ok(r),
                None => Err("no report yet".to_owned()),
            }
        },
    )
    .await;
    let web = written["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"][0]["name"] == "web" && r["rule"] == "HA001")
        .unwrap_or_else(|| panic!("{written}"));
    assert_eq!(web["result"], "fail");
    assert_eq!(web["source"], "spreadguard");
    let managers: Vec<(&str, &str)> = written["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(managers, [("spreadguard", "Apply")], "server-side apply");
    until(
        Duration::from_secs(30),
        "the stale report deleted",
        || async {
            match report(&client, &gone).await {
                None => Ok(()),
                Some(_) => Err("still there".to_owned()),
            }
        },
    )
    .await;

    // One holder; kill it (no release): the other takes over within the lease duration.
    let first = holder(&client, &ns).await.expect("a holder");
    let (dead, other) = if first == "writer-a" {
        (&mut a, "writer-b")
    } else {
        (&mut b, "writer-a")
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(dead.pid() as libc::pid_t, libc::SIGKILL) };
    let killed = Instant::now();
    until(
        Duration::from_secs(LEASE_SECONDS * 3),
        "the other writer holds the Lease",
        || async {
            match holder(&client, &ns).await {
                Some(h) if h == other => Ok(()),
                h => Err(format!("holder {h:?}")),
            }
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 2),
        "took over after {took:?}, lease {LEASE_SECONDS}s"
    );
    // And writes: a deleted report comes back.
    api::delete_path(
        &client,
        &format!("/apis/openreports.io/v1alpha1/namespaces/{ns}/reports/spreadguard"),
    )
    .await;
    until(
        Duration::from_secs(30),
        "the new writer's report",
        || async {
            match report(&client, &ns).await {
                Some(_) => Ok(()),
                None => Err("not yet".to_owned()),
            }
        },
    )
    .await;

    // SIGTERM: the writer stops cleanly and releases the Lease.
    let survivor = if other == "writer-a" { &mut a } else { &mut b };
    survivor.stop(Duration::from_secs(20));
    assert_eq!(survivor.exited().and_then(|s| s.code()), Some(0));
    assert_eq!(holder(&client, &ns).await, None, "released on SIGTERM");
}
