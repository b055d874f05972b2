//! Whether a workload's `spec.replicas` was written by someone or defaulted by the API
//! server, which turns an omitted `replicas` into 1 before any webhook sees the object.
//!
//! Measured on kube-apiserver 1.37 (tests/e2e_replicas.rs), for a Deployment created
//! without `replicas` and one created with `replicas: 1`:
//!
//! | how it arrives | what the stored object (and the webhook) shows |
//! |---|---|
//! | server-side apply (`kubectl apply --server-side`, Flux, Helm 4, Argo CD with `ServerSideApply=true`) | the `Apply` entry of `managedFields` owns `f:spec.f:replicas` only when it was sent |
//! | client-side apply (`kubectl apply`, Argo CD's default) | `kubectl.kubernetes.io/last-applied-configuration` has `spec.replicas` only when it was sent; the `Update` entry owns it either way |
//! | a plain create or update (`kubectl create`, Helm 3) | the `Update` entry owns `f:spec.f:replicas` either way: defaulted fields are attributed to the creator |
//!
//! So the evidence, strongest first: the field is absent (a manifest file); an `Apply`
//! entry or a `scale` subresource entry owns it (written); `Apply` entries and no owner at
//! all (defaulted); the last-applied configuration (written or defaulted as it says); and
//! otherwise nothing tells, so it counts as written.

use serde_json::Value;

use super::workload::at;

/// The annotation `kubectl apply` (client-side) and Argo CD record what they applied in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What is known of where `spec.replicas` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicasOrigin {
    /// `spec.replicas` is absent (a manifest); Kubernetes will default it to 1.
    Omitted,
    /// Server-side apply: `managedFields` has `Apply` entries and nobody owns the field.
    NotApplied,
    /// Client-side apply: the last-applied configuration has no `spec.replicas`.
    NotInLastApplied,
    /// An `Apply` entry or a scaler (`scale` subresource) owns it, or the last-applied
    /// configuration has it.
    Written,
    /// Nothing tells (a plain create or update): it counts as written.
    Unknown,
}

impl ReplicasOrigin {
    /// Whether the replica count is the API server's default rather than anybody's choice.
    pub fn defaulted(self) -> bool {
        matches!(
            self,
            ReplicasOrigin::Omitted | ReplicasOrigin::NotApplied | ReplicasOrigin::NotInLastApplied
        )
    }

    /// How it is known, for messages.
    pub fn evidence(self) -> &'static str {
        match self {
            ReplicasOrigin::Omitted => "the manifest has no replicas",
            ReplicasOrigin::NotApplied => "no server-side apply manager owns spec.replicas",
            ReplicasOrigin::NotInLastApplied => {
                "the last-applied configuration (kubectl apply) has no replicas"
            }
            ReplicasOrigin::Written | ReplicasOrigin::Unknown => "",
        }
    }
}

/// Where the workload's `spec.replicas` came from.
pub fn replicas_origin(object: &Value) -> ReplicasOrigin {
    if at(object, &["spec", "replicas"]).is_none_or(Value::is_null) {
        return ReplicasOrigin::Omitted;
    }
    let entries = at(object, &["metadata", "managedFields"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut applied = false;
    let mut owned = false;
    for e in entries {
        let operation = e.get("operation").and_then(Value::as_str);
        let subresource = e.get("subresource").and_then(Value::as_str);
        let owns = at(e, &["fieldsV1", "f:spec", "f:replicas"]).is_some();
        if operation == Some("Apply") {
            applied = true;
        }
        if owns {
            if operation == Some("Apply") || subresource == Some("scale") {
                return ReplicasOrigin::Written;
            }
            owned = true;
        }
    }
    if applied && !owned {
        return ReplicasOrigin::NotApplied;
    }
    let last_applied = at(
        object,
        &["metadata", "annotations", LAST_APPLIED_ANNOTATION],
    )
    .and_then(Value::as_str)
    .and_then(|text| serde_json::from_str::<Value>(text).ok());
    if let Some(spec) = last_applied.as_ref().and_then(|v| v.get("spec")) {
        return if spec.get("replicas").is_some_and(|r| !r.is_null()) {
            ReplicasOrigin::Written
        } else {
            ReplicasOrigin::NotInLastApplied
        };
    }
    ReplicasOrigin::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: Option<i64>, meta: Value) -> Value {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                           "spec": {"selector": {"matchLabels": {"app": "w"}}}});
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        d
    }

    fn entry(manager: &str, operation: &str, subresource: Option<&str>, replicas: bool) -> Value {
        let mut spec = json!({"f:selector": {}, "f:template": {}});
        if replicas {
            spec["f:replicas"] = json!({});
        }
        let mut e = json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": spec}});
        if let Some(s) = subresource {
            e["subresource"] = json!(s);
        }
        e
    }

    /// The shapes the API server was measured to produce (see the module docs).
    #[test]
    fn each_way_of_arriving_is_told_apart_as_measured() {
        use ReplicasOrigin::*;
        let last_applied = |with: bool| {
            let spec = if with {
                json!({"replicas": 1})
            } else {
                json!({})
            };
            json!({LAST_APPLIED_ANNOTATION: json!({"spec": spec}).to_string()})
        };
        let cases = [
            (
                "manifest without replicas",
                deployment(None, json!({})),
                Omitted,
            ),
            (
                "server-side apply without replicas",
                deployment(
                    Some(1),
                    json!({"managedFields": [entry("kubectl", "Apply", None, false)]}),
                ),
                NotApplied,
            ),
            (
                "server-side apply with replicas",
                deployment(
                    Some(1),
                    json!({"managedFields": [entry("kubectl", "Apply", None, true)]}),
                ),
                Written,
            ),
            (
                "client-side apply without replicas",
                deployment(
                    Some(1),
                    json!({"annotations": last_applied(false),
                    "managedFields": [entry("kubectl-client-side-apply", "Update", None, true)]}),
                ),
                NotInLastApplied,
            ),
            (
                "client-side apply with replicas",
                deployment(
                    Some(1),
                    json!({"annotations": last_applied(true),
                    "managedFields": [entry("kubectl-client-side-apply", "Update", None, true)]}),
                ),
                Written,
            ),
            (
                "kubectl create, either way",
                deployment(
                    Some(1),
                    json!({"managedFields": [entry("kubectl-create", "Update", None, true)]}),
                ),
                Unknown,
            ),
            (
                "created, then server-side applied without replicas",
                deployment(
                    Some(1),
                    json!({"managedFields": [
                    entry("kubectl-create", "Update", None, true),
                    entry("kubectl", "Apply", None, false)]}),
                ),
                Unknown,
            ),
            (
                "applied without replicas, then scaled",
                deployment(
                    Some(1),
                    json!({"managedFields": [
                    entry("kubectl", "Apply", None, false),
                    entry("kubectl", "Update", Some("scale"), true)]}),
                ),
                Written,
            ),
            (
                "no managed fields at all",
                deployment(Some(1), json!({})),
                Unknown,
            ),
            (
                "a broken annotation tells nothing",
                deployment(
                    Some(1),
                    json!({"annotations": {LAST_APPLIED_ANNOTATION: "{"}}),
                ),
                Unknown,
            ),
        ];
        for (what, object, want) in cases {
            assert_eq!(replicas_origin(&object), want, "{what}");
        }
        assert!(NotApplied.defaulted() && !Unknown.defaulted() && !Written.defaulted());
    }
}
