//! The autoscaler cache: `autoscaling/v2` HorizontalPodAutoscalers, reduced to their target,
//! `minReplicas` and `maxReplicas`, indexed by target. A workload judged at admission counts
//! its autoscaler's `minReplicas`, as `audit` does with the HPAs among its manifests.

use std::sync::Arc;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::{Api, Client};

use super::health::CacheHealth;
use super::{CompanionSink, reduced};
use crate::engine::{Autoscaler, Autoscalers};

/// Keeps the spec: status (current metrics and replicas) changes every sync period.
fn strip(hpa: &mut HorizontalPodAutoscaler) {
    hpa.status = None;
    let meta = &mut hpa.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
    if let Some(spec) = hpa.spec.as_mut() {
        spec.metrics = None;
        spec.behavior = None;
    }
}

/// Watches HorizontalPodAutoscalers until the process ends.
pub async fn run(client: Client, sink: Arc<dyn CompanionSink>, health: Arc<CacheHealth>) {
    reduced::watch(
        Api::<HorizontalPodAutoscaler>::all(client),
        strip,
        Autoscaler::from_json,
        |all| sink.publish_autoscalers(Arc::new(Autoscalers::new(all))),
        health,
    )
    .await
}
