use std::process::ExitCode;

use clap::Parser;
use spreadguard::cli::{Cli, Command};

/// mimalloc: admission and audit are allocation-heavy JSON work, where glibc malloc was a
/// third of the instructions (callgrind, `spreadguard audit` over 500 Deployments).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => spreadguard::telemetry::LogFormat::Text,
    };
    spreadguard::telemetry::init(log_format);
    let result = match cli.command {
        Command::Audit(args) => spreadguard::audit::run(args),
        Command::Serve(args) => spreadguard::server::run(*args),
        Command::Certs(args) => spreadguard::certs::run(args),
        Command::Topology(args) => spreadguard::topology_command::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("spreadguard: {}", describe(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: many errors quote their source in
/// their own message already.
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if out.contains(&message) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&message);
    }
    out
}
