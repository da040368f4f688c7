//! DM batch endpoints: draft a batch for a campaign, inspect it, approve it for dispatch, cancel it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::api::backend::ApiBackend;
use crate::api::error::{ApiError, ErrorResponse};
use crate::api::extract::{self, Path};
use crate::api::types::{Batch, NewBatch};
use crate::api::AppState;

/// Drafts a DM batch: rendered messages for the campaign's best unmessaged leads.
#[utoipa::path(post, operation_id = "create_batch", path = "/campaigns/{id}/batches", tag = "batches",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = NewBatch,
    responses(
        (status = 201, description = "The draft batch", body = Batch),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
        (status = 409, description = "The campaign is not active, or has no leads to message", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
        (status = 422, description = "Invalid body", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    extract::Json(req): extract::Json<NewBatch>,
) -> Result<(StatusCode, Json<Batch>), ApiError> {
    if !(1..=1000).contains(&req.size) {
        return Err(ApiError::invalid("size", "size must be between 1 and 1000"));
    }
    if req.min_score.is_some_and(|s| !(0..=100).contains(&s)) {
        return Err(ApiError::invalid(
            "min_score",
            "min_score must be between 0 and 100",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(ApiBackend::create_batch(&state.engine, id, req).await?),
    ))
}

/// One batch with its messages.
#[utoipa::path(get, operation_id = "get_batch", path = "/batches/{id}", tag = "batches",
    params(("id" = i64, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The batch", body = Batch),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such batch", body = ErrorResponse),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(ApiBackend::batch(&state.engine, id).await?))
}

/// Approves a draft batch: its messages are dispatched within each account's limits.
#[utoipa::path(post, operation_id = "approve_batch", path = "/batches/{id}/approve", tag = "batches",
    params(("id" = i64, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The approved batch", body = Batch),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such batch", body = ErrorResponse),
        (status = 409, description = "The batch is not a draft", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(ApiBackend::approve_batch(&state.engine, id).await?))
}

/// Cancels a batch's unsent messages.
#[utoipa::path(post, operation_id = "cancel_batch", path = "/batches/{id}/cancel", tag = "batches",
    params(("id" = i64, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The cancelled batch", body = Batch),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such batch", body = ErrorResponse),
        (status = 409, description = "The batch already finished", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(ApiBackend::cancel_batch(&state.engine, id).await?))
}
