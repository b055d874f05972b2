//! Node changes on a real control plane: taints, a fourth zone, relabelled and cordoned nodes.
//! Each test changes Nodes, so each gets a bed of its own (one at a time).
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, BedOptions, ZONE_KEY, create_node};
use e2e_support::objects::{self, deployment, with_pod_spec};
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::wait::until;
use serde_json::{Value, json};

/// One bed at a time in this binary: each is a full control plane on a shared machine.
static ONE_BED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn patch_node(client: &kube::Client, name: &str, patch: Value) {
    api::send(
        client,
        axum::http::Method::PATCH,
        &format!("/api/v1/nodes/{name}"),
        "application/merge-patch+json",
        Some(&patch),
    )
    .await
    .expect_ok(&format!("patch node {name}"));
}

// === 3. taints ===

#[tokio::test]
async fn with_one_zone_tainted_injected_spreads_honour_taints_and_nothing_is_pending() {
    let _one = ONE_BED.lock().await;
    let bed = Bed::start(BedOptions::new("taints"));
    let client = bed.client().await;
    for node in &bed.nodes["zone-c"] {
        patch_node(
            &client,
            node,
            json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        )
        .await;
    }
    let zones = api::node_zones(&client).await;
    let mut sg = Spreadguard::start(&bed, Options::new("spreadguard")).await;
    sg.register(&bed).await;
    let ns = api::namespace(&client, "taints", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;

    // The default policy (ScheduleAnyway), then DoNotSchedule: the case where
    // nodeTaintsPolicy decides, because a zone the pods may not enter would otherwise count
    // as a domain with 0 pods and cap the other two at maxSkew.
    for (name, when) in [("soft", "ScheduleAnyway"), ("hard", "DoNotSchedule")] {
        if when == "DoNotSchedule" {
            sg.upgrade(
                &bed,
                json!({"policy": {"whenUnsatisfiable": "DoNotSchedule"}}),
            );
            let probe = deployment(&ns, "probe", Some(6));
            until(
                Duration::from_secs(10),
                "the DoNotSchedule policy reloaded",
                || async {
                    let answer = api::create(&client, &probe, true).await;
                    let first = objects::spread_constraints(&answer.body).first().cloned();
                    match first {
                        Some(c) if c["whenUnsatisfiable"] == "DoNotSchedule" => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                },
            )
            .await;
        }
        let d = deployment(&ns, name, Some(6));
        let created = api::create(&client, &d, false).await.expect_ok(name);
        assert!(created.warnings.is_empty(), "{:?}", created.warnings);
        let zone_spread = &objects::spread_constraints(&created.body)[0];
        assert_eq!(zone_spread["topologyKey"], ZONE_KEY);
        assert_eq!(zone_spread["whenUnsatisfiable"], when);
        assert_eq!(zone_spread["nodeTaintsPolicy"], "Honor");
        if when == "DoNotSchedule" {
            // No minDomains by default (injectMinDomains: auto, and no node template says a
            // zone can gain nodes): it would strand replacements in a zone outage.
            assert!(zone_spread.get("minDomains").is_none(), "{zone_spread}");
        }

        let pods = until(
            Duration::from_secs(60),
            &format!("6 pods of {name} settled"),
            || async {
                let pods = api::pods(&client, &ns).await;
                let mine = objects::named(&pods, &format!("{name}-"));
                let settled = objects::bound(&mine) + objects::unschedulable(&mine);
                if mine.len() == 6 && settled == 6 {
                    Ok(pods.clone())
                } else {
                    Err(format!("{} pods, {settled} settled", mine.len()))
                }
            },
        )
        .await;
        let mine = objects::named(&pods, &format!("{name}-"));
        assert_eq!(objects::unschedulable(&mine), 0, "{name}: none Pending");
        assert_eq!(
            objects::per_zone(&mine, &zones),
            BTreeMap::from([("zone-a".to_owned(), 3), ("zone-b".to_owned(), 3)]),
            "{name}"
        );
    }

    // The same hard zone spread written by hand without nodeTaintsPolicy (default Ignore),
    // in a namespace spreadguard does not judge: the tainted zone counts as a domain holding
    // 0 pods, so each other zone takes maxSkew (1) pod and 4 of 6 stay Pending. This is what
    // the injected `nodeTaintsPolicy: Honor` avoids.
    let plain = api::namespace(&client, "taints-plain", &[]).await;
    let by_hand = with_pod_spec(
        deployment(&plain, "by-hand", Some(6)),
        json!({"topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule",
            "minDomains": 2, "labelSelector": {"matchLabels": {"app": "by-hand"}}
        }]}),
    );
    api::create(&client, &by_hand, false)
        .await
        .expect_ok("by hand");
    let pods = until(
        Duration::from_secs(60),
        "6 pods of by-hand settled",
        || async {
            let pods = api::pods(&client, &plain).await;
            let mine = objects::named(&pods, "by-hand-");
            let settled = objects::bound(&mine) + objects::unschedulable(&mine);
            if mine.len() == 6 && settled == 6 {
                Ok(pods.clone())
            } else {
                Err(format!("{} pods, {settled} settled", mine.len()))
            }
        },
    )
    .await;
    let mine = objects::named(&pods, "by-hand-");
    assert_eq!(
        objects::unschedulable(&mine),
        4,
        "{:?}",
        objects::per_zone(&mine, &zones)
    );
    assert_eq!(objects::zone_counts(&mine, &zones), [1, 1]);
    bed.assert_running();
}

// === 10. caches on a real watch ===

/// Polls dry-run creates of `object` until `allowed` is what the webhooks answer; returns how
/// long that took.
async fn time_until(client: &kube::Client, object: &Value, allowed: bool, what: &str) -> Duration {
    let start = Instant::now();
    until(Duration::from_secs(10), what, || async {
        let answer = api::create(client, object, true).await;
        if answer.ok() == allowed {
            Ok(())
        } else {
            Err(format!("HTTP {}: {}", answer.status, answer.message()))
        }
    })
    .await;
    start.elapsed()
}

#[tokio::test]
async fn node_changes_reach_the_next_decision_within_a_second() {
    let _one = ONE_BED.lock().await;
    let bed = Bed::start(BedOptions::new("nodes"));
    let client = bed.client().await;
    let sg = Spreadguard::start(&bed, Options::new("spreadguard")).await;
    sg.register(&bed).await;
    let ns = api::namespace(&client, "nodes", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;

    // Required zone anti-affinity: 4 replicas need 4 zones (HA002), 3 need 3.
    let four = with_pod_spec(
        deployment(&ns, "four", Some(4)),
        objects::required_anti_affinity("four", ZONE_KEY),
    );
    let three = with_pod_spec(
        deployment(&ns, "three", Some(3)),
        objects::required_anti_affinity("three", ZONE_KEY),
    );
    let denied = api::create(&client, &four, true).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert!(
        denied
            .message()
            .contains("HA002: 4 replicas, 3 eligible zones"),
        "{}",
        denied.message()
    );
    api::create(&client, &three, true)
        .await
        .expect_ok("3 zones for 3 replicas");

    let mut timings = Vec::new();
    // A node in a fourth zone.
    create_node(&client, "node-zone-d-0", "zone-d", &BTreeMap::new()).await;
    timings.push((
        "fourth zone added",
        time_until(&client, &four, true, "4 zones").await,
    ));
    // Relabelled into zone-c: three zones again.
    patch_node(
        &client,
        "node-zone-d-0",
        json!({"metadata": {"labels": {ZONE_KEY: "zone-c"}}}),
    )
    .await;
    timings.push((
        "node relabelled",
        time_until(&client, &four, false, "3 zones again").await,
    ));
    // zone-c cordoned: two eligible zones for three replicas.
    for node in bed.nodes["zone-c"]
        .iter()
        .map(String::as_str)
        .chain(["node-zone-d-0"])
    {
        patch_node(&client, node, json!({"spec": {"unschedulable": true}})).await;
    }
    timings.push((
        "zone cordoned",
        time_until(&client, &three, false, "zone-c cordoned").await,
    ));
    let cordoned = api::create(&client, &three, true).await;
    assert!(
        cordoned
            .message()
            .contains("HA002: 3 replicas, 2 eligible zones"),
        "{}",
        cordoned.message()
    );
    for node in bed.nodes["zone-c"]
        .iter()
        .map(String::as_str)
        .chain(["node-zone-d-0"])
    {
        patch_node(&client, node, json!({"spec": {"unschedulable": false}})).await;
    }
    timings.push((
        "zone uncordoned",
        time_until(&client, &three, true, "zone-c back").await,
    ));

    eprintln!("node change to decision: {timings:?}");
    for (what, took) in timings {
        assert!(
            took < Duration::from_secs(1),
            "{what}: the decision changed after {took:?}"
        );
    }
    bed.assert_running();
}
