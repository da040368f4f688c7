//! The columns of every table view, declared once: the renderer draws them, `Shift-O` sorts by the
//! selected one, and each column's Shift+letter shortcut is bound from here.

use crate::db::browse::Table;

use super::action::ViewId;

/// One column of a table view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header text.
    pub title: &'static str,
    /// Width in cells (0: take what is left).
    pub width: u16,
    /// The data layer's sort key, when the column sorts.
    pub sort: Option<&'static str>,
    /// The Shift+letter that sorts by it.
    pub shortcut: Option<char>,
    /// Sort descending first (numbers and times).
    pub desc_first: bool,
}

const fn col(
    title: &'static str,
    width: u16,
    sort: Option<&'static str>,
    shortcut: Option<char>,
    desc_first: bool,
) -> Column {
    Column {
        title,
        width,
        sort,
        shortcut,
        desc_first,
    }
}

const CAMPAIGNS: &[Column] = &[
    col("ID", 6, Some("id"), Some('I'), true),
    col("NAME", 0, Some("name"), Some('M'), false),
    col("PLATFORM", 10, None, None, false),
    col("STATUS", 9, Some("status"), Some('T'), false),
    col("CANDIDATES", 10, Some("candidates"), None, true),
    col("LEADS", 7, Some("leads"), None, true),
    col("APPROVED", 9, None, None, true),
    col("SENT", 7, Some("sent"), Some('S'), true),
    col("REPLIED", 8, Some("replied"), Some('Y'), true),
    col("CREATED", 16, Some("created"), Some('A'), true),
];

const CANDIDATES: &[Column] = &[
    col("PROFILE", 8, Some("profile"), None, true),
    col("HANDLE", 0, Some("handle"), Some('H'), false),
    col("SCORE", 7, Some("score"), Some('S'), true),
    col("FOLLOWERS", 10, Some("followers"), Some('F'), true),
    col("LANG", 5, Some("language"), None, false),
    col("ADDED", 16, Some("added"), Some('A'), true),
];

const LEADS: &[Column] = &[
    col("ID", 7, Some("id"), Some('I'), true),
    col("HANDLE", 0, Some("handle"), Some('H'), false),
    col("SCORE", 6, Some("score"), Some('S'), true),
    col("STATUS", 10, Some("status"), Some('T'), false),
    col("FOLLOWERS", 10, Some("followers"), Some('F'), true),
    col("CAMPAIGN", 14, Some("campaign"), Some('P'), false),
    col("CREATED", 16, Some("created"), Some('A'), true),
    col("UPDATED", 16, Some("updated"), Some('U'), true),
];

const APPROVALS: &[Column] = &[
    col("BATCH", 7, Some("id"), Some('I'), true),
    col("CAMPAIGN", 0, Some("campaign"), Some('P'), false),
    col("STATUS", 12, Some("status"), Some('T'), false),
    col("MESSAGES", 9, Some("messages"), Some('M'), true),
    col("CREATED", 16, Some("created"), Some('A'), true),
    col("APPROVED", 16, Some("approved"), None, true),
];

const MESSAGES: &[Column] = &[
    col("ID", 7, Some("id"), Some('I'), true),
    col("TO", 18, Some("handle"), Some('H'), false),
    col("FROM", 14, Some("account"), Some('K'), false),
    col("STATUS", 10, Some("status"), Some('T'), false),
    col("TRY", 4, Some("attempts"), None, true),
    col("PLANNED", 16, Some("planned"), Some('W'), true),
    col("SENT", 16, Some("sent"), Some('E'), true),
    col("BODY / ERROR", 0, None, None, false),
];

const JOBS: &[Column] = &[
    col("ID", 7, Some("id"), Some('I'), true),
    col("KIND", 20, Some("kind"), Some('K'), false),
    col("STATUS", 10, Some("status"), Some('T'), false),
    col("TRY", 5, Some("attempts"), None, true),
    col("PROGRESS", 18, Some("progress"), Some('P'), true),
    col("FINISHED", 16, Some("finished"), Some('F'), true),
    col("ERROR", 0, None, None, false),
];

const ACCOUNTS: &[Column] = &[
    col("ID", 5, Some("id"), Some('I'), false),
    col("HANDLE", 0, Some("handle"), Some('H'), false),
    col("PLATFORM", 10, Some("platform"), None, false),
    col("SENT 24H", 9, Some("sent"), Some('E'), true),
    col("DAILY", 6, None, None, true),
    col("HOURLY", 7, None, None, true),
    col("GAP", 6, None, None, true),
    col("TZ", 16, None, None, false),
    col("PAUSED UNTIL", 16, Some("paused"), Some('U'), true),
];

const LOGS: &[Column] = &[
    col("TIME", 12, None, None, false),
    col("LEVEL", 6, None, None, false),
    col("TARGET", 24, None, None, false),
    col("MESSAGE", 0, None, None, false),
];

/// The columns of a view (empty for detail views).
pub fn columns(view: ViewId) -> &'static [Column] {
    match view {
        ViewId::Campaigns => CAMPAIGNS,
        ViewId::Candidates => CANDIDATES,
        ViewId::Leads => LEADS,
        ViewId::Approvals => APPROVALS,
        ViewId::Messages => MESSAGES,
        ViewId::Jobs => JOBS,
        ViewId::Accounts => ACCOUNTS,
        ViewId::Logs => LOGS,
        ViewId::Profile | ViewId::Batch => &[],
    }
}

/// The data-layer table behind a view (`None`: the view is not a database list).
pub fn table(view: ViewId) -> Option<Table> {
    Some(match view {
        ViewId::Campaigns => Table::Campaigns,
        ViewId::Candidates => Table::Candidates,
        ViewId::Leads => Table::Leads,
        ViewId::Approvals => Table::Batches,
        ViewId::Messages => Table::Messages,
        ViewId::Jobs => Table::Jobs,
        ViewId::Accounts => Table::Accounts,
        ViewId::Logs | ViewId::Profile | ViewId::Batch => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::browse::sort_keys;

    #[test]
    fn every_sortable_column_names_a_key_the_data_layer_knows() {
        for v in ViewId::ALL {
            if let Some(t) = table(v) {
                for c in columns(v) {
                    if let Some(k) = c.sort {
                        assert!(sort_keys(t).contains(&k), "{v:?} {k}");
                    }
                }
            }
        }
    }
}
