//! One place reads files: the policy, nodes files and manifests. `serve` (at startup and in
//! its reload loops), `audit` and `topology` all load through here, so a file means the same
//! to every command and every error names the file.

mod files;
pub mod manifests;
mod nodes;

use std::path::{Path, PathBuf};

pub use self::files::{Location, Sourced};
pub use self::nodes::{NodesError, parse_nodes};
use crate::engine::policy::{Policy, PolicyError};
use crate::engine::{NodeInfo, Topology};

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

/// The nodes of a nodes file (`kubectl get nodes -o yaml`).
pub fn nodes_file(path: &Path) -> Result<Vec<NodeInfo>, LoadError> {
    nodes_from(path, &read(path)?)
}

/// Nodes from a file's bytes (read at startup or by a reload).
pub fn nodes_from(path: &Path, bytes: &[u8]) -> Result<Vec<NodeInfo>, LoadError> {
    let text = String::from_utf8_lossy(bytes);
    parse_nodes(&text).map_err(|source| LoadError::Nodes {
        path: path.to_owned(),
        source,
    })
}

/// The topology of a nodes file, or without one the policy's assumed zones.
pub fn topology(nodes: Option<&Path>, policy: &Policy) -> Result<Topology, LoadError> {
    Ok(match nodes {
        Some(path) => Topology::from_nodes(nodes_file(path)?, policy),
        None => Topology::assumed(policy),
    })
}

/// Every document of the given manifest files and directories (recursive: .yaml, .yml,
/// .json; `-` is stdin), in order. Fails on the first unreadable or unparsable file.
pub fn manifests(paths: &[PathBuf]) -> Result<Vec<Sourced>, LoadError> {
    files::load(paths)
}
