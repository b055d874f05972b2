//! `audit -o sarif`: SARIF 2.1.0 for CI code scanning (GitHub, GitLab, Azure DevOps).
//!
//! One run, whose driver lists every rule ID as a rule; one result per finding, located at
//! the manifest file and the line its document starts on (objects read from a cluster get a
//! logical location, `deployments/ns/name`, instead). Findings an exception waived are
//! reported as suppressed, naming the exception.

use std::collections::BTreeMap;

use serde_sarif::sarif;

use crate::audit::{Entry, Report};
use crate::engine::{Finding, RuleId, Severity};

/// The tool's name in the log.
pub const TOOL: &str = "spreadguard";
/// The key of each result's partial fingerprint, so that code scanning tracks a finding
/// across commits even when lines move.
pub const FINGERPRINT: &str = "spreadguardFinding/v1";

/// The SARIF log of a report.
pub fn log(report: &Report) -> sarif::Sarif {
    let rules: Vec<sarif::ReportingDescriptor> = RuleId::ALL
        .iter()
        .map(|r| {
            sarif::ReportingDescriptor::builder()
                .id(r.as_str())
                .name(r.as_str())
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(r.summary())
                        .build(),
                )
                .build()
        })
        .collect();
    let results: Vec<sarif::Result> = report
        .results
        .iter()
        .flat_map(|e| e.findings.iter().map(move |f| result(e, f)))
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name(TOOL)
        .version(env!("CARGO_PKG_VERSION"))
        .rules(rules)
        .build();
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .results(results)
        .build();
    sarif::Sarif::builder()
        .schema(sarif::SCHEMA_URL)
        .version(sarif::Version::V2_1_0.to_string())
        .runs(vec![run])
        .build()
}

/// The log as pretty JSON with a final newline.
pub fn to_json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&log(report)).expect("a SARIF log always serialises");
    s.push('\n');
    s
}

fn result(e: &Entry, f: &Finding) -> sarif::Result {
    let ns = e.namespace.as_deref().unwrap_or("default");
    let what = format!("{} {ns}/{}", e.kind, e.name);
    let level = match f.severity {
        Severity::Deny => sarif::ResultLevel::Error,
        Severity::Warn => sarif::ResultLevel::Warning,
        Severity::Info => sarif::ResultLevel::Note,
    };
    let location = match &e.origin.location {
        Some(loc) if loc.path != "-" => sarif::Location::builder()
            .physical_location(
                sarif::PhysicalLocation::builder()
                    .artifact_location(
                        sarif::ArtifactLocation::builder()
                            .uri(uri(&loc.path))
                            .build(),
                    )
                    .region(sarif::Region::builder().start_line(loc.line as i64).build())
                    .build(),
            )
            .build(),
        _ => sarif::Location::builder()
            .logical_locations(vec![
                sarif::LogicalLocation::builder()
                    .fully_qualified_name(e.source.as_str())
                    .name(e.name.as_str())
                    .kind("resource")
                    .build(),
            ])
            .build(),
    };
    let (rule, about) = f.identity();
    let fingerprints: BTreeMap<String, String> = [(
        FINGERPRINT.to_owned(),
        format!("{}/{ns}/{}/{rule}/{:016x}", e.kind, e.name, fnv1a(about)),
    )]
    .into();
    let mut result = sarif::Result::builder()
        .rule_id(f.rule.as_str())
        .rule_index(RuleId::ALL.iter().position(|r| *r == f.rule).unwrap_or(0) as i64)
        .level(level)
        .message(
            sarif::Message::builder()
                .text(format!("{what}: {}", f.message))
                .build(),
        )
        .locations(vec![location])
        .partial_fingerprints(fingerprints)
        .build();
    if let Some(exception) = &f.waived_by {
        result.suppressions = Some(vec![
            sarif::Suppression::builder()
                .kind("external")
                .justification(format!("waived by exception {exception}"))
                .build(),
        ]);
    }
    result
}

/// A manifest path as a SARIF URI: relative paths stay relative (code scanning resolves them
/// against the repository root), with `/` separators and unsafe characters escaped; absolute
/// ones become `file://` URIs.
pub fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A stable 64-bit hash (FNV-1a) for fingerprints: the same text gives the same value in
/// every build, unlike the standard library's hasher.
fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uris() {
        assert_eq!(uri("./k8s/web app.yaml"), "k8s/web%20app.yaml");
        assert_eq!(uri("/srv/repo/x#1.yaml"), "file:///srv/repo/x%231.yaml");
        assert_eq!(uri("dir\\win.yaml"), "dir/win.yaml");
    }
}
