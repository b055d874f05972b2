//! The server's shared state: the published snapshots, readiness, the HTTP limits, the
//! metrics, and the engine entry point. Built once, then shared in an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use super::budget::BodyBudget;

use super::readiness::Readiness;
use super::snapshots::Snapshots;
use crate::admission::{self, Decider, NamespaceLabels};
use crate::cluster::CompanionSink;
use crate::engine::policy::Policy;
use crate::engine::{self, Autoscalers, Budgets, Endpoint, NodeInfo, Topology};
use crate::metrics::Metrics;

/// Limits on what HTTP requests may hold.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    /// Time a client has to send a request's body once its headers arrived, so that a
    /// client trickling a body cannot hold a connection slot for ever.
    pub body_read_timeout: Duration,
    /// Bytes of bodies held across all requests.
    pub body_budget: Arc<BodyBudget>,
    /// Bodies at least this large are judged one at a time, off the async workers.
    pub heavy_review_bytes: usize,
    /// The one heavy review being judged.
    pub heavy_lane: Arc<tokio::sync::Semaphore>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: super::args::DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: Duration::from_secs(10),
            body_budget: Arc::new(BodyBudget::new(
                super::args::DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            )),
            heavy_review_bytes: super::args::DEFAULT_HEAVY_REVIEW_BYTES,
            heavy_lane: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

/// Shared server state. Build it, add readiness checks, then share it in an `Arc`.
pub struct State {
    pub snapshots: Arc<Snapshots>,
    pub readiness: Readiness,
    pub http: HttpLimits,
    metrics: Arc<Metrics>,
    decide: Decider,
}

// === impl State ===

impl State {
    /// State with a policy, an assumed topology (not yet counted as loaded), no namespace
    /// cache and fresh metrics.
    pub fn new(policy: Policy) -> Self {
        let metrics = Arc::new(Metrics::new());
        State {
            snapshots: Arc::new(Snapshots::new(policy, metrics.clone())),
            readiness: Readiness::default(),
            http: HttpLimits::default(),
            metrics,
            decide: engine::decide,
        }
    }

    /// Reads storage from `volumes` (the storage caches). Call before the state is shared.
    pub fn with_volumes(
        mut self,
        volumes: Arc<dyn crate::engine::storage::Volumes + Send>,
    ) -> Self {
        Arc::get_mut(&mut self.snapshots)
            .expect("volumes are set before the snapshots are shared")
            .set_volumes(volumes);
        self
    }

    /// Reads namespace labels from `namespaces` (the namespace cache). Call before the state
    /// is shared.
    pub fn with_namespaces(mut self, namespaces: Arc<dyn NamespaceLabels>) -> Self {
        Arc::get_mut(&mut self.snapshots)
            .expect("namespaces are set before the snapshots are shared")
            .set_namespaces(namespaces);
        self
    }

    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.http.max_body_bytes = limit;
        self
    }

    pub fn with_max_inflight_body_bytes(mut self, bytes: usize) -> Self {
        self.http.body_budget = Arc::new(BodyBudget::new(bytes));
        self
    }

    pub fn with_heavy_review_bytes(mut self, bytes: usize) -> Self {
        self.http.heavy_review_bytes = bytes;
        self
    }

    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.http.body_read_timeout = timeout;
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
        self.readiness.add(name, check);
        self
    }

    /// Builds the topology from nodes under the current policy and publishes it.
    pub fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>) {
        self.snapshots.publish_nodes(&nodes);
    }

    /// Publishes a topology snapshot; subsequent requests decide against it.
    pub fn publish_topology(&self, topology: Topology) {
        self.snapshots.publish_topology(topology);
    }

    /// Publishes the autoscalers subsequent requests count (the cache does this).
    pub fn publish_autoscalers(&self, autoscalers: Autoscalers) {
        self.snapshots.publish_autoscalers(Arc::new(autoscalers));
    }

    /// Publishes the disruption budgets subsequent requests count (the cache does this).
    pub fn publish_budgets(&self, budgets: Budgets) {
        self.snapshots.publish_budgets(Arc::new(budgets));
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.snapshots.policy().clone()
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.snapshots.topology().clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `Ok` when ready; otherwise what is missing.
    pub fn readiness(&self) -> Result<(), Vec<&'static str>> {
        self.readiness.check(self.snapshots.topology_loaded())
    }

    /// Answers one review body against the current snapshots.
    pub fn review(&self, endpoint: Endpoint, body: &[u8]) -> Result<Vec<u8>, admission::BadReview> {
        let policy = self.snapshots.policy();
        let topology = self.snapshots.topology();
        let autoscalers = self.snapshots.autoscalers();
        let budgets = self.snapshots.budgets();
        let ctx = admission::Context {
            policy: &policy,
            topology: &topology,
            namespaces: self.snapshots.namespaces(),
            autoscalers: autoscalers.as_deref(),
            budgets: budgets.as_deref(),
            volumes: self.snapshots.volumes(),
            metrics: &self.metrics,
            decide: self.decide,
        };
        admission::review(endpoint, body, &ctx)
    }
}
