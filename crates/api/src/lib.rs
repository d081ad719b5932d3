//! The management API's wire types (`/api/v1`), shared by the server, which
//! reads requests and writes answers with them, and by its clients (the CLI,
//! the simulator), which write requests and read answers with them: one
//! definition of every field name, so client and server cannot drift apart.
//!
//! One module per resource, named as the server's handlers are: requests
//! `*In` and `*Patch`, answers `*Out`, query parameters `*Params`. Requests
//! are read strictly (`deny_unknown_fields`); answers are read leniently (a
//! field a newer server adds is ignored). Conversions from `updraft_core`'s
//! values live here too, as they need nothing more; conversions that need the
//! application layer stay in the server.
//!
//! With the `openapi` feature (the server's), every type also describes
//! itself for the OpenAPI document (`utoipa::ToSchema`, `IntoParams`), with
//! the shared schemas in [`schemas`]. Without it the crate depends on serde,
//! jiff and `updraft-core` only, which keeps clients lean.

pub mod access_keys;
pub mod audit;
pub mod code_signing;
pub mod devices;
pub mod filters;
pub mod firmware;
pub mod gateway_tokens;
pub mod group_tokens;
pub mod groups;
pub mod jobs;
pub mod keys;
pub mod products;
#[cfg(feature = "openapi")]
pub mod schemas;
pub mod tenants;
pub mod trust;
pub mod users;

use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use updraft_core::PropertyValue;
use updraft_core::{Page, PageRequest};

/// Paging and search parameters shared by every list.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListParams {
    /// Items per page, 1–1000 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[cfg_attr(feature = "openapi", param(maximum = 9223372036854775807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Field to sort by; prefix with `-` for descending order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Case-insensitive text searched in the resource's names and ids.
    #[cfg_attr(feature = "openapi", param(max_length = 256))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}

impl ListParams {
    /// The page asked for, checked against the fields a list can sort by.
    pub fn page(&self, sortable: &[&str]) -> Result<PageRequest, updraft_core::Error> {
        PageRequest::parse(self.limit, self.offset, self.sort.as_deref(), self.search.as_deref(), sortable)
    }
}

/// One page of a list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageOut<T> {
    pub items: Vec<T>,
    /// How many items match in all.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

impl<T> PageOut<T> {
    pub fn from_page<D>(page: Page<D>, req: &PageRequest, f: impl FnMut(D) -> T) -> Self {
        PageOut {
            items: page.items.into_iter().map(f).collect(),
            total: page.total,
            limit: req.limit,
            offset: req.offset,
        }
    }
}

/// A whole list, not paged (keys, tenants, gateway tokens).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemsOut<T> {
    pub items: Vec<T>,
    /// How many items there are.
    pub total: u64,
}

impl<T> ItemsOut<T> {
    pub fn new(items: Vec<T>) -> Self {
        ItemsOut { total: items.len() as u64, items }
    }
}

/// Every error answer of the management API: `{"error": {"code", "message", "details"}}`
/// (its schema is written by the server, with the table of codes).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorOut {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorBody {
    /// A stable code from the server's table (`x-error-codes` in the OpenAPI document).
    pub code: String,
    /// What is wrong, naming the field.
    pub message: String,
    /// More about the error: the broken fields (`[{field, message}]`), a filter's problems, an import's lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Reads a field that may be absent (`None`), `null` (`Some(None)`) or a value
/// (`Some(Some(v))`): patches clear a field with `null` and leave an absent one.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Reads a filter field that may be absent (`None`) or given, `null` included
/// (`Some(Value::Null)`), so that a `null` filter is refused rather than taken as none.
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::devices::DevicePatch;
    use crate::jobs::JobIn;

    /// A client sends only what it gives: an absent field stays absent (a patch leaves it, a
    /// filter is not `null`), a cleared one is `null`; the server reads it back unchanged.
    #[test]
    fn requests_carry_only_the_fields_given() {
        let patch =
            DevicePatch { hardware_version: Some(None), module_model: Some(Some("m2".into())), ..Default::default() };
        let sent = serde_json::to_value(&patch).unwrap();
        assert_eq!(sent, json!({"hardware_version": null, "module_model": "m2"}));
        let read: DevicePatch = serde_json::from_value(sent).unwrap();
        assert_eq!((read.hardware_version, read.template_id), (Some(None), None));

        let job = JobIn { firmware: "fw-1".into(), devices: vec!["d1".into()], ..Default::default() };
        let sent = serde_json::to_value(&job).unwrap();
        assert_eq!(sent, json!({"firmware": "fw-1", "devices": ["d1"]}));
        let read: JobIn = serde_json::from_value(sent).unwrap();
        assert!(read.filter.is_none() && read.devices == ["d1"]);
    }

    /// Requests are read strictly, answers leniently (a newer server may add fields).
    #[test]
    fn unknown_fields_are_refused_in_requests_and_ignored_in_answers() {
        assert!(serde_json::from_value::<JobIn>(json!({"firmware": "f", "colour": 1})).is_err());
        let answer = json!({"count": 3, "skipped": 1, "added_later": true});
        assert_eq!(serde_json::from_value::<crate::jobs::EstimateOut>(answer).unwrap().count, 3);
    }
}
