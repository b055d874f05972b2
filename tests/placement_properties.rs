//! The placement arithmetic (`engine::placement::place`) against a small reference model of
//! kube-scheduler written here. Pods are placed one at a time. Filters decide where a pod may
//! go: PodTopologySpread (`DoNotSchedule`: a zone's count + 1 − the global minimum over the
//! counted domains must not exceed `maxSkew`; the minimum is 0 with fewer counted domains than
//! `minDomains` or with a counted domain the pod cannot use) and InterPodAffinity (required
//! anti-affinity: no matching pod in the zone; required affinity to its own pods: a zone that
//! holds one, except for the first pod). Scores decide where among those it goes: only
//! `ScheduleAnyway` spreads and preferred anti-affinity score zones (fewer matching pods is
//! better; `DoNotSchedule` spreads do not score), so without them the pick is arbitrary.
//!
//! The model enumerates every placement the filters admit (the reachable per-zone counts,
//! pod by pod, for any pick) and, where zones are scored, the one the scores choose. Over
//! generated cases:
//! - guaranteed: every admitted placement has the predicted sorted counts and Pending;
//! - bounded: the prediction is admitted and its largest zone is the largest any admitted
//!   placement reaches (so the worst zone loss is a floor);
//! - expected: the prediction is what the spreading scores choose;
//! - every prediction: its worst zone loss takes the largest zone's count.

use std::collections::BTreeSet;

use proptest::prelude::*;
use spreadguard::engine::placement::{Basis, ZoneRule, place};

/// Whether the filters admit one more pod in zone `i`.
fn admits(counts: &[i64], i: usize, rules: &[ZoneRule]) -> bool {
    let zones = counts.len();
    let placed: i64 = counts.iter().sum();
    rules.iter().all(|r| match *r {
        ZoneRule::Spread {
            max_skew,
            min_domains,
            hard: true,
            counted,
        } => {
            let extra = counted.map_or(0, |c| c.saturating_sub(zones));
            let counted_domains = (zones + extra) as i64;
            let global_min = if extra > 0 || min_domains.is_some_and(|m| m > counted_domains) {
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
}

/// Every (sorted counts, Pending) the filters admit, whatever the picks.
fn admitted(replicas: i64, zones: usize, rules: &[ZoneRule]) -> BTreeSet<(Vec<i64>, i64)> {
    let mut states: BTreeSet<(Vec<i64>, i64)> = BTreeSet::from([(vec![0; zones], 0)]);
    for _ in 0..replicas {
        let mut next = BTreeSet::new();
        for (counts, pending) in &states {
            let mut any = false;
            for i in 0..zones {
                if admits(counts, i, rules) {
                    any = true;
                    let mut c = counts.clone();
                    c[i] += 1;
                    // Zones are alike: keep counts sorted to merge symmetric states.
                    c.sort_unstable_by(|a, b| b.cmp(a));
                    next.insert((c, *pending));
                }
            }
            if !any {
                next.insert((counts.clone(), pending + 1));
            }
        }
        states = next;
    }
    states
}

/// The placement the spreading scores choose: each pod to the admitted zone with the fewest
/// pods (then name order, standing in for the other plugins' tie-breaks).
fn scored(replicas: i64, zones: usize, rules: &[ZoneRule]) -> (Vec<i64>, i64) {
    let mut counts = vec![0i64; zones];
    let mut pending = 0;
    for _ in 0..replicas {
        match (0..zones)
            .filter(|&i| admits(&counts, i, rules))
            .min_by_key(|&i| (counts[i], i))
        {
            Some(i) => counts[i] += 1,
            None => pending += 1,
        }
    }
    (sorted(counts), pending)
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

/// Checks one case; `Err` says what disagrees.
fn check(replicas: i64, zones: usize, rules: &[ZoneRule]) -> Result<(), String> {
    let p = place(replicas, &NAMES[..zones], rules);
    let case = format!("{replicas} replicas, {zones} zones, {rules:?}");
    if p.eligible_zones != zones {
        return Err(format!("{case}: eligible zones {}", p.eligible_zones));
    }
    let loss = p.worst_zone_loss();
    if p.basis == Basis::Unconstrained {
        // Nothing on the zone key filters or scores: nothing promised, one zone may hold all.
        if !rules.is_empty() || !p.zones.is_empty() {
            return Err(format!("{case}: unconstrained {p:?}"));
        }
        if (loss.zone, loss.lost, loss.left) != (None, replicas, 0) {
            return Err(format!("{case}: unconstrained loss"));
        }
        return Ok(());
    }
    let got = (sorted(p.zones.iter().map(|(_, n)| *n).collect()), p.pending);
    let all = admitted(replicas, zones, rules);
    match p.basis {
        Basis::Guaranteed => {
            if all.len() != 1 || !all.contains(&got) {
                return Err(format!(
                    "{case}: guaranteed {got:?}, but the filters admit {all:?}"
                ));
            }
        }
        Basis::Bounded => {
            let most = all.iter().map(|(c, _)| c[0]).max().unwrap_or(0);
            if !all.contains(&got) || got.0[0] != most {
                return Err(format!(
                    "{case}: bounded {got:?}, the filters admit {all:?} (fullest {most})"
                ));
            }
        }
        Basis::Expected => {
            let want = scored(replicas, zones, rules);
            if got != want {
                return Err(format!(
                    "{case}: expected {got:?}, the scores choose {want:?}"
                ));
            }
        }
        Basis::Unconstrained => unreachable!(),
    }
    let largest = got.0.first().copied().unwrap_or(0);
    if (loss.lost, loss.left) != (largest, replicas - p.pending - largest) {
        return Err(format!("{case}: worst zone loss {loss:?}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn predictions_agree_with_the_reference_scheduler(
        (replicas, zones, _unusable, rules, _seed) in case()
    ) {
        if let Err(e) = check(replicas, zones, &rules) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Hand-picked cases the generator may miss, each checked the same way; the first two are
/// what the real scheduler did in tests/e2e_placement.rs.
#[test]
fn known_shapes() {
    let hard = |max_skew, min_domains, counted| ZoneRule::Spread {
        max_skew,
        min_domains,
        hard: true,
        counted,
    };
    for (replicas, zones, rules) in [
        // maxSkew 2 alone: the scheduler put 6 pods as 3, 2, 1.
        (6, 3, vec![hard(2, None, None)]),
        // A tainted zone counted: each of 2 usable zones capped at maxSkew 1.
        (4, 2, vec![hard(1, None, Some(3))]),
        // minDomains above the zones: capped at maxSkew 2.
        (7, 3, vec![hard(2, Some(4), None)]),
        // Own affinity with a hard spread: maxSkew in one zone, the rest Pending.
        (5, 3, vec![ZoneRule::Together, hard(2, None, None)]),
    ] {
        check(replicas, zones, &rules).unwrap();
    }
    assert_eq!(
        place(6, &NAMES[..3], &[hard(2, None, None)]).basis,
        Basis::Bounded
    );
}
