//! When the webhook is ready to answer: a serving certificate, a topology, whatever the
//! caches add (their first lists), and not shutting down.

use std::sync::atomic::{AtomicBool, Ordering};

/// A named readiness condition added by another part of the process (e.g. "caches synced").
type Check = (&'static str, Box<dyn Fn() -> bool + Send + Sync>);

#[derive(Default)]
pub struct Readiness {
    certificate_loaded: AtomicBool,
    shutting_down: AtomicBool,
    checks: Vec<Check>,
}

impl Readiness {
    /// Adds a condition `/readyz` waits for.
    pub fn add(&mut self, name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks.push((name, Box::new(check)));
    }

    pub fn set_certificate_loaded(&self, loaded: bool) {
        self.certificate_loaded.store(loaded, Ordering::Release);
    }

    /// From SIGTERM on, `/readyz` is false so that the endpoints controller drains traffic.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// `Ok` when ready; otherwise what is missing. `topology_loaded` comes from the
    /// snapshots.
    pub fn check(&self, topology_loaded: bool) -> Result<(), Vec<&'static str>> {
        let mut missing = Vec::new();
        if self.is_shutting_down() {
            missing.push("shutting down");
        }
        if !self.certificate_loaded.load(Ordering::Acquire) {
            missing.push("certificate");
        }
        if !topology_loaded {
            missing.push("topology");
        }
        missing.extend(self.checks.iter().filter(|(_, f)| !f()).map(|(n, _)| *n));
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }
}
