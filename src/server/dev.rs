//! `spreadguard serve --dev`: everything needed to try the webhook on a laptop, with no
//! arguments. A fresh CA and a serving certificate for `localhost`/`127.0.0.1`, the bundled
//! demo topology (three zones) and an example review are written into a new temporary
//! directory, and the server listens on loopback only.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{ServeArgs, ServeError};
use crate::certs::{self, Authority};

/// The demo topology: three zones of an EKS cluster plus a tainted GPU node.
pub const DEMO_NODES: &str = include_str!("../../examples/nodes-3-zones.yaml");
/// A CREATE review of a 3-replica Deployment with no spread constraints (about 4 KB).
pub const EXAMPLE_REVIEW: &str =
    include_str!("../../tests/fixtures/admission/deployment-create.json");

/// Where `--dev` put its files.
#[derive(Debug)]
pub struct Dev {
    pub dir: PathBuf,
}

/// Writes the dev material and points `args` at it.
pub fn prepare(args: &mut ServeArgs) -> Result<Dev, ServeError> {
    let dir = fresh_dir().map_err(|e| ServeError::Dev(format!("temporary directory: {e}")))?;
    let ca =
        Authority::new("spreadguard dev CA", 30).map_err(|e| ServeError::Dev(e.to_string()))?;
    let serving = ca
        .issue_server(&["localhost".to_owned(), "127.0.0.1".to_owned()], 30)
        .map_err(|e| ServeError::Dev(e.to_string()))?;
    certs::write(&dir, &ca, &serving).map_err(|e| ServeError::Dev(e.to_string()))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|e| ServeError::Dev(format!("{}: {e}", path.display())))
    };
    write("review.json", EXAMPLE_REVIEW)?;
    if args.nodes.is_none() {
        args.nodes = Some(write("nodes.yaml", DEMO_NODES)?);
    }
    args.tls_cert = Some(dir.join("tls.crt"));
    args.tls_key = Some(dir.join("tls.key"));
    Ok(Dev { dir })
}

fn fresh_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for attempt in 0..1000 {
        let dir = base.join(format!("spreadguard-dev-{pid}-{attempt}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name"))
}

impl Dev {
    /// Tells the user where things are and how to try them.
    pub fn print(&self, tls: SocketAddr, admin: SocketAddr) {
        let dir = self.dir.display();
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
