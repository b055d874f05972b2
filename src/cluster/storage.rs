//! The storage caches: StorageClasses, PersistentVolumeClaims and PersistentVolumes, each
//! reduced as it streams in to what placement needs, and read by the engine through
//! [`Volumes`].
//!
//! A cluster may hold tens of thousands of claims and volumes, so no reflector store keeps
//! the objects: every list page and watch event is interpreted once
//! ([`ClaimInfo::from_typed`], [`VolumeInfo::from_typed`], [`StorageClassInfo::from_typed`],
//! as files are) and kept in a compact form (names, an access-mode byte, interned class and
//! zone names). Lists are paginated (`limit=500`), so the first list never holds more than a
//! page of full objects. A relist (after `410 Gone`) builds the new contents beside the old
//! ones and swaps them in when it is complete, so requests never see half a list.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::health::CacheHealth;
use crate::engine::storage::{
    AccessModes, ClaimInfo, ClassRef, StorageClassInfo, VolumeInfo, Volumes, pick_default,
};

/// A claim as the cache keeps it (its key is `namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Claim {
    /// `None`: no `storageClassName` (the default class); `Some("")`: no class.
    class: Option<Arc<str>>,
    modes: u8,
    volume: Option<Box<str>>,
}

/// A volume as the cache keeps it (its key is its name).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Volume {
    zones: Box<[Arc<str>]>,
    /// `namespace/name` of its claimRef.
    claim: Option<Box<str>>,
    prebound: bool,
}

/// Strings many objects share (class names, zone names), stored once.
#[derive(Debug, Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.0.get(s) {
            return found.clone();
        }
        let arc: Arc<str> = Arc::from(s);
        self.0.insert(arc.clone());
        arc
    }
}

/// The three storage caches, readable by the engine at any time.
#[derive(Debug, Default)]
pub struct StorageCache {
    classes: ArcSwap<BTreeMap<String, StorageClassInfo>>,
    claims: RwLock<BTreeMap<Box<str>, Claim>>,
    volumes: RwLock<BTreeMap<Box<str>, Volume>>,
    /// `namespace/claim` → volume, for volumes pre-bound by hand (claimRef without a uid).
    prebound: RwLock<BTreeMap<Box<str>, Box<str>>>,
    interner: std::sync::Mutex<Interner>,
}

fn key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

// === impl StorageCache ===

impl StorageCache {
    fn intern(&self, s: &str) -> Arc<str> {
        self.interner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(s)
    }

    fn compact_claim(&self, c: &ClaimInfo) -> Claim {
        Claim {
            class: match &c.class {
                ClassRef::Default => None,
                ClassRef::NoClass => Some(Arc::from("")),
                ClassRef::Named(n) => Some(self.intern(n)),
            },
            modes: c.access_modes.bits(),
            volume: c.volume.as_deref().map(Box::from),
        }
    }

    fn compact_volume(&self, v: &VolumeInfo) -> Volume {
        Volume {
            zones: v.zones.iter().map(|z| self.intern(z)).collect(),
            claim: v.claim.as_ref().map(|(ns, n)| key(ns, n)),
            prebound: v.prebound,
        }
    }

    /// How many claims and volumes are cached (for tests and the memory figure).
    pub fn counts(&self) -> (usize, usize, usize) {
        let read = |m: &RwLock<BTreeMap<Box<str>, Claim>>| m.read().map_or(0, |m| m.len());
        (
            self.classes.load().len(),
            read(&self.claims),
            self.volumes.read().map_or(0, |m| m.len()),
        )
    }

    fn set_prebound(&self, name: &str, v: &Volume, previous: Option<&Volume>) {
        let Ok(mut prebound) = self.prebound.write() else {
            return;
        };
        if let Some(old) = previous.and_then(|p| p.claim.as_ref())
            && prebound.get(old).is_some_and(|n| &**n == name)
        {
            prebound.remove(old);
        }
        if v.prebound
            && let Some(claim) = &v.claim
        {
            prebound.insert(claim.clone(), Box::from(name));
        }
    }
}

fn expand_claim(k: &str, c: &Claim) -> ClaimInfo {
    let (namespace, name) = k.split_once('/').unwrap_or(("", k));
    ClaimInfo {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        class: match c.class.as_deref() {
            None => ClassRef::Default,
            Some("") => ClassRef::NoClass,
            Some(n) => ClassRef::Named(n.to_owned()),
        },
        access_modes: AccessModes::from_bits(c.modes),
        volume: c.volume.as_deref().map(str::to_owned),
    }
}

fn expand_volume(name: &str, v: &Volume) -> VolumeInfo {
    VolumeInfo {
        name: name.to_owned(),
        zones: v.zones.iter().map(|z| z.to_string()).collect(),
        claim: v.claim.as_deref().and_then(|c| {
            let (ns, n) = c.split_once('/')?;
            Some((ns.to_owned(), n.to_owned()))
        }),
        prebound: v.prebound,
    }
}

impl Volumes for StorageCache {
    fn class(&self, name: &str) -> Option<StorageClassInfo> {
        self.classes.load().get(name).cloned()
    }

    fn default_class(&self) -> Option<StorageClassInfo> {
        pick_default(self.classes.load().values()).cloned()
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<ClaimInfo> {
        let k = key(namespace, name);
        let claims = self.claims.read().ok()?;
        claims.get(&k).map(|c| expand_claim(&k, c))
    }

    fn claims_with_prefix(&self, namespace: &str, prefix: &str, each: &mut dyn FnMut(ClaimInfo)) {
        let start = key(namespace, prefix);
        let Ok(claims) = self.claims.read() else {
            return;
        };
        let found: Vec<ClaimInfo> = claims
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&*start))
            .take(crate::engine::stateful::MAX_CLAIMS)
            .map(|(k, c)| expand_claim(k, c))
            .collect();
        drop(claims);
        for c in found {
            each(c);
        }
    }

    fn volume(&self, name: &str) -> Option<VolumeInfo> {
        let volumes = self.volumes.read().ok()?;
        volumes.get(name).map(|v| expand_volume(name, v))
    }

    fn prebound_volume(&self, namespace: &str, claim: &str) -> Option<VolumeInfo> {
        let name = self
            .prebound
            .read()
            .ok()?
            .get(&key(namespace, claim))?
            .clone();
        self.volume(&name)
    }

    fn prebound_with_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        each: &mut dyn FnMut(String, VolumeInfo),
    ) {
        let start = key(namespace, prefix);
        let found: Vec<(String, Box<str>)> = match self.prebound.read() {
            Ok(p) => p
                .range(start.clone()..)
                .take_while(|(k, _)| k.starts_with(&*start))
                .take(crate::engine::stateful::MAX_CLAIMS)
                .map(|(k, v)| {
                    let claim = k.split_once('/').map_or(&**k, |(_, c)| c).to_owned();
                    (claim, v.clone())
                })
                .collect(),
            Err(_) => return,
        };
        for (claim, volume) in found {
            if let Some(v) = self.volume(&volume) {
                each(claim, v);
            }
        }
    }
}

// === The watches ===

/// Where a watch puts what it keeps of each object: `reduce` interprets an object once, a
/// complete (re)list replaces everything at once, and later events change one entry.
trait Sink<K> {
    type Value;
    fn reduce(&self, object: &K) -> (Box<str>, Self::Value);
    /// The key of a deleted object (nothing else of it is read).
    fn key(&self, object: &K) -> Box<str>;
    fn replace(&mut self, all: BTreeMap<Box<str>, Self::Value>);
    fn apply(&mut self, key: Box<str>, value: Self::Value);
    fn delete(&mut self, key: &str);
}

/// Watches every `K` until the process ends, keeping `sink` up to date. A relist builds its
/// map beside the current contents and hands it over when complete.
async fn watch_into<K, S>(client: Client, health: &CacheHealth, mut sink: S)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
    S: Sink<K>,
{
    let mut relisting: Option<BTreeMap<Box<str>, S::Value>> = None;
    watcher(Api::<K>::all(client), watcher::Config::default())
        .default_backoff()
        .for_each(|event| {
            match event {
                Ok(watcher::Event::Init) => {
                    health.ok();
                    relisting = Some(BTreeMap::new());
                }
                Ok(watcher::Event::InitApply(o)) => {
                    health.ok();
                    let (k, v) = sink.reduce(&o);
                    relisting.get_or_insert_with(BTreeMap::new).insert(k, v);
                }
                Ok(watcher::Event::InitDone) => {
                    health.ok();
                    sink.replace(relisting.take().unwrap_or_default());
                    health.mark_synced();
                }
                Ok(watcher::Event::Apply(o)) => {
                    health.ok();
                    let (k, v) = sink.reduce(&o);
                    sink.apply(k, v);
                }
                Ok(watcher::Event::Delete(o)) => {
                    health.ok();
                    let k = sink.key(&o);
                    sink.delete(&k);
                }
                Err(e) => health.failed(&e),
            }
            std::future::ready(())
        })
        .await;
}

/// StorageClasses, republished whole on every change (a cluster has a handful).
struct ClassSink {
    cache: Arc<StorageCache>,
    current: BTreeMap<String, StorageClassInfo>,
}

impl ClassSink {
    fn publish(&self) {
        self.cache.classes.store(Arc::new(self.current.clone()));
    }
}

impl Sink<StorageClass> for ClassSink {
    type Value = StorageClassInfo;
    fn reduce(&self, c: &StorageClass) -> (Box<str>, StorageClassInfo) {
        let info = StorageClassInfo::from_typed(c);
        (Box::from(info.name.as_str()), info)
    }
    fn key(&self, c: &StorageClass) -> Box<str> {
        c.name_any().into_boxed_str()
    }
    fn replace(&mut self, all: BTreeMap<Box<str>, StorageClassInfo>) {
        self.current = all.into_iter().map(|(k, v)| (k.into_string(), v)).collect();
        self.publish();
    }
    fn apply(&mut self, key: Box<str>, value: StorageClassInfo) {
        self.current.insert(key.into_string(), value);
        self.publish();
    }
    fn delete(&mut self, key: &str) {
        self.current.remove(key);
        self.publish();
    }
}

/// Claims, compacted, by `namespace/name`.
struct ClaimSink(Arc<StorageCache>);

impl Sink<PersistentVolumeClaim> for ClaimSink {
    type Value = Claim;
    fn reduce(&self, c: &PersistentVolumeClaim) -> (Box<str>, Claim) {
        let info = ClaimInfo::from_typed(c);
        (
            key(&info.namespace, &info.name),
            self.0.compact_claim(&info),
        )
    }
    fn key(&self, c: &PersistentVolumeClaim) -> Box<str> {
        key(&c.namespace().unwrap_or_default(), &c.name_any())
    }
    fn replace(&mut self, all: BTreeMap<Box<str>, Claim>) {
        if let Ok(mut claims) = self.0.claims.write() {
            *claims = all;
        }
    }
    fn apply(&mut self, key: Box<str>, value: Claim) {
        if let Ok(mut claims) = self.0.claims.write() {
            claims.insert(key, value);
        }
    }
    fn delete(&mut self, key: &str) {
        if let Ok(mut claims) = self.0.claims.write() {
            claims.remove(key);
        }
    }
}

/// Volumes, compacted, by name; with the index of those pre-bound by hand.
struct VolumeSink(Arc<StorageCache>);

impl Sink<PersistentVolume> for VolumeSink {
    type Value = Volume;
    fn reduce(&self, v: &PersistentVolume) -> (Box<str>, Volume) {
        let info = VolumeInfo::from_typed(v);
        (Box::from(info.name.as_str()), self.0.compact_volume(&info))
    }
    fn key(&self, v: &PersistentVolume) -> Box<str> {
        v.name_any().into_boxed_str()
    }
    fn replace(&mut self, all: BTreeMap<Box<str>, Volume>) {
        let prebound: BTreeMap<Box<str>, Box<str>> = all
            .iter()
            .filter(|(_, v)| v.prebound)
            .filter_map(|(name, v)| Some((v.claim.clone()?, name.clone())))
            .collect();
        if let Ok(mut volumes) = self.0.volumes.write() {
            *volumes = all;
        }
        if let Ok(mut p) = self.0.prebound.write() {
            *p = prebound;
        }
    }
    fn apply(&mut self, key: Box<str>, value: Volume) {
        let previous = self
            .0
            .volumes
            .write()
            .ok()
            .and_then(|mut m| m.insert(key.clone(), value.clone()));
        self.0.set_prebound(&key, &value, previous.as_ref());
    }
    fn delete(&mut self, key: &str) {
        let previous = self.0.volumes.write().ok().and_then(|mut m| m.remove(key));
        if let Some(old) = previous {
            let gone = Volume {
                prebound: false,
                ..old.clone()
            };
            self.0.set_prebound(key, &gone, Some(&old));
        }
    }
}

/// Watches StorageClasses until the process ends.
pub async fn run_classes(client: Client, cache: Arc<StorageCache>, health: Arc<CacheHealth>) {
    let sink = ClassSink {
        cache,
        current: BTreeMap::new(),
    };
    watch_into::<StorageClass, _>(client, &health, sink).await;
}

/// Watches PersistentVolumeClaims until the process ends.
pub async fn run_claims(client: Client, cache: Arc<StorageCache>, health: Arc<CacheHealth>) {
    watch_into::<PersistentVolumeClaim, _>(client, &health, ClaimSink(cache)).await;
}

/// Watches PersistentVolumes until the process ends.
pub async fn run_volumes(client: Client, cache: Arc<StorageCache>, health: Arc<CacheHealth>) {
    watch_into::<PersistentVolume, _>(client, &health, VolumeSink(cache)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_forms_give_back_what_they_were_made_from() {
        let cache = StorageCache::default();
        let claim = ClaimInfo::from_json(&json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": "db", "name": "data-db-0"},
            "spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"], "volumeName": "pv-1"},
        }))
        .unwrap();
        let k = key(&claim.namespace, &claim.name);
        assert_eq!(expand_claim(&k, &cache.compact_claim(&claim)), claim);
        let volume = VolumeInfo::from_json(&json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv-1"},
            "spec": {"claimRef": {"namespace": "db", "name": "data-db-0"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}},
        }))
        .unwrap();
        assert_eq!(
            expand_volume("pv-1", &cache.compact_volume(&volume)),
            volume
        );
        // Zone names are stored once however many volumes carry them.
        let a = cache.compact_volume(&volume);
        let b = cache.compact_volume(&volume);
        assert!(Arc::ptr_eq(&a.zones[0], &b.zones[0]));
    }
}
