//! Logging: `tracing` to stderr, as text for people or JSON for log pipelines.
//!
//! The level comes from `RUST_LOG` (default `info`): decisions that patch or deny log at
//! info, allows at debug, so a busy cluster's log stays readable. A bare level such as
//! `RUST_LOG=debug` applies to spreadguard only: the crates below it (hyper, h2, rustls,
//! kube, ...) stay at `warn` unless a directive names them (`RUST_LOG=debug,h2=trace`), so
//! debugging a decision does not bury it under HTTP/2 frames and TLS records.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

const DEFAULT: &str = "warn,spreadguard=info";

/// The filter for a `RUST_LOG` value: every dependency at `warn`, spreadguard at the bare
/// level given (default `info`), and any directive that names a target as written.
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let mut out = vec!["warn".to_owned()];
    let mut own = "info".to_owned();
    for directive in rust_log.unwrap_or("").split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        let bare_level = !directive.contains(['=', '[', ':'])
            && ["off", "error", "warn", "info", "debug", "trace"]
                .contains(&directive.to_ascii_lowercase().as_str());
        if bare_level {
            own = directive.to_owned();
        } else {
            out.push(directive.to_owned());
        }
    }
    out.insert(1, format!("spreadguard={own}"));
    out.join(",")
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is a no-op),
/// so tests and `main` can both call it.
pub fn init(format: LogFormat) {
    let directives = filter_directives(std::env::var("RUST_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(DEFAULT));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Lets a message through at most once per key every `every`, and says how many it held
/// back meanwhile: warnings about what clients send must not let a client flood the log.
pub struct Throttle {
    every: std::time::Duration,
    last: std::sync::Mutex<Vec<(&'static str, std::time::Instant, u64)>>,
}

impl Throttle {
    pub const fn new(every: std::time::Duration) -> Self {
        Throttle {
            every,
            last: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// `Some(held back since the last one)` when a message for `key` may be logged now.
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.iter_mut().find(|(k, _, _)| *k == key) {
            None => {
                last.push((key, now, 0));
                Some(0)
            }
            Some((_, at, held)) if now.duration_since(*at) >= self.every => {
                let suppressed = *held;
                *at = now;
                *held = 0;
                Some(suppressed)
            }
            Some((_, _, held)) => {
                *held += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_applies_to_spreadguard_only() {
        assert_eq!(filter_directives(None), "warn,spreadguard=info");
        assert_eq!(filter_directives(Some("debug")), "warn,spreadguard=debug");
        assert_eq!(
            filter_directives(Some("trace,h2=debug")),
            "warn,spreadguard=trace,h2=debug"
        );
        assert_eq!(
            filter_directives(Some("spreadguard::server=trace")),
            "warn,spreadguard=info,spreadguard::server=trace"
        );
        // RUST_LOG=debug: spreadguard's debug lines, none of h2's, rustls' or hyper's.
        let filter = EnvFilter::try_new(filter_directives(Some("debug"))).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            use tracing::Level;
            assert!(tracing::enabled!(target: "spreadguard::server", Level::DEBUG));
            assert!(!tracing::enabled!(target: "h2::codec", Level::DEBUG));
            assert!(!tracing::enabled!(target: "rustls::server", Level::DEBUG));
            assert!(!tracing::enabled!(target: "hyper::proto", Level::DEBUG));
            assert!(!tracing::enabled!(target: "kube_runtime", Level::INFO));
            assert!(tracing::enabled!(target: "h2::codec", Level::WARN));
        });
        let filter = EnvFilter::try_new(filter_directives(Some("debug,h2=debug"))).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            assert!(tracing::enabled!(target: "h2::codec", tracing::Level::DEBUG));
        });
    }

    #[test]
    fn throttle_lets_one_through_per_interval_and_counts_the_rest() {
        let t = Throttle::new(std::time::Duration::from_millis(50));
        assert_eq!(t.allow("a"), Some(0));
        assert_eq!(t.allow("a"), None);
        assert_eq!(t.allow("a"), None);
        assert_eq!(t.allow("b"), Some(0));
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(t.allow("a"), Some(2));
    }
}
