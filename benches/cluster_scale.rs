//! The cluster cache at scale: 5,000 nodes in 100 zones served by the in-test fake API
//! server (plain HTTP on 127.0.0.1), measured end to end.
//!
//! - initial sync: from starting the reflectors to the first published snapshot;
//! - snapshot rebuild: building the topology from the 5,000 cached nodes (target < 50 ms);
//! - a label change: from the API server's event to the new snapshot (includes the debounce);
//! - resident memory of a real `spreadguard serve` process synced against the fake (target
//!   < 60 MB), when a release binary is at `target/release/spreadguard`, and again once the
//!   fake also serves 50,000 PersistentVolumeClaims and 50,000 PersistentVolumes (the storage
//!   caches);
//! - decision latency against 5,000 nodes / 100 zones next to 10 nodes / 3 zones.
//!
//! Run: `cargo bench --bench cluster_scale`. Under `cargo test` it runs a small smoke version.

#[path = "../tests/support/fake_apiserver.rs"]
#[allow(dead_code)]
mod fake_apiserver;

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use serde_json::Value;
use spreadguard::cluster::{Caches, CompanionSink, TopologySink};
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{Input, NodeInfo, Topology, decide};
use spreadguard::metrics::Metrics;

const ZONE: &str = "topology.kubernetes.io/zone";

#[derive(Default)]
struct Sink {
    published: Mutex<Vec<(Instant, Arc<Vec<NodeInfo>>)>>,
}

impl TopologySink for Sink {
    fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>) {
        self.published.lock().unwrap().push((Instant::now(), nodes));
    }
}

/// The autoscaler and budget caches are not what this bench measures.
impl CompanionSink for Sink {
    fn publish_autoscalers(&self, _: Arc<spreadguard::engine::Autoscalers>) {}
    fn publish_budgets(&self, _: Arc<spreadguard::engine::Budgets>) {}
}

fn node_labels(i: usize, zones: usize) -> Vec<(String, String)> {
    let zone = i % zones;
    let pools = ["general", "memory", "compute", "spot", "system"];
    let types = ["m6i.2xlarge", "r6i.2xlarge", "c6i.4xlarge", "m6i.4xlarge"];
    vec![
        (
            "kubernetes.io/hostname".into(),
            format!("ip-10-{}-{}-{}", zone, i / 250, i % 250),
        ),
        (ZONE.into(), format!("region-{}-zone-{zone:03}", zone / 3)),
        (
            "topology.kubernetes.io/region".into(),
            format!("region-{}", zone / 3),
        ),
        (
            "node.kubernetes.io/instance-type".into(),
            types[i % types.len()].into(),
        ),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), "amd64".into()),
        (
            "eks.amazonaws.com/nodegroup".into(),
            pools[i % pools.len()].into(),
        ),
    ]
}

fn populate(api: &FakeApiServer, nodes: usize, zones: usize) {
    for i in 0..nodes {
        let labels = node_labels(i, zones);
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let spec = if i % 10 == 0 {
            serde_json::json!({"taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]})
        } else {
            serde_json::json!({})
        };
        api.put_node_with(&format!("node-{i:05}"), &labels, spec, "KubeletReady");
    }
    for i in 0..200 {
        api.put_namespace(
            &format!("team-{i:03}"),
            &[("spreadguard.io/enabled", "true")],
        );
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn deployment() -> Value {
    let review: Value = serde_json::from_str(include_str!(
        "../tests/fixtures/admission/deployment-create.json"
    ))
    .unwrap();
    review["request"]["object"].clone()
}

/// Median time of one decision, over `rounds` batches of `batch` decisions.
fn decision_time(
    object: &Value,
    topology: &Topology,
    policy: &Policy,
    rounds: usize,
    batch: usize,
) -> Duration {
    let samples = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(decide(Input::new(black_box(object)), topology, policy));
            }
            start.elapsed() / batch as u32
        })
        .collect();
    median(samples)
}

fn rss_of_serve(api: &FakeApiServer) -> Option<(Duration, u64)> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/spreadguard");
    if !bin.exists() {
        println!("resident memory: skipped (build target/release/spreadguard first)");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let kubeconfig = api.write_kubeconfig(dir.path());
    let certs = std::process::Command::new(&bin)
        .args([
            "certs",
            "generate",
            "--service",
            "spreadguard",
            "--namespace",
            "default",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .ok()?;
    assert!(
        certs.status.success(),
        "{}",
        String::from_utf8_lossy(&certs.stderr)
    );
    let admin = "127.0.0.1:18091";
    let started = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:18453",
            "--admin-listen",
            admin,
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let ready = loop {
        if started.elapsed() > Duration::from_secs(180) {
            break None;
        }
        if http_status(admin, "/readyz") == Some(200) {
            break Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_secs(2));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    let _ = child.kill();
    let _ = child.wait();
    Some((ready?, rss_kb?))
}

/// A bare HTTP/1.1 GET, enough for the admin port.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// `count` claims in `count / 50` namespaces, each bound to a volume in one of three zones,
/// shaped as real ones are (annotations, finalizers, CSI attributes).
fn populate_storage(api: &FakeApiServer, count: usize) {
    let mut claims = Vec::with_capacity(count);
    let mut volumes = Vec::with_capacity(count);
    for i in 0..count {
        let ns = format!("team-{:04}", i / 50);
        let name = format!("{}-db-{}-{}", ["data", "wal"][i % 2], (i / 10) % 5, i % 5);
        let pv = format!(
            "pvc-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            i,
            i % 65_536,
            i % 4096,
            (i * 7) % 4096,
            i * 31
        );
        claims.push(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": ns, "name": name, "uid": format!("{i:032x}"),
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "10Gi"}}, "volumeName": pv},
            "status": {"phase": "Bound"},
        }));
        volumes.push(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv, "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {
                "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "gp3",
                "claimRef": {"namespace": ns, "name": name, "uid": format!("{i:032x}")},
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": format!("vol-{i:017x}")},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.ebs.csi.aws.com/zone", "operator": "In",
                     "values": [format!("eu-west-1{}", ["a", "b", "c"][i % 3])]}]}]}},
            },
            "status": {"phase": "Bound"},
        }));
    }
    api.bulk("persistentvolumeclaims", claims);
    api.bulk("persistentvolumes", volumes);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (nodes, zones) = if full { (5_000, 100) } else { (200, 10) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = runtime.block_on(FakeApiServer::start());
    populate(&api, nodes, zones);
    println!(
        "cluster_scale: {nodes} nodes in {zones} zones, 200 namespaces (fake API server on {})",
        api.addr
    );

    // Initial sync, in process.
    let sink = Arc::new(Sink::default());
    let caches = Caches::default();
    let started = Instant::now();
    {
        let _guard = runtime.enter();
        caches.spawn(
            api.client(),
            sink.clone(),
            sink.clone(),
            Arc::new(Metrics::new()),
            Duration::from_millis(100),
        );
    }
    while sink.published.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no snapshot within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (first_at, snapshot) = sink.published.lock().unwrap()[0].clone();
    println!(
        "initial sync to first snapshot (incl. 100 ms debounce): {:?}",
        first_at - started
    );
    assert_eq!(snapshot.len(), nodes);

    // Rebuild: the topology from the cached nodes, as every published change does.
    let policy = Policy::default();
    let rebuilds: Vec<Duration> = (0..if full { 21 } else { 3 })
        .map(|_| {
            let start = Instant::now();
            black_box(Topology::from_nodes(snapshot.iter().cloned(), &policy));
            start.elapsed()
        })
        .collect();
    let topology = Topology::from_nodes(snapshot.iter().cloned(), &policy);
    println!(
        "snapshot rebuild ({} nodes → {} groups, {} zones): median {:?} (target < 50 ms)",
        nodes,
        topology.group_count(),
        topology.zone_count(),
        median(rebuilds)
    );

    // One label change, end to end.
    let before = sink.published.lock().unwrap().len();
    let changed_at = Instant::now();
    api.put_node(
        "node-00001",
        &[(ZONE, "moved-zone"), ("kubernetes.io/hostname", "moved")],
    );
    while sink.published.lock().unwrap().len() == before {
        assert!(
            changed_at.elapsed() < Duration::from_secs(10),
            "the change never arrived"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "label change to new snapshot (incl. 100 ms debounce): {:?}",
        changed_at.elapsed()
    );

    // Decisions: 5,000 nodes / 100 zones next to 10 nodes / 3 zones.
    let object = deployment();
    let small: Vec<NodeInfo> = (0..10)
        .map(|i| {
            let mut labels = std::collections::BTreeMap::new();
            for (k, v) in node_labels(i, 3) {
                labels.insert(k, v);
            }
            NodeInfo {
                name: format!("small-{i}"),
                labels,
                taints: Vec::new(),
                unschedulable: false,
            }
        })
        .collect();
    let small = Topology::from_nodes(small, &policy);
    let (rounds, batch) = if full { (31, 2_000) } else { (3, 100) };
    let t_small = decision_time(&object, &small, &policy, rounds, batch);
    let t_large = decision_time(&object, &topology, &policy, rounds, batch);
    println!(
        "decision: {:?} at 10 nodes / 3 zones, {:?} at {nodes} nodes / {zones} zones ({:+.1}%)",
        t_small,
        t_large,
        (t_large.as_secs_f64() / t_small.as_secs_f64() - 1.0) * 100.0
    );

    if full && let Some((ready, rss_kb)) = rss_of_serve(&api) {
        println!(
            "spreadguard serve against the fake: ready (every cache synced) after {ready:?}, resident memory {:.1} MB (target < 60 MB)",
            rss_kb as f64 / 1024.0
        );
        populate_storage(&api, 50_000);
        if let Some((ready, with_storage_kb)) = rss_of_serve(&api) {
            println!(
                "the same with 50,000 claims and 50,000 volumes: ready after {ready:?}, resident memory {:.1} MB (+{:.1} MB for the storage caches)",
                with_storage_kb as f64 / 1024.0,
                (with_storage_kb as f64 - rss_kb as f64) / 1024.0
            );
        }
    }
}
