//! HA024 and HA025: required pod affinity on a zone key.
//!
//! kube-scheduler's InterPodAffinity filter admits a pod with required affinity terms only on
//! nodes whose domain already holds a pod matching every term, with one exception: when no
//! pod in the cluster matches and the pod matches its own terms, it may go anywhere (so the
//! first replica of a self-affine workload is not Pending for ever). Every later replica must
//! then join the first one's domain.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodAffinityTerm;
use serde_json::Value;

use crate::engine::context::Context;
use crate::engine::finding::{Finding, RuleId, plural};
use crate::engine::labels::{describe_selector, selects};
use crate::engine::well_known::HOSTNAME_KEY;
use crate::engine::workload::{Classified, classify};

pub fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for (i, term) in ctx.workload.required_affinity_terms() {
        let key = term.topology_key.as_str();
        let zone = ctx.policy.is_zone_key(key);
        if !(zone || key == HOSTNAME_KEY) || ctx.key_present(key) == Some(false) {
            continue;
        }
        let what =
            format!("podAffinity.requiredDuringSchedulingIgnoredDuringExecution[{i}] ({key})");
        let about = serde_json::to_string(term).unwrap_or_default();
        let mut found = Vec::new();
        if ctx.term_selects_own_pods(term) {
            own_pods(ctx, key, &what, &mut found);
        } else if zone && term.label_selector.is_some() {
            other_workloads(ctx, term, &what, &mut found);
        }
        out.extend(
            found
                .into_iter()
                .map(|f| f.about(format!("{about}|replicas={}", ctx.replicas))),
        );
    }
}

/// HA024: affinity to the workload's own pods gathers every replica in one domain; with an
/// anti-affinity or a hard spread on the same key the later replicas stay Pending instead.
fn own_pods(ctx: &Context<'_>, key: &str, what: &str, out: &mut Vec<Finding>) {
    let replicas = ctx.replicas;
    if replicas < 2 {
        return;
    }
    let domain = if key == HOSTNAME_KEY { "node" } else { "zone" };
    let anti = ctx
        .own_anti_affinity_terms()
        .any(|t| t.required && t.term.topology_key == key);
    let spread = ctx
        .workload
        .scheduling
        .spread
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule" && c.topology_key == key)
        .filter(|c| {
            c.label_selector
                .as_ref()
                .is_some_and(|s| selects(s, &ctx.workload.pod_labels) == Ok(true))
        })
        .map(|c| i64::from(c.max_skew.max(1)))
        .min();
    let domains = if key == HOSTNAME_KEY {
        ctx.eligible_nodes().map_or(2, |n| n as i64)
    } else {
        ctx.eligible_zones() as i64
    };
    let message = if anti {
        format!(
            "{} of {} stay Pending: required podAffinity to its own pods needs the first pod's {domain}, required anti-affinity forbids it; {what}",
            replicas - 1,
            plural(replicas, "replica", "replicas"),
        )
    } else if let Some(max_skew) = spread.filter(|s| *s < replicas && domains >= 2) {
        format!(
            "{} of {} stay Pending: required podAffinity to its own pods gathers them in one {domain}, a DoNotSchedule spread allows {max_skew} there; {what}",
            replicas - max_skew,
            plural(replicas, "replica", "replicas"),
        )
    } else {
        format!(
            "all {} land in one {domain}: required podAffinity to its own pods makes each join the first one's {domain}; {what}",
            plural(replicas, "replica", "replicas"),
        )
    };
    out.push(Finding::deny(RuleId::HA024, message));
}

/// HA025: affinity to other workloads on a zone key pins this one to their zones; when
/// those are known (`audit` sees the other workloads) and are one zone, losing it takes
/// every replica.
fn other_workloads(ctx: &Context<'_>, term: &PodAffinityTerm, what: &str, out: &mut Vec<Finding>) {
    let Some(peers) = ctx.peers else {
        return;
    };
    let Some(selector) = term.label_selector.as_ref() else {
        return;
    };
    let own = (ctx.workload.namespace, ctx.workload.name, ctx.workload.kind);
    let mut matched = 0usize;
    let mut zones: BTreeSet<String> = BTreeSet::new();
    let mut spread_out = false;
    let mut single_anywhere = 0usize;
    peers.for_each(&mut |peer: &Value| {
        let Classified::Workload(w) = classify(peer, ctx.policy) else {
            return;
        };
        if (w.namespace, w.name, w.kind) == own {
            return;
        }
        let listed = term.namespaces.as_deref().unwrap_or_default();
        let in_namespace = w.namespace.is_some_and(|ns| listed.iter().any(|n| n == ns))
            || match &term.namespace_selector {
                // Another namespace's labels are unknown here: assume it is selected.
                Some(_) => {
                    w.namespace != ctx.workload.namespace || ctx.term_covers_own_namespace(term)
                }
                None => listed.is_empty() && w.namespace == ctx.workload.namespace,
            };
        if !in_namespace || selects(selector, &w.pod_labels) != Ok(true) {
            return;
        }
        matched += 1;
        let e = ctx.topology.eligibility(&w.scheduling(), &[]);
        match (&e.sole_zone, w.replicas) {
            (Some(z), _) => {
                zones.insert(z.clone());
            }
            (None, r) if r <= 1 => single_anywhere += 1,
            (None, _) if e.zones >= 2 => spread_out = true,
            (None, _) => {}
        }
    });
    if matched == 0 || spread_out || zones.len() + single_anywhere != 1 {
        return;
    }
    let place = match zones.iter().next() {
        Some(z) => format!("zone {z} only"),
        None => "one zone (a single replica)".to_owned(),
    };
    out.push(Finding::warn(
        RuleId::HA025,
        format!(
            "pinned to one zone: required podAffinity to {} runs in {place}; losing it takes all {}; {what}",
            describe_selector(selector),
            plural(ctx.replicas.max(1), "replica", "replicas"),
        ),
    ));
}
