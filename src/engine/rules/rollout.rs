//! HA026: a rolling update that can never place its surge pod.
//!
//! A Deployment's RollingUpdate adds up to `maxSurge` new pods before removing old ones,
//! and removes old ones early only up to `maxUnavailable`. With `maxUnavailable` resolving
//! to 0 (explicitly, or the default 25% of fewer than 4 replicas, which rounds down) and
//! required anti-affinity that counts old and new pods alike on a key with exactly as many
//! eligible domains as replicas, every domain holds an old pod: the surge pod stays Pending,
//! no old pod is removed, and the rollout never progresses.
//!
//! A hard spread with maxSkew 1 does not deadlock: with one old pod per domain, a surge pod
//! makes a skew of 1 wherever it goes, which the constraint allows.

use serde_json::Value;

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::well_known::HOSTNAME_KEY;
use crate::engine::workload::{WorkloadKind, at};

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let replicas = ctx.replicas;
    if replicas < 1 {
        return;
    }
    let Some(strategy) = Strategy::of(ctx) else {
        return;
    };
    for t in ctx.own_anti_affinity_terms().filter(|t| t.required) {
        let key = t.term.topology_key.as_str();
        // A term that tells revisions apart (`matchLabelKeys: [pod-template-hash]`) does not
        // count the old pods against the new ones.
        let by_revision = t
            .term
            .match_label_keys
            .iter()
            .flatten()
            .any(|k| k == strategy.revision_label);
        if by_revision {
            continue;
        }
        let (domains, noun) = if ctx.policy.is_zone_key(key) {
            (ctx.eligible_zones() as i64, "zones")
        } else if key == HOSTNAME_KEY {
            match ctx.eligible_nodes() {
                Some(n) => (n as i64, "nodes"),
                None => continue,
            }
        } else {
            continue;
        };
        if domains < replicas || domains >= replicas + strategy.needs_free {
            continue;
        }
        out.push(Finding::warn(
            RuleId::HA026,
            format!(
                "rollouts deadlock: {}, {domains} eligible {noun}, {}: new pods find no free {} under required anti-affinity ({key}), and no old pod goes first",
                plural(replicas, "replica", "replicas"),
                strategy.describe,
                &noun[..noun.len() - 1],
            ),
        )
        .about(format!(
            "{}|replicas={replicas}",
            serde_json::to_string(t.term).unwrap_or_default()
        )));
        return;
    }
}

/// How a workload replaces its pods, as far as HA026 cares.
struct Strategy {
    /// Free domains a rollout needs before it can progress.
    needs_free: i64,
    describe: String,
    /// The label that tells one revision's pods from another's.
    revision_label: &'static str,
}

impl Strategy {
    fn of(ctx: &Context<'_>) -> Option<Strategy> {
        let object = ctx.workload.object;
        let replicas = ctx.replicas;
        match ctx.workload.kind {
            WorkloadKind::Deployment => {
                let strategy = at(object, &["spec", "strategy"]);
                let kind = strategy
                    .and_then(|s| s.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("RollingUpdate");
                if kind != "RollingUpdate" {
                    return None;
                }
                let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
                surge_only(rolling, replicas, "pod-template-hash")
            }
            // Argo Rollouts: a canary surges and removes like a Deployment (maxSurge and
            // maxUnavailable default to 25%); a blue-green brings up a full preview
            // ReplicaSet (or previewReplicaCount pods) beside the active one before switching.
            WorkloadKind::Rollout => {
                let strategy = at(object, &["spec", "strategy"]);
                if let Some(blue_green) = strategy.and_then(|s| s.get("blueGreen")) {
                    let preview = blue_green
                        .get("previewReplicaCount")
                        .and_then(Value::as_i64)
                        .unwrap_or(replicas);
                    return Some(Strategy {
                        needs_free: preview.max(1),
                        describe: format!("blueGreen with {preview} preview pods"),
                        revision_label: "rollouts-pod-template-hash",
                    });
                }
                let canary = strategy.and_then(|s| s.get("canary"));
                surge_only(canary, replicas, "rollouts-pod-template-hash")
            }
            _ => None,
        }
    }
}

/// A RollingUpdate with `maxSurge` and `maxUnavailable` (defaults 25% each): deadlocks when
/// `maxUnavailable` resolves to 0, as the deployment controller resolves it (percentages of
/// `maxUnavailable` round down, of `maxSurge` up; both 0 makes `maxUnavailable` 1).
fn surge_only(
    rolling: Option<&Value>,
    replicas: i64,
    revision_label: &'static str,
) -> Option<Strategy> {
    let field = |f: &str| rolling.and_then(|r| r.get(f)).filter(|v| !v.is_null());
    let unavailable = resolve(field("maxUnavailable"), replicas, false)?;
    let surge = resolve(field("maxSurge"), replicas, true)?;
    if unavailable != 0 || surge == 0 {
        return None;
    }
    let shown = |v: Option<&Value>| match v {
        None => "25% (default)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Some(Strategy {
        needs_free: 1,
        describe: format!(
            "maxUnavailable {} = 0, maxSurge {}",
            shown(field("maxUnavailable")),
            shown(field("maxSurge"))
        ),
        revision_label,
    })
}

/// An int-or-percent of `total`; `None` when unreadable.
fn resolve(value: Option<&Value>, total: i64, round_up: bool) -> Option<i64> {
    match value {
        None => Some(percent(25, total, round_up)),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            let p: i64 = s.strip_suffix('%')?.trim().parse().ok()?;
            Some(percent(p, total, round_up))
        }
        _ => None,
    }
}

/// `p` percent of `total`, rounded as asked; exact for any `p` a manifest can write (in 128
/// bits, then held to the 64-bit range).
fn percent(p: i64, total: i64, round_up: bool) -> i64 {
    let scaled = i128::from(p) * i128::from(total) + if round_up { 99 } else { 0 };
    (scaled / 100).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentages_round_as_the_deployment_controller_rounds_them() {
        assert_eq!(resolve(None, 3, false), Some(0));
        assert_eq!(resolve(None, 3, true), Some(1));
        assert_eq!(resolve(None, 4, false), Some(1));
        assert_eq!(resolve(Some(&json!("50%")), 3, false), Some(1));
        assert_eq!(resolve(Some(&json!("10%")), 3, true), Some(1));
        assert_eq!(resolve(Some(&json!(0)), 3, true), Some(0));
        assert_eq!(resolve(Some(&json!("x")), 3, true), None);
        // Found by the `cost` fuzzer: a percentage past 64 bits once multiplied out of range.
        let huge = json!("6624463850797851542%");
        assert_eq!(resolve(Some(&huge), 6, true), Some(397_467_831_047_871_093));
        assert_eq!(resolve(Some(&huge), 600, true), Some(i64::MAX));
        assert_eq!(resolve(Some(&huge), 0, false), Some(0));
        assert!(surge_only(Some(&json!({"maxUnavailable": 0, "maxSurge": 0})), 3, "h").is_none());
        assert!(surge_only(None, 3, "h").is_some());
        assert!(surge_only(None, 4, "h").is_none());
    }
}
