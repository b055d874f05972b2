//! HA006, HA008, HA009, HA010: what the cluster's and the workload's zones allow.

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::topology::TopologySource;
use crate::engine::well_known::{LEGACY_ZONE_KEY, STANDARD_ZONE_KEY};

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let topo = ctx.topology;
    let cluster_zones = topo.zone_count();
    let known_nodes = topo.source() == TopologySource::Nodes;
    if cluster_zones <= 1 && (!known_nodes || topo.summary().nodes > 0) {
        let message = match topo.summary().zones.keys().next() {
            Some(zone) => format!(
                "the cluster has a single zone ({zone} under {}): zone HA is impossible, so pods are spread across nodes instead",
                topo.zone_key()
            ),
            None => format!(
                "no node carries a zone label ({}): zone HA is impossible, so pods are spread across nodes instead",
                ctx.policy.zone_labels.join(", ")
            ),
        };
        out.push(Finding::info(RuleId::HA009, message));
    }

    let eligible_zones = ctx.eligible_zones();
    if ctx.eligible_nodes() == Some(0)
        && ctx.eligible_zones() == 0
        && ctx.eligibility.templates.is_empty()
    {
        out.push(Finding::warn(
            RuleId::HA006,
            format!(
                "no node is eligible under {}: its pods cannot schedule anywhere",
                ctx.placement_causes()
            ),
        ));
    } else if cluster_zones >= 2 && eligible_zones == 1 {
        let zone = ctx.eligibility.sole_zone.as_deref().unwrap_or_default();
        out.push(Finding::deny(
            RuleId::HA006,
            format!(
                "eligible nodes lie in 1 of the cluster's {cluster_zones} zones ({zone}{}), pinned by {}: losing {zone} takes down all {}",
                ctx.template_zones_note()
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default(),
                ctx.placement_causes(),
                plural(ctx.replicas.max(1), "replica", "replicas"),
            ),
        )
        .about(format!("zone={zone}")));
    }

    if cluster_zones >= 1 && ctx.eligibility.unzoned_nodes > 0 {
        let total = ctx
            .eligible_nodes()
            .unwrap_or(ctx.eligibility.unzoned_nodes);
        out.push(Finding::warn(
            RuleId::HA010,
            format!(
                "{} of {} carry no zone label ({}): pods placed there fall outside zone spread",
                ctx.eligibility.unzoned_nodes,
                plural(total as i64, "eligible node", "eligible nodes"),
                topo.zone_key()
            ),
        ));
    }

    if topo.carries_key(STANDARD_ZONE_KEY) {
        let places = legacy_key_uses(ctx);
        if !places.is_empty() {
            let fix = if ctx.policy.rewrite_legacy_zone_key {
                "spreadguard rewrites the topology keys"
            } else {
                "replace it"
            };
            out.push(Finding::warn(
                RuleId::HA008,
                format!(
                    "{} use{} the deprecated label {LEGACY_ZONE_KEY}, but nodes carry {STANDARD_ZONE_KEY}: {fix}",
                    places.join(", "),
                    if places.len() == 1 { "s" } else { "" }
                ),
            ));
        }
    }
}

fn legacy_key_uses(ctx: &Context<'_>) -> Vec<String> {
    let w = ctx.workload;
    let mut places = Vec::new();
    for (i, c) in w.scheduling.spread.iter().enumerate() {
        if c.topology_key == LEGACY_ZONE_KEY {
            places.push(format!("topologySpreadConstraints[{i}]"));
        }
    }
    for t in w.anti_affinity_terms() {
        if t.term.topology_key == LEGACY_ZONE_KEY {
            places.push(t.describe());
        }
    }
    if w.scheduling
        .node_selector
        .as_ref()
        .is_some_and(|s| s.contains_key(LEGACY_ZONE_KEY))
    {
        places.push("nodeSelector".to_owned());
    }
    let sched = w.scheduling();
    if sched.required_terms.into_iter().flatten().any(|t| {
        t.match_expressions
            .iter()
            .flatten()
            .any(|e| e.key == LEGACY_ZONE_KEY)
    }) {
        places.push("nodeAffinity".to_owned());
    }
    places
}
