//! `spreadguard serve`: the admission webhook over TLS, with an admin port beside it.
//!
//! [`Server::bind`] loads everything (policy, topology, certificate) and binds both ports, so
//! a misconfiguration fails before anything listens; [`Server::run`] serves until the given
//! shutdown future completes, then: not ready, a grace period that still accepts, drain.

pub mod admin;
pub mod args;
pub mod dev;
pub mod readiness;
pub mod reload;
pub mod router;
pub mod shutdown;
pub mod snapshots;
pub mod state;
pub mod stream;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

pub use self::args::{Limits, ServeArgs};
pub use self::router::router;
pub use self::state::State;

use self::reload::Watched;
use self::tls::{CertResolver, TlsError};
use crate::load::{self, LoadError};
use crate::metrics::Reloaded;

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
    tls: Arc<ServerConfig>,
    watched: Vec<Watched>,
    limits: Limits,
}

// === impl Server ===

impl Server {
    /// Loads the policy, the topology and the certificate, and binds both ports.
    pub async fn bind(args: &ServeArgs) -> Result<Server, ServeError> {
        let (Some(cert_path), Some(key_path)) = (&args.tls_cert, &args.tls_key) else {
            return Err(ServeError::MissingTls);
        };
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
        let mut state = State::new(policy)
            .with_max_body_bytes(args.limits.max_body_bytes)
            .with_body_read_timeout(args.limits.header_read_timeout);
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

        let cert_bytes = load::read(cert_path)?;
        let key_bytes = load::read(key_path)?;
        let serving =
            tls::load_serving_cert(&cert_bytes, &key_bytes).map_err(|source| ServeError::Tls {
                path: cert_path.clone(),
                source,
            })?;
        state.metrics().certificate_expiry(serving.not_after);
        let resolver = Arc::new(CertResolver::new(&serving));
        let client_ca = match &args.client_ca {
            Some(path) => Some((path, load::read(path)?)),
            None => None,
        };
        let config = tls::server_config(resolver.clone(), client_ca.as_ref().map(|(_, b)| &b[..]))
            .map_err(|source| ServeError::Tls {
                path: client_ca
                    .as_ref()
                    .map_or(cert_path.clone(), |(p, _)| (*p).clone()),
                source,
            })?;
        state.readiness.set_certificate_loaded(true);
        {
            let metrics = state.metrics().clone();
            watched.push(Watched::new(
                Reloaded::certificate,
                vec![cert_path.clone(), key_path.clone()],
                vec![cert_bytes, key_bytes],
                Box::new(move |files| {
                    let serving = tls::load_serving_cert(&files[0], &files[1])?;
                    resolver.set(&serving);
                    metrics.certificate_expiry(serving.not_after);
                    Ok(())
                }),
            ));
        }

        let listener = bind(args.listen_addr()).await?;
        let admin = bind(args.admin_addr()).await?;
        Ok(Server {
            state,
            listener,
            admin,
            tls: Arc::new(config),
            watched,
            limits: args.limits.clone(),
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
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };

        tracing::info!(addr = %admin.local_addr()?, "admin port: /livez /readyz /metrics");
        let admin_task = tokio::spawn(
            axum::serve(admin, admin::router(state.clone()))
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
        // HTTP/2 has no header timeout: pings find clients that went silent.
        http.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let connections = Connections {
            acceptor: TlsAcceptor::from(tls),
            http: Arc::new(http),
            service: TowerToHyperService::new(router(state.clone())),
            handshake_timeout: limits.header_read_timeout,
            graceful: GracefulShutdown::new(),
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

        let open = connections.graceful.count();
        tracing::info!(connections = open, "draining");
        match tokio::time::timeout(limits.drain_timeout, connections.graceful.shutdown()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => {
                tracing::warn!(timeout = ?limits.drain_timeout, "drain timed out; closing the remaining connections")
            }
        }
        let _ = stop_tx.send(true);
        let _ = reload_task.await;
        match admin_task.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }
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
    acceptor: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    service: Service,
    handshake_timeout: Duration,
    graceful: GracefulShutdown,
}

impl Connections {
    fn spawn(&self, accepted: Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)>) {
        let Some((stream, peer, permit)) = accepted else {
            return;
        };
        let acceptor = self.acceptor.clone();
        let http = self.http.clone();
        let service = self.service.clone();
        let handshake_timeout = self.handshake_timeout;
        let watcher = self.graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let io = match stream::first_bytes(tls, handshake_timeout).await {
                Ok(Some(io)) => io,
                Ok(None) => {
                    tracing::debug!(%peer, "no request within the header timeout");
                    return;
                }
                Err(error) => {
                    tracing::debug!(%peer, %error, "read failed");
                    return;
                }
            };
            let conn = http.serve_connection(TokioIo::new(io), service);
            if let Err(error) = watcher.watch(conn).await {
                tracing::debug!(%peer, %error, "connection closed with an error");
            }
        });
    }
}
