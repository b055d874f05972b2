//! What a zone loss takes: per workload from its running pods (`audit --cluster`), with its
//! PodDisruptionBudget's view of a zone drain and HA022 when the pods lie worse than the
//! constraints promise; and per zone over the whole cluster, the workloads that would lose
//! every ready pod or fall below their budget.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::pods::Tally;
use crate::engine::BudgetSeen;
use crate::engine::placement::{Basis, PlacementReport};

/// The replicas the loss of one zone takes and leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneLoss {
    pub zone: String,
    pub lost: u32,
    pub left: u32,
}

/// Where a running workload's pods are now (`results[].actual`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actual {
    /// Ready pods per zone, every zone of the cluster listed (0 where none runs).
    pub zones: BTreeMap<String, u32>,
    /// Ready pods in all, including `unzoned`.
    pub ready: u32,
    /// Ready pods on nodes without a zone label (or nodes the topology does not know).
    pub unzoned: u32,
    /// Pods on a node but not ready (starting, failing probes).
    pub not_ready: u32,
    /// Pods no node was found for yet (Pending).
    pub unscheduled: u32,
    /// Losing the zone with the most ready pods; absent when no pod is ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_zone_loss: Option<ZoneLoss>,
    /// The PodDisruptionBudget's view of draining or losing each zone, when exactly one
    /// budget selects the workload's pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
}

/// What one PodDisruptionBudget makes of a zone drain, from the ready pods now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    pub name: String,
    /// Ready pods the budget requires (the disruption controller's `desiredHealthy`).
    pub desired_healthy: i64,
    /// Evictions it allows now: ready pods above `desiredHealthy`.
    pub disruptions_allowed: i64,
    /// Per zone with ready pods: what draining or losing it does.
    pub zones: BTreeMap<String, ZoneDrain>,
}

/// Draining (or losing) one zone, as the budget sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneDrain {
    /// Ready pods in the zone.
    pub ready: u32,
    /// How many a drain may evict before the budget blocks it (until replacements are ready
    /// elsewhere).
    pub evictable: i64,
    /// Ready pods left elsewhere if the zone is lost.
    pub left: i64,
    /// Whether losing the zone leaves fewer than `desiredHealthy`.
    pub below_budget: bool,
}

impl BudgetView {
    /// The view of `budget` over `actual`'s ready pods, `replicas` being the workload's
    /// effective replicas (what `allowedUnavailable` was computed for).
    pub fn new(budget: &BudgetSeen, replicas: i64, actual: &Actual) -> BudgetView {
        let desired_healthy = (replicas - budget.allowed_unavailable).max(0);
        let ready = i64::from(actual.ready);
        let disruptions_allowed = (ready - desired_healthy).max(0);
        let zones = actual
            .zones
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(z, n)| {
                let left = ready - i64::from(*n);
                (
                    z.clone(),
                    ZoneDrain {
                        ready: *n,
                        evictable: disruptions_allowed.min(i64::from(*n)),
                        left,
                        below_budget: left < desired_healthy,
                    },
                )
            })
            .collect();
        BudgetView {
            name: budget.name.clone(),
            desired_healthy,
            disruptions_allowed,
            zones,
        }
    }
}

impl Actual {
    pub fn from_tally(zones: &[String], tally: &Tally) -> Actual {
        let unzoned = tally.ready.get(zones.len()).copied().unwrap_or(0);
        let per_zone: BTreeMap<String, u32> = zones
            .iter()
            .zip(&tally.ready)
            .map(|(z, n)| (z.clone(), *n))
            .collect();
        let ready = tally.ready.iter().sum();
        Actual {
            worst_zone_loss: worst(&per_zone, ready),
            zones: per_zone,
            ready,
            unzoned,
            not_ready: tally.not_ready,
            unscheduled: tally.unscheduled,
            budget: None,
        }
    }

    /// A workload none of whose pods runs: every zone at 0.
    pub fn none(zones: &[String]) -> Actual {
        Actual {
            zones: zones.iter().map(|z| (z.clone(), 0)).collect(),
            ..Actual::default()
        }
    }
}

/// The zone whose loss takes the most of `ready` (the first in name order on a tie).
pub fn worst(per_zone: &BTreeMap<String, u32>, ready: u32) -> Option<ZoneLoss> {
    if ready == 0 {
        return None;
    }
    let mut best: Option<(&String, u32)> = None;
    for (z, n) in per_zone {
        if best.is_none_or(|(_, b)| *n > b) {
            best = Some((z, *n));
        }
    }
    best.map(|(zone, lost)| ZoneLoss {
        zone: zone.clone(),
        lost,
        left: ready - lost,
    })
}

/// A workload named in the cluster summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Its ready pods now, all of them in the zone.
    pub ready: u32,
}

/// What the loss of one zone does to what runs (`zoneLoss.<zone>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSummary {
    /// Workloads with ready pods in the zone.
    pub workloads: usize,
    /// Ready pods in the zone, over all judged workloads.
    pub ready_pods: u64,
    /// Workloads whose every ready pod is in the zone: the zone's loss leaves them none.
    pub lose_all: Vec<WorkloadRef>,
    /// Workloads the zone's loss leaves with some ready pods but fewer than their
    /// PodDisruptionBudget requires.
    pub below_budget: Vec<BelowBudget>,
}

/// A workload that losing a zone takes below its PodDisruptionBudget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BelowBudget {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub budget: String,
    /// Ready pods left after the zone's loss.
    pub left: i64,
    pub desired_healthy: i64,
}

/// The predicted placement of one workload as the table prints it under its verdict:
/// `placement: a=2,b=1,c=1 (expected); losing a leaves 2 of 4`.
pub fn placement_line(p: &PlacementReport) -> String {
    let w = &p.worst_zone_loss;
    let placed = p.replicas - p.pending;
    let mut line = match p.basis {
        Basis::Unconstrained => format!(
            "placement: unconstrained over {} zone{}; losing one may leave {} of {placed}",
            p.eligible_zones,
            if p.eligible_zones == 1 { "" } else { "s" },
            w.left
        ),
        basis => format!(
            "placement: {} ({}); losing {} leaves {} of {placed}",
            per_zone(&p.zones),
            basis.as_str(),
            w.zone.as_deref().unwrap_or("a zone"),
            w.left
        ),
    };
    if p.pending > 0 {
        let _ = write!(line, ", {} Pending", p.pending);
    }
    line
}

/// `a=2,b=1,c=0`.
pub fn per_zone<N: std::fmt::Display>(zones: &BTreeMap<String, N>) -> String {
    zones
        .iter()
        .map(|(z, n)| format!("{z}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Workloads named per zone in the table; the rest are counted.
const NAMED_PER_ZONE: usize = 10;

/// The cluster summary as the table prints it first.
pub fn summary_table(summary: &BTreeMap<String, ZoneSummary>) -> String {
    let mut out = String::from("If a zone is lost (ready pods now):\n");
    for (zone, s) in summary {
        let _ = writeln!(
            out,
            "  {zone}: {} ready pod{} of {} workload{}; {} would lose every ready pod, {} fall below their PodDisruptionBudget",
            s.ready_pods,
            if s.ready_pods == 1 { "" } else { "s" },
            s.workloads,
            if s.workloads == 1 { "" } else { "s" },
            s.lose_all.len(),
            s.below_budget.len(),
        );
        for w in s.lose_all.iter().take(NAMED_PER_ZONE) {
            let ns = w
                .namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            let _ = writeln!(out, "      {} {ns}{} ({} ready)", w.kind, w.name, w.ready);
        }
        if s.lose_all.len() > NAMED_PER_ZONE {
            let _ = writeln!(
                out,
                "      … and {} more",
                s.lose_all.len() - NAMED_PER_ZONE
            );
        }
        for w in s.below_budget.iter().take(NAMED_PER_ZONE) {
            let ns = w
                .namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "      {} {ns}{} ({} left, PodDisruptionBudget {} requires {})",
                w.kind, w.name, w.left, w.budget, w.desired_healthy
            );
        }
        if s.below_budget.len() > NAMED_PER_ZONE {
            let _ = writeln!(
                out,
                "      … and {} more below their budget",
                s.below_budget.len() - NAMED_PER_ZONE
            );
        }
    }
    out
}

/// The budget's view of a zone drain as the table prints it under the running line.
pub fn budget_line(b: &BudgetView) -> String {
    let mut line = format!(
        "budget {}: {} must stay ready, {} eviction{} allowed now",
        b.name,
        b.desired_healthy,
        b.disruptions_allowed,
        if b.disruptions_allowed == 1 { "" } else { "s" }
    );
    let below: Vec<String> = b
        .zones
        .iter()
        .filter(|(_, d)| d.below_budget)
        .map(|(z, d)| format!("{z} (leaves {})", d.left))
        .collect();
    if below.is_empty() {
        line.push_str("; no single zone's loss takes it below");
    } else {
        let _ = write!(line, "; losing {} takes it below", below.join(", "));
    }
    let blocked: Vec<String> = b
        .zones
        .iter()
        .filter(|(_, d)| d.evictable < i64::from(d.ready))
        .map(|(z, d)| format!("{z} after {} of {}", d.evictable, d.ready))
        .collect();
    if !blocked.is_empty() {
        let _ = write!(line, "; a drain blocks in {}", blocked.join(", "));
    }
    line
}

/// The actual placement of one workload as the table prints it under its verdict.
pub fn actual_line(a: &Actual) -> String {
    let mut line = format!("running: {} ready ({})", a.ready, per_zone(&a.zones));
    if a.unzoned > 0 {
        let _ = write!(line, ", {} on unzoned nodes", a.unzoned);
    }
    if a.not_ready > 0 {
        let _ = write!(line, ", {} not ready", a.not_ready);
    }
    if a.unscheduled > 0 {
        let _ = write!(line, ", {} unscheduled", a.unscheduled);
    }
    if let Some(w) = &a.worst_zone_loss {
        let _ = write!(line, "; losing {} leaves {} of {}", w.zone, w.left, a.ready);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_zone_is_the_one_with_most_ready_pods() {
        let zones = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let a = Actual::from_tally(
            &zones,
            &Tally {
                ready: vec![1, 3, 3, 1],
                not_ready: 2,
                unscheduled: 1,
            },
        );
        assert_eq!(a.ready, 8);
        assert_eq!(a.unzoned, 1);
        assert_eq!(
            a.worst_zone_loss,
            Some(ZoneLoss {
                zone: "b".into(),
                lost: 3,
                left: 5
            })
        );
        assert_eq!(Actual::none(&zones).worst_zone_loss, None);
        assert_eq!(per_zone(&a.zones), "a=1,b=3,c=3");
    }
}
