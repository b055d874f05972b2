//! `audit -o openreports` and `-o policyreport`: the report as Kubernetes objects that policy
//! dashboards read (Policy Reporter, the OpenReports tooling), one per namespace.
//!
//! Both APIs share one result shape, so one builder writes both: `openreports.io/v1alpha1`
//! `Report` and the older `wgpolicyk8s.io/v1alpha2` `PolicyReport`. Each workload gets one
//! result per rule it has findings for (a workload without findings one `pass` result under
//! the rule `all`), with the zone-loss figures in `properties`, which both CRDs type as a map
//! of strings.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::{Entry, Report};
use crate::engine::policy::Mode;
use crate::engine::{Finding, RuleId, Severity};

/// Who writes the reports: `source` of every result, the field manager in a cluster, and
/// the value of the `app.kubernetes.io/managed-by` label.
pub const SOURCE: &str = "spreadguard";
/// The `policy` of every result.
pub const POLICY: &str = "spreadguard";
/// The rule of the one result of a workload without findings.
pub const ALL_RULES: &str = "all";
/// Results per object at most: a namespace with more workloads gets several objects
/// (`spreadguard`, `spreadguard-2`, …), so that no object nears etcd's 1.5 MiB limit.
pub const MAX_RESULTS_PER_OBJECT: usize = 500;

/// Which API the objects are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `openreports.io/v1alpha1` `Report`.
    OpenReports,
    /// `wgpolicyk8s.io/v1alpha2` `PolicyReport`.
    PolicyReport,
}

impl Flavour {
    pub fn api_version(self) -> &'static str {
        match self {
            Flavour::OpenReports => "openreports.io/v1alpha1",
            Flavour::PolicyReport => "wgpolicyk8s.io/v1alpha2",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Flavour::OpenReports => "Report",
            Flavour::PolicyReport => "PolicyReport",
        }
    }

    /// The API group and plural resource, for requests.
    pub fn group_resource(self) -> (&'static str, &'static str) {
        match self {
            Flavour::OpenReports => ("openreports.io", "reports"),
            Flavour::PolicyReport => ("wgpolicyk8s.io", "policyreports"),
        }
    }
}

/// One report object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportObject {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    /// Only `openreports.io` has a report-level source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    pub summary: ResultSummary,
    pub results: Vec<ReportResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// Results by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResultSummary {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub error: usize,
    pub skip: usize,
}

/// One workload and rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportResult {
    pub source: &'static str,
    pub policy: &'static str,
    pub rule: String,
    pub category: &'static str,
    pub result: Outcome,
    pub severity: &'static str,
    pub scored: bool,
    pub message: String,
    pub timestamp: Timestamp,
    pub resources: Vec<ObjectReference>,
    pub properties: BTreeMap<String, String>,
}

/// A result's outcome, as both APIs spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Warn,
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// The namespace of results whose object names none (a manifest without one lands in
/// `default` when applied).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The report objects for `report`, one per namespace (more for namespaces of more than
/// [`MAX_RESULTS_PER_OBJECT`] results), in namespace order; `now` is the results' timestamp
/// (seconds since the epoch).
pub fn objects(report: &Report, flavour: Flavour, now: i64) -> Vec<ReportObject> {
    let mut per_namespace: BTreeMap<&str, Vec<Vec<ReportResult>>> = BTreeMap::new();
    for entry in &report.results {
        let namespace = entry.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        per_namespace
            .entry(namespace)
            .or_default()
            .push(results(entry, now));
    }
    let mut out = Vec::new();
    for (namespace, workloads) in per_namespace {
        let mut chunk: Vec<ReportResult> = Vec::new();
        let mut n = 0;
        for results in workloads {
            if !chunk.is_empty() && chunk.len() + results.len() > MAX_RESULTS_PER_OBJECT {
                n += 1;
                out.push(object(flavour, namespace, n, std::mem::take(&mut chunk)));
            }
            chunk.extend(results);
        }
        n += 1;
        out.push(object(flavour, namespace, n, chunk));
    }
    out
}

/// The objects as one YAML stream, for `kubectl apply -f -`.
pub fn to_yaml(objects: &[ReportObject]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(o).expect("a report object always serialises"));
    }
    out
}

/// The name of a namespace's `n`th (1-based) report object.
pub fn object_name(n: usize) -> String {
    if n == 1 {
        SOURCE.to_owned()
    } else {
        format!("{SOURCE}-{n}")
    }
}

fn object(flavour: Flavour, namespace: &str, n: usize, results: Vec<ReportResult>) -> ReportObject {
    let mut summary = ResultSummary::default();
    for r in &results {
        match r.result {
            Outcome::Pass => summary.pass += 1,
            Outcome::Fail => summary.fail += 1,
            Outcome::Warn => summary.warn += 1,
            Outcome::Skip => summary.skip += 1,
        }
    }
    ReportObject {
        api_version: flavour.api_version(),
        kind: flavour.kind(),
        metadata: Metadata {
            name: object_name(n),
            namespace: namespace.to_owned(),
            labels: [("app.kubernetes.io/managed-by".to_owned(), SOURCE.to_owned())].into(),
        },
        source: (flavour == Flavour::OpenReports).then_some(SOURCE),
        summary,
        results,
    }
}

/// One result per rule the workload has findings for, in the order the engine found them;
/// one `pass` (or, with mode `off`, `skip`) result when it has none.
pub fn results(entry: &Entry, now: i64) -> Vec<ReportResult> {
    let resource = ObjectReference {
        api_version: entry.origin.api_version.clone(),
        kind: entry.kind.clone(),
        name: entry.name.clone(),
        namespace: entry
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        uid: entry.origin.uid.clone(),
    };
    let properties = properties(entry);
    let result =
        |rule: String, outcome: Outcome, severity: &'static str, message: String| ReportResult {
            source: SOURCE,
            policy: POLICY,
            rule,
            category: "Zone resilience",
            result: outcome,
            severity,
            scored: matches!(outcome, Outcome::Pass | Outcome::Fail),
            message,
            timestamp: Timestamp {
                seconds: now,
                nanos: 0,
            },
            resources: vec![resource.clone()],
            properties: BTreeMap::new(),
        };
    let mut rules: Vec<(RuleId, Vec<&Finding>)> = Vec::new();
    for f in &entry.findings {
        match rules.iter_mut().find(|(r, _)| *r == f.rule) {
            Some((_, fs)) => fs.push(f),
            None => rules.push((f.rule, vec![f])),
        }
    }
    let mut out = Vec::with_capacity(rules.len().max(1));
    if rules.is_empty() {
        let (outcome, message) = if entry.mode == Mode::Off {
            (Outcome::Skip, "mode off: not judged".to_owned())
        } else {
            (Outcome::Pass, "no findings".to_owned())
        };
        out.push(result(ALL_RULES.to_owned(), outcome, "info", message));
    }
    for (rule, findings) in rules {
        let worst = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info);
        let waived: Vec<&str> = findings
            .iter()
            .filter_map(|f| f.waived_by.as_deref())
            .collect();
        let outcome = if waived.len() == findings.len() {
            Outcome::Skip
        } else {
            match worst {
                Severity::Deny => Outcome::Fail,
                Severity::Warn => Outcome::Warn,
                Severity::Info => Outcome::Pass,
            }
        };
        let message = findings
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut r = result(rule.as_str().to_owned(), outcome, severity(worst), message);
        if !waived.is_empty() {
            r.properties.insert("waivedBy".to_owned(), waived.join(","));
        }
        out.push(r);
    }
    for r in &mut out {
        let mut props = properties.clone();
        props.append(&mut r.properties);
        r.properties = props;
    }
    out
}

/// The severity of a finding as both APIs spell it.
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Deny => "high",
        Severity::Warn => "medium",
        Severity::Info => "info",
    }
}

/// What every result of a workload carries: the mode, the webhook's answer, where the object
/// came from and the zone-loss figures.
fn properties(entry: &Entry) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("mode".to_owned(), entry.mode.as_str().to_owned());
    p.insert("allowed".to_owned(), entry.outcome.allowed.to_string());
    p.insert("source".to_owned(), entry.source.clone());
    p.extend(zone_loss_properties(entry));
    p
}

/// The zone-loss figures of a result as report properties (string values, as the policy
/// report CRDs require).
fn zone_loss_properties(entry: &Entry) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    if let Some(pl) = &entry.placement {
        p.insert("placement".to_owned(), pl.basis.as_str().to_owned());
        if pl.basis != crate::engine::placement::Basis::Unconstrained {
            p.insert(
                "predictedPerZone".to_owned(),
                crate::audit::zone_loss::per_zone(&pl.zones),
            );
        }
        let w = &pl.worst_zone_loss;
        if let Some(zone) = &w.zone {
            p.insert("predictedWorstZone".to_owned(), zone.clone());
        }
        p.insert("predictedLostWithWorstZone".to_owned(), w.lost.to_string());
        p.insert("predictedLeftAfterWorstZone".to_owned(), w.left.to_string());
    }
    if let Some(a) = &entry.actual {
        p.insert("readyPods".to_owned(), a.ready.to_string());
        p.insert(
            "readyPerZone".to_owned(),
            crate::audit::zone_loss::per_zone(&a.zones),
        );
        if let Some(w) = &a.worst_zone_loss {
            p.insert("actualWorstZone".to_owned(), w.zone.clone());
            p.insert("actualLostWithWorstZone".to_owned(), w.lost.to_string());
            p.insert("actualLeftAfterWorstZone".to_owned(), w.left.to_string());
        }
    }
    p
}
