//! What every request reads: the policy and the topology, published through `arc_swap` so
//! that a request takes a snapshot without a lock and a reload never waits for requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::admission::{self, Decider, NamespaceLabels, UnknownNamespaces};
use crate::engine::{self, NodeInfo, Topology};
use crate::metrics::Metrics;
use crate::policy::Policy;

/// A named readiness condition added by another part of the process (e.g. "caches synced").
type Check = (&'static str, Box<dyn Fn() -> bool + Send + Sync>);

/// Shared server state. Build it, add readiness checks, then share it in an `Arc`.
pub struct State {
    policy: ArcSwap<Policy>,
    topology: ArcSwap<Topology>,
    /// Whether the topology was built from nodes, so that a policy reload (which may change the
    /// zone labels) rebuilds it from the nodes the snapshot holds; false while it is assumed.
    from_nodes: AtomicBool,
    namespaces: Arc<dyn NamespaceLabels>,
    metrics: Arc<Metrics>,
    decide: Decider,
    pub(crate) max_body_bytes: usize,
    /// Time a client has to send a request's body once its headers arrived, so that a client
    /// trickling a body cannot hold a connection slot for ever.
    pub(crate) body_read_timeout: std::time::Duration,
    certificate_loaded: AtomicBool,
    topology_loaded: AtomicBool,
    shutting_down: AtomicBool,
    checks: Vec<Check>,
}

// === impl State ===

impl State {
    /// State with a policy, an assumed topology (not yet counted as loaded), no namespace
    /// cache and fresh metrics.
    pub fn new(policy: Policy) -> Self {
        let topology = Topology::assumed(&policy);
        State {
            policy: ArcSwap::from_pointee(policy),
            topology: ArcSwap::from_pointee(topology),
            from_nodes: AtomicBool::new(false),
            namespaces: Arc::new(UnknownNamespaces),
            metrics: Arc::new(Metrics::new()),
            decide: engine::decide,
            max_body_bytes: 3 * 1024 * 1024,
            body_read_timeout: std::time::Duration::from_secs(10),
            certificate_loaded: AtomicBool::new(false),
            topology_loaded: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            checks: Vec::new(),
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_namespaces(mut self, namespaces: Arc<dyn NamespaceLabels>) -> Self {
        self.namespaces = namespaces;
        self
    }

    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    pub fn with_body_read_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Replaces the engine entry point (tests use it to make the engine fail).
    pub fn with_decider(mut self, decide: Decider) -> Self {
        self.decide = decide;
        self
    }

    /// Adds a condition `/readyz` waits for, such as a cache's first list.
    pub fn with_readiness_check(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Box::new(check)));
        self
    }

    /// Builds the topology from nodes under the current policy and publishes it. The node
    /// reflector calls this too. No copy of the nodes is kept: the snapshot holds them.
    pub fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>) {
        let policy = self.policy.load();
        let topology = Topology::from_nodes(nodes.iter().cloned(), &policy);
        self.from_nodes.store(true, Ordering::Release);
        self.publish_topology(topology);
    }

    /// Publishes a topology snapshot; subsequent requests decide against it.
    pub fn publish_topology(&self, topology: Topology) {
        self.metrics.topology(&topology.summary());
        self.topology.store(Arc::new(topology));
        self.topology_loaded.store(true, Ordering::Release);
    }

    /// Uses the policy's assumed zones as the topology (no nodes known).
    pub fn publish_assumed_topology(&self) {
        self.from_nodes.store(false, Ordering::Release);
        self.publish_topology(Topology::assumed(&self.policy.load()));
    }

    /// Publishes a new policy, rebuilding the topology under it (the zone labels may differ).
    pub fn publish_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
        if self.from_nodes.load(Ordering::Acquire) {
            let nodes: Vec<NodeInfo> = self.topology.load().nodes().collect();
            self.publish_nodes(Arc::new(nodes));
        } else if self.topology_loaded.load(Ordering::Acquire) {
            self.publish_assumed_topology();
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn set_certificate_loaded(&self) {
        self.certificate_loaded.store(true, Ordering::Release);
    }

    /// From SIGTERM on, `/readyz` is false so that the endpoints controller drains traffic.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// `Ok` when ready; otherwise what is missing.
    pub fn readiness(&self) -> Result<(), Vec<&'static str>> {
        let mut missing = Vec::new();
        if self.is_shutting_down() {
            missing.push("shutting down");
        }
        if !self.certificate_loaded.load(Ordering::Acquire) {
            missing.push("certificate");
        }
        if !self.topology_loaded.load(Ordering::Acquire) {
            missing.push("topology");
        }
        missing.extend(self.checks.iter().filter(|(_, f)| !f()).map(|(n, _)| *n));
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }

    /// Answers one review body against the current snapshots.
    pub fn review(
        &self,
        endpoint: crate::metrics::Endpoint,
        body: &[u8],
    ) -> Result<Vec<u8>, admission::BadReview> {
        let policy = self.policy.load();
        let topology = self.topology.load();
        let ctx = admission::Context {
            policy: &policy,
            topology: &topology,
            namespaces: &*self.namespaces,
            metrics: &self.metrics,
            decide: self.decide,
        };
        admission::review(endpoint, body, &ctx)
    }
}
