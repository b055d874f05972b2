//! The spread-constraint half of HA004 and HA005, and HA007.

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};

use super::own_pods_selected;

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for (i, c) in ctx.workload.scheduling.spread.iter().enumerate() {
        check_constraint(ctx, i, c, out);
    }
}

fn check_constraint(
    ctx: &Context<'_>,
    i: usize,
    c: &TopologySpreadConstraint,
    out: &mut Vec<Finding>,
) {
    let key = c.topology_key.as_str();
    let what = format!("topologySpreadConstraints[{i}] (topologyKey {key})");
    // What the findings are about, whatever the constraint's position (computed only when
    // there is a finding).
    let about = || serde_json::to_string(c).unwrap_or_default();
    if let Err(finding) =
        own_pods_selected(c.label_selector.as_ref(), &ctx.workload.pod_labels, &what)
    {
        out.push(finding.about(about()));
    }
    let hard = c.when_unsatisfiable == "DoNotSchedule";
    if ctx.key_present(key) == Some(false) && ctx.eligible_nodes() != Some(0) {
        let nodes = ctx
            .eligible_nodes()
            .map(|n| format!("none of the {n} eligible nodes"))
            .unwrap_or("no eligible node".into());
        if hard {
            out.push(
                Finding::deny(
                    RuleId::HA005,
                    format!(
                        "{what}: {nodes} carries label {key}, so with DoNotSchedule no pod can schedule"
                    ),
                )
                .about(about()),
            );
        } else {
            out.push(Finding::warn(
                RuleId::HA005,
                format!("{what}: {nodes} carries label {key}, so the constraint is inert"),
            ));
        }
        return;
    }
    if !hard || !ctx.policy.is_zone_key(key) {
        return;
    }
    let zones = ctx.eligible_zones() as i64;
    let Some(min_domains) = c.min_domains.map(i64::from) else {
        return;
    };
    let max_skew = i64::from(c.max_skew.max(1));
    let cap = zones * max_skew;
    if min_domains > zones && ctx.replicas > cap {
        out.push(Finding::deny(
            RuleId::HA007,
            format!(
                "{what}: minDomains {min_domains} > {}, so each zone is capped at maxSkew {max_skew}: {} fit and {} of {} stay Pending",
                plural(zones, "eligible zone", "eligible zones"),
                plural(cap, "pod", "pods"),
                ctx.replicas - cap,
                plural(ctx.replicas, "replica", "replicas"),
            ),
        )
        .about(format!("{}|replicas={}", about(), ctx.replicas)));
    }
}
