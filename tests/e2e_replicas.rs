//! Replicas and disruptions on a real control plane (issue 12): what tells a `replicas: 1` the
//! API server defaulted from one the user wrote, for each way objects arrive; Helm's install
//! order (Deployment, then its HorizontalPodAutoscaler) by server-side and client-side apply;
//! HPAs and PodDisruptionBudgets judged at admission; the caches feeding later decisions.
//!
//! Everything goes through the real `kubectl` against the bed's kube-apiserver, with
//! spreadguard installed from the chart (its RBAC now covers HPAs and PDBs) in `enforce`.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::time::Duration;

use e2e_support::api::{self, opted_in};
use e2e_support::kubectl;
use e2e_support::objects::deployment;
use e2e_support::shared::shared;
use e2e_support::wait::until;
use serde_json::{Value, json};

/// The warning HA001 gives a replica count nobody wrote, under the default policy.
const DEFAULTED: &str =
    "HA001: replicas not set: defaulted to 1; set replicas ≥ 2 or add an HPA with minReplicas ≥ 2";

/// How a manifest reaches the API server.
#[derive(Clone, Copy, Debug)]
enum Way {
    ServerSideApply,
    ClientSideApply,
    Create,
}

impl Way {
    fn args(self) -> &'static [&'static str] {
        match self {
            Way::ServerSideApply => &["apply", "--server-side", "-f", "-"],
            Way::ClientSideApply => &["apply", "-f", "-"],
            Way::Create => &["create", "-f", "-"],
        }
    }
}

fn kubectl(way: Way, object: &Value) -> kubectl::Output {
    let env = shared();
    kubectl::run(&env.bed.kubeconfig, way.args(), &object.to_string())
}

fn hpa(ns: &str, target: &str, min_replicas: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                 "minReplicas": min_replicas, "maxReplicas": 10}
    })
}

fn pdb(ns: &str, app: &str, spec: Value) -> Value {
    let mut p = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": app}}}
    });
    for (k, v) in spec.as_object().unwrap() {
        p["spec"][k] = v.clone();
    }
    p
}

async fn enforced_namespace(prefix: &str) -> String {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, prefix, &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    ns
}

/// The defaulted-vs-written rule as the README documents it, for each way a Deployment
/// arrives, without and with `replicas: 1` in the manifest.
#[tokio::test]
async fn a_defaulted_replica_count_is_told_apart_as_documented() {
    let ns = enforced_namespace("origin").await;
    // (way, manifest has replicas: 1, admitted, warned with DEFAULTED)
    let cases = [
        (Way::ServerSideApply, false, true, true),
        (Way::ServerSideApply, true, false, false),
        (Way::ClientSideApply, false, true, true),
        (Way::ClientSideApply, true, false, false),
        // A plain create owns the defaulted field like a written one: counts as written.
        (Way::Create, false, false, false),
        (Way::Create, true, false, false),
    ];
    for (i, (way, written, admitted, warned)) in cases.into_iter().enumerate() {
        let name = format!("origin-{i}");
        let object = deployment(&ns, &name, written.then_some(1));
        let out = kubectl(way, &object);
        let what = format!(
            "{way:?}, replicas {}",
            if written { "1" } else { "omitted" }
        );
        assert_eq!(out.success, admitted, "{what}: {}", out.stderr);
        assert_eq!(
            out.warnings().contains(&DEFAULTED),
            warned,
            "{what}: {:?}",
            out.warnings()
        );
        if !admitted {
            assert!(
                out.stderr.contains("denied the request")
                    && out
                        .stderr
                        .contains("HA001: 1 replica, policy requires at least 2"),
                "{what}: {}",
                out.stderr
            );
        }
    }
}

/// Helm's order: the Deployment (no replicas) first, its HPA (minReplicas 3) after it.
/// Both are admitted in `enforce`, the Deployment with a warning; once the HPA is cached
/// its minReplicas is the count, and the next apply of the Deployment carries no HA001.
/// The same with minReplicas 1 is denied at the HPA with HA012.
#[tokio::test]
async fn helms_order_is_admitted_with_a_warning_and_a_low_hpa_is_denied() {
    for way in [Way::ServerSideApply, Way::ClientSideApply] {
        let ns = enforced_namespace("helm-order").await;
        let web = deployment(&ns, "web", None);
        let out = kubectl(way, &web);
        assert!(out.success, "{way:?}: the Deployment: {}", out.stderr);
        assert_eq!(out.warnings(), [DEFAULTED], "{way:?}");

        // The stored Deployment got the zone spread all the same.
        let client = shared().bed.client().await;
        let stored = api::get(&client, &web).await.expect("stored");
        assert_eq!(stored["spec"]["replicas"], 1);
        assert_eq!(
            stored["metadata"]["annotations"]["spreadguard.io/injected"],
            "zone-spread,node-spread,zone-anti-affinity"
        );

        let out = kubectl(way, &hpa(&ns, "web", 3));
        assert!(out.success, "{way:?}: the HPA: {}", out.stderr);
        assert!(out.warnings().is_empty(), "{way:?}: {:?}", out.warnings());

        // The cache learns of the HPA: applying the Deployment again (a new image, as the
        // next release would) is admitted without HA001.
        let mut next = web.clone();
        next["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("registry.k8s.io/pause:3.9");
        until(
            Duration::from_secs(20),
            "the HPA's minReplicas to count",
            || {
                let next = next.clone();
                async move {
                    let out = kubectl(way, &next);
                    if out.success && out.warnings().is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{} {:?}", out.stderr, out.warnings()))
                    }
                }
            },
        )
        .await;

        // minReplicas 1: denied at the HPA, naming the target and both numbers.
        let low = hpa(&ns, "api", 1);
        let out = kubectl(way, &deployment(&ns, "api", None));
        assert!(out.success, "{}", out.stderr);
        let out = kubectl(way, &low);
        assert!(
            !out.success,
            "{way:?}: an HPA with minReplicas 1 was admitted"
        );
        assert!(
            out.stderr
                .contains("HA012: minReplicas 1 for Deployment api, policy requires at least 2"),
            "{way:?}: {}",
            out.stderr
        );
    }
}

/// An HPA created before its Deployment (Argo CD's waves, a human) is judged on its own
/// numbers; so is an `autoscaling/v1` one, whose omitted minReplicas the API server
/// defaults to 1.
#[tokio::test]
async fn autoscalers_are_judged_without_their_target() {
    let ns = enforced_namespace("hpa-alone").await;
    let out = kubectl(Way::Create, &hpa(&ns, "not-yet", 3));
    assert!(out.success, "{}", out.stderr);
    let v1 = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "legacy", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"},
                 "maxReplicas": 4}
    });
    let out = kubectl(Way::Create, &v1);
    assert!(
        !out.success,
        "an autoscaling/v1 HPA defaulting to minReplicas 1 was admitted"
    );
    assert!(
        out.stderr
            .contains("HA012: minReplicas 1 for Deployment legacy"),
        "{}",
        out.stderr
    );
}

/// A PodDisruptionBudget that lets no pod go is denied with HA013; one that lets a pod go
/// is admitted, and the workload it selects is judged against it (its share per zone).
#[tokio::test]
async fn a_pdb_that_allows_no_eviction_is_denied() {
    let ns = enforced_namespace("pdb").await;
    for (spec, what) in [
        (
            json!({"maxUnavailable": 0}),
            "maxUnavailable 0 allows no voluntary eviction",
        ),
        (
            json!({"maxUnavailable": "0%"}),
            "maxUnavailable 0% allows no voluntary eviction",
        ),
        (
            json!({"minAvailable": "100%"}),
            "minAvailable 100% allows no voluntary eviction",
        ),
        (json!({}), "neither minAvailable nor maxUnavailable"),
    ] {
        let out = kubectl(Way::ServerSideApply, &pdb(&ns, "web", spec.clone()));
        assert!(!out.success, "{spec} was admitted");
        assert!(
            out.stderr.contains("HA013") && out.stderr.contains(what),
            "{spec}: {}",
            out.stderr
        );
    }

    // minAvailable 5 of 6 replicas (2 per zone in the bed's three zones): admitted, and the
    // Deployment is warned with the arithmetic once the cache has the PDB.
    let out = kubectl(
        Way::ServerSideApply,
        &pdb(&ns, "web", json!({"minAvailable": 5})),
    );
    assert!(out.success, "{}", out.stderr);
    let web = deployment(&ns, "web", Some(6));
    let zones: Vec<String> = {
        let client = shared().bed.client().await;
        let mut z: Vec<String> = api::node_zones(&client).await.into_values().collect();
        z.sort();
        z.dedup();
        z
    };
    let expected = format!(
        "HA014: 6 replicas over 3 zones, minAvailable 5: zone {} holds 2, the budget allows 1 unavailable",
        zones[0]
    );
    until(Duration::from_secs(20), "HA014 on the Deployment", || {
        let web = web.clone();
        let expected = expected.clone();
        async move {
            let out = kubectl(Way::ServerSideApply, &web);
            if out.success
                && out
                    .warnings()
                    .iter()
                    .any(|w| w.starts_with(&expected[..60]))
            {
                Ok(())
            } else {
                Err(format!("{} {:?}", out.stderr, out.warnings()))
            }
        }
    })
    .await;
}

/// Helm itself, when the binaries are given (`SPREADGUARD_E2E_HELM3`, `SPREADGUARD_E2E_HELM4`:
/// paths to `helm` 3 and 4; e.g. `go install helm.sh/helm/v4/cmd/helm@v4.3.1`): a chart whose
/// Deployment has no replicas, with an HPA (minReplicas 3) and a PDB (maxUnavailable 1),
/// installed in Helm's order. Helm 4 applies server-side: installed, the Deployment warned.
/// Helm 3 creates: nothing tells the defaulted 1 apart, so the Deployment is denied (HA001)
/// and the install fails, as the README says. Without the variables the test says so and
/// checks nothing.
#[tokio::test]
async fn helm_3_and_4_install_a_chart_with_an_autoscaler_as_documented() {
    let helm = |var: &str| std::env::var_os(var).map(std::path::PathBuf::from);
    let (helm3, helm4) = (helm("SPREADGUARD_E2E_HELM3"), helm("SPREADGUARD_E2E_HELM4"));
    if helm3.is_none() && helm4.is_none() {
        eprintln!(
            "helm_3_and_4_install_a_chart_with_an_autoscaler_as_documented: set \
             SPREADGUARD_E2E_HELM3 and SPREADGUARD_E2E_HELM4 to run it"
        );
        return;
    }
    let chart = tempfile::tempdir().unwrap();
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::create_dir(chart.path().join("templates")).unwrap();
    std::fs::write(
        chart.path().join("templates/all.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec: {containers: [{name: app, image: registry.k8s.io/pause:3.10}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: {{ .Release.Name }}}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: {{ .Release.Name }}}
  minReplicas: 3
  maxReplicas: 10
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: {{ .Release.Name }}}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: {{ .Release.Name }}}}
"#,
    )
    .unwrap();
    let kubeconfig = shared().bed.kubeconfig.clone();
    for (binary, installs) in [(helm4, true), (helm3, false)] {
        let Some(binary) = binary else { continue };
        let ns = enforced_namespace("helm").await;
        let out = std::process::Command::new(&binary)
            .args(["install", "web", "-n", &ns])
            .arg(chart.path())
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = binary.display();
        assert_eq!(out.status.success(), installs, "{what}: {stderr}");
        if installs {
            assert!(stderr.contains(DEFAULTED), "{what}: {stderr}");
            let client = shared().bed.client().await;
            let stored = api::get(&client, &hpa(&ns, "web", 3)).await;
            assert!(stored.is_some(), "{what}: the HPA was not created");
        } else {
            assert!(
                stderr.contains("HA001: 1 replica, policy requires at least 2"),
                "{what}: {stderr}"
            );
        }
    }
}
