//! Devices: registration (one, an import, a device registering itself
//! through a gateway), reads, changes, deletion and token reissue.

use crate::store::{DeviceChange, DeviceScope, IdempotentRequest, StoreError};
use serde::{Deserialize, Serialize};
use updraft_core::{Access, Device, DeviceAttributes, FieldError, NewDevice, Page, PageRequest, validate};

use crate::actor::{new_token, token_hash};
use crate::error::{Error, ErrorCode, Result};
use crate::filters::FilterSpec;
use crate::{Actor, App, idempotency};

/// A device as an operator registers it.
#[derive(Debug, Clone)]
pub struct DeviceDraft {
    pub id: String,
    pub product: String,
    pub attributes: DeviceAttributes,
}

/// A problem of one line of an import (1-based, counting a CSV header).
#[derive(Debug, Clone, Serialize)]
pub struct LineProblem {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// What makes an import idempotent: the client's key, what it asked (see
/// [`idempotency::fingerprint`]) and the API token it asked with.
#[derive(Debug, Clone)]
pub struct ImportKey {
    pub key: String,
    pub fingerprint: String,
    pub api_token: String,
}

/// An import's devices, by line, and what reading the lines found wrong.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub lines: Vec<(usize, DeviceDraft)>,
    pub problems: Vec<LineProblem>,
    pub key: Option<ImportKey>,
}

/// What an import answers: the devices created and their tokens (shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub created: usize,
    /// (device id, token).
    pub devices: Vec<(String, String)>,
    /// The answer is the first one, given again to a retry.
    pub replayed: bool,
}

/// The most devices one import registers.
pub const MAX_IMPORT: usize = 100_000;

/// Checks a device and gives it a new token; field errors are prefixed with `prefix`.
pub fn prepare(draft: DeviceDraft, prefix: &str, errors: &mut Vec<FieldError>) -> (NewDevice, String) {
    let mut own = Vec::new();
    validate::device_id("id", &draft.id, &mut own);
    validate::key("product", &draft.product, &mut own);
    validate::device_attributes(&draft.attributes, &mut own);
    errors.extend(own.into_iter().map(|e| FieldError::new(format!("{prefix}{}", e.field), e.message)));
    let token = new_token("upd_d_");
    (
        NewDevice {
            id: draft.id,
            product: draft.product,
            attributes: draft.attributes,
            token_hash: token_hash(&token),
        },
        token,
    )
}

/// The problems of a batch of one, named as fields of the device.
fn unprefixed(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors.into_iter().map(|e| FieldError::new(e.field.trim_start_matches("0."), e.message)).collect()
}

/// The first answer of an idempotent import, its device tokens derived again;
/// `idempotency_key_reused` when the retry asks something else.
fn replay(kept: IdempotentRequest, key: &ImportKey) -> Result<Imported> {
    if kept.fingerprint != key.fingerprint {
        return Err(Error::of(ErrorCode::IdempotencyKeyReused));
    }
    #[derive(Deserialize)]
    struct Kept {
        created: usize,
        devices: Vec<String>,
    }
    let answer: Kept = serde_json::from_str(&kept.answer).map_err(|e| Error::internal("a kept import answer", e))?;
    let devices = answer
        .devices
        .into_iter()
        .map(|id| {
            let token = idempotency::device_token(&key.api_token, &kept.key, kept.created_at, &id);
            (id, token)
        })
        .collect();
    Ok(Imported { created: answer.created, devices, replayed: true })
}

impl App {
    /// Registers one device; its token is answered this once.
    pub async fn register_device(&self, actor: &Actor, draft: DeviceDraft) -> Result<(Device, String)> {
        actor.require(Access::WriteFleet)?;
        let mut errors = Vec::new();
        let (device, token) = prepare(draft, "", &mut errors);
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        let id = device.id.clone();
        let device = self.register(actor.tenant(), device).await.map_err(|e| match e {
            StoreError::Invalid(updraft_core::Error::Invalid(errs)) if errs.iter().any(|e| e.field == "0.id") => {
                Error::new(ErrorCode::Conflict, format!("device `{id}` already exists"))
            }
            StoreError::Invalid(updraft_core::Error::Invalid(errs)) => Error::invalid(unprefixed(errs)),
            StoreError::Missing(references) => Error::missing(unprefixed(references)),
            other => other.into(),
        })?;
        Ok((device, token))
    }

    async fn register(&self, tenant: &str, device: NewDevice) -> Result<Device, StoreError> {
        let now = self.now();
        self.store.create_devices(tenant, std::slice::from_ref(&device), now).await?;
        metrics::counter!(crate::metrics::DEVICES_REGISTERED).increment(1);
        Ok(device.into_device(now))
    }

    /// Plug-and-play, as hawkBit's `findOrRegisterTargetIfItDoesNotExist`: a
    /// gateway speaking for an unknown device registers it with the
    /// configured `ddi_default_product`, no attributes yet (it reports them
    /// through `configData`) and a token nobody has seen. `false` when no
    /// default product is configured or the id is not a valid device id.
    pub async fn register_self(&self, tenant: &str, id: &str) -> Result<bool> {
        let Some(product) = self.config.ddi_default_product.as_deref() else { return Ok(false) };
        let mut errors = Vec::new();
        validate::device_id("id", id, &mut errors);
        if !errors.is_empty() {
            return Ok(false);
        }
        let device = NewDevice {
            id: id.to_owned(),
            product: product.to_owned(),
            attributes: DeviceAttributes::default(),
            token_hash: token_hash(&new_token("upd_d_")),
        };
        match self.register(tenant, device).await {
            Ok(_) => tracing::info!(tenant = %tenant, device = %id, product = %product, "device registered itself"),
            // Another poll registered it first, or the product is not the tenant's.
            Err(StoreError::Invalid(_) | StoreError::Missing(_) | StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.settle().await;
        Ok(true)
    }

    /// The first answer of an import made with `key`, if one is kept.
    pub async fn kept_import(&self, actor: &Actor, key: &ImportKey) -> Result<Option<Imported>> {
        actor.require(Access::WriteFleet)?;
        let api_key = actor.key().map(|k| k.id.as_str()).unwrap_or_default();
        match self.store.idempotent_request(actor.tenant(), api_key, &key.key, self.now()).await? {
            Some(kept) => replay(kept, key).map(Some),
            None => Ok(None),
        }
    }

    /// Registers a batch of devices, all or none; every line's problems are
    /// reported at once (`import_rejected`).
    pub async fn import_devices(&self, actor: &Actor, batch: ImportBatch) -> Result<Imported> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let api_key = actor.key().map(|k| k.id.clone()).unwrap_or_default();
        let now = self.now();
        let mut line_errors = batch.problems;
        let mut lines = Vec::with_capacity(batch.lines.len());
        let mut devices = Vec::with_capacity(batch.lines.len());
        let mut tokens = Vec::with_capacity(batch.lines.len());
        for (line, draft) in batch.lines {
            let mut errors = Vec::new();
            let (device, token) = prepare(draft, "", &mut errors);
            line_errors.extend(errors.into_iter().map(|e| LineProblem { line, field: e.field, message: e.message }));
            lines.push(line);
            tokens.push((device.id.clone(), token));
            devices.push(device);
        }
        let mut kept = None;
        if let Some(key) = &batch.key {
            for (device, issued) in devices.iter_mut().zip(tokens.iter_mut()) {
                issued.1 = idempotency::device_token(&key.api_token, &key.key, now, &device.id);
                device.token_hash = token_hash(&issued.1);
            }
            let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
            kept = Some(IdempotentRequest {
                api_key: api_key.clone(),
                key: key.key.clone(),
                fingerprint: key.fingerprint.clone(),
                answer: serde_json::json!({"created": devices.len(), "devices": ids}).to_string(),
                created_at: now,
                expires_at: now + jiff::SignedDuration::from_secs(self.config.idempotency_ttl_secs as i64),
            });
        }
        if line_errors.is_empty() {
            let created = match &kept {
                Some(request) => self.store.create_devices_once(tenant, &devices, now, request).await,
                None => self.store.create_devices(tenant, &devices, now).await,
            };
            match created {
                // The same key committed first (a concurrent retry): answer as it did.
                Err(StoreError::Conflict { what: "idempotency key", .. }) => {
                    if let (Some(request), Some(key)) = (&kept, &batch.key) {
                        let first = self.store.idempotent_request(tenant, &api_key, &request.key, now).await?;
                        if let Some(first) = first {
                            return replay(first, key);
                        }
                    }
                    return Err(Error::of(ErrorCode::Conflict));
                }
                Ok(()) => {}
                // Unknown products stay among the batch's line errors: a batch mixes problems.
                Err(StoreError::Invalid(updraft_core::Error::Invalid(errs)) | StoreError::Missing(errs)) => {
                    for e in errs {
                        let (index, field) = e.field.split_once('.').unwrap_or((&e.field, ""));
                        let line = index.parse::<usize>().ok().and_then(|i| lines.get(i).copied()).unwrap_or(0);
                        line_errors.push(LineProblem { line, field: field.to_owned(), message: e.message });
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        if !line_errors.is_empty() {
            line_errors.sort_by_key(|e| e.line);
            return Err(Error::new(
                ErrorCode::ImportRejected,
                format!("{} problem(s) in the batch; nothing was imported", line_errors.len()),
            )
            .with_details(line_errors));
        }
        metrics::counter!(crate::metrics::DEVICES_REGISTERED).increment(devices.len() as u64);
        tracing::info!(tenant = tenant, count = devices.len(), "devices imported");
        Ok(Imported { created: devices.len(), devices: tokens, replayed: false })
    }

    /// The tenant's devices in `scope`, narrowed by a filter when given
    /// (as such, or a saved filter's id).
    pub async fn list_devices(
        &self,
        actor: &Actor,
        scope: &DeviceScope,
        filter: Option<FilterSpec>,
        page: &PageRequest,
    ) -> Result<Page<Device>> {
        actor.require(Access::Read)?;
        Ok(match filter {
            Some(spec) => {
                let f = self.resolve_filter(actor.tenant(), spec).await?;
                self.store.list_devices_matching(actor.tenant(), scope, &f, self.now(), page).await?
            }
            None => self.store.list_devices(actor.tenant(), scope, page).await?,
        })
    }

    pub async fn get_device(&self, actor: &Actor, id: &str) -> Result<Device> {
        actor.require(Access::Read)?;
        self.store.get_device(actor.tenant(), id).await?.ok_or_else(|| Error::not_found("device", id))
    }

    /// Changes a device's record as `change` says, checking the result.
    pub async fn update_device(&self, actor: &Actor, id: &str, change: DeviceChange<'_>) -> Result<Device> {
        actor.require(Access::WriteFleet)?;
        let checked = |d: &mut Device| {
            change(d)?;
            let attributes = DeviceAttributes {
                firmware: d.firmware.clone(),
                hardware_version: d.hardware_version.clone(),
                module_model: d.module_model.clone(),
                module_version: d.module_version.clone(),
                template_id: d.template_id.clone(),
                properties: d.properties.clone(),
                metadata: d.metadata.clone(),
                activated_at: d.activated_at,
                connection_status: Some(d.connection_status),
            };
            let mut errors = Vec::new();
            validate::device_attributes(&attributes, &mut errors);
            if errors.is_empty() { Ok(()) } else { Err(errors) }
        };
        self.store.modify_device(actor.tenant(), id, &checked, false, self.now()).await?.map_err(Error::invalid)
    }

    pub async fn delete_device(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::WriteFleet)?;
        Ok(self.store.delete_device(actor.tenant(), id, self.now()).await?)
    }

    /// Gives a device a new token (answered this once); the old one stops
    /// working at once, on every replica.
    /// Whether the actor may issue credentials (an MQTT client certificate) for
    /// device `id`: the device, when it may.
    pub async fn authorize_device_credentials(&self, actor: &Actor, id: &str) -> Result<Device> {
        actor.require(Access::WriteFleet)?;
        self.store.get_device(actor.tenant(), id).await?.ok_or_else(|| Error::not_found("device", id))
    }

    pub async fn reissue_device_token(&self, actor: &Actor, id: &str) -> Result<String> {
        actor.require(Access::WriteFleet)?;
        let token = new_token("upd_d_");
        self.store.set_device_token(actor.tenant(), id, &token_hash(&token)).await?;
        tracing::info!(tenant = actor.tenant(), device = %id, "device token reissued");
        Ok(token)
    }
}
