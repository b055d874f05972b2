//! The command line: one subcommand per job. Every flag also reads a `SPREADGUARD_*`
//! environment variable.

use clap::{Parser, Subcommand};

use crate::audit::AuditArgs;

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
}
