//! A watch over objects that decisions read only a little of (autoscalers, disruption
//! budgets): each object is reduced by the engine's own reader as it arrives, kept by
//! namespace and name, and the whole set republished as a fresh index when a reduced object
//! changes. Status updates (an HPA's current metrics every 15 s, a budget's healthy count)
//! reduce to the same thing and republish nothing.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::health::CacheHealth;

/// Reads one object (as JSON) into what decisions keep of it; `Err` says why it cannot be
/// used (the object is then left out and a warning logged).
pub type Reduce<R> = fn(&Value) -> Result<R, String>;

/// Watches `api` until the process ends, calling `publish` with every reduced object after
/// the first list and after every change that matters.
pub async fn watch<K, R>(
    api: Api<K>,
    strip: fn(&mut K),
    reduce: Reduce<R>,
    publish: impl Fn(Vec<R>),
    health: Arc<CacheHealth>,
) where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
    K::DynamicType: Default,
    R: Clone + PartialEq,
{
    let events = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(strip);
    let mut current: HashMap<(String, String), R> = HashMap::new();
    let mut relisting: HashMap<(String, String), R> = HashMap::new();
    let read = |object: &K| -> Option<((String, String), R)> {
        let key = (object.namespace().unwrap_or_default(), object.name_any());
        let json = match serde_json::to_value(object) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(cache = health.name(), object = ?key, %error, "cannot encode; left out");
                return None;
            }
        };
        match reduce(&json) {
            Ok(r) => Some((key, r)),
            Err(error) => {
                tracing::warn!(cache = health.name(), object = ?key, %error, "cannot be read; left out");
                None
            }
        }
    };
    let publish_all = |map: &HashMap<(String, String), R>| publish(map.values().cloned().collect());
    events
        .for_each(|event| {
            match event {
                Ok(watcher::Event::Init) => {
                    health.ok();
                    relisting.clear();
                }
                Ok(watcher::Event::InitApply(object)) => {
                    health.ok();
                    if let Some((key, r)) = read(&object) {
                        relisting.insert(key, r);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    health.ok();
                    current = std::mem::take(&mut relisting);
                    publish_all(&current);
                    health.mark_synced();
                }
                Ok(watcher::Event::Apply(object)) => {
                    health.ok();
                    let changed = match read(&object) {
                        Some((key, r)) => current.insert(key, r.clone()) != Some(r),
                        None => current
                            .remove(&(object.namespace().unwrap_or_default(), object.name_any()))
                            .is_some(),
                    };
                    if changed && health.is_synced() {
                        publish_all(&current);
                    }
                }
                Ok(watcher::Event::Delete(object)) => {
                    health.ok();
                    let key = (object.namespace().unwrap_or_default(), object.name_any());
                    if current.remove(&key).is_some() && health.is_synced() {
                        publish_all(&current);
                    }
                }
                Err(e) => health.failed(&e),
            }
            std::future::ready(())
        })
        .await;
}
