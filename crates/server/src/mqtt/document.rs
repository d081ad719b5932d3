//! updraft's executions as AWS IoT Jobs shows them: statuses, summaries,
//! executions and the AWS OTA job document with signed download links.

use std::collections::BTreeMap;

use updraft_core::job::{EventSource, Execution, ExecutionEvent, ExecutionState, Job};
use updraft_core::{Firmware, SignatureAlgorithm};
use updraft_iot_jobs::{JobExecution, JobExecutionState, JobExecutionSummary, Status, StatusDetails, ota};

/// What a device sees of an execution's status. A queued execution (not
/// released to the device) is not its to see: `None`.
pub fn status(e: &Execution) -> Option<Status> {
    use ExecutionState::*;
    Some(match e.state {
        _ if e.cancel_requested => Status::Canceled,
        Queued => return None,
        AwaitingConsent | Notified => Status::Queued,
        Downloading | Downloaded | Installing => Status::InProgress,
        Succeeded => Status::Succeeded,
        Skipped => Status::Removed,
        Failed => Status::Failed,
        TimedOut => Status::TimedOut,
        Rejected => Status::Rejected,
        Canceled => Status::Canceled,
    })
}

/// `statusDetails` kept with a device's report as `name: value` details.
pub fn details_of(details: &StatusDetails) -> Vec<String> {
    details.iter().map(|(k, v)| format!("{k}: {v}")).collect()
}

/// The `statusDetails` the device last reported (read back from its history).
fn last_details(history: &[ExecutionEvent]) -> Option<StatusDetails> {
    // An update without `statusDetails` keeps the last ones given.
    history.iter().rev().filter(|ev| ev.source == EventSource::Device).find_map(|ev| {
        let map: StatusDetails =
            ev.details.iter().filter_map(|d| d.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned()))).collect();
        (!map.is_empty()).then_some(map)
    })
}

/// What an execution's history says of it: its version (one per change),
/// when the device started it, and its last `statusDetails`.
pub struct Facts {
    pub version: i64,
    pub started_at: Option<i64>,
    pub details: Option<StatusDetails>,
}

impl Facts {
    pub fn of(history: &[ExecutionEvent]) -> Facts {
        let started_at = history
            .iter()
            .find(|ev| ev.state.is_in_progress() && ev.state != ExecutionState::Notified)
            .map(|ev| ev.at.as_second());
        Facts { version: history.len().max(1) as i64, started_at, details: last_details(history) }
    }
}

pub fn summary(e: &Execution, facts: &Facts) -> JobExecutionSummary {
    JobExecutionSummary {
        job_id: e.job.clone(),
        queued_at: e.created_at.as_second(),
        started_at: facts.started_at,
        last_updated_at: e.updated_at.as_second(),
        version_number: facts.version,
        execution_number: i64::from(e.attempt.max(1)),
    }
}

pub fn execution(
    e: &Execution,
    status: Status,
    facts: &Facts,
    thing: &str,
    document: Option<serde_json::Value>,
) -> JobExecution {
    JobExecution {
        job_id: e.job.clone(),
        thing_name: thing.to_owned(),
        job_document: document,
        status,
        status_details: facts.details.clone(),
        queued_at: e.created_at.as_second(),
        started_at: facts.started_at,
        last_updated_at: e.updated_at.as_second(),
        version_number: facts.version,
        execution_number: i64::from(e.attempt.max(1)),
        approximate_seconds_before_timed_out: None,
    }
}

pub fn state(status: Status, facts: &Facts) -> JobExecutionState {
    JobExecutionState { status, status_details: facts.details.clone(), version_number: facts.version }
}

/// A path segment, percent-encoded (RFC 3986's unreserved characters kept).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a file's download link points and how it is signed.
pub struct Links<'a> {
    /// `{public URL}` of the device API.
    pub base: &'a str,
    pub tenant: &'a str,
    pub device: &'a str,
    /// Until when links work, seconds since the epoch.
    pub expires: i64,
}

/// The job document of an execution: the AWS OTA document (`afr_ota`) of the
/// job's firmware, every file with a signed HTTP(S) link that needs no
/// credentials, and `updraft`: the job, the image, its version, whether
/// the device's user must consent first, and when the execution last changed.
pub fn job_document(
    app: &updraft_app::App,
    job: &Job,
    fw: &Firmware,
    e: &Execution,
    links: &Links<'_>,
) -> serde_json::Value {
    let device = path_segment(links.device);
    let files = fw
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let file = path_segment(&f.name);
            let firmware = path_segment(&fw.id);
            let signature = app.download_signature(links.tenant, &device, &firmware, &file, links.expires);
            let url = format!(
                "{}/{}/controller/v1/{device}/softwaremodules/{firmware}/artifacts/{file}?expires={}&signature={signature}",
                links.base, links.tenant, links.expires
            );
            let signed = f.code_signing.as_deref();
            let sig = |alg: SignatureAlgorithm| {
                signed.filter(|s| s.signature_algorithm == alg).map(|s| s.signature.clone())
            };
            ota::File {
                filepath: f.name.clone(),
                filesize: f.size,
                fileid: i as u32,
                certfile: signed.and_then(|s| s.certificate_name.clone()),
                update_data_url: Some(url),
                auth_scheme: Some(ota::PRESIGNED.to_owned()),
                sig_sha256_ecdsa: sig(SignatureAlgorithm::EcdsaP256),
                sig_sha256_rsa: sig(SignatureAlgorithm::RsaPss),
                sig_sha1_rsa: None,
                file_type: None,
                attr: None,
                sha256: Some(f.sha256.clone()),
            }
        })
        .collect();
    let doc = ota::JobDocument { afr_ota: ota::AfrOta { protocols: vec!["HTTP".into()], streamname: None, files } };
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    let mut extra = BTreeMap::new();
    extra.insert("job", serde_json::Value::from(job.id.clone()));
    extra.insert("firmware", fw.id.clone().into());
    extra.insert("product", fw.product.clone().into());
    extra.insert("version", fw.version.clone().into());
    extra.insert("consentRequired", (e.state == ExecutionState::AwaitingConsent).into());
    // To the microsecond (AWS's times are whole seconds): when the execution last changed.
    extra.insert("updatedAt", e.updated_at.to_string().into());
    if !job.spec.additional_params.is_empty() {
        extra.insert("additionalParameters", serde_json::to_value(&job.spec.additional_params).unwrap_or_default());
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("updraft".into(), serde_json::to_value(extra).unwrap_or_default());
    }
    value
}
