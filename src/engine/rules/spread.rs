//! The spread-constraint half of HA004 and HA005, HA007, HA023 and the maxSkew half of HA027.

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::mutation::Injection;
use crate::engine::topology::Unusable;
use crate::engine::well_known::{HOSTNAME_KEY, INJECTED_ANNOTATION};

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
    let selects_own =
        match own_pods_selected(c.label_selector.as_ref(), &ctx.workload.pod_labels, &what) {
            Ok(()) => true,
            Err(finding) => {
                out.push(finding.about(about()));
                false
            }
        };
    let hard = c.when_unsatisfiable == "DoNotSchedule";
    if ctx.key_present(key) == Some(false) && ctx.eligible_nodes() != Some(0) {
        let nodes = ctx
            .eligible_nodes()
            .map(|n| format!("none of the {n} eligible nodes"))
            .unwrap_or("no eligible node".into());
        if hard {
            out.push(Finding::deny(
                RuleId::HA005,
                format!(
                    "no pod can schedule: {nodes} carries label {key}, and the constraint is DoNotSchedule; {what}"
                ),
            ).about(about()));
        } else {
            out.push(
                Finding::warn(
                    RuleId::HA005,
                    format!("inert: {nodes} carries label {key}; {what}"),
                )
                .about(about()),
            );
        }
        return;
    }
    if !hard || !selects_own {
        return;
    }
    let max_skew = i64::from(c.max_skew.max(1));
    let replicas = ctx.replicas;
    if ctx.policy.is_zone_key(key)
        && replicas >= 2
        && max_skew >= replicas
        && !injected_per_policy(ctx, c)
    {
        out.push(Finding::warn(
            RuleId::HA027,
            format!(
                "spreads nothing: maxSkew {max_skew} with {} lets every pod share one zone; set maxSkew 1; {what}",
                plural(replicas, "replica", "replicas"),
            ),
        ).about(format!("{}|replicas={replicas}", about())));
    }
    if !ignored_domains(ctx, c, &what, out) {
        min_domains_cap(ctx, c, &what, out);
    }
}

/// Whether spreadguard injected this zone spread as the policy says: then the policy's
/// `maxSkew` is what it is, and the finding would be about spreadguard's own patch.
fn injected_per_policy(ctx: &Context<'_>, c: &TopologySpreadConstraint) -> bool {
    let recorded = ctx
        .workload
        .annotation(INJECTED_ANNOTATION)
        .is_some_and(|a| {
            a.split(',')
                .any(|i| i.trim() == Injection::ZoneSpread.as_str())
        });
    recorded
        && i64::from(c.max_skew) == i64::from(ctx.policy.max_skew)
        && c.when_unsatisfiable == ctx.policy.when_unsatisfiable.as_str()
        && c.node_taints_policy.as_deref() == Some("Honor")
}

fn about(c: &TopologySpreadConstraint) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// HA007: a `minDomains` above the eligible zones treats the global minimum as 0, capping
/// each zone at `maxSkew`.
fn min_domains_cap(
    ctx: &Context<'_>,
    c: &TopologySpreadConstraint,
    what: &str,
    out: &mut Vec<Finding>,
) {
    if !ctx.policy.is_zone_key(&c.topology_key) {
        return;
    }
    // A zone a node template the pod fits can add nodes to will be a domain once the
    // autoscaler adds one (that is what minDomains waits for): the eligible zones count it.
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
                "{}, {} fit ({} Pending): minDomains {min_domains} > {} caps each zone at maxSkew {max_skew}; {what}",
                plural(ctx.replicas, "replica", "replicas"),
                cap,
                ctx.replicas - cap,
                plural(zones, "eligible zone", "eligible zones"),
            ),
        )
        .about(format!("{}|replicas={}", about(c), ctx.replicas)));
    }
}

/// HA023: a domain the constraint counts but the pod cannot use keeps the global minimum at
/// 0, which caps every usable domain at `maxSkew`. `nodeTaintsPolicy` defaults to `Ignore`,
/// so tainted and cordoned nodes count; `nodeAffinityPolicy: Ignore` counts nodes the pod's
/// node selection excludes. Returns whether it fired.
fn ignored_domains(
    ctx: &Context<'_>,
    c: &TopologySpreadConstraint,
    what: &str,
    out: &mut Vec<Finding>,
) -> bool {
    let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
    let honor_taints = c.node_taints_policy.as_deref() == Some("Honor");
    if honor_affinity && honor_taints {
        return false;
    }
    let sched = ctx.workload.scheduling();
    let key = c.topology_key.as_str();
    let Some(domains) = ctx
        .topology
        .spread_domains(&sched, key, honor_affinity, honor_taints)
    else {
        return false;
    };
    let Some((domain, why)) = domains.unusable else {
        return false;
    };
    if domains.usable == 0 {
        return false;
    }
    let max_skew = i64::from(c.max_skew.max(1));
    let cap = domains.usable as i64 * max_skew;
    let replicas = ctx.replicas;
    if replicas <= cap {
        return false;
    }
    let place = if ctx.policy.is_zone_key(key) {
        format!("zone {domain}")
    } else if key == HOSTNAME_KEY {
        format!("node {domain}")
    } else {
        format!("{key}={domain}")
    };
    let (cause, fix) = match why {
        Unusable::Taints => ("is tainted but counted", "nodeTaintsPolicy: Honor"),
        Unusable::NodeSelection => ("is not selected but counted", "nodeAffinityPolicy: Honor"),
    };
    out.push(Finding::deny(
        RuleId::HA023,
        format!(
            "{}, {cap} fit ({} Pending): {place} {cause}; set {fix}; it holds 0 pods for good, so each of the {} is capped at maxSkew {max_skew}; {what}",
            plural(replicas, "replica", "replicas"),
            replicas - cap,
            plural(domains.usable as i64, "usable domain", "usable domains"),
        ),
    )
    .about(format!("{}|replicas={replicas}", about(c))));
    true
}
