//! The request span, read from JSON logs. Its own test binary: a thread-local subscriber
//! shares tracing's global callsite cache with whatever else runs in the process, so this
//! test runs alone.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use spreadguard::engine::policy::Policy;
use spreadguard::load::parse_nodes;
use spreadguard::server::{State, router};
use tower::ServiceExt;

/// Every judged request is logged inside a span that names it: uid, kind, namespace, the
/// object's name (`object`: `name` is the span's own in JSON logs), mode and decision.
#[tokio::test]
async fn each_request_runs_in_a_span_naming_it() {
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let review: Value = serde_json::from_str(include_str!(
        "fixtures/admission/deployment-create-1-replica.json"
    ))
    .unwrap();
    let state = State::new(Policy::default());
    state.publish_nodes(Arc::new(
        parse_nodes(include_str!("../examples/nodes-3-zones.yaml")).unwrap(),
    ));
    let response = router(Arc::new(state))
        .oneshot(
            Request::post("/validate")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&review).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["fields"]["message"] == "admission")
        .unwrap_or_else(|| panic!("no admission line in {text}"));
    let span = &line["span"];
    assert_eq!(span["name"], "admission");
    assert_eq!(span["uid"], review["request"]["uid"]);
    assert_eq!(span["kind"], "Deployment");
    assert_eq!(span["namespace"], "shop");
    assert_eq!(span["object"], "checkout");
    assert_eq!(span["mode"], "enforce");
    assert_eq!(span["decision"], "denied");
}
