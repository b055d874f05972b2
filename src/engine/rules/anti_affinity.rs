//! HA002, HA003, and the anti-affinity half of HA004 and HA005.

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::well_known::HOSTNAME_KEY;
use crate::engine::workload::AntiAffinityTerm;

use super::own_pods_selected;

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for term in ctx.workload.anti_affinity_terms() {
        check_term(ctx, &term, out);
    }
}

fn check_term(ctx: &Context<'_>, t: &AntiAffinityTerm<'_>, out: &mut Vec<Finding>) {
    let key = t.term.topology_key.as_str();
    let what = format!("{} (topologyKey {key})", t.describe());
    // What the findings are about, whatever the term's position in the list (computed only
    // when there is a finding).
    let about = || {
        format!(
            "{}:{}",
            if t.required { "required" } else { "preferred" },
            serde_json::to_string(t.term).unwrap_or_default()
        )
    };
    let mut push = |f: Finding| out.push(f.about(about()));
    let selects_own = match own_pods_selected(
        t.term.label_selector.as_ref(),
        &ctx.workload.pod_labels,
        &what,
    ) {
        Ok(()) => ctx.term_covers_own_namespace(t.term),
        Err(finding) => {
            push(finding);
            false
        }
    };
    if ctx.key_present(key) == Some(false) && ctx.eligible_nodes() != Some(0) {
        let nodes = ctx
            .eligible_nodes()
            .map(|n| format!("none of the {n} eligible nodes"))
            .unwrap_or("no eligible node".into());
        if t.required {
            push(Finding::deny(
                RuleId::HA005,
                format!(
                    "{what}: {nodes} carries label {key}, so the required term constrains nothing"
                ),
            ));
        } else {
            push(Finding::warn(
                RuleId::HA005,
                format!("{what}: {nodes} carries label {key}, so the term is inert"),
            ));
        }
        return;
    }
    if !t.required || !selects_own {
        return;
    }
    let replicas = ctx.replicas;
    if ctx.policy.is_zone_key(key) {
        let zones = ctx.eligible_zones() as i64;
        if zones > 0 && replicas > zones {
            out.push(Finding::deny(
                RuleId::HA002,
                format!(
                    "{}, {}: required zone anti-affinity ({key}) allows one pod per zone and leaves {} Pending",
                    plural(replicas, "replica", "replicas"),
                    ctx.eligible_zones_text(),
                    plural(replicas - zones, "pod", "pods"),
                ),
            )
            .about(format!("{}|replicas={replicas}", about())));
        }
    } else if key == HOSTNAME_KEY
        && let Some(nodes) = ctx.eligible_nodes()
    {
        let nodes = nodes as i64;
        let pools = ctx.fitting_templates();
        if replicas > nodes && !pools.is_empty() {
            // A node pool adds a node for each pod that finds none: node counts are no ceiling.
            out.push(Finding::info(
                RuleId::HA003,
                format!(
                    "{}, {} now: required hostname anti-affinity allows one pod per node, and {} can add nodes, so {} for a new node rather than staying Pending",
                    plural(replicas, "replica", "replicas"),
                    plural(nodes, "eligible node", "eligible nodes"),
                    pools.join(", "),
                    plural(replicas - nodes, "pod waits", "pods wait"),
                ),
            )
            .about(format!("{}|replicas={replicas}", about())));
        } else if nodes > 0 && replicas > nodes {
            out.push(Finding::deny(
                RuleId::HA003,
                format!(
                    "{}, {}: required hostname anti-affinity allows one pod per node and leaves {} Pending",
                    plural(replicas, "replica", "replicas"),
                    plural(nodes, "eligible node", "eligible nodes"),
                    plural(replicas - nodes, "pod", "pods"),
                ),
            )
            .about(format!("{}|replicas={replicas}", about())));
        }
    }
}
