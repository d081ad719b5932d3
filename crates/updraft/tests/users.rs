//! Operators' accounts and sessions (what the dashboard signs in with), through
//! the application layer of a real server, on SQLite and on PostgreSQL, with a
//! clock the test moves.

mod common;

use common::{ADMIN_TOKEN, Api, Backend, TestServer};
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;
use updraft_app::Actor;
use updraft_app::error::ErrorCode;
use updraft_app::keys::NewKey;
use updraft_app::users::NewUser;
use updraft_core::Access;

on_both_stores!(accounts_sign_in_act_with_their_role_and_end, the_users_api);

fn user(name: &str, role: &str, password: &str) -> NewUser {
    NewUser { name: name.into(), role: role.into(), password: password.into(), tenant: None }
}

fn fields(e: updraft_app::Error) -> Vec<String> {
    assert_eq!(e.code, ErrorCode::ValidationFailed, "{e:?}");
    e.details.unwrap().as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap().to_owned()).collect()
}

async fn accounts_sign_in_act_with_their_role_and_end(b: Backend) {
    let (server, clock) = TestServer::start_clocked(b, |_| {}).await;
    let app = &server.state.app;
    let admin = app.authenticate_key(ADMIN_TOKEN).await.unwrap();

    let bad = app.add_user(&admin, user("no spaces", "boss", "short")).await.unwrap_err();
    assert_eq!(fields(bad), ["name", "password", "role"], "every problem at once");
    let ann = app.add_user(&admin, user("ann@example.com", "operator", "correct horse battery")).await.unwrap();
    assert_eq!((ann.tenant.as_str(), ann.role.as_str()), ("default", "operator"));
    let taken = app.add_user(&admin, user("ann@example.com", "viewer", "another good password")).await;
    assert_eq!(taken.unwrap_err().code, ErrorCode::Conflict);
    let viewer_key =
        app.create_key(&admin, NewKey { role: "viewer".into(), name: None, expires_at: None }).await.unwrap();
    let viewer = app.authenticate_key(&viewer_key.token).await.unwrap();
    let refused = app.add_user(&viewer, user("eve", "admin", "let me in please")).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    let elsewhere = NewUser { tenant: Some("globex".into()), ..user("gus", "admin", "another tenant's") };
    assert_eq!(app.add_user(&viewer, elsewhere).await.unwrap_err().code, ErrorCode::Forbidden);

    // Signing in: a wrong password and an unknown name answer the same.
    let wrong = app.sign_in("ann@example.com", "correct horse battery!").await.unwrap_err();
    let unknown = app.sign_in("nobody", "correct horse battery").await.unwrap_err();
    assert_eq!((wrong.code, &wrong.message), (unknown.code, &unknown.message));
    assert_eq!(wrong.code, ErrorCode::Unauthorized);
    let signed = app.sign_in("ann@example.com", "correct horse battery").await.unwrap();
    assert!(signed.token.starts_with("upd_s_"));
    let me = app.authenticate_session(&signed.token).await.unwrap();
    assert!(matches!(&me, Actor::User(u) if u.id == ann.id));
    assert_eq!(me.name(), format!("user:{}", ann.id));
    me.require(Access::WriteFleet).unwrap();
    let no = me.require(Access::ManageKeys).unwrap_err();
    assert_eq!((no.code, no.message.as_str()), (ErrorCode::Forbidden, "a `operator` user may not manage API keys"));

    // Sessions end: on expiry, on sign-out, on a new password, with the user.
    clock.advance(SignedDuration::from_hours(12));
    assert_eq!(app.authenticate_session(&signed.token).await.unwrap_err().code, ErrorCode::Unauthorized);
    let second = app.sign_in("ann@example.com", "correct horse battery").await.unwrap();
    app.sign_out(&second.token).await.unwrap();
    assert!(app.authenticate_session(&second.token).await.is_err(), "signed out");
    let third = app.sign_in("ann@example.com", "correct horse battery").await.unwrap();
    let me = app.authenticate_session(&third.token).await.unwrap();
    app.set_user_password(&me, &ann.id, "a brand new passphrase").await.unwrap();
    assert!(app.authenticate_session(&third.token).await.is_err(), "a new password ends the sessions");
    assert!(app.sign_in("ann@example.com", "correct horse battery").await.is_err());
    let fourth = app.sign_in("ann@example.com", "a brand new passphrase").await.unwrap();
    assert_eq!(app.list_users(&admin).await.unwrap().len(), 1);
    app.delete_user(&admin, &ann.id).await.unwrap();
    assert!(app.authenticate_session(&fourth.token).await.is_err(), "a deleted user's sessions end");
    assert_eq!(app.delete_user(&admin, &ann.id).await.unwrap_err().code, ErrorCode::NotFound);
}

async fn the_users_api(b: Backend) {
    let api = Api::start(b).await;
    let created =
        api.post("/api/v1/users", json!({"name": "ann", "role": "viewer", "password": "correct horse battery"})).await;
    let ann = created.expect(201, None).clone();
    assert_eq!(
        (ann["name"].as_str(), ann["role"].as_str(), ann["tenant"].as_str()),
        (Some("ann"), Some("viewer"), Some("default"))
    );
    assert!(!ann.to_string().contains("correct horse"), "the password is never shown back: {ann}");
    let id = ann["id"].as_str().unwrap().to_owned();
    let listed = api.get("/api/v1/users").await.ok().clone();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let bad = api.post("/api/v1/users", json!({"name": "", "role": "root", "password": "short"})).await;
    let body = bad.expect(400, Some("validation_failed")).clone();
    assert!(!body.to_string().contains("short\""), "no password in an error: {body}");
    let fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "password", "role"]);
    api.post("/api/v1/users", json!({"name": "x", "role": "viewer", "password": "p", "admin": true}))
        .await
        .expect(400, Some("invalid_json"));
    let viewer = api.key("viewer").await;
    api.as_key(&viewer).get("/api/v1/users").await.expect(403, Some("forbidden"));

    let changed = api
        .call(Method::PUT, &format!("/api/v1/users/{id}/password"), Some(json!({"password": "a brand new passphrase"})))
        .await;
    assert_eq!(changed.status, 204);
    assert!(api.server.state.app.sign_in("ann", "a brand new passphrase").await.is_ok());
    assert_eq!(api.delete(&format!("/api/v1/users/{id}")).await.status, 204);
    api.delete(&format!("/api/v1/users/{id}")).await.expect(404, Some("not_found"));
}

/// `updraft user add` reads the password from standard input, never from an argument.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_users() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = TestServer::start(Backend::Sqlite).await;
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(args)
            .env("UPDRAFT_SERVER", format!("http://{}", server.addr))
            .env("UPDRAFT_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["user", "add", "ann", "--role", "operator", "--json"], "correct horse battery\n");
    assert!(ok, "{err}");
    let ann: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = ann["id"].as_str().unwrap().to_owned();
    assert!(
        server.state.app.sign_in("ann", "correct horse battery").await.is_ok(),
        "the line ending is not part of it"
    );
    let (ok, _, err) = run(&["user", "add", "bob", "--role", "viewer"], "");
    assert!(!ok && err.contains("standard input"), "{err}");
    let (ok, out, _) = run(&["user", "list"], "");
    assert!(ok && out.contains("ann") && out.contains("operator"), "{out}");
    let (ok, _, err) = run(&["user", "password", &id], "a brand new passphrase\n");
    assert!(ok, "{err}");
    assert!(server.state.app.sign_in("ann", "a brand new passphrase").await.is_ok());
    let (ok, _, err) = run(&["user", "delete", &id], "");
    assert!(ok && err.contains("deleted"), "{err}");
}
