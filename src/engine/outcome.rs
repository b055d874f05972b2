//! What a decision becomes under a mode, at one webhook endpoint: allowed or not, the
//! denial message, the warnings, the patch to send and the audit annotations.
//!
//! This is the one place that answers "what does warn mode do?". The webhook answers each
//! review with [`outcome`], and `spreadguard audit` reports [`combined`], which is the same
//! function at both endpoints, so the two can never disagree.
//!
//! Everything here is bounded: however many findings a hostile object produces, a response
//! carries at most [`MAX_WARNINGS`] warnings of at most [`MAX_WARNING_CHARS`] characters, a
//! denial message of at most [`MAX_MESSAGE_CHARS`], and audit annotations and a log detail of
//! at most [`MAX_ANNOTATION_CHARS`] each.

use std::fmt::Write as _;

use json_patch::PatchOperation;
use serde::Serialize;

use super::finding::{Finding, Severity};
use super::policy::Mode;
use super::{Decision, Subject};

/// Warnings longer than this are cut (the API server may truncate or drop longer ones).
pub const MAX_WARNING_CHARS: usize = 120;
/// Warnings in one response; past it, one last warning says how many were left out.
pub const MAX_WARNINGS: usize = 10;
/// The denial message (kubectl prints it whole).
pub const MAX_MESSAGE_CHARS: usize = 4 * 1024;
/// Each audit annotation, and the detail of the log line.
pub const MAX_ANNOTATION_CHARS: usize = 8 * 1024;

/// The two admission endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /mutate`: injects what is missing.
    Mutate,
    /// `POST /validate`: denies what cannot be highly available.
    Validate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// Keys of the audit annotations spreadguard sets. The API server prefixes each with the
/// webhook's name (`validate.spreadguard.io/violations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditKey {
    /// `/validate`: every reported finding, in full, as a JSON list of strings.
    Violations,
    /// `/mutate` in audit mode: the JSON patch that was not applied.
    WouldPatch,
    /// `/mutate`: the items injected, comma-separated.
    Injected,
}

impl AuditKey {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKey::Violations => "violations",
            AuditKey::WouldPatch => "would-patch",
            AuditKey::Injected => "injected",
        }
    }
}

/// What one endpoint answers for one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<'a> {
    pub allowed: bool,
    /// Why it is denied (the response's `status.message`); empty when allowed.
    pub message: String,
    pub warnings: Vec<String>,
    /// The JSON patch to send, when there is one.
    pub patch: Option<&'a [PatchOperation]>,
    pub audit: Vec<(AuditKey, String)>,
    /// What was found or injected, for the log line.
    pub detail: String,
}

impl Outcome<'_> {
    /// Allowed, unchanged, nothing to say.
    pub fn allow() -> Self {
        Outcome {
            allowed: true,
            message: String::new(),
            warnings: Vec::new(),
            patch: None,
            audit: Vec::new(),
            detail: String::new(),
        }
    }

    /// Allowed with one warning (a request the engine could not judge, for instance).
    pub fn allow_with_warning(text: impl Into<String>) -> Self {
        let mut o = Outcome::allow();
        o.warnings.push(cut(text.into(), MAX_WARNING_CHARS));
        o
    }

    /// Denied with `message`.
    pub fn deny(message: impl Into<String>) -> Self {
        Outcome {
            allowed: false,
            message: cut(message.into(), MAX_MESSAGE_CHARS),
            ..Outcome::allow()
        }
    }
}

/// What `/mutate` (`Endpoint::Mutate`) or `/validate` answers for `decision` in `mode`.
pub fn outcome(mode: Mode, decision: &Decision, endpoint: Endpoint) -> Outcome<'_> {
    if mode == Mode::Off || matches!(decision.subject, Subject::Skipped(_)) {
        return Outcome::allow();
    }
    match endpoint {
        Endpoint::Mutate => mutate(mode, decision),
        Endpoint::Validate => validate(mode, decision),
    }
}

/// What both endpoints together do with a decision, as `spreadguard audit` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Combined {
    /// What `/validate` answers.
    pub allowed: bool,
    /// Whether `/mutate` sends a patch.
    pub patched: bool,
    /// What the two send, `/mutate`'s first.
    pub warnings: Vec<String>,
}

/// [`outcome`] at both endpoints.
pub fn combined(mode: Mode, decision: &Decision) -> Combined {
    let m = outcome(mode, decision, Endpoint::Mutate);
    let v = outcome(mode, decision, Endpoint::Validate);
    let mut warnings = m.warnings;
    warnings.extend(v.warnings);
    Combined {
        allowed: m.allowed && v.allowed,
        patched: m.patch.is_some(),
        warnings,
    }
}

fn mutate(mode: Mode, decision: &Decision) -> Outcome<'_> {
    if decision.patch.is_empty() {
        return Outcome::allow();
    }
    let items = decision
        .injected
        .iter()
        .map(|i| i.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut o = Outcome::allow();
    match mode {
        Mode::Enforce | Mode::Warn => {
            o.patch = Some(&decision.patch);
            if !items.is_empty() {
                o.detail = format!("injected {items}");
                o.audit.push((AuditKey::Injected, items));
            }
            if !decision.notes.is_empty() {
                let mut warnings = Warnings::default();
                for note in &decision.notes {
                    warnings.push(note.clone());
                }
                o.warnings = warnings.finish();
            }
        }
        Mode::Audit => {
            let mut warnings = Warnings::default();
            if decision.injected.is_empty() {
                warnings.push(format!(
                    "audit mode: would patch {} field(s)",
                    decision.patch.len()
                ));
            }
            for item in &decision.injected {
                warnings.push(format!("audit mode: would inject {}", item.as_str()));
            }
            for note in &decision.notes {
                warnings.push(format!("audit mode: {note}"));
            }
            o.warnings = warnings.finish();
            let patch = serde_json::to_string(&decision.patch).unwrap_or_default();
            o.detail = cut(format!("would patch {patch}"), MAX_ANNOTATION_CHARS);
            o.audit
                .push((AuditKey::WouldPatch, patch_annotation(patch)));
        }
        Mode::Off => {}
    }
    o
}

fn validate(mode: Mode, decision: &Decision) -> Outcome<'_> {
    let reported: Vec<&Finding> = decision
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warn)
        .collect();
    let waived: Vec<&Finding> = decision
        .findings
        .iter()
        .filter(|f| f.waived_by.is_some())
        .collect();
    let mut o = Outcome::allow();
    if reported.is_empty() && waived.is_empty() && decision.notices.is_empty() {
        return o;
    }
    let mut warnings = Warnings::default();
    // What the exceptions did comes first: an owner should learn that a waiver is what lets
    // the workload through, and that one expired.
    for notice in &decision.notices {
        warnings.push(notice.clone());
    }
    for f in &waived {
        warnings.push(format!("{}: {}", f.rule, f.message));
    }
    if reported.is_empty() {
        o.warnings = warnings.finish();
        return o;
    }
    o.detail = joined(
        reported.iter().map(|f| f.to_string()),
        "; ",
        MAX_ANNOTATION_CHARS,
    );
    o.audit
        .push((AuditKey::Violations, violations_annotation(&reported)));
    match mode {
        Mode::Enforce => {
            for f in reported.iter().filter(|f| f.severity == Severity::Warn) {
                warnings.push(format!("{}: {}", f.rule, f.message));
            }
            let denials: Vec<&&Finding> = reported
                .iter()
                .filter(|f| f.severity == Severity::Deny)
                .collect();
            if !denials.is_empty() {
                o.allowed = false;
                o.message = denial_message(&denials);
            }
        }
        Mode::Warn => {
            for f in &reported {
                warnings.push(format!("{}: {}", f.rule, f.message));
            }
        }
        Mode::Audit => {
            for f in &reported {
                warnings.push(match f.severity {
                    Severity::Deny => format!("would deny: {}: {}", f.rule, f.message),
                    _ => format!("{}: {}", f.rule, f.message),
                });
            }
        }
        Mode::Off => {}
    }
    o.warnings = warnings.finish();
    o
}

/// "spreadguard: HA002: …; HA004: …", at most [`MAX_MESSAGE_CHARS`] long.
fn denial_message(denials: &[&&Finding]) -> String {
    let items = denials.iter().map(|f| format!("{}: {}", f.rule, f.message));
    let mut message = String::from("spreadguard: ");
    message.push_str(&joined(
        items,
        "; ",
        MAX_MESSAGE_CHARS - message.chars().count(),
    ));
    message
}

/// The `violations` annotation: a JSON list of the findings, at most
/// [`MAX_ANNOTATION_CHARS`] long; findings that do not fit are counted in a last item.
fn violations_annotation(reported: &[&Finding]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut used = 2; // the brackets
    for (i, f) in reported.iter().enumerate() {
        let item = cut(f.to_string(), MAX_ANNOTATION_CHARS / 4);
        let encoded = serde_json::to_string(&item).unwrap_or_default();
        // Room for this item and, should others follow, for the "N more" item.
        if used + encoded.len() + 1 + 40 > MAX_ANNOTATION_CHARS {
            items.push(format!("… and {} more", reported.len() - i));
            break;
        }
        used += encoded.len() + 1;
        items.push(item);
    }
    serde_json::to_string(&items).unwrap_or_default()
}

/// The `would-patch` annotation: the patch, or (when it is too long to be useful in an
/// audit log) how long it was.
fn patch_annotation(patch: String) -> String {
    if patch.len() <= MAX_ANNOTATION_CHARS {
        patch
    } else {
        format!(
            "(a JSON patch of {} bytes, too long to record)",
            patch.len()
        )
    }
}

/// Collects warnings, cutting each and keeping at most [`MAX_WARNINGS`].
#[derive(Default)]
struct Warnings {
    kept: Vec<String>,
    left_out: usize,
}

impl Warnings {
    fn push(&mut self, text: String) {
        if self.kept.len() < MAX_WARNINGS - 1 {
            self.kept.push(cut(text, MAX_WARNING_CHARS));
        } else {
            // The last slot is kept for the count, unless exactly one more comes.
            self.left_out += 1;
            if self.left_out == 1 {
                self.kept.push(cut(text, MAX_WARNING_CHARS));
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.left_out > 1 {
            self.kept.pop();
            self.kept.push(format!(
                "… and {} more findings (see the audit annotations, or run spreadguard audit)",
                self.left_out
            ));
        }
        self.kept
    }
}

/// `items` joined by `sep`, at most `max` characters; items that do not fit are counted.
fn joined(items: impl ExactSizeIterator<Item = String>, sep: &str, max: usize) -> String {
    let total = items.len();
    let mut out = String::new();
    let mut chars = 0;
    for (i, item) in items.enumerate() {
        let item_chars = item.chars().count();
        let sep_chars = if i == 0 { 0 } else { sep.chars().count() };
        // Keep room for the "… and N more" tail unless this is the last item.
        let reserve = if i + 1 == total { 0 } else { 32 };
        if chars + sep_chars + item_chars + reserve > max {
            let room = max.saturating_sub(chars + sep_chars + 32);
            if i == 0 && room > 0 {
                out.push_str(&cut(item, room));
                chars = out.chars().count();
                if total > 1 {
                    let _ = write!(out, "{sep}… and {} more", total - 1);
                }
            } else {
                let _ = write!(out, "{sep}… and {} more", total - i);
            }
            let _ = chars;
            return out;
        }
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&item);
        chars += sep_chars + item_chars;
    }
    out
}

/// Cuts `text` to `max` characters, ending it with an ellipsis.
pub fn cut(mut text: String, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    // Fast path: byte length bounds the character count.
    if text.len() <= max || text.chars().count() <= max {
        return text;
    }
    let end = text
        .char_indices()
        .nth(max - 1)
        .map_or(text.len(), |(i, _)| i);
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::finding::RuleId;
    use crate::engine::workload::WorkloadKind;

    fn decision(findings: Vec<Finding>) -> Decision {
        Decision {
            subject: Subject::Workload(WorkloadKind::Deployment),
            findings,
            patch: Vec::new(),
            injected: Vec::new(),
            considered: Default::default(),
            notices: Vec::new(),
            notes: Vec::new(),
            placement: None,
            placement_as_written: None,
        }
    }

    #[test]
    fn warnings_are_cut_at_120_characters() {
        let short = "HA001: 1 replica".to_owned();
        assert_eq!(cut(short.clone(), MAX_WARNING_CHARS), short);
        let long = "é".repeat(300);
        let c = cut(long, MAX_WARNING_CHARS);
        assert_eq!(c.chars().count(), MAX_WARNING_CHARS);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn modes_decide_what_a_denial_becomes() {
        let d = decision(vec![
            Finding::deny(RuleId::HA002, "4 replicas, 3 eligible zones"),
            Finding::warn(RuleId::HA010, "1 of 4 eligible nodes carry no zone label"),
            Finding::info(RuleId::HA009, "single zone"),
        ]);
        let enforce = outcome(Mode::Enforce, &d, Endpoint::Validate);
        assert!(!enforce.allowed);
        assert_eq!(
            enforce.message,
            "spreadguard: HA002: 4 replicas, 3 eligible zones"
        );
        assert_eq!(
            enforce.warnings,
            ["HA010: 1 of 4 eligible nodes carry no zone label"]
        );
        let warn = outcome(Mode::Warn, &d, Endpoint::Validate);
        assert!(warn.allowed);
        assert_eq!(warn.warnings.len(), 2);
        let audit = outcome(Mode::Audit, &d, Endpoint::Validate);
        assert!(audit.allowed);
        assert_eq!(
            audit.warnings[0],
            "would deny: HA002: 4 replicas, 3 eligible zones"
        );
        assert_eq!(audit.audit[0].0, AuditKey::Violations);
        assert_eq!(outcome(Mode::Off, &d, Endpoint::Validate), Outcome::allow());
        for mode in [Mode::Warn, Mode::Audit, Mode::Off] {
            assert!(combined(mode, &d).allowed, "{mode:?} never denies");
        }
        assert!(!combined(Mode::Enforce, &d).allowed);
    }

    #[test]
    fn a_thousand_findings_make_a_bounded_answer() {
        let long = "x".repeat(10_000);
        let d = decision(
            (0..1000)
                .map(|i| Finding::deny(RuleId::HA004, format!("{i} {long}")))
                .chain((0..1000).map(|_| Finding::warn(RuleId::HA010, long.clone())))
                .collect(),
        );
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
            let o = outcome(mode, &d, Endpoint::Validate);
            assert!(o.warnings.len() <= MAX_WARNINGS, "{mode:?}");
            assert!(
                o.warnings
                    .iter()
                    .all(|w| w.chars().count() <= MAX_WARNING_CHARS)
            );
            assert!(o.message.chars().count() <= MAX_MESSAGE_CHARS);
            assert!(o.detail.chars().count() <= MAX_ANNOTATION_CHARS);
            for (_, v) in &o.audit {
                assert!(v.len() <= MAX_ANNOTATION_CHARS, "{}", v.len());
                let list: Vec<String> = serde_json::from_str(v).unwrap();
                assert!(list.last().unwrap().contains("more"));
            }
        }
        let warn = outcome(Mode::Warn, &d, Endpoint::Validate);
        assert!(warn.warnings.last().unwrap().contains("1991 more"));
        let enforce = outcome(Mode::Enforce, &d, Endpoint::Validate);
        assert!(enforce.message.contains("more"), "{}", enforce.message);
    }

    #[test]
    fn joined_counts_what_does_not_fit() {
        let items = || (0..5).map(|i| format!("item{i}"));
        assert_eq!(
            joined(items(), ", ", 1000),
            "item0, item1, item2, item3, item4"
        );
        let short = joined(items(), ", ", 50);
        assert!(short.starts_with("item0"), "{short}");
        assert!(short.ends_with("more"), "{short}");
        assert!(short.chars().count() <= 50, "{short}");
    }
}
