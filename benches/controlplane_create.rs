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
//! 3. **allow-all webhooks**: a mutating and a validating webhook (a small Rust TLS server in
//!    the bench) that allow everything unchanged: the floor any pair of webhooks costs;
//! 4. **allow-all webhooks, the mutating one patches**: the same, with a one-annotation patch
//!    the API server has to apply: the floor for any mutating webhook that changes something;
//! 5. **registered, intercepted**: the mutating webhook patches each Deployment and the
//!    validating webhook judges it (policy `enforce`, 3 replicas: admitted, patched).
//!
//! Arms 2 to 5 alternate request by request, and arm 1 runs half before and half after them,
//! so drift on a shared machine hits all alike.
//! For each arm: the latency the client sees, and the API server's own (the audit log's
//! `stageTimestamp - requestReceivedTimestamp` of the `ResponseComplete` event).
//!
//! Run: `cargo bench --bench controlplane_create` (N = 1,000; `CREATES=200` for fewer), or
//! `benches/controlplane-create.sh`. Needs `scripts/controlplane.sh build`. Under `cargo test`
//! it runs a smoke version (20 creates per arm).

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, BedOptions};
use e2e_support::shared::run;
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::wait::{block_on, until};
use e2e_support::webhook::TestWebhook;
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

    let (arms, webhook_calls) = run(measure(&bed, creates));
    let audit = api_server_latencies(&bed);

    println!(
        "\nkube-apiserver create latency, {creates} Deployments per arm, one at a time (ms; \
         client = as the client sees it, api = the API server's own, from its audit log):"
    );
    println!(
        "\nas the API server timed each webhook call: {}",
        webhook_calls.join("; ")
    );
    println!(
        "{:<46} {:>8} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "arm", "p50", "p90", "p99", "mean", "api p50", "api p90", "api p99"
    );
    let mut medians = HashMap::new();
    for arm in &arms {
        let server: Vec<f64> = audit.get(&arm.ns).cloned().unwrap_or_default();
        let c = summary(&arm.client_ms);
        let s = summary(&server);
        medians.insert(arm.name, (c.0, s.0));
        println!(
            "{:<46} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   {:>8.2} {:>8.2} {:>8.2}",
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
    let (noop_client, noop_server) = medians["allow-all webhooks (floor: 2 calls, no patch)"];
    let (patch_client, patch_server) = medians["allow-all webhooks, the mutating one patches"];
    let pct = |a: f64, b: f64| (a / b - 1.0) * 100.0;
    println!(
        "\nmedian create latency added, as the client sees it / as the API server measures it:\n  \
         spreadguard {:+.1}% / {:+.1}%\n  two allow-all webhooks {:+.1}% / {:+.1}%\n  \
         two allow-all webhooks, one patching {:+.1}% / {:+.1}%",
        pct(with_client, base_client),
        pct(with_server, base_server),
        pct(noop_client, base_client),
        pct(noop_server, base_server),
        pct(patch_client, base_client),
        pct(patch_server, base_server),
    );
}

async fn measure(bed: &Bed, creates: usize) -> (Vec<Arm>, Vec<String>) {
    let client = bed.client().await;
    let arm = |name, ns| Arm {
        name,
        ns,
        client_ms: Vec::new(),
    };
    let mut arms = vec![
        arm(
            "not registered",
            api::namespace(&client, "bench-none", &[]).await,
        ),
        arm(
            "registered, namespace not opted in",
            api::namespace(&client, "bench-skipped", &[]).await,
        ),
        arm(
            "allow-all webhooks (floor: 2 calls, no patch)",
            api::namespace(&client, "bench-noop", &[]).await,
        ),
        arm(
            "allow-all webhooks, the mutating one patches",
            api::namespace(&client, "bench-patch", &[]).await,
        ),
        arm(
            "registered, intercepted",
            api::namespace(&client, "bench-judged", &opted_in("enforce")).await,
        ),
    ];
    let judged = arms.len() - 1;
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
    // Not registered: half before the webhooks exist, half after they are gone, so that
    // drift over the run does not favour either side.
    for i in 0..creates / 2 {
        let ms = create(&client, &arms[0].ns, i).await;
        arms[0].client_ms.push(ms);
    }

    // spreadguard from the chart, and a mutating and a validating webhook that allow
    // everything unchanged (a Rust TLS server like spreadguard's): the cost of any webhook.
    let noop_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // In the patching arm's namespace the mutating call answers with a one-annotation patch,
    // which the API server applies like spreadguard's.
    let patch_ns = arms[3].ns.clone();
    let noop = block_on(
        &noop_runtime,
        TestWebhook::start(Arc::new(move |request: &Value| {
            let mutating = request["kind"]["kind"] == "Deployment"
                && request["object"]["metadata"]["annotations"]["bench/patched"].is_null();
            if request["namespace"] == patch_ns.as_str() && mutating && request["dryRun"] != true {
                e2e_support::webhook::patched(&[json!({"op": "add",
                    "path": "/metadata/annotations/bench~1patched", "value": "yes"})])
            } else {
                json!({"allowed": true})
            }
        })),
    );
    let noop_configs = noop_configurations(&noop, &[&arms[2].ns, &arms[3].ns]);
    for config in &noop_configs {
        api::apply(&client, config).await;
    }
    let sg = Spreadguard::start(bed, Options::new("spreadguard")).await;
    sg.register(bed).await;
    sg.wait_mode(bed, &arms[judged].ns, "enforce").await;
    let probe = deployment(&arms[2].ns, "probe");
    until(
        Duration::from_secs(20),
        "the allow-all webhooks in effect",
        || async {
            let before = noop.calls.load(Ordering::SeqCst);
            api::create(&client, &probe, true).await.expect_ok("probe");
            if noop.calls.load(Ordering::SeqCst) >= before + 2 {
                Ok(())
            } else {
                Err("not called".into())
            }
        },
    )
    .await;

    // The registered arms, one request each in turn.
    for i in 0..creates {
        for arm in &mut arms[1..] {
            let ms = create(&client, &arm.ns, i).await;
            arm.client_ms.push(ms);
        }
    }
    // The intercepted ones really went through spreadguard, the others did not.
    let stored = api::get(&client, &deployment(&arms[judged].ns, "d-0"))
        .await
        .unwrap();
    assert_eq!(e2e_support::objects::spread_constraints(&stored).len(), 2);
    let stored = api::get(&client, &deployment(&arms[3].ns, "d-0"))
        .await
        .unwrap();
    assert_eq!(stored["metadata"]["annotations"]["bench/patched"], "yes");
    for arm in &arms[1..judged] {
        let stored = api::get(&client, &deployment(&arm.ns, "d-0"))
            .await
            .unwrap();
        assert!(e2e_support::objects::spread_constraints(&stored).is_empty());
    }
    assert!(noop.calls.load(Ordering::SeqCst) >= 4 * creates);

    // How long each webhook call took as the API server timed it (its own histogram).
    let metrics = api::send(
        &client,
        axum::http::Method::GET,
        "/metrics",
        "text/plain",
        None,
    )
    .await;
    let webhook_calls = webhook_durations(metrics.body.as_str().unwrap_or_default());

    // Gone again: the second half of the unregistered arm.
    sg.unregister(bed).await;
    for config in &noop_configs {
        let plural = format!("{}s", config["kind"].as_str().unwrap().to_lowercase());
        let name = config["metadata"]["name"].as_str().unwrap();
        api::delete_path(
            &client,
            &format!("/apis/admissionregistration.k8s.io/v1/{plural}/{name}"),
        )
        .await;
    }
    let single = e2e_support::objects::deployment(&arms[judged].ns, "single", Some(1));
    until(Duration::from_secs(20), "the webhooks gone", || async {
        let answer = api::create(&client, &single, true).await;
        if answer.ok() {
            Ok(())
        } else {
            Err(answer.message().to_owned())
        }
    })
    .await;
    sg.stop();
    for i in creates / 2..creates {
        let ms = create(&client, &arms[0].ns, i).await;
        arms[0].client_ms.push(ms);
    }
    noop_runtime.shutdown_background();
    (arms, webhook_calls)
}

/// Mean duration of each webhook's CREATE calls from `apiserver_admission_webhook_admission_duration_seconds`.
fn webhook_durations(metrics: &str) -> Vec<String> {
    let value = |suffix: &str, name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "apiserver_admission_webhook_admission_duration_seconds_{suffix}{{"
                )) && l.contains(&format!("name=\"{name}\""))
                    && l.contains("operation=\"CREATE\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    [
        "mutate.spreadguard.io",
        "validate.spreadguard.io",
        "noop-mutate.bench.test",
        "noop-validate.bench.test",
    ]
    .iter()
    .map(|name| {
        let (sum, count) = (value("sum", name), value("count", name));
        format!(
            "{name}: {count} calls, mean {:.2} ms",
            sum / count.max(1.0) * 1000.0
        )
    })
    .collect()
}

/// A mutating and a validating configuration calling `webhook` for `namespaces` only.
fn noop_configurations(webhook: &TestWebhook, namespaces: &[&str]) -> Vec<Value> {
    use base64::Engine as _;
    let hook = |path: &str| {
        json!({
            "name": format!("noop{}.bench.test", path.replace('/', "-")),
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "clientConfig": {
                "url": format!("{}{path}", webhook.url),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&webhook.ca_pem),
            },
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
                       "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
            ]},
        })
    };
    let mut mutating = hook("/mutate");
    mutating["reinvocationPolicy"] = json!("Never");
    vec![
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "bench-noop"}, "webhooks": [mutating]}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": {"name": "bench-noop"}, "webhooks": [hook("/validate")]}),
    ]
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
