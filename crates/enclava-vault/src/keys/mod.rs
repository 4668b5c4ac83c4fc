//! Keys: creation, import, versions, attributes, rotation, soft delete, backup / restore and
//! the cryptographic operations.

pub(crate) mod material;
pub mod release;
pub mod rotation;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use enclava_store::{Op, StoreError, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Vault;
use crate::b64::{Base64Url, SecretBytes};
use crate::backup::BackupKind;
use crate::error::{Result, VaultError};
use crate::lifecycle;
use crate::model::*;
use crate::object::{
    MAX_RETRIES, ObjectKind, ObjectWire, VaultObject, VersionRecord, deleted_record, object_record,
    to_json, version_record,
};
use crate::util::{name_key, validate_name};
use material::{KeyKind, Material, NewMaterial, Operation, PublicJwk};

/// What a rotation-policy lifetime action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationAction {
    /// A new key version was created.
    Rotate,
    /// The key is near expiry (or past the trigger) and the policy asks for a notification.
    Notify,
}

/// One event produced by [`Vault::run_due_rotations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub name: String,
    pub action: RotationAction,
    /// The latest version when the action fired.
    pub version: String,
    /// The new version (for `Rotate`).
    pub new_version: Option<String>,
}

/// Private key material handed to secure key release: raw bytes for oct keys, PKCS#8 DER for
/// RSA and EC keys. Zeroized on drop.
pub struct ReleasableKey {
    /// The key version's bundle (public JWK, attributes, release policy).
    pub bundle: KeyBundle,
    /// `oct`, `RSA` or `EC` (without `-HSM`).
    pub kty: String,
    pub material: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ReleasableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasableKey")
            .field("bundle", &self.bundle)
            .field("kty", &self.kty)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Stored records
// ---------------------------------------------------------------------------------------------

/// `Table::Keys` row (`name_key`): the live key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    /// The name as first created (names compare case-insensitively).
    name: String,
    latest: String,
    created: i64,
    #[serde(default)]
    rotation_policy: Option<KeyRotationPolicy>,
    /// The latest version a Notify action already fired for.
    #[serde(default)]
    notified_version: Option<String>,
}

/// `Table::KeyVersions` row (`name_key/version`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyVersionRecord {
    version: String,
    kty: String,
    #[serde(default)]
    key_size: Option<u32>,
    key_ops: Vec<String>,
    enabled: bool,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    created: i64,
    updated: i64,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    tags: Option<Tags>,
    #[serde(default)]
    release_policy: Option<KeyReleasePolicy>,
    /// Owned by the certificate of the same name (read-only here). Absent when false, so rows
    /// written before certificates existed keep their MAC.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    managed: bool,
    public: PublicJwk,
    /// hex(nonce || AES-256-GCM(object key, material, AAD = key/name/version) || tag)
    sealed: String,
    /// HMAC over the record (see [`crate::util::Authenticated`]).
    #[serde(default)]
    mac: String,
}

/// `Table::DeletedKeys` row (`name_key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeletedKeyRecord {
    key: KeyRecord,
    deleted: i64,
    scheduled_purge: i64,
}

/// An unsealed, parsed key version held in the cache.
pub(crate) struct CachedKey {
    name: String,
    record: KeyVersionRecord,
    material: Material,
}

/// Keys as an instance of the versioned-object model (see [`crate::VaultObject`]).
pub struct Keys;

object_record!(KeyRecord, rotation_policy, notified_version);
version_record!(KeyVersionRecord);
deleted_record!(DeletedKeyRecord, KeyRecord, key);

impl ObjectWire for Keys {
    const KIND: &'static str = "key";
    const COLLECTION: &'static str = "keys";
    type Bundle = KeyBundle;
    type Item = KeyItem;
    type DeletedBundle = DeletedKeyBundle;
    type DeletedItem = DeletedKeyItem;
}

impl ObjectKind for Keys {
    const TITLE: &'static str = "Key";
    const VALUE: &'static str = "key material";
    const TABLES: lifecycle::Tables = lifecycle::KEYS;
    const BACKUP: BackupKind = BackupKind::Key;

    type Record = KeyRecord;
    type Version = KeyVersionRecord;
    type Deleted = DeletedKeyRecord;
    type BackupVersion = BackupKeyVersion;
    type Backup = KeyBackupPayload;

    fn not_found(name: &str, version: Option<&str>) -> VaultError {
        VaultError::KeyNotFound {
            name: name.to_string(),
            version: version.filter(|v| !v.is_empty()).map(material::truncate),
        }
    }

    fn deleted_not_found(name: &str) -> VaultError {
        VaultError::DeletedKeyNotFound {
            name: name.to_string(),
        }
    }

    fn backup_version(
        record: KeyVersionRecord,
        value: Zeroizing<Vec<u8>>,
    ) -> Result<BackupKeyVersion> {
        Ok(BackupKeyVersion {
            record,
            material: SecretBytes(value),
        })
    }

    fn restore_version(v: &BackupKeyVersion) -> (&KeyVersionRecord, &[u8]) {
        (&v.record, v.material.as_slice())
    }

    /// The material must parse and match the public parts stored beside it.
    fn check_restored(vr: &KeyVersionRecord, value: &[u8]) -> Result<()> {
        let (kind, _) = material::parse_kty(&vr.kty)?;
        let parsed = Material::parse(kind, value, vr.public.crv.as_deref())
            .map_err(|_| VaultError::bad("invalid key backup: key material does not parse"))?;
        if parsed.public_jwk()? != vr.public {
            return Err(VaultError::bad(
                "invalid key backup: public key parts do not match the key material",
            ));
        }
        Ok(())
    }

    fn backup_payload(record: KeyRecord, versions: Vec<BackupKeyVersion>) -> KeyBackupPayload {
        KeyBackupPayload {
            key: record,
            versions,
        }
    }

    fn backup_parts(b: &KeyBackupPayload) -> (&KeyRecord, &[BackupKeyVersion]) {
        (&b.key, &b.versions)
    }

    /// A changed key is dropped from the parsed-key cache.
    fn changed(vault: &Vault, nk: &str) {
        vault.cache.invalidate(nk);
    }

    fn check_mutable(vault: &Vault, name: &str) -> Result<()> {
        vault.check_unmanaged("key", name)
    }

    fn is_managed(record: &KeyVersionRecord) -> bool {
        record.managed
    }

    fn bundle(vault: &Vault, name: &str, vr: &KeyVersionRecord) -> KeyBundle {
        vault.key_bundle(name, vr)
    }

    fn item(vault: &Vault, name: &str, vr: &KeyVersionRecord, with_version: bool) -> KeyItem {
        KeyItem {
            kid: vault.object_url::<Keys>(name, with_version.then_some(vr.version.as_str())),
            attributes: vault.key_attributes(vr),
            tags: vr.tags.clone(),
            managed: vr.managed.then_some(true),
        }
    }

    fn deleted_bundle(
        vault: &Vault,
        d: &DeletedKeyRecord,
        vr: &KeyVersionRecord,
    ) -> DeletedKeyBundle {
        DeletedKeyBundle {
            bundle: vault.key_bundle(&d.key.name, vr),
            deletion: vault.deletion_info::<Keys>(d),
        }
    }

    fn deleted_item(vault: &Vault, d: &DeletedKeyRecord, vr: &KeyVersionRecord) -> DeletedKeyItem {
        DeletedKeyItem {
            item: Self::item(vault, &d.key.name, vr, false),
            deletion: vault.deletion_info::<Keys>(d),
        }
    }
}

const KNOWN_KEY_OPS: [&str; 8] = [
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "import",
    "export",
];

fn default_key_ops(kind: KeyKind) -> Vec<String> {
    let ops: &[&str] = match kind {
        KeyKind::Rsa => &[
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ],
        KeyKind::Ec => &["sign", "verify"],
        KeyKind::Oct => &["encrypt", "decrypt", "wrapKey", "unwrapKey"],
    };
    ops.iter().map(|s| s.to_string()).collect()
}

fn validate_key_ops(ops: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for op in ops {
        if !KNOWN_KEY_OPS.contains(&op.as_str()) {
            return Err(VaultError::bad(format!(
                "invalid key_ops entry '{}': expected one of {}",
                material::truncate(op),
                KNOWN_KEY_OPS.join(", ")
            )));
        }
        if !out.contains(op) {
            out.push(op.clone());
        }
    }
    Ok(out)
}

/// Validate tags: at most 15, names up to 512 and values up to 256 characters.
pub(crate) fn validate_tags(tags: &Option<Tags>) -> Result<()> {
    if let Some(t) = tags {
        if t.len() > 15 {
            return Err(VaultError::bad(format!(
                "too many tags: expected at most 15, found {}",
                t.len()
            )));
        }
        for (k, v) in t {
            if k.is_empty() || k.chars().count() > 512 {
                return Err(VaultError::bad(format!(
                    "invalid tag name: expected 1-512 characters, found {}",
                    k.chars().count()
                )));
            }
            if v.chars().count() > 256 {
                return Err(VaultError::bad(format!(
                    "invalid value for tag '{}': expected at most 256 characters, found {}",
                    material::truncate(k),
                    v.chars().count()
                )));
            }
        }
    }
    Ok(())
}

fn validate_release_policy(p: &KeyReleasePolicy) -> Result<KeyReleasePolicy> {
    let data = p
        .data
        .as_ref()
        .ok_or_else(|| VaultError::bad("release_policy.data is required"))?;
    let parsed: serde_json::Value = serde_json::from_slice(data.as_slice()).map_err(|_| {
        VaultError::bad("invalid release_policy.data: expected base64url of a JSON policy document")
    })?;
    if !parsed.is_object() {
        return Err(VaultError::bad(
            "invalid release_policy.data: expected a JSON object",
        ));
    }
    Ok(KeyReleasePolicy {
        content_type: Some(
            p.content_type
                .clone()
                .unwrap_or_else(|| "application/json; charset=utf-8".to_string()),
        ),
        immutable: Some(p.immutable.unwrap_or(false)),
        data: Some(data.clone()),
    })
}

const SKR_1004: &str = "AKV.SKR.1004 Exportable keys must have release policy.";
const SKR_1014: &str = "AKV.SKR.1014 Cannot modify the exportable state of a key.";

fn is_store_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { .. })
}

// ---------------------------------------------------------------------------------------------
// Vault: keys
// ---------------------------------------------------------------------------------------------

struct NewVersionSpec {
    kty: String,
    key_ops: Vec<String>,
    attributes: Option<KeyAttributes>,
    tags: Option<Tags>,
    release_policy: Option<KeyReleasePolicy>,
}

impl Vault {
    fn key_attributes(&self, r: &KeyVersionRecord) -> KeyAttributes {
        KeyAttributes {
            enabled: Some(r.enabled),
            nbf: r.nbf,
            exp: r.exp,
            created: Some(r.created),
            updated: Some(r.updated),
            recoverable_days: Some(self.options.recoverable_days as i64),
            recovery_level: Some(self.recovery_level().to_string()),
            exportable: Some(r.exportable),
        }
    }

    fn key_bundle(&self, name: &str, r: &KeyVersionRecord) -> KeyBundle {
        KeyBundle {
            key: JsonWebKey {
                kid: Some(self.object_url::<Keys>(name, Some(&r.version))),
                kty: Some(r.kty.clone()),
                key_ops: Some(r.key_ops.clone()),
                n: r.public.n.clone(),
                e: r.public.e.clone(),
                crv: r.public.crv.clone(),
                x: r.public.x.clone(),
                y: r.public.y.clone(),
                ..JsonWebKey::default()
            },
            attributes: self.key_attributes(r),
            tags: r.tags.clone(),
            managed: r.managed.then_some(true),
            release_policy: r.release_policy.clone(),
        }
    }

    fn open_material(&self, nk: &str, r: &KeyVersionRecord) -> Result<Zeroizing<Vec<u8>>> {
        self.open_object_value::<Keys>(nk, r)
    }

    fn parse_material(&self, nk: &str, r: &KeyVersionRecord) -> Result<Material> {
        let (kind, _) = material::parse_kty(&r.kty)?;
        let bytes = self.open_material(nk, r)?;
        Material::parse(kind, &bytes, r.public.crv.as_deref())
    }

    /// Add a new version (create / import / rotate) with retry on concurrent changes.
    fn add_key_version(
        &self,
        name: &str,
        m: NewMaterial,
        spec: NewVersionSpec,
        now: i64,
    ) -> Result<KeyBundle> {
        let nk = name_key(name);
        let key_ops = match &spec.key_ops {
            ops if ops.is_empty() => default_key_ops(m.kind),
            ops => validate_key_ops(ops)?,
        };
        validate_tags(&spec.tags)?;
        let attrs = spec.attributes.clone().unwrap_or_default();
        let exportable = attrs.exportable.unwrap_or(false);
        let release_policy = spec
            .release_policy
            .as_ref()
            .map(validate_release_policy)
            .transpose()?;
        if exportable && release_policy.is_none() {
            return Err(VaultError::bad(SKR_1004));
        }
        let version = crate::util::new_version_id()?;
        let sealed = self.seal_object_value::<Keys>(&nk, &version, &m.bytes)?;
        let vrec = KeyVersionRecord {
            version: version.clone(),
            kty: spec.kty.clone(),
            key_size: m.key_size,
            key_ops,
            enabled: attrs.enabled.unwrap_or(true),
            nbf: attrs.nbf,
            exp: attrs.exp,
            created: now,
            updated: now,
            exportable,
            tags: spec.tags.clone(),
            release_policy,
            managed: false,
            public: m.public.clone(),
            sealed,
            mac: String::new(),
        };
        let vbytes = self.encode_version::<Keys>(&nk, &vrec)?;
        let display = self.commit_new_version::<Keys>(name, &vrec, vbytes, now)?;
        Ok(self.key_bundle(&display, &vrec))
    }

    /// The encoded version row of a certificate's key (`managed`): `pkcs8` is the certificate's
    /// RSA or EC private key. Exportable (releasable) only with a release policy, as every key.
    pub(crate) fn managed_key_version(
        &self,
        mv: &crate::object::ManagedVersion<'_>,
        pkcs8: &[u8],
        hsm: bool,
        release_policy: Option<&KeyReleasePolicy>,
    ) -> Result<Vec<u8>> {
        let (version, state, now) = (mv.version, mv.state, mv.now);
        let nk = name_key(mv.name);
        let m = material::from_pkcs8(pkcs8)?;
        let release_policy = release_policy.map(validate_release_policy).transpose()?;
        let kty = if hsm {
            format!("{}-HSM", m.kind.name())
        } else {
            m.kind.name().to_string()
        };
        let vrec = KeyVersionRecord {
            version: version.to_string(),
            kty,
            key_size: m.key_size,
            key_ops: default_key_ops(m.kind),
            enabled: state.0,
            nbf: state.1,
            exp: state.2,
            created: now,
            updated: now,
            exportable: release_policy.is_some(),
            tags: mv.tags.cloned(),
            release_policy,
            managed: true,
            public: m.public.clone(),
            sealed: self.seal_object_value::<Keys>(&nk, version, &m.bytes)?,
            mac: String::new(),
        };
        self.encode_version::<Keys>(&nk, &vrec)
    }

    /// The private key (PKCS#8) of a key version, for a certificate renewal that reuses it.
    pub(crate) fn key_pkcs8(&self, name: &str, version: &str) -> Result<Zeroizing<Vec<u8>>> {
        let (_, vr, _) = self.resolve::<Keys>(name, Some(version))?;
        self.open_material(&name_key(name), &vr)
    }

    /// Create a key (or a new version of an existing key). 409 `Conflict` when a deleted key of
    /// that name is recoverable.
    pub fn create_key(&self, name: &str, params: &KeyCreateParameters) -> Result<KeyBundle> {
        self.data_keys()?;
        validate_name("key", name)?;
        let (kind, _) = material::parse_kty(&params.kty)?;
        self.check_not_deleted::<Keys>(name)?;
        // Validate cheap inputs before the (possibly slow) key generation.
        if let Some(ops) = &params.key_ops {
            validate_key_ops(ops)?;
        }
        validate_tags(&params.tags)?;
        let exportable = params
            .attributes
            .as_ref()
            .and_then(|a| a.exportable)
            .unwrap_or(false);
        if exportable && params.release_policy.is_none() {
            return Err(VaultError::bad(SKR_1004));
        }
        let m = material::generate(
            kind,
            params.key_size,
            params.crv.as_deref(),
            params.public_exponent,
        )?;
        let spec = NewVersionSpec {
            kty: params.kty.clone(),
            key_ops: params.key_ops.clone().unwrap_or_default(),
            attributes: params.attributes.clone(),
            tags: params.tags.clone(),
            release_policy: params.release_policy.clone(),
        };
        self.add_key_version(name, m, spec, self.now().timestamp())
    }

    /// Import a JWK (new version of `name`).
    pub fn import_key(&self, name: &str, params: &KeyImportParameters) -> Result<KeyBundle> {
        self.data_keys()?;
        validate_name("key", name)?;
        let m = material::import(&params.key)?;
        let base = m.kind.name();
        let kty = match (params.hsm, params.key.kty.as_deref()) {
            (Some(true), _) => format!("{base}-HSM"),
            (_, Some(k)) => k.to_string(),
            _ => base.to_string(),
        };
        let spec = NewVersionSpec {
            kty,
            key_ops: params.key.key_ops.clone().unwrap_or_default(),
            attributes: params.attributes.clone(),
            tags: params.tags.clone(),
            release_policy: params.release_policy.clone(),
        };
        self.add_key_version(name, m, spec, self.now().timestamp())
    }

    /// Get a key version; `version` `None` or `Some("")` means the latest.
    pub fn get_key(&self, name: &str, version: Option<&str>) -> Result<KeyBundle> {
        self.data_keys()?;
        let (rec, vr, _) = self.resolve::<Keys>(name, version)?;
        Ok(self.key_bundle(&rec.name, &vr))
    }

    /// Update a key version's key_ops, attributes, tags or release policy. `exportable` cannot be
    /// changed (AKV.SKR.1014).
    pub fn update_key(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyUpdateParameters,
    ) -> Result<KeyBundle> {
        self.data_keys()?;
        let key_ops = params
            .key_ops
            .as_deref()
            .map(validate_key_ops)
            .transpose()?;
        validate_tags(&params.tags)?;
        let new_policy = params
            .release_policy
            .as_ref()
            .map(validate_release_policy)
            .transpose()?;
        let (rec, vr) = self.update_version::<Keys>(name, version, |rec, vr| {
            if let Some(a) = &params.attributes {
                if let Some(x) = a.exportable
                    && x != vr.exportable
                {
                    return Err(VaultError::bad(SKR_1014));
                }
                vr.state().apply(a.enabled, a.nbf, a.exp);
            }
            if let Some(ops) = &key_ops {
                vr.key_ops = ops.clone();
            }
            if params.tags.is_some() {
                vr.tags = params.tags.clone();
            }
            if let Some(p) = &new_policy {
                if let Some(existing) = &vr.release_policy
                    && existing.immutable == Some(true)
                    && existing != p
                {
                    return Err(VaultError::bad(format!(
                        "the release policy of key '{}' is immutable and cannot be changed",
                        rec.name
                    )));
                }
                vr.release_policy = Some(p.clone());
            }
            Ok(())
        })?;
        Ok(self.key_bundle(&rec.name, &vr))
    }

    /// List keys (latest version's attributes, `kid` without version). `max_results` defaults to
    /// and is capped at 25; `continuation` comes from a previous page.
    pub fn list_keys(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<KeyItem>> {
        Keys::list(self, max_results, continuation)
    }

    /// List a key's versions (`kid` with version).
    pub fn list_key_versions(
        &self,
        name: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<KeyItem>> {
        Keys::list_versions(self, name, max_results, continuation)
    }

    /// Soft-delete a key (all versions).
    pub fn delete_key(&self, name: &str) -> Result<DeletedKeyBundle> {
        Keys::delete(self, name)
    }

    /// Get a deleted key.
    pub fn get_deleted_key(&self, name: &str) -> Result<DeletedKeyBundle> {
        Keys::get_deleted(self, name)
    }

    /// List deleted keys.
    pub fn list_deleted_keys(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<DeletedKeyItem>> {
        Keys::list_deleted(self, max_results, continuation)
    }

    /// Recover a deleted key; returns its latest version.
    pub fn recover_deleted_key(&self, name: &str) -> Result<KeyBundle> {
        Keys::recover(self, name)
    }

    /// Permanently delete a deleted key. `Forbidden` under purge protection.
    pub fn purge_deleted_key(&self, name: &str) -> Result<()> {
        Keys::purge(self, name)
    }

    /// Purge every deleted key and secret whose scheduled purge date is `<= now`; returns how
    /// many objects were purged.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> Result<usize> {
        self.data_keys()?;
        let now = now.timestamp();
        // Certificates first: they carry their keys and secrets (deleted at the same time).
        Ok(self.purge_expired_certificates(now)?
            + self.purge_expired_objects::<Keys>(now)?
            + self.purge_expired_objects::<crate::secrets::Secrets>(now)?)
    }

    /// Create a new version with the same kty / size / curve / ops / tags.
    pub fn rotate_key(&self, name: &str) -> Result<KeyBundle> {
        self.data_keys()?;
        self.rotate_key_at(name, self.now())
    }

    fn rotate_key_at(&self, name: &str, now: DateTime<Utc>) -> Result<KeyBundle> {
        let (rec, vr, _) = self.resolve::<Keys>(name, None)?;
        let (kind, _) = material::parse_kty(&vr.kty)?;
        let m = material::generate(kind, vr.key_size, vr.public.crv.as_deref(), None)?;
        let expiry = match &rec.rotation_policy {
            Some(p) => rotation::validate(p)?.2,
            None => None,
        };
        let exp = match expiry {
            Some(d) => Some(
                d.add_to(now)
                    .ok_or_else(|| {
                        VaultError::bad("the rotation policy expiryTime overflows the calendar")
                    })?
                    .timestamp(),
            ),
            None => None,
        };
        let spec = NewVersionSpec {
            kty: vr.kty.clone(),
            key_ops: vr.key_ops.clone(),
            attributes: Some(KeyAttributes {
                enabled: Some(true),
                exp,
                exportable: Some(vr.exportable),
                ..KeyAttributes::default()
            }),
            tags: vr.tags.clone(),
            release_policy: vr.release_policy.clone(),
        };
        self.add_key_version(&rec.name, m, spec, now.timestamp())
    }

    fn policy_id(&self, name: &str) -> String {
        format!("{}/keys/{name}/rotationpolicy", self.base_url)
    }

    /// The key's rotation policy (a default Notify policy when none was set).
    pub fn get_rotation_policy(&self, name: &str) -> Result<KeyRotationPolicy> {
        self.data_keys()?;
        validate_name("key", name)?;
        let (rec, _) = self
            .read_record::<Keys>(&name_key(name))?
            .ok_or_else(|| Keys::not_found(name, None))?;
        let mut p = rec
            .rotation_policy
            .clone()
            .unwrap_or_else(|| KeyRotationPolicy {
                id: None,
                lifetime_actions: Some(vec![LifetimeAction {
                    trigger: LifetimeActionTrigger {
                        time_after_create: None,
                        time_before_expiry: Some("P30D".into()),
                    },
                    action: LifetimeActionType {
                        action_type: "Notify".into(),
                    },
                }]),
                attributes: Some(KeyRotationPolicyAttributes::default()),
            });
        p.id = Some(self.policy_id(&rec.name));
        Ok(p)
    }

    /// Replace the key's rotation policy; returns the stored policy.
    pub fn set_rotation_policy(
        &self,
        name: &str,
        policy: &KeyRotationPolicy,
    ) -> Result<KeyRotationPolicy> {
        self.data_keys()?;
        validate_name("key", name)?;
        self.check_unmanaged("key", name)?;
        let (mut normalized, _, _) = rotation::validate(policy)?;
        let nk = name_key(name);
        for _ in 0..MAX_RETRIES {
            let (mut rec, old) =
                self.read_record::<Keys>(&nk)?
                    .ok_or_else(|| VaultError::KeyNotFound {
                        name: name.to_string(),
                        version: None,
                    })?;
            let now = self.now().timestamp();
            let created = rec
                .rotation_policy
                .as_ref()
                .and_then(|p| p.attributes.as_ref())
                .and_then(|a| a.created)
                .unwrap_or(now);
            if let Some(a) = normalized.attributes.as_mut() {
                a.created = Some(created);
                a.updated = Some(now);
            }
            rec.rotation_policy = Some(normalized.clone());
            match self.store.transact(vec![
                Op::Expect {
                    table: Table::Keys,
                    key: nk.clone(),
                    value: Some(old),
                },
                Op::Put {
                    table: Table::Keys,
                    key: nk.clone(),
                    value: to_json(&rec)?,
                },
            ]) {
                Ok(()) => {
                    normalized.id = Some(self.policy_id(&rec.name));
                    return Ok(normalized);
                }
                Err(e) if is_store_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Conflict(format!(
            "key '{name}' is being changed concurrently; retry the operation"
        )))
    }

    /// Apply due rotation-policy actions as of `now`. Called periodically by the server.
    /// `Rotate` creates a new version when `now >= created(latest) + timeAfterCreate` or
    /// `now >= exp(latest) - timeBeforeExpiry`; `Notify` fires once per latest version when
    /// `now >= exp(latest) - timeBeforeExpiry`.
    pub fn run_due_rotations(&self, now: DateTime<Utc>) -> Result<Vec<RotationEvent>> {
        self.data_keys()?;
        let mut events = Vec::new();
        for nk in self.all_row_keys(Table::Keys, "")? {
            let Some((rec, _)) = self.read_record::<Keys>(&nk)? else {
                continue;
            };
            let Some(policy) = &rec.rotation_policy else {
                continue;
            };
            let Ok((_, actions, _)) = rotation::validate(policy) else {
                continue;
            };
            let Some((vr, _)) = self.read_version::<Keys>(&nk, &rec.latest)? else {
                continue;
            };
            let created = Utc.timestamp_opt(vr.created, 0).single();
            let exp = vr.exp.and_then(|e| Utc.timestamp_opt(e, 0).single());
            let due = |a: &rotation::Action| -> bool {
                if let (Some(d), Some(c)) = (a.after_create, created)
                    && d.add_to(c).is_some_and(|t| now >= t)
                {
                    return true;
                }
                if let (Some(d), Some(e)) = (a.before_expiry, exp)
                    && d.sub_from(e).is_some_and(|t| now >= t)
                {
                    return true;
                }
                false
            };
            if let Some(a) = actions
                .iter()
                .find(|a| a.kind == rotation::ActionKind::Rotate)
                && due(a)
            {
                match self.rotate_key_at(&rec.name, now) {
                    Ok(b) => {
                        let new_version = b
                            .key
                            .kid
                            .as_deref()
                            .and_then(|k| k.rsplit('/').next())
                            .map(String::from);
                        events.push(RotationEvent {
                            name: rec.name.clone(),
                            action: RotationAction::Rotate,
                            version: vr.version.clone(),
                            new_version,
                        });
                        continue;
                    }
                    Err(VaultError::Conflict(_)) | Err(VaultError::KeyNotFound { .. }) => {
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(a) = actions
                .iter()
                .find(|a| a.kind == rotation::ActionKind::Notify)
                && due(a)
                && rec.notified_version.as_deref() != Some(vr.version.as_str())
            {
                // Record the notification so it fires once per version.
                let Some((mut fresh, old)) = self.read_record::<Keys>(&nk)? else {
                    continue;
                };
                if fresh.latest != vr.version {
                    continue;
                }
                fresh.notified_version = Some(vr.version.clone());
                match self.store.transact(vec![
                    Op::Expect {
                        table: Table::Keys,
                        key: nk.clone(),
                        value: Some(old),
                    },
                    Op::Put {
                        table: Table::Keys,
                        key: nk.clone(),
                        value: to_json(&fresh)?,
                    },
                ]) {
                    Ok(()) => events.push(RotationEvent {
                        name: rec.name.clone(),
                        action: RotationAction::Notify,
                        version: vr.version.clone(),
                        new_version: None,
                    }),
                    Err(e) if is_store_conflict(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(events)
    }

    // -----------------------------------------------------------------------------------------
    // Backup / restore
    // -----------------------------------------------------------------------------------------

    /// Back up all versions of a key into an opaque blob only this vault's root can restore.
    pub fn backup_key(&self, name: &str) -> Result<BackupBlob> {
        Keys::backup(self, name)
    }

    /// Restore a key backup. 409 when the name exists (live or deleted).
    pub fn restore_key(&self, blob: &[u8]) -> Result<KeyBundle> {
        Keys::restore(self, blob)
    }

    // -----------------------------------------------------------------------------------------
    // Crypto operations
    // -----------------------------------------------------------------------------------------

    /// The parsed key version, from the cache or the store.
    fn cached_key(&self, name: &str, version: Option<&str>) -> Result<Arc<CachedKey>> {
        validate_name("key", name)?;
        let nk: std::borrow::Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(name_key(name))
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        let version = version.filter(|v| !v.is_empty());
        let epoch = self.cache.epoch();
        // Another process may have changed the key: the cache is used only while the change
        // feed is confirmed alive (it then has dropped every entry changed elsewhere). A copy
        // loaded meanwhile may still be inserted: a later change is reported before the feed
        // is trusted again, and a lost feed flushes everything (the epoch refuses the insert of
        // a copy read before that).
        if self.coherence.trusted()
            && let Some(hit) = self.cache.get(&nk, version)
        {
            return Ok(hit);
        }
        let (rec, vr, _) = self.resolve::<Keys>(name, version)?;
        let material = self.parse_material(&nk, &vr)?;
        let is_latest = vr.version == rec.latest;
        let entry = Arc::new(CachedKey {
            name: rec.name,
            record: vr,
            material,
        });
        self.cache
            .insert(epoch, &nk, &entry.record.version, is_latest, entry.clone());
        Ok(entry)
    }

    fn check_usable(&self, k: &CachedKey, op: Operation) -> Result<()> {
        let kind = k.material.kind();
        let opname = op.key_op();
        let now = self.now().timestamp();
        if !k.record.enabled && !op.is_public(kind) {
            return Err(VaultError::forbidden(
                format!("Operation {opname} is not allowed on a disabled key."),
                "KeyDisabled",
            ));
        }
        if k.record.nbf.is_some_and(|nbf| now < nbf) {
            return Err(VaultError::forbidden(
                format!(
                    "Operation {opname} is not allowed on a key that is not yet valid (nbf is in the future)."
                ),
                "KeyNotYetValid",
            ));
        }
        if k.record.exp.is_some_and(|exp| now >= exp)
            && matches!(
                op,
                Operation::Encrypt | Operation::WrapKey | Operation::Sign
            )
        {
            return Err(VaultError::forbidden(
                format!("Operation {opname} is not allowed on an expired key."),
                "KeyExpired",
            ));
        }
        if !k.record.key_ops.iter().any(|o| o == opname) {
            return Err(VaultError::forbidden(
                format!("Operation {opname} is not permitted on this key."),
                "KeyOperationForbidden",
            ));
        }
        Ok(())
    }

    fn prepare_op(
        &self,
        name: &str,
        version: Option<&str>,
        op: Operation,
        alg: &str,
    ) -> Result<Arc<CachedKey>> {
        self.data_keys()?;
        let k = self.cached_key(name, version)?;
        self.check_usable(&k, op)?;
        material::check_alg(op, &k.material, &k.record.kty, alg)?;
        Ok(k)
    }

    fn op_result(&self, k: &CachedKey, value: Vec<u8>) -> KeyOperationResult {
        KeyOperationResult {
            kid: self.object_url::<Keys>(&k.name, Some(&k.record.version)),
            value: Base64Url(value),
            iv: None,
            tag: None,
            aad: None,
        }
    }

    /// Encrypt with a key version (RSA-OAEP, RSA-OAEP-256, RSA1_5, A128/192/256GCM).
    pub fn encrypt(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyOperationsParameters,
    ) -> Result<KeyOperationResult> {
        let k = self.prepare_op(name, version, Operation::Encrypt, &params.alg)?;
        let aad = params.aad.as_ref().map(|a| a.as_slice());
        let enc = k.material.encrypt(
            &params.alg,
            params.value.as_slice(),
            params.iv.as_ref().map(|v| v.as_slice()),
            aad,
        )?;
        let mut r = self.op_result(&k, enc.value);
        r.iv = enc.iv.map(Base64Url);
        r.tag = enc.tag.map(Base64Url);
        if r.tag.is_some() {
            r.aad = params.aad.clone();
        }
        Ok(r)
    }

    /// Decrypt with a key version.
    pub fn decrypt(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyOperationsParameters,
    ) -> Result<KeyOperationResult> {
        let k = self.prepare_op(name, version, Operation::Decrypt, &params.alg)?;
        let pt = k.material.decrypt(
            &params.alg,
            params.value.as_slice(),
            params.iv.as_ref().map(|v| v.as_slice()),
            params.aad.as_ref().map(|v| v.as_slice()),
            params.tag.as_ref().map(|v| v.as_slice()),
        )?;
        Ok(self.op_result(&k, pt.to_vec()))
    }

    /// Wrap a key (RSA-OAEP, RSA-OAEP-256, RSA1_5, A128/192/256KW, CKM_AES_KEY_WRAP(_PAD)).
    pub fn wrap_key(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyOperationsParameters,
    ) -> Result<KeyOperationResult> {
        let k = self.prepare_op(name, version, Operation::WrapKey, &params.alg)?;
        let v = k.material.wrap(&params.alg, params.value.as_slice())?;
        Ok(self.op_result(&k, v))
    }

    /// Unwrap a key.
    pub fn unwrap_key(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyOperationsParameters,
    ) -> Result<KeyOperationResult> {
        let k = self.prepare_op(name, version, Operation::UnwrapKey, &params.alg)?;
        let v = k.material.unwrap(&params.alg, params.value.as_slice())?;
        Ok(self.op_result(&k, v.to_vec()))
    }

    /// Sign a digest (PS/RS 256/384/512, ES256/ES384/ES512/ES256K).
    pub fn sign(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeySignParameters,
    ) -> Result<KeyOperationResult> {
        let k = self.prepare_op(name, version, Operation::Sign, &params.alg)?;
        let sig = k.material.sign(&params.alg, params.value.as_slice())?;
        Ok(self.op_result(&k, sig))
    }

    /// Verify a signature over a digest.
    pub fn verify(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyVerifyParameters,
    ) -> Result<KeyVerifyResult> {
        let k = self.prepare_op(name, version, Operation::Verify, &params.alg)?;
        let ok = k.material.verify(
            &params.alg,
            params.digest.as_slice(),
            params.value.as_slice(),
        )?;
        Ok(KeyVerifyResult { value: ok })
    }

    /// `count` (1..=1024) random bytes. Requires an unsealed vault like every data operation.
    pub fn rng(&self, count: u32) -> Result<RandomBytes> {
        self.data_keys()?;
        if !(1..=1024).contains(&count) {
            return Err(VaultError::bad(format!(
                "invalid count: expected 1-1024, found {count}"
            )));
        }
        let mut buf = vec![0u8; count as usize];
        crate::util::random_fill(&mut buf)?;
        Ok(RandomBytes {
            value: Base64Url(buf),
        })
    }

    /// The private material of an exportable key version, for secure key release. Checks that the
    /// key is enabled, within nbf/exp and exportable; the caller checks the release policy.
    pub fn releasable_key(&self, name: &str, version: Option<&str>) -> Result<ReleasableKey> {
        self.data_keys()?;
        let (rec, vr, _) = self.resolve::<Keys>(name, version)?;
        let now = self.now().timestamp();
        if !vr.enabled {
            return Err(VaultError::forbidden(
                "Operation release is not allowed on a disabled key.",
                "KeyDisabled",
            ));
        }
        if vr.nbf.is_some_and(|n| now < n) {
            return Err(VaultError::forbidden(
                "Operation release is not allowed on a key that is not yet valid (nbf is in the future).",
                "KeyNotYetValid",
            ));
        }
        if vr.exp.is_some_and(|e| now >= e) {
            return Err(VaultError::forbidden(
                "Operation release is not allowed on an expired key.",
                "KeyExpired",
            ));
        }
        if !vr.exportable || vr.release_policy.is_none() {
            return Err(VaultError::forbidden(
                format!(
                    "key '{}' is not exportable: only keys created with exportable=true and a release policy can be released",
                    rec.name
                ),
                "KeyNotExportable",
            ));
        }
        let (kind, _) = material::parse_kty(&vr.kty)?;
        let material = self.open_material(&name_key(name), &vr)?;
        Ok(ReleasableKey {
            bundle: self.key_bundle(&rec.name, &vr),
            kty: kind.name().to_string(),
            material,
        })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct BackupKeyVersion {
    record: KeyVersionRecord,
    material: SecretBytes,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct KeyBackupPayload {
    key: KeyRecord,
    versions: Vec<BackupKeyVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclava_store::{SqliteStore, Store};

    #[test]
    fn cache_is_bounded_and_hits() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let v = Vault::with_options(
            store,
            "https://x".into(),
            crate::system_clock(),
            crate::VaultOptions {
                cache_capacity: 3,
                ..Default::default()
            },
        );
        let out = v.init(1, 1).unwrap();
        v.unseal(&out.shares[0]).unwrap();
        for i in 0..6 {
            let name = format!("k{i}");
            v.create_key(
                &name,
                &KeyCreateParameters {
                    kty: "oct".into(),
                    ..Default::default()
                },
            )
            .unwrap();
            let p = KeyOperationsParameters {
                alg: "A256GCM".into(),
                value: Base64Url(vec![1]),
                ..Default::default()
            };
            v.encrypt(&name, None, &p).unwrap();
            assert!(v.cache.len() <= 3);
        }
        assert!(v.cache.len() >= 1);
        // A hit returns the same parsed entry.
        let a = v.cached_key("k5", None).unwrap();
        let b = v.cached_key("k5", None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Invalidation on update drops it.
        v.update_key("k5", None, &KeyUpdateParameters::default())
            .unwrap();
        let c = v.cached_key("k5", None).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
