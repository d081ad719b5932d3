//! Firmware images: uploaded as staged files plus a description, checked as
//! a whole, then stored (files under a key prefix unique to the upload, so a
//! rejected upload can never overwrite another's); read back, and deleted
//! with their files.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use updraft_blob::{BlobRead, BlobStore, BlobWriter, StagedBlob};
use updraft_core::{Access, FieldError, Firmware, FirmwareFile, Page, PageRequest, validate, version};

use crate::actor::new_id;
use crate::code_signing::{self, FileSigning, ReadClaim};
use crate::error::{Error, Result};
use crate::signing_profiles::{self, ProfileKey};
use crate::{Actor, App};

/// Where an upload's files are staged until [`App::create_firmware`] keeps
/// or drops them; handed out to actors who may upload.
pub struct FirmwareUpload {
    blobs: Arc<dyn BlobStore>,
}

impl FirmwareUpload {
    /// A writer for one more file: it hashes and counts the bytes on their way
    /// to staging. A writer or staged file dropped before the upload is
    /// stored leaves nothing behind.
    pub async fn writer(&self) -> Result<BlobWriter> {
        Ok(self.blobs.writer().await?)
    }
}

/// How the upload describes one of its files.
#[derive(Debug, Clone)]
pub struct FileDescription {
    pub name: String,
    /// `host` for an image of one file, else the name up to its first dot, when absent.
    pub component: Option<String>,
    /// The image's version when absent.
    pub version: Option<String>,
    /// Seed 002's `codeSigning`: checked before the upload is accepted.
    pub code_signing: Option<FileSigning>,
}

/// A firmware image to store: its description and its staged files.
#[derive(Default)]
pub struct NewFirmware {
    /// Generated when absent.
    pub id: Option<String>,
    /// Required, like `version`.
    pub product: Option<String>,
    pub version: Option<String>,
    pub name: Option<String>,
    pub release_notes: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub needs_verification: bool,
    /// Default: the highest of the product's images (so it never goes down by accident).
    pub security_version: Option<u64>,
    /// Components and versions of files, by file name.
    pub descriptions: Vec<FileDescription>,
    /// The files, by name, in the order they came, staged through [`FirmwareUpload`].
    pub files: Vec<(String, StagedBlob)>,
    /// What the front door could not read (`metadata`, `needs_verification`,
    /// `files`), in that order: reported with every other problem of the upload.
    pub unreadable: Vec<FieldError>,
}

/// File names: `[A-Za-z0-9._+-]{1,128}`, not starting with a dot.
fn check_file_name(field: &str, name: &str, errors: &mut Vec<FieldError>) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if !ok {
        errors.push(FieldError::new(field, format!("file name `{name}` must be 1 to 128 characters of A-Z, a-z, 0-9, `.`, `_`, `+` or `-`, not starting with `.`")));
    }
}

/// The directory part of a blob key.
fn blob_dir(key: &str) -> String {
    key.rsplit_once('/').map(|(d, _)| d.to_owned()).unwrap_or_default()
}

impl App {
    /// Starts an upload: where its files are staged.
    pub fn firmware_upload(&self, actor: &Actor) -> Result<FirmwareUpload> {
        actor.require(Access::WriteFleet)?;
        Ok(FirmwareUpload { blobs: self.blobs.clone() })
    }

    /// Checks an upload as a whole and stores it: its files under their keys,
    /// then the record. Whatever fails, nothing of it is left.
    pub async fn create_firmware(&self, actor: &Actor, input: NewFirmware) -> Result<Firmware> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let NewFirmware {
            id,
            product: product_key,
            version,
            name,
            release_notes,
            metadata,
            needs_verification,
            security_version,
            descriptions,
            files: staged,
            unreadable,
        } = input;
        let mut errors = Vec::new();
        if product_key.is_none() {
            errors.push(FieldError::new("product", "required"));
        }
        if version.is_none() {
            errors.push(FieldError::new("version", "required"));
        }
        if let Some(id) = &id {
            validate::key("id", id, &mut errors);
        }
        if let Some(n) = &name {
            validate::text("name", n, 256, &mut errors);
        }
        if let Some(r) = &release_notes {
            validate::long_text("release_notes", r, 65536, &mut errors);
        }
        let (unreadable_metadata, unreadable_rest): (Vec<_>, Vec<_>) =
            unreadable.into_iter().partition(|e| e.field == "metadata");
        errors.extend(unreadable_metadata);
        validate::metadata("metadata", metadata.iter(), &mut errors);
        errors.extend(unreadable_rest);
        if staged.is_empty() {
            errors.push(FieldError::new("file", "at least one file part is required"));
        }

        // An unknown product answers 404, once the upload is otherwise valid.
        let mut missing = Vec::new();
        let product = match &product_key {
            Some(k) => match self.store.get_product(tenant, k).await? {
                Some(p) => Some(p),
                None => {
                    missing.push(FieldError::new("product", format!("product `{k}` not found")));
                    None
                }
            },
            None => None,
        };
        let scheme = product.as_ref().map(|p| p.version_scheme).unwrap_or_default();
        if let (Some(v), Some(_)) = (&version, &product)
            && let Err(m) = version::validate(v, scheme)
        {
            errors.push(FieldError::new("version", m));
        }

        let id = id.unwrap_or_else(|| new_id("fw_"));
        let dir = format!("{tenant}/{id}-{}", new_id(""));
        let mut names = HashSet::new();
        let mut components = HashSet::new();
        let mut files = Vec::with_capacity(staged.len());
        for (i, (file_name, blob)) in staged.iter().enumerate() {
            let field = format!("file[{i}]");
            check_file_name(&field, file_name, &mut errors);
            if !names.insert(file_name.as_str()) {
                errors.push(FieldError::new(&field, format!("file `{file_name}` is uploaded twice")));
            }
            let described = descriptions.iter().find(|s| &s.name == file_name);
            let component = described.and_then(|s| s.component.clone()).unwrap_or_else(|| {
                if staged.len() == 1 {
                    "host".into()
                } else {
                    file_name.split('.').next().unwrap_or(file_name).to_owned()
                }
            });
            validate::attribute_name(&format!("{field}.component"), &component, &mut errors);
            if !components.insert(component.clone()) {
                errors.push(FieldError::new(&field, format!("component `{component}` is delivered by two files")));
            }
            let file_version =
                described.and_then(|s| s.version.clone()).or_else(|| version.clone()).unwrap_or_default();
            if described.and_then(|s| s.version.as_ref()).is_some()
                && let Err(m) = version::validate(&file_version, scheme)
            {
                errors.push(FieldError::new(format!("{field}.version"), m));
            }
            files.push(FirmwareFile {
                blob: format!("{dir}/{file_name}"),
                name: file_name.clone(),
                component,
                version: file_version,
                size: blob.size,
                sha256: blob.sha256.clone(),
                sha512: blob.sha512.clone(),
                sha1: blob.sha1.clone(),
                md5: blob.md5.clone(),
                code_signing: None,
            });
        }
        // Signed files: (file index, the claim's field, the claim as read).
        let mut claims: Vec<(usize, String, ReadClaim)> = Vec::new();
        // Files updraft signs: (file index, the field, the profile's name, the certificate's name).
        let mut by_profile: Vec<(usize, String, String, Option<String>)> = Vec::new();
        for (i, described) in descriptions.iter().enumerate() {
            if !names.contains(described.name.as_str()) {
                errors.push(FieldError::new(
                    format!("files[{i}].name"),
                    format!("no file part named `{}` was uploaded", described.name),
                ));
            }
            if let Some(FileSigning::Profile { name, certificate_name }) = &described.code_signing {
                let field = format!("files[{i}].codeSigning.startSigningJobParameter");
                if let Some(n) = certificate_name {
                    validate::text(
                        &format!("{field}.signingProfileParameter.certificatePathOnDevice"),
                        n,
                        1024,
                        &mut errors,
                    );
                }
                if let Some(file) = files.iter().position(|f| f.name == described.name) {
                    by_profile.push((file, field, name.clone(), certificate_name.clone()));
                }
            } else if let Some(signing) = &described.code_signing {
                let field = format!("files[{i}].codeSigning");
                let read = code_signing::read_claim(&field, signing, &mut errors)?;
                let file = files.iter().position(|f| f.name == described.name);
                if let (Some(read), Some(file)) = (read, file) {
                    let sig_name = format!("{}.sig", described.name);
                    if names.contains(sig_name.as_str()) {
                        errors.push(FieldError::new(
                            &field,
                            format!(
                                "a signed file's signature is delivered as `{sig_name}`, which another file is called"
                            ),
                        ));
                    }
                    claims.push((file, field, read));
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        if !missing.is_empty() {
            return Err(Error::missing(missing));
        }

        // Code signing: chains and prehashed signatures now; Ed25519 once the
        // bytes are stored (it signs the whole file), before the record is.
        let mut ed25519 = Vec::new();
        let mut ed25519_signing = Vec::new();
        let anchors = if claims.is_empty() && by_profile.is_empty() {
            Vec::new()
        } else {
            self.store.list_trust_anchors(tenant).await?
        };
        let now = self.now();
        for (index, field, name, certificate_name) in by_profile {
            let name_field = format!("{field}.signingProfileName");
            let Some((profile, key)) = self.signing_key(tenant, &name).await? else {
                return Err(Error::missing(vec![FieldError::new(
                    name_field,
                    format!("signing profile `{name}` not found"),
                )]));
            };
            // The profile's chain must still lead to an anchor (one may have been removed since).
            let chain =
                code_signing::verify_chain(&profile.certificate_chain, &anchors, now).map_err(|r| r.at(&name_field))?;
            let signature = match &key {
                ProfileKey::Ed25519(seed) => {
                    ed25519_signing.push((index, *seed, chain.leaf_key.clone()));
                    String::new()
                }
                _ => {
                    let digest = hex::decode(&files[index].sha256)
                        .ok()
                        .and_then(|d| aws_lc_rs::digest::Digest::import_less_safe(&d, &aws_lc_rs::digest::SHA256).ok())
                        .ok_or_else(|| Error::internal("signing an upload", "the file's SHA-256 is unreadable"))?;
                    let sig = key.sign_digest(&digest).ok_or_else(|| Error::internal("signing an upload", &name))?;
                    code_signing::verify_digest(
                        profile.signature_algorithm,
                        &chain.leaf_key,
                        &files[index].sha256,
                        &sig,
                    )
                    .map_err(signing_profiles::unverified)?;
                    code_signing::encode_signature(&sig)
                }
            };
            files[index].code_signing = Some(Box::new(updraft_core::CodeSigning {
                signature_algorithm: profile.signature_algorithm,
                hash_algorithm: "SHA-256".into(),
                certificate_chain: profile.certificate_chain,
                certificate_name,
                signature,
                trust_anchor: chain.trust_anchor,
                signing_profile: Some(name),
            }));
        }
        if !claims.is_empty() {
            for (index, field, read) in claims {
                let described = descriptions.iter().find(|d| d.name == files[index].name);
                let Some(FileSigning::Custom(claim)) = described.and_then(|d| d.code_signing.as_ref()) else {
                    continue;
                };
                let chain_field = format!("{field}.customCodeSigning.certificateChain");
                let chain = code_signing::verify_chain(&claim.certificate_chain, &anchors, now)
                    .map_err(|r| r.at(&chain_field))?;
                let signature_field = format!("{field}.customCodeSigning.signature");
                if read.algorithm == updraft_core::SignatureAlgorithm::Ed25519 {
                    let verifier = code_signing::ed25519_verifier(&chain.leaf_key, &read.signature)
                        .map_err(|r| r.at(&signature_field))?;
                    ed25519.push((index, signature_field, verifier));
                } else {
                    code_signing::verify_digest(read.algorithm, &chain.leaf_key, &files[index].sha256, &read.signature)
                        .map_err(|r| r.at(&signature_field))?;
                }
                files[index].code_signing = Some(Box::new(updraft_core::CodeSigning {
                    signature_algorithm: read.algorithm,
                    hash_algorithm: "SHA-256".into(),
                    certificate_chain: claim.certificate_chain.trim().to_owned() + "\n",
                    certificate_name: claim.certificate_name.clone(),
                    signature: code_signing::encode_signature(&read.signature),
                    trust_anchor: chain.trust_anchor,
                    signing_profile: None,
                }));
            }
        }
        let security_version = match security_version {
            Some(v) => v,
            None => self.store.max_security_version(tenant, product_key.as_deref().unwrap_or_default()).await?,
        };
        let mut firmware = Firmware {
            id,
            product: product_key.unwrap_or_default(),
            version: version.unwrap_or_default(),
            name,
            release_notes,
            metadata,
            needs_verification,
            verified: false,
            security_version,
            files,
            created_at: self.now(),
        };

        for ((_, blob), file) in staged.into_iter().zip(&firmware.files) {
            if let Err(e) = self.blobs.persist(blob, &file.blob).await {
                self.blobs.delete_prefix(&dir).await?;
                return Err(e.into());
            }
        }
        for (index, seed, leaf_key) in ed25519_signing {
            let blob = &firmware.files[index].blob;
            let signed = match self.sign_stored(blob, seed).await {
                Ok(sig) => match code_signing::ed25519_verifier(&leaf_key, &sig) {
                    Ok(verifier) => match self.verify_stored(blob, verifier).await {
                        Ok(()) => Ok(sig),
                        Err(Ok(refusal)) => Err(signing_profiles::unverified(refusal)),
                        Err(Err(e)) => Err(e),
                    },
                    Err(refusal) => Err(signing_profiles::unverified(refusal)),
                },
                Err(e) => Err(e),
            };
            match signed {
                Ok(sig) => {
                    if let Some(signing) = firmware.files[index].code_signing.as_mut() {
                        signing.signature = code_signing::encode_signature(&sig);
                    }
                }
                Err(e) => {
                    self.blobs.delete_prefix(&dir).await?;
                    return Err(e);
                }
            }
        }
        for (index, field, verifier) in ed25519 {
            if let Err(e) = self.verify_stored(&firmware.files[index].blob, verifier).await {
                self.blobs.delete_prefix(&dir).await?;
                return Err(match e {
                    Ok(refusal) => refusal.at(&field),
                    Err(e) => e,
                });
            }
        }
        if let Err(e) = self.store.create_firmware(tenant, &firmware).await {
            self.blobs.delete_prefix(&dir).await?;
            return Err(e.into());
        }
        tracing::info!(firmware = %firmware.id, product = %firmware.product, version = %firmware.version,
            files = firmware.files.len(), bytes = firmware.total_size(), "firmware uploaded");
        Ok(firmware)
    }

    /// Signs a stored file with an Ed25519 key, reading it twice (Ed25519
    /// hashes the message twice) without holding it in memory.
    async fn sign_stored(&self, key: &str, seed: [u8; 32]) -> Result<Vec<u8>> {
        let blobs = self.blobs.clone();
        let key = key.to_owned();
        let handle = tokio::runtime::Handle::current();
        let signed = tokio::task::spawn_blocking(move || {
            ProfileKey::sign_ed25519(&seed, |hasher| {
                handle.block_on(async {
                    use tokio::io::AsyncReadExt;
                    let mut read = blobs.read(&key, None).await.map_err(|_| ed25519_dalek::SignatureError::new())?;
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let n = read.reader.read(&mut buf).await.map_err(|_| ed25519_dalek::SignatureError::new())?;
                        if n == 0 {
                            return Ok(());
                        }
                        ed25519_dalek::Digest::update(hasher, &buf[..n]);
                    }
                })
            })
        })
        .await
        .map_err(|e| Error::internal("signing an upload", e))?;
        signed.ok_or_else(|| Error::internal("signing an upload", "the stored file could not be read"))
    }

    /// Streams a stored file through an Ed25519 verifier.
    async fn verify_stored(
        &self,
        key: &str,
        mut verifier: ed25519_dalek::StreamVerifier,
    ) -> std::result::Result<(), std::result::Result<code_signing::Refusal, Error>> {
        use tokio::io::AsyncReadExt;
        let mut read = self.blobs.read(key, None).await.map_err(|e| Err(e.into()))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = read.reader.read(&mut buf).await.map_err(|e| Err(Error::internal("reading an upload back", e)))?;
            if n == 0 {
                break;
            }
            verifier.update(&buf[..n]);
        }
        verifier.finalize_and_verify().map_err(|_| {
            Ok(code_signing::Refusal::bad_signature("the Ed25519 signature does not verify over the file"))
        })
    }

    /// The tenant's images, of one product when `product` is given.
    pub async fn list_firmware(
        &self,
        actor: &Actor,
        product: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Firmware>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_firmware(actor.tenant(), product, page).await?)
    }

    /// The image `reference` names: its id, or `PRODUCT@VERSION`.
    pub async fn get_firmware(&self, actor: &Actor, reference: &str) -> Result<Firmware> {
        actor.require(Access::Read)?;
        self.resolve_firmware(actor.tenant(), reference).await?.ok_or_else(|| Error::not_found("firmware", reference))
    }

    /// The tenant's image named by its id or as `PRODUCT@VERSION` (ids never hold `@`; a
    /// product's versions are unique), wherever a firmware is taken.
    pub(crate) async fn resolve_firmware(&self, tenant: &str, reference: &str) -> Result<Option<Firmware>> {
        let Some((product, version)) = reference.split_once('@') else {
            return Ok(self.store.get_firmware(tenant, reference).await?);
        };
        let mut offset = 0;
        loop {
            let page = PageRequest::parse(Some(1000), Some(offset), None, Some(version), crate::sortable::FIRMWARE)?;
            let found = self.store.list_firmware(tenant, Some(product), &page).await?;
            let seen = found.items.len() as u64;
            if let Some(f) = found.items.into_iter().find(|f| f.version == version) {
                return Ok(Some(f));
            }
            offset += seen;
            if seen == 0 || offset >= found.total {
                return Ok(None);
            }
        }
    }

    /// Deletes an image and its files; `in_use` while a running job uses it.
    pub async fn delete_firmware(&self, actor: &Actor, reference: &str) -> Result<()> {
        actor.require(Access::WriteFleet)?;
        let firmware = self.get_firmware(actor, reference).await?;
        self.store.delete_firmware(actor.tenant(), &firmware.id).await?;
        if let Some(f) = firmware.files.first() {
            self.blobs.delete_prefix(&blob_dir(&f.blob)).await?;
        }
        tracing::info!(firmware = %firmware.id, "firmware deleted");
        Ok(())
    }

    /// One file of an image, opened for reading.
    pub async fn read_firmware_file(&self, actor: &Actor, id: &str, name: &str) -> Result<(FirmwareFile, BlobRead)> {
        actor.require(Access::Read)?;
        let firmware = self.get_firmware(actor, id).await?;
        let file = firmware.files.into_iter().find(|f| f.name == name).ok_or_else(|| Error::not_found("file", name))?;
        let read = self.blobs.read(&file.blob, None).await.map_err(Error::blob_unreadable)?;
        if read.len != file.size {
            let (key, found, expected) = (file.blob.clone(), read.len, file.size);
            return Err(Error::blob_unreadable(updraft_blob::BlobError::Length { key, found, expected }));
        }
        Ok((file, read))
    }
}
