//! The dashboard in headless Chromium (WebDriver), against a real server and
//! devices simulated by `updraft sim`: sign in; create a continuous job with a
//! filter through the wizard, see the estimate and the preview, add a recurring
//! schedule, save; watch the devices succeed on the job's live page without
//! reloading it; pause and resume from the list; a form error shown next to
//! its field; a viewer sees no button that changes anything. axe-core checks
//! every page for critical accessibility violations.
//!
//! Screenshots go to a temporary directory, or to `UPDRAFT_UI_SHOTS` (the
//! README's are made with `scripts/screenshots`, over 10,000 simulated
//! devices: `UPDRAFT_UI_FLEET`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::browser::Browser;
use common::{ADMIN_TOKEN, Api, Backend, TestServer};
use serde_json::json;
use updraft_app::users::NewUser;

const PASSWORD: &str = "correct horse battery";

async fn add_user(api: &Api, name: &str, role: &str) {
    let app = &api.server.state.app;
    let admin = app.authenticate_key(ADMIN_TOKEN).await.unwrap();
    let new = NewUser { name: name.into(), role: role.into(), password: PASSWORD.into(), tenant: None };
    app.add_user(&admin, new).await.unwrap();
}

async fn sign_in(web: &Browser, base: &str, name: &str) -> Result<()> {
    web.goto(&format!("{base}/ui/sign-in")).await?;
    web.fill("Name", name).await?;
    web.fill("Password", PASSWORD).await?;
    web.click_button("Sign in").await?;
    web.wait_for("header.top .who").await?;
    Ok(())
}

async fn sign_out(web: &Browser) -> Result<()> {
    web.click_button("Sign out").await?;
    web.wait_for_text("You are signed out.").await
}

/// Selects the option of value `value` in the `<select>` found by `css`.
async fn select(web: &Browser, css: &str, value: &str) -> Result<()> {
    web.find(css).await?.select_by_value(value).await.with_context(|| format!("selecting {value} in {css}"))
}

async fn click(web: &Browser, css: &str) -> Result<()> {
    web.find(css).await?.click().await.with_context(|| format!("clicking {css}"))
}

async fn text_of(web: &Browser, css: &str) -> Result<String> {
    Ok(web.find(css).await?.text().await?)
}

/// Waits (up to `within`) until the text of `css` satisfies `ok`.
async fn wait_until(web: &Browser, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(el) = web.find(css).await
            && let Ok(t) = el.text().await
            && ok(&t)
        {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("{css} never got the text awaited; page: {}", web.page_context().await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn number(t: &str) -> u64 {
    t.chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
}

/// Where screenshots go (a temporary directory is kept until the test ends).
struct Shots(PathBuf, #[allow(dead_code)] Option<tempfile::TempDir>);

impl Shots {
    fn new() -> Shots {
        match std::env::var_os("UPDRAFT_UI_SHOTS") {
            Some(dir) => Shots(PathBuf::from(dir), None),
            None => {
                let tmp = tempfile::tempdir().unwrap();
                Shots(tmp.path().to_owned(), Some(tmp))
            }
        }
    }

    async fn take(&self, web: &Browser, name: &str) -> Result<()> {
        let path = self.0.join(format!("{name}.png"));
        web.screenshot(&path).await?;
        assert!(std::fs::metadata(&path)?.len() > 1000, "{name}.png is a picture");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_runs_a_continuous_job_from_the_dashboard() -> Result<()> {
    let fleet: u64 = std::env::var("UPDRAFT_UI_FLEET").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.scheduler_tick_ms = 250;
        s.presence_flush_ms = 250;
    })
    .await;
    let api = Api::on(server);
    let base = api.server.url("");
    api.post("/api/v1/products", json!({"key": "thermo", "name": "Thermostat X"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .text("name", "Spring release")
        .text("release_notes", "Faster heating curves.")
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 4096]).file_name("thermo-2.0.0.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None);
    api.post("/api/v1/groups", json!({"id": "pilot", "name": "Pilot sites"})).await.expect(201, None);
    add_user(&api, "ann", "operator").await;
    add_user(&api, "vic", "viewer").await;
    add_user(&api, "ada", "admin").await;

    // The fleet: simulated devices that poll, download and install.
    let dir = tempfile::tempdir()?;
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["sim", "--product", "thermo", "--firmware", "host=1.0.0", "--prefix", "sim-"])
        .args(["--devices", &fleet.to_string(), "--poll-interval", "0.5", "--duration", "600"])
        .env("UPDRAFT_SERVER", &base)
        .env("UPDRAFT_TOKEN", ADMIN_TOKEN)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while api.get("/api/v1/devices?limit=1").await.body["total"].as_u64().unwrap_or(0) < fleet {
        assert!(Instant::now() < deadline, "the simulator registered its devices");
        assert!(sim.try_wait()?.is_none(), "the simulator runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let shots = Shots::new();
    let web = Browser::start().await?;
    // Tall enough that a screenshot shows a whole wizard step and the live page's chart.
    web.client().set_window_size(1280, 1700).await?;
    web.goto(&format!("{base}/ui")).await?;
    web.wait_for_text("Sign in to updraft").await?;
    web.assert_no_critical_axe("sign-in").await;
    sign_in(&web, &base, "ann").await?;
    web.wait_for_text("Fleet overview").await?;
    web.assert_no_critical_axe("fleet overview").await;
    shots.take(&web, "overview").await?;

    // The wizard, in seed 000's steps.
    web.goto(&format!("{base}/ui/jobs")).await?;
    web.assert_no_critical_axe("jobs").await;
    click(&web, "a[href='/ui/jobs/new']").await?;
    web.wait_for_text("Create Host OTA").await?;
    web.assert_no_critical_axe("wizard").await;
    select(&web, "#product", "thermo").await?;
    web.fill("Job Name", "Continuous spring rollout").await?;
    click(&web, "input[name=recurrence][value=continuous]").await?;
    web.fill("Number of Retries", "1").await?;
    web.click_button("+ Add metadata").await?;
    let key = web.find("#job-metadata [data-row] input[name=meta_key]").await?;
    key.send_keys("campaign").await?;
    web.find("#job-metadata [data-row] input[name=meta_value]").await?.send_keys("spring").await?;
    shots.take(&web, "wizard-1-job-details").await?;
    click(&web, "fieldset[data-step='0'] [data-next]").await?;

    let image = web.find("#firmware option[data-version='2.0.0']").await?.attr("value").await?.unwrap();
    select(&web, "#firmware", &image).await?;
    wait_until(&web, "#image-details [data-image=version]", Duration::from_secs(5), |t| t == "2.0.0").await?;
    shots.take(&web, "wizard-2-ota-attributes").await?;
    click(&web, "fieldset[data-step='1'] [data-next]").await?;

    web.fill("Filter Name", "Simulated thermostats").await?;
    web.click_button("+ Add property").await?;
    web.find("#props [data-row] input[name=prop_name]").await?.send_keys("sim").await?;
    web.find("#props [data-row] input[name=prop_value]").await?.send_keys("true").await?;
    web.click_button("Estimated Devices Included").await?;
    let estimate = wait_until(&web, "#estimate", Duration::from_secs(10), |t| t.contains("devices included")).await?;
    assert_eq!(number(&estimate), fleet, "every simulated device: {estimate}");
    web.click_button("Preview Filter Query Results").await?;
    web.wait_for("#preview table").await?;
    assert!(text_of(&web, "#preview").await?.contains("sim-"), "the preview lists simulated devices");
    shots.take(&web, "wizard-3-set-filter").await?;
    click(&web, "fieldset[data-step='2'] [data-next]").await?;

    click(&web, "input[name=schedule_type][value=recurring]").await?;
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    web.fill("Schedule Timezone", "UTC").await?;
    // Date inputs take what a user picks; set them as the picker does.
    web.client().execute("document.getElementById('start_date').value = arguments[0];", vec![json!(today)]).await?;
    web.assert_no_critical_axe("wizard, schedule").await;
    shots.take(&web, "wizard-4-schedule").await?;
    web.click_button("Save").await?;

    // The job's page, live.
    web.wait_for_text("The job was created.").await?;
    web.wait_for_text("The schedule was saved.").await?;
    let url = web.current_url().await?;
    let job = url.split("/ui/jobs/").nth(1).unwrap().split('?').next().unwrap().to_owned();
    web.client().execute("window.__stayed = true;", vec![]).await?;
    let target = if fleet <= 100 { fleet } else { fleet / 100 };
    let succeeded = wait_until(&web, "#count-succeeded", Duration::from_secs(180), |t| number(t) >= target).await?;
    assert!(number(&succeeded) >= target);
    let stayed = web.client().execute("return window.__stayed === true;", vec![]).await?;
    assert_eq!(stayed, json!(true), "the page was not reloaded: its live part followed the job");
    web.assert_no_critical_axe("job page").await;
    shots.take(&web, "job-live").await?;
    let saved = api.get(&format!("/api/v1/jobs/{job}")).await.ok().clone();
    assert_eq!(
        (saved["recurrence"].as_str(), saved["schedule"]["timezone"].as_str()),
        (Some("continuous"), Some("UTC"))
    );
    assert_eq!(saved["metadata"]["campaign"], "spring");

    // Pause and resume from the list.
    web.goto(&format!("{base}/ui/jobs")).await?;
    click(&web, &format!("button[aria-label='Pause {job}']")).await?;
    web.wait_for_text("The job was paused.").await?;
    assert_eq!(api.get(&format!("/api/v1/jobs/{job}")).await.ok()["state"], "paused");
    click(&web, &format!("button[aria-label='Resume {job}']")).await?;
    web.wait_for_text("The job was resumed.").await?;
    assert_eq!(api.get(&format!("/api/v1/jobs/{job}")).await.ok()["state"], "running");

    // A form error appears next to its field: a recurring schedule without a start date.
    web.goto(&format!("{base}/ui/jobs/new")).await?;
    select(&web, "#product", "thermo").await?;
    click(&web, "fieldset[data-step='0'] [data-next]").await?;
    select(&web, "#firmware", &image).await?;
    click(&web, "fieldset[data-step='1'] [data-next]").await?;
    click(&web, "fieldset[data-step='2'] [data-next]").await?;
    click(&web, "input[name=schedule_type][value=recurring]").await?;
    web.click_button("Save").await?;
    let error = web.wait_for("#start_date-error").await?;
    assert_eq!(error.text().await?, "a recurring schedule needs a start date");
    assert!(error.is_displayed().await?, "the step with the error is shown");
    let described = web.find("#start_date").await?.attr("aria-describedby").await?;
    assert_eq!(described.as_deref(), Some("start_date-error"), "the field names its error");
    web.assert_no_critical_axe("wizard with an error").await;

    // An upload, with its progress bar.
    web.goto(&format!("{base}/ui/firmware")).await?;
    web.fill("Version", "2.1.0").await?;
    let file = dir.path().join("thermo-2.1.0.bin");
    std::fs::write(&file, vec![9u8; 200_000])?;
    web.find_by_label("Image file").await?.send_keys(&file.display().to_string()).await?;
    web.click_button("Upload").await?;
    web.wait_for_text("The firmware was uploaded.").await?;
    let files = text_of(&web, "table[aria-label=Files]").await?;
    assert!(files.contains("thermo-2.1.0.bin") && files.contains("200000"), "{files}");
    web.assert_no_critical_axe("an uploaded image").await;

    // The other pages.
    let device = format!("{base}/ui/devices/sim-00000");
    for (page, name) in [
        (format!("{base}/ui/devices?filter=prop.sim%20%3D%3D%20true"), "devices"),
        (device, "device"),
        (format!("{base}/ui/firmware"), "firmware"),
        (format!("{base}/ui/firmware/{image}"), "an image"),
        (format!("{base}/ui/groups"), "groups"),
        (format!("{base}/ui/filters"), "saved filters"),
    ] {
        web.goto(&page).await?;
        web.wait_for("main h1").await?;
        web.assert_no_critical_axe(name).await;
    }
    web.goto(&format!("{base}/ui/devices?filter=status%20%3D%3D")).await?;
    let err = web.wait_for("#filter-error").await?.text().await?;
    assert!(err.contains("at column 10") && err.contains("status ==\n"), "the error's position under the box: {err}");
    sign_out(&web).await?;

    // A viewer sees no button that changes anything.
    sign_in(&web, &base, "vic").await?;
    web.goto(&format!("{base}/ui/jobs")).await?;
    web.wait_for(&format!("tr[data-job='{job}']")).await?;
    for css in ["a[href='/ui/jobs/new']", "form[action$='/pause']", "form[action$='/cancel']"] {
        assert!(web.find_all(css).await?.is_empty(), "a viewer sees no {css}");
    }
    web.goto(&format!("{base}/ui/jobs/{job}")).await?;
    web.wait_for("#job-state").await?;
    assert!(web.find_all("main form[method=post]").await?.is_empty(), "no form that changes the job");
    sign_out(&web).await?;

    // An administrator's page.
    sign_in(&web, &base, "ada").await?;
    web.goto(&format!("{base}/ui/access")).await?;
    web.wait_for_text("API keys and users").await?;
    web.assert_no_critical_axe("API keys and users").await;
    web.close().await?;
    sim.kill().await?;
    Ok(())
}
