//! HorizontalPodAutoscalers reduced to what decisions read (the target, `minReplicas`,
//! `maxReplicas`), and an index from a workload to the autoscaler that scales it.
//!
//! `autoscaling/v1` and `v2` name these fields alike, so either is read. KEDA's ScaledObjects
//! create HPAs, so they are covered.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::workload::at;

/// A HorizontalPodAutoscaler, reduced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaler {
    pub namespace: String,
    pub name: String,
    pub target: ScaleTarget,
    /// `spec.minReplicas`; 1 when omitted, as the API server defaults it.
    pub min_replicas: i64,
    pub max_replicas: Option<i64>,
}

/// `spec.scaleTargetRef`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTarget {
    /// The group of its `apiVersion` (`apps`); `None` when the reference has no apiVersion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
}

/// Whether an object is a HorizontalPodAutoscaler (`autoscaling/v1` or `v2`).
pub fn is_autoscaler(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("HorizontalPodAutoscaler")
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("autoscaling/"))
}

/// The API group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

// === impl Autoscaler ===

impl Autoscaler {
    /// Reads an HPA; `Err` names the field that cannot be read.
    pub fn from_json(object: &Value) -> Result<Autoscaler, String> {
        let (namespace, name) = super::workload::object_name(object);
        let (namespace, name) = (namespace.unwrap_or_default().to_owned(), name.to_owned());
        let target = match at(object, &["spec", "scaleTargetRef"]) {
            Some(Value::Object(r)) => {
                let field = |f: &str| r.get(f).and_then(Value::as_str);
                let (Some(kind), Some(target)) = (field("kind"), field("name")) else {
                    return Err("spec.scaleTargetRef: kind and name are required".to_owned());
                };
                ScaleTarget {
                    group: field("apiVersion").map(|v| group_of(v).to_owned()),
                    kind: kind.to_owned(),
                    name: target.to_owned(),
                }
            }
            _ => return Err("spec.scaleTargetRef: missing".to_owned()),
        };
        let count =
            |f: &str| -> Result<Option<i64>, String> {
                match at(object, &["spec", f]) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                        format!("spec.{f}: expected a non-negative integer, got {v}")
                    }),
                }
            };
        Ok(Autoscaler {
            namespace,
            name,
            target,
            min_replicas: count("minReplicas")?.unwrap_or(1),
            max_replicas: count("maxReplicas")?,
        })
    }

    /// Whether it scales the workload `kind`/`name` of API group `group`.
    pub fn targets(&self, group: &str, kind: &str, name: &str) -> bool {
        self.target.kind == kind
            && self.target.name == name
            && self.target.group.as_deref().is_none_or(|g| g == group)
    }

    /// "HorizontalPodAutoscaler web (minReplicas 1)" for messages.
    pub fn describe(&self) -> String {
        format!(
            "HorizontalPodAutoscaler {} (minReplicas {})",
            self.name, self.min_replicas
        )
    }
}

// === Autoscalers ===

/// Autoscalers by namespace and target name.
#[derive(Clone, Debug, Default)]
pub struct Autoscalers {
    /// namespace → target name → the autoscalers naming it.
    by_target: HashMap<String, HashMap<String, Vec<Autoscaler>>>,
    len: usize,
}

impl Autoscalers {
    pub fn new(autoscalers: impl IntoIterator<Item = Autoscaler>) -> Autoscalers {
        let mut index = Autoscalers::default();
        for a in autoscalers {
            index.len += 1;
            index
                .by_target
                .entry(a.namespace.clone())
                .or_default()
                .entry(a.target.name.clone())
                .or_default()
                .push(a);
        }
        for by_name in index.by_target.values_mut() {
            for list in by_name.values_mut() {
                list.sort_by(|a, b| (a.min_replicas, &a.name).cmp(&(b.min_replicas, &b.name)));
            }
        }
        index
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The autoscaler of a workload. Should several name it (they would fight), the one with
    /// the lowest `minReplicas`: the workload may end up there.
    pub fn for_workload(
        &self,
        namespace: &str,
        group: &str,
        kind: &str,
        name: &str,
    ) -> Option<&Autoscaler> {
        self.by_target
            .get(namespace)?
            .get(name)?
            .iter()
            .find(|a| a.targets(group, kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hpa(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": name, "namespace": "shop"}, "spec": spec})
    }

    #[test]
    fn min_replicas_defaults_to_1_and_targets_match_kind_name_and_group() {
        let a = Autoscaler::from_json(&hpa(
            "web",
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}),
        ))
        .unwrap();
        assert_eq!(a.min_replicas, 1);
        assert_eq!(a.max_replicas, Some(5));
        assert!(a.targets("apps", "Deployment", "web"));
        assert!(!a.targets("apps", "StatefulSet", "web"));
        assert!(!a.targets("example.com", "Deployment", "web"));
        let index = Autoscalers::new([a]);
        assert!(
            index
                .for_workload("shop", "apps", "Deployment", "web")
                .is_some()
        );
        assert!(
            index
                .for_workload("other", "apps", "Deployment", "web")
                .is_none()
        );
        assert!(
            index
                .for_workload("shop", "apps", "Deployment", "api")
                .is_none()
        );
    }

    #[test]
    fn two_autoscalers_on_one_target_count_the_lower_minimum() {
        let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
        let index = Autoscalers::new([("b", 4), ("a", 2)].iter().map(|(n, min)| {
            Autoscaler::from_json(&hpa(
                n,
                json!({"scaleTargetRef": target, "minReplicas": min, "maxReplicas": 9}),
            ))
            .unwrap()
        }));
        let found = index
            .for_workload("shop", "apps", "Deployment", "web")
            .unwrap();
        assert_eq!((found.name.as_str(), found.min_replicas), ("a", 2));
    }

    #[test]
    fn unreadable_fields_are_named() {
        for (spec, field) in [
            (json!({}), "scaleTargetRef"),
            (
                json!({"scaleTargetRef": {"kind": "Deployment"}}),
                "scaleTargetRef",
            ),
            (
                json!({"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "minReplicas": "2"}),
                "minReplicas",
            ),
        ] {
            let err = Autoscaler::from_json(&hpa("x", spec.clone())).unwrap_err();
            assert!(err.contains(field), "{spec}: {err}");
        }
    }
}
