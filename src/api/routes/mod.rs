//! The router: every endpoint, the middleware stack (panic guard, request metrics, bearer auth,
//! body limit) and JSON answers for unknown routes and methods.

pub mod batches;
pub mod campaigns;
pub mod jobs;
pub mod people;
pub mod system;

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use futures::FutureExt;

use super::auth;
use super::error::{ApiError, ErrorCode};
use super::AppState;

/// The largest `limit` a list endpoint accepts.
pub const MAX_PAGE: i64 = 500;

/// Checks a `limit` parameter (1–[`MAX_PAGE`]), defaulting to `default`.
pub fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_param(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}, not {n}"),
        )),
    }
}

/// Builds the whole application.
pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .route("/events", get(system::events))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route(
            "/campaigns/{id}",
            get(campaigns::get).patch(campaigns::patch),
        )
        .route("/campaigns/{id}/status", get(campaigns::status))
        .route("/campaigns/{id}/explain", get(campaigns::explain))
        .route("/campaigns/{id}/discover", post(campaigns::discover))
        .route("/campaigns/{id}/qualify", post(campaigns::qualify))
        .route("/campaigns/{id}/leads", get(campaigns::leads))
        .route("/campaigns/{id}/batches", post(batches::create))
        .route("/leads/{id}", get(campaigns::lead))
        .route("/batches/{id}", get(batches::get))
        .route("/batches/{id}/approve", post(batches::approve))
        .route("/batches/{id}/cancel", post(batches::cancel))
        .route(
            "/dnc",
            get(people::list_dnc)
                .post(people::add_dnc)
                .delete(people::remove_dnc),
        )
        .route("/people/{platform}/{handle}", delete(people::erase))
        .route("/accounts", get(people::accounts))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .layer(middleware::from_fn(catch_panic))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}: see /openapi.json",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} is not allowed on {}: see /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Records each request's duration by matched route (not the raw path, which would explode the
/// label set), method and status.
async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Turns a panicking handler into a JSON 500 instead of a dropped connection.
async fn catch_panic(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            ApiError::internal(format!("handler for {method} {path} panicked: {what}"))
                .into_response()
        }
    }
}
