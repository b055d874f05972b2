//! Hostile requests through the router (`oneshot`, no sockets): every file under
//! `tests/fixtures/hostile/` and a few bodies too big to commit (generated here) get exactly
//! the answer the table says, each within a generous time bound, and the same router still
//! serves an ordinary review afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spreadguard::engine::policy::Policy;
use spreadguard::load::parse_nodes;
use spreadguard::server::{State, router};
use tower::ServiceExt;

const NODES: &str = include_str!("../examples/nodes-3-zones.yaml");
const ORDINARY: &str = include_str!("fixtures/admission/deployment-create.json");
/// Generous: a request normally takes well under a millisecond; this only catches hangs and
/// quadratic blow-ups, even in a debug build on a loaded machine.
const BOUND: Duration = Duration::from_secs(1);

fn state(policy_yaml: &str) -> Arc<State> {
    let state = State::new(Policy::from_yaml(policy_yaml).unwrap());
    state.publish_nodes(Arc::new(parse_nodes(NODES).unwrap()));
    Arc::new(state)
}

/// What the router must answer.
#[derive(Debug)]
enum Expect {
    /// Transport-level refusal: this status and a JSON error containing the text.
    Refused(StatusCode, &'static str),
    /// HTTP 200, allowed, no patch, no warnings, no audit annotations.
    Allowed,
    /// HTTP 200, allowed, no patch, exactly these warnings (each given by its start).
    Warned(&'static [&'static str]),
    /// HTTP 200, allowed, a patch injecting exactly this (`spreadguard.io/injected` items).
    Patched(&'static str),
    /// HTTP 200, denied with code 403 and a message containing every one of these.
    Denied(&'static [&'static str]),
}

use Expect::*;

const V: &str = "/validate";
const M: &str = "/mutate";
const INJECTED: &str = "zone-spread,node-spread,zone-anti-affinity";

/// Every committed case, on the endpoint whose answer tells the most (both where they differ).
#[rustfmt::skip]
const CASES: &[(&str, &str, Expect)] = &[
    // --- transport-level garbage: 400 with a JSON error
    ("truncated-json.json", V, Refused(StatusCode::BAD_REQUEST, "EOF while parsing")),
    ("empty-body.json", V, Refused(StatusCode::BAD_REQUEST, "EOF while parsing")),
    ("whitespace-body.json", V, Refused(StatusCode::BAD_REQUEST, "EOF while parsing")),
    ("not-json.json", V, Refused(StatusCode::BAD_REQUEST, "expected value")),
    ("json-array-body.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: sequence, expected an AdmissionReview")),
    ("json-null-body.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: null")),
    ("utf8-bom-before-review.json", V, Refused(StatusCode::BAD_REQUEST, "expected value")),
    ("trailing-garbage-after-review.json", V, Refused(StatusCode::BAD_REQUEST, "trailing characters")),
    ("two-reviews-concatenated.json", V, Refused(StatusCode::BAD_REQUEST, "trailing characters")),
    ("review-without-request.json", V, Refused(StatusCode::BAD_REQUEST, "without a request")),
    ("review-request-null.json", V, Refused(StatusCode::BAD_REQUEST, "without a request")),
    ("review-without-uid.json", V, Refused(StatusCode::BAD_REQUEST, "without a uid")),
    ("review-empty-uid.json", V, Refused(StatusCode::BAD_REQUEST, "without a uid")),
    ("review-uid-as-number.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: integer `42`")),
    ("review-unknown-apiversion.json", V, Refused(StatusCode::BAD_REQUEST, "unsupported AdmissionReview apiVersion \"admission.k8s.io/v2\"", )),
    ("review-wrong-kind.json", V, Refused(StatusCode::BAD_REQUEST, "kind is \"ConfigMap\"")),
    ("operation-as-number.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: integer `1`")),
    ("request-namespace-as-list.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: sequence")),
    ("dry-run-as-string.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: string \"true\"")),
    ("resource-as-string.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: string \"deployments\"", )),
    ("subresource-as-number.json", V, Refused(StatusCode::BAD_REQUEST, "invalid type: integer `7`")),

    ("duplicate-request-keys.json", V, Refused(StatusCode::BAD_REQUEST, "duplicate field `request`")),
    ("invalid-utf8-in-uid.json", V, Refused(StatusCode::BAD_REQUEST, "invalid unicode code point")),
    ("invalid-utf8-in-object-label.json", V, Refused(StatusCode::BAD_REQUEST, "invalid unicode code point")),
    // --- envelopes that are odd but unambiguous: answered in kind
    ("review-without-kind-and-apiversion.json", M, Patched(INJECTED)),
    ("review-v1beta1.json", M, Patched(INJECTED)),
    ("lone-surrogate-escape-in-label.json", V, Warned(&["HA000: not checked: unexpected end of hex escape"])),
    ("uid-with-control-characters.json", M, Patched(INJECTED)),
    // --- requests spreadguard does not judge: allowed untouched, the object not even read
    ("configmap-create.json", V, Allowed),
    ("daemonset-create.json", V, Allowed),
    ("cronjob-create.json", V, Allowed),
    ("deployment-apps-v1beta2-create.json", V, Allowed),
    ("custom-resource-create.json", V, Allowed),
    ("deployment-delete.json", V, Allowed),
    ("pod-connect-exec.json", V, Allowed),
    ("operation-lowercase-create.json", V, Allowed),
    ("operation-unknown.json", V, Allowed),
    // --- a scale is judged against minReplicas (issue 11): `kubectl scale --replicas=1`
    ("deployment-scale-subresource.json", V, Denied(&["HA001: scale to 1 replica, policy requires at least 2"])),
    ("deployment-status-subresource.json", V, Allowed),
    ("pod-binding-subresource.json", V, Allowed),
    ("pod-eviction-subresource.json", V, Allowed),
    ("deployment-being-deleted-finalizer-removed.json", V, Allowed),
    ("deployment-being-deleted-finalizer-removed.json", M, Allowed),
    ("deployment-create-with-deletion-timestamp.json", V, Allowed),
    ("pod-owned-by-replicaset.json", M, Allowed),
    // An empty subresource is the object itself: judged (1 replica).
    ("subresource-empty-string.json", V, Denied(&["HA001", "1 replica"])),
    // --- a field the engine reads has the wrong type: allowed, HA000 names the field
    ("wrong-type-replicas-as-string.json", V, Warned(&["HA000: not checked: spec.replicas"])),
    ("wrong-type-replicas-as-float.json", V, Warned(&["HA000: not checked: spec.replicas"])),
    ("wrong-type-replicas-negative.json", V, Warned(&["HA000: not checked: spec.replicas"])),
    ("wrong-type-replicas-above-int32.json", V, Allowed),
    ("wrong-type-metadata-as-list.json", V, Warned(&["HA000: not checked: metadata: expected an object, got a list"])),
    ("wrong-type-metadata-as-list.json", M, Allowed),
    ("wrong-type-labels-as-list.json", V, Warned(&["HA000: not checked: spec.template.metadata.labels"])),
    ("wrong-type-label-value-as-number.json", V, Warned(&["HA000: not checked: spec.template.metadata.labels"])),
    ("wrong-type-annotations-as-string.json", V, Warned(&["HA000: not checked: metadata.annotations"])),
    ("wrong-type-mode-annotation-as-number.json", V, Allowed),
    ("wrong-type-mode-annotation-as-number.json", M, Patched(INJECTED)),
    ("wrong-type-spec-as-string.json", V, Warned(&["HA000: not checked: spec"])),
    ("wrong-type-template-as-list.json", V, Warned(&["HA000: not checked: spec.template"])),
    ("wrong-type-pod-spec-as-number.json", V, Warned(&["HA000: not checked: spec.template.spec"])),
    ("wrong-type-selector-as-number.json", V, Warned(&["HA000: not checked: spec.selector"])),
    ("wrong-type-selector-match-labels-as-list.json", V, Warned(&["HA000: not checked: spec.selector"])),
    ("wrong-type-selector-match-expressions-as-object.json", V, Warned(&["HA000: not checked: spec.selector"])),
    ("wrong-type-selector-unknown-operator.json", V, Warned(&["HA011: nothing injected: spec.selector", "HA021: losing one zone may leave 0 of 3"])),
    ("wrong-type-selector-values-as-string.json", V, Warned(&["HA000: not checked: spec.selector"])),
    ("wrong-type-affinity-as-string.json", V, Warned(&["HA000: not checked: spec.template.spec.affinity"])),
    ("wrong-type-pod-anti-affinity-as-list.json", V, Warned(&["HA000: not checked: spec.template.spec.affinity"])),
    ("wrong-type-anti-affinity-required-as-object.json", V, Warned(&["HA000: not checked: spec.template.spec.affinity"])),
    ("wrong-type-anti-affinity-topology-key-as-number.json", V, Warned(&["HA000: not checked: spec.template.spec.affinity"])),
    ("wrong-type-node-affinity-terms-as-string.json", V, Warned(&["HA000: not checked: spec.template.spec.affinity"])),
    ("wrong-type-tolerations-as-object.json", V, Warned(&["HA000: not checked: spec.template.spec.tolerations"])),
    ("wrong-type-toleration-as-string.json", V, Warned(&["HA000: not checked: spec.template.spec.tolerations"])),
    ("wrong-type-spread-constraints-as-object.json", V, Warned(&["HA000: not checked: spec.template.spec.topologySpreadConstraints"])),
    ("wrong-type-spread-max-skew-as-string.json", V, Warned(&["HA000: not checked: spec.template.spec.topologySpreadConstraints"])),
    ("wrong-type-node-selector-as-list.json", V, Warned(&["HA000: not checked: spec.template.spec.nodeSelector"])),
    ("wrong-type-node-selector-value-as-number.json", V, Warned(&["HA000: not checked: spec.template.spec.nodeSelector"])),
    ("wrong-type-owner-references-as-object.json", V, Allowed),
    ("wrong-type-owner-references-as-object.json", M, Patched(INJECTED)),
    ("wrong-type-replicas-as-string.json", M, Allowed),
    ("wrong-type-affinity-as-string.json", M, Allowed),
    ("object-as-string.json", V, Allowed),
    ("object-as-number.json", V, Allowed),
    ("object-as-list.json", V, Allowed),
    ("object-null-on-create.json", V, Warned(&["HA000: not checked: the request carries no object"])),
    ("object-missing-on-create.json", V, Warned(&["HA000: not checked: the request carries no object"])),
    ("replicas-number-out-of-range.json", V, Warned(&["HA000: not checked: number out of range"])),
    ("update-old-object-as-string.json", M, Patched(INJECTED)),
    // The API server never sends duplicate keys; the last one wins, as in Go.
    ("duplicate-replicas-keys.json", V, Denied(&["HA001", "1 replica"])),
    ("duplicate-uid-keys.json", V, Allowed),
    // --- a tenant trying to escape enforcement
    ("tenant-mode-annotation-off-not-allowed.json", V, Denied(&["HA001", "1 replica"])),
    ("object-claims-exempt-namespace.json", V, Denied(&["HA001", "1 replica"])),
];

/// One answer, measured.
struct Answer {
    status: StatusCode,
    body: Value,
    took: Duration,
}

async fn send(app: &Router, path: &str, body: Vec<u8>) -> Answer {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let started = Instant::now();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let took = started.elapsed();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer { status, body, took }
}

fn read(file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/hostile/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Checks one answer against its expectation; `uid`/`api_version` are what must be echoed.
fn check(what: &str, answer: &Answer, expect: &Expect, sent: &Sent) {
    let (uid, api_version) = (sent.uid.as_deref(), sent.api_version.as_str());
    assert!(answer.took < BOUND, "{what}: took {:?}", answer.took);
    let body = &answer.body;
    if let Refused(status, text) = expect {
        assert_eq!(answer.status, *status, "{what}: {body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {body}"));
        assert!(error.contains(text), "{what}: {error:?} lacks {text:?}");
        assert_eq!(body["code"], status.as_u16(), "{what}");
        return;
    }
    assert_eq!(answer.status, StatusCode::OK, "{what}: {body}");
    assert_eq!(body["kind"], "AdmissionReview", "{what}");
    assert_eq!(body["apiVersion"], api_version, "{what}");
    let response = &body["response"];
    assert_eq!(response["uid"].as_str(), uid, "{what}: the uid is echoed");
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default();
    let patch = response.get("patch").map(|p| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p.as_str().expect("the patch is a base64 string"))
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    });
    match expect {
        Refused(..) => unreachable!(),
        Allowed => {
            assert_eq!(response["allowed"], true, "{what}: {body}");
            assert_eq!(patch, None, "{what}");
            assert!(warnings.is_empty(), "{what}: {warnings:?}");
            assert!(response.get("auditAnnotations").is_none(), "{what}: {body}");
        }
        Warned(starts) => {
            assert_eq!(response["allowed"], true, "{what}: {body}");
            assert_eq!(patch, None, "{what}");
            assert_eq!(warnings.len(), starts.len(), "{what}: {warnings:?}");
            for (w, start) in warnings.iter().zip(*starts) {
                assert!(
                    w.starts_with(start),
                    "{what}: {w:?} does not start with {start:?}"
                );
                assert!(w.chars().count() <= 120, "{what}: {w:?}");
            }
        }
        Patched(items) => {
            assert_eq!(response["allowed"], true, "{what}: {body}");
            assert!(warnings.is_empty(), "{what}: {warnings:?}");
            let patch = patch.unwrap_or_else(|| panic!("{what}: no patch: {body}"));
            assert!(!patch.as_array().unwrap().is_empty(), "{what}");
            assert_eq!(response["auditAnnotations"]["injected"], *items, "{what}");
            if let Some(object) = &sent.object {
                let ops: json_patch::Patch = serde_json::from_value(patch).unwrap();
                let mut patched = object.clone();
                json_patch::patch(&mut patched, &ops)
                    .unwrap_or_else(|e| panic!("{what}: the patch does not apply: {e}"));
            }
        }
        Denied(parts) => {
            assert_eq!(response["allowed"], false, "{what}: {body}");
            assert_eq!(response["status"]["code"], 403, "{what}: {body}");
            let message = response["status"]["message"].as_str().unwrap();
            for part in *parts {
                assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
            }
        }
    }
}

/// What a request body asks to be echoed (uid, apiVersion) and the object it carries.
struct Sent {
    uid: Option<String>,
    api_version: String,
    object: Option<Value>,
}

fn sent(body: &[u8]) -> Sent {
    let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // Bodies serde_json refuses as a whole may still have a readable envelope (the server
    // reads the object lazily): take the uid from the text then.
    let uid = review["request"]["uid"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            let text = String::from_utf8_lossy(body);
            let (_, rest) = text.split_once(r#""uid": ""#)?;
            Some(rest.split('"').next()?.to_owned())
        });
    let api_version = review["apiVersion"]
        .as_str()
        .unwrap_or("admission.k8s.io/v1")
        .to_owned();
    let object = review["request"].get("object").cloned();
    Sent {
        uid,
        api_version,
        object,
    }
}

/// The router still answers an ordinary review with its usual patch.
async fn still_serves(app: &Router) {
    let answer = send(app, M, ORDINARY.as_bytes().to_vec()).await;
    let uid = "3d1c0f4e-8a2b-4c5d-9e6f-7a8b9c0d1e2f";
    check(
        "ordinary review afterwards",
        &answer,
        &Patched(INJECTED),
        &sent(ORDINARY.as_bytes()),
    );
    assert_eq!(answer.body["response"]["uid"], uid);
}

#[tokio::test]
async fn every_hostile_file_gets_exactly_its_answer() {
    let app = router(state(""));
    let mut covered = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for (file, path, expect) in CASES {
        let body = read(file);
        let sent = sent(&body);
        let answer = send(&app, path, body).await;
        // Every mismatch is reported, not only the first.
        let checked =
            std::panic::catch_unwind(|| check(&format!("{file} {path}"), &answer, expect, &sent));
        if checked.is_err() {
            wrong.push(format!("{file} {path}: {} {}", answer.status, answer.body));
        }
        covered.insert(*file);
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Every file in the directory has a row (a new file without an expectation fails).
    let dir = format!("{}/tests/fixtures/hostile", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(
                covered.contains(name.as_str()),
                "{name} has no expected outcome"
            );
        }
    }
    still_serves(&app).await;
}

/// `depth` levels of `[` ... `]` around `inner`.
fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + inner.len());
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(inner);
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

fn review_with(resource: Value, operation: &str, object: &str) -> Vec<u8> {
    format!(
        r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"deep-1","resource":{resource},"namespace":"shop","operation":"{operation}","object":{object}}}}}"#
    )
    .into_bytes()
}

const DEPTH: usize = 100_000;

#[tokio::test]
async fn json_nested_100000_levels_deep_is_answered_without_overflowing_the_stack() {
    let app = router(state(""));
    let deployments = json!({"group": "apps", "version": "v1", "resource": "deployments"});
    let configmaps = json!({"group": "", "version": "v1", "resource": "configmaps"});
    let deep_array = nested(DEPTH, "[", "]", "");
    let deep_object = nested(DEPTH, r#"{"a":"#, "}", "1");
    let deep_in_labels = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web","labels":{}}},"spec":{{"replicas":3}}}}"#,
        deep_object
    );
    let deep_in_containers = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web"}},"spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"web"}}}},"template":{{"metadata":{{"labels":{{"app":"web"}}}},"spec":{{"containers":[{}]}}}}}}}}"#,
        deep_object
    );
    let ha000 = Warned(&["HA000: not checked: recursion limit exceeded"]);
    let cases: Vec<(&str, &str, Vec<u8>, Expect)> = vec![
        (
            "the body itself",
            V,
            deep_array.clone().into_bytes(),
            // A review is a struct, which serde also reads from a sequence: its first
            // element is not the string apiVersion, so the depth is never reached.
            Refused(
                StatusCode::BAD_REQUEST,
                "invalid type: sequence, expected an AdmissionReview",
            ),
        ),
        (
            "the body's request",
            V,
            format!(r#"{{"request":{deep_object}}}"#).into_bytes(),
            // Unknown fields are skipped without recursion.
            Refused(StatusCode::BAD_REQUEST, "without a uid"),
        ),
        (
            "an unknown request field",
            M,
            format!(r#"{{"request":{{"uid":"deep-1","userInfo":{deep_array}}}}}"#).into_bytes(),
            Allowed,
        ),
        (
            "the object of a Deployment CREATE",
            V,
            review_with(deployments.clone(), "CREATE", &deep_array),
            ha000,
        ),
        (
            "the object of a Deployment UPDATE",
            V,
            review_with(deployments.clone(), "UPDATE", &deep_object),
            Warned(&["HA000: not checked: recursion limit exceeded"]),
        ),
        (
            "the labels of a Deployment",
            M,
            review_with(deployments.clone(), "CREATE", &deep_in_labels),
            Warned(&["HA000: not checked: recursion limit exceeded"]),
        ),
        // Containers are never read on CREATE (the API server has validated them anyway).
        (
            "the containers of a Deployment",
            V,
            review_with(deployments, "CREATE", &deep_in_containers),
            Denied(&["HA001", "1 replica"]),
        ),
        (
            "the object of a ConfigMap",
            V,
            review_with(configmaps, "CREATE", &deep_object),
            Allowed,
        ),
    ];
    for (what, path, body, expect) in &cases {
        let mut sent = sent(body);
        if !matches!(expect, Refused(..)) {
            sent.uid = Some("deep-1".to_owned());
        }
        let answer = send(&app, path, body.clone()).await;
        check(&format!("{DEPTH} levels in {what}"), &answer, expect, &sent);
    }
    still_serves(&app).await;
}

#[tokio::test]
async fn huge_label_maps_and_selectors_are_answered_promptly() {
    let app = router(state(""));
    // 8,000 labels (about 300 KB each) on the workload and its pods, and a selector with
    // 1,000: within the 20,000 values decisions judge.
    let labels: serde_json::Map<String, Value> = (0..8_000)
        .map(|i| {
            (
                format!("example.com/label-{i:05}"),
                json!(format!("value-{i}")),
            )
        })
        .collect();
    let selector: serde_json::Map<String, Value> = labels
        .iter()
        .take(1_000)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let object = |labels: &serde_json::Map<String, Value>| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": labels},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
            }
        })
    };
    let review = |object: Value| {
        json!({
            "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
            "request": {"uid": "huge-1", "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                        "namespace": "shop", "operation": "CREATE", "object": object}
        })
    };
    let body = serde_json::to_vec(&review(object(&labels))).unwrap();
    assert!(
        body.len() > 500_000 && body.len() < 3 * 1024 * 1024,
        "{} bytes",
        body.len()
    );
    check(
        "huge labels, validate",
        &send(&app, V, body.clone()).await,
        &Allowed,
        &sent(&body),
    );
    check(
        "huge labels, mutate",
        &send(&app, M, body.clone()).await,
        &Patched(INJECTED),
        &sent(&body),
    );

    // 30,000 labels (about 1 MB each): more than decisions judge, refused by HA028 after
    // counting (nothing past the limit is built).
    let many: serde_json::Map<String, Value> = (0..30_000)
        .map(|i| {
            (
                format!("example.com/label-{i:05}"),
                json!(format!("value-{i}")),
            )
        })
        .collect();
    let body = serde_json::to_vec(&review(object(&many))).unwrap();
    check(
        "too many labels, validate",
        &send(&app, V, body.clone()).await,
        &Denied(&["HA028", "more than 20000 values"]),
        &sent(&body),
    );
    check(
        "too many labels, mutate (denials are /validate's)",
        &send(&app, M, body.clone()).await,
        &Allowed,
        &sent(&body),
    );

    // Over the body limit: refused before it is read.
    let mut big = review(object(&labels));
    big["request"]["object"]["metadata"]["annotations"] = json!({"blob": "x".repeat(
        spreadguard::server::args::DEFAULT_MAX_BODY_BYTES
    )});
    let answer = send(&app, V, serde_json::to_vec(&big).unwrap()).await;
    check(
        "over the body limit",
        &answer,
        &Refused(StatusCode::PAYLOAD_TOO_LARGE, "larger than"),
        &sent(b""),
    );
    still_serves(&app).await;
}

#[tokio::test]
async fn transport_garbage_gets_4xx() {
    let app = router(state(""));
    let review = ORDINARY.as_bytes().to_vec();
    let cases: Vec<(Request<Body>, StatusCode)> = vec![
        (
            Request::get(V).body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Request::put(M)
                .header("content-type", "application/json")
                .body(Body::from(review.clone()))
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Request::post("/")
                .header("content-type", "application/json")
                .body(Body::from(review.clone()))
                .unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::post("/validate/../mutate")
                .header("content-type", "application/json")
                .body(Body::from(review.clone()))
                .unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::post(V).body(Body::from(review.clone())).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Request::post(V)
                .header("content-type", "text/plain")
                .body(Body::from(review.clone()))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Request::post(V)
                .header("content-type", "application/json")
                .header("content-length", "99999999999")
                .body(Body::from(review.clone()))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, status) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let started = Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{what}");
        assert!(started.elapsed() < BOUND, "{what}");
    }
    still_serves(&app).await;
}
