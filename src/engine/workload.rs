//! A read-only view of a workload's raw JSON: where its pod template is and what in it
//! matters for spreading. Nothing here is ever written back; patches address the raw JSON.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::kinds::{CustomKind, Tokens};
use super::labels::selects;
use super::policy::Policy;
use super::topology::Scheduling;
use super::well_known::HASH_LABELS;

/// The kinds spreadguard judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    ReplicaSet,
    Pod,
    /// Argo Rollouts' `argoproj.io/v1alpha1` Rollout.
    Rollout,
    /// OpenKruise's `apps.kruise.io/v1alpha1` CloneSet.
    CloneSet,
    /// OpenKruise's Advanced StatefulSet, `apps.kruise.io/v1beta1` (or `v1alpha1`) StatefulSet.
    KruiseStatefulSet,
    /// A kind the policy declares (`workloadKinds[i]`).
    Custom(u8),
}

/// Built-in kinds: (group, versions, kind, resource).
const BUILT_IN: &[(WorkloadKind, &str, &[&str], &str, &str)] = &[
    (
        WorkloadKind::Deployment,
        "apps",
        &["v1"],
        "Deployment",
        "deployments",
    ),
    (
        WorkloadKind::StatefulSet,
        "apps",
        &["v1"],
        "StatefulSet",
        "statefulsets",
    ),
    (
        WorkloadKind::ReplicaSet,
        "apps",
        &["v1"],
        "ReplicaSet",
        "replicasets",
    ),
    (WorkloadKind::Pod, "", &["v1"], "Pod", "pods"),
    (
        WorkloadKind::Rollout,
        "argoproj.io",
        &["v1alpha1"],
        "Rollout",
        "rollouts",
    ),
    (
        WorkloadKind::CloneSet,
        "apps.kruise.io",
        &["v1alpha1"],
        "CloneSet",
        "clonesets",
    ),
    (
        WorkloadKind::KruiseStatefulSet,
        "apps.kruise.io",
        &["v1beta1", "v1alpha1"],
        "StatefulSet",
        "statefulsets",
    ),
];

impl WorkloadKind {
    /// A closed set of names, for metrics labels and logs (every declared kind is `Custom`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Rollout => "Rollout",
            WorkloadKind::CloneSet => "CloneSet",
            WorkloadKind::KruiseStatefulSet => "KruiseStatefulSet",
            WorkloadKind::Custom(_) => "Custom",
        }
    }

    /// The kind for an `apiVersion`/`kind` pair, if spreadguard handles it (built in, or
    /// declared in the policy's `workloadKinds`).
    pub fn from_type(api_version: &str, kind: &str, policy: &Policy) -> Option<WorkloadKind> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        BUILT_IN
            .iter()
            .find(|(_, g, vs, k, _)| *g == group && vs.contains(&version) && *k == kind)
            .map(|b| b.0)
            .or_else(|| {
                policy
                    .workload_kinds
                    .iter()
                    .position(|c| c.group == group && c.version == version && c.kind == kind)
                    .and_then(|i| u8::try_from(i).ok())
                    .map(WorkloadKind::Custom)
            })
    }

    /// The kind behind an API resource (`apps`, `v1`, `deployments`).
    pub fn from_resource(
        group: &str,
        version: &str,
        resource: &str,
        policy: &Policy,
    ) -> Option<WorkloadKind> {
        BUILT_IN
            .iter()
            .find(|(_, g, vs, _, r)| *g == group && vs.contains(&version) && *r == resource)
            .map(|b| b.0)
            .or_else(|| {
                policy
                    .workload_kinds
                    .iter()
                    .position(|c| {
                        c.group == group && c.version == version && c.resource == resource
                    })
                    .and_then(|i| u8::try_from(i).ok())
                    .map(WorkloadKind::Custom)
            })
    }

    /// The API group and kind name, as a `scaleTargetRef` names them.
    pub fn group_and_kind(self, policy: &Policy) -> Option<(&str, &str)> {
        match self {
            WorkloadKind::Custom(_) => self
                .custom(policy)
                .map(|c| (c.group.as_str(), c.kind.as_str())),
            _ => BUILT_IN
                .iter()
                .find(|b| b.0 == self)
                .map(|(_, g, _, k, _)| (*g, *k)),
        }
    }

    /// The declared kind, for `Custom`.
    pub fn custom(self, policy: &Policy) -> Option<&CustomKind> {
        match self {
            WorkloadKind::Custom(i) => policy.workload_kinds.get(usize::from(i)),
            _ => None,
        }
    }

    /// Tokens from the object's root to its pod spec.
    pub fn pod_spec_path(self, policy: &Policy) -> Tokens<'_> {
        match self {
            WorkloadKind::Pod => Tokens::Static(&["spec"]),
            WorkloadKind::Custom(_) => self
                .custom(policy)
                .map_or(Tokens::Static(&["spec", "template", "spec"]), |c| {
                    Tokens::Owned(&c.pod_spec)
                }),
            _ => Tokens::Static(&["spec", "template", "spec"]),
        }
    }

    /// Tokens to the pod template (`None` for a Pod, which is its own).
    pub fn template_path(self, policy: &Policy) -> Option<Tokens<'_>> {
        match self {
            WorkloadKind::Pod => None,
            WorkloadKind::Custom(_) => self.custom(policy).map(|c| Tokens::Owned(&c.template.0)),
            _ => Some(Tokens::Static(&["spec", "template"])),
        }
    }

    /// Tokens to the replica count (`None` for a Pod).
    pub fn replicas_path(self, policy: &Policy) -> Option<Tokens<'_>> {
        match self {
            WorkloadKind::Pod => None,
            WorkloadKind::Custom(_) => self.custom(policy).map(|c| Tokens::Owned(&c.replicas.0)),
            _ => Some(Tokens::Static(&["spec", "replicas"])),
        }
    }

    /// Tokens to the controller's label selector (`None` for a Pod, or a declared kind
    /// without one).
    pub fn selector_path(self, policy: &Policy) -> Option<Tokens<'_>> {
        match self {
            WorkloadKind::Pod => None,
            WorkloadKind::Custom(_) => self
                .custom(policy)
                .and_then(|c| c.selector.as_ref())
                .map(|p| Tokens::Owned(&p.0)),
            _ => Some(Tokens::Static(&["spec", "selector"])),
        }
    }

    /// The label that tells one revision's pods from another's, for injected spreads'
    /// `matchLabelKeys`: Deployments' `pod-template-hash`, Rollouts'
    /// `rollouts-pod-template-hash`, or what a declared kind names.
    pub fn revision_label(self, policy: &Policy) -> Option<&str> {
        match self {
            WorkloadKind::Deployment => Some("pod-template-hash"),
            WorkloadKind::Rollout => Some("rollouts-pod-template-hash"),
            WorkloadKind::Custom(_) => self.custom(policy)?.revision_label.as_deref(),
            _ => None,
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
    /// A Rollout whose pod template is in the Deployment it references (`workloadRef`),
    /// which is judged instead.
    Referenced,
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
    /// Tokens from the object's root to the pod spec (patches address it).
    pub pod_spec_path: Tokens<'a>,
    /// Tokens to the pod template (`None` for a Pod).
    pub template_path: Option<Tokens<'a>>,
    /// Whether the kind has a controller selector (a Pod, or a declared kind without a
    /// `selector` path, has not: injected constraints select its pod labels).
    pub has_selector: bool,
    /// The whole object, for the fields only one rule reads (a Deployment's strategy).
    pub object: &'a Value,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    /// `spec.replicas`, 1 when omitted; always 1 for a Pod.
    pub replicas: i64,
    /// Whether the replica count is written (not omitted or null).
    pub replicas_explicit: bool,
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
pub fn classify<'a>(object: &'a Value, policy: &'a Policy) -> Classified<'a> {
    let str_at = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    let Some(kind) = WorkloadKind::from_type(str_at("apiVersion"), str_at("kind"), policy) else {
        return Classified::Skip(Skip::NotAWorkload);
    };
    if at(object, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return Classified::Skip(Skip::Deleting);
    }
    if controlled_by_judged_kind(kind, object, policy) {
        return Classified::Skip(Skip::Controlled);
    }
    // A Rollout may take its pod template from a Deployment (`spec.workloadRef`), which is
    // judged itself.
    if kind == WorkloadKind::Rollout
        && at(object, &["spec", "workloadRef"]).is_some_and(|v| !v.is_null())
        && at(object, &["spec", "template"]).is_none_or(Value::is_null)
    {
        return Classified::Skip(Skip::Referenced);
    }
    match read(kind, object, policy) {
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

/// Whether [`classify`] skips the object as [`Skip::Controlled`] (unless it is being
/// deleted): its controller is judged instead, so nothing but its identity and owner is
/// ever read.
pub fn controlled(object: &Value, policy: &Policy) -> bool {
    let str_at = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    WorkloadKind::from_type(str_at("apiVersion"), str_at("kind"), policy)
        .is_some_and(|kind| controlled_by_judged_kind(kind, object, policy))
}

/// Controllers whose children are judged through them: a ReplicaSet of a Deployment, a Pod
/// of a ReplicaSet, StatefulSet, Job or DaemonSet (`apiVersion` group, kind). Any other
/// controller (a tenant's ConfigMap, say) leaves its child to be judged on its own.
pub const JUDGED_CONTROLLERS: &[(WorkloadKind, &str, &str)] = &[
    (WorkloadKind::ReplicaSet, "apps", "Deployment"),
    (WorkloadKind::ReplicaSet, "argoproj.io", "Rollout"),
    (WorkloadKind::Pod, "apps.kruise.io", "CloneSet"),
    (WorkloadKind::Pod, "apps.kruise.io", "StatefulSet"),
    (WorkloadKind::Pod, "apps", "ReplicaSet"),
    (WorkloadKind::Pod, "apps", "StatefulSet"),
    (WorkloadKind::Pod, "apps", "DaemonSet"),
    (WorkloadKind::Pod, "batch", "Job"),
];

/// Whether the object's controller owner is one that is judged instead of it: a built-in
/// pair above, or a kind the policy declares owning a ReplicaSet or Pod.
fn controlled_by_judged_kind(kind: WorkloadKind, object: &Value, policy: &Policy) -> bool {
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
        || (matches!(kind, WorkloadKind::Pod | WorkloadKind::ReplicaSet)
            && policy
                .workload_kinds
                .iter()
                .any(|c| c.group == group && c.kind == owner_kind))
}

fn read<'a>(
    kind: WorkloadKind,
    object: &'a Value,
    policy: &'a Policy,
) -> Result<Workload<'a>, FieldError> {
    let (namespace, name) = object_name(object);
    // The patch records what it injected in `metadata.annotations`: without a `metadata` map
    // it could not apply.
    if object_at(object, &["metadata"], "metadata")?.is_none() {
        return Err(FieldError::Missing {
            field: "metadata".into(),
        });
    }
    let annotations = object_at(object, &["metadata", "annotations"], "metadata.annotations")?;
    let at_tokens = |t: Tokens<'_>| t.at(object);
    let replicas_explicit = kind
        .replicas_path(policy)
        .and_then(at_tokens)
        .is_some_and(|v| !v.is_null());
    let replicas = match kind.replicas_path(policy) {
        None => 1,
        Some(path) => match at_tokens(path) {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| FieldError::WrongType {
                    field: path.dotted(),
                    expected: "a non-negative integer",
                    got: type_name(v),
                })?,
        },
    };
    let selector_json = kind
        .selector_path(policy)
        .and_then(at_tokens)
        .filter(|v| !v.is_null());
    let (template_meta, template_name) = match kind.template_path(policy) {
        None => (object.get("metadata"), String::new()),
        Some(t) => (
            at_tokens(t).and_then(|t| t.get("metadata")),
            format!("{}.", t.dotted()),
        ),
    };
    let spec_path = kind.pod_spec_path(policy);
    let spec_name = spec_path.dotted();
    let pod_spec = match at_tokens(spec_path) {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => {
            return Err(FieldError::Missing { field: spec_name });
        }
        Some(other) => {
            return Err(FieldError::WrongType {
                field: spec_name,
                expected: "an object",
                got: type_name(other),
            });
        }
    };
    let labels_path = format!("{template_name}metadata.labels");
    let pod_labels =
        typed(template_meta.and_then(|m| m.get("labels")), &labels_path)?.unwrap_or_default();
    let selector_name = kind
        .selector_path(policy)
        .map_or_else(|| "spec.selector".to_owned(), Tokens::dotted);
    let selector = typed(selector_json, &selector_name)?;
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
        object,
        pod_spec_path: spec_path,
        has_selector: kind.selector_path(policy).is_some(),
        template_path: kind.template_path(policy),
        namespace,
        name,
        replicas,
        replicas_explicit,
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
            _ if !self.has_selector => {
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

impl Workload<'_> {
    /// The required pod affinity terms, with their positions.
    pub fn required_affinity_terms(
        &self,
    ) -> impl Iterator<Item = (usize, &k8s_openapi::api::core::v1::PodAffinityTerm)> {
        self.scheduling
            .affinity
            .as_ref()
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default()
            .iter()
            .enumerate()
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
