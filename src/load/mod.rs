//! One place reads files: the policy, nodes files and manifests. `serve` (at startup and in
//! its reload loops), `audit` and `topology` all load through here, so a file means the same
//! to every command and every error names the file.

mod files;
pub mod manifests;
mod nodes;

use std::path::{Path, PathBuf};

pub use self::files::{Location, Sourced};
pub use self::nodes::{Inventory, NodesError, parse_inventory, parse_nodes, take};
use crate::engine::Topology;
use crate::engine::policy::{Policy, PolicyError};

/// A file that cannot be used. The message names the file; the source says why.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Policy {
        path: PathBuf,
        #[source]
        source: PolicyError,
    },
    #[error("{}", path.display())]
    Nodes {
        path: PathBuf,
        #[source]
        source: NodesError,
    },
    #[error("{}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: manifests::ParseError,
    },
}

/// A file's bytes.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The policy file, or the defaults without one.
pub fn policy_file(path: Option<&Path>) -> Result<Policy, LoadError> {
    match path {
        None => Ok(Policy::default()),
        Some(path) => policy_from(path, &read(path)?),
    }
}

/// A policy from a file's bytes (read at startup or by a reload).
pub fn policy_from(path: &Path, bytes: &[u8]) -> Result<Policy, LoadError> {
    let policy = |source| LoadError::Policy {
        path: path.to_owned(),
        source,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| policy(PolicyError::NotUtf8(e)))?;
    Policy::from_yaml(text).map_err(policy)
}

/// The nodes of a nodes file (`kubectl get nodes -o yaml`), and the NodePools, StorageClasses
/// and PersistentVolumes beside them.
pub fn nodes_file(path: &Path) -> Result<Inventory, LoadError> {
    nodes_from(path, &read(path)?)
}

/// Nodes from a file's bytes (read at startup or by a reload).
pub fn nodes_from(path: &Path, bytes: &[u8]) -> Result<Inventory, LoadError> {
    let text = String::from_utf8_lossy(bytes);
    parse_inventory(&text).map_err(|source| LoadError::Nodes {
        path: path.to_owned(),
        source,
    })
}

/// The topology of a nodes file (its nodes and NodePools), or without one the policy's
/// assumed zones.
pub fn topology(nodes: Option<&Path>, policy: &Policy) -> Result<Topology, LoadError> {
    Ok(match nodes {
        Some(path) => {
            let inv = nodes_file(path)?;
            Topology::from_parts(inv.nodes, inv.pools, policy)
        }
        None => Topology::assumed(policy),
    })
}

/// The NodePools and storage objects among manifest documents (workloads and everything
/// else are left to the report). Fails on the first such object that cannot be read, naming
/// its document.
pub fn inventory_of(docs: &[Sourced]) -> Result<Inventory, LoadError> {
    let mut inventory = Inventory::default();
    for d in docs {
        take(&mut inventory, &d.value).map_err(|message| LoadError::Manifest {
            path: PathBuf::from(&d.source),
            source: manifests::ParseError {
                line: None,
                message: message.to_string(),
            },
        })?;
    }
    Ok(inventory)
}

/// Every document of the given manifest files and directories (recursive: .yaml, .yml,
/// .json; `-` is stdin), in order. Fails on the first unreadable or unparsable file.
pub fn manifests(paths: &[PathBuf]) -> Result<Vec<Sourced>, LoadError> {
    files::load(paths)
}
