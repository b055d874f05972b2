//! Live cluster state: watches over Nodes and Namespaces that keep the zone snapshot and the
//! namespace labels current, over HorizontalPodAutoscalers and PodDisruptionBudgets that keep
//! the indexes decisions count them from, over storage (StorageClasses, claims, volumes) and
//! Karpenter's NodePools, so that no decision waits on the API server.

pub mod autoscalers;
pub mod budgets;
pub mod health;
pub mod namespaces;
pub mod node_pools;
pub mod nodes;
mod reduced;
pub mod storage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

pub use self::health::CacheHealth;
pub use self::namespaces::NamespaceCache;
pub use self::nodes::{TopologySink, node_info};
pub use self::storage::StorageCache;
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
/// the namespace labels and the storage, and wait for the first lists.
#[derive(Debug)]
pub struct Caches {
    pub namespaces: Arc<NamespaceCache>,
    pub nodes_health: Arc<CacheHealth>,
    pub namespaces_health: Arc<CacheHealth>,
    pub autoscalers_health: Arc<CacheHealth>,
    pub budgets_health: Arc<CacheHealth>,
    /// StorageClasses, PersistentVolumeClaims and PersistentVolumes.
    pub storage: Arc<StorageCache>,
    /// Health of the storage classes, claims and volumes caches, in that order.
    pub storage_health: [Arc<CacheHealth>; 3],
    pub node_pools_health: Arc<CacheHealth>,
    /// Whether to watch storage at all (`--watch-storage`).
    pub watch_storage: bool,
    /// How often to ask whether the NodePool API has appeared.
    pub discovery_interval: Duration,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            namespaces: Arc::new(NamespaceCache::default()),
            nodes_health: Arc::new(CacheHealth::new("nodes")),
            namespaces_health: Arc::new(CacheHealth::new("namespaces")),
            autoscalers_health: Arc::new(CacheHealth::new("autoscalers")),
            budgets_health: Arc::new(CacheHealth::new("budgets")),
            storage: Arc::new(StorageCache::default()),
            storage_health: [
                Arc::new(CacheHealth::new("storageclasses")),
                Arc::new(CacheHealth::new("persistentvolumeclaims")),
                Arc::new(CacheHealth::new("persistentvolumes")),
            ],
            node_pools_health: Arc::new(CacheHealth::new("nodepools")),
            watch_storage: true,
            discovery_interval: Duration::from_secs(60),
        }
    }
}

impl Caches {
    /// Without the storage caches (`--watch-storage=false`): storage is then unknown, and
    /// HA017–HA020 and the stateful zone spread stay silent.
    pub fn without_storage(mut self) -> Self {
        self.watch_storage = false;
        self
    }

    pub fn with_discovery_interval(mut self, interval: Duration) -> Self {
        self.discovery_interval = interval;
        self
    }

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
            sink.clone(),
            self.nodes_health.clone(),
            debounce,
        ));
        tokio::spawn(node_pools::run(
            client.clone(),
            sink,
            self.node_pools_health.clone(),
            self.discovery_interval,
        ));
        if self.watch_storage {
            let [classes, claims, volumes] = self.storage_health.clone();
            tokio::spawn(storage::run_classes(
                client.clone(),
                self.storage.clone(),
                classes,
            ));
            tokio::spawn(storage::run_claims(
                client.clone(),
                self.storage.clone(),
                claims,
            ));
            tokio::spawn(storage::run_volumes(
                client.clone(),
                self.storage.clone(),
                volumes,
            ));
        }
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

    /// The caches readiness waits for.
    pub fn healths(&self) -> Vec<Arc<CacheHealth>> {
        let mut all = vec![
            self.nodes_health.clone(),
            self.namespaces_health.clone(),
            self.autoscalers_health.clone(),
            self.budgets_health.clone(),
            self.node_pools_health.clone(),
        ];
        if self.watch_storage {
            all.extend(self.storage_health.iter().cloned());
        }
        all
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
