//! What spreadguard adds to the real API server's create latency.
//!
//! A test bed (etcd and kube-apiserver only: no scheduler or controllers, so nothing but the
//! creates runs) and a release build of `spreadguard serve`, registered through the Helm
//! chart. Deployments are created one at a time over one keep-alive connection, in three
//! arms of N each, in one run:
//!
//! 1. **not registered**: no webhook configuration exists;
//! 2. **registered, namespace not opted in**: the configurations exist, the namespace is not
//!    selected (the API server evaluates the selector and calls nothing);
//! 3. **registered, intercepted**: the mutating webhook patches each Deployment and the
//!    validating webhook judges it (policy `enforce`, 3 replicas: admitted, patched).
//!
//! Arms 2 and 3 alternate request by request, so drift on a shared machine hits both alike.
//! For each arm: the latency the client sees, and the API server's own (the audit log's
//! `stageTimestamp - requestReceivedTimestamp` of the `ResponseComplete` event).
//!
//! Run: `cargo bench --bench controlplane_create` (N = 1,000; `CREATES=200` for fewer), or
//! `benches/controlplane-create.sh`. Needs `scripts/controlplane.sh build`. Under `cargo test`
//! it runs a smoke version (20 creates per arm).

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::collections::HashMap;
use std::time::Instant;

use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, BedOptions};
use e2e_support::shared::run;
use e2e_support::spreadguard::{Options, Spreadguard};
use serde_json::{Value, json};

/// A production-looking Deployment (about 2 KB): labels, resources, probes, env.
fn deployment(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop",
                       "app.kubernetes.io/version": "2.8.1", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": ns}
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"}},
                "spec": {
                    "containers": [{
                        "name": "api", "image": "registry.example.com/shop/checkout-api:2.8.1",
                        "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "postgres.shop.svc"},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 10},
                        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                                            "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
                    }],
                    "terminationGracePeriodSeconds": 30
                }
            }
        }
    })
}

struct Arm {
    name: &'static str,
    ns: String,
    client_ms: Vec<f64>,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let creates: usize = if full {
        std::env::var("CREATES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    } else {
        20
    };
    let mut options = BedOptions::new("bench-create");
    options.controllers = false;
    options.audit_log = true;
    let bed = Bed::start(options);

    let arms = run(measure(&bed, creates));
    let audit = api_server_latencies(&bed);

    println!(
        "\nkube-apiserver create latency, {creates} Deployments per arm, one at a time (ms; \
         client = as the client sees it, api = the API server's own, from its audit log):"
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "arm", "p50", "p90", "p99", "mean", "api p50", "api p90", "api p99"
    );
    let mut medians = HashMap::new();
    for arm in &arms {
        let server: Vec<f64> = audit.get(&arm.ns).cloned().unwrap_or_default();
        let c = summary(&arm.client_ms);
        let s = summary(&server);
        medians.insert(arm.name, (c.0, s.0));
        println!(
            "{:<40} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   {:>8.2} {:>8.2} {:>8.2}",
            arm.name, c.0, c.1, c.2, c.3, s.0, s.1, s.2
        );
        assert_eq!(
            server.len(),
            arm.client_ms.len(),
            "{}: audit events",
            arm.name
        );
    }
    let (base_client, base_server) = medians["not registered"];
    let (with_client, with_server) = medians["registered, intercepted"];
    println!(
        "\nspreadguard adds {:+.1}% to the median create latency as the client sees it, {:+.1}% as the API server measures it",
        (with_client / base_client - 1.0) * 100.0,
        (with_server / base_server - 1.0) * 100.0
    );
}

async fn measure(bed: &Bed, creates: usize) -> Vec<Arm> {
    let client = bed.client().await;
    let mut arms = vec![
        Arm {
            name: "not registered",
            ns: api::namespace(&client, "bench-none", &[]).await,
            client_ms: Vec::new(),
        },
        Arm {
            name: "registered, namespace not opted in",
            ns: api::namespace(&client, "bench-skipped", &[]).await,
            client_ms: Vec::new(),
        },
        Arm {
            name: "registered, intercepted",
            ns: api::namespace(&client, "bench-judged", &opted_in("enforce")).await,
            client_ms: Vec::new(),
        },
    ];
    // Warm the connection and the API server's caches.
    for i in 0..20 {
        api::create(
            &client,
            &deployment(&arms[0].ns, &format!("warm-{i}")),
            false,
        )
        .await
        .expect_ok("warm-up");
    }
    for i in 0..creates {
        let ms = create(&client, &arms[0].ns, i).await;
        arms[0].client_ms.push(ms);
    }

    let sg = Spreadguard::start(bed, Options::new("spreadguard")).await;
    sg.register(bed).await;
    sg.wait_mode(bed, &arms[2].ns, "enforce").await;
    for i in 0..creates {
        for arm in &mut arms[1..] {
            let ms = create(&client, &arm.ns, i).await;
            arm.client_ms.push(ms);
        }
    }
    // The intercepted ones really went through spreadguard.
    let stored = api::get(&client, &deployment(&arms[2].ns, "d-0"))
        .await
        .unwrap();
    assert_eq!(e2e_support::objects::spread_constraints(&stored).len(), 2);
    let stored = api::get(&client, &deployment(&arms[1].ns, "d-0"))
        .await
        .unwrap();
    assert!(e2e_support::objects::spread_constraints(&stored).is_empty());
    sg.stop();
    arms
}

async fn create(client: &kube::Client, ns: &str, i: usize) -> f64 {
    let object = deployment(ns, &format!("d-{i}"));
    let start = Instant::now();
    let answer = api::create(client, &object, false).await;
    let took = start.elapsed();
    answer.expect_ok("create");
    took.as_secs_f64() * 1000.0
}

/// Per namespace, the API server's own latency (ms) of each `d-*` create, from the audit log.
fn api_server_latencies(bed: &Bed) -> HashMap<String, Vec<f64>> {
    let mut out: HashMap<String, Vec<f64>> = HashMap::new();
    for e in bed.audit_events() {
        if e["stage"] != "ResponseComplete" || e["verb"] != "create" {
            continue;
        }
        let name = e["objectRef"]["name"].as_str().unwrap_or_default();
        if !name.starts_with("d-") || e["objectRef"]["resource"] != "deployments" {
            continue;
        }
        let (Some(start), Some(end)) = (
            seconds_of_day(e["requestReceivedTimestamp"].as_str().unwrap_or_default()),
            seconds_of_day(e["stageTimestamp"].as_str().unwrap_or_default()),
        ) else {
            continue;
        };
        let mut took = end - start;
        if took < 0.0 {
            took += 86_400.0; // crossed midnight
        }
        out.entry(
            e["objectRef"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
        .or_default()
        .push(took * 1000.0);
    }
    out
}

/// `2026-12-01T15:58:39.123456Z` → seconds since midnight.
fn seconds_of_day(timestamp: &str) -> Option<f64> {
    let time = timestamp.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// p50, p90, p99, mean.
fn summary(values: &[f64]) -> (f64, f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (
        q(0.50),
        q(0.90),
        q(0.99),
        v.iter().sum::<f64>() / v.len() as f64,
    )
}
