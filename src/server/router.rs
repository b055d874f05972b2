//! The admission routes on the TLS port: `POST /mutate` and `POST /validate`.
//!
//! Transport-level problems get 4xx with a JSON error (415 for a body that is not JSON, 413
//! for one over the limit, 400 for JSON that is not an AdmissionReview, 408 for a body too
//! slow to arrive) or 503 when the bodies in flight would exceed their budget; each is counted
//! in `spreadguard_http_rejections_total`. Everything else gets HTTP 200 and a review
//! echoing the request's uid.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as Extract};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;

use super::budget::Reservation;
use super::state::State;
use crate::engine::Endpoint;
use crate::metrics::Rejection;
use crate::telemetry::Throttle;

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

async fn not_found(Extract(state): Extract<Arc<State>>) -> Response {
    reject(
        &state,
        Rejection::not_found,
        "not found: POST /mutate or /validate",
    )
}

async fn handle(endpoint: Endpoint, state: &Arc<State>, request: Request) -> Response {
    if !is_json(request.headers()) {
        return reject(
            state,
            Rejection::not_json,
            "Content-Type must be application/json",
        );
    }
    let limit = state.http.max_body_bytes;
    let deadline = state.http.body_read_timeout;
    let budget = &state.http.body_budget;
    let h2 = request.version() == Version::HTTP_2;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = request.into_body();
    if declared.is_some_and(|n| n > limit as u64) {
        let message = format!("request body larger than {limit} bytes");
        let response = reject(state, Rejection::too_large, &message);
        return unread(response, h2.then_some(body), deadline);
    }
    // The bytes are reserved before they are read: all of a declared length at once, or
    // frame by frame without one. The reservation is held until the answer is encoded.
    let mut reserved = Reservation::default();
    let over_budget = |state: &State, body: Body| {
        let response = reject(
            state,
            Rejection::body_budget,
            "too many request bodies in flight (--max-inflight-body-bytes); retry",
        );
        let mut response = unread(response, h2.then_some(body), deadline);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    };
    if let Some(n) = declared
        && !budget.reserve(&mut reserved, n as usize)
    {
        return over_budget(state, body);
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
                return Ok(Read::TooLarge);
            }
            let short = (buf.len() + data.len()).saturating_sub(reserved.bytes());
            if short > 0 && !budget.reserve(&mut reserved, short) {
                return Ok(Read::OverBudget);
            }
            buf.extend_from_slice(&data);
        }
        Ok::<_, axum::Error>(Read::Complete)
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(Read::Complete)) => {}
        Ok(Ok(Read::TooLarge)) => {
            drop(buf);
            let message = format!("request body larger than {limit} bytes");
            let response = reject(state, Rejection::too_large, &message);
            return unread(response, h2.then_some(body), deadline);
        }
        Ok(Ok(Read::OverBudget)) => {
            drop(buf);
            return over_budget(state, body);
        }
        // The client went away mid-body: nobody is waiting for a review.
        Ok(Err(_)) => {
            return reject(
                state,
                Rejection::incomplete_body,
                "request body ended early",
            );
        }
        Err(_) => {
            let mut response = reject(
                state,
                Rejection::body_timeout,
                "request body not received within the read timeout",
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    }
    let reviewed = if buf.len() >= state.http.heavy_review_bytes {
        match heavy_review(endpoint, state, buf, deadline).await {
            Some(reviewed) => reviewed,
            None => {
                let mut response = reject(
                    state,
                    Rejection::heavy_review_busy,
                    "another large review is being judged (--heavy-review-bytes); retry",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        }
    } else {
        let reviewed = state.review(endpoint, &buf);
        drop(buf);
        reviewed
    };
    let answer = match reviewed {
        Ok(review) => json(StatusCode::OK, Bytes::from(review)),
        Err(bad) => reject(state, Rejection::bad_review, &crate::errors::chain(&bad)),
    };
    drop(reserved);
    answer
}

/// Judges a large body in the heavy lane: after the one before it (waiting at most
/// `wait`), on a blocking thread, so that the memory of two worst-case reviews is never
/// held at once and the async workers stay free. `None`: the lane stayed busy.
async fn heavy_review(
    endpoint: Endpoint,
    state: &Arc<State>,
    buf: Vec<u8>,
    wait: Duration,
) -> Option<Result<Vec<u8>, crate::admission::BadReview>> {
    let lane = state.http.heavy_lane.clone();
    let permit = tokio::time::timeout(wait, lane.acquire_owned())
        .await
        .ok()?
        .ok()?;
    let state = Arc::clone(state);
    let judged = tokio::task::spawn_blocking(move || {
        let reviewed = state.review(endpoint, &buf);
        drop(buf);
        drop(permit);
        reviewed
    })
    .await;
    match judged {
        Ok(reviewed) => Some(reviewed),
        // The review catches the engine's panics; anything else is a bug to surface.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down.
        Err(_) => None,
    }
}

/// How reading a body ended.
enum Read {
    Complete,
    TooLarge,
    OverBudget,
}

/// A refusal: counted, logged at warn (at most once per reason every few seconds, with how
/// many were held back), and answered with a JSON error.
fn reject(state: &State, reason: Rejection, message: &str) -> Response {
    state.metrics().rejection(reason);
    if let Some(suppressed) = REFUSALS.allow(reason.as_str()) {
        tracing::warn!(
            code = reason.code(),
            reason = reason.as_str(),
            suppressed,
            error = message,
            "request refused"
        );
    }
    let status = StatusCode::from_u16(reason.code()).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, message)
}

static REFUSALS: Throttle = Throttle::new(Duration::from_secs(10));

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A refusal sent before the body was read (413, 503). Over HTTP/1.1 the connection then
/// closes. Over HTTP/2 the rest of the body is read and thrown away (for at most
/// `deadline`): some clients (Python's h2, for one) only read the answer once they have sent
/// the whole body, and would otherwise wait for flow-control credit that never comes.
/// Nothing is kept, so this costs no memory.
fn unread(mut response: Response, unread_h2: Option<Body>, deadline: Duration) -> Response {
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
