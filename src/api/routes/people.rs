//! People endpoints: the do-not-contact list, erasure of a person, and the sender accounts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::api::backend::ApiBackend;
use crate::api::error::{ApiError, ErrorResponse};
use crate::api::extract::{self, Path, Query};
use crate::api::types::{AccountList, DncEntry, DncKey, DncPage, DncQuery, NewDnc, Removed};
use crate::api::AppState;

use super::page_limit;

/// Lists do-not-contact entries, oldest first.
#[utoipa::path(get, operation_id = "list_dnc", path = "/dnc", tag = "people", params(DncQuery),
    responses(
        (status = 200, description = "A page of entries", body = DncPage),
        (status = 400, description = "A bad query parameter", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn list_dnc(
    State(state): State<AppState>,
    Query(q): Query<DncQuery>,
) -> Result<Json<DncPage>, ApiError> {
    let limit = page_limit(q.limit, 100)?;
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::bad_param(
                "cursor",
                "not a cursor from this endpoint: pass the previous page's next_cursor",
            )
        })?),
    };
    let (items, next) = ApiBackend::dnc(&state.engine, q.platform, limit, after).await?;
    Ok(Json(DncPage {
        items,
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// Adds a person to do-not-contact (idempotent).
#[utoipa::path(post, operation_id = "add_dnc", path = "/dnc", tag = "people", request_body = NewDnc,
    responses(
        (status = 201, description = "The entry", body = DncEntry),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
        (status = 422, description = "Invalid body", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn add_dnc(
    State(state): State<AppState>,
    extract::Json(req): extract::Json<NewDnc>,
) -> Result<(StatusCode, Json<DncEntry>), ApiError> {
    for (field, value) in [("platform", &req.platform), ("handle", &req.handle)] {
        if value.trim().is_empty() {
            return Err(ApiError::invalid(
                field,
                format!("{field} must not be empty"),
            ));
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(ApiBackend::add_dnc(&state.engine, req).await?),
    ))
}

/// Removes a do-not-contact entry.
#[utoipa::path(delete, operation_id = "remove_dnc", path = "/dnc", tag = "people", params(DncKey),
    responses(
        (status = 200, description = "What was removed", body = Removed),
        (status = 400, description = "A bad query parameter", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such entry", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn remove_dnc(
    State(state): State<AppState>,
    Query(key): Query<DncKey>,
) -> Result<Json<Removed>, ApiError> {
    Ok(Json(
        ApiBackend::remove_dnc(&state.engine, key.platform, key.handle).await?,
    ))
}

/// Erases everything stored about a person and adds them to do-not-contact.
#[utoipa::path(delete, operation_id = "erase_person", path = "/people/{platform}/{handle}", tag = "people",
    params(
        ("platform" = String, Path, description = "Platform, e.g. mastodon"),
        ("handle" = String, Path, description = "The person's handle on that platform"),
    ),
    responses(
        (status = 200, description = "What was deleted", body = Removed),
        (status = 400, description = "A malformed path", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn erase(
    State(state): State<AppState>,
    Path((platform, handle)): Path<(String, String)>,
) -> Result<Json<Removed>, ApiError> {
    Ok(Json(
        ApiBackend::erase_person(&state.engine, platform, handle).await?,
    ))
}

/// The sender accounts with their limits and recent sends.
#[utoipa::path(get, operation_id = "list_accounts", path = "/accounts", tag = "people",
    responses(
        (status = 200, description = "Accounts", body = AccountList),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn accounts(State(state): State<AppState>) -> Result<Json<AccountList>, ApiError> {
    Ok(Json(AccountList {
        items: ApiBackend::accounts(&state.engine).await?,
    }))
}
