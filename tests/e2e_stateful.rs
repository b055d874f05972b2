//! Stateful workloads and node templates on a real control plane (issue 13): StorageClasses,
//! claims and volumes are real API objects; the real scheduler's VolumeBinding plugin decides
//! where pods with zonal volumes go; `audit --cluster` and UPDATEs read the bound volumes; a
//! Karpenter NodePool (its CRD installed here) adds a zone with no nodes.
//!
//! The bed runs no volume provisioner and no PersistentVolume controller, so this file plays
//! both for the namespaces of its tests, as the bed's status loop plays the kubelet: a claim the
//! scheduler annotated with `volume.kubernetes.io/selected-node` gets a volume in that node's
//! zone (what a CSI external-provisioner does for a `WaitForFirstConsumer` class), and a claim
//! pre-bound to a volume (`spec.volumeName`), or named by a volume's `claimRef`, is bound to it
//! (what the PV controller's binder does). Everything else, above all the scheduler's choice of
//! node, is the real thing.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, ZONE_KEY, random_hex};
use e2e_support::objects::{self, deployment, with_pod_spec};
use e2e_support::shared::{Shared, run, shared};
use e2e_support::wait::until;
use serde_json::{Value, json};

const CSI_DRIVER: &str = "ebs.csi.aws.com";

/// The shared bed and spreadguard, with Karpenter's NodePool CRD installed before spreadguard
/// starts (so that its discovery finds the API at startup, as in a cluster with Karpenter).
fn env() -> &'static Shared {
    static CRD: OnceLock<()> = OnceLock::new();
    CRD.get_or_init(|| {
        let bed = Bed::shared();
        run(async {
            let client = bed.client().await;
            install_node_pool_crd(&client).await;
        });
    });
    shared()
}

async fn install_node_pool_crd(client: &kube::Client) {
    let text = include_str!("fixtures/crds/karpenter.sh_nodepools.yaml");
    let crd: Value = serde_norway::from_str(text).expect("the vendored CRD parses");
    api::send(
        client,
        Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        Some(&crd),
    )
    .await
    .expect_ok("create the NodePool CRD");
    until(
        Duration::from_secs(30),
        "the NodePool CRD established and karpenter.sh/v1 served",
        || async {
            let answer = api::send(
                client,
                Method::GET,
                "/apis/karpenter.sh/v1",
                "application/json",
                None,
            )
            .await;
            let served = answer.body["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["name"] == "nodepools"));
            if served {
                Ok(())
            } else {
                Err(format!("HTTP {}", answer.status))
            }
        },
    )
    .await;
}

/// A zonal StorageClass of its own for a test (cluster-scoped, so the name is unique).
async fn storage_class(client: &kube::Client, prefix: &str, binding: &str) -> String {
    let name = format!("{prefix}-{}", random_hex(3));
    let answer = api::send(
        client,
        Method::POST,
        "/apis/storage.k8s.io/v1/storageclasses",
        "application/json",
        Some(&json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": CSI_DRIVER,
            "parameters": {"type": "gp3"},
            "volumeBindingMode": binding,
        })),
    )
    .await
    .expect_ok("create StorageClass");
    // A real API object: what the API server stored, with its defaults.
    assert_eq!(answer.body["volumeBindingMode"], binding);
    assert_eq!(
        answer.body["reclaimPolicy"], "Delete",
        "defaulted by the API server"
    );
    name
}

/// A volume in `zone`; `claim` pre-binds it by hand (`claimRef` without a uid).
fn volume(name: &str, zone: &str, class: &str, claim: Option<(&str, &str)>) -> Value {
    let mut pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": class,
            "csi": {"driver": CSI_DRIVER, "volumeHandle": format!("vol-{name}")},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": ZONE_KEY, "operator": "In", "values": [zone]}]}]}},
        },
    });
    if let Some((ns, claim)) = claim {
        pv["spec"]["claimRef"] = json!({"namespace": ns, "name": claim});
    }
    pv
}

/// A claim pre-bound by hand to volume `pv` (`spec.volumeName`): the StatefulSet controller
/// adopts a claim of the name it would create.
async fn create_prebound_claim(client: &kube::Client, ns: &str, name: &str, class: &str, pv: &str) {
    api::send(
        client,
        Method::POST,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
        "application/json",
        Some(&json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, "volumeName": pv},
        })),
    )
    .await
    .expect_ok("create a pre-bound claim");
}

async fn create_volume(client: &kube::Client, pv: &Value) {
    api::send(
        client,
        Method::POST,
        "/api/v1/persistentvolumes",
        "application/json",
        Some(pv),
    )
    .await
    .expect_ok("create PersistentVolume");
}

/// A StatefulSet of `replicas` pods started in parallel, one claim template on `class`.
fn statefulset(ns: &str, name: &str, replicas: i64, class: &str) -> Value {
    let mut s = objects::statefulset(ns, name, replicas);
    s["spec"]["podManagementPolicy"] = json!("Parallel");
    s["spec"]["volumeClaimTemplates"] = json!([{
        "metadata": {"name": "data"},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }]);
    s
}

// === the provisioner and binder this bed lacks ===

/// Plays the CSI external-provisioner and the PV controller's binder for the claims of `ns`
/// until the returned task is aborted.
fn play_volumes(ns: &str) -> tokio::task::JoinHandle<()> {
    let ns = ns.to_owned();
    tokio::spawn(async move {
        let client = Bed::shared().client().await;
        let zones = api::node_zones(&client).await;
        loop {
            let claims = api::get_path(
                &client,
                &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
            )
            .await;
            let volumes = api::get_path(&client, "/api/v1/persistentvolumes").await;
            for claim in claims["items"].as_array().into_iter().flatten() {
                let bound = claim["spec"]["volumeName"].is_string()
                    && claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"]
                        .is_string();
                if !bound {
                    provision_or_bind(&client, claim, &volumes, &zones).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn provision_or_bind(
    client: &kube::Client,
    claim: &Value,
    volumes: &Value,
    zones: &BTreeMap<String, String>,
) {
    let ns = claim["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = claim["metadata"]["name"].as_str().unwrap_or_default();
    let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
    // The volume the claim names (pre-bound by hand), or a volume that names the claim
    // (pre-bound by hand, or chosen by the scheduler for a static binding).
    let named = volumes["items"].as_array().into_iter().flatten().find(|v| {
        claim["spec"]["volumeName"] == v["metadata"]["name"]
            || (v["spec"]["claimRef"]["namespace"] == ns && v["spec"]["claimRef"]["name"] == name)
    });
    let volume_name = match named {
        Some(v) => {
            let pv = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if v["spec"]["claimRef"]["uid"].as_str() != Some(uid) {
                api::send(
                    client,
                    Method::PATCH,
                    &format!("/api/v1/persistentvolumes/{pv}"),
                    "application/merge-patch+json",
                    Some(
                        &json!({"spec": {"claimRef": {"namespace": ns, "name": name, "uid": uid}}}),
                    ),
                )
                .await
                .expect_ok("binder: claimRef uid");
            }
            pv
        }
        None => {
            // Provisioning: only once the scheduler picked a node for the first consumer.
            let Some(node) =
                claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].as_str()
            else {
                return;
            };
            let zone = zones.get(node).cloned().unwrap_or_default();
            let pv = format!("pvc-{uid}");
            let class = claim["spec"]["storageClassName"]
                .as_str()
                .unwrap_or_default();
            let mut v = volume(&pv, &zone, class, Some((ns, name)));
            v["spec"]["claimRef"]["uid"] = json!(uid);
            v["metadata"]["annotations"] = json!({"pv.kubernetes.io/provisioned-by": CSI_DRIVER});
            v["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
            create_volume(client, &v).await;
            pv
        }
    };
    api::send(
        client,
        Method::PATCH,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}"),
        "application/merge-patch+json",
        Some(&json!({
            "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"volumeName": volume_name},
        })),
    )
    .await
    .expect_ok("binder: claim bound");
    let _ = api::send(
        client,
        Method::PATCH,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}/status"),
        "application/merge-patch+json",
        Some(
            &json!({"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                                "capacity": {"storage": "1Gi"}}}),
        ),
    )
    .await;
    let _ = api::send(
        client,
        Method::PATCH,
        &format!("/api/v1/persistentvolumes/{volume_name}/status"),
        "application/merge-patch+json",
        Some(&json!({"status": {"phase": "Bound"}})),
    )
    .await;
}

// === reading what the scheduler did ===

/// Waits until the `want` pods of StatefulSet `name` are bound to nodes, and returns their
/// zones by ordinal.
async fn placed(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: usize,
) -> BTreeMap<usize, String> {
    let zones = api::node_zones(client).await;
    until(
        Duration::from_secs(90),
        &format!("the {want} pods of {ns}/{name} bound"),
        || async {
            let pods = api::pods(client, ns).await;
            let mine = objects::named(&pods, &format!("{name}-"));
            let mut placed = BTreeMap::new();
            for p in &mine {
                let pod = p["metadata"]["name"].as_str().unwrap_or_default();
                let Some(ordinal) = pod
                    .strip_prefix(&format!("{name}-"))
                    .and_then(|o| o.parse::<usize>().ok())
                else {
                    continue;
                };
                if let Some(node) = p["spec"]["nodeName"].as_str() {
                    placed.insert(ordinal, zones[node].clone());
                }
            }
            if placed.len() == want {
                Ok(placed)
            } else {
                let pending: Vec<String> = mine
                    .iter()
                    .filter(|p| p["spec"]["nodeName"].is_null())
                    .map(|p| {
                        format!(
                            "{}: {}",
                            p["metadata"]["name"], p["status"]["conditions"][0]["message"]
                        )
                    })
                    .collect();
                Err(format!(
                    "{} of {want} bound; pending: {pending:?}",
                    placed.len()
                ))
            }
        },
    )
    .await
}

/// The zone of the volume bound to claim `ns/claim`.
async fn volume_zone(client: &kube::Client, ns: &str, claim: &str) -> String {
    let c = api::get_path(
        client,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"),
    )
    .await;
    let pv = c["spec"]["volumeName"].as_str().expect("a bound claim");
    let v = api::get_path(client, &format!("/api/v1/persistentvolumes/{pv}")).await;
    v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
        [0]
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

// === zonal volumes bound at first consumer, placed by the scheduler ===

#[tokio::test]
async fn a_parallel_statefulset_with_the_injected_hard_spread_gets_one_pod_and_volume_per_zone() {
    let env = env();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "stateful", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    let wffc = storage_class(&client, "e2e-gp3-wffc", "WaitForFirstConsumer").await;
    let immediate = storage_class(&client, "e2e-gp3-now", "Immediate").await;

    // The class that binds immediately: HA017, once spreadguard's cache has the class.
    let probe = statefulset(&ns, "probe", 3, &immediate);
    let warning = until(
        Duration::from_secs(20),
        "HA017 for a zonal class bound immediately",
        || async {
            let answer = api::create(&client, &probe, true).await;
            answer
                .warnings
                .iter()
                .find(|w| w.starts_with("HA017: "))
                .cloned()
                .ok_or(format!("{:?}", answer.warnings))
        },
    )
    .await;
    assert!(
        warning.starts_with("HA017: 3 zonal volumes created before their pods are scheduled"),
        "{warning}"
    );

    // The class that binds at first consumer: the injected zone spread is hard, and the
    // API server passes on spreadguard's note saying why.
    let volumes = play_volumes(&ns);
    let sts = statefulset(&ns, "db", 3, &wffc);
    let created = api::create(&client, &sts, false)
        .await
        .expect_ok("create db");
    let zone_spread = &objects::spread_constraints(&created.body)[0];
    assert_eq!(zone_spread["topologyKey"], ZONE_KEY);
    assert_eq!(
        zone_spread["whenUnsatisfiable"], "DoNotSchedule",
        "{created:?}"
    );
    assert!(
        created.warnings.iter().any(|w| w.starts_with(
            "zone spread injected with DoNotSchedule: the first placement fixes each replica"
        )),
        "{:?}",
        created.warnings
    );

    // The real scheduler: one pod per zone, each volume created in its pod's zone.
    let placed = placed(&client, &ns, "db", 3).await;
    let mut zones: Vec<&String> = placed.values().collect();
    zones.sort();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"], "{placed:?}");
    for (ordinal, zone) in &placed {
        assert_eq!(
            &volume_zone(&client, &ns, &format!("data-db-{ordinal}")).await,
            zone,
            "the volume of ordinal {ordinal} follows its pod"
        );
    }
    volumes.abort();
}

// === volumes that are already somewhere ===

#[tokio::test]
async fn a_volume_prebound_to_ordinal_0_places_pod_0_in_its_zone_and_audit_reports_ha019() {
    let env = env();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "prebound", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    let class = storage_class(&client, "e2e-gp3-restore", "WaitForFirstConsumer").await;

    // Ordinal 0's data was restored into a volume in zone-c, pre-bound (both ways, as the
    // Kubernetes documentation reserves a volume) to the claim the StatefulSet controller would
    // create; the `legacy` StatefulSet's three volumes all lie in zone-b (restored from one
    // zone's snapshots).
    let db0 = format!("{ns}-db-0");
    create_volume(
        &client,
        &volume(&db0, "zone-c", &class, Some((&ns, "data-db-0"))),
    )
    .await;
    create_prebound_claim(&client, &ns, "data-db-0", &class, &db0).await;
    for i in 0..3 {
        let (pv, claim) = (format!("{ns}-legacy-{i}"), format!("data-legacy-{i}"));
        create_volume(&client, &volume(&pv, "zone-b", &class, Some((&ns, &claim)))).await;
        create_prebound_claim(&client, &ns, &claim, &class, &pv).await;
    }
    // `restored`: ordinals 0 and 1 restored into zone-b, ordinal 2 new.
    for i in 0..2 {
        let (pv, claim) = (format!("{ns}-restored-{i}"), format!("data-restored-{i}"));
        create_volume(&client, &volume(&pv, "zone-b", &class, Some((&ns, &claim)))).await;
        create_prebound_claim(&client, &ns, &claim, &class, &pv).await;
    }
    let volumes = play_volumes(&ns);
    // A restored volume is reserved before its StatefulSet exists: wait until the reservation
    // is complete (bound both ways). Until then kube-scheduler's VolumeBinding takes a claim
    // that names a volume for an unbound immediate one and sets pod 0 aside, so that pods 1
    // and 2 (Parallel) could take zone-c first and leave pod 0, pinned there, no room under
    // the hard spread.
    for claim_name in ["data-db-0", "data-restored-0", "data-restored-1"] {
        until(
            Duration::from_secs(30),
            &format!("{ns}/{claim_name} bound"),
            || async {
                let claim = api::get_path(
                    &client,
                    &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim_name}"),
                )
                .await;
                if claim["status"]["phase"] == "Bound"
                    && claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"]
                        .is_string()
                {
                    Ok(())
                } else {
                    Err(format!("{}", claim["status"]))
                }
            },
        )
        .await;
    }

    // `db` gets the injected hard spread (one pinned replica is no skew yet).
    let db = api::create(&client, &statefulset(&ns, "db", 3, &class), false)
        .await
        .expect_ok("create db");
    assert_eq!(
        objects::spread_constraints(&db.body)[0]["whenUnsatisfiable"],
        "DoNotSchedule"
    );
    // `legacy` spreads softly over zones by itself (what the user wrote is never changed).
    let legacy = with_pod_spec(
        statefulset(&ns, "legacy", 3, &class),
        json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "legacy"}}}]}),
    );
    api::create(&client, &legacy, false)
        .await
        .expect_ok("create legacy");
    let restored = with_pod_spec(
        statefulset(&ns, "restored", 3, &class),
        json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "restored"}}}]}),
    );
    api::create(&client, &restored, false)
        .await
        .expect_ok("create restored");

    // The scheduler follows the volumes: pod 0 in zone-c, the other two in the other zones;
    // every legacy pod in zone-b.
    let db_placed = placed(&client, &ns, "db", 3).await;
    assert_eq!(db_placed[&0], "zone-c", "{db_placed:?}");
    let mut zones: Vec<&String> = db_placed.values().collect();
    zones.sort();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"], "{db_placed:?}");
    let legacy_placed = placed(&client, &ns, "legacy", 3).await;
    assert!(
        legacy_placed.values().all(|z| z == "zone-b"),
        "{legacy_placed:?}"
    );
    // The restored two stay in zone-b; the soft spread sends the new one elsewhere.
    let restored_placed = placed(&client, &ns, "restored", 3).await;
    assert_eq!(
        (&restored_placed[&0], &restored_placed[&1]),
        (&"zone-b".to_owned(), &"zone-b".to_owned()),
        "{restored_placed:?}"
    );
    assert_ne!(restored_placed[&2], "zone-b", "{restored_placed:?}");

    // An UPDATE (a label, no new pod template) of legacy: the webhook warns from its caches.
    let answer = api::merge_patch(
        &client,
        &legacy,
        "",
        &json!({"metadata": {"labels": {"tier": "data"}}}),
    )
    .await
    .expect_ok("label legacy");
    assert!(
        answer
            .warnings
            .iter()
            .any(|w| w.starts_with("HA019: losing zone zone-b takes 3 replicas and their data")),
        "{:?}",
        answer.warnings
    );

    // audit --cluster reads the same claims and volumes from the API server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
        .args(["audit", "--cluster", "-o", "json", "--kubeconfig"])
        .arg(&env.bed.kubeconfig)
        .arg("--config")
        .arg(env.sg.dir.join("policy.yaml"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let entry = |name: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["namespace"] == ns.as_str() && r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no result for {name}"))
    };
    let ha019 = |r: &Value| -> Vec<String> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "HA019")
            .map(|f| format!("{} {}", f["severity"], f["message"]))
            .collect()
    };
    let legacy_entry = entry("legacy");
    let found = ha019(&legacy_entry);
    assert_eq!(found.len(), 1, "{legacy_entry}");
    assert!(
        found[0].starts_with(
            "\"warn\" \"losing zone zone-b takes 3 replicas and their data: the bound volumes of 3 replicas lie in 1 zone though 3 zones are usable"
        ),
        "{found:?}"
    );
    assert_eq!(
        legacy_entry["considered"]["claims"],
        json!([
            format!("{ns}/data-legacy-0"),
            format!("{ns}/data-legacy-1"),
            format!("{ns}/data-legacy-2")
        ])
    );
    // The predicted placement counts the pinned replicas where they are and the free ones
    // where the constraints send them: what the scheduler did (sorted counts).
    let sorted_counts = |zones: &Value| {
        let mut c: Vec<i64> = zones
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_i64().unwrap())
            .filter(|n| *n > 0)
            .collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        c
    };
    let restored_entry = entry("restored");
    assert_eq!(
        sorted_counts(&restored_entry["placement"]["zones"]),
        [2, 1],
        "{restored_entry}"
    );
    assert_eq!(restored_entry["placement"]["zones"]["zone-b"], 2);
    assert_eq!(
        restored_entry["placement"]["worstZoneLoss"],
        json!({"zone": "zone-b", "lost": 2, "left": 1})
    );
    let db_entry = entry("db");
    assert_eq!(db_entry["placement"]["zones"]["zone-c"], 1, "{db_entry}");
    assert_eq!(sorted_counts(&db_entry["placement"]["zones"]), [1, 1, 1]);
    assert_eq!(db_entry["placement"]["guaranteed"], true, "{db_entry}");
    assert!(
        ha019(&db_entry).is_empty(),
        "one volume per zone: {db_entry}"
    );
    assert_eq!(
        db_entry["considered"]["storageClasses"][0]["locality"],
        "zonal"
    );
    volumes.abort();
}

// === a node pool that scales from zero ===

fn node_pool(name: &str, zone: &str) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": [
                    {"key": ZONE_KEY, "operator": "In", "values": [zone]},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                ],
            }},
            "limits": {"cpu": "100"},
        },
    })
}

#[tokio::test]
async fn a_karpenter_node_pool_adds_a_zone_with_no_nodes_and_the_next_decision_counts_it() {
    let env = env();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "pools", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    let anti = |replicas| {
        with_pod_spec(
            deployment(&ns, &format!("search-{replicas}"), Some(replicas)),
            objects::required_anti_affinity(&format!("search-{replicas}"), ZONE_KEY),
        )
    };

    // Three zones with nodes: four replicas with required zone anti-affinity leave one Pending.
    let before = api::create(&client, &anti(4), true).await;
    assert_eq!(before.status, 403, "{before:?}");
    assert!(
        before
            .message()
            .contains("HA002: 4 replicas, 3 eligible zones"),
        "{}",
        before.message()
    );

    // A NodePool that can add nodes in zone-d, where no node is.
    let pool = format!("zone-d-{}", random_hex(2));
    api::send(
        &client,
        Method::POST,
        "/apis/karpenter.sh/v1/nodepools",
        "application/json",
        Some(&node_pool(&pool, "zone-d")),
    )
    .await
    .expect_ok("create NodePool");
    until(
        Duration::from_secs(20),
        "four replicas allowed once the NodePool's zone counts",
        || async {
            let answer = api::create(&client, &anti(4), true).await;
            if answer.ok() {
                Ok(())
            } else {
                Err(answer.message().to_owned())
            }
        },
    )
    .await;
    let five = api::create(&client, &anti(5), true).await;
    assert_eq!(five.status, 403);
    assert!(
        five.message()
            .contains("HA002: 5 replicas, 4 eligible zones: 1 pod stays Pending")
            && five
                .message()
                .contains("(zone zone-d: no node now, a node pool can add one)"),
        "{}",
        five.message()
    );

    // The zone the pool can add nodes to is what `injectMinDomains: auto` waits for: a
    // StatefulSet whose zonal volumes bind at first consumer gets its hard zone spread with
    // minDomains 4 (zone-a, -b, -c with nodes, zone-d from the NodePool), so that its fourth
    // pod waits for the node Karpenter adds in zone-d rather than doubling up elsewhere.
    let class = storage_class(&client, "e2e-gp3-pool", "WaitForFirstConsumer").await;
    let spread = until(
        Duration::from_secs(20),
        "the StatefulSet's injected spread to name minDomains 4",
        || async {
            let answer = api::create(&client, &statefulset(&ns, "db", 4, &class), true).await;
            let spread = objects::spread_constraints(&answer.body)
                .first()
                .cloned()
                .unwrap_or_default();
            if spread["whenUnsatisfiable"] == "DoNotSchedule" && spread["minDomains"] == 4 {
                Ok(spread)
            } else {
                Err(format!("{} {spread}", answer.status))
            }
        },
    )
    .await;
    assert_eq!(spread["topologyKey"], ZONE_KEY, "{spread}");

    // `spreadguard topology` shows the template apart from the nodes.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
        .args(["topology", "-o", "json", "--kubeconfig"])
        .arg(&env.bed.kubeconfig)
        .output()
        .unwrap();
    let topology: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(topology["nodes"], 6, "templates are not nodes: {topology}");
    let template = topology["nodeTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == pool.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{topology}"));
    assert_eq!(
        (template["source"].as_str(), template["zone"].as_str()),
        (Some("nodePool"), Some("zone-d"))
    );

    // The pool goes: so does its zone.
    api::delete_path(&client, &format!("/apis/karpenter.sh/v1/nodepools/{pool}")).await;
    until(
        Duration::from_secs(20),
        "four replicas denied again without the NodePool",
        || async {
            let answer = api::create(&client, &anti(4), true).await;
            if answer.status == 403 {
                Ok(())
            } else {
                Err(format!("{answer:?}"))
            }
        },
    )
    .await;
}
