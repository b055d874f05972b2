//! The namespace cache: each namespace's labels (opt-in and mode), read on the admission
//! path without a lock or a round trip.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use super::health::CacheHealth;
use crate::admission::NamespaceLabels;

type LabelMap = HashMap<String, Arc<BTreeMap<String, String>>>;

/// Namespace name → labels, republished whole on every change (namespaces change rarely).
#[derive(Debug, Default)]
pub struct NamespaceCache {
    labels: ArcSwap<LabelMap>,
}

impl NamespaceCache {
    fn publish(&self, store: &Store<Namespace>) {
        let map: LabelMap = store
            .state()
            .iter()
            .map(|ns| (ns.name_any(), Arc::new(ns.labels().clone())))
            .collect();
        self.labels.store(Arc::new(map));
    }
}

impl NamespaceLabels for NamespaceCache {
    /// `None` for a namespace the cache has not seen (yet): the mode then falls back to the
    /// policy, and the API server's `namespaceSelector` is trusted for the opt-in.
    fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self.labels.load().get(namespace).cloned()
    }
}

/// Keeps only what decisions need: the name and the labels.
fn strip(ns: &mut Namespace) {
    ns.spec = None;
    ns.status = None;
    let meta = &mut ns.metadata;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.finalizers = None;
    meta.owner_references = None;
}

/// Watches Namespaces until the process ends, republishing the labels on every change.
pub async fn run(client: Client, cache: Arc<NamespaceCache>, health: Arc<CacheHealth>) {
    let (store, writer) = reflector::store();
    let changed = Arc::new(Notify::new());
    let events = watcher(
        Api::<Namespace>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(strip)
    .reflect(writer);
    let publisher = {
        let (store, changed, cache, health) = (
            store.clone(),
            changed.clone(),
            cache.clone(),
            health.clone(),
        );
        async move {
            loop {
                changed.notified().await;
                if health.is_synced() {
                    cache.publish(&store);
                }
            }
        }
    };
    let watch = events.for_each(|event| {
        match event {
            Ok(watcher::Event::InitDone) => {
                health.ok();
                health.mark_synced();
                changed.notify_one();
            }
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                health.ok();
                changed.notify_one();
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => health.ok(),
            Err(e) => health.failed(&e),
        }
        std::future::ready(())
    });
    tokio::join!(watch, publisher);
}
