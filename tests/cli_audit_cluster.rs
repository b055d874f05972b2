//! `spreadguard audit --cluster` reading running Pods: the real binary against the in-test
//! fake API server, which pages its lists (`limit`/`continue`) as the real one does.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::fake_apiserver::FakeApiServer;
use support::objects::{PodState, deployment, pod, replicaset, statefulset};

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");
const ZONE: &str = "topology.kubernetes.io/zone";

/// A 3-zone cluster (two nodes in a, one each in b and c, one unzoned) running:
/// - `web`: 3 ready pods, all in zone a, though its ScheduleAnyway zone spread aims for one
///   per zone (HA022);
/// - `api`: one ready pod per zone and one Pending, PDB minAvailable 2;
/// - `db` (StatefulSet): ready in a and c, not ready in b, PDB minAvailable 2 (losing a or
///   c leaves 1);
/// - `debug`: a bare pod in b;
/// - `batch`: 1,200 ready pods round-robin over a, b, c (so the pod list takes 3 pages);
/// - a finished Job pod, which is not counted.
async fn cluster() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    for (node, zone) in [
        ("a1", Some("a")),
        ("a2", Some("a")),
        ("b1", Some("b")),
        ("c1", Some("c")),
        ("x1", None),
    ] {
        let mut labels = vec![("kubernetes.io/hostname", node)];
        if let Some(z) = zone {
            labels.push((ZONE, z));
        }
        api.put_node(node, &labels);
    }
    api.put_namespace("shop", &[]);
    for (name, replicas) in [("web", 3), ("api", 4), ("batch", 1200)] {
        let mut d = deployment("shop", name, replicas);
        if name == "web" {
            d["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}}}]);
        }
        api.put_object("deployments", d);
        api.put_object(
            "replicasets",
            replicaset("shop", &format!("{name}-5d9"), name, replicas),
        );
    }
    api.put_object("statefulsets", statefulset("shop", "db", 3));
    for app in ["api", "db"] {
        api.put_object(
            "poddisruptionbudgets",
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": app, "namespace": "shop"},
                   "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": app}}}}),
        );
    }
    let rs = |n: &'static str| Some(("ReplicaSet", n));
    let mut pods = vec![
        pod("shop", "web-1", rs("web-5d9"), Some("a1"), PodState::Ready),
        pod("shop", "web-2", rs("web-5d9"), Some("a2"), PodState::Ready),
        pod("shop", "web-3", rs("web-5d9"), Some("a1"), PodState::Ready),
        pod("shop", "api-1", rs("api-5d9"), Some("a1"), PodState::Ready),
        pod("shop", "api-2", rs("api-5d9"), Some("b1"), PodState::Ready),
        pod("shop", "api-3", rs("api-5d9"), Some("c1"), PodState::Ready),
        pod("shop", "api-4", rs("api-5d9"), None, PodState::Pending),
        pod(
            "shop",
            "db-0",
            Some(("StatefulSet", "db")),
            Some("a2"),
            PodState::Ready,
        ),
        pod(
            "shop",
            "db-1",
            Some(("StatefulSet", "db")),
            Some("b1"),
            PodState::NotReady,
        ),
        pod(
            "shop",
            "db-2",
            Some(("StatefulSet", "db")),
            Some("c1"),
            PodState::Ready,
        ),
        pod("shop", "debug", None, Some("b1"), PodState::Ready),
    ];
    let mut done: Value = serde_json::from_str(&pod(
        "shop",
        "job-1",
        Some(("Job", "nightly")),
        Some("c1"),
        PodState::NotReady,
    ))
    .unwrap();
    done["status"]["phase"] = json!("Succeeded");
    pods.push(done.to_string());
    let nodes = ["a1", "b1", "c1"];
    for i in 0..1200 {
        pods.push(pod(
            "shop",
            &format!("batch-{i}"),
            rs("batch-5d9"),
            Some(nodes[i % 3]),
            PodState::Ready,
        ));
    }
    api.put_bulk("pods", pods);
    api
}

async fn run(api: &FakeApiServer, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // The fake API server keeps serving on the runtime while the binary runs.
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["audit", "--cluster", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(&args)
            .env_remove("SPREADGUARD_NODES")
            .env_remove("SPREADGUARD_CONFIG")
            .env_remove("KUBECONFIG")
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

fn result<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("no result for {kind} {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_placement_per_workload_and_what_each_zone_loss_takes() {
    let api = cluster().await;
    let out = run(&api, &["-o", "json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(api.lists("pods"), 3, "1,212 pods in pages of 500");

    let web_entry = result(&report, "Deployment", "web");
    let ha022: Vec<&Value> = web_entry["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "HA022")
        .collect();
    assert_eq!(ha022.len(), 1, "{web_entry}");
    assert_eq!(ha022[0]["severity"], "warn");
    let message = ha022[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("3 of 3 ready pods in zone a, its zone spread aims for 1 there (now a=3,b=0,c=0, expected a=1,b=1,c=1): losing a leaves 0, not 2; a rollout"),
        "{message}"
    );
    assert_eq!(
        web_entry["outcome"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w.as_str().unwrap().contains("HA022"))
            .count(),
        0,
        "HA022 is the audit's alone: the webhook's answer does not carry it"
    );
    let web = &web_entry["actual"];
    assert_eq!(web["zones"], json!({"a": 3, "b": 0, "c": 0}));
    assert_eq!(
        web["worstZoneLoss"],
        json!({"zone": "a", "lost": 3, "left": 0})
    );

    let api_ = &result(&report, "Deployment", "api")["actual"];
    assert_eq!(api_["zones"], json!({"a": 1, "b": 1, "c": 1}));
    assert_eq!(
        (&api_["ready"], &api_["unscheduled"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(
        api_["worstZoneLoss"],
        json!({"zone": "a", "lost": 1, "left": 2})
    );

    // The budget's view of a zone drain: 2 of 3 must stay ready, 1 may go now.
    assert_eq!(
        api_["budget"],
        json!({"name": "api", "desiredHealthy": 2, "disruptionsAllowed": 1, "zones": {
            "a": {"ready": 1, "evictable": 1, "left": 2, "belowBudget": false},
            "b": {"ready": 1, "evictable": 1, "left": 2, "belowBudget": false},
            "c": {"ready": 1, "evictable": 1, "left": 2, "belowBudget": false}}})
    );
    assert_eq!(
        result(&report, "Deployment", "api")["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "HA022")
            .count(),
        0,
        "api has no zone constraint of its own as stored: nothing is promised"
    );

    let db = &result(&report, "StatefulSet", "db")["actual"];
    assert_eq!(db["zones"], json!({"a": 1, "b": 0, "c": 1}));
    assert_eq!(db["notReady"], 1);
    assert_eq!(db["budget"]["disruptionsAllowed"], 0);
    assert_eq!(db["budget"]["zones"]["a"]["belowBudget"], true);

    let debug = &result(&report, "Pod", "debug")["actual"];
    assert_eq!(debug["zones"], json!({"a": 0, "b": 1, "c": 0}));
    assert_eq!(result(&report, "Pod", "debug")["source"], "pods/shop/debug");

    let batch = &result(&report, "Deployment", "batch")["actual"];
    assert_eq!(batch["zones"], json!({"a": 400, "b": 400, "c": 400}));

    // The Deployments' ReplicaSets are not judged on their own, and no controller-owned pod
    // became a workload.
    let kinds: Vec<(&str, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds.iter().filter(|(k, _)| *k == "Pod").count(),
        1,
        "{kinds:?}"
    );

    let zones = &report["zoneLoss"];
    let names = |zone: &str| -> Vec<String> {
        zones[zone]["loseAll"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                format!(
                    "{}/{}",
                    w["kind"].as_str().unwrap(),
                    w["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names("a"), ["Deployment/web"]);
    assert_eq!(names("b"), ["Pod/debug"]);
    assert_eq!(names("c"), Vec::<String>::new());
    assert_eq!(zones["a"]["workloads"], 4, "web, api, batch, db");
    assert_eq!(
        zones["a"]["belowBudget"],
        json!([{"kind": "StatefulSet", "namespace": "shop", "name": "db", "budget": "db",
                "left": 1, "desiredHealthy": 2}])
    );
    assert_eq!(
        zones["b"]["belowBudget"],
        json!([]),
        "db has no ready pod in b"
    );
    assert_eq!(zones["a"]["readyPods"], 3 + 1 + 400 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_starts_with_the_zone_summary_and_shows_what_runs() {
    let api = cluster().await;
    let out = run(&api, &["--color", "never"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("If a zone is lost"), "{text}");
    let summary = text.find("If a zone is lost").expect(&text);
    let first_verdict = text
        .find("ALLOW")
        .into_iter()
        .chain(text.find("DENY"))
        .min()
        .unwrap();
    assert!(summary < first_verdict, "{text}");
    assert!(text.contains("  a: 405 ready pods of 4 workloads; 1 would lose every ready pod, 1 fall below their PodDisruptionBudget\n      Deployment shop/web (3 ready)\n      StatefulSet shop/db (1 left, PodDisruptionBudget db requires 2)\n"), "{text}");
    assert!(
        text.contains("budget db: 2 must stay ready, 0 evictions allowed now; losing a (leaves 1), c (leaves 1) takes it below; a drain blocks in a after 0 of 1, c after 0 of 1"),
        "{text}"
    );
    assert!(
        text.contains("HA022 warn  3 of 3 ready pods in zone a"),
        "{text}"
    );
    assert!(
        text.contains("running: 3 ready (a=3,b=0,c=0); losing a leaves 0 of 3"),
        "{text}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("listing pods"),
        "no progress bar when stdout is not a terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reports_carry_the_actual_zone_loss() {
    let api = cluster().await;
    let out = run(&api, &["-o", "openreports"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    let objects: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let web = objects
        .iter()
        .flat_map(|o| o["results"].as_array().unwrap())
        .find(|r| r["resources"][0]["name"] == "web")
        .unwrap();
    assert_eq!(web["properties"]["readyPerZone"], "a=3,b=0,c=0");
    assert_eq!(web["properties"]["actualLeftAfterWorstZone"], "0");
    assert_eq!(web["resources"][0]["uid"], "uid-deploy-shop-web");
}
