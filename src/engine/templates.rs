//! Node templates: shapes of nodes that may appear, from node pools that scale from zero.
//!
//! A cluster autoscaler or Karpenter adds a node when a pod is Pending and a pool can run it,
//! so a zone with no Node object today is still a zone the pods can use. Templates come from
//! the policy (`nodeTemplates:`) and from Karpenter `karpenter.sh/v1` NodePools; the topology
//! joins them to its node groups as possible nodes ([`super::topology::Topology::from_parts`]).
//!
//! What a template's nodes will carry is not always one value: a NodePool requirement
//! `instance-type In [m6i.large, m6i.xlarge]` lets the provisioner pick either, and labels
//! Karpenter sets itself (architecture, zone, capacity type) take whatever value a pod asks
//! for unless the NodePool restricts them. A pod fits a template when every one of its
//! node-selection requirements can be met by some node the template can make.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::storage::ObjectError;
use super::topology::{Scheduling, Taint, tolerates};
use super::well_known::{HOSTNAME_KEY, KARPENTER_NODEPOOL_LABEL, STANDARD_ZONE_KEY};

/// Where a template came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TemplateSource {
    /// The policy's `nodeTemplates`.
    Policy,
    /// A Karpenter `karpenter.sh/v1` NodePool.
    NodePool,
}

impl TemplateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateSource::Policy => "policy template",
            TemplateSource::NodePool => "NodePool",
        }
    }
}

/// What a template's nodes carry under one label key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LabelValue {
    /// Exactly this value.
    Is(String),
    /// One of these; the provisioner picks one a pod asks for.
    OneOf(BTreeSet<String>),
    /// Any value but these.
    NoneOf(BTreeSet<String>),
    /// Some value, whichever a pod asks for.
    Any,
}

/// A node a pool can add: what it will carry, and where.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeTemplate {
    pub source: TemplateSource,
    /// The pool's or the policy template's name.
    pub name: String,
    /// The zone its nodes are added to, once known (the topology resolves it under the zone
    /// key in use); `None`: a zone the provisioner picks.
    pub zone: Option<String>,
    /// Label keys its nodes carry; a key not listed is absent.
    pub labels: BTreeMap<String, LabelValue>,
    /// Taints that keep pods away (`NoSchedule`, `NoExecute`), sorted.
    pub taints: Vec<Taint>,
    /// The pool cannot add a node now (a NodePool limit of zero).
    pub exhausted: bool,
}

/// Labels Karpenter itself sets on the nodes it launches, to the value a pod asks for unless
/// the NodePool restricts them (`WellKnownLabels` in kubernetes-sigs/karpenter).
const KARPENTER_WELL_KNOWN: &[&str] = &[
    STANDARD_ZONE_KEY,
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "node.kubernetes.io/windows-build",
    "karpenter.sh/capacity-type",
];

// === impl NodeTemplate ===

impl NodeTemplate {
    /// A template from the policy: exact labels, taints, and a zone.
    pub fn from_policy(t: &PolicyTemplate) -> NodeTemplate {
        let labels = t
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), LabelValue::Is(v.clone())))
            .collect();
        NodeTemplate {
            source: TemplateSource::Policy,
            name: t.name.clone(),
            zone: t.zone.clone(),
            labels,
            taints: normalised(t.taints.iter().map(|t| Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone(),
            })),
            exhausted: false,
        }
    }

    /// Reads a Karpenter `karpenter.sh/v1` NodePool (raw JSON, from the API server or a file):
    /// `spec.template.metadata.labels`, `spec.template.spec.taints` and `.requirements`, and
    /// `spec.limits`. Startup taints are left out: they are gone once the node is ready.
    pub fn from_node_pool(pool: &Value) -> Result<NodeTemplate, ObjectError> {
        let error = |reason: String| ObjectError::new("NodePool", pool, reason);
        let name = pool
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| error("metadata.name: missing".into()))?
            .to_owned();
        let field = |path: &str| pool.pointer(path).filter(|v| !v.is_null());
        let mut labels: BTreeMap<String, LabelValue> = KARPENTER_WELL_KNOWN
            .iter()
            .map(|k| ((*k).to_owned(), LabelValue::Any))
            .collect();
        labels.insert(
            KARPENTER_NODEPOOL_LABEL.to_owned(),
            LabelValue::Is(name.clone()),
        );
        if let Some(map) = field("/spec/template/metadata/labels") {
            let map: BTreeMap<String, String> = serde_json::from_value(map.clone())
                .map_err(|e| error(format!("spec.template.metadata.labels: {e}")))?;
            for (k, v) in map {
                labels.insert(k, LabelValue::Is(v));
            }
        }
        if let Some(reqs) = field("/spec/template/spec/requirements") {
            let reqs: Vec<NodeSelectorRequirement> = serde_json::from_value(reqs.clone())
                .map_err(|e| error(format!("spec.template.spec.requirements: {e}")))?;
            for r in reqs {
                restrict(&mut labels, &r);
            }
        }
        let taints = match field("/spec/template/spec/taints") {
            None => Vec::new(),
            Some(v) => {
                let list: Vec<TemplateTaint> = serde_json::from_value(v.clone())
                    .map_err(|e| error(format!("spec.template.spec.taints: {e}")))?;
                list.into_iter()
                    .map(|t| Taint {
                        key: t.key,
                        value: t.value.unwrap_or_default(),
                        effect: t.effect,
                    })
                    .collect()
            }
        };
        // A limit of zero for any resource (nodes, cpu, memory) stops the pool from adding one;
        // a static NodePool (`replicas` set) keeps a fixed number of nodes, which exist as
        // Nodes, and adds none for a Pending pod.
        let exhausted = field("/spec/limits")
            .and_then(Value::as_object)
            .is_some_and(|limits| limits.values().any(is_zero_quantity))
            || field("/spec/replicas").is_some();
        let zone = match labels.get(STANDARD_ZONE_KEY) {
            Some(LabelValue::Is(z)) => Some(z.clone()),
            _ => None,
        };
        Ok(NodeTemplate {
            source: TemplateSource::NodePool,
            name,
            zone,
            labels,
            taints: normalised(taints),
            exhausted,
        })
    }

    /// `NodePool gpu`, `policy template pool-k`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.source.as_str(), self.name)
    }

    /// One template per zone the template's nodes may be added to under `zone_key`: a
    /// requirement `zone In [a, b]` is a pool that can add nodes to a and to b. A zone given
    /// by the policy is set under `zone_key` here, which is only known once the nodes are.
    pub fn per_zone(mut self, zone_key: &str) -> Vec<NodeTemplate> {
        if self.source == TemplateSource::Policy {
            if let Some(zone) = &self.zone {
                self.labels
                    .insert(zone_key.to_owned(), LabelValue::Is(zone.clone()));
            }
            return vec![self];
        }
        match self.labels.get(zone_key).cloned() {
            Some(LabelValue::Is(zone)) => {
                self.zone = Some(zone);
                vec![self]
            }
            Some(LabelValue::OneOf(zones)) => zones
                .into_iter()
                .map(|zone| {
                    let mut t = self.clone();
                    t.labels
                        .insert(zone_key.to_owned(), LabelValue::Is(zone.clone()));
                    t.zone = Some(zone);
                    t
                })
                .collect(),
            _ => {
                self.zone = None;
                vec![self]
            }
        }
    }

    /// Whether nodes of the template carry `key` (a node always carries its hostname).
    pub fn carries(&self, key: &str) -> bool {
        key == HOSTNAME_KEY || self.labels.contains_key(key)
    }

    /// Whether a pod with these requirements could run on a node the template adds: its
    /// taints tolerated, its nodeSelector and required node affinity satisfiable.
    pub fn admits(&self, sched: &Scheduling<'_>) -> bool {
        if self.exhausted
            || !self
                .taints
                .iter()
                .all(|t| sched.tolerations.iter().any(|tol| tolerates(tol, t)))
        {
            return false;
        }
        if let Some(selector) = sched.node_selector
            && !selector.iter().all(|(k, v)| self.can_be(k, v))
        {
            return false;
        }
        match sched.required_terms {
            None => true,
            Some(terms) => terms.iter().any(|t| self.term_satisfiable(t)),
        }
    }

    /// Whether a node of the template may carry `value` under `key`.
    fn can_be(&self, key: &str, value: &str) -> bool {
        match self.labels.get(key) {
            Some(LabelValue::Is(v)) => v == value,
            Some(LabelValue::OneOf(set)) => set.contains(value),
            Some(LabelValue::NoneOf(excluded)) => !excluded.contains(value),
            Some(LabelValue::Any) => true,
            // A new node's name is not known in advance.
            None => key == HOSTNAME_KEY,
        }
    }

    /// A node selector term: its expressions ANDed (each key judged on its own); fields
    /// name existing nodes, which a new node is not.
    fn term_satisfiable(&self, term: &NodeSelectorTerm) -> bool {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs.iter().all(|e| self.requirement_satisfiable(e))
            && fields
                .iter()
                .all(|f| f.operator == "NotIn" || f.operator == "DoesNotExist")
    }

    fn requirement_satisfiable(&self, req: &NodeSelectorRequirement) -> bool {
        let values = req.values.as_deref().unwrap_or_default();
        let value = self.labels.get(&req.key).or(if req.key == HOSTNAME_KEY {
            Some(&LabelValue::Any)
        } else {
            None
        });
        let number = |s: &str| s.parse::<i64>().ok();
        match (req.operator.as_str(), value) {
            ("In", _) => values.iter().any(|v| self.can_be(&req.key, v)),
            ("NotIn", None) => true,
            ("NotIn", Some(LabelValue::Is(v))) => !values.contains(v),
            ("NotIn", Some(LabelValue::OneOf(set))) => set.iter().any(|v| !values.contains(v)),
            ("NotIn", Some(LabelValue::NoneOf(_) | LabelValue::Any)) => true,
            ("Exists", v) => v.is_some(),
            ("DoesNotExist", v) => v.is_none(),
            ("Gt" | "Lt", Some(v)) => {
                let Some(bound) = values.first().and_then(|b| number(b)) else {
                    return false;
                };
                let passes = |x: &str| {
                    number(x).is_some_and(|x| {
                        if req.operator == "Gt" {
                            x > bound
                        } else {
                            x < bound
                        }
                    })
                };
                match v {
                    LabelValue::Is(x) => passes(x),
                    LabelValue::OneOf(set) => set.iter().any(|x| passes(x)),
                    LabelValue::NoneOf(_) | LabelValue::Any => true,
                }
            }
            _ => false,
        }
    }
}

/// Narrows what a NodePool's nodes carry by one of its requirements.
fn restrict(labels: &mut BTreeMap<String, LabelValue>, r: &NodeSelectorRequirement) {
    let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
    let current = labels.get(&r.key).cloned();
    let next = match (r.operator.as_str(), current) {
        ("In", Some(LabelValue::Is(v))) => Some(LabelValue::Is(v)),
        ("In", Some(LabelValue::OneOf(set))) => {
            Some(one_of(set.intersection(&values).cloned().collect()))
        }
        ("In", Some(LabelValue::NoneOf(excluded))) => {
            Some(one_of(values.difference(&excluded).cloned().collect()))
        }
        ("In", _) => Some(one_of(values)),
        ("NotIn", Some(LabelValue::OneOf(set))) => {
            Some(one_of(set.difference(&values).cloned().collect()))
        }
        ("NotIn", Some(LabelValue::NoneOf(mut excluded))) => {
            excluded.extend(values);
            Some(LabelValue::NoneOf(excluded))
        }
        ("NotIn", Some(LabelValue::Is(v))) => Some(LabelValue::Is(v)),
        ("NotIn", _) => Some(LabelValue::NoneOf(values)),
        ("Exists", Some(v)) => Some(v),
        ("Exists", None) => Some(LabelValue::Any),
        ("DoesNotExist", _) => None,
        // Gt, Lt and operators Karpenter may add later: some value it picks.
        (_, Some(v)) => Some(v),
        (_, None) => Some(LabelValue::Any),
    };
    match next {
        Some(v) => {
            labels.insert(r.key.clone(), v);
        }
        None => {
            labels.remove(&r.key);
        }
    }
}

fn one_of(mut values: BTreeSet<String>) -> LabelValue {
    if values.len() == 1 {
        LabelValue::Is(values.pop_first().unwrap_or_default())
    } else {
        LabelValue::OneOf(values)
    }
}

fn normalised(taints: impl IntoIterator<Item = Taint>) -> Vec<Taint> {
    let mut taints: Vec<Taint> = taints.into_iter().filter(Taint::keeps_pods_away).collect();
    taints.sort();
    taints.dedup();
    taints
}

/// `0`, `"0"`, `"0Gi"`, `"0m"`: a quantity of zero.
fn is_zero_quantity(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => {
            let digits: String = s
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-')
                .collect();
            digits.parse::<f64>().is_ok_and(|n| n == 0.0)
        }
        _ => false,
    }
}

// === The policy's nodeTemplates ===

/// One entry of the policy's `nodeTemplates`: a node pool the cluster autoscaler can scale
/// from zero (and which therefore has no Node to read), described by hand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTemplate {
    /// The pool's name, for messages.
    pub name: String,
    /// The zone it adds nodes to (set under the zone key in use).
    #[serde(default)]
    pub zone: Option<String>,
    /// Labels its nodes carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints its nodes carry, as on a Node.
    #[serde(default)]
    pub taints: Vec<TemplateTaint>,
}

/// A taint, as a Node or a NodePool writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateTaint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
    /// Accepted for the shape of a Node's taint; ignored.
    #[serde(rename = "timeAdded", default, skip_serializing)]
    pub time_added: Option<String>,
}

impl PolicyTemplate {
    /// What is wrong with the entry, if anything.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if self.zone.as_deref().is_some_and(|z| z.trim().is_empty()) {
            return Err("zone: must not be empty".into());
        }
        for t in &self.taints {
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
                return Err(format!(
                    "taint {}: effect must be NoSchedule, PreferNoSchedule or NoExecute, got {:?}",
                    t.key, t.effect
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Toleration;
    use serde_json::json;

    fn pool(spec: Value) -> NodeTemplate {
        NodeTemplate::from_node_pool(&json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "general"}, "spec": spec,
        }))
        .unwrap()
    }

    fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_zone_requirement_makes_one_template_per_zone() {
        let p = pool(json!({"template": {"spec": {"requirements": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b"]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        ]}}}));
        let zones: Vec<Option<String>> = p
            .clone()
            .per_zone(STANDARD_ZONE_KEY)
            .into_iter()
            .map(|t| t.zone)
            .collect();
        assert_eq!(zones, [Some("a".to_owned()), Some("b".to_owned())]);
        let any_zone = pool(json!({}));
        assert_eq!(any_zone.per_zone(STANDARD_ZONE_KEY)[0].zone, None);
    }

    #[test]
    fn pods_fit_what_the_pool_can_make() {
        let p = pool(json!({"template": {
            "metadata": {"labels": {"team": "db"}},
            "spec": {
                "requirements": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]},
                ],
                "taints": [{"key": "db", "value": "true", "effect": "NoSchedule"}],
            },
        }}));
        let tolerations = vec![Toleration {
            key: Some("db".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        }];
        let fits = |pairs: &[(&str, &str)], tolerations: &[Toleration]| {
            let s = selector(pairs);
            p.admits(&Scheduling {
                node_selector: Some(&s),
                required_terms: None,
                tolerations,
            })
        };
        assert!(fits(
            &[("team", "db"), ("kubernetes.io/os", "linux")],
            &tolerations
        ));
        assert!(!fits(&[("team", "db")], &[]), "the taint is not tolerated");
        assert!(!fits(&[("kubernetes.io/arch", "arm64")], &tolerations));
        assert!(!fits(
            &[("karpenter.sh/capacity-type", "spot")],
            &tolerations
        ));
        assert!(fits(
            &[("karpenter.sh/capacity-type", "on-demand")],
            &tolerations
        ));
        assert!(
            !fits(&[("pool", "other")], &tolerations),
            "a label the pool never sets"
        );
        assert!(fits(&[("karpenter.sh/nodepool", "general")], &tolerations));
    }

    #[test]
    fn a_zero_limit_exhausts_the_pool() {
        assert!(pool(json!({"limits": {"cpu": "0"}})).exhausted);
        assert!(pool(json!({"limits": {"nodes": 0}})).exhausted);
        assert!(!pool(json!({"limits": {"cpu": "1000", "memory": "1000Gi"}})).exhausted);
        assert!(
            pool(json!({"replicas": 3})).exhausted,
            "a static NodePool adds none on demand"
        );
    }
}
