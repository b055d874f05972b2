//! Patch fidelity through the webhook's own decoding. `tests/engine_properties.rs` proves, on
//! the engine, that a patch touches only the paths it names; the webhook, though, decides on
//! an object it decoded itself: in one pass with the envelope, without the subtrees no
//! decision reads on CREATE (`admission::prune`), or raw when the envelope's fields come in
//! another order. Here generated workloads carry fields spreadguard knows nothing about
//! (newer API fields, containers, status, managed fields; keys with `/`, `~`, escapes and
//! non-ASCII; numbers of every JSON shape) at every level, and for CREATE and UPDATE, with the
//! envelope in either field order:
//! - `/mutate` answers with exactly the patch the engine computes on the full object;
//! - that patch applies to the full object and, undone, gives back every other field byte for
//!   byte (serialized with key order preserved);
//! - the patched object sent again gets no patch.

mod engine_support;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use spreadguard::admission::{self, Context, UnknownNamespaces};
use spreadguard::engine::Endpoint;
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{self, Input, Topology, decide};
use spreadguard::load::parse_nodes;
use spreadguard::metrics::Metrics;

use engine_support::apply_and_undo;

const NODES: &str = include_str!("../examples/nodes-3-zones.yaml");
const ZONE: &str = "topology.kubernetes.io/zone";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// Keys spreadguard does not own, some of them needing JSON-pointer or JSON escapes.
fn foreign_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-new-field".to_owned()),
        Just("example.com/a~b".to_owned()),
        Just("weird/\"quoted\"\\key".to_owned()),
        Just("zürich-ünïcode".to_owned()),
        Just("".to_owned()),
        "[a-z]{1,8}",
    ]
}

/// Arbitrary JSON of every shape, including numbers the API server may pass through
/// (floats, large integers, negative zero).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        Just(json!(-0.0)),
        Just(json!(1.5e-7)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("\u{0}\u{1f}\"\\/\u{2028}é😀")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(foreign_key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Where foreign fields go.
#[derive(Clone, Copy, Debug)]
enum Spot {
    Root,
    Metadata,
    Spec,
    Template,
    PodSpec,
    Container,
    Status,
    ManagedFields,
}

fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        Just(Spot::Root),
        Just(Spot::Metadata),
        Just(Spot::Spec),
        Just(Spot::Template),
        Just(Spot::PodSpec),
        Just(Spot::Container),
        Just(Spot::Status),
        Just(Spot::ManagedFields),
    ]
}

#[derive(Clone, Debug)]
struct Shape {
    kind: &'static str,
    replicas: Option<i64>,
    labels: Map<String, Value>,
    selector_is_labels: bool,
    spread_on: Option<&'static str>,
    soft_anti_affinity: bool,
    annotations: bool,
    extras: Vec<(Spot, String, Value)>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![
            Just("Deployment"),
            Just("StatefulSet"),
            Just("ReplicaSet"),
            Just("Pod")
        ],
        option::of(0..6i64),
        btree_map(
            prop_oneof![Just("app"), Just("tier"), Just("app.kubernetes.io/name")],
            prop_oneof![Just("web"), Just("a/b~c")],
            1..3,
        ),
        any::<bool>(),
        option::of(prop_oneof![Just(ZONE), Just(HOSTNAME)]),
        any::<bool>(),
        any::<bool>(),
        vec((spot(), foreign_key(), any_json()), 0..8),
    )
        .prop_map(
            |(
                kind,
                replicas,
                labels,
                selector_is_labels,
                spread_on,
                soft_anti_affinity,
                annotations,
                extras,
            )| Shape {
                kind,
                replicas,
                labels: labels
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::from(v)))
                    .collect(),
                selector_is_labels,
                spread_on,
                soft_anti_affinity,
                annotations,
                extras,
            },
        )
}

/// The workload a shape describes, foreign fields included.
fn workload(s: &Shape) -> Value {
    let selector = if s.selector_is_labels {
        json!({ "matchLabels": s.labels })
    } else {
        json!({ "matchLabels": { "app": "other" } })
    };
    let mut pod_spec = json!({ "containers": [{ "name": "c", "image": "img:1" }] });
    if let Some(key) = s.spread_on {
        pod_spec["topologySpreadConstraints"] = json!([{
            "maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
        }]);
    }
    if s.soft_anti_affinity {
        pod_spec["affinity"] = json!({ "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 50,
                "podAffinityTerm": { "topologyKey": HOSTNAME, "labelSelector": selector },
            }]
        }});
    }
    let mut meta = json!({ "name": "w", "namespace": "shop" });
    if s.annotations {
        meta["annotations"] = json!({ "owner": "team-a" });
    }
    let mut object = if s.kind == "Pod" {
        meta["labels"] = Value::Object(s.labels.clone());
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec })
    } else {
        let mut spec = json!({
            "selector": selector,
            "template": { "metadata": { "labels": s.labels }, "spec": pod_spec },
        });
        if let Some(r) = s.replicas {
            spec["replicas"] = json!(r);
        }
        json!({ "apiVersion": "apps/v1", "kind": s.kind, "metadata": meta, "spec": spec })
    };
    let pod = s.kind == "Pod";
    for (spot, key, value) in &s.extras {
        let target = match spot {
            Spot::Root => Some(&mut object),
            Spot::Metadata => object.get_mut("metadata"),
            Spot::Spec => object.get_mut("spec"),
            Spot::Template if pod => object.get_mut("metadata"),
            Spot::Template => object.pointer_mut("/spec/template"),
            Spot::PodSpec if pod => object.get_mut("spec"),
            Spot::PodSpec => object.pointer_mut("/spec/template/spec"),
            Spot::Container if pod => object.pointer_mut("/spec/containers/0"),
            Spot::Container => object.pointer_mut("/spec/template/spec/containers/0"),
            Spot::Status => {
                object["status"] = json!({});
                object.get_mut("status")
            }
            Spot::ManagedFields => {
                object["metadata"]["managedFields"] = json!([{ "manager": "kubectl" }]);
                object.pointer_mut("/metadata/managedFields/0")
            }
        };
        // Fields spreadguard reads or owns keep their meaning; everything else is fair game.
        const OWNED: &[&str] = &[
            "apiVersion",
            "kind",
            "metadata",
            "spec",
            "name",
            "namespace",
            "labels",
            "annotations",
            "ownerReferences",
            "deletionTimestamp",
            "generateName",
            "replicas",
            "selector",
            "template",
            "containers",
            "nodeSelector",
            "affinity",
            "tolerations",
            "topologySpreadConstraints",
        ];
        if let Some(Value::Object(map)) = target
            && !OWNED.contains(&key.as_str())
        {
            map.insert(key.clone(), value.clone());
        }
    }
    object
}

/// A review body with the envelope's fields before the object (as the API server sends them)
/// or after it.
fn body(object: &Value, old: Option<&Value>, object_first: bool) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap();
    let (group, resource) = match kind {
        "Pod" => ("", "pods"),
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        _ => ("apps", "replicasets"),
    };
    let mut request = Map::new();
    let mut envelope = Map::new();
    envelope.insert("uid".into(), json!("prop-1"));
    envelope.insert(
        "resource".into(),
        json!({ "group": group, "version": "v1", "resource": resource }),
    );
    envelope.insert("namespace".into(), json!("shop"));
    envelope.insert(
        "operation".into(),
        json!(if old.is_some() { "UPDATE" } else { "CREATE" }),
    );
    let mut objects = Map::new();
    objects.insert("object".into(), object.clone());
    if let Some(old) = old {
        objects.insert("oldObject".into(), old.clone());
    }
    let (first, second) = if object_first {
        (objects, envelope)
    } else {
        (envelope, objects)
    };
    request.extend(first);
    request.extend(second);
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request,
    }))
    .unwrap()
}

struct World {
    policy: Policy,
    topology: Topology,
    metrics: Metrics,
}

impl World {
    fn new() -> World {
        let policy = Policy::default();
        let topology = Topology::from_nodes(parse_nodes(NODES).unwrap(), &policy);
        World {
            policy,
            topology,
            metrics: Metrics::new(),
        }
    }

    /// `/mutate`'s patch for a body, decoded (None when it sends none).
    fn mutate(&self, body: &[u8]) -> Result<Option<Vec<json_patch::PatchOperation>>, String> {
        let ctx = Context {
            policy: &self.policy,
            topology: &self.topology,
            namespaces: &UnknownNamespaces,
            volumes: None,
            autoscalers: None,
            budgets: None,
            metrics: &self.metrics,
            decide: engine::decide,
        };
        let out = admission::review(Endpoint::Mutate, body, &ctx).map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        if answer["response"]["uid"] != "prop-1" || answer["response"]["allowed"] != true {
            return Err(format!("unexpected answer: {answer}"));
        }
        let Some(b64) = answer["response"].get("patch") else {
            return Ok(None);
        };
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().ok_or("the patch is not a string")?)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn the_webhook_patches_like_the_engine_and_touches_nothing_else(
        shape in shape(),
        update in any::<bool>(),
        object_first in any::<bool>(),
    ) {
        let world = World::new();
        let object = workload(&shape);
        // An UPDATE that changes the pod template (so it is mutated like a CREATE).
        let old = update.then(|| {
            let mut old = object.clone();
            let containers = if shape.kind == "Pod" {
                "/spec/containers/0/image"
            } else {
                "/spec/template/spec/containers/0/image"
            };
            *old.pointer_mut(containers).unwrap() = json!("img:0");
            old
        });

        let sent = world.mutate(&body(&object, old.as_ref(), object_first))
            .map_err(TestCaseError::fail)?;
        let expected = decide(Input::new(&object).with_old(old.as_ref()), &world.topology, &world.policy).patch;
        let patch = sent.unwrap_or_default();
        prop_assert_eq!(
            serde_json::to_string(&patch).unwrap(),
            serde_json::to_string(&expected).unwrap(),
            "the webhook's patch differs from the engine's on the full object"
        );

        let (patched, undone) = apply_and_undo(&object, &patch).map_err(|e| TestCaseError::fail(
            format!("{e}\npatch: {}", serde_json::to_string(&patch).unwrap_or_default())))?;
        prop_assert_eq!(
            serde_json::to_string(&undone).unwrap(),
            serde_json::to_string(&object).unwrap(),
            "a field outside the patch's paths changed"
        );

        let again = world.mutate(&body(&patched, old.as_ref(), object_first))
            .map_err(TestCaseError::fail)?;
        prop_assert!(
            again.as_ref().is_none_or(|p| p.is_empty()),
            "the patched object is patched again: {}",
            serde_json::to_string(&again).unwrap_or_default()
        );
    }
}
