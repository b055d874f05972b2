//! Exceptions and the opt-out label on a real control plane (issue 16).
//!
//! spreadguard is installed from the chart into the bed; a user bound to the `edit`
//! ClusterRole in one namespace is impersonated through the real `kubectl --as`, so that
//! the API server's RBAC, the chart's ValidatingAdmissionPolicy and spreadguard's webhooks
//! all judge the same request as in a cluster:
//! - with the chart's defaults no label exempts anything;
//! - with an opt-out label configured, the edit user cannot create a workload carrying it
//!   (the policy's message names the label and who may set it), a member of an allowed group
//!   can, and the labelled workload is then not judged;
//! - an exception in the policy lets exactly the named workload through with an `info`
//!   finding and a warning, and once its expiry date has passed the same workload is denied.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::time::Duration;

use e2e_support::api::{self, opted_in};
use e2e_support::bed::Bed;
use e2e_support::kubectl;
use e2e_support::objects::deployment;
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::wait::until;
use serde_json::{Value, json};
use spreadguard::engine::exceptions::Day;

const LABEL: &str = "spreadguard.io/ignore";

/// A 1-replica Deployment (HA001 in enforce), with the opt-out label on it and its template
/// when `labelled`.
fn single(ns: &str, name: &str, labelled: bool) -> Value {
    let mut d = deployment(ns, name, Some(1));
    if labelled {
        d["metadata"]["labels"] = json!({LABEL: "true"});
        d["spec"]["template"]["metadata"]["labels"][LABEL] = json!("true");
    }
    d
}

/// `kubectl create` of `object` as `user` (and `groups`), server-side dry run when asked.
fn create_as(bed: &Bed, user: &str, groups: &[&str], object: &Value, dry: bool) -> kubectl::Output {
    let mut args = vec!["create".to_owned(), "-f".into(), "-".into()];
    args.push(format!("--as={user}"));
    for g in groups {
        args.push(format!("--as-group={g}"));
    }
    if dry {
        args.push("--dry-run=server".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kubectl::run(&bed.kubeconfig, &args, &object.to_string())
}

/// Retries `attempt` until `ok` holds for its output: policies, webhook configurations and
/// policy reloads take effect asynchronously.
async fn eventually(
    what: &str,
    attempt: impl Fn() -> kubectl::Output,
    ok: impl Fn(&kubectl::Output) -> bool,
) -> kubectl::Output {
    until(Duration::from_secs(30), what, || {
        let out = attempt();
        let good = ok(&out);
        async move {
            if good {
                Ok(out)
            } else {
                Err(format!("{out:?}"))
            }
        }
    })
    .await
}

#[tokio::test]
async fn the_opt_out_label_is_guarded_and_exceptions_waive_exactly_until_they_expire() {
    let bed = Bed::shared();
    let client = bed.client().await;
    let mut sg = Spreadguard::start(bed, Options::new("exceptions")).await;
    sg.register(bed).await;
    let ns = api::namespace(&client, "exc", &opted_in("enforce")).await;
    sg.wait_mode(bed, &ns, "enforce").await;
    // alice may edit workloads in this namespace and nothing else.
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "alice-edit", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    });
    let out = kubectl::run(&bed.kubeconfig, &["apply", "-f", "-"], &binding.to_string());
    assert!(out.success, "{out:?}");
    // `edit` is an aggregated ClusterRole: its rules arrive through the controller manager.
    eventually(
        "alice to be allowed to create Deployments",
        || {
            kubectl::run(
                &bed.kubeconfig,
                &[
                    "auth",
                    "can-i",
                    "create",
                    "deployments",
                    "-n",
                    &ns,
                    "--as=alice",
                ],
                "",
            )
        },
        |out| out.stdout.trim() == "yes",
    )
    .await;

    // 1. The chart's defaults: the label exempts nothing; the labelled 1-replica Deployment
    // is judged and denied like any other.
    let out = create_as(bed, "alice", &[], &single(&ns, "plain", true), true);
    assert!(!out.success, "{out:?}");
    assert!(out.stderr.contains("HA001"), "{}", out.stderr);

    // 2. An exception in the policy for exactly `leader`, valid through tomorrow (UTC).
    let today = Day::today_utc();
    let tomorrow = Day(today.0.next_day().unwrap());
    let yesterday = Day(today.0.previous_day().unwrap());
    let exception = |expires: Day| {
        json!({"policy": {"exceptions": [{
            "name": "leader-singleton",
            "match": {"namespace": ns, "kind": "Deployment", "name": "leader"},
            "rules": ["HA001"],
            "reason": "leader-elected singleton",
            "expires": expires.to_string(),
        }]}})
    };
    sg.upgrade(bed, exception(tomorrow));
    let out = eventually(
        "the exception to apply",
        || create_as(bed, "alice", &[], &single(&ns, "leader", false), true),
        |out| out.success,
    )
    .await;
    let warnings = out.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("leader-singleton") && w.contains("HA001")),
        "{warnings:?}"
    );
    // The finding is kept as info in what audit reports for it.
    let manifest = sg.dir.join("leader.json");
    std::fs::write(&manifest, single(&ns, "leader", false).to_string()).unwrap();
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_spreadguard"))
        .args(["audit", "-o", "json", "--config"])
        .arg(sg.dir.join("policy.yaml"))
        .arg("--nodes")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nodes-3-zones.yaml"))
        .arg(&manifest)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).unwrap_or_default();
    let waived = report
        .pointer("/results/0/findings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|f| f["rule"] == "HA001");
    assert!(
        waived.is_some_and(|f| f["severity"] == "info" && f["waivedBy"] == "leader-singleton"),
        "{report}"
    );
    // Exactly the named workload: another 1-replica Deployment is still denied.
    let out = create_as(bed, "alice", &[], &single(&ns, "follower", false), true);
    assert!(!out.success && out.stderr.contains("HA001"), "{out:?}");

    // 3. Expired (its day was yesterday): the same workload is denied again.
    sg.upgrade(bed, exception(yesterday));
    let out = eventually(
        "the expired exception to stop applying",
        || create_as(bed, "alice", &[], &single(&ns, "leader", false), true),
        |out| !out.success,
    )
    .await;
    assert!(out.stderr.contains("HA001"), "{}", out.stderr);

    // 4. An opt-out label configured (another release, registered alone): the chart renders
    // the ValidatingAdmissionPolicy and its binding, and the webhooks skip labelled objects.
    sg.unregister(bed).await;
    let guarded = Spreadguard::start(
        bed,
        Options::new("optout").values(json!({"webhooks": {"optOutLabel": LABEL}})),
    )
    .await;
    let guard: Vec<Value> = guarded
        .rendered
        .iter()
        .filter(|o| {
            o["kind"] == "ValidatingAdmissionPolicy"
                || o["kind"] == "ValidatingAdmissionPolicyBinding"
        })
        .cloned()
        .collect();
    assert_eq!(
        guard.len(),
        2,
        "the chart renders the policy and its binding"
    );
    for object in &guard {
        let out = kubectl::run(&bed.kubeconfig, &["apply", "-f", "-"], &object.to_string());
        assert!(out.success, "{out:?}");
    }
    guarded.register(bed).await;

    // alice cannot exempt her workload: the policy's message names the label and who may.
    let out = eventually(
        "the opt-out label policy to refuse alice",
        || create_as(bed, "alice", &[], &single(&ns, "sneaky", true), false),
        |out| !out.success && out.stderr.contains(LABEL) && !out.stderr.contains("HA001"),
    )
    .await;
    assert!(out.stderr.contains("system:masters"), "{}", out.stderr);
    // A member of an allowed group can, and the labelled workload is then not judged (a
    // single replica, admitted without a finding).
    let out = eventually(
        "the webhooks to skip the labelled object",
        || {
            create_as(
                bed,
                "carol",
                &["system:masters"],
                &single(&ns, "exempt", true),
                false,
            )
        },
        |out| out.success,
    )
    .await;
    assert!(out.warnings().is_empty(), "{out:?}");
    // alice's unlabelled 1-replica Deployment is still denied by spreadguard.
    let out = create_as(bed, "alice", &[], &single(&ns, "unlabelled", false), true);
    assert!(!out.success && out.stderr.contains("HA001"), "{out:?}");
}
