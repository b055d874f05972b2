//! Where a workload's replicas are expected to land over its eligible zones, as its zone
//! constraints make the scheduler place them.
//!
//! [`place`] is the arithmetic on plain inputs (replicas, zone names, the zone rules);
//! [`for_workload`] reads the rules off a workload, counting what spreadguard injects into
//! it, so that the prediction holds for the object as it will be stored.
//!
//! - A required zone anti-affinity term that selects the workload's own pods: one replica
//!   per zone, the rest Pending. Guaranteed.
//! - A `DoNotSchedule` zone spread of `maxSkew` k: as even as the skew allows; with
//!   `minDomains` above the eligible zones the global minimum counts as 0, so each zone is
//!   capped at k and the rest stay Pending. Guaranteed when k is 1 (the counts differ by at
//!   most one) or every zone is at its cap; otherwise expected.
//! - A `ScheduleAnyway` zone spread or a preferred zone anti-affinity term: the scheduler's
//!   scores favour the emptiest zone, so an even spread is expected, not promised.
//! - Nothing on a zone key: unconstrained; nothing keeps every replica out of one zone.
//!
//! Which zone gets the odd replica is the scheduler's choice: here the first zones in name
//! order do.

use serde::Serialize;

use super::context::Context;
use super::mutation::Injection;
use super::policy::WhenUnsatisfiable;
use super::rules::own_pods_selected;

/// One constraint on how replicas lie over zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneRule {
    /// A topology spread constraint on the zone key.
    Spread {
        max_skew: i64,
        min_domains: Option<i64>,
        /// `DoNotSchedule`.
        hard: bool,
    },
    /// A pod anti-affinity term on the zone key that selects the workload's own pods.
    AntiAffinity {
        /// `requiredDuringScheduling...`.
        hard: bool,
    },
}

/// How far the predicted counts can be relied on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Basis {
    /// Hard constraints force the counts (up to which zones get the odd replicas).
    Guaranteed,
    /// Soft constraints, or a hard spread with slack: the scheduler aims for these counts.
    Expected,
    /// Nothing spreads the replicas over zones: one zone may hold them all.
    Unconstrained,
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
}

/// The replicas a zone loss takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneShare {
    /// `None` when unconstrained: any zone may be the one.
    pub zone: Option<String>,
    pub replicas: i64,
}

// === impl Placement ===

impl Placement {
    /// The zone holding the most replicas (the first such zone in name order); when
    /// unconstrained, every replica that may be placed.
    pub fn largest_zone(&self) -> ZoneShare {
        match self.basis {
            Basis::Unconstrained => ZoneShare {
                zone: None,
                replicas: self.replicas - self.pending,
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
    };
    if z == 0 {
        return unconstrained;
    }
    let hard_anti = rules
        .iter()
        .any(|r| matches!(r, ZoneRule::AntiAffinity { hard: true }));
    let hard_spreads = rules.iter().filter_map(|r| match *r {
        ZoneRule::Spread {
            max_skew,
            min_domains,
            hard: true,
        } => Some((max_skew.max(1), min_domains)),
        _ => None,
    });
    let (cap, skew) = if hard_anti {
        (Some(1), Some(1))
    } else {
        let mut cap: Option<i64> = None;
        let mut skew: Option<i64> = None;
        for (max_skew, min_domains) in hard_spreads {
            skew = Some(skew.map_or(max_skew, |s| s.min(max_skew)));
            // Fewer eligible domains than minDomains: the global minimum counts as 0.
            if min_domains.is_some_and(|m| m > z) {
                cap = Some(cap.map_or(max_skew, |c| c.min(max_skew)));
            }
        }
        (cap, skew)
    };
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
    let (base, extra) = (placed / z, placed % z);
    let counts = zones
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), base + i64::from((i as i64) < extra)))
        .collect();
    let full = cap.is_some_and(|c| placed == c * z);
    let basis = match skew {
        Some(1) => Basis::Guaranteed,
        Some(_) if full => Basis::Guaranteed,
        _ => Basis::Expected,
    };
    Placement {
        replicas,
        zones: counts,
        pending: replicas - placed,
        basis,
        eligible_zones: zones.len(),
    }
}

/// The zone rules of a workload: its own constraints on a zone key that its eligible nodes
/// carry and that select its own pods, plus what spreadguard injects into it (`injected`).
pub fn zone_rules(ctx: &Context<'_>, injected: &[Injection]) -> Vec<ZoneRule> {
    let w = ctx.workload;
    let policy = ctx.policy;
    let counts = |key: &str| policy.is_zone_key(key) && ctx.key_present(key) != Some(false);
    let mut rules = Vec::new();
    for c in &w.scheduling.spread {
        if counts(&c.topology_key)
            && own_pods_selected(c.label_selector.as_ref(), &w.pod_labels, "").is_ok()
        {
            rules.push(ZoneRule::Spread {
                max_skew: i64::from(c.max_skew).max(1),
                min_domains: c.min_domains.map(i64::from),
                hard: c.when_unsatisfiable == "DoNotSchedule",
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
    for i in injected {
        match i {
            Injection::ZoneSpread => {
                let hard = policy.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule;
                rules.push(ZoneRule::Spread {
                    max_skew: i64::from(policy.max_skew).max(1),
                    min_domains: hard
                        .then(|| (ctx.eligible_zones() as i64).min(ctx.replicas))
                        .filter(|m| *m > 0),
                    hard,
                });
            }
            Injection::ZoneAntiAffinity => rules.push(ZoneRule::AntiAffinity { hard: false }),
            Injection::NodeSpread | Injection::LegacyZoneKey => {}
        }
    }
    rules
}

/// The predicted placement of the workload in `ctx` once `injected` is added to it.
pub fn for_workload(ctx: &Context<'_>, injected: &[Injection]) -> Placement {
    let zones: Vec<&str> = ctx
        .eligibility
        .zone_names
        .iter()
        .map(String::as_str)
        .collect();
    place(ctx.replicas, &zones, &zone_rules(ctx, injected))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &[&str] = &["a", "b", "c"];

    fn counts(p: &Placement) -> Vec<i64> {
        p.zones.iter().map(|(_, n)| *n).collect()
    }

    fn spread(max_skew: i64, min_domains: Option<i64>, hard: bool) -> ZoneRule {
        ZoneRule::Spread {
            max_skew,
            min_domains,
            hard,
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
    fn a_wider_skew_is_expected_even_but_not_guaranteed() {
        let p = place(6, ABC, &[spread(2, None, true)]);
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
        // Under the cap the counts are not forced.
        let p = place(4, ABC, &[spread(2, Some(4), true)]);
        assert_eq!(
            (counts(&p), p.pending, p.basis),
            (vec![2, 1, 1], 0, Basis::Expected)
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
                        assert_eq!(
                            (got, p.pending),
                            model(n, z, skew, min_domains),
                            "n={n} z={z} skew={skew} minDomains={min_domains:?}"
                        );
                    }
                }
            }
        }
    }
}
