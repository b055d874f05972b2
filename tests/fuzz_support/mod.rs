//! What the fuzz targets (`fuzz/fuzz_targets/`) check, shared with `tests/fuzz_regressions.rs`
//! so that every input the fuzzer ever flagged replays in the normal test suite. Each check
//! panics when a property does not hold.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use spreadguard::admission::{self, Context, UnknownNamespaces};
use spreadguard::engine::Endpoint;
use spreadguard::engine::labels::{describe_labels, describe_selector, selects};
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{self, Input, Topology, decide};
use spreadguard::load::manifests::{parse, split_documents};
use spreadguard::load::parse_nodes;
use spreadguard::metrics::Metrics;

const NODES: &str = include_str!("../../examples/nodes-3-zones.yaml");

/// Policies and topologies the targets judge against: the defaults on the 3-zone example, a
/// permissive policy (audit mode, workload overrides, DoNotSchedule, legacy key rewrite) on
/// it, and a stricter one on an assumed topology.
static WORLDS: LazyLock<Vec<(Policy, Topology)>> = LazyLock::new(|| {
    let nodes = parse_nodes(NODES).expect("the example nodes parse");
    let default = Policy::default();
    let permissive = Policy::from_yaml(
        "mode: audit\nallowWorkloadOverride: true\nwhenUnsatisfiable: DoNotSchedule\nrewriteLegacyZoneKey: true\n",
    )
    .expect("the permissive policy parses");
    let strict = Policy::from_yaml("minReplicas: 3\nwhenUnsatisfiable: DoNotSchedule\n")
        .expect("the strict policy parses");
    vec![
        (
            default.clone(),
            Topology::from_nodes(nodes.clone(), &default),
        ),
        (permissive.clone(), Topology::from_nodes(nodes, &permissive)),
        (strict.clone(), Topology::assumed(&strict)),
    ]
});

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// An HPA and a PDB selecting every pod of `default`, so that the look-ups and the budget
/// rules run on whatever the fuzzer sends there.
static COMPANIONS: LazyLock<(engine::Autoscalers, engine::Budgets)> = LazyLock::new(|| {
    let hpa = serde_json::json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 3, "maxReplicas": 9}});
    let pdb = serde_json::json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "all", "namespace": "default"},
        "spec": {"maxUnavailable": 1, "selector": {}}});
    (
        engine::Autoscalers::new([engine::Autoscaler::from_json(&hpa).expect("an HPA")]),
        engine::Budgets::new([engine::Budget::from_json(&pdb).expect("a PDB")]),
    )
});

/// `admission::review` on arbitrary bytes: refused (HTTP 400) or a JSON review that echoes a
/// non-empty uid with a boolean `allowed`.
pub fn review(data: &[u8]) {
    for (policy, topology) in WORLDS.iter() {
        let ctx = Context {
            policy,
            topology,
            namespaces: &UnknownNamespaces,
            volumes: None,
            autoscalers: Some(&COMPANIONS.0),
            budgets: Some(&COMPANIONS.1),
            metrics: &METRICS,
            decide: engine::decide,
        };
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            let Ok(out) = admission::review(endpoint, data, &ctx) else {
                continue;
            };
            let answer: Value = serde_json::from_slice(&out).expect("the answer is JSON");
            let uid = answer["response"]["uid"]
                .as_str()
                .expect("the answer has a uid");
            assert!(!uid.is_empty(), "the uid is echoed");
            assert!(answer["response"]["allowed"].is_boolean());
        }
    }
}

/// `engine::decide` on arbitrary JSON: a patch applies to its object, deciding the patched
/// object again patches nothing, and an UPDATE that changes nothing is never patched.
pub fn decide_json(data: &[u8]) {
    let Ok(object) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (policy, topology) in WORLDS.iter() {
        let update = decide(
            Input::new(&object).with_old(Some(&object)),
            topology,
            policy,
        );
        assert!(
            update.patch.is_empty(),
            "an UPDATE that changes nothing is patched: {}",
            serde_json::to_string(&update.patch).unwrap_or_default()
        );
        let decision = decide(Input::new(&object), topology, policy);
        if decision.patch.is_empty() {
            continue;
        }
        let mut patched = object.clone();
        if let Err(e) = json_patch::patch(&mut patched, &decision.patch) {
            panic!(
                "the patch does not apply: {e}\npatch: {}",
                serde_json::to_string(&decision.patch).unwrap_or_default()
            );
        }
        let again = decide(Input::new(&patched), topology, policy);
        assert!(
            again.patch.is_empty(),
            "deciding the patched object patches again: {}",
            serde_json::to_string(&again.patch).unwrap_or_default()
        );
    }
}

#[derive(serde::Deserialize)]
struct SelectorCase {
    selector: LabelSelector,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Label-selector evaluation on `{"selector": .., "labels": ..}`: deterministic, `{}` selects
/// everything, an object's own labels select it, dropping expressions never selects less.
pub fn selector(data: &[u8]) {
    let Ok(case) = serde_json::from_slice::<SelectorCase>(data) else {
        return;
    };
    let result = selects(&case.selector, &case.labels);
    assert_eq!(
        result,
        selects(&case.selector, &case.labels),
        "deterministic"
    );
    let _ = describe_selector(&case.selector);
    let _ = describe_labels(&case.labels);
    assert_eq!(selects(&LabelSelector::default(), &case.labels), Ok(true));
    let own = LabelSelector {
        match_labels: Some(case.labels.clone()),
        match_expressions: None,
    };
    assert_eq!(selects(&own, &case.labels), Ok(true));
    let fewer = LabelSelector {
        match_labels: case.selector.match_labels.clone(),
        match_expressions: None,
    };
    if result == Ok(true) {
        assert_eq!(selects(&fewer, &case.labels), Ok(true));
    }
}

/// The manifests and nodes parsers on arbitrary text: errors, never panics; every chunk of a
/// stream is a slice of it.
pub fn parsers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for chunk in &split_documents(text) {
        assert!(
            text.contains(chunk.text),
            "a chunk is a slice of the stream"
        );
        let _ = chunk.parse();
    }
    if let Ok(docs) = parse(text, false) {
        for doc in &docs {
            let _ = doc.anchor();
        }
    }
    let _ = parse(text, true);
    let _ = parse_nodes(text);
}

/// The `cost` target's input as a review: the bytes are the object of a Deployment review,
/// a CREATE, or with a first byte of `u` an UPDATE whose stored object is the same bytes (so
/// that ratcheting judges both).
pub fn cost_review(data: &[u8]) -> Vec<u8> {
    let (operation, object, old): (&str, &[u8], &[u8]) = match data.split_first() {
        Some((b'u', rest)) => ("UPDATE", rest, rest),
        _ => ("CREATE", data, b"null"),
    };
    let mut body = Vec::with_capacity(object.len() + old.len() + 400);
    body.extend_from_slice(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"Deployment"},"resource":{"group":"apps","version":"v1","resource":"deployments"},"namespace":"shop","name":"w","operation":""#,
    );
    body.extend_from_slice(operation.as_bytes());
    body.extend_from_slice(br#"","object":"#);
    body.extend_from_slice(object);
    body.extend_from_slice(br#","oldObject":"#);
    body.extend_from_slice(old);
    body.extend_from_slice(b"}}");
    body
}

/// Bounds on what one review may cost, per byte of input: the answer, the memory and the
/// time. Generous against what the engine needs (a few kilobytes and microseconds); they are
/// there to catch growth with a product of the input's dimensions, which no linear bound
/// survives.
pub const COST_ANSWER: (usize, usize) = (256 * 1024, 8);
pub const COST_MEMORY: (usize, usize) = (16 * 1024 * 1024, 256);

/// `admission::review` on the `cost` target's input, at both endpoints under the default
/// policy and topology: returns the largest answer, and checks its bound.
pub fn cost(data: &[u8]) -> usize {
    let body = cost_review(data);
    let (policy, topology) = &WORLDS[0];
    let ctx = Context {
        policy,
        topology,
        namespaces: &UnknownNamespaces,
        volumes: None,
        autoscalers: Some(&COMPANIONS.0),
        budgets: Some(&COMPANIONS.1),
        metrics: &METRICS,
        decide: engine::decide,
    };
    let mut largest = 0;
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        if let Ok(out) = admission::review(endpoint, &body, &ctx) {
            // The router answers an engine panic (per failOpen); under the fuzzer it aborts,
            // here the answer says so.
            assert!(
                !out.windows(16).any(|w| w == b"(internal error)"),
                "the engine panicked on a {}-byte input",
                data.len()
            );
            largest = largest.max(out.len());
        }
    }
    assert!(
        largest <= COST_ANSWER.0 + COST_ANSWER.1 * data.len(),
        "a {}-byte input got a {largest}-byte answer",
        data.len()
    );
    largest
}
