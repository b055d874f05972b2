//! `spreadguard audit --cluster`: the workloads, autoscalers, nodes and namespace labels of a
//! live cluster, read once (list only) and judged by the same engine as manifest files.
//!
//! `serve --ui` scans the cluster through the same functions ([`load_workloads`],
//! [`owners`], [`report`]), with the nodes and namespace labels of its own caches.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use kube::Client;
use serde_json::Value;

use super::pods::{self, PodCounts};
use super::{Report, zone_loss};
use crate::engine::policy::Policy;
use crate::engine::{NodeInfo, Topology};
use crate::load::Sourced;

/// What an audit of a live cluster judges.
#[derive(Debug, Default)]
pub struct ClusterInputs {
    pub docs: Vec<Sourced>,
    pub nodes: Vec<NodeInfo>,
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
}

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
];

/// Lists everything the audit needs, page by page.
pub async fn load(client: &Client) -> anyhow::Result<ClusterInputs> {
    let mut inputs = ClusterInputs::default();
    for node in list(client, "/api/v1/nodes", "v1", "Node").await? {
        inputs
            .nodes
            .push(NodeInfo::from_json(&node).map_err(anyhow::Error::msg)?);
    }
    for ns in list(client, "/api/v1/namespaces", "v1", "Namespace").await? {
        let name = ns
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let labels = ns
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        inputs.namespaces.insert(name, labels);
    }
    inputs.docs = load_workloads(client).await?;
    Ok(inputs)
}

/// Lists the workloads and autoscalers (not the pods), page by page.
pub async fn load_workloads(client: &Client) -> anyhow::Result<Vec<Sourced>> {
    let mut docs = Vec::new();
    for (path, api_version, kind) in WORKLOADS {
        let resource = path.rsplit('/').next().unwrap_or_default();
        for object in list(client, path, api_version, kind).await? {
            let ns = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            docs.push(Sourced::new(format!("{resource}/{ns}/{name}"), object));
        }
    }
    Ok(docs)
}

/// What counting the pods needs: the zone of each node and the owner of each ReplicaSet.
pub fn owners(topology: &Topology, docs: &[Sourced]) -> pods::Owners {
    pods::Owners {
        zones: topology.summary().zones.into_keys().collect(),
        node_zone: HashMap::new(),
        replica_sets: pods::Owners::replica_sets_of(docs),
    }
    .with_nodes(topology)
}

/// Judges a cluster's workloads; with the counted pods (when they could be read) the bare
/// Pods are judged too and every result gets its actual placement and the zone-loss summary.
pub fn report(
    mut docs: Vec<Sourced>,
    namespaces: &HashMap<String, BTreeMap<String, String>>,
    topology: &Topology,
    policy: &Policy,
    pods: Option<PodCounts>,
) -> Report {
    let mut pods = pods;
    if let Some(counted) = &mut pods {
        docs.append(&mut counted.bare);
    }
    let mut report = Report::build_with_namespaces(&docs, topology, policy, Some(namespaces));
    if let Some(counted) = &pods {
        zone_loss::attach(&mut report, counted);
    }
    report
}

/// All items of a list, with the `apiVersion` and `kind` the API server leaves out of items.
async fn list(
    client: &Client,
    path: &str,
    api_version: &str,
    kind: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut uri = format!("{path}?limit=500");
        if let Some(token) = &next {
            uri.push_str("&continue=");
            uri.push_str(&percent_encode(token));
        }
        let request = axum::http::Request::get(&uri)
            .body(Vec::new())
            .context("building a list request")?;
        let page: Value = client
            .request(request)
            .await
            .with_context(|| format!("listing {path}"))?;
        for mut item in page
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(map) = item.as_object_mut() {
                map.entry("apiVersion")
                    .or_insert_with(|| Value::from(api_version));
                map.entry("kind").or_insert_with(|| Value::from(kind));
            }
            items.push(item);
        }
        next = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if next.is_none() {
            return Ok(items);
        }
    }
}

/// Continue tokens are base64: only `+`, `/` and `=` need escaping in a query.
pub(crate) fn percent_encode(token: &str) -> String {
    token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}
