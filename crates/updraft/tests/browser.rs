//! The browser harness (`common/browser.rs`) on pages of a small server of the test's own: a
//! form filled by its label and a button clicked by its text, a screenshot, axe-core finding
//! nothing critical on a clean page and its critical violations on a broken one (so the
//! accessibility check can fail), and waits that fail saying where they were.

mod common;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use common::browser::Browser;
use futures_util::FutureExt;

const GREETING: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Greeting</title></head>
<body>
<main>
  <h1>Greeting</h1>
  <form onsubmit="return false">
    <label for="name">Your name</label>
    <input id="name" type="text" autocomplete="off">
    <label>Tone <select id="tone"><option>warm</option><option>plain</option></select></label>
    <button type="button" id="greet"
      onclick="document.getElementById('out').textContent = 'Hello, ' + document.getElementById('name').value + '!'">
      Greet
    </button>
  </form>
  <p id="out" aria-live="polite"></p>
</main>
</body>
</html>"#;

/// An image without alternative text and a field without a label: both critical for axe-core.
const BROKEN: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Broken</title></head>
<body>
<main>
  <h1>Broken</h1>
  <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="10" height="10">
  <input id="unlabelled" type="text">
</main>
</body>
</html>"#;

/// Serves the test pages on a port of 127.0.0.1; returns the base URL.
async fn serve() -> String {
    let app =
        Router::new().route("/", get(|| async { Html(GREETING) })).route("/broken", get(|| async { Html(BROKEN) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_form_is_filled_by_label_a_button_clicked_by_text_and_the_page_shot() -> anyhow::Result<()> {
    let base = serve().await;
    let browser = Browser::start().await?;
    browser.goto(&format!("{base}/")).await?;

    browser.fill("Your name", "Ada").await?;
    // A label around its control: the control's own text (the options) is not the label's.
    assert_eq!(browser.find_by_label("Tone").await?.attr("id").await?.as_deref(), Some("tone"));
    browser.click_button("Greet").await?;
    browser.wait_for_text("Hello, Ada!").await?;
    assert_eq!(browser.wait_for("#out").await?.text().await?, "Hello, Ada!");

    // Filling replaces what was there.
    browser.fill("Your name", "Grace").await?;
    browser.click_button("Greet").await?;
    browser.wait_for_text("Hello, Grace!").await?;

    let dir = tempfile::tempdir()?;
    let shot = dir.path().join("shots/greeting.png");
    browser.screenshot(&shot).await?;
    let png = std::fs::read(&shot)?;
    assert!(png.len() > 1000, "a 1280×900 screenshot is more than {} bytes", png.len());
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is a PNG");

    browser.assert_no_critical_axe("the greeting page").await;
    browser.close().await
}

#[tokio::test]
async fn axe_reports_critical_violations_and_the_assertion_fails_on_them() -> anyhow::Result<()> {
    let base = serve().await;
    let browser = Browser::start().await?;
    browser.goto(&format!("{base}/broken")).await?;

    let violations = browser.axe().await?;
    let critical = |id: &str| violations.iter().find(|v| v.id == id && v.impact == "critical");
    let image = critical("image-alt").unwrap_or_else(|| panic!("image-alt is critical: {violations:#?}"));
    assert_eq!(image.targets, ["img"]);
    assert!(!image.help.is_empty() && image.help_url.starts_with("https://"), "{image:?}");
    let label = critical("label").unwrap_or_else(|| panic!("label is critical: {violations:#?}"));
    assert_eq!(label.targets, ["#unlabelled"]);

    let failed = AssertUnwindSafe(browser.assert_no_critical_axe("the broken page")).catch_unwind().await;
    let message = failed.expect_err("the assertion fails on critical violations");
    let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("the broken page") && message.contains("image-alt") && message.contains("label"),
        "{message}"
    );

    // Back on a clean page (axe-core loaded afresh), nothing critical.
    browser.goto(&format!("{base}/")).await?;
    let violations = browser.axe().await?;
    assert!(violations.iter().all(|v| v.impact != "critical"), "{violations:#?}");
    browser.close().await
}

#[tokio::test]
async fn waiting_in_vain_fails_with_the_page_url_and_html() -> anyhow::Result<()> {
    let base = serve().await;
    let mut browser = Browser::start().await?;
    browser.set_wait(Duration::from_millis(300));
    let url = format!("{base}/");
    browser.goto(&url).await?;

    let error = format!("{:#}", browser.wait_for("#nowhere").await.expect_err("no such element"));
    assert!(error.contains("`#nowhere`") && error.contains(&url) && error.contains("<h1>Greeting</h1>"), "{error}");
    let error = format!("{:#}", browser.wait_for_text("Goodbye").await.expect_err("no such text"));
    assert!(error.contains("\"Goodbye\"") && error.contains(&url), "{error}");
    let error = format!("{:#}", browser.fill("Surname", "x").await.expect_err("no such label"));
    assert!(error.contains("\"Surname\"") && error.contains(r#"["Your name","Tone"]"#), "{error}");
    let error = format!("{:#}", browser.click_button("Send").await.expect_err("no such button"));
    assert!(error.contains("\"Send\"") && error.contains(r#"["Greet"]"#), "{error}");
    let error = format!("{:#}", browser.find("form > table").await.expect_err("no such element"));
    assert!(error.contains(&url), "{error}");
    Ok(())
}
