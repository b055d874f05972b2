//! Live cluster state: watches over Nodes and Namespaces that keep the zone snapshot and the
//! namespace labels current, and over HorizontalPodAutoscalers and PodDisruptionBudgets that
//! keep the indexes decisions count them from, so that no decision waits on the API server.

pub mod autoscalers;
pub mod budgets;
pub mod health;
pub mod namespaces;
pub mod nodes;
mod reduced;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

pub use self::health::CacheHealth;
pub use self::namespaces::NamespaceCache;
pub use self::nodes::{TopologySink, node_info};
use crate::engine::{Autoscalers, Budgets};
use crate::metrics::Metrics;

/// Where the autoscaler and disruption budget caches publish their indexes (the server's
/// snapshots, or a test's recorder): the objects that decide how many replicas a workload
/// keeps, beside the workload itself.
pub trait CompanionSink: Send + Sync + 'static {
    fn publish_autoscalers(&self, autoscalers: Arc<Autoscalers>);
    fn publish_budgets(&self, budgets: Arc<Budgets>);
}

/// Errors from connecting to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable configuration: not in a cluster, and no kubeconfig.
    #[error("no cluster configuration (in-cluster service account, KUBECONFIG or --kubeconfig)")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The configuration was found but a client could not be built from it.
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
}

/// A client from `--kubeconfig`, or else the in-cluster service account or `KUBECONFIG`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClusterError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| ClusterError::Config(Box::new(e)))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClusterError::Config(Box::new(e)))?
        }
        None => Config::infer()
            .await
            .map_err(|e| ClusterError::Config(Box::new(e)))?,
    };
    Client::try_from(config).map_err(ClusterError::Client)
}

/// The caches and their health, created before the server state so that the state can read
/// the namespace labels and wait for the first lists.
#[derive(Debug)]
pub struct Caches {
    pub namespaces: Arc<NamespaceCache>,
    pub nodes_health: Arc<CacheHealth>,
    pub namespaces_health: Arc<CacheHealth>,
    pub autoscalers_health: Arc<CacheHealth>,
    pub budgets_health: Arc<CacheHealth>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            namespaces: Arc::new(NamespaceCache::default()),
            nodes_health: Arc::new(CacheHealth::new("nodes")),
            namespaces_health: Arc::new(CacheHealth::new("namespaces")),
            autoscalers_health: Arc::new(CacheHealth::new("autoscalers")),
            budgets_health: Arc::new(CacheHealth::new("budgets")),
        }
    }
}

impl Caches {
    /// Starts every watch and the staleness metric on the current tokio runtime.
    pub fn spawn(
        &self,
        client: Client,
        sink: Arc<dyn TopologySink>,
        companions: Arc<dyn CompanionSink>,
        metrics: Arc<Metrics>,
        debounce: Duration,
    ) {
        tokio::spawn(nodes::run(
            client.clone(),
            sink,
            self.nodes_health.clone(),
            debounce,
        ));
        tokio::spawn(namespaces::run(
            client.clone(),
            self.namespaces.clone(),
            self.namespaces_health.clone(),
        ));
        tokio::spawn(autoscalers::run(
            client.clone(),
            companions.clone(),
            self.autoscalers_health.clone(),
        ));
        tokio::spawn(budgets::run(
            client,
            companions,
            self.budgets_health.clone(),
        ));
        let healths = self.healths();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for h in &healths {
                    metrics.cache_staleness(h.name(), h.staleness().as_secs_f64());
                }
            }
        });
    }

    fn healths(&self) -> [Arc<CacheHealth>; 4] {
        [
            self.nodes_health.clone(),
            self.namespaces_health.clone(),
            self.autoscalers_health.clone(),
            self.budgets_health.clone(),
        ]
    }

    /// Every cache has completed its first list.
    pub fn synced(&self) -> bool {
        self.healths().iter().all(|h| h.is_synced())
    }

    /// A check for readiness: every cache has completed its first list.
    pub fn synced_check(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let healths = self.healths();
        move || healths.iter().all(|h| h.is_synced())
    }

    /// Waits until every cache has completed its first list.
    pub async fn wait_synced(&self) {
        for h in self.healths() {
            h.wait_synced().await;
        }
    }
}
