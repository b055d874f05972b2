//! The policy file: what spreadguard enforces and how it mutates.
//!
//! Every field is optional; the defaults are the product's documented behaviour. Unknown
//! fields and bad values are errors that name the field, so a typo never silently turns a
//! rule off.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::exceptions::Exception;
use super::finding::{RuleId, Severity};
use super::kinds::CustomKind;
use super::provisioners::ZonalProvisioners;
use super::templates::PolicyTemplate;
use super::well_known::{ENABLED_LABEL, LEGACY_ZONE_KEY, MODE_KEY, STANDARD_ZONE_KEY};
use super::workload::WorkloadKind;

/// Errors from reading a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The YAML does not parse, or a field has the wrong shape (the message names it).
    #[error(transparent)]
    Parse(serde_norway::Error),
    /// The file is not text.
    #[error("not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// A field parsed but its value is out of range.
    #[error("policy field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// How a decision is acted upon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Deny what fails a deny rule, apply the patch.
    #[default]
    Enforce,
    /// Apply the patch, report every finding as a warning, deny nothing.
    Warn,
    /// Change nothing, deny nothing; report what would happen in warnings and audit annotations.
    Audit,
    /// Do nothing at all.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }

    /// Parses the value of a `spreadguard.io/mode` label or annotation.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "enforce" => Some(Mode::Enforce),
            "warn" => Some(Mode::Warn),
            "audit" => Some(Mode::Audit),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }
}

/// Which namespaces spreadguard acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Every namespace that is not exempt.
    #[default]
    ClusterWide,
    /// Only namespaces labelled `spreadguard.io/enabled: "true"`.
    OptIn,
}

/// `whenUnsatisfiable` of the spread constraints spreadguard injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
}

impl WhenUnsatisfiable {
    pub fn as_str(self) -> &'static str {
        match self {
            WhenUnsatisfiable::ScheduleAnyway => "ScheduleAnyway",
            WhenUnsatisfiable::DoNotSchedule => "DoNotSchedule",
        }
    }
}

/// When an injected `DoNotSchedule` zone spread gets `minDomains`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InjectMinDomains {
    /// Only when node templates say a zone without nodes can gain some (node pools that
    /// scale from zero): then pods wait for that zone instead of crowding the others.
    #[default]
    Auto,
    /// Always (the eligible zones, capped by the replicas): replacement pods stay Pending
    /// while a zone's nodes are gone.
    Always,
    /// Never.
    Never,
}

/// A per-rule override of the severity the engine assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleSetting {
    Deny,
    Warn,
    Info,
    /// Drop the rule's findings entirely.
    Off,
}

/// What becomes of a replica count of 1 that the API server defaulted (see
/// [`ReplicasOrigin`](super::replica_origin::ReplicasOrigin)): an HPA may come later to set
/// the real count (Helm creates the Deployment first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultedReplicas {
    #[default]
    Warn,
    Deny,
}

/// Rules whose findings are dropped unless `rules` names them with a severity.
pub const OFF_BY_DEFAULT: &[RuleId] = &[RuleId::HA015];

/// The whole policy. Field names are the YAML keys (camelCase).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Policy {
    pub mode: Mode,
    pub scope: Scope,
    pub min_replicas: u32,
    /// HA021: replicas that must be left running after the worst single zone loss.
    pub min_surviving_replicas: u32,
    pub zone_labels: Vec<String>,
    pub max_skew: u32,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub inject_min_domains: InjectMinDomains,
    /// Add `matchLabelKeys: [pod-template-hash]` to spread constraints injected into Deployments.
    pub match_pod_template_hash: bool,
    pub anti_affinity_weight: u32,
    pub spread_across_nodes: bool,
    pub rewrite_legacy_zone_key: bool,
    pub exempt_namespaces: Vec<String>,
    pub allow_workload_override: bool,
    pub assumed_zones: u32,
    /// When the engine itself fails (a bug), allow the request with a warning.
    pub fail_open: bool,
    /// HA001 for a replica count of 1 nobody wrote: `warn` (the default) or `deny`.
    pub defaulted_replicas: DefaultedReplicas,
    pub rules: BTreeMap<RuleId, RuleSetting>,
    /// Workload kinds to judge beyond the built-in ones.
    pub workload_kinds: Vec<CustomKind>,
    /// Named, reasoned, optionally expiring waivers for chosen workloads.
    pub exceptions: Vec<Exception>,
    /// `whenUnsatisfiable` of the zone spread injected into StatefulSets whose volumes are
    /// zonal and bound at first consumer: their first placement decides the data's zones.
    pub stateful_zone_spread: WhenUnsatisfiable,
    /// Which provisioners make zonal volumes (laid over the defaults).
    pub zonal_provisioners: ZonalProvisioners,
    /// Node pools that can add nodes (scale from zero) but have no Node to read.
    pub node_templates: Vec<PolicyTemplate>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Enforce,
            scope: Scope::ClusterWide,
            min_replicas: 2,
            min_surviving_replicas: 1,
            zone_labels: vec![STANDARD_ZONE_KEY.to_owned(), LEGACY_ZONE_KEY.to_owned()],
            max_skew: 1,
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
            inject_min_domains: InjectMinDomains::Auto,
            match_pod_template_hash: true,
            anti_affinity_weight: 100,
            spread_across_nodes: true,
            rewrite_legacy_zone_key: false,
            exempt_namespaces: vec![
                "kube-system".to_owned(),
                "kube-public".to_owned(),
                "kube-node-lease".to_owned(),
            ],
            allow_workload_override: false,
            assumed_zones: 3,
            fail_open: true,
            defaulted_replicas: DefaultedReplicas::Warn,
            rules: BTreeMap::new(),
            workload_kinds: Vec::new(),
            exceptions: Vec::new(),
            stateful_zone_spread: WhenUnsatisfiable::DoNotSchedule,
            zonal_provisioners: ZonalProvisioners::default(),
            node_templates: Vec::new(),
        }
    }
}

// === impl Policy ===

impl Policy {
    /// Parses and validates a policy document. An empty document is the default policy.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        if text.trim().is_empty() {
            return Ok(Policy::default());
        }
        let mut policy: Policy = serde_norway::from_str(text).map_err(PolicyError::Parse)?;
        policy.validate()?;
        for k in &mut policy.workload_kinds {
            k.prepare();
        }
        Ok(policy)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |field, reason: String| Err(PolicyError::Invalid { field, reason });
        if self.zone_labels.is_empty() {
            return invalid("zoneLabels", "must name at least one node label".into());
        }
        if let Some(bad) = self.zone_labels.iter().find(|k| k.trim().is_empty()) {
            return invalid("zoneLabels", format!("contains an empty label key {bad:?}"));
        }
        if self.min_surviving_replicas == 0 {
            return invalid(
                "minSurvivingReplicas",
                "must be at least 1, got 0 (to turn HA021 off: rules: {HA021: off})".into(),
            );
        }
        if self.max_skew == 0 {
            return invalid("maxSkew", "must be at least 1, got 0".into());
        }
        if !(1..=100).contains(&self.anti_affinity_weight) {
            return invalid(
                "antiAffinityWeight",
                format!(
                    "must be between 1 and 100, got {}",
                    self.anti_affinity_weight
                ),
            );
        }
        if self.assumed_zones == 0 {
            return invalid("assumedZones", "must be at least 1, got 0".into());
        }
        if self.workload_kinds.len() > usize::from(u8::MAX) {
            return invalid("workloadKinds", "at most 255 kinds".into());
        }
        for (i, k) in self.workload_kinds.iter().enumerate() {
            let built_in = WorkloadKind::from_type(&k.api_version(), &k.kind, &Policy::default());
            if let Some(b) = built_in {
                return invalid(
                    "workloadKinds",
                    format!(
                        "[{i}] {} {} is built in ({})",
                        k.api_version(),
                        k.kind,
                        b.as_str()
                    ),
                );
            }
            if k.version.is_empty() || k.kind.is_empty() || k.resource.is_empty() {
                return invalid(
                    "workloadKinds",
                    format!("[{i}] needs version, kind and resource"),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, e) in self.exceptions.iter().enumerate() {
            if let Err(reason) = e.validate() {
                return invalid(
                    "exceptions",
                    format!("exceptions[{i}] ({}): {reason}", e.name),
                );
            }
            if !names.insert(e.name.as_str()) {
                return invalid(
                    "exceptions",
                    format!("exceptions[{i}]: the name {:?} is used twice", e.name),
                );
            }
        }
        if let Err(reason) = self.zonal_provisioners.validate() {
            return invalid("zonalProvisioners", reason);
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.node_templates.iter().enumerate() {
            if let Err(reason) = t.validate() {
                return invalid("nodeTemplates", format!("nodeTemplates[{i}]: {reason}"));
            }
            if !names.insert(t.name.as_str()) {
                return invalid(
                    "nodeTemplates",
                    format!("nodeTemplates[{i}]: the name {:?} is used twice", t.name),
                );
            }
        }
        Ok(())
    }

    /// The zone key spreadguard assumes when no node list is at hand.
    pub fn primary_zone_key(&self) -> &str {
        &self.zone_labels[0]
    }

    /// Whether `key` names a zone: one of the configured zone labels or a well-known one.
    pub fn is_zone_key(&self, key: &str) -> bool {
        key == STANDARD_ZONE_KEY
            || key == LEGACY_ZONE_KEY
            || self.zone_labels.iter().any(|k| k == key)
    }

    /// The severity a rule's finding ends with, after the policy's overrides.
    pub fn severity_for(&self, rule: RuleId, severity: Severity) -> Option<Severity> {
        match self.rules.get(&rule) {
            None if OFF_BY_DEFAULT.contains(&rule) => None,
            None => Some(severity),
            Some(RuleSetting::Off) => None,
            Some(RuleSetting::Deny) => Some(Severity::Deny),
            Some(RuleSetting::Warn) => Some(Severity::Warn),
            Some(RuleSetting::Info) => Some(Severity::Info),
        }
    }

    pub fn is_exempt(&self, namespace: &str) -> bool {
        self.exempt_namespaces.iter().any(|n| n == namespace)
    }

    /// The mode one object is judged in: the policy's, then the namespace's
    /// `spreadguard.io/mode` label, then (only when `allowWorkloadOverride`) the workload's
    /// `spreadguard.io/mode` annotation. Exempt namespaces, and with `scope: optIn` namespaces
    /// not labelled `spreadguard.io/enabled: "true"`, are `off`.
    ///
    /// `namespace_labels` is `None` when they are unknown (no namespace cache): the API
    /// server's `namespaceSelector` is then trusted to have done the opt-in.
    pub fn resolve_mode(
        &self,
        namespace: Option<&str>,
        namespace_labels: Option<&BTreeMap<String, String>>,
        workload_annotations: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Mode {
        if namespace.is_some_and(|ns| self.is_exempt(ns)) {
            return Mode::Off;
        }
        if self.scope == Scope::OptIn
            && namespace_labels
                .is_some_and(|l| l.get(ENABLED_LABEL).map(String::as_str) != Some("true"))
        {
            return Mode::Off;
        }
        let mut mode = self.mode;
        if let Some(m) = namespace_labels
            .and_then(|l| l.get(MODE_KEY))
            .and_then(|v| Mode::parse(v))
        {
            mode = m;
        }
        if self.allow_workload_override
            && let Some(m) = workload_annotations
                .and_then(|a| a.get(MODE_KEY))
                .and_then(|v| v.as_str())
                .and_then(Mode::parse)
        {
            mode = m;
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_default_policy() {
        assert_eq!(Policy::from_yaml("").unwrap(), Policy::default());
        assert_eq!(Policy::from_yaml("# nothing\n").unwrap(), Policy::default());
    }

    #[test]
    fn fields_are_read_in_camel_case() {
        let p = Policy::from_yaml(
            "mode: warn\nminReplicas: 3\nzoneLabels: [avaliable_zone]\nwhenUnsatisfiable: DoNotSchedule\nrules: {HA004: warn, HA009: off}\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Warn);
        assert_eq!(p.min_replicas, 3);
        assert_eq!(p.primary_zone_key(), "avaliable_zone");
        assert_eq!(p.when_unsatisfiable, WhenUnsatisfiable::DoNotSchedule);
        assert_eq!(
            p.severity_for(RuleId::HA004, Severity::Deny),
            Some(Severity::Warn)
        );
        assert_eq!(p.severity_for(RuleId::HA009, Severity::Info), None);
        assert_eq!(p.defaulted_replicas, DefaultedReplicas::Warn);
        // HA015 is off until named.
        assert_eq!(p.severity_for(RuleId::HA015, Severity::Info), None);
        let p = Policy::from_yaml("defaultedReplicas: deny\nrules: {HA015: info}\n").unwrap();
        assert_eq!(p.defaulted_replicas, DefaultedReplicas::Deny);
        assert_eq!(
            p.severity_for(RuleId::HA015, Severity::Info),
            Some(Severity::Info)
        );
    }

    type Labels = BTreeMap<String, String>;

    #[test]
    fn modes_combine_policy_namespace_and_workload() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let annotations = serde_json::json!({ MODE_KEY: "off" });
        let ann = annotations.as_object();
        let default = Policy::default();
        let opt_in = Policy {
            scope: Scope::OptIn,
            ..Policy::default()
        };
        let overridable = Policy {
            allow_workload_override: true,
            ..Policy::default()
        };
        let audit_ns = labels(&[(MODE_KEY, "audit"), (ENABLED_LABEL, "true")]);
        let cases: Vec<(&Policy, Option<&str>, Option<Labels>, Mode)> = vec![
            (&default, Some("team"), None, Mode::Enforce),
            (&default, Some("kube-system"), None, Mode::Off),
            (&default, Some("team"), Some(audit_ns.clone()), Mode::Audit),
            (
                &default,
                Some("team"),
                Some(labels(&[(MODE_KEY, "bogus")])),
                Mode::Enforce,
            ),
            (&opt_in, Some("team"), Some(labels(&[])), Mode::Off),
            (
                &opt_in,
                Some("team"),
                Some(labels(&[(ENABLED_LABEL, "true")])),
                Mode::Enforce,
            ),
            (&opt_in, Some("team"), None, Mode::Enforce),
            (
                &overridable,
                Some("team"),
                Some(audit_ns.clone()),
                Mode::Off,
            ),
        ];
        for (policy, ns, ns_labels, expected) in cases {
            assert_eq!(
                policy.resolve_mode(ns, ns_labels.as_ref(), ann),
                expected,
                "{ns:?} {ns_labels:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("minReplica: 2\n", "minReplica"),
            ("mode: strict\n", "strict"),
            ("maxSkew: 0\n", "maxSkew"),
            ("antiAffinityWeight: 101\n", "antiAffinityWeight"),
            ("zoneLabels: []\n", "zoneLabels"),
            ("assumedZones: 0\n", "assumedZones"),
            ("rules: {HA999: warn}\n", "HA999"),
            (
                "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [HA001], reason: r}, {name: a, match: {namespace: x, name: z}, rules: [HA001], reason: r}]\n",
                "used twice",
            ),
            (
                "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [HA001]}]\n",
                "reason",
            ),
            (
                "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [HA001], reason: r, expires: 31.12.2026}]\n",
                "YYYY-MM-DD",
            ),
            ("minReplicas: two\n", "minReplicas"),
            ("defaultedReplicas: info\n", "info"),
            ("statefulZoneSpread: Always\n", "Always"),
            (
                "zonalProvisioners: {ebs.csi.aws.com: {regional: {}}}\n",
                "regional",
            ),
            (
                "zonalProvisioners: {x.example.com: {regionalParameters: {type: []}}}\n",
                "zonalProvisioners",
            ),
            ("nodeTemplates: [{zone: a}]\n", "name"),
            (
                "nodeTemplates: [{name: a, zone: z, taints: [{key: k, effect: Never}]}]\n",
                "nodeTemplates",
            ),
            (
                "nodeTemplates: [{name: a, zone: z1}, {name: a, zone: z2}]\n",
                "used twice",
            ),
            ("nodeTemplates: [{name: a, zones: [z]}]\n", "zones"),
        ];
        for (yaml, field) in cases {
            let err = Policy::from_yaml(yaml).unwrap_err().to_string();
            assert!(
                err.contains(field),
                "{yaml:?} gave {err:?}, which does not name {field}"
            );
        }
    }
}
