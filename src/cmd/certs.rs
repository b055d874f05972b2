//! `spreadguard certs generate`.

use std::path::PathBuf;

use crate::certs::{Authority, service_names, write};

/// Arguments of `spreadguard certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Write ca.crt, tls.crt and tls.key for the webhook Service.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Name of the webhook's Service.
    #[arg(long, env = "SPREADGUARD_SERVICE")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, env = "SPREADGUARD_NAMESPACE")]
    pub namespace: String,
    /// Directory to write into (created if missing).
    #[arg(long, env = "SPREADGUARD_OUT")]
    pub out: PathBuf,
    /// Validity of the serving certificate, in days (the CA gets ten times as long).
    #[arg(long, env = "SPREADGUARD_CERT_DAYS", default_value_t = 365)]
    pub days: i64,
}

/// `spreadguard certs generate`.
pub fn run(args: CertsArgs) -> anyhow::Result<i32> {
    match args.command {
        CertsCommand::Generate(args) => {
            let names = service_names(&args.service, &args.namespace);
            let ca = Authority::new(&format!("spreadguard CA for {}", names[2]), args.days * 10)?;
            let serving = ca.issue_server(&names, args.days)?;
            write(&args.out, &ca, &serving)?;
            println!(
                "wrote {dir}/ca.crt, {dir}/tls.crt, {dir}/tls.key for {names}",
                dir = args.out.display(),
                names = names.join(", ")
            );
            println!(
                "caBundle for the webhook configuration: base64 -w0 {}/ca.crt",
                args.out.display()
            );
            Ok(0)
        }
    }
}
