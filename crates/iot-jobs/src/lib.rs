//! AWS IoT Jobs' device-side MQTT API, field for field: the reserved topics
//! under `$aws/things/{thingName}/jobs/`, the request documents devices
//! publish, the `accepted` and `rejected` answers and the `notify` and
//! `notify-next` documents the service publishes; and the AWS OTA job
//! document (`afr_ota`) FreeRTOS's OTA agent reads. Names, optionality and
//! units follow AWS's documentation ("Jobs device MQTT API operations"), so
//! device code written against AWS IoT Jobs (the AWS IoT Device SDKs' jobs
//! clients, FreeRTOS's OTA agent) reads what updraft publishes. Times are
//! seconds since the epoch, as AWS sends them. Requests are read leniently:
//! unknown fields are ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod ota;
pub mod presence;
pub mod topic;

/// A job execution's status, as AWS IoT Jobs names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    TimedOut,
    Rejected,
    Removed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "QUEUED",
            Status::InProgress => "IN_PROGRESS",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Rejected => "REJECTED",
            Status::Removed => "REMOVED",
            Status::Canceled => "CANCELED",
        }
    }

    /// The statuses no update leaves.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Queued | Status::InProgress)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `statusDetails`: string names to string values.
pub type StatusDetails = BTreeMap<String, String>;

/// What `get/accepted` and `notify` list of one execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionSummary {
    pub job_id: String,
    pub queued_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    pub last_updated_at: i64,
    pub version_number: i64,
    pub execution_number: i64,
}

/// A job execution as `start-next`, `{jobId}/get` and `notify-next` describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecution {
    pub job_id: String,
    pub thing_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_document: Option<serde_json::Value>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    pub queued_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    pub last_updated_at: i64,
    pub version_number: i64,
    pub execution_number: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_seconds_before_timed_out: Option<i64>,
}

/// `executionState` of `update/accepted` and of `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionState {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    pub version_number: i64,
}

/// `$aws/things/{thingName}/jobs/get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPendingRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `$aws/things/{thingName}/jobs/get/accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPendingAccepted {
    pub in_progress_jobs: Vec<JobExecutionSummary>,
    pub queued_jobs: Vec<JobExecutionSummary>,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `$aws/things/{thingName}/jobs/start-next`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartNextRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_in_minutes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `$aws/things/{thingName}/jobs/{jobId}/get` (`jobId` may be `$next`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_number: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_job_document: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `start-next/accepted`, `{jobId}/get/accepted` (no `execution` when there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionAccepted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<JobExecution>,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `$aws/things/{thingName}/jobs/{jobId}/update`. `status` is kept as sent
/// (and checked by the server), so a wrong value answers `InvalidRequest`
/// rather than `InvalidJson`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_number: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_job_execution_state: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_job_document: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_in_minutes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `{jobId}/update/accepted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAccepted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_state: Option<JobExecutionState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_document: Option<serde_json::Value>,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `$aws/things/{thingName}/jobs/notify`: the thing's pending executions, by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notify {
    pub jobs: BTreeMap<Status, Vec<JobExecutionSummary>>,
    pub timestamp: i64,
}

/// `$aws/things/{thingName}/jobs/notify-next`: the next execution to do, or
/// none (`execution` absent) when nothing is pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyNext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<JobExecution>,
    pub timestamp: i64,
}

/// The `code` of a `rejected` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The topic does not name a jobs operation.
    InvalidTopic,
    /// The payload is not JSON.
    InvalidJson,
    /// The request's content is invalid (a field's type or value).
    InvalidRequest,
    /// The update is not allowed from the execution's current status.
    InvalidStateTransition,
    /// No such job execution (or none pending).
    ResourceNotFound,
    /// `expectedVersion` is not the execution's current version.
    VersionMismatch,
    /// The server failed to handle the request.
    InternalError,
    /// Too many requests: try again later.
    RequestThrottled,
    /// The job execution is in a terminal status.
    TerminalStateReached,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidTopic => "InvalidTopic",
            ErrorCode::InvalidJson => "InvalidJson",
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::InvalidStateTransition => "InvalidStateTransition",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::VersionMismatch => "VersionMismatch",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::RequestThrottled => "RequestThrottled",
            ErrorCode::TerminalStateReached => "TerminalStateReached",
        }
    }
}

/// The answer published on `…/rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_state: Option<JobExecutionState>,
}

/// The largest `statusDetails` AWS accepts: 10 entries.
pub const MAX_STATUS_DETAILS: usize = 10;
/// The longest `statusDetails` name: 128 characters.
pub const MAX_STATUS_DETAIL_NAME: usize = 128;
/// The longest `statusDetails` value: 1,024 characters.
pub const MAX_STATUS_DETAIL_VALUE: usize = 1024;
/// The longest `clientToken`: 64 characters.
pub const MAX_CLIENT_TOKEN: usize = 64;
/// `stepTimeoutInMinutes`: 1 to 10,080 minutes (seven days).
pub const STEP_TIMEOUT_MINUTES: std::ops::RangeInclusive<i64> = 1..=10_080;

/// Reads `statusDetails` as AWS checks it: an object of at most ten string
/// values, names of `[a-zA-Z0-9:_-]+` up to 128 characters, values of up to
/// 1,024 non-blank characters. The error says what is wrong.
pub fn status_details(value: Option<&serde_json::Value>) -> Result<Option<StatusDetails>, String> {
    let Some(value) = value else { return Ok(None) };
    if value.is_null() {
        return Ok(None);
    }
    let Some(map) = value.as_object() else {
        return Err("statusDetails must be an object of string values".into());
    };
    if map.len() > MAX_STATUS_DETAILS {
        return Err(format!("statusDetails may hold at most {MAX_STATUS_DETAILS} entries"));
    }
    let mut out = StatusDetails::new();
    for (name, v) in map {
        let name_ok = !name.is_empty()
            && name.chars().count() <= MAX_STATUS_DETAIL_NAME
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
        if !name_ok {
            return Err(format!("statusDetails name {name:?} must be 1 to 128 characters of [a-zA-Z0-9:_-]"));
        }
        let Some(s) = v.as_str() else {
            return Err(format!("statusDetails value of {name:?} must be a string"));
        };
        if s.trim().is_empty() || s.chars().count() > MAX_STATUS_DETAIL_VALUE {
            return Err(format!("statusDetails value of {name:?} must be 1 to 1024 characters, not blank"));
        }
        out.insert(name.clone(), s.to_owned());
    }
    Ok(Some(out))
}

/// Reads an optional whole number (`expectedVersion`, `executionNumber`,
/// `stepTimeoutInMinutes`) as AWS does: a JSON integer; `field` names it in the error.
pub fn whole_number(value: Option<&serde_json::Value>, field: &str) -> Result<Option<i64>, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| format!("{field} must be a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_and_write_as_aws_spells_them() {
        assert_eq!(serde_json::to_string(&Status::InProgress).unwrap(), "\"IN_PROGRESS\"");
        assert_eq!(serde_json::from_str::<Status>("\"TIMED_OUT\"").unwrap(), Status::TimedOut);
        assert!(Status::Succeeded.is_terminal() && !Status::Queued.is_terminal());
    }

    #[test]
    fn status_details_are_checked_as_aws_checks_them() {
        let ok = serde_json::json!({"progress": "50%", "step_1": "x"});
        assert_eq!(status_details(Some(&ok)).unwrap().unwrap()["progress"], "50%");
        for bad in [
            serde_json::json!({"n": 1}),
            serde_json::json!({"bad name": "x"}),
            serde_json::json!({"n": " "}),
            serde_json::json!([1]),
            serde_json::Value::Object((0..11).map(|i| (format!("k{i}"), "v".into())).collect()),
        ] {
            assert!(status_details(Some(&bad)).is_err(), "{bad}");
        }
        assert_eq!(status_details(None).unwrap(), None);
    }

    #[test]
    fn notify_lists_jobs_by_status() {
        let n = Notify {
            jobs: BTreeMap::from([(
                Status::Queued,
                vec![JobExecutionSummary {
                    job_id: "j".into(),
                    queued_at: 1,
                    started_at: None,
                    last_updated_at: 2,
                    version_number: 1,
                    execution_number: 1,
                }],
            )]),
            timestamp: 3,
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["jobs"]["QUEUED"][0]["jobId"], "j");
        assert!(v["jobs"]["QUEUED"][0].get("startedAt").is_none());
    }
}
