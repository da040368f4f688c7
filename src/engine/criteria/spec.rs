//! The campaign model: what a campaign file says once parsed and validated. Stored as JSON in
//! `campaigns.spec`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lang::{parse_expr, CmpOp, Expr, Field, Literal, DAY_MS};

/// A validated campaign file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    /// Human-readable name.
    pub name: String,
    /// The configured platform (a `[[platforms]]` name) the campaign runs on.
    pub platform: String,
    /// Who the campaign is looking for, in plain words, for the LLM judge.
    pub brief: String,
    /// Which profiles become candidates (compiled to SQL).
    #[serde(default)]
    pub filter: FilterSpec,
    /// Where to look for profiles.
    #[serde(default)]
    pub discovery: DiscoverySpec,
    /// How candidates are shortlisted and judged.
    #[serde(default)]
    pub qualify: QualifySpec,
    /// How qualified leads are messaged; a campaign without it only finds and qualifies.
    #[serde(default)]
    pub outreach: Option<OutreachSpec>,
}

/// An inclusive integer range; either bound may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IntRange {
    /// Lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

/// An inclusive range of doubles; either bound may be open.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct FloatRange {
    /// Lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The structured filters plus an optional `where` expression; all of them must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FilterSpec {
    /// Follower count range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<IntRange>,
    /// Engagement rate range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement_rate: Option<FloatRange>,
    /// Accepted languages (ISO 639-1, lower-case); empty means any (including unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// At least one of these must appear in the text (case-insensitive); empty means no constraint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords_any: Vec<String>,
    /// None of these may appear in the text (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords_none: Vec<String>,
    /// The newest post must be at most this many days old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_within_days: Option<u32>,
    /// Drop profiles that look automated.
    #[serde(default)]
    pub exclude_bots: bool,
    /// A filter-language expression.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<WhereClause>,
}

/// A `where` expression: the text as written and its parsed form. Serialized as the text and
/// re-parsed on deserialization, so a stored spec can never hold an expression that does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct WhereClause {
    source: String,
    expr: Expr,
}

impl WhereClause {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, super::lang::LangError> {
        Ok(Self {
            source: source.to_string(),
            expr: parse_expr(source)?,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl Serialize for WhereClause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for WhereClause {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        WhereClause::parse(&source).map_err(serde::de::Error::custom)
    }
}

/// Where discovery looks for profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverySpec {
    /// Hashtags whose posts' authors are crawled.
    #[serde(default)]
    pub hashtags: Vec<String>,
    /// Account search queries.
    #[serde(default)]
    pub search: Vec<String>,
    /// Handles whose followers are crawled.
    #[serde(default)]
    pub followers_of: Vec<String>,
    /// Also crawl the platform's profile directory.
    #[serde(default)]
    pub directory: bool,
    /// Stop seeding after this many profiles per discovery run.
    #[serde(default = "default_max_profiles")]
    pub max_profiles: u64,
}

impl Default for DiscoverySpec {
    fn default() -> Self {
        Self {
            hashtags: Vec::new(),
            search: Vec::new(),
            followers_of: Vec::new(),
            directory: false,
            max_profiles: default_max_profiles(),
        }
    }
}

/// How candidates are shortlisted and judged by the LLM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifySpec {
    /// How many candidates (by cheap score × recency) each qualify run sends to the LLM.
    #[serde(default = "default_shortlist_k")]
    pub shortlist_k: u32,
    /// Minimum LLM score (0–100) for a lead.
    #[serde(default = "default_threshold")]
    pub threshold: u8,
    /// Images per profile shown to the LLM (0–3).
    #[serde(default = "default_max_images")]
    pub max_images: u8,
    /// LLM calls this campaign may make per day.
    #[serde(default = "default_daily_llm_calls")]
    pub daily_llm_calls: u32,
    /// Overrides the configured LLM model for this campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Default for QualifySpec {
    fn default() -> Self {
        Self {
            shortlist_k: default_shortlist_k(),
            threshold: default_threshold(),
            max_images: default_max_images(),
            daily_llm_calls: default_daily_llm_calls(),
            model: None,
        }
    }
}

impl QualifySpec {
    /// The model this campaign uses: its override, else the configured one. Pass this to
    /// [`super::criteria_hash`].
    pub fn effective_model<'a>(&'a self, configured: &'a str) -> &'a str {
        self.model.as_deref().unwrap_or(configured)
    }
}

/// How leads are messaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutreachSpec {
    /// The message template (`{{ display_name }}`, `{{ opener }}`, …).
    pub template: String,
    /// Sender account handles, in rotation.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Do not message someone messaged (by any campaign) within this many days.
    #[serde(default = "default_cooldown_days")]
    pub cooldown_days: u32,
}

/// Default `discovery.max_profiles`.
pub fn default_max_profiles() -> u64 {
    1000
}
/// Default `qualify.shortlist_k`.
pub fn default_shortlist_k() -> u32 {
    200
}
/// Default `qualify.threshold`.
pub fn default_threshold() -> u8 {
    70
}
/// Default `qualify.max_images`.
pub fn default_max_images() -> u8 {
    3
}
/// Default `qualify.daily_llm_calls`.
pub fn default_daily_llm_calls() -> u32 {
    500
}
/// Default `outreach.cooldown_days`.
pub fn default_cooldown_days() -> u32 {
    90
}

/// Sorted, de-duplicated copy of `items` after `f`.
pub(crate) fn normalized(items: &[String], f: impl Fn(&str) -> String) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| f(s)).collect();
    v.sort();
    v.dedup();
    v
}

impl FilterSpec {
    /// Each active filter as a labelled expression, in a fixed order, `where` last.
    /// Lists are normalized (sorted, de-duplicated, keywords lower-cased).
    pub fn clause_exprs(&self) -> Vec<(&'static str, Expr)> {
        let mut out = Vec::new();
        if let Some(r) = self.followers {
            let mut parts = Vec::new();
            if let Some(min) = r.min {
                parts.push(Expr::Cmp {
                    field: Field::Followers,
                    op: CmpOp::Ge,
                    value: Literal::Int(min),
                });
            }
            if let Some(max) = r.max {
                parts.push(Expr::Cmp {
                    field: Field::Followers,
                    op: CmpOp::Le,
                    value: Literal::Int(max),
                });
            }
            if !parts.is_empty() {
                out.push(("filter.followers", Expr::and_all(parts)));
            }
        }
        if let Some(r) = self.engagement_rate {
            let mut parts = Vec::new();
            if let Some(min) = r.min {
                parts.push(Expr::Cmp {
                    field: Field::EngagementRate,
                    op: CmpOp::Ge,
                    value: Literal::number(min),
                });
            }
            if let Some(max) = r.max {
                parts.push(Expr::Cmp {
                    field: Field::EngagementRate,
                    op: CmpOp::Le,
                    value: Literal::number(max),
                });
            }
            if !parts.is_empty() {
                out.push(("filter.engagement_rate", Expr::and_all(parts)));
            }
        }
        let languages = normalized(&self.languages, str::to_lowercase);
        if !languages.is_empty() {
            out.push((
                "filter.languages",
                Expr::In {
                    field: Field::Language,
                    values: languages.into_iter().map(Literal::Str).collect(),
                    negated: false,
                },
            ));
        }
        let any = normalized(&self.keywords_any, str::to_lowercase);
        if !any.is_empty() {
            out.push((
                "filter.keywords_any",
                Expr::or_any(
                    any.into_iter()
                        .map(|k| Expr::Contains {
                            field: Field::Text,
                            needle: k,
                        })
                        .collect(),
                ),
            ));
        }
        let none = normalized(&self.keywords_none, str::to_lowercase);
        if !none.is_empty() {
            out.push((
                "filter.keywords_none",
                Expr::and_all(
                    none.into_iter()
                        .map(|k| {
                            Expr::Not(Box::new(Expr::Contains {
                                field: Field::Text,
                                needle: k,
                            }))
                        })
                        .collect(),
                ),
            ));
        }
        if let Some(days) = self.active_within_days {
            out.push((
                "filter.active_within_days",
                Expr::Age {
                    field: Field::LastPostAt,
                    op: CmpOp::Le,
                    ms: i64::from(days) * DAY_MS,
                },
            ));
        }
        if self.exclude_bots {
            out.push((
                "filter.exclude_bots",
                Expr::Not(Box::new(Expr::Flag(Field::IsBot))),
            ));
        }
        if let Some(w) = &self.where_ {
            out.push(("filter.where", w.expr().clone()));
        }
        out
    }

    /// All filters as one expression (`true` when there are none).
    pub fn to_expr(&self) -> Expr {
        Expr::and_all(self.clause_exprs().into_iter().map(|(_, e)| e).collect())
    }
}
