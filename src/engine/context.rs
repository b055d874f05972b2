//! What every rule needs to know about one decision, computed once.

use std::cell::OnceCell;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodAffinityTerm;

use super::policy::Policy;
use super::stateful::Analysis;
use super::storage::Volumes;
use super::topology::{Eligibility, Topology};
use super::well_known::HOSTNAME_KEY;
use super::workload::Workload;

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

    /// "3 eligible zones", and when some of them have no eligible node now, which and why
    /// they count: "3 eligible zones (zone cn-beijing-k: no node now, a node pool can add
    /// one)".
    pub fn eligible_zones_text(&self) -> String {
        let count = super::finding::plural(
            self.eligible_zones() as i64,
            "eligible zone",
            "eligible zones",
        );
        match self.template_zones_note() {
            Some(note) => format!("{count} ({note})"),
            None => count,
        }
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

    /// Whether an anti-affinity term counts pods of the workload's own namespace.
    pub fn term_covers_own_namespace(&self, term: &PodAffinityTerm) -> bool {
        if term.namespace_selector.is_some() {
            return true;
        }
        match (term.namespaces.as_deref(), self.workload.namespace) {
            (None | Some([]), _) | (_, None) => true,
            (Some(list), Some(ns)) => list.iter().any(|n| n == ns),
        }
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
