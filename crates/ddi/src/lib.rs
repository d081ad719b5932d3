//! The JSON of Eclipse hawkBit's Direct Device Integration (DDI) API, field for
//! field: what the server answers and what devices send. Field names, enum
//! values and optionality follow hawkBit's `Ddi*` model classes, because real
//! clients (SWUpdate's suricatta, rauc-hawkbit-updater, hawkbit-rs) parse them
//! strictly. Requests are read leniently, as hawkBit does: unknown fields
//! (`id`, `time` from older clients) are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A HAL link: `{"href": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
}

impl Link {
    pub fn new(href: impl Into<String>) -> Self {
        Link { href: href.into() }
    }
}

/// The root resource a device polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerBase {
    pub config: Config,
    #[serde(rename = "_links", default, skip_serializing_if = "ControllerLinks::is_empty")]
    pub links: ControllerLinks,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub polling: Polling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Polling {
    /// `HH:MM:SS`, always under 24 hours.
    pub sleep: String,
}

/// At most one of `deploymentBase`, `cancelAction`, `confirmationBase`, plus
/// `installedBase` and `configData` when they apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerLinks {
    #[serde(rename = "deploymentBase", skip_serializing_if = "Option::is_none")]
    pub deployment_base: Option<Link>,
    #[serde(rename = "cancelAction", skip_serializing_if = "Option::is_none")]
    pub cancel_action: Option<Link>,
    #[serde(rename = "confirmationBase", skip_serializing_if = "Option::is_none")]
    pub confirmation_base: Option<Link>,
    #[serde(rename = "installedBase", skip_serializing_if = "Option::is_none")]
    pub installed_base: Option<Link>,
    #[serde(rename = "configData", skip_serializing_if = "Option::is_none")]
    pub config_data: Option<Link>,
}

impl ControllerLinks {
    pub fn is_empty(&self) -> bool {
        self.deployment_base.is_none()
            && self.cancel_action.is_none()
            && self.confirmation_base.is_none()
            && self.installed_base.is_none()
            && self.config_data.is_none()
    }
}

/// `skip`, `attempt` or `forced`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlingType {
    Skip,
    Attempt,
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceWindow {
    Available,
    Unavailable,
}

/// A deployment (`GET deploymentBase/{id}`, `GET installedBase/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentBase {
    /// The action id, as a string.
    pub id: String,
    pub deployment: Deployment,
    #[serde(rename = "actionHistory", skip_serializing_if = "Option::is_none")]
    pub action_history: Option<ActionHistory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub download: HandlingType,
    pub update: HandlingType,
    #[serde(rename = "maintenanceWindow", skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindow>,
    pub chunks: Vec<Chunk>,
}

/// One software module: here, one component of a firmware image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub part: String,
    pub version: String,
    pub name: String,
    pub artifacts: Vec<Artifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Vec<KeyValue>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub filename: String,
    pub hashes: Hashes,
    /// Bytes, a 64-bit integer.
    pub size: u64,
    #[serde(rename = "_links")]
    pub links: ArtifactLinks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    pub sha1: String,
    pub md5: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLinks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<Link>,
    #[serde(rename = "download-http", skip_serializing_if = "Option::is_none")]
    pub download_http: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5sum: Option<Link>,
    #[serde(rename = "md5sum-http", skip_serializing_if = "Option::is_none")]
    pub md5sum_http: Option<Link>,
}

/// The action's status and messages, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionHistory {
    pub status: String,
    pub messages: Vec<String>,
}

/// `GET cancelAction/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub id: String,
    #[serde(rename = "cancelAction")]
    pub cancel_action: CancelAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAction {
    #[serde(rename = "stopId")]
    pub stop_id: String,
}

/// `GET confirmationBase`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationBase {
    #[serde(rename = "autoConfirm")]
    pub auto_confirm: AutoConfirm,
    #[serde(rename = "_links", default)]
    pub links: BTreeMap<String, Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoConfirm {
    pub active: bool,
}

/// `GET confirmationBase/{id}`: the deployment the device is asked to confirm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationBaseAction {
    pub id: String,
    pub confirmation: Deployment,
    #[serde(rename = "actionHistory", skip_serializing_if = "Option::is_none")]
    pub action_history: Option<ActionHistory>,
}

/// What a device reports about an action (`POST …/feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionFeedback {
    /// Milliseconds since the epoch; the server's time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::long")]
    pub timestamp: Option<i64>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub execution: Execution,
    pub result: ResultStatus,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::int")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::strings")]
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Closed,
    Proceeding,
    Canceled,
    Scheduled,
    Rejected,
    Resumed,
    Downloaded,
    Download,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultStatus {
    pub finished: Finished,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    Success,
    Failure,
    None,
}

/// Progress as a device reports it. hawkBit does not validate it (`DdiResult`
/// does not cascade validation into it): `{}`, a missing `cnt` or `of`, and
/// other keys (`{"percentage": 40}`) are all accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::int")]
    pub cnt: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::int")]
    pub of: Option<i32>,
}

/// `PUT configData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ConfigMode>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigMode {
    Merge,
    Replace,
    Remove,
}

/// `POST confirmationBase/{id}/feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationFeedback {
    pub confirmation: Confirmation,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::int")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient::strings")]
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirmation {
    Confirmed,
    Denied,
}

/// Scalars read as hawkBit's Jackson reads them into Java `Integer`, `Long`
/// and `String`: `null` is absent, an integer may come as a float (truncated)
/// or as a numeric string, a string may come as a number or a boolean.
mod lenient {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn integer<E: Error>(v: &Value, min: i64, max: i64) -> Result<Option<i64>, E> {
        let n = match v {
            Value::Null => return Ok(None),
            Value::Number(n) => n.as_i64().map(|i| i as f64).or_else(|| n.as_f64()),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim().parse::<i64>().ok().map(|i| i as f64),
            _ => None,
        };
        match n.map(f64::trunc) {
            Some(f) if f >= min as f64 && f <= max as f64 => Ok(Some(f as i64)),
            _ => Err(E::custom(format!("expected an integer from {min} to {max}, found {v}"))),
        }
    }

    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(integer(&v, i32::MIN.into(), i32::MAX.into())?.map(|i| i as i32))
    }

    pub fn long<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Value::deserialize(d)?;
        integer(&v, i64::MIN, i64::MAX)
    }

    fn text(v: Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A list of strings; `null` is empty and `null` entries are dropped.
    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
        items
            .into_iter()
            .filter(|v| !v.is_null())
            .map(|v| text(v.clone()).ok_or_else(|| D::Error::custom(format!("expected a string, found {v}"))))
            .collect()
    }

    /// A map of strings; a value that is an object or an array is refused.
    pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        let map = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
        map.into_iter()
            .map(|(k, v)| {
                let s =
                    text(v.clone()).ok_or_else(|| D::Error::custom(format!("`{k}`: expected a string, found {v}")))?;
                Ok((k, s))
            })
            .collect()
    }
}

/// hawkBit's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "exceptionClass")]
    pub exception_class: String,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    pub message: String,
}

/// Formats a polling interval as `HH:MM:SS`, clamped to 00:00:01–23:59:59.
pub fn format_sleep(seconds: u64) -> String {
    let s = seconds.clamp(1, 24 * 3600 - 1);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Reads `HH:MM:SS` into seconds.
pub fn parse_sleep(s: &str) -> Option<u64> {
    let mut parts = s.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || m > 59 || sec > 59 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_round_trips() {
        assert_eq!(format_sleep(300), "00:05:00");
        assert_eq!(format_sleep(90_000), "23:59:59");
        assert_eq!(parse_sleep("01:02:03"), Some(3723));
        assert_eq!(parse_sleep("1:2"), None);
    }

    #[test]
    fn feedback_from_old_clients_parses() {
        // SWUpdate: numeric id, time, progress; rauc: string time, one detail.
        let swupdate = r#"{"id": 5, "time": "20190101T101010", "status": {"result": {"progress": {"cnt": 1, "of": 3}, "finished": "none"}, "execution": "proceeding", "details": ["a"]}}"#;
        let f: ActionFeedback = serde_json::from_str(swupdate).unwrap();
        assert_eq!(f.status.execution, Execution::Proceeding);
        assert_eq!(f.status.result.progress, Some(Progress { cnt: Some(1), of: Some(3) }));
        let modern = r#"{"timestamp": 1627997501890, "status": {"execution": "closed", "result": {"finished": "success"}, "code": 200}}"#;
        let f: ActionFeedback = serde_json::from_str(modern).unwrap();
        assert_eq!((f.timestamp, f.status.code), (Some(1627997501890), Some(200)));
        assert!(serde_json::from_str::<ActionFeedback>(r#"{"status": {"execution": "closed"}}"#).is_err());
    }

    #[test]
    fn requests_are_read_as_leniently_as_hawkbits_jackson_reads_them() {
        let f: ActionFeedback = serde_json::from_str(
            r#"{"status": {"execution": "proceeding", "result": {"finished": "none", "progress": {}}, "code": null, "details": null}}"#,
        )
        .unwrap();
        assert_eq!(
            (f.status.result.progress, f.status.code, f.status.details.len()),
            (Some(Progress::default()), None, 0)
        );
        let f: ActionFeedback = serde_json::from_str(
            r#"{"status": {"execution": "closed", "result": {"finished": "success", "progress": {"percentage": 40, "of": "7"}}, "code": "200", "details": [1, true, "x"]}}"#,
        )
        .unwrap();
        assert_eq!(f.status.result.progress, Some(Progress { cnt: None, of: Some(7) }));
        assert_eq!((f.status.code, f.status.details), (Some(200), vec!["1".into(), "true".into(), "x".into()]));
        let c: ConfigData = serde_json::from_str(r#"{"data": {"rev": 2, "beta": false, "name": "x"}}"#).unwrap();
        assert_eq!(c.data["rev"], "2");
        let c: ConfirmationFeedback = serde_json::from_str(r#"{"confirmation": "confirmed", "code": 1.9}"#).unwrap();
        assert_eq!(c.code, Some(1), "Jackson truncates a float read into an Integer");
        for bad in [
            r#"{"status": {"execution": "closed", "result": {"finished": "success"}, "code": 3000000000}}"#,
            r#"{"status": {"execution": "closed", "result": {"finished": "success"}, "details": [{}]}}"#,
            r#"{"status": {"execution": "closed", "result": {"finished": "success", "progress": {"cnt": true}}}}"#,
        ] {
            assert!(serde_json::from_str::<ActionFeedback>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ConfigData>(r#"{"data": {"k": {"nested": 1}}}"#).is_err());
        assert!(serde_json::from_str::<ConfigData>(r#"{"mode": "merge"}"#).is_err(), "data is required");
        assert!(serde_json::from_str::<ConfirmationFeedback>(r#"{"code": 1}"#).is_err(), "confirmation is required");
    }

    #[test]
    fn root_omits_empty_links() {
        let root = ControllerBase {
            config: Config { polling: Polling { sleep: "00:05:00".into() } },
            links: Default::default(),
        };
        assert_eq!(serde_json::to_string(&root).unwrap(), r#"{"config":{"polling":{"sleep":"00:05:00"}}}"#);
    }
}
