//! Campaign and lead endpoints: create, list, inspect, pause/resume/archive, explain, start
//! discovery and qualification, page through leads (JSON or CSV), inspect one lead.

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::backend::ApiBackend;
use crate::api::error::{ApiError, ErrorResponse};
use crate::api::extract::{self, JsonOrToml, Path, Query};
use crate::api::queries::Cursor;
use crate::api::types::{
    Campaign, CampaignExplain, CampaignList, CampaignPatch, CampaignProgress, CampaignsQuery,
    JobAccepted, Lead, LeadDetail, LeadPage, LeadsQuery,
};
use crate::api::AppState;

use super::page_limit;

/// Creates a campaign from its file, sent as JSON or TOML.
#[utoipa::path(post, operation_id = "create_campaign", path = "/campaigns", tag = "campaigns",
    request_body(content(
        (serde_json::Value = "application/json"),
        (String = "application/toml"),
    ), description = "The campaign file (the same content as campaign.toml)"),
    responses(
        (status = 201, description = "The new campaign", body = Campaign),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 415, description = "Neither JSON nor TOML", body = ErrorResponse),
        (status = 422, description = "Invalid campaign file; `field` names the culprit", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    body: JsonOrToml,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let JsonOrToml(file, format) = body;
    if !file.is_object() {
        return Err(ApiError::new(
            crate::api::error::ErrorCode::Invalid,
            "the campaign file must be an object/table",
        ));
    }
    let campaign = ApiBackend::create_campaign(&state.engine, file, format).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// Lists campaigns, newest first.
#[utoipa::path(get, operation_id = "list_campaigns", path = "/campaigns", tag = "campaigns", params(CampaignsQuery),
    responses(
        (status = 200, description = "Campaigns", body = CampaignList),
        (status = 400, description = "A bad query parameter", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<CampaignsQuery>,
) -> Result<Json<CampaignList>, ApiError> {
    Ok(Json(CampaignList {
        items: ApiBackend::campaigns(&state.engine, q.status).await?,
    }))
}

/// One campaign.
#[utoipa::path(get, operation_id = "get_campaign", path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = Campaign),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(ApiBackend::campaign(&state.engine, id).await?))
}

/// Pauses (`paused`), resumes (`active`) or archives (`archived`) a campaign.
#[utoipa::path(patch, operation_id = "update_campaign", path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body = CampaignPatch,
    responses(
        (status = 200, description = "The updated campaign", body = Campaign),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
        (status = 409, description = "Not allowed from the current state (e.g. archived)", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
        (status = 422, description = "Invalid body", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    extract::Json(patch): extract::Json<CampaignPatch>,
) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(
        ApiBackend::set_campaign_status(&state.engine, id, patch.status).await?,
    ))
}

/// Counts per pipeline stage: candidates, LLM verdicts, leads, messages, jobs, feedback.
#[utoipa::path(get, operation_id = "campaign_status", path = "/campaigns/{id}/status", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Where the campaign stands", body = CampaignProgress),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
    ))]
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CampaignProgress>, ApiError> {
    Ok(Json(
        ApiBackend::campaign_progress(&state.engine, id).await?,
    ))
}

/// The compiled filter, the count each clause keeps, the shortlist and the LLM calls a qualify
/// would make, before any money is spent.
#[utoipa::path(get, operation_id = "explain_campaign", path = "/campaigns/{id}/explain", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The plan", body = CampaignExplain),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn explain(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CampaignExplain>, ApiError> {
    Ok(Json(ApiBackend::explain_campaign(&state.engine, id).await?))
}

/// Starts discovery: crawls the campaign's seeds for profiles.
#[utoipa::path(post, operation_id = "discover", path = "/campaigns/{id}/discover", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 202, description = "Accepted; follow the job", body = JobAccepted),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
        (status = 409, description = "The campaign is paused or archived", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn discover(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(ApiBackend::discover(&state.engine, id).await?),
    ))
}

/// Starts a qualify run: shortlists candidates and asks the LLM about each.
#[utoipa::path(post, operation_id = "qualify", path = "/campaigns/{id}/qualify", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 202, description = "Accepted; follow the job", body = JobAccepted),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
        (status = 409, description = "The campaign is paused or archived", body = ErrorResponse),
        (status = 501, description = "Not implemented by this engine yet", body = ErrorResponse),
    ))]
pub async fn qualify(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(ApiBackend::qualify(&state.engine, id).await?),
    ))
}

/// A page of a campaign's leads, best score first. With `Accept: text/csv` the page comes as
/// CSV and the next page's cursor in the `X-Next-Cursor` header.
#[utoipa::path(get, operation_id = "list_leads", path = "/campaigns/{id}/leads", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id"), LeadsQuery),
    responses(
        (status = 200, description = "A page of leads", content(
            (LeadPage = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A bad parameter (limit over 500, a foreign cursor)", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such campaign", body = ErrorResponse),
    ))]
pub async fn leads(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<LeadsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit, 100)?;
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
            ApiError::bad_param(
                "cursor",
                "not a cursor from this endpoint: pass the previous page's next_cursor",
            )
        })?),
    };
    let (items, next) = ApiBackend::leads(&state.engine, id, q.status, limit, after).await?;
    let next_cursor = next.map(Cursor::encode);
    if wants_csv(&headers) {
        let mut response = leads_csv(&items).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Some(c) = next_cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert("x-next-cursor", c);
        }
        return Ok(response);
    }
    Ok(Json(LeadPage { items, next_cursor }).into_response())
}

/// One lead with its profile numbers, the LLM's verdict, its messages and feedback.
#[utoipa::path(get, operation_id = "get_lead", path = "/leads/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Lead id")),
    responses(
        (status = 200, description = "The lead", body = LeadDetail),
        (status = 400, description = "A malformed id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong token", body = ErrorResponse),
        (status = 404, description = "No such lead", body = ErrorResponse),
    ))]
pub async fn lead(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<LeadDetail>, ApiError> {
    Ok(Json(ApiBackend::lead(&state.engine, id).await?))
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("text/csv")
        })
}

/// One CSV cell: quoted when needed; text that a spreadsheet would run as a formula is prefixed
/// with `'` (handles come from other people).
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn leads_csv(leads: &[Lead]) -> String {
    let mut out = String::from(
        "id,campaign_id,profile_id,platform,handle,score,status,created_at,updated_at\n",
    );
    for l in leads {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            l.id,
            l.campaign_id,
            l.profile_id,
            cell(&l.platform),
            cell(&l.handle),
            l.score,
            l.status,
            l.created_at,
            l.updated_at
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
