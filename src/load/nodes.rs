//! Reading a nodes file (`kubectl get nodes -o yaml`: a NodeList, a List, or multi-document
//! Nodes) into the engine's [`NodeInfo`]. Beside the Nodes the file may carry the cluster's
//! other cluster-wide placement objects: Karpenter NodePools, StorageClasses and
//! PersistentVolumes (`kubectl get nodes,nodepools,storageclasses,pv -o yaml`).

use serde_json::Value;

use super::manifests::{self, ParseError};
use crate::engine::NodeInfo;
use crate::engine::storage::{ObjectError, VolumeSet};
use crate::engine::templates::NodeTemplate;
use crate::engine::topology::NodeError;

/// What placement reads of a cluster besides its workloads: the nodes, the node pools that
/// can add nodes, and the storage. Read from files or from a live cluster, the same way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    pub nodes: Vec<NodeInfo>,
    pub pools: Vec<NodeTemplate>,
    pub volumes: VolumeSet,
}

/// Takes one object into the inventory if it is a NodePool or a storage object: `Ok(true)`
/// when it was, `Ok(false)` for any other kind. The one place such objects are recognised,
/// for manifests, nodes files and `audit --cluster` alike.
pub fn take(inventory: &mut Inventory, object: &Value) -> Result<bool, ObjectError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "NodePool" && api.starts_with("karpenter.sh/") {
        if api != "karpenter.sh/v1" {
            return Err(ObjectError::new(
                "NodePool",
                object,
                format!("apiVersion {api}: only karpenter.sh/v1 is read"),
            ));
        }
        inventory.pools.push(NodeTemplate::from_node_pool(object)?);
        return Ok(true);
    }
    inventory.volumes.add_json(object)
}

/// Errors from reading a nodes file.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// The YAML or JSON does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A document is another kind.
    #[error(
        "document {anchor}: a {kind}, not a Node (or NodePool, StorageClass, PersistentVolume)"
    )]
    NotANode { anchor: String, kind: String },
    /// A Node whose fields cannot be read.
    #[error("document {anchor}")]
    BadNode {
        anchor: String,
        #[source]
        source: NodeError,
    },
    /// A NodePool, StorageClass or PersistentVolume whose fields cannot be read.
    #[error("document {anchor}")]
    BadObject {
        anchor: String,
        #[source]
        source: ObjectError,
    },
    /// Not a single Node: an empty file, or a list with no items. A cluster always has nodes,
    /// so this is a wrong file, not a topology to decide against.
    #[error("no Node in the file (expected `kubectl get nodes -o yaml` output)")]
    NoNodes,
}

/// The Nodes of a nodes file (see [`parse_inventory`] for what else it may hold).
pub fn parse_nodes(text: &str) -> Result<Vec<NodeInfo>, NodesError> {
    parse_inventory(text).map(|i| i.nodes)
}

/// Parses a nodes file. Every document must be a Node, a Karpenter NodePool, a
/// StorageClass or a PersistentVolume, and there must be at least one Node.
pub fn parse_inventory(text: &str) -> Result<Inventory, NodesError> {
    let json = text.trim_start().starts_with('{');
    let docs = manifests::parse(text, json)?;
    let mut inventory = Inventory::default();
    for doc in &docs {
        let kind = doc
            .value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("Node");
        if kind == "Node" {
            let node = NodeInfo::from_json(&doc.value).map_err(|source| NodesError::BadNode {
                anchor: doc.anchor(),
                source,
            })?;
            inventory.nodes.push(node);
            continue;
        }
        // Claims are namespaced: they belong with the manifests.
        let taken = kind != "PersistentVolumeClaim"
            && take(&mut inventory, &doc.value).map_err(|source| NodesError::BadObject {
                anchor: doc.anchor(),
                source,
            })?;
        if !taken {
            return Err(NodesError::NotANode {
                anchor: doc.anchor(),
                kind: kind.to_owned(),
            });
        }
    }
    if inventory.nodes.is_empty() {
        return Err(NodesError::NoNodes);
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_list_and_multi_document_forms_agree() {
        let list = "apiVersion: v1\nkind: NodeList\nitems:\n- metadata: {name: a, labels: {topology.kubernetes.io/zone: z1}}\n  spec: {taints: [{key: k, value: v, effect: NoSchedule}, {key: p, effect: PreferNoSchedule}]}\n- metadata: {name: b}\n  spec: {unschedulable: true}\n";
        let docs = "kind: Node\nmetadata: {name: a, labels: {topology.kubernetes.io/zone: z1}}\nspec: {taints: [{key: k, value: v, effect: NoSchedule}, {key: p, effect: PreferNoSchedule}]}\n---\nkind: Node\nmetadata: {name: b}\nspec: {unschedulable: true}\n";
        let a = parse_nodes(list).unwrap();
        assert_eq!(a, parse_nodes(docs).unwrap());
        assert_eq!(
            a[0].taints.len(),
            1,
            "PreferNoSchedule does not keep pods away"
        );
        assert!(a[1].unschedulable);
    }

    #[test]
    fn a_file_without_nodes_is_an_error() {
        for text in [
            "",
            "# nothing\n",
            "apiVersion: v1\nkind: NodeList\nitems: []\n",
            "{\"kind\": \"List\", \"items\": []}",
        ] {
            assert!(
                matches!(parse_nodes(text), Err(NodesError::NoNodes)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn other_kinds_are_rejected_with_their_position() {
        let err =
            parse_nodes("kind: Node\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: p}\n")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "document #1: a Pod, not a Node (or NodePool, StorageClass, PersistentVolume)"
        );
    }

    #[test]
    fn node_pools_and_storage_may_stand_beside_the_nodes() {
        let text = "kind: Node\nmetadata: {name: a, labels: {topology.kubernetes.io/zone: z1}}\n---\napiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: general}\nspec: {template: {spec: {requirements: [{key: topology.kubernetes.io/zone, operator: In, values: [z2]}]}}}\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: gp3}\nprovisioner: ebs.csi.aws.com\n";
        let inv = parse_inventory(text).unwrap();
        assert_eq!(inv.nodes.len(), 1);
        assert_eq!(inv.pools.len(), 1);
        assert_eq!(inv.pools[0].name, "general");
        assert!(inv.volumes.classes.contains_key("gp3"));
        let beta = "kind: Node\nmetadata: {name: a}\n---\napiVersion: karpenter.sh/v1beta1\nkind: NodePool\nmetadata: {name: old}\n";
        let err = parse_nodes(beta).unwrap_err();
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("NodePool old: apiVersion karpenter.sh/v1beta1: only karpenter.sh/v1 is read")
        );
        let claim = "kind: Node\nmetadata: {name: a}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c, namespace: n}\n";
        assert!(
            matches!(parse_nodes(claim), Err(NodesError::NotANode { .. })),
            "claims belong with the manifests"
        );
    }
}
