//! Property tests: over generated workloads (random labels, selectors, replica counts and
//! existing spread constraints and affinity in every shape, keys with `/` and `~`) and
//! generated topologies and policies, the patch always applies, deciding the patched object
//! again yields no patch, every field outside the paths the patch names is byte for byte
//! identical, and no finding gets more severe after patching.

mod engine_support;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{
    Decision, Injection, Input, NodeInfo, Severity, Subject, Topology, decide,
};

use engine_support::{apply_and_undo, escalations};

const ZONE: &str = "topology.kubernetes.io/zone";
const LEGACY: &str = "failure-domain.beta.kubernetes.io/zone";
const HOSTNAME: &str = "kubernetes.io/hostname";
const CUSTOM_ZONE: &str = "example.com/zone~v2";

/// Label keys, some with `/` and `~` so JSON pointer escaping is exercised.
fn label_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_owned()),
        Just("tier".to_owned()),
        Just("app.kubernetes.io/name".to_owned()),
        Just("example.com/a~b".to_owned()),
        Just("team~1x/sub~0".to_owned()),
        Just("pod-template-hash".to_owned()),
        Just("controller-revision-hash".to_owned()),
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web".to_owned()),
        Just("api".to_owned()),
        Just("a/b~c".to_owned())
    ]
}

fn labels() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(label_key(), label_value(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn topology_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(ZONE.to_owned()),
        Just(LEGACY.to_owned()),
        Just(HOSTNAME.to_owned()),
        Just(CUSTOM_ZONE.to_owned()),
        Just("example.com/rack".to_owned()),
    ]
}

/// A label selector relative to the pod labels: the labels themselves, a subset, something
/// unrelated, with expressions, empty, or absent.
fn selector(labels: Map<String, Value>) -> impl Strategy<Value = Option<Value>> {
    let own = labels.clone();
    let first = labels.iter().next().map(|(k, v)| (k.clone(), v.clone()));
    prop_oneof![
        3 => Just(Some(json!({ "matchLabels": own }))),
        1 => Just(first.map(|(k, v)| json!({ "matchLabels": { k: v } }))),
        1 => (label_key(), label_value()).prop_map(|(k, v)| Some(json!({ "matchLabels": { k: v } }))),
        1 => (label_key(), selector_operator(), label_value())
            .prop_map(|(k, op, v)| {
                let mut e = json!({ "key": k, "operator": op });
                if op == "In" || op == "NotIn" {
                    e["values"] = json!([v]);
                }
                Some(json!({ "matchExpressions": [e] }))
            }),
        1 => Just(Some(json!({}))),
        1 => Just(None),
    ]
}

fn selector_operator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("In"),
        Just("NotIn"),
        Just("Exists"),
        Just("DoesNotExist")
    ]
}

fn spread_constraint(labels: Map<String, Value>) -> impl Strategy<Value = Value> {
    (
        1..4u32,
        topology_key(),
        prop_oneof![Just("ScheduleAnyway"), Just("DoNotSchedule")],
        selector(labels),
        option::of(1..5u32),
    )
        .prop_map(|(skew, key, when, sel, min_domains)| {
            let mut c = json!({ "maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when });
            if let Some(s) = sel {
                c["labelSelector"] = s;
            }
            if let Some(m) = min_domains {
                c["minDomains"] = json!(m);
            }
            c
        })
}

fn affinity_term(labels: Map<String, Value>) -> impl Strategy<Value = Value> {
    (topology_key(), selector(labels)).prop_map(|(key, sel)| {
        let mut t = json!({ "topologyKey": key });
        if let Some(s) = sel {
            t["labelSelector"] = s;
        }
        t
    })
}

/// `affinity` in every shape the mutation must handle.
fn affinity(labels: Map<String, Value>) -> impl Strategy<Value = Option<Value>> {
    let required = vec(affinity_term(labels.clone()), 0..3);
    let preferred = vec(
        (1..101u32, affinity_term(labels))
            .prop_map(|(w, t)| json!({ "weight": w, "podAffinityTerm": t })),
        0..3,
    );
    (0..9u8, required, preferred).prop_map(|(shape, required, preferred)| match shape {
        0 => None,
        6 => Some(Value::Null),
        7 => Some(json!({ "podAntiAffinity": null })),
        8 => Some(json!({ "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": null,
            "requiredDuringSchedulingIgnoredDuringExecution": required,
        } })),
        1 => Some(json!({})),
        2 => Some(json!({ "nodeAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [
            { "weight": 1, "preference": { "matchExpressions": [{ "key": "pool", "operator": "In", "values": ["general"] }] } }
        ] } })),
        3 => Some(json!({ "podAntiAffinity": {} })),
        4 => Some(json!({ "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": required } })),
        _ => Some(json!({ "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": preferred,
            "requiredDuringSchedulingIgnoredDuringExecution": required,
        } })),
    })
}

fn annotations() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(json!({}))),
        Just(Some(json!({ "example.com/owner~team": "a/b" }))),
        Just(Some(json!({ "spreadguard.io/injected": "zone-spread" }))),
    ]
}

prop_compose! {
    fn pod_spec(labels: Map<String, Value>)(
        spread in option::of(option::of(vec(spread_constraint(labels.clone()), 0..3))),
        affinity in affinity(labels),
        node_selector in option::of(prop_oneof![
            Just(json!({ ZONE: "z1" })),
            Just(json!({ "pool": "general" })),
            Just(json!({})),
        ]),
        tolerate in any::<bool>(),
    ) -> Value {
        let mut spec = json!({ "containers": [{ "name": "c", "image": "img:1" }] });
        // Absent, `null` (as some generators write), or a list.
        if let Some(s) = spread {
            spec["topologySpreadConstraints"] = s.map_or(Value::Null, Value::Array);
        }
        if let Some(a) = affinity {
            spec["affinity"] = a;
        }
        if let Some(n) = node_selector {
            spec["nodeSelector"] = n;
        }
        if tolerate {
            spec["tolerations"] = json!([{ "key": "dedicated", "operator": "Exists" }]);
        }
        spec
    }
}

/// A Deployment, StatefulSet, ReplicaSet or bare Pod.
fn workload() -> impl Strategy<Value = Value> {
    labels()
        .prop_flat_map(|labels| {
            (
                prop_oneof![
                    Just("Deployment"),
                    Just("StatefulSet"),
                    Just("ReplicaSet"),
                    Just("Pod")
                ],
                Just(labels.clone()),
                selector(labels.clone()),
                option::of(0..8i64),
                annotations(),
                pod_spec(labels),
            )
        })
        .prop_map(|(kind, labels, selector, replicas, annotations, spec)| {
            let mut meta = json!({ "name": "w", "namespace": "ns" });
            if let Some(a) = annotations {
                meta["annotations"] = a;
            }
            if kind == "Pod" {
                if !labels.is_empty() {
                    meta["labels"] = Value::Object(labels);
                }
                return json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec });
            }
            let mut object =
                json!({ "apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": {} });
            let s = object["spec"].as_object_mut().expect("spec");
            if let Some(r) = replicas {
                s.insert("replicas".into(), json!(r));
            }
            if let Some(sel) = selector {
                s.insert("selector".into(), sel);
            }
            let mut template = json!({ "spec": spec });
            if !labels.is_empty() {
                template["metadata"] = json!({ "labels": labels });
            }
            s.insert("template".into(), template);
            object
        })
}

/// A topology: assumed, or generated nodes in up to 4 zones under one of three zone keys,
/// with node pools, tainted and cordoned nodes and some without a zone label.
fn topology_and_policy() -> impl Strategy<Value = (Option<Vec<NodeInfo>>, Policy)> {
    let node = (
        option::of(0..4u8),
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => Just(Some("NoSchedule")), 1 => Just(Some("NoExecute"))],
        prop_oneof![5 => Just(false), 1 => Just(true)],
    );
    let policy = (
        prop_oneof![Just(ZONE), Just(LEGACY), Just(CUSTOM_ZONE)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1..3u32,
    );
    (option::of(vec(node, 0..12)), policy, any::<bool>()).prop_map(
        |(nodes, (zone_key, dns, nodes_spread, hash, rewrite, skew), also_standard)| {
            let mut policy = Policy {
                when_unsatisfiable: if dns {
                    spreadguard::engine::policy::WhenUnsatisfiable::DoNotSchedule
                } else {
                    spreadguard::engine::policy::WhenUnsatisfiable::ScheduleAnyway
                },
                spread_across_nodes: nodes_spread,
                match_pod_template_hash: hash,
                rewrite_legacy_zone_key: rewrite,
                max_skew: skew,
                ..Policy::default()
            };
            if zone_key == CUSTOM_ZONE {
                policy.zone_labels = vec![CUSTOM_ZONE.to_owned()];
            }
            let nodes = nodes.map(|nodes| {
                nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (zone, general, taint, cordoned))| {
                        let name = format!("node-{i}");
                        let mut labels = json!({ HOSTNAME: name, "pool": if general { "general" } else { "batch" } });
                        if let Some(z) = zone {
                            labels[zone_key] = json!(format!("z{z}"));
                            if zone_key == LEGACY && also_standard {
                                labels[ZONE] = json!(format!("z{z}"));
                            }
                        }
                        let mut node = json!({ "metadata": { "name": name, "labels": labels }, "spec": {} });
                        if let Some(effect) = taint {
                            node["spec"]["taints"] = json!([{ "key": "dedicated", "value": "x", "effect": effect }]);
                        }
                        if cordoned {
                            node["spec"]["unschedulable"] = json!(true);
                        }
                        NodeInfo::from_json(&node).expect("a valid node")
                    })
                    .collect()
            });
            (nodes, policy)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn patches_apply_are_idempotent_and_touch_only_their_paths(
        object in workload(),
        (nodes, policy) in topology_and_policy(),
        hpa in option::of(0..6i64),
    ) {
        let topology = match nodes {
            Some(nodes) => Topology::from_nodes(nodes, &policy),
            None => Topology::assumed(&policy),
        };
        let input = Input::new(&object).with_hpa_min_replicas(hpa);
        let decision = decide(input, &topology, &policy);
        prop_assert!(matches!(decision.subject, Subject::Workload(_) | Subject::Uninterpretable(_)));

        // Applies (op by op and at once), and undoing exactly what it added restores the
        // original bytes: nothing outside its paths changed or moved.
        let (patched, undone) = apply_and_undo(&object, &decision.patch)
            .map_err(|e| {
                let patch = serde_json::to_string(&decision.patch).unwrap_or_default();
                TestCaseError::fail(format!("{e}\npatch: {patch}"))
            })?;
        prop_assert_eq!(
            serde_json::to_string(&object).expect("serializes"),
            serde_json::to_string(&undone).expect("serializes")
        );

        let again = decide(Input::new(&patched).with_hpa_min_replicas(hpa), &topology, &policy);
        prop_assert!(
            again.patch.is_empty(),
            "second decision patches again: {}",
            serde_json::to_string(&again.patch).unwrap_or_default()
        );
        // Rewriting a legacy zone key moves a constraint from one rule to another (an inert
        // DoNotSchedule constraint, HA005, may become a capped one, HA007): then only the
        // worst severity must not rise. Otherwise no rule may get worse.
        let rises = if decision.injected.contains(&Injection::LegacyZoneKey) {
            let worst = |d: &Decision| d.findings.iter().map(|f| f.severity).max();
            if worst(&again) > worst(&decision) {
                vec![format!("the worst severity rose to {:?}", worst(&again))]
            } else {
                Vec::new()
            }
        } else {
            escalations(&decision.findings, &again.findings)
        };
        prop_assert!(
            rises.is_empty(),
            "{:?}\nbefore: {:#?}\nafter: {:#?}",
            rises,
            decision.findings,
            again.findings
        );
    }

    /// On UPDATE with an unchanged template nothing is ever patched, and a deny finding the
    /// old object already had (the same rule about the same thing: constraint, term, replica
    /// count) is never a deny again.
    #[test]
    fn updates_with_the_same_template_never_patch_and_ratchet(
        object in workload(),
        (nodes, policy) in topology_and_policy(),
        new_replicas in 0..8i64,
    ) {
        let topology = match nodes {
            Some(nodes) => Topology::from_nodes(nodes, &policy),
            None => Topology::assumed(&policy),
        };
        let mut new = object.clone();
        if new["kind"] != "Pod" {
            new["spec"]["replicas"] = json!(new_replicas);
        }
        let old_decision = decide(Input::new(&object), &topology, &policy);
        let d = decide(Input::new(&new).with_old(Some(&object)), &topology, &policy);
        prop_assert!(d.patch.is_empty());
        for f in d.findings.iter().filter(|f| f.severity == Severity::Deny) {
            prop_assert!(
                !old_decision.findings.iter().any(|o| o.identity() == f.identity() && o.severity == Severity::Deny),
                "{} denied again although the old object had it: {:?}", f.rule, f.identity()
            );
        }
    }
}

// === eligibility: the grouped snapshot against a node-by-node reference ===

mod reference {
    //! The scheduler's node filters, written out node by node with no grouping, as the
    //! oracle for `Topology::eligibility`.

    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Toleration};
    use spreadguard::engine::NodeInfo;

    pub fn requirement(r: &NodeSelectorRequirement, actual: Option<&str>) -> bool {
        let values = r.values.clone().unwrap_or_default();
        match r.operator.as_str() {
            "In" => actual.is_some_and(|a| values.iter().any(|v| v == a)),
            "NotIn" => !actual.is_some_and(|a| values.iter().any(|v| v == a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            "Gt" | "Lt" => {
                if values.len() != 1 {
                    return false;
                }
                match (actual.map(str::parse::<i64>), values[0].parse::<i64>()) {
                    (Some(Ok(a)), Ok(b)) => {
                        if r.operator == "Gt" {
                            a > b
                        } else {
                            a < b
                        }
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn term(t: &NodeSelectorTerm, node: &NodeInfo) -> bool {
        let exprs = t.match_expressions.clone().unwrap_or_default();
        let fields = t.match_fields.clone().unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs
            .iter()
            .all(|e| requirement(e, node.labels.get(&e.key).map(String::as_str)))
            && fields
                .iter()
                .all(|f| f.key == "metadata.name" && requirement(f, Some(&node.name)))
    }

    fn tolerated(tols: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
        tols.iter().any(|t| {
            let t_effect = t.effect.clone().unwrap_or_default();
            let t_key = t.key.clone().unwrap_or_default();
            (t_effect.is_empty() || t_effect == effect)
                && (t_key.is_empty() || t_key == key)
                && match t.operator.as_deref() {
                    None | Some("") | Some("Equal") => t.value.clone().unwrap_or_default() == value,
                    Some("Exists") => true,
                    _ => false,
                }
        })
    }

    pub fn eligible(
        node: &NodeInfo,
        selector: Option<&BTreeMap<String, String>>,
        terms: Option<&[NodeSelectorTerm]>,
        tols: &[Toleration],
    ) -> bool {
        // NodeUnschedulable: a cordon keeps off pods that do not tolerate the
        // node.kubernetes.io/unschedulable:NoSchedule taint.
        (!node.unschedulable
            || tolerated(tols, "node.kubernetes.io/unschedulable", "", "NoSchedule"))
            && node
                .taints
                .iter()
                .all(|t| tolerated(tols, &t.key, &t.value, &t.effect))
            && selector.is_none_or(|s| s.iter().all(|(k, v)| node.labels.get(k) == Some(v)))
            && terms.is_none_or(|ts| ts.iter().any(|t| term(t, node)))
    }
}

/// Nodes whose labels mix shared keys (zone, pool) with per-node ones (hostname, a numeric
/// id, an instance id) so that the snapshot's grouping and its per-node keys both matter.
fn cluster() -> impl Strategy<Value = Vec<NodeInfo>> {
    let node = (
        option::of(0..3u8),
        0..3u8,
        any::<bool>(),
        prop_oneof![
            4 => Just(None),
            1 => Just(Some(("dedicated", "db", "NoSchedule"))),
            1 => Just(Some(("spot", "true", "NoExecute"))),
            1 => Just(Some(("soft", "x", "PreferNoSchedule"))),
        ],
        prop_oneof![6 => Just(false), 1 => Just(true)],
    );
    vec(node, 0..40).prop_map(|nodes| {
        nodes
            .into_iter()
            .enumerate()
            .map(|(i, (zone, pool, with_id, taint, cordoned))| {
                let name = format!("n{i}");
                let cores = format!("{}", (i % 5) * 8);
                let mut labels =
                    json!({ HOSTNAME: name, "pool": format!("p{pool}"), "cores": cores });
                if let Some(z) = zone {
                    labels[ZONE] = json!(format!("z{z}"));
                }
                if with_id {
                    labels["example.com/instance-id"] = json!(format!("i-{i:04}"));
                }
                let mut node =
                    json!({ "metadata": { "name": name, "labels": labels }, "spec": {} });
                if let Some((k, v, e)) = taint {
                    node["spec"]["taints"] = json!([{ "key": k, "value": v, "effect": e }]);
                }
                if cordoned {
                    node["spec"]["unschedulable"] = json!(true);
                }
                NodeInfo::from_json(&node).expect("a valid node")
            })
            .collect()
    })
}

fn requirement() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just(ZONE),
        Just("pool"),
        Just(HOSTNAME),
        Just("cores"),
        Just("example.com/instance-id"),
        Just("missing"),
    ];
    let value = prop_oneof![
        Just("z0"),
        Just("z1"),
        Just("p1"),
        Just("n3"),
        Just("n7"),
        Just("8"),
        Just("16"),
        Just("i-0002"),
        Just("x"),
    ];
    (
        key,
        prop_oneof![
            Just("In"),
            Just("NotIn"),
            Just("Exists"),
            Just("DoesNotExist"),
            Just("Gt"),
            Just("Lt")
        ],
        vec(value, 0..3),
    )
        .prop_map(|(k, op, values)| json!({ "key": k, "operator": op, "values": values }))
}

fn match_field() -> impl Strategy<Value = Value> {
    let names = vec(prop_oneof![Just("n1"), Just("n4"), Just("n9")], 1..3);
    (prop_oneof![Just("In"), Just("NotIn")], names).prop_map(
        |(op, values)| json!({ "key": "metadata.name", "operator": op, "values": values }),
    )
}

fn node_selector_term() -> impl Strategy<Value = Value> {
    (
        vec(requirement(), 0..3),
        option::of(vec(match_field(), 0..2)),
    )
        .prop_map(|(exprs, fields)| {
            let mut t = json!({ "matchExpressions": exprs });
            if let Some(f) = fields {
                t["matchFields"] = Value::Array(f);
            }
            t
        })
}

/// A pod spec's node selection: nodeSelector, required node affinity, tolerations.
fn scheduling() -> impl Strategy<Value = Value> {
    let toleration = prop_oneof![
        Just(json!({ "operator": "Exists" })),
        Just(json!({ "key": "dedicated", "operator": "Equal", "value": "db" })),
        Just(json!({ "key": "dedicated", "value": "web", "effect": "NoSchedule" })),
        Just(json!({ "key": "spot", "operator": "Exists", "effect": "NoExecute" })),
        Just(json!({ "key": "spot", "operator": "Exists", "effect": "NoSchedule" })),
        Just(
            json!({ "key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule" })
        ),
        Just(
            json!({ "key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute" })
        ),
    ];
    let selector_key = prop_oneof![
        Just(ZONE),
        Just("pool"),
        Just(HOSTNAME),
        Just("example.com/instance-id"),
    ];
    let selector_value = prop_oneof![Just("z1"), Just("p0"), Just("n2"), Just("i-0005")];
    (
        option::of(btree_map(selector_key, selector_value, 0..2)),
        option::of(vec(node_selector_term(), 0..3)),
        vec(toleration, 0..2),
    )
        .prop_map(|(selector, terms, tolerations)| {
            let mut spec = json!({ "tolerations": tolerations });
            if let Some(s) = selector {
                spec["nodeSelector"] = json!(s);
            }
            if let Some(t) = terms {
                spec["affinity"] = json!({ "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": t }
                } });
            }
            spec
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The grouped snapshot finds exactly the nodes, zones and label keys that filtering the
    /// nodes one by one finds.
    #[test]
    fn eligibility_matches_node_by_node_filtering(nodes in cluster(), spec in scheduling()) {
        use k8s_openapi::api::core::v1::{NodeSelectorTerm, Toleration};
        use spreadguard::engine::topology::Scheduling;
        use std::collections::BTreeMap;

        let policy = Policy::default();
        let topology = Topology::from_nodes(nodes.clone(), &policy);
        let selector: Option<BTreeMap<String, String>> =
            spec.get("nodeSelector").map(|s| serde_json::from_value(s.clone()).expect("a map"));
        let terms: Option<Vec<NodeSelectorTerm>> = spec
            .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
            .map(|t| serde_json::from_value(t.clone()).expect("terms"));
        let tolerations: Vec<Toleration> =
            serde_json::from_value(spec["tolerations"].clone()).expect("tolerations");
        let sched = Scheduling {
            node_selector: selector.as_ref(),
            required_terms: terms.as_deref(),
            tolerations: &tolerations,
        };
        let keys = [ZONE, HOSTNAME, "pool", "example.com/instance-id", "missing"];
        let got = topology.eligibility(&sched, &keys);

        let eligible: Vec<&NodeInfo> = nodes
            .iter()
            .filter(|n| reference::eligible(n, selector.as_ref(), terms.as_deref(), &tolerations))
            .collect();
        let mut zones = BTreeMap::new();
        for n in &eligible {
            if let Some(z) = n.labels.get(ZONE) {
                *zones.entry(z.clone()).or_insert(0usize) += 1;
            }
        }
        let unzoned = eligible.iter().filter(|n| !n.labels.contains_key(ZONE)).count();
        let present: Vec<Option<bool>> = keys
            .iter()
            .map(|k| Some(eligible.iter().any(|n| n.labels.contains_key(*k))))
            .collect();
        prop_assert_eq!(got.nodes, Some(eligible.len()), "eligible nodes");
        prop_assert_eq!(got.zones, zones.len(), "eligible zones");
        let sole = if zones.len() == 1 { zones.keys().next().map(String::as_str) } else { None };
        prop_assert_eq!(got.sole_zone.as_deref(), sole, "the one eligible zone");
        // The snapshot's memo gives the same answer, the first time and the second.
        let fields = spreadguard::engine::memo::SchedulingFields {
            node_selector: spec.get("nodeSelector"),
            required_node_affinity: spec.pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution"),
            tolerations: spec.get("tolerations"),
        };
        for _ in 0..2 {
            prop_assert_eq!(&*topology.eligibility_cached(&sched, &fields, &keys), &got, "memoised eligibility");
        }
        prop_assert_eq!(got.unzoned_nodes, unzoned, "unzoned nodes");
        prop_assert_eq!(&got.keys_present, &present, "keys present on eligible nodes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A snapshot shared by many decisions (as the webhook shares one) answers every workload
    /// exactly as a fresh snapshot would, whatever was decided on it before: whatever the
    /// snapshot remembers between decisions never leaks from one workload into another.
    #[test]
    fn a_shared_snapshot_decides_like_a_fresh_one(
        objects in vec(workload(), 1..8),
        (nodes, policy) in topology_and_policy(),
    ) {
        let shared = match nodes {
            Some(nodes) => Topology::from_nodes(nodes, &policy),
            None => Topology::assumed(&policy),
        };
        let summary = |d: &Decision| {
            (
                format!("{:?}", d.findings),
                serde_json::to_string(&d.patch).unwrap_or_default(),
            )
        };
        for object in objects.iter().chain(objects.iter().rev()) {
            let on_shared = decide(Input::new(object), &shared, &policy);
            // A clone starts with nothing remembered.
            let on_fresh = decide(Input::new(object), &shared.clone(), &policy);
            prop_assert_eq!(summary(&on_shared), summary(&on_fresh));
        }
    }
}
