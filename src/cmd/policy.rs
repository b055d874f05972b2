//! `spreadguard policy check FILE` and `spreadguard policy schema`: refuse a bad policy in
//! CI, before it ships.

use std::path::PathBuf;

use super::ExitCode;
use crate::load;

/// Arguments of `spreadguard policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load a policy file as `serve` does: exit 0 and print its summary, or exit 1 with the
    /// message the server would log.
    Check {
        /// The policy file (YAML).
        file: PathBuf,
    },
    /// Print the policy file's JSON schema (the Helm chart embeds it for `policy:`).
    Schema,
}

pub fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Check { file } => match load::policy_file(Some(&file)) {
            Ok(policy) => {
                println!(
                    "{}: valid: {}",
                    file.display(),
                    crate::policy_file::summary(&policy)
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("spreadguard: {}", crate::errors::chain(&e));
                Ok(1)
            }
        },
        PolicyCommand::Schema => {
            let text = serde_json::to_string_pretty(&crate::policy_file::schema())?;
            crate::output::print(&(text + "\n"))?;
            Ok(0)
        }
    }
}
