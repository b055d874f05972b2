//! HA001: enough replicas to survive losing one.

use crate::engine::context::{Context, ReplicaSource};
use crate::engine::finding::{Finding, RuleId, Severity, plural};
use crate::engine::policy::DefaultedReplicas;
use crate::engine::workload::WorkloadKind;

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let min = i64::from(ctx.policy.min_replicas);
    if ctx.workload.kind == WorkloadKind::Pod {
        if min > 1 {
            out.push(Finding::warn(
                RuleId::HA001,
                format!(
                    "a bare Pod is 1 replica with no controller to replace it; policy requires at least {min}: use a Deployment or StatefulSet"
                ),
            ));
        }
        return;
    }
    let replicas = ctx.replicas;
    if replicas == 0 {
        out.push(Finding::info(
            RuleId::HA001,
            "scaled to 0 replicas: not checked until it is scaled up",
        ));
        return;
    }
    if replicas >= min {
        return;
    }
    let what = match ctx.replica_source {
        ReplicaSource::Spec => plural(replicas, "replica", "replicas"),
        // Nobody chose 1: the API server defaulted it, and an HPA may still come (Helm
        // creates the Deployment before its HPA).
        ReplicaSource::Defaulted => {
            let severity = match ctx.policy.defaulted_replicas {
                DefaultedReplicas::Warn => Severity::Warn,
                DefaultedReplicas::Deny => Severity::Deny,
            };
            out.push(
                Finding::new(
                    RuleId::HA001,
                    severity,
                    format!(
                        "replicas not set: defaulted to {replicas}; set replicas ≥ {min} or add an HPA with minReplicas ≥ {min}"
                    ),
                )
                .about(format!("replicas={replicas}")),
            );
            return;
        }
        ReplicaSource::Autoscaler => format!("HorizontalPodAutoscaler minReplicas {replicas}"),
    };
    out.push(
        Finding::deny(
            RuleId::HA001,
            format!("{what}, policy requires at least {min}: losing one zone or node takes the workload down"),
        )
        .about(format!("replicas={replicas}")),
    );
}
