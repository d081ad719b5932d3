//! A simulated device on AWS IoT Jobs over MQTT: it connects and announces
//! itself, and when `notify-next` names an execution it reports `IN_PROGRESS`,
//! downloads every file of the AWS OTA job document over its signed link
//! (size and SHA-256 checked), waits the install delay, and reports
//! `SUCCEEDED`, `FAILED` or nothing, as its fate says. The time from the
//! execution's release (the document's `updraft.updatedAt`) to its
//! `notify-next` is recorded as a push latency.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Fate, Shared, SimCounters, SimDevice};
use crate::mqtt::{Incoming, Link, MqttSettings};

pub(super) async fn run_device(
    shared: Arc<Shared>,
    device: SimDevice,
    http: reqwest::Client,
    settings: MqttSettings,
    thing: String,
) {
    let seed = shared.config.seed ^ (device.index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut rng = super::SplitMix64(seed);
    tokio::time::sleep(shared.config.ramp_up.mul_f64(rng.unit())).await;
    let counters = &shared.counters;
    let (link, mut incoming) = match Link::open(&settings, &thing, &["notify-next", "+/update/rejected"]) {
        Ok(l) => l,
        Err(e) => {
            counters.first_poll();
            return counters.error(&device.id, &e);
        }
    };
    let mut first = true;
    let mut done: HashSet<(String, i64)> = HashSet::new();
    while let Some(m) = incoming.recv().await {
        match m {
            Incoming::Connected => {
                if std::mem::replace(&mut first, false) {
                    counters.first_poll();
                }
            }
            Incoming::Message(topic, body) if topic.ends_with("/notify-next") => {
                let Some(execution) = body.get("execution") else { continue };
                let job = execution["jobId"].as_str().unwrap_or_default().to_owned();
                let number = execution["executionNumber"].as_i64().unwrap_or(1);
                if execution["status"] == "QUEUED" {
                    record_latency(counters, execution);
                }
                if !matches!(execution["status"].as_str(), Some("QUEUED" | "IN_PROGRESS"))
                    || !done.insert((job.clone(), number))
                {
                    continue;
                }
                work(&shared, &device, &http, &link, &job, number, execution).await;
            }
            Incoming::Message(_, body) => {
                let why = body["message"].as_str().unwrap_or("rejected").to_owned();
                counters.note_error(&device.id, format!("update rejected: {why}"));
            }
        }
    }
}

fn record_latency(counters: &SimCounters, execution: &Value) {
    let Some(at) = execution["jobDocument"]["updraft"]["updatedAt"].as_str() else { return };
    let Ok(at) = at.parse::<jiff::Timestamp>() else { return };
    let us = jiff::Timestamp::now().as_microsecond() - at.as_microsecond();
    counters.pushed(us.max(0) as u64);
}

async fn work(
    shared: &Shared,
    device: &SimDevice,
    http: &reqwest::Client,
    link: &Link,
    job: &str,
    number: i64,
    execution: &Value,
) {
    let counters = &shared.counters;
    counters.begin();
    let fate = shared.outcomes.fate(device.index, &format!("{job}:{number}"));
    let update =
        |status: &str, details: Value| json!({"status": status, "statusDetails": details, "executionNumber": number});
    if let Err(e) = link.request(&format!("{job}/update"), &update("IN_PROGRESS", json!({"step": "download"}))).await {
        counters.error(&device.id, &e);
    }
    let failure = download(shared, http, execution).await;
    tokio::time::sleep(shared.config.install_delay).await;
    let outcome = match (&failure, fate) {
        (Some(why), _) => Some(("FAILED", why.clone())),
        (None, Fate::Silent) => None,
        (None, Fate::Fail) => Some(("FAILED", "simulated install failure".to_owned())),
        (None, Fate::Succeed) => Some(("SUCCEEDED", "simulated install succeeded".to_owned())),
    };
    match outcome {
        None => SimCounters::add(&counters.silent, 1),
        Some((status, reason)) => {
            match link.request(&format!("{job}/update"), &update(status, json!({"reason": reason}))).await {
                Ok(()) if status == "SUCCEEDED" => SimCounters::add(&counters.succeeded, 1),
                Ok(()) => SimCounters::add(&counters.failed, 1),
                Err(e) => counters.error(&device.id, &e),
            }
        }
    }
    counters.end();
}

/// Downloads every file of the job document over its link, checking size and
/// SHA-256: why it failed, if it did.
async fn download(shared: &Shared, http: &reqwest::Client, execution: &Value) -> Option<String> {
    let files = execution["jobDocument"]["afr_ota"]["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        return Some("the job document names no file".into());
    }
    for f in files {
        let name = f["filepath"].as_str().unwrap_or("?");
        let Some(url) = f["update_data_url"].as_str() else {
            return Some(format!("{name}: no update_data_url"));
        };
        let _permit = shared.downloads.acquire().await;
        let mut response = match http.get(url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => return Some(format!("{name}: download answered {}", r.status())),
            Err(e) => return Some(format!("{name}: download failed: {e}")),
        };
        let mut hash = Sha256::new();
        let mut received = 0u64;
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    received += bytes.len() as u64;
                    SimCounters::add(&shared.counters.bytes, bytes.len() as u64);
                    hash.update(&bytes);
                }
                Ok(None) => break,
                Err(e) => return Some(format!("{name}: download failed: {e}")),
            }
        }
        SimCounters::add(&shared.counters.downloads, 1);
        if Some(received) != f["filesize"].as_u64() {
            return Some(format!("{name}: size mismatch: expected {}, got {received}", f["filesize"]));
        }
        if let Some(expected) = f["sha256"].as_str()
            && !hex::encode(hash.finalize()).eq_ignore_ascii_case(expected)
        {
            SimCounters::add(&shared.counters.hash_mismatches, 1);
            return Some(format!("{name}: sha256 mismatch"));
        }
    }
    None
}
