use std::process::ExitCode;

use clap::Parser;
use spreadguard::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(args) => spreadguard::audit::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("spreadguard: {err:#}");
            ExitCode::from(2)
        }
    }
}
