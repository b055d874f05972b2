//! The disruption budget cache: `policy/v1` PodDisruptionBudgets, reduced to their selector,
//! `minAvailable`, `maxUnavailable` and `unhealthyPodEvictionPolicy`, indexed by the labels
//! their selectors require. A workload judged at admission is checked against the budgets
//! that select its pods.

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Api, Client};

use super::health::CacheHealth;
use super::{CompanionSink, reduced};
use crate::engine::{Budget, Budgets};

/// Keeps the spec: the disruption controller updates the status on every pod change.
fn strip(pdb: &mut PodDisruptionBudget) {
    pdb.status = None;
    let meta = &mut pdb.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
}

/// Watches PodDisruptionBudgets until the process ends.
pub async fn run(client: Client, sink: Arc<dyn CompanionSink>, health: Arc<CacheHealth>) {
    reduced::watch(
        Api::<PodDisruptionBudget>::all(client),
        strip,
        Budget::from_json,
        |all| sink.publish_budgets(Arc::new(Budgets::new(all))),
        health,
    )
    .await
}
