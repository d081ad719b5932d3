//! A repository whose timestamp expired (a server frozen, or an attacker
//! replaying yesterday's metadata) is refused (`tuf.expired`, 4006); the
//! `trust` worker re-signs the timestamp before it expires, and then the
//! same update installs.

use crate::Repo;
use crate::common;
use crate::common::{Api, Backend, TestServer};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use updraft_app::workers::Worker;

crate::on_both_stores!(an_expired_timestamp_is_refused_until_the_worker_renews_it);

async fn an_expired_timestamp_is_refused_until_the_worker_renews_it(b: Backend) {
    let (server, clock) = TestServer::start_clocked(b, |s| s.key_encryption_key = Some(crate::KEK.into())).await;
    // The server's clock two days behind: what it signs now expires a day ago.
    let now = Timestamp::now();
    clock.set(now - SignedDuration::from_hours(48));
    let repo = Repo::on(Api::on(server), now).await;
    let fw = repo.upload("2.0.0", 1, b"version two").await;
    repo.job("up", &fw, json!({})).await;
    let timestamp = repo.api.get("/api/v1/products/cam/trust").await.ok()["timestamp"].clone();
    assert!(timestamp["expires"].as_str().unwrap() < now.to_string().as_str(), "{timestamp}");

    let agent = repo.run_agent().await;
    let (state, code, details) = repo.outcome("up").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4006)), "{details:?}");
    assert_eq!(agent.installed()["host"], "1.0.0");

    // Time moves on; the worker re-signs what nears its expiry.
    clock.set(now);
    let before = repo.api.get("/api/v1/products/cam/trust").await.ok().clone();
    Worker::Trust.tick(&repo.api.server.state.app, now).await.unwrap();
    let after = repo.api.get("/api/v1/products/cam/trust").await.ok().clone();
    assert!(after["timestamp"]["version"].as_u64() > before["timestamp"]["version"].as_u64(), "{after}");
    assert!(after["timestamp"]["expires"].as_str().unwrap() > now.to_string().as_str(), "{after}");
    // A second tick has nothing to do.
    Worker::Trust.tick(&repo.api.server.state.app, now).await.unwrap();
    let again = repo.api.get("/api/v1/products/cam/trust").await.ok().clone();
    assert_eq!(again["timestamp"]["version"], after["timestamp"]["version"]);

    repo.api.post("/api/v1/jobs/up/retry-failed", json!({})).await.expect(200, None);
    repo.api.server.tick_scheduler().await;
    let agent = repo.run_agent().await;
    let (state, _, details) = repo.outcome("up").await;
    assert_eq!(state, "succeeded", "{details:?}");
    assert_eq!(agent.installed()["host"], "2.0.0");
}
