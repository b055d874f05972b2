//! The engine against the Kubernetes API round-trip fixtures (`../shared/fixtures/kubernetes-api/`):
//! objects with every field populated, including fields newer than the k8s-openapi release
//! we compile against. They prove that the engine reads real objects without crashing and
//! that its patches never drop or reorder a field: undoing exactly what a patch added gives
//! back the original bytes.

mod engine_support;

use std::path::PathBuf;

use serde_json::{Value, json};
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{
    Decision, Input, RuleId, Severity, Skip, Subject, Topology, WorkloadKind, decide,
};

use engine_support::{apply_and_undo, escalations, nodes_file};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/kubernetes-api/"
    ))
}

/// Every `*.json` fixture: file name and parsed object.
fn fixtures() -> Vec<(String, String, Value)> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        out.push((name, text, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 10,
        "fixtures went missing from {}",
        dir.display()
    );
    out
}

fn workload_kind(object: &Value) -> Option<WorkloadKind> {
    WorkloadKind::from_type(
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
        &spreadguard::engine::policy::Policy::default(),
    )
}

/// The fixture as a live object: no deletionTimestamp, no controller owner.
fn stripped(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("deletionTimestamp");
        meta.shift_remove("deletionGracePeriodSeconds");
        meta.shift_remove("ownerReferences");
    }
    o
}

/// The live object with a selector that selects its pod template (the fuzzed one does not,
/// and has an invalid operator), so that the engine injects into the fully populated spec.
/// The label is inserted into the existing maps; every other field stays where it was.
fn repaired(object: &Value) -> Value {
    let mut o = stripped(object);
    let kind = workload_kind(&o).expect("a workload");
    let labels_ptr = match kind {
        WorkloadKind::Pod => "/metadata/labels",
        _ => "/spec/template/metadata/labels",
    };
    o.pointer_mut(labels_ptr)
        .and_then(Value::as_object_mut)
        .expect("labels map")
        .insert("app".into(), json!("fixture"));
    if kind != WorkloadKind::Pod {
        o["spec"]["selector"] = json!({ "matchLabels": { "app": "fixture" } });
    }
    o
}

fn topologies(policy: &Policy) -> Vec<(&'static str, Topology)> {
    vec![
        (
            "nodes-3-zones",
            Topology::from_nodes(nodes_file("examples/nodes-3-zones.yaml"), policy),
        ),
        (
            "nodes-1-zone",
            Topology::from_nodes(nodes_file("examples/nodes-1-zone.yaml"), policy),
        ),
        ("assumed", Topology::assumed(policy)),
    ]
}

fn policies() -> Vec<(&'static str, Policy)> {
    vec![
        ("default", Policy::default()),
        (
            "DoNotSchedule+rewrite",
            Policy::from_yaml(
                "whenUnsatisfiable: DoNotSchedule\nrewriteLegacyZoneKey: true\nmaxSkew: 2\n",
            )
            .expect("valid policy"),
        ),
    ]
}

/// The checks every decision on a fixture must pass; returns what failed.
fn check(object: &Value, topology: &Topology, policy: &Policy, decision: &Decision) -> Vec<String> {
    let mut problems = Vec::new();
    let (patched, undone) = match apply_and_undo(object, &decision.patch) {
        Ok(pair) => pair,
        Err(e) => return vec![format!("patch does not apply: {e}")],
    };
    let before = serde_json::to_string_pretty(object).expect("serializes");
    let after = serde_json::to_string_pretty(&undone).expect("serializes");
    if before != after {
        let line = before
            .lines()
            .zip(after.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        problems.push(format!(
            "a field was lost, changed or reordered (first difference at line {line}):\n{}\n{}",
            before.lines().nth(line).unwrap_or_default(),
            after.lines().nth(line).unwrap_or_default()
        ));
    }
    let again = decide(Input::new(&patched), topology, policy);
    if !again.patch.is_empty() {
        problems.push(format!(
            "not idempotent: {}",
            serde_json::to_string(&again.patch).unwrap_or_default()
        ));
    }
    problems.extend(escalations(&decision.findings, &again.findings));
    problems
}

#[test]
fn parsing_keeps_every_field_in_order() {
    for (name, text, value) in fixtures() {
        let reserialized = serde_json::to_string_pretty(&value).expect("serializes");
        assert_eq!(
            reserialized.trim_end(),
            text.trim_end(),
            "{name}: serde_json with preserve_order must reproduce the fixture exactly"
        );
    }
}

#[test]
fn workloads_are_judged_and_patched_without_losing_a_field() {
    let mut failures = Vec::new();
    let mut judged = 0;
    let mut patched = 0;
    for (policy_name, policy) in policies() {
        for (topo_name, topology) in topologies(&policy) {
            for (name, _, object) in fixtures() {
                let Some(kind) = workload_kind(&object) else {
                    continue;
                };
                // As captured, the object is being deleted (and Pods/ReplicaSets are
                // controlled): passed through untouched.
                let as_is = decide(Input::new(&object), &topology, &policy);
                if as_is.subject != Subject::Skipped(Skip::Deleting)
                    || !as_is.patch.is_empty()
                    || !as_is.findings.is_empty()
                {
                    failures.push(format!("{name}: as captured it must be skipped: {as_is:?}"));
                }
                for (variant, obj) in [
                    ("stripped", stripped(&object)),
                    ("repaired", repaired(&object)),
                ] {
                    let where_ = format!("{name} ({variant}, {topo_name}, {policy_name})");
                    let d = decide(Input::new(&obj), &topology, &policy);
                    match d.subject {
                        Subject::Workload(k) if k == kind => judged += 1,
                        Subject::Uninterpretable(k) if k == kind => {
                            if !d.findings.iter().any(|f| f.rule == RuleId::HA000) {
                                failures.push(format!("{where_}: uninterpretable without HA000"));
                            }
                        }
                        other => failures.push(format!("{where_}: judged as {other:?}")),
                    }
                    if d.findings.is_empty() {
                        failures.push(format!("{where_}: placeholder values must yield findings"));
                    }
                    if variant == "repaired" && d.patch.is_empty() && topo_name != "nodes-1-zone" {
                        failures.push(format!("{where_}: expected an injection: {:?}", d.findings));
                    }
                    if !d.patch.is_empty() {
                        patched += 1;
                    }
                    for p in check(&obj, &topology, &policy, &d) {
                        failures.push(format!("{where_}: {p}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // 4 kinds x 2 variants x 3 topologies x 2 policies.
    assert_eq!(judged, 48, "every workload fixture variant must be judged");
    assert!(patched >= 24, "too few patches exercised: {patched}");
}

/// HorizontalPodAutoscalers and PodDisruptionBudgets are judged on their own numbers.
fn judged_alone(name: &str) -> bool {
    name.starts_with("autoscaling.") || name.starts_with("policy.")
}

#[test]
fn autoscalers_and_budgets_are_read_as_captured() {
    let policy = Policy::default();
    let topology = Topology::assumed(&policy);
    let mut seen = 0;
    for (name, _, object) in fixtures() {
        if !judged_alone(&name) {
            continue;
        }
        seen += 1;
        let as_is = decide(Input::new(&object), &topology, &policy);
        assert_eq!(as_is.subject, Subject::Skipped(Skip::Deleting), "{name}");
        let d = decide(Input::new(&stripped(&object)), &topology, &policy);
        assert!(d.patch.is_empty(), "{name}: never patched");
        let rules: Vec<(RuleId, Severity)> =
            d.findings.iter().map(|f| (f.rule, f.severity)).collect();
        match name.as_str() {
            // minReplicas 2 meets the default policy.
            "autoscaling.v2.HorizontalPodAutoscaler.json" => {
                assert_eq!(d.subject, Subject::Autoscaler);
                assert!(rules.is_empty(), "{name}: {:?}", d.findings);
            }
            // Fuzzed: both fields set, with placeholder strings: not checked, said so.
            "policy.v1.PodDisruptionBudget.json" => {
                assert_eq!(d.subject, Subject::DisruptionBudget);
                assert_eq!(rules, [(RuleId::HA000, Severity::Warn)], "{:?}", d.findings);
            }
            other => panic!("an unexpected fixture {other}"),
        }
    }
    assert_eq!(seen, 2, "the HPA and PDB fixtures went missing");
}

#[test]
fn other_kinds_pass_through_untouched() {
    let policy = Policy::default();
    let topology = Topology::from_nodes(nodes_file("examples/nodes-3-zones.yaml"), &policy);
    let mut seen = Vec::new();
    for (name, _, object) in fixtures() {
        if workload_kind(&object).is_some() || judged_alone(&name) {
            continue;
        }
        for obj in [object.clone(), stripped(&object)] {
            let d = decide(Input::new(&obj), &topology, &policy);
            assert_eq!(d.subject, Subject::Skipped(Skip::NotAWorkload), "{name}");
            assert!(d.findings.is_empty() && d.patch.is_empty(), "{name}: {d:?}");
        }
        seen.push(name);
    }
    for expected in ["apps.v1.DaemonSet.json", "batch.v1.Job.json"] {
        assert!(seen.iter().any(|n| n == expected), "{expected} not checked");
    }
}
