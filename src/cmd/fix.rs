//! `spreadguard fix FILES…`: writes what the mutating webhook would inject into the
//! manifests themselves, so that GitOps repositories can commit it (and Argo CD or Flux see
//! no drift between git and the cluster).
//!
//! The engine decides each workload exactly as the webhook does (the same `decide`, the same
//! RFC 6902 patch); the patch is then applied to the YAML text with a lossless editor
//! (yaml-edit), so comments, key order, quoting and the layout of everything the patch does
//! not touch stay as they were. Running it again changes nothing.

use std::path::{Path, PathBuf};

use json_patch::PatchOperation;
use serde_json::Value;
use yaml_edit::{Document, Mapping, MappingBuilder, Sequence, SequenceBuilder, YamlFile};

use super::ExitCode;
use crate::engine::storage::Volumes;
use crate::engine::workload::object_name;
use crate::engine::{Input, Subject, Topology, decide};
use crate::load::{self, manifests};

/// Arguments of `spreadguard fix`.
#[derive(Debug, clap::Args)]
pub struct FixArgs {
    /// Manifest files or directories (recursive: .yaml, .yml) to edit in place.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Nodes file (`kubectl get nodes -o yaml`; NodePools, StorageClasses and PersistentVolumes
    /// may stand beside the Nodes). Without it the policy's assumedZones are used.
    #[arg(long, env = "SPREADGUARD_NODES")]
    pub nodes: Option<PathBuf>,
    /// Policy file (YAML). Without it the defaults apply.
    #[arg(long, env = "SPREADGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Change nothing; exit 1 when some file would change (for CI).
    #[arg(long)]
    pub check: bool,
}

/// Exit codes of `spreadguard fix`.
pub mod exit {
    /// Nothing to change (or everything written).
    pub const CLEAN: i32 = 0;
    /// `--check`: some file would change.
    pub const WOULD_CHANGE: i32 = 1;
}

/// What fixing one file came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fixed {
    /// The new text, when it changed.
    pub text: Option<String>,
    /// One line per workload changed: `#doc Kind ns/name: items`.
    pub changes: Vec<String>,
    /// Documents left alone and why (a List, a JSON file).
    pub skipped: Vec<String>,
}

/// Errors of `spreadguard fix` (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("{}: the YAML editor cannot read it: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: document {index}: {reason}", path.display())]
    Edit {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

pub fn run(args: FixArgs) -> anyhow::Result<ExitCode> {
    let policy = load::policy_file(args.config.as_deref())?;
    // The nodes file's NodePools join the topology and its StorageClasses and volumes are the
    // storage known, as for `serve --nodes` (whose patch this must equal).
    let (topology, volumes) = match args.nodes.as_deref().map(load::nodes_file).transpose()? {
        Some(file) => (
            Topology::from_parts(file.nodes, file.pools, &policy),
            Some(file.volumes),
        ),
        None => (Topology::assumed(&policy), None),
    };
    let volumes = volumes.as_ref().map(|v| v as &dyn Volumes);
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, &mut files)?;
    }
    let mut would_change = false;
    for path in files {
        let text = String::from_utf8_lossy(&load::read(&path)?).into_owned();
        let fixed = fix_text(&path, &text, &topology, &policy, volumes)?;
        for s in &fixed.skipped {
            eprintln!("{}: {s}", path.display());
        }
        for c in &fixed.changes {
            println!("{}{c}", path.display());
        }
        if let Some(new) = fixed.text {
            would_change = true;
            if !args.check {
                std::fs::write(&path, new)?;
            }
        }
    }
    Ok(if args.check && would_change {
        exit::WOULD_CHANGE
    } else {
        exit::CLEAN
    })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Fixes one file's text: every workload gets what the mutating webhook would inject.
pub fn fix_text(
    path: &Path,
    text: &str,
    topology: &Topology,
    policy: &crate::engine::policy::Policy,
    volumes: Option<&dyn Volumes>,
) -> Result<Fixed, anyhow::Error> {
    let mut fixed = Fixed::default();
    if path.extension().is_some_and(|x| x == "json") {
        fixed
            .skipped
            .push("a JSON file: not edited (only YAML keeps its comments)".into());
        return Ok(fixed);
    }
    let docs = manifests::parse(text, false).map_err(|source| load::LoadError::Manifest {
        path: path.to_owned(),
        source,
    })?;
    let file: YamlFile = text
        .parse()
        .map_err(|e: yaml_edit::YamlError| FixError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let editable: Vec<Document> = file.documents().collect();
    // yaml-edit and the loader must see the same documents, in the same order.
    let chunks = manifests::split_documents(text);
    let mut changed = false;
    for doc in &docs {
        let decision = decide(
            Input::new(&doc.value).with_volumes(volumes),
            topology,
            policy,
        );
        if !matches!(decision.subject, Subject::Workload(_)) || decision.patch.is_empty() {
            continue;
        }
        let edit = |reason: String| FixError::Edit {
            path: path.to_owned(),
            index: doc.index,
            reason,
        };
        if doc.item.is_some() {
            fixed.skipped.push(format!(
                "{}: an item of a List: not edited (write the workload as its own document)",
                doc.anchor()
            ));
            continue;
        }
        if chunks.len() != editable.len() {
            return Err(edit(format!(
                "the YAML editor found {} documents where there are {}",
                editable.len(),
                chunks.len()
            ))
            .into());
        }
        let target = editable
            .get(doc.index)
            .and_then(Document::as_mapping)
            .ok_or_else(|| edit("not a mapping to the YAML editor".into()))?;
        // The same object to both readers, or no edit.
        let (ns, name) = object_name(&doc.value);
        let edited_name = target
            .get_mapping("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_scalar().map(|s| s.as_string()));
        if edited_name.as_deref() != Some(name) {
            return Err(edit(format!("the YAML editor sees {edited_name:?}, not {name}")).into());
        }
        for op in &decision.patch {
            apply(&target, op).map_err(edit)?;
        }
        changed = true;
        let items: Vec<&str> = decision.injected.iter().map(|i| i.as_str()).collect();
        fixed.changes.push(format!(
            "{} {} {}{name}: {}",
            doc.anchor(),
            doc.value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            ns.map(|n| format!("{n}/")).unwrap_or_default(),
            items.join(",")
        ));
    }
    if changed {
        fixed.text = Some(file.to_string());
    }
    Ok(fixed)
}

/// Applies one of the engine's operations (add or replace, on maps and list ends) to the
/// document.
fn apply(root: &Mapping, op: &PatchOperation) -> Result<(), String> {
    let (path, value) = match op {
        PatchOperation::Add(a) => (&a.path, &a.value),
        PatchOperation::Replace(r) => (&r.path, &r.value),
        other => return Err(format!("unexpected operation {other}")),
    };
    let tokens: Vec<String> = path.tokens().map(|t| t.decoded().into_owned()).collect();
    let (last, parents) = tokens
        .split_last()
        .ok_or("the patch replaces the document")?;
    let mut node = Node::Map(root.clone());
    for t in parents {
        node = match node {
            Node::Map(m) => match (m.get_mapping(t.as_str()), m.get_sequence(t.as_str())) {
                (Some(child), _) => Node::Map(child),
                (None, Some(child)) => Node::Seq(child),
                _ => return Err(format!("{path}: no map or list at {t:?}")),
            },
            Node::Seq(s) => {
                let i: usize = t.parse().map_err(|_| format!("{path}: bad index {t:?}"))?;
                match s.get(i) {
                    Some(child) => match (child.as_mapping(), child.as_sequence()) {
                        (Some(m), _) => Node::Map(m.clone()),
                        (None, Some(s)) => Node::Seq(s.clone()),
                        _ => return Err(format!("{path}: item {i} is a scalar")),
                    },
                    None => return Err(format!("{path}: no item {i}")),
                }
            }
        };
    }
    match node {
        Node::Map(m) => set(&m, last, value),
        Node::Seq(s) if last == "-" || last.parse::<usize>().ok() == Some(s.len()) => {
            push(&s, value)
        }
        Node::Seq(_) => Err(format!("{path}: only appending to a list is supported")),
    }
}

enum Node {
    Map(Mapping),
    Seq(Sequence),
}

fn set(m: &Mapping, key: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::Object(map) => m.set(key, built_map(map)?),
        Value::Array(items) => m.set(key, built_seq(items)?),
        scalar => match scalar {
            Value::String(s) => m.set(key, s.as_str()),
            Value::Bool(b) => m.set(key, *b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => m.set(key, i),
                None => m.set(key, n.as_f64().unwrap_or_default()),
            },
            _ => return Err(format!("{key}: null is never injected")),
        },
    }
    Ok(())
}

fn push(s: &Sequence, value: &Value) -> Result<(), String> {
    match value {
        Value::Object(map) => s.push(built_map(map)?),
        Value::Array(items) => s.push(built_seq(items)?),
        Value::String(v) => s.push(v.as_str()),
        Value::Bool(b) => s.push(*b),
        Value::Number(n) => s.push(n.as_i64().ok_or("a non-integer number")?),
        Value::Null => return Err("null is never injected".into()),
    }
    Ok(())
}

fn built_map(map: &serde_json::Map<String, Value>) -> Result<Mapping, String> {
    map_builder(map)?
        .build_document()
        .as_mapping()
        .ok_or_else(|| "the YAML builder made no mapping".to_owned())
}

fn built_seq(items: &[Value]) -> Result<Sequence, String> {
    seq_builder(items)?
        .build_document()
        .as_sequence()
        .ok_or_else(|| "the YAML builder made no list".to_owned())
}

fn map_builder(map: &serde_json::Map<String, Value>) -> Result<MappingBuilder, String> {
    let mut b = MappingBuilder::new();
    for (k, v) in map {
        b = match v {
            Value::Object(m) => b.insert_mapping(k.as_str(), map_builder(m)?),
            Value::Array(items) => b.insert_sequence(k.as_str(), seq_builder(items)?),
            Value::String(s) => b.pair(k.as_str(), s.as_str()),
            Value::Bool(x) => b.pair(k.as_str(), *x),
            Value::Number(n) => b.pair(k.as_str(), n.as_i64().ok_or("a non-integer number")?),
            Value::Null => return Err(format!("{k}: null is never injected")),
        };
    }
    Ok(b)
}

fn seq_builder(items: &[Value]) -> Result<SequenceBuilder, String> {
    let mut b = SequenceBuilder::new();
    for v in items {
        b = match v {
            Value::Object(m) => b.insert_mapping(map_builder(m)?),
            Value::Array(inner) => b.insert_sequence(seq_builder(inner)?),
            Value::String(s) => b.item(s.as_str()),
            Value::Bool(x) => b.item(*x),
            Value::Number(n) => b.item(n.as_i64().ok_or("a non-integer number")?),
            Value::Null => return Err("null is never injected".into()),
        };
    }
    Ok(b)
}
