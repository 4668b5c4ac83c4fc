//! Secrets: versions, attributes, soft delete, backup / restore. Values are sealed at rest with
//! AES-256-GCM under the object data key, AAD = `secret/name/version`.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Vault;
use crate::b64::SecretString;
use crate::backup::BackupKind;
use crate::error::{Result, VaultError};
use crate::keys::validate_tags;
use crate::lifecycle;
use crate::model::*;
use crate::object::{
    ObjectKind, ObjectWire, VaultObject, VersionRecord, deleted_record, object_record,
    version_record,
};
use crate::util::{name_key, validate_name};

/// Maximum secret value size in bytes (25 KiB, like Azure).
pub const MAX_SECRET_BYTES: usize = 25 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretRecord {
    name: String,
    latest: String,
    created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretVersionRecord {
    version: String,
    #[serde(default)]
    content_type: Option<String>,
    enabled: bool,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    created: i64,
    updated: i64,
    #[serde(default)]
    tags: Option<Tags>,
    /// Owned by the certificate of the same name (read-only here; `kid` names its key). Absent
    /// when false, so rows written before certificates existed keep their MAC.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    managed: bool,
    /// hex(nonce || AES-256-GCM(object key, value, AAD) || tag)
    sealed: String,
    /// HMAC over the record (see [`crate::util::Authenticated`]).
    #[serde(default)]
    mac: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeletedSecretRecord {
    secret: SecretRecord,
    deleted: i64,
    scheduled_purge: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct BackupSecretVersion {
    record: SecretVersionRecord,
    value: SecretString,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SecretBackupPayload {
    secret: SecretRecord,
    versions: Vec<BackupSecretVersion>,
}

/// Secrets as an instance of the versioned-object model (see [`crate::VaultObject`]).
pub struct Secrets;

object_record!(SecretRecord);
version_record!(SecretVersionRecord);
deleted_record!(DeletedSecretRecord, SecretRecord, secret);

/// A stored secret value as the string it was set as.
fn utf8(plain: Zeroizing<Vec<u8>>) -> Result<SecretString> {
    let s = String::from_utf8(plain.to_vec())
        .map_err(|_| VaultError::internal("stored secret value is not UTF-8"))?;
    Ok(SecretString::new(s))
}

impl ObjectWire for Secrets {
    const KIND: &'static str = "secret";
    const COLLECTION: &'static str = "secrets";
    type Bundle = SecretBundle;
    type Item = SecretItem;
    type DeletedBundle = DeletedSecretBundle;
    type DeletedItem = DeletedSecretItem;
}

impl ObjectKind for Secrets {
    const TITLE: &'static str = "Secret";
    const VALUE: &'static str = "secret value";
    const TABLES: lifecycle::Tables = lifecycle::SECRETS;
    const BACKUP: BackupKind = BackupKind::Secret;

    type Record = SecretRecord;
    type Version = SecretVersionRecord;
    type Deleted = DeletedSecretRecord;
    type BackupVersion = BackupSecretVersion;
    type Backup = SecretBackupPayload;

    fn not_found(name: &str, version: Option<&str>) -> VaultError {
        VaultError::SecretNotFound {
            name: name.to_string(),
            version: version
                .filter(|v| !v.is_empty())
                .map(|v| v.chars().take(64).collect()),
        }
    }

    fn deleted_not_found(name: &str) -> VaultError {
        VaultError::DeletedSecretNotFound {
            name: name.to_string(),
        }
    }

    fn backup_version(
        record: SecretVersionRecord,
        value: Zeroizing<Vec<u8>>,
    ) -> Result<BackupSecretVersion> {
        Ok(BackupSecretVersion {
            record,
            value: utf8(value)?,
        })
    }

    fn restore_version(v: &BackupSecretVersion) -> (&SecretVersionRecord, &[u8]) {
        (&v.record, v.value.as_str().as_bytes())
    }

    fn backup_payload(
        record: SecretRecord,
        versions: Vec<BackupSecretVersion>,
    ) -> SecretBackupPayload {
        SecretBackupPayload {
            secret: record,
            versions,
        }
    }

    fn backup_parts(b: &SecretBackupPayload) -> (&SecretRecord, &[BackupSecretVersion]) {
        (&b.secret, &b.versions)
    }

    fn check_mutable(vault: &Vault, name: &str) -> Result<()> {
        vault.check_unmanaged("secret", name)
    }

    fn is_managed(record: &SecretVersionRecord) -> bool {
        record.managed
    }

    fn bundle(vault: &Vault, name: &str, vr: &SecretVersionRecord) -> SecretBundle {
        vault.secret_bundle(name, vr, None)
    }

    fn item(vault: &Vault, name: &str, vr: &SecretVersionRecord, with_version: bool) -> SecretItem {
        SecretItem {
            id: vault.object_url::<Secrets>(name, with_version.then_some(vr.version.as_str())),
            attributes: vault.secret_attributes(vr),
            tags: vr.tags.clone(),
            content_type: vr.content_type.clone(),
            managed: vr.managed.then_some(true),
        }
    }

    fn deleted_bundle(
        vault: &Vault,
        d: &DeletedSecretRecord,
        vr: &SecretVersionRecord,
    ) -> DeletedSecretBundle {
        DeletedSecretBundle {
            bundle: vault.secret_bundle(&d.secret.name, vr, None),
            deletion: vault.deletion_info::<Secrets>(d),
        }
    }

    fn deleted_item(
        vault: &Vault,
        d: &DeletedSecretRecord,
        vr: &SecretVersionRecord,
    ) -> DeletedSecretItem {
        DeletedSecretItem {
            item: Self::item(vault, &d.secret.name, vr, false),
            deletion: vault.deletion_info::<Secrets>(d),
        }
    }
}

fn validate_content_type(ct: &Option<String>) -> Result<()> {
    if let Some(c) = ct
        && c.chars().count() > 255
    {
        return Err(VaultError::bad(format!(
            "invalid contentType: expected at most 255 characters, found {}",
            c.chars().count()
        )));
    }
    Ok(())
}

impl Vault {
    fn secret_attributes(&self, r: &SecretVersionRecord) -> SecretAttributes {
        SecretAttributes {
            enabled: Some(r.enabled),
            nbf: r.nbf,
            exp: r.exp,
            created: Some(r.created),
            updated: Some(r.updated),
            recoverable_days: Some(self.options.recoverable_days as i64),
            recovery_level: Some(self.recovery_level().to_string()),
        }
    }

    fn secret_bundle(
        &self,
        name: &str,
        r: &SecretVersionRecord,
        value: Option<SecretString>,
    ) -> SecretBundle {
        SecretBundle {
            value,
            id: self.object_url::<Secrets>(name, Some(&r.version)),
            content_type: r.content_type.clone(),
            attributes: self.secret_attributes(r),
            tags: r.tags.clone(),
            kid: r
                .managed
                .then(|| self.object_url::<crate::keys::Keys>(name, Some(&r.version))),
            managed: r.managed.then_some(true),
        }
    }

    /// The encoded version row of a certificate's secret (`managed`, `kid` = its key).
    pub(crate) fn managed_secret_version(
        &self,
        mv: &crate::object::ManagedVersion<'_>,
        content_type: &str,
        value: &[u8],
    ) -> Result<Vec<u8>> {
        let (version, state, now, tags) = (mv.version, mv.state, mv.now, mv.tags);
        let nk = name_key(mv.name);
        let vr = SecretVersionRecord {
            version: version.to_string(),
            content_type: Some(content_type.to_string()),
            enabled: state.0,
            nbf: state.1,
            exp: state.2,
            created: now,
            updated: now,
            tags: tags.cloned(),
            managed: true,
            sealed: self.seal_object_value::<Secrets>(&nk, version, value)?,
            mac: String::new(),
        };
        self.encode_version::<Secrets>(&nk, &vr)
    }

    /// Set a secret: creates a new version. 409 when a deleted secret of that name is recoverable.
    pub fn set_secret(&self, name: &str, params: &SecretSetParameters) -> Result<SecretBundle> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let value_len = params.value.as_str().len();
        if value_len > MAX_SECRET_BYTES {
            return Err(VaultError::bad(format!(
                "secret value too large: expected at most {MAX_SECRET_BYTES} bytes, found {value_len}"
            )));
        }
        validate_tags(&params.tags)?;
        validate_content_type(&params.content_type)?;
        let nk = name_key(name);
        let now = self.now().timestamp();
        let attrs = params.attributes.clone().unwrap_or_default();
        let version = crate::util::new_version_id()?;
        let vr = SecretVersionRecord {
            version: version.clone(),
            content_type: params.content_type.clone(),
            enabled: attrs.enabled.unwrap_or(true),
            nbf: attrs.nbf,
            exp: attrs.exp,
            created: now,
            updated: now,
            tags: params.tags.clone(),
            managed: false,
            sealed: self.seal_object_value::<Secrets>(
                &nk,
                &version,
                params.value.as_str().as_bytes(),
            )?,
            mac: String::new(),
        };
        let vbytes = self.encode_version::<Secrets>(&nk, &vr)?;
        let display = self.commit_new_version::<Secrets>(name, &vr, vbytes, now)?;
        Ok(self.secret_bundle(&display, &vr, Some(params.value.clone())))
    }

    /// Get a secret version (`None` / `Some("")`: latest). Disabled -> 403 Forbidden
    /// (`SecretDisabled`). Expiry and not-before are informational for secrets, as in Azure.
    pub fn get_secret(&self, name: &str, version: Option<&str>) -> Result<SecretBundle> {
        self.data_keys()?;
        let (rec, vr, _) = self.resolve::<Secrets>(name, version)?;
        if !vr.enabled {
            return Err(VaultError::forbidden(
                "Operation get is not allowed on a disabled secret.",
                "SecretDisabled",
            ));
        }
        let value = utf8(self.open_object_value::<Secrets>(&name_key(name), &vr)?)?;
        Ok(self.secret_bundle(&rec.name, &vr, Some(value)))
    }

    /// Update content type, attributes or tags of a version (no value in the response).
    pub fn update_secret(
        &self,
        name: &str,
        version: Option<&str>,
        params: &SecretUpdateParameters,
    ) -> Result<SecretBundle> {
        self.data_keys()?;
        validate_tags(&params.tags)?;
        validate_content_type(&params.content_type)?;
        let (rec, vr) = self.update_version::<Secrets>(name, version, |_, vr| {
            if let Some(a) = &params.attributes {
                vr.state().apply(a.enabled, a.nbf, a.exp);
            }
            if params.content_type.is_some() {
                vr.content_type = params.content_type.clone();
            }
            if params.tags.is_some() {
                vr.tags = params.tags.clone();
            }
            Ok(())
        })?;
        Ok(self.secret_bundle(&rec.name, &vr, None))
    }

    /// List secrets (latest version metadata, `id` without version, no values).
    pub fn list_secrets(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<SecretItem>> {
        Secrets::list(self, max_results, continuation)
    }

    /// List a secret's versions.
    pub fn list_secret_versions(
        &self,
        name: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<SecretItem>> {
        Secrets::list_versions(self, name, max_results, continuation)
    }

    /// Soft-delete a secret.
    pub fn delete_secret(&self, name: &str) -> Result<DeletedSecretBundle> {
        Secrets::delete(self, name)
    }

    /// Get a deleted secret (no value).
    pub fn get_deleted_secret(&self, name: &str) -> Result<DeletedSecretBundle> {
        Secrets::get_deleted(self, name)
    }

    /// List deleted secrets.
    pub fn list_deleted_secrets(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<DeletedSecretItem>> {
        Secrets::list_deleted(self, max_results, continuation)
    }

    /// Recover a deleted secret; returns its latest version without value.
    pub fn recover_deleted_secret(&self, name: &str) -> Result<SecretBundle> {
        Secrets::recover(self, name)
    }

    /// Purge a deleted secret. `Forbidden` under purge protection.
    pub fn purge_deleted_secret(&self, name: &str) -> Result<()> {
        Secrets::purge(self, name)
    }

    /// Back up all versions of a secret.
    pub fn backup_secret(&self, name: &str) -> Result<BackupBlob> {
        Secrets::backup(self, name)
    }

    /// Restore a secret backup. 409 when the name exists.
    pub fn restore_secret(&self, blob: &[u8]) -> Result<SecretBundle> {
        Secrets::restore(self, blob)
    }
}
