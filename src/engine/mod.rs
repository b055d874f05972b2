//! The pure decision engine: workload JSON + topology + policy → findings and a patch.
//!
//! It knows nothing of HTTP, clients or files; the webhook, `spreadguard audit` and the tests
//! all call [`decide`].

pub mod autoscaler;
pub mod budget;
pub mod context;
pub mod finding;
pub mod labels;
pub mod memo;
pub mod mutation;
pub mod outcome;
pub mod placement;
pub mod policy;
pub mod replica_origin;
pub mod rules;
pub mod topology;
pub mod well_known;
pub mod workload;

use json_patch::PatchOperation;
use serde_json::Value;

pub use self::autoscaler::{Autoscaler, Autoscalers};
pub use self::budget::{Budget, Budgets};
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
    /// `minReplicas` of a HorizontalPodAutoscaler that targets the workload, when known
    /// otherwise than through `autoscalers` (it wins over them).
    pub hpa_min_replicas: Option<i64>,
    /// The autoscalers known (the cache, or those among audited manifests); `None`: unknown.
    pub autoscalers: Option<&'a Autoscalers>,
    /// The disruption budgets known; `None`: unknown (no budget rule is checked).
    pub budgets: Option<&'a Budgets>,
}

impl<'a> Input<'a> {
    pub fn new(object: &'a Value) -> Self {
        Input {
            object,
            old_object: None,
            hpa_min_replicas: None,
            autoscalers: None,
            budgets: None,
        }
    }

    pub fn with_autoscalers(mut self, autoscalers: &'a Autoscalers) -> Self {
        self.autoscalers = Some(autoscalers);
        self
    }

    pub fn with_budgets(mut self, budgets: &'a Budgets) -> Self {
        self.budgets = Some(budgets);
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
    /// A HorizontalPodAutoscaler, judged on its own numbers (HA012).
    Autoscaler,
    /// A PodDisruptionBudget, judged on its own numbers (HA013).
    DisruptionBudget,
}

/// The autoscaler and budgets a workload's decision took into account.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Considered {
    pub autoscaler: Option<AutoscalerSeen>,
    pub disruption_budgets: Vec<BudgetSeen>,
}

/// An autoscaler as a decision counted it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSeen {
    pub name: String,
    pub min_replicas: i64,
    pub max_replicas: Option<i64>,
}

/// A disruption budget as a decision counted it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSeen {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<budget::IntOrPercent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<budget::IntOrPercent>,
    /// How many of the workload's effective replicas it lets go at once.
    pub allowed_unavailable: i64,
}

/// The engine's answer. Severities already include the policy's overrides and ratcheting.
#[derive(Clone, Debug)]
pub struct Decision {
    pub subject: Subject,
    pub findings: Vec<Finding>,
    pub patch: Vec<PatchOperation>,
    pub injected: Vec<Injection>,
    /// What the decision counted besides the object.
    pub considered: Considered,
}

impl Decision {
    fn skipped(skip: Skip) -> Self {
        Decision::of(Subject::Skipped(skip), Vec::new())
    }

    fn of(subject: Subject, findings: Vec<Finding>) -> Self {
        Decision {
            subject,
            findings,
            patch: Vec::new(),
            injected: Vec::new(),
            considered: Considered::default(),
        }
    }

    /// Whether any finding is a denial.
    pub fn denies(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Deny)
    }
}

/// Decides one object.
pub fn decide(input: Input<'_>, topology: &Topology, policy: &Policy) -> Decision {
    if autoscaler::is_autoscaler(input.object) {
        return decide_alone(
            Subject::Autoscaler,
            input,
            |o| rules::disruption::autoscaler(o, policy),
            policy,
        );
    }
    if budget::is_budget(input.object) {
        return decide_alone(
            Subject::DisruptionBudget,
            input,
            rules::disruption::budget,
            policy,
        );
    }
    let workload = match classify(input.object) {
        Classified::Skip(skip) => return Decision::skipped(skip),
        Classified::Uninterpretable { kind, reason } => {
            return Decision::of(
                Subject::Uninterpretable(kind),
                vec![Finding::warn(
                    RuleId::HA000,
                    format!("not checked: {reason}"),
                )],
            );
        }
        Classified::Workload(w) => w,
    };
    let namespace = workload.namespace.unwrap_or_default();
    let hpa = input.autoscalers.and_then(|all| {
        let api_version = input.object.get("apiVersion").and_then(Value::as_str);
        all.for_workload(
            namespace,
            autoscaler::group_of(api_version.unwrap_or_default()),
            workload.kind.as_str(),
            workload.name,
        )
    });
    let hpa_min = input.hpa_min_replicas.or(hpa.map(|a| a.min_replicas));
    let explicit = replicas_written(input.object, hpa_min);
    let ctx = Context::new(&workload, topology, policy, explicit, hpa_min);
    let mut findings = judge(&ctx);

    let (patch, injected) = if may_mutate(&workload, input) {
        mutation::plan(&ctx, &mut findings)
    } else {
        (Vec::new(), Vec::new())
    };
    let budgets = input
        .budgets
        .map(|all| all.selecting(namespace, &workload.pod_labels));
    rules::disruption::workload(
        &ctx,
        input.object,
        &injected,
        budgets.as_deref(),
        &mut findings,
    );

    let mut findings = apply_overrides(findings, policy);
    if let Some(old) = input.old_object {
        ratchet(&mut findings, old, topology, policy, hpa_min);
    }
    let considered = Considered {
        autoscaler: hpa.map(|a| AutoscalerSeen {
            name: a.name.clone(),
            min_replicas: a.min_replicas,
            max_replicas: a.max_replicas,
        }),
        disruption_budgets: budgets
            .unwrap_or_default()
            .iter()
            .map(|b| BudgetSeen {
                name: b.name.clone(),
                min_available: match b.requirement {
                    budget::Requirement::MinAvailable(v) => Some(v),
                    _ => None,
                },
                max_unavailable: match b.requirement {
                    budget::Requirement::MaxUnavailable(v) => Some(v),
                    _ => None,
                },
                allowed_unavailable: b.allowed_unavailable(ctx.replicas),
            })
            .collect(),
    };
    Decision {
        subject: Subject::Workload(workload.kind),
        findings,
        patch,
        injected,
        considered,
    }
}

/// Whether `spec.replicas` counts as written: a 1 the API server defaulted does not, unless
/// an autoscaler sets the count anyway (see [`replica_origin`]).
fn replicas_written(object: &Value, hpa_min: Option<i64>) -> bool {
    match at(object, &["spec", "replicas"]) {
        None | Some(Value::Null) => false,
        Some(v) if v.as_i64() == Some(1) && hpa_min.is_none() => {
            !replica_origin::replicas_origin(object).defaulted()
        }
        Some(_) => true,
    }
}

/// An object judged on its own (an HPA, a PDB): no topology, no patch; on UPDATE a denial
/// the stored object had already is downgraded, as for workloads.
fn decide_alone(
    subject: Subject,
    input: Input<'_>,
    judge: impl Fn(&Value) -> Vec<Finding>,
    policy: &Policy,
) -> Decision {
    if at(input.object, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return Decision::skipped(Skip::Deleting);
    }
    let mut findings = apply_overrides(judge(input.object), policy);
    if let Some(old) = input.old_object
        && findings.iter().any(|f| f.severity == Severity::Deny)
    {
        let before: Vec<RuleId> = apply_overrides(judge(old), policy)
            .into_iter()
            .filter(|f| f.severity == Severity::Deny)
            .map(|f| f.rule)
            .collect();
        downgrade(&mut findings, &before);
    }
    Decision::of(subject, findings)
}

fn judge(ctx: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    rules::replicas::check(ctx, &mut findings);
    rules::anti_affinity::check(ctx, &mut findings);
    rules::spread::check(ctx, &mut findings);
    rules::zones::check(ctx, &mut findings);
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
/// workloads stay editable; only new violations block.
fn ratchet(
    findings: &mut [Finding],
    old: &Value,
    topology: &Topology,
    policy: &Policy,
    hpa: Option<i64>,
) {
    if !findings.iter().any(|f| f.severity == Severity::Deny) {
        return;
    }
    let old_denials: Vec<RuleId> = match classify(old) {
        Classified::Workload(w) => {
            let explicit = replicas_written(old, hpa);
            let ctx = Context::new(&w, topology, policy, explicit, hpa);
            apply_overrides(judge(&ctx), policy)
                .into_iter()
                .filter(|f| f.severity == Severity::Deny)
                .map(|f| f.rule)
                .collect()
        }
        _ => return,
    };
    downgrade(findings, &old_denials);
}

fn downgrade(findings: &mut [Finding], old_denials: &[RuleId]) {
    for f in findings.iter_mut() {
        if f.severity == Severity::Deny && old_denials.contains(&f.rule) {
            f.severity = Severity::Warn;
            f.message
                .push_str(" (already present before this update, so not blocking)");
        }
    }
}
