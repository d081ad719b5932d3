//! The AWS OTA job document, as FreeRTOS's OTA agent (ota-for-aws-iot-embedded-sdk)
//! reads it from a job execution's `jobDocument`:
//! `{"afr_ota": {"protocols": ["HTTP"], "files": [{"filepath", "filesize",
//! "fileid", "certfile", "update_data_url", "auth_scheme", "sig-sha256-ecdsa", …}]}}`.

use serde::{Deserialize, Serialize};

/// A job document holding an OTA update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDocument {
    pub afr_ota: AfrOta,
}

/// `afr_ota`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AfrOta {
    /// The protocols the device may download over, in order of preference: `MQTT`, `HTTP`.
    pub protocols: Vec<String>,
    /// The stream of an MQTT download (AWS's streaming service); none over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamname: Option<String>,
    pub files: Vec<File>,
}

/// One file of the update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Where the device writes the file.
    pub filepath: String,
    pub filesize: u64,
    pub fileid: u32,
    /// The device's path to the certificate its signature verifies with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certfile: Option<String>,
    /// The HTTP(S) URL to download it from (a presigned URL: no credentials needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_data_url: Option<String>,
    /// How `update_data_url` authorizes: `aws.s3.presigned` for a presigned URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_scheme: Option<String>,
    #[serde(rename = "sig-sha256-ecdsa", default, skip_serializing_if = "Option::is_none")]
    pub sig_sha256_ecdsa: Option<String>,
    #[serde(rename = "sig-sha256-rsa", default, skip_serializing_if = "Option::is_none")]
    pub sig_sha256_rsa: Option<String>,
    #[serde(rename = "sig-sha1-rsa", default, skip_serializing_if = "Option::is_none")]
    pub sig_sha1_rsa: Option<String>,
    #[serde(rename = "fileType", default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr: Option<u32>,
    /// updraft's addition: the file's SHA-256, hex (a device may check it before installing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `auth_scheme` of a presigned URL.
pub const PRESIGNED: &str = "aws.s3.presigned";
