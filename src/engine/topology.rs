//! The zone topology snapshot the engine decides against.
//!
//! Nodes are folded into groups that share every scheduling-relevant property (labels other
//! than per-node ones such as the hostname, taints, schedulability), so a decision costs the
//! number of distinct node shapes, not the number of nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Toleration};
use serde::Serialize;
use serde_json::Value;

use super::memo::{Memo, SchedulingFields};
use super::policy::Policy;
use super::templates::NodeTemplate;
use super::well_known::{HOSTNAME_KEY, UNSCHEDULABLE_TAINT};

/// A taint that keeps pods off a node (`NoSchedule` or `NoExecute`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// What the engine needs of one Node: nothing else is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Only taints whose effect keeps pods away (`NoSchedule`, `NoExecute`).
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
}

impl Taint {
    /// `key=value:Effect`, or `key:Effect` without a value.
    pub fn describe(&self) -> String {
        if self.value.is_empty() {
            format!("{}:{}", self.key, self.effect)
        } else {
            format!("{}={}:{}", self.key, self.value, self.effect)
        }
    }

    /// Whether the taint keeps pods that do not tolerate it off the node (`PreferNoSchedule`
    /// only discourages).
    pub fn keeps_pods_away(&self) -> bool {
        self.effect == "NoSchedule" || self.effect == "NoExecute"
    }
}

impl NodeInfo {
    /// A node as decisions see it, whatever it came from (a nodes file, an audit of a live
    /// cluster, the node cache): the one place taints are interpreted.
    pub fn new(
        name: String,
        labels: BTreeMap<String, String>,
        taints: impl IntoIterator<Item = Taint>,
        unschedulable: bool,
    ) -> NodeInfo {
        let mut taints: Vec<Taint> = taints.into_iter().filter(Taint::keeps_pods_away).collect();
        taints.sort();
        taints.dedup();
        NodeInfo {
            name,
            labels,
            taints,
            unschedulable,
        }
    }

    /// Reads a Node object (raw JSON, as the API server or `kubectl get nodes -o yaml` gives it).
    pub fn from_json(node: &Value) -> Result<NodeInfo, NodeError> {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or(NodeError::NoName)?
            .to_owned();
        let labels = match node.pointer("/metadata/labels") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(NodeError::LabelNotAString {
                        node: name.clone(),
                        key: k.clone(),
                    }),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(NodeError::LabelsNotAMap { node: name }),
        };
        let taints = match node.pointer("/spec/taints") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| {
                    let field = |f: &str| {
                        t.get(f)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    Taint {
                        key: field("key"),
                        value: field("value"),
                        effect: field("effect"),
                    }
                })
                .collect(),
            Some(_) => return Err(NodeError::TaintsNotAList { node: name }),
        };
        let unschedulable = node
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(NodeInfo::new(name, labels, taints, unschedulable))
    }
}

/// A Node object that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("a Node without metadata.name")]
    NoName,
    #[error("node {node}: label {key:?} is not a string")]
    LabelNotAString { node: String, key: String },
    #[error("node {node}: metadata.labels is not a map")]
    LabelsNotAMap { node: String },
    #[error("node {node}: spec.taints is not a list")]
    TaintsNotAList { node: String },
}

/// Where a topology came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TopologySource {
    /// Real nodes (a nodes file or the cluster).
    Nodes,
    /// No nodes were given: the policy's `assumedZones`, node counts unknown.
    Assumed,
}

#[derive(Clone, Debug)]
struct Member {
    name: String,
    /// Only the per-node labels (hostname and the like).
    labels: BTreeMap<String, String>,
}

/// What nodes of one group share: labels minus per-node keys, taints, schedulability.
type GroupSignature = (BTreeMap<String, String>, Vec<Taint>, bool);

#[derive(Clone, Debug)]
struct NodeGroup {
    /// Labels every member shares (per-node keys removed).
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    unschedulable: bool,
    zone: Option<String>,
    /// Position of `zone` in `Topology::zones`.
    zone_index: Option<usize>,
    members: Vec<Member>,
    /// Per-node label keys that at least one member carries.
    member_keys: HashSet<String>,
}

/// A snapshot of the cluster's nodes, reduced to what spread decisions need.
#[derive(Clone, Debug)]
pub struct Topology {
    source: TopologySource,
    zone_key: String,
    zones: BTreeMap<String, usize>,
    unzoned_nodes: usize,
    total_nodes: usize,
    keys: HashSet<String>,
    per_node_keys: HashSet<String>,
    groups: Vec<NodeGroup>,
    /// Possible nodes: node templates, one per zone they can add nodes to.
    templates: Vec<Possible>,
    /// The NodePools the templates came from, as read (for rebuilds under a new policy).
    pools: Vec<NodeTemplate>,
    memo: Memo<Eligibility>,
}

/// A node template joined to the topology: nodes a pool can add, in one zone (or in a zone
/// the provisioner picks).
#[derive(Clone, Debug)]
struct Possible {
    template: NodeTemplate,
    /// Position of its zone in `Topology::zones`.
    zone_index: Option<usize>,
}

/// The nodes a workload may land on, summarised. Built on every decision, so it holds
/// counts, not names: a cluster with 100 zones costs no 100 string copies per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eligibility {
    /// Eligible nodes; `None` when node counts are unknown (assumed topology).
    pub nodes: Option<usize>,
    /// How many zones hold at least one eligible node.
    pub zones: usize,
    /// The zone, when exactly one is eligible (for messages).
    pub sole_zone: Option<String>,
    /// The eligible zones (with eligible nodes, or a node template the pod fits), in name
    /// order (for placement predictions). Eligibility is
    /// remembered per snapshot, so the names are copied once per node-selection shape.
    pub zone_names: Vec<String>,
    /// Eligible nodes without a zone label.
    pub unzoned_nodes: usize,
    /// For each key asked about: does some eligible node carry it (`None`: unknown).
    pub keys_present: Vec<Option<bool>>,
    /// Per zone (in the order of [`Topology::zone_names`]): eligible nodes now, and whether
    /// a node template the pod fits can add nodes there. Empty for an assumed topology.
    pub per_zone: Vec<ZoneEligibility>,
    /// Eligible zones with no eligible node now, only a node template that can add one.
    pub template_only_zones: usize,
    /// The node templates the pod fits (positions in [`Topology::templates`]): node counts
    /// are not a ceiling while one of them can add nodes.
    pub templates: Vec<usize>,
    /// Eligible zones whose every eligible node admits the pod only for a while: it
    /// tolerates a `NoExecute` taint there with `tolerationSeconds`, after which the taint
    /// eviction controller evicts it. They count as eligible zones; messages say so.
    pub short_lived_zones: usize,
    /// One of them, for messages: the zone, the taint and the seconds.
    pub short_lived: Option<ShortLived>,
}

/// One zone's share of a workload's eligibility.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneEligibility {
    /// Eligible nodes in the zone now.
    pub nodes: u32,
    /// A node template the pod fits can add nodes to the zone.
    pub can_grow: bool,
}

impl ZoneEligibility {
    pub fn eligible(&self) -> bool {
        self.nodes > 0 || self.can_grow
    }
}

/// A zone whose nodes a pod may use only until its `tolerationSeconds` run out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShortLived {
    pub zone: String,
    /// The `NoExecute` taint, as `key=value:NoExecute`.
    pub taint: String,
    pub seconds: i64,
}

/// The domains a spread constraint counts and the ones a pod can use, as kube-scheduler's
/// PodTopologySpread plugin sees them (see [`Topology::spread_domains`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpreadDomains {
    /// Distinct values of the key among the nodes the constraint counts.
    pub counted: usize,
    /// Those where at least one node is eligible for the pod.
    pub usable: usize,
    /// One counted domain with no eligible node, and why the pod cannot use it.
    pub unusable: Option<(String, Unusable)>,
}

/// Why a domain the constraint counts holds no node the pod may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Its nodes are tainted or cordoned (counted because `nodeTaintsPolicy` is `Ignore`).
    Taints,
    /// The pod's nodeSelector or required node affinity excludes its nodes (counted because
    /// `nodeAffinityPolicy` is `Ignore`).
    NodeSelection,
}

/// A pod's node-selection requirements, borrowed from its spec.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scheduling<'a> {
    pub node_selector: Option<&'a BTreeMap<String, String>>,
    /// `None`: no required node affinity. `Some(terms)`: the terms, ORed.
    pub required_terms: Option<&'a [NodeSelectorTerm]>,
    pub tolerations: &'a [Toleration],
}

/// Counts a zone snapshot for reports: zone → nodes, plus the unzoned ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologySummary {
    pub source: TopologySource,
    pub zone_key: String,
    pub zones: BTreeMap<String, usize>,
    pub unzoned_nodes: usize,
    pub nodes: usize,
    /// Node templates (possible nodes), apart from the nodes: `zones` lists their zones with
    /// the nodes there now (0 for a zone only a template can add nodes to).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_templates: Vec<TemplateSummary>,
}

/// One node template, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSummary {
    pub name: String,
    pub source: super::templates::TemplateSource,
    /// `None`: a zone the provisioner picks.
    pub zone: Option<String>,
    /// `key=value:Effect`.
    pub taints: Vec<String>,
    /// It cannot add a node now (a limit of zero).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exhausted: bool,
}

/// Zone counts per zone, as `spreadguard topology` prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStats {
    pub nodes: usize,
    pub schedulable: usize,
    pub tainted: usize,
}

// === impl Topology ===

impl Topology {
    /// Builds a snapshot from nodes. The zone key is the first of the policy's `zoneLabels`
    /// that any node carries.
    pub fn from_nodes(nodes: impl IntoIterator<Item = NodeInfo>, policy: &Policy) -> Topology {
        Topology::from_parts(nodes, Vec::new(), policy)
    }

    /// Builds a snapshot from nodes and the node templates of NodePools; the policy's own
    /// `nodeTemplates` join them. Templates are possible nodes: their zones count as zones
    /// of the cluster (with 0 nodes when no node is there now), their nodes are not counted.
    pub fn from_parts(
        nodes: impl IntoIterator<Item = NodeInfo>,
        pools: Vec<NodeTemplate>,
        policy: &Policy,
    ) -> Topology {
        let nodes: Vec<NodeInfo> = nodes.into_iter().collect();
        let zone_key = policy
            .zone_labels
            .iter()
            .find(|k| nodes.iter().any(|n| n.labels.contains_key(*k)))
            .or_else(|| {
                policy.zone_labels.iter().find(|k| {
                    pools.iter().any(|p| {
                        matches!(
                            p.labels.get(k.as_str()),
                            Some(
                                super::templates::LabelValue::Is(_)
                                    | super::templates::LabelValue::OneOf(_)
                            )
                        )
                    })
                })
            })
            .unwrap_or(&policy.zone_labels[0])
            .clone();
        let per_node_keys = per_node_keys(&nodes, policy);

        let mut keys = HashSet::new();
        let mut zones = BTreeMap::new();
        let mut unzoned_nodes = 0;
        let mut groups: Vec<NodeGroup> = Vec::new();
        let mut index: HashMap<GroupSignature, usize> = HashMap::new();
        let total_nodes = nodes.len();
        for node in nodes {
            keys.extend(node.labels.keys().cloned());
            let (own, shared): (BTreeMap<_, _>, BTreeMap<_, _>) = node
                .labels
                .into_iter()
                .partition(|(k, _)| per_node_keys.contains(k));
            let zone = shared.get(&zone_key).cloned();
            match &zone {
                Some(z) => *zones.entry(z.clone()).or_insert(0) += 1,
                None => unzoned_nodes += 1,
            }
            let member = Member {
                name: node.name,
                labels: own,
            };
            let signature = (shared, node.taints, node.unschedulable);
            let i =
                *index
                    .entry(signature)
                    .or_insert_with_key(|(labels, taints, unschedulable)| {
                        groups.push(NodeGroup {
                            labels: labels.clone(),
                            taints: taints.clone(),
                            unschedulable: *unschedulable,
                            zone,
                            zone_index: None,
                            members: Vec::new(),
                            member_keys: HashSet::new(),
                        });
                        groups.len() - 1
                    });
            groups[i].member_keys.extend(member.labels.keys().cloned());
            groups[i].members.push(member);
        }
        let mut possible: Vec<NodeTemplate> = policy
            .node_templates
            .iter()
            .map(NodeTemplate::from_policy)
            .chain(pools.iter().cloned())
            .flat_map(|t| t.per_zone(&zone_key))
            .collect();
        possible.sort();
        possible.dedup();
        for t in &possible {
            if let Some(z) = &t.zone {
                zones.entry(z.clone()).or_insert(0);
            }
            keys.extend(t.labels.keys().cloned());
        }
        for g in &mut groups {
            g.zone_index = g
                .zone
                .as_ref()
                .and_then(|z| zones.keys().position(|k| k == z));
        }
        let templates = possible
            .into_iter()
            .map(|template| Possible {
                zone_index: template
                    .zone
                    .as_ref()
                    .and_then(|z| zones.keys().position(|k| k == z)),
                template,
            })
            .collect();
        Topology {
            source: TopologySource::Nodes,
            zone_key,
            zones,
            unzoned_nodes,
            total_nodes,
            keys,
            per_node_keys,
            groups,
            templates,
            pools,
            memo: Memo::default(),
        }
    }

    /// A topology for when no nodes are known: `policy.assumedZones` zones under the primary
    /// zone key, with unknown node counts.
    pub fn assumed(policy: &Policy) -> Topology {
        let zones = (1..=policy.assumed_zones)
            .map(|i| (format!("assumed-zone-{i}"), 0))
            .collect();
        Topology {
            source: TopologySource::Assumed,
            zone_key: policy.primary_zone_key().to_owned(),
            zones,
            unzoned_nodes: 0,
            total_nodes: 0,
            keys: [
                policy.primary_zone_key().to_owned(),
                HOSTNAME_KEY.to_owned(),
            ]
            .into(),
            per_node_keys: HashSet::new(),
            groups: Vec::new(),
            templates: Vec::new(),
            pools: Vec::new(),
            memo: Memo::default(),
        }
    }

    pub fn source(&self) -> TopologySource {
        self.source
    }

    /// The zone label key in use.
    pub fn zone_key(&self) -> &str {
        &self.zone_key
    }

    /// Zones of the whole cluster (every node counted, and the zones node templates can add
    /// nodes to).
    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// The cluster's zones, in the order [`Eligibility::per_zone`] counts them.
    pub fn zone_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.zones.keys().map(String::as_str)
    }

    /// The NodePools' templates the snapshot was built with, as read.
    pub fn node_pools(&self) -> &[NodeTemplate] {
        &self.pools
    }

    /// The node templates joined to the snapshot, one per zone they can add nodes to.
    pub fn templates(&self) -> impl ExactSizeIterator<Item = &NodeTemplate> {
        self.templates.iter().map(|p| &p.template)
    }

    /// The zones where node templates (the policy's `nodeTemplates`, Karpenter NodePools:
    /// node pools that scale from zero) can add nodes, whichever pod asks. What one pod can
    /// use is [`Eligibility::per_zone`] (`can_grow`: a template that pod fits).
    pub fn growable_zones(&self) -> BTreeSet<String> {
        self.templates
            .iter()
            .filter(|p| !p.template.exhausted)
            .filter_map(|p| p.template.zone.clone())
            .collect()
    }

    /// Whether any node carries this label key.
    pub fn carries_key(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// The nodes back out of the snapshot (everything [`NodeInfo`] holds survives the
    /// folding), so that a policy change can rebuild the topology without a second copy of
    /// the nodes being kept around.
    pub fn nodes(&self) -> impl Iterator<Item = NodeInfo> + '_ {
        self.groups.iter().flat_map(|g| {
            g.members.iter().map(move |m| {
                let mut labels = g.labels.clone();
                labels.extend(m.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                NodeInfo {
                    name: m.name.clone(),
                    labels,
                    taints: g.taints.clone(),
                    unschedulable: g.unschedulable,
                }
            })
        })
    }

    /// The number of distinct node shapes the snapshot folded the nodes into.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn summary(&self) -> TopologySummary {
        TopologySummary {
            source: self.source,
            zone_key: self.zone_key.clone(),
            zones: self.zones.clone(),
            unzoned_nodes: self.unzoned_nodes,
            nodes: self.total_nodes,
            node_templates: self
                .templates
                .iter()
                .map(|p| TemplateSummary {
                    name: p.template.name.clone(),
                    source: p.template.source,
                    zone: p.template.zone.clone(),
                    taints: p.template.taints.iter().map(Taint::describe).collect(),
                    exhausted: p.template.exhausted,
                })
                .collect(),
        }
    }

    /// Per-zone node counts for `spreadguard topology`; the unzoned nodes under `None`.
    pub fn zone_stats(&self) -> BTreeMap<Option<String>, ZoneStats> {
        let mut out: BTreeMap<Option<String>, ZoneStats> = BTreeMap::new();
        for g in &self.groups {
            let s = out.entry(g.zone.clone()).or_default();
            let n = g.members.len();
            s.nodes += n;
            if !g.unschedulable {
                s.schedulable += n;
            }
            if !g.taints.is_empty() {
                s.tainted += n;
            }
        }
        out
    }

    /// [`Topology::eligibility`], remembered per snapshot for the raw fields it depends on.
    pub fn eligibility_cached(
        &self,
        sched: &Scheduling<'_>,
        fields: &SchedulingFields<'_>,
        keys: &[&str],
    ) -> Arc<Eligibility> {
        if self.source == TopologySource::Assumed {
            return Arc::new(self.assumed_eligibility(sched, keys));
        }
        self.memo
            .get_or_compute(fields, keys, || self.eligibility(sched, keys))
    }

    /// The nodes a pod with these requirements may land on, and whether those nodes carry
    /// each of `keys`.
    pub fn eligibility(&self, sched: &Scheduling<'_>, keys: &[&str]) -> Eligibility {
        if self.source == TopologySource::Assumed {
            return self.assumed_eligibility(sched, keys);
        }
        let per_member = self.needs_member_evaluation(sched);
        let mut keys_present = vec![Some(false); keys.len()];
        let mut per_zone = vec![0usize; self.zones.len()];
        // Per zone: eligible nodes the pod may stay on for good.
        let mut lasting = vec![0usize; self.zones.len()];
        let mut short_lived_example: Vec<Option<(String, i64)>> = vec![None; self.zones.len()];
        let (mut total, mut unzoned) = (0, 0);
        for g in &self.groups {
            if !g.admits(sched) {
                continue;
            }
            let eviction = g.eviction_after(sched.tolerations);
            let count = if per_member {
                let mut count = 0;
                for m in &g.members {
                    let lookup = |k: &str| {
                        m.labels
                            .get(k)
                            .or_else(|| g.labels.get(k))
                            .map(String::as_str)
                    };
                    if node_matches(sched, lookup, &m.name) {
                        count += 1;
                        mark_keys(keys, &mut keys_present, |k| {
                            m.labels.contains_key(k) || g.labels.contains_key(k)
                        });
                    }
                }
                count
            } else {
                let lookup = |k: &str| g.labels.get(k).map(String::as_str);
                if !node_matches(sched, lookup, "") {
                    continue;
                }
                mark_keys(keys, &mut keys_present, |k| {
                    g.labels.contains_key(k) || g.member_keys.contains(k)
                });
                g.members.len()
            };
            total += count;
            match g.zone_index {
                Some(i) => {
                    per_zone[i] += count;
                    match &eviction {
                        None => lasting[i] += count,
                        Some(e) if count > 0 => short_lived_example[i] = Some(e.clone()),
                        Some(_) => {}
                    }
                }
                None => unzoned += count,
            }
        }
        let mut per_zone: Vec<ZoneEligibility> = per_zone
            .into_iter()
            .map(|n| ZoneEligibility {
                nodes: u32::try_from(n).unwrap_or(u32::MAX),
                can_grow: false,
            })
            .collect();
        let mut templates = Vec::new();
        for (i, p) in self.templates.iter().enumerate() {
            if !p.template.admits(sched) {
                continue;
            }
            templates.push(i);
            if let Some(z) = p.zone_index {
                per_zone[z].can_grow = true;
            }
            mark_keys(keys, &mut keys_present, |k| p.template.carries(k));
        }
        // Eligible zones: with eligible nodes now, or a node template the pod fits.
        let zone_names: Vec<String> = self
            .zones
            .keys()
            .zip(&per_zone)
            .filter(|(_, z)| z.eligible())
            .map(|(z, _)| z.clone())
            .collect();
        let zones = zone_names.len();
        let template_only_zones = per_zone
            .iter()
            .filter(|z| z.nodes == 0 && z.can_grow)
            .count();
        let mut short_lived_zones = 0;
        let mut short_lived = None;
        for (i, zone) in self.zones.keys().enumerate() {
            if per_zone[i].nodes > 0 && lasting[i] == 0 {
                short_lived_zones += 1;
                if short_lived.is_none()
                    && let Some((taint, seconds)) = short_lived_example[i].clone()
                {
                    short_lived = Some(ShortLived {
                        zone: zone.clone(),
                        taint,
                        seconds,
                    });
                }
            }
        }
        let sole_zone = if zones == 1 {
            zone_names.first().cloned()
        } else {
            None
        };
        Eligibility {
            nodes: Some(total),
            zones,
            sole_zone,
            zone_names,
            unzoned_nodes: unzoned,
            keys_present,
            per_zone,
            template_only_zones,
            templates,
            short_lived_zones,
            short_lived,
        }
    }

    /// The domains of `key` that a spread constraint with these inclusion policies counts,
    /// and how many of them hold a node the pod may use. `None` without real nodes.
    ///
    /// kube-scheduler's PodTopologySpread counts a node's domain when the node carries the
    /// key and passes the inclusion policies: with `nodeAffinityPolicy: Honor` (the default)
    /// only nodes that match the pod's nodeSelector and required node affinity, with
    /// `nodeTaintsPolicy: Honor` only nodes whose `NoSchedule`/`NoExecute` taints the pod
    /// tolerates (`Ignore`, the default, counts tainted and cordoned nodes too). A counted
    /// domain without a usable node keeps the global minimum at 0 for good.
    pub fn spread_domains(
        &self,
        sched: &Scheduling<'_>,
        key: &str,
        honor_node_affinity: bool,
        honor_taints: bool,
    ) -> Option<SpreadDomains> {
        if self.source == TopologySource::Assumed {
            return None;
        }
        let mut counted: BTreeMap<&str, Option<Unusable>> = BTreeMap::new();
        for g in &self.groups {
            let tolerated = g.tolerated(sched.tolerations);
            let admitted = g.admits(sched);
            if honor_taints && !tolerated {
                continue;
            }
            let shared = g.labels.get(key).map(String::as_str);
            let group_selected = if shared.is_some() && !self.needs_member_evaluation(sched) {
                Some(node_matches(
                    sched,
                    |k| g.labels.get(k).map(String::as_str),
                    "",
                ))
            } else {
                None
            };
            for m in &g.members {
                let lookup = |k: &str| {
                    m.labels
                        .get(k)
                        .or_else(|| g.labels.get(k))
                        .map(String::as_str)
                };
                let Some(value) = lookup(key) else {
                    continue;
                };
                let selected =
                    group_selected.unwrap_or_else(|| node_matches(sched, lookup, &m.name));
                if honor_node_affinity && !selected {
                    continue;
                }
                let usable = admitted && selected;
                let why = if usable {
                    None
                } else if selected {
                    Some(Unusable::Taints)
                } else {
                    Some(Unusable::NodeSelection)
                };
                let entry = counted.entry(value).or_insert(why);
                if why.is_none() {
                    *entry = None;
                }
                if shared.is_some() && group_selected.is_some() {
                    // Every member shares the value and the answer.
                    break;
                }
            }
        }
        let usable = counted.values().filter(|w| w.is_none()).count();
        let unusable = counted
            .iter()
            .find_map(|(v, w)| w.map(|w| ((*v).to_owned(), w)));
        Some(SpreadDomains {
            counted: counted.len(),
            usable,
            unusable,
        })
    }

    fn needs_member_evaluation(&self, sched: &Scheduling<'_>) -> bool {
        let per_node = |k: &String| self.per_node_keys.contains(k);
        sched.node_selector.is_some_and(|s| s.keys().any(per_node))
            || sched.required_terms.into_iter().flatten().any(|t| {
                t.match_fields.as_ref().is_some_and(|f| !f.is_empty())
                    || t.match_expressions
                        .iter()
                        .flatten()
                        .any(|e| per_node(&e.key))
            })
    }

    /// Without nodes, only zone pinning can be judged: a nodeSelector on the zone key, or
    /// required affinity whose every term names zones with `In`.
    fn assumed_eligibility(&self, sched: &Scheduling<'_>, keys: &[&str]) -> Eligibility {
        let key = self.zone_key.as_str();
        let mut zones: Option<BTreeSet<String>> = sched
            .node_selector
            .and_then(|s| s.get(key))
            .map(|z| [z.clone()].into());
        if zones.is_none()
            && let Some(terms) = sched.required_terms
        {
            let pinned: Option<Vec<&[String]>> = terms
                .iter()
                .map(|t| {
                    t.match_expressions
                        .iter()
                        .flatten()
                        .find(|e| e.key == key && e.operator == "In")
                        .map(|e| e.values.as_deref().unwrap_or_default())
                })
                .collect();
            if let Some(pinned) = pinned.filter(|p| !p.is_empty()) {
                zones = Some(pinned.into_iter().flatten().cloned().collect());
            }
        }
        let pinned = zones.is_some();
        let zone_names: Vec<String> = match zones {
            Some(named) => named.into_iter().take(self.zones.len()).collect(),
            None => self.zones.keys().cloned().collect(),
        };
        let zones = zone_names.len();
        let sole_zone = match zone_names.as_slice() {
            [one] if pinned => Some(one.clone()),
            _ => None,
        };
        let keys_present = keys
            .iter()
            .map(|k| {
                if self.keys.contains(*k) {
                    Some(true)
                } else {
                    None
                }
            })
            .collect();
        Eligibility {
            nodes: None,
            zones,
            sole_zone,
            zone_names,
            unzoned_nodes: 0,
            keys_present,
            per_zone: Vec::new(),
            template_only_zones: 0,
            templates: Vec::new(),
            short_lived_zones: 0,
            short_lived: None,
        }
    }
}

// === impl NodeGroup ===

impl NodeGroup {
    /// Whether the scheduler's NodeUnschedulable and TaintToleration filters let the pod onto
    /// the group's nodes: a cordon keeps off only pods that do not tolerate the
    /// `node.kubernetes.io/unschedulable:NoSchedule` taint (the filter tests exactly that
    /// toleration, whether or not the node carries the taint yet), and every `NoSchedule` or
    /// `NoExecute` taint must be tolerated.
    fn admits(&self, sched: &Scheduling<'_>) -> bool {
        (!self.unschedulable || tolerates_cordon(sched.tolerations))
            && self.tolerated(sched.tolerations)
    }

    /// Whether every `NoSchedule`/`NoExecute` taint is tolerated, a cordon counting as the
    /// `node.kubernetes.io/unschedulable:NoSchedule` taint the node controller mirrors it into
    /// (what `nodeTaintsPolicy: Honor` looks at).
    fn tolerated(&self, tolerations: &[Toleration]) -> bool {
        (!self.unschedulable || tolerates_cordon(tolerations))
            && self
                .taints
                .iter()
                .all(|t| tolerations.iter().any(|tol| tolerates(tol, t)))
    }

    /// When the pod, once running here, is evicted: the taint eviction controller keeps a pod
    /// on a node with `NoExecute` taints for the least `tolerationSeconds` among the
    /// tolerations that match them, and for good when none of those has one. `None`: never;
    /// otherwise the taint and the seconds.
    fn eviction_after(&self, tolerations: &[Toleration]) -> Option<(String, i64)> {
        let mut least: Option<(String, i64)> = None;
        for t in self.taints.iter().filter(|t| t.effect == "NoExecute") {
            for tol in tolerations.iter().filter(|tol| tolerates(tol, t)) {
                if let Some(seconds) = tol.toleration_seconds
                    && least.as_ref().is_none_or(|(_, s)| seconds.max(0) < *s)
                {
                    least = Some((t.describe(), seconds.max(0)));
                }
            }
        }
        least
    }
}

/// Whether tolerations let a pod onto a cordoned node, as kube-scheduler's NodeUnschedulable
/// plugin decides it.
pub fn tolerates_cordon(tolerations: &[Toleration]) -> bool {
    let cordon = Taint {
        key: UNSCHEDULABLE_TAINT.to_owned(),
        value: String::new(),
        effect: "NoSchedule".to_owned(),
    };
    tolerations.iter().any(|tol| tolerates(tol, &cordon))
}

/// Label keys whose value differs on (almost) every node, such as the hostname. Keeping them
/// out of group signatures is what keeps the group count independent of the node count.
fn per_node_keys(nodes: &[NodeInfo], policy: &Policy) -> HashSet<String> {
    let mut distinct: HashMap<&str, (HashSet<&str>, usize)> = HashMap::new();
    for n in nodes {
        for (k, v) in &n.labels {
            let e = distinct.entry(k.as_str()).or_default();
            e.0.insert(v.as_str());
            e.1 += 1;
        }
    }
    let mut keys: HashSet<String> = distinct
        .into_iter()
        .filter(|(k, (values, carriers))| {
            !policy.is_zone_key(k) && values.len() > 8 && values.len() * 2 >= *carriers
        })
        .map(|(k, _)| k.to_owned())
        .collect();
    keys.insert(HOSTNAME_KEY.to_owned());
    keys
}

fn mark_keys(keys: &[&str], present: &mut [Option<bool>], has: impl Fn(&str) -> bool) {
    for (k, p) in keys.iter().zip(present.iter_mut()) {
        if *p != Some(true) && has(k) {
            *p = Some(true);
        }
    }
}

fn node_matches<'a>(
    sched: &Scheduling<'_>,
    labels: impl Fn(&str) -> Option<&'a str>,
    name: &str,
) -> bool {
    if let Some(selector) = sched.node_selector
        && !selector.iter().all(|(k, v)| labels(k) == Some(v.as_str()))
    {
        return false;
    }
    match sched.required_terms {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, &labels, name)),
    }
}

/// A node selector term: its expressions and fields ANDed; an empty term matches nothing.
fn term_matches<'a>(
    term: &NodeSelectorTerm,
    labels: &impl Fn(&str) -> Option<&'a str>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|e| requirement_matches(e, labels(&e.key)))
        && fields
            .iter()
            .all(|f| f.key == "metadata.name" && requirement_matches(f, Some(name)))
}

fn requirement_matches(req: &NodeSelectorRequirement, actual: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => actual.is_some_and(|a| values.iter().any(|v| v == a)),
        "NotIn" => actual.is_none_or(|a| !values.iter().any(|v| v == a)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), [bound]) = (actual.and_then(number), values) else {
                return false;
            };
            let Some(bound) = number(bound) else {
                return false;
            };
            if req.operator == "Gt" {
                a > bound
            } else {
                a < bound
            }
        }
        _ => false,
    }
}

/// The scheduler's toleration test.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    let effect = tol.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => tol.value.as_deref().unwrap_or_default() == taint.value,
        "Exists" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, zone: Option<&str>, extra: &[(&str, &str)], tainted: bool) -> NodeInfo {
        let mut labels: BTreeMap<String, String> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert(HOSTNAME_KEY.into(), name.into());
        if let Some(z) = zone {
            labels.insert("topology.kubernetes.io/zone".into(), z.into());
        }
        let taints = if tainted {
            vec![Taint {
                key: "gpu".into(),
                value: "yes".into(),
                effect: "NoSchedule".into(),
            }]
        } else {
            Vec::new()
        };
        NodeInfo {
            name: name.into(),
            labels,
            taints,
            unschedulable: name.ends_with("-cordoned"),
        }
    }

    #[test]
    fn the_snapshot_gives_back_exactly_the_nodes_it_was_built_from() {
        let mut nodes: Vec<NodeInfo> = (0..40)
            .map(|i| {
                let zone = ["a", "b", "c"].get(i % 4).copied();
                let name = if i == 7 {
                    "n-7-cordoned".to_owned()
                } else {
                    format!("n-{i}")
                };
                let id = format!("i-{i:08x}");
                node(
                    &name,
                    zone,
                    &[
                        ("pool", if i % 2 == 0 { "x" } else { "y" }),
                        ("instance-id", &id),
                    ],
                    i % 5 == 0,
                )
            })
            .collect();
        let topology = Topology::from_nodes(nodes.clone(), &Policy::default());
        assert!(
            topology.group_count() < nodes.len(),
            "per-node labels are kept out of group signatures"
        );
        let mut back: Vec<NodeInfo> = topology.nodes().collect();
        back.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, nodes);
    }

    #[test]
    fn eligibility_counts_zones_without_naming_them_unless_there_is_one() {
        let nodes = vec![
            node("a1", Some("a"), &[], false),
            node("b1", Some("b"), &[], true),
            node("x", None, &[], false),
        ];
        let topology = Topology::from_nodes(nodes, &Policy::default());
        let e = topology.eligibility(&Scheduling::default(), &[HOSTNAME_KEY, "missing"]);
        assert_eq!(
            (e.nodes, e.zones, e.sole_zone.as_deref(), e.unzoned_nodes),
            (Some(2), 1, Some("a"), 1)
        );
        assert_eq!(e.keys_present, vec![Some(true), Some(false)]);
    }
}
