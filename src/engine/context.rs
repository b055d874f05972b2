//! What every rule needs to know about one decision, computed once.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodAffinityTerm;

use super::Peers;
use super::labels::selects;
use super::policy::Policy;
use super::rules::{Selection, selection};
use super::stateful::Analysis;
use super::storage::Volumes;
use super::topology::{Eligibility, Topology};
use super::well_known::HOSTNAME_KEY;
use super::workload::{AntiAffinityTerm, Workload};

/// Where the effective replica count came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSource {
    Spec,
    /// `spec.replicas` omitted: Kubernetes defaults it to 1.
    Defaulted,
    /// A HorizontalPodAutoscaler's `minReplicas`.
    Autoscaler,
}

pub struct Context<'a> {
    pub workload: &'a Workload<'a>,
    pub topology: &'a Topology,
    pub policy: &'a Policy,
    /// Labels of the workload's namespace, when known.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// Other workloads, when known (`audit`).
    pub peers: Option<&'a dyn Peers>,
    pub eligibility: Arc<Eligibility>,
    /// The topology keys `eligibility.keys_present` answers for.
    pub keys: Vec<&'a str>,
    pub replicas: i64,
    pub replica_source: ReplicaSource,
    /// Storage, when known (the caches, or storage objects among audit's files).
    pub volumes: Option<&'a dyn Volumes>,
    /// What the workload's volumes mean for its placement, worked out once when asked.
    stateful: OnceCell<Analysis>,
}

// === impl Context ===

impl<'a> Context<'a> {
    pub fn new(
        workload: &'a Workload<'a>,
        topology: &'a Topology,
        policy: &'a Policy,
        explicit_replicas: bool,
        hpa_min_replicas: Option<i64>,
    ) -> Context<'a> {
        let mut keys: Vec<&str> = vec![topology.zone_key(), HOSTNAME_KEY];
        let spread_keys = workload
            .scheduling
            .spread
            .iter()
            .map(|c| c.topology_key.as_str());
        let term_keys = workload
            .anti_affinity_terms()
            .map(|t| t.term.topology_key.as_str());
        for k in spread_keys.chain(term_keys) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let eligibility = topology.eligibility_cached(
            &workload.scheduling(),
            &workload.scheduling_fields(),
            &keys,
        );
        let (replicas, replica_source) = match hpa_min_replicas {
            Some(min) => (min, ReplicaSource::Autoscaler),
            None if explicit_replicas => (workload.replicas, ReplicaSource::Spec),
            None => (workload.replicas, ReplicaSource::Defaulted),
        };
        Context {
            workload,
            topology,
            policy,
            namespace_labels: None,
            peers: None,
            eligibility,
            keys,
            replicas,
            replica_source,
            volumes: None,
            stateful: OnceCell::new(),
        }
    }

    /// Reads storage from `volumes`.
    pub fn with_volumes(mut self, volumes: Option<&'a dyn Volumes>) -> Self {
        self.volumes = volumes;
        self
    }

    /// What the workload's volumes mean for its placement (see [`super::stateful`]).
    pub fn stateful(&self) -> &Analysis {
        self.stateful.get_or_init(|| super::stateful::analyse(self))
    }

    /// The names of the zones the workload may run in (with nodes now, or a node template
    /// that can add one); empty when the topology is assumed.
    pub fn eligible_zone_names(&self) -> Vec<&'a str> {
        self.topology
            .zone_names()
            .zip(&self.eligibility.per_zone)
            .filter(|(_, z)| z.eligible())
            .map(|(name, _)| name)
            .collect()
    }

    /// " (zone cn-beijing-k: no node now, a node pool can add one)" when some eligible zones
    /// have no eligible node now, else "": the end of a message that counted them (the end,
    /// so that the point stays within a warning's first 120 characters).
    pub fn template_zones_suffix(&self) -> String {
        self.template_zones_note()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    }

    /// "zone cn-beijing-k: no node now, a node pool can add one", for the eligible zones
    /// with no eligible node now; `None` when every eligible zone has nodes.
    pub fn template_zones_note(&self) -> Option<String> {
        if self.eligibility.template_only_zones == 0 {
            return None;
        }
        let names: Vec<&str> = self
            .topology
            .zone_names()
            .zip(&self.eligibility.per_zone)
            .filter(|(_, z)| z.nodes == 0 && z.can_grow)
            .map(|(name, _)| name)
            .collect();
        let shown: Vec<&str> = names.iter().take(3).copied().collect();
        let more = names.len() - shown.len();
        let (what, verb) = if names.len() == 1 {
            ("zone", "a node pool can add one")
        } else {
            ("zones", "node pools can add them")
        };
        let mut text = format!("{what} {}", shown.join(", "));
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        Some(format!("{text}: no node now, {verb}"))
    }

    /// The node templates the workload fits, for messages: "NodePool general".
    pub fn fitting_templates(&self) -> Vec<String> {
        let all: Vec<_> = self.topology.templates().collect();
        let mut names: Vec<String> = self
            .eligibility
            .templates
            .iter()
            .filter_map(|i| all.get(*i))
            .map(|t| t.describe())
            .collect();
        names.dedup();
        names
    }

    /// Does some eligible node carry `key`? `None` when unknown.
    pub fn key_present(&self, key: &str) -> Option<bool> {
        let i = self.keys.iter().position(|k| *k == key)?;
        self.eligibility.keys_present[i]
    }

    pub fn eligible_nodes(&self) -> Option<usize> {
        self.eligibility.nodes
    }

    pub fn eligible_zones(&self) -> usize {
        self.eligibility.zones
    }

    /// What else the caller knows: the namespace's labels and other workloads.
    pub fn with_surroundings(
        mut self,
        namespace_labels: Option<&'a BTreeMap<String, String>>,
        peers: Option<&'a dyn Peers>,
    ) -> Self {
        self.namespace_labels = namespace_labels;
        self.peers = peers;
        self
    }

    /// Whether a pod (anti-)affinity term counts pods of the workload's own namespace.
    ///
    /// As the scheduler reads a term: the namespaces it lists, united with those its
    /// `namespaceSelector` selects (`{}` selects every namespace); neither means the pod's own
    /// namespace. A selector is evaluated against the namespace's labels when they are known;
    /// when they are not, it is assumed to select the namespace.
    pub fn term_covers_own_namespace(&self, term: &PodAffinityTerm) -> bool {
        let listed = term.namespaces.as_deref().unwrap_or_default();
        let Some(own) = self.workload.namespace else {
            return true;
        };
        if listed.iter().any(|n| n == own) {
            return true;
        }
        match &term.namespace_selector {
            None => listed.is_empty(),
            Some(selector) => match self.namespace_labels {
                None => true,
                Some(labels) => selects(selector, labels).unwrap_or(false),
            },
        }
    }

    /// The anti-affinity terms that stand for the workload's own spread when deciding what
    /// to inject: all but those aimed at another workload's pods (a selector that names a key
    /// the pods carry with another value, or other namespaces), which spread nothing of this
    /// one. A broken term (no selector, an invalid one, keys the pods do not carry) is the
    /// user's to fix (HA004) and is not doubled by an injected one.
    pub fn covering_anti_affinity_terms(&self) -> impl Iterator<Item = AntiAffinityTerm<'a>> + '_ {
        self.workload.anti_affinity_terms().filter(|t| {
            match selection(t.term.label_selector.as_ref(), &self.workload.pod_labels) {
                Selection::Other => false,
                Selection::Own => self.term_covers_own_namespace(t.term),
                Selection::Missing | Selection::Invalid(_) | Selection::Stray(_) => true,
            }
        })
    }

    /// The anti-affinity terms, hard or soft, that keep the workload's own pods apart: their
    /// selector selects the pod template's labels in the workload's own namespace. A term
    /// aimed at another workload (a database, a noisy neighbour) spreads nothing of this one.
    pub fn own_anti_affinity_terms(&self) -> impl Iterator<Item = AntiAffinityTerm<'a>> + '_ {
        self.workload
            .anti_affinity_terms()
            .filter(|t| self.term_selects_own_pods(t.term))
    }

    /// Whether a pod (anti-)affinity term selects the workload's own pods.
    pub fn term_selects_own_pods(&self, term: &PodAffinityTerm) -> bool {
        term.label_selector
            .as_ref()
            .is_some_and(|s| selects(s, &self.workload.pod_labels) == Ok(true))
            && self.term_covers_own_namespace(term)
    }

    /// What confines the pod to its eligible nodes, for messages: "the pod's nodeSelector
    /// and tolerations", "node taints the pod does not tolerate".
    pub fn placement_causes(&self) -> String {
        let s = &self.workload.scheduling;
        let mut causes = Vec::new();
        if s.node_selector.as_ref().is_some_and(|m| !m.is_empty()) {
            causes.push("nodeSelector");
        }
        if self.workload.scheduling().required_terms.is_some() {
            causes.push("required node affinity");
        }
        if !s.tolerations.is_empty() {
            causes.push("tolerations");
        }
        match causes.as_slice() {
            [] => "node taints the pod does not tolerate".to_owned(),
            [one] => format!("the pod's {one}"),
            [init @ .., last] => format!("the pod's {} and {last}", init.join(", ")),
        }
    }
}
