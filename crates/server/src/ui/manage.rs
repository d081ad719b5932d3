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

use super::form::Fields;
use super::session::{Ctx, Signed};
use super::view::{FlashQuery, ListQuery, Pager, count, enc, when};
use super::wizard::Errors;
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
            let errors = Errors::from_error(&e.0).all().join("; ");
            Ok(unprocessable(render(&firmware_list(&state, &signed, &ListQuery::default(), errors).await?)))
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
    form: Fields,
    errors: Errors,
}

async fn groups_page(
    state: &AppState,
    signed: &Signed,
    q: &ListQuery,
    form: Fields,
    errors: Errors,
) -> UiResult<GroupsPage> {
    let req = q.request(sortable::GROUPS, "name")?;
    let mut rows = state.app.list_groups(&signed.actor, &req).await?.items;
    let pager = Pager::cut(&mut rows, q, "/ui/groups", &[("q", q.search())]);
    Ok(GroupsPage { ctx: signed.ctx("groups"), rows, pager, q: q.search(), form, errors })
}

pub async fn groups(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let mut page = groups_page(&state, &signed, &q, Fields::default(), Errors::default()).await?;
    page.ctx = page.ctx.flash(&flash);
    Ok(render(&page))
}

/// Creates a group (`action=create`) or deletes one (`action=delete`).
pub async fn change_groups(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let form = signed.form(&headers, &body)?;
    let result = match form.get("action") {
        Some("delete") => state.app.delete_group(&signed.actor, form.get("id").unwrap_or("")).await.map(|_| "deleted"),
        _ => {
            let new = updraft_app::groups::NewGroup {
                id: form.text("id"),
                name: form.text("name").unwrap_or_default(),
                description: form.text("description"),
                product: form.text("product"),
            };
            state.app.create_group(&signed.actor, new).await.map(|_| "created")
        }
    };
    match result {
        Ok(done) => Ok(Redirect::to(&format!("/ui/groups?flash=group_{done}")).into_response()),
        Err(e) if shown_again(&e) => Ok(unprocessable(render(
            &groups_page(&state, &signed, &ListQuery::default(), form, Errors::from_error(&e)).await?,
        ))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "ui/filters.html")]
struct FiltersPage {
    ctx: Ctx,
    rows: Vec<(SavedFilter, String)>,
    pager: Pager,
    q: String,
    form: Fields,
    errors: Errors,
}

async fn filters_page(
    state: &AppState,
    signed: &Signed,
    q: &ListQuery,
    form: Fields,
    errors: Errors,
) -> UiResult<FiltersPage> {
    let req = q.request(sortable::SAVED_FILTERS, "name")?;
    let mut items = state.app.list_saved_filters(&signed.actor, &req).await?.items;
    let pager = Pager::cut(&mut items, q, "/ui/filters", &[("q", q.search())]);
    let rows = items.into_iter().map(|f| (f.filter.to_text(), f)).map(|(t, f)| (f, t)).collect();
    Ok(FiltersPage { ctx: signed.ctx("filters"), rows, pager, q: q.search(), form, errors })
}

pub async fn filters(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let mut page = filters_page(&state, &signed, &q, Fields::default(), Errors::default()).await?;
    page.ctx = page.ctx.flash(&flash);
    Ok(render(&page))
}

/// Saves a filter given in the filter language (`action=create`) or deletes one.
pub async fn change_filters(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let form = signed.form(&headers, &body)?;
    let result = match form.get("action") {
        Some("delete") => {
            state.app.delete_saved_filter(&signed.actor, form.get("id").unwrap_or("")).await.map(|_| "deleted")
        }
        _ => match updraft_core::filter::Filter::parse(form.get("query").unwrap_or("")) {
            Err(e) => Err(updraft_app::Error::invalid(vec![e.to_field_error("query")])),
            Ok(filter) => {
                let new = updraft_app::filters::NewSavedFilter {
                    id: None,
                    name: form.text("name").unwrap_or_default(),
                    description: form.text("description"),
                    filter,
                };
                state.app.create_saved_filter(&signed.actor, new).await.map(|_| "created")
            }
        },
    };
    match result {
        Ok(done) => Ok(Redirect::to(&format!("/ui/filters?flash=filter_{done}")).into_response()),
        Err(e) if shown_again(&e) => Ok(unprocessable(render(
            &filters_page(&state, &signed, &ListQuery::default(), form, Errors::from_error(&e)).await?,
        ))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "ui/access.html")]
struct AccessPage {
    ctx: Ctx,
    keys: Vec<ApiKey>,
    users: Vec<User>,
    form: Fields,
    errors: Errors,
    /// A key just issued: its token, shown this once.
    issued: Option<(String, String)>,
    /// The newest entries of the audit log: when, who, what, of what.
    audit: Vec<(String, String, &'static str, String)>,
}

async fn access_page(state: &AppState, signed: &Signed, form: Fields, errors: Errors) -> UiResult<AccessPage> {
    let keys = state.app.list_keys(&signed.actor).await?;
    let users = state.app.list_users(&signed.actor).await.map_err(UiError)?;
    let request = updraft_app::audit::AuditRequest { limit: Some(50), ..Default::default() };
    let audit = state
        .app
        .list_audit(&signed.actor, request)
        .await?
        .into_iter()
        .map(|e| {
            let subject = e.change.subject().to_owned();
            (e.at.strftime("%Y-%m-%d %H:%M:%S").to_string(), e.actor.unwrap_or_default(), e.change.kind(), subject)
        })
        .collect();
    Ok(AccessPage { ctx: signed.ctx("access"), keys, users, form, errors, issued: None, audit })
}

/// API keys and users: an administrator's page (others are refused, as the API refuses them).
pub async fn access(
    State(state): State<AppState>,
    signed: Signed,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let mut page = access_page(&state, &signed, Fields::default(), Errors::default()).await?;
    page.ctx = page.ctx.flash(&flash);
    Ok(render(&page))
}

/// Adds or deletes a user, issues or deletes an API key (`action`).
pub async fn change_access(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let form = signed.form(&headers, &body)?;
    let app = &state.app;
    let id = form.get("id").unwrap_or("");
    let result = match form.get("action").unwrap_or("") {
        "add_user" => {
            let new = updraft_app::users::NewUser {
                name: form.text("name").unwrap_or_default(),
                role: form.text("role").unwrap_or_default(),
                password: form.get("password").unwrap_or("").to_owned(),
                tenant: None,
            };
            app.add_user(&signed.actor, new).await.map(|_| None)
        }
        "delete_user" => app.delete_user(&signed.actor, id).await.map(|_| None),
        "create_key" => {
            let new = updraft_app::keys::NewKey {
                role: form.text("key_role").unwrap_or_default(),
                name: form.text("key_name"),
                expires_at: None,
            };
            app.create_key(&signed.actor, new).await.map(|k| Some((k.key.id, k.token)))
        }
        "delete_key" => app.delete_key(&signed.actor, id).await.map(|_| None),
        other => Err(updraft_app::Error::field("action", format!("unknown action `{other}`"))),
    };
    match result {
        Ok(None) => Ok(Redirect::to("/ui/access?flash=access_changed").into_response()),
        Ok(Some(issued)) => {
            let mut page = access_page(&state, &signed, Fields::default(), Errors::default()).await?;
            page.issued = Some(issued);
            Ok(render(&page))
        }
        Err(e) if shown_again(&e) => {
            Ok(unprocessable(render(&access_page(&state, &signed, form, Errors::from_error(&e)).await?)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a form's error is the operator's to correct (the form is shown again with it).
fn shown_again(e: &updraft_app::Error) -> bool {
    matches!(e.code.kind(), updraft_app::Kind::BadRequest | updraft_app::Kind::Conflict)
}

/// A form shown again with its errors: 422.
fn unprocessable(mut r: Response) -> Response {
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}
