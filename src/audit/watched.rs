//! The cluster as `serve --reports` keeps it: one watch per list that `audit --cluster`
//! reads, each object kept as the compact JSON the audit would decode from a list page
//! (workloads pruned as admission prunes a CREATE, pods reduced to what counting reads, Nodes
//! without their status), so that each report round judges the cluster without listing it.
//!
//! A watch starts with a paginated list and then follows changes (kube-runtime's watcher,
//! which relists after `410 Gone`); a relist is built beside the current contents and
//! swapped in when complete. [`Watched::synced`] says when every watch has listed once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::task::JoinHandle;

use super::lists::{Listed, listed_paths};
use super::pods;
use crate::engine::WorkloadKind;
use crate::engine::policy::Policy;

/// `namespace/name` → the object's compact JSON.
type Objects = BTreeMap<String, Box<RawValue>>;

/// Every watched list, by API path.
#[derive(Default)]
pub struct Watched {
    lists: Mutex<HashMap<String, Objects>>,
    /// Watches that have not listed once yet.
    unsynced: AtomicUsize,
}

/// The watches' tasks; dropping it stops them.
pub struct Watches(Vec<JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Watched {
    /// Starts a watch for every list the audit reads under `policy` (optional kinds only
    /// where the API server serves them).
    pub async fn start(
        client: &Client,
        policy: &Policy,
    ) -> anyhow::Result<(Arc<Watched>, Watches)> {
        let paths = listed_paths(client, policy).await?;
        let watched = Arc::new(Watched {
            lists: Mutex::new(HashMap::new()),
            unsynced: AtomicUsize::new(paths.len()),
        });
        let tasks = paths
            .into_iter()
            .map(|listed| {
                let (client, watched, policy) = (client.clone(), watched.clone(), policy.clone());
                tokio::spawn(async move { watched.follow(client, listed, &policy).await })
            })
            .collect();
        Ok((watched, Watches(tasks)))
    }

    /// Whether every watch has listed once.
    pub fn synced(&self) -> bool {
        self.unsynced.load(Ordering::Acquire) == 0
    }

    /// Calls `each` with every object of the list at `path` (none when it is not watched:
    /// a kind the API server does not serve).
    pub fn each(
        &self,
        path: &str,
        each: &mut (dyn FnMut(&RawValue) -> anyhow::Result<()> + Send),
    ) -> anyhow::Result<()> {
        let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        for raw in lists.get(path).into_iter().flat_map(BTreeMap::values) {
            each(raw)?;
        }
        Ok(())
    }

    async fn follow(&self, client: Client, listed: Listed, policy: &Policy) {
        let (group, version) = listed
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", &listed.api_version));
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &listed.kind),
            listed.path.rsplit('/').next().unwrap_or_default(),
        );
        let api = Api::<DynamicObject>::all_with(client, &resource);
        let mut relisting: Option<Objects> = None;
        let mut synced = false;
        let mut events = std::pin::pin!(
            watcher(api, watcher::Config::default().page_size(500)).default_backoff()
        );
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => relisting = Some(Objects::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let Some(raw) = compact(&listed, &o, policy) {
                        relisting
                            .get_or_insert_with(Objects::new)
                            .insert(key(&o), raw);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let fresh = relisting.take().unwrap_or_default();
                    self.lists
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(listed.path.clone(), fresh);
                    if !synced {
                        synced = true;
                        self.unsynced.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                Ok(watcher::Event::Apply(o)) => {
                    if let Some(raw) = compact(&listed, &o, policy) {
                        self.lists
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(listed.path.clone())
                            .or_default()
                            .insert(key(&o), raw);
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    if let Some(list) = self
                        .lists
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&listed.path)
                    {
                        list.remove(&key(&o));
                    }
                }
                Err(e) => tracing::debug!(path = listed.path, error = %e, "reports watch"),
            }
        }
    }
}

fn key(o: &DynamicObject) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// The JSON the audit reads of `o`: workloads as admission decodes a CREATE, pods with a
/// controller reduced to what counting reads, Nodes without their status, the rest whole.
fn compact(listed: &Listed, o: &DynamicObject, policy: &Policy) -> Option<Box<RawValue>> {
    let mut value = serde_json::to_value(o).ok()?;
    let kind = WorkloadKind::from_type(&listed.api_version, &listed.kind, policy);
    let value = match (listed.kind.as_str(), kind) {
        // Bare pods are workloads, judged whole (their status is counted too).
        ("Pod", _) if pods::has_controller(&value) => pods::reduced(&value),
        ("Pod", _) => value,
        ("Node", _) => {
            if let Some(map) = value.as_object_mut() {
                map.remove("status");
            }
            value
        }
        (_, Some(kind)) => {
            crate::admission::prune::parse_value(&serde_json::to_string(&value).ok()?, Some(kind))
                .ok()?
        }
        _ => value,
    };
    strip_managed_fields_unless_read(value, kind)
        .and_then(|v| serde_json::value::to_raw_value(&v).ok())
}

/// Managed fields are read of workloads only (who set `spec.replicas`), and the pruned
/// decoding keeps only that part of them.
fn strip_managed_fields_unless_read(mut value: Value, kind: Option<WorkloadKind>) -> Option<Value> {
    if kind.is_none()
        && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("managedFields");
    }
    Some(value)
}
