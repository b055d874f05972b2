//! The posture page on a real control plane (issue 15): `serve --ui` scans the bed's real
//! API server, and what `/api/posture` (the only thing the page reads) shows for each test
//! Deployment is where the real kube-scheduler put its pods: ready pods per zone, counted
//! from the pods' Nodes, and the predicted placement agrees where spreadguard's injection
//! makes the counts even.
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, ZONE_KEY};
use e2e_support::objects::{self, deployment, with_pod_spec};
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::wait::until;
use serde_json::{Value, json};

/// Ready pods per zone of the Deployment `name`, from the pods the API server holds.
async fn real_placement(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: usize,
    zones: &BTreeMap<String, String>,
) -> BTreeMap<String, usize> {
    until(
        Duration::from_secs(90),
        &format!("{replicas} ready pods of {ns}/{name}"),
        || async {
            let pods = api::pods(client, ns).await;
            let mine: Vec<&Value> = objects::named(&pods, &format!("{name}-"))
                .into_iter()
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .collect();
            if mine.len() == replicas {
                Ok(objects::per_zone(&mine, zones))
            } else {
                Err(format!("{} ready", mine.len()))
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_posture_page_shows_where_the_real_scheduler_put_the_pods() {
    let bed = Bed::shared();
    let client = bed.client().await;
    let mut options = Options::new("posture").values(json!({"ui": {"enabled": true}}));
    options.args = vec!["--ui".into(), "--ui-interval".into(), "1s".into()];
    let sg = Spreadguard::start(bed, options).await;
    sg.register(bed).await;
    let zones = api::node_zones(&client).await;
    let enforced = api::namespace(&client, "posture", &opted_in("enforce")).await;
    sg.wait_mode(bed, &enforced, "enforce").await;
    let warned = api::namespace(&client, "posture-warn", &opted_in("warn")).await;
    sg.wait_mode(bed, &warned, "warn").await;

    // Spread by spreadguard's injection (3 and 6 replicas), and one pinned to zone-a in a
    // warn namespace (admitted with warnings; all its pods in one zone).
    let cases = [
        (enforced.clone(), "even", 3usize),
        (enforced.clone(), "six", 6),
        (warned.clone(), "pinned", 3),
    ];
    for (ns, name, replicas) in &cases {
        let mut d = deployment(ns, name, Some(*replicas as i64));
        if *name == "pinned" {
            d = with_pod_spec(d, json!({"nodeSelector": {ZONE_KEY: "zone-a"}}));
        }
        api::create(&client, &d, false).await.expect_ok(name);
    }
    let mut real = BTreeMap::new();
    for (ns, name, replicas) in &cases {
        real.insert(
            (ns.clone(), name.to_string()),
            real_placement(&client, ns, name, *replicas, &zones).await,
        );
    }

    // /api/posture, once a scan has seen every pod ready.
    let document: Value = until(
        Duration::from_secs(60),
        "/api/posture to show the ready pods",
        || async {
            let Some((200, body)) = sg.admin("/api/posture") else {
                return Err("no 200 yet".into());
            };
            let doc: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let all_seen = cases.iter().all(|(ns, name, replicas)| {
                result(&doc, ns, name).is_some_and(|r| r["actual"]["ready"] == json!(replicas))
            });
            if all_seen {
                Ok(doc)
            } else {
                Err("a scan without every pod ready".into())
            }
        },
    )
    .await;

    for (ns, name, replicas) in &cases {
        let r = result(&document, ns, name).unwrap();
        let shown: BTreeMap<String, usize> = r["actual"]["zones"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .map(|(z, n)| (z.clone(), n.as_u64().unwrap() as usize))
            .collect();
        let placed = &real[&(ns.clone(), name.to_string())];
        assert_eq!(&shown, placed, "{ns}/{name}: page vs scheduler");
        let mut predicted: Vec<u64> = r["placement"]["zones"]
            .as_object()
            .map(|z| {
                z.values()
                    .filter_map(Value::as_u64)
                    .filter(|n| *n > 0)
                    .collect()
            })
            .unwrap_or_default();
        predicted.sort_unstable();
        let mut actual: Vec<u64> = placed.values().map(|n| *n as u64).collect();
        actual.sort_unstable();
        if *name == "pinned" {
            assert_eq!(actual, [*replicas as u64], "all in zone-a");
        } else {
            assert_eq!(
                predicted, actual,
                "{ns}/{name}: predicted vs scheduler: {r}"
            );
        }
    }
}

/// The result for workload `name` in namespace `ns`.
fn result<'a>(doc: &'a Value, ns: &str, name: &str) -> Option<&'a Value> {
    doc["results"]
        .as_array()?
        .iter()
        .find(|r| r["namespace"] == ns && r["name"] == name)
}
