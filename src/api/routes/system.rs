//! Operational endpoints: health, Prometheus metrics, the OpenAPI document and the event stream.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::error::{ApiError, ErrorResponse};
use crate::api::types::Health;
use crate::api::{events, metrics, queries, AppState};

/// Liveness and readiness: the database answers, and how far behind the queue is.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "system", security(()),
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database cannot be reached", body = Health),
    ))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let now = state.engine.services().clock.now_ms();
    let node = state.engine.node().id.clone();
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        queries::ready_jobs(state.engine.db(), now),
    )
    .await;
    match probe {
        Ok(Ok((oldest, ready))) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                database: "ok".into(),
                queue_lag_seconds: oldest
                    .map(|t| (now - t).max(0) as f64 / 1000.0)
                    .unwrap_or(0.0),
                ready_jobs: ready,
                node,
            }),
        ),
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out after 5 s".to_string(),
            };
            tracing::warn!(error = %why, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".into(),
                    database: why,
                    queue_lag_seconds: 0.0,
                    ready_jobs: 0,
                    node,
                }),
            )
        }
    }
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = metrics::render(&state.engine, &state.metrics).await?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, operation_id = "openapi", path = "/openapi.json", tag = "system",
    responses(
        (status = 200, description = "The OpenAPI document", body = serde_json::Value),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    let mut response = state.openapi.as_ref().clone().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Engine events (job progress, leads, messages, replies) as Server-Sent Events. Each event has
/// an `id`; reconnect with `Last-Event-ID` to receive what was missed. An event named `gap` says
/// that some events were too old to replay.
#[utoipa::path(get, operation_id = "events", path = "/events", tag = "system",
    params(("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses(
        (status = 200, description = "An endless event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A malformed Last-Event-ID", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or_default().trim();
            if text.is_empty() {
                None
            } else {
                Some(text.parse::<u64>().map_err(|_| {
                    ApiError::bad_param(
                        "Last-Event-ID",
                        "Last-Event-ID must be the id of an event from this stream",
                    )
                })?)
            }
        }
    };
    Ok(events::stream(state.events.clone(), after, state.stopping.clone()).into_response())
}
