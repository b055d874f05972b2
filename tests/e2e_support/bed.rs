//! The test bed: a real etcd, kube-apiserver, kube-scheduler and kube-controller-manager on
//! loopback, Nodes in three zones that no kubelet runs, and a loop that plays the kubelet's
//! part for pod status only (as KWOK does), so that Deployments and StatefulSets roll.
//!
//! The binaries come from `scripts/controlplane.sh build` (target/controlplane/bin). Starting
//! a bed takes a few seconds; [`Bed::shared`] starts one per test binary, and tests that change
//! what every other test would see (Nodes, webhook registrations) start their own with
//! [`Bed::start`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use serde_json::{Value, json};

use super::procs::{Proc, free_port, tail};
use super::tls::Ca;
use super::wait::{Deadline, block_on};

/// The zone label every Node carries.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// What a bed is made of.
#[derive(Clone, Debug)]
pub struct BedOptions {
    /// A short name for directories and logs.
    pub name: String,
    /// Zones and how many Nodes each gets.
    pub zones: Vec<(String, usize)>,
    /// Scheduler, controller manager and the pod-status loop. Without them only etcd and the
    /// API server run (the create-latency benchmark).
    pub controllers: bool,
    /// Write the API server's audit log (Metadata level for workloads) to `audit.log`.
    pub audit_log: bool,
    /// Extra kube-apiserver flags.
    pub apiserver_args: Vec<String>,
    /// The controller manager's controllers act as their own ServiceAccounts in kube-system
    /// (`system:serviceaccount:kube-system:replicaset-controller`, ...), each with the
    /// bootstrap RBAC role Kubernetes gives it, as in a real cluster; otherwise they act as the
    /// bed's admin (`system:masters`).
    pub controller_service_accounts: bool,
}

impl BedOptions {
    /// Three zones of two Nodes each, controllers and the audit log on.
    pub fn new(name: &str) -> Self {
        BedOptions {
            name: name.to_owned(),
            zones: ["zone-a", "zone-b", "zone-c"]
                .iter()
                .map(|z| (z.to_string(), 2))
                .collect(),
            controllers: true,
            audit_log: true,
            apiserver_args: Vec::new(),
            controller_service_accounts: false,
        }
    }
}

/// A running control plane. Dropping it stops every process.
pub struct Bed {
    pub name: String,
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub server: String,
    /// Admin kubeconfig (a `system:masters` token).
    pub kubeconfig: PathBuf,
    /// The CA that signed the API server's serving certificate.
    pub ca_pem: String,
    pub audit_log: Option<PathBuf>,
    /// Nodes created at start, by zone.
    pub nodes: BTreeMap<String, Vec<String>>,
    /// How long `start` took.
    pub started_in: Duration,
    procs: Mutex<Vec<Proc>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The control plane binaries: `$SPREADGUARD_E2E_BIN`, else target/controlplane/bin.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPREADGUARD_E2E_BIN") {
        return PathBuf::from(dir);
    }
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("controlplane/bin")
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: the e2e tests need the real control plane. Build it with\n\n    \
         scripts/controlplane.sh build\n\n(scripts/test.sh does this; the first build takes tens \
         of minutes, later ones are instant)",
        path.display()
    );
    path
}

impl Bed {
    /// The bed shared by every test of this test binary, started on first use. Tests on it
    /// must not change Nodes or register webhooks for every namespace.
    pub fn shared() -> &'static Bed {
        static SHARED: OnceLock<Result<Bed, String>> = OnceLock::new();
        let bed = SHARED.get_or_init(|| {
            let name = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .and_then(|s| s.split('-').next().map(str::to_owned))
                .unwrap_or_else(|| "e2e".into());
            std::panic::catch_unwind(|| Bed::start(BedOptions::new(&name))).map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
        });
        match bed {
            Ok(bed) => bed,
            Err(message) => panic!("the shared test bed did not start: {message}"),
        }
    }

    /// Starts a control plane and waits until every component works: the API server is
    /// ready, the Nodes exist with a Ready status, and a probe Deployment's pod was created by
    /// the controllers, bound by the scheduler and marked Running by the status loop.
    pub fn start(options: BedOptions) -> Bed {
        let started = Instant::now();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        remove_stale_beds(&root);
        let dir = root.join(format!(
            "{}-{}-{}",
            options.name,
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("bed-{}", options.name))
            .enable_all()
            .build()
            .unwrap();

        // Credentials: our own CA for the API server's serving certificate, a service-account
        // signing key, and an admin token.
        let ca = Ca::new("e2e control plane CA");
        let serving = ca.server(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.join("apiserver.crt"), &serving.cert).unwrap();
        std::fs::write(dir.join("apiserver.key"), &serving.key).unwrap();
        let sa_key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("sa.key"), sa_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("sa.pub"), sa_key.public_key_pem()).unwrap();
        let token = format!("admin-{}", random_hex(16));
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{token},e2e-admin,e2e-admin,\"system:masters\"\n"),
        )
        .unwrap();

        let mut procs = Vec::new();

        // etcd
        let etcd_port = free_port();
        let mut etcd = Command::new(binary("etcd"));
        etcd.arg("--data-dir")
            .arg(dir.join("etcd"))
            .arg(format!("--listen-client-url=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--listen-peer-url=http://127.0.0.1:{}",
                free_port()
            ));
        procs.push(Proc::spawn("etcd", etcd, &dir.join("etcd.log")));

        // kube-apiserver
        let port = free_port();
        let server = format!("https://127.0.0.1:{port}");
        let mut apiserver = Command::new(binary("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!(
                "--cert-dir={}",
                dir.join("apiserver-certs").display()
            ))
            .arg(format!(
                "--tls-cert-file={}",
                dir.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                dir.join("apiserver.key").display()
            ))
            .arg(format!(
                "--token-auth-file={}",
                dir.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                dir.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                dir.join("sa.key").display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            // No kubelet: nothing would remove the not-ready taint TaintNodesByCondition puts on
            // every new Node; no token controller for ServiceAccount to wait for.
            .arg("--disable-admission-plugins=ServiceAccount,TaintNodesByCondition")
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false");
        let audit_log = options.audit_log.then(|| dir.join("audit.log"));
        if let Some(log) = &audit_log {
            std::fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY).unwrap();
            apiserver
                .arg(format!(
                    "--audit-policy-file={}",
                    dir.join("audit-policy.yaml").display()
                ))
                .arg(format!("--audit-log-path={}", log.display()))
                .arg("--audit-log-format=json")
                .arg("--audit-log-mode=blocking");
        }
        apiserver.args(&options.apiserver_args);
        procs.push(Proc::spawn(
            "kube-apiserver",
            apiserver,
            &dir.join("kube-apiserver.log"),
        ));

        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &ca.pem, &token)).unwrap();

        let mut bed = Bed {
            name: options.name.clone(),
            dir: dir.clone(),
            server,
            kubeconfig,
            ca_pem: ca.pem.clone(),
            audit_log,
            nodes: BTreeMap::new(),
            started_in: Duration::ZERO,
            procs: Mutex::new(procs),
            runtime: None,
        };
        bed.wait_for_apiserver(&runtime);

        if options.controllers {
            let mut procs = bed.procs.lock().unwrap_or_else(|e| e.into_inner());
            let mut scheduler = Command::new(binary("kube-scheduler"));
            scheduler
                .arg(format!("--kubeconfig={}", bed.kubeconfig.display()))
                .arg(format!(
                    "--authentication-kubeconfig={}",
                    bed.kubeconfig.display()
                ))
                .arg(format!(
                    "--authorization-kubeconfig={}",
                    bed.kubeconfig.display()
                ))
                .arg("--leader-elect=false")
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={}", free_port()));
            procs.push(Proc::spawn(
                "kube-scheduler",
                scheduler,
                &dir.join("kube-scheduler.log"),
            ));
            let mut kcm = Command::new(binary("kube-controller-manager"));
            kcm.arg(format!("--kubeconfig={}", bed.kubeconfig.display()))
                .arg(format!(
                    "--authentication-kubeconfig={}",
                    bed.kubeconfig.display()
                ))
                .arg(format!(
                    "--authorization-kubeconfig={}",
                    bed.kubeconfig.display()
                ))
                .arg("--leader-elect=false")
                // The taint eviction controller evicts pods from NoExecute-tainted Nodes once their
                // tolerationSeconds run out (HA027's short-lived zones); the aggregation
                // controller fills the aggregated ClusterRoles (`edit`, `view`) users are bound to.
                .arg("--controllers=deployment-controller,replicaset-controller,statefulset-controller,taint-eviction-controller,clusterrole-aggregation-controller")
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={}", free_port()));
            if options.controller_service_accounts {
                // Each controller gets a token for its ServiceAccount through TokenRequest.
                kcm.arg("--use-service-account-credentials=true");
            }
            procs.push(Proc::spawn(
                "kube-controller-manager",
                kcm,
                &dir.join("kube-controller-manager.log"),
            ));
        }

        // Nodes, and the kubelet's part for pod status.
        let kubeconfig = bed.kubeconfig.clone();
        let zones = options.zones.clone();
        bed.nodes = block_on(&runtime, async move {
            let client = client_for(&kubeconfig).await;
            let mut nodes = BTreeMap::new();
            for (zone, count) in &zones {
                for i in 0..*count {
                    let name = format!("node-{zone}-{i}");
                    create_node(&client, &name, zone, &BTreeMap::new()).await;
                    nodes
                        .entry(zone.clone())
                        .or_insert_with(Vec::new)
                        .push(name);
                }
            }
            nodes
        });
        if options.controllers {
            let kubeconfig = bed.kubeconfig.clone();
            runtime.spawn(async move {
                let client = client_for(&kubeconfig).await;
                play_kubelet(client).await
            });
            bed.wait_for_controllers(&runtime);
        }
        bed.runtime = Some(runtime);
        bed.started_in = started.elapsed();
        eprintln!(
            "e2e bed {} up in {:.1}s: {} (logs in {})",
            bed.name,
            bed.started_in.as_secs_f64(),
            bed.server,
            bed.dir.display()
        );
        bed
    }

    /// A client for this bed, on the caller's runtime, as the admin.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    /// Panics with the end of its log if a component has exited.
    pub fn assert_running(&self) {
        for p in self
            .procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            p.assert_running();
        }
    }

    /// The end of a component's log, for failure messages.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        tail(&self.dir.join(format!("{component}.log")), lines)
    }

    /// Events of the API server's audit log so far (the bed must have been started with
    /// `audit_log`).
    pub fn audit_events(&self) -> Vec<Value> {
        let path = self
            .audit_log
            .as_ref()
            .expect("this bed writes no audit log");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `ResponseComplete` audit event of a create of `namespace/name` (`resource` as in
    /// the URL, e.g. `deployments`), once the API server has written it.
    pub async fn audit_event(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        verb: &str,
    ) -> Value {
        super::wait::until(
            Duration::from_secs(10),
            &format!("the audit event of {verb} {resource} {namespace}/{name}"),
            || async {
                self.audit_events()
                    .into_iter()
                    .find(|e| {
                        e["stage"] == "ResponseComplete"
                            && e["verb"] == verb
                            && e["objectRef"]["resource"] == resource
                            && e["objectRef"]["namespace"] == namespace
                            && e["objectRef"]["name"] == name
                    })
                    .ok_or_else(|| "not yet".to_owned())
            },
        )
        .await
    }

    fn wait_for_apiserver(&self, runtime: &tokio::runtime::Runtime) {
        let kubeconfig = self.kubeconfig.clone();
        let mut deadline = Deadline::new(Duration::from_secs(60), "kube-apiserver /readyz");
        loop {
            self.assert_running();
            let kubeconfig = kubeconfig.clone();
            let answer = block_on(runtime, async move {
                let client = client_for(&kubeconfig).await;
                client
                    .request_text(
                        axum::http::Request::get("/readyz")
                            .body(Vec::new())
                            .unwrap(),
                    )
                    .await
                    .map_err(|e| e.to_string())
            });
            match answer {
                Ok(text) if text.trim() == "ok" => return,
                other => deadline.tick(&format!("{other:?}")),
            }
        }
    }

    /// A probe Deployment in its own namespace: a ReplicaSet (controller manager), a pod
    /// bound to a Node (scheduler), Running and Ready (the status loop), the Deployment
    /// available (controller manager again).
    fn wait_for_controllers(&self, runtime: &tokio::runtime::Runtime) {
        let kubeconfig = self.kubeconfig.clone();
        let result = block_on(runtime, async move {
            let client = client_for(&kubeconfig).await;
            let ns = "e2e-bed-probe";
            let namespaces: Api<Namespace> = Api::all(client.clone());
            namespaces
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
                )
                .await
                .map_err(|e| format!("creating {ns}: {e}"))?;
            let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
                Api::namespaced(client.clone(), ns);
            let probe = json!({
                "metadata": {"name": "probe"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "probe"}},
                    "template": {
                        "metadata": {"labels": {"app": "probe"}},
                        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
                    }
                }
            });
            // The API server may still be creating its RBAC and priority classes.
            let mut deadline = Deadline::new(Duration::from_secs(30), "probe Deployment created");
            loop {
                match deployments
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(probe.clone()).unwrap(),
                    )
                    .await
                {
                    Ok(_) => break,
                    Err(e) => deadline.tick_async(&e.to_string()).await,
                }
            }
            let mut deadline = Deadline::new(Duration::from_secs(60), "probe Deployment available");
            loop {
                let d = deployments.get("probe").await.map_err(|e| e.to_string())?;
                let available = d
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                if available == 1 {
                    return Ok::<(), String>(());
                }
                deadline.tick_async(&format!("status {:?}", d.status)).await;
            }
        });
        if let Err(e) = result {
            self.assert_running();
            panic!(
                "the controllers did not come up: {e}\nscheduler:\n{}\ncontroller manager:\n{}",
                self.log_tail("kube-scheduler", 20),
                self.log_tail("kube-controller-manager", 20)
            );
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // Controllers first, etcd last.
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut p) = procs.pop() {
            p.stop(Duration::from_secs(5));
        }
    }
}

/// Audit policy: workloads and their scale subresource at Metadata level (where webhook audit
/// annotations appear), nothing else.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    resources:
      - group: apps
        resources: ["deployments", "statefulsets", "replicasets",
                    "deployments/scale", "statefulsets/scale", "replicasets/scale"]
  - level: None
"#;

/// A kubeconfig with a bearer token.
pub fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: e2e\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e\ncurrent-context: e2e\n"
    )
}

/// A client from a kubeconfig file, on the current runtime.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    Client::try_from(config).expect("client")
}

/// Creates a Node with a zone label and sets its status through the status subresource:
/// Ready, and allocatable cpu, memory and pods as KWOK's default node has.
pub async fn create_node(
    client: &Client,
    name: &str,
    zone: &str,
    extra: &BTreeMap<String, String>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("topology.kubernetes.io/region".to_owned(), "e2e".to_owned()),
        (ZONE_KEY.to_owned(), zone.to_owned()),
        ("type".to_owned(), "kwok".to_owned()),
    ]);
    labels.extend(extra.clone());
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("creating node {name}: {e}"));
    let resources = json!({"cpu": "1k", "memory": "1Ti", "pods": "1M", "ephemeral-storage": "1Ti"});
    let status = json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "e2e test bed: no kubelet, status set by the test"
        }],
        "nodeInfo": {
            "architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake",
            "kubeProxyVersion": "", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
            "machineID": "", "osImage": "", "systemUUID": ""
        },
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}]
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("node {name} status: {e}"));
}

/// The kubelet's part for pod status only: a pod bound to a Node becomes Running and Ready;
/// a pod being deleted is removed (the kubelet's final delete after its containers stop).
async fn play_kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let Ok(pod) = event else { continue };
        let client = client.clone();
        tokio::spawn(async move { kubelet_status(client, pod).await });
    }
}

async fn kubelet_status(client: Client, pod: Pod) {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return;
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    if pod.metadata.deletion_timestamp.is_some() {
        let _ = api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await;
        return;
    }
    let status = pod.status.as_ref();
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if running && ready {
        return;
    }
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter())
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {}}
            })
        })
        .collect();
    let condition = |t: &str| json!({"type": t, "status": "True"});
    let patch = json!({"status": {
        "phase": "Running",
        "hostIP": "10.0.0.1",
        "conditions": [condition("PodScheduled"), condition("Initialized"),
                       condition("ContainersReady"), condition("Ready")],
        "containerStatuses": containers,
        "message": format!("e2e test bed: marked Running on {node} without a kubelet"),
    }});
    let _ = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
}

fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Random lowercase hex (from the OS, through rcgen's key generation's source).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes bed directories of test processes that no longer run; the newest ones stay for
/// reading their logs after a failure.
fn remove_stale_beds(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        let recent = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(3600));
        if !alive && !recent {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
