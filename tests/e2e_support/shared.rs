//! One bed and one spreadguard per test binary, as one cluster with spreadguard installed:
//! the chart's defaults (`scope: optIn`, policy `mode: enforce`) except `failurePolicy: Fail`,
//! so that a request that does not reach spreadguard fails the test instead of passing
//! unjudged. Tests opt in namespaces of their own and never touch Nodes.

use std::future::Future;
use std::sync::OnceLock;

use super::bed::Bed;
use super::spreadguard::{Options, Spreadguard};
use super::wait::block_on;

pub struct Shared {
    pub bed: &'static Bed,
    pub sg: Spreadguard,
}

/// Started on first use; every later test gets the same one (or the same start-up failure).
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let bed = Bed::shared();
            let sg = run(async {
                let sg = Spreadguard::start(bed, Options::new("spreadguard")).await;
                sg.register(bed).await;
                sg
            });
            Shared { bed, sg }
        })
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match shared {
        Ok(shared) => shared,
        Err(message) => panic!("the shared bed or spreadguard did not start: {message}"),
    }
}

/// Runs a future on a runtime of its own, from sync or async code.
pub fn run<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = block_on(&runtime, future);
    runtime.shutdown_background();
    out
}
