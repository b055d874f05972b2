//! `spreadguard audit --cluster`: the workloads, autoscalers, disruption budgets, nodes,
//! namespace labels, node pools and storage of a live cluster, read once (list only) and
//! judged by the same engine as manifest files.
//!
//! Claims and volumes can number tens of thousands: they are reduced page by page as they
//! arrive (through the same [`crate::load::take`] that reads them from files), never held
//! whole. So are pods ([`super::pods`]).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use kube::Client;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::zone_loss::{Actual, BelowBudget, BudgetView, WorkloadRef, ZoneSummary};
use crate::engine::WorkloadKind;
use crate::engine::budget::is_budget;
use crate::engine::policy::Mode;
use crate::engine::policy::Policy;
use crate::engine::rules;
use crate::engine::templates::NodeTemplate;
use crate::engine::workload::controlled;
use crate::engine::{Budget, Budgets, NodeInfo, Topology};
use crate::load::{Inventory, Sourced};

use super::lists::{NAMESPACES, NODE_POOLS, NODES, PODS, STORAGE, workload_lists};
use super::watched::Watched;
use super::{Live, Report, pods};

/// The whole report over a live cluster, as `audit --cluster` prints it and `serve
/// --reports` writes it: its objects listed, its pods counted as they stream (`progress`
/// is told how many so far, and of how many when known), judged against its own Nodes,
/// NodePools and storage. A nodes file (`nodes_file`) replaces the cluster's Nodes and
/// NodePools, and adds its storage objects to the cluster's.
pub async fn report(
    client: &Client,
    policy: &Policy,
    nodes_file: Option<Inventory>,
    progress: impl FnMut(usize, Option<u64>),
) -> anyhow::Result<Report> {
    report_from(&Source::Lists(client), policy, nodes_file, progress).await
}

/// [`report`] over what `source` holds: the API server's lists, or the watches of
/// `serve --reports`.
pub async fn report_from(
    source: &Source<'_>,
    policy: &Policy,
    nodes_file: Option<Inventory>,
    progress: impl FnMut(usize, Option<u64>),
) -> anyhow::Result<Report> {
    let mut inputs = load_from(source, policy).await?;
    let mut inventory = std::mem::take(&mut inputs.inventory);
    if let Some(file) = nodes_file {
        inventory.nodes = file.nodes;
        inventory.pools = file.pools;
        inventory.volumes.extend(file.volumes);
    }
    let topology = Topology::from_parts(
        std::mem::take(&mut inventory.nodes),
        std::mem::take(&mut inventory.pools),
        policy,
    );
    let owners = pods::Owners {
        zones: topology.summary().zones.into_keys().collect(),
        node_zone: HashMap::new(),
        replica_sets: pods::Owners::replica_sets_of(&inputs.docs),
        budgets: Budgets::new(
            inputs
                .docs
                .iter()
                .filter(|d| is_budget(&d.value))
                .filter_map(|d| Budget::from_json(&d.value).ok()),
        ),
    }
    .with_nodes(&topology);
    let mut counted = match source {
        Source::Lists(client) => pods::count(client, &owners, progress).await?,
        Source::Watched(watched) => pods::count_each(&owners, |each| watched.each(PODS, each))?,
    };
    inputs.docs.append(&mut counted.bare);
    let mut report = Report::build_live(
        &inputs.docs,
        &topology,
        policy,
        &Live {
            namespaces: &inputs.namespaces,
            selected_budgets: &counted.selected_budgets,
        },
        Some(&inventory.volumes),
    );
    drop(inputs);
    attach_zone_loss(&mut report, &counted, policy);
    Ok(report)
}

/// Where the cluster's objects are read from.
pub enum Source<'a> {
    /// Paginated lists, read once.
    Lists(&'a Client),
    /// The watches `serve --reports` keeps.
    Watched(&'a Watched),
}

impl Source<'_> {
    /// Each object of the list at `path`, as the raw JSON of a list item.
    async fn each(
        &self,
        path: &str,
        each: &mut (dyn FnMut(&RawValue) -> anyhow::Result<()> + Send),
    ) -> anyhow::Result<()> {
        match self {
            Source::Lists(client) => list_each(client, path, each).await,
            Source::Watched(watched) => watched.each(path, each),
        }
    }
}

/// What an audit of a live cluster judges.
#[derive(Debug, Default)]
pub struct ClusterInputs {
    pub docs: Vec<Sourced>,
    /// Nodes, NodePools, StorageClasses, claims and volumes.
    pub inventory: Inventory,
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
}

/// The cluster's Karpenter NodePools as node templates; none when `karpenter.sh/v1` is not
/// served.
pub async fn node_pools(client: &Client) -> anyhow::Result<Vec<NodeTemplate>> {
    if !crate::cluster::node_pools::served(client)
        .await
        .context("discovering karpenter.sh/v1")?
    {
        return Ok(Vec::new());
    }
    let mut inventory = Inventory::default();
    list_each(client, NODE_POOLS, &mut |raw| {
        let item = typed(raw, "karpenter.sh/v1", "NodePool")?;
        crate::load::take(&mut inventory, &item).map_err(anyhow::Error::msg)?;
        Ok(())
    })
    .await?;
    Ok(inventory.pools)
}

/// Lists everything the audit needs, page by page: the built-in kinds, the optional ones
/// where installed, and the kinds the policy declares.
pub async fn load(client: &Client, policy: &Policy) -> anyhow::Result<ClusterInputs> {
    load_from(&Source::Lists(client), policy).await
}

/// [`load`] from `source`.
pub async fn load_from(source: &Source<'_>, policy: &Policy) -> anyhow::Result<ClusterInputs> {
    let mut inputs = ClusterInputs::default();
    let nodes = &mut inputs.inventory.nodes;
    source
        .each(NODES, &mut |raw| {
            let node = typed(raw, "v1", "Node")?;
            nodes.push(NodeInfo::from_json(&node).context("reading a Node")?);
            Ok(())
        })
        .await?;
    inputs.inventory.pools = match source {
        Source::Lists(client) => node_pools(client).await?,
        Source::Watched(_) => {
            let mut inventory = Inventory::default();
            source
                .each(NODE_POOLS, &mut |raw| {
                    let item = typed(raw, "karpenter.sh/v1", "NodePool")?;
                    crate::load::take(&mut inventory, &item).map_err(anyhow::Error::msg)?;
                    Ok(())
                })
                .await?;
            inventory.pools
        }
    };
    for (path, api_version, kind) in STORAGE {
        let inventory = &mut inputs.inventory;
        source
            .each(path, &mut |raw| {
                let item = typed(raw, api_version, kind)?;
                crate::load::take(inventory, &item).map_err(anyhow::Error::msg)?;
                Ok(())
            })
            .await?;
    }
    let namespaces = &mut inputs.namespaces;
    source
        .each(NAMESPACES, &mut |raw| {
            let ns = typed(raw, "v1", "Namespace")?;
            let name = ns
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let labels = ns
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(crate::engine::labels::string_map)
                .unwrap_or_default();
            namespaces.insert(name, labels);
            Ok(())
        })
        .await?;
    for (path, api_version, kind, optional) in workload_lists(policy) {
        let resource = path.rsplit('/').next().unwrap_or_default();
        // Workloads are decoded as admission decodes a CREATE: without containers, status
        // and the rest that no decision reads (most of a real Deployment's bytes).
        let pruned = WorkloadKind::from_type(&api_version, &kind, policy);
        let docs = &mut inputs.docs;
        let listed = source
            .each(&path, &mut |raw| {
                let mut object = match pruned {
                    Some(k) => crate::admission::prune::parse_value(raw.get(), Some(k)),
                    None => serde_json::from_str(raw.get()),
                }
                .with_context(|| format!("reading a listed {kind}"))?;
                with_type(&mut object, &api_version, &kind);
                if controlled(&object, policy) {
                    object = identity_only(object);
                }
                let ns = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                docs.push(Sourced::new(format!("{resource}/{ns}/{name}"), object));
                Ok(())
            })
            .await;
        match listed {
            Ok(()) => {}
            Err(e) if optional && not_served(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(inputs)
}

/// What the engine reads of an object whose controller is judged instead: enough to skip
/// it (and say why) and to map a ReplicaSet's pods to its Deployment. 10,000 Deployments
/// come with as many ReplicaSets (more while they roll out): keeping those whole would
/// double what the audit holds.
fn identity_only(mut object: Value) -> Value {
    let mut kept = serde_json::Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = object.get_mut(key) {
            kept.insert(key.to_owned(), v.take());
        }
    }
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        let meta: serde_json::Map<String, Value> = [
            "name",
            "generateName",
            "namespace",
            "uid",
            "deletionTimestamp",
            "ownerReferences",
        ]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), meta.remove(k)?)))
        .collect();
        kept.insert("metadata".to_owned(), Value::Object(meta));
    }
    Value::Object(kept)
}

/// A listed item decoded whole, with its `apiVersion` and `kind`.
fn typed(raw: &RawValue, api_version: &str, kind: &str) -> anyhow::Result<Value> {
    let mut object =
        serde_json::from_str(raw.get()).with_context(|| format!("reading a listed {kind}"))?;
    with_type(&mut object, api_version, kind);
    Ok(object)
}

/// Sets the `apiVersion` and `kind` the API server leaves out of list items.
fn with_type(object: &mut Value, api_version: &str, kind: &str) {
    if let Some(map) = object.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::from(api_version));
        map.entry("kind").or_insert_with(|| Value::from(kind));
    }
}

/// A page of a list, its items left undecoded.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

#[derive(Default, Deserialize)]
struct PageMeta {
    #[serde(default, rename = "continue")]
    next: Option<String>,
}

/// Each item of a list as its raw JSON, page by page; a page is dropped before the next is
/// asked for.
async fn list_each(
    client: &Client,
    path: &str,
    each: &mut (dyn FnMut(&RawValue) -> anyhow::Result<()> + Send),
) -> anyhow::Result<()> {
    let mut next: Option<String> = None;
    loop {
        let mut uri = format!("{path}?limit=500");
        if let Some(token) = &next {
            uri.push_str("&continue=");
            uri.push_str(&pods::percent_encode(token));
        }
        let request = axum::http::Request::get(&uri)
            .body(Vec::new())
            .context("building a list request")?;
        let text = client
            .request_text(request)
            .await
            .with_context(|| format!("listing {path}"))?;
        let page: Page<'_> =
            serde_json::from_str(&text).with_context(|| format!("reading a page of {path}"))?;
        for raw in page.items {
            each(raw)?;
        }
        next = page.metadata.next.filter(|t| !t.is_empty());
        if next.is_none() {
            return Ok(());
        }
    }
}

/// Whether a list failed because the API server does not serve the resource (its
/// controller is not installed).
fn not_served(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<kube::Error>(), Some(kube::Error::Api(status)) if status.code == 404)
    })
}

/// Sets `results[].actual` from the counted pods (with the budget's view of a zone drain),
/// adds HA022 where the ready pods lie worse than the constraints promise, and builds the
/// per-zone summary.
fn attach_zone_loss(report: &mut Report, pods: &pods::PodCounts, policy: &Policy) {
    let mut summary: BTreeMap<String, ZoneSummary> = pods
        .zones
        .iter()
        .map(|z| (z.clone(), ZoneSummary::default()))
        .collect();
    for e in &mut report.results {
        let ns = e.namespace.as_deref().unwrap_or_default();
        let mut actual = match pods.get(ns, &e.kind, &e.name) {
            Some(t) => Actual::from_tally(&pods.zones, t),
            None => Actual::none(&pods.zones),
        };
        let replicas = e.placement_as_written.as_ref().map(|p| p.replicas);
        if let ([budget], Some(replicas)) = (e.disruption_budgets.as_slice(), replicas) {
            actual.budget = Some(BudgetView::new(budget, replicas, &actual));
        }
        if e.mode != Mode::Off
            && let Some(placement) = &e.placement_as_written
        {
            let ready: Vec<(&str, i64)> = actual
                .zones
                .iter()
                .map(|(z, n)| (z.as_str(), i64::from(*n)))
                .collect();
            if let Some(mut f) = rules::zone_loss::running(placement, &ready)
                && let Some(severity) = policy.severity_for(f.rule, f.severity)
            {
                f.severity = severity;
                *report.summary.findings.entry(severity).or_insert(0) += 1;
                e.findings.push(f);
            }
        }
        if let Some(b) = &actual.budget {
            for (zone, drain) in &b.zones {
                if drain.below_budget && drain.left > 0 {
                    summary
                        .entry(zone.clone())
                        .or_default()
                        .below_budget
                        .push(BelowBudget {
                            kind: e.kind.clone(),
                            namespace: e.namespace.clone(),
                            name: e.name.clone(),
                            budget: b.name.clone(),
                            left: drain.left,
                            desired_healthy: b.desired_healthy,
                        });
                }
            }
        }
        for (zone, n) in &actual.zones {
            if *n == 0 {
                continue;
            }
            let s = summary.entry(zone.clone()).or_default();
            s.workloads += 1;
            s.ready_pods += u64::from(*n);
            if *n == actual.ready {
                s.lose_all.push(WorkloadRef {
                    kind: e.kind.clone(),
                    namespace: e.namespace.clone(),
                    name: e.name.clone(),
                    ready: *n,
                });
            }
        }
        e.actual = Some(actual);
    }
    report.zone_loss = Some(summary);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::workload::{Classified, Skip, classify};

    fn replica_set(owner_api: &str, owner_kind: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d9", "namespace": "shop", "uid": "u1",
                "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": owner_api, "kind": owner_kind, "name": "web",
                    "uid": "u0", "controller": true}]},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "x"}]}}},
            "status": {"replicas": 1},
        })
    }

    #[test]
    fn only_objects_whose_controller_is_judged_are_kept_as_identity() {
        let policy = Policy::default();
        let owned = replica_set("apps/v1", "Deployment");
        assert!(controlled(&owned, &policy));
        // A tenant's ConfigMap as controller: judged like a bare ReplicaSet, so kept whole.
        assert!(!controlled(&replica_set("v1", "ConfigMap"), &policy));
        let reduced = identity_only(owned.clone());
        assert_eq!(
            reduced,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-5d9", "namespace": "shop", "uid": "u1",
                    "ownerReferences": owned["metadata"]["ownerReferences"]}})
        );
        // The engine skips the reduced object for the reason it skips the whole one, and
        // the pods of the ReplicaSet still map to its Deployment.
        assert!(matches!(
            classify(&reduced, &policy),
            Classified::Skip(Skip::Controlled)
        ));
        let owners = pods::Owners::replica_sets_of(&[Sourced::new("rs", reduced)]);
        assert_eq!(
            owners.get(&("shop".to_owned(), "web-5d9".to_owned())),
            Some(&("Deployment".to_owned(), "web".to_owned()))
        );
    }
}
