//! `spreadguard serve` flags. Every flag also reads a `SPREADGUARD_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// Arguments of `spreadguard serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// PEM certificate chain served on the TLS port (leaf first, intermediates after it).
    #[arg(long, env = "SPREADGUARD_TLS_CERT", required_unless_present = "dev")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the serving certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SPREADGUARD_TLS_KEY", required_unless_present = "dev")]
    pub tls_key: Option<PathBuf>,

    /// PEM bundle of CAs whose client certificates are accepted; when set, a client without
    /// a valid certificate is refused at the handshake.
    #[arg(long, env = "SPREADGUARD_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,

    /// Policy file (YAML); the built-in defaults when omitted. Reloaded when it changes.
    #[arg(long, env = "SPREADGUARD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Nodes file (`kubectl get nodes -o yaml`) the topology is built from, instead of the
    /// cluster's nodes. Reloaded when it changes.
    #[arg(long, env = "SPREADGUARD_NODES")]
    pub nodes: Option<PathBuf>,

    /// Kubeconfig for watching Nodes and Namespaces when no --nodes file is given
    /// [default: the in-cluster service account, then KUBECONFIG].
    #[arg(long, env = "SPREADGUARD_KUBECONFIG", conflicts_with_all = ["nodes", "assume_zones"])]
    pub kubeconfig: Option<PathBuf>,

    /// Watch no cluster and read no nodes file: decide against the policy's `assumedZones`.
    #[arg(long, env = "SPREADGUARD_ASSUME_ZONES", conflicts_with = "nodes")]
    pub assume_zones: bool,

    /// How long a burst of node changes is gathered before the topology is rebuilt.
    #[arg(long, env = "SPREADGUARD_TOPOLOGY_DEBOUNCE", default_value = "200ms", value_parser = parse_duration)]
    pub topology_debounce: Duration,

    /// Watch StorageClasses, PersistentVolumeClaims and PersistentVolumes (needs get, list
    /// and watch on them). Without them HA017–HA020 and the stateful zone spread stay silent.
    #[arg(long, env = "SPREADGUARD_WATCH_STORAGE", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_storage: bool,

    /// How often to ask the API server whether Karpenter's `karpenter.sh/v1` NodePools are
    /// served, until they are (then they are watched).
    #[arg(long, env = "SPREADGUARD_DISCOVERY_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub discovery_interval: Duration,

    /// Address of the TLS admission port [default: 0.0.0.0:8443, or 127.0.0.1:8443 with --dev].
    #[arg(long, env = "SPREADGUARD_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Address of the plain-HTTP admin port (`/livez`, `/readyz`, `/metrics`, and with --ui
    /// the posture page)
    /// [default: 0.0.0.0:8080, or 127.0.0.1:8080 with --dev].
    #[arg(long, env = "SPREADGUARD_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "SPREADGUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Development mode: generated certificates, the bundled demo topology (and with --ui the
    /// bundled example workloads), loopback only.
    #[arg(long, env = "SPREADGUARD_DEV")]
    pub dev: bool,

    /// Serve the posture page at `/` and its JSON document at `/api/posture` on the admin port,
    /// from a background scan of the cluster's workloads and pods (or of --ui-manifests).
    #[arg(long, env = "SPREADGUARD_UI")]
    pub ui: bool,

    /// How often the posture page's scan runs.
    #[arg(long, env = "SPREADGUARD_UI_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub ui_interval: Duration,

    /// Manifest files or directories the posture page judges instead of the cluster's workloads
    /// (re-read at every scan; comma-separated in the environment variable).
    #[arg(long, env = "SPREADGUARD_UI_MANIFESTS", value_delimiter = ',')]
    pub ui_manifests: Vec<PathBuf>,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub reports: ReportsArgs,
}

/// `--reports`: policy reports kept up to date in the cluster by one replica at a time.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ReportsArgs {
    /// Write policy reports of the whole cluster (as `audit --cluster -o openreports`) every
    /// interval, by server-side apply with the field manager `spreadguard`; one replica at a
    /// time, through a coordination.k8s.io Lease. Off when not given.
    #[arg(long = "reports", env = "SPREADGUARD_REPORTS", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Which reports: `openreports` (openreports.io/v1alpha1 Report) or `policyreport`
    /// (wgpolicyk8s.io/v1alpha2 PolicyReport).
    #[arg(long = "reports-format", env = "SPREADGUARD_REPORTS_FORMAT", value_enum, default_value_t = ReportsFormat::Openreports)]
    pub format: ReportsFormat,

    /// Namespace of the Lease (the release's) [default: the service account's namespace,
    /// else `default`].
    #[arg(
        long = "reports-lease-namespace",
        env = "SPREADGUARD_REPORTS_LEASE_NAMESPACE"
    )]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease [default: the host name (the pod's name)].
    #[arg(long = "reports-identity", env = "SPREADGUARD_REPORTS_IDENTITY")]
    pub identity: Option<String>,

    /// How long the Lease holds without renewal: when the writer stops, another replica
    /// takes over within it.
    #[arg(long = "reports-lease-duration", env = "SPREADGUARD_REPORTS_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
}

/// The API `--reports` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportsFormat {
    #[default]
    Openreports,
    Policyreport,
}

/// The default `--max-body-bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The default `--max-inflight-body-bytes`: eight bodies of the largest size at once, or
/// thousands of ordinary ones. Decoding and judging a review takes at most about 15 MiB
/// beyond its body (HA028 bounds the values decoded), so the bodies, the reviews being judged
/// and the caches fit the chart's 512 MiB memory limit with room to spare.
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The default `--heavy-review-bytes`.
pub const DEFAULT_HEAVY_REVIEW_BYTES: usize = 256 * 1024;

/// Transport limits and life-cycle timings.
#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Most concurrent connections on the TLS port; further clients wait in the accept queue.
    #[arg(long, env = "SPREADGUARD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Largest request body accepted, in bytes. An UPDATE review carries the object and the
    /// stored object, each up to etcd's 1.5 MiB and larger again as JSON when its text needs
    /// escaping, plus the envelope: 8 MiB leaves room for the largest legal one.
    #[arg(long, env = "SPREADGUARD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Most bytes of request bodies held at once across all connections; a request whose body
    /// does not fit is answered 503 at once (`spreadguard_http_rejections_total{reason="body_budget"}`).
    #[arg(long, env = "SPREADGUARD_MAX_INFLIGHT_BODY_BYTES", default_value_t = DEFAULT_MAX_INFLIGHT_BODY_BYTES)]
    pub max_inflight_body_bytes: usize,

    /// Reviews with a body at least this large are judged one at a time, on a blocking
    /// thread: scanning and judging the worst body of the largest size takes up to about
    /// 40 ms of CPU (README, "Performance"), which must not hold the async workers (`/livez`,
    /// small reviews) while several arrive at once. A review that cannot start
    /// within --header-read-timeout is answered 503
    /// (`spreadguard_http_rejections_total{reason="heavy_review_busy"}`).
    #[arg(long, env = "SPREADGUARD_HEAVY_REVIEW_BYTES", default_value_t = DEFAULT_HEAVY_REVIEW_BYTES)]
    pub heavy_review_bytes: usize,

    /// Time a new connection has, from the moment it is accepted, to finish the TLS handshake
    /// and send its first request's headers, all together; and again, once a request's
    /// headers arrived, to send its body (408 and the connection closes otherwise). Later
    /// requests on a kept-alive HTTP/1.1 connection get it for their headers too.
    #[arg(long, env = "SPREADGUARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A connection (HTTP/1.1 or HTTP/2) with no request in progress for this long is closed
    /// (HTTP/2 with a GOAWAY), so that idle connections cannot hold every --max-connections
    /// slot. The API server opens a new one when it needs it.
    #[arg(long, env = "SPREADGUARD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// After SIGTERM: how long `/readyz` reports false while new connections are still
    /// accepted, so that endpoints can be updated.
    #[arg(long, env = "SPREADGUARD_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// After the grace period: how long in-flight requests may take to finish.
    #[arg(long, env = "SPREADGUARD_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How often the certificate, policy and nodes files are checked for new contents.
    #[arg(long, env = "SPREADGUARD_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub reload_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            heavy_review_bytes: DEFAULT_HEAVY_REVIEW_BYTES,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            reload_interval: Duration::from_secs(2),
        }
    }
}

impl ServeArgs {
    /// Arguments for a server on the given material, with every other flag at its default.
    /// Tests and embedders start from here.
    pub fn new(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Self {
        ServeArgs {
            tls_cert: Some(tls_cert.into()),
            tls_key: Some(tls_key.into()),
            client_ca: None,
            config: None,
            nodes: None,
            kubeconfig: None,
            assume_zones: false,
            topology_debounce: Duration::from_millis(200),
            watch_storage: true,
            discovery_interval: Duration::from_secs(60),
            listen: None,
            admin_listen: None,
            log_format: LogFormat::Text,
            dev: false,
            ui: false,
            ui_interval: Duration::from_secs(60),
            ui_manifests: Vec::new(),
            limits: Limits::default(),
            reports: ReportsArgs::default(),
        }
    }
}

impl ServeArgs {
    /// The TLS port's address, after defaults.
    pub fn listen_addr(&self) -> SocketAddr {
        let host = if self.dev {
            [127, 0, 0, 1]
        } else {
            [0, 0, 0, 0]
        };
        self.listen.unwrap_or((host, 8443).into())
    }

    /// The admin port's address, after defaults.
    pub fn admin_addr(&self) -> SocketAddr {
        let host = if self.dev {
            [127, 0, 0, 1]
        } else {
            [0, 0, 0, 0]
        };
        self.admin_listen.unwrap_or((host, 8080).into())
    }
}

/// `250ms`, `2s`, `1m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 500ms, 2s or 1m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_common_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
