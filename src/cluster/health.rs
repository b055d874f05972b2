//! How a cluster cache is doing: synced once, and how stale it is now.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Shared by a cache's watch task (writer) and readiness, metrics and logs (readers).
#[derive(Debug)]
pub struct CacheHealth {
    name: &'static str,
    synced: watch::Sender<bool>,
    /// When the watch last delivered something, and whether it is failing since.
    status: Mutex<(Instant, bool)>,
}

impl CacheHealth {
    pub fn new(name: &'static str) -> Self {
        CacheHealth {
            name,
            synced: watch::Sender::new(false),
            status: Mutex::new((Instant::now(), false)),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The first complete list has been received. Never reset: a broken watch later keeps
    /// serving from the cache rather than making the pod unready.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    pub fn mark_synced(&self) {
        self.synced.send_replace(true);
    }

    /// Waits until the first complete list has been received.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// The watch delivered an event: the cache is current.
    pub fn ok(&self) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.1 {
            tracing::info!(cache = self.name, "watch recovered");
        }
        *s = (Instant::now(), false);
    }

    /// The watch failed; the cache keeps its last contents while the watcher backs off.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.1 = true;
        tracing::warn!(cache = self.name, stale_for = ?s.0.elapsed(), %error, "watch failed; serving from the cache");
    }

    /// Zero while the watch is healthy; while it fails, the time since it last delivered.
    pub fn staleness(&self) -> Duration {
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.1 { s.0.elapsed() } else { Duration::ZERO }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_grows_only_while_failing() {
        let h = CacheHealth::new("nodes");
        assert_eq!(h.staleness(), Duration::ZERO);
        h.failed(&"connection refused");
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.staleness() >= Duration::from_millis(5));
        h.ok();
        assert_eq!(h.staleness(), Duration::ZERO);
        assert!(!h.is_synced());
        h.mark_synced();
        h.failed(&"gone");
        assert!(h.is_synced(), "a broken watch does not unsync the cache");
    }
}
