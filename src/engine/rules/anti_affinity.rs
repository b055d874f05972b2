//! HA002, HA003, and the anti-affinity half of HA004 and HA005.
//!
//! A term aimed at another workload's pods (`app: db` in a `web` Deployment, a noisy
//! neighbour) is a standard pattern and no finding: it keeps this workload away from those
//! pods and says nothing about how its own pods spread. Only a term with no selector, or one
//! whose selector names keys the pods do not carry at all (more likely a typo than a target),
//! is HA004.

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::labels::{describe_labels, describe_selector};
use crate::engine::well_known::HOSTNAME_KEY;
use crate::engine::workload::AntiAffinityTerm;

use super::{Selection, selection};

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for term in ctx.workload.anti_affinity_terms() {
        check_term(ctx, &term, out);
    }
}

fn check_term(ctx: &Context<'_>, t: &AntiAffinityTerm<'_>, out: &mut Vec<Finding>) {
    let key = t.term.topology_key.as_str();
    let what = format!("{} (topologyKey {key})", t.describe());
    let own = &ctx.workload.pod_labels;
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
    let selects_own = match selection(t.term.label_selector.as_ref(), own) {
        Selection::Own => ctx.term_covers_own_namespace(t.term),
        Selection::Other => false,
        Selection::Missing => {
            push(Finding::deny(
                RuleId::HA004,
                format!("keeps nothing apart: {what} has no labelSelector, so it matches no pods"),
            ));
            false
        }
        Selection::Invalid(e) => {
            push(Finding::deny(
                RuleId::HA004,
                format!("keeps nothing apart: {what} labelSelector is invalid ({e})"),
            ));
            false
        }
        Selection::Stray(keys) => {
            let selector = t.term.label_selector.as_ref().expect("a selector");
            push(Finding::warn(
                RuleId::HA004,
                format!(
                    "selects {} but the pods carry {}: no pod of this workload has {} (a typo?); {what}",
                    describe_selector(selector),
                    describe_labels(own),
                    keys.join(", "),
                ),
            ));
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
                    "constrains nothing: {nodes} carries label {key}, so the required term is void; {what}"
                ),
            ));
        } else {
            push(Finding::warn(
                RuleId::HA005,
                format!("inert: {nodes} carries label {key}; {what}"),
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
                    "{}, {}: {} stay{} Pending, as required zone anti-affinity ({key}) allows one pod per zone{}",
                    plural(replicas, "replica", "replicas"),
                    plural(zones, "eligible zone", "eligible zones"),
                    plural(replicas - zones, "pod", "pods"),
                    if replicas - zones == 1 { "s" } else { "" },
                    ctx.template_zones_suffix(),
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
                    "{}, {}: {} stay{} Pending, as required hostname anti-affinity allows one pod per node",
                    plural(replicas, "replica", "replicas"),
                    plural(nodes, "eligible node", "eligible nodes"),
                    plural(replicas - nodes, "pod", "pods"),
                    if replicas - nodes == 1 { "s" } else { "" },
                ),
            )
            .about(format!("{}|replicas={replicas}", about())));
        }
    }
}
