//! `serve --ui`: the posture page at `/` and its document at `/api/posture` on the admin port,
//! fed by a background scan.
//!
//! In a cluster the scan is `audit --cluster`'s own ([`crate::audit::cluster::report`], as
//! `serve --reports` runs it) under the server's current policy: workloads listed, running
//! pods counted as they stream. When the pods cannot be read (no RBAC for them, say) the
//! workloads are judged alone and the page shows the predicted placement only, and says so.
//! Without a cluster it judges `--ui-manifests` against the server's topology snapshot.
//! Requests only read the last finished document.

use std::collections::HashSet;
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
use crate::audit::{Live, Report, Scan, cluster};
use crate::engine::Topology;

/// Where the scan finds workloads.
pub enum Source {
    /// The cluster's Deployments, StatefulSets, ReplicaSets and HPAs, and its Pods.
    Cluster { client: Client },
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
        Source::Cluster { client } => match cluster::report(client, &policy, None, |_, _| {}).await
        {
            Ok(report) => (report, true, None),
            Err(e) => {
                // Most likely no RBAC for pods: the workloads alone still show the predicted
                // placement. If they cannot be listed either, this scan fails.
                let message = crate::errors::chain(e.as_ref());
                tracing::warn!(error = %message, "posture scan: the cluster audit failed; trying without the pods");
                let mut inputs = cluster::load(client, &policy).await?;
                let mut inventory = std::mem::take(&mut inputs.inventory);
                let report = tokio::task::spawn_blocking(move || {
                    let topology = Topology::from_parts(
                        std::mem::take(&mut inventory.nodes),
                        std::mem::take(&mut inventory.pools),
                        &policy,
                    );
                    let live = Live {
                        namespaces: &inputs.namespaces,
                        selected_budgets: &HashSet::new(),
                    };
                    Report::build_live(
                        &inputs.docs,
                        &topology,
                        &policy,
                        &live,
                        Some(&inventory.volumes),
                    )
                })
                .await?;
                (
                    report,
                    false,
                    Some(format!("running pods not read: {message}")),
                )
            }
        },
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
