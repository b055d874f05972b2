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
    HA023 => "a DoNotSchedule spread counts domains the pod cannot use (nodeTaintsPolicy or nodeAffinityPolicy Ignore)",
    HA024 => "required pod affinity to the workload's own pods puts every replica in one zone",
    HA025 => "required pod affinity to other workloads pins the workload to their one zone",
    HA026 => "a rolling update that can never place its surge pod",
    HA027 => "a spread or an eligible zone that does not hold: maxSkew at least the replicas, or tolerationSeconds",
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One conclusion about a workload: a rule, how much it matters, and the numbers behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(rule: RuleId, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            rule,
            severity,
            message: message.into(),
        }
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

/// "1 replica", "3 replicas": messages carry numbers, and numbers deserve grammar.
pub(crate) fn plural(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}
