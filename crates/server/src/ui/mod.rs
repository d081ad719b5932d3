//! The dashboard: server-rendered pages at `/ui` over the same use cases as
//! the REST API (`updraft-app`), for operators signed in with an account.
//!
//! Pages are askama templates (`templates/ui/`); the stylesheet and the one
//! small script are in `assets/ui/`, embedded in the binary. Every form posts
//! and is answered with a redirect (or the same page with its errors next to
//! the fields they name), so the pages work without the script; the script
//! adds the wizard's steps and live estimate, a job's live page (server-sent
//! events fed by the event stream) and the upload's progress bar.
//!
//! Lists are paged, searched and sorted by the store; no page loads a table.

mod charts;
mod devices;
mod form;
mod jobs;
mod live;
mod manage;
mod overview;
mod session;
mod view;
mod wizard;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::AppState;
pub use session::Signed;

/// The dashboard's routes, under `/ui`, and `/` sending browsers there.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(overview::page))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/assets/ui.css", get(css))
        .route("/ui/assets/ui.js", get(js))
        .route("/ui/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/new", get(wizard::page).post(wizard::create))
        .route("/ui/jobs/new/estimate", post(wizard::estimate))
        .route("/ui/jobs/new/preview", post(wizard::preview))
        .route("/ui/jobs/{id}", get(jobs::page))
        .route("/ui/jobs/{id}/live", get(live::stream))
        .route("/ui/jobs/{id}/schedule", get(jobs::schedule_page).post(jobs::set_schedule))
        .route("/ui/jobs/{id}/{command}", post(jobs::command))
        .route("/ui/devices", get(devices::list))
        .route("/ui/devices/{id}", get(devices::page))
        .route("/ui/firmware", get(manage::firmware).post(manage::upload).layer(crate::api::firmware::body_limit()))
        .route("/ui/firmware/{id}", get(manage::firmware_page))
        .route("/ui/groups", get(manage::groups).post(manage::change_groups))
        .route("/ui/filters", get(manage::filters).post(manage::change_filters))
        .route("/ui/access", get(manage::access).post(manage::change_access))
        .route("/ui/{*rest}", get(not_found))
}

/// Any other path under `/ui`: the error page, as HTML.
async fn not_found() -> UiError {
    UiError(updraft_app::Error::new(updraft_app::ErrorCode::NotFound, "There is no such page."))
}

async fn css() -> Response {
    asset(include_str!("../../assets/ui/ui.css"), "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(include_str!("../../assets/ui/ui.js"), "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    r
}

/// A page rendered, or the error page.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => page_response(StatusCode::OK, html),
        Err(e) => {
            tracing::error!(error = %e, "page did not render");
            page_response(StatusCode::INTERNAL_SERVER_ERROR, "<p>This page could not be shown.</p>".into())
        }
    }
}

fn page_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

/// An error of the application shown as a page (a missing job, a refused
/// call), with the status the REST API would answer.
pub struct UiError(pub updraft_app::Error);

impl From<updraft_app::Error> for UiError {
    fn from(e: updraft_app::Error) -> Self {
        UiError(e)
    }
}

impl From<crate::error::ApiError> for UiError {
    fn from(e: crate::error::ApiError) -> Self {
        UiError(e.0)
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    status: u16,
    code: &'static str,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        use crate::error::HttpStatus;
        let status = self.0.code.status();
        let page = ErrorPage { status: status.as_u16(), code: self.0.code.code(), message: self.0.message };
        match page.render() {
            Ok(html) => page_response(status, html),
            Err(_) => status.into_response(),
        }
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;
