//! Signing in and out, the session cookie, and CSRF tokens.
//!
//! The session cookie holds the session's token (the store keeps its hash):
//! `HttpOnly`, `SameSite=Strict`, `Path=/ui`, and `Secure` when the dashboard
//! is served over TLS (or behind a proxy that says `X-Forwarded-Proto: https`).
//! Every form carries a CSRF token derived from the session's token, which a
//! page of another site can neither read nor guess; the sign-in form, before
//! any session, carries one matched against a cookie of its own.

use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use updraft_app::Actor;
use updraft_core::{Access, Role, User};

use super::form::Fields;
use super::{UiError, render};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "updraft_session";
const SIGN_IN_COOKIE: &str = "updraft_sign_in";

/// The value of the cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether the request came over TLS (directly, or through a proxy that says so).
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.ui_secure_cookies
        || state.settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are hex")
}

/// The CSRF token of a session: a hash of its token under a label, so that it
/// reveals nothing of the token and is the same on every page of the session.
fn csrf_of(token: &str) -> String {
    hex::encode(&Sha256::digest(format!("updraft-csrf\0{token}").as_bytes())[..16])
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in operator: their account, acting with its role, and the CSRF
/// token their forms carry.
#[derive(Debug, Clone)]
pub struct Signed {
    pub actor: Actor,
    pub user: User,
    pub csrf: String,
}

impl Signed {
    pub fn can(&self, access: Access) -> bool {
        self.user.role.allows(access)
    }

    /// Reads a form body, refusing it without this session's CSRF token.
    pub fn form(&self, headers: &HeaderMap, body: &[u8]) -> Result<Fields, UiError> {
        let fields = Fields::parse(body);
        self.check_csrf(&fields, headers)?;
        Ok(fields)
    }

    /// Refuses a form without this session's CSRF token (in its `csrf` field or
    /// the `X-CSRF-Token` header).
    pub fn check_csrf(&self, fields: &Fields, headers: &HeaderMap) -> Result<(), UiError> {
        let given =
            fields.get("csrf").or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok())).unwrap_or("");
        if same(given, &self.csrf) {
            Ok(())
        } else {
            Err(UiError(updraft_app::Error::new(
                updraft_app::error::ErrorCode::Forbidden,
                "this form is out of date or came from another site: reload the page and try again",
            )))
        }
    }

    /// What every page's frame shows of the operator.
    pub fn ctx(&self, section: &'static str) -> Ctx {
        Ctx {
            user: self.user.name.clone(),
            role: self.user.role.as_str(),
            tenant: self.user.tenant.clone(),
            csrf: self.csrf.clone(),
            section,
            can_write: self.can(Access::WriteFleet),
            is_admin: self.user.role == Role::Admin,
            flash: Vec::new(),
        }
    }
}

/// The frame of every page: who is signed in, where they are, what they may do.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user: String,
    pub role: &'static str,
    pub tenant: String,
    pub csrf: String,
    pub section: &'static str,
    pub can_write: bool,
    pub is_admin: bool,
    /// Messages at the top of the page (after a redirect).
    pub flash: Vec<String>,
}

impl Ctx {
    pub fn flash(mut self, q: &super::view::FlashQuery) -> Self {
        self.flash = q.messages();
        self
    }

    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

/// Sends the browser to the sign-in page, to come back here after.
pub struct SignInFirst(String);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let next: String = form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        Redirect::to(&format!("/ui/sign-in?next={next}")).into_response()
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let back = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/ui".into());
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(SignInFirst(back).into_response());
        };
        let actor = match state.app.authenticate_session(token).await {
            Ok(actor) => actor,
            Err(e) if e.code == updraft_app::error::ErrorCode::Unauthorized => {
                return Err(SignInFirst(back).into_response());
            }
            Err(e) => return Err(UiError(e).into_response()),
        };
        let Actor::User(user) = &actor else { return Err(SignInFirst(back).into_response()) };
        actor.act();
        Ok(Signed { user: user.clone(), csrf: csrf_of(token), actor })
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct SignInPage {
    next: String,
    csrf: String,
    name: String,
    error: Option<String>,
    notice: Option<String>,
}

/// Only paths of the dashboard are followed after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/ui".to_owned(),
    }
}

fn new_secret() -> String {
    updraft_app::actor::new_token("")
}

fn sign_in_form(state: &AppState, headers: &HeaderMap, page: SignInPage, status: axum::http::StatusCode) -> Response {
    let mut r = render(&page);
    *r.status_mut() = status;
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, &page.csrf, Some(3600), over_tls(state, headers)));
    r
}

pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<SignInQuery>) -> Response {
    let page = SignInPage {
        next: safe_next(q.next.as_deref()),
        csrf: new_secret(),
        name: String::new(),
        error: None,
        notice: q.signed_out.map(|_| "You are signed out.".to_owned()),
    };
    sign_in_form(&state, &headers, page, axum::http::StatusCode::OK)
}

pub async fn sign_in(
    State(state): State<AppState>,
    crate::state::Peer(peer): crate::state::Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let next = safe_next(fields.get("next"));
    let name = fields.get("name").unwrap_or("").trim().to_owned();
    let again = |error: &str, status| {
        let page = SignInPage {
            next: next.clone(),
            csrf: new_secret(),
            name: name.clone(),
            error: Some(error.to_owned()),
            notice: None,
        };
        sign_in_form(&state, &headers, page, status)
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !same(fields.get("csrf").unwrap_or(""), expected) {
        return again("This form is out of date: please sign in again.", axum::http::StatusCode::FORBIDDEN);
    }
    if let Err(retry_after) = state.auth_blocked(peer) {
        let message = format!("Too many failed sign-ins from this address: try again in {retry_after} s.");
        let mut r = again(&message, axum::http::StatusCode::TOO_MANY_REQUESTS);
        r.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
        return r;
    }
    match state.app.sign_in(&name, fields.get("password").unwrap_or("")).await {
        Ok(signed) => {
            let secure = over_tls(&state, &headers);
            let max_age = signed.session.expires_at.as_second() - signed.session.created_at.as_second();
            let mut r = Redirect::to(&next).into_response();
            let h = r.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &signed.token, Some(max_age), secure));
            h.append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, "", Some(0), secure));
            r
        }
        Err(e) if e.code == updraft_app::error::ErrorCode::Unauthorized => {
            state.auth_failed(peer);
            again("Unknown name or wrong password.", axum::http::StatusCode::UNAUTHORIZED)
        }
        Err(e) => again(&e.message, axum::http::StatusCode::BAD_REQUEST),
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = signed.form(&headers, &body) {
        return e.into_response();
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.app.sign_out(token).await
    {
        tracing::warn!(error = %e.message, "sign-out failed");
    }
    let mut r = Redirect::to("/ui/sign-in?signed_out=1").into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0), over_tls(&state, &headers)));
    r
}
