//! The campaign part of the engine service: create and edit from a campaign file, pause/resume/
//! archive, discover, explain, candidates and the shortlist.

use serde::Serialize;
use sqlx::Row;

use crate::db::campaigns::{self, Campaign, CampaignId, CampaignStatus, CampaignWrite};
use crate::db::{bind_all, Db, DbError, SqlValue};
use crate::engine::criteria::{
    self, compile_filter, criteria_hash, parse_campaign, CampaignErrors, CampaignSpec,
};
use crate::engine::pipeline::candidates::maintain_job_for;
use crate::engine::pipeline::ingest::CrawlSeed;
use crate::engine::platforms::DiscoverySource;
use crate::engine::queue::{JobId, NewJob};
use crate::engine::service::{Engine, EngineError};

/// Why a campaign file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CampaignFileError {
    /// Validation errors, each with file, line, column and field.
    #[error("{0}")]
    Invalid(CampaignErrors),
    /// Anything else.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<crate::db::DbError> for CampaignFileError {
    fn from(e: crate::db::DbError) -> Self {
        CampaignFileError::Engine(e.into())
    }
}

/// A candidate row.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateRow {
    pub profile_id: i64,
    pub handle: String,
    /// None when the profile has no features row (a candidate whose features were removed).
    pub followers: Option<i64>,
    pub language: Option<String>,
    pub cheap_score: f64,
    pub reply_probability: f64,
}

/// What a qualify would do, before any money is spent.
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    pub campaign_id: CampaignId,
    /// The compiled predicate with `$N` placeholders.
    pub sql: String,
    /// The bound values, in order.
    pub params: Vec<SqlValue>,
    /// Each clause and how many profiles it keeps on its own.
    pub clauses: Vec<ClauseCount>,
    /// Profiles with features.
    pub profiles: i64,
    /// Profiles matching the whole predicate now.
    pub matching: i64,
    /// Rows in campaign_candidates.
    pub candidates: i64,
    /// Candidates a qualify would shortlist (K, minus cached verdicts, leads, do-not-contact).
    pub shortlist: i64,
    /// LLM calls a qualify would make today (shortlist capped by the remaining daily budget).
    pub llm_calls: i64,
    pub criteria_hash: String,
}

/// Where a campaign stands (`omni status --json`, `GET /campaigns/:id/status`).
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    pub campaign_id: i64,
    /// Profiles matching the campaign's filters.
    pub candidates: i64,
    /// Candidates a qualify would send to the LLM now.
    pub shortlisted: i64,
    /// Verdicts stored for this campaign.
    pub scored: i64,
    /// Of those, judged qualified.
    pub qualified: i64,
    /// Verdicts reused from the cache instead of paying for a call.
    pub cache_hits: i64,
    /// LLM calls made today (UTC).
    pub llm_calls_today: i64,
    /// The daily LLM call budget.
    pub llm_budget: i64,
    /// Leads per status.
    pub leads: std::collections::BTreeMap<String, i64>,
    /// Messages per status.
    pub messages: std::collections::BTreeMap<String, i64>,
    /// Jobs working for this campaign, per status.
    pub jobs: std::collections::BTreeMap<String, i64>,
    /// Feedback events per kind.
    pub feedback: std::collections::BTreeMap<String, i64>,
}

/// A lead as listed by `omni leads` (and exported as CSV).
#[derive(Debug, Clone, Serialize)]
pub struct LeadRow {
    pub id: i64,
    pub profile_id: i64,
    pub handle: String,
    pub profile_url: String,
    pub score: i64,
    pub status: String,
    /// "llm" or "not LLM-checked".
    pub checked: String,
    pub reasons: Vec<String>,
    pub red_flags: Vec<String>,
    pub opener: String,
    pub created_at: i64,
}

/// One clause of an explain.
#[derive(Debug, Clone, Serialize)]
pub struct ClauseCount {
    pub clause: String,
    pub keeps: i64,
}

/// The commented template a new campaign starts from (`n` in the console).
pub const CAMPAIGN_TEMPLATE: &str = include_str!("../../examples/vegan.toml");

/// A campaign's definition as a campaign file (for editing).
pub fn campaign_to_toml(spec: &CampaignSpec) -> String {
    match toml::to_string_pretty(spec) {
        Ok(text) => text,
        Err(e) => format!("# could not render this campaign as TOML: {e}\n"),
    }
}

impl Explain {
    /// The human-readable form (CLI and console).
    pub fn render(&self) -> String {
        let mut out = format!(
            "campaign {}  criteria {}\n",
            self.campaign_id, self.criteria_hash
        );
        out += &format!("predicate  {}\n", self.sql);
        out += &format!(
            "params     {}\n",
            serde_json::to_string(&self.params).unwrap_or_default()
        );
        out += &format!(
            "clauses (profiles each keeps on its own, of {}):\n",
            self.profiles
        );
        for c in &self.clauses {
            out += &format!("  {:>8}  {}\n", c.keeps, c.clause);
        }
        out += &format!("matching now      {}\n", self.matching);
        out += &format!("candidates        {}\n", self.candidates);
        out += &format!("shortlist         {}\n", self.shortlist);
        out += &format!("LLM calls today   {}\n", self.llm_calls);
        out
    }
}

impl Engine {
    fn known_platforms(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services()
            .config
            .platforms
            .iter()
            .map(|p| p.name.clone())
            .collect();
        if names.is_empty() {
            names.push("sandbox".into());
        }
        names
    }

    /// Validates a campaign file's text without storing anything.
    pub fn validate_campaign(
        &self,
        file_name: &str,
        source: &str,
    ) -> Result<CampaignSpec, CampaignErrors> {
        let names = self.known_platforms();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        parse_campaign(file_name, source, &refs)
    }

    fn compile(&self, spec: &CampaignSpec) -> (criteria::CompiledPredicate, String) {
        let model = spec
            .qualify
            .effective_model(&self.services().config.llm.model)
            .to_string();
        (
            compile_filter(&spec.filter, criteria::DEFAULT_ALIAS, 1),
            criteria_hash(spec, &model),
        )
    }

    /// Creates a campaign from a campaign file and enqueues its candidate maintenance (in the same
    /// transaction). Nothing is written for an invalid file.
    pub async fn create_campaign(
        &self,
        file_name: &str,
        source: &str,
    ) -> Result<Campaign, CampaignFileError> {
        let spec = self
            .validate_campaign(file_name, source)
            .map_err(CampaignFileError::Invalid)?;
        self.create_campaign_from_spec(&spec).await
    }

    /// Creates a campaign from a validated spec.
    pub async fn create_campaign_from_spec(
        &self,
        spec: &CampaignSpec,
    ) -> Result<Campaign, CampaignFileError> {
        let (predicate, hash) = self.compile(spec);
        let now = self.services().clock.now_ms();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        let id = campaigns::insert(
            &mut tx,
            &CampaignWrite {
                spec,
                predicate: &predicate,
                criteria_hash: &hash,
            },
            now,
        )
        .await?;
        self.queue()
            .enqueue_in(&mut tx, &maintain_job_for(id))
            .await?;
        tx.commit().await.map_err(EngineError::from)?;
        self.queue().wake().notify_waiters();
        Ok(self.campaign(id).await?)
    }

    /// Replaces a campaign's definition and re-maintains its candidates.
    pub async fn edit_campaign(
        &self,
        id: CampaignId,
        file_name: &str,
        source: &str,
    ) -> Result<Campaign, CampaignFileError> {
        let spec = self
            .validate_campaign(file_name, source)
            .map_err(CampaignFileError::Invalid)?;
        self.campaign(id).await?;
        let (predicate, hash) = self.compile(&spec);
        let now = self.services().clock.now_ms();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        campaigns::update(
            &mut tx,
            id,
            &CampaignWrite {
                spec: &spec,
                predicate: &predicate,
                criteria_hash: &hash,
            },
            now,
        )
        .await?;
        self.queue()
            .enqueue_in(&mut tx, &maintain_job_for(id))
            .await?;
        tx.commit().await.map_err(EngineError::from)?;
        self.queue().wake().notify_waiters();
        Ok(self.campaign(id).await?)
    }

    /// One campaign.
    pub async fn campaign(&self, id: CampaignId) -> Result<Campaign, EngineError> {
        campaigns::get(self.db(), id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("campaign {id}")))
    }

    /// All campaigns.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, EngineError> {
        Ok(campaigns::list(self.db(), None).await?)
    }

    /// Pauses, resumes or archives a campaign.
    pub async fn set_campaign_status(
        &self,
        id: CampaignId,
        status: CampaignStatus,
    ) -> Result<Campaign, EngineError> {
        let c = self.campaign(id).await?;
        if c.status == CampaignStatus::Archived && status != CampaignStatus::Archived {
            return Err(EngineError::Conflict(format!(
                "campaign {id} is archived and cannot be {status}"
            )));
        }
        campaigns::set_status(self.db(), id, status, self.services().clock.now_ms()).await?;
        if status == CampaignStatus::Active {
            self.enqueue(maintain_job_for(id)).await?;
        }
        self.campaign(id).await
    }

    /// Enqueues the campaign's discovery (see [`discovery_jobs`]); returns the job ids.
    pub async fn discover(&self, id: CampaignId) -> Result<Vec<JobId>, EngineError> {
        let c = self.campaign(id).await?;
        let mut ids = Vec::new();
        for job in discovery_jobs(&c) {
            ids.push(self.enqueue(job).await?.id);
        }
        Ok(ids)
    }

    /// The campaign's candidates by cheap score.
    pub async fn candidates(
        &self,
        id: CampaignId,
        limit: i64,
    ) -> Result<Vec<CandidateRow>, EngineError> {
        // The top rows first, from the candidates alone (a top-N sort: there is no score index),
        // then their profiles.
        let rows = sqlx::query(
            "SELECT c.profile_id, p.handle, f.followers, f.language, c.cheap_score FROM \
             (SELECT profile_id, cheap_score FROM campaign_candidates WHERE campaign_id = $1 \
              ORDER BY cheap_score DESC, profile_id LIMIT $2) c \
             JOIN profiles_raw p ON p.id = c.profile_id LEFT JOIN profile_features f ON f.profile_id = c.profile_id \
             ORDER BY c.cheap_score DESC, c.profile_id",
        )
        .bind(id.0)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|r| {
                let s: f64 = r.try_get("cheap_score")?;
                Ok(CandidateRow {
                    profile_id: r.try_get("profile_id")?,
                    handle: r.try_get("handle")?,
                    followers: r.try_get("followers")?,
                    language: r.try_get("language")?,
                    cheap_score: s,
                    reply_probability: crate::engine::pipeline::score::sigmoid(s),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(EngineError::from)
    }

    /// Profile ids a qualify would send to the LLM: the top `k` candidates by cheap score without a
    /// verdict on their current content for this criteria hash, without a lead in this campaign,
    /// and not on the do-not-contact list.
    pub async fn shortlist(&self, id: CampaignId, k: i64) -> Result<Vec<i64>, EngineError> {
        Ok(shortlist(self.db(), id, k).await?)
    }

    /// What a qualify would do, with per-clause counts.
    pub async fn explain(&self, id: CampaignId) -> Result<Explain, EngineError> {
        let c = self.campaign(id).await?;
        let now = self.services().clock.now_ms();
        let pool = self.db().pool();
        let mut clauses = Vec::new();
        for (label, pred) in criteria::clauses(&c.spec) {
            let n = self.count_matching(&pred, now).await?;
            clauses.push(ClauseCount {
                clause: label,
                keeps: n,
            });
        }
        let profiles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM profile_features")
            .fetch_one(pool)
            .await?;
        let matching = self.count_matching(&c.predicate, now).await?;
        let candidates: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1")
                .bind(id.0)
                .fetch_one(pool)
                .await?;
        let shortlist = self
            .shortlist(id, c.spec.qualify.shortlist_k as i64)
            .await?
            .len() as i64;
        let used = self.llm_calls_today(id).await?;
        let budget = (c.spec.qualify.daily_llm_calls as i64 - used).max(0);
        Ok(Explain {
            campaign_id: id,
            sql: c.predicate.sql.clone(),
            params: c.predicate.bind_params(now),
            clauses,
            profiles,
            matching,
            candidates,
            shortlist,
            llm_calls: shortlist.min(budget),
            criteria_hash: c.criteria_hash,
        })
    }

    /// Where a campaign stands.
    pub async fn campaign_status(&self, id: CampaignId) -> Result<CampaignReport, EngineError> {
        let c = self.campaign(id).await?;
        let pool = self.db().pool();
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(id.0)
                .fetch_one(pool)
                .await
        };
        let grouped = |sql: &'static str| async move {
            let rows = sqlx::query(sql).bind(id.0).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>("k")?, r.try_get::<i64, _>("n")?)))
                .collect::<Result<std::collections::BTreeMap<_, _>, sqlx::Error>>()
        };
        let results: Vec<String> = sqlx::query_scalar(
            "SELECT result FROM jobs WHERE campaign_id = $1 AND kind = 'qualify.campaign' AND status = 'succeeded' AND result IS NOT NULL",
        )
        .bind(id.0)
        .fetch_all(pool)
        .await?;
        let cache_hits = results
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .filter_map(|v| v["cache_hits"].as_i64())
            .sum();
        Ok(CampaignReport {
            campaign_id: id.0,
            candidates: count("SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1").await?,
            shortlisted: self.shortlist(id, c.spec.qualify.shortlist_k as i64).await?.len() as i64,
            scored: count("SELECT COUNT(*) FROM llm_scores WHERE campaign_id = $1").await?,
            qualified: count("SELECT COUNT(*) FROM llm_scores WHERE campaign_id = $1 AND qualified = 1").await?,
            cache_hits,
            llm_calls_today: self.llm_calls_today(id).await?,
            llm_budget: c.spec.qualify.daily_llm_calls as i64,
            leads: grouped("SELECT status AS k, COUNT(*) AS n FROM leads WHERE campaign_id = $1 GROUP BY status").await?,
            messages: grouped(
                "SELECT m.status AS k, COUNT(*) AS n FROM messages m JOIN leads l ON l.id = m.lead_id WHERE l.campaign_id = $1 GROUP BY m.status",
            )
            .await?,
            jobs: grouped("SELECT status AS k, COUNT(*) AS n FROM jobs WHERE campaign_id = $1 GROUP BY status").await?,
            feedback: grouped(
                "SELECT f.kind AS k, COUNT(*) AS n FROM feedback_events f JOIN leads l ON l.id = f.lead_id WHERE l.campaign_id = $1 GROUP BY f.kind",
            )
            .await?,
        })
    }

    /// A campaign's leads, best first, optionally only those in `status`.
    pub async fn lead_rows(
        &self,
        id: CampaignId,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LeadRow>, EngineError> {
        self.campaign(id).await?;
        let rows = sqlx::query(
            "SELECT l.id, l.profile_id, p.handle, p.payload, l.score, l.status, l.created_at, s.model, s.reasons, s.red_flags, s.opener \
             FROM leads l JOIN profiles_raw p ON p.id = l.profile_id LEFT JOIN llm_scores s ON s.id = l.llm_score_id \
             WHERE l.campaign_id = $1 AND ($2 IS NULL OR l.status = $2) ORDER BY l.score DESC, l.id LIMIT $3",
        )
        .bind(id.0)
        .bind(status.map(str::to_string))
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        let list = |v: Option<String>| {
            v.and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok())
                .unwrap_or_default()
        };
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("payload")?;
                let url = serde_json::from_str::<serde_json::Value>(&payload)
                    .ok()
                    .and_then(|v| v["account"]["url"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let model: Option<String> = r.try_get("model")?;
                Ok(LeadRow {
                    id: r.try_get("id")?,
                    profile_id: r.try_get("profile_id")?,
                    handle: r.try_get("handle")?,
                    profile_url: url,
                    score: r.try_get("score")?,
                    status: r.try_get("status")?,
                    checked: if model.as_deref() == Some("none") {
                        "not LLM-checked".into()
                    } else {
                        "llm".into()
                    },
                    reasons: list(r.try_get("reasons")?),
                    red_flags: list(r.try_get("red_flags")?),
                    opener: r
                        .try_get::<Option<String>, _>("opener")?
                        .unwrap_or_default(),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(EngineError::from)
    }

    async fn count_matching(
        &self,
        pred: &criteria::CompiledPredicate,
        now: i64,
    ) -> Result<i64, EngineError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM profile_features pf WHERE ({})",
            pred.sql
        );
        let row = bind_all(sqlx::query(&sql), &pred.bind_params(now))
            .fetch_one(self.db().pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// LLM calls made for a campaign since midnight UTC (by the engine's clock).
    pub async fn llm_calls_today(&self, id: CampaignId) -> Result<i64, EngineError> {
        let now = self.services().clock.now_ms();
        let midnight = now - now.rem_euclid(86_400_000);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM llm_scores WHERE campaign_id = $1 AND created_at >= $2 AND model <> 'none'")
            .bind(id.0)
            .bind(midnight)
            .fetch_one(self.db().pool())
            .await?;
        Ok(n)
    }
}

/// One `crawl.seed` per `[discovery]` source of the campaign (the directory when none is given),
/// sharing `max_profiles` between them.
pub fn discovery_jobs(c: &Campaign) -> Vec<NewJob> {
    let d = &c.spec.discovery;
    let mut sources: Vec<DiscoverySource> = Vec::new();
    sources.extend(
        d.hashtags
            .iter()
            .map(|h| DiscoverySource::Hashtag(h.trim_start_matches('#').to_string())),
    );
    sources.extend(d.search.iter().map(|q| DiscoverySource::Search(q.clone())));
    sources.extend(
        d.followers_of
            .iter()
            .map(|h| DiscoverySource::FollowersOf(h.clone())),
    );
    if d.directory || sources.is_empty() {
        sources.push(DiscoverySource::Directory);
    }
    let per_source = (d.max_profiles as usize / sources.len()).max(1);
    sources
        .into_iter()
        .map(|source| {
            let seed = CrawlSeed {
                platform: c.platform.clone(),
                source,
                cursor: None,
                limit: per_source,
                seen: 0,
                fresh_secs: 6 * 3600,
            };
            NewJob::new("crawl.seed", serde_json::to_value(seed).unwrap_or_default())
                .campaign(c.id.0)
        })
        .collect()
}

/// The shortlist query: $1 campaign, $2 K, $3 how many of the campaign's best-scored candidates
/// to consider. A verdict counts as current when it is newer than the profile's last content
/// change and was given under the campaign's current criteria hash; the qualify step
/// double-checks with the exact profile hash.
///
/// Candidates have no score index (migration 0008: every score change would move an entry in it),
/// so the top `$3` are taken by one top-N sort over the campaign's key range, and only those are
/// checked against leads, the do-not-contact list and verdicts.
const SHORTLIST_SQL: &str = "SELECT c.profile_id FROM \
     (SELECT profile_id, cheap_score FROM campaign_candidates WHERE campaign_id = $1 \
      ORDER BY cheap_score DESC, profile_id LIMIT $3) c \
     JOIN profiles_raw p ON p.id = c.profile_id JOIN campaigns cm ON cm.id = $1 \
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.campaign_id = $1 AND l.profile_id = c.profile_id) \
     AND NOT EXISTS (SELECT 1 FROM do_not_contact d WHERE d.platform = p.platform AND (LOWER(d.handle) = LOWER(p.handle) OR d.external_id = p.external_id)) \
     AND NOT EXISTS (SELECT 1 FROM llm_scores s WHERE s.profile_id = c.profile_id AND s.criteria_hash = cm.criteria_hash AND s.created_at >= p.last_changed) \
     ORDER BY c.cheap_score DESC, c.profile_id LIMIT $2";

/// Profile ids a qualify would send to the LLM: the top `k` candidates of campaign `id` by cheap
/// score without a current verdict, without a lead in the campaign, and not on the do-not-contact
/// list.
///
/// The query first considers the best `k` + `min(3k, e)` candidates, where `e` counts the
/// campaign's leads and verdicts and the do-not-contact entries (each of which excludes at most a
/// profile or two; capped, since a campaign's verdicts pile up over months); when exclusions
/// still leave fewer than `k` and the campaign has more candidates, it looks four times as deep,
/// until it has `k` or has seen them all.
pub async fn shortlist(db: &Db, id: CampaignId, k: i64) -> Result<Vec<i64>, DbError> {
    if k <= 0 {
        return Ok(Vec::new());
    }
    let pool = db.pool();
    let excludable: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM leads WHERE campaign_id = $1) \
         + (SELECT COUNT(*) FROM llm_scores WHERE campaign_id = $1) \
         + 2 * (SELECT COUNT(*) FROM do_not_contact)",
    )
    .bind(id.0)
    .fetch_one(pool)
    .await?;
    let mut depth = k.saturating_add(excludable.min(k.saturating_mul(3)));
    let mut total: Option<i64> = None;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(SHORTLIST_SQL)
            .bind(id.0)
            .bind(k)
            .bind(depth)
            .fetch_all(pool)
            .await?;
        if ids.len() as i64 >= k {
            return Ok(ids);
        }
        let all = match total {
            Some(n) => n,
            None => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1",
                )
                .bind(id.0)
                .fetch_one(pool)
                .await?;
                *total.insert(n)
            }
        };
        if depth >= all {
            return Ok(ids);
        }
        depth = depth.saturating_mul(4);
    }
}
