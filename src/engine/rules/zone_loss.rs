//! HA021: what the loss of the worst zone leaves of a workload, by the predicted placement
//! (see [`placement`](crate::engine::placement)), against the policy's
//! `minSurvivingReplicas`.

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::placement::{Basis, Placement};

/// HA021 (warn unless the policy's `rules` say otherwise). A single replica is HA001's
/// business and a single eligible zone HA006's or HA009's; replicas gathered in one zone by
/// affinity to their own pods are HA024's, and by their bound volumes HA019's (no spread
/// can move those).
pub fn check(ctx: &Context<'_>, placement: &Placement, out: &mut Vec<Finding>) {
    let min = i64::from(ctx.policy.min_surviving_replicas);
    if ctx.replicas < 2
        || placement.eligible_zones < 2
        || out
            .iter()
            .any(|f| matches!(f.rule, RuleId::HA024 | RuleId::HA019))
    {
        return;
    }
    let loss = placement.worst_zone_loss();
    if loss.left >= min {
        return;
    }
    let placed = placement.placed();
    let zones = placement.eligible_zones as i64;
    let message = match (&loss.zone, placement.basis) {
        (None, _) | (_, Basis::Unconstrained) => format!(
            "losing one zone may leave 0 of {}, below minSurvivingReplicas {min}: nothing spreads them over the {zones} eligible zones, so one zone may hold them all; add a zone spread",
            plural(placed, "replica", "replicas"),
        ),
        (Some(zone), basis) => {
            let pending = if placement.pending > 0 {
                format!(", {} Pending", placement.pending)
            } else {
                String::new()
            };
            let needed = replicas_needed(min, zones);
            let fix = if placement.pending == 0 && needed > ctx.replicas {
                format!(
                    "{} spread over the {zones} zones would leave {min}",
                    plural(needed, "replica", "replicas")
                )
            } else if placement.pending > 0 {
                "the constraints leave the rest Pending; more eligible zones or a looser constraint would place them".to_owned()
            } else {
                "a tighter zone spread would even them out".to_owned()
            };
            format!(
                "losing zone {zone} leaves {} of {placed}, below minSurvivingReplicas {min}: predicted {} ({}{pending}); {fix}",
                loss.left,
                placement.describe_zones(),
                basis.as_str(),
            )
        }
    };
    out.push(
        Finding::warn(RuleId::HA021, message)
            .about(format!("{}|left={}|min={min}", ctx.replicas, loss.left)),
    );
}

/// HA022 for a running workload: its ready pods per zone (`ready`, every zone with pods)
/// against what its constraints, as written, promise for that many pods (`placement`, the
/// prediction for the object as stored: its pods were scheduled by it). Fires when the
/// fullest zone holds more than the prediction's fullest would, so that losing it leaves
/// fewer; nothing is promised when unconstrained.
pub fn running(placement: &Placement, ready: &[(&str, i64)]) -> Option<Finding> {
    if placement.basis == Basis::Unconstrained || placement.eligible_zones < 2 {
        return None;
    }
    let n: i64 = ready.iter().map(|(_, c)| c).sum();
    if n < 2 {
        return None;
    }
    let promised = placement.for_count(n);
    if promised.pending > 0 {
        // More run than the constraints admit (they changed since): nothing to compare.
        return None;
    }
    let most = promised.largest_zone().replicas;
    let (zone, count) =
        ready
            .iter()
            .copied()
            .fold(None, |best: Option<(&str, i64)>, z| match best {
                Some(b) if b.1 >= z.1 => Some(b),
                _ => Some(z),
            })?;
    if count <= most {
        return None;
    }
    let what = match placement.basis {
        Basis::Guaranteed | Basis::Bounded => "its hard zone constraints allow",
        _ => "its zone spread aims for",
    };
    let now = ready
        .iter()
        .map(|(z, c)| format!("{z}={c}"))
        .collect::<Vec<_>>()
        .join(",");
    Some(
        Finding::warn(
            RuleId::HA022,
            format!(
                "{count} of {n} ready pods in zone {zone}, {what} {most} there (now {now}, expected {}): losing {zone} leaves {}, not {}; a rollout (kubectl rollout restart) would re-spread them",
                promised.describe_zones(),
                n - count,
                n - most,
            ),
        )
        .about(format!("{zone}={count}/{n}")),
    )
}

/// The fewest replicas that, spread as evenly as possible over `zones`, leave at least
/// `min` after the largest zone is lost: n − ⌈n / zones⌉ ≥ min.
pub fn replicas_needed(min: i64, zones: i64) -> i64 {
    let zones = zones.max(2);
    let mut n = min.max(1);
    while n - (n + zones - 1) / zones < min {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::placement::{ZoneRule, place};

    #[test]
    fn running_pods_crowded_in_one_zone_are_worse_than_a_soft_spread_promises() {
        let soft = ZoneRule::Spread {
            max_skew: 1,
            min_domains: None,
            hard: false,
            counted: None,
        };
        let p = place(3, &["a", "b", "c"], &[soft]);
        let f = running(&p, &[("a", 3), ("b", 0), ("c", 0)]).expect("HA022");
        assert!(
            f.message.starts_with(
                "3 of 3 ready pods in zone a, its zone spread aims for 1 there (now a=3,b=0,c=0, expected a=1,b=1,c=1): losing a leaves 0, not 2"
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("a rollout"));
        // As promised, or fewer ready pods than replicas but still even: nothing.
        assert_eq!(running(&p, &[("a", 1), ("b", 1), ("c", 1)]), None);
        assert_eq!(running(&p, &[("a", 1), ("c", 1)]), None);
        // Unconstrained promises nothing.
        assert_eq!(running(&place(3, &["a", "b", "c"], &[]), &[("a", 3)]), None);
    }

    #[test]
    fn replicas_needed_to_survive_a_zone() {
        assert_eq!(replicas_needed(1, 3), 2);
        assert_eq!(replicas_needed(2, 3), 3);
        assert_eq!(replicas_needed(3, 3), 5);
        assert_eq!(replicas_needed(2, 2), 4);
    }
}
