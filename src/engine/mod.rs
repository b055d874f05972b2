//! The pure decision engine: workload JSON + topology + policy → findings and a patch.
//!
//! It knows nothing of HTTP, clients or files; the webhook, `spreadguard audit` and the tests
//! all call [`decide`].

pub mod autoscaler;
pub mod budget;
pub mod context;
pub mod exceptions;
pub mod finding;
pub mod kinds;
pub mod labels;
pub mod memo;
pub mod mutation;
pub mod outcome;
pub mod placement;
pub mod policy;
pub mod provisioners;
pub mod read_fields;
pub mod replica_origin;
pub mod rules;
pub mod scale;
pub mod size;
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

pub use self::autoscaler::{Autoscaler, Autoscalers};
pub use self::budget::{Budget, Budgets};
pub use self::finding::{Finding, RuleId, Severity};
pub use self::mutation::Injection;
pub use self::outcome::{Combined, Endpoint, Outcome, combined, outcome};
pub use self::scale::decide_scale;
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
    /// Labels of the workload's namespace, when known (the namespace cache, a live cluster,
    /// or a Namespace among the manifests): pod (anti-)affinity `namespaceSelector`s are
    /// evaluated against them.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// Other workloads, when known (`audit` sees the whole input): where required pod
    /// affinity to other workloads pins this one.
    pub peers: Option<&'a dyn Peers>,
    /// Today (UTC), for the policy's exceptions and their expiry; without it no exception
    /// with an expiry date applies.
    pub today: Option<exceptions::Day>,
    /// StorageClasses, claims and volumes, when known (the caches, or storage objects among
    /// audit's files): HA017–HA020 and the stateful zone spread need them.
    pub volumes: Option<&'a dyn storage::Volumes>,
    /// Name what the decision took into account ([`Decision::considered`]): reports want
    /// it, the webhook does not pay for it.
    pub report_considered: bool,
    /// Whether the pod template changed in an UPDATE, when the caller knows it otherwise
    /// than by comparing the objects (the webhook compares the templates' raw text, since
    /// it does not decode their containers); `None`: the objects are compared.
    pub template_changed: Option<bool>,
    /// The object was decoded within [`read_fields::MAX_READ_VALUES`] already (the
    /// webhook's decoder counts as it goes), so it is not counted again.
    pub read_values_bounded: bool,
}

/// Other workloads' raw objects, for rules that look at what a workload's pod affinity
/// targets.
pub trait Peers: Sync {
    fn for_each(&self, f: &mut dyn FnMut(&Value));
}

impl Peers for Vec<Value> {
    fn for_each(&self, f: &mut dyn FnMut(&Value)) {
        self.iter().for_each(f);
    }
}

impl std::fmt::Debug for dyn Peers + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Peers")
    }
}

impl<'a> Input<'a> {
    pub fn new(object: &'a Value) -> Self {
        Input {
            object,
            old_object: None,
            hpa_min_replicas: None,
            autoscalers: None,
            budgets: None,
            namespace_labels: None,
            peers: None,
            today: None,
            volumes: None,
            report_considered: false,
            template_changed: None,
            read_values_bounded: false,
        }
    }

    /// Fill in the storage and node-template part of [`Decision::considered`] (for reports).
    pub fn reporting_considered(mut self) -> Self {
        self.report_considered = true;
        self
    }

    pub fn with_volumes(mut self, volumes: Option<&'a dyn storage::Volumes>) -> Self {
        self.volumes = volumes;
        self
    }

    pub fn with_autoscalers(mut self, autoscalers: &'a Autoscalers) -> Self {
        self.autoscalers = Some(autoscalers);
        self
    }

    pub fn with_budgets(mut self, budgets: &'a Budgets) -> Self {
        self.budgets = Some(budgets);
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

    pub fn with_namespace_labels(mut self, labels: Option<&'a BTreeMap<String, String>>) -> Self {
        self.namespace_labels = labels;
        self
    }

    pub fn with_peers(mut self, peers: Option<&'a dyn Peers>) -> Self {
        self.peers = peers;
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
    /// The classes the claim templates get (only with [`Input::reporting_considered`], as
    /// the next two).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<stateful::ClassSeen>,
    /// The existing claims looked at (`namespace/name`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
    /// The node templates the workload fits ("NodePool general (zone a)").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_templates: Vec<String>,
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
    /// What the workload's owner should know beyond the findings (an exception expired).
    pub notices: Vec<String>,
    /// Why the injection is what it is (a stateful zone spread made hard, or not); `/mutate`
    /// sends them as warnings with the patch.
    pub notes: Vec<String>,
    /// Where its replicas are predicted to run once the patch is applied, and what the worst
    /// zone loss leaves (workloads only).
    pub placement: Option<placement::Placement>,
    /// The same for the object as written, without the patch: what its running pods were
    /// scheduled by when it was stored without spreadguard.
    pub placement_as_written: Option<placement::Placement>,
}

impl Decision {
    fn skipped(skip: Skip) -> Self {
        Decision::of(Subject::Skipped(skip), Vec::new())
    }

    /// A decision about `subject` with these findings and nothing else (no patch).
    pub fn of(subject: Subject, findings: Vec<Finding>) -> Self {
        Decision {
            subject,
            findings,
            patch: Vec::new(),
            injected: Vec::new(),
            considered: Considered::default(),
            notices: Vec::new(),
            notes: Vec::new(),
            placement: None,
            placement_as_written: None,
        }
    }

    /// Whether any finding is a denial.
    pub fn denies(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Deny)
    }
}

/// Decides one object.
pub fn decide(input: Input<'_>, topology: &Topology, policy: &Policy) -> Decision {
    // Before anything reads the object: an object too large to judge costs no more than
    // counting it (the webhook's decoder has counted already).
    if !input.read_values_bounded
        && let Some(too_large) = size::check(input.object, input.old_object, policy)
    {
        return too_large;
    }
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
    let workload = match classify(input.object, policy) {
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
    // The object's own kind (Rollout, CloneSet, a declared kind), as HPAs and exceptions
    // name it.
    let kind_name = input
        .object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(workload.kind.as_str());
    let hpa = input.autoscalers.and_then(|all| {
        let api_version = input.object.get("apiVersion").and_then(Value::as_str);
        all.for_workload(
            namespace,
            autoscaler::group_of(api_version.unwrap_or_default()),
            kind_name,
            workload.name,
        )
    });
    let hpa_min = input.hpa_min_replicas.or(hpa.map(|a| a.min_replicas));
    let explicit = replicas_written(input.object, &workload, hpa_min);
    let ctx = Context::new(&workload, topology, policy, explicit, hpa_min)
        .with_surroundings(input.namespace_labels, input.peers)
        .with_volumes(input.volumes);
    let mut findings = judge(&ctx);

    let mut notes = Vec::new();
    let (mut patch, mut injected) = if may_mutate(&workload, input) {
        mutation::plan(&ctx, &mut findings, &mut notes)
    } else {
        (Vec::new(), Vec::new())
    };
    // An exception with `mutate: false` drops the patch below: the placement is then the
    // object's own.
    let unmutated = mutation_waived(input, workload.namespace, kind_name, workload.name, policy);
    let placement = placement::for_workload(&ctx, if unmutated { &[] } else { &injected });
    rules::zone_loss::check(&ctx, &placement, &mut findings);
    let budgets = input
        .budgets
        .map(|all| all.selecting(namespace, &workload.pod_labels));
    rules::disruption::workload(
        &ctx,
        input.object,
        &placement,
        budgets.as_deref(),
        &mut findings,
    );

    let mut findings = apply_overrides(findings, policy);
    if let Some(old) = input.old_object {
        ratchet(&mut findings, old, topology, policy, input, hpa_min);
    }
    let seen = if input.report_considered {
        stateful::considered(&ctx)
    } else {
        stateful::StatefulSeen::default()
    };
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
        storage_classes: seen.storage_classes,
        claims: seen.claims,
        node_templates: seen.node_templates,
    };
    let mut notices = Vec::new();
    if let Some(applied) = waive(
        &mut findings,
        input,
        workload.namespace,
        kind_name,
        workload.name,
        policy,
    ) {
        if applied.no_mutation {
            patch.clear();
            injected.clear();
            notes.clear();
        }
        notices = applied.notices;
    }
    // The placement of the object as written only serves reports (HA022 over running pods):
    // the webhook does not pay for it.
    let as_written = if !input.report_considered {
        None
    } else if injected.is_empty() {
        Some(placement.clone())
    } else {
        Some(placement::for_workload(&ctx, &[]))
    };
    Decision {
        subject: Subject::Workload(workload.kind),
        findings: cap_per_rule(findings),
        patch,
        injected,
        considered,
        notices,
        notes,
        placement_as_written: as_written,
        placement: Some(placement),
    }
}

/// Whether an active exception covers the object with `mutate: false`.
fn mutation_waived(
    input: Input<'_>,
    namespace: Option<&str>,
    kind: &str,
    name: &str,
    policy: &Policy,
) -> bool {
    if policy.exceptions.iter().all(|e| e.mutate) {
        return false;
    }
    let labels = at(input.object, &["metadata", "labels"])
        .and_then(|v| BTreeMap::<String, String>::deserialize(v).ok())
        .unwrap_or_default();
    let target = exceptions::Target {
        namespace,
        kind,
        name,
        labels: &labels,
    };
    let today = input.today.unwrap_or(exceptions::Day(time::Date::MAX));
    let (active, _) = exceptions::covering(&policy.exceptions, &target, today);
    active.iter().any(|e| !e.mutate)
}

/// The policy's exceptions applied to `findings` of the object `kind` `namespace/name`;
/// `None` when the policy has none.
fn waive(
    findings: &mut [Finding],
    input: Input<'_>,
    namespace: Option<&str>,
    kind: &str,
    name: &str,
    policy: &Policy,
) -> Option<exceptions::Applied> {
    if policy.exceptions.is_empty() {
        return None;
    }
    // The object's own labels (not its pods'), read only when there are exceptions.
    let labels = at(input.object, &["metadata", "labels"])
        .and_then(|v| BTreeMap::<String, String>::deserialize(v).ok())
        .unwrap_or_default();
    let target = exceptions::Target {
        namespace,
        kind,
        name,
        labels: &labels,
    };
    // Without a date only exceptions that never expire can be told to apply.
    let today = input.today.unwrap_or(exceptions::Day(time::Date::MAX));
    Some(exceptions::apply(
        findings,
        &policy.exceptions,
        &target,
        today,
    ))
}

/// Whether `spec.replicas` counts as written: a 1 the API server defaulted does not, unless
/// an autoscaler sets the count anyway (see [`replica_origin`]).
fn replicas_written(object: &Value, workload: &Workload<'_>, hpa_min: Option<i64>) -> bool {
    if !workload.replicas_explicit {
        return false;
    }
    // Only built-in kinds have their `spec.replicas` defaulted by the API server (and
    // tracked in managedFields at that path); a declared kind's count is read as written.
    if workload.replicas == 1
        && hpa_min.is_none()
        && !matches!(workload.kind, WorkloadKind::Custom(_))
    {
        return !replica_origin::replicas_origin(object).defaulted();
    }
    true
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
        let before: Vec<Finding> = apply_overrides(judge(old), policy)
            .into_iter()
            .filter(|f| f.severity == Severity::Deny)
            .collect();
        downgrade(&mut findings, &before);
    }
    let (namespace, name) = workload::object_name(input.object);
    let kind = match subject {
        Subject::Autoscaler => "HorizontalPodAutoscaler",
        _ => "PodDisruptionBudget",
    };
    let notices = waive(&mut findings, input, namespace, kind, name, policy)
        .map(|applied| applied.notices)
        .unwrap_or_default();
    let mut decision = Decision::of(subject, cap_per_rule(findings));
    decision.notices = notices;
    decision
}

fn judge(ctx: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    rules::replicas::check(ctx, &mut findings);
    rules::anti_affinity::check(ctx, &mut findings);
    rules::affinity::check(ctx, &mut findings);
    rules::spread::check(ctx, &mut findings);
    rules::rollout::check(ctx, &mut findings);
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
    if let Some(changed) = input.template_changed {
        return changed;
    }
    match workload.template_path {
        None => false,
        Some(path) => path.at(old) != path.at(input.object),
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
    input: Input<'_>,
    hpa_min: Option<i64>,
) {
    if !findings.iter().any(|f| f.severity == Severity::Deny) {
        return;
    }
    let old_findings: Vec<Finding> = match classify(old, policy) {
        Classified::Workload(w) => {
            let explicit = replicas_written(old, &w, hpa_min);
            let ctx = Context::new(&w, topology, policy, explicit, hpa_min)
                .with_surroundings(input.namespace_labels, input.peers)
                .with_volumes(input.volumes);
            // The stored object carries what was injected into it already.
            let mut old_findings = judge(&ctx);
            rules::zone_loss::check(&ctx, &placement::for_workload(&ctx, &[]), &mut old_findings);
            apply_overrides(old_findings, policy)
                .into_iter()
                .filter(|f| f.severity == Severity::Deny)
                .collect()
        }
        _ => return,
    };
    downgrade(findings, &old_findings);
}

/// Downgrades the denials in `findings` that `old_findings` (the stored object's denials)
/// had already, by identity (rule and what it is about).
fn downgrade(findings: &mut [Finding], old_findings: &[Finding]) {
    let old_denials: HashSet<(RuleId, &str)> = old_findings.iter().map(Finding::identity).collect();
    for f in findings.iter_mut() {
        if f.severity == Severity::Deny && old_denials.contains(&f.identity()) {
            f.severity = Severity::Warn;
            // First, so that a warning cut at 120 characters still says it.
            f.message = finding::safe_text(
                format!(
                    "not blocking, already present before this update: {}",
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
