//! Exceptions: named, reasoned, optionally expiring waivers of rules for chosen workloads,
//! granted in the policy file (the platform team's, not the tenants').
//!
//! A matching workload's waived findings become `info` with the message "waived by exception
//! NAME until DATE: REASON" and name the exception (`waivedBy`); nothing else about the
//! decision changes: the spread is still injected unless the exception says `mutate: false`.
//! An exception applies through its `expires` day (UTC) and not after; an expired one that
//! still matches says so in a notice, so the owner learns why they are judged again.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Month};

use super::finding::{Finding, RuleId, Severity};
use super::labels::selects;

/// One exception, as written in the policy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exception {
    /// The exception's own name, unique in the policy.
    pub name: String,
    /// Which workloads it covers.
    #[serde(rename = "match")]
    pub matches: ExceptionMatch,
    /// The rules it waives: rule IDs, or `all`.
    pub rules: Vec<WaivedRule>,
    /// Why, for whoever reads the finding: required.
    pub reason: String,
    /// The last day (UTC) it applies; none: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Day>,
    /// Whether the workload is still mutated (spread injected): default true.
    #[serde(default = "yes")]
    pub mutate: bool,
}

fn yes() -> bool {
    true
}

/// Which workloads an exception covers: a namespace, optionally a kind, and either a name or
/// a label selector over the workload's own labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExceptionMatch {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A rule ID, or every rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaivedRule {
    All,
    Rule(RuleId),
}

impl Serialize for WaivedRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WaivedRule::All => s.serialize_str("all"),
            WaivedRule::Rule(r) => s.serialize_str(r.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for WaivedRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "all" {
            return Ok(WaivedRule::All);
        }
        RuleId::ALL
            .iter()
            .find(|r| r.as_str() == text)
            .map(|r| WaivedRule::Rule(*r))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("unknown rule {text:?} (a rule ID or `all`)"))
            })
    }
}

/// A calendar day, written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub Date);

impl Day {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Day> {
        let mut parts = text.trim().splitn(3, '-');
        let year: i32 = parts.next()?.parse().ok()?;
        let month: u8 = parts.next()?.parse().ok()?;
        let day: u8 = parts.next()?.parse().ok()?;
        let month = Month::try_from(month).ok()?;
        Date::from_calendar_date(year, month, day).ok().map(Day)
    }

    /// Today, in UTC.
    pub fn today_utc() -> Day {
        Day(time::OffsetDateTime::now_utc().date())
    }

    /// The first second after this day ends (UTC), as a Unix timestamp.
    pub fn end_unix(self) -> i64 {
        self.0
            .next_day()
            .map_or(i64::MAX, |d| d.midnight().assume_utc().unix_timestamp())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML reads an unquoted 2026-12-31 as a string; accept it either way.
        let text = String::deserialize(d)?;
        Day::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a date (YYYY-MM-DD)")))
    }
}

/// What identifies a workload for matching.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub namespace: Option<&'a str>,
    pub kind: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

// === impl Exception ===

impl Exception {
    /// Whether it covers the workload (expiry aside).
    pub fn matches(&self, t: &Target<'_>) -> bool {
        let m = &self.matches;
        if t.namespace != Some(m.namespace.as_str()) {
            return false;
        }
        if m.kind.as_deref().is_some_and(|k| k != t.kind) {
            return false;
        }
        match (&m.name, &m.selector) {
            (Some(name), _) => name == t.name,
            (None, Some(selector)) => selects(selector, t.labels) == Ok(true),
            (None, None) => false,
        }
    }

    /// Whether it still applies on `today` (through its `expires` day).
    pub fn active_on(&self, today: Day) -> bool {
        self.expires.is_none_or(|last| today <= last)
    }

    pub fn waives(&self, rule: RuleId) -> bool {
        self.rules
            .iter()
            .any(|r| *r == WaivedRule::All || *r == WaivedRule::Rule(rule))
    }

    /// Checks what serde cannot: a name, a reason, a name or a selector (not both), rules.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is required".into());
        }
        if self.reason.trim().is_empty() {
            return Err("reason is required".into());
        }
        if self.matches.namespace.trim().is_empty() {
            return Err("match.namespace is required".into());
        }
        match (&self.matches.name, &self.matches.selector) {
            (Some(_), Some(_)) => return Err("match: give name or selector, not both".into()),
            (None, None) => return Err("match: give name or selector".into()),
            _ => {}
        }
        if self.rules.is_empty() {
            return Err("rules: name at least one rule ID, or [all]".into());
        }
        Ok(())
    }
}

/// What the exceptions did to one decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// An active exception covers the workload with `mutate: false`.
    pub no_mutation: bool,
    /// Messages for the workload's owner (an exception that expired).
    pub notices: Vec<String>,
}

/// The active exceptions covering `target` on `today`, and the expired ones that would.
pub fn covering<'a>(
    exceptions: &'a [Exception],
    target: &Target<'_>,
    today: Day,
) -> (Vec<&'a Exception>, Vec<&'a Exception>) {
    exceptions
        .iter()
        .filter(|e| e.matches(target))
        .partition(|e| e.active_on(today))
}

/// Waives the findings the active exceptions cover; notes the expired ones.
pub fn apply(
    findings: &mut [Finding],
    exceptions: &[Exception],
    target: &Target<'_>,
    today: Day,
) -> Applied {
    let (active, expired) = covering(exceptions, target, today);
    let mut applied = Applied {
        no_mutation: active.iter().any(|e| !e.mutate),
        notices: Vec::new(),
    };
    for f in findings.iter_mut() {
        if f.waived_by.is_some() {
            continue;
        }
        let Some(e) = active.iter().find(|e| e.waives(f.rule)) else {
            continue;
        };
        let until = e.expires.map(|d| format!(" until {d}")).unwrap_or_default();
        let was = std::mem::take(&mut f.message);
        *f = Finding::new(
            f.rule,
            Severity::Info,
            format!(
                "waived by exception {}{until}: {} (was {}: {was})",
                e.name,
                e.reason,
                f.severity.as_str()
            ),
        )
        .about(std::mem::take(&mut f.about));
        f.waived_by = Some(e.name.clone());
    }
    for e in expired {
        let last = e.expires.map(|d| d.to_string()).unwrap_or_default();
        applied.notices.push(format!(
            "exception {} expired after {last}: its rules apply again",
            e.name
        ));
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exception(yaml: &str) -> Exception {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn days_parse_and_print_in_iso_form() {
        let d = Day::parse("2026-12-31").unwrap();
        assert_eq!(d.to_string(), "2026-12-31");
        assert_eq!(
            d.end_unix(),
            Day::parse("2027-01-01")
                .unwrap()
                .0
                .midnight()
                .assume_utc()
                .unix_timestamp()
        );
        for bad in ["2026-13-01", "2026-02-30", "tomorrow", "2026-1"] {
            assert!(Day::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_exception_applies_through_its_last_day() {
        let e = exception(
            "{name: x, match: {namespace: a, name: b}, rules: [HA001], reason: r, expires: 2026-12-31}",
        );
        assert!(e.active_on(Day::parse("2026-12-31").unwrap()));
        assert!(!e.active_on(Day::parse("2027-01-01").unwrap()));
        assert!(e.mutate, "mutate defaults to true");
    }

    #[test]
    fn validation_names_what_is_missing() {
        let cases = [
            (
                "{name: x, match: {namespace: a, name: b}, rules: [HA001], reason: ''}",
                "reason",
            ),
            (
                "{name: x, match: {namespace: a}, rules: [HA001], reason: r}",
                "name or selector",
            ),
            (
                "{name: x, match: {namespace: a, name: b, selector: {}}, rules: [all], reason: r}",
                "not both",
            ),
            (
                "{name: x, match: {namespace: a, name: b}, rules: [], reason: r}",
                "rules",
            ),
        ];
        for (yaml, what) in cases {
            let err = exception(yaml).validate().unwrap_err();
            assert!(err.contains(what), "{yaml}: {err}");
        }
        assert!(
            serde_norway::from_str::<Exception>(
                "{name: x, match: {namespace: a, name: b}, rules: [HA999], reason: r}"
            )
            .is_err()
        );
    }
}
