//! The placement arithmetic (`engine::placement::place`) against a small reference model of
//! kube-scheduler written here: pods are placed one at a time; PodTopologySpread's filter
//! (`DoNotSchedule`: a zone's count + 1 − the global minimum over the counted domains must
//! not exceed `maxSkew`; the global minimum is 0 with fewer counted domains than
//! `minDomains`), InterPodAffinity's filter (required anti-affinity: no matching pod in the
//! zone; required affinity to its own pods: a zone that holds one, except for the first pod)
//! decide where a pod may go, and the scores (`ScheduleAnyway` spreads and preferred
//! anti-affinity count matching pods per zone, fewer is better) where it goes.
//!
//! Over generated cases: the predicted sorted per-zone counts and Pending replicas equal the
//! model's; a prediction marked guaranteed also holds against an adversarial scorer (one that
//! picks the fullest admitted zone) and a random one, since only the filters may force it;
//! and the worst zone loss is the largest zone's count.

use proptest::prelude::*;
use spreadguard::engine::placement::{Basis, ZoneRule, place};

/// How the model picks among the zones the filters admit.
#[derive(Clone, Copy, Debug)]
enum Scorer {
    /// kube-scheduler's spreading scores: the zone with the fewest matching pods (then name
    /// order, standing in for the other plugins' tie-breaks).
    Spreading,
    /// The admitted zone with the most pods: what nothing but the filters prevents.
    Adversarial,
    /// Any admitted zone, from a seed.
    Random(u64),
}

/// The reference model: per usable zone the pods placed, and the number Pending. A hard
/// spread's `counted` beyond the usable zones stands for domains it counts that the pod
/// cannot use (tainted zones under `nodeTaintsPolicy: Ignore`): they hold 0 pods for good.
fn model(replicas: i64, zones: usize, rules: &[ZoneRule], scorer: Scorer) -> (Vec<i64>, i64) {
    let mut counts = vec![0i64; zones];
    let mut pending = 0;
    let mut seed = match scorer {
        Scorer::Random(s) => s | 1,
        _ => 1,
    };
    for _ in 0..replicas {
        let placed: i64 = counts.iter().sum();
        let admitted: Vec<usize> = (0..zones)
            .filter(|&i| {
                rules.iter().all(|r| match *r {
                    ZoneRule::Spread {
                        max_skew,
                        min_domains,
                        hard: true,
                        counted,
                    } => {
                        let extra = counted.map_or(0, |c| c.saturating_sub(zones));
                        let counted_domains = (zones + extra) as i64;
                        let global_min =
                            if extra > 0 || min_domains.is_some_and(|m| m > counted_domains) {
                                0
                            } else {
                                *counts.iter().min().unwrap()
                            };
                        counts[i] + 1 - global_min <= max_skew
                    }
                    ZoneRule::AntiAffinity { hard: true } => counts[i] == 0,
                    ZoneRule::Together => placed == 0 || counts[i] > 0,
                    _ => true,
                })
            })
            .collect();
        let pick = match scorer {
            Scorer::Spreading => admitted.iter().copied().min_by_key(|&i| (counts[i], i)),
            Scorer::Adversarial => admitted.iter().copied().max_by_key(|&i| (counts[i], i)),
            Scorer::Random(_) => {
                // xorshift
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (!admitted.is_empty()).then(|| admitted[(seed % admitted.len() as u64) as usize])
            }
        };
        match pick {
            Some(i) => counts[i] += 1,
            None => pending += 1,
        }
    }
    (counts, pending)
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

fn rule(unusable: usize, zones: usize) -> impl Strategy<Value = ZoneRule> {
    prop_oneof![
        (1i64..=3, prop::option::of(1i64..=6), any::<bool>()).prop_map(
            move |(max_skew, min_domains, extra)| ZoneRule::Spread {
                max_skew,
                min_domains,
                hard: true,
                counted: (extra && unusable > 0).then_some(zones + unusable),
            }
        ),
        (1i64..=3).prop_map(|max_skew| ZoneRule::Spread {
            max_skew,
            min_domains: None,
            hard: false,
            counted: None,
        }),
        Just(ZoneRule::AntiAffinity { hard: true }),
        Just(ZoneRule::AntiAffinity { hard: false }),
        Just(ZoneRule::Together),
    ]
}

fn case() -> impl Strategy<Value = (i64, usize, usize, Vec<ZoneRule>, u64)> {
    (1usize..=5, 0usize..=2).prop_flat_map(|(zones, unusable)| {
        (
            0i64..=24,
            Just(zones),
            Just(unusable),
            prop::collection::vec(rule(unusable, zones), 0..=3),
            any::<u64>(),
        )
    })
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn predictions_agree_with_the_reference_scheduler(
        (replicas, zones, unusable, rules, seed) in case()
    ) {
        let p = place(replicas, &NAMES[..zones], &rules);
        prop_assert_eq!(p.eligible_zones, zones);
        if p.basis == Basis::Unconstrained {
            // Nothing on the zone key filters or scores: nothing to compare, nothing promised.
            prop_assert!(rules.is_empty(), "unconstrained despite {:?}", rules);
            prop_assert!(p.zones.is_empty());
            let loss = p.worst_zone_loss();
            prop_assert_eq!((loss.zone, loss.lost, loss.left), (None, replicas, 0));
            return Ok(());
        }
        let got: Vec<i64> = p.zones.iter().map(|(_, n)| *n).collect();
        let (want, pending) = model(replicas, zones, &rules, Scorer::Spreading);
        prop_assert_eq!(
            (sorted(got.clone()), p.pending),
            (sorted(want), pending),
            "{} replicas, {} zones (+{} unusable), {:?}", replicas, zones, unusable, rules
        );
        if p.basis == Basis::Guaranteed {
            for scorer in [Scorer::Adversarial, Scorer::Random(seed)] {
                let (forced, forced_pending) = model(replicas, zones, &rules, scorer);
                prop_assert_eq!(
                    (sorted(forced), forced_pending),
                    (sorted(got.clone()), p.pending),
                    "guaranteed, but {:?} places otherwise: {} replicas, {} zones, {:?}",
                    scorer, replicas, zones, rules
                );
            }
        }
        let loss = p.worst_zone_loss();
        let largest = got.iter().copied().max().unwrap_or(0);
        prop_assert_eq!(loss.lost, largest);
        prop_assert_eq!(loss.left, replicas - p.pending - largest);
    }
}

/// Hand-picked cases the generator may miss, each checked the same way.
#[test]
fn known_shapes() {
    let hard = |max_skew, min_domains, counted| ZoneRule::Spread {
        max_skew,
        min_domains,
        hard: true,
        counted,
    };
    for (replicas, zones, rules) in [
        // A tainted zone counted: each of 2 usable zones capped at maxSkew 1.
        (3, 2, vec![hard(1, None, Some(3))]),
        // minDomains above the zones: capped at maxSkew 2.
        (7, 3, vec![hard(2, Some(4), None)]),
        // Own affinity with a hard spread: maxSkew in one zone, the rest Pending.
        (5, 3, vec![ZoneRule::Together, hard(2, None, None)]),
    ] {
        let p = place(replicas, &NAMES[..zones], &rules);
        let (want, pending) = model(replicas, zones, &rules, Scorer::Adversarial);
        assert_eq!(
            (sorted(p.zones.iter().map(|(_, n)| *n).collect()), p.pending),
            (sorted(want), pending),
            "{rules:?}"
        );
        assert_eq!(p.basis, Basis::Guaranteed, "{rules:?}");
    }
}
