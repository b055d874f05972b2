//! `spreadguard serve --dev`: everything needed to try the webhook on a laptop, with no
//! arguments. A fresh CA and a serving certificate for `localhost`/`127.0.0.1`, the bundled
//! demo topology (three zones), an example review (and with `--ui` the example workloads)
//! are written into a new temporary directory, which is removed however the server ends
//! (SIGTERM, a failed start, a panic); the server listens on loopback only.

use std::net::SocketAddr;
use std::path::Path;

use super::{ServeArgs, ServeError};
use crate::certs::{self, Authority};

/// The demo topology: three zones of an EKS cluster plus a tainted GPU node.
pub const DEMO_NODES: &str = include_str!("../../examples/nodes-3-zones.yaml");
/// A CREATE review of a 3-replica Deployment with no spread constraints (about 4 KB).
pub const EXAMPLE_REVIEW: &str =
    include_str!("../../examples/admission/review-deployment-create.json");

/// The bundled example workloads: what `serve --dev --ui` shows when no --ui-manifests are
/// given.
pub const DEMO_WORKLOADS: &[(&str, &str)] = &[
    (
        "ha001-deployment-single-replica.yaml",
        include_str!("../../examples/workloads/ha001-deployment-single-replica.yaml"),
    ),
    (
        "ha002-deployment-hard-zone-anti-affinity-4-replicas.yaml",
        include_str!(
            "../../examples/workloads/ha002-deployment-hard-zone-anti-affinity-4-replicas.yaml"
        ),
    ),
    (
        "ha003-statefulset-hard-node-anti-affinity-8-replicas.yaml",
        include_str!(
            "../../examples/workloads/ha003-statefulset-hard-node-anti-affinity-8-replicas.yaml"
        ),
    ),
    (
        "ha004-deployment-spread-selector-misses-own-pods.yaml",
        include_str!(
            "../../examples/workloads/ha004-deployment-spread-selector-misses-own-pods.yaml"
        ),
    ),
    (
        "ha005-deployment-spread-on-gke-zone-label.yaml",
        include_str!("../../examples/workloads/ha005-deployment-spread-on-gke-zone-label.yaml"),
    ),
    (
        "ha006-deployment-gpu-pinned-to-one-zone.yaml",
        include_str!("../../examples/workloads/ha006-deployment-gpu-pinned-to-one-zone.yaml"),
    ),
    (
        "ha007-deployment-min-domains-above-zones.yaml",
        include_str!("../../examples/workloads/ha007-deployment-min-domains-above-zones.yaml"),
    ),
    (
        "ha008-deployment-legacy-zone-label.yaml",
        include_str!("../../examples/workloads/ha008-deployment-legacy-zone-label.yaml"),
    ),
    (
        "ha009-deployment-in-single-zone-cluster.yaml",
        include_str!("../../examples/workloads/ha009-deployment-in-single-zone-cluster.yaml"),
    ),
    (
        "ha010-deployment-may-land-on-unzoned-nodes.yaml",
        include_str!("../../examples/workloads/ha010-deployment-may-land-on-unzoned-nodes.yaml"),
    ),
    (
        "ha011-deployment-kustomize-base-without-selector.yaml",
        include_str!(
            "../../examples/workloads/ha011-deployment-kustomize-base-without-selector.yaml"
        ),
    ),
    (
        "ha012-hpa-min-replicas-1.yaml",
        include_str!("../../examples/workloads/ha012-hpa-min-replicas-1.yaml"),
    ),
    (
        "ha013-pdb-max-unavailable-0.yaml",
        include_str!("../../examples/workloads/ha013-pdb-max-unavailable-0.yaml"),
    ),
    (
        "ha014-pdb-min-available-5-of-6.yaml",
        include_str!("../../examples/workloads/ha014-pdb-min-available-5-of-6.yaml"),
    ),
    (
        "ha016-pdb-selects-nothing.yaml",
        include_str!("../../examples/workloads/ha016-pdb-selects-nothing.yaml"),
    ),
    (
        "ha017-statefulset-zonal-volumes-bound-immediately.yaml",
        include_str!(
            "../../examples/workloads/ha017-statefulset-zonal-volumes-bound-immediately.yaml"
        ),
    ),
    (
        "ha018-statefulset-class-allows-volumes-in-one-zone.yaml",
        include_str!(
            "../../examples/workloads/ha018-statefulset-class-allows-volumes-in-one-zone.yaml"
        ),
    ),
    (
        "ha019-statefulset-bound-volumes-all-in-one-zone.yaml",
        include_str!(
            "../../examples/workloads/ha019-statefulset-bound-volumes-all-in-one-zone.yaml"
        ),
    ),
    (
        "ha020-deployment-replicas-share-read-write-once-claim.yaml",
        include_str!(
            "../../examples/workloads/ha020-deployment-replicas-share-read-write-once-claim.yaml"
        ),
    ),
    (
        "ha023-deployment-node-spread-counts-tainted-gpu-node.yaml",
        include_str!(
            "../../examples/workloads/ha023-deployment-node-spread-counts-tainted-gpu-node.yaml"
        ),
    ),
    (
        "ha024-deployment-required-affinity-to-itself.yaml",
        include_str!("../../examples/workloads/ha024-deployment-required-affinity-to-itself.yaml"),
    ),
    (
        "ha025-deployment-affinity-to-a-one-zone-database.yaml",
        include_str!(
            "../../examples/workloads/ha025-deployment-affinity-to-a-one-zone-database.yaml"
        ),
    ),
    (
        "ha026-deployment-rollout-deadlock.yaml",
        include_str!("../../examples/workloads/ha026-deployment-rollout-deadlock.yaml"),
    ),
    (
        "ha027-deployment-max-skew-spreads-nothing.yaml",
        include_str!("../../examples/workloads/ha027-deployment-max-skew-spreads-nothing.yaml"),
    ),
    (
        "ok-deployment-with-hpa.yaml",
        include_str!("../../examples/workloads/ok-deployment-with-hpa.yaml"),
    ),
    (
        "ok-deployment-zone-and-node-spread.yaml",
        include_str!("../../examples/workloads/ok-deployment-zone-and-node-spread.yaml"),
    ),
    (
        "ok-statefulset-3-replicas-gets-spread-injected.yaml",
        include_str!(
            "../../examples/workloads/ok-statefulset-3-replicas-gets-spread-injected.yaml"
        ),
    ),
];

/// The `--dev` material, in a temporary directory removed when this is dropped.
#[derive(Debug)]
pub struct Dev {
    dir: tempfile::TempDir,
}

/// Writes the dev material and points `args` at it.
pub fn prepare(args: &mut ServeArgs) -> Result<Dev, ServeError> {
    let dev = |e: Box<dyn std::error::Error + Send + Sync>| ServeError::Dev(e);
    let dir = tempfile::Builder::new()
        .prefix("spreadguard-dev-")
        .tempdir()
        .map_err(|e| dev(e.into()))?;
    let ca = Authority::new("spreadguard dev CA", 30).map_err(|e| dev(e.into()))?;
    let serving = ca
        .issue_server(&["localhost".to_owned(), "127.0.0.1".to_owned()], 30)
        .map_err(|e| dev(e.into()))?;
    certs::write(
        dir.path(),
        &certs::Output {
            ca: &ca,
            ca_files: true,
            serving: &serving,
            force: true,
        },
    )
    .map_err(|e| dev(e.into()))?;
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|e| dev(e.into()))
    };
    write("review.json", EXAMPLE_REVIEW)?;
    if args.nodes.is_none() {
        args.nodes = Some(write("nodes.yaml", DEMO_NODES)?);
    }
    if args.ui && args.ui_manifests.is_empty() {
        let workloads = dir.path().join("workloads");
        std::fs::create_dir(&workloads).map_err(|e| dev(e.into()))?;
        for (name, text) in DEMO_WORKLOADS {
            std::fs::write(workloads.join(name), text).map_err(|e| dev(e.into()))?;
        }
        args.ui_manifests = vec![workloads];
    }
    args.tls_cert = Some(dir.path().join("tls.crt"));
    args.tls_key = Some(dir.path().join("tls.key"));
    Ok(Dev { dir })
}

impl Dev {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Tells the user where things are and how to try them.
    pub fn print(&self, tls: SocketAddr, admin: SocketAddr) {
        let dir = self.dir().display();
        let host = if tls.ip().is_loopback() {
            tls.ip().to_string()
        } else {
            "127.0.0.1".to_owned()
        };
        println!("spreadguard dev mode: certificates, demo nodes and an example review in {dir}");
        println!("admin: http://{admin}/readyz  http://{admin}/metrics");
        if self.dir().join("workloads").exists() {
            println!("posture page: http://{admin}/  (the example workloads in {dir}/workloads)");
        }
        println!("try it:");
        println!(
            "  curl --cacert {dir}/ca.crt -H 'Content-Type: application/json' --data @{dir}/review.json https://{host}:{port}/mutate",
            port = tls.port()
        );
    }
}

#[cfg(test)]
mod tests {
    /// Every file of examples/workloads is bundled, and nothing else.
    #[test]
    fn the_demo_workloads_are_the_examples() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workloads");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let bundled: Vec<&str> = super::DEMO_WORKLOADS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(bundled, files);
    }
}
