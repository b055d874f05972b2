//! Every rule's warning keeps its point within the 120 characters the outcome cuts warnings
//! to (`MAX_WARNING_CHARS`): the rule ID, the decision (what the rule concludes, and for a
//! denial reported in warn or audit mode, or ratcheted on UPDATE, that it does not block) and
//! the key number of its message. Messages are therefore written point first; this test runs
//! every engine scenario through the outcome in warn and audit mode and checks each warning.

mod engine_support;

use std::collections::BTreeSet;

use spreadguard::engine::outcome::MAX_WARNING_CHARS;
use spreadguard::engine::policy::Mode;
use spreadguard::engine::{
    Decision, Endpoint, Finding, Input, Peers, RuleId, Severity, decide, outcome,
};

use engine_support::scenario::{Scenario, load};
use engine_support::{repo_path, yaml_files};

/// What a rule's warning must say within the cut: one of these phrases (its decision), and
/// whether its message carries a key number (the first number standing on its own).
fn decision_phrases(rule: RuleId) -> (&'static [&'static str], bool) {
    match rule {
        RuleId::HA000 => (&["not checked"], false),
        RuleId::HA001 => (
            &["policy requires at least", "a bare Pod", "defaulted to 1"],
            true,
        ),
        RuleId::HA002 | RuleId::HA003 | RuleId::HA007 => (&["Pending"], true),
        RuleId::HA004 => (
            &[
                "spreads nothing",
                "keeps nothing apart",
                "but the pods carry",
            ],
            false,
        ),
        RuleId::HA005 => (
            &["constrains nothing", "no pod can schedule", "inert"],
            false,
        ),
        RuleId::HA006 => (&["no node to run on", "takes down"], true),
        RuleId::HA008 => (&["deprecated zone label"], false),
        RuleId::HA009 => (&["zone HA is impossible"], false),
        RuleId::HA010 => (&["carry no zone label"], true),
        RuleId::HA011 => (&["nothing injected"], false),
        RuleId::HA012 => (&["policy requires at least", "not checked"], true),
        RuleId::HA013 => (&["allows no voluntary eviction", "not checked"], false),
        RuleId::HA021 => (&["leaves", "may leave"], true),
        RuleId::HA023 => (&["Pending"], true),
        RuleId::HA024 => (&["Pending", "land in one"], true),
        RuleId::HA025 => (&["pinned to one zone"], false),
        RuleId::HA026 => (&["rollouts deadlock"], true),
        RuleId::HA027 => (&["spreads nothing", "eligible only for"], true),
        // A rule added later must say what its warning's point is (the match is exhaustive
        // until then). HA016 and HA022 are the audit's alone: never in a warning.
        #[allow(unreachable_patterns)]
        _ => (&[], false),
    }
}

/// The first number that stands on its own in a message ("3 replicas", "maxSkew 4", "300s"),
/// not one inside a name such as eu-west-1a.
fn key_number(message: &str) -> Option<String> {
    message.split_whitespace().find_map(|word| {
        let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
        let rest = &w[digits.len()..];
        (!digits.is_empty() && (rest.is_empty() || rest == "s")).then_some(digits)
    })
}

fn decide_scenario(s: &Scenario) -> Decision {
    let mut input = Input::new(&s.object)
        .with_old(s.old_object.as_ref())
        .with_hpa_min_replicas(s.hpa_min_replicas)
        .with_namespace_labels(s.namespace_labels.as_ref())
        .with_peers(s.peers.as_ref().map(|p| p as &dyn Peers));
    if let Some(today) = s.today {
        input = input.with_today(today);
    }
    decide(input, &s.topology, &s.policy)
}

/// What is wrong with one warning for `finding`.
fn check(finding: &Finding, warning: &str, mode: Mode) -> Vec<String> {
    let mut problems = Vec::new();
    let rule = finding.rule.as_str();
    if warning.chars().count() > MAX_WARNING_CHARS {
        problems.push(format!("longer than {MAX_WARNING_CHARS}: {warning}"));
    }
    if !warning.contains(rule) {
        problems.push(format!("lost its rule ID {rule}: {warning}"));
    }
    // The engine's summary of findings past the per-rule cap says how many, nothing more.
    if finding.message.starts_with("… and ") {
        return problems;
    }
    let (phrases, numbered) = decision_phrases(finding.rule);
    if phrases.is_empty() {
        problems.push(format!(
            "{rule} has no decision phrase in this test's table"
        ));
    } else if !phrases.iter().any(|p| warning.contains(p)) {
        problems.push(format!("lost its decision ({phrases:?}): {warning}"));
    }
    if numbered {
        match key_number(&finding.message) {
            None => problems.push(format!(
                "{rule}'s message has no key number: {}",
                finding.message
            )),
            Some(n) if !warning.contains(&n) => {
                problems.push(format!("lost its key number {n}: {warning}"))
            }
            Some(_) => {}
        }
    }
    if finding.message.starts_with("not blocking") && !warning.contains("not blocking") {
        problems.push(format!("a ratcheted denial lost 'not blocking': {warning}"));
    }
    if finding.severity == Severity::Deny && mode == Mode::Audit && !warning.contains("would deny")
    {
        problems.push(format!("an audit-mode denial lost 'would deny': {warning}"));
    }
    problems
}

#[test]
fn every_rules_warning_keeps_its_point_within_the_cut() {
    let mut problems = Vec::new();
    let mut seen: BTreeSet<RuleId> = BTreeSet::new();
    for path in yaml_files(&repo_path("tests/fixtures/engine")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let s = load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let decision = decide_scenario(&s);
        let reported: Vec<&Finding> = decision
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warn)
            .collect();
        for mode in [Mode::Warn, Mode::Audit] {
            let o = outcome(mode, &decision, Endpoint::Validate);
            if reported.len() >= 10 {
                continue; // the last warning counts the rest
            }
            // What exceptions did (notices, waived findings) comes first.
            let waived = decision
                .findings
                .iter()
                .filter(|f| f.waived_by.is_some())
                .count();
            let first = decision.notices.len() + waived;
            assert_eq!(o.warnings.len(), first + reported.len(), "{name}");
            for (f, w) in reported.iter().zip(&o.warnings[first..]) {
                seen.insert(f.rule);
                for p in check(f, w, mode) {
                    problems.push(format!("{name} ({}): {p}", mode.as_str()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every rule that warns at all was seen warning (HA009 is info only).
    let missing: Vec<&RuleId> = RuleId::ALL
        .iter()
        .filter(|r| **r != RuleId::HA009 && !seen.contains(r))
        .filter(|r| !decision_phrases(**r).0.is_empty())
        .collect();
    assert!(
        missing.is_empty(),
        "no scenario shows a warning of {missing:?}"
    );
}

#[test]
fn a_message_written_point_last_fails_the_check() {
    // The check itself can fail: the old HA002 wording put "Pending" after 120 characters.
    let old = Finding::deny(
        RuleId::HA002,
        "4 replicas, 3 eligible zones: required zone anti-affinity (topology.kubernetes.io/zone) allows one pod per zone and leaves 1 pod Pending",
    );
    let d = Decision::of(
        spreadguard::engine::Subject::Workload(spreadguard::engine::WorkloadKind::Deployment),
        vec![old.clone()],
    );
    let o = outcome(Mode::Warn, &d, Endpoint::Validate);
    assert!(!check(&old, &o.warnings[0], Mode::Warn).is_empty());
    assert_eq!(
        key_number("1 of 3 zones eligible: losing eu-west-1a"),
        Some("1".into())
    );
    assert_eq!(key_number("zone eu-west-1a is tainted"), None);
    assert_eq!(key_number("eligible only for 300s"), Some("300".into()));
}
