//! Hot reload of the certificate, the policy and the nodes file.
//!
//! Kubernetes updates Secret and ConfigMap volumes by swapping a `..data` symlink, not by
//! writing the files, so watching a file for writes misses updates. Instead the files are
//! read through their paths (resolving every symlink afresh) on a short interval and compared
//! with what was last seen. A change that fails to load keeps the old material in place; the
//! failure is logged and counted once per distinct content.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{Metrics, Reloaded};

/// Why new file contents were not applied.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

/// Applies new file contents; `Err` keeps the old material.
pub type Apply = Box<dyn Fn(&[Vec<u8>]) -> Result<(), ApplyError> + Send + Sync>;

/// One set of files loaded together (a certificate and its key must change as a pair).
pub struct Watched {
    what: Reloaded,
    paths: Vec<PathBuf>,
    apply: Apply,
    /// What was last read, applied or not.
    seen: Option<Vec<Vec<u8>>>,
    /// The last read error, so that it is reported once.
    read_error: Option<String>,
}

impl Watched {
    /// `initial` is the content already loaded at startup.
    pub fn new(what: Reloaded, paths: Vec<PathBuf>, initial: Vec<Vec<u8>>, apply: Apply) -> Self {
        Watched {
            what,
            paths,
            apply,
            seen: Some(initial),
            read_error: None,
        }
    }

    async fn read(&mut self, metrics: &Metrics) -> Option<Vec<Vec<u8>>> {
        let mut contents = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            match tokio::fs::read(path).await {
                Ok(bytes) => contents.push(bytes),
                Err(e) => {
                    let error = format!("{}: {e}", path.display());
                    if self.read_error.as_ref() != Some(&error) {
                        tracing::warn!(what = ?self.what, %error, "reload: cannot read; keeping the current one");
                        metrics.reload(self.what, false);
                        self.read_error = Some(error);
                    }
                    return None;
                }
            }
        }
        self.read_error = None;
        Some(contents)
    }

    async fn poll(&mut self, metrics: &Metrics) {
        let Some(mut contents) = self.read(metrics).await else {
            return;
        };
        if self.seen.as_ref() == Some(&contents) {
            return;
        }
        // A volume update between reading the certificate and reading its key gives a pair
        // that does not match; reading again gives a consistent one.
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let result = (self.apply)(&contents);
            if result.is_ok() || attempts == 3 {
                break result;
            }
            match self.read(metrics).await {
                Some(again) if again != contents => contents = again,
                _ => break result,
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(what = ?self.what, "reloaded");
                metrics.reload(self.what, true);
            }
            Err(error) => {
                let error = crate::errors::chain(&*error);
                tracing::warn!(what = ?self.what, %error, "reload failed; keeping the current one");
                metrics.reload(self.what, false);
            }
        }
        self.seen = Some(contents);
    }
}

/// Polls every watched file set on an interval until `stop` completes.
pub async fn run(
    mut watched: Vec<Watched>,
    interval: Duration,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    if watched.is_empty() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {
                for w in &mut watched {
                    w.poll(&metrics).await;
                }
            }
        }
    }
}
