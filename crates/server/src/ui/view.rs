//! What the pages share: list parameters and their pager, messages after a
//! redirect, and how times and numbers are written.

use jiff::Timestamp;
use serde::Deserialize;
use updraft_core::PageRequest;

/// Rows on one page of a list.
pub const PAGE_ROWS: u32 = 50;

/// A list's parameters, from the query string.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub page: Option<u64>,
}

impl ListQuery {
    pub fn page(&self) -> u64 {
        self.page.unwrap_or(1).clamp(1, 1_000_000)
    }

    pub fn search(&self) -> String {
        self.q.clone().unwrap_or_default()
    }

    /// The store's request for this page: one row more than shown, to know
    /// whether there is a next page without counting every match.
    pub fn request(&self, sortable: &[&str], default_sort: &str) -> Result<PageRequest, updraft_app::Error> {
        let sort = self.sort.as_deref().filter(|s| !s.is_empty()).unwrap_or(default_sort);
        let mut req = PageRequest::parse(
            Some(PAGE_ROWS + 1),
            Some((self.page() - 1) * u64::from(PAGE_ROWS)),
            Some(sort),
            self.q.as_deref(),
            sortable,
        )?;
        req.count_total = false;
        Ok(req)
    }
}

/// Links to the previous and next pages of a list.
#[derive(Debug, Clone)]
pub struct Pager {
    pub page: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub first_row: u64,
    pub last_row: u64,
}

impl Pager {
    /// Cuts `items` (fetched with [`ListQuery::request`]) to the page and links
    /// the neighbours, keeping the other parameters (`base` is the path, `keep`
    /// the other query pairs).
    pub fn cut<T>(items: &mut Vec<T>, q: &ListQuery, base: &str, keep: &[(&str, String)]) -> Pager {
        let more = items.len() > PAGE_ROWS as usize;
        items.truncate(PAGE_ROWS as usize);
        let page = q.page();
        let link = |p: u64| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in keep {
                if !v.is_empty() {
                    s.append_pair(k, v);
                }
            }
            s.append_pair("page", &p.to_string());
            format!("{base}?{}", s.finish())
        };
        let first_row = (page - 1) * u64::from(PAGE_ROWS) + 1;
        Pager {
            page,
            prev: (page > 1).then(|| link(page - 1)),
            next: more.then(|| link(page + 1)),
            first_row: if items.is_empty() { 0 } else { first_row },
            last_row: first_row + items.len() as u64 - 1,
        }
    }
}

/// The message a redirect asks the next page to show (`?flash=…`).
#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    #[serde(default)]
    pub flash: Option<String>,
}

impl FlashQuery {
    /// The messages a redirect asked for (seed 000: "created", then "saved").
    pub fn messages(&self) -> Vec<String> {
        let texts: &[&str] = match self.flash.as_deref().unwrap_or("") {
            "created" => &["The job was created.", "The job was saved."],
            "created_scheduled" => &["The job was created.", "The job was saved.", "The schedule was saved."],
            "scheduled" => &["The schedule was saved."],
            "schedule_cleared" => &["The job has no schedule now."],
            "started" => &["The job was started."],
            "paused" => &["The job was paused."],
            "resumed" => &["The job was resumed."],
            "canceled" => &["The job was canceled."],
            "force_canceled" => &["The job was canceled, and its executions in progress with it."],
            "next_phase" => &["The next phase is open."],
            "retried" => &["The failed executions were queued again."],
            "uploaded" => &["The firmware was uploaded."],
            "group_created" => &["The group was created."],
            "group_deleted" => &["The group was deleted."],
            "filter_created" => &["The filter was saved."],
            "filter_deleted" => &["The filter was deleted."],
            "access_changed" => &["Done."],
            _ => &[],
        };
        texts.iter().map(|t| t.to_string()).collect()
    }
}

/// A time as the dashboard writes it: `2026-12-02 14:05 UTC`.
pub fn when(t: &Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn when_opt(t: &Option<Timestamp>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "—".into())
}

/// A percentage with one decimal, or a dash.
pub fn percent(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1} %")).unwrap_or_else(|| "—".into())
}

/// A count with thousands separated by thin spaces (`1 000 000`).
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// The query string value of a path segment.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Text escaped for HTML (the fragments and charts written without a template).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
