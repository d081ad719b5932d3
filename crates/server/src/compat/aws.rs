//! AWS IoT's OTA updates (seed 002) under `/compat/aws`: CreateOTAUpdate,
//! GetOTAUpdate, ListOTAUpdates and DeleteOTAUpdate, signed with AWS Signature
//! Version 4 (service `iot`, any region) by an access key updraft issues, so
//! AWS's CLI and SDKs work with the endpoint URL `https://<updraft>/compat/aws`.
//! Errors are AWS's REST-JSON errors: `{"message"}` with `x-amzn-ErrorType`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_api::jobs::JobIn;
use updraft_core::job::{Job, JobCommand};
use updraft_core::rollout::Recurrence;
use updraft_core::{PageRequest, validate};

use super::sigv4;
use crate::auth::Caller;
use crate::error::{ErrorCode, Kind};
use crate::state::AppState;

/// How far a signed request's `X-Amz-Date` may be from the server's clock.
const SKEW_SECS: i64 = 15 * 60;
/// The bucket that names images already uploaded to updraft.
pub const BUCKET: &str = "updraft";

/// An error as AWS's REST-JSON protocol answers it.
#[derive(Debug)]
pub struct AwsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl AwsError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AwsError { status, kind, message: message.into(), retry_after: None }
    }

    fn invalid(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message)
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::UNAUTHORIZED, "UnauthorizedException", message)
    }

    fn from_app(e: updraft_app::Error) -> Self {
        let (status, kind) = match e.code.kind() {
            Kind::BadRequest | Kind::Unprocessable | Kind::UnsupportedFormat | Kind::NotSupported => {
                (StatusCode::BAD_REQUEST, "InvalidRequestException")
            }
            Kind::Unauthenticated | Kind::Forbidden => (StatusCode::UNAUTHORIZED, "UnauthorizedException"),
            Kind::NotFound => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            Kind::Conflict if e.code == ErrorCode::Conflict => (StatusCode::CONFLICT, "ResourceAlreadyExistsException"),
            Kind::Conflict => (StatusCode::BAD_REQUEST, "InvalidRequestException"),
            Kind::TooLarge => (StatusCode::GONE, "LimitExceededException"),
            Kind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            Kind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailureException"),
            Kind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException"),
        };
        AwsError { status, kind, message: e.message, retry_after: e.retry_after }
    }

    fn answer(self, request_id: &str) -> Response {
        let mut response = (self.status, Json(json!({"message": self.message}))).into_response();
        let h = response.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-amzn-requestid", v);
        }
        if let Some(s) = self.retry_after {
            h.insert(axum::http::header::RETRY_AFTER, s.into());
        }
        response
    }
}

impl From<crate::error::ApiError> for AwsError {
    fn from(e: crate::error::ApiError) -> Self {
        AwsError::from_app(e.0)
    }
}

/// CreateOTAUpdate's body, as seed 002 has it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOtaUpdateIn {
    #[serde(default)]
    pub additional_parameters: BTreeMap<String, String>,
    pub aws_job_executions_rollout_config: Option<RolloutConfig>,
    pub description: Option<String>,
    #[serde(default)]
    pub files: Vec<OtaUpdateFile>,
    pub role_arn: Option<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    pub target_selection: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutConfig {
    pub maximum_per_minute: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtaUpdateFile {
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub code_signing: Option<Value>,
    pub file_location: Option<FileLocation>,
    pub file_name: Option<String>,
    pub file_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileLocation {
    pub s3_location: Option<S3Location>,
    pub stream: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Location {
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub version: Option<String>,
}

/// Every operation under `/compat/aws/otaUpdates`.
pub async fn ota_updates(State(state): State<AppState>, req: Request) -> Response {
    let request_id = super::request_id(req.headers());
    match act(&state, req).await {
        Ok(body) => {
            let mut r = Json(body).into_response();
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                r.headers_mut().insert("x-amzn-requestid", v);
            }
            r
        }
        Err(e) => e.answer(&request_id),
    }
}

async fn act(state: &AppState, req: Request) -> Result<Value, AwsError> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let peer = req.extensions().get::<crate::conn::PeerAddr>().map(|p| p.0.ip());
    let body = Bytes::from_request(req, state)
        .await
        .map_err(|_| AwsError::new(StatusCode::GONE, "LimitExceededException", "the body is larger than allowed"))?;
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();

    // Signature Version 4.
    let credential = match sigv4::credential(&headers, &query) {
        Ok(Some(c)) => c,
        Ok(None) => return Err(AwsError::unauthorized("the request is not signed with AWS Signature Version 4")),
        Err(e) => return Err(AwsError::unauthorized(e)),
    };
    if credential.service != "iot" {
        return Err(AwsError::unauthorized(format!(
            "the credential is for service `{}`, not `iot`",
            credential.service
        )));
    }
    let signed_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &credential.amz_date)
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| AwsError::unauthorized("X-Amz-Date must be yyyyMMddTHHmmssZ"))?;
    let now = state.app.now().as_second();
    let late = match credential.expires {
        Some(e) => now > signed_at.as_second() + e as i64 || signed_at.as_second() > now + SKEW_SECS,
        None => (now - signed_at.as_second()).abs() > SKEW_SECS,
    };
    if late {
        return Err(AwsError::unauthorized("Signature expired: the signing date is too far from the server's time"));
    }
    let payload_hash = if credential.expires.is_some() {
        sigv4::UNSIGNED_PAYLOAD.to_owned()
    } else {
        let actual = sigv4::sha256_hex(&body);
        match headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
            Some(sigv4::UNSIGNED_PAYLOAD) => sigv4::UNSIGNED_PAYLOAD.to_owned(),
            Some(given) if given != actual => {
                return Err(AwsError::invalid("x-amz-content-sha256 is not the SHA-256 of the body"));
            }
            _ => actual,
        }
    };
    let canonical =
        sigv4::canonical_request(method.as_str(), &path, &query, &headers, &credential.signed_headers, &payload_hash);
    let sign = |secret: &str| sigv4::signature(secret, &credential, &canonical);
    let actor = super::signed_by(state, peer, &credential.access_key, &credential.signature, sign).await.map_err(
        |refused| match refused {
            super::SignedRefusal::Blocked(e) => e.into(),
            super::SignedRefusal::UnknownKey(_) => {
                AwsError::unauthorized("The security token included in the request is invalid")
            }
            super::SignedRefusal::BadSignature => {
                AwsError::unauthorized("The request signature we calculated does not match the signature you provided")
            }
            super::SignedRefusal::Failed(e) => AwsError::from_app(e),
        },
    )?;
    let caller = Caller::admit(state, actor, method == Method::GET)?;
    let region = credential.region.clone();

    let rest = path.strip_prefix("/compat/aws/otaUpdates").unwrap_or("");
    let id = rest.strip_prefix('/').filter(|s| !s.is_empty());
    match (&method, id) {
        (&Method::POST, Some(id)) => create(state, &caller, &region, id, &body).await,
        (&Method::GET, Some(id)) => {
            let report = state.app.job_report(&caller.actor, id).await.map_err(AwsError::from_app)?;
            Ok(json!({"otaUpdateInfo": info(&report.job, &region, caller.tenant())}))
        }
        (&Method::DELETE, Some(id)) => {
            let report = state.app.job_report(&caller.actor, id).await.map_err(AwsError::from_app)?;
            if !report.job.state.is_finished() {
                state.app.command_job(&caller.actor, id, JobCommand::Cancel).await.map_err(AwsError::from_app)?;
            }
            Ok(json!({}))
        }
        (&Method::GET, None) => list(state, &caller, &region, &query).await,
        _ => Err(AwsError::invalid(format!("{method} {path} is not an OTA update operation"))),
    }
}

fn arn(region: &str, tenant: &str, what: &str) -> String {
    format!("arn:aws:iot:{region}:{tenant}:{what}")
}

/// A thing or thing group, by ARN or by name (a name is a thing's).
enum Target {
    Thing(String),
    Group(String),
}

fn target(t: &str) -> Option<Target> {
    if let Some(rest) = t.strip_prefix("arn:") {
        let resource = rest.splitn(5, ':').nth(4)?;
        return match resource.split_once('/') {
            Some(("thing", name)) if !name.is_empty() => Some(Target::Thing(name.to_owned())),
            Some(("thinggroup", name)) if !name.is_empty() => Some(Target::Group(name.to_owned())),
            _ => None,
        };
    }
    (!t.is_empty()).then(|| Target::Thing(t.to_owned()))
}

/// `arn:aws:iam::<account>:role/<name>`.
fn role_arn_shape(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if !partition.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty()))
}

async fn create(state: &AppState, caller: &Caller, region: &str, id: &str, body: &[u8]) -> Result<Value, AwsError> {
    let input: CreateOtaUpdateIn =
        crate::extract::from_json(body).map_err(|e| AwsError::invalid(e.describe(crate::extract::Part::Body)))?;
    let mut problems: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    validate::key("otaUpdateId", id, &mut errors);
    problems.extend(errors.into_iter().map(|e| format!("otaUpdateId: {}", e.message)));
    if input.files.is_empty() || input.files.len() > 50 {
        problems.push("files: from 1 to 50 files".into());
    }
    if input.targets.is_empty() {
        problems.push("targets: at least one thing or thing group".into());
    }
    match input.role_arn.as_deref() {
        None => problems.push("roleArn is required".into()),
        Some(r) if r.len() < 20 || r.len() > 2048 || !role_arn_shape(r) => problems
            .push("roleArn: not an IAM role ARN (arn:aws:iam::<account>:role/<name>, 20 to 2048 characters)".into()),
        _ => {}
    }
    let recurrence = match input.target_selection.as_deref() {
        None | Some("SNAPSHOT") => Recurrence::Snapshot,
        Some("CONTINUOUS") => Recurrence::Continuous,
        Some(other) => {
            problems.push(format!("targetSelection: `{other}` is not CONTINUOUS or SNAPSHOT"));
            Recurrence::Snapshot
        }
    };
    let max_per_minute = match input.aws_job_executions_rollout_config.and_then(|r| r.maximum_per_minute) {
        None => None,
        Some(m @ 1..=1000) => Some(m as u32),
        Some(m) => {
            problems.push(format!("awsJobExecutionsRolloutConfig.maximumPerMinute: {m} is not from 1 to 1000"));
            None
        }
    };
    let (mut devices, mut groups) = (Vec::new(), Vec::new());
    for t in &input.targets {
        match target(t) {
            Some(Target::Thing(n)) => devices.push(n),
            Some(Target::Group(n)) => groups.push(n),
            None => problems.push(format!("targets: `{t}` is not a thing or thing group ARN, nor a thing's name")),
        }
    }
    // The files name one image already uploaded (bucket `updraft`, key `<firmware id>/<file name>`),
    // or objects of buckets updraft may read (`blobs.readable_buckets`), read into a new image.
    let readable = &state.settings.blobs.readable_buckets;
    let mut firmware: Option<String> = None;
    let mut external: Vec<External> = Vec::new();
    let mut metadata = BTreeMap::new();
    for (i, f) in input.files.iter().enumerate() {
        let at = format!("files[{i}]");
        if f.code_signing.as_ref().is_some_and(|c| c.get("awsSignerJobId").is_some()) {
            problems.push(format!("{at}.codeSigning.awsSignerJobId: there is no AWS Signer here; sign when uploading"));
        }
        let location = f.file_location.as_ref();
        if location.is_some_and(|l| l.stream.is_some()) {
            problems.push(format!("{at}.fileLocation.stream: streams are not served; name the uploaded image"));
        }
        let Some(s3) = location.and_then(|l| l.s3_location.as_ref()) else {
            problems.push(format!("{at}.fileLocation.s3Location is required"));
            continue;
        };
        if let Some(bucket) = s3.bucket.as_deref().filter(|b| *b != BUCKET && readable.iter().any(|r| r == b)) {
            match external_file(&at, f, bucket, s3) {
                Ok(file) => {
                    for (k, v) in &f.attributes {
                        metadata.insert(format!("{}.{k}", file.name), v.clone());
                    }
                    metadata.insert(format!("{}.s3Location", file.name), format!("s3://{bucket}/{}", file.key));
                    external.push(file);
                }
                Err(problem) => problems.push(problem),
            }
            continue;
        }
        if s3.bucket.as_deref() != Some(BUCKET) {
            problems.push(format!(
                "{at}.fileLocation.s3Location.bucket: updraft reads images it holds (bucket `{BUCKET}`, key \
                 `<firmware id>/<file name>`) and objects of the buckets its `blobs.readable_buckets` names"
            ));
            continue;
        }
        let Some((fw, name)) = s3.key.as_deref().and_then(|k| k.split_once('/')) else {
            problems.push(format!("{at}.fileLocation.s3Location.key: `<firmware id>/<file name>`"));
            continue;
        };
        if f.file_name.as_deref().is_some_and(|n| n != name) {
            problems.push(format!("{at}.fileName: not the file the key names (`{name}`)"));
        }
        match &firmware {
            Some(other) if other != fw => problems.push(format!("{at}: every file is of one image (`{other}`)")),
            _ => firmware = Some(fw.to_owned()),
        }
        for (k, v) in &f.attributes {
            metadata.insert(format!("{name}.{k}"), v.clone());
        }
        if let Some(v) = &f.file_version {
            metadata.insert(format!("{name}.fileVersion"), v.clone());
        }
        if let Some(v) = &s3.version {
            metadata.insert(format!("{name}.s3Version"), v.clone());
        }
    }
    if !external.is_empty() {
        if firmware.is_some() {
            problems
                .push("files: every file is of one image: all in bucket `updraft`, or all read from buckets".into());
        }
        let mut versions: Vec<&str> = external.iter().map(|f| f.version.as_str()).collect();
        versions.dedup();
        if versions.len() > 1 {
            problems.push("files: every file read from a bucket has the image's fileVersion (one version)".into());
        }
    }
    if !problems.is_empty() {
        return Err(AwsError::invalid(problems.join("; ")));
    }
    let imported = if external.is_empty() {
        None
    } else {
        Some(import(state, caller, &devices, &groups, &external, &metadata).await?)
    };
    let firmware = imported.clone().unwrap_or_else(|| firmware.unwrap_or_default());
    let image = state.app.get_firmware(&caller.actor, &firmware).await.map_err(AwsError::from_app)?;
    for f in input.files.iter().filter(|_| imported.is_none()) {
        let key = f.file_location.as_ref().and_then(|l| l.s3_location.as_ref()).and_then(|s| s.key.as_deref());
        let name = key.and_then(|k| k.split_once('/')).map(|(_, n)| n).unwrap_or("");
        let Some(file) = image.files.iter().find(|x| x.name == name) else {
            return Err(AwsError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("firmware `{firmware}` has no file `{name}`"),
            ));
        };
        if f.file_version.as_deref().is_some_and(|v| v != file.version) {
            return Err(AwsError::invalid(format!(
                "fileVersion of `{name}` is not the file's version `{}`",
                file.version
            )));
        }
        if let Some(asked) = &f.code_signing
            && !signed_as(asked, file.code_signing.as_deref())
        {
            return Err(AwsError::invalid(format!(
                "codeSigning of `{name}`: the file was uploaded with another signature, or none \
                 (an image is signed when it is uploaded: POST /api/v1/firmware with its codeSigning, verified there)"
            )));
        }
    }
    metadata.insert("aws.roleArn".into(), input.role_arn.unwrap_or_default());
    let job = JobIn {
        id: Some(id.to_owned()),
        description: input.description,
        firmware,
        devices,
        groups,
        recurrence: Some(recurrence),
        max_per_minute,
        metadata,
        additional_params: input.additional_parameters.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
        start: Some(true),
        ..JobIn::default()
    };
    let created = match crate::api::jobs::draft(job) {
        Ok(draft) => state.app.create_job(&caller.actor, draft).await.map_err(AwsError::from_app),
        Err(e) => Err(e.into()),
    };
    let report = match created {
        Ok(report) => report,
        Err(e) => {
            // One call, one outcome: an image read for this update goes with its failure.
            if let Some(fw) = &imported
                && let Err(undo) = state.app.delete_firmware(&caller.actor, fw).await
            {
                tracing::warn!(firmware = %fw, error = %undo, "an image read for a failed update was not taken back");
            }
            return Err(e);
        }
    };
    tracing::info!(job = %report.job.id, door = "aws", "job created through a compatibility door");
    let tenant = caller.tenant();
    Ok(json!({
        "otaUpdateId": id,
        "otaUpdateArn": arn(region, tenant, &format!("otaupdate/{id}")),
        "awsIotJobId": id,
        "awsIotJobArn": arn(region, tenant, &format!("job/{id}")),
        "otaUpdateStatus": "CREATE_COMPLETE",
    }))
}

/// A file of the update read from a bucket of `blobs.readable_buckets`.
struct External {
    bucket: String,
    key: String,
    object_version: Option<String>,
    /// Its name on the device: `fileName`, else the key's last part.
    name: String,
    version: String,
    code_signing: Option<updraft_api::code_signing::CodeSigningIn>,
}

fn external_file(at: &str, f: &OtaUpdateFile, bucket: &str, s3: &S3Location) -> Result<External, String> {
    let key =
        s3.key.as_deref().filter(|k| !k.is_empty()).ok_or(format!("{at}.fileLocation.s3Location.key is required"))?;
    let name = f.file_name.clone().unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key).to_owned());
    let version = f
        .file_version
        .clone()
        .ok_or(format!("{at}.fileVersion is required for a file read from a bucket: it is the new image's version"))?;
    let code_signing = match &f.code_signing {
        None => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| format!("{at}.codeSigning: {e}"))?),
    };
    Ok(External {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        object_version: s3.version.clone(),
        name,
        version,
        code_signing,
    })
}

/// Reads the files of an update from their buckets into a new image of the targets'
/// product (its signatures checked as an upload's are): the image's id.
async fn import(
    state: &AppState,
    caller: &Caller,
    devices: &[String],
    groups: &[String],
    files: &[External],
    metadata: &BTreeMap<String, String>,
) -> Result<String, AwsError> {
    let product = targets_product(state, caller, devices, groups).await?;
    let upload = state.app.firmware_upload(&caller.actor).map_err(AwsError::from_app)?;
    let config = state.settings.blobs.s3_config();
    let mut staged = Vec::new();
    for f in files {
        let unreadable = |e: updraft_blob::BlobError| match e {
            updraft_blob::BlobError::NotFound(_) => AwsError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("s3://{}/{} does not exist", f.bucket, f.key),
            ),
            other => AwsError::from_app(updraft_app::Error::blob_unreadable(other)),
        };
        let mut object =
            config.read_object(&f.bucket, &f.key, f.object_version.as_deref()).await.map_err(unreadable)?;
        let mut writer = upload.writer().await.map_err(AwsError::from_app)?;
        while let Some(chunk) = futures_util::StreamExt::next(&mut object).await {
            let chunk = chunk.map_err(unreadable)?;
            writer.write(&chunk).await.map_err(|e| AwsError::from_app(e.into()))?;
        }
        staged.push((f.name.clone(), writer.finish().await.map_err(|e| AwsError::from_app(e.into()))?));
    }
    let input = updraft_app::firmware::NewFirmware {
        product: Some(product),
        version: Some(files[0].version.clone()),
        metadata: metadata.clone(),
        descriptions: files
            .iter()
            .map(|f| updraft_app::firmware::FileDescription {
                name: f.name.clone(),
                component: None,
                version: None,
                code_signing: f.code_signing.clone().map(crate::api::firmware::signing),
            })
            .collect(),
        files: staged,
        ..Default::default()
    };
    let created = state.app.create_firmware(&caller.actor, input).await.map_err(AwsError::from_app)?;
    tracing::info!(firmware = %created.id, door = "aws", "image read from a bucket for an ota update");
    Ok(created.id)
}

/// The one product of an update's things and thing groups (a group's own, or its members').
async fn targets_product(
    state: &AppState,
    caller: &Caller,
    devices: &[String],
    groups: &[String],
) -> Result<String, AwsError> {
    let mut products = Vec::new();
    for d in devices {
        products.push(state.app.get_device(&caller.actor, d).await.map_err(AwsError::from_app)?.product);
    }
    for g in groups {
        let group = state.app.get_group(&caller.actor, g).await.map_err(AwsError::from_app)?;
        match group.product {
            Some(p) => products.push(p),
            None => {
                let page = PageRequest::parse(Some(1000), Some(0), None, None, updraft_app::sortable::DEVICES)
                    .map_err(|e| AwsError::from_app(e.into()))?;
                let members = state.app.group_members(&caller.actor, g, &page).await.map_err(AwsError::from_app)?;
                products.extend(members.items.into_iter().map(|d| d.product));
            }
        }
    }
    products.sort();
    products.dedup();
    match <[String; 1]>::try_from(products) {
        Ok([one]) => Ok(one),
        Err(_) => Err(AwsError::invalid(
            "targets: a file read from a bucket becomes an image of one product: the targets' things are of none or of several",
        )),
    }
}

/// Whether a file's `codeSigning` is the signature its upload carried (verified then):
/// `customCodeSigning`'s signature and chain, or `startSigningJobParameter`'s profile.
fn signed_as(asked: &Value, recorded: Option<&updraft_core::CodeSigning>) -> bool {
    let Some(recorded) = recorded else { return false };
    let text = |v: &Value| v.as_str().map(|s| s.split_whitespace().collect::<String>());
    let custom = &asked["customCodeSigning"];
    let profile = &asked["startSigningJobParameter"]["signingProfileName"];
    if !custom.is_null() {
        let signature = text(&custom["signature"]["inlineDocument"]);
        let chain = text(&custom["certificateChain"]["inlineDocument"]);
        let recorded_chain = recorded.certificate_chain.split_whitespace().collect::<String>();
        signature.is_some_and(|s| s == recorded.signature.split_whitespace().collect::<String>())
            && chain.is_none_or(|c| c == recorded_chain)
    } else if let Some(name) = profile.as_str() {
        recorded.signing_profile.as_deref() == Some(name)
    } else {
        false
    }
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// GetOTAUpdate's `otaUpdateInfo` of a job.
fn info(job: &Job, region: &str, tenant: &str) -> Value {
    let spec = &job.spec;
    let targets: Vec<String> = spec
        .target
        .devices
        .iter()
        .map(|d| arn(region, tenant, &format!("thing/{d}")))
        .chain(spec.target.groups.iter().map(|g| arn(region, tenant, &format!("thinggroup/{g}"))))
        .collect();
    let mut additional = serde_json::Map::new();
    for (k, v) in &spec.additional_params {
        additional.insert(k.clone(), v.clone());
    }
    json!({
        "otaUpdateId": job.id,
        "otaUpdateArn": arn(region, tenant, &format!("otaupdate/{}", job.id)),
        "creationDate": seconds(job.created_at),
        "lastModifiedDate": seconds(job.finished_at.or(job.started_at).unwrap_or(job.created_at)),
        "description": job.description,
        "targets": targets,
        "targetSelection": match spec.recurrence { Recurrence::Snapshot => "SNAPSHOT", Recurrence::Continuous => "CONTINUOUS" },
        "awsJobExecutionsRolloutConfig": spec.pace.max_per_minute.map(|m| json!({"maximumPerMinute": m})),
        "otaUpdateStatus": "CREATE_COMPLETE",
        "awsIotJobId": job.id,
        "awsIotJobArn": arn(region, tenant, &format!("job/{}", job.id)),
        "additionalParameters": additional,
        "roleArn": spec.metadata.get("aws.roleArn"),
        "firmware": job.firmware,
        "jobStatus": job.state.as_str(),
    })
}

/// ListOTAUpdates: `maxResults` (1–250), `nextToken` (an offset), `otaUpdateStatus`.
async fn list(state: &AppState, caller: &Caller, region: &str, query: &[(String, String)]) -> Result<Value, AwsError> {
    let mut max_results = 50u32;
    let mut offset = 0u64;
    for (k, v) in query {
        match k.as_str() {
            "maxResults" => match v.parse::<u32>() {
                Ok(m @ 1..=250) => max_results = m,
                _ => return Err(AwsError::invalid("maxResults: from 1 to 250")),
            },
            "nextToken" => {
                offset = v.parse().map_err(|_| AwsError::invalid("nextToken is not one this server gave"))?
            }
            "otaUpdateStatus" => {
                if !["CREATE_PENDING", "CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_FAILED"].contains(&v.as_str()) {
                    return Err(AwsError::invalid(format!("otaUpdateStatus: `{v}` is not a status")));
                }
                if v != "CREATE_COMPLETE" {
                    // Every OTA update is created complete here.
                    return Ok(json!({"otaUpdates": []}));
                }
            }
            other if other.starts_with("X-Amz-") => {}
            other => return Err(AwsError::invalid(format!("{other} is not a parameter of ListOTAUpdates"))),
        }
    }
    let page =
        PageRequest::parse(Some(max_results), Some(offset), Some("-created_at"), None, updraft_app::sortable::JOBS)
            .map_err(|e| AwsError::from_app(e.into()))?;
    let jobs = state.app.list_jobs(&caller.actor, None, &page).await.map_err(AwsError::from_app)?;
    let next = offset + jobs.items.len() as u64;
    let tenant = caller.tenant();
    let items: Vec<Value> = jobs
        .items
        .iter()
        .map(|j| {
            json!({
                "otaUpdateId": j.id,
                "otaUpdateArn": arn(region, tenant, &format!("otaupdate/{}", j.id)),
                "creationDate": seconds(j.created_at),
            })
        })
        .collect();
    let mut out = json!({"otaUpdates": items});
    if next < jobs.total {
        out["nextToken"] = json!(next.to_string());
    }
    Ok(out)
}
