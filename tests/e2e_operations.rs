//! Operations on a real control plane (issue 17): the work of the controllers never waits for
//! spreadguard, so it goes on while spreadguard is down under `failurePolicy: Fail` (item 1);
//! and the opt-out label's ValidatingAdmissionPolicy, as the chart renders it, lets the
//! controllers and a Helm-style upgrade through and stops a tenant (item 4). In both beds the
//! controller manager's controllers act as their own kube-system ServiceAccounts, as in a real
//! cluster. Each test registers webhooks of its own, so each gets a bed of its own (one at a
//! time).
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::time::Duration;

use axum::http::Method;
use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, BedOptions};
use e2e_support::kubectl;
use e2e_support::objects::{self, deployment};
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::wait::until;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

static ONE_BED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A bed whose controllers act as `system:serviceaccount:kube-system:<controller>`.
fn bed(name: &str) -> Bed {
    let mut options = BedOptions::new(name);
    options.controller_service_accounts = true;
    Bed::start(options)
}

/// Waits until the Deployment's newest generation is rolled out: `replicas` updated, ready and
/// available, and as many live pods. Returns the stored Deployment.
async fn rolled_out(client: &kube::Client, deployment: &Value, replicas: i64) -> Value {
    let name = deployment["metadata"]["name"].as_str().unwrap().to_owned();
    let ns = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_owned();
    until(
        Duration::from_secs(90),
        &format!("{ns}/{name} rolled out with {replicas} replicas"),
        || async {
            let stored = api::get(client, deployment)
                .await
                .ok_or_else(|| "not found".to_owned())?;
            let status = &stored["status"];
            let done = status["observedGeneration"] == stored["metadata"]["generation"]
                && [
                    "replicas",
                    "updatedReplicas",
                    "readyReplicas",
                    "availableReplicas",
                ]
                .iter()
                .all(|field| status[field] == replicas);
            let pods = live_pods(client, &ns, &stored).await;
            if done && pods.len() as i64 == replicas {
                Ok(stored)
            } else {
                Err(format!("status {status}, {} live pods", pods.len()))
            }
        },
    )
    .await
}

/// The pods of the Deployment's current ReplicaSets that are not being deleted.
async fn live_pods(client: &kube::Client, ns: &str, deployment: &Value) -> Vec<Value> {
    let owners: Vec<String> = owned_by(&api::replicasets(client, ns).await, deployment)
        .iter()
        .map(|rs| {
            rs["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    api::pods(client, ns)
        .await
        .into_iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && controller_uid(p).is_some_and(|uid| owners.contains(&uid))
        })
        .collect()
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
fn controller_uid(object: &Value) -> Option<String> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
        .map(str::to_owned)
}

/// The objects whose controller is `owner`.
fn owned_by(objects: &[Value], owner: &Value) -> Vec<Value> {
    let uid = owner["metadata"]["uid"].as_str().map(str::to_owned);
    objects
        .iter()
        .filter(|o| controller_uid(o) == uid)
        .cloned()
        .collect()
}

/// The Deployment's ReplicaSet of its current revision (none between a delete and the
/// deployment controller's new one).
async fn current_replicaset(client: &kube::Client, deployment: &Value) -> Option<Value> {
    let ns = deployment["metadata"]["namespace"].as_str().unwrap();
    let stored = api::get(client, deployment).await?;
    let revision = &stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"];
    owned_by(&api::replicasets(client, ns).await, &stored)
        .into_iter()
        .find(|rs| &rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == revision)
}

/// `spreadguard_admission_requests_total` summed over every series of one kind.
fn requests_for(metrics: &str, kind: &str) -> f64 {
    let label = format!("kind=\"{kind}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("spreadguard_admission_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `ResponseComplete` audit events of creates of `resource` in `ns`.
fn audited_creates(bed: &Bed, resource: &str, ns: &str) -> Vec<Value> {
    bed.audit_events()
        .into_iter()
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["verb"] == "create"
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["subresource"].is_null()
                && e["objectRef"]["namespace"] == ns
        })
        .collect()
}

/// Whether the API server called a mutating webhook for the audited request: it records
/// `mutation.webhook.admission.k8s.io/round_N_index_M` for every call, at Metadata level.
fn mutating_webhook_called(event: &Value) -> bool {
    event["annotations"].as_object().is_some_and(|a| {
        a.keys()
            .any(|k| k.starts_with("mutation.webhook.admission.k8s.io/"))
    })
}

/// DELETE of a namespaced object by path; the dependents are left to the garbage collector,
/// which the bed does not run (a deleted ReplicaSet's pods stay, owned by nothing alive).
async fn delete(client: &kube::Client, path: &str) {
    api::send(
        client,
        Method::DELETE,
        path,
        "application/json",
        Some(&json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"})),
    )
    .await
    .expect_ok(&format!("DELETE {path}"));
}

// === item 1: controller-owned ReplicaSets and Pods never reach spreadguard ===

#[tokio::test]
async fn controller_work_never_reaches_spreadguard_and_goes_on_while_it_is_down_under_fail() {
    let _one = ONE_BED.lock().await;
    let bed = bed("controller-owned");
    let client = bed.client().await;
    // The bed's registration fails closed (failurePolicy Fail on both webhooks).
    let mut sg = Spreadguard::start(&bed, Options::new("spreadguard")).await;
    sg.register(&bed).await;
    let ns = api::namespace(&client, "owned", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;
    let web = deployment(&ns, "web", Some(3));

    // Up: a create, a scale through the scale subresource (as kubectl scale) and a rollout.
    let created = api::create(&client, &web, false).await.expect_ok("create");
    assert!(!objects::spread_constraints(&created.body).is_empty());
    rolled_out(&client, &web, 3).await;
    api::merge_patch(&client, &web, "scale", &json!({"spec": {"replicas": 4}}))
        .await
        .expect_ok("scale to 4");
    rolled_out(&client, &web, 4).await;
    let template = json!({"spec": {"template": {"metadata": {"annotations": {"rollout": "1"}}}}});
    api::merge_patch(&client, &web, "", &template)
        .await
        .expect_ok("roll out");
    let stored = rolled_out(&client, &web, 4).await;
    let replicasets = owned_by(&api::replicasets(&client, &ns).await, &stored);
    assert_eq!(replicasets.len(), 2, "the rollout made a second ReplicaSet");

    // spreadguard saw the Deployment's writes and none of the controllers'.
    let metrics = sg.metrics();
    assert!(
        requests_for(&metrics, "Deployment") >= 5.0,
        "create (mutate, validate), scale (validate), rollout (mutate, validate)"
    );
    assert_eq!(requests_for(&metrics, "ReplicaSet"), 0.0, "{metrics}");
    assert_eq!(requests_for(&metrics, "Pod"), 0.0, "{metrics}");
    // The API server's own record: it called the mutating webhook for the Deployment, and
    // not for the ReplicaSets that the deployment controller created.
    let deployment_create = bed.audit_event("deployments", &ns, "web", "create").await;
    assert!(
        mutating_webhook_called(&deployment_create),
        "{deployment_create}"
    );
    let rs_creates = audited_creates(&bed, "replicasets", &ns);
    assert_eq!(rs_creates.len(), 2, "{rs_creates:?}");
    for event in &rs_creates {
        assert_eq!(
            event["user"]["username"],
            "system:serviceaccount:kube-system:deployment-controller"
        );
        assert_eq!(event["responseStatus"]["code"], 201, "{event}");
        assert!(!mutating_webhook_called(event), "{event}");
    }

    // A Pod whose controller is that ReplicaSet is skipped at the API server: a dry-run
    // create passes while spreadguard is down, where a Deployment is refused.
    let rs = current_replicaset(&client, &web).await.unwrap();
    let owned_pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "owned-probe", "namespace": ns, "labels": {"app": "web"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                                          "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    });

    // Down, Fail: what goes through the webhooks is refused...
    sg.stop();
    let refused = api::create(&client, &deployment(&ns, "while-down", Some(3)), false).await;
    assert_eq!(refused.status, 500, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("failed calling webhook \"mutate.spreadguard.io\""),
        "{}",
        refused.message()
    );
    let refused = api::merge_patch(&client, &web, "scale", &json!({"spec": {"replicas": 5}})).await;
    assert_eq!(refused.status, 500, "a scale is judged: {refused:?}");
    assert!(
        refused
            .message()
            .contains("failed calling webhook \"validate.spreadguard.io\""),
        "{}",
        refused.message()
    );
    let answer = api::create(&client, &owned_pod, true).await;
    assert!(answer.ok(), "a controller-owned Pod is skipped: {answer:?}");

    // ...and the controllers' work goes on. A deleted pod is replaced (a Pod CREATE by the
    // ReplicaSet controller).
    let pods = live_pods(&client, &ns, &stored).await;
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    delete(&client, &format!("/api/v1/namespaces/{ns}/pods/{victim}")).await;
    until(
        Duration::from_secs(60),
        "the deleted pod replaced",
        || async {
            let pods = live_pods(&client, &ns, &stored).await;
            let replaced = pods.len() == 4
                && pods.iter().all(|p| {
                    p["metadata"]["name"] != victim.as_str() && p["status"]["phase"] == "Running"
                });
            if replaced {
                Ok(())
            } else {
                Err(format!("{} live pods", pods.len()))
            }
        },
    )
    .await;
    // A deleted ReplicaSet is created again (a ReplicaSet CREATE by the deployment controller)
    // and fills itself with new pods.
    let rs_name = rs["metadata"]["name"].as_str().unwrap().to_owned();
    delete(
        &client,
        &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{rs_name}"),
    )
    .await;
    until(
        Duration::from_secs(90),
        "the ReplicaSet created again, with 4 ready pods",
        || async {
            let now = current_replicaset(&client, &web).await.unwrap_or_default();
            let again = now["metadata"]["name"] == rs_name.as_str()
                && now["metadata"]["uid"] != rs["metadata"]["uid"]
                && now["status"]["readyReplicas"] == 4;
            if again {
                Ok(())
            } else {
                Err(format!("{} {}", now["metadata"]["uid"], now["status"]))
            }
        },
    )
    .await;
    rolled_out(&client, &web, 4).await;
    let rs_creates = audited_creates(&bed, "replicasets", &ns);
    assert_eq!(rs_creates.len(), 3, "{rs_creates:?}");
    assert!(
        rs_creates
            .iter()
            .all(|e| e["responseStatus"]["code"] == 201)
    );

    // The control: the same registration without the chart's matchConditions. The
    // controller-owned Pod is now sent to spreadguard (refused, it is down), and so is the
    // ReplicaSet controller's replacement for a deleted pod: it stays missing.
    sg.upgrade(
        &bed,
        json!({"webhooks": {"skipControllerOwnedKinds": {"replicaSets": [], "pods": []}}}),
    );
    sg.register_only(&bed).await;
    until(
        Duration::from_secs(20),
        "controller-owned Pods sent to spreadguard",
        || async {
            let answer = api::create(&client, &owned_pod, true).await;
            if answer.status == 500 {
                Ok(())
            } else {
                Err(format!("{answer:?}"))
            }
        },
    )
    .await;
    let stored = api::get(&client, &web).await.unwrap();
    let pods = live_pods(&client, &ns, &stored).await;
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    delete(&client, &format!("/api/v1/namespaces/{ns}/pods/{victim}")).await;
    let failure = until(
        Duration::from_secs(60),
        "the ReplicaSet controller's create refused",
        || async {
            let rs = current_replicaset(&client, &web).await.unwrap_or_default();
            rs["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "ReplicaFailure").cloned())
                .ok_or_else(|| format!("{}", rs["status"]))
        },
    )
    .await;
    assert_eq!(failure["reason"], "FailedCreate", "{failure}");
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed calling webhook \"mutate.spreadguard.io\"")),
        "{failure}"
    );
    assert_eq!(live_pods(&client, &ns, &stored).await.len(), 3);
    bed.assert_running();
}

// === item 1: scale requests, and what a scale makes the controllers send ===

/// One audited write (`update` or `patch`) of a `resource` in `ns`: verb, subresource (`""`
/// for the object itself), user and response code.
#[derive(Debug)]
struct Write {
    verb: String,
    subresource: String,
    user: String,
    code: i64,
}

fn audited_writes(bed: &Bed, resource: &str, ns: &str) -> Vec<Write> {
    bed.audit_events()
        .into_iter()
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && (e["verb"] == "update" || e["verb"] == "patch")
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["namespace"] == ns
        })
        .map(|e| Write {
            verb: e["verb"].as_str().unwrap_or_default().to_owned(),
            subresource: e["objectRef"]["subresource"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            user: e["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            code: e["responseStatus"]["code"].as_i64().unwrap_or_default(),
        })
        .collect()
}

const DEPLOYMENT_CONTROLLER: &str = "system:serviceaccount:kube-system:deployment-controller";

/// The ReplicaSet's `spec.replicas` once it equals `want`.
async fn replicaset_scaled_to(client: &kube::Client, rs: &Value, want: i64) {
    until(
        Duration::from_secs(60),
        &format!("ReplicaSet spec.replicas {want}"),
        || async {
            let now = api::get(client, rs).await.unwrap_or_default();
            if now["spec"]["replicas"] == want {
                Ok(())
            } else {
                Err(format!("{}", now["spec"]["replicas"]))
            }
        },
    )
    .await
}

#[tokio::test]
async fn kubectl_scale_of_a_deployments_replicaset_is_judged_but_the_controllers_scaling_is_not() {
    let _one = ONE_BED.lock().await;
    let bed = bed("scale");
    let client = bed.client().await;
    let values = json!({"webhooks": {"optOutLabel": LABEL}});
    let sg = Spreadguard::start(&bed, Options::new("spreadguard").values(values)).await;
    sg.register(&bed).await;
    let ns = api::namespace(&client, "scale", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;
    let web = deployment(&ns, "web", Some(3));
    api::create(&client, &web, false).await.expect_ok("create");
    rolled_out(&client, &web, 3).await;
    let mut rs = current_replicaset(&client, &web).await.unwrap();
    rs["apiVersion"] = json!("apps/v1");
    rs["kind"] = json!("ReplicaSet");
    let rs_name = rs["metadata"]["name"].as_str().unwrap().to_owned();
    let kubectl = |args: &[&str]| {
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        kubectl::run(&bed.kubeconfig, &all, "")
    };
    let validated = |metrics: &str, kind: &str| {
        let label = format!("kind=\"{kind}\"");
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("spreadguard_admission_requests_total{")
                    && l.contains(&label)
                    && l.contains("webhook=\"validate\"")
                    && l.contains("operation=\"UPDATE\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(requests_for(&sg.metrics(), "ReplicaSet"), 0.0);

    // `kubectl scale deployment` goes through the Deployment's scale subresource: sent to
    // /validate. The deployment controller then scales the ReplicaSet with an UPDATE of the
    // ReplicaSet itself (not of its scale subresource), which the chart's matchConditions skip.
    let before = validated(&sg.metrics(), "Deployment");
    let out = kubectl(&["scale", "deployment/web", "--replicas=4"]);
    assert!(out.success, "{out:?}");
    rolled_out(&client, &web, 4).await;
    assert_eq!(validated(&sg.metrics(), "Deployment"), before + 1.0);
    let writes = audited_writes(&bed, "deployments", &ns);
    assert!(
        writes
            .iter()
            .any(|w| w.subresource == "scale" && w.user == "e2e-admin" && w.code == 200),
        "{writes:?}"
    );
    let by_controller: Vec<Write> = audited_writes(&bed, "replicasets", &ns)
        .into_iter()
        .filter(|w| w.user == DEPLOYMENT_CONTROLLER)
        .collect();
    assert!(
        by_controller
            .iter()
            .any(|w| w.verb == "update" && w.subresource.is_empty() && w.code == 200),
        "{by_controller:?}"
    );
    assert!(
        by_controller.iter().all(|w| w.subresource != "scale"),
        "{by_controller:?}"
    );
    assert_eq!(requests_for(&sg.metrics(), "ReplicaSet"), 0.0);

    // `kubectl scale` of that ReplicaSet directly is sent to /validate: the request's object
    // is an autoscaling/v1 Scale, without the ownerReferences the matchConditions look at, and
    // spreadguard judges it like the scale of a bare ReplicaSet: below minReplicas, denied...
    let rs_ref = format!("replicaset/{rs_name}");
    let out = kubectl(&["scale", &rs_ref, "--replicas=1"]);
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr.contains(
            "admission webhook \"validate.spreadguard.io\" denied the request: \
             spreadguard: HA001: scale to 1 replica, policy requires at least 2"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(validated(&sg.metrics(), "ReplicaSet"), 1.0);
    // ...otherwise admitted, and the deployment controller sets it back to the Deployment's
    // count with an UPDATE of the ReplicaSet (not sent).
    let out = kubectl(&["scale", &rs_ref, "--replicas=6"]);
    assert!(out.success, "{out:?}");
    assert_eq!(validated(&sg.metrics(), "ReplicaSet"), 2.0);
    replicaset_scaled_to(&client, &rs, 4).await;
    rolled_out(&client, &web, 4).await;
    assert_eq!(requests_for(&sg.metrics(), "ReplicaSet"), 2.0);
    let by_user = |user: &str| -> Vec<Write> {
        audited_writes(&bed, "replicasets", &ns)
            .into_iter()
            .filter(|w| w.user == user)
            .collect()
    };
    let direct = by_user("e2e-admin");
    assert_eq!(direct.len(), 2, "{direct:?}");
    assert!(direct.iter().all(|w| w.subresource == "scale"));
    assert_eq!(
        direct.iter().map(|w| w.code).collect::<Vec<_>>(),
        [403, 200]
    );
    assert!(
        by_user(DEPLOYMENT_CONTROLLER)
            .iter()
            .all(|w| w.subresource != "scale")
    );

    // The opt-out label does not exempt a scale either: the webhooks' objectSelector is matched
    // against the Scale, which carries no labels.
    let exempt = labelled(deployment(&ns, "exempt", Some(3)));
    let created = api::create(&client, &exempt, false)
        .await
        .expect_ok("a labelled Deployment");
    assert!(
        objects::spread_constraints(&created.body).is_empty(),
        "not sent to spreadguard"
    );
    rolled_out(&client, &exempt, 3).await;
    let out = kubectl(&["scale", "deployment/exempt", "--replicas=1"]);
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr.contains(
            "admission webhook \"validate.spreadguard.io\" denied the request: \
             spreadguard: HA001: scale to 1 replica"
        ),
        "{}",
        out.stderr
    );

    // While spreadguard is down, under Fail, the direct scale is refused, like a scale of the
    // Deployment.
    sg.stop();
    let out = kubectl(&["scale", &rs_ref, "--replicas=5"]);
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr
            .contains("failed calling webhook \"validate.spreadguard.io\""),
        "{}",
        out.stderr
    );
    bed.assert_running();
}

// === item 4: the opt-out label's ValidatingAdmissionPolicy ===

const LABEL: &str = "spreadguard.io/ignore";
const CI: &str = "system:serviceaccount:ci:helm";

/// A client that acts as `user` in `groups` (the admin impersonating them).
async fn client_as(bed: &Bed, user: &str, groups: &[&str]) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&bed.kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    kube::Client::try_from(config).unwrap()
}

/// `kubectl apply --server-side` of `objects` as the CI account, field manager `helm`: what
/// Helm 4 does on install and upgrade.
fn apply_as_ci(bed: &Bed, objects: &[Value]) -> kubectl::Output {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl::run(
        &bed.kubeconfig,
        &[
            "apply",
            "--server-side",
            "--field-manager=helm",
            "--force-conflicts",
            &format!("--as={CI}"),
            "--as-group=system:serviceaccounts",
            "--as-group=system:serviceaccounts:ci",
            "--as-group=system:authenticated",
            "-f",
            "-",
        ],
        &list.to_string(),
    )
}

fn labelled(mut object: Value) -> Value {
    object["metadata"]["labels"][LABEL] = json!("true");
    object["spec"]["template"]["metadata"]["labels"][LABEL] = json!("true");
    object
}

#[tokio::test]
async fn the_opt_out_label_policy_lets_controllers_and_a_helm_upgrade_through_and_stops_others() {
    let _one = ONE_BED.lock().await;
    let bed = bed("opt-out");
    let admin = bed.client().await;
    // The chart's own pods carry the label too: the release namespace is never judged.
    let values = json!({"webhooks": {"optOutLabel": LABEL}, "podLabels": {LABEL: "true"}});
    let mut sg = Spreadguard::start(&bed, Options::new("spreadguard").values(values)).await;
    sg.register(&bed).await;
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        api::apply(&admin, e2e_support::chart::one(&sg.rendered, kind)).await;
    }
    let policy = e2e_support::chart::one(&sg.rendered, "ValidatingAdmissionPolicy");
    let message = policy["spec"]["validations"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(&format!("the label {LABEL}")) && message.contains("system:masters"),
        "{message}"
    );

    // A tenant who may manage Deployments in its namespace; a CI account (Helm) that may do
    // anything, but is not allowed to set the label.
    let ns = api::namespace(&admin, "tenant", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;
    api::apply(
        &admin,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "e2e-tenant"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["*"]},
                          {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    api::apply(
        &admin,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "tenant", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-tenant"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "tenant"}]}),
    )
    .await;
    api::apply(
        &admin,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "e2e-ci"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "namespace": "ci", "name": "helm"}]}),
    )
    .await;
    let tenant = client_as(&bed, "tenant", &["tenants", "system:authenticated"]).await;
    let denied = |answer: &api::Answer| answer.status == 403 && answer.message().contains(&message);

    // A tenant cannot create a labelled workload (once the policy is in effect)...
    let sneaky = labelled(deployment(&ns, "sneaky", Some(3)));
    until(Duration::from_secs(30), "the policy in effect", || async {
        let answer = api::create(&tenant, &sneaky, true).await;
        if denied(&answer) {
            Ok(())
        } else {
            Err(format!("{answer:?}"))
        }
    })
    .await;
    let answer = api::create(&tenant, &sneaky, false).await;
    assert!(denied(&answer), "{answer:?}");
    assert_eq!(
        answer.message(),
        format!(
            "deployments.apps \"sneaky\" is forbidden: ValidatingAdmissionPolicy \
             'spreadguard-opt-out-label' with binding 'spreadguard-opt-out-label' denied \
             request: {message}"
        )
    );
    // ...nor add the label to one, on the workload or on its pod template.
    let plain = deployment(&ns, "plain", Some(3));
    api::create(&tenant, &plain, false)
        .await
        .expect_ok("the tenant's unlabelled Deployment");
    for patch in [
        json!({"metadata": {"labels": {LABEL: "true"}}}),
        json!({"spec": {"template": {"metadata": {"labels": {LABEL: "true"}}}}}),
    ] {
        let answer = api::merge_patch(&tenant, &plain, "", &patch).await;
        assert!(denied(&answer), "{patch}: {answer:?}");
    }
    rolled_out(&admin, &plain, 3).await;

    // An admin (system:masters) exempts a workload. Its ReplicaSet and Pods carry the label
    // from the template, and the controllers (kube-system ServiceAccounts) create them.
    let exempt = labelled(deployment(&ns, "exempt", Some(3)));
    let created = api::create(&admin, &exempt, false)
        .await
        .expect_ok("the admin's labelled Deployment");
    assert!(
        objects::spread_constraints(&created.body).is_empty(),
        "not sent to spreadguard"
    );
    let stored = rolled_out(&admin, &exempt, 3).await;
    let rs = current_replicaset(&admin, &exempt).await.unwrap();
    assert_eq!(rs["metadata"]["labels"][LABEL], "true");
    let pods = live_pods(&admin, &ns, &stored).await;
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["labels"][LABEL] == "true")
    );
    let rs_create = bed
        .audit_event(
            "replicasets",
            &ns,
            rs["metadata"]["name"].as_str().unwrap(),
            "create",
        )
        .await;
    assert_eq!(
        rs_create["user"]["username"],
        "system:serviceaccount:kube-system:deployment-controller"
    );

    // The tenant may change the exempt workload but not the label: an update that keeps it
    // passes (and its rollout creates a labelled ReplicaSet), removing it does not.
    let rollout =
        json!({"spec": {"template": {"metadata": {"annotations": {"rollout": "tenant"}}}}});
    api::merge_patch(&tenant, &exempt, "", &rollout)
        .await
        .expect_ok("the tenant's update keeping the label");
    rolled_out(&admin, &exempt, 3).await;
    let answer = api::merge_patch(
        &tenant,
        &exempt,
        "",
        &json!({"metadata": {"labels": {LABEL: null}}}),
    )
    .await;
    assert!(denied(&answer), "removing the label: {answer:?}");

    // A Helm-style upgrade by the CI account (server-side apply, as Helm 4 does): of the
    // tenant's labelled workload, label unchanged and the template changed, rolled out by the
    // controllers...
    let mut upgraded = exempt.clone();
    upgraded["spec"]["template"]["metadata"]["annotations"] = json!({"release": "2"});
    let out = apply_as_ci(&bed, &[upgraded]);
    assert!(out.success, "{out:?}");
    let stored = rolled_out(&admin, &exempt, 3).await;
    assert_eq!(
        stored["spec"]["template"]["metadata"]["annotations"]["release"],
        "2"
    );
    // ...and of the chart itself, twice (install, then an upgrade that rolls its pods), in the
    // release namespace, where its own labelled ReplicaSets and Pods are created.
    let chart_objects = |sg: &Spreadguard| -> Vec<Value> {
        sg.rendered
            .iter()
            .filter(|o| o["kind"] != "Secret")
            .cloned()
            .collect()
    };
    let out = apply_as_ci(&bed, &chart_objects(&sg));
    assert!(out.success, "install: {out:?}");
    let chart_deployment = e2e_support::chart::one(&sg.rendered, "Deployment").clone();
    let replicas = chart_deployment["spec"]["replicas"].as_i64().unwrap();
    rolled_out(&admin, &chart_deployment, replicas).await;
    sg.upgrade(&bed, json!({"podAnnotations": {"release": "2"}}));
    let out = apply_as_ci(&bed, &chart_objects(&sg));
    assert!(out.success, "upgrade: {out:?}");
    let stored = rolled_out(&admin, &chart_deployment, replicas).await;
    let release_ns = &sg.options.namespace;
    assert_eq!(
        owned_by(&api::replicasets(&admin, release_ns).await, &stored).len(),
        2
    );
    for pod in live_pods(&admin, release_ns, &stored).await {
        assert_eq!(pod["metadata"]["labels"][LABEL], "true");
    }
    // But the CI account may not exempt a tenant's workload either.
    let out = apply_as_ci(&bed, &[labelled(plain.clone())]);
    assert!(!out.success, "{out:?}");
    assert!(out.stderr.contains(&message), "{}", out.stderr);
    let stored = api::get(&admin, &plain).await.unwrap();
    assert!(stored["metadata"]["labels"][LABEL].is_null());
    bed.assert_running();
}

// === by hand ===

/// Not a check: a bed for running docs/operations.md by hand. Starts one (controllers acting
/// as their kube-system ServiceAccounts), copies its admin kubeconfig to
/// `<target>/tmp/by-hand.kubeconfig` and keeps it up until `<target>/tmp/by-hand.stop`
/// exists.
///
///     cargo test --test e2e_operations -- --ignored --nocapture a_bed_to_run_the_guide_by_hand
#[test]
#[ignore = "runs until stopped"]
fn a_bed_to_run_the_guide_by_hand() {
    let bed = bed("by-hand");
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let stop = tmp.join("by-hand.stop");
    let _ = std::fs::remove_file(&stop);
    std::fs::copy(&bed.kubeconfig, tmp.join("by-hand.kubeconfig")).unwrap();
    eprintln!(
        "kubeconfig: {}; stop with: touch {}",
        tmp.join("by-hand.kubeconfig").display(),
        stop.display()
    );
    while !stop.exists() {
        bed.assert_running();
        std::thread::sleep(Duration::from_secs(1));
    }
}
