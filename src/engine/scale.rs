//! The `scale` subresource: `kubectl scale --replicas=1` (or any client of
//! `deployments/scale`, `statefulsets/scale`, `replicasets/scale`, ...) changes the replicas
//! without an UPDATE of the workload itself, so it is judged here against the policy's
//! `minReplicas` (HA001).
//!
//! The object is an `autoscaling/v1` Scale: `spec.replicas` (omitted is 0). A
//! HorizontalPodAutoscaler never lets its target run below its own `minReplicas` (it scales
//! it back up), so with one known the effective count is the larger of the two.

use serde_json::Value;

use super::finding::{Finding, RuleId, Severity, plural};
use super::policy::Policy;
use super::workload::{WorkloadKind, at, object_name};
use super::{Decision, Input, Subject};

/// Decides a scale of a `kind` workload.
pub fn decide_scale(input: Input<'_>, kind: WorkloadKind, policy: &Policy) -> Decision {
    let mut decision = Decision::of(Subject::Workload(kind), Vec::new());
    let requested = match replicas(input.object) {
        Ok(n) => n,
        Err(reason) => {
            decision.subject = Subject::Uninterpretable(kind);
            decision.findings.push(Finding::warn(
                RuleId::HA000,
                format!("not checked: {reason}"),
            ));
            return decision;
        }
    };
    // The autoscaler targeting the workload, when known (the cache, at admission).
    let (namespace, name) = object_name(input.object);
    let cached = input.autoscalers.and_then(|all| {
        let (group, kind) = kind.group_and_kind(policy)?;
        all.for_workload(namespace.unwrap_or_default(), group, kind, name)
    });
    let hpa_min = input.hpa_min_replicas.or(cached.map(|a| a.min_replicas));
    let mut findings: Vec<Finding> = judge(requested, hpa_min, policy)
        .into_iter()
        .filter_map(|mut f| {
            f.severity = policy.severity_for(f.rule, f.severity)?;
            Some(f)
        })
        .collect();
    // A count the workload already had is not a new violation (ratcheting, as on UPDATE).
    if let Some(old) = input.old_object.and_then(|o| replicas(o).ok())
        && old == requested
    {
        for f in findings.iter_mut().filter(|f| f.severity == Severity::Deny) {
            f.severity = Severity::Warn;
            f.message = format!(
                "not blocking, already present before this update: {}",
                f.message
            );
        }
    }
    decision.findings = findings;
    decision
}

fn replicas(scale: &Value) -> Result<i64, String> {
    match at(scale, &["spec", "replicas"]) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("spec.replicas: expected a non-negative integer, got {v}")),
    }
}

fn judge(requested: i64, hpa_min: Option<i64>, policy: &Policy) -> Option<Finding> {
    let min = i64::from(policy.min_replicas);
    let effective = hpa_min.map_or(requested, |h| requested.max(h));
    if effective == 0 {
        return Some(Finding::info(
            RuleId::HA001,
            "scaled to 0 replicas: not checked until it is scaled up",
        ));
    }
    if effective >= min {
        return None;
    }
    let what = match hpa_min {
        Some(h) if h > requested => format!(
            "scale to {}, held at the HorizontalPodAutoscaler's minReplicas {h}",
            plural(requested, "replica", "replicas")
        ),
        _ => format!("scale to {}", plural(requested, "replica", "replicas")),
    };
    Some(
        Finding::deny(
            RuleId::HA001,
            format!("{what}, policy requires at least {min}: losing one zone or node takes the workload down"),
        )
        .about(format!("replicas={effective}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scale(n: i64) -> Value {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": n}})
    }

    fn rules(d: &Decision) -> Vec<(RuleId, Severity)> {
        d.findings.iter().map(|f| (f.rule, f.severity)).collect()
    }

    #[test]
    fn scaling_below_min_replicas_is_denied_unless_an_autoscaler_holds_it_up() {
        let p = Policy::default();
        let one = scale(1);
        let d = decide_scale(Input::new(&one), WorkloadKind::Deployment, &p);
        assert_eq!(rules(&d), [(RuleId::HA001, Severity::Deny)]);
        assert!(
            d.findings[0]
                .message
                .starts_with("scale to 1 replica, policy requires at least 2")
        );
        let held = decide_scale(
            Input::new(&one).with_hpa_min_replicas(Some(3)),
            WorkloadKind::Deployment,
            &p,
        );
        assert!(held.findings.is_empty(), "{:?}", held.findings);
        let weak = decide_scale(
            Input::new(&one).with_hpa_min_replicas(Some(1)),
            WorkloadKind::Deployment,
            &p,
        );
        assert_eq!(rules(&weak), [(RuleId::HA001, Severity::Deny)]);
        for (n, want) in [
            (0, vec![(RuleId::HA001, Severity::Info)]),
            (2, vec![]),
            (5, vec![]),
        ] {
            let s = scale(n);
            assert_eq!(
                rules(&decide_scale(Input::new(&s), WorkloadKind::StatefulSet, &p)),
                want,
                "{n}"
            );
        }
    }

    #[test]
    fn an_unchanged_count_is_not_blocked_and_a_broken_one_is_not_checked() {
        let p = Policy::default();
        let one = scale(1);
        let d = decide_scale(
            Input::new(&one).with_old(Some(&one)),
            WorkloadKind::Deployment,
            &p,
        );
        assert_eq!(rules(&d), [(RuleId::HA001, Severity::Warn)]);
        assert!(d.findings[0].message.starts_with("not blocking"));
        let three = scale(3);
        let d = decide_scale(
            Input::new(&one).with_old(Some(&three)),
            WorkloadKind::Deployment,
            &p,
        );
        assert_eq!(rules(&d), [(RuleId::HA001, Severity::Deny)]);
        let bad = json!({"spec": {"replicas": "one"}});
        let d = decide_scale(Input::new(&bad), WorkloadKind::Deployment, &p);
        assert_eq!(
            d.subject,
            Subject::Uninterpretable(WorkloadKind::Deployment)
        );
        let off = Policy::from_yaml("rules: {HA001: off}\n").unwrap();
        assert!(
            decide_scale(Input::new(&one), WorkloadKind::Deployment, &off)
                .findings
                .is_empty()
        );
    }
}
