//! The in-memory evaluator: decides a filter expression for one `profile_features` row exactly as
//! the compiled SQL does, including how unknown (NULL) values behave.
//!
//! NULL semantics (shared with [`super::compile`]): a condition on an unknown `language` or
//! `last_post_at` is *unknown*, and `not unknown` is still unknown, `unknown and false` is false,
//! `unknown or true` is true (SQL's three-valued logic). A row matches only when the whole
//! expression is true, so an unknown value never matches a condition on it, negated or not.

use std::cmp::Ordering;

use super::lang::{Expr, Field, Literal};

/// One row of `profile_features` (the columns the filter language can read).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureRow {
    /// Follower count.
    pub followers: i64,
    /// Accounts followed.
    pub following: i64,
    /// Number of posts.
    pub posts_count: i64,
    /// Engagement rate.
    pub engagement_rate: f64,
    /// Average likes.
    pub avg_likes: f64,
    /// Average comments.
    pub avg_comments: f64,
    /// Posts per week.
    pub posts_per_week: f64,
    /// Newest post, unix ms; unknown when the profile has no posts.
    pub last_post_at: Option<i64>,
    /// Account age in days.
    pub account_age_days: i64,
    /// Detected language, when known.
    pub language: Option<String>,
    /// Looks automated.
    pub is_bot: bool,
    /// Has a link.
    pub has_link: bool,
    /// Shows an e-mail address.
    pub has_email: bool,
    /// Lower-cased bio and captions.
    pub text: String,
}

/// A column's value in a row.
enum Value<'a> {
    Int(i64),
    Float(f64),
    Text(&'a str),
    Flag(bool),
    Null,
}

impl FeatureRow {
    fn value(&self, field: Field) -> Value<'_> {
        match field {
            Field::Followers => Value::Int(self.followers),
            Field::Following => Value::Int(self.following),
            Field::PostsCount => Value::Int(self.posts_count),
            Field::EngagementRate => Value::Float(self.engagement_rate),
            Field::AvgLikes => Value::Float(self.avg_likes),
            Field::AvgComments => Value::Float(self.avg_comments),
            Field::PostsPerWeek => Value::Float(self.posts_per_week),
            Field::LastPostAt => self.last_post_at.map_or(Value::Null, Value::Int),
            Field::AccountAgeDays => Value::Int(self.account_age_days),
            Field::Language => self.language.as_deref().map_or(Value::Null, Value::Text),
            Field::IsBot => Value::Flag(self.is_bot),
            Field::HasLink => Value::Flag(self.has_link),
            Field::HasEmail => Value::Flag(self.has_email),
            Field::Text => Value::Text(&self.text),
        }
    }
}

/// Whether `row` matches `expr` at time `now_ms`.
pub fn eval(expr: &Expr, row: &FeatureRow, now_ms: i64) -> bool {
    eval3(expr, row, now_ms) == Some(true)
}

/// Three-valued evaluation: `None` is SQL's UNKNOWN.
pub fn eval3(expr: &Expr, row: &FeatureRow, now_ms: i64) -> Option<bool> {
    match expr {
        Expr::Const(b) => Some(*b),
        Expr::Flag(field) => match row.value(*field) {
            Value::Flag(b) => Some(b),
            Value::Int(v) => Some(v != 0),
            _ => None,
        },
        Expr::Cmp { field, op, value } => {
            compare(&row.value(*field), value).map(|ordering| op.holds(ordering))
        }
        Expr::In {
            field,
            values,
            negated,
        } => {
            let column = row.value(*field);
            if matches!(column, Value::Null) {
                return None;
            }
            let found = values
                .iter()
                .any(|v| compare(&column, v) == Some(Ordering::Equal));
            Some(found != *negated)
        }
        Expr::Contains { field, needle } => match row.value(*field) {
            // SQL's LOWER() folds ASCII on SQLite; the column is stored lower-cased anyway.
            Value::Text(t) => Some(t.to_ascii_lowercase().contains(needle.as_str())),
            _ => None,
        },
        Expr::Age { field, op, ms } => match row.value(*field) {
            Value::Int(ts) => {
                // (now - ts) op ms  ⇔  ts op' (now - ms): the same form the SQL uses, so both
                // round identically at the boundary.
                let threshold = now_ms.saturating_sub(*ms);
                Some(op.flipped().holds(ts.cmp(&threshold)))
            }
            _ => None,
        },
        Expr::Not(inner) => eval3(inner, row, now_ms).map(|b| !b),
        Expr::And(parts) => {
            let mut result = Some(true);
            for p in parts {
                match eval3(p, row, now_ms) {
                    Some(false) => return Some(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Expr::Or(parts) => {
            let mut result = Some(false);
            for p in parts {
                match eval3(p, row, now_ms) {
                    Some(true) => return Some(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
    }
}

/// Orders a column value against a literal like SQL does; `None` for NULL or mismatched kinds.
fn compare(column: &Value<'_>, lit: &Literal) -> Option<Ordering> {
    match (column, lit) {
        (Value::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (Value::Int(a), Literal::Float(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Literal::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Float(a), Literal::Float(b)) => a.partial_cmp(b),
        (Value::Text(a), Literal::Str(b)) => Some((*a).cmp(b.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::criteria::lang::{parse_expr, DAY_MS};

    const NOW: i64 = 1_700_000_000_000;

    fn row() -> FeatureRow {
        FeatureRow {
            followers: 12_000,
            engagement_rate: 0.03,
            last_post_at: Some(NOW - 3 * DAY_MS),
            language: Some("en".into()),
            text: "vegan recipes from my kitchen".into(),
            ..FeatureRow::default()
        }
    }

    fn check(src: &str, r: &FeatureRow) -> bool {
        eval(&parse_expr(src).unwrap(), r, NOW)
    }

    #[test]
    fn evaluates_comparisons_and_text() {
        let r = row();
        assert!(check(
            "followers >= 10k and text ~ \"VEGAN\" and not is_bot",
            &r
        ));
        assert!(!check("followers > 12000", &r));
        assert!(check("engagement_rate > 0.02 and engagement_rate < 1", &r));
        assert!(check("last_post_at within 3d", &r));
        assert!(!check("last_post_at within 2d", &r));
        assert!(check("last_post_at > 2d", &r));
    }

    #[test]
    fn unknown_values_never_match_even_negated() {
        let mut r = row();
        r.language = None;
        r.last_post_at = None;
        assert!(!check("language = \"en\"", &r));
        assert!(!check("language != \"en\"", &r));
        assert!(!check("not language = \"en\"", &r));
        assert!(!check("language not in (\"de\")", &r));
        assert!(!check("not last_post_at within 30d", &r));
        // Unknown or true is true; unknown and false negated is true.
        assert!(check("language = \"en\" or followers > 1", &r));
        assert!(check("not (language = \"en\" and followers < 1)", &r));
    }
}
