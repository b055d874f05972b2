//! `serve --ui`: the posture page at `/` and its document at `/api/posture` on the admin port,
//! fed by a background scan.
//!
//! The scan judges the workloads with the server's own snapshots (topology, policy, namespace
//! labels) through the functions `audit --cluster` uses ([`crate::audit::cluster`]): in a
//! cluster it lists the workloads and counts the running pods; without a cluster it reads
//! `--ui-manifests`. When the pods cannot be read (no RBAC for them, say) the page shows the
//! predicted placement only, and says so. Requests only read the last finished document.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::extract::State as Extract;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::Client;

use super::state::State;
use crate::admission::NamespaceLabels;
use crate::audit::{Report, Scan, cluster, pods};
use crate::cluster::NamespaceCache;

/// Where the scan finds workloads.
pub enum Source {
    /// The cluster's Deployments, StatefulSets, ReplicaSets and HPAs, and its Pods.
    Cluster {
        client: Client,
        namespaces: Arc<NamespaceCache>,
    },
    /// Manifest files and directories, re-read at every scan (`--ui-manifests`).
    Manifests(Vec<PathBuf>),
    /// Nothing to judge: the page shows the topology only.
    None,
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Source::Cluster { .. } => "cluster",
            Source::Manifests(_) => "manifests",
            Source::None => "none",
        }
    }
}

/// The latest posture document, shared by the scan and the handlers.
#[derive(Default)]
pub struct Posture {
    document: ArcSwapOption<String>,
}

impl Posture {
    /// The last finished document, if a scan has finished.
    pub fn document(&self) -> Option<Arc<String>> {
        self.document.load_full()
    }

    pub fn publish(&self, document: String) {
        self.document.store(Some(Arc::new(document)));
    }
}

/// Headers for the page: it may run its inline script and style and fetch from its own
/// origin, nothing else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                           connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                           frame-ancestors 'none'";

/// `/` (the page) and `/api/posture` (its document).
pub fn router(posture: Arc<Posture>) -> Router {
    let page = crate::posture::page();
    Router::new()
        .route(
            "/",
            get(move || {
                let page = page.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
                            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        page,
                    )
                }
            }),
        )
        .route("/api/posture", get(document))
        .with_state(posture)
}

async fn document(Extract(posture): Extract<Arc<Posture>>) -> Response {
    match posture.document() {
        Some(doc) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            doc.as_str().to_owned(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::RETRY_AFTER, "2"),
            ],
            "{\"status\":\"scanning\"}\n",
        )
            .into_response(),
    }
}

/// Scans now and then every `interval` until `stop` completes.
pub async fn run(
    state: Arc<State>,
    posture: Arc<Posture>,
    source: Source,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut previous_error: Option<String> = None;
    loop {
        // Decisions need a topology: wait for the node cache's first list.
        while !state.snapshots.topology_loaded() {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let scan = tokio::select! {
            _ = &mut stop => return,
            scan = scan(&state, &source, interval) => scan,
        };
        match scan {
            Ok(document) => {
                if let Some(e) = previous_error.take() {
                    tracing::info!(previous = %e, "posture scan succeeded again");
                }
                posture.publish(document);
            }
            Err(e) => {
                let message = crate::errors::chain(e.as_ref());
                if previous_error.as_deref() != Some(&message) {
                    tracing::warn!(error = %message, "posture scan failed; the page keeps the last document");
                }
                previous_error = Some(message);
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One scan: the posture document, or why none could be made.
pub async fn scan(state: &State, source: &Source, interval: Duration) -> anyhow::Result<String> {
    let started = Instant::now();
    let topology = state.topology();
    let policy = state.policy();
    let (mut report, pods_read, error) = match source {
        Source::Cluster { client, namespaces } => {
            let docs = cluster::load_workloads(client).await?;
            let owners = cluster::owners(&topology, &docs);
            let (counted, error) = match pods::count(client, &owners, |_, _| {}).await {
                Ok(c) => (Some(c), None),
                Err(e) => {
                    let message = crate::errors::chain(e.as_ref());
                    tracing::warn!(error = %message, "posture scan: pods not read; showing the predicted placement only");
                    (None, Some(format!("pods not read: {message}")))
                }
            };
            let read = counted.is_some();
            let labels = namespace_labels(namespaces);
            let report = tokio::task::spawn_blocking(move || {
                cluster::report(docs, &labels, &topology, &policy, counted)
            })
            .await?;
            (report, read, error)
        }
        Source::Manifests(paths) => {
            let paths = paths.clone();
            let report = tokio::task::spawn_blocking(move || {
                let docs = crate::load::manifests(&paths)?;
                anyhow::Ok(Report::build(&docs, &topology, &policy))
            })
            .await??;
            (report, false, None)
        }
        Source::None => (Report::build(&[], &topology, &policy), false, None),
    };
    report.scan = Some(Scan {
        at: rfc3339_now(),
        workloads: source.name(),
        pods: pods_read,
        error,
        duration_ms: started.elapsed().as_millis() as u64,
        interval_seconds: interval.as_secs(),
    });
    Ok(tokio::task::spawn_blocking(move || crate::posture::document(&report)).await?)
}

/// Every namespace's labels, as the audit reads them.
fn namespace_labels(cache: &NamespaceCache) -> HashMap<String, BTreeMap<String, String>> {
    cache
        .names()
        .into_iter()
        .filter_map(|ns| {
            let labels = cache.labels(&ns)?;
            Some((ns, (*labels).clone()))
        })
        .collect()
}

/// Now as `2026-03-01T12:00:00Z`.
fn rfc3339_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
