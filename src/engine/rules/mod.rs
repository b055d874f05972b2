//! The HA rules, one file per family. Each takes the decision context and pushes findings.

pub mod anti_affinity;
pub mod disruption;
pub mod replicas;
pub mod spread;
pub mod volumes;
pub mod zones;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::finding::{Finding, RuleId};
use super::labels::{describe_labels, describe_selector, selects};

/// Whether a `labelSelector` selects the pod template's own labels; `Err` carries the HA004
/// explanation when it does not.
pub(crate) fn own_pods_selected(
    selector: Option<&LabelSelector>,
    own: &BTreeMap<String, String>,
    what: &str,
) -> Result<(), Finding> {
    let Some(selector) = selector else {
        return Err(Finding::deny(
            RuleId::HA004,
            format!("{what} has no labelSelector: it counts no pods and spreads nothing"),
        ));
    };
    match selects(selector, own) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Finding::deny(
            RuleId::HA004,
            format!(
                "{what} labelSelector {} does not select the pod template's labels {}: it spreads nothing",
                describe_selector(selector),
                describe_labels(own)
            ),
        )),
        Err(e) => Err(Finding::deny(
            RuleId::HA004,
            format!("{what} labelSelector is invalid ({e}): it spreads nothing"),
        )),
    }
}
