//! `serve --reports <interval>`: keeps the cluster's policy reports up to date.
//!
//! Every interval the replica holding the `coordination.k8s.io` Lease (kube-lease-manager:
//! one holder at a time, taken over by another replica when the holder stops renewing)
//! judges the live cluster as `audit --cluster` does, from watches it keeps while it holds
//! the Lease (every list the audit reads, pods reduced as they arrive: nothing is listed
//! again per round), writes one report object per namespace
//! by server-side apply with the field manager `spreadguard`, and deletes the objects it
//! wrote before that the new report no longer has (a namespace whose workloads are gone).
//! A replica that stops releases the Lease, so another takes over at once.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube_lease_manager::LeaseManagerBuilder;

use crate::audit::cluster::{self, Source};
use crate::audit::formats::policy_report::{self, Flavour, SOURCE};
use crate::audit::watched::{Watched, Watches};
use crate::load;

/// The field manager of every report written, and the value of their
/// `app.kubernetes.io/managed-by` label.
pub const FIELD_MANAGER: &str = SOURCE;
/// The Lease the writing replica holds.
pub const LEASE_NAME: &str = "spreadguard-reports";

/// How the reports are written.
#[derive(Clone, Debug)]
pub struct Options {
    pub interval: Duration,
    pub flavour: Flavour,
    /// The policy file (`None`: the defaults), read afresh for every report.
    pub policy: Option<std::path::PathBuf>,
    /// The namespace of the Lease (the release's).
    pub lease_namespace: String,
    /// This replica's name in the Lease (the pod's name).
    pub identity: String,
    /// How long the Lease holds without renewal: another replica takes over within it.
    pub lease_duration: Duration,
}

/// Errors of the report writer.
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    /// The Lease could not be created or read.
    #[error("the reports Lease: {0}")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
}

/// Writes the reports while this replica holds the Lease, until `stop` completes; then
/// releases the Lease.
pub async fn run(
    client: Client,
    options: Options,
    stop: impl Future<Output = ()>,
) -> Result<(), ReportsError> {
    let duration = options.lease_duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(&options.lease_namespace)
        .with_identity(&options.identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        .with_field_manager(format!("{FIELD_MANAGER}-lease"))
        .build()
        .await
        .map_err(ReportsError::Lease)?;
    let (mut leader, task) = manager.watch().await;
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop);
    let mut watching: Option<Watching> = None;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            changed = leader.changed() => {
                if changed.is_err() {
                    tracing::warn!("the reports Lease manager stopped");
                    break;
                }
                let holds = *leader.borrow_and_update();
                tracing::info!(holds, lease = LEASE_NAME, "reports Lease changed hands");
                if holds {
                    // A round (which may wait for new watches to list the cluster) gives
                    // way to `stop`.
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = write_once(&client, &options, &mut watching) => {}
                    }
                    tick.reset();
                } else {
                    // Only the writer watches the cluster.
                    watching = None;
                }
            }
            _ = tick.tick() => {
                if *leader.borrow() {
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = write_once(&client, &options, &mut watching) => {}
                    }
                }
            }
        }
    }
    drop(leader);
    match task.await {
        Ok(Ok(manager)) => {
            if let Err(e) = manager.release().await {
                tracing::warn!(error = %e, "releasing the reports Lease");
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "the reports Lease manager failed"),
        Err(e) => tracing::warn!(error = %e, "the reports Lease task"),
    }
    Ok(())
}

/// The watches the writer judges from, and the workload kinds they were started for.
struct Watching {
    watched: Arc<Watched>,
    _tasks: Watches,
    kinds: Vec<crate::engine::kinds::CustomKind>,
}

/// How long a round waits for new watches to list the cluster once.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// One round, its failure logged (the next interval tries again). Starts the watches on the
/// first round (and again when the policy declares other workload kinds).
async fn write_once(client: &Client, options: &Options, watching: &mut Option<Watching>) {
    let started = std::time::Instant::now();
    let result = async {
        let policy = load::policy_file(options.policy.as_deref())?;
        if watching
            .as_ref()
            .is_none_or(|w| w.kinds != policy.workload_kinds)
        {
            *watching = None;
            let (watched, tasks) = Watched::start(client, &policy).await?;
            *watching = Some(Watching {
                watched,
                _tasks: tasks,
                kinds: policy.workload_kinds.clone(),
            });
        }
        let watched = &watching.as_ref().expect("started above").watched;
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
        while !watched.synced() {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the watches have not listed the cluster within {SYNC_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        write(client, options, &policy, watched).await
    }
    .await;
    match result {
        Ok((written, deleted)) => tracing::info!(
            written,
            deleted,
            ms = started.elapsed().as_millis() as u64,
            "reports written"
        ),
        Err(e) => tracing::warn!(error = format!("{e:#}"), "writing the reports"),
    }
}

/// Judges the cluster as `watched` holds it, applies the report objects and deletes the
/// stale ones; returns how many were written and deleted.
pub async fn write(
    client: &Client,
    options: &Options,
    policy: &crate::engine::policy::Policy,
    watched: &Watched,
) -> anyhow::Result<(usize, usize)> {
    let report = cluster::report_from(&Source::Watched(watched), policy, None, |_, _| {}).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let objects = policy_report::objects(&report, options.flavour, now);
    let resource = api_resource(options.flavour);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let mut current: BTreeSet<(String, String)> = BTreeSet::new();
    for object in &objects {
        let (ns, name) = (&object.metadata.namespace, &object.metadata.name);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        api.patch(name, &apply, &Patch::Apply(object))
            .await
            .map_err(|e| anyhow::anyhow!("applying {ns}/{name}: {e}"))?;
        current.insert((ns.clone(), name.clone()));
    }
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let ours = all
        .list(
            &ListParams::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}")),
        )
        .await
        .map_err(|e| anyhow::anyhow!("listing {}: {e}", resource.plural))?;
    let mut deleted = 0;
    for o in ours.items {
        let ns = o.metadata.namespace.clone().unwrap_or_default();
        let name = o.metadata.name.clone().unwrap_or_default();
        if current.contains(&(ns.clone(), name.clone())) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(anyhow::anyhow!("deleting stale {ns}/{name}: {e}")),
        }
    }
    Ok((objects.len(), deleted))
}

/// The report resource of `flavour`, for dynamic requests.
pub fn api_resource(flavour: Flavour) -> ApiResource {
    let (group, plural) = flavour.group_resource();
    let version = flavour.api_version().rsplit('/').next().unwrap_or_default();
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, flavour.kind()),
        plural,
    )
}
