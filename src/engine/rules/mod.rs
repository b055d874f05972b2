//! The HA rules, one file per family. Each takes the decision context and pushes findings.

pub mod affinity;
pub mod anti_affinity;
pub mod disruption;
pub mod replicas;
pub mod rollout;
pub mod spread;
pub mod volumes;
pub mod zone_loss;
pub mod zones;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::finding::{Finding, RuleId};
use super::labels::{describe_labels, describe_selector, selects};

/// What a `labelSelector` selects, measured against the workload's own pod labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// The workload's own pods.
    Own,
    /// Other pods, deliberately: a requirement the own pods fail names a key they carry
    /// (`app: db` in an `app: web` workload).
    Other,
    /// Other pods, through keys the own pods do not carry at all: more likely a typo than a
    /// target. The keys are listed.
    Stray(Vec<String>),
    /// No selector: the term or constraint counts no pods.
    Missing,
    /// A selector that cannot be evaluated (an unknown operator).
    Invalid(String),
}

pub(crate) fn selection(
    selector: Option<&LabelSelector>,
    own: &BTreeMap<String, String>,
) -> Selection {
    let Some(selector) = selector else {
        return Selection::Missing;
    };
    match selects(selector, own) {
        Ok(true) => return Selection::Own,
        Err(e) => return Selection::Invalid(e.to_string()),
        Ok(false) => {}
    }
    // Which requirements fail, and on which keys.
    let mut failing: Vec<&str> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        if own.get(k) != Some(v) {
            failing.push(k);
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let one = LabelSelector {
            match_expressions: Some(vec![e.clone()]),
            match_labels: None,
        };
        if selects(&one, own) != Ok(true) {
            failing.push(&e.key);
        }
    }
    if failing.iter().any(|k| own.contains_key(*k)) {
        return Selection::Other;
    }
    let mut keys: Vec<String> = failing.into_iter().map(str::to_owned).collect();
    keys.sort();
    keys.dedup();
    Selection::Stray(keys)
}

/// Whether a spread constraint's `labelSelector` selects the pod template's own labels;
/// `Err` carries the HA004 denial when it does not.
pub(crate) fn own_pods_selected(
    selector: Option<&LabelSelector>,
    own: &BTreeMap<String, String>,
    what: &str,
) -> Result<(), Finding> {
    match selection(selector, own) {
        Selection::Own => Ok(()),
        Selection::Missing => Err(Finding::deny(
            RuleId::HA004,
            format!("spreads nothing: {what} has no labelSelector, so it counts no pods"),
        )),
        Selection::Invalid(e) => Err(Finding::deny(
            RuleId::HA004,
            format!("spreads nothing: {what} labelSelector is invalid ({e})"),
        )),
        Selection::Other | Selection::Stray(_) => Err(Finding::deny(
            RuleId::HA004,
            format!(
                "spreads nothing: {what} labelSelector {} does not select the pod template's labels {}",
                describe_selector(selector.expect("a selector")),
                describe_labels(own)
            ),
        )),
    }
}
