//! The audit report: built from engine decisions, printed as JSON or a table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use json_patch::PatchOperation;
use serde::Serialize;
use serde_json::Value;

use crate::engine::autoscaler::is_autoscaler;
use crate::engine::budget::{is_budget, pod_labels};
use crate::engine::exceptions::Day;
use crate::engine::placement::{Placement, PlacementReport};
use crate::engine::policy::{Mode, Policy};
use crate::engine::rules::disruption;
use crate::engine::stateful::StatefulSeen;
use crate::engine::storage::Volumes;
use crate::engine::workload::{at, object_name};
use crate::engine::{
    Autoscaler, AutoscalerSeen, Autoscalers, Budget, BudgetSeen, Budgets, Combined, Finding,
    Injection, Input, Peers, Severity, Skip, Subject, Topology, TopologySource, TopologySummary,
    combined, decide,
};
use crate::load::{Location, Sourced};

use super::zone_loss::{self, Actual, ZoneSummary};

/// The whole report; its JSON form is a documented, stable format.
#[derive(Debug, Serialize)]
pub struct Report {
    pub topology: TopologySummary,
    pub results: Vec<Entry>,
    /// The documents not judged, by kind and reason.
    pub skipped: Vec<SkippedKind>,
    pub summary: Summary,
    /// `--cluster`: per zone, what its loss would take from what runs now.
    #[serde(rename = "zoneLoss", skip_serializing_if = "Option::is_none")]
    pub zone_loss: Option<BTreeMap<String, ZoneSummary>>,
    /// `serve --ui`: when and from what the report was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<Scan>,
}

/// How `serve --ui`'s background scan made a report (`scan` in `/api/posture`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scan {
    /// When the scan finished, RFC 3339 in UTC.
    pub at: String,
    /// Where the workloads came from: `cluster`, `manifests` or `none`.
    pub workloads: &'static str,
    /// Whether the running pods were read (`results[].actual`, `zoneLoss`); without them
    /// the page shows the predicted placement only.
    pub pods: bool,
    /// What went wrong, when something did (the last good workloads are still shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Seconds until the next scan.
    pub interval_seconds: u64,
}

/// What a live cluster adds to its documents.
#[derive(Clone, Copy, Debug)]
pub struct Live<'a> {
    /// Every namespace's labels.
    pub namespaces: &'a HashMap<String, BTreeMap<String, String>>,
    /// `(namespace, name)` of the budgets that select a running pod (whose pods are
    /// counted, not kept among the documents).
    pub selected_budgets: &'a HashSet<(String, String)>,
}

/// Documents of one kind that were not judged, for one reason.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedKind {
    pub api_version: String,
    pub kind: String,
    pub reason: &'static str,
    /// Their `source`s, as in `results[].source`.
    pub documents: Vec<String>,
}

/// One workload's verdict.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub source: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub mode: Mode,
    /// `deny` exactly when the webhook would refuse the object in its mode
    /// (`outcome.allowed` is false).
    pub decision: Verdict,
    /// What the engine found, whatever the mode does with it.
    pub findings: Vec<Finding>,
    pub injected: Vec<Injection>,
    pub patch: Vec<PatchOperation>,
    /// What the webhook would answer in this mode: the same function answers its reviews.
    pub outcome: Combined,
    /// Where its replicas are predicted to run (after what spreadguard injects) and what the
    /// worst zone loss leaves; absent for what is not a workload or in mode `off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementReport>,
    /// The prediction for the object as written (without the patch), which its running pods
    /// were scheduled by (`--cluster`, HA022). Not in the JSON.
    #[serde(skip)]
    pub placement_as_written: Option<Placement>,
    /// `--cluster`: where its pods run now, and what losing a zone would take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Actual>,
    /// Where the object came from, for the report formats (not in the JSON).
    #[serde(skip)]
    pub origin: Origin,
    /// The HorizontalPodAutoscaler whose `minReplicas` counted as the workload's replicas.
    pub autoscaler: Option<AutoscalerSeen>,
    /// The PodDisruptionBudgets that select the workload's pods.
    pub disruption_budgets: Vec<BudgetSeen>,
    /// The StorageClasses its claim templates get, the existing claims looked at and the node
    /// templates it fits (only when there is something to name).
    #[serde(skip_serializing_if = "StatefulSeen::is_empty")]
    pub considered: StatefulSeen,
}

/// Where a result's object came from, beyond its `source`.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub api_version: String,
    /// The object's uid (objects read from a cluster).
    pub uid: Option<String>,
    /// The file and line (objects read from files).
    pub location: Option<Location>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Documents read, workloads or not.
    pub documents: usize,
    pub workloads: usize,
    /// HorizontalPodAutoscalers judged (HA012).
    pub autoscalers: usize,
    /// PodDisruptionBudgets judged (HA013, HA016).
    pub disruption_budgets: usize,
    pub allowed: usize,
    pub denied: usize,
    /// Workloads the webhook would patch.
    pub patched: usize,
    /// Findings by severity.
    pub findings: BTreeMap<Severity, usize>,
}

// === impl Report ===

impl Report {
    /// Decides every workload, HorizontalPodAutoscaler and PodDisruptionBudget in `docs`.
    /// The autoscalers among them supply the effective replica count of the workload they
    /// target, and the budgets are checked against the workloads they select, as the
    /// webhook does with its caches.
    pub fn build(docs: &[Sourced], topology: &Topology, policy: &Policy) -> Report {
        Report::build_inner(docs, topology, policy, None, None)
    }

    /// As [`Report::build`], with storage (StorageClasses, claims and volumes from the
    /// files) read as the webhook reads its caches.
    pub fn build_with(
        docs: &[Sourced],
        topology: &Topology,
        policy: &Policy,
        volumes: Option<&dyn Volumes>,
    ) -> Report {
        Report::build_inner(docs, topology, policy, None, volumes)
    }

    /// As [`Report::build_with`], for a live cluster: its namespaces' labels for the modes,
    /// what its running pods showed, and its storage.
    pub fn build_live(
        docs: &[Sourced],
        topology: &Topology,
        policy: &Policy,
        live: &Live<'_>,
        volumes: Option<&dyn Volumes>,
    ) -> Report {
        Report::build_inner(docs, topology, policy, Some(live), volumes)
    }

    fn build_inner(
        docs: &[Sourced],
        topology: &Topology,
        policy: &Policy,
        live: Option<&Live<'_>>,
        volumes: Option<&dyn Volumes>,
    ) -> Report {
        let namespaces = live.map(|l| l.namespaces);
        let autoscalers = Autoscalers::new(
            docs.iter()
                .filter(|d| is_autoscaler(&d.value))
                .filter_map(|d| Autoscaler::from_json(&d.value).ok()),
        );
        let budgets = Budgets::new(
            docs.iter()
                .filter(|d| is_budget(&d.value))
                .filter_map(|d| Budget::from_json(&d.value).ok()),
        );
        // The labels of namespaces: the cluster's, or those of Namespaces among the manifests.
        let mut labels: HashMap<&str, &BTreeMap<String, String>> = namespaces
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let declared = declared_namespaces(docs);
        for (name, l) in &declared {
            labels.entry(name).or_insert(l);
        }
        let known = Known {
            autoscalers: &autoscalers,
            budgets: &budgets,
            volumes,
            namespaces: &labels,
            peers: &DocPeers(docs),
        };
        // Boxed: an entry is large, and `results` holds each a second time while it fills.
        let mut judged: Vec<Result<Box<Entry>, &'static str>> =
            crate::parallel::map(docs, |d| judge(d, &known, topology, policy).map(Box::new));
        if !budgets.is_empty() {
            unmatched_budgets(
                &mut judged,
                docs,
                &budgets,
                live.map(|l| l.selected_budgets),
            );
        }
        let mut results: Vec<Entry> = Vec::with_capacity(judged.len());
        let mut skipped: Vec<SkippedKind> = Vec::new();
        for (d, j) in docs.iter().zip(judged) {
            match j {
                Ok(entry) => results.push(*entry),
                Err(reason) => {
                    let field = |f: &str| {
                        d.value
                            .get(f)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (api_version, kind) = (field("apiVersion"), field("kind"));
                    match skipped.iter_mut().find(|s| {
                        s.api_version == api_version && s.kind == kind && s.reason == reason
                    }) {
                        Some(s) => s.documents.push(d.source.clone()),
                        None => skipped.push(SkippedKind {
                            api_version,
                            kind,
                            reason,
                            documents: vec![d.source.clone()],
                        }),
                    }
                }
            }
        }
        skipped.sort_by(|a, b| (&a.kind, &a.api_version).cmp(&(&b.kind, &b.api_version)));
        let mut summary = Summary {
            documents: docs.len(),
            ..Summary::default()
        };
        for e in &results {
            match e.kind.as_str() {
                "HorizontalPodAutoscaler" => summary.autoscalers += 1,
                "PodDisruptionBudget" => summary.disruption_budgets += 1,
                _ => summary.workloads += 1,
            }
            match e.decision {
                Verdict::Allow => summary.allowed += 1,
                Verdict::Deny => summary.denied += 1,
            }
            if e.outcome.patched {
                summary.patched += 1;
            }
            for f in &e.findings {
                *summary.findings.entry(f.severity).or_insert(0) += 1;
            }
        }
        Report {
            topology: topology.summary(),
            results,
            skipped,
            summary,
            zone_loss: None,
            scan: None,
        }
    }

    pub fn denies(&self) -> bool {
        self.summary.denied > 0
    }

    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out)
            .expect("writing to memory cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// [`Report::to_json`], written as it is serialised.
    pub fn write_json(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        out.write_all(b"\n")
    }

    /// The human-readable form; `color` adds ANSI colours (only on a terminal).
    pub fn to_table(&self, color: bool) -> String {
        let paint = |code: &str, text: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let mut out = String::new();
        // `--cluster`: what each zone's loss takes comes first.
        if let Some(zones) = &self.zone_loss {
            out.push_str(&zone_loss::summary_table(zones));
            out.push('\n');
        }
        let _ = writeln!(out, "{}", topology_line(&self.topology));
        for e in &self.results {
            out.push('\n');
            let verdict = match e.decision {
                Verdict::Deny => paint("1;31", "DENY "),
                Verdict::Allow => paint("32", "ALLOW"),
            };
            let ns = e
                .namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            let mode = if e.mode == Mode::Enforce {
                String::new()
            } else {
                format!("  [mode {}]", e.mode.as_str())
            };
            let _ = writeln!(
                out,
                "{verdict}  {} {ns}{}  ({}){mode}",
                e.kind, e.name, e.source
            );
            if e.findings.is_empty() && e.patch.is_empty() {
                let _ = writeln!(out, "       no findings");
            }
            for f in &e.findings {
                let sev = match f.severity {
                    Severity::Deny => paint("31", "deny"),
                    Severity::Warn => paint("33", "warn"),
                    Severity::Info => paint("36", "info"),
                };
                let _ = writeln!(out, "       {} {sev}  {}", f.rule, f.message);
            }
            for line in considered_lines(&e.considered) {
                let _ = writeln!(out, "       {line}");
            }
            if let Some(p) = &e.placement {
                let _ = writeln!(out, "       {}", zone_loss::placement_line(p));
            }
            if let Some(actual) = &e.actual {
                let _ = writeln!(out, "       {}", zone_loss::actual_line(actual));
                if let Some(b) = &actual.budget {
                    let _ = writeln!(out, "       {}", zone_loss::budget_line(b));
                }
            }
            if !e.patch.is_empty() {
                let items: Vec<&str> = e.injected.iter().map(|i| i.as_str()).collect();
                let _ = writeln!(
                    out,
                    "       would inject: {} ({} patch operation{})",
                    items.join(", "),
                    e.patch.len(),
                    if e.patch.len() == 1 { "" } else { "s" }
                );
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nNot judged:");
            for k in &self.skipped {
                let _ = writeln!(
                    out,
                    "       {} {} {} ({})",
                    k.documents.len(),
                    k.api_version,
                    k.kind,
                    k.reason
                );
            }
        }
        let s = &self.summary;
        let count = |sev| s.findings.get(&sev).copied().unwrap_or(0);
        let mut judged = format!(
            "{} workload{}",
            s.workloads,
            if s.workloads == 1 { "" } else { "s" }
        );
        if s.autoscalers > 0 {
            let _ = write!(
                judged,
                ", {} autoscaler{}",
                s.autoscalers,
                if s.autoscalers == 1 { "" } else { "s" }
            );
        }
        if s.disruption_budgets > 0 {
            let _ = write!(
                judged,
                ", {} disruption budget{}",
                s.disruption_budgets,
                if s.disruption_budgets == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(
            out,
            "\nSummary: {judged} in {} document{}: {} denied, {} allowed; findings: {} deny, {} warn, {} info; {} would be patched",
            s.documents,
            if s.documents == 1 { "" } else { "s" },
            s.denied,
            s.allowed,
            count(Severity::Deny),
            count(Severity::Warn),
            count(Severity::Info),
            s.patched
        );
        out
    }
}

/// "storage: data → StorageClass gp3 (ebs.csi.aws.com, WaitForFirstConsumer, zonal)",
/// "claims: 3 (db/data-db-0, …)", "node templates: NodePool general (zone c)".
fn considered_lines(c: &StatefulSeen) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &c.storage_classes {
        let locality = serde_json::to_value(s.locality)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        lines.push(format!(
            "storage: {} → StorageClass {} ({}, {}, {locality}{})",
            s.template,
            s.name,
            s.provisioner,
            s.volume_binding_mode.as_str(),
            if s.default { ", default class" } else { "" }
        ));
    }
    if !c.claims.is_empty() {
        let shown: Vec<&str> = c.claims.iter().take(3).map(String::as_str).collect();
        let more = c.claims.len() - shown.len();
        lines.push(format!(
            "claims: {} ({}{})",
            c.claims.len(),
            shown.join(", "),
            if more > 0 { ", …" } else { "" }
        ));
    }
    if !c.node_templates.is_empty() {
        lines.push(format!("node templates: {}", c.node_templates.join(", ")));
    }
    lines
}

fn topology_line(t: &TopologySummary) -> String {
    match t.source {
        TopologySource::Assumed => format!(
            "Topology: assumed {} zones under {} (no --nodes given; node counts unknown)",
            t.zones.len(),
            t.zone_key
        ),
        TopologySource::Nodes => {
            let zones: Vec<String> = t.zones.iter().map(|(z, n)| format!("{z} ({n})")).collect();
            format!(
                "Topology: {} node{}, {} zone{} under {}: {}; {} unzoned node{}",
                t.nodes,
                if t.nodes == 1 { "" } else { "s" },
                t.zones.len(),
                if t.zones.len() == 1 { "" } else { "s" },
                t.zone_key,
                if zones.is_empty() {
                    "none".to_owned()
                } else {
                    zones.join(", ")
                },
                t.unzoned_nodes,
                if t.unzoned_nodes == 1 { "" } else { "s" },
            )
        }
    }
}

/// What the documents tell about each other: autoscalers, budgets, namespace labels and the
/// other workloads.
struct Known<'a> {
    autoscalers: &'a Autoscalers,
    budgets: &'a Budgets,
    /// StorageClasses, claims and volumes (the files' or the cluster's).
    volumes: Option<&'a dyn Volumes>,
    namespaces: &'a HashMap<&'a str, &'a BTreeMap<String, String>>,
    peers: &'a DocPeers<'a>,
}

/// One document's entry, or why it is not judged.
fn judge(
    d: &Sourced,
    known: &Known<'_>,
    topology: &Topology,
    policy: &Policy,
) -> Result<Entry, &'static str> {
    let object = &d.value;
    let (namespace, name) = object_name(object);
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let annotations = at(object, &["metadata", "annotations"]).and_then(Value::as_object);
    let ns_labels = known.namespaces.get(namespace.unwrap_or_default()).copied();
    let mode = policy.resolve_mode(namespace, ns_labels, annotations);
    let decision = decide(
        Input::new(object)
            .with_autoscalers(known.autoscalers)
            .with_budgets(known.budgets)
            .with_namespace_labels(ns_labels)
            .with_peers(Some(known.peers))
            .with_volumes(known.volumes)
            .reporting_considered()
            .with_today(Day::today_utc()),
        topology,
        policy,
    );
    if let Subject::Skipped(skip) = decision.subject {
        return Err(match (skip, kind) {
            (Skip::NotAWorkload, "Namespace") => "read: its labels are the namespace's",
            (Skip::NotAWorkload, _) => "not a workload kind spreadguard judges",
            (Skip::Controlled, _) => "controlled by a workload that is judged instead",
            (Skip::Referenced, _) => {
                "its pod template is in the Deployment its workloadRef names, which is judged"
            }
            (Skip::Deleting, _) => "being deleted",
        });
    }
    let outcome = combined(mode, &decision);
    let considered = decision.considered;
    let placement = decision
        .placement
        .filter(|_| mode != Mode::Off)
        .map(|p| p.report());
    let placement_as_written = decision.placement_as_written;
    let (findings, patch, injected) = if mode == Mode::Off {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        (decision.findings, decision.patch, decision.injected)
    };
    let decision = if outcome.allowed {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    let origin = Origin {
        api_version: object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        uid: at(object, &["metadata", "uid"])
            .and_then(Value::as_str)
            .map(str::to_owned),
        location: d.location.clone(),
    };
    Ok(Entry {
        actual: None,
        origin,
        source: d.source.clone(),
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
        mode,
        decision,
        findings,
        injected,
        patch,
        outcome,
        placement,
        placement_as_written,
        autoscaler: considered.autoscaler,
        disruption_budgets: considered.disruption_budgets,
        considered: StatefulSeen {
            storage_classes: considered.storage_classes,
            claims: considered.claims,
            node_templates: considered.node_templates,
        },
    })
}

/// The audited documents, as the other workloads each decision may look at.
struct DocPeers<'a>(&'a [Sourced]);

impl Peers for DocPeers<'_> {
    fn for_each(&self, f: &mut dyn FnMut(&Value)) {
        for d in self.0 {
            f(&d.value);
        }
    }
}

/// `name` → labels of the `v1` Namespaces among the documents.
fn declared_namespaces(docs: &[Sourced]) -> Vec<(&str, BTreeMap<String, String>)> {
    docs.iter()
        .map(|d| &d.value)
        .filter(|v| {
            v.get("kind").and_then(Value::as_str) == Some("Namespace")
                && v.get("apiVersion").and_then(Value::as_str) == Some("v1")
        })
        .filter_map(|v| {
            let name = at(v, &["metadata", "name"]).and_then(Value::as_str)?;
            let labels = at(v, &["metadata", "labels"])
                .and_then(Value::as_object)
                .map(crate::engine::labels::string_map)
                .unwrap_or_default();
            Some((name, labels))
        })
        .collect()
}

/// HA016: budgets that select nothing that runs pods in their namespace. Only the audit,
/// which sees every document at once, can tell; the finding is reported, but it is not
/// part of what the webhook answers (`outcome`), which cannot know.
fn unmatched_budgets(
    entries: &mut [Result<Box<Entry>, &'static str>],
    docs: &[Sourced],
    budgets: &Budgets,
    selected_by_pods: Option<&HashSet<(String, String)>>,
) {
    let mut matched: HashSet<(&str, &str)> = HashSet::new();
    for (ns, name) in selected_by_pods.into_iter().flatten() {
        matched.insert((ns, name));
    }
    for d in docs {
        if let Some((ns, labels)) = pod_labels(&d.value) {
            for b in budgets.selecting(ns, &labels) {
                matched.insert((&b.namespace, &b.name));
            }
        }
    }
    for (d, entry) in docs.iter().zip(entries.iter_mut()) {
        let Ok(e) = entry else {
            continue;
        };
        if e.mode == Mode::Off || !is_budget(&d.value) {
            continue;
        }
        let Ok(b) = Budget::from_json(&d.value) else {
            continue;
        };
        if !matched.contains(&(b.namespace.as_str(), b.name.as_str())) {
            e.findings.push(disruption::unmatched(&b));
        }
    }
}
