//! What a workload's volumes mean for its placement.
//!
//! For a stateless workload the scheduler can fix a bad placement on the next rollout. A
//! StatefulSet's zonal volume is created in one zone and its pod follows it for life, so the
//! first placement is forever. This module works out, once per decision, which StorageClass
//! each `volumeClaimTemplate` gets, where the bound volumes of existing replicas are, and
//! which claims the pods share; the rules (HA017–HA020, `rules/volumes.rs`) and the injection
//! (`statefulZoneSpread`) read it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::context::Context;
use super::policy::WhenUnsatisfiable;
use super::provisioners::Locality;
use super::storage::{BindingMode, ClaimInfo, ClassRef, StorageClassInfo};
use super::workload::WorkloadKind;

/// Claims of one StatefulSet looked at, at most: beyond it the scan stops (a hostile
/// `replicas: 2147483647` costs what the claims that exist cost, and no more than this).
pub const MAX_CLAIMS: usize = 10_000;

/// A class as one claim template gets it.
#[derive(Clone, Debug)]
pub struct ClassUse {
    pub info: StorageClassInfo,
    /// Through the default class (no `storageClassName`).
    pub via_default: bool,
    pub locality: Locality,
}

impl ClassUse {
    /// Zonal volumes created before scheduling (HA017).
    pub fn zonal_immediate(&self) -> bool {
        self.locality == Locality::Zonal && self.info.binding_mode == BindingMode::Immediate
    }

    /// Zonal volumes created in the zone the first pod is scheduled to.
    pub fn zonal_at_first_consumer(&self) -> bool {
        self.locality == Locality::Zonal
            && self.info.binding_mode == BindingMode::WaitForFirstConsumer
    }

    /// "StorageClass gp3 (ebs.csi.aws.com, the default class)".
    pub fn describe(&self) -> String {
        format!(
            "StorageClass {} ({}{})",
            self.info.name,
            self.info.provisioner,
            if self.via_default {
                ", the default class"
            } else {
                ""
            }
        )
    }
}

/// One of a StatefulSet's `volumeClaimTemplates`.
#[derive(Clone, Debug)]
pub struct ClaimTemplate {
    pub index: usize,
    pub name: String,
    /// The class it gets, when known.
    pub class: Option<ClassUse>,
}

impl ClaimTemplate {
    /// "volumeClaimTemplates[0] (data)".
    pub fn describe(&self) -> String {
        format!("volumeClaimTemplates[{}] ({})", self.index, self.name)
    }
}

/// A claim the pod template mounts by name: every replica shares it.
#[derive(Clone, Debug)]
pub struct SharedClaim {
    /// The pod's volume name.
    pub volume: String,
    pub claim: ClaimInfo,
    pub read_only: bool,
}

/// Everything the volumes say about one workload.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    pub templates: Vec<ClaimTemplate>,
    /// Existing replicas whose bound volumes pin them to one zone: ordinal → zone.
    pub pinned: BTreeMap<i64, String>,
    /// Existing replicas whose volumes lie in zones that exclude each other (the pod can run
    /// nowhere): ordinals.
    pub conflicting: Vec<i64>,
    /// The claims looked at (`namespace/name`), for reports.
    pub claims: Vec<String>,
    pub shared: Vec<SharedClaim>,
}

/// What a report names as taken into account for one workload's storage and node templates
/// (part of [`super::Considered`]; audit's `results[].considered`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSeen {
    /// The classes the claim templates get.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<ClassSeen>,
    /// The existing claims looked at (`namespace/name`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
    /// The node templates the workload fits ("NodePool general (zone a)").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_templates: Vec<String>,
}

impl StatefulSeen {
    pub fn is_empty(&self) -> bool {
        self.storage_classes.is_empty() && self.claims.is_empty() && self.node_templates.is_empty()
    }
}

/// One class, as a report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassSeen {
    /// The claim template that gets it.
    pub template: String,
    pub name: String,
    pub provisioner: String,
    pub volume_binding_mode: BindingMode,
    pub locality: Locality,
    /// Reached through the default class.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_zones: Option<BTreeSet<String>>,
}

/// Works out what the workload's volumes mean (nothing without storage information).
pub fn analyse(ctx: &Context<'_>) -> Analysis {
    let mut out = Analysis::default();
    let Some(volumes) = ctx.volumes else {
        return out;
    };
    let w = ctx.workload;
    let namespace = w.namespace.unwrap_or_default();

    let mut default_class: Option<Option<StorageClassInfo>> = None;
    for (index, t) in w.claim_templates.iter().enumerate() {
        let name = t
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let requested = match t.pointer("/spec/storageClassName") {
            None | Some(Value::Null) => ClassRef::Default,
            Some(v) => ClassRef::from_field(v.as_str()),
        };
        let (info, via_default) = match &requested {
            ClassRef::NoClass => (None, false),
            ClassRef::Named(n) => (volumes.class(n), false),
            ClassRef::Default => (
                default_class
                    .get_or_insert_with(|| volumes.default_class())
                    .clone(),
                true,
            ),
        };
        let class = info.map(|info| ClassUse {
            locality: ctx
                .policy
                .zonal_provisioners
                .locality(&info.provisioner, &info.parameters),
            info,
            via_default,
        });
        out.templates.push(ClaimTemplate { index, name, class });
    }

    // Existing replicas: the claims `<template>-<statefulset>-<ordinal>` and their volumes.
    if w.kind == WorkloadKind::StatefulSet && !w.name.is_empty() {
        let first = w.ordinals_start;
        let last = first.saturating_add(ctx.replicas);
        let mut zones_of: BTreeMap<i64, Option<BTreeSet<String>>> = BTreeMap::new();
        let mut seen = 0usize;
        for t in &out.templates {
            if t.name.is_empty() {
                continue;
            }
            let prefix = format!("{}-{}-", t.name, w.name);
            let ordinal_of = |claim: &str| {
                claim[prefix.len()..]
                    .parse::<i64>()
                    .ok()
                    .filter(|o| (first..last).contains(o))
            };
            let mut pin = |ordinal: i64, zones: Vec<String>| {
                if zones.is_empty() {
                    return;
                }
                let zones: BTreeSet<String> = zones.into_iter().collect();
                let entry = zones_of.entry(ordinal).or_insert(None);
                *entry = Some(match entry.take() {
                    None => zones,
                    Some(before) => before.intersection(&zones).cloned().collect(),
                });
            };
            let mut existing = BTreeSet::new();
            volumes.claims_with_prefix(namespace, &prefix, &mut |claim| {
                if seen >= MAX_CLAIMS {
                    return;
                }
                let Some(ordinal) = ordinal_of(&claim.name) else {
                    return;
                };
                seen += 1;
                out.claims
                    .push(format!("{}/{}", claim.namespace, claim.name));
                existing.insert(claim.name.clone());
                if let Some(volume) = volumes.volume_of(&claim) {
                    pin(ordinal, volume.zones);
                }
            });
            // Volumes pre-bound by hand to claims the controller has not created yet: the pod
            // of that ordinal will follow them all the same.
            volumes.prebound_with_prefix(namespace, &prefix, &mut |claim, volume| {
                if existing.contains(&claim) || seen >= MAX_CLAIMS {
                    return;
                }
                if let Some(ordinal) = ordinal_of(&claim) {
                    seen += 1;
                    pin(ordinal, volume.zones);
                }
            });
        }
        for (ordinal, zones) in zones_of {
            match zones {
                Some(z) if z.is_empty() => out.conflicting.push(ordinal),
                Some(z) if z.len() == 1 => {
                    out.pinned
                        .insert(ordinal, z.into_iter().next().unwrap_or_default());
                }
                _ => {}
            }
        }
    }

    // Claims the pod template mounts by name.
    if let Some(list) = w.pod_spec.get("volumes").and_then(Value::as_array) {
        for v in list {
            let Some(source) = v.get("persistentVolumeClaim") else {
                continue;
            };
            let Some(claim_name) = source.get("claimName").and_then(Value::as_str) else {
                continue;
            };
            let Some(claim) = volumes.claim(namespace, claim_name) else {
                continue;
            };
            out.claims
                .push(format!("{}/{}", claim.namespace, claim.name));
            out.shared.push(SharedClaim {
                volume: v
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                claim,
                read_only: source.get("readOnly").and_then(Value::as_bool) == Some(true),
            });
        }
    }
    out
}

impl Analysis {
    /// Existing replicas per zone their volumes pin them to.
    pub fn pinned_by_zone(&self) -> BTreeMap<&str, Vec<i64>> {
        let mut by_zone: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (ordinal, zone) in &self.pinned {
            by_zone.entry(zone.as_str()).or_default().push(*ordinal);
        }
        by_zone
    }
}

/// What a report names for the workload: its classes, its claims, its node templates.
pub fn considered(ctx: &Context<'_>) -> StatefulSeen {
    let a = ctx.stateful();
    StatefulSeen {
        storage_classes: a
            .templates
            .iter()
            .filter_map(|t| {
                let c = t.class.as_ref()?;
                Some(ClassSeen {
                    template: t.name.clone(),
                    name: c.info.name.clone(),
                    provisioner: c.info.provisioner.clone(),
                    volume_binding_mode: c.info.binding_mode,
                    locality: c.locality,
                    default: c.via_default,
                    allowed_zones: c.info.allowed_zones.clone(),
                })
            })
            .collect(),
        claims: a.claims.clone(),
        node_templates: ctx
            .topology
            .templates()
            .enumerate()
            .filter(|(i, _)| ctx.eligibility.templates.contains(i))
            .map(|(_, t)| match &t.zone {
                Some(z) => format!("{} (zone {z})", t.describe()),
                None => t.describe(),
            })
            .collect(),
    }
}

/// The `whenUnsatisfiable` of the zone spread injected into this workload, and why when it
/// is not simply the policy's `whenUnsatisfiable`.
///
/// A StatefulSet whose claim templates all get zonal classes that bind at first consumer has
/// its data's zones decided by its first placement, so its zone spread is
/// `statefulZoneSpread` (default `DoNotSchedule`). Not when a hard spread would leave pods
/// Pending instead: a zonal class that binds immediately (its volumes are already somewhere,
/// HA017), `allowedTopologies` that leave out an eligible zone (HA018), or existing volumes
/// that already pin replicas unevenly (HA019).
pub fn zone_spread(ctx: &Context<'_>) -> (WhenUnsatisfiable, Option<String>) {
    let default = ctx.policy.when_unsatisfiable;
    if ctx.workload.kind != WorkloadKind::StatefulSet {
        return (default, None);
    }
    let a = ctx.stateful();
    let classes: Vec<&ClassUse> = a
        .templates
        .iter()
        .filter_map(|t| t.class.as_ref())
        .collect();
    let Some(first) = classes.iter().find(|c| c.zonal_at_first_consumer()) else {
        return (default, None);
    };
    let wanted = ctx.policy.stateful_zone_spread;
    if wanted == default {
        return (default, None);
    }
    let eligible: BTreeSet<&str> = ctx.eligible_zone_names().into_iter().collect();
    let hold_back = if let Some(c) = classes.iter().find(|c| c.zonal_immediate()) {
        Some(format!(
            "{} binds volumes immediately, in zones chosen without regard to the spread",
            c.describe()
        ))
    } else if let Some(c) = classes.iter().find(|c| {
        c.info
            .allowed_zones
            .as_ref()
            .is_some_and(|allowed| eligible.iter().any(|z| !allowed.contains(*z)))
    }) {
        Some(format!(
            "{} cannot create volumes in every eligible zone",
            c.describe()
        ))
    } else if !a.pinned.is_empty() && skew(ctx, a) > i64::from(ctx.policy.max_skew) {
        Some("existing volumes already pin replicas unevenly across zones".to_owned())
    } else {
        None
    };
    match hold_back {
        Some(why) => (
            default,
            Some(format!(
                "zone spread injected with {} (not {}): a hard spread would leave pods Pending, as {why}",
                default.as_str(),
                wanted.as_str()
            )),
        ),
        None => (
            wanted,
            Some(format!(
                "zone spread injected with {}: the first placement fixes each replica's zone for good, as {} makes zonal volumes bound at first consumer",
                wanted.as_str(),
                first.describe()
            )),
        ),
    }
}

/// The skew the pinned replicas already have over the eligible zones.
fn skew(ctx: &Context<'_>, a: &Analysis) -> i64 {
    let by_zone = a.pinned_by_zone();
    let counts: Vec<i64> = ctx
        .eligible_zone_names()
        .iter()
        .map(|z| by_zone.get(z).map_or(0, |o| o.len() as i64))
        .collect();
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().min().unwrap_or(0);
    max - min
}
