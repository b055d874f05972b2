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

/// The label Karpenter sets on every node to the NodePool that launched it.
pub const KARPENTER_NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";
/// The annotation that marks the cluster's default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta form, still honoured by the DefaultStorageClass admission plugin.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// Labels Kubernetes controllers add to pods, which a selector must not pin.
pub const HASH_LABELS: &[&str] = &[
    "pod-template-hash",
    "rollouts-pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// Whether a node-affinity or allowedTopologies key names a zone: the well-known zone labels,
/// and the CSI drivers' own zone keys (`topology.ebs.csi.aws.com/zone`,
/// `topology.gke.io/zone`, `topology.disk.csi.azure.com/zone`,
/// `topology.diskplugin.csi.alibabacloud.com/zone`, `topology.cinder.csi.openstack.org/zone`,
/// `topology.csi.vmware.com/k8s-zone`) and custom keys such as `avaliable_zone`, whose
/// values are the zone names the nodes carry.
pub fn is_zone_like_key(key: &str) -> bool {
    key == STANDARD_ZONE_KEY
        || key == LEGACY_ZONE_KEY
        || key == "zone"
        || key.ends_with("/zone")
        || key.ends_with("-zone")
        || key.ends_with("_zone")
}

// === spreadguard ===

/// Namespace label that opts a namespace in when the policy's scope is `optIn`.
pub const ENABLED_LABEL: &str = "spreadguard.io/enabled";
/// Namespace label, or workload annotation (when `allowWorkloadOverride`), that sets the mode.
pub const MODE_KEY: &str = "spreadguard.io/mode";
/// Workload annotation recording what spreadguard injected (`zone-spread,node-spread`).
pub const INJECTED_ANNOTATION: &str = "spreadguard.io/injected";
