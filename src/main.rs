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
    let format = cli.log_format();
    spreadguard::telemetry::init(format);
    match cli.run() {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            let error = spreadguard::errors::chain(err.as_ref());
            match format {
                // A log pipeline reads serve's startup errors as it reads its other lines.
                spreadguard::telemetry::LogFormat::Json => {
                    tracing::error!(error, "spreadguard could not start")
                }
                spreadguard::telemetry::LogFormat::Text => eprintln!("spreadguard: {error}"),
            }
            ExitCode::from(2)
        }
    }
}
