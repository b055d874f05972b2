//! The plain-HTTP admin port: `/livez`, `/readyz` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::state::State;
use crate::engine::exceptions::Day;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    match state.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(missing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join(", ")),
        )
            .into_response(),
    }
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> Response {
    // Gauges of the moment, read when scraped.
    state.metrics().set_ready(state.readiness().is_ok());
    state
        .metrics()
        .set_inflight_body_bytes(state.http.body_budget.in_use());
    state
        .metrics()
        .exceptions(&state.policy().exceptions, Day::today_utc());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().encode(),
    )
        .into_response()
}
