//! HA021: what the loss of the worst zone leaves of a workload, by the predicted placement
//! (see [`placement`](crate::engine::placement)), against the policy's
//! `minSurvivingReplicas`.

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::placement::{Basis, Placement};

/// HA021 (warn unless the policy's `rules` say otherwise). A single replica is HA001's
/// business and a single eligible zone HA006's or HA009's; replicas gathered in one zone by
/// affinity to their own pods are HA024's.
pub fn check(ctx: &Context<'_>, placement: &Placement, out: &mut Vec<Finding>) {
    let min = i64::from(ctx.policy.min_surviving_replicas);
    if ctx.replicas < 2
        || placement.eligible_zones < 2
        || out.iter().any(|f| f.rule == RuleId::HA024)
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

    #[test]
    fn replicas_needed_to_survive_a_zone() {
        assert_eq!(replicas_needed(1, 3), 2);
        assert_eq!(replicas_needed(2, 3), 3);
        assert_eq!(replicas_needed(3, 3), 5);
        assert_eq!(replicas_needed(2, 2), 4);
    }
}
