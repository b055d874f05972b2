//! A small fake Kubernetes API server for Nodes and Namespaces (and the storage objects and
//! NodePools spreadguard also watches), speaking plain HTTP on 127.0.0.1: list with a
//! resourceVersion and `limit`/`continue` pages, watch (chunked JSON lines) from a
//! resourceVersion with bookmarks, `410 Gone` for compacted versions, discovery of
//! `karpenter.sh/v1` when NodePools are served, and test controls to drop every watch
//! connection, hold lists, or fail every request.
//!
//! It implements the part of the list/watch protocol that kube-runtime's watcher uses, with
//! faults on demand that a real API server does not produce when asked; what a real one does
//! is tested against the real kube-apiserver in tests/e2e_*.rs.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    resource: &'static str,
    kind: &'static str, // ADDED | MODIFIED | DELETED
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// resource ("nodes" | "namespaces") → name → object.
    objects: HashMap<&'static str, BTreeMap<String, Value>>,
    history: Vec<Change>,
    /// Watches from below this resourceVersion get 410 Gone.
    compacted: u64,
    lists: HashMap<&'static str, usize>,
    watches: HashMap<&'static str, usize>,
    gone: HashMap<&'static str, usize>,
    failing: bool,
    /// Whether `karpenter.sh/v1` NodePools are served (discovery answers 404 otherwise).
    node_pools: bool,
    /// resource → items already serialised (without `kind` and `apiVersion`), listed after
    /// `objects`: how the server holds 150,000 pods without building a `Value` per request.
    bulk: HashMap<&'static str, Vec<Arc<str>>>,
}

pub struct FakeApiServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
    /// Bumped to end every open watch connection abruptly.
    drops: watch::Sender<u64>,
    /// Lists wait while this is true.
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
    drops: watch::Receiver<u64>,
    hold: watch::Receiver<bool>,
}

fn resource_kind(resource: &str) -> Option<(&'static str, &'static str)> {
    match resource {
        "nodes" => Some(("nodes", "Node")),
        "namespaces" => Some(("namespaces", "Namespace")),
        "pods" => Some(("pods", "Pod")),
        "deployments" => Some(("deployments", "Deployment")),
        "statefulsets" => Some(("statefulsets", "StatefulSet")),
        "replicasets" => Some(("replicasets", "ReplicaSet")),
        "horizontalpodautoscalers" => Some(("horizontalpodautoscalers", "HorizontalPodAutoscaler")),
        "poddisruptionbudgets" => Some(("poddisruptionbudgets", "PodDisruptionBudget")),
        "storageclasses" => Some(("storageclasses", "StorageClass")),
        "persistentvolumeclaims" => Some(("persistentvolumeclaims", "PersistentVolumeClaim")),
        "persistentvolumes" => Some(("persistentvolumes", "PersistentVolume")),
        "nodepools" => Some(("nodepools", "NodePool")),
        _ => None,
    }
}

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        let inner = Arc::new(Mutex::new(Inner {
            rv: 100,
            ..Inner::default()
        }));
        let (changes, _) = broadcast::channel(1024);
        let (drops, drops_rx) = watch::channel(0);
        let (hold, hold_rx) = watch::channel(false);
        let shared = Shared {
            inner: inner.clone(),
            changes: changes.clone(),
            drops: drops_rx,
            hold: hold_rx,
        };
        let app = Router::new()
            .route("/api/v1/{resource}", get(handle))
            .route("/apis/{group}/{version}", get(discovery))
            .route("/apis/{group}/{version}/{resource}", get(handle_group))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeApiServer {
            addr,
            inner,
            changes,
            drops,
            hold,
            task,
        }
    }

    /// A kube client pointed at this server.
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        config.read_timeout = Some(Duration::from_secs(5));
        kube::Client::try_from(config).unwrap()
    }

    /// Writes a kubeconfig pointing at this server into `dir`, for processes and `--kubeconfig`.
    pub fn write_kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: 'http://{}'}}\n\
             users:\n- name: me\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: me}}\n\
             current-context: fake\n",
            self.addr
        );
        std::fs::write(&path, config).expect("writing the kubeconfig");
        path
    }

    /// Adds a namespaced object (a workload, an HPA) as is, keyed by `namespace/name`. Lists
    /// of these omit each item's `kind` and `apiVersion`, as the real API server does.
    pub fn put_object(&self, resource: &'static str, mut object: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = format!(
            "{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        let change = if inner
            .objects
            .entry(resource)
            .or_default()
            .insert(key, object.clone())
            .is_some()
        {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let change = Change {
            rv,
            resource,
            kind: change,
            object,
        };
        inner.history.push(change.clone());
        drop(inner);
        let _ = self.changes.send(change);
    }

    /// Removes a namespaced object added with [`FakeApiServer::put_object`].
    pub fn delete_object(&self, resource: &'static str, namespace: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        let Some(mut object) = inner
            .objects
            .get_mut(resource)
            .and_then(|o| o.remove(&format!("{namespace}/{name}")))
        else {
            return;
        };
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let change = Change {
            rv,
            resource,
            kind: "DELETED",
            object,
        };
        inner.history.push(change.clone());
        drop(inner);
        let _ = self.changes.send(change);
    }

    /// Serves `karpenter.sh/v1` NodePools (discovery finds them) or not.
    pub fn serve_node_pools(&self, served: bool) {
        self.inner.lock().unwrap().node_pools = served;
    }

    /// Adds or replaces a watched object of `resource` (storageclasses, persistentvolumes,
    /// persistentvolumeclaims, nodepools) as given, keyed by `namespace/name` or `name`; its
    /// watchers see the change.
    pub fn apply(&self, resource: &'static str, object: Value) {
        let (_, kind) = resource_kind(resource).expect("a resource the fake serves");
        let name = match object["metadata"]["namespace"].as_str() {
            Some(ns) => format!(
                "{ns}/{}",
                object["metadata"]["name"].as_str().unwrap_or_default()
            ),
            None => object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        let api_version = object["apiVersion"].as_str().unwrap_or("v1").to_owned();
        self.put_as(resource, kind, &api_version, &name, object);
    }

    /// Adds many objects at once without recording their history (a cluster's initial
    /// contents, for scale tests): watches see none of them, lists all of them.
    pub fn bulk(&self, resource: &'static str, objects: impl IntoIterator<Item = Value>) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv.to_string();
        let map = inner.objects.entry(resource).or_default();
        for mut object in objects {
            object["metadata"]["resourceVersion"] = json!(rv);
            let name = match object["metadata"]["namespace"].as_str() {
                Some(ns) => format!(
                    "{ns}/{}",
                    object["metadata"]["name"].as_str().unwrap_or_default()
                ),
                None => object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            map.insert(name, object);
        }
    }

    /// Adds many objects of a resource at once, already serialised as list items (no
    /// `kind` or `apiVersion`); they are listed, paginated, after the objects `put_object`
    /// added, and never watched.
    pub fn put_bulk(&self, resource: &'static str, items: impl IntoIterator<Item = String>) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        inner
            .bulk
            .entry(resource)
            .or_default()
            .extend(items.into_iter().map(Arc::from));
    }

    fn put(&self, resource: &'static str, kind: &'static str, name: &str, object: Value) {
        self.put_as(resource, kind, "v1", name, object);
    }

    fn put_as(
        &self,
        resource: &'static str,
        kind: &'static str,
        api_version: &str,
        name: &str,
        mut object: Value,
    ) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        if object["metadata"]["name"].is_null() {
            object["metadata"]["name"] = json!(name);
        }
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let objects = inner.objects.entry(resource).or_default();
        let change = if objects.insert(name.to_owned(), object.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let change = Change {
            rv,
            resource,
            kind: change,
            object,
        };
        inner.history.push(change.clone());
        drop(inner);
        let _ = self.changes.send(change);
    }

    /// Adds or replaces a Node with these labels (and a status block, as real nodes have).
    pub fn put_node(&self, name: &str, labels: &[(&str, &str)]) {
        self.put_node_with(name, labels, json!({}), "Ready");
    }

    /// Adds or replaces a Node with a spec (taints, unschedulable) and a Ready condition.
    pub fn put_node_with(&self, name: &str, labels: &[(&str, &str)], spec: Value, condition: &str) {
        let labels: BTreeMap<_, _> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let node = json!({
            "metadata": {"labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": condition}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0"}},
        });
        self.put("nodes", "Node", name, node);
    }

    pub fn delete_node(&self, name: &str) {
        self.delete("nodes", name);
    }

    /// Deletes an object of `resource` by its key (`name`, or `namespace/name`); its watchers
    /// see the deletion.
    pub fn delete(&self, resource: &'static str, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        let Some(mut object) = inner.objects.entry(resource).or_default().remove(key) else {
            return;
        };
        inner.rv += 1;
        object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let change = Change {
            rv: inner.rv,
            resource,
            kind: "DELETED",
            object,
        };
        inner.history.push(change.clone());
        drop(inner);
        let _ = self.changes.send(change);
    }

    pub fn put_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<_, _> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.put(
            "namespaces",
            "Namespace",
            name,
            json!({"metadata": {"labels": labels}, "status": {"phase": "Active"}}),
        );
    }

    /// Ends every open watch connection without a word, as a load balancer timeout would.
    pub fn drop_watches(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// Forgets history up to now, so watches from older versions get `410 Gone`, and drops
    /// the open watches so the clients have to come back with their old versions.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted = inner.rv;
        inner.history.clear();
        drop(inner);
        self.drop_watches();
    }

    /// While held, list requests wait (a slow first sync).
    pub fn hold_lists(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// While failing, every request gets a 500 and open watches end.
    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap().failing = failing;
        if failing {
            self.drop_watches();
        }
    }

    pub fn lists(&self, resource: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .lists
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    /// How many watches were answered `410 Gone`.
    pub fn gone(&self, resource: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .gone
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    pub fn watches(&self, resource: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .watches
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    /// Stops serving: connections are refused from now on.
    pub fn shutdown(&self) {
        self.task.abort();
        self.drop_watches();
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle_group(
    shared: State<Shared>,
    Path((group, version, resource)): Path<(String, String, String)>,
    query: RawQuery,
) -> Response {
    if group == "karpenter.sh" && !shared.inner.lock().unwrap().node_pools {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    // Only the built-in groups (and what this fake adds): `apps.kruise.io/v1beta1/statefulsets`
    // is another resource.
    let served = match resource.as_str() {
        "deployments" | "statefulsets" | "replicasets" => "apps/v1",
        "horizontalpodautoscalers" => "autoscaling/v2",
        "poddisruptionbudgets" => "policy/v1",
        "storageclasses" => "storage.k8s.io/v1",
        "nodepools" => "karpenter.sh/v1",
        _ => "",
    };
    if served != format!("{group}/{version}") {
        return (StatusCode::NOT_FOUND, "no such resource").into_response();
    }
    handle(shared, Path(resource), query).await
}

/// `/apis/{group}/{version}`: the resources of a group version (only `karpenter.sh/v1` is
/// asked for, and only served when NodePools are).
async fn discovery(
    State(shared): State<Shared>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    let served = shared.inner.lock().unwrap().node_pools;
    if group != "karpenter.sh" || version != "v1" || !served {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let body = json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "karpenter.sh/v1",
        "resources": [{"name": "nodepools", "singularName": "nodepool", "namespaced": false,
                       "kind": "NodePool", "verbs": ["get", "list", "watch"]}],
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Shared>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query: HashMap<String, String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let Some((resource, kind)) = resource_kind(&resource) else {
        return (StatusCode::NOT_FOUND, "no such resource").into_response();
    };
    if shared.inner.lock().unwrap().failing {
        return status(
            500,
            "InternalError",
            "the fake API server is failing on purpose",
        );
    }
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let from = query
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        return watch_response(shared, resource, kind, from, bookmarks);
    }
    let mut hold = shared.hold.clone();
    let _ = hold.wait_for(|held| !held).await;
    let mut inner = shared.inner.lock().unwrap();
    *inner.lists.entry(resource).or_default() += 1;
    let api_version = match resource {
        "deployments" | "statefulsets" | "replicasets" => "apps/v1",
        "horizontalpodautoscalers" => "autoscaling/v2",
        "poddisruptionbudgets" => "policy/v1",
        "storageclasses" => "storage.k8s.io/v1",
        "nodepools" => "karpenter.sh/v1",
        _ => "v1",
    };
    let strip = !matches!(resource, "nodes" | "namespaces");
    let objects: Vec<&Value> = inner
        .objects
        .get(resource)
        .map(|o| o.values().collect())
        .unwrap_or_default();
    let bulk: &[Arc<str>] = inner.bulk.get(resource).map_or(&[], Vec::as_slice);
    let total = objects.len() + bulk.len();
    // Pagination as the API server does it: `limit` items per page and an opaque
    // `continue` token for the rest, with `remainingItemCount`.
    let start = query
        .get("continue")
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(total);
    let end = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .map_or(total, |l| (start + l).min(total));
    let mut body = String::with_capacity(256 + (end - start) * 1024);
    let mut meta = json!({"resourceVersion": inner.rv.to_string()});
    if end < total {
        meta["continue"] = json!(format!("page-{end}"));
        meta["remainingItemCount"] = json!(total - end);
    }
    body.push_str(&format!(
        "{{\"kind\":\"{kind}List\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":["
    ));
    for i in start..end {
        if i > start {
            body.push(',');
        }
        if i < objects.len() {
            let mut item = objects[i].clone();
            if strip && let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            body.push_str(&item.to_string());
        } else {
            body.push_str(&bulk[i - objects.len()]);
        }
    }
    body.push_str("]}");
    drop(inner);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn line(v: Value) -> Result<Bytes, Infallible> {
    let mut s = v.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

fn watch_response(
    shared: Shared,
    resource: &'static str,
    kind: &'static str,
    from: u64,
    bookmarks: bool,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    *inner.watches.entry(resource).or_default() += 1;
    if from < inner.compacted {
        *inner.gone.entry(resource).or_default() += 1;
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("too old resource version: {from} ({})", inner.compacted), "reason": "Expired", "code": 410}});
        drop(inner);
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(futures::stream::iter([line(gone)])),
        )
            .into_response();
    }
    let backlog: Vec<Change> = inner
        .history
        .iter()
        .filter(|c| c.resource == resource && c.rv > from)
        .cloned()
        .collect();
    let mut live = shared.changes.subscribe();
    let current = inner.rv;
    drop(inner);
    let mut drops = shared.drops.clone();
    drops.mark_unchanged();
    let stream = async_stream(move |tx| async move {
        for c in backlog {
            if tx
                .send(line(json!({"type": c.kind, "object": c.object})))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut last = current;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                // A drop ordered before a change is never overtaken by it: a test that drops
                // the watches and then changes objects relies on the client missing them.
                biased;
                _ = drops.changed() => return,
                change = live.recv() => match change {
                    Ok(c) if c.resource == resource && c.rv > from => {
                        last = last.max(c.rv);
                        if tx.send(line(json!({"type": c.kind, "object": c.object}))).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let bookmark = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": "v1",
                        "metadata": {"resourceVersion": last.to_string()}}});
                    if tx.send(line(bookmark)).await.is_err() { return; }
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A stream fed by a task through a channel; the stream ends when the task returns.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
