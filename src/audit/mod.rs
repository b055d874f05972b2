//! `spreadguard audit`: the engine over manifest files and a node snapshot.

use std::path::PathBuf;

/// Arguments of `spreadguard audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Manifest files or directories (recursive: .yaml, .yml, .json); `-` reads stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs the audit; returns the process exit code.
pub fn run(_args: AuditArgs) -> anyhow::Result<i32> {
    anyhow::bail!("audit is being written")
}
