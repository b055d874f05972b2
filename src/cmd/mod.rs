//! The command line: one subcommand per job, each a thin shell over the library. Every flag
//! also reads a `SPREADGUARD_*` environment variable.

pub mod audit;
pub mod certs;
pub mod fix;
pub mod policy;
pub mod serve;
pub mod topology;

use clap::{Parser, Subcommand};

/// How a command ended, as a process exit code.
pub type ExitCode = i32;

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
    /// Judge manifest files against a node snapshot, offline (or a live cluster).
    Audit(audit::AuditArgs),
    /// Run the admission webhook (TLS) and its admin port.
    Serve(Box<serve::ServeArgs>),
    /// Write what the mutating webhook would inject into manifest files (for GitOps).
    Fix(fix::FixArgs),
    /// Certificates for clusters without cert-manager.
    Certs(certs::CertsArgs),
    /// Print the zones as spreadguard sees them (from the cluster or --nodes).
    Topology(topology::TopologyArgs),
    /// Check a policy file, or print its JSON schema.
    Policy(policy::PolicyArgs),
}

impl Cli {
    /// The log format the command asks for (only `serve` has a choice).
    pub fn log_format(&self) -> crate::telemetry::LogFormat {
        match &self.command {
            Command::Serve(args) => args.log_format,
            _ => crate::telemetry::LogFormat::Text,
        }
    }

    /// Runs the command; `Ok` is the exit code.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Audit(args) => audit::run(args),
            Command::Serve(args) => serve::run(*args),
            Command::Certs(args) => certs::run(args),
            Command::Fix(args) => fix::run(args),
            Command::Topology(args) => topology::run(args),
            Command::Policy(args) => policy::run(args),
        }
    }
}
