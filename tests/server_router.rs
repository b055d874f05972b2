//! The admission router without sockets: review bodies from `tests/fixtures/admission/`
//! driven through `oneshot`, one scenario per test or table row.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{Decision, Input, Topology};
use spreadguard::load::parse_nodes;
use spreadguard::server::{State, router};
use tower::ServiceExt;

const NODES: &str = include_str!("../examples/nodes-3-zones.yaml");

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn state(policy_yaml: &str) -> State {
    let state = State::new(Policy::from_yaml(policy_yaml).unwrap());
    state.publish_nodes(Arc::new(parse_nodes(NODES).unwrap()));
    state
}

/// One request's answer.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn response(&self) -> &Value {
        &self.body["response"]
    }
    fn allowed(&self) -> bool {
        self.response()["allowed"]
            .as_bool()
            .expect("allowed is a bool")
    }
    fn warnings(&self) -> Vec<String> {
        self.response()["warnings"]
            .as_array()
            .map(|w| w.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }
    fn audit(&self, key: &str) -> Option<&str> {
        self.response()["auditAnnotations"][key].as_str()
    }
    /// The decoded JSON patch, if any (it must be a base64 string on the wire).
    fn patch(&self) -> Option<Value> {
        let patch = self.response().get("patch")?;
        let b64 = patch
            .as_str()
            .expect("patch is a base64 string on the wire");
        assert_eq!(self.response()["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        Some(serde_json::from_slice(&bytes).unwrap())
    }
}

async fn send_raw(
    state: State,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::post(path);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = router(Arc::new(state))
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer { status, body }
}

async fn send(state: State, path: &str, review: &Value) -> Answer {
    let answer = send_raw(
        state,
        path,
        Some("application/json"),
        serde_json::to_vec(review).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer.body["kind"], "AdmissionReview");
    assert_eq!(
        answer.response()["uid"],
        review["request"]["uid"],
        "the uid is echoed"
    );
    answer
}

/// Applies `patch` to `object` and checks that only what it adds changed: undoing every add
/// gives back the original, field for field.
fn apply_and_check(object: &Value, patch: &Value) -> Value {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &ops).expect("the patch applies");
    let mut undone = patched.clone();
    for op in patch.as_array().unwrap().iter().rev() {
        assert_eq!(op["op"], "add", "spreadguard only adds by default: {op}");
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        match undone.pointer_mut(parent).unwrap() {
            Value::Object(map) => {
                assert!(
                    object.pointer(path).is_none(),
                    "{path} existed and would be overwritten"
                );
                map.shift_remove(&last).unwrap();
            }
            Value::Array(items) if last == "-" => {
                items.pop().unwrap();
            }
            Value::Array(items) => {
                items.remove(last.parse::<usize>().unwrap());
            }
            other => panic!("{path}: parent is {other}"),
        }
    }
    assert_eq!(
        &undone, object,
        "something besides the added fields changed"
    );
    patched
}

fn with(mut review: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut review);
    review
}

// === create, update, delete, subresources ===

#[tokio::test]
async fn create_is_patched_by_mutate_and_allowed_by_validate() {
    let review = fixture("deployment-create.json");
    let answer = send(state(""), "/mutate", &review).await;
    assert!(answer.allowed());
    let patch = answer.patch().expect("a patch");
    let patched = apply_and_check(&review["request"]["object"], &patch);
    let spread = &patched["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert!(
        spread
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["topologyKey"] == "topology.kubernetes.io/zone"),
        "{spread}"
    );
    assert_eq!(
        answer.audit("injected"),
        Some("zone-spread,node-spread,zone-anti-affinity")
    );

    // The mutated object is what /validate sees; a second /mutate has nothing to add.
    let mutated = with(review.clone(), |r| r["request"]["object"] = patched);
    let again = send(state(""), "/mutate", &mutated).await;
    assert!(again.allowed());
    assert_eq!(again.patch(), None, "mutation is idempotent");
    let validated = send(state(""), "/validate", &mutated).await;
    assert!(validated.allowed());
    assert!(
        validated.warnings().is_empty(),
        "{:?}",
        validated.warnings()
    );
}

#[tokio::test]
async fn single_replica_is_denied_with_rule_id_and_numbers() {
    let review = fixture("deployment-create-1-replica.json");
    let answer = send(state(""), "/validate", &review).await;
    assert!(!answer.allowed());
    let status = &answer.response()["status"];
    assert_eq!(status["code"], 403);
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("HA001"), "{message}");
    assert!(message.contains('1') && message.contains('2'), "{message}");
    let violations: Vec<String> =
        serde_json::from_str(answer.audit("violations").unwrap()).unwrap();
    assert!(violations.iter().any(|v| v.starts_with("HA001 deny")));

    // /mutate never denies.
    let mutated = send(state(""), "/mutate", &review).await;
    assert!(mutated.allowed());
}

/// Objects as kube-apiserver 1.37 stores them after each way of creating a Deployment
/// without `replicas` (and one with `replicas: 1`): the webhook reads the managed fields and
/// the last-applied annotation through its pruned decoding (tests/fixtures/admission/README.md).
#[tokio::test]
async fn a_defaulted_replica_count_warns_and_a_written_one_denies() {
    for (file, allowed, warned) in [
        (
            "deployment-create-server-side-apply-without-replicas.json",
            true,
            true,
        ),
        (
            "deployment-create-client-side-apply-without-replicas.json",
            true,
            true,
        ),
        (
            "deployment-create-server-side-apply-replicas-1.json",
            false,
            false,
        ),
        // A plain create owns the defaulted field like a written one: counts as written.
        (
            "deployment-create-kubectl-create-without-replicas.json",
            false,
            false,
        ),
    ] {
        let review = fixture(file);
        assert_eq!(review["request"]["object"]["spec"]["replicas"], 1, "{file}");
        let answer = send(state(""), "/validate", &review).await;
        assert_eq!(answer.allowed(), allowed, "{file}: {}", answer.body);
        let warning = "HA001: replicas not set: defaulted to 1; set replicas ≥ 2 or add an HPA with minReplicas ≥ 2";
        assert_eq!(
            answer.warnings().iter().any(|w| w == warning),
            warned,
            "{file}: {:?}",
            answer.warnings()
        );
        if !allowed {
            let message = answer.response()["status"]["message"].as_str().unwrap();
            assert!(
                message.contains("HA001: 1 replica, policy requires at least 2"),
                "{message}"
            );
        }
    }
    // defaultedReplicas: deny makes the defaulted count a denial again.
    let review = fixture("deployment-create-server-side-apply-without-replicas.json");
    let answer = send(state("defaultedReplicas: deny\n"), "/validate", &review).await;
    assert!(!answer.allowed());
}

#[tokio::test]
async fn autoscalers_and_budgets_are_judged_on_their_own_numbers() {
    let hpa = fixture("hpa-create-min-replicas-1.json");
    let answer = send(state(""), "/validate", &hpa).await;
    assert!(!answer.allowed(), "{}", answer.body);
    let message = answer.response()["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("HA012: minReplicas 1 for Deployment web, policy requires at least 2"),
        "{message}"
    );
    let pdb = fixture("pdb-create-max-unavailable-0.json");
    let answer = send(state(""), "/validate", &pdb).await;
    assert!(!answer.allowed());
    let message = answer.response()["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("HA013: maxUnavailable 0 allows no voluntary eviction"),
        "{message}"
    );
    // Never patched; warn mode warns.
    for review in [&hpa, &pdb] {
        let mutated = send(state(""), "/mutate", review).await;
        assert!(mutated.allowed() && mutated.patch().is_none());
        let warned = send(state("mode: warn\n"), "/validate", review).await;
        assert!(warned.allowed() && !warned.warnings().is_empty());
    }
    // Once fixed (minReplicas 3, maxUnavailable 1), both pass.
    let fixed = with(hpa, |r| {
        r["request"]["object"]["spec"]["minReplicas"] = json!(3)
    });
    assert!(send(state(""), "/validate", &fixed).await.allowed());
    let fixed = with(pdb, |r| {
        r["request"]["object"]["spec"]["maxUnavailable"] = json!(1)
    });
    assert!(send(state(""), "/validate", &fixed).await.allowed());
}

#[tokio::test]
async fn update_with_unchanged_template_is_not_patched_and_ratchets() {
    let review = fixture("deployment-update-template-unchanged.json");
    assert_eq!(
        review["request"]["object"]["spec"]["template"],
        review["request"]["oldObject"]["spec"]["template"]
    );
    let mutated = send(state(""), "/mutate", &review).await;
    assert!(mutated.allowed());
    assert_eq!(mutated.patch(), None, "no rollout from a label edit");

    // The stored object already had 1 replica: the denial becomes a warning.
    let validated = send(state(""), "/validate", &review).await;
    assert!(validated.allowed(), "{}", validated.body);
    let warnings = validated.warnings();
    assert!(
        warnings.iter().any(|w| w.starts_with("HA001")),
        "{warnings:?}"
    );

    // A new violation on UPDATE still blocks: the old object had 3 replicas.
    let worse = with(review, |r| {
        r["request"]["oldObject"]["spec"]["replicas"] = json!(3)
    });
    let validated = send(state(""), "/validate", &worse).await;
    assert!(!validated.allowed());
}

#[tokio::test]
async fn update_that_changes_the_template_is_patched() {
    let review = with(fixture("deployment-update-template-unchanged.json"), |r| {
        r["request"]["object"]["spec"]["replicas"] = json!(3);
        r["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("registry.example.com/shop/checkout:2.15.0");
    });
    let answer = send(state(""), "/mutate", &review).await;
    let patch = answer.patch().expect("a template change is mutated");
    apply_and_check(&review["request"]["object"], &patch);
}

/// HA028: an object holding more values than decisions judge is refused by its size alone
/// (nothing is injected), and an UPDATE of one that was too large already only warns.
#[tokio::test]
async fn objects_too_large_to_judge_are_refused_by_their_size_and_ratchet() {
    use spreadguard::engine::read_fields::MAX_READ_VALUES;
    let inflate = |r: &mut Value, which: &str| {
        let many: serde_json::Map<String, Value> = (0..MAX_READ_VALUES)
            .map(|i| (format!("example.com/a{i}"), json!("v")))
            .collect();
        r["request"][which]["metadata"]["annotations"] = Value::Object(many);
    };
    let create = with(fixture("deployment-create.json"), |r| inflate(r, "object"));
    let validated = send(state(""), "/validate", &create).await;
    assert!(!validated.allowed());
    assert!(
        validated.body.to_string().contains("HA028"),
        "{}",
        validated.body
    );
    let mutated = send(state(""), "/mutate", &create).await;
    assert_eq!(
        mutated.patch(),
        None,
        "nothing is injected into what is not judged"
    );

    let grown = with(fixture("deployment-update-template-unchanged.json"), |r| {
        inflate(r, "object")
    });
    assert!(!send(state(""), "/validate", &grown).await.allowed());

    let both = with(fixture("deployment-update-template-unchanged.json"), |r| {
        inflate(r, "object");
        inflate(r, "oldObject");
    });
    let validated = send(state(""), "/validate", &both).await;
    assert!(validated.allowed(), "{}", validated.body);
    let warnings = validated.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("HA028") && w.contains("already present")),
        "{warnings:?}"
    );
}

/// `kubectl scale` and autoscalers change replicas through the `scale` subresource: the
/// validating webhook judges the Scale against minReplicas; the mutating one has nothing to
/// inject into a Scale.
#[tokio::test]
async fn a_scale_below_min_replicas_is_denied_and_an_unchanged_one_only_warned() {
    let review = fixture("deployment-scale-subresource.json");
    let validated = send(state(""), "/validate", &review).await;
    assert!(!validated.allowed(), "{}", validated.body);
    assert!(
        validated
            .body
            .to_string()
            .contains("HA001: scale to 1 replica, policy requires at least 2"),
        "{}",
        validated.body
    );
    let mutated = send(state(""), "/mutate", &review).await;
    assert!(mutated.allowed());
    assert_eq!(mutated.patch(), None);

    let to_three = with(review.clone(), |r| {
        r["request"]["object"]["spec"]["replicas"] = json!(3)
    });
    let answer = send(state(""), "/validate", &to_three).await;
    assert!(
        answer.allowed() && answer.warnings().is_empty(),
        "{}",
        answer.body
    );

    // Already at 1 before this update: not blocking, said first.
    let unchanged = with(review.clone(), |r| {
        r["request"]["oldObject"]["spec"]["replicas"] = json!(1)
    });
    let answer = send(state(""), "/validate", &unchanged).await;
    assert!(answer.allowed(), "{}", answer.body);
    assert!(
        answer.warnings()[0].starts_with("HA001: not blocking"),
        "{:?}",
        answer.warnings()
    );

    // In warn mode the denial is a warning.
    let answer = send(state("mode: warn\n"), "/validate", &review).await;
    assert!(answer.allowed());
    assert!(answer.warnings()[0].starts_with("HA001: scale to 1 replica"));

    // The status subresource is still not judged.
    let status = with(review, |r| r["request"]["subResource"] = json!("status"));
    let answer = send(state(""), "/validate", &status).await;
    assert!(answer.allowed() && answer.warnings().is_empty());
}

#[tokio::test]
async fn requests_spreadguard_does_not_handle_are_allowed_untouched() {
    let cases = [
        ("deployment-delete.json", "DELETE"),
        ("configmap-create.json", "not a workload"),
    ];
    for (file, why) in cases {
        for path in ["/mutate", "/validate"] {
            let answer = send(state(""), path, &fixture(file)).await;
            assert!(answer.allowed(), "{why}");
            assert_eq!(answer.patch(), None, "{why}");
            assert!(answer.warnings().is_empty(), "{why}");
            assert!(answer.response().get("auditAnnotations").is_none(), "{why}");
        }
    }
    // Unhandled requests are not even decoded: an object that is not JSON-shaped as a
    // workload (here a number) does not matter.
    let odd = with(fixture("deployment-scale-subresource.json"), |r| {
        r["request"]["object"] = json!(42)
    });
    assert!(send(state(""), "/validate", &odd).await.allowed());
    let connect = with(fixture("pod-create.json"), |r| {
        r["request"]["operation"] = json!("CONNECT");
        r["request"]["subResource"] = json!("exec");
    });
    assert!(send(state(""), "/validate", &connect).await.allowed());
}

#[tokio::test]
async fn dry_run_gets_the_same_decision_and_is_labelled() {
    let review = with(fixture("deployment-create.json"), |r| {
        r["request"]["dryRun"] = json!(true)
    });
    let s = Arc::new(state(""));
    let response = router(s.clone())
        .oneshot(
            Request::post("/mutate")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&review).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let dry: Value = serde_json::from_slice(&bytes).unwrap();
    let wet = send(state(""), "/mutate", &fixture("deployment-create.json")).await;
    assert_eq!(dry["response"]["patch"], wet.response()["patch"]);
    let metrics = s.metrics().encode();
    assert!(
        metrics.contains(r#"decision="patched",mode="enforce",dry_run="true"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("spreadguard_injections_total{"),
        "a dry run injects nothing: {metrics}"
    );
}

// === modes ===

#[tokio::test]
async fn warn_mode_patches_and_turns_denials_into_warnings() {
    let answer = send(
        state("mode: warn\n"),
        "/validate",
        &fixture("deployment-create-1-replica.json"),
    )
    .await;
    assert!(answer.allowed());
    let warnings = answer.warnings();
    assert!(
        warnings.iter().any(|w| w.starts_with("HA001: ")),
        "{warnings:?}"
    );
    let mutated = send(
        state("mode: warn\n"),
        "/mutate",
        &fixture("deployment-create.json"),
    )
    .await;
    assert!(mutated.patch().is_some());
}

#[tokio::test]
async fn audit_mode_changes_nothing_and_reports_everything() {
    let s = || state("mode: audit\n");
    let mutated = send(s(), "/mutate", &fixture("deployment-create.json")).await;
    assert!(mutated.allowed());
    assert_eq!(mutated.patch(), None);
    let warnings = mutated.warnings();
    assert!(
        warnings.contains(&"audit mode: would inject zone-spread".to_owned()),
        "{warnings:?}"
    );
    let would: Value = serde_json::from_str(mutated.audit("would-patch").unwrap()).unwrap();
    apply_and_check(
        &fixture("deployment-create.json")["request"]["object"],
        &would,
    );

    let validated = send(
        s(),
        "/validate",
        &fixture("deployment-create-1-replica.json"),
    )
    .await;
    assert!(validated.allowed());
    let warnings = validated.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("would deny: HA001: ")),
        "{warnings:?}"
    );
    assert!(validated.audit("violations").unwrap().contains("HA001"));
}

#[tokio::test]
async fn off_mode_and_exempt_namespaces_are_untouched() {
    let in_kube_system = with(fixture("deployment-create-1-replica.json"), |r| {
        r["request"]["namespace"] = json!("kube-system");
        r["request"]["object"]["metadata"]["namespace"] = json!("kube-system");
    });
    let cases = [
        (
            state("mode: off\n"),
            fixture("deployment-create-1-replica.json"),
        ),
        (state(""), in_kube_system),
    ];
    for (s, review) in cases {
        let s = Arc::new(s);
        for path in ["/mutate", "/validate"] {
            let response = router(s.clone())
                .oneshot(
                    Request::post(path)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&review).unwrap()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                body["response"],
                json!({"uid": review["request"]["uid"], "allowed": true, "status": {}})
            );
        }
        assert!(s.metrics().encode().contains(r#"mode="off""#));
    }
}

#[tokio::test]
async fn workload_annotation_overrides_the_mode_only_when_allowed() {
    let review = with(fixture("deployment-create-1-replica.json"), |r| {
        r["request"]["object"]["metadata"]["annotations"]["spreadguard.io/mode"] = json!("audit")
    });
    let denied = send(state(""), "/validate", &review).await;
    assert!(
        !denied.allowed(),
        "tenants cannot escape enforce by default"
    );
    let overridden = send(state("allowWorkloadOverride: true\n"), "/validate", &review).await;
    assert!(overridden.allowed());
    assert!(
        overridden
            .warnings()
            .iter()
            .any(|w| w.starts_with("would deny: HA001"))
    );
}

#[tokio::test]
async fn namespace_labels_come_from_the_namespace_lookup() {
    let lookup = |ns: &str| -> Option<Arc<BTreeMap<String, String>>> {
        (ns == "shop").then(|| {
            Arc::new(BTreeMap::from([(
                "spreadguard.io/mode".to_owned(),
                "warn".to_owned(),
            )]))
        })
    };
    let s = state("").with_namespaces(Arc::new(lookup));
    let answer = send(s, "/validate", &fixture("deployment-create-1-replica.json")).await;
    assert!(answer.allowed(), "the namespace says warn");
    assert!(answer.warnings().iter().any(|w| w.starts_with("HA001")));

    let opt_in = state("scope: optIn\n").with_namespaces(Arc::new(lookup));
    let answer = send(
        opt_in,
        "/validate",
        &fixture("deployment-create-1-replica.json"),
    )
    .await;
    assert!(answer.allowed(), "not opted in");
    assert!(answer.warnings().is_empty());
}

// === odd objects, engine failures ===

#[tokio::test]
async fn uninterpretable_objects_are_allowed_with_a_warning() {
    let review = with(fixture("deployment-create.json"), |r| {
        r["request"]["object"]["spec"]["replicas"] = json!("three")
    });
    for path in ["/mutate", "/validate"] {
        let answer = send(state(""), path, &review).await;
        assert!(answer.allowed());
        assert_eq!(answer.patch(), None);
    }
    let answer = send(state(""), "/validate", &review).await;
    let warnings = answer.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("HA000: "), "{warnings:?}");
    assert!(warnings[0].chars().count() <= 120);
}

fn panicking(_: Input<'_>, _: &Topology, _: &Policy) -> Decision {
    panic!("engine bug")
}

#[tokio::test]
async fn engine_panics_are_answered_per_fail_open_and_counted() {
    let review = fixture("deployment-create.json");
    let open = Arc::new(state("").with_decider(panicking));
    let closed = state("failOpen: false\n").with_decider(panicking);

    let response = router(open.clone())
        .oneshot(
            Request::post("/validate")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&review).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert!(
        body["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("failOpen")
    );
    assert!(
        open.metrics()
            .encode()
            .contains("spreadguard_engine_panics_total 1")
    );

    let answer = send(closed, "/validate", &review).await;
    assert!(!answer.allowed());
    assert_eq!(answer.response()["status"]["code"], 500);
}

// === transport-level errors ===

#[tokio::test]
async fn bodies_that_are_not_reviews_get_400_with_a_json_error() {
    let cases: &[(&str, &[u8])] = &[
        ("truncated", br#"{"kind":"AdmissionReview","request":{"uid":"#),
        ("empty", b""),
        ("not an object", b"[1,2,3]"),
        ("no request", br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#),
        (
            "no uid",
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"operation":"CREATE"}}"#,
        ),
        (
            "other kind",
            br#"{"kind":"ConfigMap","apiVersion":"v1","request":{"uid":"x"}}"#,
        ),
        (
            "unknown version",
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v2","request":{"uid":"x"}}"#,
        ),
        ("wrong type", br#"{"kind":"AdmissionReview","request":{"uid":7}}"#),
        ("invalid utf-8", b"{\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\xff\"}}"),
    ];
    for (why, body) in cases {
        let answer = send_raw(
            state(""),
            "/validate",
            Some("application/json"),
            body.to_vec(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}");
        assert!(answer.body["error"].is_string(), "{why}: {}", answer.body);
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let big = with(fixture("deployment-create.json"), |r| {
        r["request"]["object"]["metadata"]["annotations"]["filler"] = json!("x".repeat(4096))
    });
    let s = state("").with_max_body_bytes(4096);
    let answer = send_raw(
        s,
        "/mutate",
        Some("application/json"),
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.body["error"].as_str().unwrap().contains("4096"));

    // Without a Content-Length (a streamed body) the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 3000]), Ok(vec![b' '; 3000])];
    let stream = Body::from_stream(futures::stream::iter(chunks));
    let answer = send_raw(
        state("").with_max_body_bytes(4096),
        "/mutate",
        Some("application/json"),
        stream,
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // The default limit: room for the largest legal UPDATE (tests/body_limits.rs), no more.
    let answer = send_raw(
        state(""),
        "/mutate",
        Some("application/json"),
        vec![b' '; spreadguard::server::args::DEFAULT_MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn non_json_content_types_get_415() {
    let body = serde_json::to_vec(&fixture("deployment-create.json")).unwrap();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let answer = send_raw(state(""), "/mutate", ct, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    let answer = send_raw(
        state(""),
        "/mutate",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn v1beta1_reviews_are_answered_in_kind() {
    let review = with(fixture("deployment-create.json"), |r| {
        r["apiVersion"] = json!("admission.k8s.io/v1beta1")
    });
    let answer = send_raw(
        state(""),
        "/mutate",
        Some("application/json"),
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["apiVersion"], "admission.k8s.io/v1beta1");
}

// === the shared Kubernetes fixtures ===

/// Every fixture from kubernetes/api, wrapped in a review: answered, and any patch applies
/// without touching a field it does not add. The fixtures carry a `deletionTimestamp` and a
/// controller reference (so the engine rightly skips them); a second pass clears those so
/// that the engine judges and mutates the fully populated object.
#[tokio::test]
async fn shared_kubernetes_fixtures_survive_the_round_trip() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/kubernetes-api/"
    );
    let resources = [
        ("apps.v1.Deployment.json", "apps", "deployments", true),
        ("apps.v1.StatefulSet.json", "apps", "statefulsets", true),
        ("apps.v1.ReplicaSet.json", "apps", "replicasets", true),
        ("core.v1.Pod.json", "", "pods", true),
        ("apps.v1.DaemonSet.json", "apps", "daemonsets", false),
        ("batch.v1.Job.json", "batch", "jobs", false),
        ("core.v1.Namespace.json", "", "namespaces", false),
        ("core.v1.Node.json", "", "nodes", false),
        (
            "autoscaling.v2.HorizontalPodAutoscaler.json",
            "autoscaling",
            "horizontalpodautoscalers",
            false,
        ),
        (
            "policy.v1.PodDisruptionBudget.json",
            "policy",
            "poddisruptionbudgets",
            false,
        ),
    ];
    let mut patched_any = 0;
    for (file, group, resource, workload) in resources {
        let text = std::fs::read_to_string(format!("{dir}{file}")).unwrap();
        let object: Value = serde_json::from_str(&text).unwrap();
        let version = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let review = |object: &Value| {
            json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": format!("uid-{file}"),
                    "kind": {"group": group, "version": version, "kind": object["kind"]},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "namespace": "shop",
                    "operation": "CREATE",
                    "object": object,
                    "oldObject": null,
                    "dryRun": false,
                }
            })
        };
        let mut created = object.clone();
        let meta = created["metadata"].as_object_mut().unwrap();
        meta.shift_remove("deletionTimestamp");
        meta.shift_remove("ownerReferences");
        meta.insert("namespace".into(), json!("shop"));
        if let Some(spec) = created.get_mut("spec").and_then(Value::as_object_mut)
            && spec.contains_key("replicas")
        {
            spec.insert("replicas".into(), json!(3));
        }
        for (variant, object) in [("as captured", &object), ("as created", &created)] {
            let review = review(object);
            let mutated = send(state(""), "/mutate", &review).await;
            assert!(mutated.allowed(), "{file} {variant}");
            if let Some(patch) = mutated.patch() {
                assert!(workload, "{file}: only workloads are patched");
                apply_and_check(object, &patch);
                patched_any += 1;
            }
            let validated = send(state(""), "/validate", &review).await;
            // HPAs and PDBs are judged on their own numbers: the fuzzed PDB sets both
            // fields with placeholder values, which is reported (HA000), never a denial.
            let judged_alone = matches!(
                resource,
                "horizontalpodautoscalers" | "poddisruptionbudgets"
            );
            if judged_alone && variant == "as created" {
                assert!(validated.allowed(), "{file} {variant}: {}", validated.body);
                assert!(
                    validated.warnings().iter().all(|w| w.starts_with("HA000")),
                    "{file}: {:?}",
                    validated.warnings()
                );
            } else if !workload || variant == "as captured" {
                assert!(validated.allowed(), "{file} {variant}: {}", validated.body);
                assert!(validated.warnings().is_empty(), "{file} {variant}");
            }
            for w in validated.warnings() {
                assert!(w.chars().count() <= 120, "{w}");
            }
        }
    }
    assert!(
        patched_any >= 1,
        "at least one populated workload was mutated"
    );

    // The captured AdmissionReview itself: an unknown resource, answered with its uid.
    let text =
        std::fs::read_to_string(format!("{dir}admission.k8s.io.v1.AdmissionReview.json")).unwrap();
    let review: Value = serde_json::from_str(&text).unwrap();
    let answer = send(state(""), "/validate", &review).await;
    assert!(answer.allowed());
}

/// The router reads workloads without containers, volumes, managed fields and status; the
/// engine must decide exactly as on the full object.
#[test]
fn pruned_objects_decide_like_full_ones() {
    use spreadguard::admission::prune;
    use spreadguard::engine::{WorkloadKind, decide};
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/kubernetes-api/"
    );
    let mut objects = Vec::new();
    for (file, kind) in [
        ("apps.v1.Deployment.json", WorkloadKind::Deployment),
        ("apps.v1.StatefulSet.json", WorkloadKind::StatefulSet),
        ("apps.v1.ReplicaSet.json", WorkloadKind::ReplicaSet),
        ("core.v1.Pod.json", WorkloadKind::Pod),
    ] {
        let mut object: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}{file}")).unwrap())
                .unwrap();
        objects.push((object.clone(), kind));
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.shift_remove("deletionTimestamp");
        meta.shift_remove("ownerReferences");
        objects.push((object, kind));
    }
    for file in [
        "deployment-create.json",
        "deployment-create-1-replica.json",
        "pod-create.json",
        "deployment-create-server-side-apply-without-replicas.json",
        "deployment-create-server-side-apply-replicas-1.json",
        "deployment-create-client-side-apply-without-replicas.json",
        "deployment-create-kubectl-create-without-replicas.json",
    ] {
        let object = fixture(file)["request"]["object"].clone();
        let kind = if object["kind"] == "Pod" {
            WorkloadKind::Pod
        } else {
            WorkloadKind::Deployment
        };
        objects.push((object, kind));
    }
    // Claims the pods mount by name are kept (HA020 reads them), nothing else of the volumes.
    let mut shares_a_claim = fixture("deployment-create.json")["request"]["object"].clone();
    shares_a_claim["spec"]["template"]["spec"]["volumes"] = json!([
        {"name": "config", "configMap": {"name": "web"}},
        {"name": "content", "persistentVolumeClaim": {"claimName": "web-content"}},
        {"name": "scratch", "emptyDir": {}},
    ]);
    let text = serde_json::to_string(&shares_a_claim).unwrap();
    let pruned = prune::parse_value(&text, Some(WorkloadKind::Deployment)).unwrap();
    assert_eq!(
        pruned["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "content", "persistentVolumeClaim": {"claimName": "web-content"}}])
    );
    objects.push((shares_a_claim, WorkloadKind::Deployment));
    let mut volumes = spreadguard::engine::storage::VolumeSet::default();
    volumes
        .add_json(&json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "web-content", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"]},
        }))
        .unwrap();
    let volumes: &dyn spreadguard::engine::storage::Volumes = &volumes;

    let s = state("");
    let (topology, policy) = (s.topology(), s.policy());
    let mut ha020 = 0;
    for (object, kind) in objects {
        let text = serde_json::to_string(&object).unwrap();
        let decoded = prune::parse(&text, Some(kind)).unwrap();
        assert!(!decoded.too_large, "{kind:?}");
        let pruned = decoded.value;
        assert!(pruned.pointer("/status").is_none());
        let full = decide(
            Input::new(&object).with_volumes(Some(volumes)),
            &topology,
            &policy,
        );
        let lean = decide(
            Input::new(&pruned).with_volumes(Some(volumes)),
            &topology,
            &policy,
        );
        ha020 += lean
            .findings
            .iter()
            .filter(|f| f.rule == spreadguard::engine::RuleId::HA020)
            .count();
        assert_eq!(full.findings, lean.findings, "{kind:?}");
        assert_eq!(full.patch, lean.patch, "{kind:?}");
        assert_eq!(full.subject, lean.subject, "{kind:?}");
    }
    assert_eq!(ha020, 1, "the claim mounted by name survives pruning");
}

/// The API server sends `resource` and `operation` before `object`, which lets the object be
/// decoded in the same pass; any other order must give the same answer.
#[tokio::test]
async fn field_order_in_the_request_does_not_matter() {
    let review = fixture("deployment-create.json");
    let request = review["request"].as_object().unwrap();
    let mut reordered = serde_json::Map::new();
    for key in ["object", "oldObject"] {
        reordered.insert(key.to_owned(), request[key].clone());
    }
    for (k, v) in request {
        reordered.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let reordered = with(review.clone(), |r| r["request"] = Value::Object(reordered));
    assert_eq!(
        reordered["request"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap(),
        "object"
    );
    for path in ["/mutate", "/validate"] {
        let a = send(state(""), path, &review).await;
        let b = send(state(""), path, &reordered).await;
        assert_eq!(a.body, b.body, "{path}");
    }
    let update = fixture("deployment-update-template-unchanged.json");
    let request = update["request"].as_object().unwrap();
    let mut reordered = serde_json::Map::new();
    for key in ["oldObject", "object"] {
        reordered.insert(key.to_owned(), request[key].clone());
    }
    for (k, v) in request {
        reordered.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let reordered = with(update.clone(), |r| r["request"] = Value::Object(reordered));
    let a = send(state(""), "/validate", &update).await;
    let b = send(state(""), "/validate", &reordered).await;
    assert_eq!(a.body, b.body);
}

#[tokio::test]
async fn an_exception_lets_exactly_its_workload_through_with_a_warning() {
    let review = fixture("deployment-create-1-replica.json");
    let object = &review["request"]["object"];
    let (ns, name) = (
        object["metadata"]["namespace"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap(),
    );
    let policy = |target: &str, expires: &str| {
        format!(
            "exceptions:\n- name: singleton\n  match: {{namespace: {ns}, kind: Deployment, name: {target}}}\n  rules: [HA001]\n  reason: leader-elected\n  expires: \"{expires}\"\n"
        )
    };
    let far = "2999-12-31";
    let answer = send(state(&policy(name, far)), "/validate", &review).await;
    assert!(answer.allowed(), "{:?}", answer.body);
    let warnings = answer.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("HA001: waived by exception singleton until 2999-12-31")),
        "{warnings:?}"
    );
    // Another name in the policy: the workload is judged as usual.
    let other = send(state(&policy("other", far)), "/validate", &review).await;
    assert!(!other.allowed());
    // Expired yesterday at the latest: judged again, and told why.
    let expired = send(state(&policy(name, "2000-01-01")), "/validate", &review).await;
    assert!(!expired.allowed());
    assert!(
        expired
            .warnings()
            .iter()
            .any(|w| w.contains("exception singleton expired after 2000-01-01")),
        "{:?}",
        expired.warnings()
    );
}

#[tokio::test]
async fn exception_states_are_metrics() {
    let policy = "exceptions:\n- {name: a, match: {namespace: x, name: y}, rules: [all], reason: r, expires: \"2000-01-01\"}\n- {name: b, match: {namespace: x, name: z}, rules: [HA001], reason: r}\n";
    let state = Arc::new(state(policy));
    let response = spreadguard::server::admin::router(state)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("spreadguard_exceptions{state=\"active\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("spreadguard_exceptions{state=\"expired\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("spreadguard_exception_expiry_timestamp_seconds{exception=\"a\"} 946771200"),
        "{text}"
    );
}

#[tokio::test]
async fn a_namespace_mode_label_that_is_not_a_mode_falls_back_and_says_so() {
    let lookup = |_: &str| -> Option<Arc<BTreeMap<String, String>>> {
        Some(Arc::new(BTreeMap::from([(
            "spreadguard.io/mode".to_owned(),
            "Audit".to_owned(),
        )])))
    };
    let state = Arc::new(state("").with_namespaces(Arc::new(lookup)));
    let review = fixture("deployment-create-1-replica.json");
    let request = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&review).unwrap()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let answer = &body["response"];
    // The safe fallback: the policy's mode (enforce) denies.
    assert_eq!(answer["allowed"], false);
    let warnings: Vec<&str> = answer["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings[0].contains(r#"spreadguard.io/mode="Audit""#) && warnings[0].contains("enforce"),
        "{warnings:?}"
    );
    let metrics = state.metrics().encode();
    assert!(
        metrics.contains("spreadguard_namespace_mode_label_invalid_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refused_requests_are_counted_by_code_and_reason() {
    let state = Arc::new(state("").with_max_body_bytes(64 * 1024));
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            r#"code="400",reason="bad_review""#,
        ),
        (
            Some("text/plain"),
            b"{}".to_vec(),
            r#"code="415",reason="not_json""#,
        ),
        (
            Some("application/json"),
            vec![b' '; 64 * 1024 + 1],
            r#"code="413",reason="too_large""#,
        ),
    ];
    for (ct, body, series) in cases {
        let mut request = Request::post("/validate");
        if let Some(ct) = ct {
            request = request.header("content-type", ct);
        }
        let before = state.metrics().encode();
        let line = format!("spreadguard_http_rejections_total{{{series}}} 0");
        assert!(before.contains(&line), "{series} starts at zero");
        router(state.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let after = state.metrics().encode();
        let line = format!("spreadguard_http_rejections_total{{{series}}} 1");
        assert!(after.contains(&line), "{series} counted: {after}");
    }
}

#[tokio::test]
async fn bodies_over_the_inflight_budget_get_503() {
    let review = serde_json::to_vec(&fixture("deployment-create.json")).unwrap();
    let small = state("").with_max_inflight_body_bytes(review.len() - 1);
    let answer = send_raw(small, "/mutate", Some("application/json"), review.clone()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.body["error"].as_str().unwrap().contains("in flight"));
    // Streamed without a Content-Length: reserved frame by frame, refused all the same.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        review.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let answer = send_raw(
        state("").with_max_inflight_body_bytes(review.len() - 1),
        "/mutate",
        Some("application/json"),
        Body::from_stream(futures::stream::iter(chunks)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    // Exactly enough: served, and the budget is given back.
    let exact = Arc::new(state("").with_max_inflight_body_bytes(review.len()));
    for _ in 0..2 {
        let request = Request::post("/mutate")
            .header("content-type", "application/json")
            .body(Body::from(review.clone()))
            .unwrap();
        let response = router(exact.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(exact.http.body_budget.in_use(), 0);
}
