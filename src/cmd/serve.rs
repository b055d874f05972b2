//! `spreadguard serve`: builds the runtime, prepares `--dev` if asked, serves until SIGTERM.

use super::ExitCode;
use crate::audit::formats::policy_report::Flavour;
pub use crate::server::ServeArgs;
use crate::server::args::ReportsFormat;
use crate::server::{Server, dev, shutdown};

/// What `--reports` writes, from the serve flags.
fn reports_options(args: &ServeArgs, interval: std::time::Duration) -> crate::reports::Options {
    let r = &args.reports;
    let lease_namespace = r.lease_namespace.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    });
    let identity = r.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("spreadguard-{}", std::process::id()))
    });
    crate::reports::Options {
        interval,
        flavour: match r.format {
            ReportsFormat::Openreports => Flavour::OpenReports,
            ReportsFormat::Policyreport => Flavour::PolicyReport,
        },
        policy: args.config.clone(),
        lease_namespace,
        identity,
        lease_duration: r.lease_duration,
    }
}

/// `spreadguard serve`: builds the runtime, prepares `--dev` if asked, serves until SIGTERM.
pub fn run(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stop = shutdown::signal();
        let dev = if args.dev {
            Some(dev::prepare(&mut args)?)
        } else {
            None
        };
        let server = Server::bind(&args).await?;
        if let Some(dev) = &dev {
            dev.print(server.local_addr(), server.admin_addr());
        }
        // `--reports`: the writer stops with the server and releases its Lease.
        let (stopped, stopping) = tokio::sync::watch::channel(false);
        let writer = match args.reports.interval {
            Some(interval) => {
                let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
                let options = reports_options(&args, interval);
                let mut stopping = stopping.clone();
                Some(tokio::spawn(crate::reports::run(
                    client,
                    options,
                    async move {
                        let _ = stopping.wait_for(|s| *s).await;
                    },
                )))
            }
            None => None,
        };
        let result = server
            .run(async move {
                stop.await;
                let _ = stopped.send(true);
            })
            .await;
        if let Some(writer) = writer {
            match writer.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "the reports writer failed"),
                Err(e) => tracing::warn!(error = %e, "the reports writer panicked"),
                Ok(Ok(())) => {}
            }
        }
        result?;
        Ok(0)
    })
}
