//! The SQL compiler: turns a filter expression (or a whole campaign's filters) into one
//! parameterized predicate over `profile_features` that SQLite and PostgreSQL both accept.
//!
//! Column names come from the closed [`Field`] enum and every constant travels as a bound
//! parameter, so no user text ever reaches the SQL. Times relative to "now" stay symbolic
//! ([`Param::NowMinusMs`]) so a stored predicate remains valid; they are resolved when the query
//! runs ([`CompiledPredicate::bind_params`]). NULL handling is SQL's three-valued logic, which the
//! in-memory evaluator ([`super::eval`]) mirrors.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::db::SqlValue;

use super::lang::{CmpOp, Expr, Field, Literal};
use super::spec::{CampaignSpec, FilterSpec};

/// The alias [`clauses`] uses for `profile_features`.
pub const DEFAULT_ALIAS: &str = "pf";

/// A bound value of a compiled predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// A constant.
    Value(SqlValue),
    /// `now - ms` in unix ms, computed when the query runs.
    NowMinusMs(i64),
}

impl Param {
    /// The value to bind at time `now_ms`.
    pub fn resolve(&self, now_ms: i64) -> SqlValue {
        match self {
            Param::Value(v) => v.clone(),
            Param::NowMinusMs(ms) => SqlValue::Int(now_ms.saturating_sub(*ms)),
        }
    }
}

/// A SQL boolean expression with `$N` placeholders numbered from `first_param`, and the values
/// for them in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledPredicate {
    /// The predicate, e.g. `(pf.followers >= $1 AND LOWER(pf.text) LIKE $2 ESCAPE '\')`.
    pub sql: String,
    /// One entry per placeholder, `params[k]` for `$(first_param + k)`.
    pub params: Vec<Param>,
    /// The number of the first placeholder.
    pub first_param: usize,
}

impl CompiledPredicate {
    /// The values to bind, in placeholder order, with times resolved against `now_ms`.
    pub fn bind_params(&self, now_ms: i64) -> Vec<SqlValue> {
        self.params.iter().map(|p| p.resolve(now_ms)).collect()
    }

    /// The placeholder number after the last one this predicate uses.
    pub fn next_param(&self) -> usize {
        self.first_param + self.params.len()
    }

    /// The same predicate with its placeholders renumbered to start at `first_param`.
    pub fn renumbered(&self, first_param: usize) -> CompiledPredicate {
        // Safe to rewrite textually: the SQL holds no user text, only column names, keywords,
        // placeholders and the ESCAPE literal.
        let mut sql = String::with_capacity(self.sql.len() + 8);
        let mut chars = self.sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                let _ = write!(sql, "${}", n - self.first_param + first_param);
            } else {
                sql.push(c);
            }
        }
        CompiledPredicate {
            sql,
            params: self.params.clone(),
            first_param,
        }
    }
}

/// Compiles `expr` over `profile_features` seen as `alias` (`""` for the bare table), numbering
/// placeholders from `first_param` (≥ 1).
///
/// `alias` is chosen by code, never by a user: it must be a plain SQL identifier.
pub fn compile(expr: &Expr, alias: &str, first_param: usize) -> CompiledPredicate {
    assert!(
        alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !alias.starts_with(|c: char| c.is_ascii_digit()),
        "compile: the table alias must be a plain identifier chosen by code, got {alias:?}"
    );
    assert!(
        first_param >= 1,
        "compile: placeholders are numbered from 1"
    );
    let mut c = Compiler {
        alias,
        first_param,
        sql: String::new(),
        params: Vec::new(),
    };
    c.expr(expr);
    CompiledPredicate {
        sql: c.sql,
        params: c.params,
        first_param,
    }
}

/// Compiles all of a campaign's filters (structured and `where`) into one predicate.
pub fn compile_filter(filter: &FilterSpec, alias: &str, first_param: usize) -> CompiledPredicate {
    compile(&filter.to_expr(), alias, first_param)
}

/// Each active filter of `spec` compiled on its own over `profile_features pf` from `$1`, labelled
/// with its canonical filter-language text, for `omni campaign explain`.
pub fn clauses(spec: &CampaignSpec) -> Vec<(String, CompiledPredicate)> {
    spec.filter
        .clause_exprs()
        .into_iter()
        .map(|(path, e)| (format!("{path}: {e}"), compile(&e, DEFAULT_ALIAS, 1)))
        .collect()
}

struct Compiler<'a> {
    alias: &'a str,
    first_param: usize,
    sql: String,
    params: Vec<Param>,
}

impl Compiler<'_> {
    fn column(&mut self, field: Field) {
        if !self.alias.is_empty() {
            self.sql.push_str(self.alias);
            self.sql.push('.');
        }
        self.sql.push_str(field.name());
    }

    fn param(&mut self, p: Param) {
        let n = self.first_param + self.params.len();
        self.params.push(p);
        let _ = write!(self.sql, "${n}");
    }

    fn literal(&mut self, lit: &Literal) {
        let v = match lit {
            Literal::Int(v) => SqlValue::Int(*v),
            Literal::Float(v) => SqlValue::Float(*v),
            Literal::Str(s) => SqlValue::Text(s.clone()),
        };
        self.param(Param::Value(v));
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Const(true) => self.sql.push_str("(1 = 1)"),
            Expr::Const(false) => self.sql.push_str("(1 = 0)"),
            Expr::Flag(field) => {
                self.column(*field);
                self.sql.push_str(" <> 0");
            }
            Expr::Cmp { field, op, value } => {
                self.column(*field);
                let _ = write!(self.sql, " {} ", sql_op(*op));
                self.literal(value);
            }
            Expr::In {
                field,
                values,
                negated,
            } => {
                self.column(*field);
                self.sql
                    .push_str(if *negated { " NOT IN (" } else { " IN (" });
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(", ");
                    }
                    self.literal(v);
                }
                self.sql.push(')');
            }
            Expr::Contains { field, needle } => {
                self.sql.push_str("LOWER(");
                self.column(*field);
                self.sql.push_str(") LIKE ");
                self.param(Param::Value(SqlValue::Text(like_pattern(needle))));
                self.sql.push_str(" ESCAPE '\\'");
            }
            Expr::Age { field, op, ms } => {
                // (now - col) op ms  ⇔  col op' (now - ms), which keeps the column bare.
                self.column(*field);
                let _ = write!(self.sql, " {} ", sql_op(op.flipped()));
                self.param(Param::NowMinusMs(*ms));
            }
            Expr::Not(inner) => {
                self.sql.push_str("NOT (");
                self.expr(inner);
                self.sql.push(')');
            }
            Expr::And(parts) | Expr::Or(parts) => {
                let sep = if matches!(e, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                // Cheapest operands first: SQLite evaluates AND/OR left to right and stops at
                // the first operand that decides, so a number comparison that rejects a row spares
                // the text scans after it (PostgreSQL orders by its own cost estimates; the order
                // costs it nothing). Reordering never changes the result: the operands have no
                // side effects and three-valued AND/OR are commutative. Campaigns keep the SQL
                // stored when they were last created or edited.
                let mut parts: Vec<&Expr> = parts.iter().collect();
                parts.sort_by_key(|p| cost(p));
                self.sql.push('(');
                for (i, p) in parts.into_iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(sep);
                    }
                    self.expr(p);
                }
                self.sql.push(')');
            }
        }
    }
}

/// A rough per-row cost of evaluating `e`, for ordering the operands of AND/OR: column
/// comparisons are cheap, IN lists a little dearer, a substring search over a text column (which
/// reads the whole text) dearest.
fn cost(e: &Expr) -> u32 {
    match e {
        Expr::Const(_) => 0,
        Expr::Flag(_) | Expr::Cmp { .. } | Expr::Age { .. } => 1,
        Expr::In { values, .. } => 2 + values.len() as u32 / 8,
        Expr::Contains { .. } => 20,
        Expr::Not(inner) => cost(inner),
        Expr::And(parts) | Expr::Or(parts) => parts.iter().map(cost).sum(),
    }
}

fn sql_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

/// `%needle%` with LIKE's wildcards and the escape character escaped, lower-cased.
pub fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::criteria::lang::{parse_expr, DAY_MS};

    #[test]
    fn compiles_to_bound_placeholders() {
        let e = parse_expr(r#"followers >= 10k and language in ("en", "de") and text ~ "50%_off\\" and not is_bot"#)
            .unwrap();
        let c = compile(&e, "pf", 3);
        // Operands in cost order (comparisons, IN lists, then the text search), stable otherwise.
        assert_eq!(
            c.sql,
            "(pf.followers >= $3 AND NOT (pf.is_bot <> 0) AND pf.language IN ($4, $5) AND LOWER(pf.text) LIKE $6 ESCAPE '\\')"
        );
        assert_eq!(
            c.bind_params(0),
            vec![
                SqlValue::Int(10_000),
                SqlValue::Text("en".into()),
                SqlValue::Text("de".into()),
                SqlValue::Text("%50\\%\\_off\\\\%".into()),
            ]
        );
        assert_eq!(c.next_param(), 7);
    }

    #[test]
    fn durations_stay_symbolic_until_bound() {
        let c = compile(&parse_expr("last_post_at within 30d").unwrap(), "", 1);
        assert_eq!(c.sql, "last_post_at >= $1");
        assert_eq!(c.params, vec![Param::NowMinusMs(30 * DAY_MS)]);
        assert_eq!(
            c.bind_params(100 * DAY_MS),
            vec![SqlValue::Int(70 * DAY_MS)]
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<CompiledPredicate>(&json).unwrap(), c);
    }

    #[test]
    fn renumbering_shifts_every_placeholder() {
        let c = compile(
            &parse_expr("followers in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)").unwrap(),
            "pf",
            1,
        );
        let r = c.renumbered(5);
        assert!(r.sql.ends_with("$14, $15)"), "{}", r.sql);
        assert_eq!(r.renumbered(1), c);
    }
}
