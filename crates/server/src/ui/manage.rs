//! Firmware (list, upload with progress, an image's files, hashes and
//! verification), groups, saved filters, and API keys and users (admins only).

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use updraft_app::{SavedFilter, sortable};
use updraft_core::{ApiKey, Firmware, Group, Product, User};

use super::session::{Ctx, Signed};
use super::view::{FlashQuery, ListQuery, Pager, count, enc, when};
use super::{UiError, UiResult, render};
use crate::state::AppState;

pub struct FirmwareRow {
    pub fw: Firmware,
    pub size: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "ui/firmware.html")]
struct FirmwarePage {
    ctx: Ctx,
    rows: Vec<FirmwareRow>,
    pager: Pager,
    q: String,
    products: Vec<Product>,
    error: String,
}

async fn firmware_list(state: &AppState, signed: &Signed, q: &ListQuery, error: String) -> UiResult<FirmwarePage> {
    let req = q.request(sortable::FIRMWARE, "-created_at")?;
    let mut items = state.app.list_firmware(&signed.actor, None, &req).await?.items;
    let pager = Pager::cut(&mut items, q, "/ui/firmware", &[("q", q.search())]);
    let mut preq = updraft_core::PageRequest::parse(Some(200), None, None, None, sortable::PRODUCTS)
        .map_err(updraft_app::Error::from)?;
    preq.count_total = false;
    let products = state.app.list_products(&signed.actor, &preq).await?.items;
    let rows = items
        .into_iter()
        .map(|fw| FirmwareRow { size: count(fw.total_size()), created: when(&fw.created_at), fw })
        .collect();
    Ok(FirmwarePage { ctx: signed.ctx("firmware"), rows, pager, q: q.search(), products, error })
}

pub async fn firmware(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let mut page = firmware_list(&state, &signed, &q, String::new()).await?;
    page.ctx = page.ctx.flash(&flash);
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct CsrfQuery {
    #[serde(default)]
    csrf: Option<String>,
}

/// An upload from the dashboard: the REST API's form, its CSRF token in the
/// query string (a multipart form's fields are the API's own).
pub async fn upload(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Query(cq): Query<CsrfQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> UiResult<Response> {
    let token = super::form::Fields::parse(format!("csrf={}", enc(cq.csrf.as_deref().unwrap_or(""))).as_bytes());
    signed.check_csrf(&token, &headers)?;
    let result = match crate::api::firmware::receive(&state, &signed.actor, &headers, multipart).await {
        Ok(input) => state.app.create_firmware(&signed.actor, input).await.map_err(crate::error::ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(fw) => Ok(Redirect::to(&format!("/ui/firmware/{}?flash=uploaded", enc(&fw.id))).into_response()),
        Err(e) => {
            let errors = super::wizard::Errors::from_error(&e.0);
            let mut r = render(&firmware_list(&state, &signed, &ListQuery::default(), errors.all().join("; ")).await?);
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

#[derive(Template)]
#[template(path = "ui/firmware_one.html")]
struct FirmwareOnePage {
    ctx: Ctx,
    fw: Firmware,
    created: String,
}

pub async fn firmware_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let fw = state.app.get_firmware(&signed.actor, &id).await?;
    Ok(render(&FirmwareOnePage { ctx: signed.ctx("firmware").flash(&flash), created: when(&fw.created_at), fw }))
}

#[derive(Template)]
#[template(path = "ui/groups.html")]
struct GroupsPage {
    ctx: Ctx,
    rows: Vec<Group>,
    pager: Pager,
    q: String,
}

pub async fn groups(State(state): State<AppState>, signed: Signed, Query(q): Query<ListQuery>) -> UiResult<Response> {
    let req = q.request(sortable::GROUPS, "name")?;
    let mut rows = state.app.list_groups(&signed.actor, &req).await?.items;
    let pager = Pager::cut(&mut rows, &q, "/ui/groups", &[("q", q.search())]);
    Ok(render(&GroupsPage { ctx: signed.ctx("groups"), rows, pager, q: q.search() }))
}

#[derive(Template)]
#[template(path = "ui/filters.html")]
struct FiltersPage {
    ctx: Ctx,
    rows: Vec<(SavedFilter, String)>,
    pager: Pager,
    q: String,
}

pub async fn filters(State(state): State<AppState>, signed: Signed, Query(q): Query<ListQuery>) -> UiResult<Response> {
    let req = q.request(sortable::SAVED_FILTERS, "name")?;
    let mut items = state.app.list_saved_filters(&signed.actor, &req).await?.items;
    let pager = Pager::cut(&mut items, &q, "/ui/filters", &[("q", q.search())]);
    let rows = items.into_iter().map(|f| (f.filter.to_text(), f)).map(|(t, f)| (f, t)).collect();
    Ok(render(&FiltersPage { ctx: signed.ctx("filters"), rows, pager, q: q.search() }))
}

#[derive(Template)]
#[template(path = "ui/access.html")]
struct AccessPage {
    ctx: Ctx,
    keys: Vec<ApiKey>,
    users: Vec<User>,
}

/// API keys and users: an administrator's page (others are refused, as the API refuses them).
pub async fn access(State(state): State<AppState>, signed: Signed) -> UiResult<Response> {
    let keys = state.app.list_keys(&signed.actor).await?;
    let users = state.app.list_users(&signed.actor).await.map_err(UiError)?;
    Ok(render(&AccessPage { ctx: signed.ctx("access"), keys, users }))
}
