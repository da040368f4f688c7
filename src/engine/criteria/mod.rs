//! Campaign criteria: the campaign file model, the filter language, the SQL compiler and criteria_hash.
//!
//! A campaign file is parsed and validated by [`parse_campaign`] into a [`CampaignSpec`]. Its
//! filters (structured ones and the `where` expression) become one [`Expr`] ([`FilterSpec::to_expr`]),
//! which [`compile`] turns into a parameterized SQL predicate over `profile_features` and [`eval`]
//! decides in memory with the same meaning. [`criteria_hash`] identifies the criteria a verdict
//! was made under.

pub mod campaign;
pub mod compile;
pub mod eval;
pub mod hash;
pub mod lang;
pub mod spec;

pub use campaign::{parse_campaign, CampaignError, CampaignErrors, ISO_639_1};
pub use compile::{clauses, compile, compile_filter, CompiledPredicate, Param, DEFAULT_ALIAS};
pub use eval::{eval, eval3, FeatureRow};
pub use hash::{canonical_criteria, criteria_hash};
pub use lang::{parse_expr, CmpOp, Expr, Field, FieldKind, LangError, Literal};
pub use spec::{
    CampaignSpec, DiscoverySpec, FilterSpec, FloatRange, IntRange, OutreachSpec, QualifySpec,
    WhereClause,
};
