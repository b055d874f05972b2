//! A read-only view of a workload's raw JSON: where its pod template is and what in it
//! matters for spreading. Nothing here is ever written back; patches address the raw JSON.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::labels::selects;
use super::topology::Scheduling;
use super::well_known::HASH_LABELS;

/// The kinds spreadguard judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    ReplicaSet,
    Pod,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The kind for an `apiVersion`/`kind` pair, if spreadguard handles it.
    pub fn from_type(api_version: &str, kind: &str) -> Option<WorkloadKind> {
        match (api_version, kind) {
            ("apps/v1", "Deployment") => Some(WorkloadKind::Deployment),
            ("apps/v1", "StatefulSet") => Some(WorkloadKind::StatefulSet),
            ("apps/v1", "ReplicaSet") => Some(WorkloadKind::ReplicaSet),
            ("v1", "Pod") => Some(WorkloadKind::Pod),
            _ => None,
        }
    }

    /// JSON pointer tokens from the object's root to its pod spec.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &["spec"],
            _ => &["spec", "template", "spec"],
        }
    }
}

/// Why an object is passed through without a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a kind spreadguard judges.
    NotAWorkload,
    /// A Pod or ReplicaSet whose controller is judged instead.
    Controlled,
    /// The object has a `deletionTimestamp`.
    Deleting,
}

/// The scheduling-relevant parts of a pod spec, read through typed views.
#[derive(Clone, Debug, Default)]
pub struct PodScheduling {
    pub node_selector: Option<BTreeMap<String, String>>,
    pub affinity: Option<Affinity>,
    pub tolerations: Vec<Toleration>,
    pub spread: Vec<TopologySpreadConstraint>,
}

/// A workload, as the engine sees it.
#[derive(Clone, Debug)]
pub struct Workload<'a> {
    pub kind: WorkloadKind,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    /// `spec.replicas`, 1 when omitted; always 1 for a Pod.
    pub replicas: i64,
    /// The controller's raw `spec.selector` (absent for Pods).
    pub selector_json: Option<&'a Value>,
    pub selector: Option<LabelSelector>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_spec: &'a Map<String, Value>,
    pub annotations: Option<&'a Map<String, Value>>,
    pub scheduling: PodScheduling,
    /// A StatefulSet's `spec.volumeClaimTemplates` (empty for other kinds), read as needed.
    pub claim_templates: &'a [Value],
    /// A StatefulSet's first ordinal (`spec.ordinals.start`, 0 when unset).
    pub ordinals_start: i64,
}

/// The outcome of reading an object.
#[derive(Debug)]
pub enum Classified<'a> {
    Skip(Skip),
    Workload(Box<Workload<'a>>),
    /// A workload kind whose fields cannot be read; the error names the field.
    Uninterpretable {
        kind: WorkloadKind,
        reason: FieldError,
    },
}

/// A field of a workload that cannot be read (the object is then `HA000`).
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    #[error("{field}: missing")]
    Missing { field: String },
    #[error("{field}: expected {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: &'static str,
    },
    /// A typed view (affinity, tolerations, …) rejects the value.
    #[error("{field}: {problem}")]
    Invalid {
        field: String,
        problem: serde_json::Error,
    },
}

/// Reads an object's kind and, for workloads, the parts that matter.
pub fn classify(object: &Value) -> Classified<'_> {
    let str_at = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    let Some(kind) = WorkloadKind::from_type(str_at("apiVersion"), str_at("kind")) else {
        return Classified::Skip(Skip::NotAWorkload);
    };
    if at(object, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return Classified::Skip(Skip::Deleting);
    }
    if controlled_by_judged_kind(kind, object) {
        return Classified::Skip(Skip::Controlled);
    }
    match read(kind, object) {
        Ok(w) => Classified::Workload(Box::new(w)),
        Err(reason) => Classified::Uninterpretable { kind, reason },
    }
}

/// `namespace/name` of any object, for reports; a `generateName` stands in for a name.
pub fn object_name(object: &Value) -> (Option<&str>, &str) {
    let ns = at(object, &["metadata", "namespace"]).and_then(Value::as_str);
    let name = at(object, &["metadata", "name"])
        .and_then(Value::as_str)
        .or_else(|| at(object, &["metadata", "generateName"]).and_then(Value::as_str))
        .unwrap_or_default();
    (ns, name)
}

/// The value at a path of object keys; unlike `Value::pointer`, it allocates nothing.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// Controllers whose children are judged through them: a ReplicaSet of a Deployment, a Pod
/// of a ReplicaSet, StatefulSet, Job or DaemonSet (`apiVersion` group, kind). Any other
/// controller (a tenant's ConfigMap, say) leaves its child to be judged on its own.
pub const JUDGED_CONTROLLERS: &[(WorkloadKind, &str, &str)] = &[
    (WorkloadKind::ReplicaSet, "apps", "Deployment"),
    (WorkloadKind::Pod, "apps", "ReplicaSet"),
    (WorkloadKind::Pod, "apps", "StatefulSet"),
    (WorkloadKind::Pod, "apps", "DaemonSet"),
    (WorkloadKind::Pod, "batch", "Job"),
];

/// Whether the object's controller owner is one that is judged instead of it.
fn controlled_by_judged_kind(kind: WorkloadKind, object: &Value) -> bool {
    let Some(refs) = at(object, &["metadata", "ownerReferences"]).and_then(Value::as_array) else {
        return false;
    };
    let Some(controller) = refs
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    else {
        return false;
    };
    let field = |f: &str| {
        controller
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let group = field("apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
    let owner_kind = field("kind");
    JUDGED_CONTROLLERS
        .iter()
        .any(|(child, g, k)| *child == kind && *g == group && *k == owner_kind)
}

fn read(kind: WorkloadKind, object: &Value) -> Result<Workload<'_>, FieldError> {
    let (namespace, name) = object_name(object);
    // The patch records what it injected in `metadata.annotations`: without a `metadata` map
    // it could not apply.
    if object_at(object, &["metadata"], "metadata")?.is_none() {
        return Err(FieldError::Missing {
            field: "metadata".into(),
        });
    }
    let annotations = object_at(object, &["metadata", "annotations"], "metadata.annotations")?;
    let (replicas, selector_json, template_meta, spec_name) = match kind {
        WorkloadKind::Pod => (1, None, object.get("metadata"), "spec"),
        _ => {
            let replicas = match at(object, &["spec", "replicas"]) {
                None | Some(Value::Null) => 1,
                Some(v) => v
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| FieldError::WrongType {
                        field: "spec.replicas".into(),
                        expected: "a non-negative integer",
                        got: type_name(v),
                    })?,
            };
            let selector = at(object, &["spec", "selector"]).filter(|v| !v.is_null());
            (
                replicas,
                selector,
                at(object, &["spec", "template", "metadata"]),
                "spec.template.spec",
            )
        }
    };
    let pod_spec = match at(object, kind.pod_spec_path()) {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => {
            return Err(FieldError::Missing {
                field: spec_name.into(),
            });
        }
        Some(other) => {
            return Err(FieldError::WrongType {
                field: spec_name.into(),
                expected: "an object",
                got: type_name(other),
            });
        }
    };
    let labels_path = if kind == WorkloadKind::Pod {
        "metadata.labels"
    } else {
        "spec.template.metadata.labels"
    };
    let pod_labels =
        typed(template_meta.and_then(|m| m.get("labels")), labels_path)?.unwrap_or_default();
    let selector = typed(selector_json, "spec.selector")?;
    let field = |f: &str| format!("{spec_name}.{f}");
    let scheduling = PodScheduling {
        node_selector: typed(pod_spec.get("nodeSelector"), &field("nodeSelector"))?,
        affinity: typed(pod_spec.get("affinity"), &field("affinity"))?,
        tolerations: typed(pod_spec.get("tolerations"), &field("tolerations"))?.unwrap_or_default(),
        spread: typed(
            pod_spec.get("topologySpreadConstraints"),
            &field("topologySpreadConstraints"),
        )?
        .unwrap_or_default(),
    };
    let claim_templates = match kind {
        WorkloadKind::StatefulSet => at(object, &["spec", "volumeClaimTemplates"])
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default(),
        _ => &[],
    };
    let ordinals_start = at(object, &["spec", "ordinals", "start"])
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
        .unwrap_or(0);
    Ok(Workload {
        kind,
        namespace,
        name,
        replicas,
        selector_json,
        selector,
        pod_labels,
        pod_spec,
        annotations,
        scheduling,
        claim_templates,
        ordinals_start,
    })
}

fn object_at<'a>(
    object: &'a Value,
    path: &[&str],
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, FieldError> {
    match at(object, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(FieldError::WrongType {
            field: name.into(),
            expected: "an object",
            got: type_name(other),
        }),
    }
}

fn typed<T: DeserializeOwned>(value: Option<&Value>, path: &str) -> Result<Option<T>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|problem| FieldError::Invalid {
                field: path.into(),
                problem,
            }),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// === impl Workload ===

impl Workload<'_> {
    pub fn scheduling(&self) -> Scheduling<'_> {
        let required = self
            .scheduling
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.as_slice());
        Scheduling {
            node_selector: self.scheduling.node_selector.as_ref(),
            required_terms: required,
            tolerations: &self.scheduling.tolerations,
        }
    }

    /// The raw fields eligibility depends on (the key of its memo).
    pub fn scheduling_fields(&self) -> super::memo::SchedulingFields<'_> {
        let spec = self.pod_spec;
        super::memo::SchedulingFields {
            node_selector: spec.get("nodeSelector"),
            required_node_affinity: spec
                .get("affinity")
                .and_then(|a| a.get("nodeAffinity"))
                .and_then(|n| n.get("requiredDuringSchedulingIgnoredDuringExecution")),
            tolerations: spec.get("tolerations"),
        }
    }

    /// A workload annotation's string value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }

    /// The selector injected constraints use: the controller's own selector, or for a bare
    /// Pod its labels minus controller hash labels. `None` when there is nothing usable.
    pub fn spread_selector(&self) -> Option<Value> {
        match self.kind {
            WorkloadKind::Pod => {
                let labels: Map<String, Value> = self
                    .pod_labels
                    .iter()
                    .filter(|(k, _)| !HASH_LABELS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                (!labels.is_empty()).then(|| serde_json::json!({ "matchLabels": labels }))
            }
            _ => {
                let sel = self.selector.as_ref()?;
                let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                // A selector that does not select the template's own labels would make every
                // injected constraint count none of the workload's pods (HA004).
                if empty || self.pod_labels.is_empty() || selects(sel, &self.pod_labels) != Ok(true)
                {
                    return None;
                }
                self.selector_json.cloned()
            }
        }
    }

    /// The required anti-affinity terms and the soft ones' terms, with their JSON paths.
    pub fn anti_affinity_terms(&self) -> impl Iterator<Item = AntiAffinityTerm<'_>> {
        let anti = self
            .scheduling
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref());
        let required = anti
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, term)| AntiAffinityTerm {
                term,
                required: true,
                index: i,
            });
        let preferred = anti
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, w)| AntiAffinityTerm {
                term: &w.pod_affinity_term,
                required: false,
                index: i,
            });
        required.chain(preferred)
    }
}

/// One pod anti-affinity term, hard or soft.
#[derive(Clone, Copy, Debug)]
pub struct AntiAffinityTerm<'a> {
    pub term: &'a k8s_openapi::api::core::v1::PodAffinityTerm,
    pub required: bool,
    pub index: usize,
}

impl AntiAffinityTerm<'_> {
    /// Where the term sits, for messages: `podAntiAffinity.required...[0]`.
    pub fn describe(&self) -> String {
        if self.required {
            format!(
                "podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[{}]",
                self.index
            )
        } else {
            format!(
                "podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[{}]",
                self.index
            )
        }
    }
}
