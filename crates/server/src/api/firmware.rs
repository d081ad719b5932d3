//! Firmware images: streamed multipart upload, listing, download, delete.
//!
//! An upload is `multipart/form-data` with text fields (`product`, `version`,
//! and optionally `id`, `name`, `release_notes`, `metadata` as a JSON object,
//! `needs_verification`, `files` as a JSON array describing each file) and one
//! or more file parts. Files are hashed and written to disk as they arrive;
//! nothing is stored unless the whole upload is valid.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;
use updraft_api::code_signing::CodeSigningIn;
use updraft_api::firmware::{FileSpec, FirmwareListParams, FirmwareOut};
use updraft_app::code_signing::{FileSigning, SignatureClaim};
use updraft_app::firmware::{FileDescription, NewFirmware};
use updraft_app::sortable;
use updraft_blob::StagedBlob;
use updraft_core::{FieldError, validate};

use super::{ListParams, PageOut};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiPath, ApiQuery};
use crate::metrics::UPLOAD_BYTES;
use crate::state::AppState;

/// Uploads enforce their own limit while streaming (`max_upload_bytes`).
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::disable()
}

const MAX_TEXT_FIELD: usize = 256 * 1024;
const TEXT_FIELDS: &[&str] = &[
    "id",
    "product",
    "version",
    "name",
    "release_notes",
    "metadata",
    "needs_verification",
    "security_version",
    "files",
];

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::of(ErrorCode::PayloadTooLarge)
    } else {
        ApiError::new(ErrorCode::BadRequest, format!("malformed multipart body: {}", e.body_text()))
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("the upload is larger than the limit of {limit} bytes"))
}

#[utoipa::path(post, path = "/api/v1/firmware", tag = "firmware",
    request_body(content = inline(updraft_api::schemas::FirmwareUpload), content_type = "multipart/form-data",
        description = "text fields `product`, `version` (required), `id`, `name`, `release_notes`, `metadata` (JSON object), `needs_verification`, `security_version` (anti-rollback; default: the product's highest), `files` (JSON array of {name, component, version, codeSigning}: seed 002's `customCodeSigning`); one or more file parts"),
    responses((status = 201, body = FirmwareOut), (status = 404, description = "`not_found`: the product does not exist"), (status = 409, description = "the id or the product's version is taken"), (status = 413, description = "larger than the upload limit"),
        (status = 422, description = "a signed file's chain or signature does not verify (`code_signing_untrusted_chain`, `code_signing_bad_signature`, `code_signing_unsupported_algorithm`); nothing was stored")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<FirmwareOut>)> {
    let input = receive(&state, &caller.actor, &headers, multipart).await?;
    let firmware = state.create_firmware(&caller.actor, input).await?;
    Ok((StatusCode::CREATED, Json(firmware.into())))
}

/// Reads an upload (files streamed into staged blobs, text fields checked)
/// into what the use case takes; the dashboard's upload reads the same form.
pub async fn receive(
    state: &AppState,
    actor: &updraft_app::Actor,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<NewFirmware> {
    let upload = state.firmware_upload(actor)?;
    let limit = state.settings.max_upload_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(1 << 20)) {
        return Err(too_large(limit));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("expected a multipart/form-data upload: {}", e.body_text()),
        )
    })?;

    let mut text: HashMap<String, String> = HashMap::new();
    let mut staged: Vec<(String, StagedBlob)> = Vec::new();
    let mut received: u64 = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let field_name = field.name().unwrap_or_default().to_owned();
        if field_name.contains('\0') || field.file_name().is_some_and(|f| f.contains('\0')) {
            return Err(crate::extract::nul_error(&field_name.replace('\0', "%00")));
        }
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            if staged.len() == validate::MAX_FIRMWARE_FILES {
                return Err(ApiError::field(
                    "files",
                    format!("at most {} files per image", validate::MAX_FIRMWARE_FILES),
                ));
            }
            let mut writer = upload.writer().await?;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                received += chunk.len() as u64;
                if received > limit {
                    return Err(too_large(limit));
                }
                writer.write(&chunk).await?;
            }
            metrics::counter!(UPLOAD_BYTES).increment(writer.size());
            staged.push((file_name, writer.finish().await?));
        } else {
            if !TEXT_FIELDS.contains(&field_name.as_str()) {
                return Err(ApiError::field(
                    &field_name,
                    format!("unknown field; fields: {}, and file parts", TEXT_FIELDS.join(", ")),
                ));
            }
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                value.extend_from_slice(&chunk);
                if value.len() > MAX_TEXT_FIELD {
                    return Err(ApiError::field(&field_name, "too long"));
                }
            }
            let value = String::from_utf8(value).map_err(|_| ApiError::field(&field_name, "must be UTF-8 text"))?;
            if value.contains('\0') {
                return Err(crate::extract::nul_error(&field_name));
            }
            text.insert(field_name, value);
        }
    }

    Ok(describe(text, staged))
}

/// Reads the upload's text fields into what the use case takes; what cannot
/// be read is handed on to be reported with every other problem.
fn describe(mut text: HashMap<String, String>, files: Vec<(String, StagedBlob)>) -> NewFirmware {
    let mut unreadable = Vec::new();
    let mut take = |k: &str| text.remove(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (id, product, version, name, release_notes) =
        (take("id"), take("product"), take("version"), take("name"), take("release_notes"));
    let (metadata_text, needs_verification_text, security_version_text, files_text) =
        (take("metadata"), take("needs_verification"), take("security_version"), take("files"));
    let metadata: BTreeMap<String, String> = match metadata_text.as_deref().map(serde_json::from_str) {
        None => BTreeMap::new(),
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            unreadable.push(FieldError::new("metadata", format!("must be a JSON object of strings: {e}")));
            BTreeMap::new()
        }
    };
    let needs_verification = match needs_verification_text.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            unreadable.push(FieldError::new("needs_verification", format!("must be true or false, not `{other}`")));
            false
        }
    };
    let security_version = match security_version_text.as_deref().map(str::parse::<u32>) {
        None => None,
        Some(Ok(v)) => Some(u64::from(v)),
        Some(Err(_)) => {
            unreadable.push(FieldError::new("security_version", "must be a whole number from 0 to 4294967295"));
            None
        }
    };
    let specs: Vec<FileSpec> = match files_text.as_deref().map(serde_json::from_str) {
        None => Vec::new(),
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            unreadable.push(FieldError::new(
                "files",
                format!("must be a JSON array of {{name, component, version, codeSigning}}: {e}"),
            ));
            Vec::new()
        }
    };
    NewFirmware {
        id,
        product,
        version,
        name,
        release_notes,
        metadata,
        needs_verification,
        security_version,
        descriptions: specs
            .into_iter()
            .map(|s| FileDescription {
                name: s.name,
                component: s.component,
                version: s.version,
                code_signing: s.code_signing.map(signing),
            })
            .collect(),
        files,
        unreadable,
    }
}

/// Seed 002's `codeSigning` as the use case takes it.
pub(crate) fn signing(c: CodeSigningIn) -> FileSigning {
    if let (None, Some(p)) = (&c.custom_code_signing, c.start_signing_job_parameter) {
        return FileSigning::Profile {
            name: p.signing_profile_name,
            certificate_name: p.signing_profile_parameter.and_then(|p| p.certificate_path_on_device),
        };
    }
    match (c.custom_code_signing, c.aws_signer_job_id) {
        (Some(c), _) => FileSigning::Custom(SignatureClaim {
            signature_algorithm: c.signature_algorithm,
            hash_algorithm: c.hash_algorithm,
            certificate_chain: c.certificate_chain.inline_document,
            certificate_name: c.certificate_chain.certificate_name,
            signature: c.signature.inline_document,
        }),
        (None, Some(_)) => FileSigning::Unsupported("awsSignerJobId".into()),
        (None, None) => FileSigning::Unsupported(String::new()),
    }
}

#[utoipa::path(get, path = "/api/v1/firmware", tag = "firmware", params(FirmwareListParams),
    responses((status = 200, body = PageOut<FirmwareOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<FirmwareListParams>,
) -> ApiResult<Json<PageOut<FirmwareOut>>> {
    let req =
        ListParams { limit: p.limit, offset: p.offset, sort: p.sort, search: p.search }.page(sortable::FIRMWARE)?;
    let page = state.list_firmware(&caller.actor, p.product.as_deref(), &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}

#[utoipa::path(get, path = "/api/v1/firmware/{id}", tag = "firmware", responses((status = 200, body = FirmwareOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FirmwareOut>> {
    Ok(Json(state.get_firmware(&caller.actor, &id).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/firmware/{id}", tag = "firmware",
    responses((status = 204), (status = 409, description = "a running job uses the image")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_firmware(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/firmware/{id}/files/{name}", tag = "firmware",
    responses((status = 200, content_type = "application/octet-stream", description = "the file")))]
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (file, read) = state.read_firmware_file(&caller.actor, &id, &name).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, read.len.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file.name)),
        (header::ETAG, format!("\"{}\"", file.sha256)),
    ];
    Ok((headers, Body::from_stream(ReaderStream::with_capacity(read.reader, 256 * 1024))).into_response())
}
