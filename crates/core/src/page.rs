//! Paging, sorting and searching of lists, the same for every resource.

use serde::Serialize;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;
/// The largest offset: what the databases' signed 64-bit OFFSET takes.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A validated list request: which slice, in which order, matching what text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub offset: u64,
    /// A field name from the resource's sortable list; the store maps it to a column.
    pub sort: String,
    pub order: SortOrder,
    /// Case-insensitive substring searched in the resource's text fields.
    pub search: Option<String>,
    /// Whether to count every match (`Page::total`); without it, `total` is
    /// only the number of items returned, and the list is cheaper.
    pub count_total: bool,
}

impl PageRequest {
    /// Validates raw list parameters against the fields a resource can be sorted by.
    /// `sort` may be prefixed with `-` for descending order; `sortable[0]` is the default.
    pub fn parse(
        limit: Option<u32>,
        offset: Option<u64>,
        sort: Option<&str>,
        search: Option<&str>,
        sortable: &[&str],
    ) -> Result<Self, crate::Error> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(crate::Error::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let (field, order) = match sort {
            None | Some("") => (sortable[0], SortOrder::Asc),
            Some(s) => match s.strip_prefix('-') {
                Some(f) => (f, SortOrder::Desc),
                None => (s.strip_prefix('+').unwrap_or(s), SortOrder::Asc),
            },
        };
        let Some(field) = sortable.iter().find(|f| **f == field) else {
            return Err(crate::Error::invalid(
                "sort",
                format!("cannot sort by `{field}`; sortable fields: {}", sortable.join(", ")),
            ));
        };
        if offset.is_some_and(|o| o > MAX_OFFSET) {
            return Err(crate::Error::invalid("offset", format!("must be at most {MAX_OFFSET}")));
        }
        if search.is_some_and(|s| s.chars().count() > 256) {
            return Err(crate::Error::invalid("search", "must be at most 256 characters"));
        }
        let search = search.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(Self { limit, offset: offset.unwrap_or(0), sort: (*field).to_owned(), order, search, count_total: true })
    }

    pub fn all() -> Self {
        Self {
            limit: MAX_LIMIT,
            offset: 0,
            sort: String::new(),
            order: SortOrder::Asc,
            search: None,
            count_total: true,
        }
    }
}

/// One page of a list and the total number of items matching.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_parsing() {
        let p = PageRequest::parse(None, None, Some("-name"), Some("  x "), &["id", "name"]).unwrap();
        assert_eq!(p.sort, "name");
        assert_eq!(p.order, SortOrder::Desc);
        assert_eq!(p.search.as_deref(), Some("x"));
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert!(PageRequest::parse(None, None, Some("secret"), None, &["id"]).is_err());
        assert!(PageRequest::parse(Some(0), None, None, None, &["id"]).is_err());
        assert!(PageRequest::parse(Some(MAX_LIMIT + 1), None, None, None, &["id"]).is_err());
        let d = PageRequest::parse(None, None, None, Some(" "), &["id"]).unwrap();
        assert_eq!((d.sort.as_str(), d.order, d.search), ("id", SortOrder::Asc, None));
    }
}
