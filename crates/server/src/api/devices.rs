//! Devices: registration (one, or a bulk import of NDJSON or CSV), listing,
//! reading, updating and deleting. A device's token is issued at registration
//! and shown only in that answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use jiff::Timestamp;
use updraft_api::devices::{DeviceIn, DeviceListParams, DeviceOut, DevicePatch, ImportOut, IssuedToken, LineError};
use updraft_app::filters::FilterSpec;
use updraft_app::{DeviceScope, sortable};
use updraft_core::{Access, ConnectionStatus, Device, DeviceAttributes, PropertyValue};

use super::{ListParams, PageOut, non_empty};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency;
use crate::state::AppState;
use updraft_app::devices::{DeviceDraft, ImportBatch, ImportKey, Imported, LineProblem};

/// The most devices one import may carry.
pub use updraft_app::devices::MAX_IMPORT;

pub fn import_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(64 << 20)
}

/// A device as read off the wire.
fn draft(input: DeviceIn) -> DeviceDraft {
    let attributes = DeviceAttributes {
        firmware: input.firmware,
        hardware_version: non_empty(input.hardware_version),
        module_model: non_empty(input.module_model),
        module_version: non_empty(input.module_version),
        template_id: non_empty(input.template_id),
        properties: input.properties,
        metadata: input.metadata,
        activated_at: input.activated_at,
        connection_status: input.connection_status,
    };
    DeviceDraft { id: input.id, product: input.product, attributes }
}

#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = DeviceIn,
    responses((status = 201, body = DeviceOut, description = "the device, with its token shown this once"),
        (status = 404, description = "`not_found`: the product does not exist"),
        (status = 409, description = "the id is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<DeviceIn>,
) -> ApiResult<(StatusCode, Json<DeviceOut>)> {
    let (device, token) = state.app.register_device(&caller.actor, draft(input)).await?;
    Ok((StatusCode::CREATED, Json(DeviceOut::new(device, Some(token)))))
}

#[utoipa::path(post, path = "/api/v1/devices/import", tag = "devices",
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry of the same import answer the first answer again, device tokens included (kept 24 h by default; see docs/api.md)")),
    request_body(content((inline(updraft_api::schemas::NdjsonDevices) = "application/x-ndjson"), (inline(updraft_api::schemas::CsvDevices) = "text/csv")),
        description = "NDJSON: one device object (as for POST /api/v1/devices) per line. CSV: a header of id, product, hardware_version, module_model, module_version, template_id, activated_at, connection_status, `firmware.<component>`, `prop.<name>` (string), `prop.<name>:number`, `prop.<name>:bool`, `meta.<key>`, then one device per line"),
    responses((status = 201, body = ImportOut), (status = 422, description = "`import_rejected`: nothing was imported; `details` lists each line's problems (an unknown product among them); `idempotency_key_reused`: the key was used for another request")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::response::Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let key = match idempotency::key(&headers)? {
        Some(key) => {
            let key = ImportKey {
                key,
                fingerprint: idempotency::fingerprint("POST", "/api/v1/devices/import", &essence, &body),
                api_token: crate::auth::bearer_token(&headers).unwrap_or_default().to_owned(),
            };
            if let Some(first) = state.app.kept_import(&caller.actor, &key).await? {
                return Ok(imported(first));
            }
            Some(key)
        }
        None => None,
    };
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::new(ErrorCode::BadRequest, "the body must be UTF-8"))?;
    // Text PostgreSQL cannot store: a NUL byte (CSV) or a `\u0000` escape (NDJSON), on any line.
    let nul_lines: Vec<LineError> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let field = if l.contains('\0') { Some(String::new()) } else { crate::extract::nul_in_json(l.as_bytes()) };
            field.map(|field| LineError { line: i + 1, field, message: "must not contain NUL characters".into() })
        })
        .collect();
    if let Some(first) = nul_lines.first() {
        let message = format!("line {} holds a NUL character; nothing was imported", first.line);
        return Err(ApiError::new(ErrorCode::BadRequest, message).with_details(nul_lines));
    }
    let mut line_errors = Vec::new();
    let parsed: Vec<(usize, DeviceIn)> = match essence.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => parse_ndjson(text, &mut line_errors),
        "text/csv" => parse_csv(text, &mut line_errors)?,
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "import takes `Content-Type: application/x-ndjson` or `text/csv`",
            ));
        }
    };
    if parsed.len() + line_errors.len() == 0 {
        return Err(ApiError::new(ErrorCode::BadRequest, "the import holds no devices"));
    }
    if parsed.len() > MAX_IMPORT {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("at most {MAX_IMPORT} devices per import")));
    }
    let batch = ImportBatch {
        lines: parsed.into_iter().map(|(line, input)| (line, draft(input))).collect(),
        problems: line_errors
            .into_iter()
            .map(|e| LineProblem { line: e.line, field: e.field, message: e.message })
            .collect(),
        key,
    };
    Ok(imported(state.app.import_devices(&caller.actor, batch).await?))
}

/// An import's answer: 201, marked `Idempotent-Replayed` when it is the first one again.
fn imported(outcome: Imported) -> axum::response::Response {
    use axum::response::IntoResponse;
    let devices = outcome.devices.into_iter().map(|(id, token)| IssuedToken { id, token }).collect();
    let body = Json(ImportOut { created: outcome.created, devices });
    if outcome.replayed {
        (StatusCode::CREATED, [idempotency::REPLAYED], body).into_response()
    } else {
        (StatusCode::CREATED, body).into_response()
    }
}

fn parse_ndjson(text: &str, errors: &mut Vec<LineError>) -> Vec<(usize, DeviceIn)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<DeviceIn>(line) {
            Ok(d) => out.push((i + 1, d)),
            Err(e) => errors.push(LineError { line: i + 1, field: String::new(), message: e.to_string() }),
        }
    }
    out
}

/// A CSV column and where its values go.
enum Column {
    Id,
    Product,
    Text(fn(&mut DeviceIn) -> &mut Option<String>),
    ActivatedAt,
    Status,
    Firmware(String),
    Prop(String, PropKind),
    Meta(String),
}

#[derive(Clone, Copy)]
enum PropKind {
    Text,
    Number,
    Bool,
}

fn parse_csv(text: &str, errors: &mut Vec<LineError>) -> ApiResult<Vec<(usize, DeviceIn)>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header =
        reader.headers().map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("bad CSV header: {e}")))?.clone();
    let mut columns = Vec::new();
    for h in header.iter() {
        let col = match h {
            "id" => Column::Id,
            "product" => Column::Product,
            "hardware_version" => Column::Text(|d| &mut d.hardware_version),
            "module_model" => Column::Text(|d| &mut d.module_model),
            "module_version" => Column::Text(|d| &mut d.module_version),
            "template_id" => Column::Text(|d| &mut d.template_id),
            "activated_at" => Column::ActivatedAt,
            "connection_status" => Column::Status,
            other => {
                if let Some(c) = other.strip_prefix("firmware.") {
                    Column::Firmware(c.to_owned())
                } else if let Some(m) = other.strip_prefix("meta.") {
                    Column::Meta(m.to_owned())
                } else if let Some(p) = other.strip_prefix("prop.") {
                    match p.rsplit_once(':') {
                        Some((name, "number")) => Column::Prop(name.to_owned(), PropKind::Number),
                        Some((name, "bool")) => Column::Prop(name.to_owned(), PropKind::Bool),
                        Some((name, "string")) => Column::Prop(name.to_owned(), PropKind::Text),
                        None => Column::Prop(p.to_owned(), PropKind::Text),
                        Some((_, kind)) => {
                            return Err(ApiError::field(
                                "header",
                                format!("column `{other}`: unknown type `{kind}` (string, number, bool)"),
                            ));
                        }
                    }
                } else {
                    return Err(ApiError::field(
                        "header",
                        format!(
                            "unknown column `{other}`; columns: id, product, hardware_version, module_model, module_version, template_id, activated_at, connection_status, firmware.<component>, prop.<name>[:number|:bool], meta.<key>"
                        ),
                    ));
                }
            }
        };
        columns.push(col);
    }
    if !header.iter().any(|h| h == "id") || !header.iter().any(|h| h == "product") {
        return Err(ApiError::field("header", "the CSV header needs `id` and `product` columns"));
    }
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(LineError { line, field: String::new(), message: e.to_string() });
                continue;
            }
        };
        let mut d = DeviceIn::default();
        for (col, value) in columns.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let mut bad =
                |field: &str, message: String| errors.push(LineError { line, field: field.to_owned(), message });
            match col {
                Column::Id => d.id = value.to_owned(),
                Column::Product => d.product = value.to_owned(),
                Column::Text(f) => *f(&mut d) = Some(value.to_owned()),
                Column::ActivatedAt => match value.parse::<Timestamp>() {
                    Ok(t) => d.activated_at = Some(t),
                    Err(e) => bad("activated_at", format!("not an RFC 3339 time: {e}")),
                },
                Column::Status => match ConnectionStatus::parse(value) {
                    Some(s) => d.connection_status = Some(s),
                    None => bad("connection_status", format!("`{value}` is not online, offline or initializing")),
                },
                Column::Firmware(c) => {
                    d.firmware.insert(c.clone(), value.to_owned());
                }
                Column::Meta(k) => {
                    d.metadata.insert(k.clone(), value.to_owned());
                }
                Column::Prop(name, kind) => {
                    let v = match kind {
                        PropKind::Text => Some(PropertyValue::String(value.to_owned())),
                        PropKind::Number => {
                            value.parse::<f64>().ok().filter(|n| n.is_finite()).map(PropertyValue::Number)
                        }
                        PropKind::Bool => match value {
                            "true" => Some(PropertyValue::Bool(true)),
                            "false" => Some(PropertyValue::Bool(false)),
                            _ => None,
                        },
                    };
                    match v {
                        Some(v) => {
                            d.properties.insert(name.clone(), v);
                        }
                        None => bad(&format!("properties.{name}"), format!("`{value}` is not of the column's type")),
                    }
                }
            }
        }
        out.push((line, d));
    }
    Ok(out)
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceListParams),
    responses((status = 200, body = PageOut<DeviceOut>), (status = 400, description = "`invalid_filter` for a bad `q`")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<DeviceListParams>,
) -> ApiResult<Json<PageOut<DeviceOut>>> {
    let filter = p.q.as_deref().map(|q| super::filters::parse_query("q", q)).transpose()?;
    list_filtered(&state, &caller, p, filter.map(FilterSpec::Given)).await
}

/// The device list, narrowed by a filter when one is given.
async fn list_filtered(
    state: &AppState,
    caller: &Caller,
    p: DeviceListParams,
    filter: Option<FilterSpec>,
) -> ApiResult<Json<PageOut<DeviceOut>>> {
    let req =
        ListParams { limit: p.limit, offset: p.offset, sort: p.sort, search: p.search }.page(sortable::DEVICES)?;
    let scope = DeviceScope { product: p.product, group: p.group };
    let page = state.app.list_devices(&caller.actor, &scope, filter, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}

#[utoipa::path(post, path = "/api/v1/devices/search", tag = "devices", params(DeviceListParams),
    request_body = updraft_api::filters::FilterSpecIn,
    responses((status = 200, body = PageOut<DeviceOut>), (status = 400, description = "`invalid_filter`, with where and why")))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<DeviceListParams>,
    ApiJson(spec): ApiJson<updraft_api::filters::FilterSpecIn>,
) -> ApiResult<Json<PageOut<DeviceOut>>> {
    caller.require(Access::Read)?;
    if p.q.is_some() {
        return Err(ApiError::field("q", "give the filter in the body, not as `q`"));
    }
    list_filtered(&state, &caller, p, Some(super::filters::spec(spec)?)).await
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", responses((status = 200, body = DeviceOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeviceOut>> {
    Ok(Json(state.app.get_device(&caller.actor, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", request_body = DevicePatch,
    responses((status = 200, body = DeviceOut)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> ApiResult<Json<DeviceOut>> {
    let apply = |d: &mut Device| {
        if let Some(v) = &patch.firmware {
            d.firmware = v.clone();
        }
        if let Some(v) = &patch.hardware_version {
            d.hardware_version = non_empty(v.clone());
        }
        if let Some(v) = &patch.module_model {
            d.module_model = non_empty(v.clone());
        }
        if let Some(v) = &patch.module_version {
            d.module_version = non_empty(v.clone());
        }
        if let Some(v) = &patch.template_id {
            d.template_id = non_empty(v.clone());
        }
        if let Some(v) = &patch.properties {
            d.properties = v.clone();
        }
        if let Some(v) = &patch.metadata {
            d.metadata = v.clone();
        }
        if let Some(v) = patch.activated_at {
            d.activated_at = v;
        }
        if let Some(v) = patch.connection_status {
            d.connection_status = v;
        }
        Ok(())
    };
    Ok(Json(state.app.update_device(&caller.actor, &id, &apply).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_device(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/token", tag = "devices",
    responses((status = 200, body = IssuedToken, description = "the device's new token, shown this once; the old one stops working at once")))]
pub async fn reissue_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<IssuedToken>> {
    let token = state.app.reissue_device_token(&caller.actor, &id).await?;
    Ok(Json(IssuedToken { id, token }))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/mqtt-certificate", tag = "devices",
    responses((status = 200, body = updraft_api::devices::MqttCertificateOut,
        description = "a client certificate for the device's MQTT connection and its private key, shown this once"),
        (status = 409, description = "`mqtt_disabled`: the server has no MQTT door (`mqtt.url`)")))]
pub async fn mqtt_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<updraft_api::devices::MqttCertificateOut>> {
    // Who may, and for which device, before whether this server can: another tenant's device is
    // not found whatever the configuration.
    let device = state.app.authorize_device_credentials(&caller.actor, &id).await?;
    let Some(ca) = state.device_ca.clone() else {
        return Err(updraft_app::Error::new(
            updraft_app::ErrorCode::MqttDisabled,
            "this server has no MQTT door: set mqtt.url to issue MQTT certificates",
        )
        .into());
    };
    let thing = crate::mqtt::thing_name(&state.settings.mqtt.default_tenant, caller.actor.tenant(), &device.id);
    let (certificate_pem, private_key_pem) =
        ca.issue(&thing).map_err(|e| updraft_app::Error::internal("mqtt certificate", e))?;
    tracing::info!(tenant = caller.actor.tenant(), device = %device.id, %thing, "mqtt certificate issued");
    Ok(Json(updraft_api::devices::MqttCertificateOut {
        thing_name: thing,
        certificate_pem,
        private_key_pem,
        ca_certificate_pem: ca.cert_pem.clone(),
        endpoint: state.settings.mqtt.device_url.clone().or_else(|| state.settings.mqtt.url.clone()),
    }))
}
