//! The heavy lane (issue 18): reviews with a body of at least `--heavy-review-bytes` are
//! judged one at a time on a blocking thread. Through the router (`oneshot`), on a
//! single-threaded runtime, with an engine that is slow for objects named `slow`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{Decision, Input, Topology, decide};
use spreadguard::load::parse_nodes;
use spreadguard::server::{State, router};
use tower::ServiceExt;

const NODES: &str = include_str!("../examples/nodes-3-zones.yaml");

/// How long the engine takes over an object named `slow`.
const SLOW: Duration = Duration::from_millis(800);

fn slow_for_slow(input: Input<'_>, topology: &Topology, policy: &Policy) -> Decision {
    if input
        .object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        == Some("slow")
    {
        std::thread::sleep(SLOW);
    }
    decide(input, topology, policy)
}

fn state(heavy_bytes: usize, wait: Duration) -> Arc<State> {
    let state = State::new(Policy::default())
        .with_decider(slow_for_slow)
        .with_heavy_review_bytes(heavy_bytes)
        .with_body_read_timeout(wait);
    state.publish_nodes(Arc::new(parse_nodes(NODES).unwrap()));
    Arc::new(state)
}

/// The fixture Deployment's CREATE review named `name`, padded with an annotation of
/// `pad` bytes.
fn review(name: &str, pad: usize) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/deployment-create.json"
    );
    let mut review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    review["request"]["name"] = name.into();
    let meta = &mut review["request"]["object"]["metadata"];
    meta["name"] = name.into();
    meta["annotations"]["example.com/pad"] = "x".repeat(pad).into();
    serde_json::to_vec(&review).unwrap()
}

async fn send(state: &Arc<State>, body: Vec<u8>) -> (StatusCode, Value) {
    let response = router(state.clone())
        .oneshot(
            Request::post("/validate")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_large_review_is_judged_off_the_async_worker() {
    let state = state(4096, Duration::from_secs(5));
    let started = Instant::now();
    let heavy = tokio::spawn({
        let state = state.clone();
        async move { send(&state, review("slow", 8192)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // On this runtime's one thread, a small review is answered while the large one is still
    // being judged: judged inline, the large one would hold the thread for all of SLOW.
    let (status, small) = send(&state, review("fast", 0)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(small["response"]["allowed"], true);
    assert!(
        !heavy.is_finished(),
        "the small review waited for the large one ({:?})",
        started.elapsed()
    );
    let (status, large) = heavy.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(large["response"]["allowed"], true);
    assert!(started.elapsed() >= SLOW);
}

#[tokio::test]
async fn large_reviews_take_turns_and_one_that_cannot_start_in_time_is_refused() {
    let state = state(4096, Duration::from_millis(200));
    let first = tokio::spawn({
        let state = state.clone();
        async move { send(&state, review("slow", 8192)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The lane is busy for SLOW; this one may wait 200 ms.
    let (status, refused) = send(&state, review("second", 8192)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.to_string().contains("--heavy-review-bytes"),
        "{refused}"
    );
    let (status, _) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    // The lane is free again, and small reviews never use it.
    assert_eq!(send(&state, review("second", 8192)).await.0, StatusCode::OK);
    assert!(
        state.metrics().encode().contains(
            "spreadguard_http_rejections_total{code=\"503\",reason=\"heavy_review_busy\"} 1"
        ),
        "{}",
        state.metrics().encode()
    );
}
