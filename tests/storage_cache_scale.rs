//! Memory of the storage caches at scale: 50,000 PersistentVolumeClaims and 50,000
//! PersistentVolumes served by the in-test fake API server in pages of 500 (as a real one
//! serves `limit=500` lists), watched by the real `kube` client. A counting allocator measures
//! the heap the caches keep once synced, and the peak while they list (pages are reduced as they
//! arrive, so the peak stays near the result).
//!
//! `cargo test --release --test storage_cache_scale -- --nocapture` runs it at 50,000 claims
//! and 50,000 volumes and prints the figures (README, Performance). An unoptimised build (plain
//! `cargo test`) runs 10,000 of each, which takes minutes already, against the same per-object
//! budget.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use spreadguard::cluster::CacheHealth;
use spreadguard::cluster::storage::{StorageCache, run_claims, run_classes, run_volumes};
use spreadguard::engine::storage::Volumes;
use support::fake_apiserver::FakeApiServer;

/// Bytes allocated and not yet freed, and the most there ever were.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now =
                LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let delta = new_size as isize - layout.size() as isize;
            let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CLAIMS: usize = if cfg!(debug_assertions) {
    10_000
} else {
    50_000
};
/// The heap the caches may keep per claim and per volume (50,000 of each: under 48 MiB).
const BUDGET_PER_OBJECT: isize = 500;

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_claims_and_volumes_fit_in_a_bounded_heap() {
    let api = FakeApiServer::start().await;
    // CLAIMS / 50 namespaces × 50 claims (StatefulSets of 5 replicas with 2 templates each, names
    // and uids as real clusters have them), each bound to a volume in one of three zones.
    let classes = ["gp3", "io2", "standard"];
    let mut claims = Vec::with_capacity(CLAIMS);
    let mut volumes = Vec::with_capacity(CLAIMS);
    for i in 0..CLAIMS {
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
        claims.push(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": ns, "name": name, "uid": format!("{i:032x}"),
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"},
                         "labels": {"app": "db"}},
            "spec": {"storageClassName": classes[i % 3], "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "10Gi"}}, "volumeName": pv,
                     "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}},
        }));
        volumes.push(json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv, "annotations": {"pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com"},
                         "finalizers": ["kubernetes.io/pv-protection", "external-attacher/ebs-csi-aws-com"]},
            "spec": {
                "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": classes[i % 3], "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                             "name": name, "uid": format!("{i:032x}"), "resourceVersion": "1"},
                "csi": {"driver": "ebs.csi.aws.com", "fsType": "ext4",
                        "volumeHandle": format!("vol-{i:017x}"),
                        "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-ebs.csi.aws.com"}},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.ebs.csi.aws.com/zone", "operator": "In",
                     "values": [format!("eu-west-1{}", ["a", "b", "c"][i % 3])]}]}]}},
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound"},
        }));
    }
    api.bulk("persistentvolumeclaims", claims);
    api.bulk("persistentvolumes", volumes);
    api.bulk(
        "storageclasses",
        classes.iter().map(|c| {
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": c}, "provisioner": "ebs.csi.aws.com",
                   "volumeBindingMode": "WaitForFirstConsumer"})
        }),
    );

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let cache = Arc::new(StorageCache::default());
    let health = [
        Arc::new(CacheHealth::new("storageclasses")),
        Arc::new(CacheHealth::new("persistentvolumeclaims")),
        Arc::new(CacheHealth::new("persistentvolumes")),
    ];
    let started = Instant::now();
    let client = api.client();
    let tasks = [
        tokio::spawn(run_classes(
            client.clone(),
            cache.clone(),
            health[0].clone(),
        )),
        tokio::spawn(run_claims(client.clone(), cache.clone(), health[1].clone())),
        tokio::spawn(run_volumes(client, cache.clone(), health[2].clone())),
    ];
    while !health.iter().all(|h| h.is_synced()) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not synced within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let synced_after = started.elapsed();
    // Let the last page's buffers go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;

    assert_eq!(cache.counts(), (3, CLAIMS, CLAIMS));
    let claim = cache
        .claim("team-0007", "data-db-0-0")
        .expect("a cached claim");
    assert_eq!(
        cache
            .volume_of(&claim)
            .and_then(|v| v.zone().map(str::to_owned)),
        Some("eu-west-1c".to_owned()),
    );
    println!(
        "storage caches, {CLAIMS} claims + {CLAIMS} volumes: synced in {synced_after:?}; heap kept {:.1} MiB ({:.0} bytes per claim and volume), peak while listing {:.1} MiB",
        mib(kept),
        kept as f64 / (2 * CLAIMS) as f64,
        mib(peak),
    );
    let budget = BUDGET_PER_OBJECT * 2 * CLAIMS as isize;
    assert!(
        kept < budget,
        "the caches keep {:.1} MiB (budget {:.0} MiB)",
        mib(kept),
        mib(budget)
    );
    assert!(
        peak < kept + 32 * 1024 * 1024,
        "listing peaked at {:.1} MiB over the {:.1} MiB kept: pages are not reduced as they arrive",
        mib(peak),
        mib(kept)
    );
    for t in tasks {
        t.abort();
    }
}
