//! Job endpoints: list, inspect, retry and cancel jobs on the durable queue.

use axum::extract::State;
use axum::Json;

use crate::api::error::{ApiError, ErrorResponse};
use crate::api::extract::{Path, Query};
use crate::api::types::{JobList, JobView, JobsQuery};
use crate::api::AppState;
use crate::engine::queue::{JobFilter, JobId};

use super::page_limit;

/// Lists jobs, newest first.
#[utoipa::path(get, operation_id = "list_jobs", path = "/jobs", tag = "jobs", params(JobsQuery),
    responses(
        (status = 200, description = "Jobs, newest first", body = JobList),
        (status = 400, description = "A bad query parameter", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<JobsQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = page_limit(q.limit, 50)?;
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_param("offset", "offset must be 0 or more"));
    }
    let filter = JobFilter {
        status: q.status.map(Into::into),
        kind: q.kind,
        campaign_id: q.campaign_id,
        limit,
        offset,
    };
    let jobs = state.engine.jobs(&filter).await?;
    Ok(Json(JobList {
        items: jobs.into_iter().map(JobView::from).collect(),
    }))
}

/// One job.
#[utoipa::path(get, operation_id = "get_job", path = "/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.engine.job(JobId(id)).await?.into()))
}

/// Re-queues a dead, failed or cancelled job with a fresh attempt budget.
#[utoipa::path(post, operation_id = "retry_job", path = "/jobs/{id}/retry", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The re-queued job", body = JobView),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
        (status = 409, description = "The job is queued, running or succeeded", body = ErrorResponse),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.engine.retry_job(JobId(id)).await?.into()))
}

/// Cancels a queued, failed or running job.
#[utoipa::path(post, operation_id = "cancel_job", path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The cancelled job", body = JobView),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
        (status = 409, description = "The job already finished", body = ErrorResponse),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.engine.cancel_job(JobId(id)).await?.into()))
}
