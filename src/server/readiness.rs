//! When the webhook is ready to answer: a serving certificate valid now (and a client CA
//! bundle valid now, when there is one), a topology, whatever the caches add (their first
//! lists), and not shutting down.
//!
//! Validity is checked on every `/readyz`, so a certificate that expires while the server runs
//! turns it unready too, and a renewed one read by the reload loop turns it ready again.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::tls::{self, Window};

/// A named readiness condition added by another part of the process (e.g. "caches synced").
type Check = (&'static str, Box<dyn Fn() -> bool + Send + Sync>);

/// A validity window readable without a lock.
struct AtomicWindow {
    not_before: AtomicI64,
    not_after: AtomicI64,
}

impl AtomicWindow {
    const ALWAYS: Window = Window {
        not_before: i64::MIN,
        not_after: i64::MAX,
    };

    fn new(w: Window) -> Self {
        AtomicWindow {
            not_before: AtomicI64::new(w.not_before),
            not_after: AtomicI64::new(w.not_after),
        }
    }

    fn set(&self, w: Window) {
        self.not_before.store(w.not_before, Ordering::Release);
        self.not_after.store(w.not_after, Ordering::Release);
    }

    fn is_valid(&self, now: i64) -> bool {
        Window {
            not_before: self.not_before.load(Ordering::Acquire),
            not_after: self.not_after.load(Ordering::Acquire),
        }
        .check(now)
        .is_ok()
    }
}

pub struct Readiness {
    certificate_loaded: AtomicBool,
    certificate: AtomicWindow,
    client_ca: AtomicWindow,
    shutting_down: AtomicBool,
    checks: Vec<Check>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            certificate_loaded: AtomicBool::new(false),
            certificate: AtomicWindow::new(AtomicWindow::ALWAYS),
            client_ca: AtomicWindow::new(AtomicWindow::ALWAYS),
            shutting_down: AtomicBool::new(false),
            checks: Vec::new(),
        }
    }
}

impl Readiness {
    /// Adds a condition `/readyz` waits for.
    pub fn add(&mut self, name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks.push((name, Box::new(check)));
    }

    /// A certificate is loaded (whatever its validity; see [`Readiness::set_certificate`]).
    pub fn set_certificate_loaded(&self, loaded: bool) {
        self.certificate_loaded.store(loaded, Ordering::Release);
    }

    /// The served certificate and its validity: outside it, not ready.
    pub fn set_certificate(&self, window: Window) {
        self.certificate.set(window);
        self.set_certificate_loaded(true);
    }

    /// The client CA bundle's validity (every CA in it): outside it, not ready.
    pub fn set_client_ca(&self, window: Window) {
        self.client_ca.set(window);
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
        let now = tls::now();
        if self.is_shutting_down() {
            missing.push("shutting down");
        }
        if !self.certificate_loaded.load(Ordering::Acquire) {
            missing.push("certificate");
        } else if !self.certificate.is_valid(now) {
            missing.push("certificate expired or not yet valid");
        }
        if !self.client_ca.is_valid(now) {
            missing.push("client CA bundle expired or not yet valid");
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
