//! The cluster caches against a fake API server: the real `kube` client and kube-runtime
//! reflectors over plain HTTP on 127.0.0.1 (see `support::fake_apiserver`).
//!
//! The fake plays what a real API server will not do on demand (bookmarks, `410 Gone`,
//! dropped connections, outages) and lets the tests count snapshot rebuilds in process. The
//! same behaviour against a real kube-apiserver (readiness, node and namespace changes, the
//! CLI through a kubeconfig) is in tests/e2e_*.rs.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spreadguard::cluster::Caches;
use spreadguard::engine::policy::Policy;
use spreadguard::metrics::Metrics;
use spreadguard::server::{State, router};
use support::fake_apiserver::FakeApiServer;
use support::sink::Sink;
use tower::ServiceExt;

const ZONE: &str = "topology.kubernetes.io/zone";
const DEBOUNCE: Duration = Duration::from_millis(50);

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn three_zone_cluster() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    for (name, zone) in [("node-a", "z1"), ("node-b", "z2"), ("node-c", "z3")] {
        api.put_node(name, &[(ZONE, zone), ("kubernetes.io/hostname", name)]);
    }
    api.put_namespace("team", &[]);
    api
}

fn start(api: &FakeApiServer) -> (Caches, Arc<Sink>) {
    let caches = Caches::default();
    let sink = Arc::new(Sink::default());
    caches.spawn(
        api.client(),
        sink.clone(),
        sink.clone(),
        Arc::new(Metrics::new()),
        DEBOUNCE,
    );
    (caches, sink)
}

#[tokio::test]
async fn readiness_waits_for_the_first_list_of_both_caches() {
    let api = three_zone_cluster().await;
    api.hold_lists(true);
    let (caches, sink) = start(&api);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!caches.synced(), "not ready before the first list");
    assert_eq!(sink.count(), 0, "nothing published before the first list");
    api.hold_lists(false);
    eventually("both caches synced", Duration::from_secs(5), || {
        caches.synced()
    })
    .await;
    eventually("first snapshot", Duration::from_secs(2), || {
        sink.count() == 1
    })
    .await;
    assert_eq!(sink.latest().unwrap().len(), 3);
}

#[tokio::test]
async fn a_node_label_change_reaches_the_topology_within_a_second() {
    let api = three_zone_cluster().await;
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced() && sink.count() == 1
    })
    .await;
    api.put_node(
        "node-c",
        &[(ZONE, "z2"), ("kubernetes.io/hostname", "node-c")],
    );
    let took = eventually("zone change seen", Duration::from_secs(5), || {
        sink.zone_of("node-c", ZONE).as_deref() == Some("z2")
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    api.delete_node("node-b");
    eventually("deletion seen", Duration::from_secs(2), || {
        sink.latest().unwrap().len() == 2
    })
    .await;
}

#[tokio::test]
async fn heartbeats_do_not_rebuild_the_snapshot_but_taints_do() {
    let api = three_zone_cluster().await;
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced() && sink.count() == 1
    })
    .await;
    for i in 0..20 {
        // Same labels and spec, new status: what a kubelet heartbeat looks like.
        api.put_node_with(
            "node-a",
            &[(ZONE, "z1"), ("kubernetes.io/hostname", "node-a")],
            json!({}),
            &format!("beat-{i}"),
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sink.count(), 1, "status-only updates rebuilt the topology");
    let taint = json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]});
    api.put_node_with(
        "node-a",
        &[(ZONE, "z1"), ("kubernetes.io/hostname", "node-a")],
        taint,
        "Ready",
    );
    eventually("taint seen", Duration::from_secs(2), || {
        sink.latest()
            .unwrap()
            .iter()
            .any(|n| n.name == "node-a" && n.taints.len() == 1)
    })
    .await;
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn a_burst_of_changes_is_coalesced() {
    let api = three_zone_cluster().await;
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced() && sink.count() == 1
    })
    .await;
    for i in 0..50 {
        api.put_node(&format!("burst-{i:02}"), &[(ZONE, "z1")]);
    }
    eventually("all 53 nodes", Duration::from_secs(3), || {
        sink.latest().unwrap().len() == 53
    })
    .await;
    assert!(
        sink.count() <= 5,
        "50 additions caused {} rebuilds",
        sink.count()
    );
}

#[tokio::test]
async fn a_dropped_watch_resumes_from_its_resource_version_without_a_relist() {
    let api = three_zone_cluster().await;
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced() && sink.count() == 1
    })
    .await;
    let watches = api.watches("nodes");
    api.drop_watches();
    api.put_node("node-d", &[(ZONE, "z1")]);
    eventually("node-d seen", Duration::from_secs(5), || {
        sink.latest().unwrap().len() == 4
    })
    .await;
    assert!(api.watches("nodes") > watches, "the watch was reopened");
    assert_eq!(api.lists("nodes"), 1, "resuming needs no relist");
}

#[tokio::test]
async fn a_relist_after_410_gone_converges() {
    let api = three_zone_cluster().await;
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced() && sink.count() == 1
    })
    .await;
    // The client misses changes while it is cut off, and by the time it is back the API
    // server has compacted them away: its watch from the old version gets 410 Gone.
    api.set_failing(true);
    api.put_node(
        "node-b",
        &[(ZONE, "z3"), ("kubernetes.io/hostname", "node-b")],
    );
    api.put_node("node-e", &[(ZONE, "z2")]);
    api.compact();
    api.set_failing(false);
    eventually("relisted state", Duration::from_secs(10), || {
        sink.latest().unwrap().len() == 4 && sink.zone_of("node-b", ZONE).as_deref() == Some("z3")
    })
    .await;
    assert!(
        api.gone("nodes") >= 1,
        "the old watch was answered 410 Gone"
    );
    assert!(api.lists("nodes") >= 2, "a 410 forces a relist");
    assert!(caches.synced());
}

#[tokio::test]
async fn losing_the_api_server_keeps_the_cache_and_raises_staleness() {
    let api = three_zone_cluster().await;
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced() && sink.count() == 1
    })
    .await;
    assert_eq!(caches.nodes_health.staleness(), Duration::ZERO);
    api.set_failing(true);
    eventually("staleness rises", Duration::from_secs(10), || {
        caches.nodes_health.staleness() > Duration::from_millis(500)
    })
    .await;
    assert!(
        caches.synced(),
        "a broken watch does not make the pod unready"
    );
    assert_eq!(sink.latest().unwrap().len(), 3, "stale zones beat no zones");
    api.set_failing(false);
    api.put_node("node-f", &[(ZONE, "z1")]);
    eventually("recovered", Duration::from_secs(15), || {
        caches.nodes_health.staleness() == Duration::ZERO && sink.latest().unwrap().len() == 4
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_api_server_at_start_is_not_ready_and_does_not_crash() {
    let api = three_zone_cluster().await;
    let client = api.client();
    api.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let caches = Caches::default();
    let sink = Arc::new(Sink::default());
    caches.spawn(
        client,
        sink.clone(),
        sink.clone(),
        Arc::new(Metrics::new()),
        DEBOUNCE,
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!caches.synced());
    assert_eq!(sink.count(), 0);
}

fn review(namespace: &str) -> Body {
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    });
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "7d3c1c2e-0000-4000-8000-000000000001",
                    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                    "name": "web", "namespace": namespace, "operation": "CREATE",
                    "userInfo": {"username": "alice"}, "object": object, "dryRun": false}
    });
    Body::from(review.to_string())
}

async fn validate(state: &Arc<State>, namespace: &str) -> Value {
    let request = Request::post("/validate")
        .header("content-type", "application/json")
        .body(review(namespace))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice::<Value>(&body).unwrap()["response"].clone()
}

#[tokio::test]
async fn namespace_labels_change_decisions() {
    let api = three_zone_cluster().await;
    api.put_namespace("team", &[("spreadguard.io/mode", "audit")]);
    api.put_namespace("opted-out", &[]);
    let caches = Caches::default();
    let policy = Policy {
        scope: spreadguard::engine::policy::Scope::OptIn,
        ..Policy::default()
    };
    let state = Arc::new(State::new(policy).with_namespaces(caches.namespaces.clone()));
    caches.spawn(
        api.client(),
        state.snapshots.clone(),
        state.snapshots.clone(),
        state.metrics().clone(),
        DEBOUNCE,
    );
    eventually("synced", Duration::from_secs(5), || caches.synced()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // optIn scope: a namespace without spreadguard.io/enabled is left alone.
    let r = validate(&state, "opted-out").await;
    assert_eq!(
        (
            r["allowed"].as_bool(),
            r["warnings"].as_array().map(Vec::len)
        ),
        (Some(true), None),
        "{r}"
    );

    api.put_namespace(
        "team",
        &[
            ("spreadguard.io/enabled", "true"),
            ("spreadguard.io/mode", "audit"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let audit = loop {
        let r = validate(&state, "team").await;
        if r["warnings"].is_array() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(audit["allowed"], true, "{audit}");
    let warnings = audit["warnings"].to_string();
    assert!(warnings.contains("HA001"), "{audit}");

    api.put_namespace(
        "team",
        &[
            ("spreadguard.io/enabled", "true"),
            ("spreadguard.io/mode", "enforce"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let enforce = loop {
        let r = validate(&state, "team").await;
        if r["allowed"] == false || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(enforce["allowed"], false, "{enforce}");
    assert_eq!(enforce["status"]["code"], 403, "{enforce}");
    assert!(
        enforce["status"]["message"]
            .as_str()
            .unwrap()
            .contains("HA001"),
        "{enforce}"
    );
}

#[tokio::test]
async fn the_topology_command_reads_the_cluster_through_a_kubeconfig() {
    let api = three_zone_cluster().await;
    api.put_node("node-x", &[("kubernetes.io/hostname", "node-x")]);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
            .args(["topology", "-o", "json", "--kubeconfig"])
            .arg(&kubeconfig)
            .env_remove("SPREADGUARD_NODES")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["source"], "the cluster");
    assert_eq!(report["zoneKey"], ZONE);
    assert_eq!(report["nodes"], 4);
    assert_eq!(report["unzonedNodes"], 1);
    let zones: Vec<&str> = report["zones"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|z| z["zone"].as_str())
        .collect();
    assert_eq!(zones, ["z1", "z2", "z3"]);
}

fn serving_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca = spreadguard::certs::Authority::new("test CA", 1).unwrap();
    let pem = ca.issue_server(&["localhost".to_owned()], 1).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &pem.cert).unwrap();
    std::fs::write(&key, &pem.key).unwrap();
    (cert, key)
}

#[tokio::test]
async fn serve_without_nodes_watches_the_cluster_and_is_ready_after_both_lists() {
    let api = three_zone_cluster().await;
    api.hold_lists(true);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = serving_files(dir.path());
    let mut args = spreadguard::server::ServeArgs::new(cert, key);
    args.kubeconfig = Some(api.write_kubeconfig(dir.path()));
    args.listen = Some("127.0.0.1:0".parse().unwrap());
    args.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = spreadguard::server::Server::bind(&args).await.unwrap();
    let state = server.state().clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let missing = state.readiness().unwrap_err();
    assert!(
        missing.contains(
            &"nodes, namespaces, autoscalers, disruption budgets, node pools and storage listed"
        ),
        "{missing:?}"
    );
    api.hold_lists(false);
    eventually("ready", Duration::from_secs(5), || {
        state.readiness().is_ok()
    })
    .await;
    assert_eq!(state.topology().zone_count(), 3);
    // A zone disappears from the cluster: the published topology follows.
    api.put_node(
        "node-c",
        &[(ZONE, "z1"), ("kubernetes.io/hostname", "node-c")],
    );
    eventually("two zones", Duration::from_secs(2), || {
        state.topology().zone_count() == 2
    })
    .await;
}

#[tokio::test]
async fn serve_without_nodes_or_cluster_configuration_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = serving_files(dir.path());
    let mut args = spreadguard::server::ServeArgs::new(cert, key);
    args.kubeconfig = Some(dir.path().join("no-such-kubeconfig"));
    let err = match spreadguard::server::Server::bind(&args).await {
        Ok(_) => panic!("bound without a cluster"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("--nodes") && err.contains("--assume-zones"),
        "{err}"
    );
}

fn deployment(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": "nginx"}]}}}
    })
}

#[tokio::test]
async fn audit_reads_a_live_cluster_with_its_nodes_namespaces_autoscalers_and_budgets() {
    let api = three_zone_cluster().await;
    api.put_namespace("shop", &[]);
    api.put_namespace("legacy", &[("spreadguard.io/mode", "off")]);
    api.put_object("deployments", deployment("shop", "web", 1));
    api.put_object("deployments", deployment("legacy", "old", 1));
    api.put_object("deployments", deployment("shop", "api", 3));
    api.put_object(
        "horizontalpodautoscalers",
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "api", "namespace": "shop"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                        "minReplicas": 1, "maxReplicas": 5}}),
    );
    let pdb = |name: &str, app: &str, spec: Value| {
        let mut p = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": name, "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": app}}}});
        for (k, v) in spec.as_object().unwrap() {
            p["spec"][k] = v.clone();
        }
        p
    };
    api.put_object(
        "poddisruptionbudgets",
        pdb("api", "api", json!({"maxUnavailable": "50%"})),
    );
    // Selects nothing: HA016.
    api.put_object(
        "poddisruptionbudgets",
        pdb("ghost", "ghost", json!({"maxUnavailable": 1})),
    );
    // Selects only the running Pod of a kind audit does not judge: not HA016.
    api.put_object(
        "poddisruptionbudgets",
        pdb("batch", "batch", json!({"minAvailable": 1})),
    );
    api.put_object(
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "nightly-x1", "namespace": "shop", "labels": {"app": "batch"},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "nightly", "uid": "2", "controller": true}]},
               "spec": {"containers": [{"name": "job", "image": "busybox"}]}}),
    );
    api.put_object(
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-abc", "namespace": "shop",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d", "uid": "1", "controller": true}]},
               "spec": {"containers": [{"name": "web", "image": "nginx"}]}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
            .args(["audit", "--cluster", "-o", "json", "--kubeconfig"])
            .arg(&kubeconfig)
            .env_remove("SPREADGUARD_NODES")
            .env_remove("SPREADGUARD_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["topology"]["source"], "nodes");
    assert_eq!(report["topology"]["zones"].as_object().unwrap().len(), 3);
    let results = report["results"].as_array().unwrap();
    let by_source = |s: &str| {
        results
            .iter()
            .find(|r| r["source"] == s)
            .unwrap_or_else(|| panic!("{s}: {report}"))
    };
    assert_eq!(
        results.len(),
        7,
        "3 Deployments, 1 HPA, 3 PDBs; the controller-owned Pods are judged through their \
         owners: {report}"
    );
    assert_eq!(
        (
            report["summary"]["workloads"].as_i64(),
            report["summary"]["autoscalers"].as_i64(),
            report["summary"]["disruptionBudgets"].as_i64()
        ),
        (Some(3), Some(1), Some(3))
    );
    let hpa = by_source("horizontalpodautoscalers/shop/api");
    assert_eq!(hpa["findings"][0]["rule"], "HA012", "{hpa}");
    let ghost = by_source("poddisruptionbudgets/shop/ghost");
    assert_eq!(ghost["findings"][0]["rule"], "HA016", "{ghost}");
    assert_eq!(
        ghost["outcome"]["warnings"],
        json!([]),
        "HA016 is the audit's alone: the webhook's answer does not carry it"
    );
    for quiet in [
        "poddisruptionbudgets/shop/api",
        "poddisruptionbudgets/shop/batch",
    ] {
        assert_eq!(by_source(quiet)["findings"], json!([]), "{quiet}");
    }
    let web = by_source("deployments/shop/web");
    assert_eq!(
        (
            web["decision"].as_str(),
            web["findings"][0]["rule"].as_str()
        ),
        (Some("deny"), Some("HA001"))
    );
    let old = by_source("deployments/legacy/old");
    assert_eq!(
        (old["mode"].as_str(), old["decision"].as_str()),
        (Some("off"), Some("allow")),
        "namespace label"
    );
    let api_entry = by_source("deployments/shop/api");
    assert!(
        api_entry["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HorizontalPodAutoscaler minReplicas 1"),
        "{api_entry}"
    );
    // What the decision took into account: the HPA, and the PDB with its arithmetic (50% of
    // the HPA's 1 replica, rounded up).
    assert_eq!(
        api_entry["autoscaler"],
        json!({"name": "api", "minReplicas": 1, "maxReplicas": 5})
    );
    assert_eq!(
        api_entry["disruptionBudgets"],
        json!([{"name": "api", "maxUnavailable": "50%", "allowedUnavailable": 1}])
    );
}

fn hpa(namespace: &str, target: &str, min: i64, status: Option<i64>) -> Value {
    let mut h = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": namespace},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                 "minReplicas": min, "maxReplicas": 10}});
    if let Some(current) = status {
        h["status"] = json!({"currentReplicas": current, "desiredReplicas": current});
    }
    h
}

fn pdb(namespace: &str, app: &str, max_unavailable: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": {"app": app}}}})
}

#[tokio::test]
async fn autoscalers_and_budgets_are_indexed_and_status_updates_republish_nothing() {
    let api = three_zone_cluster().await;
    api.put_object("horizontalpodautoscalers", hpa("shop", "web", 3, None));
    api.put_object("poddisruptionbudgets", pdb("shop", "web", json!(1)));
    let (caches, sink) = start(&api);
    eventually("synced", Duration::from_secs(5), || {
        caches.synced()
            && sink.autoscalers.lock().unwrap().len() == 1
            && sink.budgets.lock().unwrap().len() == 1
    })
    .await;
    let latest_min = || {
        sink.autoscalers
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .for_workload("shop", "apps", "Deployment", "web")
            .map(|a| a.min_replicas)
    };
    assert_eq!(latest_min(), Some(3));
    let web: std::collections::BTreeMap<String, String> =
        [("app".to_owned(), "web".to_owned())].into();
    let selecting = || {
        sink.budgets
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .selecting("shop", &web)
            .len()
    };
    assert_eq!(selecting(), 1);

    // The HPA controller writes the status every sync period: nothing decisions read changes.
    for current in 0..10 {
        api.put_object(
            "horizontalpodautoscalers",
            hpa("shop", "web", 3, Some(current)),
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        sink.autoscalers.lock().unwrap().len(),
        1,
        "status-only updates republished the autoscalers"
    );

    // A spec change does, and a deletion.
    api.put_object("horizontalpodautoscalers", hpa("shop", "web", 1, Some(3)));
    let took = eventually("minReplicas 1 seen", Duration::from_secs(5), || {
        latest_min() == Some(1)
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    api.delete_object("poddisruptionbudgets", "shop", "web");
    eventually("the PDB is gone", Duration::from_secs(5), || {
        selecting() == 0
    })
    .await;
}

#[tokio::test]
async fn the_webhook_counts_the_cached_autoscaler_and_budget() {
    let api = three_zone_cluster().await;
    api.put_namespace("shop", &[]);
    let caches = Caches::default();
    let state = Arc::new(State::new(Policy::default()).with_namespaces(caches.namespaces.clone()));
    caches.spawn(
        api.client(),
        state.snapshots.clone(),
        state.snapshots.clone(),
        state.metrics().clone(),
        DEBOUNCE,
    );
    eventually("synced", Duration::from_secs(5), || caches.synced()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // replicas: 1, written (no evidence otherwise): denied while no HPA is known.
    let r = validate(&state, "shop").await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"].as_str().unwrap().contains("HA001"),
        "{r}"
    );

    // The HPA's minReplicas 3 is the count now: allowed. A PDB that lets none of the 3 go
    // is a warning on the workload.
    api.put_object("horizontalpodautoscalers", hpa("shop", "web", 3, None));
    api.put_object("poddisruptionbudgets", pdb("shop", "web", json!(0)));
    let started = Instant::now();
    loop {
        let r = validate(&state, "shop").await;
        let warned = r["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w.as_str().unwrap().starts_with("HA013")));
        if r["allowed"] == true && warned {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the caches did not change the answer: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = state.metrics().encode();
    assert!(
        text.contains("spreadguard_cached_objects{cache=\"autoscalers\"} 1"),
        "{text}"
    );
}
