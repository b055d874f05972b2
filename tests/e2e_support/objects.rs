//! Workloads as users write them (JSON, no server-side defaults), and readers for what the API
//! server stored and where the scheduler put the pods.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::spreadguard::merge;

/// A Deployment of the pause image; `replicas: None` leaves the field out.
pub fn deployment(ns: &str, name: &str, replicas: Option<i64>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

/// A StatefulSet of the pause image.
pub fn statefulset(ns: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    })
}

/// The object with `extra` merged into its pod template's spec.
pub fn with_pod_spec(mut object: Value, extra: Value) -> Value {
    merge(&mut object["spec"]["template"]["spec"], &extra);
    object
}

/// A required pod anti-affinity term against the workload's own pods on `key`.
pub fn required_anti_affinity(app: &str, key: &str) -> Value {
    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
    ]}}})
}

/// `spec.template.spec.topologySpreadConstraints` of a stored workload.
pub fn spread_constraints(object: &Value) -> Vec<Value> {
    object["spec"]["template"]["spec"]["topologySpreadConstraints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The topology keys of the spread constraints, in order.
pub fn spread_keys(object: &Value) -> Vec<String> {
    spread_constraints(object)
        .iter()
        .map(|c| c["topologyKey"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Preferred pod anti-affinity terms of a stored workload.
pub fn preferred_anti_affinity(object: &Value) -> Vec<Value> {
    object["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Pods whose name starts with `prefix` (`web-` for Deployment `web`'s pods).
pub fn named<'a>(pods: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

/// Bound pods per zone, as sorted counts (`[1, 1, 1]`), given node → zone.
pub fn zone_counts(pods: &[&Value], zones: &BTreeMap<String, String>) -> Vec<usize> {
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        if let Some(node) = p["spec"]["nodeName"].as_str() {
            *per_zone
                .entry(zones.get(node).map_or("?", String::as_str))
                .or_default() += 1;
        }
    }
    let mut counts: Vec<usize> = per_zone.into_values().collect();
    counts.sort_unstable();
    counts
}

/// Bound pods per zone name.
pub fn per_zone(pods: &[&Value], zones: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut per_zone = BTreeMap::new();
    for p in pods {
        if let Some(node) = p["spec"]["nodeName"].as_str() {
            *per_zone
                .entry(zones.get(node).cloned().unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        }
    }
    per_zone
}

/// Pods the scheduler could not place: `PodScheduled=False`, reason `Unschedulable`.
pub fn unschedulable(pods: &[&Value]) -> usize {
    pods.iter()
        .filter(|p| {
            p["spec"]["nodeName"].is_null()
                && p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "PodScheduled"
                            && c["status"] == "False"
                            && c["reason"] == "Unschedulable"
                    })
                })
        })
        .count()
}

/// Pods bound to a node.
pub fn bound(pods: &[&Value]) -> usize {
    pods.iter()
        .filter(|p| p["spec"]["nodeName"].is_string())
        .count()
}
