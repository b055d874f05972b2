//! `spreadguard serve --dev`: everything needed to try the webhook on a laptop, with no
//! arguments. A fresh CA and a serving certificate for `localhost`/`127.0.0.1`, the bundled
//! demo topology (three zones) and an example review are written into a new temporary
//! directory, which is removed however the server ends (SIGTERM, a failed start, a panic);
//! the server listens on loopback only.

use std::net::SocketAddr;
use std::path::Path;

use super::{ServeArgs, ServeError};
use crate::certs::{self, Authority};

/// The demo topology: three zones of an EKS cluster plus a tainted GPU node.
pub const DEMO_NODES: &str = include_str!("../../examples/nodes-3-zones.yaml");
/// A CREATE review of a 3-replica Deployment with no spread constraints (about 4 KB).
pub const EXAMPLE_REVIEW: &str =
    include_str!("../../examples/admission/review-deployment-create.json");

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
        println!("try it:");
        println!(
            "  curl --cacert {dir}/ca.crt -H 'Content-Type: application/json' --data @{dir}/review.json https://{host}:{port}/mutate",
            port = tls.port()
        );
    }
}
