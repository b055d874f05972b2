//! HA017–HA020: what zonal volumes do to a workload's placement.

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::storage::AccessModes;
use crate::engine::topology::TopologySource;

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if ctx.volumes.is_none() {
        return;
    }
    let a = ctx.stateful();
    let replicas = ctx.replicas;

    // HA017: zonal volumes created before their pods are scheduled.
    for t in &a.templates {
        let Some(class) = t.class.as_ref().filter(|c| c.zonal_immediate()) else {
            continue;
        };
        out.push(
            Finding::warn(
                RuleId::HA017,
                format!(
                    "{} created before their pods are scheduled, in zones chosen without regard to the spread, and each pod must follow its volume: {} uses {} with volumeBindingMode Immediate; use a class with volumeBindingMode: WaitForFirstConsumer",
                    plural(replicas.max(1), "zonal volume", "zonal volumes"),
                    t.describe(),
                    class.describe(),
                ),
            )
            .about(format!("{}:{}", t.name, class.info.name)),
        );
    }

    // HA018: allowedTopologies that leave fewer zones than the eligible nodes span.
    if ctx.topology.source() == TopologySource::Nodes {
        let eligible = ctx.eligible_zone_names();
        for t in &a.templates {
            let Some(class) = &t.class else { continue };
            let Some(allowed) = &class.info.allowed_zones else {
                continue;
            };
            let usable: Vec<&str> = eligible
                .iter()
                .copied()
                .filter(|z| allowed.contains(*z))
                .collect();
            if eligible.is_empty() || usable.len() >= eligible.len() {
                continue;
            }
            let left_out: Vec<&str> = eligible
                .iter()
                .copied()
                .filter(|z| !allowed.contains(*z))
                .collect();
            let consequence = match usable.as_slice() {
                [] => format!(
                    "so its {} stay Pending",
                    plural(replicas.max(1), "pod", "pods")
                ),
                [zone] => format!(
                    "pods follow their volumes, so losing {zone} takes down all {} and their data",
                    plural(replicas.max(1), "replica", "replicas")
                ),
                _ => format!(
                    "pods follow their volumes, so {} never used",
                    listed(&left_out, "zone", "zones", "is", "are")
                ),
            };
            out.push(
                Finding::deny(
                    RuleId::HA018,
                    format!(
                        "{} of {} eligible zones can hold the volumes of {}: the allowedTopologies of {} allow {}; {consequence}",
                        usable.len(),
                        eligible.len(),
                        t.describe(),
                        class.describe(),
                        if allowed.is_empty() {
                            "no zone".to_owned()
                        } else {
                            short_list(&allowed.iter().map(String::as_str).collect::<Vec<_>>())
                        },
                    ),
                )
                .about(format!("{}:{}:{}", t.name, class.info.name, usable.len())),
            );
        }
    }

    // HA019: bound volumes of existing replicas in fewer zones than they could use.
    let by_zone = a.pinned_by_zone();
    let pinned = a.pinned.len() as i64;
    let could_use = pinned.min(ctx.eligible_zones() as i64);
    if pinned > 0 && (by_zone.len() as i64) < could_use {
        let (worst_zone, worst) = by_zone
            .iter()
            .max_by_key(|(zone, ordinals)| (ordinals.len(), std::cmp::Reverse(**zone)))
            .map(|(z, o)| (*z, o.len()))
            .unwrap_or_default();
        let placement: Vec<String> = by_zone
            .iter()
            .take(4)
            .map(|(zone, ordinals)| format!("{zone}: {}", ordinal_list(ordinals)))
            .collect();
        out.push(Finding::warn(
            RuleId::HA019,
            format!(
                "losing zone {worst_zone} takes {} and their data: the bound volumes of {} lie in {} though {} ({}), and spreading constraints cannot move bound volumes",
                plural(worst as i64, "replica", "replicas"),
                plural(pinned, "replica", "replicas"),
                plural(by_zone.len() as i64, "zone", "zones"),
                plural(could_use, "zone is usable", "zones are usable"),
                placement.join("; "),
            ),
        ));
    }

    // HA020: one ReadWriteOnce claim shared by every replica.
    if replicas >= 2 {
        for s in &a.shared {
            let modes = s.claim.access_modes;
            let many = modes.contains(AccessModes::READ_WRITE_MANY)
                || (s.read_only && modes.contains(AccessModes::READ_ONLY_MANY));
            if many {
                continue;
            }
            let what = format!(
                "claim {} ({}) through volume {}",
                s.claim.name,
                modes.describe(),
                s.volume
            );
            let message = if modes.contains(AccessModes::READ_WRITE_ONCE_POD) {
                format!(
                    "{} of {replicas} replicas stay Pending: they all mount {what}, and only one pod may use a ReadWriteOncePod volume",
                    replicas - 1
                )
            } else if modes.contains(AccessModes::READ_WRITE_ONCE) {
                format!(
                    "all {replicas} replicas must share one node: they all mount {what}, which attaches to one node, so losing that node takes down all {replicas}"
                )
            } else {
                continue;
            };
            out.push(
                Finding::deny(RuleId::HA020, message).about(format!("{}:{replicas}", s.claim.name)),
            );
        }
    }
}

/// "0, 1, 2", at most 8 ordinals and then a count.
fn ordinal_list(ordinals: &[i64]) -> String {
    let label = if ordinals.len() == 1 {
        "ordinal"
    } else {
        "ordinals"
    };
    let shown: Vec<String> = ordinals.iter().take(8).map(i64::to_string).collect();
    let more = ordinals.len().saturating_sub(8);
    if more > 0 {
        format!("{label} {} and {more} more", shown.join(", "))
    } else {
        format!("{label} {}", shown.join(", "))
    }
}

/// "a, b, c", at most 5 then a count.
fn short_list(items: &[&str]) -> String {
    let shown: Vec<&str> = items.iter().take(5).copied().collect();
    let more = items.len().saturating_sub(5);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// "zone c is", "zones b, c are".
fn listed(items: &[&str], one: &str, many: &str, is: &str, are: &str) -> String {
    if items.len() == 1 {
        format!("{one} {} {is}", items[0])
    } else {
        format!("{many} {} {are}", short_list(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn lists_stay_short() {
        let many: Vec<i64> = (0..20).collect();
        assert_eq!(
            ordinal_list(&many),
            "ordinals 0, 1, 2, 3, 4, 5, 6, 7 and 12 more"
        );
        assert_eq!(ordinal_list(&[3]), "ordinal 3");
        let zones = ["a", "b", "c", "d", "e", "f"];
        assert_eq!(short_list(&zones), "a, b, c, d, e and 1 more");
        assert_eq!(listed(&["c"], "zone", "zones", "is", "are"), "zone c is");
        let set: BTreeSet<&str> = ["b", "c"].into();
        let v: Vec<&str> = set.into_iter().collect();
        assert_eq!(listed(&v, "zone", "zones", "is", "are"), "zones b, c are");
    }
}
