//! Admission on a real control plane: what the API server stores after spreadguard's patch,
//! what it refuses, and where the real scheduler puts the pods. One bed and one spreadguard
//! (installed from the chart) for every test here; each test works in namespaces of its own
//! and never changes Nodes (tests/e2e_topology.rs does, on beds of its own).
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_support::api::{self, opted_in};
use e2e_support::bed::ZONE_KEY;
use e2e_support::objects::{self, deployment, with_pod_spec};
use e2e_support::shared::shared;
use e2e_support::wait::until;
use serde_json::{Value, json};

const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// Waits until `want` pods of the workload exist and none is still unprocessed by the
/// scheduler (each is bound, or marked Unschedulable), and returns them.
async fn settled_pods(client: &kube::Client, ns: &str, prefix: &str, want: usize) -> Vec<Value> {
    until(
        Duration::from_secs(60),
        &format!("{want} pods of {ns}/{prefix}* bound or unschedulable"),
        || async {
            let pods = api::pods(client, ns).await;
            let mine = objects::named(&pods, prefix);
            let settled = objects::bound(&mine) + objects::unschedulable(&mine);
            if mine.len() == want && settled == want {
                Ok(pods.clone())
            } else {
                Err(format!("{} pods, {settled} settled", mine.len()))
            }
        },
    )
    .await
}

// === 1. injection, stored and scheduled ===

#[tokio::test]
async fn injected_spread_is_stored_and_the_scheduler_places_3_and_6_replicas_evenly() {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "inject", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    let zones = api::node_zones(&client).await;

    for (name, replicas, expected) in [("web3", 3, vec![1, 1, 1]), ("web6", 6, vec![2, 2, 2])] {
        let d = deployment(&ns, name, Some(replicas));
        let created = api::create(&client, &d, false).await.expect_ok("create");
        assert!(created.warnings.is_empty(), "{:?}", created.warnings);

        // Read back through the API: what the API server stored after the patch.
        let stored = api::get(&client, &d).await.expect("stored");
        let selector = json!({"matchLabels": {"app": name}});
        assert_eq!(
            objects::spread_constraints(&stored),
            vec![
                json!({"maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "ScheduleAnyway",
                       "labelSelector": selector, "matchLabelKeys": ["pod-template-hash"],
                       "nodeTaintsPolicy": "Honor"}),
                json!({"maxSkew": 1, "topologyKey": HOSTNAME_KEY, "whenUnsatisfiable": "ScheduleAnyway",
                       "labelSelector": selector, "matchLabelKeys": ["pod-template-hash"],
                       "nodeTaintsPolicy": "Honor"}),
            ],
            "{name}: stored constraints"
        );
        assert_eq!(
            objects::preferred_anti_affinity(&stored),
            vec![
                json!({"weight": 100, "podAffinityTerm": {"labelSelector": selector, "topologyKey": ZONE_KEY}})
            ]
        );
        assert_eq!(
            stored["metadata"]["annotations"]["spreadguard.io/injected"],
            "zone-spread,node-spread,zone-anti-affinity"
        );

        // The real scheduler's placement.
        let pods = settled_pods(&client, &ns, &format!("{name}-"), replicas as usize).await;
        let mine = objects::named(&pods, &format!("{name}-"));
        assert_eq!(objects::unschedulable(&mine), 0);
        assert_eq!(
            objects::zone_counts(&mine, &zones),
            expected,
            "{name}: pods per zone {:?}",
            objects::per_zone(&mine, &zones)
        );
    }
}

// === 2. denials are true ===

/// The number in "leaves N pods Pending" / "N of M replicas stay Pending".
fn predicted_pending(message: &str) -> usize {
    // "1 pod stays Pending", "2 of 3 replicas stay Pending", "6 fit (1 Pending)".
    let words: Vec<&str> = message.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if !w.starts_with("Pending") {
            continue;
        }
        let mut j = i;
        while j > 0
            && ["stay", "stays", "pod", "pods", "replica", "replicas"].contains(&words[j - 1])
        {
            j -= 1;
        }
        let Some(before) = j.checked_sub(1).map(|k| words[k]) else {
            break;
        };
        if let Some(n) = before.strip_prefix('(') {
            return n.parse().unwrap_or_else(|_| panic!("{message}"));
        }
        if j >= 3 && words[j - 2] == "of" {
            return words[j - 3].parse().unwrap_or_else(|_| panic!("{message}"));
        }
        return before.parse().unwrap_or_else(|_| panic!("{message}"));
    }
    panic!("no Pending count in {message:?}")
}

struct DenyCase {
    rule: &'static str,
    replicas: i64,
    pod_spec: Value,
    /// Pods the message predicts Pending, when it speaks of Pending pods.
    pending_in_message: bool,
}

fn deny_cases() -> Vec<(&'static str, DenyCase)> {
    vec![
        (
            "zone-anti",
            DenyCase {
                rule: "HA002",
                replicas: 4,
                pod_spec: objects::required_anti_affinity("zone-anti", ZONE_KEY),
                pending_in_message: true,
            },
        ),
        (
            "host-anti",
            DenyCase {
                rule: "HA003",
                replicas: 8,
                pod_spec: objects::required_anti_affinity("host-anti", HOSTNAME_KEY),
                pending_in_message: true,
            },
        ),
        (
            "min-domains",
            DenyCase {
                rule: "HA007",
                replicas: 5,
                pod_spec: json!({"topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule",
                    "minDomains": 5, "labelSelector": {"matchLabels": {"app": "min-domains"}}
                }]}),
                pending_in_message: true,
            },
        ),
        (
            "pinned",
            DenyCase {
                rule: "HA006",
                replicas: 3,
                pod_spec: json!({"nodeSelector": {ZONE_KEY: "zone-a"}}),
                pending_in_message: false,
            },
        ),
    ]
}

#[tokio::test]
async fn each_denial_predicting_pending_pods_is_what_the_scheduler_does_in_warn_mode() {
    let env = shared();
    let client = env.bed.client().await;
    let enforce = api::namespace(&client, "deny-enforce", &opted_in("enforce")).await;
    let warn = api::namespace(&client, "deny-warn", &opted_in("warn")).await;
    env.sg.wait_mode(env.bed, &enforce, "enforce").await;
    env.sg.wait_mode(env.bed, &warn, "warn").await;
    let zones = api::node_zones(&client).await;

    for (name, case) in deny_cases() {
        // enforce: denied by the validating webhook, the rule ID and the numbers in the message.
        let object = with_pod_spec(
            deployment(&enforce, name, Some(case.replicas)),
            case.pod_spec.clone(),
        );
        let denied = api::create(&client, &object, false).await;
        assert_eq!(denied.status, 403, "{name}: {denied:?}");
        let message = denied.message().to_owned();
        assert!(
            message.starts_with(&format!(
                "admission webhook \"validate.spreadguard.io\" denied the request: spreadguard: {}: ",
                case.rule
            )),
            "{name}: {message}"
        );
        assert!(
            api::get(&client, &object).await.is_none(),
            "{name}: nothing stored"
        );

        // warn: admitted with the finding as a warning; the scheduler agrees with the message.
        let object = with_pod_spec(deployment(&warn, name, Some(case.replicas)), case.pod_spec);
        let admitted = api::create(&client, &object, false).await.expect_ok(name);
        assert!(
            admitted
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("{}: ", case.rule))),
            "{name}: warnings {:?}",
            admitted.warnings
        );
        let pods = settled_pods(&client, &warn, &format!("{name}-"), case.replicas as usize).await;
        let mine = objects::named(&pods, &format!("{name}-"));
        let pending = objects::unschedulable(&mine);
        if case.pending_in_message {
            assert_eq!(
                pending,
                predicted_pending(&message),
                "{name}: the scheduler left {pending} Pending; spreadguard said: {message}; placed {:?}",
                objects::per_zone(&mine, &zones)
            );
        } else {
            // HA006: "1 of 3 zones eligible: losing zone-a takes down all 3 replicas":
            // every pod runs, all of them in zone-a.
            assert!(
                message.contains("1 of 3 zones eligible: losing zone-a"),
                "{message}"
            );
            assert!(message.contains("takes down all 3 replicas"), "{message}");
            assert_eq!(pending, 0);
            assert_eq!(
                objects::per_zone(&mine, &zones),
                [("zone-a".to_owned(), 3)].into_iter().collect()
            );
        }
    }

    // HA006 at severity warn: no node is eligible at all (a zone no node is in). Admitted in
    // enforce with the warning, and every pod stays Pending, as it says.
    let nowhere = with_pod_spec(
        deployment(&enforce, "nowhere", Some(3)),
        json!({"nodeSelector": {ZONE_KEY: "zone-x"}}),
    );
    let admitted = api::create(&client, &nowhere, false)
        .await
        .expect_ok("nowhere");
    assert!(
        admitted
            .warnings
            .iter()
            .any(|w| w.starts_with("HA006: no node to run on: 0 of")),
        "{:?}",
        admitted.warnings
    );
    let pods = settled_pods(&client, &enforce, "nowhere-", 3).await;
    assert_eq!(
        objects::unschedulable(&objects::named(&pods, "nowhere-")),
        3
    );
}

/// HA028 through the real API server: a Deployment whose pod template carries more labels
/// than spreadguard judges (20,000 values where decisions read) reaches the webhooks as it was
/// written (the API server takes it: no limit on the number of labels) and is refused with
/// the rule ID; the same Deployment with a few hundred labels is judged and admitted.
#[tokio::test]
async fn a_workload_too_large_to_judge_is_refused_through_the_api_server() {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "size-enforce", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    let with_labels = |name: &str, n: usize| {
        let mut d = deployment(&ns, name, Some(3));
        for i in 0..n {
            d["spec"]["template"]["metadata"]["labels"][format!("example.com/l{i:05}")] =
                json!("v");
        }
        d
    };

    let big = with_labels("too-large", 21_000);
    let denied = api::create(&client, &big, false).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    let message = denied.message();
    assert!(
        message.starts_with(
            "admission webhook \"validate.spreadguard.io\" denied the request: spreadguard: HA028: not judged"
        ),
        "{message}"
    );
    assert!(message.contains("more than 20000 values"), "{message}");
    assert!(api::get(&client, &big).await.is_none(), "nothing stored");

    let judged = with_labels("large", 500);
    let admitted = api::create(&client, &judged, false)
        .await
        .expect_ok("500 labels");
    assert!(
        objects::spread_keys(&admitted.body).contains(&ZONE_KEY.to_owned()),
        "judged and mutated: {:?}",
        admitted.body["spec"]["template"]["spec"]
    );
}

// === 4. defaulting ===

#[tokio::test]
async fn what_the_api_server_defaults_before_admission_turns_no_acceptable_object_into_a_denial() {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "defaults", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    let zones = api::node_zones(&client).await;

    // Minimal manifests: no strategy, revisionHistoryLimit, progressDeadlineSeconds,
    // podManagementPolicy, updateStrategy, restartPolicy, dnsPolicy, schedulerName,
    // terminationGracePeriodSeconds, imagePullPolicy... The API server fills them all in
    // before the webhooks see the object.
    let d = deployment(&ns, "plain", Some(3));
    let s = objects::statefulset(&ns, "sts", 3);
    for object in [&d, &s] {
        let created = api::create(&client, object, false).await;
        assert!(created.ok(), "{object}: {created:?}");
        assert!(created.warnings.is_empty(), "{:?}", created.warnings);
        let stored = api::get(&client, object).await.unwrap();
        let spec = &stored["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(objects::spread_keys(&stored), [ZONE_KEY, HOSTNAME_KEY]);

        // Writing back the stored object, every default included (what `kubectl replace` of
        // `kubectl get -o yaml` does), changes nothing and is allowed. The controllers write
        // status meanwhile, so a conflict means: read again and retry.
        let generation = stored["metadata"]["generation"].clone();
        let replaced = until(
            Duration::from_secs(20),
            "replace without a conflict",
            || async {
                let latest = api::get(&client, object).await.unwrap();
                let answer = api::replace(&client, &latest).await;
                if answer.status == 409 {
                    Err(answer.message().to_owned())
                } else {
                    Ok(answer)
                }
            },
        )
        .await;
        assert!(replaced.ok(), "replace: {replaced:?}");
        assert!(replaced.warnings.is_empty(), "{:?}", replaced.warnings);
        let again = api::get(&client, object).await.unwrap();
        assert_eq!(again["metadata"]["generation"], generation);
        assert_eq!(again["spec"], stored["spec"]);
    }
    let stored = api::get(&client, &d).await.unwrap();
    assert_eq!(stored["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(stored["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(stored["spec"]["progressDeadlineSeconds"], 600);
    let stored = api::get(&client, &s).await.unwrap();
    assert_eq!(stored["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(stored["spec"]["updateStrategy"]["type"], "RollingUpdate");

    // A bare Pod, as `kubectl run` makes it: admission plugins before the webhooks add
    // tolerations (DefaultTolerationSeconds) and a priority; spreadguard only warns (a Pod is
    // one replica by nature) and injects its spread.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "solo", "namespace": ns, "labels": {"run": "solo"}},
        "spec": {"containers": [{"name": "solo", "image": "registry.k8s.io/pause:3.10"}]}
    });
    let created = api::create(&client, &pod, false)
        .await
        .expect_ok("bare pod");
    assert_eq!(created.warnings.len(), 1, "{:?}", created.warnings);
    assert!(
        created.warnings[0].starts_with("HA001: "),
        "{:?}",
        created.warnings
    );
    let stored = &created.body;
    let tolerations = stored["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/not-ready"
                && t["effect"] == "NoExecute"
                && t["tolerationSeconds"] == 300),
        "{tolerations:?}"
    );
    assert_eq!(stored["spec"]["priority"], 0);
    assert_eq!(
        stored["spec"]["topologySpreadConstraints"]
            .as_array()
            .map(|c| c
                .iter()
                .map(|c| c["topologyKey"].clone())
                .collect::<Vec<_>>()),
        Some(vec![json!(ZONE_KEY), json!(HOSTNAME_KEY)])
    );

    // The StatefulSet rolls out pod by pod (OrderedReady: the status loop marks each Ready)
    // and the scheduler spreads it like the Deployment.
    for prefix in ["sts-", "plain-"] {
        let pods = settled_pods(&client, &ns, prefix, 3).await;
        let mine = objects::named(&pods, prefix);
        assert_eq!(objects::zone_counts(&mine, &zones), [1, 1, 1], "{prefix}");
    }
}

/// Issue 12 decides what a Deployment without `replicas` should get; today it is judged as
/// the 1 replica the API server defaults it to before admission, and denied as HA001 like an
/// explicit `replicas: 1`. This pins today's behaviour and the defaulting it rests on.
#[tokio::test]
async fn a_deployment_without_replicas_reaches_admission_defaulted_to_1() {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "no-replicas", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;

    let denied = api::create(&client, &deployment(&ns, "hpa-managed", None), false).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert!(
        denied
            .message()
            .contains("spreadguard: HA001: 1 replica, policy requires at least 2"),
        "{}",
        denied.message()
    );
}

// === 5. UPDATE ===

#[tokio::test]
async fn scale_and_label_edits_create_no_replicaset_and_a_template_change_is_mutated_once() {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "update", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;

    let d = deployment(&ns, "web", Some(3));
    api::create(&client, &d, false).await.expect_ok("create");
    let rollout_done = |generation: i64| {
        let client = client.clone();
        let d = d.clone();
        async move {
            until(
                Duration::from_secs(60),
                &format!("deployment web to observe generation {generation}"),
                || async {
                    let now = api::get(&client, &d).await.unwrap();
                    let observed = now["status"]["observedGeneration"].as_i64().unwrap_or(0);
                    let updated = now["status"]["updatedReplicas"].as_i64().unwrap_or(0);
                    let wanted = now["spec"]["replicas"].as_i64().unwrap_or(0);
                    if observed >= generation && updated == wanted {
                        Ok(now)
                    } else {
                        Err(format!("{}", now["status"]))
                    }
                },
            )
            .await
        }
    };
    let stored = rollout_done(1).await;
    assert_eq!(api::replicasets(&client, &ns).await.len(), 1);
    let template = stored["spec"]["template"].clone();

    // Scale through the scale subresource: the validating webhook judges the Scale (6 >=
    // minReplicas, allowed), nothing mutates it, no template change, no new ReplicaSet.
    api::merge_patch(&client, &d, "scale", &json!({"spec": {"replicas": 6}}))
        .await
        .expect_ok("scale");
    let scaled = rollout_done(stored["metadata"]["generation"].as_i64().unwrap() + 1).await;
    assert_eq!(scaled["spec"]["replicas"], 6);
    assert_eq!(scaled["spec"]["template"], template);
    assert_eq!(api::replicasets(&client, &ns).await.len(), 1, "scale");

    // A label edit: the webhooks are called (UPDATE) and must not touch the template.
    let labelled = api::merge_patch(
        &client,
        &d,
        "",
        &json!({"metadata": {"labels": {"team": "shop"}}}),
    )
    .await
    .expect_ok("label");
    assert_eq!(labelled.body["spec"]["template"], template);
    rollout_done(scaled["metadata"]["generation"].as_i64().unwrap()).await;
    assert_eq!(api::replicasets(&client, &ns).await.len(), 1, "label edit");

    // A template change from the user's own manifest (`kubectl replace -f`), which knows
    // nothing of the injected constraints: mutated again, each constraint exactly once.
    let mut manifest = deployment(&ns, "web", Some(6));
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.k8s.io/pause:3.9");
    // As `kubectl replace` does, at the stored object's current resourceVersion; the
    // controllers may write its status in between (409), and then it is read again.
    let mut replaced = None;
    for _ in 0..10 {
        let current = api::get(&client, &manifest)
            .await
            .expect("stored Deployment");
        manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        let answer = api::replace(&client, &manifest).await;
        if answer.status != 409 {
            replaced = Some(answer.expect_ok("replace"));
            break;
        }
    }
    let replaced = replaced.expect("replace kept conflicting with the controllers");
    assert_eq!(
        objects::spread_keys(&replaced.body),
        [ZONE_KEY, HOSTNAME_KEY]
    );
    assert_eq!(objects::preferred_anti_affinity(&replaced.body).len(), 1);
    let rolled = rollout_done(replaced.body["metadata"]["generation"].as_i64().unwrap()).await;
    assert_eq!(api::replicasets(&client, &ns).await.len(), 2, "one rollout");

    // An image change that keeps the constraints (`kubectl set image`): nothing to add.
    let patched = api::merge_patch(
        &client,
        &d,
        "",
        &json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.k8s.io/pause:3.8"}
        ]}}}}),
    )
    .await
    .expect_ok("set image");
    assert_eq!(
        objects::spread_constraints(&patched.body),
        objects::spread_constraints(&rolled)
    );
    assert_eq!(objects::preferred_anti_affinity(&patched.body).len(), 1);
    rollout_done(patched.body["metadata"]["generation"].as_i64().unwrap()).await;
    assert_eq!(
        api::replicasets(&client, &ns).await.len(),
        3,
        "second rollout"
    );
}

// === 6. idempotent under reinvocation ===

#[tokio::test]
async fn with_a_second_mutating_webhook_and_reinvocation_each_constraint_is_stored_once() {
    use e2e_support::webhook::{TestWebhook, patched};
    use std::sync::Arc;

    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "reinvoke", &opted_in("enforce")).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;

    // A sidecar injector, registered after spreadguard (webhooks run in the order of their
    // configurations' names), changes the object after spreadguard has patched it: the API
    // server then calls spreadguard again (reinvocationPolicy: IfNeeded from the chart).
    let sidecar = TestWebhook::start(Arc::new(|request: &Value| {
        let containers = request["object"]["spec"]["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if containers.iter().any(|c| c["name"] == "sidecar") {
            json!({"allowed": true})
        } else {
            patched(&[
                json!({"op": "add", "path": "/spec/template/spec/containers/-",
                             "value": {"name": "sidecar", "image": "registry.k8s.io/pause:3.10"}}),
            ])
        }
    }))
    .await;
    let config_name = format!("zz-sidecar-{ns}");
    api::apply(
        &client,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": config_name},
            "webhooks": [{
                "name": "sidecar.e2e.test",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 5,
                "clientConfig": {
                    "url": format!("{}/mutate", sidecar.url),
                    "caBundle": base64_pem(&sidecar.ca_pem),
                },
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
                           "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            }]
        }),
    )
    .await;
    // Wait until the sidecar webhook is in effect (dry runs reach it too).
    let probe = deployment(&ns, "probe", Some(3));
    until(
        Duration::from_secs(20),
        "the sidecar webhook in effect",
        || async {
            let answer = api::create(&client, &probe, true).await;
            let containers = answer.body["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map_or(0, Vec::len);
            if containers == 2 {
                Ok(())
            } else {
                Err(format!("{answer:?}"))
            }
        },
    )
    .await;

    let d = deployment(&ns, "web", Some(3));
    api::create(&client, &d, false).await.expect_ok("create");
    let stored = api::get(&client, &d).await.unwrap();
    api::delete_path(
        &client,
        &format!(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{config_name}"
        ),
    )
    .await;

    assert_eq!(objects::spread_keys(&stored), [ZONE_KEY, HOSTNAME_KEY]);
    assert_eq!(objects::preferred_anti_affinity(&stored).len(), 1);
    let containers: Vec<&str> = stored["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["app", "sidecar"]);

    // The API server's audit annotations record each call: spreadguard patched in round 0,
    // was called again in round 1 after the sidecar's patch, and changed nothing then.
    let event = env
        .bed
        .audit_event("deployments", &ns, "web", "create")
        .await;
    let calls: Vec<(String, Value)> = event["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("mutation.webhook.admission.k8s.io/round_"))
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::from_str(v.as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let ours = |round: &str| -> Vec<&Value> {
        calls
            .iter()
            .filter(|(k, v)| k.contains(round) && v["webhook"] == "mutate.spreadguard.io")
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(ours("round_0_").len(), 1, "{calls:?}");
    assert_eq!(ours("round_0_")[0]["mutated"], true);
    assert_eq!(ours("round_1_").len(), 1, "reinvoked once: {calls:?}");
    assert_eq!(ours("round_1_")[0]["mutated"], false, "{calls:?}");
}

fn base64_pem(pem: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(pem)
}

// === 7. modes as a user sees them ===

#[tokio::test]
async fn kubectl_prints_warnings_denials_and_server_side_dry_runs_reach_the_webhook() {
    use e2e_support::kubectl;

    let env = shared();
    let client = env.bed.client().await;
    let kc = env.bed.kubeconfig.as_path();
    let mut namespaces = Vec::new();
    for mode in ["enforce", "warn", "audit"] {
        let ns = api::namespace(&client, &format!("kubectl-{mode}"), &opted_in(mode)).await;
        env.sg.wait_mode(env.bed, &ns, mode).await;
        namespaces.push(ns);
    }
    let [enforce, warn, audit] = &namespaces[..] else {
        unreachable!()
    };
    let single = |ns: &str| deployment(ns, "single", Some(1)).to_string();

    // warn: created, and kubectl prints the finding.
    let out = kubectl::run(kc, &["create", "-f", "-"], &single(warn));
    assert!(out.success, "{out:?}");
    assert_eq!(out.warnings().len(), 1, "{out:?}");
    assert!(
        out.warnings()[0].starts_with("HA001: 1 replica, policy requires at least 2"),
        "{out:?}"
    );

    // audit: created unchanged, and kubectl prints what would have been denied and injected.
    let out = kubectl::run(kc, &["create", "-f", "-"], &single(audit));
    assert!(out.success, "{out:?}");
    let warnings = out.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("would deny: HA001: 1 replica")),
        "{out:?}"
    );
    for item in ["zone-spread", "node-spread", "zone-anti-affinity"] {
        assert!(
            warnings.contains(&format!("audit mode: would inject {item}").as_str()),
            "{item}: {out:?}"
        );
    }
    let stored = api::get(&client, &deployment(audit, "single", None))
        .await
        .unwrap();
    assert!(objects::spread_constraints(&stored).is_empty());

    // The API server's audit log carries audit mode's annotations.
    let event = env
        .bed
        .audit_event("deployments", audit, "single", "create")
        .await;
    let annotations = &event["annotations"];
    let violations: Vec<String> = serde_json::from_str(
        annotations["validate.spreadguard.io/violations"]
            .as_str()
            .unwrap_or("[]"),
    )
    .unwrap();
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("HA001 deny: 1 replica")),
        "{annotations}"
    );
    let would_patch: Vec<Value> = serde_json::from_str(
        annotations["mutate.spreadguard.io/would-patch"]
            .as_str()
            .unwrap_or("[]"),
    )
    .unwrap();
    assert!(
        would_patch
            .iter()
            .any(|op| op["path"] == "/spec/template/spec/topologySpreadConstraints"),
        "{annotations}"
    );

    // enforce: refused with the rule ID and the numbers.
    let out = kubectl::run(kc, &["create", "-f", "-"], &single(enforce));
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr.contains(
            "admission webhook \"validate.spreadguard.io\" denied the request: spreadguard: HA001: 1 replica, policy requires at least 2"
        ),
        "{out:?}"
    );

    // --dry-run=server: the webhook is called with dryRun: true, the answer shows the patched
    // object, and nothing is stored.
    let dry = deployment(enforce, "dry", Some(3)).to_string();
    let out = kubectl::run(
        kc,
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        &dry,
    );
    assert!(out.success, "{out:?}");
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(objects::spread_keys(&shown), [ZONE_KEY, HOSTNAME_KEY]);
    let out = kubectl::run(kc, &["get", "deployment", "dry", "-n", enforce], "");
    assert!(!out.success && out.stderr.contains("NotFound"), "{out:?}");
    // spreadguard's own log line for it says dry_run: true (the request's namespace and the
    // object's name are fields of its span: `object`, since the span's own name is "name").
    let log = std::fs::read_to_string(env.sg.log_path()).unwrap();
    let seen: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(&format!("\"namespace\":\"{enforce}\"")) && l.contains("\"object\":\"dry\"")
        })
        .collect();
    assert!(
        !seen.is_empty(),
        "spreadguard logged no request for {enforce}/dry"
    );
    assert!(
        seen.iter().all(|l| l.contains("\"dry_run\":true")),
        "{seen:?}"
    );
}

// === 10. namespace opt-in and mode labels on a real watch ===

#[tokio::test]
async fn namespace_opt_in_and_mode_labels_take_effect() {
    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "labels", &[]).await;
    let single = deployment(&ns, "single", Some(1));

    // Not opted in: never sent to spreadguard (the chart's namespaceSelector).
    let answer = api::create(&client, &single, true)
        .await
        .expect_ok("not opted in");
    assert!(answer.warnings.is_empty(), "{answer:?}");

    let label = |labels: Value| {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            api::send(
                &client,
                axum::http::Method::PATCH,
                &format!("/api/v1/namespaces/{ns}"),
                "application/merge-patch+json",
                Some(&json!({"metadata": {"labels": labels}})),
            )
            .await
            .expect_ok("label namespace");
        }
    };
    // Opted in without a mode label: the policy's mode (enforce).
    label(json!({"spreadguard.io/enabled": "true"})).await;
    env.sg.wait_mode(env.bed, &ns, "enforce").await;
    label(json!({"spreadguard.io/mode": "warn"})).await;
    env.sg.wait_mode(env.bed, &ns, "warn").await;
    label(json!({"spreadguard.io/mode": "audit"})).await;
    env.sg.wait_mode(env.bed, &ns, "audit").await;
    label(json!({"spreadguard.io/mode": "off"})).await;
    env.sg.wait_mode(env.bed, &ns, "off").await;
    // Opting out again.
    label(json!({"spreadguard.io/enabled": null, "spreadguard.io/mode": null})).await;
    env.sg.wait_mode(env.bed, &ns, "off").await;
    let answer = api::create(&client, &deployment(&ns, "many", Some(3)), true)
        .await
        .expect_ok("opted out");
    assert!(
        objects::spread_constraints(&answer.body).is_empty(),
        "not patched once opted out"
    );
}

// === 11. audit --cluster and topology agree with the webhook ===

/// A stored object as a new manifest named `name`: server-set metadata and status removed.
fn as_new(stored: &Value, name: &str) -> Value {
    let mut object = stored.clone();
    let metadata = object["metadata"].as_object_mut().unwrap();
    for key in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
    ] {
        metadata.remove(key);
    }
    metadata.insert("name".into(), json!(name));
    object.as_object_mut().unwrap().remove("status");
    object
}

#[tokio::test]
async fn audit_cluster_and_topology_give_the_webhooks_verdicts() {
    let env = shared();
    let client = env.bed.client().await;
    // Workloads are admitted while the namespace is in warn mode, then it turns enforce: the
    // cluster now holds workloads the webhook would deny, as after a policy change.
    let ns = api::namespace(&client, "agree", &opted_in("warn")).await;
    env.sg.wait_mode(env.bed, &ns, "warn").await;

    let mut workloads = vec![
        deployment(&ns, "single", Some(1)),
        deployment(&ns, "fine", Some(3)),
        objects::statefulset(&ns, "db", 3),
    ];
    for (name, case) in deny_cases() {
        workloads.push(with_pod_spec(
            deployment(&ns, name, Some(case.replicas)),
            case.pod_spec,
        ));
    }
    // What the validating webhook found in each stored object, in full: its `violations`
    // audit annotation ("RULE severity: message" for every warn and deny finding).
    let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for w in &workloads {
        api::create(&client, w, false).await.expect_ok("create");
        let name = w["metadata"]["name"].as_str().unwrap();
        let resource = if w["kind"] == "StatefulSet" {
            "statefulsets"
        } else {
            "deployments"
        };
        let event = env.bed.audit_event(resource, &ns, name, "create").await;
        let found = event["annotations"]["validate.spreadguard.io/violations"]
            .as_str()
            .map(|v| serde_json::from_str(v).unwrap())
            .unwrap_or_default();
        violations.insert(name.to_owned(), found);
    }
    assert!(
        violations["fine"].is_empty() && violations["db"].is_empty(),
        "{violations:?}"
    );
    assert!(
        violations["single"][0].starts_with("HA001 deny: "),
        "{violations:?}"
    );

    api::send(
        &client,
        axum::http::Method::PATCH,
        &format!("/api/v1/namespaces/{ns}"),
        "application/merge-patch+json",
        Some(&json!({"metadata": {"labels": {"spreadguard.io/mode": "enforce"}}})),
    )
    .await
    .expect_ok("namespace to enforce");
    env.sg.wait_mode(env.bed, &ns, "enforce").await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
        .args(["audit", "--cluster", "-o", "json", "--kubeconfig"])
        .arg(&env.bed.kubeconfig)
        .arg("--config")
        .arg(env.sg.dir.join("policy.yaml"))
        .output()
        .unwrap();
    // Exit 1: the webhook would deny some of them.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: BTreeMap<String, &Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespace"] == ns.as_str())
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(results.len(), workloads.len(), "{}", report["results"]);

    for w in &workloads {
        let name = w["metadata"]["name"].as_str().unwrap();
        let r = results[name];
        assert_eq!(r["mode"], "enforce", "{r}");
        assert!(
            r["patch"].as_array().is_none_or(Vec::is_empty),
            "stored objects are already patched: {r}"
        );
        // The same findings the validating webhook recorded for this object.
        let findings: Vec<String> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "info")
            .map(|f| {
                format!(
                    "{} {}: {}",
                    f["rule"].as_str().unwrap(),
                    f["severity"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(findings, violations[name], "{name}");

        // And the same answer the webhooks give the stored object now, sent again under
        // another name (server-side dry run).
        let stored = api::get(&client, w).await.unwrap();
        let answer = api::create(&client, &as_new(&stored, &format!("{name}-again")), true).await;
        let outcome = &r["outcome"];
        assert_eq!(
            answer.ok(),
            outcome["allowed"] == true,
            "{name}: {answer:?} vs {outcome}"
        );
        if answer.ok() {
            let expected: Vec<String> = outcome["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(answer.warnings, expected, "{name}");
        } else {
            assert_eq!(answer.status, 403, "{name}: {answer:?}");
            for f in r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["severity"] == "deny")
            {
                let quoted = format!(
                    "{}: {}",
                    f["rule"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                );
                assert!(
                    answer.message().contains(&quoted),
                    "{name}: {} lacks {quoted}",
                    answer.message()
                );
            }
        }
    }

    // topology: the zones the webhook decided with, from the same API server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
        .args(["topology", "-o", "json", "--kubeconfig"])
        .arg(&env.bed.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let topology: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(topology["zoneKey"], ZONE_KEY, "{topology}");
    assert_eq!(topology["nodes"], 6, "{topology}");
    assert_eq!(topology["unzonedNodes"], 0, "{topology}");
    let zone = |z: &str| json!({"zone": z, "nodes": 2, "schedulable": 2, "tainted": 0});
    assert_eq!(
        topology["zones"],
        json!([zone("zone-a"), zone("zone-b"), zone("zone-c")]),
        "{topology}"
    );
    assert!(
        violations["zone-anti"][0].contains("3 eligible zones"),
        "the webhook counted the same 3 zones: {violations:?}"
    );
}

// === 12. the chart on the real API server ===

#[tokio::test]
async fn every_object_the_chart_renders_is_accepted_by_the_api_server() {
    use e2e_support::{chart, kubectl};

    let env = shared();
    let client = env.bed.client().await;
    let ns = api::namespace(&client, "chart", &[]).await;
    let ca = e2e_support::tls::Ca::new("chart check CA");
    let cases = [
        ("defaults", json!({})),
        ("scope-cluster-wide", json!({"scope": "clusterWide"})),
        (
            "existing-secret",
            json!({"certificates": {"mode": "existingSecret",
                   "existingSecret": {"name": "serving", "caBundle": ca.pem}}}),
        ),
        (
            "url",
            json!({"webhooks": {"url": "https://127.0.0.1:8443"},
                       "certificates": {"mode": "existingSecret",
                       "existingSecret": {"name": "serving", "caBundle": ca.pem}}}),
        ),
    ];
    for (case, values) in cases {
        // Cluster-scoped names must not clash with the bed's own release.
        let release = format!("check-{case}");
        let rendered = chart::render(&release, &ns, &values, Some(&env.bed.kubeconfig));
        let kinds: std::collections::BTreeSet<&str> = rendered
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        for kind in [
            "Deployment",
            "Service",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
            "PodDisruptionBudget",
        ] {
            assert!(kinds.contains(kind), "{case}: no {kind} in {kinds:?}");
        }
        let list = json!({"apiVersion": "v1", "kind": "List", "items": rendered});
        let out = kubectl::run(
            &env.bed.kubeconfig,
            &[
                "create",
                "--dry-run=server",
                "-n",
                &ns,
                "-o",
                "name",
                "-f",
                "-",
            ],
            &list.to_string(),
        );
        assert!(out.success, "{case}: {out:?}");
        assert_eq!(
            out.stdout.lines().count(),
            rendered.len(),
            "{case}: {out:?}"
        );
    }
}

#[tokio::test]
async fn the_charts_service_account_can_do_exactly_what_spreadguard_needs() {
    let env = shared();
    let client = env.bed.client().await;
    let user = format!(
        "system:serviceaccount:{}:spreadguard",
        env.sg.options.namespace
    );
    let groups = [
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{}", env.sg.options.namespace),
        "system:authenticated",
    ];
    let resources: &[(&str, &str)] = &[
        ("", "nodes"),
        ("", "namespaces"),
        ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"),
        ("storage.k8s.io", "storageclasses"),
        ("karpenter.sh", "nodepools"),
        ("", "secrets"),
        ("", "configmaps"),
        ("", "pods"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        ),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("coordination.k8s.io", "leases"),
    ];
    let verbs = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "impersonate",
    ];
    let mut allowed = Vec::new();
    for &(group, resource) in resources {
        for verb in verbs {
            for namespace in [None, Some(env.sg.options.namespace.as_str())] {
                let mut attributes = json!({"group": group, "resource": resource, "verb": verb});
                if let Some(ns) = namespace {
                    attributes["namespace"] = json!(ns);
                }
                let review = api::send(
                    &client,
                    axum::http::Method::POST,
                    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                    "application/json",
                    Some(&json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                 "spec": {"user": user, "groups": groups, "resourceAttributes": attributes}})),
                )
                .await
                .expect_ok("SubjectAccessReview");
                if review.body["status"]["allowed"] == true {
                    allowed.push(format!(
                        "{verb} {resource}{}",
                        if namespace.is_some() {
                            " (namespaced)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
    }
    allowed.sort();
    allowed.dedup();
    // Cluster-wide reads of what the caches watch (a ClusterRole also grants them inside any
    // namespace, where the namespaced ones among them live): Nodes and Namespaces for the
    // topology and the modes, HPAs and PDBs for the replica and budget caches (issue 12),
    // storage and NodePools for stateful placement (issue 13).
    let watched = [
        "nodes",
        "namespaces",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
        "persistentvolumeclaims",
        "persistentvolumes",
        "storageclasses",
        "nodepools",
    ];
    let mut expected: Vec<String> = watched
        .iter()
        .flat_map(|r| ["get", "list", "watch"].map(|v| format!("{v} {r}")))
        .chain(
            watched
                .iter()
                .flat_map(|r| ["get", "list", "watch"].map(|v| format!("{v} {r} (namespaced)"))),
        )
        .collect();
    expected.sort();
    assert_eq!(allowed, expected);
    // And with exactly that, spreadguard serves: its caches are synced as that ServiceAccount.
    assert_eq!(env.sg.admin_status("/readyz"), Some(200));
}
