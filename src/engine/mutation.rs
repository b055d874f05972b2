//! What spreadguard injects, as typed RFC 6902 operations against the raw object.
//!
//! Only ever adds: a constraint the user wrote is never changed (except the opt-in legacy
//! zone key rewrite). Missing parents are added before their children, and every path is
//! built from tokens, so `/` and `~` in keys are escaped.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::context::Context;
use super::finding::{Finding, RuleId};
use super::policy::{InjectMinDomains, WhenUnsatisfiable};
use super::well_known::{HOSTNAME_KEY, INJECTED_ANNOTATION, LEGACY_ZONE_KEY, STANDARD_ZONE_KEY};
use super::workload::WorkloadKind;

/// One thing spreadguard adds to a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injection {
    ZoneSpread,
    ZoneAntiAffinity,
    NodeSpread,
    LegacyZoneKey,
}

impl Injection {
    pub const ALL: &'static [Injection] = &[
        Injection::ZoneSpread,
        Injection::ZoneAntiAffinity,
        Injection::NodeSpread,
        Injection::LegacyZoneKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Injection::ZoneSpread => "zone-spread",
            Injection::ZoneAntiAffinity => "zone-anti-affinity",
            Injection::NodeSpread => "node-spread",
            Injection::LegacyZoneKey => "legacy-zone-key",
        }
    }
}

/// The patch for one workload and what it adds. `findings` receives HA011 when something
/// should be injected but the workload has no usable selector.
pub fn plan(
    ctx: &Context<'_>,
    findings: &mut Vec<Finding>,
    notes: &mut Vec<String>,
) -> (Vec<PatchOperation>, Vec<Injection>) {
    let w = ctx.workload;
    let policy = ctx.policy;
    let mut ops = Vec::new();
    let mut injected = Vec::new();
    let base_tokens = w.pod_spec_path.to_vec();
    let base = base_tokens.as_slice();

    let rewrite = policy.rewrite_legacy_zone_key && ctx.topology.carries_key(STANDARD_ZONE_KEY);
    fn rewritten(rewrite: bool, key: &str) -> &str {
        if rewrite && key == LEGACY_ZONE_KEY {
            STANDARD_ZONE_KEY
        } else {
            key
        }
    }

    if rewrite {
        let existing: Vec<(&str, &str)> = w
            .scheduling
            .spread
            .iter()
            .map(|c| (c.topology_key.as_str(), c.when_unsatisfiable.as_str()))
            .collect();
        for (i, c) in w.scheduling.spread.iter().enumerate() {
            let clash = existing.contains(&(STANDARD_ZONE_KEY, c.when_unsatisfiable.as_str()));
            if c.topology_key == LEGACY_ZONE_KEY && !clash {
                let idx = i.to_string();
                ops.push(replace(
                    path(base, &["topologySpreadConstraints", &idx, "topologyKey"]),
                    STANDARD_ZONE_KEY,
                ));
            }
        }
        // On nodes without the legacy label a required legacy term constrains nothing;
        // rewritten, it allows one pod per zone. Leave it when that would strand pods.
        let strands = ctx.replicas > ctx.eligible_zones() as i64;
        for t in w.anti_affinity_terms() {
            if t.term.topology_key == LEGACY_ZONE_KEY && !(t.required && strands) {
                let idx = t.index.to_string();
                let p = if t.required {
                    path(
                        base,
                        &[
                            "affinity",
                            "podAntiAffinity",
                            "requiredDuringSchedulingIgnoredDuringExecution",
                            &idx,
                            "topologyKey",
                        ],
                    )
                } else {
                    path(
                        base,
                        &[
                            "affinity",
                            "podAntiAffinity",
                            "preferredDuringSchedulingIgnoredDuringExecution",
                            &idx,
                            "podAffinityTerm",
                            "topologyKey",
                        ],
                    )
                };
                ops.push(replace(p, STANDARD_ZONE_KEY));
            }
        }
        if !ops.is_empty() {
            injected.push(Injection::LegacyZoneKey);
        }
    }

    let spread_keys = || {
        w.scheduling
            .spread
            .iter()
            .map(|c| rewritten(rewrite, &c.topology_key))
    };
    // An anti-affinity term aimed at another workload covers nothing of this one's spread.
    let term_keys = || {
        ctx.covering_anti_affinity_terms()
            .map(|t| rewritten(rewrite, &t.term.topology_key))
    };
    let zone_key = ctx.topology.zone_key();
    // A constraint on a key no eligible node carries is inert, and with DoNotSchedule it
    // keeps every pod Pending (HA005): never inject one.
    let carried =
        |key: &str| ctx.key_present(key) != Some(false) || ctx.eligible_nodes() == Some(0);
    let multi_zone = ctx.topology.zone_count() >= 2 && carried(zone_key);
    // The user's own zone constraints count only where the nodes carry their key: one on the
    // legacy key in a cluster that only labels `topology.kubernetes.io/zone` spreads nothing.
    let spreads_zones = |k: &str| policy.is_zone_key(k) && carried(k);
    let wants_zone_spread = multi_zone && !spread_keys().any(spreads_zones);
    let wants_zone_anti = multi_zone && !term_keys().any(spreads_zones);
    let wants_node_spread = policy.spread_across_nodes
        && carried(HOSTNAME_KEY)
        && !spread_keys().chain(term_keys()).any(|k| k == HOSTNAME_KEY);
    if !(wants_zone_spread || wants_zone_anti || wants_node_spread) {
        return finish(ctx, ops, injected);
    }
    let Some(selector) = w.spread_selector() else {
        let why = match w.kind {
            WorkloadKind::Pod => "the Pod has no labels",
            _ if w.selector.is_some() && !w.pod_labels.is_empty() => {
                "spec.selector is empty or does not select the pod template's labels"
            }
            _ => {
                "spec.selector or the pod template labels are missing or empty (a kustomize base?)"
            }
        };
        findings.push(Finding::warn(
            RuleId::HA011,
            format!("nothing injected: {why}, so no constraint could select its pods"),
        ));
        return finish(ctx, ops, injected);
    };

    let mut constraints = Vec::new();
    if wants_zone_spread {
        // A StatefulSet whose zonal volumes bind at first consumer: `statefulZoneSpread`.
        let (when, why) = super::stateful::zone_spread(ctx);
        notes.extend(why);
        let mut c = spread_constraint(ctx, zone_key, when, &selector);
        if let Some(min_domains) = min_domains(ctx, when) {
            c["minDomains"] = json!(min_domains);
        }
        constraints.push(c);
        injected.push(Injection::ZoneSpread);
    }
    if wants_node_spread {
        constraints.push(spread_constraint(
            ctx,
            HOSTNAME_KEY,
            WhenUnsatisfiable::ScheduleAnyway,
            &selector,
        ));
        injected.push(Injection::NodeSpread);
    }
    if !constraints.is_empty() {
        append_all(
            &mut ops,
            w.pod_spec,
            base,
            "topologySpreadConstraints",
            constraints,
        );
    }
    if wants_zone_anti {
        let term = json!({
            "weight": policy.anti_affinity_weight,
            "podAffinityTerm": { "labelSelector": selector, "topologyKey": zone_key },
        });
        add_soft_anti_affinity(&mut ops, w.pod_spec, base, term);
        injected.push(Injection::ZoneAntiAffinity);
    }
    finish(ctx, ops, injected)
}

/// `minDomains` for an injected zone spread whose `whenUnsatisfiable` is `when`, where it
/// helps (only `DoNotSchedule` spreads have one).
///
/// With fewer domains than `minDomains` the scheduler takes the global minimum as 0, capping
/// every zone at `maxSkew`. That is what makes pods wait for a zone that can gain nodes (a
/// node pool scaling from zero), and exactly what leaves replacement pods Pending when a
/// zone's nodes are gone in an outage. So by default (`injectMinDomains: auto`) it is
/// injected only when a node template the pod fits (the policy's `nodeTemplates`, Karpenter
/// NodePools) can add nodes to an eligible zone that has no eligible node now; the eligible
/// zones, which count those, are the value. `always` injects the eligible zones, `never`
/// never. Capped by the replicas.
pub(crate) fn min_domains(ctx: &Context<'_>, when: WhenUnsatisfiable) -> Option<i64> {
    if when != WhenUnsatisfiable::DoNotSchedule {
        return None;
    }
    let zones = match ctx.policy.inject_min_domains {
        InjectMinDomains::Never => return None,
        InjectMinDomains::Always => ctx.eligible_zones() as i64,
        InjectMinDomains::Auto if ctx.eligibility.template_only_zones == 0 => return None,
        InjectMinDomains::Auto => ctx.eligible_zones() as i64,
    };
    Some(zones.min(ctx.replicas)).filter(|n| *n > 1)
}

/// Records the injections in the workload's annotation (merged with what an earlier
/// admission recorded).
fn finish(
    ctx: &Context<'_>,
    mut ops: Vec<PatchOperation>,
    injected: Vec<Injection>,
) -> (Vec<PatchOperation>, Vec<Injection>) {
    if injected.is_empty() {
        return (ops, injected);
    }
    let mut items: Vec<&str> = ctx
        .workload
        .annotation(INJECTED_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for i in &injected {
        if !items.contains(&i.as_str()) {
            items.push(i.as_str());
        }
    }
    let value = Value::String(items.join(","));
    match ctx.workload.annotations {
        Some(_) => ops.push(add(
            path(&["metadata", "annotations"], &[INJECTED_ANNOTATION]),
            value,
        )),
        None => ops.push(add(
            path(&["metadata", "annotations"], &[]),
            json!({ INJECTED_ANNOTATION: value }),
        )),
    }
    (ops, injected)
}

fn spread_constraint(
    ctx: &Context<'_>,
    key: &str,
    when: WhenUnsatisfiable,
    selector: &Value,
) -> Value {
    let mut c = json!({
        "maxSkew": ctx.policy.max_skew,
        "topologyKey": key,
        "whenUnsatisfiable": when.as_str(),
        "labelSelector": selector,
    });
    if ctx.policy.match_pod_template_hash
        && let Some(label) = ctx.workload.kind.revision_label(ctx.policy)
        && !selector_has(selector, label)
    {
        c["matchLabelKeys"] = json!([label]);
    }
    c["nodeTaintsPolicy"] = json!("Honor");
    c
}

/// Whether a selector already pins `label` (then `matchLabelKeys` on it would be redundant).
fn selector_has(selector: &Value, label: &str) -> bool {
    selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(label))
        || selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_some_and(|e| {
                e.iter()
                    .any(|x| x.get("key").and_then(Value::as_str) == Some(label))
            })
}

/// Adds `items` to the list `field` of `parent`: appended one by one if the list exists,
/// created whole otherwise.
fn append_all(
    ops: &mut Vec<PatchOperation>,
    parent: &Map<String, Value>,
    base: &[&str],
    field: &str,
    items: Vec<Value>,
) {
    match parent.get(field) {
        Some(Value::Array(_)) => {
            for item in items {
                ops.push(add(path(base, &[field, "-"]), item));
            }
        }
        _ => ops.push(add(path(base, &[field]), Value::Array(items))),
    }
}

fn add_soft_anti_affinity(
    ops: &mut Vec<PatchOperation>,
    pod_spec: &Map<String, Value>,
    base: &[&str],
    term: Value,
) {
    const SOFT: &str = "preferredDuringSchedulingIgnoredDuringExecution";
    let affinity = pod_spec.get("affinity").and_then(Value::as_object);
    let anti = affinity
        .and_then(|a| a.get("podAntiAffinity"))
        .and_then(Value::as_object);
    match (affinity, anti) {
        (None, _) => ops.push(add(
            path(base, &["affinity"]),
            json!({ "podAntiAffinity": { SOFT: [term] } }),
        )),
        (Some(_), None) => ops.push(add(
            path(base, &["affinity", "podAntiAffinity"]),
            json!({ SOFT: [term] }),
        )),
        (Some(_), Some(anti)) => {
            let mut b: Vec<&str> = base.to_vec();
            b.extend(["affinity", "podAntiAffinity"]);
            append_all(ops, anti, &b, SOFT, vec![term]);
        }
    }
}

fn path(base: &[&str], rest: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(base.iter().chain(rest).copied())
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn replace(path: PointerBuf, value: &str) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path,
        value: Value::String(value.to_owned()),
    })
}
