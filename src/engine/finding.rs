//! Findings: what the engine concludes about a workload, each under a stable rule ID.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much a finding matters. Ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Deny,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Deny => "deny",
        }
    }
}

macro_rules! rule_ids {
    ($($id:ident => $summary:literal,)*) => {
        /// Stable rule identifiers. Users grep for these; never renumber one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum RuleId { $(#[doc = $summary] $id,)* }

        impl RuleId {
            pub const ALL: &'static [RuleId] = &[$(RuleId::$id,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$id => stringify!($id),)* }
            }

            /// What the rule is about, in a line (for report formats that describe rules).
            pub fn summary(self) -> &'static str {
                match self { $(RuleId::$id => $summary,)* }
            }
        }
    };
}

rule_ids! {
    HA000 => "the object could not be interpreted (a field has the wrong type)",
    HA001 => "replicas below the policy's minReplicas",
    HA002 => "required zone anti-affinity with more replicas than eligible zones",
    HA003 => "required hostname anti-affinity with more replicas than eligible nodes",
    HA004 => "a spread constraint or anti-affinity term that does not select the workload's own pods",
    HA005 => "a spread constraint or anti-affinity term on a topology key no eligible node carries",
    HA006 => "eligible nodes lie in a single zone (or there are none)",
    HA007 => "DoNotSchedule zone spread whose minDomains exceeds the eligible zones",
    HA008 => "the legacy zone label is used where nodes carry topology.kubernetes.io/zone",
    HA009 => "the cluster has a single zone",
    HA010 => "some eligible nodes carry no zone label",
    HA011 => "no usable selector or pod labels, so nothing can be injected",
    HA012 => "a HorizontalPodAutoscaler whose minReplicas is below the policy's minReplicas",
    HA013 => "a PodDisruptionBudget that allows no voluntary eviction",
    HA014 => "losing or draining the workload's largest zone takes more than its PodDisruptionBudget allows",
    HA015 => "a workload with 2 or more replicas and no PodDisruptionBudget",
    HA016 => "a PodDisruptionBudget that selects no workload",
    HA017 => "a StatefulSet's zonal volumes are bound immediately, before its pods are scheduled",
    HA018 => "a StorageClass's allowedTopologies leave fewer zones than the eligible nodes span",
    HA019 => "an existing StatefulSet's bound volumes lie in fewer zones than its replicas could use",
    HA020 => "replicas share one ReadWriteOnce claim, so they must share one node",
    HA021 => "the predicted placement leaves fewer than minSurvivingReplicas after the worst zone loss",
    HA022 => "a running workload's ready pods lie worse over zones than its constraints promise",
    HA023 => "a DoNotSchedule spread counts domains the pod cannot use (nodeTaintsPolicy or nodeAffinityPolicy Ignore)",
    HA024 => "required pod affinity to the workload's own pods puts every replica in one zone",
    HA025 => "required pod affinity to other workloads pins the workload to their one zone",
    HA026 => "a rolling update that can never place its surge pod",
    HA027 => "a spread or an eligible zone that does not hold: maxSkew at least the replicas, or tolerationSeconds",
    HA028 => "the fields decisions read hold more values than spreadguard judges, so the object is not judged",
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding's message is at most this many characters: it may quote tenant text (labels,
/// names, selectors), and it goes into denials, warnings, audit annotations and logs.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// One conclusion about a workload: a rule, how much it matters, and the numbers behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    pub message: String,
    /// What the finding is about (a constraint or term, a replica count), so that an UPDATE
    /// can tell a violation the stored object already had from a new one of the same rule.
    /// Empty: the message says it.
    #[serde(skip)]
    pub about: String,
    /// The exception that waived it (its severity is then `info`).
    #[serde(rename = "waivedBy", default, skip_serializing_if = "Option::is_none")]
    pub waived_by: Option<String>,
}

impl Finding {
    /// A finding; the message is made safe to echo (control characters escaped, at most
    /// [`MAX_MESSAGE_CHARS`] long).
    pub fn new(rule: RuleId, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            rule,
            severity,
            message: safe_text(message.into(), MAX_MESSAGE_CHARS),
            about: String::new(),
            waived_by: None,
        }
    }

    /// Names what the finding is about, for ratcheting.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = about.into();
        self
    }

    /// The finding's identity: its rule and what it is about.
    pub fn identity(&self) -> (RuleId, &str) {
        let about = if self.about.is_empty() {
            &self.message
        } else {
            &self.about
        };
        (self.rule, about)
    }

    pub fn deny(rule: RuleId, message: impl Into<String>) -> Self {
        Finding::new(rule, Severity::Deny, message)
    }

    pub fn warn(rule: RuleId, message: impl Into<String>) -> Self {
        Finding::new(rule, Severity::Warn, message)
    }

    pub fn info(rule: RuleId, message: impl Into<String>) -> Self {
        Finding::new(rule, Severity::Info, message)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.rule,
            self.severity.as_str(),
            self.message
        )
    }
}

/// Text from a tenant's object, made safe to echo: control characters escaped (`\n`,
/// `\u{1b}`), at most `max` characters (then an ellipsis).
pub fn safe_text(text: String, max: usize) -> String {
    let clean = text.chars().count() <= max && !text.chars().any(char::is_control);
    if clean {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut count = 0;
    for c in text.chars() {
        let escaped: std::borrow::Cow<'_, str> = match c {
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32).into(),
            c => c.to_string().into(),
        };
        let n = escaped.chars().count();
        if count + n > max.saturating_sub(1) {
            out.push('…');
            return out;
        }
        out.push_str(&escaped);
        count += n;
    }
    out
}

/// "1 replica", "3 replicas": messages carry numbers, and numbers deserve grammar.
pub(crate) fn plural(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_safe_to_echo() {
        let f = Finding::deny(RuleId::HA004, "label a=\"x\nSet-Cookie: y\u{1b}[31m\"");
        assert_eq!(f.message, "label a=\"x\\nSet-Cookie: y\\u{1b}[31m\"");
        assert!(!f.message.chars().any(char::is_control));
        let long = Finding::warn(RuleId::HA010, "é".repeat(5000));
        assert_eq!(long.message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(long.message.ends_with('…'));
        let plain = "3 replicas, 2 eligible zones".to_owned();
        assert_eq!(Finding::info(RuleId::HA009, plain.clone()).message, plain);
    }

    #[test]
    fn identity_is_what_the_finding_is_about() {
        let a = Finding::deny(RuleId::HA004, "topologySpreadConstraints[0] ...").about("c1");
        let b = Finding::deny(RuleId::HA004, "topologySpreadConstraints[1] ...").about("c1");
        assert_eq!(a.identity(), b.identity());
        let c = Finding::deny(RuleId::HA001, "1 replica");
        assert_eq!(c.identity(), (RuleId::HA001, "1 replica"));
    }
}
