//! The NodePool cache: Karpenter `karpenter.sh/v1` NodePools, when the cluster serves that
//! API, read as node templates (nodes a pool can add) and joined to the topology.
//!
//! Whether the API exists is asked by discovery, at startup and then every
//! `--discovery-interval` until it appears (Karpenter may be installed after spreadguard).
//! Until then the cache counts as synced with no pools: a cluster without Karpenter is the
//! common case, not a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::TopologySink;
use super::health::CacheHealth;
use crate::engine::storage::ObjectError;
use crate::engine::templates::NodeTemplate;

/// The API group and version read.
pub const GROUP_VERSION: &str = "karpenter.sh/v1";

fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
        "nodepools",
    )
}

/// Whether the cluster serves `karpenter.sh/v1` `nodepools`. `Err` when discovery itself
/// failed (the API server is unreachable), so that the caller can tell "no Karpenter" from
/// "cannot tell".
pub async fn served(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "nodepools")),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads one NodePool object into a template (raw JSON, as files are read).
pub fn template_of(pool: &DynamicObject) -> Result<NodeTemplate, ObjectError> {
    let mut value = serde_json::to_value(pool).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| GROUP_VERSION.into());
        map.entry("kind").or_insert_with(|| "NodePool".into());
    }
    NodeTemplate::from_node_pool(&value)
}

/// Discovers the NodePool API, then watches NodePools until the process ends, publishing
/// their templates on every change.
pub async fn run(
    client: Client,
    sink: Arc<dyn TopologySink>,
    health: Arc<CacheHealth>,
    discovery_interval: Duration,
) {
    loop {
        match served(&client).await {
            Ok(true) => break,
            Ok(false) => {
                health.ok();
                if !health.is_synced() {
                    tracing::info!("no karpenter.sh/v1 NodePools served: no node pools to read");
                    health.mark_synced();
                }
            }
            Err(e) => health.failed(&e),
        }
        tokio::time::sleep(discovery_interval).await;
    }
    tracing::info!("watching karpenter.sh/v1 NodePools");
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource());
    let mut current: BTreeMap<String, NodeTemplate> = BTreeMap::new();
    let mut relisting: BTreeMap<String, NodeTemplate> = BTreeMap::new();
    let publish = |pools: &BTreeMap<String, NodeTemplate>| {
        sink.publish_node_pools(Arc::new(pools.values().cloned().collect()));
    };
    let read = |pool: &DynamicObject| match template_of(pool) {
        Ok(t) => Some(t),
        Err(error) => {
            tracing::warn!(pool = %pool.name_any(), %error, "NodePool not understood; left out");
            None
        }
    };
    watcher(api, watcher::Config::default())
        .default_backoff()
        .for_each(|event| {
            match event {
                Ok(watcher::Event::Init) => {
                    health.ok();
                    relisting.clear();
                }
                Ok(watcher::Event::InitApply(pool)) => {
                    health.ok();
                    if let Some(t) = read(&pool) {
                        relisting.insert(pool.name_any(), t);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    health.ok();
                    current = std::mem::take(&mut relisting);
                    publish(&current);
                    health.mark_synced();
                }
                Ok(watcher::Event::Apply(pool)) => {
                    health.ok();
                    let name = pool.name_any();
                    let before = current.get(&name).cloned();
                    match read(&pool) {
                        Some(t) => current.insert(name.clone(), t),
                        None => current.remove(&name),
                    };
                    if current.get(&name) != before.as_ref() {
                        publish(&current);
                    }
                }
                Ok(watcher::Event::Delete(pool)) => {
                    health.ok();
                    if current.remove(&pool.name_any()).is_some() {
                        publish(&current);
                    }
                }
                Err(e) => health.failed(&e),
            }
            std::future::ready(())
        })
        .await;
}
