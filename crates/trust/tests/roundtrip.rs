//! The metadata this crate writes is what `tough`'s client accepts, and what
//! it refuses when anything is changed.

use jiff::{SignedDuration, Timestamp};
use tough::schema::RoleType;
use tough::{RepositoryLoader, TargetName};
use updraft_trust::SigningKey;
use updraft_trust::metadata::{self, RootPlan, TargetFile};

fn sha(alg: &'static aws_lc_rs::digest::Algorithm, b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(alg, b))
}

struct Repo {
    dir: tempfile::TempDir,
    root: Vec<u8>,
}

async fn repo(firmware: &[u8], now: Timestamp) -> Repo {
    let (root_key, targets_key, snapshot_key, timestamp_key) =
        (SigningKey::generate(), SigningKey::generate(), SigningKey::generate(), SigningKey::generate());
    let plan = RootPlan {
        version: 1,
        expires: now + SignedDuration::from_hours(24 * 365),
        root: (vec![root_key.public().clone()], 1),
        targets: (vec![targets_key.public().clone()], 1),
        snapshot: (vec![snapshot_key.public().clone()], 1),
        timestamp: (vec![timestamp_key.public().clone()], 1),
    };
    let root = metadata::sign(metadata::root(&plan).unwrap(), &[&root_key]).await.unwrap();
    metadata::check_root(None, &root, now).unwrap();
    let root = metadata::to_bytes(&root);
    let file = TargetFile {
        name: "1.2.0/camera.bin".into(),
        length: firmware.len() as u64,
        sha256: sha(&aws_lc_rs::digest::SHA256, firmware),
        sha512: sha(&aws_lc_rs::digest::SHA512, firmware),
        custom: serde_json::json!({"product": "cam", "security_version": 3}).as_object().unwrap().clone(),
    };
    let day = SignedDuration::from_hours(24);
    let targets = metadata::targets(&[file], 1, now + day * 30, &[&targets_key]).await.unwrap();
    let snapshot = metadata::snapshot(&targets, 1, 1, now + day * 7, &[&snapshot_key]).await.unwrap();
    let timestamp = metadata::timestamp(&snapshot, 1, 1, now + day, &[&timestamp_key]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("metadata");
    // tough puts the digest before the whole target path (python-tuf before its file name):
    // updraft serves both.
    let tdir = dir.path().join(format!("targets/{}.1.2.0", sha(&aws_lc_rs::digest::SHA256, firmware)));
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(meta.join("1.root.json"), &root).unwrap();
    std::fs::write(meta.join("1.targets.json"), &targets).unwrap();
    std::fs::write(meta.join("1.snapshot.json"), &snapshot).unwrap();
    std::fs::write(meta.join("timestamp.json"), &timestamp).unwrap();
    std::fs::write(tdir.join("camera.bin"), firmware).unwrap();
    Repo { dir, root }
}

async fn load(r: &Repo) -> tough::error::Result<tough::Repository> {
    let base = url::Url::from_directory_path(r.dir.path()).unwrap();
    RepositoryLoader::new(&r.root, base.join("metadata/").unwrap(), base.join("targets/").unwrap()).load().await
}

#[tokio::test]
async fn tough_verifies_what_this_crate_signs() {
    let r = repo(b"firmware bytes", Timestamp::now()).await;
    let repo = load(&r).await.expect("tough accepts the repository");
    let name = TargetName::new("1.2.0/camera.bin").unwrap();
    let target = repo.targets().signed.targets.get(&name).expect("listed");
    assert_eq!(target.custom["security_version"], 3);
    assert_eq!(metadata::role_key_ids(&repo.root().signed, RoleType::Targets).len(), 1);
    let stream = repo.read_target(&name).await.unwrap().expect("present");
    use futures_util::TryStreamExt;
    let bytes: Vec<u8> = stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
    assert_eq!(bytes, b"firmware bytes");
}

#[tokio::test]
async fn tough_refuses_a_changed_target_or_metadata() {
    let r = repo(b"firmware bytes", Timestamp::now()).await;
    let d = std::fs::read_dir(r.dir.path().join("targets")).unwrap().next().unwrap().unwrap().path();
    let f = d.join("camera.bin");
    std::fs::write(&f, b"firmware bytez").unwrap();
    let loaded = load(&r).await.unwrap();
    let stream = loaded.read_target(&TargetName::new("1.2.0/camera.bin").unwrap()).await.unwrap().unwrap();
    use futures_util::TryStreamExt;
    assert!(stream.map_ok(|b| b.to_vec()).try_concat().await.is_err(), "a changed file fails its hash");

    let r = repo(b"firmware bytes", Timestamp::now()).await;
    let p = r.dir.path().join("metadata/1.targets.json");
    let text = std::fs::read_to_string(&p).unwrap().replace("\"security_version\": 3", "\"security_version\": 9");
    std::fs::write(&p, text).unwrap();
    assert!(load(&r).await.is_err(), "changed targets metadata fails");
}
