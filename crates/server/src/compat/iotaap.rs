//! IoTaaP's group OTA (seed 004) under `/compat/iotaap/v1/ota/group`: a POST
//! uploads a `firmware.bin` and starts a job on a group at once (devices
//! already on the version are skipped), authenticated by a group token (the
//! `token` field, `POST /api/v1/group-tokens`); a GET (with an API key) lists
//! the last OTA of each group. Errors are `{"message"}` (500s add `error`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_api::jobs::JobIn;
use updraft_app::firmware::NewFirmware;
use updraft_core::{PageRequest, Version, validate};

use crate::auth::Caller;
use crate::error::{ErrorCode, HttpStatus};
use crate::state::AppState;

/// The largest `firmware.bin` the door takes: it is held in memory until the
/// token is checked (a form may send it before the token). ESP32 images are a few MiB.
pub const MAX_FIRMWARE_BYTES: usize = 64 << 20;
const FIELDS: &[&str] = &["firmware", "group", "token", "version"];

/// An error in IoTaaP's shape.
#[derive(Debug)]
pub struct GroupOtaError {
    pub status: StatusCode,
    pub message: String,
    /// What failed, for a 500.
    pub error: Option<String>,
}

impl GroupOtaError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        GroupOtaError { status, message: message.into(), error: None }
    }

    fn bad(message: impl Into<String>) -> Self {
        GroupOtaError::new(StatusCode::BAD_REQUEST, message)
    }

    fn no_such_group() -> Self {
        GroupOtaError::new(StatusCode::NOT_FOUND, "No such group")
    }

    /// The app's error: its status, with IoTaaP's message for a server's failure.
    fn from_app(e: updraft_app::Error, failing: &str) -> Self {
        let status = e.code.status();
        if status.is_server_error() {
            // The platform answers every failure of its own with a 500 (a store or
            // blob storage that cannot be reached included).
            return GroupOtaError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: failing.to_owned(),
                error: Some(e.message),
            };
        }
        GroupOtaError::new(status, e.message)
    }
}

impl IntoResponse for GroupOtaError {
    fn into_response(self) -> Response {
        let body = match self.error {
            Some(error) => json!({"message": self.message, "error": error}),
            None => json!({"message": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

const UPLOAD_FAILED: &str = "Error when uploading firmware file";
const LIST_FAILED: &str = "Error when getting group OTA's.";

/// The form's fields as they came.
#[derive(Default)]
struct Form {
    text: BTreeMap<String, String>,
    /// The `firmware` part: its file name (if it is a file) and bytes.
    firmware: Option<(Option<String>, Vec<u8>)>,
}

async fn read_form(multipart: Result<Multipart, MultipartRejection>) -> Result<Form, GroupOtaError> {
    let mut multipart = multipart.map_err(|_| GroupOtaError::bad("No file uploaded"))?;
    let mut form = Form::default();
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        GroupOtaError::new(e.status(), format!("the form cannot be read: {}", e.body_text()))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !FIELDS.contains(&name.as_str()) {
            return Err(GroupOtaError::bad(format!("{name} is not a field: firmware, group, token, version")));
        }
        let file_name = field.file_name().map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_FIRMWARE_BYTES {
                return Err(GroupOtaError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("{name} is larger than {MAX_FIRMWARE_BYTES} bytes"),
                ));
            }
        }
        if name == "firmware" {
            form.firmware = Some((file_name, bytes));
        } else {
            let value = String::from_utf8(bytes).map_err(|_| GroupOtaError::bad(format!("{name} must be text")))?;
            form.text.insert(name, value.trim().to_owned());
        }
    }
    Ok(form)
}

/// `POST`: uploads the image to the group's product and starts a job on the group.
pub async fn deploy(
    State(state): State<AppState>,
    peer: Option<axum::Extension<crate::conn::PeerAddr>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), GroupOtaError> {
    let peer = peer.map(|p| p.0.0.ip());
    let form = read_form(multipart).await?;
    for field in FIELDS {
        let given = match *field {
            "firmware" => form.firmware.is_some(),
            other => form.text.get(other).is_some_and(|v| !v.is_empty()),
        };
        if !given {
            return Err(GroupOtaError::bad(format!("{field} is a mandatory field")));
        }
    }
    let (file_name, bytes) = form.firmware.expect("checked above");
    let Some(file_name) = file_name.filter(|_| !bytes.is_empty()) else {
        return Err(GroupOtaError::bad("No file uploaded"));
    };
    let (group, token, version) = (&form.text["group"], &form.text["token"], &form.text["version"]);
    let mut errors = Vec::new();
    validate::key("group", group, &mut errors);
    if !errors.is_empty() {
        return Err(GroupOtaError::bad("Group ID is not valid"));
    }
    if !Version::new(version).is_semver() {
        return Err(GroupOtaError::bad(format!("version `{version}` is not a semantic version (e.g. 1.5.7)")));
    }

    // The token is the credential: one that does not exist, or is another group's, finds no group.
    let (granted, actor) = match state.app.authenticate_group_token(token).await {
        Ok(found) => found,
        Err(e) if e.code == ErrorCode::Unauthorized => {
            state.auth_failed(peer);
            return Err(GroupOtaError::no_such_group());
        }
        Err(e) => return Err(GroupOtaError::from_app(e, UPLOAD_FAILED)),
    };
    if &granted.group != group {
        return Err(GroupOtaError::no_such_group());
    }
    let caller = Caller::admit(&state, actor, false).map_err(|e| GroupOtaError::from_app(e.0, UPLOAD_FAILED))?;
    let found = state.app.get_group(&caller.actor, group).await.map_err(|e| match e.code {
        ErrorCode::NotFound => GroupOtaError::no_such_group(),
        _ => GroupOtaError::from_app(e, UPLOAD_FAILED),
    })?;
    let product = match found.product {
        Some(p) => p,
        None => group_product(&state, &caller, group).await?,
    };

    let upload = state.app.firmware_upload(&caller.actor).map_err(|e| GroupOtaError::from_app(e, UPLOAD_FAILED))?;
    let fail = |e: updraft_app::Error| GroupOtaError::from_app(e, UPLOAD_FAILED);
    let mut writer = upload.writer().await.map_err(fail)?;
    writer.write(&bytes).await.map_err(|e| fail(e.into()))?;
    let staged = writer.finish().await.map_err(|e| fail(e.into()))?;
    let input = NewFirmware {
        id: None,
        product: Some(product),
        version: Some(version.to_owned()),
        name: None,
        release_notes: None,
        metadata: BTreeMap::from([("uploaded_by".to_owned(), "iotaap group ota".to_owned())]),
        needs_verification: false,
        security_version: None,
        descriptions: Vec::new(),
        files: vec![(file_name, staged)],
        unreadable: Vec::new(),
    };
    let firmware = state.app.create_firmware(&caller.actor, input).await.map_err(fail)?;
    let job = JobIn {
        name: Some(format!("group {group} to {version}")),
        firmware: firmware.id.clone(),
        groups: vec![group.to_owned()],
        // Every device on another version, newer ones too.
        allow_downgrade: true,
        start: Some(true),
        ..JobIn::default()
    };
    let created = match crate::api::jobs::draft(job) {
        Ok(draft) => state.app.create_job(&caller.actor, draft).await,
        Err(e) => Err(e.0),
    };
    let report = match created {
        Ok(report) => report,
        Err(e) => {
            // One call, one outcome: without its job the upload is taken back, so a retry can send it again.
            if let Err(undo) = state.app.delete_firmware(&caller.actor, &firmware.id).await {
                tracing::warn!(firmware = %firmware.id, error = %undo, "an upload whose job failed was not taken back");
            }
            return Err(fail(e));
        }
    };
    tracing::info!(job = %report.job.id, firmware = %firmware.id, door = "iotaap", "job created through a compatibility door");
    Ok((StatusCode::CREATED, Json(json!({"message": "Firmware successfully deployed"}))))
}

/// The product of a group without one: its members', when they share one.
async fn group_product(state: &AppState, caller: &Caller, group: &str) -> Result<String, GroupOtaError> {
    let page = PageRequest::parse(Some(1000), Some(0), None, None, updraft_app::sortable::DEVICES)
        .map_err(|e| GroupOtaError::from_app(e.into(), UPLOAD_FAILED))?;
    let members = state
        .app
        .group_members(&caller.actor, group, &page)
        .await
        .map_err(|e| GroupOtaError::from_app(e, UPLOAD_FAILED))?;
    let mut products: Vec<&str> = members.items.iter().map(|d| d.product.as_str()).collect();
    products.sort();
    products.dedup();
    match products.as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => Err(GroupOtaError::bad(
            "the group has no product: give it one, or members of one product, so the firmware has a product",
        )),
    }
}

/// The list's query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub search_value: Option<String>,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub draw: Option<String>,
    pub order_dir: Option<String>,
}

/// `GET`: the last OTA of each of the tenant's groups.
pub async fn list(
    State(state): State<AppState>,
    caller: Result<Caller, crate::error::ApiError>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, GroupOtaError> {
    let caller = caller.map_err(|e| GroupOtaError::from_app(e.0, LIST_FAILED))?;
    let params: ListParams = crate::extract::from_query(query.as_deref().unwrap_or(""))
        .map_err(|e| GroupOtaError::bad(e.describe(crate::extract::Part::Query)))?;
    let descending = match params.order_dir.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(GroupOtaError::bad(format!("order_dir: `{other}` is not asc or desc"))),
    };
    let fail = |e: updraft_app::Error| GroupOtaError::from_app(e, LIST_FAILED);
    // The newest job of each group (jobs whose only scope is one group), newest first.
    let mut last: BTreeMap<String, updraft_core::job::Job> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = PageRequest::parse(Some(1000), Some(offset), Some("-created_at"), None, updraft_app::sortable::JOBS)
            .map_err(|e| fail(e.into()))?;
        let jobs = state.app.list_jobs(&caller.actor, None, &page).await.map_err(fail)?;
        let seen = jobs.items.len() as u64;
        for job in jobs.items {
            let t = &job.spec.target;
            if let [group] = t.groups.as_slice()
                && !t.all
                && t.devices.is_empty()
            {
                last.entry(group.clone()).or_insert(job);
            }
        }
        offset += seen;
        if seen == 0 || offset >= jobs.total {
            break;
        }
    }
    let total = last.len();
    let mut otas = Vec::new();
    for (group, job) in last {
        let firmware = state.app.get_firmware(&caller.actor, &job.firmware).await.map_err(fail)?;
        let path = firmware.files.first().map(|f| format!("{}/{}", firmware.id, f.name)).unwrap_or_default();
        otas.push((
            job.created_at,
            json!({
                "_id": job.id,
                "group": group,
                "__v": 0,
                "last_updated": job.finished_at.or(job.started_at).unwrap_or(job.created_at).to_string(),
                "owner": caller.tenant(),
                "path": path,
                "version": firmware.version,
            }),
        ));
    }
    if let Some(s) = params.search_value.as_deref().filter(|s| !s.is_empty()) {
        otas.retain(|(_, o)| ["group", "version", "_id"].iter().any(|k| o[*k].as_str().is_some_and(|v| v.contains(s))));
    }
    otas.sort_by_key(|(at, _)| *at);
    if descending {
        otas.reverse();
    }
    let filtered = otas.len();
    let offset = usize::try_from(params.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = usize::try_from(params.limit.unwrap_or(10)).unwrap_or(usize::MAX);
    let page: Vec<Value> = otas.into_iter().skip(offset).take(limit).map(|(_, o)| o).collect();
    Ok(Json(json!({
        "otas": page,
        "recordsTotal": total,
        "recordsFiltered": filtered,
        "draw": params.draw.unwrap_or_default(),
    })))
}
