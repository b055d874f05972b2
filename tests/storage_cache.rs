//! The storage caches (StorageClasses, claims, volumes) and the NodePool cache against the
//! in-test fake API server, with the real `kube` client and kube-runtime watchers: what the
//! webhook reads for HA017–HA020 and the node templates, kept current.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spreadguard::cluster::Caches;
use spreadguard::engine::policy::Policy;
use spreadguard::engine::storage::{AccessModes, ClassRef, Volumes};
use spreadguard::engine::{Input, RuleId, Severity, decide};
use spreadguard::metrics::Metrics;
use spreadguard::server::State;
use support::fake_apiserver::FakeApiServer;

const ZONE: &str = "topology.kubernetes.io/zone";

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn class(name: &str, binding: &str, default: bool) -> Value {
    let mut c = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "provisioner": "ebs.csi.aws.com", "volumeBindingMode": binding,
    });
    if default {
        c["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    c
}

fn claim(ns: &str, name: &str, volume: Option<&str>) -> Value {
    let mut c = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound"},
    });
    if let Some(v) = volume {
        c["spec"]["volumeName"] = json!(v);
    }
    c
}

fn volume(name: &str, zone: &str, claim: (&str, &str), uid: bool) -> Value {
    let mut claim_ref = json!({"namespace": claim.0, "name": claim.1});
    if uid {
        claim_ref["uid"] = json!(format!("uid-{name}"));
    }
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": "gp3", "claimRef": claim_ref,
            "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": format!("vol-{name}")},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": [zone]}]}]}},
        },
    })
}

async fn cluster() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    for (name, zone) in [("node-a", "z1"), ("node-b", "z2"), ("node-c", "z3")] {
        api.put_node(name, &[(ZONE, zone), ("kubernetes.io/hostname", name)]);
    }
    api.put_namespace("data", &[]);
    api
}

/// A server state fed by the caches, as `serve` wires them.
fn serve(api: &FakeApiServer, caches: &Caches) -> Arc<State> {
    let state = Arc::new(
        State::new(Policy::default())
            .with_namespaces(caches.namespaces.clone())
            .with_volumes(caches.storage.clone()),
    );
    caches.spawn(
        api.client(),
        state.snapshots.clone(),
        state.snapshots.clone(),
        Arc::new(Metrics::new()),
        Duration::from_millis(20),
    );
    state
}

#[tokio::test]
async fn the_storage_caches_read_classes_claims_and_volumes_and_follow_changes() {
    let api = cluster().await;
    api.apply("storageclasses", class("gp2", "Immediate", true));
    api.apply(
        "storageclasses",
        class("gp3", "WaitForFirstConsumer", false),
    );
    api.apply("persistentvolumeclaims", claim("data", "data-db-0", None));
    api.apply(
        "persistentvolumeclaims",
        claim("data", "data-db-1", Some("pv-1")),
    );
    api.apply(
        "persistentvolumes",
        volume("pv-0", "z1", ("data", "data-db-0"), false),
    );
    api.apply(
        "persistentvolumes",
        volume("pv-1", "z1", ("data", "data-db-1"), true),
    );
    let caches = Caches::default();
    let _state = serve(&api, &caches);
    eventually("synced", Duration::from_secs(10), || caches.synced()).await;

    let s = &caches.storage;
    assert_eq!(s.default_class().unwrap().name, "gp2");
    let c = s.claim("data", "data-db-1").unwrap();
    assert_eq!(c.class, ClassRef::Named("gp3".into()));
    assert!(c.access_modes.contains(AccessModes::READ_WRITE_ONCE));
    assert_eq!(s.volume_of(&c).unwrap().zone(), Some("z1"));
    // The pre-bound volume (claimRef without a uid) is found for its claim.
    let c0 = s.claim("data", "data-db-0").unwrap();
    assert_eq!(s.volume_of(&c0).unwrap().name, "pv-0");

    // Changes arrive: a class stops being the default, a volume moves (a rebind), a claim goes.
    api.apply("storageclasses", class("gp2", "Immediate", false));
    api.apply(
        "persistentvolumes",
        volume("pv-1", "z2", ("data", "data-db-1"), true),
    );
    api.delete("persistentvolumeclaims", "data/data-db-0");
    api.delete("persistentvolumes", "pv-0");
    eventually("changes seen", Duration::from_secs(5), || {
        s.default_class().is_none()
            && s.volume("pv-1").is_some_and(|v| v.zone() == Some("z2"))
            && s.claim("data", "data-db-0").is_none()
            && s.prebound_volume("data", "data-db-0").is_none()
    })
    .await;
}

#[tokio::test]
async fn readiness_waits_for_the_storage_caches_unless_they_are_off() {
    let api = cluster().await;
    api.hold_lists(true);
    let caches = Caches::default();
    let _state = serve(&api, &caches);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!caches.synced());
    assert!(
        caches
            .healths()
            .iter()
            .any(|h| h.name() == "persistentvolumeclaims")
    );
    api.hold_lists(false);
    eventually("synced", Duration::from_secs(10), || caches.synced()).await;
    let off = Caches::default().without_storage();
    assert!(
        off.healths()
            .iter()
            .all(|h| !h.name().starts_with("persistentvolume")),
        "without storage, readiness does not wait for it"
    );
}

/// An UPDATE of a StatefulSet decided against the caches: its bound volumes are found.
#[tokio::test]
async fn an_update_is_judged_against_the_cached_claims_and_volumes() {
    let api = cluster().await;
    api.apply(
        "storageclasses",
        class("gp3", "WaitForFirstConsumer", false),
    );
    for i in 0..3 {
        let (c, v) = (format!("data-db-{i}"), format!("pv-{i}"));
        api.apply("persistentvolumeclaims", claim("data", &c, Some(&v)));
        api.apply("persistentvolumes", volume(&v, "z1", ("data", &c), true));
    }
    let caches = Caches::default();
    let state = serve(&api, &caches);
    eventually("synced", Duration::from_secs(10), || {
        caches.synced() && state.topology().zone_count() == 3
    })
    .await;
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "data"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "db", "image": "db:1"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"]}}]},
    });
    let d = decide(
        Input::new(&sts)
            .with_old(Some(&sts))
            .with_volumes(state.snapshots.volumes())
            .reporting_considered(),
        &state.topology(),
        &state.policy(),
    );
    let ha019: Vec<_> = d
        .findings
        .iter()
        .filter(|f| f.rule == RuleId::HA019)
        .collect();
    assert_eq!(ha019.len(), 1, "{:?}", d.findings);
    assert_eq!(ha019[0].severity, Severity::Warn);
    assert!(
        ha019[0]
            .message
            .starts_with("losing zone z1 takes 3 replicas"),
        "{}",
        ha019[0].message
    );
    assert_eq!(
        d.considered.claims,
        ["data/data-db-0", "data/data-db-1", "data/data-db-2"]
    );
}

fn node_pool(name: &str, zones: &[&str]) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [{"key": ZONE, "operator": "In", "values": zones}],
        }}},
        "status": {"resources": {"cpu": "0"}},
    })
}

#[tokio::test]
async fn node_pools_are_discovered_and_join_the_topology_as_zones() {
    let api = cluster().await;
    api.serve_node_pools(true);
    api.apply("nodepools", node_pool("general", &["z4"]));
    let caches = Caches::default();
    let state = serve(&api, &caches);
    eventually("a zone no node is in yet", Duration::from_secs(10), || {
        caches.synced() && state.topology().zone_count() == 4
    })
    .await;
    assert_eq!(state.topology().summary().zones["z4"], 0);
    // A deletion takes the zone away.
    api.delete("nodepools", "general");
    eventually("pool gone", Duration::from_secs(5), || {
        state.topology().zone_count() == 3
    })
    .await;
}

#[tokio::test]
async fn node_pools_installed_later_are_found_by_discovery() {
    let api = cluster().await;
    let caches = Caches::default().with_discovery_interval(Duration::from_millis(100));
    let state = serve(&api, &caches);
    eventually("synced without Karpenter", Duration::from_secs(10), || {
        caches.synced() && state.topology().zone_count() == 3
    })
    .await;
    // Karpenter is installed: its API appears, then a NodePool.
    api.serve_node_pools(true);
    api.apply("nodepools", node_pool("late", &["z5", "z6"]));
    eventually("the pool's zones", Duration::from_secs(10), || {
        state.topology().zone_count() == 5
    })
    .await;
    // A new node in the pool's zone turns the possible zone into a real one.
    api.put_node(
        "node-e",
        &[(ZONE, "z5"), ("kubernetes.io/hostname", "node-e")],
    );
    eventually("the node joins", Duration::from_secs(5), || {
        state.topology().summary().zones.get("z5") == Some(&1)
    })
    .await;
    assert_eq!(state.topology().zone_count(), 5);
}
