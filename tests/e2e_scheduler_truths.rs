//! Scheduler truths (issue 11) on the real kube-scheduler: for each, the engine decides a
//! workload against the bed's real Nodes, the same workload is created on the real control
//! plane, and where the scheduler put its pods (or left them Pending) must be what the
//! engine's finding says.
//!
//! Every test works on Nodes of its own (a `pool` label), created in the bed's three zones,
//! and pins its workloads there with a nodeSelector: PodTopologySpread counts only Nodes that
//! match the pod's node selection (nodeAffinityPolicy Honor), InterPodAffinity only pods in
//! the namespace, so tests do not see each other. Tests run one at a time on one bed.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build` (or
//! `SPREADGUARD_E2E_BIN` pointing at a directory of them).

mod e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_support::api;
use e2e_support::bed::{Bed, ZONE_KEY, create_node};
use e2e_support::objects::{self, deployment, with_pod_spec};
use e2e_support::wait::{settled, until};
use serde_json::{Value, json};
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{Decision, Input, NodeInfo, RuleId, Severity, Topology, decide};

/// One test at a time: each starts dozens of pods on a shared 2-core machine.
static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// Nodes of one test: `pool-<name>-<zone>-<i>`, labelled `pool: <name>`.
struct Pool {
    name: String,
    nodes: BTreeMap<String, Vec<String>>,
}

async fn pool(client: &kube::Client, name: &str, per_zone: usize) -> Pool {
    let mut nodes = BTreeMap::new();
    for zone in ZONES {
        for i in 0..per_zone {
            let node = format!("pool-{name}-{zone}-{i}");
            create_node(
                client,
                &node,
                zone,
                &BTreeMap::from([("pool".to_owned(), name.to_owned())]),
            )
            .await;
            nodes
                .entry(zone.to_owned())
                .or_insert_with(Vec::new)
                .push(node);
        }
    }
    Pool {
        name: name.to_owned(),
        nodes,
    }
}

async fn patch_node(client: &kube::Client, name: &str, patch: Value) {
    api::send(
        client,
        axum::http::Method::PATCH,
        &format!("/api/v1/nodes/{name}"),
        "application/merge-patch+json",
        Some(&patch),
    )
    .await
    .expect_ok(&format!("patch node {name}"));
}

/// A Deployment on the pool's Nodes, with `extra` merged into its pod spec.
fn workload(ns: &str, name: &str, replicas: i64, pool: &Pool, extra: Value) -> Value {
    let d = with_pod_spec(
        deployment(ns, name, Some(replicas)),
        json!({"nodeSelector": {"pool": pool.name}}),
    );
    with_pod_spec(d, extra)
}

/// The topology the webhook would decide against: the bed's Nodes as they are now.
async fn topology(client: &kube::Client) -> Topology {
    let list = api::get_path(client, "/api/v1/nodes").await;
    let nodes: Vec<NodeInfo> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| NodeInfo::from_json(n).unwrap())
        .collect();
    Topology::from_nodes(nodes, &Policy::default())
}

fn engine(object: &Value, topology: &Topology, policy: &Policy) -> Decision {
    decide(Input::new(object), topology, policy)
}

/// The finding of `rule`, if any, with its severity and message.
fn finding(d: &Decision, rule: RuleId) -> Option<(Severity, String)> {
    d.findings
        .iter()
        .find(|f| f.rule == rule)
        .map(|f| (f.severity, f.message.clone()))
}

fn refs(pods: &[Value]) -> Vec<&Value> {
    pods.iter().collect()
}

// === 1. a cordon the pods tolerate ===

#[tokio::test]
async fn a_cordoned_zone_whose_cordon_the_pods_tolerate_stays_eligible() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "cordon", 1).await;
    // Cordoned as `kubectl cordon` and the node controller leave it: spec.unschedulable
    // and the mirrored taint.
    for node in &pool.nodes["zone-c"] {
        patch_node(
            &client,
            node,
            json!({"spec": {"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
        )
        .await;
    }
    let topo = topology(&client).await;
    let zones = api::node_zones(&client).await;
    let ns = api::namespace(&client, "cordon", &[]).await;
    let anti = objects::required_anti_affinity("tolerant", ZONE_KEY);
    let mut tolerant = workload(&ns, "tolerant", 3, &pool, anti);
    tolerant = with_pod_spec(
        tolerant,
        json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
    );
    tolerant["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": 1}});
    let anti = objects::required_anti_affinity("intolerant", ZONE_KEY);
    let mut intolerant = workload(&ns, "intolerant", 3, &pool, anti);
    intolerant["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": 1}});

    let policy = Policy::default();
    assert_eq!(
        finding(&engine(&tolerant, &topo, &policy), RuleId::HA002),
        None
    );
    let (sev, message) = finding(&engine(&intolerant, &topo, &policy), RuleId::HA002).unwrap();
    assert_eq!(sev, Severity::Deny);
    assert!(
        message.starts_with("3 replicas, 2 eligible zones: 1 pod stays Pending"),
        "{message}"
    );

    for d in [&tolerant, &intolerant] {
        api::create(&client, d, false).await.expect_ok("create");
    }
    let pods = settled(&client, &ns, "tolerant", 3).await;
    assert_eq!(
        objects::unschedulable(&refs(&pods)),
        0,
        "NodeUnschedulable admits them"
    );
    assert_eq!(objects::zone_counts(&refs(&pods), &zones), [1, 1, 1]);
    let pods = settled(&client, &ns, "intolerant", 3).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 1, "as HA002 said");
}

// === 2. anti-affinity aimed at another workload; 5. namespaceSelector ===

#[tokio::test]
async fn terms_aimed_elsewhere_do_not_hold_the_workloads_own_pods_apart() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "elsewhere", 1).await;
    let topo = topology(&client).await;
    let ns = api::namespace(&client, "elsewhere", &[("team", "shop")]).await;
    let ns_labels = BTreeMap::from([("team".to_owned(), "shop".to_owned())]);
    // Required hostname anti-affinity against app=db: 6 replicas on 3 nodes.
    let against_db = workload(
        &ns,
        "web",
        6,
        &pool,
        json!({"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
    );
    // Required zone anti-affinity on its own pods, but only in namespaces labelled team=data.
    let other_ns = workload(
        &ns,
        "search",
        4,
        &pool,
        json!({"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "search"}},
             "namespaceSelector": {"matchLabels": {"team": "data"}},
             "topologyKey": ZONE_KEY}]}}}),
    );
    let policy = Policy::default();
    let d = engine(&against_db, &topo, &policy);
    assert!(
        d.findings
            .iter()
            .all(|f| f.rule != RuleId::HA003 && f.rule != RuleId::HA004),
        "{:?}",
        d.findings
    );
    let d = decide(
        Input::new(&other_ns).with_namespace_labels(Some(&ns_labels)),
        &topo,
        &policy,
    );
    assert_eq!(finding(&d, RuleId::HA002), None, "{:?}", d.findings);

    for w in [&against_db, &other_ns] {
        api::create(&client, w, false).await.expect_ok("create");
    }
    let pods = settled(&client, &ns, "web", 6).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 0);
    let pods = settled(&client, &ns, "search", 4).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 0);
}

// === 3. nodeTaintsPolicy Ignore (HA023) ===

#[tokio::test]
async fn a_tainted_zone_counted_by_default_strands_the_third_replica() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "tainted", 1).await;
    for node in &pool.nodes["zone-c"] {
        patch_node(
            &client,
            node,
            json!({"spec": {"taints": [
            {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}),
        )
        .await;
    }
    let topo = topology(&client).await;
    let ns = api::namespace(&client, "tainted", &[]).await;
    let spread = |app: &str, honor: bool| {
        let mut c = json!({"maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule",
                           "labelSelector": {"matchLabels": {"app": app}}});
        if honor {
            c["nodeTaintsPolicy"] = json!("Honor");
        }
        json!({"topologySpreadConstraints": [c]})
    };
    let ignore = workload(&ns, "ignore", 3, &pool, spread("ignore", false));
    let honor = workload(&ns, "honor", 3, &pool, spread("honor", true));
    let policy = Policy::default();
    let (sev, message) = finding(&engine(&ignore, &topo, &policy), RuleId::HA023).unwrap();
    assert_eq!(sev, Severity::Deny);
    assert!(
        message.starts_with(
            "3 replicas, 2 fit (1 Pending): zone zone-c is tainted but counted; set nodeTaintsPolicy: Honor"
        ),
        "{message}"
    );
    assert_eq!(
        finding(&engine(&honor, &topo, &policy), RuleId::HA023),
        None
    );

    for w in [&ignore, &honor] {
        api::create(&client, w, false).await.expect_ok("create");
    }
    let pods = settled(&client, &ns, "ignore", 3).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 1, "as HA023 said");
    let pods = settled(&client, &ns, "honor", 3).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 0);
}

// === 4. required affinity to its own pods (HA024) ===

#[tokio::test]
async fn required_affinity_to_its_own_pods_gathers_them_in_one_zone() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "selfaffine", 1).await;
    let topo = topology(&client).await;
    let zones = api::node_zones(&client).await;
    let ns = api::namespace(&client, "selfaffine", &[]).await;
    let affinity = |app: &str| {
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": ZONE_KEY}]}})
    };
    let gathered = workload(
        &ns,
        "gathered",
        3,
        &pool,
        json!({"affinity": affinity("gathered")}),
    );
    let mut both = affinity("torn");
    both["podAntiAffinity"] = json!({"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "torn"}}, "topologyKey": ZONE_KEY}]});
    let mut torn = workload(&ns, "torn", 3, &pool, json!({"affinity": both}));
    torn["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": 1}});
    let policy = Policy::default();
    let (_, message) = finding(&engine(&gathered, &topo, &policy), RuleId::HA024).unwrap();
    assert!(
        message.starts_with("all 3 replicas land in one zone"),
        "{message}"
    );
    let (_, message) = finding(&engine(&torn, &topo, &policy), RuleId::HA024).unwrap();
    assert!(
        message.starts_with("2 of 3 replicas stay Pending"),
        "{message}"
    );

    for w in [&gathered, &torn] {
        api::create(&client, w, false).await.expect_ok("create");
    }
    let pods = settled(&client, &ns, "gathered", 3).await;
    assert_eq!(
        objects::zone_counts(&refs(&pods), &zones),
        [3],
        "all in one zone"
    );
    let pods = settled(&client, &ns, "torn", 3).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 2);
}

// === 6. minDomains on an injected hard spread, through a zone outage ===

#[tokio::test]
async fn min_domains_leaves_replacements_pending_when_a_zones_nodes_are_gone() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "outage", 1).await;
    let topo = topology(&client).await;
    let ns = api::namespace(&client, "outage", &[]).await;
    // What spreadguard injects with DoNotSchedule: by default (injectMinDomains: auto, no
    // node template says a zone can gain nodes) no minDomains; with `always`, 3.
    let auto = Policy::from_yaml("whenUnsatisfiable: DoNotSchedule\n").unwrap();
    let always =
        Policy::from_yaml("whenUnsatisfiable: DoNotSchedule\ninjectMinDomains: always\n").unwrap();
    let mut made = Vec::new();
    for (name, policy) in [("plain", &auto), ("min-domains", &always)] {
        let mut object = workload(&ns, name, 3, &pool, json!({}));
        let d = engine(&object, &topo, policy);
        json_patch::patch(&mut object, &d.patch).unwrap();
        let zone_spread = &objects::spread_constraints(&object)[0];
        assert_eq!(zone_spread["whenUnsatisfiable"], "DoNotSchedule");
        match name {
            "plain" => assert!(zone_spread.get("minDomains").is_none(), "{zone_spread}"),
            _ => assert_eq!(zone_spread["minDomains"], 3),
        }
        api::create(&client, &object, false).await.expect_ok(name);
        made.push(name);
    }
    for name in &made {
        let pods = settled(&client, &ns, name, 3).await;
        assert_eq!(
            objects::unschedulable(&refs(&pods)),
            0,
            "{name}: one per zone"
        );
    }

    // Zone C goes away: its Node is deleted, and its pods with it (what the pod GC does for
    // pods of a deleted Node). The ReplicaSets create replacements.
    for node in &pool.nodes["zone-c"] {
        api::delete_path(&client, &format!("/api/v1/nodes/{node}")).await;
        for p in api::pods(&client, &ns).await {
            if p["spec"]["nodeName"] == json!(node) {
                let name = p["metadata"]["name"].as_str().unwrap();
                api::send(
                    &client,
                    axum::http::Method::DELETE,
                    &format!("/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0"),
                    "application/json",
                    None,
                )
                .await;
            }
        }
    }
    // Without minDomains the replacement joins a remaining zone (skew 2 - 1 = 1); with
    // minDomains 3 and 2 domains left, the global minimum is taken as 0 and each zone is
    // capped at maxSkew 1: it stays Pending.
    let pods = settled(&client, &ns, "plain", 3).await;
    assert_eq!(objects::unschedulable(&refs(&pods)), 0, "plain: replaced");
    let pods = settled(&client, &ns, "min-domains", 3).await;
    assert_eq!(
        objects::unschedulable(&refs(&pods)),
        1,
        "min-domains: Pending"
    );
}

// === 10. rollouts that deadlock (HA026) ===

/// Changes the pod template (a new image) and returns the Deployment's status after the
/// controllers had time to act.
async fn roll(client: &kube::Client, object: &Value) {
    api::merge_patch(
        client,
        object,
        "",
        &json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.k8s.io/pause:3.9"}]}}}}),
    )
    .await
    .expect_ok("roll");
}

async fn rolled_out(client: &kube::Client, object: &Value) -> Result<(), String> {
    let d = api::get(client, object).await.unwrap();
    let status = &d["status"];
    let want = d["spec"]["replicas"].as_i64().unwrap();
    let done = status["updatedReplicas"].as_i64() == Some(want)
        && status["availableReplicas"].as_i64() == Some(want)
        && status["replicas"].as_i64() == Some(want)
        && status["observedGeneration"] == d["metadata"]["generation"];
    if done {
        Ok(())
    } else {
        Err(status.to_string())
    }
}

#[tokio::test]
async fn zone_anti_affinity_on_exactly_as_many_zones_deadlocks_a_rollout() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "rollout", 1).await;
    let topo = topology(&client).await;
    let ns = api::namespace(&client, "rollout", &[]).await;
    let stuck = workload(
        &ns,
        "stuck",
        3,
        &pool,
        objects::required_anti_affinity("stuck", ZONE_KEY),
    );
    let mut spread = workload(
        &ns,
        "spread",
        3,
        &pool,
        json!({"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule",
         "nodeTaintsPolicy": "Honor", "labelSelector": {"matchLabels": {"app": "spread"}}}]}),
    );
    spread["metadata"]["name"] = json!("spread");
    let mut unavailable_one = workload(
        &ns,
        "one",
        3,
        &pool,
        objects::required_anti_affinity("one", ZONE_KEY),
    );
    unavailable_one["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": 1}});
    let policy = Policy::default();
    let (sev, message) = finding(&engine(&stuck, &topo, &policy), RuleId::HA026).unwrap();
    assert_eq!(sev, Severity::Warn);
    assert!(
        message.starts_with("rollouts deadlock: 3 replicas, 3 eligible zones"),
        "{message}"
    );
    assert_eq!(
        finding(&engine(&spread, &topo, &policy), RuleId::HA026),
        None
    );
    assert_eq!(
        finding(&engine(&unavailable_one, &topo, &policy), RuleId::HA026),
        None
    );

    for w in [&stuck, &spread, &unavailable_one] {
        api::create(&client, w, false).await.expect_ok("create");
        until(Duration::from_secs(90), "available", || {
            rolled_out(&client, w)
        })
        .await;
        roll(&client, w).await;
    }
    // The ones without HA026 roll out; the stuck one still has a Pending surge pod and its
    // three old pods when they are done (and well after).
    for w in [&spread, &unavailable_one] {
        until(Duration::from_secs(120), "rolled out", || {
            rolled_out(&client, w)
        })
        .await;
    }
    let pods = api::pods(&client, &ns).await;
    let mine = objects::named(&pods, "stuck-");
    assert_eq!(mine.len(), 4, "3 old and 1 surge pod");
    assert_eq!(objects::unschedulable(&mine), 1, "the surge pod is Pending");
    assert!(rolled_out(&client, &stuck).await.is_err());
}

// === 11. maxSkew at least the replicas (HA027) ===

#[tokio::test]
async fn max_skew_at_least_the_replicas_lets_them_share_one_zone() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "skew", 1).await;
    let topo = topology(&client).await;
    let zones = api::node_zones(&client).await;
    let ns = api::namespace(&client, "skew", &[]).await;
    // Both prefer zone-a (a soft node affinity); the spread decides whether they may all go.
    let spec = |app: &str, max_skew: i64| {
        json!({
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [
                    {"key": ZONE_KEY, "operator": "In", "values": ["zone-a"]}]}}]}},
            "topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": ZONE_KEY,
                "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
                "labelSelector": {"matchLabels": {"app": app}}}]
        })
    };
    let loose = workload(&ns, "loose", 3, &pool, spec("loose", 3));
    let tight = workload(&ns, "tight", 3, &pool, spec("tight", 1));
    let policy = Policy::default();
    let (sev, _) = finding(&engine(&loose, &topo, &policy), RuleId::HA027).unwrap();
    assert_eq!(sev, Severity::Warn);
    assert_eq!(
        finding(&engine(&tight, &topo, &policy), RuleId::HA027),
        None
    );
    for w in [&loose, &tight] {
        api::create(&client, w, false).await.expect_ok("create");
    }
    let pods = settled(&client, &ns, "loose", 3).await;
    assert_eq!(
        objects::zone_counts(&refs(&pods), &zones),
        [3],
        "all in zone-a"
    );
    let pods = settled(&client, &ns, "tight", 3).await;
    assert_eq!(objects::zone_counts(&refs(&pods), &zones), [1, 1, 1]);
}

// === 11. a zone tolerated only for tolerationSeconds (HA027) ===

#[tokio::test]
async fn a_zone_tolerated_for_seconds_loses_its_pods_when_they_run_out() {
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    let pool = pool(&client, "seconds", 1).await;
    for node in &pool.nodes["zone-c"] {
        patch_node(
            &client,
            node,
            json!({"spec": {"taints": [
                {"key": "maintenance", "value": "drain", "effect": "NoExecute"}]}}),
        )
        .await;
    }
    let topo = topology(&client).await;
    let zones = api::node_zones(&client).await;
    let ns = api::namespace(&client, "seconds", &[]).await;
    // One pod per zone (required zone anti-affinity), so one must go to zone-c.
    let spec = |app: &str, seconds: Option<i64>| {
        let mut toleration = json!({"key": "maintenance", "operator": "Equal", "value": "drain",
                                    "effect": "NoExecute"});
        if let Some(s) = seconds {
            toleration["tolerationSeconds"] = json!(s);
        }
        let mut extra = objects::required_anti_affinity(app, ZONE_KEY);
        extra["tolerations"] = json!([toleration]);
        extra
    };
    let brief = workload(&ns, "brief", 3, &pool, spec("brief", Some(5)));
    let lasting = workload(&ns, "lasting", 3, &pool, spec("lasting", None));
    let policy = Policy::default();
    let (sev, message) = finding(&engine(&brief, &topo, &policy), RuleId::HA027).unwrap();
    assert_eq!(sev, Severity::Warn);
    assert!(
        message.contains("eligible only for 5s") && message.contains("zone-c"),
        "{message}"
    );
    assert_eq!(
        finding(&engine(&lasting, &topo, &policy), RuleId::HA027),
        None
    );
    for w in [&brief, &lasting] {
        api::create(&client, w, false).await.expect_ok("create");
    }
    let name_in_zone_c = |pods: &[Value]| {
        pods.iter()
            .find(|p| {
                p["spec"]["nodeName"]
                    .as_str()
                    .and_then(|n| zones.get(n))
                    .is_some_and(|z| z == "zone-c")
            })
            .and_then(|p| p["metadata"]["name"].as_str())
            .map(str::to_owned)
    };
    let pods = settled(&client, &ns, "brief", 3).await;
    assert_eq!(objects::zone_counts(&refs(&pods), &zones), [1, 1, 1]);
    let brief_c = name_in_zone_c(&pods).expect("a brief pod in zone-c");
    let pods = settled(&client, &ns, "lasting", 3).await;
    assert_eq!(objects::zone_counts(&refs(&pods), &zones), [1, 1, 1]);
    let lasting_c = name_in_zone_c(&pods).expect("a lasting pod in zone-c");

    // The taint eviction controller evicts the brief pod once its 5 s run out: zone-c holds
    // it only that long, as HA027 says.
    until(
        Duration::from_secs(60),
        &format!("{brief_c} evicted from zone-c"),
        || async {
            let pods = api::pods(&client, &ns).await;
            let alive = pods.iter().any(|p| {
                p["metadata"]["name"] == brief_c.as_str()
                    && p["metadata"]["deletionTimestamp"].is_null()
            });
            if alive {
                Err("still there".into())
            } else {
                Ok(())
            }
        },
    )
    .await;
    // The pod tolerating the taint for good is still there.
    let pods = api::pods(&client, &ns).await;
    assert!(
        pods.iter()
            .any(|p| p["metadata"]["name"] == lasting_c.as_str()
                && p["metadata"]["deletionTimestamp"].is_null()),
        "{lasting_c} was evicted too"
    );
}

// === 12. scaling around the webhook ===

#[tokio::test]
async fn kubectl_scale_below_min_replicas_is_denied_through_the_scale_subresource() {
    use e2e_support::spreadguard::{Options, Spreadguard};
    let _one = ONE.lock().await;
    let bed = Bed::shared();
    let client = bed.client().await;
    // Opt-in scope: only this test's namespace is judged, the others' stay untouched.
    let sg = Spreadguard::start(bed, Options::new("scale").values(json!({"scope": "optIn"}))).await;
    sg.register(bed).await;
    let ns = api::namespace(&client, "scale", &api::opted_in("enforce")).await;
    sg.wait_mode(bed, &ns, "enforce").await;
    let d = deployment(&ns, "web", Some(3));
    api::create(&client, &d, false).await.expect_ok("create");

    // `kubectl scale --replicas=1`: a PATCH of deployments/scale, which reaches the
    // validating webhook as an UPDATE of an autoscaling/v1 Scale.
    let denied = api::merge_patch(&client, &d, "scale", &json!({"spec": {"replicas": 1}})).await;
    assert_eq!(denied.status, 403, "{:?}", denied.body);
    assert!(
        denied
            .message()
            .contains("HA001: scale to 1 replica, policy requires at least 2"),
        "{}",
        denied.message()
    );
    let stored = api::get(&client, &d).await.unwrap();
    assert_eq!(stored["spec"]["replicas"], 3, "nothing changed");
    // Up is fine, and so is scaling to 0 (info: not checked until scaled up again).
    for replicas in [4, 0] {
        api::merge_patch(
            &client,
            &d,
            "scale",
            &json!({"spec": {"replicas": replicas}}),
        )
        .await
        .expect_ok(&format!("scale to {replicas}"));
    }
    sg.unregister(bed).await;
}
