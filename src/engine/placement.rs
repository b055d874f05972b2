//! Where a workload's replicas are expected to land over its eligible zones, as its zone
//! constraints make the scheduler place them, and what the loss of the worst zone leaves.
//!
//! [`place`] is the arithmetic on plain inputs (replicas, zone names, the zone rules);
//! [`for_workload`] reads the rules off a workload, counting what spreadguard injects into
//! it, so that the prediction holds for the object as it will be stored. Both the webhook
//! and `audit` get the prediction from [`decide`](super::decide), which calls it once.
//!
//! - A required zone anti-affinity term that selects the workload's own pods: one replica
//!   per zone, the rest Pending. Guaranteed.
//! - A `DoNotSchedule` zone spread of `maxSkew` k: when the global minimum stays 0 for good
//!   (fewer counted domains than `minDomains`, or a domain the constraint counts that the pod
//!   cannot use: a tainted zone under the default `nodeTaintsPolicy: Ignore`), each zone is
//!   capped at k and the rest stay Pending. With k = 1 the counts differ by at most one, as
//!   when every zone is at its cap: guaranteed. Otherwise the filter only bounds the largest
//!   zone, and the scheduler's scores ignore `DoNotSchedule` spreads: with a soft zone rule
//!   beside it the spread is expected even, without one the counts are the scheduler's pick
//!   (shown on the real scheduler: 6 pods at maxSkew 2 went 3, 2, 1), so the prediction is
//!   the worst the filter admits (bounded): the largest zone at most
//!   ⌊(n − k) / zones⌋ + k, the rest even.
//! - A `ScheduleAnyway` zone spread or a preferred zone anti-affinity term: the scheduler's
//!   scores favour the emptiest zone, so an even spread is expected, not promised.
//! - Required pod affinity to its own pods on the zone key: every replica joins the first
//!   one's zone (capped by a hard spread or anti-affinity). Guaranteed.
//! - Nothing on a zone key: unconstrained; nothing keeps every replica out of one zone.
//!
//! Which zone gets the odd replica is the scheduler's choice: here the first zones in name
//! order do.

use std::collections::BTreeMap;

use serde::Serialize;

use super::context::Context;
use super::mutation::{self, Injection};
use super::policy::WhenUnsatisfiable;
use super::rules::own_pods_selected;
use super::stateful;
use super::workload::WorkloadKind;

/// One constraint on how replicas lie over zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneRule {
    /// A topology spread constraint on the zone key.
    Spread {
        max_skew: i64,
        min_domains: Option<i64>,
        /// `DoNotSchedule`.
        hard: bool,
        /// The zones the constraint counts (its inclusion policies applied), when more than
        /// the eligible ones: the extra ones hold 0 pods for good. `None`: the eligible ones.
        counted: Option<usize>,
    },
    /// A pod anti-affinity term on the zone key that selects the workload's own pods.
    AntiAffinity {
        /// `requiredDuringScheduling...`.
        hard: bool,
    },
    /// Required pod affinity on the zone key to the workload's own pods: every replica in the
    /// first one's zone.
    Together,
}

/// How far the predicted counts can be relied on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Basis {
    /// Hard constraints force the counts (up to which zones get the odd replicas).
    Guaranteed,
    /// Soft constraints: the scheduler's scores aim for these counts.
    Expected,
    /// A hard spread with slack and nothing that scores zones: the largest zone is at most
    /// what is shown (the worst the filter admits), the rest is the scheduler's pick.
    Bounded,
    /// Nothing spreads the replicas over zones: one zone may hold them all.
    Unconstrained,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Guaranteed => "guaranteed",
            Basis::Expected => "expected",
            Basis::Bounded => "bounded",
            Basis::Unconstrained => "unconstrained",
        }
    }
}

/// The predicted placement of one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub replicas: i64,
    /// Replicas per eligible zone, in zone name order; empty when unconstrained.
    pub zones: Vec<(String, i64)>,
    /// Replicas the constraints leave Pending.
    pub pending: i64,
    pub basis: Basis,
    /// Eligible zones (also when unconstrained).
    pub eligible_zones: usize,
    /// The rules it was predicted from (to predict another count, [`Placement::for_count`]).
    pub rules: Vec<ZoneRule>,
}

/// The replicas a zone loss takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneShare {
    /// `None` when unconstrained: any zone may be the one.
    pub zone: Option<String>,
    pub replicas: i64,
}

/// What losing the worst zone does (`worstZoneLoss` in reports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneLoss {
    /// `None` (`null`) when unconstrained: any zone may hold them all.
    pub zone: Option<String>,
    /// Running replicas it takes.
    pub lost: i64,
    /// Running replicas it leaves.
    pub left: i64,
}

/// A placement as reports show it (`results[].placement`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementReport {
    /// Zone → predicted replicas; empty when unconstrained.
    pub zones: BTreeMap<String, i64>,
    pub worst_zone_loss: ZoneLoss,
    /// True only when hard constraints force the counts.
    pub guaranteed: bool,
    /// `guaranteed`, `expected` or `unconstrained`.
    pub basis: Basis,
    pub replicas: i64,
    /// Replicas the constraints leave Pending.
    pub pending: i64,
    pub eligible_zones: usize,
}

// === impl Placement ===

impl Placement {
    /// Replicas that find a node.
    pub fn placed(&self) -> i64 {
        self.replicas - self.pending
    }

    /// The same rules over the same zones for `replicas` pods (the ready pods of a running
    /// workload, say); unconstrained stays unconstrained.
    pub fn for_count(&self, replicas: i64) -> Placement {
        if replicas == self.replicas {
            // The same count: this prediction (which may come from bound volumes, not rules).
            return self.clone();
        }
        let names: Vec<&str> = self.zones.iter().map(|(z, _)| z.as_str()).collect();
        match self.basis {
            Basis::Unconstrained => Placement {
                replicas,
                ..self.clone()
            },
            _ => place(replicas, &names, &self.rules),
        }
    }

    /// The zone holding the most replicas (the first such zone in name order); when
    /// unconstrained, every replica that may be placed.
    pub fn largest_zone(&self) -> ZoneShare {
        match self.basis {
            Basis::Unconstrained => ZoneShare {
                zone: None,
                replicas: self.placed(),
            },
            _ => {
                let mut best: Option<&(String, i64)> = None;
                for z in &self.zones {
                    if best.is_none_or(|b| z.1 > b.1) {
                        best = Some(z);
                    }
                }
                ZoneShare {
                    zone: best.map(|b| b.0.clone()),
                    replicas: best.map_or(0, |b| b.1),
                }
            }
        }
    }

    /// What losing the zone with the most replicas takes and leaves.
    pub fn worst_zone_loss(&self) -> ZoneLoss {
        let share = self.largest_zone();
        ZoneLoss {
            left: self.placed() - share.replicas,
            zone: share.zone,
            lost: share.replicas,
        }
    }

    /// `a=2,b=1,c=1`, or `unconstrained`.
    pub fn describe_zones(&self) -> String {
        if self.basis == Basis::Unconstrained {
            return "unconstrained".to_owned();
        }
        self.zones
            .iter()
            .map(|(z, n)| format!("{z}={n}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn report(&self) -> PlacementReport {
        PlacementReport {
            zones: self.zones.iter().cloned().collect(),
            worst_zone_loss: self.worst_zone_loss(),
            guaranteed: self.basis == Basis::Guaranteed,
            basis: self.basis,
            replicas: self.replicas,
            pending: self.pending,
            eligible_zones: self.eligible_zones,
        }
    }
}

/// Places `replicas` over the eligible `zones` (names, in name order) under `rules`.
pub fn place(replicas: i64, zones: &[&str], rules: &[ZoneRule]) -> Placement {
    let replicas = replicas.max(0);
    let z = zones.len() as i64;
    let unconstrained = Placement {
        replicas,
        zones: Vec::new(),
        pending: 0,
        basis: Basis::Unconstrained,
        eligible_zones: zones.len(),
        rules: rules.to_vec(),
    };
    if z == 0 {
        return unconstrained;
    }
    let together = rules.contains(&ZoneRule::Together);
    let HardLimits { cap, skew } = hard_limits(rules, z);
    if together {
        let placed = cap.map_or(replicas, |c| replicas.min(c));
        let counts = zones
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), if i == 0 { placed } else { 0 }))
            .collect();
        return Placement {
            replicas,
            zones: counts,
            pending: replicas - placed,
            basis: Basis::Guaranteed,
            eligible_zones: zones.len(),
            rules: rules.to_vec(),
        };
    }
    let soft = rules.iter().any(|r| {
        matches!(
            r,
            ZoneRule::Spread { hard: false, .. } | ZoneRule::AntiAffinity { hard: false }
        )
    });
    if skew.is_none() && !soft {
        return unconstrained;
    }
    let placed = cap.map_or(replicas, |c| replicas.min(c * z));
    let full = cap.is_some_and(|c| placed == c * z);
    let basis = match skew {
        Some(1) => Basis::Guaranteed,
        Some(_) if full => Basis::Guaranteed,
        Some(_) if !soft => Basis::Bounded,
        _ => Basis::Expected,
    };
    let counts = match basis {
        Basis::Bounded => {
            // The most one zone can get: the cap, and where the global minimum can rise, a
            // skew of k above the least the others can hold.
            let mut most = cap.unwrap_or(placed).min(placed);
            if let Some(k) = unpinned_skew(rules, z, together) {
                let bound = if placed <= k {
                    placed
                } else {
                    (placed - k) / z + k
                };
                most = most.min(bound);
            }
            let rest = even(placed - most, z - 1);
            std::iter::once(most).chain(rest).collect::<Vec<_>>()
        }
        _ => even(placed, z).collect(),
    };
    let counts = zones
        .iter()
        .zip(counts)
        .map(|(name, n)| (name.to_string(), n))
        .collect();
    Placement {
        replicas,
        zones: counts,
        pending: replicas - placed,
        basis,
        eligible_zones: zones.len(),
        rules: rules.to_vec(),
    }
}

/// What the hard rules allow per zone.
struct HardLimits {
    /// The most pods one zone may hold (when the global minimum stays 0).
    cap: Option<i64>,
    /// The tightest hard skew.
    skew: Option<i64>,
}

fn hard_limits(rules: &[ZoneRule], z: i64) -> HardLimits {
    let hard_anti = rules
        .iter()
        .any(|r| matches!(r, ZoneRule::AntiAffinity { hard: true }));
    let together = rules.contains(&ZoneRule::Together);
    let mut cap: Option<i64> = hard_anti.then_some(1);
    let mut skew: Option<i64> = hard_anti.then_some(1);
    for r in rules {
        if let ZoneRule::Spread {
            max_skew,
            min_domains,
            hard: true,
            counted,
        } = *r
        {
            let k = max_skew.max(1);
            let counted = counted.map_or(z, |c| (c as i64).max(z));
            skew = Some(skew.map_or(k, |s| s.min(k)));
            // Fewer counted domains than minDomains, or a counted domain the pod cannot
            // use (it keeps 0 pods): the global minimum is 0, so no zone passes k.
            // Gathered in one zone, the empty others do the same.
            if min_domains.is_some_and(|m| m > counted) || counted > z || (together && counted > 1)
            {
                cap = Some(cap.map_or(k, |c| c.min(k)));
            }
        }
    }
    HardLimits { cap, skew }
}

/// `n` spread as evenly as possible over `parts`, the larger shares first.
fn even(n: i64, parts: i64) -> impl Iterator<Item = i64> {
    let (base, extra) = if parts > 0 {
        (n / parts, n % parts)
    } else {
        (0, 0)
    };
    (0..parts).map(move |i| base + i64::from(i < extra))
}

/// The tightest `maxSkew` of the hard spreads whose global minimum can rise (not pinned at 0).
fn unpinned_skew(rules: &[ZoneRule], z: i64, together: bool) -> Option<i64> {
    rules
        .iter()
        .filter_map(|r| match *r {
            ZoneRule::Spread {
                max_skew,
                min_domains,
                hard: true,
                counted,
            } => {
                let counted = counted.map_or(z, |c| (c as i64).max(z));
                let pinned = min_domains.is_some_and(|m| m > counted)
                    || counted > z
                    || (together && counted > 1);
                (!pinned).then_some(max_skew.max(1))
            }
            _ => None,
        })
        .min()
}

/// The zone rules of a workload: its own constraints on a zone key that its eligible nodes
/// carry and that select its own pods, plus what spreadguard injects into it (`injected`).
pub fn zone_rules(ctx: &Context<'_>, injected: &[Injection]) -> Vec<ZoneRule> {
    let w = ctx.workload;
    let policy = ctx.policy;
    let counts = |key: &str| policy.is_zone_key(key) && ctx.key_present(key) != Some(false);
    let sched = w.scheduling();
    let counted = |key: &str, honor_affinity: bool, honor_taints: bool| {
        ctx.topology
            .spread_domains(&sched, key, honor_affinity, honor_taints)
            .map(|d| d.counted)
    };
    let mut rules = Vec::new();
    for c in &w.scheduling.spread {
        if counts(&c.topology_key)
            && own_pods_selected(c.label_selector.as_ref(), &w.pod_labels, "").is_ok()
        {
            let hard = c.when_unsatisfiable == "DoNotSchedule";
            rules.push(ZoneRule::Spread {
                max_skew: i64::from(c.max_skew).max(1),
                min_domains: c.min_domains.map(i64::from),
                hard,
                counted: if hard {
                    counted(
                        &c.topology_key,
                        c.node_affinity_policy.as_deref() != Some("Ignore"),
                        c.node_taints_policy.as_deref() == Some("Honor"),
                    )
                } else {
                    None
                },
            });
        }
    }
    for t in w.anti_affinity_terms() {
        if counts(&t.term.topology_key)
            && ctx.term_covers_own_namespace(t.term)
            && own_pods_selected(t.term.label_selector.as_ref(), &w.pod_labels, "").is_ok()
        {
            rules.push(ZoneRule::AntiAffinity { hard: t.required });
        }
    }
    for (_, term) in w.required_affinity_terms() {
        if counts(&term.topology_key) && ctx.term_selects_own_pods(term) {
            rules.push(ZoneRule::Together);
        }
    }
    for i in injected {
        match i {
            Injection::ZoneSpread => {
                // As injected: hard or soft as `statefulZoneSpread` decides for a StatefulSet,
                // nodeTaintsPolicy Honor, nodeAffinityPolicy by default.
                let (when, _) = stateful::zone_spread(ctx);
                let hard = when == WhenUnsatisfiable::DoNotSchedule;
                rules.push(ZoneRule::Spread {
                    max_skew: i64::from(policy.max_skew).max(1),
                    min_domains: mutation::min_domains(ctx, when),
                    hard,
                    counted: if hard {
                        counted(ctx.topology.zone_key(), true, true)
                    } else {
                        None
                    },
                });
            }
            Injection::ZoneAntiAffinity => rules.push(ZoneRule::AntiAffinity { hard: false }),
            Injection::NodeSpread | Injection::LegacyZoneKey => {}
        }
    }
    rules
}

/// The predicted placement of the workload in `ctx` once `injected` is added to it. The
/// eligible zones include those where only a node template the pod fits can add a node.
pub fn for_workload(ctx: &Context<'_>, injected: &[Injection]) -> Placement {
    let zones: Vec<&str> = ctx
        .eligibility
        .zone_names
        .iter()
        .map(String::as_str)
        .collect();
    let rules = zone_rules(ctx, injected);
    pinned_by_volumes(ctx, &zones, &rules).unwrap_or_else(|| place(ctx.replicas, &zones, &rules))
}

/// A StatefulSet some replicas of which have bound volumes that pin them to an eligible
/// zone: there they run (the VolumeBinding filter), whatever the constraints say.
/// `None` when no replica is pinned, or when a pinned zone is not eligible.
fn pinned_by_volumes(ctx: &Context<'_>, zones: &[&str], rules: &[ZoneRule]) -> Option<Placement> {
    if ctx.workload.kind != WorkloadKind::StatefulSet || ctx.replicas < 1 {
        return None;
    }
    let by_ordinal = &ctx.stateful().pinned;
    let pinned: Vec<&str> = (0..ctx.replicas)
        .filter_map(|ordinal| by_ordinal.get(&ordinal).map(String::as_str))
        .collect();
    let first = (0..pinned.len() as i64).all(|o| by_ordinal.contains_key(&o));
    beside_pinned(ctx.replicas, &pinned, first, zones, rules)
}

/// The placement of `replicas` of which those in `pinned` (a zone each) are bound there:
/// every one pinned is guaranteed; otherwise the free ones go where the constraints send
/// them beside the pinned ones, one by one into the emptiest zone the hard rules still
/// allow (what PodTopologySpread's filter and score, and zone anti-affinity, do given the
/// pods already there). `None` (the constraints alone decide) when nothing is pinned, a
/// pinned zone is not eligible, the pinned replicas alone already break a hard rule (which
/// of them stays Pending is the order of creation's), nothing constrains the free ones,
/// or the hard rules allow several answers (`maxSkew` above 1 without scores, pods
/// gathered by affinity). `first`: the pinned replicas are the lowest ordinals, so they run
/// before the free ones are scheduled; otherwise a free one may take the room a pinned one
/// needs under a hard rule, and the counts are only expected.
pub fn beside_pinned(
    replicas: i64,
    pinned: &[&str],
    first: bool,
    zones: &[&str],
    rules: &[ZoneRule],
) -> Option<Placement> {
    if pinned.is_empty() {
        return None;
    }
    let mut counts: Vec<(String, i64)> = zones.iter().map(|z| ((*z).to_owned(), 0)).collect();
    for zone in pinned {
        counts.iter_mut().find(|(z, _)| z == zone)?.1 += 1;
    }
    let free = replicas - pinned.len() as i64;
    let placement = |counts, pending, basis| Placement {
        replicas,
        zones: counts,
        pending,
        basis,
        eligible_zones: zones.len(),
        rules: rules.to_vec(),
    };
    if free <= 0 {
        return Some(placement(counts, 0, Basis::Guaranteed));
    }
    let basis = match place(replicas, zones, rules).basis {
        Basis::Guaranteed if first => Basis::Guaranteed,
        Basis::Guaranteed | Basis::Expected => Basis::Expected,
        Basis::Bounded | Basis::Unconstrained => return None,
    };
    if rules.contains(&ZoneRule::Together) {
        return None;
    }
    let HardLimits { cap, skew } = hard_limits(rules, zones.len() as i64);
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let least = counts.iter().map(|(_, n)| *n).min().unwrap_or(0);
    if skew.is_some_and(|k| most - least > k) || cap.is_some_and(|c| most > c) {
        return None;
    }
    let mut pending = 0;
    for _ in 0..free {
        let emptiest = counts
            .iter_mut()
            .filter(|(_, n)| cap.is_none_or(|c| *n < c))
            .min_by_key(|(_, n)| *n);
        match emptiest {
            Some((_, n)) => *n += 1,
            None => pending += 1,
        }
    }
    Some(placement(counts, pending, basis))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &[&str] = &["a", "b", "c"];

    #[test]
    fn free_replicas_fill_the_emptiest_zones_beside_the_pinned_ones() {
        let soft = spread(1, None, false);
        let hard = spread(1, None, true);
        let anti = ZoneRule::AntiAffinity { hard: true };
        // (replicas, pinned, pinned first, rules) → (zone counts, pending, basis); None: the
        // constraints alone decide.
        type Case = (i64, &'static [&'static str], bool, Vec<ZoneRule>);
        type Want = Option<(Vec<i64>, i64, Basis)>;
        let cases: Vec<(Case, Want)> = vec![
            // Two restored into b: a soft spread sends the third elsewhere, b keeps two.
            (
                (3, &["b", "b"], true, vec![soft]),
                Some((vec![1, 2, 0], 0, Basis::Expected)),
            ),
            // One pinned to c, hard skew 1: one per zone, forced.
            (
                (3, &["c"], true, vec![hard]),
                Some((vec![1, 1, 1], 0, Basis::Guaranteed)),
            ),
            // The same with the pinned replica created last: a free one may take its room.
            (
                (3, &["c"], false, vec![hard]),
                Some((vec![1, 1, 1], 0, Basis::Expected)),
            ),
            // Two pinned to b already break skew 1: which stays Pending is the order's.
            ((3, &["b", "b"], true, vec![hard]), None),
            // Every replica pinned: there they run, whatever the rules.
            (
                (2, &["a", "a"], true, vec![hard]),
                Some((vec![2, 0, 0], 0, Basis::Guaranteed)),
            ),
            // Nothing places the free ones.
            ((3, &["a"], true, vec![]), None),
            // Hard zone anti-affinity: one per zone, the fourth Pending.
            (
                (4, &["a"], true, vec![anti]),
                Some((vec![1, 1, 1], 1, Basis::Guaranteed)),
            ),
            // A pinned zone that is not eligible.
            ((3, &["d"], true, vec![soft]), None),
            // Nothing pinned.
            ((3, &[], true, vec![soft]), None),
        ];
        for ((replicas, pinned, first, rules), want) in cases {
            let got = beside_pinned(replicas, pinned, first, ABC, &rules)
                .map(|p| (counts(&p), p.pending, p.basis));
            assert_eq!(
                got, want,
                "{replicas} replicas, pinned {pinned:?}, {rules:?}"
            );
        }
    }

    fn counts(p: &Placement) -> Vec<i64> {
        p.zones.iter().map(|(_, n)| *n).collect()
    }

    fn spread(max_skew: i64, min_domains: Option<i64>, hard: bool) -> ZoneRule {
        ZoneRule::Spread {
            max_skew,
            min_domains,
            hard,
            counted: None,
        }
    }

    #[test]
    fn a_hard_spread_of_skew_1_is_as_even_as_possible_and_guaranteed() {
        for (n, want) in [
            (6, vec![2, 2, 2]),
            (7, vec![3, 2, 2]),
            (8, vec![3, 3, 2]),
            (2, vec![1, 1, 0]),
        ] {
            let p = place(n, ABC, &[spread(1, None, true)]);
            assert_eq!(counts(&p), want, "{n}");
            assert_eq!((p.pending, p.basis), (0, Basis::Guaranteed));
        }
    }

    #[test]
    fn a_wider_skew_alone_bounds_the_largest_zone_and_with_scores_is_expected_even() {
        // Nothing scores zones: the worst the filter admits, 3 in one zone (the real
        // scheduler did 3, 2, 1).
        let p = place(6, ABC, &[spread(2, None, true)]);
        assert_eq!((counts(&p), p.basis), (vec![3, 2, 1], Basis::Bounded));
        assert_eq!(p.worst_zone_loss().left, 3);
        let p = place(8, ABC, &[spread(2, None, true)]);
        assert_eq!(counts(&p), vec![4, 2, 2]);
        // A soft zone rule beside it scores zones evenly.
        let p = place(
            6,
            ABC,
            &[
                spread(2, None, true),
                ZoneRule::AntiAffinity { hard: false },
            ],
        );
        assert_eq!((counts(&p), p.basis), (vec![2, 2, 2], Basis::Expected));
        // The tightest hard spread decides.
        let p = place(6, ABC, &[spread(3, None, true), spread(1, None, true)]);
        assert_eq!(p.basis, Basis::Guaranteed);
    }

    #[test]
    fn min_domains_above_the_zones_caps_each_zone_at_max_skew() {
        // minDomains 4 over 3 zones: the global minimum is 0, so each zone takes at most
        // maxSkew pods; 7 replicas with maxSkew 2: 6 placed, 1 Pending.
        let p = place(7, ABC, &[spread(2, Some(4), true)]);
        assert_eq!((counts(&p), p.pending), (vec![2, 2, 2], 1));
        assert_eq!(p.basis, Basis::Guaranteed, "every zone is at its cap");
        // Under the cap the counts are not forced: the largest zone is bounded by it.
        let p = place(4, ABC, &[spread(2, Some(4), true)]);
        assert_eq!(
            (counts(&p), p.pending, p.basis),
            (vec![2, 1, 1], 0, Basis::Bounded)
        );
        // minDomains at or below the zones changes nothing.
        let p = place(7, ABC, &[spread(1, Some(3), true)]);
        assert_eq!((counts(&p), p.pending), (vec![3, 2, 2], 0));
        // A soft spread ignores minDomains.
        let p = place(7, ABC, &[spread(1, Some(5), false)]);
        assert_eq!((counts(&p), p.pending), (vec![3, 2, 2], 0));
    }

    #[test]
    fn hard_anti_affinity_puts_one_per_zone_and_leaves_the_rest_pending() {
        let p = place(5, ABC, &[ZoneRule::AntiAffinity { hard: true }]);
        assert_eq!(
            (counts(&p), p.pending, p.basis),
            (vec![1, 1, 1], 2, Basis::Guaranteed)
        );
        let p = place(
            2,
            ABC,
            &[
                ZoneRule::AntiAffinity { hard: true },
                spread(1, None, false),
            ],
        );
        assert_eq!((counts(&p), p.pending), (vec![1, 1, 0], 0));
    }

    #[test]
    fn soft_rules_are_expected_and_nothing_is_unconstrained() {
        for rule in [
            spread(1, None, false),
            ZoneRule::AntiAffinity { hard: false },
        ] {
            let p = place(5, ABC, &[rule]);
            assert_eq!(
                (counts(&p), p.basis),
                (vec![2, 2, 1], Basis::Expected),
                "{rule:?}"
            );
        }
        let p = place(6, ABC, &[]);
        assert_eq!(p.basis, Basis::Unconstrained);
        assert!(p.zones.is_empty());
        assert_eq!(
            p.largest_zone(),
            ZoneShare {
                zone: None,
                replicas: 6
            }
        );
        assert_eq!(
            place(3, &[], &[spread(1, None, true)]).basis,
            Basis::Unconstrained
        );
    }

    #[test]
    fn the_largest_zone_is_the_first_with_the_most() {
        let p = place(7, ABC, &[spread(1, None, true)]);
        assert_eq!(
            p.largest_zone(),
            ZoneShare {
                zone: Some("a".into()),
                replicas: 3
            }
        );
        let p = place(0, ABC, &[spread(1, None, true)]);
        assert_eq!(p.largest_zone().replicas, 0);
    }

    /// Against a brute-force model of the DoNotSchedule filter: placing pods one at a time,
    /// each into the zone with the fewest pods among those the skew (and the minDomains cap)
    /// admits, gives the same sorted counts and the same number Pending.
    #[test]
    fn hard_spreads_agree_with_a_pod_by_pod_model() {
        fn model(n: i64, z: usize, skew: i64, min_domains: Option<i64>) -> (Vec<i64>, i64) {
            let mut counts = vec![0i64; z];
            let mut pending = 0;
            for _ in 0..n {
                let global_min = if min_domains.is_some_and(|m| m > z as i64) {
                    0
                } else {
                    *counts.iter().min().unwrap()
                };
                let admitted = (0..z)
                    .filter(|i| counts[*i] + 1 - global_min <= skew)
                    .min_by_key(|i| (counts[*i], *i));
                match admitted {
                    Some(i) => counts[i] += 1,
                    None => pending += 1,
                }
            }
            counts.sort_unstable_by(|a, b| b.cmp(a));
            (counts, pending)
        }
        let names = ["a", "b", "c", "d", "e"];
        for z in 1..=5 {
            for n in 0..=20 {
                for skew in 1..=3 {
                    for min_domains in [None, Some(z as i64), Some(z as i64 + 1)] {
                        let p = place(n, &names[..z], &[spread(skew, min_domains, true)]);
                        let mut got = counts(&p);
                        got.sort_unstable_by(|a, b| b.cmp(a));
                        let (want, pending) = model(n, z, skew, min_domains);
                        let case = format!("n={n} z={z} skew={skew} minDomains={min_domains:?}");
                        assert_eq!(p.pending, pending, "{case}");
                        if p.basis == Basis::Bounded {
                            // The worst case: at least as full as the even model's fullest.
                            assert!(got[0] >= want[0], "{case}: {got:?} vs {want:?}");
                        } else {
                            assert_eq!(got, want, "{case}");
                        }
                    }
                }
            }
        }
    }
}
