//! The running Pods of a live cluster, counted per workload and zone as they stream in.
//!
//! `audit --cluster` must cope with 150,000 pods without holding them: each page of the
//! paginated list (`limit`/`continue`) is read into a reduced view (owner, node, phase,
//! readiness: every other field is skipped by the decoder) and counted, and the page is
//! dropped before the next one is requested. Only bare Pods (no controller) are kept whole,
//! because they are workloads the engine judges.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use kube::Client;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::engine::Budgets;
use crate::load::Sourced;

/// Pods per page: large pages cost fewer round trips, and the API server caps them anyway.
pub const PAGE_SIZE: usize = 500;

/// Which workload owns a pod: `(namespace, kind, name)` of its controller, following a
/// ReplicaSet to its Deployment.
pub type WorkloadKey = (String, String, String);

/// The pods of one workload, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Ready pods per zone, indexed as [`PodCounts::zones`]; the last slot counts ready pods
    /// on nodes without a zone (or nodes the topology does not know).
    pub ready: Vec<u32>,
    /// Pods that are scheduled and running or starting, but not ready.
    pub not_ready: u32,
    /// Pods not bound to a node yet (Pending).
    pub unscheduled: u32,
}

/// Everything counted over the cluster's pods.
#[derive(Debug, Default)]
pub struct PodCounts {
    /// Zone names, in the order of [`Tally::ready`].
    pub zones: Vec<String>,
    pub per_workload: HashMap<WorkloadKey, Tally>,
    /// Pods listed (every phase).
    pub listed: usize,
    /// Bare Pods (no controller), whole: the engine judges them as workloads.
    pub bare: Vec<Sourced>,
    /// `(namespace, name)` of the PodDisruptionBudgets that select a running pod (HA016
    /// looks for budgets that select nothing).
    pub selected_budgets: HashSet<(String, String)>,
}

impl PodCounts {
    /// The tally of one workload, if any of its pods runs.
    pub fn get(&self, namespace: &str, kind: &str, name: &str) -> Option<&Tally> {
        // A borrowed lookup without building three Strings per workload would need a
        // custom key; workloads number in thousands, not in hundreds of thousands.
        self.per_workload
            .get(&(namespace.to_owned(), kind.to_owned(), name.to_owned()))
    }
}

/// What counting needs to know beforehand: the zone of each node, and which Deployment owns
/// each ReplicaSet.
#[derive(Debug, Default)]
pub struct Owners {
    /// Zone names; a node's zone is an index into it.
    pub zones: Vec<String>,
    pub node_zone: HashMap<String, usize>,
    /// `(namespace, ReplicaSet)` → its controller `(kind, name)` (a Deployment, say).
    pub replica_sets: HashMap<(String, String), (String, String)>,
    /// The cluster's disruption budgets, to note which select a running pod.
    pub budgets: Budgets,
}

impl Owners {
    /// Fills `node_zone` from the topology's nodes and zone key.
    pub fn with_nodes(mut self, topology: &crate::engine::Topology) -> Owners {
        let key = topology.zone_key().to_owned();
        for node in topology.nodes() {
            if let Some(i) = node
                .labels
                .get(&key)
                .and_then(|z| self.zones.iter().position(|k| k == z))
            {
                self.node_zone.insert(node.name, i);
            }
        }
        self
    }

    /// The ReplicaSets among `docs` that a controller owns, mapped to it.
    pub fn replica_sets_of(docs: &[Sourced]) -> HashMap<(String, String), (String, String)> {
        let mut out = HashMap::new();
        for d in docs {
            let v = &d.value;
            if v.get("kind").and_then(Value::as_str) != Some("ReplicaSet") {
                continue;
            }
            let meta = |f: &str| {
                v.pointer(&format!("/metadata/{f}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let controller = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true));
            if let Some(o) = controller {
                let field = |f: &str| o.get(f).and_then(Value::as_str).unwrap_or_default();
                out.insert(
                    (meta("namespace"), meta("name")),
                    (field("kind").to_owned(), field("name").to_owned()),
                );
            }
        }
        out
    }
}

// === the reduced pod ===

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default, rename = "continue")]
    next: Option<String>,
    remaining_item_count: Option<u64>,
}

/// A pod, reduced to what placement needs; the decoder skips every other field.
#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: PodMeta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMeta {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    owner_references: Vec<OwnerRef>,
    deletion_timestamp: Option<String>,
    /// For the disruption budgets that select the pod.
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct OwnerRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
}

#[derive(Default, Deserialize)]
struct PodStatus {
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

/// How one pod counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Running and Ready on a node (the zone index; `None`: a node without a known zone).
    Ready(Option<usize>),
    NotReady,
    Unscheduled,
    /// Finished, failed or being deleted: not part of what runs.
    Gone,
}

impl Pod {
    fn state(&self, owners: &Owners) -> State {
        let phase = self.status.phase.as_deref().unwrap_or("Pending");
        if self.metadata.deletion_timestamp.is_some() || matches!(phase, "Succeeded" | "Failed") {
            return State::Gone;
        }
        let Some(node) = self.spec.node_name.as_deref().filter(|n| !n.is_empty()) else {
            return State::Unscheduled;
        };
        let ready = phase == "Running"
            && self
                .status
                .conditions
                .iter()
                .any(|c| c.kind == "Ready" && c.status == "True");
        if ready {
            State::Ready(owners.node_zone.get(node).copied())
        } else {
            State::NotReady
        }
    }

    /// The workload the pod belongs to; `None` for a bare pod.
    fn workload(&self, owners: &Owners) -> Option<WorkloadKey> {
        let ns = &self.metadata.namespace;
        let owner = self
            .metadata
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true))?;
        if owner.kind == "ReplicaSet"
            && let Some((kind, name)) = owners.replica_sets.get(&(ns.clone(), owner.name.clone()))
        {
            return Some((ns.clone(), kind.clone(), name.clone()));
        }
        Some((ns.clone(), owner.kind.clone(), owner.name.clone()))
    }
}

/// Counts one page's pods into `counts`; bare pods are kept whole.
fn count_page(items: &[&RawValue], owners: &Owners, counts: &mut PodCounts) -> anyhow::Result<()> {
    let slots = owners.zones.len() + 1;
    for raw in items {
        let pod: Pod = serde_json::from_str(raw.get()).context("reading a listed pod")?;
        counts.listed += 1;
        let state = pod.state(owners);
        if let Some(labels) = &pod.metadata.labels
            && !owners.budgets.is_empty()
        {
            for b in owners.budgets.selecting(&pod.metadata.namespace, labels) {
                let key = (b.namespace.clone(), b.name.clone());
                counts.selected_budgets.insert(key);
            }
        }
        let key = match pod.workload(owners) {
            Some(key) => key,
            None => {
                let mut value: Value = serde_json::from_str(raw.get())?;
                if let Some(map) = value.as_object_mut() {
                    map.entry("apiVersion").or_insert_with(|| "v1".into());
                    map.entry("kind").or_insert_with(|| "Pod".into());
                }
                let name = value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let ns = pod.metadata.namespace.clone();
                counts
                    .bare
                    .push(Sourced::new(format!("pods/{ns}/{name}"), value));
                (ns, "Pod".to_owned(), name)
            }
        };
        if state == State::Gone {
            continue;
        }
        let tally = counts.per_workload.entry(key).or_insert_with(|| Tally {
            ready: vec![0; slots],
            ..Tally::default()
        });
        match state {
            State::Ready(zone) => tally.ready[zone.unwrap_or(slots - 1)] += 1,
            State::NotReady => tally.not_ready += 1,
            State::Unscheduled => tally.unscheduled += 1,
            State::Gone => {}
        }
    }
    Ok(())
}

/// Lists every pod of the cluster page by page and counts it; `progress` is told the pods
/// listed so far and, when the API server says, how many there are in all.
pub async fn count(
    client: &Client,
    owners: &Owners,
    mut progress: impl FnMut(usize, Option<u64>),
) -> anyhow::Result<PodCounts> {
    let mut counts = PodCounts {
        zones: owners.zones.clone(),
        ..PodCounts::default()
    };
    let mut next: Option<String> = None;
    loop {
        let mut uri = format!("/api/v1/pods?limit={PAGE_SIZE}");
        if let Some(token) = &next {
            uri.push_str("&continue=");
            uri.push_str(&percent_encode(token));
        }
        let request = axum::http::Request::get(&uri)
            .body(Vec::new())
            .context("building a list request")?;
        let text = client
            .request_text(request)
            .await
            .context("listing /api/v1/pods")?;
        let page: Page<'_> = serde_json::from_str(&text).context("reading a page of pods")?;
        count_page(&page.items, owners, &mut counts)?;
        progress(
            counts.listed,
            page.metadata
                .remaining_item_count
                .map(|r| r + counts.listed as u64),
        );
        next = page.metadata.next.filter(|t| !t.is_empty());
        if next.is_none() {
            return Ok(counts);
        }
    }
}

/// Counts the pods `feed` hands over one by one (`serve --reports`' pod watch).
pub fn count_each(
    owners: &Owners,
    feed: impl FnOnce(&mut (dyn FnMut(&RawValue) -> anyhow::Result<()> + Send)) -> anyhow::Result<()>,
) -> anyhow::Result<PodCounts> {
    let mut counts = PodCounts {
        zones: owners.zones.clone(),
        ..PodCounts::default()
    };
    feed(&mut |raw| count_page(&[raw], owners, &mut counts))?;
    Ok(counts)
}

/// Whether a pod (as JSON) has a controller: it is then counted into its workload, and
/// only what [`reduced`] keeps is read of it.
pub fn has_controller(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        })
}

/// A pod with a controller reduced to what counting reads (the fields of `Pod` above): a
/// watch can keep a cluster's pods at a tenth of their size.
pub fn reduced(pod: &Value) -> Value {
    let at = |p: &str| pod.pointer(p).cloned().unwrap_or(Value::Null);
    let ready: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .map(|c| serde_json::json!({"type": "Ready", "status": c.get("status")}))
        .collect();
    let controller: Vec<Value> = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|o| {
            serde_json::json!({"kind": o.get("kind"), "name": o.get("name"), "controller": true})
        })
        .collect();
    let mut metadata = serde_json::json!({
        "namespace": at("/metadata/namespace"),
        "name": at("/metadata/name"),
        "ownerReferences": controller,
    });
    for key in ["labels", "deletionTimestamp"] {
        if let Some(v) = pod
            .pointer(&format!("/metadata/{key}"))
            .filter(|v| !v.is_null())
        {
            metadata[key] = v.clone();
        }
    }
    let mut out =
        serde_json::json!({"metadata": metadata, "spec": {}, "status": {"conditions": ready}});
    if let Some(node) = pod.pointer("/spec/nodeName").filter(|v| !v.is_null()) {
        out["spec"]["nodeName"] = node.clone();
    }
    if let Some(phase) = pod.pointer("/status/phase").filter(|v| !v.is_null()) {
        out["status"]["phase"] = phase.clone();
    }
    out
}

/// Continue tokens are base64: only `+`, `/` and `=` need escaping in a query.
pub(crate) fn percent_encode(token: &str) -> String {
    token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owners() -> Owners {
        Owners {
            zones: vec!["a".into(), "b".into()],
            node_zone: [("n-a".to_owned(), 0), ("n-b".to_owned(), 1)].into(),
            replica_sets: [(
                ("shop".to_owned(), "web-5d9".to_owned()),
                ("Deployment".to_owned(), "web".to_owned()),
            )]
            .into(),
            budgets: Budgets::default(),
        }
    }

    fn pod(
        name: &str,
        owner: Option<(&str, &str)>,
        node: Option<&str>,
        phase: &str,
        ready: bool,
    ) -> String {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "shop", "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "app", "image": "x"}]},
            "status": {"phase": phase, "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if let Some((kind, owner)) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]);
        }
        if let Some(node) = node {
            p["spec"]["nodeName"] = json!(node);
        }
        p.to_string()
    }

    #[test]
    fn a_reduced_pod_counts_as_the_whole_one() {
        let owners = owners();
        for (owner, node, phase, ready) in [
            (
                Some(("ReplicaSet", "web-5d9")),
                Some("n-a"),
                "Running",
                true,
            ),
            (
                Some(("ReplicaSet", "web-5d9")),
                Some("n-b"),
                "Running",
                false,
            ),
            (Some(("StatefulSet", "db")), None, "Pending", false),
            (Some(("Job", "batch")), Some("n-a"), "Succeeded", false),
        ] {
            let whole: Value = serde_json::from_str(&pod("p", owner, node, phase, ready)).unwrap();
            assert!(has_controller(&whole));
            let small = reduced(&whole);
            let count = |v: &Value| {
                let raw = serde_json::value::to_raw_value(v).unwrap();
                let mut c = PodCounts {
                    zones: owners.zones.clone(),
                    ..PodCounts::default()
                };
                count_page(&[&raw], &owners, &mut c).unwrap();
                c.per_workload
            };
            assert_eq!(count(&small), count(&whole), "{whole}");
        }
        let bare: Value =
            serde_json::from_str(&pod("p", None, Some("n-a"), "Running", true)).unwrap();
        assert!(!has_controller(&bare));
    }

    #[test]
    fn pods_count_under_their_workload_by_zone_and_state() {
        let pods = [
            pod(
                "web-1",
                Some(("ReplicaSet", "web-5d9")),
                Some("n-a"),
                "Running",
                true,
            ),
            pod(
                "web-2",
                Some(("ReplicaSet", "web-5d9")),
                Some("n-a"),
                "Running",
                true,
            ),
            pod(
                "web-3",
                Some(("ReplicaSet", "web-5d9")),
                Some("n-b"),
                "Running",
                false,
            ),
            pod(
                "web-4",
                Some(("ReplicaSet", "web-5d9")),
                None,
                "Pending",
                false,
            ),
            pod(
                "web-5",
                Some(("ReplicaSet", "web-5d9")),
                Some("n-x"),
                "Running",
                true,
            ),
            pod(
                "web-6",
                Some(("ReplicaSet", "web-5d9")),
                Some("n-b"),
                "Succeeded",
                false,
            ),
            pod(
                "db-0",
                Some(("StatefulSet", "db")),
                Some("n-b"),
                "Running",
                true,
            ),
            pod(
                "orphan-rs-1",
                Some(("ReplicaSet", "solo")),
                Some("n-a"),
                "Running",
                true,
            ),
            pod("bare", None, Some("n-b"), "Running", true),
        ];
        let raws: Vec<Box<RawValue>> = pods
            .iter()
            .map(|p| RawValue::from_string(p.clone()).unwrap())
            .collect();
        let refs: Vec<&RawValue> = raws.iter().map(|b| b.as_ref()).collect();
        let owners = owners();
        let mut counts = PodCounts::default();
        count_page(&refs, &owners, &mut counts).unwrap();
        assert_eq!(counts.listed, 9);
        let web = counts.get("shop", "Deployment", "web").unwrap();
        assert_eq!(
            (web.ready.clone(), web.not_ready, web.unscheduled),
            (vec![2, 0, 1], 1, 1),
            "n-x is not a known node: its ready pod counts as unzoned; Succeeded is not counted"
        );
        assert_eq!(
            counts.get("shop", "StatefulSet", "db").unwrap().ready,
            [0, 1, 0]
        );
        assert_eq!(
            counts.get("shop", "ReplicaSet", "solo").unwrap().ready,
            [1, 0, 0]
        );
        assert_eq!(counts.get("shop", "Pod", "bare").unwrap().ready, [0, 1, 0]);
        assert_eq!(counts.bare.len(), 1);
        assert_eq!(counts.bare[0].source, "pods/shop/bare");
        assert_eq!(counts.bare[0].value["kind"], "Pod");
    }
}
