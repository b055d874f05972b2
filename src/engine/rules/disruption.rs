//! HA012–HA016: autoscalers and disruption budgets.
//!
//! HPAs and PDBs are judged on their own at admission (HA012, HA013), since the workload
//! they concern may come before or after them; a workload is judged against the budgets
//! that select its pods (HA013, HA014, HA015); `audit` alone, which sees everything at once,
//! reports budgets that select nothing (HA016).

use serde_json::Value;

use crate::engine::autoscaler::Autoscaler;
use crate::engine::budget::{Budget, IntOrPercent, Requirement};
use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, Severity, plural};
use crate::engine::placement::Placement;
use crate::engine::policy::Policy;
use crate::engine::workload::WorkloadKind;
use crate::engine::workload::at;

/// HA012 for a HorizontalPodAutoscaler; HA000 when it cannot be read.
pub fn autoscaler(object: &Value, policy: &Policy) -> Vec<Finding> {
    let hpa = match Autoscaler::from_json(object) {
        Ok(hpa) => hpa,
        Err(reason) => {
            return vec![Finding::warn(
                RuleId::HA000,
                format!("not checked: {reason}"),
            )];
        }
    };
    let min = i64::from(policy.min_replicas);
    let target = format!("{} {}", hpa.target.kind, hpa.target.name);
    if hpa.min_replicas == 0 {
        return vec![Finding::info(
            RuleId::HA012,
            format!("minReplicas 0 for {target} (scale to zero): not checked"),
        )];
    }
    if hpa.min_replicas >= min {
        return Vec::new();
    }
    vec![Finding::deny(
        RuleId::HA012,
        format!(
            "minReplicas {} for {target}, policy requires at least {min}: the autoscaler may scale it to {}, and losing one zone or node then takes it down",
            hpa.min_replicas,
            plural(hpa.min_replicas, "replica", "replicas"),
        ),
    )]
}

/// HA013 for a PodDisruptionBudget judged on its own numbers (the workloads it selects are
/// not known at admission); HA000 when it cannot be read.
pub fn budget(object: &Value) -> Vec<Finding> {
    let b = match Budget::from_json(object) {
        Ok(b) => b,
        Err(reason) => {
            return vec![Finding::warn(
                RuleId::HA000,
                format!("not checked: {reason}"),
            )];
        }
    };
    if !b.blocks_every_eviction() {
        return Vec::new();
    }
    let message = match b.requirement {
        Requirement::Neither => "allows no voluntary eviction: neither minAvailable nor maxUnavailable is set, so the disruption controller expects no pods; every node drain and upgrade blocks on the pods it selects; allow at least 1 (maxUnavailable 1, or minAvailable below the replicas)".to_owned(),
        r => format!(
            "{r} allows no voluntary eviction of the pods it selects: every node drain and upgrade blocks on them; allow at least 1 (maxUnavailable 1, or minAvailable below the replicas)"
        ),
    };
    vec![Finding::deny(RuleId::HA013, message)]
}

/// HA013, HA014 and HA015 for a workload (`object`, as `ctx` reads it), against the budgets
/// that select its pods (`None`: budgets unknown). `placement` is the one the stored object
/// will have (with what spreadguard injects).
pub fn workload(
    ctx: &Context<'_>,
    object: &Value,
    placement: &Placement,
    budgets: Option<&[&Budget]>,
    out: &mut Vec<Finding>,
) {
    let Some(budgets) = budgets else {
        return;
    };
    let replicas = ctx.replicas;
    if replicas == 0 {
        return;
    }
    if budgets.is_empty() {
        if replicas >= 2
            && ctx
                .policy
                .severity_for(RuleId::HA015, Severity::Info)
                .is_some()
        {
            out.push(Finding::info(
                RuleId::HA015,
                format!(
                    "{} and no PodDisruptionBudget selects its pods: a node drain or upgrade may evict them all at once",
                    plural(replicas, "replica", "replicas")
                ),
            ));
        }
        return;
    }
    if let [first, second, ..] = budgets {
        out.push(Finding::warn(
            RuleId::HA013,
            format!(
                "{} PodDisruptionBudgets ({}, {}{}) select its pods: the eviction API refuses to evict a pod with more than one, so every node drain and upgrade blocks on them",
                budgets.len(),
                first.name,
                second.name,
                if budgets.len() > 2 { ", …" } else { "" }
            ),
        ));
        return;
    }
    let b = budgets[0];
    let allowed = b.allowed_unavailable(replicas);
    let requirement = describe(b, replicas);
    if allowed == 0 {
        out.push(Finding::warn(
            RuleId::HA013,
            format!(
                "PodDisruptionBudget {} ({requirement}) allows no voluntary eviction of its {}: every node drain and upgrade blocks on them",
                b.name,
                plural(replicas, "replica", "replicas"),
            ),
        ));
        return;
    }
    if placement.eligible_zones < 2 {
        return; // a single zone: zone loss is HA006/HA009's business
    }
    let share = placement.largest_zone();
    if share.replicas <= allowed {
        return;
    }
    let zones = plural(placement.eligible_zones as i64, "zone", "zones");
    let head = match &share.zone {
        Some(zone) => format!(
            "{} over {zones}, {requirement}: zone {zone} holds {}, the budget allows {allowed} unavailable",
            plural(replicas, "replica", "replicas"),
            share.replicas,
        ),
        None => format!(
            "{} over {zones} with nothing spreading them, {requirement}: one zone may hold all {}, the budget allows {allowed} unavailable",
            plural(replicas, "replica", "replicas"),
            share.replicas,
        ),
    };
    let stuck = stuck_because(ctx, object);
    let tail = if stuck.is_empty() {
        "until replacements are running elsewhere every voluntary eviction of it blocks".to_owned()
    } else {
        format!(
            "{} keep{} replacements from moving, so a drain of that zone blocks for good",
            stuck.join(" and "),
            if stuck.len() == 1 { "s" } else { "" }
        )
    };
    out.push(Finding::warn(
        RuleId::HA014,
        format!(
            "{head}; losing or draining that zone puts the workload below PodDisruptionBudget {}, and {tail}",
            b.name
        ),
    ));
}

/// HA016: a budget that selects no workload of its namespace (audit only: at admission the
/// workload may simply come later).
pub fn unmatched(budget: &Budget) -> Finding {
    let what = match &budget.selector {
        None => "has no selector, so it".to_owned(),
        Some(s) => format!("selector {}", crate::engine::labels::describe_selector(s)),
    };
    Finding::warn(
        RuleId::HA016,
        format!(
            "{what} matches no workload in namespace {}: it protects nothing (a typo in a label?)",
            if budget.namespace.is_empty() {
                "(none)"
            } else {
                &budget.namespace
            }
        ),
    )
}

/// `minAvailable 5`, `maxUnavailable 10% (1 of 6, rounded up)`.
fn describe(b: &Budget, replicas: i64) -> String {
    match b.requirement {
        Requirement::MinAvailable(v @ IntOrPercent::Percent(_))
        | Requirement::MaxUnavailable(v @ IntOrPercent::Percent(_)) => format!(
            "{} ({} of {replicas}, rounded up)",
            b.requirement,
            v.scaled(replicas)
        ),
        r => r.to_string(),
    }
}

/// What keeps a drained zone's replacements from starting in another zone.
fn stuck_because(ctx: &Context<'_>, object: &Value) -> Vec<&'static str> {
    // (Required zone anti-affinity puts one replica per zone, which is never more than a
    // budget that allows any eviction at all: no HA014 to explain.)
    let mut reasons = Vec::new();
    let w = ctx.workload;
    let counts_cordoned = w.scheduling.spread.iter().any(|c| {
        c.when_unsatisfiable == "DoNotSchedule"
            && ctx.policy.is_zone_key(&c.topology_key)
            && c.node_taints_policy.as_deref() != Some("Honor")
    });
    if counts_cordoned {
        reasons.push(
            "a DoNotSchedule zone spread without nodeTaintsPolicy: Honor (the drained zone still counts, so moving exceeds maxSkew)",
        );
    }
    let claims = w.kind == WorkloadKind::StatefulSet
        && at(object, &["spec", "volumeClaimTemplates"])
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
    if claims {
        reasons.push("volumeClaimTemplates (a pod's volume usually stays in its zone)");
    }
    reasons
}
