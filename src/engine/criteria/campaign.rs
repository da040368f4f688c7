//! Campaign files: parse the TOML, validate every field, and report all problems at once, each
//! with the file, line, column and field path (`vegan.toml:7:13: filter.followers: …`).

use std::fmt;

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::lang::{did_you_mean, line_col};
use super::spec::{
    default_cooldown_days, default_daily_llm_calls, default_max_images, default_max_profiles,
    default_shortlist_k, default_threshold, CampaignSpec, DiscoverySpec, FilterSpec, FloatRange,
    IntRange, OutreachSpec, QualifySpec, WhereClause,
};

/// One problem in a campaign file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignError {
    /// The file name as given to [`parse_campaign`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The field path (`filter.followers`), empty for TOML syntax errors.
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for CampaignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a campaign file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CampaignErrors(pub Vec<CampaignError>);

impl fmt::Display for CampaignErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses and validates a campaign file. `file_name` only labels errors; `known_platforms` are the
/// configured `[[platforms]]` names.
pub fn parse_campaign(
    file_name: &str,
    source: &str,
    known_platforms: &[&str],
) -> Result<CampaignSpec, CampaignErrors> {
    let mut cx = Cx {
        file: file_name,
        src: source,
        errors: Vec::new(),
    };
    let doc = match ImDocument::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            // One error per line: fold toml's multi-line messages.
            let message = e.message().trim().lines().collect::<Vec<_>>().join("; ");
            cx.push(at, "", message);
            return Err(CampaignErrors(cx.errors));
        }
    };
    let spec = cx.campaign(doc.as_table(), known_platforms);
    if cx.errors.is_empty() {
        if let Some(spec) = spec {
            return Ok(spec);
        }
    }
    cx.errors.sort_by_key(|e| (e.line, e.column));
    Err(CampaignErrors(cx.errors))
}

/// ISO 639-1 language codes.
pub const ISO_639_1: &[&str] = &[
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh",
    "bi", "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da",
    "de", "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr",
    "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz",
    "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj",
    "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li", "ln",
    "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb",
    "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi",
    "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk",
    "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti",
    "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo",
    "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

const TOP_KEYS: &[&str] = &[
    "name",
    "platform",
    "brief",
    "filter",
    "discovery",
    "qualify",
    "outreach",
];
const FILTER_KEYS: &[&str] = &[
    "followers",
    "engagement_rate",
    "languages",
    "keywords_any",
    "keywords_none",
    "active_within_days",
    "exclude_bots",
    "where",
];
const RANGE_KEYS: &[&str] = &["min", "max"];
const DISCOVERY_KEYS: &[&str] = &[
    "hashtags",
    "search",
    "followers_of",
    "directory",
    "max_profiles",
];
const QUALIFY_KEYS: &[&str] = &[
    "shortlist_k",
    "threshold",
    "max_images",
    "daily_llm_calls",
    "model",
];
const OUTREACH_KEYS: &[&str] = &["template", "accounts", "cooldown_days"];

/// The validation pass: reads the TOML tree, records every error, and builds the spec.
struct Cx<'s> {
    file: &'s str,
    src: &'s str,
    errors: Vec<CampaignError>,
}

/// A table, where it is, and its path.
struct Tbl<'a> {
    t: &'a dyn TableLike,
    at: usize,
    path: String,
}

impl<'a> Tbl<'a> {
    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The entry `key`: its item and the offset to report problems with its value at.
    fn entry(&self, key: &str) -> Option<(&'a Item, usize)> {
        let (k, item) = self.t.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        let at = item
            .span()
            .or_else(|| k.span())
            .map(|s| s.start)
            .unwrap_or(self.at);
        Some((item, at))
    }
}

fn article(type_name: &str) -> String {
    let first = type_name.chars().next().unwrap_or('x');
    if "aeiou".contains(first) {
        format!("an {type_name}")
    } else {
        format!("a {type_name}")
    }
}

impl<'s> Cx<'s> {
    fn push(&mut self, offset: usize, path: &str, message: String) {
        let (line, column) = line_col(self.src, offset);
        self.errors.push(CampaignError {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            message,
        });
    }

    fn wrong_type(&mut self, at: usize, path: &str, expected: &str, item: &Item) {
        self.push(
            at,
            path,
            format!(
                "expected {}, found {}",
                article(expected),
                article(item.type_name())
            ),
        );
    }

    /// Checks that `t` only has `allowed` keys.
    fn known_keys(&mut self, t: &Tbl<'_>, allowed: &[&str]) {
        for (key, _) in t.t.iter() {
            if allowed.contains(&key) {
                continue;
            }
            let at =
                t.t.key(key)
                    .and_then(|k| k.span())
                    .map(|s| s.start)
                    .unwrap_or(t.at);
            let hint = match did_you_mean(key, allowed.iter().copied()) {
                Some(s) => format!("unknown key; did you mean '{s}'?"),
                None => format!("unknown key; expected one of: {}", allowed.join(", ")),
            };
            self.push(at, &t.child_path(key), hint);
        }
    }

    /// The sub-table `key` of `parent`, if present (and a table).
    fn table<'a>(&mut self, parent: &Tbl<'a>, key: &str, allowed: &[&str]) -> Option<Tbl<'a>> {
        let (item, at) = parent.entry(key)?;
        let path = parent.child_path(key);
        let Some(t) = item.as_table_like() else {
            self.wrong_type(at, &path, "table", item);
            return None;
        };
        let tbl = Tbl { t, at, path };
        self.known_keys(&tbl, allowed);
        Some(tbl)
    }

    fn value<'a>(
        &mut self,
        t: &Tbl<'a>,
        key: &str,
        expected: &str,
    ) -> Option<(&'a Value, usize, String)> {
        let (item, at) = t.entry(key)?;
        let path = t.child_path(key);
        match item.as_value() {
            Some(v) => Some((v, at, path)),
            None => {
                self.wrong_type(at, &path, expected, item);
                None
            }
        }
    }

    fn string(&mut self, t: &Tbl<'_>, key: &str) -> Option<(String, usize, String)> {
        let (v, at, path) = self.value(t, key, "string")?;
        match v.as_str() {
            Some(s) => Some((s.to_string(), at, path)),
            None => {
                self.push(
                    at,
                    &path,
                    format!("expected a string, found {}", article(v.type_name())),
                );
                None
            }
        }
    }

    /// A required, non-blank string.
    fn required_string(&mut self, t: &Tbl<'_>, key: &str) -> Option<(String, usize, String)> {
        if t.entry(key).is_none() {
            self.push(
                t.at,
                &t.child_path(key),
                format!("missing required key '{key}'"),
            );
            return None;
        }
        let (s, at, path) = self.string(t, key)?;
        if s.trim().is_empty() {
            self.push(at, &path, "must not be empty".to_string());
            return None;
        }
        Some((s, at, path))
    }

    fn int(&mut self, t: &Tbl<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        let (v, at, path) = self.value(t, key, "integer")?;
        let Some(n) = v.as_integer() else {
            self.push(
                at,
                &path,
                format!("expected an integer, found {}", article(v.type_name())),
            );
            return None;
        };
        if n < min || n > max {
            // Upper bounds that only guard the storage type are not worth mentioning.
            let msg = if n < min && max >= i64::from(u32::MAX) {
                format!("must be at least {min}, got {n}")
            } else {
                format!("must be between {min} and {max}, got {n}")
            };
            self.push(at, &path, msg);
            return None;
        }
        Some(n)
    }

    fn float(&mut self, t: &Tbl<'_>, key: &str, min: f64) -> Option<f64> {
        let (v, at, path) = self.value(t, key, "number")?;
        let n = match v {
            Value::Float(f) => *f.value(),
            Value::Integer(i) => *i.value() as f64,
            other => {
                self.push(
                    at,
                    &path,
                    format!("expected a number, found {}", article(other.type_name())),
                );
                return None;
            }
        };
        if !n.is_finite() || n < min {
            self.push(
                at,
                &path,
                format!("must be a finite number of at least {min}, got {n}"),
            );
            return None;
        }
        Some(n)
    }

    fn bool(&mut self, t: &Tbl<'_>, key: &str) -> Option<bool> {
        let (v, at, path) = self.value(t, key, "boolean")?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.push(
                    at,
                    &path,
                    format!(
                        "expected a boolean (true or false), found {}",
                        article(v.type_name())
                    ),
                );
                None
            }
        }
    }

    /// A list of non-blank strings, each with its offset and path.
    fn strings(&mut self, t: &Tbl<'_>, key: &str) -> Vec<(String, usize, String)> {
        let Some((v, at, path)) = self.value(t, key, "array") else {
            return Vec::new();
        };
        let Some(arr) = v.as_array() else {
            self.push(
                at,
                &path,
                format!(
                    "expected an array of strings, found {}",
                    article(v.type_name())
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, el) in arr.iter().enumerate() {
            let el_at = el.span().map(|s| s.start).unwrap_or(at);
            let el_path = format!("{path}[{i}]");
            match el.as_str() {
                Some(s) if s.trim().is_empty() => {
                    self.push(el_at, &el_path, "must not be empty".to_string())
                }
                Some(s) => out.push((s.to_string(), el_at, el_path)),
                None => self.push(
                    el_at,
                    &el_path,
                    format!("expected a string, found {}", article(el.type_name())),
                ),
            }
        }
        out
    }

    fn campaign(
        &mut self,
        root: &toml_edit::Table,
        known_platforms: &[&str],
    ) -> Option<CampaignSpec> {
        let root = Tbl {
            t: root,
            at: 0,
            path: String::new(),
        };
        self.known_keys(&root, TOP_KEYS);
        let name = self.required_string(&root, "name");
        let platform = self.required_string(&root, "platform");
        if let Some((p, at, path)) = &platform {
            if !known_platforms.contains(&p.as_str()) {
                let msg = if known_platforms.is_empty() {
                    format!("unknown platform '{p}': no platforms are configured (add a [[platforms]] entry to the config)")
                } else {
                    let mut msg = format!("unknown platform '{p}'");
                    if let Some(s) = did_you_mean(p, known_platforms.iter().copied()) {
                        msg.push_str(&format!("; did you mean '{s}'?"));
                    }
                    msg.push_str(&format!(" (configured: {})", known_platforms.join(", ")));
                    msg
                };
                self.push(*at, path, msg);
            }
        }
        let brief = self.required_string(&root, "brief");
        let filter = match self.table(&root, "filter", FILTER_KEYS) {
            Some(t) => self.filter(&t),
            None => FilterSpec::default(),
        };
        let discovery = match self.table(&root, "discovery", DISCOVERY_KEYS) {
            Some(t) => self.discovery(&t),
            None => DiscoverySpec::default(),
        };
        let qualify = match self.table(&root, "qualify", QUALIFY_KEYS) {
            Some(t) => self.qualify(&t),
            None => QualifySpec::default(),
        };
        let outreach = match self.table(&root, "outreach", OUTREACH_KEYS) {
            Some(t) => self.outreach(&t),
            None => None,
        };
        Some(CampaignSpec {
            name: name?.0.trim().to_string(),
            platform: platform?.0,
            brief: brief?.0,
            filter,
            discovery,
            qualify,
            outreach,
        })
    }

    fn int_range(&mut self, parent: &Tbl<'_>, key: &str) -> Option<IntRange> {
        let t = self.table(parent, key, RANGE_KEYS)?;
        let min = self.int(&t, "min", 0, i64::MAX);
        let max = self.int(&t, "max", 0, i64::MAX);
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                self.push(
                    t.at,
                    &t.path,
                    format!("min ({lo}) is greater than max ({hi})"),
                );
            }
        }
        Some(IntRange { min, max })
    }

    fn float_range(&mut self, parent: &Tbl<'_>, key: &str) -> Option<FloatRange> {
        let t = self.table(parent, key, RANGE_KEYS)?;
        let min = self.float(&t, "min", 0.0);
        let max = self.float(&t, "max", 0.0);
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                self.push(
                    t.at,
                    &t.path,
                    format!("min ({lo}) is greater than max ({hi})"),
                );
            }
        }
        Some(FloatRange { min, max })
    }

    fn filter(&mut self, t: &Tbl<'_>) -> FilterSpec {
        let followers = self.int_range(t, "followers");
        let engagement_rate = self.float_range(t, "engagement_rate");
        let mut languages = Vec::new();
        for (code, at, path) in self.strings(t, "languages") {
            let lower = code.trim().to_lowercase();
            if ISO_639_1.contains(&lower.as_str()) {
                languages.push(lower);
            } else {
                self.push(
                    at,
                    &path,
                    format!(
                        "unknown language code '{code}': use ISO 639-1 codes like \"en\" or \"de\""
                    ),
                );
            }
        }
        let keywords_any = self
            .strings(t, "keywords_any")
            .into_iter()
            .map(|k| k.0)
            .collect();
        let keywords_none = self
            .strings(t, "keywords_none")
            .into_iter()
            .map(|k| k.0)
            .collect();
        let active_within_days = self
            .int(t, "active_within_days", 1, 36_500)
            .and_then(|d| u32::try_from(d).ok());
        let exclude_bots = self.bool(t, "exclude_bots").unwrap_or(false);
        let where_ = self.where_clause(t);
        FilterSpec {
            followers,
            engagement_rate,
            languages,
            keywords_any,
            keywords_none,
            active_within_days,
            exclude_bots,
            where_,
        }
    }

    fn where_clause(&mut self, t: &Tbl<'_>) -> Option<WhereClause> {
        let (source, at, path) = self.string(t, "where")?;
        match WhereClause::parse(&source) {
            Ok(w) => Some(w),
            Err(e) => {
                match self.offset_in_string(at, &source) {
                    // The string's text is exactly the expression here: point at the column.
                    Some(start) => self.push(start + e.offset, &path, e.message),
                    None => self.push(
                        at,
                        &path,
                        format!(
                            "{} (at line {}, column {} of the expression)",
                            e.message, e.line, e.column
                        ),
                    ),
                }
                None
            }
        }
    }

    /// Where the content of the string value at `at` starts in the file, when the file holds it
    /// verbatim (no escapes), so offsets within the value map 1:1 onto the file.
    fn offset_in_string(&self, at: usize, value: &str) -> Option<usize> {
        let raw = self.src.get(at..)?;
        let mut start = at
            + if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
                3
            } else if raw.starts_with('"') || raw.starts_with('\'') {
                1
            } else {
                return None;
            };
        // A newline right after an opening triple quote is not part of the value.
        if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            if self.src[start..].starts_with("\r\n") {
                start += 2;
            } else if self.src[start..].starts_with('\n') {
                start += 1;
            }
        }
        (self.src.get(start..start + value.len()) == Some(value)).then_some(start)
    }

    fn discovery(&mut self, t: &Tbl<'_>) -> DiscoverySpec {
        let list = |cx: &mut Self, key| cx.strings(t, key).into_iter().map(|s| s.0).collect();
        DiscoverySpec {
            hashtags: list(self, "hashtags"),
            search: list(self, "search"),
            followers_of: list(self, "followers_of"),
            directory: self.bool(t, "directory").unwrap_or(false),
            max_profiles: self
                .int(t, "max_profiles", 1, i64::MAX)
                .map_or(default_max_profiles(), |n| n as u64),
        }
    }

    fn qualify(&mut self, t: &Tbl<'_>) -> QualifySpec {
        let model = match self.string(t, "model") {
            Some((m, at, path)) if m.trim().is_empty() => {
                self.push(
                    at,
                    &path,
                    "must not be empty (remove it to use the configured model)".into(),
                );
                None
            }
            Some((m, _, _)) => Some(m.trim().to_string()),
            None => None,
        };
        QualifySpec {
            shortlist_k: self
                .int(t, "shortlist_k", 1, i64::from(u32::MAX))
                .map_or(default_shortlist_k(), |n| n as u32),
            threshold: self
                .int(t, "threshold", 0, 100)
                .map_or(default_threshold(), |n| n as u8),
            max_images: self
                .int(t, "max_images", 0, 3)
                .map_or(default_max_images(), |n| n as u8),
            daily_llm_calls: self
                .int(t, "daily_llm_calls", 0, i64::from(u32::MAX))
                .map_or(default_daily_llm_calls(), |n| n as u32),
            model,
        }
    }

    fn outreach(&mut self, t: &Tbl<'_>) -> Option<OutreachSpec> {
        let template = self.required_string(t, "template");
        let accounts = self
            .strings(t, "accounts")
            .into_iter()
            .map(|s| s.0)
            .collect();
        let cooldown_days = self
            .int(t, "cooldown_days", 0, 36_500)
            .map_or(default_cooldown_days(), |n| n as u32);
        Some(OutreachSpec {
            template: template?.0,
            accounts,
            cooldown_days,
        })
    }
}
