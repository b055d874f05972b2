//! The admission routes on the TLS port: `POST /mutate` and `POST /validate`.
//!
//! Transport-level problems get 4xx with a JSON error (415 for a body that is not JSON, 413
//! for one over the limit, 400 for JSON that is not an AdmissionReview); everything else gets
//! HTTP 200 and a review echoing the request's uid.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as Extract};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;

use super::state::State;
use crate::engine::Endpoint;

/// The admission router, without any transport: tests drive it with `oneshot`.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .fallback(not_found)
        .with_state(state)
}

async fn mutate(Extract(state): Extract<Arc<State>>, request: Request) -> Response {
    handle(Endpoint::Mutate, &state, request).await
}

async fn validate(Extract(state): Extract<Arc<State>>, request: Request) -> Response {
    handle(Endpoint::Validate, &state, request).await
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not found: POST /mutate or /validate",
    )
}

async fn handle(endpoint: Endpoint, state: &State, request: Request) -> Response {
    if !is_json(request.headers()) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let limit = state.http.max_body_bytes;
    let h2 = request.version() == Version::HTTP_2;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = request.into_body();
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit, h2.then_some(body), state.http.body_read_timeout);
    }
    // A deadline on the whole body: a client trickling it would otherwise hold its
    // connection (and one of the bounded connection slots) for as long as it likes.
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > limit {
                return Ok(false);
            }
            buf.extend_from_slice(&data);
        }
        Ok::<_, axum::Error>(true)
    };
    match tokio::time::timeout(state.http.body_read_timeout, read).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return too_large(limit, h2.then_some(body), state.http.body_read_timeout);
        }
        // The client went away mid-body: nobody is waiting for a review.
        Ok(Err(_)) => return error(StatusCode::BAD_REQUEST, "request body ended early"),
        Err(_) => {
            let mut response = error(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the read timeout",
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    }
    let body = buf;
    match state.review(endpoint, &body) {
        Ok(review) => json(StatusCode::OK, Bytes::from(review)),
        Err(bad) => error(StatusCode::BAD_REQUEST, &crate::errors::chain(&bad)),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Answers 413 Payload Too Large. Over HTTP/1.1 the connection then closes. Over HTTP/2 the
/// rest of the body is read and thrown away (for at most `deadline`): some clients (Python's
/// h2, for one) only read the answer once they have sent the whole body, and would otherwise
/// wait for flow-control credit that never comes. Nothing is kept, so this costs no memory.
fn too_large(limit: usize, unread_h2: Option<Body>, deadline: Duration) -> Response {
    let mut response = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body larger than {limit} bytes"),
    );
    match unread_h2 {
        Some(mut body) => {
            tokio::spawn(async move {
                let drain = async { while let Some(Ok(_)) = body.frame().await {} };
                let _ = tokio::time::timeout(deadline, drain).await;
            });
        }
        None => {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "code": status.as_u16() });
    (status, axum::Json(body)).into_response()
}
