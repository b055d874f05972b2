//! Talking to the real API server the way a user's tool does: raw creates and updates that
//! keep the HTTP status, the `Warning` headers and the API server's own error message, plus
//! namespaces, reads and counts.

use std::collections::BTreeMap;

use axum::http::{Method, Request};
use http_body_util::BodyExt;
use kube::Client;
use serde_json::{Value, json};

use super::bed::random_hex;

/// The API server's answer to one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// `Warning` headers, unquoted (what kubectl prints after `Warning: `).
    pub warnings: Vec<String>,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The Status message of a refusal.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// Panics unless the request succeeded.
    pub fn expect_ok(self, what: &str) -> Answer {
        assert!(
            self.ok(),
            "{what}: HTTP {}: {}",
            self.status,
            self.message()
        );
        self
    }
}

/// The REST collection path of a namespaced object.
pub fn collection(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let ns = object["metadata"]["namespace"]
        .as_str()
        .expect("metadata.namespace");
    let plural = match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "ReplicaSet" => "replicasets",
        "Pod" => "pods",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "PodDisruptionBudget" => "poddisruptionbudgets",
        other => panic!("no path for kind {other}"),
    };
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    format!("{prefix}/namespaces/{ns}/{plural}")
}

/// Sends one request with a JSON body.
pub async fn send(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Answer {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(kube::client::Body::from(bytes))
        .unwrap();
    let response = client
        .send(request)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| unquote_warning(&String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        warnings,
        body,
    }
}

/// `299 - "text"` → `text`.
fn unquote_warning(header: &str) -> String {
    let text = header
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or(header)
        .trim()
        .trim_start_matches('"')
        .trim_end_matches('"');
    text.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// POST the object to its collection (with `dryRun=All` when asked).
pub async fn create(client: &Client, object: &Value, dry_run: bool) -> Answer {
    let mut path = collection(object);
    if dry_run {
        path.push_str("?dryRun=All");
    }
    send(
        client,
        Method::POST,
        &path,
        "application/json",
        Some(object),
    )
    .await
}

/// PUT the object (a full replacement, as `kubectl replace` does).
pub async fn replace(client: &Client, object: &Value) -> Answer {
    let name = object["metadata"]["name"].as_str().expect("name");
    let path = format!("{}/{name}", collection(object));
    send(client, Method::PUT, &path, "application/json", Some(object)).await
}

/// A JSON merge patch on the object or one of its subresources ("" for the object).
pub async fn merge_patch(
    client: &Client,
    object: &Value,
    subresource: &str,
    patch: &Value,
) -> Answer {
    let name = object["metadata"]["name"].as_str().expect("name");
    let mut path = format!("{}/{name}", collection(object));
    if !subresource.is_empty() {
        path = format!("{path}/{subresource}");
    }
    send(
        client,
        Method::PATCH,
        &path,
        "application/merge-patch+json",
        Some(patch),
    )
    .await
}

/// GET the stored object (`None` when it does not exist).
pub async fn get(client: &Client, object: &Value) -> Option<Value> {
    let name = object["metadata"]["name"].as_str().expect("name");
    let path = format!("{}/{name}", collection(object));
    let answer = send(client, Method::GET, &path, "application/json", None).await;
    match answer.status {
        200 => Some(answer.body),
        404 => None,
        other => panic!("GET {path}: HTTP {other}: {}", answer.message()),
    }
}

/// GET any path, expecting success.
pub async fn get_path(client: &Client, path: &str) -> Value {
    send(client, Method::GET, path, "application/json", None)
        .await
        .expect_ok(path)
        .body
}

/// Pods of a namespace.
pub async fn pods(client: &Client, ns: &str) -> Vec<Value> {
    let list = get_path(client, &format!("/api/v1/namespaces/{ns}/pods")).await;
    list["items"].as_array().cloned().unwrap_or_default()
}

/// ReplicaSets of a namespace.
pub async fn replicasets(client: &Client, ns: &str) -> Vec<Value> {
    let list = get_path(
        client,
        &format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
    )
    .await;
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Node name → zone.
pub async fn node_zones(client: &Client) -> BTreeMap<String, String> {
    let list = get_path(client, "/api/v1/nodes").await;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                n["metadata"]["labels"][super::bed::ZONE_KEY]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// A fresh namespace `PREFIX-xxxxxx` with the given labels.
pub async fn namespace(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> String {
    let name = format!("{prefix}-{}", random_hex(3));
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    send(
        client,
        Method::POST,
        "/api/v1/namespaces",
        "application/json",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": name, "labels": labels}})),
    )
    .await
    .expect_ok("create namespace");
    name
}

/// Labels of a namespace opted in with a mode (`enforce`, `warn`, `audit`, `off`).
pub fn opted_in(mode: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("spreadguard.io/enabled", "true"),
        ("spreadguard.io/mode", mode),
    ]
}

/// Server-side apply of any object (idempotent create-or-update), as field manager `e2e`.
pub async fn apply(client: &Client, object: &Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let name = object["metadata"]["name"].as_str().expect("name");
    let (group_path, plural, namespaced) = match kind {
        "Namespace" => ("/api/v1".to_owned(), "namespaces", false),
        "ServiceAccount" => ("/api/v1".to_owned(), "serviceaccounts", true),
        "ConfigMap" => ("/api/v1".to_owned(), "configmaps", true),
        "Secret" => ("/api/v1".to_owned(), "secrets", true),
        "Service" => ("/api/v1".to_owned(), "services", true),
        "ClusterRole" => (format!("/apis/{api_version}"), "clusterroles", false),
        "ClusterRoleBinding" => (format!("/apis/{api_version}"), "clusterrolebindings", false),
        "RoleBinding" => (format!("/apis/{api_version}"), "rolebindings", true),
        "ValidatingAdmissionPolicy" => (
            format!("/apis/{api_version}"),
            "validatingadmissionpolicies",
            false,
        ),
        "ValidatingAdmissionPolicyBinding" => (
            format!("/apis/{api_version}"),
            "validatingadmissionpolicybindings",
            false,
        ),
        "MutatingWebhookConfiguration" => (
            format!("/apis/{api_version}"),
            "mutatingwebhookconfigurations",
            false,
        ),
        "ValidatingWebhookConfiguration" => (
            format!("/apis/{api_version}"),
            "validatingwebhookconfigurations",
            false,
        ),
        other => panic!("apply: no path for kind {other}"),
    };
    let path = if namespaced {
        let ns = object["metadata"]["namespace"].as_str().expect("namespace");
        format!("{group_path}/namespaces/{ns}/{plural}/{name}")
    } else {
        format!("{group_path}/{plural}/{name}")
    };
    send(
        client,
        Method::PATCH,
        &format!("{path}?fieldManager=e2e&force=true"),
        "application/apply-patch+yaml",
        Some(object),
    )
    .await
    .expect_ok(&format!("apply {kind} {name}"));
}

/// Deletes a cluster-scoped object by path, ignoring "not found".
pub async fn delete_path(client: &Client, path: &str) {
    let answer = send(client, Method::DELETE, path, "application/json", None).await;
    assert!(
        answer.ok() || answer.status == 404,
        "DELETE {path}: HTTP {}: {}",
        answer.status,
        answer.message()
    );
}
