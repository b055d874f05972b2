//! `spreadguard serve`: builds the runtime, prepares `--dev` if asked, serves until SIGTERM.

use super::ExitCode;
pub use crate::server::ServeArgs;
use crate::server::{Server, dev, shutdown};

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
        server.run(stop).await?;
        Ok(0)
    })
}
