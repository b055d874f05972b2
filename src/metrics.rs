//! Prometheus metrics, every series prefixed `spreadguard_`.
//!
//! Labels are low-cardinality by construction: kinds and operations outside the handled set
//! collapse to `other`, so a client cannot grow the registry by sending odd requests.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::exceptions::{Day, Exception};
use crate::engine::policy::Mode;
use crate::engine::{Finding, Injection, TopologySummary};

/// Handling-time buckets in seconds: fine from 10 µs, where a healthy webhook lives, up to
/// the API server's own 10 s webhook timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_015, 0.000_02, 0.000_025, 0.000_03, 0.000_04, 0.000_05, 0.000_06, 0.000_075,
    0.000_1, 0.000_125, 0.000_15, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.002, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// What the webhook answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DecisionLabel {
    /// Allowed without changes.
    allowed,
    /// Allowed with a patch.
    patched,
    /// Denied.
    denied,
    /// Allowed or denied because the engine failed (see `failOpen`).
    error,
}

impl DecisionLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionLabel::allowed => "allowed",
            DecisionLabel::patched => "patched",
            DecisionLabel::denied => "denied",
            DecisionLabel::error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `mutate` or `validate` (not `endpoint`: the Prometheus Operator adds a target label of
    /// that name, which would rename ours to `exported_endpoint`).
    pub webhook: &'static str,
    pub kind: &'static str,
    pub operation: &'static str,
    pub decision: DecisionLabel,
    pub mode: &'static str,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    rule: &'static str,
    severity: &'static str,
    mode: &'static str,
    dry_run: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InjectionLabels {
    item: &'static str,
}

/// What was reloaded.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reloaded {
    certificate,
    policy,
    nodes,
}

impl Reloaded {
    pub const ALL: [Reloaded; 3] = [Reloaded::certificate, Reloaded::policy, Reloaded::nodes];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    what: Reloaded,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConfigLabels {
    config: Reloaded,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// Why a TLS handshake on the admission port failed.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum HandshakeFailure {
    /// The client sent an alert about spreadguard's certificate (the API server's `x509:
    /// certificate signed by unknown authority`: its caBundle does not trust our CA).
    client_rejected_certificate,
    /// With `--client-ca`: the client's certificate is not signed by a CA of the bundle.
    unknown_ca,
    /// With `--client-ca`: the client presented no certificate.
    no_client_certificate,
    /// With `--client-ca`: the client's certificate is expired, not yet valid, or otherwise bad.
    bad_client_certificate,
    /// No common version, cipher suite or ALPN protocol, or bytes that are not TLS.
    protocol,
    /// The handshake did not finish within `--header-read-timeout`.
    timeout,
    /// The client closed or reset the connection during the handshake.
    eof,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 7] = [
        HandshakeFailure::client_rejected_certificate,
        HandshakeFailure::unknown_ca,
        HandshakeFailure::no_client_certificate,
        HandshakeFailure::bad_client_certificate,
        HandshakeFailure::protocol,
        HandshakeFailure::timeout,
        HandshakeFailure::eof,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::client_rejected_certificate => "client_rejected_certificate",
            HandshakeFailure::unknown_ca => "unknown_ca",
            HandshakeFailure::no_client_certificate => "no_client_certificate",
            HandshakeFailure::bad_client_certificate => "bad_client_certificate",
            HandshakeFailure::protocol => "protocol",
            HandshakeFailure::timeout => "timeout",
            HandshakeFailure::eof => "eof",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    reason: HandshakeFailure,
}

/// Why a request on the admission port was refused before an AdmissionReview was answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Rejection {
    /// 400: the body is JSON but not an AdmissionReview.
    bad_review,
    /// 400: the client went away mid-body.
    incomplete_body,
    /// 404: not `POST /mutate` or `/validate`.
    not_found,
    /// 408: the body did not arrive within the read timeout.
    body_timeout,
    /// 413: the body is over `--max-body-bytes`.
    too_large,
    /// 415: the body is not `application/json`.
    not_json,
    /// 503: the bodies in flight would exceed `--max-inflight-body-bytes`.
    body_budget,
    /// 503: a review of at least `--heavy-review-bytes` waited longer than the read timeout
    /// for the one heavy review before it.
    heavy_review_busy,
}

impl Rejection {
    pub const ALL: [Rejection; 8] = [
        Rejection::bad_review,
        Rejection::incomplete_body,
        Rejection::not_found,
        Rejection::body_timeout,
        Rejection::too_large,
        Rejection::not_json,
        Rejection::body_budget,
        Rejection::heavy_review_busy,
    ];

    pub fn code(self) -> u16 {
        match self {
            Rejection::bad_review | Rejection::incomplete_body => 400,
            Rejection::not_found => 404,
            Rejection::body_timeout => 408,
            Rejection::too_large => 413,
            Rejection::not_json => 415,
            Rejection::body_budget | Rejection::heavy_review_busy => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::bad_review => "bad_review",
            Rejection::incomplete_body => "incomplete_body",
            Rejection::not_found => "not_found",
            Rejection::body_timeout => "body_timeout",
            Rejection::too_large => "too_large",
            Rejection::not_json => "not_json",
            Rejection::body_budget => "body_budget",
            Rejection::heavy_review_busy => "heavy_review_busy",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    code: u16,
    reason: Rejection,
}

/// The version and commit this binary was built from (`build.rs` reads the commit from git;
/// `unknown` outside a checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = match option_env!("SPREADGUARD_BUILD_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// The process's metrics. Cheap to share behind an `Arc`; every update is lock-free or takes
/// a short read lock inside `prometheus-client`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<WebhookLabels, Histogram>,
    findings: Family<FindingLabels, Counter>,
    injections: Family<InjectionLabels, Counter>,
    zones: Gauge,
    nodes: Gauge,
    unzoned_nodes: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    cert_expiry: Gauge,
    engine_panics: Counter,
    cache_staleness: Family<CacheLabels, Gauge<f64, AtomicU64>>,
    ready: Gauge,
    config_ok: Family<ConfigLabels, Gauge>,
    config_ok_at: Family<ConfigLabels, Gauge<f64, AtomicU64>>,
    handshake_failures: Family<HandshakeLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    inflight_body_bytes: Gauge,
    namespace_mode_invalid: Counter,
    cached_objects: Family<CacheLabels, Gauge>,
    exceptions: Family<ExceptionStateLabels, Gauge>,
    exception_expiry: Family<ExceptionLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExceptionStateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExceptionLabels {
    exception: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("spreadguard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests answered, by webhook, kind, operation, decision, mode and dry-run",
            requests.clone(),
        );
        let latency = Family::<WebhookLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS.iter().copied())) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "admission_duration",
            "Time to handle an admission request, from a read body to an encoded answer",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "findings",
            "Findings reported by /validate, by rule, severity, mode and dry-run",
            findings.clone(),
        );
        let injections = Family::<InjectionLabels, Counter>::default();
        registry.register(
            "injections",
            "Items injected into workloads by /mutate (not counted in audit mode or dry runs)",
            injections.clone(),
        );
        let zones = Gauge::default();
        registry.register(
            "topology_zones",
            "Zones in the topology snapshot",
            zones.clone(),
        );
        let nodes = Gauge::default();
        registry.register(
            "topology_nodes",
            "Nodes in the topology snapshot",
            nodes.clone(),
        );
        let unzoned_nodes = Gauge::default();
        registry.register(
            "topology_unzoned_nodes",
            "Nodes without a zone label in the topology snapshot",
            unzoned_nodes.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads of the certificate, policy and nodes files, by result",
            reloads.clone(),
        );
        let cert_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate, as a Unix timestamp",
            cert_expiry.clone(),
        );
        let engine_panics = Counter::default();
        registry.register(
            "engine_panics",
            "Requests on which the decision engine panicked (answered per failOpen)",
            engine_panics.clone(),
        );
        let cache_staleness = Family::<CacheLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "cache_staleness_seconds",
            "Seconds since a cluster cache last heard from the API server",
            cache_staleness.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /readyz answers 200 (certificate valid, topology and caches loaded, not shutting down), else 0",
            ready.clone(),
        );
        let config_ok = Family::<ConfigLabels, Gauge>::default();
        registry.register(
            "config_last_reload_successful",
            "1 when the last load of the policy, certificate or nodes file succeeded, 0 when it was refused (the previous one stays in force)",
            config_ok.clone(),
        );
        let config_ok_at = Family::<ConfigLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the policy, certificate or nodes file was last loaded successfully, as a Unix timestamp",
            config_ok_at.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the version and commit of this binary",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: VERSION,
                commit: COMMIT,
            })
            .set(1);
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes on the admission port that failed, by reason",
            handshake_failures.clone(),
        );
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "http_rejections",
            "Requests on the admission port refused before an AdmissionReview answer, by status code and reason",
            rejections.clone(),
        );
        let inflight_body_bytes = Gauge::default();
        registry.register(
            "inflight_body_bytes",
            "Bytes of request bodies held in memory now, against --max-inflight-body-bytes",
            inflight_body_bytes.clone(),
        );
        let namespace_mode_invalid = Counter::default();
        registry.register(
            "namespace_mode_label_invalid",
            "Requests in a namespace whose spreadguard.io/mode label is not enforce, warn, audit or off (the policy's mode applied instead)",
            namespace_mode_invalid.clone(),
        );
        // Counters that alerts take increase() of start at zero for every known label value,
        // so that the first failure is an increase and not a new series.
        for what in Reloaded::ALL {
            for result in ["success", "failure"] {
                let _ = reloads.get_or_create(&ReloadLabels { what, result });
            }
        }
        for reason in HandshakeFailure::ALL {
            let _ = handshake_failures.get_or_create(&HandshakeLabels { reason });
        }
        for reason in Rejection::ALL {
            let _ = rejections.get_or_create(&RejectionLabels {
                code: reason.code(),
                reason,
            });
        }
        for webhook in ["mutate", "validate"] {
            for decision in [
                DecisionLabel::allowed,
                DecisionLabel::patched,
                DecisionLabel::denied,
                DecisionLabel::error,
            ] {
                for kind in ["Deployment", "StatefulSet", "ReplicaSet", "Pod"] {
                    for operation in ["CREATE", "UPDATE"] {
                        let _ = requests.get_or_create(&RequestLabels {
                            webhook,
                            kind,
                            operation,
                            decision,
                            mode: "enforce",
                            dry_run: false,
                        });
                    }
                }
            }
        }
        let cached_objects = Family::<CacheLabels, Gauge>::default();
        registry.register(
            "cached_objects",
            "Objects a cluster cache holds for decisions (autoscalers, budgets)",
            cached_objects.clone(),
        );
        let exceptions = Family::<ExceptionStateLabels, Gauge>::default();
        registry.register(
            "exceptions",
            "The policy's exceptions, by state (active or expired, as of today in UTC)",
            exceptions.clone(),
        );
        for state in ["active", "expired"] {
            exceptions
                .get_or_create(&ExceptionStateLabels { state })
                .set(0);
        }
        let exception_expiry = Family::<ExceptionLabels, Gauge>::default();
        registry.register(
            "exception_expiry_timestamp_seconds",
            "When each expiring exception stops applying (the end of its expires day, UTC), as a Unix timestamp",
            exception_expiry.clone(),
        );
        Metrics {
            registry,
            exceptions,
            exception_expiry,
            requests,
            latency,
            findings,
            injections,
            zones,
            nodes,
            unzoned_nodes,
            reloads,
            cert_expiry,
            engine_panics,
            cache_staleness,
            ready,
            config_ok,
            config_ok_at,
            handshake_failures,
            rejections,
            inflight_body_bytes,
            namespace_mode_invalid,
            cached_objects,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn request(&self, labels: &RequestLabels, elapsed: Duration) {
        self.requests.get_or_create(labels).inc();
        self.latency
            .get_or_create(&WebhookLabels {
                webhook: labels.webhook,
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn findings(&self, findings: &[Finding], mode: Mode, dry_run: bool) {
        for f in findings {
            self.findings
                .get_or_create(&FindingLabels {
                    rule: f.rule.as_str(),
                    severity: f.severity.as_str(),
                    mode: mode.as_str(),
                    dry_run,
                })
                .inc();
        }
    }

    pub fn injections(&self, injected: &[Injection]) {
        for i in injected {
            self.injections
                .get_or_create(&InjectionLabels { item: i.as_str() })
                .inc();
        }
    }

    pub fn topology(&self, summary: &TopologySummary) {
        self.zones.set(summary.zones.len() as i64);
        self.nodes.set(summary.nodes as i64);
        self.unzoned_nodes.set(summary.unzoned_nodes as i64);
    }

    /// A reload of `what`, applied (`ok`) or refused.
    pub fn reload(&self, what: Reloaded, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                what,
                result: if ok { "success" } else { "failure" },
            })
            .inc();
        self.config_loaded(what, ok);
    }

    /// The state of `what` after a load at startup or a reload: whether the last attempt
    /// succeeded and, when it did, when.
    pub fn config_loaded(&self, what: Reloaded, ok: bool) {
        self.config_ok
            .get_or_create(&ConfigLabels { config: what })
            .set(ok as i64);
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.config_ok_at
                .get_or_create(&ConfigLabels { config: what })
                .set(now);
        }
    }

    /// Whether `/readyz` answers 200 now.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(ready as i64);
    }

    pub fn handshake_failure(&self, reason: HandshakeFailure) {
        self.handshake_failures
            .get_or_create(&HandshakeLabels { reason })
            .inc();
    }

    pub fn rejection(&self, reason: Rejection) {
        self.rejections
            .get_or_create(&RejectionLabels {
                code: reason.code(),
                reason,
            })
            .inc();
    }

    pub fn set_inflight_body_bytes(&self, bytes: usize) {
        self.inflight_body_bytes.set(bytes as i64);
    }

    pub fn namespace_mode_invalid(&self) {
        self.namespace_mode_invalid.inc();
    }

    pub fn certificate_expiry(&self, unix_seconds: i64) {
        self.cert_expiry.set(unix_seconds);
    }

    pub fn engine_panic(&self) {
        self.engine_panics.inc();
    }

    /// The policy's exceptions as of `today`: counts by state, and each expiry. Called when
    /// metrics are scraped, so the states are always current.
    pub fn exceptions(&self, exceptions: &[Exception], today: Day) {
        let active = exceptions.iter().filter(|e| e.active_on(today)).count();
        self.exceptions
            .get_or_create(&ExceptionStateLabels { state: "active" })
            .set(active as i64);
        self.exceptions
            .get_or_create(&ExceptionStateLabels { state: "expired" })
            .set((exceptions.len() - active) as i64);
        self.exception_expiry.clear();
        for e in exceptions {
            if let Some(last) = e.expires {
                self.exception_expiry
                    .get_or_create(&ExceptionLabels {
                        exception: e.name.clone(),
                    })
                    .set(last.end_unix());
            }
        }
    }

    /// How many objects a cache publishes for decisions.
    pub fn cached(&self, cache: &'static str, count: usize) {
        self.cached_objects
            .get_or_create(&CacheLabels { cache })
            .set(count as i64);
    }

    /// For the cluster caches: how long ago a cache last heard from the API server.
    pub fn cache_staleness(&self, cache: &'static str, seconds: f64) {
        self.cache_staleness
            .get_or_create(&CacheLabels { cache })
            .set(seconds);
    }
}
