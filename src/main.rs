use std::process::ExitCode;

use clap::Parser;
use spreadguard::cmd::Cli;

/// mimalloc: admission and audit are allocation-heavy JSON work, where glibc malloc was a
/// third of the instructions (callgrind, `spreadguard audit` over 500 Deployments).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    spreadguard::telemetry::init(cli.log_format());
    match cli.run() {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("spreadguard: {}", spreadguard::errors::chain(err.as_ref()));
            ExitCode::from(2)
        }
    }
}
