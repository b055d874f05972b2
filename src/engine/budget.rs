//! PodDisruptionBudgets reduced to what decisions read, the disruption controller's
//! arithmetic, and an index that finds the budgets selecting a workload's pods without
//! evaluating every budget of its namespace.
//!
//! The arithmetic follows `pkg/controller/disruption` (Kubernetes 1.37): percentages of both
//! `minAvailable` and `maxUnavailable` are scaled with `GetScaledValueFromIntOrPercent(..,
//! roundUp=true)`, and a budget with neither field expects no pods and so allows no
//! disruption at all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::labels::selects;
use super::workload::at;

/// `minAvailable` or `maxUnavailable`: a count or a percentage of the expected pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// Reads a field as the API server validates it: a non-negative integer, or a string of
    /// digits and `%` of at most 100.
    fn read(value: &Value, field: &str) -> Result<IntOrPercent, String> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .filter(|n| *n >= 0)
                .map(IntOrPercent::Int)
                .ok_or_else(|| format!("{field}: expected a non-negative integer, got {n}")),
            Value::String(s) => s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<i64>().ok())
                .filter(|p| *p <= 100)
                .map(IntOrPercent::Percent)
                .ok_or_else(|| format!("{field}: expected an integer or a percentage, got {s:?}")),
            other => Err(format!(
                "{field}: expected an integer or a percentage, got {other}"
            )),
        }
    }

    /// The value for `total` expected pods, a percentage rounded up, as the disruption
    /// controller scales both fields.
    pub fn scaled(self, total: i64) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            // In 128 bits: a replica count read from a manifest may be anything.
            IntOrPercent::Percent(p) => {
                let scaled = (i128::from(p) * i128::from(total.max(0)) + 99) / 100;
                scaled.min(i128::from(i64::MAX)) as i64
            }
        }
    }

    pub fn is_percent(self) -> bool {
        matches!(self, IntOrPercent::Percent(_))
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Int(n) => s.serialize_i64(*n),
            IntOrPercent::Percent(_) => s.collect_str(self),
        }
    }
}

/// What a budget asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    MinAvailable(IntOrPercent),
    MaxUnavailable(IntOrPercent),
    /// Neither field: the disruption controller expects no pods and allows no disruption.
    Neither,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::MinAvailable(v) => write!(f, "minAvailable {v}"),
            Requirement::MaxUnavailable(v) => write!(f, "maxUnavailable {v}"),
            Requirement::Neither => f.write_str("neither minAvailable nor maxUnavailable"),
        }
    }
}

/// A PodDisruptionBudget (`policy/v1`), reduced.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub namespace: String,
    pub name: String,
    /// `None`: no selector, which selects no pod (`policy/v1`); `{}` selects every pod of
    /// the namespace.
    pub selector: Option<LabelSelector>,
    pub requirement: Requirement,
    /// `IfHealthyBudget` (the default) or `AlwaysAllow`.
    pub unhealthy_pod_eviction_policy: Option<String>,
}

/// Whether an object is a PodDisruptionBudget spreadguard reads (`policy/v1`, or the
/// removed `policy/v1beta1` in old manifests, whose fields are the same).
pub fn is_budget(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("PodDisruptionBudget")
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("policy/"))
}

// === impl Budget ===

impl Budget {
    /// Reads a PodDisruptionBudget; `Err` names the field that cannot be read.
    pub fn from_json(object: &Value) -> Result<Budget, String> {
        let (namespace, name) = super::workload::object_name(object);
        let (namespace, name) = (namespace.unwrap_or_default().to_owned(), name.to_owned());
        let spec = match at(object, &["spec"]) {
            None | Some(Value::Null) => &Value::Null,
            Some(spec @ Value::Object(_)) => spec,
            Some(_) => return Err("spec: expected an object".to_owned()),
        };
        let field = |f: &str| spec.get(f).filter(|v| !v.is_null());
        let selector = match field("selector") {
            None => None,
            Some(v) => {
                Some(LabelSelector::deserialize(v).map_err(|e| format!("spec.selector: {e}"))?)
            }
        };
        let min = field("minAvailable")
            .map(|v| IntOrPercent::read(v, "spec.minAvailable"))
            .transpose()?;
        let max = field("maxUnavailable")
            .map(|v| IntOrPercent::read(v, "spec.maxUnavailable"))
            .transpose()?;
        let requirement = match (min, max) {
            (Some(_), Some(_)) => {
                return Err("spec: minAvailable and maxUnavailable cannot be both set".to_owned());
            }
            (Some(min), None) => Requirement::MinAvailable(min),
            (None, Some(max)) => Requirement::MaxUnavailable(max),
            (None, None) => Requirement::Neither,
        };
        let unhealthy_pod_eviction_policy = field("unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Budget {
            namespace,
            name,
            selector,
            requirement,
            unhealthy_pod_eviction_policy,
        })
    }

    /// How many of `replicas` healthy pods may be evicted at once (the controller's
    /// `disruptionsAllowed` when every expected pod is healthy).
    pub fn allowed_unavailable(&self, replicas: i64) -> i64 {
        let replicas = replicas.max(0);
        let desired_healthy = match self.requirement {
            Requirement::MaxUnavailable(v) => (replicas - v.scaled(replicas)).max(0),
            Requirement::MinAvailable(v) => v.scaled(replicas),
            // expectedCount stays 0, and the controller allows nothing then.
            Requirement::Neither => return 0,
        };
        if replicas == 0 {
            return 0;
        }
        (replicas - desired_healthy).max(0)
    }

    /// Whether it allows no eviction whatever the number of pods: `maxUnavailable` 0 or
    /// `0%`, `minAvailable` `100%`, or neither field.
    pub fn blocks_every_eviction(&self) -> bool {
        match self.requirement {
            Requirement::MaxUnavailable(v) => {
                matches!(v, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
            }
            Requirement::MinAvailable(v) => v == IntOrPercent::Percent(100),
            Requirement::Neither => true,
        }
    }

    /// Whether it selects a pod with `labels` in `namespace`. An invalid selector selects
    /// nothing, as in the eviction API.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespace == namespace
            && self
                .selector
                .as_ref()
                .is_some_and(|s| selects(s, labels) == Ok(true))
    }

    /// `shop/web` for messages and reports.
    pub fn qualified_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

// === Budgets ===

/// The budgets of a cluster (or of a set of manifests), indexed so that finding those that
/// select a workload's pods costs a few hash look-ups per pod label, not one selector
/// evaluation per budget of the namespace.
#[derive(Clone, Debug, Default)]
pub struct Budgets {
    namespaces: HashMap<String, NamespaceBudgets>,
    len: usize,
}

#[derive(Clone, Debug, Default)]
struct NamespaceBudgets {
    /// In name order.
    all: Vec<Budget>,
    /// label key → value → budgets whose selector requires that pair (one pair per budget).
    anchored: HashMap<String, HashMap<String, Vec<usize>>>,
    /// Budgets with no pair to anchor on (`{}`, only NotIn/Exists/DoesNotExist): checked
    /// for every workload of the namespace.
    unanchored: Vec<usize>,
}

impl Budgets {
    pub fn new(budgets: impl IntoIterator<Item = Budget>) -> Budgets {
        let mut by_ns: HashMap<String, Vec<Budget>> = HashMap::new();
        for b in budgets {
            by_ns.entry(b.namespace.clone()).or_default().push(b);
        }
        let mut len = 0;
        let namespaces = by_ns
            .into_iter()
            .map(|(ns, mut all)| {
                all.sort_by(|a, b| a.name.cmp(&b.name));
                len += all.len();
                let mut index = NamespaceBudgets::default();
                for (i, b) in all.iter().enumerate() {
                    let Some(selector) = &b.selector else {
                        continue; // selects nothing
                    };
                    match anchor(selector) {
                        Some((key, values)) => {
                            let by_value = index.anchored.entry(key.to_owned()).or_default();
                            for v in values {
                                by_value.entry(v.to_owned()).or_default().push(i);
                            }
                        }
                        None => index.unanchored.push(i),
                    }
                }
                index.all = all;
                (ns, index)
            })
            .collect();
        Budgets { namespaces, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every budget, by namespace and name.
    pub fn iter(&self) -> impl Iterator<Item = &Budget> {
        let mut namespaces: Vec<&String> = self.namespaces.keys().collect();
        namespaces.sort();
        namespaces
            .into_iter()
            .flat_map(|ns| self.namespaces[ns].all.iter())
    }

    /// The budgets that select pods with `labels` in `namespace`, in name order.
    pub fn selecting(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<&Budget> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let mut candidates: Vec<usize> = ns.unanchored.clone();
        for (key, value) in labels {
            if let Some(found) = ns.anchored.get(key).and_then(|by| by.get(value)) {
                candidates.extend_from_slice(found);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .map(|i| &ns.all[i])
            .filter(|b| b.selects(namespace, labels))
            .collect()
    }
}

/// A label pair (or an `In` list of pairs) every pod the selector selects must carry.
fn anchor(selector: &LabelSelector) -> Option<(&str, Vec<&str>)> {
    if let Some((k, v)) = selector.match_labels.iter().flatten().next() {
        return Some((k, vec![v]));
    }
    selector
        .match_expressions
        .iter()
        .flatten()
        .find(|e| e.operator == "In")
        .map(|e| {
            (
                e.key.as_str(),
                e.values
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
        })
}

/// The namespace and pod labels of anything that runs pods: a Pod's own labels, a pod
/// template's (Deployments, StatefulSets, DaemonSets, Jobs, ...), a CronJob's job template's.
/// For finding budgets that select nothing that runs.
pub fn pod_labels(object: &Value) -> Option<(&str, BTreeMap<String, String>)> {
    let ns = at(object, &["metadata", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str)?;
    let labels = match kind {
        "Pod" => at(object, &["metadata", "labels"]),
        "CronJob" => at(
            object,
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "metadata",
                "labels",
            ],
        ),
        _ => at(object, &["spec", "template", "metadata", "labels"]),
    }?;
    Some((ns, super::labels::string_map(labels.as_object()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(name: &str, spec: Value) -> Budget {
        Budget::from_json(&json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec,
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The disruption controller's arithmetic, case by case: percentages round up for both
    /// fields (pkg/controller/disruption, getExpectedPodCount).
    #[test]
    fn allowed_unavailable_rounds_as_the_disruption_controller_does() {
        let cases: &[(Value, i64, i64)] = &[
            (json!({"maxUnavailable": 1}), 3, 1),
            (json!({"maxUnavailable": 0}), 3, 0),
            (json!({"maxUnavailable": "0%"}), 10, 0),
            // 10% of 6 = 0.6, rounded up to 1.
            (json!({"maxUnavailable": "10%"}), 6, 1),
            // 34% of 3 = 1.02, rounded up to 2.
            (json!({"maxUnavailable": "34%"}), 3, 2),
            (json!({"maxUnavailable": "100%"}), 3, 3),
            (json!({"maxUnavailable": 5}), 3, 3),
            (json!({"minAvailable": 2}), 3, 1),
            (json!({"minAvailable": 3}), 3, 0),
            (json!({"minAvailable": 5}), 3, 0),
            // 50% of 3 = 1.5, rounded up to 2 must stay available: 1 may go.
            (json!({"minAvailable": "50%"}), 3, 1),
            // 51% of 2 = 1.02, rounded up to 2: nothing may go.
            (json!({"minAvailable": "51%"}), 2, 0),
            (json!({"minAvailable": "100%"}), 7, 0),
            (json!({"minAvailable": "0%"}), 4, 4),
            (json!({}), 5, 0),
            (json!({"maxUnavailable": 1}), 0, 0),
        ];
        for (spec, replicas, allowed) in cases {
            let b = pdb("b", spec.clone());
            assert_eq!(
                b.allowed_unavailable(*replicas),
                *allowed,
                "{spec} with {replicas} replicas"
            );
        }
    }

    #[test]
    fn budgets_that_block_whatever_the_replicas() {
        for (spec, blocks) in [
            (json!({"maxUnavailable": 0}), true),
            (json!({"maxUnavailable": "0%"}), true),
            (json!({"minAvailable": "100%"}), true),
            (json!({}), true),
            (json!({"minAvailable": "99%"}), false),
            (json!({"minAvailable": 3}), false),
            (json!({"maxUnavailable": "1%"}), false),
        ] {
            assert_eq!(
                pdb("b", spec.clone()).blocks_every_eviction(),
                blocks,
                "{spec}"
            );
        }
    }

    #[test]
    fn unreadable_fields_are_named() {
        for (spec, field) in [
            (json!({"maxUnavailable": "ten"}), "maxUnavailable"),
            (json!({"minAvailable": "150%"}), "minAvailable"),
            (json!({"minAvailable": -1}), "minAvailable"),
            (json!({"minAvailable": 1, "maxUnavailable": 1}), "both"),
            (json!({"selector": "app=web"}), "selector"),
        ] {
            let err = Budget::from_json(&json!({"kind": "PodDisruptionBudget", "apiVersion": "policy/v1", "metadata": {"name": "x"}, "spec": spec})).unwrap_err();
            assert!(err.contains(field), "{spec}: {err}");
        }
    }

    #[test]
    fn the_index_finds_exactly_what_the_selectors_select() {
        let budgets = Budgets::new([
            pdb(
                "by-label",
                json!({"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": 1}),
            ),
            pdb(
                "by-in",
                json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, "maxUnavailable": 1}),
            ),
            pdb("everything", json!({"selector": {}, "maxUnavailable": 1})),
            pdb("nothing", json!({"maxUnavailable": 1})),
            pdb(
                "not-web",
                json!({"selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, "maxUnavailable": 1}),
            ),
            pdb(
                "two-labels",
                json!({"selector": {"matchLabels": {"app": "web", "tier": "gold"}}, "maxUnavailable": 1}),
            ),
        ]);
        let names = |ls: &[(&str, &str)], ns: &str| -> Vec<String> {
            budgets
                .selecting(ns, &labels(ls))
                .iter()
                .map(|b| b.name.clone())
                .collect()
        };
        assert_eq!(
            names(&[("app", "web")], "shop"),
            ["by-in", "by-label", "everything"]
        );
        assert_eq!(
            names(&[("app", "web"), ("tier", "gold")], "shop"),
            ["by-in", "by-label", "everything", "two-labels"]
        );
        assert_eq!(
            names(&[("app", "api")], "shop"),
            ["by-in", "everything", "not-web"]
        );
        assert_eq!(names(&[], "shop"), ["everything", "not-web"]);
        assert!(names(&[("app", "web")], "other").is_empty());
        // The index agrees with evaluating every selector.
        for ls in [
            &[("app", "web")][..],
            &[("app", "db"), ("tier", "gold")],
            &[],
        ] {
            let l = labels(ls);
            let brute: Vec<&str> = budgets
                .iter()
                .filter(|b| b.selects("shop", &l))
                .map(|b| b.name.as_str())
                .collect();
            assert_eq!(names(ls, "shop"), brute, "{ls:?}");
        }
        assert_eq!(budgets.len(), 6);
    }
}
