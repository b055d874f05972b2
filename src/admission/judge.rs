//! From a decoded request to a decision: the mode the object is judged in, its objects
//! decoded, the engine run (a panic in it answered per `failOpen`).

use std::collections::{BTreeMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{LazyLock, Mutex};

use serde_json::Value;

use super::Context;
use super::envelope::{Handled, Request};
use super::response::Refusal;
use crate::engine::exceptions::Day;
use crate::engine::outcome::Outcome;
use crate::engine::policy::Mode;
use crate::engine::size;
use crate::engine::well_known::MODE_KEY;
use crate::engine::workload::at;
use crate::engine::{Decision, Input, RuleId, decide_scale};

/// What judging a request came to.
pub enum Judged {
    /// Answered without a decision: the mode is off, the object could not be read, or the
    /// engine failed.
    Answer {
        outcome: Outcome<'static>,
        refusal: Refusal,
        mode: Option<Mode>,
        engine_failed: bool,
    },
    /// The engine decided; the mode says what that becomes.
    Decided { mode: Mode, decision: Box<Decision> },
}

impl Judged {
    fn allow(mode: Option<Mode>) -> Judged {
        Judged::Answer {
            outcome: Outcome::allow(),
            refusal: Refusal::Policy,
            mode,
            engine_failed: false,
        }
    }

    fn warn(text: String) -> Judged {
        Judged::Answer {
            outcome: Outcome::allow_with_warning(text),
            refusal: Refusal::Policy,
            mode: None,
            engine_failed: false,
        }
    }
}

/// Resolves the mode and, unless it is off, decides the request's object. The second value
/// is a warning for the response when the namespace's `spreadguard.io/mode` label is not a
/// mode (the policy's mode applies instead: safe, but the namespace's owner should know).
pub fn judge(
    handled: Handled,
    request: &mut Request<'_>,
    ctx: &Context<'_>,
) -> (Judged, Option<String>) {
    let namespace = request
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned);
    let ns_labels = namespace
        .as_deref()
        .and_then(|ns| ctx.namespaces.labels(ns));
    let judged = judge_in(handled, request, ctx, ns_labels.as_deref());
    let mode = match &judged {
        Judged::Answer { mode, .. } => *mode,
        Judged::Decided { mode, .. } => Some(*mode),
    };
    let notice = match (namespace.as_deref(), ns_labels.as_deref(), mode) {
        (Some(ns), Some(labels), Some(mode)) if mode != Mode::Off => {
            invalid_mode_label(ctx, ns, labels, mode)
        }
        _ => None,
    };
    (judged, notice)
}

/// The warning for a namespace `spreadguard.io/mode` label that names no mode: counted on
/// every request, logged once per namespace and value.
fn invalid_mode_label(
    ctx: &Context<'_>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    mode: Mode,
) -> Option<String> {
    let value = labels.get(MODE_KEY)?;
    if Mode::parse(value).is_some() {
        return None;
    }
    ctx.metrics.namespace_mode_invalid();
    if first_time(namespace, value) {
        tracing::warn!(
            namespace,
            label = MODE_KEY,
            value = %value.escape_debug(),
            applied = mode.as_str(),
            "namespace mode label is not enforce, warn, audit or off; applying the policy's mode"
        );
    }
    let shown: String = value.chars().take(63).collect();
    Some(format!(
        "spreadguard: namespace label {MODE_KEY}={:?} is not one of enforce, warn, audit, off; mode {} applies",
        shown,
        mode.as_str()
    ))
}

/// Whether this namespace and value are new to the log. Bounded: past a few thousand
/// entries the memory is cleared and each is logged once more.
fn first_time(namespace: &str, value: &str) -> bool {
    static SEEN: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Default::default);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= 4096 {
        seen.clear();
    }
    seen.insert((namespace.to_owned(), value.to_owned()))
}

fn judge_in(
    handled: Handled,
    request: &mut Request<'_>,
    ctx: &Context<'_>,
    ns_labels: Option<&BTreeMap<String, String>>,
) -> Judged {
    let policy = ctx.policy;
    let namespace = request.namespace.as_deref().filter(|ns| !ns.is_empty());

    // Without workload overrides the mode is known before the object is decoded.
    if !policy.allow_workload_override
        && policy.resolve_mode(namespace, ns_labels, None) == Mode::Off
    {
        return Judged::allow(Some(Mode::Off));
    }

    // Decoded without what no decision reads and no more of the rest than decisions judge;
    // on UPDATE with the pod templates' raw text, to tell whether the template changed (an
    // image change is a rollout) without decoding containers.
    let update = request.is_update();
    let object = match std::mem::take(&mut request.object).decode(handled.prune_as(), update) {
        Ok(Some(object)) => object,
        Ok(None) => {
            return Judged::warn(format!(
                "{}: not checked: the request carries no object",
                RuleId::HA000
            ));
        }
        Err(e) => return Judged::warn(format!("{}: not checked: {e}", RuleId::HA000)),
    };
    let old = if update {
        std::mem::take(&mut request.old_object)
            .decode(handled.prune_as(), true)
            .ok()
            .flatten()
    } else {
        None
    };
    let template_changed = match (&object.template, old.as_ref().and_then(|o| o.template)) {
        (Some(new), Some(old)) => Some(*new != old),
        _ => None,
    };
    let old_too_large = old.as_ref().is_some_and(|o| o.too_large);
    let old = old.filter(|o| !o.too_large).map(|o| o.value);
    let too_large = object.too_large;
    let object = object.value;
    let annotations = at(&object, &["metadata", "annotations"]).and_then(Value::as_object);
    let mode = policy.resolve_mode(namespace, ns_labels, annotations);
    if mode == Mode::Off {
        return Judged::allow(Some(mode));
    }

    if too_large {
        // Judged by its size alone: nothing of it was built past the budget.
        return Judged::Decided {
            mode,
            decision: Box::new(size::decision(handled.subject(), old_too_large, policy)),
        };
    }

    let decide = ctx.decide;
    let mut input = Input::new(&object)
        .with_old(old.as_ref())
        .with_namespace_labels(ns_labels)
        .with_volumes(ctx.volumes);
    input.template_changed = template_changed;
    input.read_values_bounded = true;
    input.autoscalers = ctx.autoscalers;
    input.budgets = ctx.budgets;
    if !policy.exceptions.is_empty() {
        input = input.with_today(Day::today_utc());
    }
    let run = || match handled {
        Handled::Scale(kind) => decide_scale(input, kind, policy),
        Handled::Workload(_) | Handled::Autoscaler | Handled::DisruptionBudget => {
            decide(input, ctx.topology, policy)
        }
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(decision) => Judged::Decided {
            mode,
            decision: Box::new(decision),
        },
        Err(panic) => {
            ctx.metrics.engine_panic();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, fail_open = policy.fail_open, "the decision engine panicked");
            let outcome = if policy.fail_open {
                Outcome::allow_with_warning(
                    "spreadguard could not evaluate this object (internal error); allowed because failOpen is true",
                )
            } else {
                Outcome::deny(
                    "spreadguard could not evaluate this object (internal error) and failOpen is false",
                )
            };
            Judged::Answer {
                outcome,
                refusal: Refusal::Internal,
                mode: Some(mode),
                engine_failed: true,
            }
        }
    }
}
