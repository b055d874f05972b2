//! Label and annotation keys whose meaning is fixed elsewhere: Kubernetes' own, then
//! spreadguard's (contracts with users' manifests and scripts; never rename one).

// === Kubernetes ===

/// The label that carries a node's zone on every supported Kubernetes version.
pub const STANDARD_ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The zone label Kubernetes deprecated in 1.17; still found on old clusters and manifests.
pub const LEGACY_ZONE_KEY: &str = "failure-domain.beta.kubernetes.io/zone";
/// The label every node carries with its own host name.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// The taint the node controller mirrors `spec.unschedulable` (a cordon) into; pods that
/// tolerate it may still be scheduled on a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Labels Kubernetes controllers add to pods, which a selector must not pin.
pub const HASH_LABELS: &[&str] = &[
    "pod-template-hash",
    "rollouts-pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

// === spreadguard ===

/// Namespace label that opts a namespace in when the policy's scope is `optIn`.
pub const ENABLED_LABEL: &str = "spreadguard.io/enabled";
/// Namespace label, or workload annotation (when `allowWorkloadOverride`), that sets the mode.
pub const MODE_KEY: &str = "spreadguard.io/mode";
/// Workload annotation recording what spreadguard injected (`zone-spread,node-spread`).
pub const INJECTED_ANNOTATION: &str = "spreadguard.io/injected";
