//! The OpenAPI document, generated from the handlers' annotations and the types' derives.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorCode, ErrorDetail, ErrorResponse};
use super::routes::{batches, campaigns, jobs, people, system};
use super::types::*;

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Omni API", description = "Find, qualify and contact the right people on social platforms. \
        When the server has a token, send `Authorization: Bearer <token>` (not needed for /healthz). \
        Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`."),
    paths(
        system::healthz, system::metrics, system::openapi, system::events,
        jobs::list, jobs::get, jobs::retry, jobs::cancel,
        campaigns::create, campaigns::list, campaigns::get, campaigns::patch, campaigns::status,
        campaigns::explain, campaigns::discover, campaigns::qualify, campaigns::leads, campaigns::lead,
        batches::create, batches::get, batches::approve, batches::cancel,
        people::list_dnc, people::add_dnc, people::remove_dnc, people::erase, people::accounts,
    ),
    components(schemas(
        ErrorResponse, ErrorDetail, ErrorCode, Health, JobView, JobList, JobState, JobAccepted, Campaign,
        CampaignList, CampaignState, CampaignPatch, CampaignProgress, CampaignExplain, ClauseCount, Lead,
        LeadStatus, LeadPage, LeadDetail, ProfileSummary, Verdict, Message, MessageStatus, Feedback, NewBatch,
        Batch, BatchStatus, DncEntry, DncPage, NewDnc, Removed, Account, AccountList,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "system", description = "Health, metrics, events, this document"),
        (name = "jobs", description = "The durable job queue"),
        (name = "campaigns", description = "Campaigns and their leads"),
        (name = "batches", description = "Approved DM batches"),
        (name = "people", description = "Do-not-contact, erasure, sender accounts"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON text.
pub fn document() -> String {
    // Serializing a document built from static annotations cannot fail; fall back to an empty
    // object rather than panic if it ever does.
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_string())
}
