//! Storage as placement sees it: StorageClasses, PersistentVolumeClaims and
//! PersistentVolumes, reduced to what decides where a pod can run.
//!
//! A StorageClass says who provisions a volume (its zonality comes from the policy's
//! `zonalProvisioners`), when (`volumeBindingMode`: `Immediate` before scheduling, or
//! `WaitForFirstConsumer` in the zone the scheduler picked) and where (`allowedTopologies`).
//! A bound PersistentVolume's node affinity says which zone its pod must run in from then on.
//!
//! Each object is interpreted once, by the constructors here, whether it comes from a file
//! (`from_json`) or from the cluster cache (`from_typed`); the engine reads them through
//! [`Volumes`], which the cache and [`VolumeSet`] (files, tests) implement.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;
use serde_json::Value;

use super::well_known::{
    BETA_DEFAULT_CLASS_ANNOTATION, DEFAULT_CLASS_ANNOTATION, LEGACY_ZONE_KEY, STANDARD_ZONE_KEY,
    is_zone_like_key,
};

/// An object placement reads besides nodes and workloads (a StorageClass, a claim, a volume,
/// a NodePool) whose fields cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}: {reason}")]
pub struct ObjectError {
    pub kind: &'static str,
    /// `metadata.name`, or `(no name)`.
    pub name: String,
    /// What is wrong, naming the field.
    pub reason: String,
}

impl ObjectError {
    pub fn new(kind: &'static str, object: &Value, reason: impl std::fmt::Display) -> Self {
        ObjectError {
            kind,
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("(no name)")
                .to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// When a class's volumes are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum BindingMode {
    /// When the claim is created, in a zone the provisioner picks (the API's default).
    Immediate,
    /// When the first pod using the claim is scheduled, in that pod's zone.
    WaitForFirstConsumer,
}

impl BindingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingMode::Immediate => "Immediate",
            BindingMode::WaitForFirstConsumer => "WaitForFirstConsumer",
        }
    }
}

/// A StorageClass, reduced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageClassInfo {
    pub name: String,
    pub provisioner: String,
    pub binding_mode: BindingMode,
    /// The zones `allowedTopologies` lets volumes be created in; `None`: no zone restriction.
    pub allowed_zones: Option<BTreeSet<String>>,
    pub parameters: BTreeMap<String, String>,
    /// Annotated as the cluster's default class.
    pub default: bool,
    /// `metadata.creationTimestamp` (RFC 3339), to pick the newest of several defaults as the
    /// API server does.
    pub created: Option<String>,
}

/// Access modes, as a small set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccessModes(u8);

impl AccessModes {
    pub const READ_WRITE_ONCE: AccessModes = AccessModes(1);
    pub const READ_ONLY_MANY: AccessModes = AccessModes(2);
    pub const READ_WRITE_MANY: AccessModes = AccessModes(4);
    pub const READ_WRITE_ONCE_POD: AccessModes = AccessModes(8);

    pub fn parse<'a>(modes: impl IntoIterator<Item = &'a str>) -> AccessModes {
        let mut m = 0;
        for mode in modes {
            m |= match mode {
                "ReadWriteOnce" => 1,
                "ReadOnlyMany" => 2,
                "ReadWriteMany" => 4,
                "ReadWriteOncePod" => 8,
                _ => 0,
            };
        }
        AccessModes(m)
    }

    pub fn contains(self, other: AccessModes) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> AccessModes {
        AccessModes(bits & 15)
    }

    /// `ReadWriteOnce,ReadOnlyMany`.
    pub fn describe(self) -> String {
        let names = [
            (1, "ReadWriteOnce"),
            (2, "ReadOnlyMany"),
            (4, "ReadWriteMany"),
            (8, "ReadWriteOncePod"),
        ];
        names
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Which class a claim asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClassRef {
    /// `storageClassName` unset: the default class.
    Default,
    /// `storageClassName: ""`: no class, bound only to a pre-created volume.
    NoClass,
    Named(String),
}

impl ClassRef {
    pub fn from_field(name: Option<&str>) -> ClassRef {
        match name {
            None => ClassRef::Default,
            Some("") => ClassRef::NoClass,
            Some(n) => ClassRef::Named(n.to_owned()),
        }
    }
}

/// A PersistentVolumeClaim, reduced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimInfo {
    pub namespace: String,
    pub name: String,
    pub class: ClassRef,
    pub access_modes: AccessModes,
    /// The PersistentVolume it is bound to.
    pub volume: Option<String>,
}

/// A PersistentVolume, reduced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// The zones its node affinity allows, sorted; empty: not restricted to zones.
    pub zones: Vec<String>,
    /// `claimRef` namespace and name, when it is bound or pre-bound to a claim.
    pub claim: Option<(String, String)>,
    /// `claimRef` without a uid: pre-bound by hand to a claim that may not exist yet.
    pub prebound: bool,
}

// === impl StorageClassInfo ===

impl StorageClassInfo {
    pub fn from_typed(class: &StorageClass) -> StorageClassInfo {
        let meta = &class.metadata;
        let annotations = meta.annotations.as_ref();
        let flag = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .is_some_and(|v| v == "true")
        };
        let allowed_zones = class.allowed_topologies.as_ref().and_then(|terms| {
            let mut zones = BTreeSet::new();
            for term in terms {
                let mut in_term: Option<BTreeSet<String>> = None;
                for e in term.match_label_expressions.iter().flatten() {
                    if !is_zone_like_key(&e.key) {
                        continue;
                    }
                    let values: BTreeSet<String> = e.values.iter().cloned().collect();
                    in_term = Some(match in_term {
                        None => values,
                        Some(before) => before.intersection(&values).cloned().collect(),
                    });
                }
                // A term without a zone expression allows every zone.
                zones.extend(in_term?);
            }
            (!terms.is_empty()).then_some(zones)
        });
        StorageClassInfo {
            name: meta.name.clone().unwrap_or_default(),
            provisioner: class.provisioner.clone(),
            binding_mode: match class.volume_binding_mode.as_deref() {
                Some("WaitForFirstConsumer") => BindingMode::WaitForFirstConsumer,
                _ => BindingMode::Immediate,
            },
            allowed_zones,
            parameters: class.parameters.clone().unwrap_or_default(),
            default: flag(DEFAULT_CLASS_ANNOTATION) || flag(BETA_DEFAULT_CLASS_ANNOTATION),
            created: meta.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        }
    }

    /// Reads a StorageClass object (raw JSON, as the API server or a manifest gives it).
    pub fn from_json(object: &Value) -> Result<StorageClassInfo, ObjectError> {
        let class: StorageClass = typed(object, "StorageClass")?;
        Ok(StorageClassInfo::from_typed(&class))
    }
}

/// Of several classes annotated as the default, the API server gives new claims the newest
/// (then the first by name); `None` when there is no default class.
pub fn pick_default<'a>(
    classes: impl IntoIterator<Item = &'a StorageClassInfo>,
) -> Option<&'a StorageClassInfo> {
    classes
        .into_iter()
        .filter(|c| c.default)
        .max_by(|a, b| a.created.cmp(&b.created).then_with(|| b.name.cmp(&a.name)))
}

// === impl ClaimInfo ===

impl ClaimInfo {
    pub fn from_typed(claim: &PersistentVolumeClaim) -> ClaimInfo {
        let spec = claim.spec.as_ref();
        ClaimInfo {
            namespace: claim.metadata.namespace.clone().unwrap_or_default(),
            name: claim.metadata.name.clone().unwrap_or_default(),
            class: ClassRef::from_field(spec.and_then(|s| s.storage_class_name.as_deref())),
            access_modes: AccessModes::parse(
                spec.and_then(|s| s.access_modes.as_deref())
                    .unwrap_or_default()
                    .iter()
                    .map(String::as_str),
            ),
            volume: spec
                .and_then(|s| s.volume_name.clone())
                .filter(|v| !v.is_empty()),
        }
    }

    pub fn from_json(object: &Value) -> Result<ClaimInfo, ObjectError> {
        let claim: PersistentVolumeClaim = typed(object, "PersistentVolumeClaim")?;
        Ok(ClaimInfo::from_typed(&claim))
    }
}

// === impl VolumeInfo ===

impl VolumeInfo {
    pub fn from_typed(volume: &PersistentVolume) -> VolumeInfo {
        let spec = volume.spec.as_ref();
        let mut zones: Option<BTreeSet<String>> = None;
        let terms = spec
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
            .map(|r| r.node_selector_terms.as_slice())
            .unwrap_or_default();
        if !terms.is_empty() {
            let mut union = BTreeSet::new();
            let mut restricted = true;
            for term in terms {
                let mut in_term: Option<BTreeSet<String>> = None;
                for e in term.match_expressions.iter().flatten() {
                    if !is_zone_like_key(&e.key) || e.operator != "In" {
                        continue;
                    }
                    let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
                    in_term = Some(match in_term {
                        None => values,
                        Some(before) => before.intersection(&values).cloned().collect(),
                    });
                }
                match in_term {
                    Some(z) => union.extend(z),
                    None => restricted = false,
                }
            }
            if restricted {
                zones = Some(union);
            }
        }
        // In-tree volumes of old clusters carry their zone as a label ("a__b" for several).
        if zones.is_none() {
            let labels = volume.metadata.labels.as_ref();
            let label =
                labels.and_then(|l| l.get(STANDARD_ZONE_KEY).or_else(|| l.get(LEGACY_ZONE_KEY)));
            if let Some(v) = label {
                zones = Some(
                    v.split("__")
                        .filter(|z| !z.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
        }
        let claim_ref = spec.and_then(|s| s.claim_ref.as_ref());
        VolumeInfo {
            name: volume.metadata.name.clone().unwrap_or_default(),
            zones: zones.unwrap_or_default().into_iter().collect(),
            claim: claim_ref
                .and_then(|r| Some((r.namespace.clone().unwrap_or_default(), r.name.clone()?))),
            prebound: claim_ref.is_some_and(|r| r.uid.as_deref().is_none_or(str::is_empty)),
        }
    }

    pub fn from_json(object: &Value) -> Result<VolumeInfo, ObjectError> {
        let volume: PersistentVolume = typed(object, "PersistentVolume")?;
        Ok(VolumeInfo::from_typed(&volume))
    }

    /// The one zone the volume lives in, when it lives in exactly one.
    pub fn zone(&self) -> Option<&str> {
        match self.zones.as_slice() {
            [z] => Some(z),
            _ => None,
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    object: &Value,
    kind: &'static str,
) -> Result<T, ObjectError> {
    T::deserialize(object).map_err(|e| ObjectError::new(kind, object, e))
}

// === Volumes ===

/// What the engine can ask about storage. The cluster cache and [`VolumeSet`] implement it;
/// whatever is not known answers `None` (and the rules that need it say nothing).
pub trait Volumes: Sync {
    fn class(&self, name: &str) -> Option<StorageClassInfo>;
    /// The class a claim without `storageClassName` gets.
    fn default_class(&self) -> Option<StorageClassInfo>;
    fn claim(&self, namespace: &str, name: &str) -> Option<ClaimInfo>;
    /// Every claim in `namespace` whose name starts with `prefix`, in name order (the claims
    /// of a StatefulSet's template are `<template>-<statefulset>-<ordinal>`).
    fn claims_with_prefix(&self, namespace: &str, prefix: &str, each: &mut dyn FnMut(ClaimInfo));
    fn volume(&self, name: &str) -> Option<VolumeInfo>;
    /// A volume pre-bound by hand (`claimRef` without a uid) to this claim.
    fn prebound_volume(&self, namespace: &str, claim: &str) -> Option<VolumeInfo>;
    /// Every volume pre-bound by hand to a claim in `namespace` whose name starts with
    /// `prefix`, whether or not the claim exists yet: `(claim name, volume)`.
    fn prebound_with_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        each: &mut dyn FnMut(String, VolumeInfo),
    );

    /// The volume a claim is bound (or pre-bound) to.
    fn volume_of(&self, claim: &ClaimInfo) -> Option<VolumeInfo> {
        match &claim.volume {
            Some(name) => self.volume(name),
            None => self.prebound_volume(&claim.namespace, &claim.name),
        }
    }
}

impl std::fmt::Debug for dyn Volumes + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Volumes")
    }
}

/// Storage objects held in plain maps: what `audit` reads from files and tests build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeSet {
    pub classes: BTreeMap<String, StorageClassInfo>,
    pub claims: BTreeMap<(String, String), ClaimInfo>,
    pub volumes: BTreeMap<String, VolumeInfo>,
}

/// Kinds a [`VolumeSet`] takes.
pub const STORAGE_KINDS: &[(&str, &str)] = &[
    ("storage.k8s.io/v1", "StorageClass"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "PersistentVolume"),
];

impl VolumeSet {
    /// Takes a StorageClass, PersistentVolumeClaim or PersistentVolume object: `Ok(true)`
    /// when it was one, `Ok(false)` for any other kind.
    pub fn add_json(&mut self, object: &Value) -> Result<bool, ObjectError> {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (api, kind) {
            ("storage.k8s.io/v1" | "storage.k8s.io/v1beta1", "StorageClass") => {
                let c = StorageClassInfo::from_json(object)?;
                self.classes.insert(c.name.clone(), c);
            }
            ("v1", "PersistentVolumeClaim") => {
                let c = ClaimInfo::from_json(object)?;
                self.claims.insert((c.namespace.clone(), c.name.clone()), c);
            }
            ("v1", "PersistentVolume") => {
                let v = VolumeInfo::from_json(object)?;
                self.volumes.insert(v.name.clone(), v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty() && self.claims.is_empty() && self.volumes.is_empty()
    }

    /// Adds what `other` holds (objects of the same name are replaced).
    pub fn extend(&mut self, other: VolumeSet) {
        self.classes.extend(other.classes);
        self.claims.extend(other.claims);
        self.volumes.extend(other.volumes);
    }
}

impl Volumes for VolumeSet {
    fn class(&self, name: &str) -> Option<StorageClassInfo> {
        self.classes.get(name).cloned()
    }

    fn default_class(&self) -> Option<StorageClassInfo> {
        pick_default(self.classes.values()).cloned()
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<ClaimInfo> {
        self.claims
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn claims_with_prefix(&self, namespace: &str, prefix: &str, each: &mut dyn FnMut(ClaimInfo)) {
        let start = (namespace.to_owned(), prefix.to_owned());
        for ((ns, name), c) in self.claims.range(start..) {
            if ns != namespace || !name.starts_with(prefix) {
                break;
            }
            each(c.clone());
        }
    }

    fn volume(&self, name: &str) -> Option<VolumeInfo> {
        self.volumes.get(name).cloned()
    }

    fn prebound_volume(&self, namespace: &str, claim: &str) -> Option<VolumeInfo> {
        self.volumes
            .values()
            .find(|v| {
                v.prebound
                    && v.claim
                        .as_ref()
                        .is_some_and(|(ns, c)| ns == namespace && c == claim)
            })
            .cloned()
    }

    fn prebound_with_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        each: &mut dyn FnMut(String, VolumeInfo),
    ) {
        for v in self.volumes.values().filter(|v| v.prebound) {
            if let Some((ns, claim)) = &v.claim
                && ns == namespace
                && claim.starts_with(prefix)
            {
                each(claim.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_read_binding_mode_zones_and_the_default() {
        let c = StorageClassInfo::from_json(&json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "gp3", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": "ebs.csi.aws.com",
            "allowedTopologies": [
                {"matchLabelExpressions": [{"key": "topology.ebs.csi.aws.com/zone", "values": ["a", "b"]}]},
                {"matchLabelExpressions": [{"key": "topology.kubernetes.io/zone", "values": ["c"]}]},
            ],
        }))
        .unwrap();
        assert_eq!(c.binding_mode, BindingMode::Immediate);
        assert!(c.default);
        assert_eq!(
            c.allowed_zones,
            Some(["a", "b", "c"].iter().map(|s| s.to_string()).collect())
        );
        let open = StorageClassInfo::from_json(&json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "x"}, "provisioner": "p",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowedTopologies": [{"matchLabelExpressions": [{"key": "rack", "values": ["r1"]}]}],
        }))
        .unwrap();
        assert_eq!(open.binding_mode, BindingMode::WaitForFirstConsumer);
        assert_eq!(open.allowed_zones, None, "no zone key: every zone");
    }

    #[test]
    fn volumes_read_their_zones_from_node_affinity_or_labels() {
        let pv = |affinity: Value, labels: Value| {
            VolumeInfo::from_json(&json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "pv", "labels": labels},
                "spec": {"nodeAffinity": affinity, "claimRef": {"namespace": "db", "name": "data-db-0"}},
            }))
            .unwrap()
        };
        let one = pv(
            json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["eu-west-1a"]}]}]}}),
            json!({}),
        );
        assert_eq!(one.zone(), Some("eu-west-1a"));
        assert!(one.prebound);
        let regional = pv(json!(null), json!({STANDARD_ZONE_KEY: "a__b"}));
        assert_eq!(regional.zones, ["a", "b"]);
        assert_eq!(regional.zone(), None);
        let host = pv(
            json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}),
            json!({}),
        );
        assert!(host.zones.is_empty());
    }

    #[test]
    fn the_newest_default_class_wins() {
        let mut set = VolumeSet::default();
        for (name, created) in [
            ("old", "2024-01-01T00:00:00Z"),
            ("new", "2025-01-01T00:00:00Z"),
        ] {
            set.add_json(&json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "creationTimestamp": created,
                             "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                "provisioner": "p",
            }))
            .unwrap();
        }
        assert_eq!(set.default_class().unwrap().name, "new");
    }

    #[test]
    fn claims_by_prefix_stay_in_their_namespace() {
        let mut set = VolumeSet::default();
        for (ns, name) in [
            ("a", "data-db-0"),
            ("a", "data-db-1"),
            ("a", "data-dbx-0"),
            ("b", "data-db-2"),
        ] {
            set.add_json(&json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"namespace": ns, "name": name},
                "spec": {"accessModes": ["ReadWriteOnce"]},
            }))
            .unwrap();
        }
        let mut seen = Vec::new();
        set.claims_with_prefix("a", "data-db-", &mut |c| seen.push(c.name));
        assert_eq!(seen, ["data-db-0", "data-db-1"]);
    }
}
