//! The command line: one subcommand per job. Every flag also reads a `SPREADGUARD_*`
//! environment variable.

use clap::{Parser, Subcommand};

use crate::audit::AuditArgs;
use crate::certs::CertsArgs;
use crate::server::ServeArgs;
use crate::topology_command::TopologyArgs;

#[derive(Debug, Parser)]
#[command(
    name = "spreadguard",
    version,
    about = "Keeps every workload alive through the loss of a zone"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Judge manifest files against a node snapshot, offline.
    Audit(AuditArgs),
    /// Run the admission webhook (TLS) and its admin port.
    Serve(Box<ServeArgs>),
    /// Certificates for clusters without cert-manager.
    Certs(CertsArgs),
    /// Print the zones as spreadguard sees them (from the cluster or --nodes).
    Topology(TopologyArgs),
}
