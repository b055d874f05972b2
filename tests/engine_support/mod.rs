//! Shared helpers of the engine's test suites: YAML loading, node files, compact node specs,
//! and undoing a patch to prove it only added what it names.
#![allow(dead_code)]

pub mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use json_patch::PatchOperation;
use json_patch::jsonptr::{Pointer, Token};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use spreadguard::engine::{Finding, NodeInfo, RuleId, Severity};

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// Every `.yaml` file directly in `dir`, sorted by name.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// All documents of a (multi-document) YAML text, as JSON values; empty documents dropped.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Documents with `kind: List` (or `NodeList`, ...) expanded into their items.
pub fn flatten_lists(docs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in docs {
        let is_list = doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"));
        match (is_list, doc.get("items").and_then(Value::as_array)) {
            (true, Some(items)) => out.extend(items.iter().cloned()),
            _ => out.push(doc),
        }
    }
    out
}

/// The nodes of a `kubectl get nodes -o yaml` file (relative to the repository root).
pub fn nodes_file(relative: &str) -> Vec<NodeInfo> {
    let path = repo_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let docs = yaml_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    flatten_lists(docs)
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("Node"))
        .map(|n| NodeInfo::from_json(n).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Expands a compact node spec into Node objects, so the tests read nodes the way the
/// engine reads real ones (through [`NodeInfo::from_json`]).
///
/// Fields: `name`, `zone` (sets `topology.kubernetes.io/zone`), `labels`, `taints`
/// (`key=value:Effect` or `key:Effect`), `unschedulable`, `hostname: false` (no
/// `kubernetes.io/hostname` label; by default it is the node's name), `count` (that many
/// nodes, named `name-1` ... `name-N`). A full `kind: Node` object is taken as it is.
pub fn compact_nodes(spec: &Value) -> Vec<Value> {
    if spec.get("kind").and_then(Value::as_str) == Some("Node") {
        return vec![spec.clone()];
    }
    let base = spec
        .get("name")
        .and_then(Value::as_str)
        .expect("a compact node needs a name");
    let count = spec.get("count").and_then(Value::as_u64);
    let names: Vec<String> = match count {
        None => vec![base.to_owned()],
        Some(n) => (1..=n).map(|i| format!("{base}-{i}")).collect(),
    };
    names
        .into_iter()
        .map(|name| {
            let mut labels = Map::new();
            if spec.get("hostname") != Some(&Value::Bool(false)) {
                labels.insert("kubernetes.io/hostname".into(), json!(name));
            }
            if let Some(zone) = spec.get("zone") {
                labels.insert("topology.kubernetes.io/zone".into(), zone.clone());
            }
            if let Some(extra) = spec.get("labels").and_then(Value::as_object) {
                for (k, v) in extra {
                    labels.insert(k.clone(), v.clone());
                }
            }
            let taints: Vec<Value> = spec
                .get("taints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| parse_taint(t.as_str().expect("a taint is a string")))
                .collect();
            let mut node = json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": { "name": name, "labels": labels },
                "spec": {},
            });
            if !taints.is_empty() {
                node["spec"]["taints"] = Value::Array(taints);
            }
            if let Some(u) = spec.get("unschedulable") {
                node["spec"]["unschedulable"] = u.clone();
            }
            node
        })
        .collect()
}

fn parse_taint(s: &str) -> Value {
    let (kv, effect) = s.rsplit_once(':').expect("taint as key[=value]:Effect");
    match kv.split_once('=') {
        Some((k, v)) => json!({ "key": k, "value": v, "effect": effect }),
        None => json!({ "key": kv, "effect": effect }),
    }
}

/// The most severe finding per rule.
pub fn worst_by_rule(findings: &[Finding]) -> BTreeMap<RuleId, Severity> {
    let mut out = BTreeMap::new();
    for f in findings {
        let e = out.entry(f.rule).or_insert(f.severity);
        *e = (*e).max(f.severity);
    }
    out
}

/// Rules whose worst severity rose from `before` to `after` (a new rule counts as a rise).
pub fn escalations(before: &[Finding], after: &[Finding]) -> Vec<String> {
    let before = worst_by_rule(before);
    worst_by_rule(after)
        .into_iter()
        .filter(|(rule, sev)| before.get(rule).is_none_or(|b| sev > b))
        .map(|(rule, sev)| {
            format!(
                "{rule} became {} (was {})",
                sev.as_str(),
                before.get(&rule).map_or("absent", |s| s.as_str())
            )
        })
        .collect()
}

/// Applies `patch` to a copy of `original` and then undoes exactly what each operation did,
/// removing added members with an order-preserving `shift_remove`. The result equals
/// `original` byte for byte only if the patch touched nothing but the paths it names and the
/// patched document kept every other field in place.
///
/// Returns the patched document and the undone one.
pub fn apply_and_undo(
    original: &Value,
    patch: &[PatchOperation],
) -> Result<(Value, Value), String> {
    let mut doc = original.clone();
    let mut inverses = Vec::new();
    for op in patch {
        inverses.push(inverse(&doc, op)?);
        json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| format!("{op}: {e}"))?;
    }
    // The whole patch must also apply in one go, as the API server applies it.
    let mut whole = original.clone();
    json_patch::patch(&mut whole, patch).map_err(|e| format!("whole patch: {e}"))?;
    if whole != doc {
        return Err("applying the patch at once differs from applying it op by op".into());
    }
    let patched = doc.clone();
    for inv in inverses.into_iter().rev() {
        inv.apply(&mut doc)?;
    }
    Ok((patched, doc))
}

/// How to undo one operation, computed against the document before it.
enum Inverse {
    RemoveMember(Vec<String>, String),
    RemoveIndex(Vec<String>, usize),
    Restore(Vec<String>, Value),
}

fn tokens(p: &Pointer) -> Vec<String> {
    p.tokens()
        .map(|t: Token| t.decoded().into_owned())
        .collect()
}

fn inverse(doc: &Value, op: &PatchOperation) -> Result<Inverse, String> {
    let path = tokens(op.path());
    let (last, parent) = path
        .split_last()
        .ok_or_else(|| format!("{op}: the patch replaces the whole document"))?;
    let parent_value = lookup(doc, parent).ok_or_else(|| format!("{op}: parent missing"))?;
    match op {
        PatchOperation::Add(_) => match parent_value {
            Value::Object(map) => Ok(match map.get(last) {
                Some(old) => Inverse::Restore(path.clone(), old.clone()),
                None => Inverse::RemoveMember(parent.to_vec(), last.clone()),
            }),
            Value::Array(items) => {
                let index = if last == "-" {
                    items.len()
                } else {
                    last.parse().map_err(|_| format!("{op}: bad index"))?
                };
                Ok(Inverse::RemoveIndex(parent.to_vec(), index))
            }
            _ => Err(format!("{op}: parent is not a container")),
        },
        PatchOperation::Replace(_) => {
            let old = lookup(doc, &path).ok_or_else(|| format!("{op}: target missing"))?;
            Ok(Inverse::Restore(path.clone(), old.clone()))
        }
        other => Err(format!(
            "unexpected operation {other}: the engine only adds and replaces"
        )),
    }
}

impl Inverse {
    fn apply(self, doc: &mut Value) -> Result<(), String> {
        match self {
            Inverse::RemoveMember(parent, key) => {
                let map = lookup_mut(doc, &parent)
                    .and_then(Value::as_object_mut)
                    .ok_or("undo: parent object gone")?;
                map.shift_remove(&key).ok_or("undo: added member gone")?;
            }
            Inverse::RemoveIndex(parent, index) => {
                let items = lookup_mut(doc, &parent)
                    .and_then(Value::as_array_mut)
                    .ok_or("undo: parent array gone")?;
                if index >= items.len() {
                    return Err("undo: added item gone".into());
                }
                items.remove(index);
            }
            Inverse::Restore(path, old) => {
                *lookup_mut(doc, &path).ok_or("undo: replaced value gone")? = old;
            }
        }
        Ok(())
    }
}

fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => a.get(t.parse::<usize>().ok()?),
        _ => None,
    })
}

fn lookup_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get_mut(t),
        Value::Array(a) => a.get_mut(t.parse::<usize>().ok()?),
        _ => None,
    })
}
