//! One engine scenario file (`tests/fixtures/engine/*.yaml`, format in that folder's
//! README.md), read: shared by the engine's table test and the audit/webhook agreement test.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};
use spreadguard::engine::exceptions::Day;
use spreadguard::engine::policy::Policy;
use spreadguard::engine::storage::VolumeSet;
use spreadguard::engine::{Autoscaler, Autoscalers, Budget, Budgets, NodeInfo, Topology};
use spreadguard::load::Inventory;

use super::{compact_nodes, nodes_file, yaml_documents};

pub const SCENARIO_KEYS: &[&str] = &[
    "nodes",
    "nodesFile",
    "policy",
    "hpaMinReplicas",
    "hpas",
    "pdbs",
    "namespaceLabels",
    "peers",
    "today",
    "objects",
    "object",
    "oldObject",
    "expect",
];
pub const EXPECT_KEYS: &[&str] = &[
    "subject",
    "findings",
    "injected",
    "patch",
    "notices",
    "notes",
    "placement",
    "placementAsWritten",
];

/// One scenario file, read.
pub struct Scenario {
    pub topology: Topology,
    pub policy: Policy,
    pub object: Value,
    pub old_object: Option<Value>,
    pub hpa_min_replicas: Option<i64>,
    /// The HorizontalPodAutoscalers known (`hpas`, and one targeting the object for
    /// `hpaMinReplicas`), as objects.
    pub hpas: Vec<Value>,
    /// The PodDisruptionBudgets known (`pdbs`), as objects.
    pub pdbs: Vec<Value>,
    /// Labels of the workload's namespace, when the scenario knows them.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Other workloads, as `audit` sees them beside the object.
    pub peers: Option<Vec<Value>>,
    /// The day (UTC) the decision is made, for exceptions that expire.
    pub today: Option<Day>,
    pub expect: Map<String, Value>,
    /// The scenario's StorageClasses, claims and volumes (`objects`), as the webhook's caches
    /// would hold them; `None` without `objects`.
    pub volumes: Option<VolumeSet>,
    /// The raw `objects` (StorageClasses, claims, volumes, NodePools), for the audit.
    pub objects: Vec<Value>,
}

impl Scenario {
    pub fn autoscalers(&self) -> Autoscalers {
        Autoscalers::new(
            self.hpas.iter().map(|h| {
                Autoscaler::from_json(h).unwrap_or_else(|e| panic!("a scenario HPA: {e}"))
            }),
        )
    }

    pub fn budgets(&self) -> Budgets {
        Budgets::new(
            self.pdbs
                .iter()
                .map(|p| Budget::from_json(p).unwrap_or_else(|e| panic!("a scenario PDB: {e}"))),
        )
    }
}

/// An HPA that targets `object` with this `minReplicas`.
pub fn hpa_for(object: &Value, min_replicas: i64) -> Value {
    let field = |path: &str| object.pointer(path).cloned().unwrap_or(Value::Null);
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": format!("{}-hpa", field("/metadata/name").as_str().unwrap_or("x")),
                     "namespace": field("/metadata/namespace")},
        "spec": {
            "scaleTargetRef": {"apiVersion": field("/apiVersion"), "kind": field("/kind"),
                               "name": field("/metadata/name")},
            "minReplicas": min_replicas,
            "maxReplicas": min_replicas.max(10),
        }
    })
}

pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut docs = yaml_documents(&text)?;
    if docs.len() != 1 {
        return Err(format!("expected one YAML document, found {}", docs.len()));
    }
    let Value::Object(doc) = docs.remove(0) else {
        return Err("the scenario is not a map".into());
    };
    if let Some(bad) = doc.keys().find(|k| !SCENARIO_KEYS.contains(&k.as_str())) {
        return Err(format!("unknown scenario key {bad:?}"));
    }
    let policy = match doc.get("policy") {
        None => Policy::default(),
        Some(p) => {
            let yaml = serde_norway::to_string(p).map_err(|e| e.to_string())?;
            Policy::from_yaml(&yaml).map_err(|e| e.to_string())?
        }
    };
    let nodes: Option<Vec<NodeInfo>> = match (doc.get("nodes"), doc.get("nodesFile")) {
        (Some(_), Some(_)) => return Err("give nodes or nodesFile, not both".into()),
        (Some(Value::Array(specs)), None) => Some(
            specs
                .iter()
                .flat_map(compact_nodes)
                .map(|n| NodeInfo::from_json(&n))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
        ),
        (Some(_), None) => return Err("nodes must be a list".into()),
        (None, Some(file)) => Some(nodes_file(file.as_str().ok_or("nodesFile: a path")?)),
        (None, None) => None,
    };
    // StorageClasses, claims, volumes and NodePools, read by the loader the webhook's
    // caches and audit's files share.
    let objects: Vec<Value> = match doc.get("objects") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err("objects must be a list".into()),
    };
    let mut inventory = Inventory::default();
    for o in &objects {
        if !spreadguard::load::take(&mut inventory, o).map_err(|e| e.to_string())? {
            return Err(format!(
                "objects: a {}, not a StorageClass, claim, volume or NodePool",
                o.get("kind").and_then(Value::as_str).unwrap_or("?")
            ));
        }
    }
    let topology = match nodes {
        Some(nodes) => Topology::from_parts(nodes, inventory.pools, &policy),
        None => Topology::assumed(&policy),
    };
    let volumes = doc.get("objects").map(|_| inventory.volumes);
    let namespace_labels = match doc.get("namespaceLabels") {
        None => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("namespaceLabels: a map of strings: {e}"))?,
        ),
    };
    let peers = match doc.get("peers") {
        None => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(_) => return Err("peers must be a list of objects".into()),
    };
    let object = doc.get("object").cloned().ok_or("no object")?;
    let old_object = doc.get("oldObject").cloned();
    let hpa_min_replicas = match doc.get("hpaMinReplicas") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or("hpaMinReplicas: an integer")?),
    };
    let list = |key: &str| -> Result<Vec<Value>, String> {
        match doc.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(format!("{key}: a list of objects")),
        }
    };
    let mut hpas = list("hpas")?;
    if let Some(min) = hpa_min_replicas {
        hpas.push(hpa_for(&object, min));
    }
    let pdbs = list("pdbs")?;
    let today = match doc.get("today") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(Day::parse)
                .ok_or("today: a date, YYYY-MM-DD")?,
        ),
    };
    let Some(Value::Object(expect)) = doc.get("expect").cloned() else {
        return Err("no expect map".into());
    };
    if let Some(bad) = expect.keys().find(|k| !EXPECT_KEYS.contains(&k.as_str())) {
        return Err(format!("unknown expect key {bad:?}"));
    }
    for required in ["findings", "injected"] {
        if !expect.contains_key(required) {
            return Err(format!("expect.{required} is required (use [] for none)"));
        }
    }
    Ok(Scenario {
        topology,
        policy,
        object,
        old_object,
        hpa_min_replicas,
        hpas,
        pdbs,
        namespace_labels,
        peers,
        today,
        expect,
        volumes,
        objects,
    })
}
