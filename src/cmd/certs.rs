//! `spreadguard certs generate`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::certs::{Authority, Output, is_dns1123_label, output_files, service_names, write};

/// Arguments of `spreadguard certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Write ca.crt, ca.key, tls.crt and tls.key for the webhook Service (only tls.crt and
    /// tls.key with --ca-cert/--ca-key).
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Name of the webhook's Service (a DNS-1123 label).
    #[arg(long, env = "SPREADGUARD_SERVICE")]
    pub service: String,
    /// Namespace of the webhook's Service (a DNS-1123 label).
    #[arg(long, env = "SPREADGUARD_NAMESPACE")]
    pub namespace: String,
    /// Directory to write into (created if missing).
    #[arg(long, env = "SPREADGUARD_OUT")]
    pub out: PathBuf,
    /// Validity of the serving certificate, in days, 1 to 3650 (a new CA gets ten times as
    /// long).
    #[arg(long, env = "SPREADGUARD_CERT_DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub days: i64,
    /// Sign with this CA certificate (PEM) instead of making a new CA; needs --ca-key.
    #[arg(long, env = "SPREADGUARD_CA_CERT", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The private key (unencrypted PKCS#8 PEM) of --ca-cert.
    #[arg(long, env = "SPREADGUARD_CA_KEY", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Replace files that already exist in --out (keys are still written 0600).
    #[arg(long, env = "SPREADGUARD_FORCE")]
    pub force: bool,
}

/// `spreadguard certs generate`.
pub fn run(args: CertsArgs) -> anyhow::Result<i32> {
    match args.command {
        CertsCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<i32> {
    for (flag, name) in [
        ("--service", &args.service),
        ("--namespace", &args.namespace),
    ] {
        if !is_dns1123_label(name) {
            bail!(
                "{flag} {name:?} is not a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"
            );
        }
    }
    let names = service_names(&args.service, &args.namespace);
    let ca = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            Authority::load(&read(cert)?, &read(key)?)?
        }
        _ => Authority::new(&format!("spreadguard CA for {}", names[2]), args.days * 10)?,
    };
    let reused = args.ca_cert.is_some();
    let leaf_until = time::OffsetDateTime::now_utc() + time::Duration::days(args.days);
    if leaf_until > ca.not_after() {
        return Err(crate::certs::CertsError::CaTooShort { days: args.days }.into());
    }
    let serving = ca.issue_server(&names, args.days)?;
    write(
        &args.out,
        &Output {
            ca: &ca,
            ca_files: !reused,
            serving: &serving,
            force: args.force,
        },
    )?;
    let dir = args.out.display();
    let files: Vec<String> = output_files(!reused)
        .iter()
        .map(|f| format!("{dir}/{f}"))
        .collect();
    println!("wrote {} for {}", files.join(", "), names.join(", "));
    if reused {
        println!("signed by the CA of --ca-cert: the caBundle does not change");
    } else {
        println!(
            "caBundle for the webhook configuration: base64 -w0 {dir}/ca.crt; keep {dir}/ca.key out of the cluster, for renewing with --ca-cert/--ca-key"
        );
    }
    Ok(0)
}
