//! `spreadguard audit` and the webhook must always agree. Every engine scenario
//! (`tests/fixtures/engine/*.yaml`) is sent, as a CREATE review, through the router's
//! `/mutate` and `/validate` and judged by the audit report, in every mode; the audit's
//! `results[].outcome` must say exactly what the two endpoints answered.
//!
//! The scenario's HPAs and PDBs (`hpaMinReplicas`, `hpas`, `pdbs`) are published to the
//! webhook's snapshots as its caches would publish them, and given to the audit as
//! documents beside the object. Scenarios with other workloads (`peers`) are judged by the
//! audit only, as the webhook has no workload cache; they are counted, not silently dropped.

mod engine_support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spreadguard::audit::{Report, Sourced};
use spreadguard::engine::policy::Mode;
use spreadguard::server::{State, router};
use tower::ServiceExt;

use engine_support::scenario::{Scenario, load};
use engine_support::{repo_path, yaml_files};

/// What one endpoint, or the audit's `outcome`, says.
#[derive(Debug, PartialEq)]
struct Said {
    allowed: bool,
    patched: bool,
    warnings: Vec<String>,
}

fn resource(object: &Value) -> Value {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (group, version) = api.split_once('/').unwrap_or(("", api));
    let plural = match kind {
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers".to_owned(),
        "PodDisruptionBudget" => "poddisruptionbudgets".to_owned(),
        _ => format!("{}s", kind.to_lowercase()),
    };
    json!({"group": group, "version": version, "resource": plural})
}

fn review(object: &Value) -> Value {
    let mut request = json!({
        "uid": "agreement",
        "kind": {"group": "", "version": "", "kind": object.get("kind").cloned().unwrap_or_default()},
        "resource": resource(object),
        "operation": "CREATE",
        "userInfo": {"username": "tester"},
        "object": object,
        "dryRun": false,
    });
    if let Some(ns) = object.pointer("/metadata/namespace") {
        request["namespace"] = ns.clone();
    }
    if let Some(name) = object.pointer("/metadata/name") {
        request["name"] = name.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

async fn send(state: &Arc<State>, path: &str, body: &Value) -> Said {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    let r = &answer["response"];
    let patched = match r.get("patch").and_then(Value::as_str) {
        Some(b64) => {
            let ops: Vec<Value> = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap();
            !ops.is_empty()
        }
        None => false,
    };
    Said {
        allowed: r["allowed"].as_bool().unwrap(),
        patched,
        warnings: r["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect(),
    }
}

/// The webhook's two answers, combined as the audit reports them.
async fn webhook(s: &Scenario, mode: Mode) -> Said {
    let mut policy = s.policy.clone();
    policy.mode = mode;
    let mut state = State::new(policy);
    if let Some(volumes) = &s.volumes {
        state = state.with_volumes(Arc::new(volumes.clone()));
    }
    if let Some(labels) = &s.namespace_labels {
        let labels = Arc::new(labels.clone());
        state = state.with_namespaces(Arc::new(move |_: &str| Some(labels.clone())));
    }
    let state = Arc::new(state);
    state.publish_topology(s.topology.clone());
    state.publish_autoscalers(s.autoscalers());
    state.publish_budgets(s.budgets());
    let body = review(&s.object);
    let m = send(&state, "/mutate", &body).await;
    let v = send(&state, "/validate", &body).await;
    let mut warnings = m.warnings;
    warnings.extend(v.warnings);
    Said {
        allowed: m.allowed && v.allowed,
        patched: m.patched,
        warnings,
    }
}

/// The audit's verdict; `None` when the audit reports no entry (not a judged workload).
fn audit(s: &Scenario, mode: Mode) -> Option<Said> {
    let mut policy = s.policy.clone();
    policy.mode = mode;
    // The workload first, then the scenario's HPAs and PDBs, storage objects and NodePools
    // as audit reads them from its input files.
    let mut docs = vec![Sourced::new("scenario", s.object.clone())];
    for (i, other) in s.hpas.iter().chain(&s.pdbs).enumerate() {
        docs.push(Sourced::new(format!("companion-{i}"), other.clone()));
    }
    // The namespace's labels reach the audit as they would offline: a Namespace among the
    // manifests.
    if let (Some(labels), Some(ns)) = (&s.namespace_labels, s.object.pointer("/metadata/namespace"))
    {
        docs.push(Sourced::new(
            "namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        ));
    }
    docs.extend(
        s.objects
            .iter()
            .map(|o| Sourced::new("scenario-objects", o.clone())),
    );
    let inventory = spreadguard::load::inventory_of(&docs).unwrap();
    let volumes = s.volumes.as_ref().map(|_| &inventory.volumes);
    let report = Report::build_with(
        &docs,
        &s.topology,
        &policy,
        volumes.map(|v| v as &dyn spreadguard::engine::storage::Volumes),
    );
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let entry = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "scenario")?
        .clone();
    let outcome = &entry["outcome"];
    let said = Said {
        allowed: outcome["allowed"].as_bool().unwrap(),
        patched: outcome["patched"].as_bool().unwrap(),
        warnings: outcome["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect(),
    };
    // `decision` is the same verdict, for readers of the older field.
    let decision = if said.allowed { "allow" } else { "deny" };
    assert_eq!(entry["decision"], decision);
    Some(said)
}

#[tokio::test]
async fn audit_and_webhook_agree_on_every_scenario_in_every_mode() {
    let files = yaml_files(&repo_path("tests/fixtures/engine"));
    assert!(files.len() > 50, "scenarios went missing");
    let mut compared = 0;
    let mut with_companions = 0;
    let mut with_peers = Vec::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let s = load(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        if !s.hpas.is_empty() || !s.pdbs.is_empty() {
            with_companions += 1;
        }
        // The webhook has no workload cache: what other workloads the audit sees beside the
        // object is not compared.
        if s.peers.is_some() {
            with_peers.push(name);
            continue;
        }
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit, Mode::Off] {
            let hook = webhook(&s, mode).await;
            let audited = audit(&s, mode).unwrap_or(Said {
                allowed: true,
                patched: false,
                warnings: Vec::new(),
            });
            if hook != audited {
                failures.push(format!(
                    "{name} in {}: webhook {hook:?}, audit {audited:?}",
                    mode.as_str()
                ));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 200, "only {compared} comparisons");
    assert!(
        with_peers.len() < 10,
        "scenarios with peers: {with_peers:?}"
    );
    assert!(
        with_companions >= 10,
        "only {with_companions} scenarios with HPAs or PDBs were compared"
    );
}

#[test]
fn audit_exits_1_exactly_when_some_outcome_is_not_allowed() {
    let bin = env!("CARGO_BIN_EXE_spreadguard");
    let deny = repo_path("examples/workloads/ha001-deployment-single-replica.yaml");
    let nodes = repo_path("examples/nodes-3-zones.yaml");
    let run = |mode: &str| {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, format!("mode: {mode}\n")).unwrap();
        let out = std::process::Command::new(bin)
            .args(["audit", "-o", "json", "--nodes"])
            .arg(&nodes)
            .arg("--config")
            .arg(&policy)
            .arg(&deny)
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            out.status.code(),
            json["results"][0]["outcome"]["allowed"].clone(),
        )
    };
    assert_eq!(run("enforce"), (Some(1), json!(false)));
    for mode in ["warn", "audit", "off"] {
        assert_eq!(run(mode), (Some(0), json!(true)), "{mode}");
    }
}

/// HA028: past [`MAX_READ_VALUES`] values where decisions read, the webhook stops building the
/// object and refuses it by its size alone, and the audit counts the same values: both agree
/// one label under the limit (judged as usual), at it, and one over (refused, in every mode
/// as its mode says).
#[tokio::test]
async fn audit_and_webhook_agree_at_the_size_limit() {
    use spreadguard::engine::WorkloadKind;
    use spreadguard::engine::read_fields::{At, MAX_READ_VALUES, count};
    let path = repo_path(
        "tests/fixtures/engine/placement-injected-soft-spread-5-replicas-expected-not-guaranteed.yaml",
    );
    let base = load(&path).unwrap();
    let held = count(&base.object, At::root(WorkloadKind::Deployment), usize::MAX);
    // The annotations map itself is one value more.
    let room = MAX_READ_VALUES - held - 1;
    for (extra, refused) in [(room - 1, false), (room, false), (room + 1, true)] {
        let mut s = load(&path).unwrap();
        let labels = s.object["metadata"]
            .as_object_mut()
            .unwrap()
            .entry("annotations")
            .or_insert(json!({}));
        for i in 0..extra {
            labels[format!("example.com/a{i}")] = json!("v");
        }
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
            let hook = webhook(&s, mode).await;
            let audited = audit(&s, mode).expect("judged or refused, never skipped");
            assert_eq!(hook, audited, "{extra} annotations in {}", mode.as_str());
            let ha028 = hook.warnings.iter().any(|w| w.contains("HA028"))
                || (mode == Mode::Enforce && !hook.allowed);
            assert_eq!(
                ha028,
                refused,
                "{extra} annotations in {}: {hook:?}",
                mode.as_str()
            );
            if refused {
                assert!(
                    !hook.patched,
                    "nothing is injected into an object not judged"
                );
            }
        }
    }
}
