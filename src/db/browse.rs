//! Windowed, filtered, sorted reads for the console and the API's list endpoints (owned by the console work).
//!
//! Every list is read as a window `offset..offset+limit` of one table, filtered and sorted in SQL,
//! so a caller never holds more rows than it shows. Sorting and filtering only ever use whitelisted
//! column expressions; user text travels as a bound parameter. Deep windows (past the middle of a
//! known total) are read in reverse order from the other end, so `G` on a million rows costs the
//! same as `g`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{bind_all, Db, DbError, Dialect, SqlValue};
use crate::engine::clock::Millis;
use crate::engine::criteria::compile::like_pattern;

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// A campaign's id.
    CampaignId,
    /// A scraped profile's id (`profiles_raw.id`).
    ProfileId,
    /// A lead's id.
    LeadId,
    /// A DM batch's id.
    BatchId,
    /// A message's id.
    MessageId,
    /// A sender account's id.
    AccountId,
);

/// Where a lead is in its life (`leads.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Qualified by the LLM, waiting for the operator.
    New,
    /// Approved by the operator for messaging.
    Approved,
    /// Rejected by the operator.
    Rejected,
    /// A message is queued for it.
    Queued,
    /// Messaged.
    Sent,
    /// Replied.
    Replied,
    /// Asked not to be contacted.
    OptedOut,
    /// Sending failed.
    Failed,
}

impl LeadStatus {
    /// Every status.
    pub const ALL: [LeadStatus; 8] = [
        LeadStatus::New,
        LeadStatus::Approved,
        LeadStatus::Rejected,
        LeadStatus::Queued,
        LeadStatus::Sent,
        LeadStatus::Replied,
        LeadStatus::OptedOut,
        LeadStatus::Failed,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Approved => "approved",
            LeadStatus::Rejected => "rejected",
            LeadStatus::Queued => "queued",
            LeadStatus::Sent => "sent",
            LeadStatus::Replied => "replied",
            LeadStatus::OptedOut => "opted_out",
            LeadStatus::Failed => "failed",
        }
    }

    /// True for the statuses an operator may set or undo by hand (before anything was sent).
    pub fn is_operator_decision(self) -> bool {
        matches!(
            self,
            LeadStatus::New | LeadStatus::Approved | LeadStatus::Rejected
        )
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeadStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LeadStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            format!("unknown lead status `{s}`: expected one of new, approved, rejected, queued, sent, replied, opted_out, failed")
        })
    }
}

/// Which list a [`BrowseQuery`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// `campaigns`, with funnel counts.
    Campaigns,
    /// `campaign_candidates` joined to profiles.
    Candidates,
    /// `leads` joined to profiles and campaigns.
    Leads,
    /// `dm_batches` with message counts.
    Batches,
    /// `messages` joined to leads, profiles and accounts.
    Messages,
    /// `jobs`.
    Jobs,
    /// `accounts` with their recent sends.
    Accounts,
}

/// A window of one list: which rows, filtered and sorted how.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowseQuery {
    /// The list.
    pub table: Table,
    /// Only rows of this campaign (tables that have one).
    pub campaign: Option<CampaignId>,
    /// Only rows of this batch (messages).
    pub batch: Option<BatchId>,
    /// Only rows in this status (tables that have one).
    pub status: Option<String>,
    /// Case-insensitive substring on the table's text columns (handle, name, text, body, …).
    pub filter: Option<String>,
    /// A sort key from [`sort_keys`]; unknown keys fall back to the table's default.
    pub sort: Option<String>,
    /// Descending.
    pub desc: bool,
    /// First row of the window.
    pub offset: i64,
    /// Rows in the window.
    pub limit: i64,
    /// "Now", for columns relative to it (an account's sends in the last 24 hours).
    pub now: Millis,
}

impl BrowseQuery {
    /// The first `limit` rows of `table` in its default order.
    pub fn new(table: Table) -> Self {
        let (_, desc) = spec(table).default_sort;
        Self {
            table,
            campaign: None,
            batch: None,
            status: None,
            filter: None,
            sort: None,
            desc,
            offset: 0,
            limit: 50,
            now: 0,
        }
    }
}

/// A campaign with its funnel counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    pub id: CampaignId,
    pub name: String,
    pub platform: String,
    pub status: String,
    pub candidates: i64,
    pub leads: i64,
    pub approved: i64,
    pub sent: i64,
    pub replied: i64,
    pub created_at: Millis,
}

/// A campaign candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateRow {
    pub campaign: CampaignId,
    pub profile: ProfileId,
    pub handle: String,
    pub cheap_score: f64,
    pub followers: Option<i64>,
    pub language: Option<String>,
    pub added_at: Millis,
}

/// A lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadRow {
    pub id: LeadId,
    pub campaign: CampaignId,
    pub campaign_name: String,
    pub profile: ProfileId,
    pub handle: String,
    pub score: i64,
    pub status: String,
    pub followers: Option<i64>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A DM batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRow {
    pub id: BatchId,
    pub campaign: CampaignId,
    pub campaign_name: String,
    pub status: String,
    pub messages: i64,
    pub created_at: Millis,
    pub approved_at: Option<Millis>,
}

/// A message (a planned or sent DM).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRow {
    pub id: MessageId,
    pub batch: BatchId,
    pub lead: LeadId,
    pub profile: ProfileId,
    pub handle: String,
    pub account: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub not_before: Option<Millis>,
    pub sent_at: Option<Millis>,
    pub error: Option<String>,
    pub body: String,
}

/// A job, as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub progress: i64,
    pub progress_message: Option<String>,
    pub error: Option<String>,
    pub campaign: Option<i64>,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
}

/// A sender account with its sends in the last 24 hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountRow {
    pub id: AccountId,
    pub platform: String,
    pub handle: String,
    pub daily_cap: i64,
    pub hourly_cap: i64,
    pub min_gap_secs: i64,
    pub warmup_days: i64,
    pub timezone: String,
    pub paused_until: Option<Millis>,
    pub sent_24h: i64,
}

/// The rows of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "table", content = "rows", rename_all = "snake_case")]
pub enum Rows {
    Campaigns(Vec<CampaignRow>),
    Candidates(Vec<CandidateRow>),
    Leads(Vec<LeadRow>),
    Batches(Vec<BatchRow>),
    Messages(Vec<MessageRow>),
    Jobs(Vec<JobRow>),
    Accounts(Vec<AccountRow>),
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Rows::Campaigns(v) => v.len(),
            Rows::Candidates(v) => v.len(),
            Rows::Leads(v) => v.len(),
            Rows::Batches(v) => v.len(),
            Rows::Messages(v) => v.len(),
            Rows::Jobs(v) => v.len(),
            Rows::Accounts(v) => v.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stable id of row `i` (what marks refer to): lead id, profile id for candidates, …
    pub fn id(&self, i: usize) -> Option<i64> {
        Some(match self {
            Rows::Campaigns(v) => v.get(i)?.id.0,
            Rows::Candidates(v) => v.get(i)?.profile.0,
            Rows::Leads(v) => v.get(i)?.id.0,
            Rows::Batches(v) => v.get(i)?.id.0,
            Rows::Messages(v) => v.get(i)?.id.0,
            Rows::Jobs(v) => v.get(i)?.id,
            Rows::Accounts(v) => v.get(i)?.id.0,
        })
    }

    fn reverse(&mut self) {
        match self {
            Rows::Campaigns(v) => v.reverse(),
            Rows::Candidates(v) => v.reverse(),
            Rows::Leads(v) => v.reverse(),
            Rows::Batches(v) => v.reverse(),
            Rows::Messages(v) => v.reverse(),
            Rows::Jobs(v) => v.reverse(),
            Rows::Accounts(v) => v.reverse(),
        }
    }
}

/// A window of rows starting at `offset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Index of the first row.
    pub offset: i64,
    /// The rows.
    pub rows: Rows,
}

struct Spec {
    columns: &'static str,
    from: &'static str,
    /// The smallest FROM that still evaluates the scope clauses: used to count when no text filter
    /// needs the joins (foreign keys guarantee the inner joins drop no rows).
    lean_from: &'static str,
    id: &'static str,
    campaign_col: Option<&'static str>,
    batch_col: Option<&'static str>,
    status_col: Option<&'static str>,
    text_cols: &'static [&'static str],
    /// The profile id column when `text_cols` are exactly a profile's handle and text: on SQLite a
    /// filter of three or more characters is then answered by the `profile_search` trigram index.
    profile_col: Option<&'static str>,
    sorts: &'static [(&'static str, &'static str)],
    default_sort: (&'static str, bool),
}

fn spec(table: Table) -> &'static Spec {
    match table {
        Table::Campaigns => &CAMPAIGNS,
        Table::Candidates => &CANDIDATES,
        Table::Leads => &LEADS,
        Table::Batches => &BATCHES,
        Table::Messages => &MESSAGES,
        Table::Jobs => &JOBS,
        Table::Accounts => &ACCOUNTS,
    }
}

/// The sort keys a table accepts (the first is the default).
pub fn sort_keys(table: Table) -> Vec<&'static str> {
    spec(table).sorts.iter().map(|(k, _)| *k).collect()
}

/// The table's default sort key and direction (true = descending).
pub fn default_sort(table: Table) -> (&'static str, bool) {
    spec(table).default_sort
}

static CAMPAIGNS: Spec = Spec {
    columns: "c.id, c.name, c.platform, c.status, c.created_at, \
        (SELECT COUNT(*) FROM campaign_candidates cc WHERE cc.campaign_id = c.id) AS candidates, \
        (SELECT COUNT(*) FROM leads l WHERE l.campaign_id = c.id) AS leads, \
        (SELECT COUNT(*) FROM leads l WHERE l.campaign_id = c.id AND l.status = 'approved') AS approved, \
        (SELECT COUNT(*) FROM leads l WHERE l.campaign_id = c.id AND l.status IN ('sent', 'replied', 'opted_out')) AS sent, \
        (SELECT COUNT(*) FROM leads l WHERE l.campaign_id = c.id AND l.status = 'replied') AS replied",
    from: "FROM campaigns c",
    lean_from: "FROM campaigns c",
    id: "c.id",
    campaign_col: Some("c.id"),
    batch_col: None,
    status_col: Some("c.status"),
    text_cols: &["c.name"],
    profile_col: None,
    sorts: &[
        ("id", "c.id"),
        ("name", "c.name"),
        ("status", "c.status"),
        ("candidates", "candidates"),
        ("leads", "leads"),
        ("sent", "sent"),
        ("replied", "replied"),
        ("created", "c.created_at"),
    ],
    default_sort: ("id", true),
};

static CANDIDATES: Spec = Spec {
    columns: "cc.campaign_id, cc.profile_id, p.handle, cc.cheap_score, f.followers, f.language, cc.added_at",
    from: "FROM campaign_candidates cc JOIN profiles_raw p ON p.id = cc.profile_id \
        LEFT JOIN profile_features f ON f.profile_id = cc.profile_id",
    lean_from: "FROM campaign_candidates cc",
    id: "cc.profile_id",
    campaign_col: Some("cc.campaign_id"),
    batch_col: None,
    status_col: None,
    text_cols: &["p.handle", "f.text"],
    profile_col: Some("cc.profile_id"),
    sorts: &[
        ("score", "cc.cheap_score"),
        ("handle", "p.handle"),
        ("followers", "f.followers"),
        ("language", "f.language"),
        ("added", "cc.added_at"),
        ("profile", "cc.profile_id"),
    ],
    default_sort: ("score", true),
};

static LEADS: Spec = Spec {
    columns: "l.id, l.campaign_id, c.name AS campaign_name, l.profile_id, p.handle, l.score, l.status, \
        f.followers, l.created_at, l.updated_at",
    from: "FROM leads l JOIN profiles_raw p ON p.id = l.profile_id JOIN campaigns c ON c.id = l.campaign_id \
        LEFT JOIN profile_features f ON f.profile_id = l.profile_id",
    lean_from: "FROM leads l",
    id: "l.id",
    campaign_col: Some("l.campaign_id"),
    batch_col: None,
    status_col: Some("l.status"),
    text_cols: &["p.handle", "f.text"],
    profile_col: Some("l.profile_id"),
    sorts: &[
        ("id", "l.id"),
        ("handle", "p.handle"),
        ("score", "l.score"),
        ("status", "l.status"),
        ("campaign", "c.name"),
        ("followers", "f.followers"),
        ("created", "l.created_at"),
        ("updated", "l.updated_at"),
    ],
    default_sort: ("id", true),
};

static BATCHES: Spec = Spec {
    columns:
        "b.id, b.campaign_id, c.name AS campaign_name, b.status, b.created_at, b.approved_at, \
        (SELECT COUNT(*) FROM messages m WHERE m.batch_id = b.id) AS messages",
    from: "FROM dm_batches b JOIN campaigns c ON c.id = b.campaign_id",
    lean_from: "FROM dm_batches b",
    id: "b.id",
    campaign_col: Some("b.campaign_id"),
    batch_col: Some("b.id"),
    status_col: Some("b.status"),
    text_cols: &["c.name"],
    profile_col: None,
    sorts: &[
        ("id", "b.id"),
        ("campaign", "c.name"),
        ("status", "b.status"),
        ("messages", "messages"),
        ("created", "b.created_at"),
        ("approved", "b.approved_at"),
    ],
    default_sort: ("id", true),
};

static MESSAGES: Spec = Spec {
    columns: "m.id, m.batch_id, m.lead_id, l.profile_id, p.handle, a.handle AS account, m.status, m.attempts, \
        m.not_before, m.sent_at, m.error, m.body",
    from: "FROM messages m JOIN leads l ON l.id = m.lead_id JOIN profiles_raw p ON p.id = l.profile_id \
        LEFT JOIN accounts a ON a.id = m.account_id",
    lean_from: "FROM messages m JOIN leads l ON l.id = m.lead_id",
    id: "m.id",
    campaign_col: Some("l.campaign_id"),
    batch_col: Some("m.batch_id"),
    status_col: Some("m.status"),
    text_cols: &["p.handle", "m.body"],
    profile_col: None,
    sorts: &[
        ("id", "m.id"),
        ("handle", "p.handle"),
        ("account", "a.handle"),
        ("status", "m.status"),
        ("planned", "m.not_before"),
        ("sent", "m.sent_at"),
        ("attempts", "m.attempts"),
    ],
    default_sort: ("id", true),
};

static JOBS: Spec = Spec {
    columns: "j.id, j.kind, j.status, j.attempts, j.max_attempts, j.progress, j.progress_message, j.error, \
        j.campaign_id, j.created_at, j.finished_at",
    from: "FROM jobs j",
    lean_from: "FROM jobs j",
    id: "j.id",
    campaign_col: Some("j.campaign_id"),
    batch_col: None,
    status_col: Some("j.status"),
    text_cols: &["j.kind", "j.error"],
    profile_col: None,
    sorts: &[
        ("id", "j.id"),
        ("kind", "j.kind"),
        ("status", "j.status"),
        ("attempts", "j.attempts"),
        ("progress", "j.progress"),
        ("finished", "j.finished_at"),
    ],
    default_sort: ("id", true),
};

static ACCOUNTS: Spec = Spec {
    columns: "a.id, a.platform, a.handle, a.daily_cap, a.hourly_cap, a.min_gap_secs, a.warmup_days, a.timezone, \
        a.paused_until, (SELECT COUNT(*) FROM messages m WHERE m.account_id = a.id AND m.sent_at >= $1) AS sent_24h",
    from: "FROM accounts a",
    lean_from: "FROM accounts a",
    id: "a.id",
    campaign_col: None,
    batch_col: None,
    status_col: None,
    text_cols: &["a.handle"],
    profile_col: None,
    sorts: &[
        ("id", "a.id"),
        ("handle", "a.handle"),
        ("platform", "a.platform"),
        ("sent", "sent_24h"),
        ("paused", "a.paused_until"),
    ],
    default_sort: ("id", false),
};

/// Sort expressions whose column may be NULL.
const NULLABLE_SORTS: &[&str] = &[
    "f.followers",
    "f.language",
    "b.approved_at",
    "a.handle",
    "m.not_before",
    "m.sent_at",
    "j.finished_at",
    "a.paused_until",
];

/// How a text filter is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterPlan {
    /// No filter.
    None,
    /// `LOWER(col) LIKE '%…%'` over the spec's text columns (needs the full FROM's joins).
    Like,
    /// The `profile_search` trigram index (SQLite, three or more characters, profile tables).
    Search,
}

fn filter_plan(s: &Spec, q: &BrowseQuery, dialect: Dialect) -> FilterPlan {
    match q.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => FilterPlan::None,
        // The trigram tokenizer indexes sequences of three characters: shorter needles scan.
        Some(f)
            if dialect == Dialect::Sqlite && s.profile_col.is_some() && f.chars().count() >= 3 =>
        {
            FilterPlan::Search
        }
        Some(_) => FilterPlan::Like,
    }
}

/// An FTS5 query that every row containing `needle` (lower-cased) matches: each of its trigrams,
/// quoted (`"` doubled), joined with AND. The index keeps no positions (migration 0010), so it
/// cannot answer a phrase; the caller checks the substring itself on the rows this finds.
fn search_trigrams(needle: &str) -> String {
    let chars: Vec<char> = needle.chars().collect();
    let mut terms: Vec<String> = Vec::new();
    for w in chars.windows(3) {
        let term: String = w.iter().collect();
        let term = format!("\"{}\"", term.replace('"', "\"\""));
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms.join(" AND ")
}

/// Builds the WHERE clause for `q`, appending bound values to `args` (placeholders continue after them).
fn where_clause(s: &Spec, q: &BrowseQuery, dialect: Dialect, args: &mut Vec<SqlValue>) -> String {
    let mut clauses: Vec<String> = Vec::new();
    let mut push = |args: &mut Vec<SqlValue>, col: &str, v: SqlValue| {
        args.push(v);
        clauses.push(format!("{col} = ${}", args.len()));
    };
    if let (Some(col), Some(c)) = (s.campaign_col, q.campaign) {
        push(args, col, SqlValue::Int(c.0));
    }
    if let (Some(col), Some(b)) = (s.batch_col, q.batch) {
        push(args, col, SqlValue::Int(b.0));
    }
    if let (Some(col), Some(st)) = (s.status_col, q.status.as_ref()) {
        push(args, col, SqlValue::Text(st.clone()));
    }
    let needle = q.filter.as_deref().map(str::trim).unwrap_or_default();
    match (filter_plan(s, q, dialect), s.profile_col) {
        (FilterPlan::None, _) => {}
        (FilterPlan::Search, Some(col)) => {
            // The index is written in bulk (migration 0009): the profiles noted in
            // `search_pending` may have stale entries, or none yet. Those few are matched on their
            // current handle and text with LIKE instead, in the same read, so the filter sees
            // every change without waiting for (or taking) the write lock. One IN over a UNION ALL
            // of the two disjoint sets, and CROSS JOIN so that the noted profiles drive the second
            // (unanalyzed, SQLite would otherwise scan every handle and probe the notes). The
            // index keeps no positions (migration 0010): MATCH finds the rows holding every
            // trigram of the needle, and `instr` keeps those holding the needle itself (the text
            // is stored lower-cased).
            let lower = needle.to_lowercase();
            args.push(SqlValue::Text(search_trigrams(&lower)));
            let terms = args.len();
            args.push(SqlValue::Text(lower));
            let exact = args.len();
            args.push(SqlValue::Text(like_pattern(needle)));
            let like = args.len();
            clauses.push(format!(
                "{col} IN (SELECT rowid FROM profile_search WHERE profile_search MATCH ${terms} \
                 AND (instr(LOWER(handle), ${exact}) > 0 OR instr(text, ${exact}) > 0) \
                 AND rowid NOT IN (SELECT profile_id FROM search_pending) \
                 UNION ALL SELECT sp.profile_id FROM search_pending sp \
                 CROSS JOIN profiles_raw sp_p ON sp_p.id = sp.profile_id \
                 LEFT JOIN profile_features sp_f ON sp_f.profile_id = sp.profile_id \
                 WHERE LOWER(sp_p.handle) LIKE ${like} ESCAPE '\\' \
                 OR LOWER(sp_f.text) LIKE ${like} ESCAPE '\\')"
            ));
        }
        _ => {
            args.push(SqlValue::Text(like_pattern(needle)));
            let n = args.len();
            let ors: Vec<String> = s
                .text_cols
                .iter()
                .map(|c| format!("LOWER({c}) LIKE ${n} ESCAPE '\\'"))
                .collect();
            clauses.push(format!("({})", ors.join(" OR ")));
        }
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// Counts the rows a query's window is taken from (the same scope and filter, no window).
pub async fn count(db: &Db, q: &BrowseQuery) -> Result<i64, DbError> {
    let s = spec(q.table);
    let mut args = Vec::new();
    // Only a LIKE filter reads the joined columns; the scope clauses and the search index's
    // subquery need nothing but the lean FROM.
    let from = if filter_plan(s, q, db.dialect()) == FilterPlan::Like {
        s.from
    } else {
        s.lean_from
    };
    let sql = format!(
        "SELECT COUNT(*) AS n {from}{}",
        where_clause(s, q, db.dialect(), &mut args)
    );
    let n: i64 = bind_all(sqlx::query(&sql), &args)
        .fetch_one(db.pool())
        .await?
        .try_get("n")?;
    Ok(n)
}

/// Reads the window `q.offset..q.offset+q.limit`. With `total` known, windows past the middle are
/// read backwards from the end (the same cost as near the start).
pub async fn window(db: &Db, q: &BrowseQuery, total: Option<i64>) -> Result<Page, DbError> {
    let s = spec(q.table);
    let offset = q.offset.max(0);
    let limit = q.limit.clamp(0, 10_000);
    let (sort_key, default_desc) = s.default_sort;
    let sort_expr = q
        .sort
        .as_deref()
        .and_then(|k| s.sorts.iter().find(|(key, _)| *key == k))
        .map(|(_, e)| *e)
        .unwrap_or_else(|| {
            s.sorts
                .iter()
                .find(|(k, _)| *k == sort_key)
                .map(|(_, e)| *e)
                .unwrap_or(s.id)
        });
    let desc = if q.sort.is_some() {
        q.desc
    } else {
        default_desc
    };
    let (mut desc_now, mut sql_offset, mut sql_limit, mut reversed) = (desc, offset, limit, false);
    if let Some(total) = total {
        if offset > total / 2 && offset < total {
            let end = (offset + limit).min(total);
            sql_limit = end - offset;
            sql_offset = total - end;
            desc_now = !desc;
            reversed = true;
        }
    }
    let dir = if desc_now { "DESC" } else { "ASC" };
    // NULLs sort differently per dialect: put them last explicitly, but only for nullable
    // columns, so sorting by an indexed NOT NULL column still walks the index.
    let nulls = if NULLABLE_SORTS.contains(&sort_expr) {
        format!(
            "{sort_expr} IS NULL {}, ",
            if reversed { "DESC" } else { "ASC" }
        )
    } else {
        String::new()
    };
    // Accounts' sent_24h subquery takes `now - 24h` as $1.
    let mut args = if q.table == Table::Accounts {
        vec![SqlValue::Int(q.now - 86_400_000)]
    } else {
        Vec::new()
    };
    let wh = where_clause(s, q, db.dialect(), &mut args);
    args.push(SqlValue::Int(sql_limit));
    args.push(SqlValue::Int(sql_offset));
    let n = args.len();
    let order = format!("ORDER BY {nulls}{sort_expr} {dir}, {} {dir}", s.id);
    // Candidates have no score index (migration 0008): sorted by one of their own columns, the
    // window is cut from the narrow candidate rows alone (a top-N sort over the campaign's range)
    // and only its rows are joined to their profiles, instead of joining every candidate first.
    let lean = q.table == Table::Candidates
        && sort_expr.starts_with("cc.")
        && filter_plan(s, q, db.dialect()) != FilterPlan::Like;
    let sql = if lean {
        format!(
            "SELECT {} FROM (SELECT cc.* {}{wh} {order} LIMIT ${} OFFSET ${}) cc{} {order}",
            s.columns,
            s.lean_from,
            n - 1,
            n,
            s.from
                .strip_prefix(s.lean_from)
                .expect("the lean FROM starts the full one"),
        )
    } else {
        format!(
            "SELECT {} {}{wh} {order} LIMIT ${} OFFSET ${}",
            s.columns,
            s.from,
            n - 1,
            n
        )
    };
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(db.pool())
        .await?;
    let mut rows = decode(q.table, &rows)?;
    if reversed {
        rows.reverse();
    }
    Ok(Page { offset, rows })
}

fn decode(table: Table, rows: &[AnyRow]) -> Result<Rows, sqlx::Error> {
    fn all<T>(
        rows: &[AnyRow],
        f: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        rows.iter().map(f).collect()
    }
    Ok(match table {
        Table::Campaigns => Rows::Campaigns(all(rows, |r| {
            Ok(CampaignRow {
                id: CampaignId(r.try_get("id")?),
                name: r.try_get("name")?,
                platform: r.try_get("platform")?,
                status: r.try_get("status")?,
                candidates: r.try_get("candidates")?,
                leads: r.try_get("leads")?,
                approved: r.try_get("approved")?,
                sent: r.try_get("sent")?,
                replied: r.try_get("replied")?,
                created_at: r.try_get("created_at")?,
            })
        })?),
        Table::Candidates => Rows::Candidates(all(rows, |r| {
            Ok(CandidateRow {
                campaign: CampaignId(r.try_get("campaign_id")?),
                profile: ProfileId(r.try_get("profile_id")?),
                handle: r.try_get("handle")?,
                cheap_score: r.try_get("cheap_score")?,
                followers: r.try_get("followers")?,
                language: r.try_get("language")?,
                added_at: r.try_get("added_at")?,
            })
        })?),
        Table::Leads => Rows::Leads(all(rows, |r| {
            Ok(LeadRow {
                id: LeadId(r.try_get("id")?),
                campaign: CampaignId(r.try_get("campaign_id")?),
                campaign_name: r.try_get("campaign_name")?,
                profile: ProfileId(r.try_get("profile_id")?),
                handle: r.try_get("handle")?,
                score: r.try_get("score")?,
                status: r.try_get("status")?,
                followers: r.try_get("followers")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })?),
        Table::Batches => Rows::Batches(all(rows, |r| {
            Ok(BatchRow {
                id: BatchId(r.try_get("id")?),
                campaign: CampaignId(r.try_get("campaign_id")?),
                campaign_name: r.try_get("campaign_name")?,
                status: r.try_get("status")?,
                messages: r.try_get("messages")?,
                created_at: r.try_get("created_at")?,
                approved_at: r.try_get("approved_at")?,
            })
        })?),
        Table::Messages => Rows::Messages(all(rows, message_row)?),
        Table::Jobs => Rows::Jobs(all(rows, |r| {
            Ok(JobRow {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                max_attempts: r.try_get("max_attempts")?,
                progress: r.try_get("progress")?,
                progress_message: r.try_get("progress_message")?,
                error: r.try_get("error")?,
                campaign: r.try_get("campaign_id")?,
                created_at: r.try_get("created_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })?),
        Table::Accounts => Rows::Accounts(all(rows, |r| {
            Ok(AccountRow {
                id: AccountId(r.try_get("id")?),
                platform: r.try_get("platform")?,
                handle: r.try_get("handle")?,
                daily_cap: r.try_get("daily_cap")?,
                hourly_cap: r.try_get("hourly_cap")?,
                min_gap_secs: r.try_get("min_gap_secs")?,
                warmup_days: r.try_get("warmup_days")?,
                timezone: r.try_get("timezone")?,
                paused_until: r.try_get("paused_until")?,
                sent_24h: r.try_get("sent_24h")?,
            })
        })?),
    })
}

fn message_row(r: &AnyRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        id: MessageId(r.try_get("id")?),
        batch: BatchId(r.try_get("batch_id")?),
        lead: LeadId(r.try_get("lead_id")?),
        profile: ProfileId(r.try_get("profile_id")?),
        handle: r.try_get("handle")?,
        account: r.try_get("account")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        not_before: r.try_get("not_before")?,
        sent_at: r.try_get("sent_at")?,
        error: r.try_get("error")?,
        body: r.try_get("body")?,
    })
}

/// A profile's typed features.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    pub followers: i64,
    pub following: i64,
    pub posts_count: i64,
    pub engagement_rate: f64,
    pub posts_per_week: f64,
    pub last_post_at: Option<Millis>,
    pub account_age_days: i64,
    pub language: Option<String>,
    pub is_bot: bool,
    pub has_link: bool,
    pub has_email: bool,
    pub text: String,
    /// Object-store keys (sha256 hex) of the images the LLM saw.
    pub image_keys: Vec<String>,
}

/// An LLM verdict on a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub model: String,
    pub score: i64,
    pub qualified: bool,
    pub reasons: Vec<String>,
    pub red_flags: Vec<String>,
    pub opener: String,
    pub created_at: Millis,
}

/// Everything the console shows about one profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileDetail {
    pub id: ProfileId,
    pub platform: String,
    pub handle: String,
    pub external_id: String,
    pub first_seen: Millis,
    pub last_seen: Millis,
    pub last_changed: Millis,
    pub fetch_error: Option<String>,
    pub features: Option<Features>,
    pub verdict: Option<Verdict>,
    pub lead: Option<LeadRow>,
    /// The newest message to this profile (in the given campaign, when one is given).
    pub message: Option<MessageRow>,
}

/// Reads a JSON list of strings, or a plain text as a one-item list (the LLM module owns the format).
fn string_list(text: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        _ if text.trim().is_empty() => Vec::new(),
        _ => vec![text.to_string()],
    }
}

/// One profile with its features, newest verdict, lead and message; `None` when it does not exist.
pub async fn profile_detail(
    db: &Db,
    id: ProfileId,
    campaign: Option<CampaignId>,
) -> Result<Option<ProfileDetail>, DbError> {
    let Some(p) = sqlx::query(
        "SELECT id, platform, handle, external_id, first_seen, last_seen, last_changed, fetch_error \
         FROM profiles_raw WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let features = sqlx::query(
        "SELECT followers, following, posts_count, engagement_rate, posts_per_week, last_post_at, \
         account_age_days, language, is_bot, has_link, has_email, text, image_keys \
         FROM profile_features WHERE profile_id = $1",
    )
    .bind(id.0)
    .fetch_optional(db.pool())
    .await?
    .map(|r| -> Result<Features, sqlx::Error> {
        Ok(Features {
            followers: r.try_get("followers")?,
            following: r.try_get("following")?,
            posts_count: r.try_get("posts_count")?,
            engagement_rate: r.try_get("engagement_rate")?,
            posts_per_week: r.try_get("posts_per_week")?,
            last_post_at: r.try_get("last_post_at")?,
            account_age_days: r.try_get("account_age_days")?,
            language: r.try_get("language")?,
            is_bot: r.try_get::<i64, _>("is_bot")? != 0,
            has_link: r.try_get::<i64, _>("has_link")? != 0,
            has_email: r.try_get::<i64, _>("has_email")? != 0,
            text: r.try_get("text")?,
            image_keys: string_list(&r.try_get::<String, _>("image_keys")?),
        })
    })
    .transpose()?;
    let c = campaign.map(|c| c.0);
    let verdict = sqlx::query(
        "SELECT model, score, qualified, reasons, red_flags, opener, created_at FROM llm_scores \
         WHERE profile_id = $1 AND ($2 IS NULL OR campaign_id = $2) ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(id.0)
    .bind(c)
    .fetch_optional(db.pool())
    .await?
    .map(|r| -> Result<Verdict, sqlx::Error> {
        Ok(Verdict {
            model: r.try_get("model")?,
            score: r.try_get("score")?,
            qualified: r.try_get::<i64, _>("qualified")? != 0,
            reasons: string_list(&r.try_get::<String, _>("reasons")?),
            red_flags: string_list(&r.try_get::<String, _>("red_flags")?),
            opener: r.try_get("opener")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()?;
    let lead_sql = format!(
        "SELECT {} {} WHERE l.profile_id = $1 AND ($2 IS NULL OR l.campaign_id = $2) ORDER BY l.updated_at DESC, l.id DESC LIMIT 1",
        LEADS.columns, LEADS.from
    );
    let lead = match sqlx::query(&lead_sql)
        .bind(id.0)
        .bind(c)
        .fetch_optional(db.pool())
        .await?
    {
        Some(r) => match decode(Table::Leads, &[r])? {
            Rows::Leads(mut v) => v.pop(),
            _ => None,
        },
        None => None,
    };
    let msg_sql = format!(
        "SELECT {} {} WHERE l.profile_id = $1 AND ($2 IS NULL OR l.campaign_id = $2) ORDER BY m.id DESC LIMIT 1",
        MESSAGES.columns, MESSAGES.from
    );
    let message = sqlx::query(&msg_sql)
        .bind(id.0)
        .bind(c)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(message_row)
        .transpose()?;
    Ok(Some(ProfileDetail {
        id,
        platform: p.try_get("platform")?,
        handle: p.try_get("handle")?,
        external_id: p.try_get("external_id")?,
        first_seen: p.try_get("first_seen")?,
        last_seen: p.try_get("last_seen")?,
        last_changed: p.try_get("last_changed")?,
        fetch_error: p.try_get("fetch_error")?,
        features,
        verdict,
        lead,
        message,
    }))
}

/// A batch with every message in it, in planned send order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchDetail {
    pub batch: BatchRow,
    pub messages: Vec<MessageRow>,
}

/// One batch and all its messages; `None` when it does not exist.
pub async fn batch_detail(db: &Db, id: BatchId) -> Result<Option<BatchDetail>, DbError> {
    let mut q = BrowseQuery::new(Table::Batches);
    q.batch = Some(id);
    q.limit = 1;
    let batch = match window(db, &q, None).await?.rows {
        Rows::Batches(mut v) => v.pop(),
        _ => None,
    };
    let Some(batch) = batch else { return Ok(None) };
    let sql = format!(
        "SELECT {} {} WHERE m.batch_id = $1 ORDER BY m.not_before IS NULL, m.not_before, m.id",
        MESSAGES.columns, MESSAGES.from
    );
    let rows = sqlx::query(&sql).bind(id.0).fetch_all(db.pool()).await?;
    let messages = rows
        .iter()
        .map(message_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(BatchDetail { batch, messages }))
}

/// Messages sent and replies received on one day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DayRate {
    /// Days since the unix epoch.
    pub day: i64,
    pub sent: i64,
    pub replied: i64,
}

/// A campaign's funnel and its reply rate per day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignStats {
    pub campaign: CampaignId,
    pub candidates: i64,
    /// Profiles the LLM judged for this campaign.
    pub shortlisted: i64,
    pub leads: i64,
    pub sent: i64,
    pub replied: i64,
    /// The last `days` days, oldest first, including days with nothing.
    pub per_day: Vec<DayRate>,
}

const DAY_MS: i64 = 86_400_000;

/// The funnel of a campaign and its sends and replies per day over the last `days` days.
pub async fn campaign_stats(
    db: &Db,
    id: CampaignId,
    now: Millis,
    days: u32,
) -> Result<CampaignStats, DbError> {
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1) AS candidates, \
         (SELECT COUNT(*) FROM llm_scores WHERE campaign_id = $1) AS shortlisted, \
         (SELECT COUNT(*) FROM leads WHERE campaign_id = $1) AS leads, \
         (SELECT COUNT(*) FROM messages m JOIN leads l ON l.id = m.lead_id WHERE l.campaign_id = $1 AND m.sent_at IS NOT NULL) AS sent, \
         (SELECT COUNT(DISTINCT e.lead_id) FROM feedback_events e JOIN leads l ON l.id = e.lead_id \
            WHERE l.campaign_id = $1 AND e.kind IN ('replied', 'positive', 'negative')) AS replied",
    )
    .bind(id.0)
    .fetch_one(db.pool())
    .await?;
    let today = now.div_euclid(DAY_MS);
    let first = today - i64::from(days.max(1)) + 1;
    let mut per_day: Vec<DayRate> = (first..=today)
        .map(|day| DayRate {
            day,
            sent: 0,
            replied: 0,
        })
        .collect();
    let sent = sqlx::query(
        "SELECT m.sent_at / 86400000 AS day, COUNT(*) AS n FROM messages m JOIN leads l ON l.id = m.lead_id \
         WHERE l.campaign_id = $1 AND m.sent_at >= $2 GROUP BY m.sent_at / 86400000",
    )
    .bind(id.0)
    .bind(first * DAY_MS)
    .fetch_all(db.pool())
    .await?;
    for row in sent {
        let day: i64 = row.try_get("day")?;
        if let Some(d) = per_day.get_mut((day - first) as usize) {
            d.sent = row.try_get("n")?;
        }
    }
    let replied = sqlx::query(
        "SELECT e.occurred_at / 86400000 AS day, COUNT(DISTINCT e.lead_id) AS n FROM feedback_events e \
         JOIN leads l ON l.id = e.lead_id WHERE l.campaign_id = $1 AND e.kind IN ('replied', 'positive', 'negative') \
         AND e.occurred_at >= $2 GROUP BY e.occurred_at / 86400000",
    )
    .bind(id.0)
    .bind(first * DAY_MS)
    .fetch_all(db.pool())
    .await?;
    for row in replied {
        let day: i64 = row.try_get("day")?;
        if let Some(d) = per_day.get_mut((day - first) as usize) {
            d.replied = row.try_get("n")?;
        }
    }
    Ok(CampaignStats {
        campaign: id,
        candidates: r.try_get("candidates")?,
        shortlisted: r.try_get("shortlisted")?,
        leads: r.try_get("leads")?,
        sent: r.try_get("sent")?,
        replied: r.try_get("replied")?,
        per_day,
    })
}

/// Jobs finished in each of the last `minutes` minutes, oldest first.
pub async fn jobs_per_minute(db: &Db, now: Millis, minutes: u32) -> Result<Vec<u64>, DbError> {
    let this = now.div_euclid(60_000);
    let first = this - i64::from(minutes.max(1)) + 1;
    let rows = sqlx::query(
        "SELECT finished_at / 60000 AS minute, COUNT(*) AS n FROM jobs WHERE finished_at >= $1 \
         GROUP BY finished_at / 60000",
    )
    .bind(first * 60_000)
    .fetch_all(db.pool())
    .await?;
    let mut out = vec![0u64; (this - first + 1) as usize];
    for row in rows {
        let minute: i64 = row.try_get("minute")?;
        let n: i64 = row.try_get("n")?;
        if let Some(slot) = out.get_mut((minute - first) as usize) {
            *slot = n.max(0) as u64;
        }
    }
    Ok(out)
}

/// Sets the status of the given leads, only where the lead is still an operator decision
/// (new, approved or rejected): a lead already queued or sent is never changed from here.
/// Returns how many leads changed.
pub async fn set_lead_status(
    db: &Db,
    ids: &[LeadId],
    status: LeadStatus,
    now: Millis,
) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut changed = 0;
    // Chunks keep the statement under every dialect's bound-parameter limit.
    for chunk in ids.chunks(500) {
        let list = (0..chunk.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE leads SET status = $1, updated_at = $2 WHERE status IN ('new', 'approved', 'rejected') \
             AND status <> $1 AND id IN ({list})"
        );
        let mut q = sqlx::query(&sql).bind(status.as_str()).bind(now);
        for id in chunk {
            q = q.bind(id.0);
        }
        changed += q.execute(db.writer()).await?.rows_affected();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_trigrams_quote_each_distinct_trigram() {
        assert_eq!(search_trigrams("vegan"), r#""veg" AND "ega" AND "gan""#);
        assert_eq!(search_trigrams("aaaa"), r#""aaa""#);
        assert_eq!(search_trigrams(r#"a"b"#), r#""a""b""#);
        assert_eq!(search_trigrams("é o"), r#""é o""#);
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn every_default_sort_is_a_known_key() {
        for t in [
            Table::Campaigns,
            Table::Candidates,
            Table::Leads,
            Table::Batches,
            Table::Messages,
            Table::Jobs,
            Table::Accounts,
        ] {
            assert!(sort_keys(t).contains(&default_sort(t).0), "{t:?}");
        }
    }
}
