//! What every request decides against: the policy, the topology (nodes and node pools), the
//! namespace labels, the autoscalers and disruption budgets, published through `arc_swap`,
//! and the storage (read from its caches), so that a request takes a snapshot without a lock
//! and a reload never waits for requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::admission::{NamespaceLabels, UnknownNamespaces};
use crate::cluster::{CompanionSink, TopologySink};
use crate::engine::policy::Policy;
use crate::engine::storage::{ClaimInfo, StorageClassInfo, VolumeInfo, VolumeSet, Volumes};
use crate::engine::templates::NodeTemplate;
use crate::engine::{Autoscalers, Budgets, NodeInfo, Topology};
use crate::metrics::Metrics;

/// The published snapshots. Readers load them lock-free; writers (the node cache, the
/// policy and nodes file reloads) take turns, so that a policy reload never republishes an
/// older node list over a newer one from the node cache.
pub struct Snapshots {
    policy: ArcSwap<Policy>,
    topology: ArcSwap<Topology>,
    namespaces: Arc<dyn NamespaceLabels>,
    /// `None` until a cache (or a test) publishes them: the rules that need them are then
    /// not checked.
    autoscalers: ArcSwapOption<Autoscalers>,
    budgets: ArcSwapOption<Budgets>,
    /// StorageClasses, claims and volumes, when watched.
    volumes: Option<Arc<dyn Volumes + Send>>,
    /// The NodePools' templates, joined to every topology built from nodes.
    pools: ArcSwap<Vec<NodeTemplate>>,
    /// Held while a new topology is built and stored.
    publishing: Mutex<()>,
    /// Whether the topology was built from nodes (so that a policy reload, which may change
    /// the zone labels, rebuilds it from them); false while it is assumed.
    from_nodes: AtomicBool,
    /// Whether any topology has been published (readiness).
    loaded: AtomicBool,
    metrics: Arc<Metrics>,
}

// === impl Snapshots ===

impl Snapshots {
    /// The policy and an assumed topology (not yet counted as loaded), no namespace labels.
    pub fn new(policy: Policy, metrics: Arc<Metrics>) -> Self {
        let topology = Topology::assumed(&policy);
        Snapshots {
            policy: ArcSwap::from_pointee(policy),
            topology: ArcSwap::from_pointee(topology),
            namespaces: Arc::new(UnknownNamespaces),
            autoscalers: ArcSwapOption::empty(),
            budgets: ArcSwapOption::empty(),
            volumes: None,
            pools: ArcSwap::from_pointee(Vec::new()),
            publishing: Mutex::new(()),
            from_nodes: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn set_namespaces(&mut self, namespaces: Arc<dyn NamespaceLabels>) {
        self.namespaces = namespaces;
    }

    pub fn set_volumes(&mut self, volumes: Arc<dyn Volumes + Send>) {
        self.volumes = Some(volumes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.publishing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Builds the topology from nodes under the current policy and publishes it. No copy of
    /// the nodes is kept: the snapshot holds them.
    pub fn publish_nodes(&self, nodes: &[NodeInfo]) {
        let _turn = self.lock();
        let topology = Topology::from_parts(
            nodes.iter().cloned(),
            self.pools.load().to_vec(),
            &self.policy.load(),
        );
        self.from_nodes.store(true, Ordering::Release);
        self.store(topology);
    }

    /// Publishes the NodePools' templates, rebuilding the topology with them from the nodes
    /// of the latest snapshot.
    pub fn publish_node_pools(&self, pools: Vec<NodeTemplate>) {
        let _turn = self.lock();
        self.pools.store(Arc::new(pools));
        if self.from_nodes.load(Ordering::Acquire) {
            let nodes: Vec<NodeInfo> = self.topology.load().nodes().collect();
            let topology =
                Topology::from_parts(nodes, self.pools.load().to_vec(), &self.policy.load());
            self.store(topology);
        }
    }

    /// Publishes a topology snapshot; subsequent requests decide against it.
    pub fn publish_topology(&self, topology: Topology) {
        let _turn = self.lock();
        self.store(topology);
    }

    /// Uses the policy's assumed zones as the topology (no nodes known).
    pub fn publish_assumed_topology(&self) {
        let _turn = self.lock();
        self.from_nodes.store(false, Ordering::Release);
        self.store(Topology::assumed(&self.policy.load()));
    }

    /// Publishes a new policy, rebuilding the topology under it (the zone labels may differ)
    /// from the nodes of the latest snapshot: the lock makes sure no newer one is lost.
    pub fn publish_policy(&self, policy: Policy) {
        let _turn = self.lock();
        self.policy.store(Arc::new(policy));
        let policy = self.policy.load();
        if self.from_nodes.load(Ordering::Acquire) {
            let nodes: Vec<NodeInfo> = self.topology.load().nodes().collect();
            self.store(Topology::from_parts(
                nodes,
                self.pools.load().to_vec(),
                &policy,
            ));
        } else if self.loaded.load(Ordering::Acquire) {
            self.store(Topology::assumed(&policy));
        }
    }

    fn store(&self, topology: Topology) {
        self.metrics.topology(&topology.summary());
        self.topology.store(Arc::new(topology));
        self.loaded.store(true, Ordering::Release);
    }

    pub fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.policy.load()
    }

    pub fn topology(&self) -> arc_swap::Guard<Arc<Topology>> {
        self.topology.load()
    }

    pub fn namespaces(&self) -> &dyn NamespaceLabels {
        &*self.namespaces
    }

    pub fn volumes(&self) -> Option<&dyn Volumes> {
        self.volumes.as_deref().map(|v| v as &dyn Volumes)
    }

    pub fn autoscalers(&self) -> arc_swap::Guard<Option<Arc<Autoscalers>>> {
        self.autoscalers.load()
    }

    pub fn budgets(&self) -> arc_swap::Guard<Option<Arc<Budgets>>> {
        self.budgets.load()
    }

    /// Whether a topology has been published.
    pub fn topology_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}

/// The StorageClasses and PersistentVolumes of a nodes file (`serve --nodes`), swapped whole
/// when the file is reloaded.
#[derive(Debug, Default)]
pub struct FileVolumes(ArcSwap<VolumeSet>);

impl FileVolumes {
    pub fn store(&self, volumes: VolumeSet) {
        self.0.store(Arc::new(volumes));
    }
}

impl Volumes for FileVolumes {
    fn class(&self, name: &str) -> Option<StorageClassInfo> {
        self.0.load().class(name)
    }

    fn default_class(&self) -> Option<StorageClassInfo> {
        self.0.load().default_class()
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<ClaimInfo> {
        self.0.load().claim(namespace, name)
    }

    fn claims_with_prefix(&self, namespace: &str, prefix: &str, each: &mut dyn FnMut(ClaimInfo)) {
        self.0.load().claims_with_prefix(namespace, prefix, each)
    }

    fn volume(&self, name: &str) -> Option<VolumeInfo> {
        self.0.load().volume(name)
    }

    fn prebound_volume(&self, namespace: &str, claim: &str) -> Option<VolumeInfo> {
        self.0.load().prebound_volume(namespace, claim)
    }

    fn prebound_with_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        each: &mut dyn FnMut(String, VolumeInfo),
    ) {
        self.0.load().prebound_with_prefix(namespace, prefix, each)
    }
}

impl TopologySink for Snapshots {
    fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>) {
        Snapshots::publish_nodes(self, &nodes)
    }

    fn publish_node_pools(&self, pools: Arc<Vec<NodeTemplate>>) {
        Snapshots::publish_node_pools(self, pools.to_vec())
    }
}

impl CompanionSink for Snapshots {
    fn publish_autoscalers(&self, autoscalers: Arc<Autoscalers>) {
        self.metrics.cached("autoscalers", autoscalers.len());
        self.autoscalers.store(Some(autoscalers));
    }

    fn publish_budgets(&self, budgets: Arc<Budgets>) {
        self.metrics.cached("budgets", budgets.len());
        self.budgets.store(Some(budgets));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(name: &str, zone: &str) -> NodeInfo {
        let labels: BTreeMap<String, String> = [
            ("topology.kubernetes.io/zone".to_owned(), zone.to_owned()),
            ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ]
        .into();
        NodeInfo::new(name.into(), labels, [], false)
    }

    /// A policy reload racing the node cache never brings back an older node list: each
    /// publication builds from the latest snapshot while holding the turn.
    #[test]
    fn policy_reloads_never_republish_older_nodes() {
        let s = Arc::new(Snapshots::new(Policy::default(), Arc::new(Metrics::new())));
        s.publish_nodes(&[node("a", "z1")]);
        std::thread::scope(|scope| {
            let reloads = scope.spawn(|| {
                for _ in 0..200 {
                    s.publish_policy(Policy::default());
                }
            });
            for i in 0..200 {
                let nodes: Vec<NodeInfo> = (0..=i % 3)
                    .map(|z| node(&format!("n{z}"), &format!("z{z}")))
                    .collect();
                s.publish_nodes(&nodes);
            }
            reloads.join().unwrap();
        });
        // The last node list published had 200 % 3 = 2 → nodes n0..n2 in three zones
        // (i = 199: 199 % 3 = 1, so two nodes).
        assert_eq!(s.topology().zone_count(), 2);
        s.publish_policy(Policy::default());
        assert_eq!(s.topology().zone_count(), 2);
    }
}
