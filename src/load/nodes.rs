//! Reading a nodes file (`kubectl get nodes -o yaml`: a NodeList, a List, or multi-document
//! Nodes) into the engine's [`NodeInfo`].

use super::manifests::{self, ParseError};
use crate::engine::NodeInfo;
use crate::engine::topology::NodeError;

/// Errors from reading a nodes file.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// The YAML or JSON does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A document is another kind.
    #[error("document {anchor}: a {kind}, not a Node")]
    NotANode { anchor: String, kind: String },
    /// A Node whose fields cannot be read.
    #[error("document {anchor}")]
    BadNode {
        anchor: String,
        #[source]
        source: NodeError,
    },
    /// Not a single Node: an empty file, or a list with no items. A cluster always has nodes,
    /// so this is a wrong file, not a topology to decide against.
    #[error("no Node in the file (expected `kubectl get nodes -o yaml` output)")]
    NoNodes,
}

/// Parses a nodes file. Every document must be a Node.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeInfo>, NodesError> {
    let json = text.trim_start().starts_with('{');
    let docs = manifests::parse(text, json)?;
    if docs.is_empty() {
        return Err(NodesError::NoNodes);
    }
    docs.iter()
        .map(|doc| {
            let kind = doc
                .value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("Node");
            if kind != "Node" {
                return Err(NodesError::NotANode {
                    anchor: doc.anchor(),
                    kind: kind.to_owned(),
                });
            }
            NodeInfo::from_json(&doc.value).map_err(|source| NodesError::BadNode {
                anchor: doc.anchor(),
                source,
            })
        })
        .collect()
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
        assert_eq!(err.to_string(), "document #1: a Pod, not a Node");
    }
}
