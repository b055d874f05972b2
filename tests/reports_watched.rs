//! `serve --reports` judges the cluster from watches, not lists (issue 14): against the
//! in-test fake API server, the report built from the watches equals `audit --cluster`'s from
//! lists, follows pods as they move, and lists each resource once however many rounds run.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use spreadguard::audit::cluster::{self, Source};
use spreadguard::audit::watched::Watched;
use spreadguard::engine::policy::Policy;
use support::fake_apiserver::FakeApiServer;
use support::objects::{PodState, deployment, pod, replicaset};

const ZONE: &str = "topology.kubernetes.io/zone";

fn running(name: &str, node: &str) -> Value {
    serde_json::from_str(&pod(
        "shop",
        name,
        Some(("ReplicaSet", "web-5d9")),
        Some(node),
        PodState::Ready,
    ))
    .unwrap()
}

/// The ready pods per zone of `web`, as the report from the watches says.
async fn web_zones(watched: &Watched, policy: &Policy) -> Value {
    let report = cluster::report_from(&Source::Watched(watched), policy, None, |_, _| {})
        .await
        .unwrap();
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "web")
        .map(|r| r["actual"]["zones"].clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn reports_from_the_watches_follow_pods_without_listing_again() {
    let api = FakeApiServer::start().await;
    for (node, zone) in [("node-a", "a"), ("node-b", "b"), ("node-c", "c")] {
        api.put_node(node, &[("kubernetes.io/hostname", node), (ZONE, zone)]);
    }
    api.put_namespace("shop", &[]);
    api.put_object("deployments", deployment("shop", "web", 3));
    api.put_object("replicasets", replicaset("shop", "web-5d9", "web", 3));
    for i in 0..3 {
        api.put_object("pods", running(&format!("web-5d9-{i}"), "node-a"));
    }
    let client = api.client();
    let policy = Policy::default();
    let (watched, _watches) = Watched::start(&client, &policy).await.unwrap();
    let started = Instant::now();
    while !watched.synced() {
        assert!(started.elapsed() < Duration::from_secs(10), "never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The same report as audit --cluster's from lists, field for field.
    let listed = cluster::report(&client, &policy, None, |_, _| {})
        .await
        .unwrap();
    let from_watches = cluster::report_from(&Source::Watched(&watched), &policy, None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(from_watches.to_json(), listed.to_json());
    assert_eq!(
        web_zones(&watched, &policy).await,
        serde_json::json!({"a": 3, "b": 0, "c": 0})
    );
    let lists_before = (api.lists("pods"), api.lists("deployments"));

    // A pod moves from zone a to zone b: the next round sees it, with no list.
    api.delete_object("pods", "shop", "web-5d9-0");
    api.put_object("pods", running("web-5d9-3", "node-b"));
    let want = serde_json::json!({"a": 2, "b": 1, "c": 0});
    let started = Instant::now();
    loop {
        let zones = web_zones(&watched, &policy).await;
        if zones == want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the watches never saw the move: {zones}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        web_zones(&watched, &policy).await;
    }
    assert_eq!(
        (api.lists("pods"), api.lists("deployments")),
        lists_before,
        "rounds from the watches list nothing"
    );
}
