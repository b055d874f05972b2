//! The node cache: a reflector over Nodes that rebuilds and publishes the topology snapshot
//! when a node's zone-relevant properties change.
//!
//! Nodes send a status heartbeat every few seconds; those never rebuild anything. Each event
//! is reduced to the node's [`NodeInfo`] and compared with the last one seen for that node, so
//! only label, taint and schedulability changes mark the snapshot dirty, and bursts of them
//! (a node pool scaling up) are coalesced into one rebuild.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use super::health::CacheHealth;
use crate::engine::NodeInfo;
use crate::engine::topology::Taint;

/// Where a rebuilt snapshot goes (the server's shared state, or a test's channel).
pub trait TopologySink: Send + Sync + 'static {
    fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>);

    /// The node templates of the cluster's NodePools, whenever they change.
    fn publish_node_pools(&self, pools: Arc<Vec<crate::engine::templates::NodeTemplate>>) {
        let _ = pools;
    }
}

/// Reduces a Node to what decisions need (interpreted by [`NodeInfo::new`], as nodes files
/// are).
pub fn node_info(node: &Node) -> NodeInfo {
    let spec = node.spec.as_ref();
    let taints = spec
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone(),
        });
    NodeInfo::new(
        node.name_any(),
        node.labels().clone(),
        taints,
        spec.and_then(|s| s.unschedulable).unwrap_or(false),
    )
}

/// Keeps only labels, taints and schedulability: status (images, conditions) is most of a
/// Node's size and changes every few seconds.
fn strip(node: &mut Node) {
    node.status = None;
    let meta = &mut node.metadata;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    if let Some(spec) = node.spec.as_mut() {
        spec.config_source = None;
        spec.pod_cidr = None;
        spec.pod_cidrs = None;
        spec.provider_id = None;
    }
}

/// A hash of what decisions read of a node (64 bits: a collision would only delay a rebuild
/// until the node's next change).
fn fingerprint(info: &NodeInfo) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    info.labels.hash(&mut h);
    info.taints.hash(&mut h);
    info.unschedulable.hash(&mut h);
    h.finish()
}

/// Builds the snapshot's node list from the store, in name order.
fn snapshot(store: &Store<Node>) -> Vec<NodeInfo> {
    let mut nodes: Vec<NodeInfo> = store.state().iter().map(|n| node_info(n)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

/// Watches Nodes until the process ends. `debounce` bounds how often a burst of changes
/// rebuilds the snapshot.
pub async fn run(
    client: Client,
    sink: Arc<dyn TopologySink>,
    health: Arc<CacheHealth>,
    debounce: Duration,
) {
    let (store, writer) = reflector::store();
    let dirty = Arc::new(Notify::new());
    let events = watcher(
        Api::<Node>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(strip)
    .reflect(writer);

    let rebuilder = {
        let (store, dirty, health) = (store.clone(), dirty.clone(), health.clone());
        async move {
            loop {
                dirty.notified().await;
                tokio::time::sleep(debounce).await;
                if !health.is_synced() {
                    continue;
                }
                let started = Instant::now();
                let nodes = snapshot(&store);
                let count = nodes.len();
                sink.publish_nodes(Arc::new(nodes));
                tracing::debug!(nodes = count, took = ?started.elapsed(), "topology rebuilt");
            }
        }
    };

    // name → a fingerprint of the NodeInfo last seen, so that heartbeats are recognised as no
    // change without keeping a second copy of every node.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut relisting: HashMap<String, u64> = HashMap::new();
    let watch = events.for_each(|event| {
        match event {
            Ok(watcher::Event::Init) => {
                health.ok();
                relisting.clear();
            }
            Ok(watcher::Event::InitApply(node)) => {
                health.ok();
                let info = node_info(&node);
                relisting.insert(info.name.clone(), fingerprint(&info));
            }
            Ok(watcher::Event::InitDone) => {
                health.ok();
                seen = std::mem::take(&mut relisting);
                health.mark_synced();
                dirty.notify_one();
            }
            Ok(watcher::Event::Apply(node)) => {
                health.ok();
                let info = node_info(&node);
                let print = fingerprint(&info);
                if seen.insert(info.name, print) != Some(print) {
                    dirty.notify_one();
                }
            }
            Ok(watcher::Event::Delete(node)) => {
                health.ok();
                if seen.remove(&node.name_any()).is_some() {
                    dirty.notify_one();
                }
            }
            Err(e) => health.failed(&e),
        }
        std::future::ready(())
    });
    tokio::join!(watch, rebuilder);
}
