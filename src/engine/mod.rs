//! The pure decision engine: workload JSON + topology + policy → findings and a patch.
//!
//! It knows nothing of HTTP, clients or files; the webhook, `spreadguard audit` and the tests
//! all call [`decide`].

pub mod context;
pub mod exceptions;
pub mod finding;
pub mod labels;
pub mod memo;
pub mod mutation;
pub mod outcome;
pub mod policy;
pub mod provisioners;
pub mod rules;
pub mod stateful;
pub mod storage;
pub mod templates;
pub mod topology;
pub mod well_known;
pub mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

use json_patch::PatchOperation;
use serde_json::Value;

pub use self::finding::{Finding, RuleId, Severity};
pub use self::mutation::Injection;
pub use self::outcome::{Combined, Endpoint, Outcome, combined, outcome};
pub use self::topology::{NodeInfo, Topology, TopologySource, TopologySummary};
pub use self::well_known::INJECTED_ANNOTATION;
pub use self::workload::{Skip, WorkloadKind};

use self::context::Context;
use self::policy::Policy;
use self::workload::{Classified, Workload, at, classify};

/// What the engine is asked about.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub object: &'a Value,
    /// The stored object, for an UPDATE.
    pub old_object: Option<&'a Value>,
    /// `minReplicas` of a HorizontalPodAutoscaler that targets the workload, when known.
    pub hpa_min_replicas: Option<i64>,
    /// Today (UTC), for the policy's exceptions and their expiry; without it no exception
    /// with an expiry date applies.
    pub today: Option<exceptions::Day>,
    /// StorageClasses, claims and volumes, when known (the caches, or storage objects among
    /// audit's files): HA017–HA020 and the stateful zone spread need them.
    pub volumes: Option<&'a dyn storage::Volumes>,
    /// Name what the decision took into account ([`Decision::considered`]): reports want
    /// it, the webhook does not pay for it.
    pub report_considered: bool,
}

impl<'a> Input<'a> {
    pub fn new(object: &'a Value) -> Self {
        Input {
            object,
            old_object: None,
            hpa_min_replicas: None,
            today: None,
            volumes: None,
            report_considered: false,
        }
    }

    /// Fill in [`Decision::considered`] (for reports).
    pub fn reporting_considered(mut self) -> Self {
        self.report_considered = true;
        self
    }

    pub fn with_volumes(mut self, volumes: Option<&'a dyn storage::Volumes>) -> Self {
        self.volumes = volumes;
        self
    }

    pub fn with_today(mut self, today: exceptions::Day) -> Self {
        self.today = Some(today);
        self
    }

    pub fn with_old(mut self, old: Option<&'a Value>) -> Self {
        self.old_object = old;
        self
    }

    pub fn with_hpa_min_replicas(mut self, min: Option<i64>) -> Self {
        self.hpa_min_replicas = min;
        self
    }
}

/// What kind of object the decision was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// Passed through untouched.
    Skipped(Skip),
    /// A workload, judged.
    Workload(WorkloadKind),
    /// A workload whose fields could not be read (see the HA000 finding).
    Uninterpretable(WorkloadKind),
}

/// The engine's answer. Severities already include the policy's overrides and ratcheting.
#[derive(Clone, Debug)]
pub struct Decision {
    pub subject: Subject,
    pub findings: Vec<Finding>,
    pub patch: Vec<PatchOperation>,
    pub injected: Vec<Injection>,
    /// What the workload's owner should know beyond the findings (an exception expired).
    pub notices: Vec<String>,
    /// Why the injection is what it is (a stateful zone spread made hard, or not); `/mutate`
    /// sends them as warnings with the patch.
    pub notes: Vec<String>,
    /// The storage classes, claims and node templates the decision took into account (only
    /// when asked for, [`Input::reporting_considered`]).
    pub considered: stateful::Considered,
}

impl Decision {
    fn skipped(skip: Skip) -> Self {
        Decision {
            subject: Subject::Skipped(skip),
            findings: Vec::new(),
            patch: Vec::new(),
            injected: Vec::new(),
            notices: Vec::new(),
            notes: Vec::new(),
            considered: stateful::Considered::default(),
        }
    }

    /// Whether any finding is a denial.
    pub fn denies(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Deny)
    }
}

/// Decides one object.
pub fn decide(input: Input<'_>, topology: &Topology, policy: &Policy) -> Decision {
    let workload = match classify(input.object) {
        Classified::Skip(skip) => return Decision::skipped(skip),
        Classified::Uninterpretable { kind, reason } => {
            return Decision {
                subject: Subject::Uninterpretable(kind),
                findings: vec![Finding::warn(
                    RuleId::HA000,
                    format!("not checked: {reason}"),
                )],
                patch: Vec::new(),
                injected: Vec::new(),
                notices: Vec::new(),
                notes: Vec::new(),
                considered: stateful::Considered::default(),
            };
        }
        Classified::Workload(w) => w,
    };
    let explicit = at(input.object, &["spec", "replicas"]).is_some_and(|v| !v.is_null());
    let ctx = Context::new(
        &workload,
        topology,
        policy,
        explicit,
        input.hpa_min_replicas,
    )
    .with_volumes(input.volumes);
    let mut findings = judge(&ctx);

    let mut notes = Vec::new();
    let (mut patch, mut injected) = if may_mutate(&workload, input) {
        mutation::plan(&ctx, &mut findings, &mut notes)
    } else {
        (Vec::new(), Vec::new())
    };
    let considered = if input.report_considered {
        stateful::considered(&ctx)
    } else {
        stateful::Considered::default()
    };

    let mut findings = apply_overrides(findings, policy);
    if let Some(old) = input.old_object {
        ratchet(
            &mut findings,
            old,
            topology,
            policy,
            input.hpa_min_replicas,
            input.volumes,
        );
    }
    let mut notices = Vec::new();
    if !policy.exceptions.is_empty() {
        // The workload's own labels (not its pods'), read only when there are exceptions.
        let labels = at(input.object, &["metadata", "labels"])
            .and_then(|v| BTreeMap::<String, String>::deserialize(v).ok())
            .unwrap_or_default();
        let target = exceptions::Target {
            namespace: workload.namespace,
            kind: workload.kind.as_str(),
            name: workload.name,
            labels: &labels,
        };
        // Without a date only exceptions that never expire can be told to apply.
        let today = input.today.unwrap_or(exceptions::Day(time::Date::MAX));
        let applied = exceptions::apply(&mut findings, &policy.exceptions, &target, today);
        if applied.no_mutation {
            patch.clear();
            injected.clear();
            notes.clear();
        }
        notices = applied.notices;
    }
    Decision {
        subject: Subject::Workload(workload.kind),
        findings: cap_per_rule(findings),
        patch,
        injected,
        notices,
        notes,
        considered,
    }
}

fn judge(ctx: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    rules::replicas::check(ctx, &mut findings);
    rules::anti_affinity::check(ctx, &mut findings);
    rules::spread::check(ctx, &mut findings);
    rules::zones::check(ctx, &mut findings);
    rules::volumes::check(ctx, &mut findings);
    findings
}

/// On UPDATE only a change of the pod template is mutated, so that a scale or a label edit
/// never triggers a rollout; a Pod's scheduling fields are immutable once created.
fn may_mutate(workload: &Workload<'_>, input: Input<'_>) -> bool {
    let Some(old) = input.old_object else {
        return true;
    };
    match workload.kind {
        WorkloadKind::Pod => false,
        _ => at(old, &["spec", "template"]) != at(input.object, &["spec", "template"]),
    }
}

fn apply_overrides(findings: Vec<Finding>, policy: &Policy) -> Vec<Finding> {
    if policy.rules.is_empty() {
        return findings;
    }
    findings
        .into_iter()
        .filter_map(|mut f| {
            f.severity = policy.severity_for(f.rule, f.severity)?;
            Some(f)
        })
        .collect()
}

/// A denial the stored object already had is downgraded to a warning, so that legacy
/// workloads stay editable; only new violations block. "Already had" means the same rule
/// about the same thing (the same constraint or term, the same replica count), so an UPDATE
/// cannot add a second violation of a rule under cover of the first.
fn ratchet(
    findings: &mut [Finding],
    old: &Value,
    topology: &Topology,
    policy: &Policy,
    hpa: Option<i64>,
    volumes: Option<&dyn storage::Volumes>,
) {
    if !findings.iter().any(|f| f.severity == Severity::Deny) {
        return;
    }
    let old_findings: Vec<Finding> = match classify(old) {
        Classified::Workload(w) => {
            let explicit = at(old, &["spec", "replicas"]).is_some_and(|v| !v.is_null());
            let ctx = Context::new(&w, topology, policy, explicit, hpa).with_volumes(volumes);
            apply_overrides(judge(&ctx), policy)
                .into_iter()
                .filter(|f| f.severity == Severity::Deny)
                .collect()
        }
        _ => return,
    };
    let old_denials: HashSet<(RuleId, &str)> = old_findings.iter().map(Finding::identity).collect();
    for f in findings.iter_mut() {
        if f.severity == Severity::Deny && old_denials.contains(&f.identity()) {
            f.severity = Severity::Warn;
            f.message = finding::safe_text(
                format!(
                    "{} (already present before this update, so not blocking)",
                    f.message
                ),
                finding::MAX_MESSAGE_CHARS,
            );
        }
    }
}

/// Findings of one rule kept per object; the rest are summed up in one finding, so that an
/// object with a thousand broken constraints costs what one with a few does.
pub const MAX_FINDINGS_PER_RULE: usize = 5;

/// Keeps at most [`MAX_FINDINGS_PER_RULE`] findings per rule, replacing the rest with one
/// summary finding (as severe as the worst it stands for).
fn cap_per_rule(findings: Vec<Finding>) -> Vec<Finding> {
    let mut per_rule: HashMap<RuleId, usize> = HashMap::new();
    if findings.len() <= MAX_FINDINGS_PER_RULE {
        return findings;
    }
    let mut kept = Vec::with_capacity(findings.len().min(64));
    let mut dropped: Vec<(RuleId, usize, Severity)> = Vec::new();
    for f in findings {
        let n = per_rule.entry(f.rule).or_insert(0);
        *n += 1;
        if *n <= MAX_FINDINGS_PER_RULE {
            kept.push(f);
            continue;
        }
        match dropped.iter_mut().find(|(r, _, _)| *r == f.rule) {
            Some((_, count, worst)) => {
                *count += 1;
                *worst = (*worst).max(f.severity);
            }
            None => dropped.push((f.rule, 1, f.severity)),
        }
    }
    for (rule, count, worst) in dropped {
        kept.push(
            Finding::new(
                rule,
                worst,
                format!(
                    "… and {} more {rule} finding{} like the above",
                    count,
                    if count == 1 { "" } else { "s" }
                ),
            )
            .about(format!("more:{rule}:{count}")),
        );
    }
    kept
}
