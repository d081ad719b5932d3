//! The dashboard over HTTP, as a browser speaks to it (forms, cookies,
//! redirects, server-sent events), on SQLite and on PostgreSQL: signing in and
//! out, CSRF, what a viewer may do, the job wizard with its errors next to
//! their fields, commands from the jobs list, and a job's live stream. The
//! browser tests (`browser.rs`) drive the same pages in Chromium.

mod common;

use common::{Api, Backend, device_with_work};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use updraft_app::users::NewUser;

on_both_stores!(
    signing_in_and_out_with_csrf,
    a_viewer_changes_nothing,
    the_wizard_creates_a_job,
    a_job_page_is_live,
    groups_filters_users_and_keys,
    phases_force_cancel_and_an_abort_on_a_job_page
);

const PASSWORD: &str = "correct horse battery";

/// A browser without a script: follows nothing by itself, keeps its cookies.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    html: String,
}

impl Browser {
    fn new(api: &Api) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: api.server.url(""), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let r = req.header(COOKIE, self.cookie_header()).send().await.unwrap();
        let set_cookies: Vec<String> =
            r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        Page {
            status: r.status(),
            location: r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned()),
            set_cookies,
            html: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let page = self.get("/ui/sign-in").await;
        let csrf = csrf_of(&page.html);
        self.post("/ui/sign-in", &[("csrf", &csrf), ("next", "/ui/jobs"), ("name", name), ("password", password)]).await
    }
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("the page has a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn user(api: &Api, name: &str, role: &str) {
    let app = &api.server.state.app;
    let admin = app.authenticate_key(common::ADMIN_TOKEN).await.unwrap();
    let new = NewUser { name: name.into(), role: role.into(), password: PASSWORD.into(), tenant: None };
    app.add_user(&admin, new).await.unwrap();
}

async fn signing_in_and_out_with_csrf(b: Backend) {
    let api = Api::start(b).await;
    user(&api, "ann", "operator").await;
    let mut web = Browser::new(&api);

    let root = web.get("/").await;
    assert_eq!((root.status, root.location.as_deref()), (StatusCode::SEE_OTHER, Some("/ui")));
    let first = web.get("/ui/jobs?state=running").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "not signed in");
    assert_eq!(first.location.as_deref(), Some("/ui/sign-in?next=%2Fui%2Fjobs%3Fstate%3Drunning"));

    // A sign-in form posted without the cookie its page set is refused.
    let page = web.get("/ui/sign-in").await;
    let csrf = csrf_of(&page.html);
    let mut stranger = Browser::new(&api);
    let forged = stranger.post("/ui/sign-in", &[("csrf", &csrf), ("name", "ann"), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.set_cookies.iter().any(|c| c.starts_with("updraft_session=upd_s_")));

    let wrong = web.sign_in("ann", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.html.contains("Unknown name or wrong password."), "{}", wrong.html);
    assert!(wrong.html.contains("value=\"ann\""), "the name is kept");

    let ok = web.sign_in("ann", PASSWORD).await;
    assert_eq!((ok.status, ok.location.as_deref()), (StatusCode::SEE_OTHER, Some("/ui/jobs")));
    let session = ok.set_cookies.iter().find(|c| c.starts_with("updraft_session=")).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(session.contains(attribute), "{session} has {attribute}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: a Secure cookie would never come back");

    for path in ["/ui", "/ui/jobs", "/ui/jobs/new", "/ui/devices", "/ui/firmware", "/ui/groups", "/ui/filters"] {
        let p = web.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.html);
        assert!(p.html.contains("ann <span class=\"role\">(operator, default)</span>"), "{path}");
        assert!(p.html.contains("<html lang=\"en\">"), "{path}");
    }
    let nowhere = web.get("/ui/nowhere/at/all").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(nowhere.html.contains("There is no such page."), "an HTML page: {}", nowhere.html);
    let admin_only = web.get("/ui/access").await;
    assert_eq!(admin_only.status, StatusCode::FORBIDDEN, "keys and users are an administrator's");

    // Over TLS (a proxy says so) the cookie is Secure.
    let req = web.http.get(format!("{}/ui/sign-in", web.base)).header("x-forwarded-proto", "https");
    let tls = web.send(req).await;
    assert!(tls.set_cookies.iter().all(|c| c.contains("; Secure")), "{:?}", tls.set_cookies);

    // A form without the session's CSRF token changes nothing.
    let (_, _) = device_with_work(&api).await;
    let refused = web.post("/ui/jobs/rollout/pause", &[("csrf", "0123")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("reload the page"), "{}", refused.html);
    assert_eq!(api.get("/api/v1/jobs/rollout").await.ok()["state"], "running");
    let jobs = web.get("/ui/jobs").await;
    let csrf = csrf_of(&jobs.html);
    let paused = web.post("/ui/jobs/rollout/pause", &[("csrf", &csrf), ("back", "/ui/jobs?q=&page=1")]).await;
    assert_eq!(paused.location.as_deref(), Some("/ui/jobs?q=&page=1&flash=paused"));
    assert_eq!(api.get("/api/v1/jobs/rollout").await.ok()["state"], "paused");
    let after = web.get(paused.location.as_deref().unwrap()).await;
    assert!(after.html.contains("The job was paused."));

    let out = web.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location.as_deref(), Some("/ui/sign-in?signed_out=1"));
    assert!(out.set_cookies.iter().any(|c| c.starts_with("updraft_session=;") && c.contains("Max-Age=0")));
    // The session is over on the server too: its old cookie no longer signs in.
    let mut replay = Browser::new(&api);
    let token = session.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    replay.cookies.push(("updraft_session".into(), token));
    assert_eq!(replay.get("/ui").await.status, StatusCode::SEE_OTHER);
}

async fn a_viewer_changes_nothing(b: Backend) {
    let api = Api::start(b).await;
    device_with_work(&api).await;
    user(&api, "vic", "viewer").await;
    let mut web = Browser::new(&api);
    web.sign_in("vic", PASSWORD).await;
    let jobs = web.get("/ui/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert!(jobs.html.contains("/ui/jobs/rollout\">"), "the viewer sees the job");
    for change in ["Create device job", "/pause\"", "/cancel\"", "Schedule rollout"] {
        assert!(!jobs.html.contains(change), "a viewer sees no `{change}`");
    }
    let job = web.get("/ui/jobs/rollout").await;
    for change in ["Force cancel", "/pause\"", "Retry the failed", "Approve next phase"] {
        assert!(!job.html.contains(change), "a viewer sees no `{change}` on the job's page");
    }
    assert!(!web.get("/ui/firmware").await.html.contains("Upload an image"));
    // And the server refuses the call anyway.
    let csrf = csrf_of(&jobs.html);
    let refused = web.post("/ui/jobs/rollout/pause", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert_eq!(api.get("/api/v1/jobs/rollout").await.ok()["state"], "running");
    let wizard = web.post("/ui/jobs/new", &[("csrf", &csrf), ("firmware", "x")]).await;
    assert_eq!(wizard.status, StatusCode::FORBIDDEN);
    assert!(wizard.html.contains("may not change the fleet"), "{}", wizard.html);
    assert_eq!(web.get("/ui/jobs/new").await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/api/v1/jobs").await.ok()["items"].as_array().unwrap().len(), 1);
}

fn as_pairs<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn the_wizard_creates_a_job(b: Backend) {
    let api = Api::start(b).await;
    let (fw, _) = device_with_work(&api).await;
    for (id, region) in [("dev-eu-1", "eu"), ("dev-eu-2", "eu"), ("dev-us-1", "us")] {
        api.post("/api/v1/devices", json!({"id": id, "product": "thermo", "properties": {"region": region}}))
            .await
            .expect(201, None);
    }
    user(&api, "ann", "operator").await;
    let mut web = Browser::new(&api);
    web.sign_in("ann", PASSWORD).await;
    let page = web.get("/ui/jobs/new").await;
    assert!(page.html.contains(&format!("value=\"{fw}\" data-version=\"2.0.0\"")), "the image and its version");
    let csrf = csrf_of(&page.html);
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut f: Vec<(&'static str, String)> = vec![
            ("product", "thermo".into()),
            ("name", "Spring rollout".into()),
            ("recurrence", "continuous".into()),
            ("retries", "2".into()),
            ("delivery", "push".into()),
            ("meta_key", "campaign".into()),
            ("meta_value", "spring".into()),
            ("firmware", fw.clone()),
            ("from", "all".into()),
            ("filter_mode", "new".into()),
            ("filter_name", "EU thermostats".into()),
            ("prop_name", "region".into()),
            ("prop_op", "==".into()),
            ("prop_value", "eu".into()),
            ("exclude", "dev-eu-2".into()),
            ("schedule_type", "recurring".into()),
            ("timezone", "Europe/Berlin".into()),
            ("end_date", "2031-12-31".into()),
            ("days", "mon".into()),
            ("days", "fri".into()),
            ("time_mode", "range".into()),
            ("time_from", "22:00".into()),
            ("time_to", "23:30".into()),
        ];
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    // The estimate and the preview of the filter step.
    let with_csrf = |f: Vec<(&'static str, String)>| {
        let mut f = f;
        f.push(("csrf", csrf.clone()));
        f
    };
    let f = with_csrf(form(&[]));
    let estimate = web.post("/ui/jobs/new/estimate", &as_pairs(&f)).await;
    assert!(estimate.html.contains("<strong id=\"estimate-count\">1</strong> devices included"), "{}", estimate.html);
    let preview = web.post("/ui/jobs/new/preview", &as_pairs(&f)).await;
    assert!(preview.html.contains("<td>dev-eu-1</td>") && !preview.html.contains("dev-us-1"), "{}", preview.html);

    // Errors come back next to their fields, and nothing is saved: the form's own…
    let f = with_csrf(form(&[]));
    let refused = web.post("/ui/jobs/new", &as_pairs(&f)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .html
            .contains("<p class=\"field-error\" id=\"start_date-error\">a recurring schedule needs a start date</p>"),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("value=\"Spring rollout\""), "what was typed is kept");
    // …and the application's, on a property condition's row.
    let f = with_csrf(form(&[("start_date", "2026-01-05")]));
    let mut bad = as_pairs(&f);
    for (k, v) in bad.iter_mut() {
        match *k {
            "prop_op" => *v = ">",
            "prop_value" => *v = "true",
            _ => {}
        }
    }
    let refused = web.post("/ui/jobs/new", &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let row = refused.html.split("id=\"prop_name-1\"").nth(1).expect("the property row is shown again");
    let row = &row[..row.find("data-delete-row").unwrap() + 400];
    assert!(row.contains("class=\"field-error\""), "the error is on the row: {row}");
    assert_eq!(api.get("/api/v1/jobs").await.ok()["items"].as_array().unwrap().len(), 1, "no job was saved");

    let f = with_csrf(form(&[("start_date", "2026-01-05")]));
    let saved = web.post("/ui/jobs/new", &as_pairs(&f)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let location = saved.location.unwrap();
    assert!(location.ends_with("?flash=created_scheduled"), "{location}");
    let page = web.get(&location).await;
    for m in ["The job was created.", "The job was saved.", "The schedule was saved."] {
        assert!(page.html.contains(m), "{m}");
    }
    let id = location.trim_start_matches("/ui/jobs/").split('?').next().unwrap().to_owned();
    let job = api.get(&format!("/api/v1/jobs/{id}")).await.ok().clone();
    assert_eq!(job["name"], "Spring rollout");
    assert_eq!(job["recurrence"], "continuous");
    assert_eq!(job["retry"]["count"], 2);
    assert_eq!(job["metadata"]["campaign"], "spring");
    assert_eq!(job["filter"], "product == \"thermo\" and prop.region == \"eu\" exclude [\"dev-eu-2\"]");
    assert_eq!(job["schedule"]["timezone"], "Europe/Berlin");
    assert_eq!(job["schedule"]["start"], "2026-01-04T23:00:00Z", "midnight in Berlin");
    assert_eq!(job["schedule"]["days"], json!(["mon", "fri"]));
    assert_eq!(job["schedule"]["window"], json!({"from": "22:00", "to": "23:30"}));
    let saved_filters = api.get("/api/v1/filters").await.ok()["items"].clone();
    assert_eq!(saved_filters[0]["name"], "EU thermostats", "the filter is saved under its name");

    // The schedule dialog of an existing job: "None" removes it.
    let dialog = web.get(&format!("/ui/jobs/{id}/schedule")).await;
    assert!(dialog.html.contains("value=\"Europe/Berlin\""), "the dialog shows the schedule");
    let cleared = web.post(&format!("/ui/jobs/{id}/schedule"), &[("csrf", &csrf), ("schedule_type", "none")]).await;
    assert_eq!(cleared.location, Some(format!("/ui/jobs/{id}?flash=schedule_cleared")));
    assert!(api.get(&format!("/api/v1/jobs/{id}")).await.ok()["schedule"].is_null());
}

async fn a_job_page_is_live(b: Backend) {
    let api = Api::start(b).await;
    device_with_work(&api).await;
    user(&api, "ann", "operator").await;
    let mut web = Browser::new(&api);
    web.sign_in("ann", PASSWORD).await;
    let page = web.get("/ui/jobs/rollout").await;
    assert!(page.html.contains("data-live=\"/ui/jobs/rollout/live\""));
    assert!(page.html.contains("<td class=\"num\" id=\"count-notified\">1</td>"), "{}", page.html);
    let stream = web
        .http
        .get(format!("{}/ui/jobs/rollout/live", web.base))
        .header(COOKIE, web.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut stream = stream;
    let first = String::from_utf8(stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: live\n"), "{first}");
    // A change of the job reaches the open stream without reloading.
    api.post("/api/v1/jobs/rollout/pause", json!({})).await.ok();
    let mut next = String::new();
    while !next.contains("\n\n") {
        next.push_str(std::str::from_utf8(&stream.chunk().await.unwrap().unwrap()).unwrap());
    }
    assert!(next.contains("id=\"job-state\">paused<"), "{next}");
    let missing = web.get("/ui/jobs/nope/live").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn groups_filters_users_and_keys(b: Backend) {
    let api = Api::start(b).await;
    user(&api, "ada", "admin").await;
    let mut web = Browser::new(&api);
    web.sign_in("ada", PASSWORD).await;
    let page = web.get("/ui/groups").await;
    let csrf = csrf_of(&page.html);

    let bad = web.post("/ui/groups", &[("csrf", &csrf), ("action", "create"), ("id", "bad id!"), ("name", "")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains("id=\"g-id-error\""), "{}", bad.html);
    assert!(bad.html.contains("value=\"bad id!\""), "what was typed is kept");
    let made =
        web.post("/ui/groups", &[("csrf", &csrf), ("action", "create"), ("id", "pilot"), ("name", "Pilot")]).await;
    assert_eq!(made.location.as_deref(), Some("/ui/groups?flash=group_created"));
    assert_eq!(api.get("/api/v1/groups/pilot").await.ok()["name"], "Pilot");
    web.post("/ui/groups", &[("csrf", &csrf), ("action", "delete"), ("id", "pilot")]).await;
    api.get("/api/v1/groups/pilot").await.expect(404, Some("not_found"));

    let bad = web.post("/ui/filters", &[("csrf", &csrf), ("name", "EU"), ("query", "prop.region ==")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains("id=\"f-query-error\""), "{}", bad.html);
    let saved = web.post("/ui/filters", &[("csrf", &csrf), ("name", "EU"), ("query", "prop.region == \"eu\"")]).await;
    assert_eq!(saved.location.as_deref(), Some("/ui/filters?flash=filter_created"));
    let filters = api.get("/api/v1/filters").await.ok()["items"].clone();
    assert_eq!(filters[0]["name"], "EU");

    let short = web
        .post(
            "/ui/access",
            &[("csrf", &csrf), ("action", "add_user"), ("name", "bob"), ("role", "viewer"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.html.contains("12 to 256 characters"), "{}", short.html);
    let added = web
        .post(
            "/ui/access",
            &[("csrf", &csrf), ("action", "add_user"), ("name", "bob"), ("role", "viewer"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(added.location.as_deref(), Some("/ui/access?flash=access_changed"));
    let mut bob = Browser::new(&api);
    assert_eq!(bob.sign_in("bob", PASSWORD).await.status, StatusCode::SEE_OTHER, "the new user signs in");
    let issued = web
        .post("/ui/access", &[("csrf", &csrf), ("action", "create_key"), ("key_name", "ci"), ("key_role", "operator")])
        .await;
    let token =
        issued.html.split("id=\"issued-token\">").nth(1).expect("the token is shown once").split('<').next().unwrap();
    assert!(token.starts_with("upd_k_"));
    let access = web.get("/ui/access").await;
    let recent = access.html.split("aria-label=\"Recent changes\"").nth(1).expect("the audit log's newest entries");
    assert!(
        recent.contains("<td>key.created</td>") && recent.contains("<td>group.created</td><td>pilot</td>"),
        "{recent}"
    );
    assert!(recent.contains("<code>user:"), "the signed-in user is who acted: {recent}");
    api.as_key(token).get("/api/v1/jobs").await.ok();
}

async fn phases_force_cancel_and_an_abort_on_a_job_page(b: Backend) {
    let api = Api::start(b).await;
    let (fw, _) = device_with_work(&api).await;
    for i in 1..4 {
        api.post("/api/v1/devices", json!({"id": format!("dev-{i}"), "product": "thermo"})).await.expect(201, None);
    }
    api.post("/api/v1/jobs/rollout/cancel", json!({"force": true})).await.ok();
    let phased = json!({"id": "m", "firmware": fw, "all": true, "phases": [
        {"name": "canary", "devices": 1, "gate": {"manual": true}}, {"name": "everyone"}]});
    api.post("/api/v1/jobs", phased).await.expect(201, None);
    api.server.tick_scheduler().await;
    user(&api, "ann", "operator").await;
    let mut web = Browser::new(&api);
    web.sign_in("ann", PASSWORD).await;
    let page = web.get("/ui/jobs/m").await;
    assert!(page.html.contains("<h2>Phase 1 of 2: canary</h2>"), "{}", page.html);
    assert!(page.html.contains("The gate waits for: an operator"), "{}", page.html);
    assert!(page.html.contains("Approve next phase"));
    assert!(
        page.html.contains("in phase 1; phase 0 is open and its gate waits for an operator"),
        "why a queued one waits"
    );
    let csrf = csrf_of(&page.html);
    let next = web.post("/ui/jobs/m/next-phase", &[("csrf", &csrf)]).await;
    assert_eq!(next.location.as_deref(), Some("/ui/jobs/m?flash=next_phase"));
    let page = web.get("/ui/jobs/m?flash=next_phase").await;
    assert!(page.html.contains("The next phase is open.") && page.html.contains("Phase 2 of 2: everyone"));
    assert!(!page.html.contains("Approve next phase"), "no phase after the last");

    let forced = web.post("/ui/jobs/m/force-cancel", &[("csrf", &csrf)]).await;
    assert_eq!(forced.location.as_deref(), Some("/ui/jobs/m?flash=force_canceled"));
    let job = api.get("/api/v1/jobs/m").await.ok().clone();
    assert_eq!(job["state"], "canceled");
    assert_eq!(job["counts"]["notified"].as_u64().unwrap_or(0), 0, "in-progress executions ended at once");

    // An aborted job says why.
    let abort = json!({"id": "a", "firmware": fw, "devices": ["dev-1", "dev-2"],
        "abort": [{"failure": "failed", "threshold_percent": 50.0, "min_executed": 1}]});
    api.post("/api/v1/jobs", abort).await.expect(201, None);
    api.server.tick_scheduler().await;
    let dev = api.post("/api/v1/devices/dev-1/token", json!({})).await.ok()["token"].as_str().unwrap().to_owned();
    let base = format!("{}/default/controller/v1/dev-1", api.server.url(""));
    let http = reqwest::Client::new();
    let poll: serde_json::Value = http
        .get(&base)
        .header("authorization", format!("TargetToken {dev}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap();
    let action = href.rsplit('/').next().unwrap().split('?').next().unwrap();
    let feedback = json!({"id": action, "status": {"execution": "closed", "result": {"finished": "failure"}}});
    http.post(format!("{base}/deploymentBase/{action}/feedback"))
        .header("authorization", format!("TargetToken {dev}"))
        .json(&feedback)
        .send()
        .await
        .unwrap();
    api.server.tick_scheduler().await;
    assert_eq!(api.get("/api/v1/jobs/a").await.ok()["state"], "aborted");
    let page = web.get("/ui/jobs/a").await;
    assert!(page.html.contains("Aborted: Failed executions reached 50 % of those finished"), "{}", page.html);
    assert!(page.html.contains("Retry the failed"), "an aborted job can retry its failed");
}
