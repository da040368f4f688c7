//! Query-string parsing and Mastodon-style id pagination (max_id / since_id / min_id + `Link`).

/// A parsed query string that keeps repeated keys (`types[]=a&types[]=b`) and their order.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=x+y&c=%20` (a missing query gives no parameters).
    pub fn parse(raw: Option<&str>) -> Self {
        let Some(raw) = raw else {
            return Self::default();
        };
        Self(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// Parses a form body the same way.
    pub fn parse_form(body: &[u8]) -> Self {
        Self::parse(Some(&String::from_utf8_lossy(body)))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A non-negative integer parameter; `Err(name)` when present but not a number.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{key} must be a number")),
        }
    }

    /// `limit` clamped to `1..=max`, `default` when absent or unparsable.
    pub fn limit(&self, default: usize, max: usize) -> usize {
        self.get("limit")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(default, |l| l.clamp(1, max))
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "on"))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            out.push(b' ');
        } else if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(b'%');
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Minimal percent-encoding for values placed back into `Link` URLs.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cursor parameters of a paginated request.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    /// Only ids below this.
    pub max_id: Option<u64>,
    /// Only ids above this (newest first).
    pub since_id: Option<u64>,
    /// Only ids above this, the ones right after it.
    pub min_id: Option<u64>,
    /// Page size.
    pub limit: usize,
}

impl Cursor {
    /// Reads the cursor from query parameters.
    pub fn from_params(p: &Params, default_limit: usize, max_limit: usize) -> Result<Self, String> {
        Ok(Self {
            max_id: p.u64("max_id")?,
            since_id: p.u64("since_id")?,
            min_id: p.u64("min_id")?,
            limit: p.limit(default_limit, max_limit),
        })
    }

    /// One page from `ids` (ascending, unique), newest first, skipping ids above `ceiling` and
    /// those `keep` rejects. With `min_id` the page is the oldest ids after it, still newest first.
    pub fn page(&self, ids: &[u64], ceiling: u64, mut keep: impl FnMut(u64) -> bool) -> Vec<u64> {
        let lower = self.since_id.max(self.min_id);
        let upper = self
            .max_id
            .map_or(ceiling, |m| m.saturating_sub(1).min(ceiling));
        let lo = lower.map_or(0, |l| ids.partition_point(|x| *x <= l));
        let hi = ids.partition_point(|x| *x <= upper);
        if lo >= hi {
            return Vec::new();
        }
        let window = &ids[lo..hi];
        if self.min_id.is_some() {
            let mut out: Vec<u64> = window
                .iter()
                .copied()
                .filter(|id| keep(*id))
                .take(self.limit)
                .collect();
            out.reverse();
            out
        } else {
            window
                .iter()
                .rev()
                .copied()
                .filter(|id| keep(*id))
                .take(self.limit)
                .collect()
        }
    }
}

/// The `Link` header of a non-empty page: next = max_id of the last item, prev = min_id of the
/// first. `before` parameters precede the cursor in the URL, `after` ones follow it (matching how
/// Mastodon's controllers merge carried parameters for each route).
pub fn link_header(
    base: &str,
    path: &str,
    before: &[(String, String)],
    after: &[(String, String)],
    first: u64,
    last: u64,
) -> String {
    let build = |cursor: &str, id: u64| {
        let mut q: Vec<String> = before
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        q.push(format!("{cursor}={id}"));
        q.extend(
            after
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v))),
        );
        format!("<{base}{path}?{}>", q.join("&"))
    };
    format!(
        "{}; rel=\"next\", {}; rel=\"prev\"",
        build("max_id", last),
        build("min_id", first)
    )
}

impl Params {
    /// The `(key, value)` pairs of `keys` present in the request, in the order of `keys`.
    pub fn carry(&self, keys: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for key in keys {
            for v in self.all(key) {
                out.push((key.to_string(), v.to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_keep_repeated_keys_and_decode() {
        let p = Params::parse(Some("types%5B%5D=mention&types[]=follow&q=a+b%21&x"));
        assert_eq!(p.all("types[]"), vec!["mention", "follow"]);
        assert_eq!(p.get("q"), Some("a b!"));
        assert_eq!(p.get("x"), Some(""));
        assert_eq!(Params::parse(Some("q=%")).get("q"), Some("%"));
        assert_eq!(Params::parse(Some("q=%4")).get("q"), Some("%4"));
    }

    #[test]
    fn page_respects_cursors() {
        let ids: Vec<u64> = (1..=10).collect();
        let c = |max_id, since_id, min_id, limit| Cursor {
            max_id,
            since_id,
            min_id,
            limit,
        };
        assert_eq!(
            c(None, None, None, 3).page(&ids, u64::MAX, |_| true),
            vec![10, 9, 8]
        );
        assert_eq!(
            c(Some(8), None, None, 3).page(&ids, u64::MAX, |_| true),
            vec![7, 6, 5]
        );
        assert_eq!(
            c(None, Some(5), None, 3).page(&ids, u64::MAX, |_| true),
            vec![10, 9, 8]
        );
        assert_eq!(
            c(None, None, Some(5), 3).page(&ids, u64::MAX, |_| true),
            vec![8, 7, 6]
        );
        assert_eq!(
            c(None, None, None, 3).page(&ids, 4, |_| true),
            vec![4, 3, 2]
        );
        assert!(c(Some(1), None, None, 3)
            .page(&ids, u64::MAX, |_| true)
            .is_empty());
        assert_eq!(
            c(None, None, None, 3).page(&ids, u64::MAX, |x| x % 2 == 0),
            vec![10, 8, 6]
        );
    }
}
