//! The answer on the wire: an `admission.k8s.io/v1` AdmissionReview with its response.
//!
//! A small type of our own rather than kube's `AdmissionResponse`, which encodes `patch` as a
//! list of numbers; the API server (a Go `[]byte`) expects a base64 string.

use base64::Engine as _;
use json_patch::PatchOperation;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::engine::outcome::{AuditKey, Outcome};

/// Why a request was refused, as the response's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A policy denial: 403 Forbidden.
    Policy,
    /// The engine failed and `failOpen` is false: 500.
    Internal,
}

/// One response, ready to encode.
pub struct Response<'a> {
    pub api_version: &'a str,
    pub uid: &'a str,
    pub outcome: &'a Outcome<'a>,
    /// How a denial is reported.
    pub refusal: Refusal,
}

#[derive(Serialize)]
struct ReviewOut<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    status: StatusOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(
        skip_serializing_if = "<[_]>::is_empty",
        serialize_with = "annotations"
    )]
    audit_annotations: &'a [(AuditKey, String)],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    warnings: &'a [String],
}

/// A `metav1.Status`: empty when allowed.
#[derive(Default, Serialize)]
struct StatusOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

fn annotations<S: Serializer>(items: &&[(AuditKey, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(items.len()))?;
    for (k, v) in items.iter() {
        map.serialize_entry(k.as_str(), v)?;
    }
    map.end()
}

fn base64_patch(ops: &[PatchOperation]) -> Option<String> {
    match serde_json::to_vec(ops) {
        Ok(bytes) => Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Err(e) => {
            // Typed operations over JSON values always serialise; should that ever change,
            // the object is better admitted unpatched than refused.
            tracing::error!(error = %e, "could not encode a patch; answering without it");
            None
        }
    }
}

impl Response<'_> {
    /// The serialised review.
    pub fn encode(&self) -> Vec<u8> {
        let o = self.outcome;
        let status = if o.allowed {
            StatusOut::default()
        } else {
            let (reason, code) = match self.refusal {
                Refusal::Policy => ("Forbidden", 403),
                Refusal::Internal => ("InternalError", 500),
            };
            StatusOut {
                status: Some("Failure"),
                message: &o.message,
                reason,
                code: Some(code),
            }
        };
        let patch = o.patch.filter(|p| !p.is_empty()).and_then(base64_patch);
        let review = ReviewOut {
            api_version: self.api_version,
            kind: "AdmissionReview",
            response: ResponseOut {
                uid: self.uid,
                allowed: o.allowed,
                status,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                audit_annotations: &o.audit,
                warnings: &o.warnings,
            },
        };
        let mut out = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::new(&mut out);
        // Strings, bools and numbers only: serialising into a Vec cannot fail.
        if review.serialize(&mut ser).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use json_patch::AddOperation;
    use serde_json::{Value, json};

    fn encode(outcome: &Outcome<'_>, refusal: Refusal) -> Value {
        let bytes = Response {
            api_version: "admission.k8s.io/v1",
            uid: "u-1",
            outcome,
            refusal,
        }
        .encode();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn an_allow_has_an_empty_status() {
        let v = encode(&Outcome::allow(), Refusal::Policy);
        assert_eq!(
            v,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true, "status": {}}})
        );
    }

    #[test]
    fn a_denial_carries_code_reason_and_message() {
        let v = encode(
            &Outcome::deny("spreadguard: HA001: 1 replica"),
            Refusal::Policy,
        );
        assert_eq!(
            v["response"]["status"],
            json!({"status": "Failure", "message": "spreadguard: HA001: 1 replica", "reason": "Forbidden", "code": 403})
        );
        let v = encode(&Outcome::deny("internal"), Refusal::Internal);
        assert_eq!(v["response"]["status"]["code"], 500);
        assert_eq!(v["response"]["status"]["reason"], "InternalError");
    }

    #[test]
    fn the_patch_is_a_base64_string() {
        let ops = vec![PatchOperation::Add(AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["metadata", "labels"]),
            value: json!({"a": "b"}),
        })];
        let mut o = Outcome::allow();
        o.patch = Some(&ops);
        o.warnings.push("w".into());
        o.audit.push((AuditKey::Injected, "zone-spread".into()));
        let v = encode(&o, Refusal::Policy);
        let r = &v["response"];
        assert_eq!(r["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
        );
        assert_eq!(r["warnings"], json!(["w"]));
        assert_eq!(r["auditAnnotations"], json!({"injected": "zone-spread"}));
    }
}
