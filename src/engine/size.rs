//! HA028: an object holding more values where decisions read than they judge is refused,
//! not judged, so that no review can cost more than a bounded amount of work.

use serde_json::Value;

use super::autoscaler::is_autoscaler;
use super::budget::is_budget;
use super::finding::{Finding, RuleId, Severity};
use super::policy::Policy;
use super::read_fields::{At, MAX_READ_VALUES, exceeds};
use super::{Decision, Subject, WorkloadKind, apply_overrides, downgrade};

/// What `object` would be judged as, and where its read fields start; `None` for objects
/// no decision judges.
pub fn subject_of(object: &Value, policy: &Policy) -> Option<(Subject, Option<At>)> {
    if is_autoscaler(object) {
        return Some((Subject::Autoscaler, None));
    }
    if is_budget(object) {
        return Some((Subject::DisruptionBudget, None));
    }
    let str_at = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    let kind = WorkloadKind::from_type(str_at("apiVersion"), str_at("kind"), policy)?;
    Some((Subject::Workload(kind), At::root(kind)))
}

/// HA028 for `object` when it is too large to judge.
pub fn check(object: &Value, old: Option<&Value>, policy: &Policy) -> Option<Decision> {
    let (subject, root) = subject_of(object, policy)?;
    if !exceeds(object, root) {
        return None;
    }
    let old_too_large = old.is_some_and(|old| exceeds(old, root));
    Some(decision(subject, old_too_large, policy))
}

/// The decision on an object too large to judge: HA028 (deny unless the policy says
/// otherwise), a warning only when the stored object was too large already.
pub fn decision(subject: Subject, old_too_large: bool, policy: &Policy) -> Decision {
    let finding = Finding::new(
        RuleId::HA028,
        Severity::Deny,
        format!(
            "not judged: the fields spreadguard reads (labels, annotations, selectors, \
             affinity, spread constraints, tolerations, claims) hold more than {MAX_READ_VALUES} \
             values; spreadguard judges at most {MAX_READ_VALUES} so that no object can make a \
             review expensive. Reduce them (the policy's `rules` can make HA028 a warning, which admits such objects unjudged)"
        ),
    )
    .about("size");
    let mut findings = apply_overrides(vec![finding.clone()], policy);
    if old_too_large {
        downgrade(&mut findings, &[finding]);
    }
    Decision::of(subject, findings)
}
