//! The lists `audit --cluster` reads (and `serve --reports` watches): their API paths,
//! apiVersions and kinds, the optional ones only where the API server serves them.

use anyhow::Context as _;
use kube::Client;

use crate::engine::policy::Policy;

/// One list the audit reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub api_version: String,
    pub kind: String,
}

pub const PODS: &str = "/api/v1/pods";
pub const NODES: &str = "/api/v1/nodes";
pub const NAMESPACES: &str = "/api/v1/namespaces";
pub const NODE_POOLS: &str = "/apis/karpenter.sh/v1/nodepools";

/// Every list the audit reads under `policy`, the optional kinds only where served: what
/// `serve --reports` watches.
pub async fn listed_paths(client: &Client, policy: &Policy) -> anyhow::Result<Vec<Listed>> {
    let listed = |p: &str, a: &str, k: &str| Listed {
        path: p.to_owned(),
        api_version: a.to_owned(),
        kind: k.to_owned(),
    };
    let mut out = vec![
        listed(NODES, "v1", "Node"),
        listed(NAMESPACES, "v1", "Namespace"),
        listed(PODS, "v1", "Pod"),
    ];
    if crate::cluster::node_pools::served(client)
        .await
        .context("discovering karpenter.sh/v1")?
    {
        out.push(listed(NODE_POOLS, "karpenter.sh/v1", "NodePool"));
    }
    out.extend(STORAGE.iter().map(|(p, a, k)| listed(p, a, k)));
    for (path, api_version, kind, optional) in workload_lists(policy) {
        if optional {
            let probe = axum::http::Request::get(format!("{path}?limit=1"))
                .body(Vec::new())
                .context("building a list request")?;
            match client.request_text(probe).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {path}")),
            }
        }
        out.push(listed(&path, &api_version, &kind));
    }
    Ok(out)
}

/// (path, apiVersion, kind, optional) of every workload list: the built-in kinds, those
/// whose controller may not be installed, and the kinds the policy declares.
pub fn workload_lists(policy: &Policy) -> Vec<(String, String, String, bool)> {
    let declared = policy.workload_kinds.iter().map(|k| {
        let base = if k.group.is_empty() {
            format!("/api/{}", k.version)
        } else {
            format!("/apis/{}/{}", k.group, k.version)
        };
        (
            format!("{base}/{}", k.resource),
            k.api_version(),
            k.kind.clone(),
            true,
        )
    });
    let fixed = |list: &[(&str, &str, &str)], optional: bool| {
        list.iter()
            .map(|(p, a, k)| ((*p).to_owned(), (*a).to_owned(), (*k).to_owned(), optional))
            .collect::<Vec<_>>()
    };
    let mut out = fixed(WORKLOADS, false);
    out.extend(fixed(OPTIONAL_WORKLOADS, true));
    out.extend(declared);
    out
}

/// (API path, apiVersion, kind) of the storage lists.
pub const STORAGE: &[(&str, &str, &str)] = &[
    (
        "/apis/storage.k8s.io/v1/storageclasses",
        "storage.k8s.io/v1",
        "StorageClass",
    ),
    (
        "/api/v1/persistentvolumeclaims",
        "v1",
        "PersistentVolumeClaim",
    ),
    ("/api/v1/persistentvolumes", "v1", "PersistentVolume"),
];

/// (API path, apiVersion, kind) of every list the audit reads whole. Pods are streamed and
/// counted by [`super::pods`] instead, which keeps the bare ones.
const WORKLOADS: &[(&str, &str, &str)] = &[
    ("/apis/apps/v1/deployments", "apps/v1", "Deployment"),
    ("/apis/apps/v1/statefulsets", "apps/v1", "StatefulSet"),
    ("/apis/apps/v1/replicasets", "apps/v1", "ReplicaSet"),
    (
        "/apis/autoscaling/v2/horizontalpodautoscalers",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
    ),
    (
        "/apis/policy/v1/poddisruptionbudgets",
        "policy/v1",
        "PodDisruptionBudget",
    ),
];

/// Workload kinds that exist only where their controller is installed (Argo Rollouts,
/// OpenKruise): listed when the API server serves them.
const OPTIONAL_WORKLOADS: &[(&str, &str, &str)] = &[
    (
        "/apis/argoproj.io/v1alpha1/rollouts",
        "argoproj.io/v1alpha1",
        "Rollout",
    ),
    (
        "/apis/apps.kruise.io/v1alpha1/clonesets",
        "apps.kruise.io/v1alpha1",
        "CloneSet",
    ),
    (
        "/apis/apps.kruise.io/v1beta1/statefulsets",
        "apps.kruise.io/v1beta1",
        "StatefulSet",
    ),
];
