//! The filter language: its syntax tree, a `winnow` parser with column-precise errors and
//! type checking, and the canonical printer used by `criteria_hash` and `omni campaign explain`.
//!
//! ```text
//! followers >= 10k and language in ("en", "de") and text ~ "vegan" and not is_bot
//! last_post_at within 30d or (posts_per_week > 2.5 and has_link)
//! ```
//!
//! Fields are a closed set ([`Field`]): the parser never lets the user's text name a column.

use std::fmt;

use winnow::combinator::alt;
use winnow::error::{ErrMode, ParserError};
use winnow::stream::{LocatingSlice, Location, Stream};
use winnow::token::take_while;
use winnow::Parser;

/// Milliseconds in an hour, a day and a week (the duration units of the language).
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Milliseconds in a week.
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// The longest duration accepted (100 years), so `now - duration` can never overflow.
const MAX_DURATION_MS: i64 = 100 * 366 * DAY_MS;
/// How deeply parentheses and `not` may nest before the parser refuses (keeps the stack bounded).
const MAX_DEPTH: usize = 64;

/// A column of `profile_features` the language may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Follower count.
    Followers,
    /// Accounts followed.
    Following,
    /// Number of posts.
    PostsCount,
    /// Average (likes + comments) / followers over recent posts.
    EngagementRate,
    /// Average likes per recent post.
    AvgLikes,
    /// Average comments per recent post.
    AvgComments,
    /// Posting frequency.
    PostsPerWeek,
    /// Time of the newest post (unix ms), may be unknown.
    LastPostAt,
    /// Age of the account in days.
    AccountAgeDays,
    /// Detected language (ISO 639-1), may be unknown.
    Language,
    /// Looks automated.
    IsBot,
    /// Has a link in the bio.
    HasLink,
    /// Shows an e-mail address.
    HasEmail,
    /// Lower-cased bio and recent captions.
    Text,
}

/// What kind of values a [`Field`] holds, which decides the operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A 64-bit integer.
    Int,
    /// A double.
    Float,
    /// A unix-ms timestamp, compared through durations.
    Timestamp,
    /// Text.
    Text,
    /// A 0/1 flag.
    Flag,
}

impl Field {
    /// Every field, in column order.
    pub const ALL: [Field; 14] = [
        Field::Followers,
        Field::Following,
        Field::PostsCount,
        Field::EngagementRate,
        Field::AvgLikes,
        Field::AvgComments,
        Field::PostsPerWeek,
        Field::LastPostAt,
        Field::AccountAgeDays,
        Field::Language,
        Field::IsBot,
        Field::HasLink,
        Field::HasEmail,
        Field::Text,
    ];

    /// The field's name in the language, which is also its `profile_features` column.
    pub fn name(self) -> &'static str {
        match self {
            Field::Followers => "followers",
            Field::Following => "following",
            Field::PostsCount => "posts_count",
            Field::EngagementRate => "engagement_rate",
            Field::AvgLikes => "avg_likes",
            Field::AvgComments => "avg_comments",
            Field::PostsPerWeek => "posts_per_week",
            Field::LastPostAt => "last_post_at",
            Field::AccountAgeDays => "account_age_days",
            Field::Language => "language",
            Field::IsBot => "is_bot",
            Field::HasLink => "has_link",
            Field::HasEmail => "has_email",
            Field::Text => "text",
        }
    }

    /// The field named `name`, if any.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The kind of values the field holds.
    pub fn kind(self) -> FieldKind {
        match self {
            Field::Followers | Field::Following | Field::PostsCount | Field::AccountAgeDays => {
                FieldKind::Int
            }
            Field::EngagementRate | Field::AvgLikes | Field::AvgComments | Field::PostsPerWeek => {
                FieldKind::Float
            }
            Field::LastPostAt => FieldKind::Timestamp,
            Field::Language | Field::Text => FieldKind::Text,
            Field::IsBot | Field::HasLink | Field::HasEmail => FieldKind::Flag,
        }
    }

    /// Whether the column may be NULL (an unknown value never matches any condition).
    pub fn nullable(self) -> bool {
        matches!(self, Field::LastPostAt | Field::Language)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as the language writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether `ordering` (left compared with right) satisfies the operator.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
            CmpOp::Lt => ordering == Less,
            CmpOp::Le => ordering != Greater,
            CmpOp::Gt => ordering == Greater,
            CmpOp::Ge => ordering != Less,
        }
    }

    /// The operator with its operands swapped (`a < b` ⇔ `b > a`).
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::Ne => CmpOp::Ne,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }
}

/// A constant in a condition. Integral numbers are always [`Literal::Int`], so `10k`, `10000` and
/// `10000.0` are the same literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integral number.
    Int(i64),
    /// A non-integral (or out of 64-bit range) number; always finite.
    Float(f64),
    /// A string.
    Str(String),
}

impl Literal {
    /// The literal for the number `v`, normalized to `Int` when it is integral and in range.
    pub fn number(v: f64) -> Literal {
        // 2^63 bounds: integral doubles inside are exact as i64.
        if v.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v) {
            Literal::Int(v as i64)
        } else {
            Literal::Float(v)
        }
    }
}

/// A parsed, type-checked filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Always true / always false (an empty filter is `Const(true)`).
    Const(bool),
    /// A bare 0/1 column: `is_bot`.
    Flag(Field),
    /// `field op literal` on a number or text field.
    Cmp {
        /// The column.
        field: Field,
        /// The operator.
        op: CmpOp,
        /// The constant.
        value: Literal,
    },
    /// `field in (…)` / `field not in (…)`.
    In {
        /// The column.
        field: Field,
        /// The constants (at least one).
        values: Vec<Literal>,
        /// `not in`.
        negated: bool,
    },
    /// `field ~ "needle"`: case-insensitive contains; the needle is stored lower-cased.
    Contains {
        /// The text column.
        field: Field,
        /// The lower-cased needle.
        needle: String,
    },
    /// `last_post_at op 30d`: compares the time since the timestamp with a duration;
    /// `within 30d` is `<= 30d`.
    Age {
        /// The timestamp column.
        field: Field,
        /// The operator applied to (now - field) and the duration.
        op: CmpOp,
        /// The duration in ms.
        ms: i64,
    },
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction of two or more.
    And(Vec<Expr>),
    /// Disjunction of two or more.
    Or(Vec<Expr>),
}

impl Expr {
    /// The conjunction of `parts`, flattened; `Const(true)` when empty.
    pub fn and_all(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::And(inner) => flat.extend(inner),
                Expr::Const(true) => {}
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Expr::Const(true),
            1 => flat.pop().unwrap_or(Expr::Const(true)),
            _ => Expr::And(flat),
        }
    }

    /// The disjunction of `parts`, flattened; `Const(false)` when empty.
    pub fn or_any(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::Or(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Expr::Const(false),
            1 => flat.pop().unwrap_or(Expr::Const(false)),
            _ => Expr::Or(flat),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 0,
            Expr::And(_) => 1,
            Expr::Not(_) => 2,
            _ => 3,
        }
    }

    fn fmt_child(&self, child: &Expr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if child.precedence() <= self.precedence() && child.precedence() < 2 {
            write!(f, "({child})")
        } else {
            write!(f, "{child}")
        }
    }
}

/// Writes `s` as a double-quoted string literal of the language.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a duration in the largest unit that divides it exactly.
pub fn format_duration(ms: i64) -> String {
    if ms % WEEK_MS == 0 {
        format!("{}w", ms / WEEK_MS)
    } else if ms % DAY_MS == 0 {
        format!("{}d", ms / DAY_MS)
    } else {
        format!("{}h", ms / HOUR_MS)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            // Rust prints the shortest representation that reads back to the same double.
            Literal::Float(v) => write!(f, "{v}"),
            Literal::Str(s) => f.write_str(&quote(s)),
        }
    }
}

/// The canonical text of an expression: parsing it gives the same [`Expr`] back.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Const(b) => write!(f, "{b}"),
            Expr::Flag(field) => write!(f, "{field}"),
            Expr::Cmp { field, op, value } => write!(f, "{field} {} {value}", op.symbol()),
            Expr::In {
                field,
                values,
                negated,
            } => {
                write!(f, "{field} {}in (", if *negated { "not " } else { "" })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Expr::Contains { field, needle } => write!(f, "{field} ~ {}", quote(needle)),
            Expr::Age {
                field,
                op: CmpOp::Le,
                ms,
            } => {
                write!(f, "{field} within {}", format_duration(*ms))
            }
            Expr::Age { field, op, ms } => {
                write!(f, "{field} {} {}", op.symbol(), format_duration(*ms))
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                self.fmt_child(inner, f)
            }
            Expr::And(parts) | Expr::Or(parts) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    self.fmt_child(p, f)?;
                }
                Ok(())
            }
        }
    }
}

/// A syntax or type error in a filter expression, located by line and column (1-based, in
/// characters) within the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("where:{line}:{column}: {message}")]
pub struct LangError {
    /// Byte offset into the expression.
    pub offset: usize,
    /// 1-based line within the expression.
    pub line: usize,
    /// 1-based column (in characters) within the line.
    pub column: usize,
    /// What was wrong, and how to fix it.
    pub message: String,
}

/// Converts a byte offset into a 1-based (line, column in characters).
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|p| p + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word` when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_lower, c), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Parses and type-checks a filter expression.
pub fn parse_expr(source: &str) -> Result<Expr, LangError> {
    let mut input = LocatingSlice::new(source);
    let result = (|| {
        let e = parse_or(&mut input, 0)?;
        ws(&mut input)?;
        if input.eof_offset() > 0 {
            let at = input.current_token_start();
            let found = next_token_text(&input);
            return Err(fail_at(
                at,
                format!("expected 'and', 'or' or the end of the expression, found {found}"),
            ));
        }
        Ok(e)
    })();
    result.map_err(|e| {
        let s = match e {
            ErrMode::Backtrack(s) | ErrMode::Cut(s) => s,
            ErrMode::Incomplete(_) => Syntax {
                offset: source.len(),
                message: None,
                open_paren: None,
            },
        };
        let (line, column) = line_col(source, s.offset);
        let mut message = s
            .message
            .unwrap_or_else(|| "invalid expression".to_string());
        if let Some(open) = s.open_paren {
            let (open_line, open_col) = line_col(source, open);
            let at = if open_line == line {
                format!("column {open_col}")
            } else {
                format!("{open_line}:{open_col}")
            };
            message = format!("expected ')' to close the '(' at {at}, found {message}");
        }
        LangError {
            offset: s.offset,
            line,
            column,
            message,
        }
    })
}

type In<'a> = LocatingSlice<&'a str>;
type PResult<T> = Result<T, ErrMode<Syntax>>;

/// The parser's error: where, and (for errors we raise ourselves) what.
#[derive(Debug, Clone)]
struct Syntax {
    offset: usize,
    message: Option<String>,
    /// Set for an unclosed '(' (its offset); `message` then names the token found instead.
    open_paren: Option<usize>,
}

impl<'a> ParserError<In<'a>> for Syntax {
    type Inner = Self;

    fn from_input(input: &In<'a>) -> Self {
        Syntax {
            offset: input.current_token_start(),
            message: None,
            open_paren: None,
        }
    }

    fn or(self, other: Self) -> Self {
        // Keep the most informative branch: one with a message, else the one that got further.
        match (&self.message, &other.message) {
            (Some(_), None) => self,
            (None, Some(_)) => other,
            _ if self.offset > other.offset => self,
            _ => other,
        }
    }

    fn into_inner(self) -> Result<Self::Inner, Self> {
        Ok(self)
    }
}

fn fail_at(offset: usize, message: impl Into<String>) -> ErrMode<Syntax> {
    ErrMode::Cut(Syntax {
        offset,
        message: Some(message.into()),
        open_paren: None,
    })
}

/// Describes the upcoming token for an error message.
fn next_token_text(input: &In<'_>) -> String {
    let rest: &str = input;
    match rest.chars().next() {
        None => "the end of the expression".to_string(),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let w: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            format!("'{w}'")
        }
        Some(c) => format!("'{c}'"),
    }
}

fn ws(i: &mut In<'_>) -> PResult<()> {
    take_while(0.., char::is_whitespace).void().parse_next(i)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// An identifier or keyword at the current position (after whitespace), with its offset.
fn word<'a>(i: &mut In<'a>) -> PResult<(usize, &'a str)> {
    ws(i)?;
    let at = i.current_token_start();
    let w = (
        take_while(1, is_ident_start),
        take_while(0.., is_ident_char),
    )
        .take()
        .parse_next(i)?;
    Ok((at, w))
}

/// Consumes keyword `kw` (case-insensitive, whole word) if it comes next.
fn keyword(i: &mut In<'_>, kw: &str) -> PResult<bool> {
    let cp = i.checkpoint();
    match word(i) {
        Ok((_, w)) if w.eq_ignore_ascii_case(kw) => Ok(true),
        Ok(_) | Err(ErrMode::Backtrack(_)) => {
            i.reset(&cp);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Consumes the punctuation `p` if it comes next (after whitespace).
fn punct(i: &mut In<'_>, mut p: &'static str) -> PResult<bool> {
    ws(i)?;
    let cp = i.checkpoint();
    match p.parse_next(i) {
        Ok(_) => Ok(true),
        Err(ErrMode::Backtrack(_)) => {
            i.reset(&cp);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn check_depth(i: &In<'_>, depth: usize) -> PResult<()> {
    if depth > MAX_DEPTH {
        return Err(fail_at(
            i.current_token_start(),
            format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
        ));
    }
    Ok(())
}

fn parse_or(i: &mut In<'_>, depth: usize) -> PResult<Expr> {
    let mut parts = vec![parse_and(i, depth, None)?];
    while keyword(i, "or")? {
        parts.push(parse_and(i, depth, Some("'or'"))?);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Expr::or_any(parts)
    })
}

/// A chain of `and`; `after` names the keyword before it, when there is one, for errors.
fn parse_and(i: &mut In<'_>, depth: usize, after: Option<&str>) -> PResult<Expr> {
    let first = match after {
        Some(kw) => expect_condition(i, depth, kw)?,
        None => parse_unary(i, depth)?,
    };
    let mut parts = vec![first];
    while keyword(i, "and")? {
        parts.push(expect_condition(i, depth, "'and'")?);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Expr::And(flatten_and(parts))
    })
}

fn flatten_and(parts: Vec<Expr>) -> Vec<Expr> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Expr::And(inner) => out.extend(inner),
            other => out.push(other),
        }
    }
    out
}

/// A condition that must follow `after` (e.g. `'and'`), with a clear error when it is missing.
fn expect_condition(i: &mut In<'_>, depth: usize, after: &str) -> PResult<Expr> {
    ws(i)?;
    let rest: &str = i;
    if rest.is_empty() || rest.starts_with(')') {
        return Err(fail_at(
            i.current_token_start(),
            format!("expected a condition after {after}"),
        ));
    }
    parse_unary(i, depth)
}

fn parse_unary(i: &mut In<'_>, depth: usize) -> PResult<Expr> {
    check_depth(i, depth)?;
    if keyword(i, "not")? {
        let inner = expect_condition(i, depth + 1, "'not'")?;
        return Ok(Expr::Not(Box::new(inner)));
    }
    parse_primary(i, depth)
}

fn parse_primary(i: &mut In<'_>, depth: usize) -> PResult<Expr> {
    ws(i)?;
    let open_at = i.current_token_start();
    if punct(i, "(")? {
        let inner = parse_or(i, depth + 1)?;
        if !punct(i, ")")? {
            // The column of the '(' needs the whole source, so `parse_expr` words this message.
            return Err(ErrMode::Cut(Syntax {
                offset: i.current_token_start(),
                message: Some(next_token_text(i)),
                open_paren: Some(open_at),
            }));
        }
        return Ok(inner);
    }
    let cp = i.checkpoint();
    let (at, name) = match word(i) {
        Ok(w) => w,
        Err(ErrMode::Backtrack(_)) => {
            i.reset(&cp);
            let found = next_token_text(i);
            return Err(fail_at(
                i.current_token_start(),
                format!("expected a condition (like `followers >= 10k`), found {found}"),
            ));
        }
        Err(e) => return Err(e),
    };
    if name.eq_ignore_ascii_case("true") {
        return Ok(Expr::Const(true));
    }
    if name.eq_ignore_ascii_case("false") {
        return Ok(Expr::Const(false));
    }
    let Some(field) = Field::from_name(name) else {
        let mut msg = format!("unknown field '{name}'");
        match did_you_mean(name, Field::ALL.iter().map(|f| f.name())) {
            Some(s) => msg.push_str(&format!("; did you mean '{s}'?")),
            None => msg.push_str(&format!(
                "; fields are: {}",
                Field::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        return Err(fail_at(at, msg));
    };
    parse_predicate(i, field, at)
}

/// A value token as written: a number (maybe with k/m), a duration, a string or a boolean.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Duration(i64),
    Str(String),
    Bool(bool),
}

impl Token {
    fn describe(&self) -> &'static str {
        match self {
            Token::Number(_) => "a number",
            Token::Duration(_) => "a duration",
            Token::Str(_) => "a string",
            Token::Bool(_) => "a boolean",
        }
    }
}

fn parse_predicate(i: &mut In<'_>, field: Field, field_at: usize) -> PResult<Expr> {
    ws(i)?;
    let op_at = i.current_token_start();
    let cp = i.checkpoint();
    // Longest operators first so `>=` is not read as `>`.
    let op: Option<&str> = alt(("==", ">=", "<=", "!=", "=", "<", ">", "~"))
        .parse_next(i)
        .map(Some)
        .or_else(|e: ErrMode<Syntax>| match e {
            ErrMode::Backtrack(_) => Ok(None),
            other => Err(other),
        })?;
    if let Some(op) = op {
        let desc = match op {
            "==" | "=" => "'='",
            ">=" => "'>='",
            "<=" => "'<='",
            "!=" => "'!='",
            "<" => "'<'",
            ">" => "'>'",
            _ => "'~'",
        };
        let (value_at, value) = expect_value(i, desc)?;
        if op == "~" {
            return contains(field, op_at, value_at, value);
        }
        let op = match op {
            "==" | "=" => CmpOp::Eq,
            ">=" => CmpOp::Ge,
            "<=" => CmpOp::Le,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            _ => CmpOp::Gt,
        };
        return compare(field, op, op_at, value_at, value);
    }
    i.reset(&cp);
    if keyword(i, "in")? {
        return in_list(i, field, op_at, false);
    }
    let before_not = i.checkpoint();
    if keyword(i, "not")? {
        if keyword(i, "in")? {
            return in_list(i, field, op_at, true);
        }
        // A `not` that does not start `not in` belongs to whatever follows a bare flag.
        i.reset(&before_not);
    }
    if keyword(i, "within")? {
        ws(i)?;
        let value_at = i.current_token_start();
        let value = match value_token(i) {
            Ok(Some(Token::Duration(ms))) => ms,
            Ok(_) | Err(ErrMode::Backtrack(_)) => {
                return Err(fail_at(
                    value_at,
                    "expected a duration after 'within' (like 30d, 12h or 2w)",
                ))
            }
            Err(e) => return Err(e),
        };
        if field.kind() != FieldKind::Timestamp {
            return Err(fail_at(
                op_at,
                format!("'within' only works on last_post_at, not on '{field}'"),
            ));
        }
        return Ok(Expr::Age {
            field,
            op: CmpOp::Le,
            ms: value,
        });
    }
    if field.kind() == FieldKind::Flag {
        return Ok(Expr::Flag(field));
    }
    Err(fail_at(
        field_at,
        format!("'{field}' is not a yes/no field: {}", usage(field)),
    ))
}

/// How a field is meant to be used, for error messages.
fn usage(field: Field) -> String {
    match field.kind() {
        FieldKind::Int | FieldKind::Float => {
            format!("compare it with a number (like `{field} >= 10k`)")
        }
        FieldKind::Timestamp => {
            format!("use `{field} within 30d`, or compare it with a duration (like `{field} > 7d`)")
        }
        FieldKind::Text if field == Field::Text => {
            format!("use '~', '=' or '!=' with a string (like `{field} ~ \"vegan\"`)")
        }
        FieldKind::Text => {
            format!("use '=', '!=', 'in', 'not in' or '~' with strings (like `{field} = \"en\"`)")
        }
        FieldKind::Flag => format!("use it alone (`{field}`, `not {field}`) or with = true/false"),
    }
}

fn expect_value(i: &mut In<'_>, after: &str) -> PResult<(usize, Token)> {
    ws(i)?;
    let at = i.current_token_start();
    match value_token(i) {
        Ok(Some(t)) => Ok((at, t)),
        Ok(None) | Err(ErrMode::Backtrack(_)) => {
            Err(fail_at(at, format!("expected a value after {after}")))
        }
        Err(e) => Err(e),
    }
}

/// Reads a value token; `Ok(None)` when no value starts here.
fn value_token(i: &mut In<'_>) -> PResult<Option<Token>> {
    let rest: &str = i;
    match rest.chars().next() {
        Some('"') => string_token(i).map(|s| Some(Token::Str(s))),
        Some(c) if c.is_ascii_digit() || c == '-' || c == '.' => number_token(i).map(Some),
        Some(c) if is_ident_start(c) => {
            let cp = i.checkpoint();
            let (_, w) = word(i)?;
            if w.eq_ignore_ascii_case("true") {
                Ok(Some(Token::Bool(true)))
            } else if w.eq_ignore_ascii_case("false") {
                Ok(Some(Token::Bool(false)))
            } else {
                i.reset(&cp);
                Ok(None)
            }
        }
        _ => Ok(None),
    }
}

fn string_token(i: &mut In<'_>) -> PResult<String> {
    let open_at = i.current_token_start();
    '"'.parse_next(i)?;
    let mut out = String::new();
    loop {
        let at = i.current_token_start();
        match i.next_token() {
            None => {
                return Err(fail_at(
                    open_at,
                    "unterminated string: add the closing '\"'",
                ));
            }
            Some('"') => return Ok(out),
            Some('\\') => match i.next_token() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let hex: Result<&str, ErrMode<Syntax>> =
                        ('{', take_while(1..=6, |c: char| c.is_ascii_hexdigit()), '}')
                            .map(|(_, h, _): (char, &str, char)| h)
                            .parse_next(i);
                    let c = hex
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32);
                    match c {
                        Some(c) => out.push(c),
                        None => {
                            return Err(fail_at(
                                at,
                                "invalid unicode escape: write \\u{…} with 1 to 6 hex digits",
                            ))
                        }
                    }
                }
                _ => {
                    return Err(fail_at(
                        at,
                        "unknown escape: use \\\", \\\\, \\n, \\t, \\r or \\u{…}",
                    ))
                }
            },
            Some(c) => out.push(c),
        }
    }
}

fn number_token(i: &mut In<'_>) -> PResult<Token> {
    let at = i.current_token_start();
    let text = (
        take_while(0..=1, '-'),
        take_while(0.., |c: char| c.is_ascii_digit()),
        take_while(0..=1, '.'),
        take_while(0.., |c: char| c.is_ascii_digit()),
    )
        .take()
        .parse_next(i)?;
    let digits = text.trim_start_matches('-');
    if !digits.chars().any(|c| c.is_ascii_digit())
        || digits.starts_with('.')
        || digits.ends_with('.')
    {
        return Err(fail_at(at, format!("'{text}' is not a number")));
    }
    let value: f64 = text
        .parse()
        .map_err(|_| fail_at(at, format!("'{text}' is not a number")))?;
    let suffix = (take_while(0.., is_ident_char)).parse_next(i)?;
    let integral = !text.contains('.');
    let scaled = match suffix {
        "" => return Ok(Token::Number(value)),
        "k" | "K" => value * 1e3,
        "m" | "M" => value * 1e6,
        "h" | "d" | "w" => {
            if !integral || text.starts_with('-') {
                return Err(fail_at(
                    at,
                    "a duration is a whole, positive number of hours, days or weeks (like 36h)",
                ));
            }
            let unit = match suffix {
                "h" => HOUR_MS,
                "d" => DAY_MS,
                _ => WEEK_MS,
            };
            let ms = text
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(unit))
                .filter(|ms| *ms <= MAX_DURATION_MS)
                .ok_or_else(|| fail_at(at, "duration too long (at most 100 years)"))?;
            return Ok(Token::Duration(ms));
        }
        other => {
            return Err(fail_at(
                at,
                format!(
                    "unknown suffix '{other}' after {text}: numbers take k or m (10k, 1.5m), durations h, d or w (30d)"
                ),
            ))
        }
    };
    if !scaled.is_finite() {
        return Err(fail_at(at, "number too large"));
    }
    Ok(Token::Number(scaled))
}

fn literal_for(field: Field, value_at: usize, value: Token) -> PResult<Literal> {
    match (field.kind(), value) {
        (FieldKind::Int | FieldKind::Float, Token::Number(v)) => Ok(Literal::number(v)),
        (FieldKind::Text, Token::Str(s)) => Ok(Literal::Str(s)),
        (FieldKind::Timestamp, t) => Err(fail_at(
            value_at,
            format!(
                "'{field}' cannot be compared with {}: {}",
                t.describe(),
                usage(field)
            ),
        )),
        (_, Token::Duration(_)) => Err(fail_at(
            value_at,
            format!(
                "a duration only compares with last_post_at; {field}: {}",
                usage(field)
            ),
        )),
        (kind, t) => {
            let what = match kind {
                FieldKind::Int | FieldKind::Float => "a number",
                FieldKind::Text => "text",
                _ => "a yes/no field",
            };
            Err(fail_at(
                value_at,
                format!(
                    "'{field}' is {what} and cannot be compared with {}: {}",
                    t.describe(),
                    usage(field)
                ),
            ))
        }
    }
}

fn compare(field: Field, op: CmpOp, op_at: usize, value_at: usize, value: Token) -> PResult<Expr> {
    match field.kind() {
        FieldKind::Flag => match (op, value) {
            (CmpOp::Eq | CmpOp::Ne, Token::Bool(b)) => {
                // `is_bot = true` and `is_bot` are the same condition, so they share one form.
                if b == (op == CmpOp::Eq) {
                    Ok(Expr::Flag(field))
                } else {
                    Ok(Expr::Not(Box::new(Expr::Flag(field))))
                }
            }
            (CmpOp::Eq | CmpOp::Ne, t) => Err(fail_at(
                value_at,
                format!(
                    "'{field}' is a yes/no field and cannot be compared with {}: {}",
                    t.describe(),
                    usage(field)
                ),
            )),
            _ => Err(fail_at(
                op_at,
                format!(
                    "'{}' does not apply to yes/no field '{field}': {}",
                    op.symbol(),
                    usage(field)
                ),
            )),
        },
        FieldKind::Timestamp => match value {
            Token::Duration(ms) if !matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                Ok(Expr::Age { field, op, ms })
            }
            Token::Duration(_) => Err(fail_at(
                op_at,
                format!(
                    "'{}' does not apply to '{field}': {}",
                    op.symbol(),
                    usage(field)
                ),
            )),
            other => Err(fail_at(
                value_at,
                format!(
                    "'{field}' cannot be compared with {}: {}",
                    other.describe(),
                    usage(field)
                ),
            )),
        },
        FieldKind::Text => {
            let allowed = matches!(op, CmpOp::Eq | CmpOp::Ne);
            if !allowed {
                return Err(fail_at(
                    op_at,
                    format!(
                        "'{}' does not apply to text field '{field}': {}",
                        op.symbol(),
                        usage(field)
                    ),
                ));
            }
            Ok(Expr::Cmp {
                field,
                op,
                value: literal_for(field, value_at, value)?,
            })
        }
        FieldKind::Int | FieldKind::Float => Ok(Expr::Cmp {
            field,
            op,
            value: literal_for(field, value_at, value)?,
        }),
    }
}

fn contains(field: Field, op_at: usize, value_at: usize, value: Token) -> PResult<Expr> {
    if field.kind() != FieldKind::Text {
        return Err(fail_at(
            op_at,
            format!(
                "'~' only works on text fields (text, language), not on '{field}': {}",
                usage(field)
            ),
        ));
    }
    match value {
        Token::Str(s) => Ok(Expr::Contains {
            field,
            needle: s.to_lowercase(),
        }),
        other => Err(fail_at(
            value_at,
            format!(
                "'~' needs a string, not {} (like `{field} ~ \"vegan\"`)",
                other.describe()
            ),
        )),
    }
}

fn in_list(i: &mut In<'_>, field: Field, op_at: usize, negated: bool) -> PResult<Expr> {
    let kw = if negated { "'not in'" } else { "'in'" };
    match field.kind() {
        FieldKind::Int | FieldKind::Float => {}
        FieldKind::Text if field == Field::Language => {}
        _ => {
            return Err(fail_at(
                op_at,
                format!("{kw} does not apply to '{field}': {}", usage(field)),
            ))
        }
    }
    ws(i)?;
    if !punct(i, "(")? {
        let found = next_token_text(i);
        return Err(fail_at(
            i.current_token_start(),
            format!("expected '(' after {kw}, found {found}"),
        ));
    }
    let mut values = Vec::new();
    loop {
        let (at, t) = expect_value(i, if values.is_empty() { "'('" } else { "','" })?;
        values.push(literal_for(field, at, t)?);
        if punct(i, ",")? {
            continue;
        }
        if punct(i, ")")? {
            break;
        }
        let found = next_token_text(i);
        return Err(fail_at(
            i.current_token_start(),
            format!("expected ',' or ')' in the list, found {found}"),
        ));
    }
    Ok(Expr::In {
        field,
        values,
        negated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        parse_expr(src).expect_err(src).to_string()
    }

    #[test]
    fn parses_the_design_example() {
        let e = parse_expr(
            r#"followers >= 10k and language in ("en","de") and text ~ "Vegan" and not is_bot"#,
        )
        .unwrap();
        assert_eq!(
            e,
            Expr::And(vec![
                Expr::Cmp {
                    field: Field::Followers,
                    op: CmpOp::Ge,
                    value: Literal::Int(10_000)
                },
                Expr::In {
                    field: Field::Language,
                    values: vec![Literal::Str("en".into()), Literal::Str("de".into())],
                    negated: false
                },
                Expr::Contains {
                    field: Field::Text,
                    needle: "vegan".into()
                },
                Expr::Not(Box::new(Expr::Flag(Field::IsBot))),
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = parse_expr("is_bot or has_link and has_email").unwrap();
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::Flag(Field::IsBot),
                Expr::And(vec![
                    Expr::Flag(Field::HasLink),
                    Expr::Flag(Field::HasEmail)
                ]),
            ])
        );
        assert_eq!(e.to_string(), "is_bot or has_link and has_email");
        let p = parse_expr("(is_bot or has_link) and has_email").unwrap();
        assert_eq!(p.to_string(), "(is_bot or has_link) and has_email");
    }

    #[test]
    fn number_suffixes_and_durations() {
        assert_eq!(
            parse_expr("followers > 1.5m").unwrap(),
            Expr::Cmp {
                field: Field::Followers,
                op: CmpOp::Gt,
                value: Literal::Int(1_500_000)
            }
        );
        assert_eq!(
            parse_expr("engagement_rate >= 0.01").unwrap(),
            Expr::Cmp {
                field: Field::EngagementRate,
                op: CmpOp::Ge,
                value: Literal::Float(0.01)
            }
        );
        assert_eq!(
            parse_expr("last_post_at within 2w").unwrap(),
            Expr::Age {
                field: Field::LastPostAt,
                op: CmpOp::Le,
                ms: 2 * WEEK_MS
            }
        );
        assert_eq!(
            parse_expr("last_post_at > 36h").unwrap(),
            Expr::Age {
                field: Field::LastPostAt,
                op: CmpOp::Gt,
                ms: 36 * HOUR_MS
            }
        );
        assert_eq!(
            parse_expr("last_post_at within 14d").unwrap().to_string(),
            "last_post_at within 2w"
        );
    }

    #[test]
    fn strings_with_escapes() {
        assert_eq!(
            parse_expr(r#"text = "a \"b\" \\ \n \u{e9}""#).unwrap(),
            Expr::Cmp {
                field: Field::Text,
                op: CmpOp::Eq,
                value: Literal::Str("a \"b\" \\ \n é".into())
            }
        );
    }

    #[test]
    fn boolean_flags_normalize() {
        assert_eq!(
            parse_expr("is_bot = true").unwrap(),
            Expr::Flag(Field::IsBot)
        );
        assert_eq!(
            parse_expr("is_bot != true").unwrap(),
            parse_expr("not is_bot").unwrap()
        );
        assert_eq!(parse_expr("IS_BOT").unwrap_err().column, 1);
        assert_eq!(
            parse_expr("has_email = FALSE").unwrap(),
            parse_expr("NOT has_email").unwrap()
        );
    }

    #[test]
    fn keywords_do_not_swallow_identifiers() {
        assert_eq!(
            parse_expr("not_a_field").unwrap_err().message,
            "unknown field 'not_a_field'; fields are: followers, following, posts_count, engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, has_link, has_email, text"
        );
        assert_eq!(
            parse_expr("language not in (\"en\")").unwrap(),
            Expr::In {
                field: Field::Language,
                values: vec![Literal::Str("en".into())],
                negated: true
            }
        );
    }

    #[test]
    fn error_columns() {
        assert_eq!(
            err("followers >= and is_bot"),
            "where:1:14: expected a value after '>='"
        );
        assert_eq!(
            err("folowers > 5"),
            "where:1:1: unknown field 'folowers'; did you mean 'followers'?"
        );
        assert_eq!(
            err("followers > 5 and"),
            "where:1:18: expected a condition after 'and'"
        );
        assert_eq!(
            err("(followers > 5"),
            "where:1:15: expected ')' to close the '(' at column 1, found the end of the expression"
        );
        assert_eq!(
            err("followers > 5 has_link"),
            "where:1:15: expected 'and', 'or' or the end of the expression, found 'has_link'"
        );
        assert_eq!(
            err("text ~ \"abc"),
            "where:1:8: unterminated string: add the closing '\"'"
        );
        assert_eq!(
            err("last_post_at within 5"),
            "where:1:21: expected a duration after 'within' (like 30d, 12h or 2w)"
        );
        assert_eq!(
            err("is_bot and\n  followers > x"),
            "where:2:15: expected a value after '>'"
        );
    }

    #[test]
    fn type_errors() {
        assert_eq!(
            err("text > 5"),
            "where:1:6: '>' does not apply to text field 'text': use '~', '=' or '!=' with a string (like `text ~ \"vegan\"`)"
        );
        assert_eq!(
            err("followers ~ \"x\""),
            "where:1:11: '~' only works on text fields (text, language), not on 'followers': compare it with a number (like `followers >= 10k`)"
        );
        assert_eq!(
            err("followers = \"abc\""),
            "where:1:13: 'followers' is a number and cannot be compared with a string: compare it with a number (like `followers >= 10k`)"
        );
        assert_eq!(
            err("language = 5"),
            "where:1:12: 'language' is text and cannot be compared with a number: use '=', '!=', 'in', 'not in' or '~' with strings (like `language = \"en\"`)"
        );
        assert!(err("last_post_at > 5")
            .starts_with("where:1:16: 'last_post_at' cannot be compared with a number"));
        assert!(err("followers > 30d")
            .starts_with("where:1:13: a duration only compares with last_post_at"));
        assert!(err("followers").starts_with("where:1:1: 'followers' is not a yes/no field"));
        assert!(err("text in (\"a\")").starts_with("where:1:6: 'in' does not apply to 'text'"));
        assert!(err("followers within 3d")
            .starts_with("where:1:11: 'within' only works on last_post_at"));
    }

    #[test]
    fn injection_shaped_input_is_rejected() {
        assert!(parse_expr("followers) OR (1=1").is_err());
        assert!(parse_expr("followers > 1; DROP TABLE profiles_raw; --").is_err());
        assert!(parse_expr("\"x\" = text").is_err());
        // As a value it is just a string.
        assert_eq!(
            parse_expr(r#"text ~ "'); DROP TABLE profiles_raw; --""#).unwrap(),
            Expr::Contains {
                field: Field::Text,
                needle: "'); drop table profiles_raw; --".into()
            }
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let src = format!("{}is_bot{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&src).contains("nested too deeply"));
        let src = format!("{}is_bot", "not ".repeat(10_000));
        assert!(err(&src).contains("nested too deeply"));
    }

    #[test]
    fn canonical_text_round_trips() {
        for src in [
            "followers >= 10k and (language in (\"en\", \"de\") or text ~ \"vegan\") and not is_bot",
            "not (is_bot or has_link)",
            "last_post_at within 30d or last_post_at >= 12h",
            "engagement_rate < 0.5 and avg_likes != -3 and followers not in (1, 2.5)",
            "true and false or text = \"a\\\"b\"",
        ] {
            let e = parse_expr(src).unwrap();
            let printed = e.to_string();
            assert_eq!(parse_expr(&printed).unwrap(), e, "{src} -> {printed}");
        }
    }

    #[test]
    fn did_you_mean_needs_closeness() {
        assert_eq!(
            did_you_mean("folowers", ["followers", "following"]),
            Some("followers")
        );
        assert_eq!(did_you_mean("xyz", ["followers", "following"]), None);
    }
}
