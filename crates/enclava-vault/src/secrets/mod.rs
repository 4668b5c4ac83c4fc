//! Secrets: versions, attributes, soft delete, backup / restore. Values are sealed at rest with
//! AES-256-GCM under the object data key, AAD = `secret/name/version`.

use chrono::{DateTime, Utc};
use enclava_store::{Op, StoreError, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Vault;
use crate::b64::{Base64Url, SecretString};
use crate::error::{Result, VaultError};
use crate::keys::validate_tags;
use crate::lifecycle;
use crate::model::*;
use crate::util::{
    aead_open, aead_seal, decode_token, encode_token, name_key, page_size, validate_name,
};

/// Maximum secret value size in bytes (25 KiB, like Azure).
pub const MAX_SECRET_BYTES: usize = 25 * 1024;
const MAX_RETRIES: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SecretRecord {
    name: String,
    latest: String,
    created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SecretVersionRecord {
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
    /// hex(nonce || AES-256-GCM(object key, value, AAD) || tag)
    sealed: String,
    /// HMAC over the record (see [`crate::util::Authenticated`]).
    #[serde(default)]
    mac: String,
}

impl crate::util::Authenticated for SecretVersionRecord {
    fn mac_field(&mut self) -> &mut String {
        &mut self.mac
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeletedSecretRecord {
    secret: SecretRecord,
    deleted: i64,
    scheduled_purge: i64,
}

#[derive(Serialize, Deserialize)]
struct BackupSecretVersion {
    record: SecretVersionRecord,
    value: SecretString,
}

#[derive(Serialize, Deserialize)]
struct SecretBackupPayload {
    secret: SecretRecord,
    versions: Vec<BackupSecretVersion>,
}

fn secret_aad(nk: &str, version: &str) -> Vec<u8> {
    format!("enclava/v1/secret/{nk}/{version}").into_bytes()
}

fn version_key(nk: &str, version: &str) -> String {
    format!("{nk}/{version}")
}

fn valid_version_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|_| VaultError::internal("cannot serialize a stored record"))
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|_| VaultError::internal(format!("stored {what} record is corrupt")))
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

fn not_found(name: &str, version: Option<&str>) -> VaultError {
    VaultError::SecretNotFound {
        name: name.to_string(),
        version: version
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(64).collect()),
    }
}

impl Vault {
    fn secret_url(&self, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("{}/secrets/{name}/{v}", self.base_url),
            None => format!("{}/secrets/{name}", self.base_url),
        }
    }

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
            id: self.secret_url(name, Some(&r.version)),
            content_type: r.content_type.clone(),
            attributes: self.secret_attributes(r),
            tags: r.tags.clone(),
            kid: None,
            managed: None,
        }
    }

    fn secret_item(&self, name: &str, r: &SecretVersionRecord, with_version: bool) -> SecretItem {
        SecretItem {
            id: self.secret_url(name, with_version.then_some(r.version.as_str())),
            attributes: self.secret_attributes(r),
            tags: r.tags.clone(),
            content_type: r.content_type.clone(),
            managed: None,
        }
    }

    fn encode_secret_version(&self, nk: &str, vr: &SecretVersionRecord) -> Result<Vec<u8>> {
        let keys = self.data_keys()?;
        let ctx = format!("secret-version/{}", version_key(nk, &vr.version));
        crate::util::encode_authenticated(&keys.record_mac, &ctx, vr)
    }

    fn decode_secret_version(
        &self,
        nk: &str,
        row_key: &str,
        bytes: &[u8],
    ) -> Result<SecretVersionRecord> {
        let keys = self.data_keys()?;
        let ctx = format!("secret-version/{row_key}");
        let vr: SecretVersionRecord =
            crate::util::decode_authenticated(&keys.record_mac, &ctx, "secret version", bytes)?;
        if version_key(nk, &vr.version) != row_key {
            return Err(VaultError::internal(
                "a stored secret version record is filed under the wrong key",
            ));
        }
        Ok(vr)
    }

    fn read_secret_record(&self, nk: &str) -> Result<Option<(SecretRecord, Vec<u8>)>> {
        match self.store.get(Table::Secrets, nk)? {
            None => Ok(None),
            Some(b) => Ok(Some((from_json(&b, "secret")?, b))),
        }
    }

    fn read_deleted_secret(&self, nk: &str) -> Result<Option<(DeletedSecretRecord, Vec<u8>)>> {
        match self.store.get(Table::DeletedSecrets, nk)? {
            None => Ok(None),
            Some(b) => Ok(Some((from_json(&b, "deleted secret")?, b))),
        }
    }

    fn read_secret_version(
        &self,
        nk: &str,
        version: &str,
    ) -> Result<Option<(SecretVersionRecord, Vec<u8>)>> {
        if !valid_version_id(version) {
            return Ok(None);
        }
        match self
            .store
            .get(Table::SecretVersions, &version_key(nk, version))?
        {
            None => Ok(None),
            Some(b) => Ok(Some((
                self.decode_secret_version(nk, &version_key(nk, version), &b)?,
                b,
            ))),
        }
    }

    fn resolve_secret(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<(SecretRecord, SecretVersionRecord, Vec<u8>)> {
        validate_name("secret", name)?;
        let nk = name_key(name);
        let (rec, _) = self
            .read_secret_record(&nk)?
            .ok_or_else(|| not_found(name, version))?;
        let v = version
            .filter(|v| !v.is_empty())
            .unwrap_or(&rec.latest)
            .to_string();
        let (vr, bytes) = self
            .read_secret_version(&nk, &v)?
            .ok_or_else(|| not_found(name, version))?;
        Ok((rec, vr, bytes))
    }

    fn secret_deleted_conflict(name: &str) -> VaultError {
        VaultError::Conflict(format!(
            "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
        ))
    }

    fn seal_value(&self, nk: &str, version: &str, value: &[u8]) -> Result<String> {
        let keys = self.data_keys()?;
        Ok(hex::encode(aead_seal(
            &keys.object,
            &secret_aad(nk, version),
            value,
        )?))
    }

    fn open_value(&self, nk: &str, r: &SecretVersionRecord) -> Result<SecretString> {
        let keys = self.data_keys()?;
        let sealed = hex::decode(&r.sealed)
            .map_err(|_| VaultError::internal("stored secret value is corrupt"))?;
        let plain = aead_open(&keys.object, &secret_aad(nk, &r.version), &sealed)?.ok_or_else(|| {
            VaultError::internal("stored secret value failed its integrity check (wrong root key or tampered row)")
        })?;
        let s = String::from_utf8(plain.to_vec())
            .map_err(|_| VaultError::internal("stored secret value is not UTF-8"))?;
        Ok(SecretString::new(s))
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
            sealed: self.seal_value(&nk, &version, params.value.as_str().as_bytes())?,
            mac: String::new(),
        };
        let vbytes = self.encode_secret_version(&nk, &vr)?;
        for _ in 0..MAX_RETRIES {
            if self.store.get(Table::DeletedSecrets, &nk)?.is_some() {
                return Err(Self::secret_deleted_conflict(name));
            }
            let (display, rec, old) = match self.read_secret_record(&nk)? {
                Some((mut rec, old)) => {
                    rec.latest = version.clone();
                    (rec.name.clone(), rec, Some(old))
                }
                None => (
                    name.to_string(),
                    SecretRecord {
                        name: name.to_string(),
                        latest: version.clone(),
                        created: now,
                    },
                    None,
                ),
            };
            match self.store.transact(vec![
                Op::Expect {
                    table: Table::DeletedSecrets,
                    key: nk.clone(),
                    value: None,
                },
                Op::Expect {
                    table: Table::Secrets,
                    key: nk.clone(),
                    value: old,
                },
                Op::Put {
                    table: Table::SecretVersions,
                    key: version_key(&nk, &version),
                    value: vbytes.clone(),
                },
                Op::Put {
                    table: Table::Secrets,
                    key: nk.clone(),
                    value: to_json(&rec)?,
                },
            ]) {
                Ok(()) => return Ok(self.secret_bundle(&display, &vr, Some(params.value.clone()))),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Conflict(format!(
            "secret '{name}' is being changed concurrently; retry the operation"
        )))
    }

    /// Get a secret version (`None` / `Some("")`: latest). Disabled -> 403 Forbidden
    /// (`SecretDisabled`). Expiry and not-before are informational for secrets, as in Azure.
    pub fn get_secret(&self, name: &str, version: Option<&str>) -> Result<SecretBundle> {
        self.data_keys()?;
        let (rec, vr, _) = self.resolve_secret(name, version)?;
        if !vr.enabled {
            return Err(VaultError::forbidden(
                "Operation get is not allowed on a disabled secret.",
                "SecretDisabled",
            ));
        }
        let value = self.open_value(&name_key(name), &vr)?;
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
        for _ in 0..MAX_RETRIES {
            let (rec, mut vr, old) = self.resolve_secret(name, version)?;
            let nk = name_key(name);
            if let Some(a) = &params.attributes {
                if let Some(e) = a.enabled {
                    vr.enabled = e;
                }
                if a.nbf.is_some() {
                    vr.nbf = a.nbf;
                }
                if a.exp.is_some() {
                    vr.exp = a.exp;
                }
            }
            if params.content_type.is_some() {
                vr.content_type = params.content_type.clone();
            }
            if params.tags.is_some() {
                vr.tags = params.tags.clone();
            }
            vr.updated = self.now().timestamp();
            match self.store.transact(vec![
                Op::Expect {
                    table: Table::SecretVersions,
                    key: version_key(&nk, &vr.version),
                    value: Some(old),
                },
                Op::Put {
                    table: Table::SecretVersions,
                    key: version_key(&nk, &vr.version),
                    value: self.encode_secret_version(&nk, &vr)?,
                },
            ]) {
                Ok(()) => return Ok(self.secret_bundle(&rec.name, &vr, None)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Conflict(format!(
            "secret '{name}' is being changed concurrently; retry the operation"
        )))
    }

    /// List secrets (latest version metadata, `id` without version, no values).
    pub fn list_secrets(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<SecretItem>> {
        self.data_keys()?;
        let limit = page_size(max_results)?;
        let after = decode_token(continuation)?;
        let rows = self
            .store
            .list(Table::Secrets, "", after.as_deref(), limit + 1)?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            let rec: SecretRecord = from_json(&v, "secret")?;
            if let Some((vr, _)) = self.read_secret_version(&k, &rec.latest)? {
                items.push(self.secret_item(&rec.name, &vr, false));
            }
            last = Some(k);
        }
        Ok(Page {
            items,
            continuation: if more {
                last.map(|k| encode_token(&k))
            } else {
                None
            },
        })
    }

    /// List a secret's versions.
    pub fn list_secret_versions(
        &self,
        name: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<SecretItem>> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let limit = page_size(max_results)?;
        let nk = name_key(name);
        // Key Vault answers an unknown name with an empty list (200), not SecretNotFound.
        let Some((rec, _)) = self.read_secret_record(&nk)? else {
            decode_token(continuation)?; // a malformed token is still the caller's 400
            return Ok(Page {
                items: Vec::new(),
                continuation: None,
            });
        };
        let prefix = format!("{nk}/");
        let after = decode_token(continuation)?.map(|v| format!("{prefix}{v}"));
        let rows = self
            .store
            .list(Table::SecretVersions, &prefix, after.as_deref(), limit + 1)?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            let vr = self.decode_secret_version(&nk, &k, &v)?;
            items.push(self.secret_item(&rec.name, &vr, true));
            last = Some(vr.version);
        }
        Ok(Page {
            items,
            continuation: if more {
                last.map(|k| encode_token(&k))
            } else {
                None
            },
        })
    }

    fn secret_deletion_info(&self, d: &DeletedSecretRecord) -> DeletionInfo {
        DeletionInfo {
            recovery_id: format!("{}/deletedsecrets/{}", self.base_url, d.secret.name),
            deleted_date: d.deleted,
            scheduled_purge_date: d.scheduled_purge,
        }
    }

    fn deleted_secret_bundle(
        &self,
        nk: &str,
        d: &DeletedSecretRecord,
    ) -> Result<DeletedSecretBundle> {
        let (vr, _) = self
            .read_secret_version(nk, &d.secret.latest)?
            .ok_or_else(|| VaultError::internal("a deleted secret's latest version is missing"))?;
        Ok(DeletedSecretBundle {
            bundle: self.secret_bundle(&d.secret.name, &vr, None),
            deletion: self.secret_deletion_info(d),
        })
    }

    /// Soft-delete a secret.
    pub fn delete_secret(&self, name: &str) -> Result<DeletedSecretBundle> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let nk = name_key(name);
        let (rec, old) = self
            .read_secret_record(&nk)?
            .ok_or_else(|| not_found(name, None))?;
        let now = self.now();
        let scheduled = now + chrono::Duration::days(self.options.recoverable_days as i64);
        let d = DeletedSecretRecord {
            secret: rec,
            deleted: now.timestamp(),
            scheduled_purge: scheduled.timestamp(),
        };
        self.soft_delete_row(lifecycle::SECRETS, &nk, old, to_json(&d)?)?;
        self.deleted_secret_bundle(&nk, &d)
    }

    /// Get a deleted secret (no value).
    pub fn get_deleted_secret(&self, name: &str) -> Result<DeletedSecretBundle> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let nk = name_key(name);
        let (d, _) =
            self.read_deleted_secret(&nk)?
                .ok_or_else(|| VaultError::DeletedSecretNotFound {
                    name: name.to_string(),
                })?;
        self.deleted_secret_bundle(&nk, &d)
    }

    /// List deleted secrets.
    pub fn list_deleted_secrets(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<DeletedSecretItem>> {
        self.data_keys()?;
        let limit = page_size(max_results)?;
        let after = decode_token(continuation)?;
        let rows = self
            .store
            .list(Table::DeletedSecrets, "", after.as_deref(), limit + 1)?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            let d: DeletedSecretRecord = from_json(&v, "deleted secret")?;
            if let Some((vr, _)) = self.read_secret_version(&k, &d.secret.latest)? {
                items.push(DeletedSecretItem {
                    item: self.secret_item(&d.secret.name, &vr, false),
                    deletion: self.secret_deletion_info(&d),
                });
            }
            last = Some(k);
        }
        Ok(Page {
            items,
            continuation: if more {
                last.map(|k| encode_token(&k))
            } else {
                None
            },
        })
    }

    /// Recover a deleted secret; returns its latest version without value.
    pub fn recover_deleted_secret(&self, name: &str) -> Result<SecretBundle> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let nk = name_key(name);
        let (d, old) =
            self.read_deleted_secret(&nk)?
                .ok_or_else(|| VaultError::DeletedSecretNotFound {
                    name: name.to_string(),
                })?;
        self.recover_row(lifecycle::SECRETS, &nk, old, to_json(&d.secret)?)?;
        let (vr, _) = self
            .read_secret_version(&nk, &d.secret.latest)?
            .ok_or_else(|| {
                VaultError::internal("a recovered secret's latest version is missing")
            })?;
        Ok(self.secret_bundle(&d.secret.name, &vr, None))
    }

    /// Purge a deleted secret. `Forbidden` under purge protection.
    pub fn purge_deleted_secret(&self, name: &str) -> Result<()> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let nk = name_key(name);
        let (_, old) =
            self.read_deleted_secret(&nk)?
                .ok_or_else(|| VaultError::DeletedSecretNotFound {
                    name: name.to_string(),
                })?;
        self.check_purge_allowed(lifecycle::SECRETS, name)?;
        self.purge_rows(lifecycle::SECRETS, &nk, old)
    }

    pub(crate) fn purge_expired_secrets(&self, now: DateTime<Utc>) -> Result<usize> {
        self.purge_expired_rows(
            lifecycle::SECRETS,
            now.timestamp(),
            |v| Ok(from_json::<DeletedSecretRecord>(v, "deleted secret")?.scheduled_purge),
            |k, v| self.purge_rows(lifecycle::SECRETS, k, v),
        )
    }

    /// Back up all versions of a secret.
    pub fn backup_secret(&self, name: &str) -> Result<BackupBlob> {
        self.data_keys()?;
        validate_name("secret", name)?;
        let nk = name_key(name);
        let (rec, _) = self
            .read_secret_record(&nk)?
            .ok_or_else(|| not_found(name, None))?;
        let mut versions = Vec::new();
        for k in self.all_row_keys(Table::SecretVersions, &format!("{nk}/"))? {
            let Some(bytes) = self.store.get(Table::SecretVersions, &k)? else {
                continue;
            };
            let mut vr = self.decode_secret_version(&nk, &k, &bytes)?;
            let value = self.open_value(&nk, &vr)?;
            vr.sealed = String::new();
            versions.push(BackupSecretVersion { record: vr, value });
        }
        let plain = Zeroizing::new(to_json(&SecretBackupPayload {
            secret: rec,
            versions,
        })?);
        let blob = crate::backup::seal(self, crate::backup::BackupKind::Secret, &plain)?;
        Ok(BackupBlob {
            value: Base64Url(blob),
        })
    }

    /// Restore a secret backup. 409 when the name exists.
    pub fn restore_secret(&self, blob: &[u8]) -> Result<SecretBundle> {
        self.data_keys()?;
        let plain = crate::backup::open(self, crate::backup::BackupKind::Secret, blob)?;
        let payload: SecretBackupPayload = serde_json::from_slice(&plain)
            .map_err(|_| VaultError::bad("invalid secret backup: the blob content is malformed"))?;
        let name = payload.secret.name.clone();
        validate_name("secret", &name)?;
        let nk = name_key(&name);
        if self.store.get(Table::Secrets, &nk)?.is_some() {
            return Err(VaultError::Conflict(format!(
                "secret '{name}' already exists; delete and purge it before restoring a backup of it"
            )));
        }
        if self.store.get(Table::DeletedSecrets, &nk)?.is_some() {
            return Err(Self::secret_deleted_conflict(&name));
        }
        let mut ops = vec![
            Op::Expect {
                table: Table::Secrets,
                key: nk.clone(),
                value: None,
            },
            Op::Expect {
                table: Table::DeletedSecrets,
                key: nk.clone(),
                value: None,
            },
        ];
        let mut latest = None;
        for v in &payload.versions {
            if !valid_version_id(&v.record.version) {
                return Err(VaultError::bad(
                    "invalid secret backup: a version id is malformed",
                ));
            }
            let mut vr = v.record.clone();
            vr.sealed = self.seal_value(&nk, &vr.version, v.value.as_str().as_bytes())?;
            if vr.version == payload.secret.latest {
                latest = Some(vr.clone());
            }
            ops.push(Op::Put {
                table: Table::SecretVersions,
                key: version_key(&nk, &vr.version),
                value: self.encode_secret_version(&nk, &vr)?,
            });
        }
        let latest = latest.ok_or_else(|| {
            VaultError::bad("invalid secret backup: the latest version is missing")
        })?;
        ops.push(Op::Put {
            table: Table::Secrets,
            key: nk.clone(),
            value: to_json(&payload.secret)?,
        });
        self.store.transact(ops).map_err(|e| match e {
            StoreError::Conflict { .. } => {
                VaultError::Conflict(format!("secret '{name}' already exists"))
            }
            other => other.into(),
        })?;
        Ok(self.secret_bundle(&name, &latest, None))
    }
}
