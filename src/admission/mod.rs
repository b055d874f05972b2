//! AdmissionReview in, AdmissionReview out: the webhook's contract with the API server.
//!
//! [`review`] answers one body: [`envelope`] decodes it as far as routing needs, [`judge`]
//! resolves the mode and runs the engine, the engine's [`outcome`](crate::engine::outcome)
//! says what the decision becomes under that mode at this endpoint, and [`response`] encodes
//! the answer. Each request runs in a tracing span with its uid, kind, namespace, object
//! (name), mode and decision.

pub mod envelope;
pub mod judge;
pub mod prune;
pub mod response;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::field::Empty;

pub use self::envelope::{BadReview, Handled};
use self::judge::Judged;
use self::response::{Refusal, Response};
use crate::engine::outcome::{Endpoint, Outcome, outcome};
use crate::engine::policy::Policy;
use crate::engine::{Autoscalers, Budgets, Decision, Input, Topology};
use crate::metrics::{DecisionLabel, Metrics, RequestLabels};

/// The engine entry point; a seam so that tests can make it fail.
pub type Decider = fn(Input<'_>, &Topology, &Policy) -> Decision;

/// Labels of a namespace, for mode resolution. The cluster cache implements this; without
/// one every namespace's labels are unknown (`None`), and the API server's
/// `namespaceSelector` is trusted to have done the opt-in.
pub trait NamespaceLabels: Send + Sync + 'static {
    fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>>;
}

/// No namespace cache: labels are unknown.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnknownNamespaces;

impl NamespaceLabels for UnknownNamespaces {
    fn labels(&self, _: &str) -> Option<Arc<BTreeMap<String, String>>> {
        None
    }
}

impl<F> NamespaceLabels for F
where
    F: Fn(&str) -> Option<Arc<BTreeMap<String, String>>> + Send + Sync + 'static,
{
    fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self(namespace)
    }
}

/// Everything one review is judged against, borrowed for the request's duration.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub topology: &'a Topology,
    pub namespaces: &'a dyn NamespaceLabels,
    /// The autoscaler cache's snapshot; `None` without one.
    pub autoscalers: Option<&'a Autoscalers>,
    /// The disruption budget cache's snapshot; `None` without one.
    pub budgets: Option<&'a Budgets>,
    /// StorageClasses, claims and volumes, when watched.
    pub volumes: Option<&'a dyn crate::engine::storage::Volumes>,
    pub metrics: &'a Metrics,
    pub decide: Decider,
}

/// Answers one AdmissionReview body: `Ok` is the serialised review to send with HTTP 200.
pub fn review(endpoint: Endpoint, body: &[u8], ctx: &Context<'_>) -> Result<Vec<u8>, BadReview> {
    let started = Instant::now();
    let review = envelope::decode(body, ctx.policy)?;
    let mut request = review.request;
    // The kind behind the resource, whatever the operation (a metric label).
    let kind = request
        .kind
        .map(Handled::Workload)
        .or_else(|| request.resource.replica_setter());
    let dry_run = request.dry_run.unwrap_or(false);
    // The request's span: everything logged while it is judged names the request; its mode
    // and decision are recorded once known. The object's name is `object`: in JSON logs
    // `name` is the span's own name ("admission").
    let span = tracing::info_span!(
        "admission",
        uid = request.uid.as_str(),
        kind = kind.map_or("other", Handled::as_str),
        namespace = request.namespace.as_deref().unwrap_or_default(),
        object = request.name.as_deref().unwrap_or_default(),
        mode = Empty,
        decision = Empty,
    );
    let _entered = span.enter();

    let (judged, notice) = match request.handled() {
        Some(handled) => judge::judge(handled, &mut request, ctx),
        None => (
            Judged::Answer {
                outcome: Outcome::allow(),
                refusal: Refusal::Policy,
                mode: None,
                engine_failed: false,
            },
            None,
        ),
    };
    let decided: Box<Decision>;
    let (answer, refusal, mode, engine_failed) = match judged {
        Judged::Answer {
            outcome,
            refusal,
            mode,
            engine_failed,
        } => (outcome, refusal, mode, engine_failed),
        Judged::Decided { mode, decision } => {
            decided = decision;
            let answer = outcome(mode, &decided, endpoint);
            match endpoint {
                Endpoint::Validate if !decided.findings.is_empty() => {
                    ctx.metrics.findings(&decided.findings, mode, dry_run)
                }
                Endpoint::Mutate if answer.patch.is_some() && !dry_run => {
                    ctx.metrics.injections(&decided.injected)
                }
                _ => {}
            }
            (answer, Refusal::Policy, Some(mode), false)
        }
    };

    let mut answer = answer;
    if let Some(notice) = notice {
        answer.warnings.insert(0, notice);
    }

    let decision = if engine_failed {
        DecisionLabel::error
    } else if !answer.allowed {
        DecisionLabel::denied
    } else if answer.patch.is_some() {
        DecisionLabel::patched
    } else {
        DecisionLabel::allowed
    };
    let labels = RequestLabels {
        webhook: endpoint.as_str(),
        kind: kind.map_or("other", Handled::as_str),
        operation: request.operation_label(),
        decision,
        mode: mode.map_or("none", |m| m.as_str()),
        dry_run,
    };
    let out = Response {
        api_version: review.api_version,
        uid: &request.uid,
        outcome: &answer,
        refusal,
    }
    .encode();
    let elapsed = started.elapsed();
    ctx.metrics.request(&labels, elapsed);
    span.record("mode", labels.mode);
    span.record("decision", decision.as_str());
    log(&labels, elapsed, &answer.detail);
    Ok(out)
}

/// One line per request, inside the request's span: info when something was patched, denied
/// or reported, debug for a plain allow.
fn log(labels: &RequestLabels, elapsed: Duration, detail: &str) {
    let micros = elapsed.as_micros() as u64;
    if labels.decision == DecisionLabel::allowed && detail.is_empty() {
        tracing::debug!(
            webhook = labels.webhook,
            operation = labels.operation,
            dry_run = labels.dry_run,
            micros,
            "admission"
        );
    } else {
        tracing::info!(
            webhook = labels.webhook,
            operation = labels.operation,
            dry_run = labels.dry_run,
            micros,
            detail,
            "admission"
        );
    }
}
