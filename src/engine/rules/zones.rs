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
    // Node templates the pod fits can add nodes where there are none now (a pool scaling
    // from zero): then the cluster is not out of nodes for it.
    let fits_template = !ctx.eligibility.templates.is_empty();
    if known_nodes && topo.summary().nodes == 0 && !fits_template {
        out.push(Finding::warn(
            RuleId::HA006,
            format!(
                "no node to run on: the cluster has 0 nodes{}, so pods stay Pending until nodes join and no zone spread can be computed",
                if topo.templates().len() > 0 {
                    " and no node template the pod fits"
                } else {
                    ""
                }
            ),
        ));
    } else if ctx.eligible_nodes() == Some(0) && eligible_zones == 0 && !fits_template {
        out.push(Finding::warn(
            RuleId::HA006,
            format!(
                "no node to run on: 0 of {} eligible under {}",
                plural(topo.summary().nodes as i64, "node", "nodes"),
                ctx.placement_causes()
            ),
        ));
    } else if cluster_zones >= 2 && eligible_zones == 1 {
        let zone = ctx.eligibility.sole_zone.as_deref().unwrap_or_default();
        out.push(Finding::deny(
            RuleId::HA006,
            format!(
                "1 of {cluster_zones} zones eligible: losing {zone} takes down all {}; pinned by {}{}",
                plural(ctx.replicas.max(1), "replica", "replicas"),
                ctx.placement_causes(),
                ctx.template_zones_suffix(),
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

    if let Some(short) = &ctx.eligibility.short_lived
        && eligible_zones >= 2
    {
        out.push(Finding::warn(
            RuleId::HA027,
            format!(
                "{} of {} eligible only for {}s: zone {}'s nodes carry {}, tolerated with tolerationSeconds {}, then pods are evicted",
                ctx.eligibility.short_lived_zones,
                plural(eligible_zones as i64, "zone", "zones"),
                short.seconds,
                short.zone,
                short.taint,
                short.seconds,
            ),
        )
        .about(format!("short-lived:{}", short.zone)));
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
                    "deprecated zone label: nodes carry {STANDARD_ZONE_KEY}, not {LEGACY_ZONE_KEY}: {fix}; used in {}",
                    places.join(", "),
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
