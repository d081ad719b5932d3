//! Device filters: estimating and previewing what a filter matches, and saved
//! filters. A filter is given in its text form (`query`), its JSON form
//! (`filter`) or as a saved filter's id (`filter_id`); saved filters answer
//! both forms. The language is documented in `docs/filters.md`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use updraft_api::filters::{
    EstimateOut, FilterSpecIn, PreviewIn, PreviewOut, SavedFilterIn, SavedFilterOut, SavedFilterPatch,
};
use updraft_app::filters::{FilterSpec, NewSavedFilter, SavedFilterChange};
use updraft_app::{SavedFilter, sortable};
use updraft_core::filter::{Filter, FilterError, Location};

use super::{ListParams, PageOut};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Devices a preview shows by default, and at most.
pub const PREVIEW_DEFAULT: u32 = 50;
pub const PREVIEW_MAX: u32 = 1000;

/// A saved filter on the wire, in both forms.
fn saved_filter_out(f: SavedFilter) -> SavedFilterOut {
    SavedFilterOut {
        query: f.filter.to_text(),
        filter: serde_json::to_value(f.filter.to_json()).expect("the JSON form serializes"),
        id: f.id,
        name: f.name,
        description: f.description,
        created_at: f.created_at,
        updated_at: f.updated_at,
        updated_by: f.updated_by,
    }
}

/// One problem with a filter, as the API reports it in `details`.
fn problem(field: &str, e: &FilterError) -> Value {
    let mut p = json!({
        "field": field,
        "kind": e.kind.code(),
        "message": e.message,
        "expected": e.expected,
        "found": e.found,
    });
    match &e.location {
        Location::Text { offset, line, column } => {
            p["offset"] = json!(offset);
            p["line"] = json!(line);
            p["column"] = json!(column);
        }
        Location::Json { path } => {
            p["path"] = json!(path);
            if !path.is_empty() {
                p["field"] = json!(format!("{field}.{path}"));
            }
        }
        Location::Unknown => {}
    }
    p
}

/// A 400 `invalid_filter` naming every problem, each with where it is.
pub fn invalid_filter(field: &str, errors: &[FilterError]) -> ApiError {
    // A problem in the JSON form is named by its path (`filter.status.connection_status`),
    // one in the text form by its place in the text (`query: at line 1, column 9: …`).
    let say = |e: &FilterError| match &e.location {
        Location::Json { path } if path.is_empty() => format!("{field}: {}", e.describe()),
        Location::Json { path } => format!("{field}.{path}: {}", e.describe()),
        _ => format!("{field}: {e}"),
    };
    let message = match errors {
        [one] => say(one),
        [first, rest @ ..] => format!("{} (and {} more problems)", say(first), rest.len()),
        [] => format!("{field}: the filter is invalid"),
    };
    let details: Vec<Value> = errors.iter().map(|e| problem(field, e)).collect();
    ApiError::new(ErrorCode::InvalidFilter, message).with_details(details)
}

/// Reads the text form.
pub fn parse_query(field: &str, text: &str) -> ApiResult<Filter> {
    Filter::parse(text).map_err(|e| invalid_filter(field, &[e]))
}

/// Reads the JSON form (`null`, an array or an empty object are refused: see
/// [`Filter::from_json_value`]).
pub fn parse_json(field: &str, value: Value) -> ApiResult<Filter> {
    Filter::from_json_value(value).map_err(|errors| invalid_filter(field, &errors))
}

/// The filter given by a query text or a JSON form, exactly one of them.
fn given(query: Option<String>, filter: Option<Value>) -> ApiResult<Option<Filter>> {
    match (query, filter) {
        (Some(_), Some(_)) => Err(ApiError::field("query", "give either `query` or `filter`, not both")),
        (Some(q), None) => parse_query("query", &q).map(Some),
        (None, Some(f)) => parse_json("filter", f).map(Some),
        (None, None) => Ok(None),
    }
}

/// Which filter a request names: by text, JSON or saved filter id, exactly one of them.
pub fn spec(spec: FilterSpecIn) -> ApiResult<FilterSpec> {
    let FilterSpecIn { query, filter, filter_id } = spec;
    match (given(query, filter)?, filter_id) {
        (Some(_), Some(_)) => Err(ApiError::field("filter_id", "give one of `query`, `filter` and `filter_id`")),
        (Some(f), None) => Ok(FilterSpec::Given(f)),
        (None, Some(id)) => Ok(FilterSpec::Saved(id)),
        (None, None) => Err(ApiError::field("query", "give one of `query`, `filter` and `filter_id`")),
    }
}

#[utoipa::path(post, path = "/api/v1/filters/estimate", tag = "filters", request_body = FilterSpecIn,
    responses((status = 200, body = EstimateOut), (status = 400, description = "`invalid_filter`, with where and why")))]
pub async fn estimate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<FilterSpecIn>,
) -> ApiResult<Json<EstimateOut>> {
    let count = state.estimate_filter(&caller.actor, spec(input)?).await?;
    Ok(Json(EstimateOut { count }))
}

#[utoipa::path(post, path = "/api/v1/filters/preview", tag = "filters", request_body = PreviewIn,
    responses((status = 200, body = PreviewOut), (status = 400, description = "`invalid_filter`, with where and why")))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<PreviewIn>,
) -> ApiResult<Json<PreviewOut>> {
    let limit = input.limit.unwrap_or(PREVIEW_DEFAULT);
    if limit == 0 || limit > PREVIEW_MAX {
        return Err(ApiError::field("limit", format!("must be between 1 and {PREVIEW_MAX}")));
    }
    let spec = spec(FilterSpecIn { query: input.query, filter: input.filter, filter_id: input.filter_id })?;
    let devices = state.preview_filter(&caller.actor, spec, limit).await?;
    Ok(Json(PreviewOut { items: devices.into_iter().map(Into::into).collect(), limit }))
}

#[utoipa::path(post, path = "/api/v1/filters", tag = "filters", request_body = SavedFilterIn,
    responses((status = 201, body = SavedFilterOut), (status = 400, description = "`invalid_filter` or `validation_failed`"),
        (status = 409, description = "the id is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<SavedFilterIn>,
) -> ApiResult<(StatusCode, Json<SavedFilterOut>)> {
    let filter = given(input.query, input.filter)?
        .ok_or_else(|| ApiError::field("query", "give the filter as `query` (text) or `filter` (JSON)"))?;
    let input = NewSavedFilter { id: input.id, name: input.name, description: input.description, filter };
    let saved = state.create_saved_filter(&caller.actor, input).await?;
    Ok((StatusCode::CREATED, Json(saved_filter_out(saved))))
}

#[utoipa::path(get, path = "/api/v1/filters", tag = "filters", params(ListParams),
    responses((status = 200, body = PageOut<SavedFilterOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<SavedFilterOut>>> {
    let req = params.page(sortable::SAVED_FILTERS)?;
    let page = state.list_saved_filters(&caller.actor, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, saved_filter_out)))
}

#[utoipa::path(get, path = "/api/v1/filters/{id}", tag = "filters", responses((status = 200, body = SavedFilterOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SavedFilterOut>> {
    Ok(Json(saved_filter_out(state.get_saved_filter(&caller.actor, &id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/filters/{id}", tag = "filters", request_body = SavedFilterPatch,
    responses((status = 200, body = SavedFilterOut)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<SavedFilterPatch>,
) -> ApiResult<Json<SavedFilterOut>> {
    let filter = given(patch.query, patch.filter)?;
    let change = SavedFilterChange { name: patch.name, description: patch.description, filter };
    Ok(Json(saved_filter_out(state.update_saved_filter(&caller.actor, &id, change).await?)))
}

#[utoipa::path(delete, path = "/api/v1/filters/{id}", tag = "filters", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_saved_filter(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
