//! A file changed where it is stored, with the hashes the database keeps for
//! it changed to match (an attacker who reached the blob store and the
//! database, but not the online keys): the device API serves the changed file
//! with hashes that match, and only TUF's signed targets tell. The agent
//! refuses it (`tuf.target_mismatch`, 4003), keeps 1.0.0, and then installs
//! the properly signed image.

use crate::common::{self, Backend};
use crate::{Repo, sha256};
use serde_json::{Value, json};
use sha2::Digest;

crate::on_both_stores!(a_tampered_file_is_refused_and_the_signed_one_installed);

async fn a_tampered_file_is_refused_and_the_signed_one_installed(b: Backend) {
    let repo = Repo::new(b).await;
    let fw = repo.upload("2.0.0", 1, b"version two").await;

    let evil = b"version two, with a backdoor";
    let stored = common::stored_files(&repo.api.server.data_dir());
    let file = stored.iter().find(|p| p.to_string_lossy().contains(&fw)).expect("the stored file");
    std::fs::write(file, evil).unwrap();
    let files = repo.sql_text("SELECT CAST(files AS TEXT) FROM firmware WHERE id = $1", &[&fw]).await;
    let mut files: Value = serde_json::from_str(&files).unwrap();
    files[0]["size"] = json!(evil.len());
    files[0]["sha256"] = json!(sha256(evil));
    files[0]["sha1"] = json!(hex::encode(sha1::Sha1::digest(evil)));
    files[0]["md5"] = json!(hex::encode(md5::Md5::digest(evil)));
    repo.sql("UPDATE firmware SET files = {json} WHERE id = $2", &[&files.to_string(), &fw]).await;

    repo.job("tampered", &fw, json!({})).await;
    let agent = repo.run_agent().await;
    let (state, code, details) = repo.outcome("tampered").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4003)), "{details:?}");
    assert!(details[0].starts_with("tuf.target_mismatch"), "{details:?}");
    assert!(details[1].contains("kept host 1.0.0"), "{details:?}");
    assert_eq!(agent.installed()["host"], "1.0.0");
    assert_eq!(repo.installed().await, None, "nothing was installed");
    assert_eq!(repo.device_version().await, "1.0.0");

    let good = repo.upload("2.0.1", 1, b"version two, signed").await;
    repo.job("signed", &good, json!({})).await;
    let agent = repo.run_agent().await;
    assert_eq!(repo.outcome("signed").await.0, "succeeded");
    assert_eq!(agent.installed()["host"], "2.0.1");
    assert_eq!(repo.installed().await.as_deref(), Some(&b"version two, signed"[..]));
    assert_eq!(agent.state().security_version, 1);
}
