//! `spreadguard serve`: the admission webhook over TLS, with an admin port beside it.
//!
//! [`Server::bind`] loads everything (policy, topology, certificate) and binds both ports, so
//! a misconfiguration fails before anything listens; [`Server::run`] serves until the given
//! shutdown future completes, then: not ready, a grace period that still accepts, drain.

pub mod admin;
pub mod args;
pub mod budget;
pub mod dev;
mod handshake;
pub mod posture;
pub mod readiness;
pub mod reload;
pub mod router;
pub mod shutdown;
pub mod snapshots;
pub mod state;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

pub use self::args::{Limits, ServeArgs};
pub use self::router::router;
pub use self::state::State;

use self::reload::Watched;
use self::tls::{CertResolver, Tls, TlsError};
use crate::load::{self, LoadError};
use crate::metrics::{HandshakeFailure, Metrics, Reloaded};
use crate::telemetry::Throttle;

/// Errors that stop the server from starting. Each names the file or address at fault.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--tls-cert and --tls-key are required (or use --dev)")]
    MissingTls,
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{}", path.display())]
    Tls {
        path: PathBuf,
        #[source]
        source: TlsError,
    },
    #[error("listening on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("preparing --dev")]
    Dev(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No --nodes file, and no cluster to watch either (give --nodes FILE, or --assume-zones).
    #[error("watching the cluster's nodes (or give --nodes FILE, or --assume-zones)")]
    Cluster(#[source] crate::cluster::ClusterError),
}

/// A bound, fully loaded server, not yet serving.
pub struct Server {
    state: Arc<State>,
    listener: TcpListener,
    admin: TcpListener,
    tls: Tls,
    watched: Vec<Watched>,
    limits: Limits,
    /// `--ui`: the posture page's document, its source and how often it is rescanned.
    ui: Option<Ui>,
}

struct Ui {
    posture: Arc<posture::Posture>,
    source: posture::Source,
    interval: Duration,
}

// === impl Server ===

impl Server {
    /// Loads the policy, the topology and the certificate, and binds both ports.
    pub async fn bind(args: &ServeArgs) -> Result<Server, ServeError> {
        if args.tls_cert.is_none() || args.tls_key.is_none() {
            return Err(ServeError::MissingTls);
        }
        let mut watched = Vec::new();

        let policy_bytes = args.config.as_deref().map(load::read).transpose()?;
        let policy = match (&args.config, &policy_bytes) {
            (Some(path), Some(bytes)) => load::policy_from(path, bytes)?,
            _ => Default::default(),
        };
        // Without a nodes file, the topology and the namespace labels come from the cluster.
        let cluster = match (&args.nodes, args.assume_zones) {
            (None, false) => {
                let client = crate::cluster::client(args.kubeconfig.as_deref())
                    .await
                    .map_err(ServeError::Cluster)?;
                let mut caches = crate::cluster::Caches::default()
                    .with_discovery_interval(args.discovery_interval);
                if !args.watch_storage {
                    caches = caches.without_storage();
                }
                Some((client, caches))
            }
            _ => None,
        };
        let ui_source = match (&cluster, args.ui_manifests.is_empty()) {
            (_, false) => posture::Source::Manifests(args.ui_manifests.clone()),
            (Some((client, _)), true) => posture::Source::Cluster {
                client: client.clone(),
            },
            (None, true) => posture::Source::None,
        };
        let mut state = State::new(policy)
            .with_max_body_bytes(args.limits.max_body_bytes)
            .with_max_inflight_body_bytes(args.limits.max_inflight_body_bytes)
            .with_body_read_timeout(args.limits.header_read_timeout)
            .with_heavy_review_bytes(args.limits.heavy_review_bytes);
        // A nodes file's StorageClasses and PersistentVolumes, reloaded with it.
        let file_volumes = args
            .nodes
            .as_ref()
            .map(|_| Arc::new(snapshots::FileVolumes::default()));
        if let Some(v) = &file_volumes {
            state = state.with_volumes(v.clone());
        }
        if let Some((_, caches)) = &cluster {
            state = state
                .with_namespaces(caches.namespaces.clone())
                .with_readiness_check(
                    "nodes, namespaces, autoscalers, disruption budgets, node pools and storage listed",
                    caches.synced_check(),
                );
            if caches.watch_storage {
                state = state.with_volumes(caches.storage.clone());
            }
        }
        let state = Arc::new(state);
        state.metrics().config_loaded(Reloaded::policy, true);
        let topology_source = match (&args.nodes, args.assume_zones) {
            (Some(path), _) => format!("nodes file {}", path.display()),
            (None, true) => format!(
                "assumed: {} zones (--assume-zones)",
                state.policy().assumed_zones
            ),
            (None, false) => "the cluster's Nodes (watch)".to_owned(),
        };
        tracing::info!(
            version = crate::metrics::VERSION,
            commit = crate::metrics::COMMIT,
            policy_file = args.config.as_ref().map_or("none (defaults)".into(), |p| p.display().to_string()),
            policy = %crate::policy_file::summary(&state.policy()),
            topology = topology_source,
            "starting spreadguard"
        );

        if let (Some(path), Some(bytes)) = (&args.config, policy_bytes) {
            let snapshots = state.snapshots.clone();
            let file = path.clone();
            watched.push(Watched::new(
                Reloaded::policy,
                vec![path.clone()],
                vec![bytes],
                Box::new(move |files| {
                    snapshots.publish_policy(load::policy_from(&file, &files[0])?);
                    Ok(())
                }),
            ));
        }

        match (&args.nodes, cluster) {
            (None, Some((client, caches))) => {
                tracing::info!(
                    storage = caches.watch_storage,
                    "watching Nodes, Namespaces, HorizontalPodAutoscalers, PodDisruptionBudgets, NodePools (when served) and storage; ready once all are listed"
                );
                let metrics = state.metrics().clone();
                // The first lists are a burst of garbage: purge it at once, then serve with
                // the allocator's default (see `allocator`).
                crate::allocator::purge_eagerly();
                caches.spawn(
                    client,
                    state.snapshots.clone(),
                    state.snapshots.clone(),
                    metrics,
                    args.topology_debounce,
                );
                tokio::spawn(async move {
                    caches.wait_synced().await;
                    crate::allocator::purge_lazily();
                });
            }
            (None, None) => {
                tracing::warn!("--assume-zones: deciding against the policy's assumedZones");
                state.snapshots.publish_assumed_topology();
            }
            (Some(path), _) => {
                let bytes = load::read(path)?;
                let volumes = file_volumes.unwrap_or_default();
                let publish = {
                    let snapshots = state.snapshots.clone();
                    move |inventory: load::Inventory| {
                        volumes.store(inventory.volumes);
                        snapshots.publish_node_pools(inventory.pools);
                        snapshots.publish_nodes(&inventory.nodes);
                    }
                };
                publish(load::nodes_from(path, &bytes)?);
                state.metrics().config_loaded(Reloaded::nodes, true);
                let file = path.clone();
                watched.push(Watched::new(
                    Reloaded::nodes,
                    vec![path.clone()],
                    vec![bytes],
                    Box::new(move |files| {
                        publish(load::nodes_from(&file, &files[0])?);
                        Ok(())
                    }),
                ));
            }
        }

        let tls = load_tls(args, &state, &mut watched)?;
        let listener = bind(args.listen_addr()).await?;
        let admin = bind(args.admin_addr()).await?;
        Ok(Server {
            state,
            listener,
            admin,
            tls,
            watched,
            limits: args.limits.clone(),
            ui: args.ui.then(|| Ui {
                posture: Arc::default(),
                source: ui_source,
                interval: args.ui_interval,
            }),
        })
    }

    /// The TLS port's bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener")
    }

    /// The admin port's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("a bound listener")
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// `--ui`: the posture document the page reads.
    pub fn posture(&self) -> Option<&Arc<posture::Posture>> {
        self.ui.as_ref().map(|ui| &ui.posture)
    }

    /// Serves until `shutdown` completes, then shuts down gracefully. Returns once every
    /// connection has drained (or the drain timeout passed).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            state,
            listener,
            admin,
            tls,
            watched,
            limits,
            ui,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };

        let mut admin_router = admin::router(state.clone());
        let ui_task = match ui {
            Some(Ui {
                posture,
                source,
                interval,
            }) => {
                tracing::info!(addr = %admin.local_addr()?, source = source.name(), "admin port: /livez /readyz /metrics, the posture page at / and /api/posture");
                admin_router = admin_router.merge(posture::router(posture.clone()));
                Some(tokio::spawn(posture::run(
                    state.clone(),
                    posture,
                    source,
                    interval,
                    stopped(),
                )))
            }
            None => {
                tracing::info!(addr = %admin.local_addr()?, "admin port: /livez /readyz /metrics");
                None
            }
        };
        let admin_task = tokio::spawn(
            axum::serve(admin, admin_router)
                .with_graceful_shutdown(stopped())
                .into_future(),
        );
        let reload_task = tokio::spawn(reload::run(
            watched,
            limits.reload_interval,
            state.metrics().clone(),
            stopped(),
        ));

        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        // Pings find HTTP/2 clients that went silent; the idle timeout closes the ones that
        // answer pings but send nothing.
        http.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let (drain_tx, _) = watch::channel(false);
        let connections = Connections {
            tls,
            http: Arc::new(http),
            service: TowerToHyperService::new(router(state.clone())),
            header_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            drain: drain_tx,
            metrics: state.metrics().clone(),
        };
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        tracing::info!(addr = %listener.local_addr()?, "serving admission reviews");

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = accept(&listener, &permits) => connections.spawn(accepted),
            }
        }

        state.readiness.begin_shutdown();
        tracing::info!(grace = ?limits.shutdown_grace, "shutting down: not ready, still accepting during the grace period");
        let grace = tokio::time::sleep(limits.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                _ = &mut grace => break,
                accepted = accept(&listener, &permits) => connections.spawn(accepted),
            }
        }
        drop(listener);

        let open = connections.drain.receiver_count();
        tracing::info!(connections = open, "draining");
        let _ = connections.drain.send(true);
        match tokio::time::timeout(limits.drain_timeout, connections.drain.closed()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => {
                tracing::warn!(timeout = ?limits.drain_timeout, "drain timed out; closing the remaining connections")
            }
        }
        let _ = stop_tx.send(true);
        let _ = reload_task.await;
        if let Some(task) = ui_task {
            let _ = task.await;
        }
        match admin_task.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// Loads the serving certificate (and the client CA bundle), makes the TLS configuration and
/// watches the files. A certificate (or CA) outside its validity is served all the same at
/// startup, but loudly: an error in the log, `/readyz` false and
/// `spreadguard_config_last_reload_successful{config="certificate"}` 0 until the reload loop
/// reads a valid one. Exiting instead would put the pod in a crash loop whose back-off
/// delays recovery by minutes after the Secret is renewed, and would hide the reason from
/// the metrics and probes.
fn load_tls(
    args: &ServeArgs,
    state: &Arc<State>,
    watched: &mut Vec<Watched>,
) -> Result<Tls, ServeError> {
    let (Some(cert_path), Some(key_path)) = (&args.tls_cert, &args.tls_key) else {
        return Err(ServeError::MissingTls);
    };
    let mut paths = vec![cert_path.clone(), key_path.clone()];
    let mut contents = vec![load::read(cert_path)?, load::read(key_path)?];
    let at = |path: &PathBuf| {
        let path = path.clone();
        move |source| ServeError::Tls { path, source }
    };
    let serving = tls::load_serving_cert(&contents[0], &contents[1]).map_err(at(cert_path))?;
    let client_ca = match &args.client_ca {
        Some(path) => {
            let bytes = load::read(path)?;
            let ca = tls::ClientCa::parse(&bytes).map_err(at(path))?;
            paths.push(path.clone());
            contents.push(bytes);
            Some(ca)
        }
        None => None,
    };
    let resolver = Arc::new(CertResolver::new(&serving));
    let config = tls::server_config(resolver.clone(), client_ca.as_ref())
        .map_err(at(args.client_ca.as_ref().unwrap_or(cert_path)))?;
    let metrics = state.metrics().clone();
    metrics.certificate_expiry(serving.not_after);
    state.readiness.set_certificate(serving.window);
    let mut valid = true;
    if let Err(e) = serving.check_validity(tls::now()) {
        tracing::error!(path = %cert_path.display(), error = %crate::errors::chain(&e),
            "the serving certificate is not valid now: serving it, but NOT READY until a valid one is loaded");
        valid = false;
    }
    if let Some(ca) = &client_ca {
        state.readiness.set_client_ca(ca.window);
        if let Err(e) = ca.check_validity(tls::now()) {
            tracing::error!(error = %crate::errors::chain(&e),
                "the client CA bundle is not valid now: NOT READY until a valid one is loaded");
            valid = false;
        }
    }
    metrics.config_loaded(Reloaded::certificate, valid);
    let tls: Tls = Arc::new(arc_swap::ArcSwap::from_pointee(config));

    let with_ca = client_ca.is_some();
    let current = tls.clone();
    let state = state.clone();
    watched.push(Watched::new(
        Reloaded::certificate,
        paths,
        contents,
        Box::new(move |files| {
            // Everything is checked before anything is replaced: a refused reload keeps the
            // certificate and the CA bundle in service as they were.
            let now = tls::now();
            let serving = tls::load_serving_cert(&files[0], &files[1])?;
            serving.check_validity(now)?;
            let ca = match with_ca {
                true => {
                    let ca = tls::ClientCa::parse(&files[2])?;
                    ca.check_validity(now)?;
                    Some(ca)
                }
                false => None,
            };
            if let Some(ca) = &ca {
                let config = tls::server_config(resolver.clone(), Some(ca))?;
                current.store(Arc::new(config));
                state.readiness.set_client_ca(ca.window);
            }
            resolver.set(&serving);
            state.readiness.set_certificate(serving.window);
            metrics.certificate_expiry(serving.not_after);
            Ok(())
        }),
    ));
    Ok(tls)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Waits for a connection slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(e) => {
            // Typically out of file descriptors: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

type Service = TowerToHyperService<axum::Router>;

/// What every connection task needs.
struct Connections {
    tls: Tls,
    http: Arc<auto::Builder<TokioExecutor>>,
    service: Service,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// `true` asks every connection to finish gracefully; each connection task holds a
    /// receiver, so the sender sees when all are gone.
    drain: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Connections {
    fn spawn(&self, accepted: Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)>) {
        let Some((stream, peer, permit)) = accepted else {
            return;
        };
        // One deadline from accept for the TLS handshake, the first bytes and the first
        // request's headers together, however slowly each part trickles in.
        let deadline = Instant::now() + self.header_timeout;
        let acceptor = TlsAcceptor::from(self.tls.load_full());
        let http = self.http.clone();
        let activity = Arc::new(Activity::new());
        let service = Tracked {
            inner: self.service.clone(),
            activity: activity.clone(),
        };
        let idle_timeout = self.idle_timeout;
        let mut drain = self.drain.subscribe();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    handshake_failed(&metrics, peer, handshake::classify(&error), &error);
                    return;
                }
                Err(_) => {
                    handshake_failed(&metrics, peer, HandshakeFailure::timeout, &"timed out");
                    return;
                }
            };
            let conn = http.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let mut closing = false;
            loop {
                let first_request_due = !activity.seen_request() && !closing;
                let idle_at = activity.idle_since() + idle_timeout;
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "connection closed with an error");
                        }
                        return;
                    }
                    _ = drain.wait_for(|d| *d), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = tokio::time::sleep_until(deadline), if first_request_due => {
                        if !activity.seen_request() {
                            tracing::debug!(%peer, "no request headers within the header timeout; closing");
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(idle_at), if !closing => {
                        if activity.is_idle_for(idle_timeout) {
                            tracing::debug!(%peer, "idle; closing");
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            }
        });
    }
}

static HANDSHAKE_WARNINGS: Throttle = Throttle::new(Duration::from_secs(10));

fn handshake_failed(
    metrics: &Metrics,
    peer: SocketAddr,
    reason: HandshakeFailure,
    error: &dyn std::fmt::Display,
) {
    metrics.handshake_failure(reason);
    // Clients that connect and leave (port scanners, TCP probes) are not worth a warning.
    if reason == HandshakeFailure::eof {
        tracing::debug!(%peer, %error, "TLS handshake: the client closed the connection");
        return;
    }
    if let Some(suppressed) = HANDSHAKE_WARNINGS.allow(reason.as_str()) {
        tracing::warn!(
            %peer,
            reason = reason.as_str(),
            %error,
            suppressed,
            hint = handshake::hint(reason),
            "TLS handshake failed"
        );
    }
}

/// Requests in progress on one connection, and since when none has been.
struct Activity {
    started: Instant,
    /// Requests in progress.
    open: AtomicUsize,
    /// Whether any request arrived.
    seen: AtomicBool,
    /// Milliseconds from `started` to the last request start or end.
    changed_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            open: AtomicUsize::new(0),
            seen: AtomicBool::new(false),
            changed_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.changed_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.seen.store(true, Ordering::Release);
        self.open.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InProgress(self.clone())
    }

    fn seen_request(&self) -> bool {
        self.seen.load(Ordering::Acquire)
    }

    /// When a request last started or ended (or the connection opened).
    fn idle_since(&self) -> Instant {
        self.started + Duration::from_millis(self.changed_ms.load(Ordering::Acquire))
    }

    fn is_idle_for(&self, timeout: Duration) -> bool {
        self.open.load(Ordering::Acquire) == 0 && self.idle_since() + timeout <= Instant::now()
    }
}

/// One request in progress; ends when dropped.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// The router, counting the requests in progress on its connection.
#[derive(Clone)]
struct Tracked {
    inner: Service,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response =
        <Service as hyper::service::Service<hyper::Request<hyper::body::Incoming>>>::Response;
    type Error = <Service as hyper::service::Service<hyper::Request<hyper::body::Incoming>>>::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let in_progress = self.activity.begin();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_progress);
            response
        })
    }
}
