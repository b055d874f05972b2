//! Process signals. SIGTERM (what the kubelet sends) and SIGINT (Ctrl-C) both start the
//! graceful shutdown: not ready, a grace period that still accepts connections, then drain.

use std::future::Future;

/// Completes on the first SIGTERM or SIGINT. The handlers are installed when this is called
/// (inside a runtime), not when the future is first polled, so a signal that arrives while
/// the server is still starting is not lost to the default action.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = int.recv() => tracing::info!("SIGINT received"),
                    }
                }
                (term, int) => {
                    let error = term.err().or(int.err()).map(|e| e.to_string());
                    tracing::warn!(
                        ?error,
                        "cannot listen for signals; only Ctrl-C stops the server"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
