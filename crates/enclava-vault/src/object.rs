//! The one versioned-object model that keys and secrets are two instances of (and certificates
//! will be a third).
//!
//! An object kind ([`ObjectKind`]) names its three tables, its stored record types and its
//! wire-facing words; everything else is written once here, generic over the kind:
//!
//! - storage: the live record (`name`, `latest`, `created`), the version rows (`name_key/version`,
//!   MAC-authenticated, the value sealed with AES-256-GCM under the object data key with AAD
//!   `enclava/v1/{kind}/{name_key}/{version}`), and the deleted record;
//! - versions: resolve (latest or a named version), commit a new version (retry on concurrent
//!   change, refused while a deleted object of the name is recoverable), update one version,
//!   list objects / versions / deleted objects with continuation tokens;
//! - lifecycle: soft delete, get deleted, recover, purge (with purge protection) and the
//!   scheduled purge (see [`crate::lifecycle`] for the transactions);
//! - backup / restore of every version in the [`crate::backup`] blob.
//!
//! The stored JSON shapes are each kind's own structs, unchanged (the record MAC covers their
//! serialization, so existing data directories and backups keep loading); the traits here only
//! give the generic code access to the fields every kind has.

use enclava_store::{Op, StoreError, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::Vault;
use crate::backup::BackupKind;
use crate::error::{Result, VaultError};
use crate::lifecycle::Tables;
use crate::model::{BackupBlob, DeletionInfo, Page};
use crate::util::{
    Authenticated, aead_open, aead_seal, decode_token, encode_token, name_key, page_size,
    validate_name,
};

/// The common parts of the key, secret and certificate versions a certificate version writes
/// together (same name and version id).
pub(crate) struct ManagedVersion<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// `enabled`, `nbf`, `exp`.
    pub state: (bool, Option<i64>, Option<i64>),
    pub tags: Option<&'a crate::model::Tags>,
    pub now: i64,
}

/// How often a read-modify-write retries on a concurrent change before answering 409.
pub(crate) const MAX_RETRIES: usize = 5;

/// The live record of an object (`Table::{Keys,Secrets}` row under the lower-cased name).
pub(crate) trait ObjectRecord: Clone + Serialize + DeserializeOwned {
    /// A new object `name` whose only version is `latest`.
    fn new(name: &str, latest: &str, created: i64) -> Self;
    /// The name as first created (names compare case-insensitively).
    fn name(&self) -> &str;
    fn latest(&self) -> &str;
    fn set_latest(&mut self, version: &str);
}

/// The lifecycle fields every version has (borrowed mutably for an update).
pub(crate) struct VersionState<'a> {
    pub enabled: &'a mut bool,
    pub nbf: &'a mut Option<i64>,
    pub exp: &'a mut Option<i64>,
    pub updated: &'a mut i64,
}

impl VersionState<'_> {
    /// Apply the attributes of an update request: only the fields it names change.
    pub fn apply(&mut self, enabled: Option<bool>, nbf: Option<i64>, exp: Option<i64>) {
        if let Some(e) = enabled {
            *self.enabled = e;
        }
        if nbf.is_some() {
            *self.nbf = nbf;
        }
        if exp.is_some() {
            *self.exp = exp;
        }
    }
}

/// One version row of an object (MAC-authenticated; the value is in `sealed`).
pub(crate) trait VersionRecord:
    Clone + Serialize + DeserializeOwned + Authenticated
{
    fn version(&self) -> &str;
    fn sealed(&self) -> &str;
    /// `hex(nonce || AES-256-GCM(object key, value, AAD) || tag)`; empty inside a backup.
    fn sealed_mut(&mut self) -> &mut String;
    fn state(&mut self) -> VersionState<'_>;
}

/// The deleted record of an object (`Table::Deleted{Keys,Secrets}` row).
pub(crate) trait DeletedRecord<R>: Serialize + DeserializeOwned {
    fn new(record: R, deleted: i64, scheduled_purge: i64) -> Self;
    fn record(&self) -> &R;
    fn into_record(self) -> R;
    fn deleted(&self) -> i64;
    fn scheduled_purge(&self) -> i64;
}

/// Implement [`ObjectRecord`] for a kind's live record struct (fields `name`, `latest`,
/// `created`; the listed extra fields start as `None`).
macro_rules! object_record {
    ($t:ident $(, $extra:ident)*) => {
        impl $crate::object::ObjectRecord for $t {
            fn new(name: &str, latest: &str, created: i64) -> Self {
                $t {
                    name: name.to_string(),
                    latest: latest.to_string(),
                    created,
                    $($extra: None,)*
                }
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn latest(&self) -> &str {
                &self.latest
            }
            fn set_latest(&mut self, version: &str) {
                self.latest = version.to_string();
            }
        }
    };
}
pub(crate) use object_record;

/// Implement [`VersionRecord`] (and the record MAC's [`Authenticated`]) for a kind's version
/// struct (fields `version`, `enabled`, `nbf`, `exp`, `updated`, `sealed`, `mac`).
macro_rules! version_record {
    ($t:ty) => {
        impl $crate::util::Authenticated for $t {
            fn mac_field(&mut self) -> &mut String {
                &mut self.mac
            }
        }
        impl $crate::object::VersionRecord for $t {
            fn version(&self) -> &str {
                &self.version
            }
            fn sealed(&self) -> &str {
                &self.sealed
            }
            fn sealed_mut(&mut self) -> &mut String {
                &mut self.sealed
            }
            fn state(&mut self) -> $crate::object::VersionState<'_> {
                $crate::object::VersionState {
                    enabled: &mut self.enabled,
                    nbf: &mut self.nbf,
                    exp: &mut self.exp,
                    updated: &mut self.updated,
                }
            }
        }
    };
}
pub(crate) use version_record;

/// Implement [`DeletedRecord`] for a kind's deleted struct, whose live record is in `$field`
/// (`key`, `secret`: the stored JSON names it so).
macro_rules! deleted_record {
    ($t:ty, $rec:ty, $field:ident) => {
        impl $crate::object::DeletedRecord<$rec> for $t {
            fn new(record: $rec, deleted: i64, scheduled_purge: i64) -> Self {
                Self {
                    $field: record,
                    deleted,
                    scheduled_purge,
                }
            }
            fn record(&self) -> &$rec {
                &self.$field
            }
            fn into_record(self) -> $rec {
                self.$field
            }
            fn deleted(&self) -> i64 {
                self.deleted
            }
            fn scheduled_purge(&self) -> i64 {
                self.scheduled_purge
            }
        }
    };
}
pub(crate) use deleted_record;

/// One kind of versioned object. Implemented by a marker type per kind (`keys::Keys`,
/// `secrets::Secrets`).
pub(crate) trait ObjectKind: ObjectWire + Sized {
    /// `"Key"`: the start of Key Vault's deleted-conflict message.
    const TITLE: &'static str;
    /// `"key material"`: what the sealed value is, for integrity messages.
    const VALUE: &'static str;
    const TABLES: Tables;
    const BACKUP: BackupKind;

    type Record: ObjectRecord;
    type Version: VersionRecord;
    type Deleted: DeletedRecord<Self::Record>;
    /// One version inside a backup: its record (with `sealed` emptied) and its plain value.
    type BackupVersion: Serialize + DeserializeOwned;
    /// The backup payload (the record and every version).
    type Backup: Serialize + DeserializeOwned;

    fn not_found(name: &str, version: Option<&str>) -> VaultError;
    fn deleted_not_found(name: &str) -> VaultError;

    /// A version for a backup, from its record (`sealed` emptied) and its unsealed value.
    fn backup_version(
        record: Self::Version,
        value: Zeroizing<Vec<u8>>,
    ) -> Result<Self::BackupVersion>;
    /// The record of a version in a backup and its plain value.
    fn restore_version(v: &Self::BackupVersion) -> (&Self::Version, &[u8]);
    /// Whether a version belongs to a certificate (then it is restored only with it).
    fn is_managed(_record: &Self::Version) -> bool {
        false
    }
    /// Check a restored version's value against its record (after its id was checked).
    fn check_restored(_record: &Self::Version, _value: &[u8]) -> Result<()> {
        Ok(())
    }
    fn backup_payload(record: Self::Record, versions: Vec<Self::BackupVersion>) -> Self::Backup;
    fn backup_parts(b: &Self::Backup) -> (&Self::Record, &[Self::BackupVersion]);

    /// Called after every committed change of the object `nk`'s rows (keys drop their cache).
    fn changed(_vault: &Vault, _nk: &str) {}

    /// Refuse a change made through this kind's own routes (keys and secrets that a certificate
    /// owns are read-only: they change only with their certificate). Called by every generic
    /// write (new version, update, delete, recover, purge).
    fn check_mutable(_vault: &Vault, _name: &str) -> Result<()> {
        Ok(())
    }

    // The lifecycle as [`VaultObject`] answers it. A kind that owns objects of other kinds
    // (certificates) overrides these to carry them along in the same transactions.
    fn delete_impl(v: &Vault, name: &str) -> Result<Self::DeletedBundle> {
        let (d, vr) = v.delete_object::<Self>(name)?;
        Ok(Self::deleted_bundle(v, &d, &vr))
    }
    fn recover_impl(v: &Vault, name: &str) -> Result<Self::Bundle> {
        let (rec, vr) = v.recover_object::<Self>(name)?;
        Ok(Self::bundle(v, rec.name(), &vr))
    }
    fn purge_impl(v: &Vault, name: &str) -> Result<()> {
        v.purge_object::<Self>(name)
    }
    fn backup_impl(v: &Vault, name: &str) -> Result<BackupBlob> {
        v.backup_object::<Self>(name)
    }
    fn restore_impl(v: &Vault, blob: &[u8]) -> Result<Self::Bundle> {
        let (name, latest) = v.restore_object::<Self>(blob)?;
        Ok(Self::bundle(v, &name, &latest))
    }

    /// A version as returned by get / update / recover / restore (never with a secret value).
    fn bundle(vault: &Vault, name: &str, vr: &Self::Version) -> Self::Bundle;
    /// A version in a listing (`id` with the version only in a versions listing).
    fn item(vault: &Vault, name: &str, vr: &Self::Version, with_version: bool) -> Self::Item;
    fn deleted_bundle(vault: &Vault, d: &Self::Deleted, vr: &Self::Version) -> Self::DeletedBundle;
    fn deleted_item(vault: &Vault, d: &Self::Deleted, vr: &Self::Version) -> Self::DeletedItem;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::keys::Keys {}
    impl Sealed for crate::secrets::Secrets {}
    impl Sealed for crate::certificates::Certificates {}
}

/// What names an object kind on the wire: its words and Key Vault's JSON shapes for it. Sealed:
/// the kinds are the vault's ([`crate::Keys`], [`crate::Secrets`]).
pub trait ObjectWire: sealed::Sealed {
    /// `"key"`: messages, name validation, AAD (`enclava/v1/key/...`) and MAC context
    /// (`key-version/...`).
    const KIND: &'static str;
    /// `"keys"`: the URL collection (`{base}/keys/{name}/{version}`); the deleted collection is
    /// `deleted` + this.
    const COLLECTION: &'static str;
    /// A version as get / update / recover / restore return it (never a secret's value).
    type Bundle: Serialize;
    /// A version in a listing.
    type Item: Serialize;
    type DeletedBundle: Serialize;
    type DeletedItem: Serialize;
}

/// The operations every vault object kind answers the same way, in Key Vault's wire shapes:
/// what the server's routes and other crates call generically (`Keys::list(&vault, ..)`). Each
/// kind's own methods (`Vault::list_keys`, ...) are the same calls.
pub trait VaultObject: ObjectWire {
    fn list(
        v: &Vault,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<Self::Item>>;
    fn list_versions(
        v: &Vault,
        name: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<Self::Item>>;
    /// Soft delete (all versions).
    fn delete(v: &Vault, name: &str) -> Result<Self::DeletedBundle>;
    fn get_deleted(v: &Vault, name: &str) -> Result<Self::DeletedBundle>;
    fn list_deleted(
        v: &Vault,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<Self::DeletedItem>>;
    fn recover(v: &Vault, name: &str) -> Result<Self::Bundle>;
    /// `Forbidden` under purge protection.
    fn purge(v: &Vault, name: &str) -> Result<()>;
    fn backup(v: &Vault, name: &str) -> Result<BackupBlob>;
    /// 409 when the name exists, live or deleted.
    fn restore(v: &Vault, blob: &[u8]) -> Result<Self::Bundle>;
}

impl<K: ObjectKind> VaultObject for K {
    fn list(
        v: &Vault,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<Self::Item>> {
        v.list_objects::<K, _>(max_results, continuation, |name, vr| {
            K::item(v, name, vr, false)
        })
    }

    fn list_versions(
        v: &Vault,
        name: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<Self::Item>> {
        v.list_object_versions::<K, _>(name, max_results, continuation, |name, vr| {
            K::item(v, name, vr, true)
        })
    }

    fn delete(v: &Vault, name: &str) -> Result<Self::DeletedBundle> {
        K::delete_impl(v, name)
    }

    fn get_deleted(v: &Vault, name: &str) -> Result<Self::DeletedBundle> {
        let (d, vr) = v.get_deleted_object::<K>(name)?;
        Ok(K::deleted_bundle(v, &d, &vr))
    }

    fn list_deleted(
        v: &Vault,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<Self::DeletedItem>> {
        v.list_deleted_objects::<K, _>(max_results, continuation, |d, vr| K::deleted_item(v, d, vr))
    }

    fn recover(v: &Vault, name: &str) -> Result<Self::Bundle> {
        K::recover_impl(v, name)
    }

    fn purge(v: &Vault, name: &str) -> Result<()> {
        K::purge_impl(v, name)
    }

    fn backup(v: &Vault, name: &str) -> Result<BackupBlob> {
        K::backup_impl(v, name)
    }

    fn restore(v: &Vault, blob: &[u8]) -> Result<Self::Bundle> {
        K::restore_impl(v, blob)
    }
}

/// Storage key of a version row.
pub(crate) fn version_key(nk: &str, version: &str) -> String {
    format!("{nk}/{version}")
}

/// A version id this vault could have made (anything else cannot name a stored row).
pub(crate) fn valid_version_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|_| VaultError::internal("cannot serialize a stored record"))
}

pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|_| VaultError::internal(format!("stored {what} record is corrupt")))
}

fn value_aad<K: ObjectKind>(nk: &str, version: &str) -> Vec<u8> {
    format!("enclava/v1/{}/{nk}/{version}", K::KIND).into_bytes()
}

fn concurrent<K: ObjectKind>(name: &str) -> VaultError {
    VaultError::Conflict(format!(
        "{} '{name}' is being changed concurrently; retry the operation",
        K::KIND
    ))
}

/// Key Vault's 409 for reusing the name of a recoverable deleted object.
pub(crate) fn deleted_conflict<K: ObjectKind>(name: &str) -> VaultError {
    VaultError::Conflict(format!(
        "{} {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {} can only be recovered or purged.",
        K::TITLE,
        K::KIND
    ))
}

impl Vault {
    /// `{base}/{collection}/{name}[/{version}]`.
    pub(crate) fn object_url<K: ObjectKind>(&self, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("{}/{}/{name}/{v}", self.base_url, K::COLLECTION),
            None => format!("{}/{}/{name}", self.base_url, K::COLLECTION),
        }
    }

    pub(crate) fn deletion_info<K: ObjectKind>(&self, d: &K::Deleted) -> DeletionInfo {
        DeletionInfo {
            recovery_id: format!(
                "{}/deleted{}/{}",
                self.base_url,
                K::COLLECTION,
                d.record().name()
            ),
            deleted_date: d.deleted(),
            scheduled_purge_date: d.scheduled_purge(),
        }
    }

    pub(crate) fn encode_version<K: ObjectKind>(
        &self,
        nk: &str,
        vr: &K::Version,
    ) -> Result<Vec<u8>> {
        let keys = self.data_keys()?;
        let ctx = format!("{}-version/{}", K::KIND, version_key(nk, vr.version()));
        crate::util::encode_authenticated(&keys.record_mac, &ctx, vr)
    }

    /// Decode a version row stored under `row_key` (`name_key/version`), checking its MAC and
    /// that it belongs there.
    pub(crate) fn decode_version<K: ObjectKind>(
        &self,
        nk: &str,
        row_key: &str,
        bytes: &[u8],
    ) -> Result<K::Version> {
        let keys = self.data_keys()?;
        let ctx = format!("{}-version/{row_key}", K::KIND);
        let what = format!("{} version", K::KIND);
        let vr: K::Version =
            crate::util::decode_authenticated(&keys.record_mac, &ctx, &what, bytes)?;
        if version_key(nk, vr.version()) != row_key {
            return Err(VaultError::internal(format!(
                "a stored {} version record is filed under the wrong key",
                K::KIND
            )));
        }
        Ok(vr)
    }

    pub(crate) fn read_record<K: ObjectKind>(
        &self,
        nk: &str,
    ) -> Result<Option<(K::Record, Vec<u8>)>> {
        match self.store.get(K::TABLES.live, nk)? {
            None => Ok(None),
            Some(b) => Ok(Some((from_json(&b, K::KIND)?, b))),
        }
    }

    pub(crate) fn read_deleted<K: ObjectKind>(
        &self,
        nk: &str,
    ) -> Result<Option<(K::Deleted, Vec<u8>)>> {
        match self.store.get(K::TABLES.deleted, nk)? {
            None => Ok(None),
            Some(b) => Ok(Some((from_json(&b, &format!("deleted {}", K::KIND))?, b))),
        }
    }

    pub(crate) fn read_version<K: ObjectKind>(
        &self,
        nk: &str,
        version: &str,
    ) -> Result<Option<(K::Version, Vec<u8>)>> {
        if !valid_version_id(version) {
            return Ok(None);
        }
        let row = version_key(nk, version);
        match self.store.get(K::TABLES.versions, &row)? {
            None => Ok(None),
            Some(b) => Ok(Some((self.decode_version::<K>(nk, &row, &b)?, b))),
        }
    }

    /// The live record and the requested (`None` / `Some("")`: latest) version with its row.
    pub(crate) fn resolve<K: ObjectKind>(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<(K::Record, K::Version, Vec<u8>)> {
        validate_name(K::KIND, name)?;
        let nk = name_key(name);
        let not_found = || K::not_found(name, version.filter(|v| !v.is_empty()));
        let (rec, _) = self.read_record::<K>(&nk)?.ok_or_else(not_found)?;
        let v = version
            .filter(|v| !v.is_empty())
            .unwrap_or(rec.latest())
            .to_string();
        let (vr, bytes) = self.read_version::<K>(&nk, &v)?.ok_or_else(not_found)?;
        Ok((rec, vr, bytes))
    }

    /// The latest version of a deleted (or just recovered) object.
    pub(crate) fn deleted_latest<K: ObjectKind>(
        &self,
        nk: &str,
        d: &K::Deleted,
        state: &str,
    ) -> Result<K::Version> {
        let (vr, _) = self
            .read_version::<K>(nk, d.record().latest())?
            .ok_or_else(|| {
                VaultError::internal(format!("a {state} {}'s latest version is missing", K::KIND))
            })?;
        Ok(vr)
    }

    /// Seal a version's value: hex of the AES-256-GCM box.
    pub(crate) fn seal_object_value<K: ObjectKind>(
        &self,
        nk: &str,
        version: &str,
        value: &[u8],
    ) -> Result<String> {
        let keys = self.data_keys()?;
        Ok(hex::encode(aead_seal(
            &keys.object,
            &value_aad::<K>(nk, version),
            value,
        )?))
    }

    /// Unseal a version's value.
    pub(crate) fn open_object_value<K: ObjectKind>(
        &self,
        nk: &str,
        r: &K::Version,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let keys = self.data_keys()?;
        let sealed = hex::decode(r.sealed())
            .map_err(|_| VaultError::internal(format!("stored {} is corrupt", K::VALUE)))?;
        aead_open(&keys.object, &value_aad::<K>(nk, r.version()), &sealed)?.ok_or_else(|| {
            VaultError::internal(format!(
                "stored {} failed its integrity check (wrong root key or tampered row)",
                K::VALUE
            ))
        })
    }

    /// Refuse with 409 while a deleted object of the name is recoverable.
    pub(crate) fn check_not_deleted<K: ObjectKind>(&self, name: &str) -> Result<()> {
        if self
            .store
            .get(K::TABLES.deleted, &name_key(name))?
            .is_some()
        {
            return Err(deleted_conflict::<K>(name));
        }
        Ok(())
    }

    /// Commit `vr` (already encoded as `vbytes`) as the new latest version of `name`, creating
    /// the object when it does not exist; retried on a concurrent change. Returns the object's
    /// display name (as first created).
    pub(crate) fn commit_new_version<K: ObjectKind>(
        &self,
        name: &str,
        vr: &K::Version,
        vbytes: Vec<u8>,
        now: i64,
    ) -> Result<String> {
        K::check_mutable(self, name)?;
        let nk = name_key(name);
        let version = vr.version();
        for _ in 0..MAX_RETRIES {
            self.check_not_deleted::<K>(name)?;
            let (ops, display) =
                self.new_version_ops::<K>(name, version, vbytes.clone(), now, |_| {})?;
            match self.store.transact(ops) {
                Ok(()) => {
                    K::changed(self, &nk);
                    return Ok(display);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(concurrent::<K>(name))
    }

    /// Read-modify-write one version (`None` / `Some("")`: latest): `edit` changes the record
    /// (or refuses), `updated` is set to now, and the row is replaced unless it changed
    /// meanwhile (then the whole step is retried).
    pub(crate) fn update_version<K: ObjectKind>(
        &self,
        name: &str,
        version: Option<&str>,
        edit: impl Fn(&K::Record, &mut K::Version) -> Result<()>,
    ) -> Result<(K::Record, K::Version)> {
        self.update_version_with::<K>(name, version, edit, |_| Ok(Vec::new()))
    }

    /// [`Vault::update_version`] with `extra` ops (from the edited version) in the same
    /// transaction (a certificate's update also changes its key and secret version).
    pub(crate) fn update_version_with<K: ObjectKind>(
        &self,
        name: &str,
        version: Option<&str>,
        edit: impl Fn(&K::Record, &mut K::Version) -> Result<()>,
        extra: impl Fn(&K::Version) -> Result<Vec<Op>>,
    ) -> Result<(K::Record, K::Version)> {
        K::check_mutable(self, name)?;
        for _ in 0..MAX_RETRIES {
            let (rec, mut vr, old) = self.resolve::<K>(name, version)?;
            let nk = name_key(name);
            edit(&rec, &mut vr)?;
            *vr.state().updated = self.now().timestamp();
            let row = version_key(&nk, vr.version());
            let mut ops = vec![
                Op::Expect {
                    table: K::TABLES.versions,
                    key: row.clone(),
                    value: Some(old),
                },
                Op::Put {
                    table: K::TABLES.versions,
                    key: row,
                    value: self.encode_version::<K>(&nk, &vr)?,
                },
            ];
            ops.extend(extra(&vr)?);
            match self.store.transact(ops) {
                Ok(()) => {
                    K::changed(self, &nk);
                    return Ok((rec, vr));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(concurrent::<K>(name))
    }

    /// One page of the rows of `table` under `prefix`: `item` maps a row (storage key, bytes)
    /// to an entry or skips it. The continuation token carries the last storage key without
    /// the prefix (for versions: the version id).
    fn page<T>(
        &self,
        table: Table,
        prefix: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
        mut item: impl FnMut(&str, &[u8]) -> Result<Option<T>>,
    ) -> Result<Page<T>> {
        let limit = page_size(max_results)?;
        let after = decode_token(continuation)?.map(|v| format!("{prefix}{v}"));
        let rows = self
            .store
            .list(table, prefix, after.as_deref(), limit + 1)?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            if let Some(i) = item(&k, &v)? {
                items.push(i);
            }
            last = Some(k);
        }
        Ok(Page {
            items,
            continuation: match last {
                Some(k) if more => Some(encode_token(k.strip_prefix(prefix).unwrap_or(&k))),
                _ => None,
            },
        })
    }

    /// List objects: `item(display name, latest version)` per object.
    pub(crate) fn list_objects<K: ObjectKind, T>(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
        item: impl Fn(&str, &K::Version) -> T,
    ) -> Result<Page<T>> {
        self.data_keys()?;
        self.page(K::TABLES.live, "", max_results, continuation, |k, v| {
            let rec: K::Record = from_json(v, K::KIND)?;
            Ok(self
                .read_version::<K>(k, rec.latest())?
                .map(|(vr, _)| item(rec.name(), &vr)))
        })
    }

    /// List an object's versions: `item(display name, version)` per version. An unknown name
    /// is an empty list (200), as in Key Vault.
    pub(crate) fn list_object_versions<K: ObjectKind, T>(
        &self,
        name: &str,
        max_results: Option<u32>,
        continuation: Option<&str>,
        item: impl Fn(&str, &K::Version) -> T,
    ) -> Result<Page<T>> {
        self.data_keys()?;
        validate_name(K::KIND, name)?;
        page_size(max_results)?;
        let nk = name_key(name);
        let Some((rec, _)) = self.read_record::<K>(&nk)? else {
            decode_token(continuation)?; // a malformed token is still the caller's 400
            return Ok(Page {
                items: Vec::new(),
                continuation: None,
            });
        };
        let prefix = format!("{nk}/");
        self.page(
            K::TABLES.versions,
            &prefix,
            max_results,
            continuation,
            |k, v| {
                let vr = self.decode_version::<K>(&nk, k, v)?;
                Ok(Some(item(rec.name(), &vr)))
            },
        )
    }

    /// List deleted objects: `item(deleted record, latest version)` per object.
    pub(crate) fn list_deleted_objects<K: ObjectKind, T>(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
        item: impl Fn(&K::Deleted, &K::Version) -> T,
    ) -> Result<Page<T>> {
        self.data_keys()?;
        self.page(K::TABLES.deleted, "", max_results, continuation, |k, v| {
            let d: K::Deleted = from_json(v, &format!("deleted {}", K::KIND))?;
            Ok(self
                .read_version::<K>(k, d.record().latest())?
                .map(|(vr, _)| item(&d, &vr)))
        })
    }

    /// Soft-delete an object (all versions); returns the deleted record and its latest version.
    pub(crate) fn delete_object<K: ObjectKind>(
        &self,
        name: &str,
    ) -> Result<(K::Deleted, K::Version)> {
        self.data_keys()?;
        validate_name(K::KIND, name)?;
        let nk = name_key(name);
        let (rec, old) = self
            .read_record::<K>(&nk)?
            .ok_or_else(|| K::not_found(name, None))?;
        K::check_mutable(self, name)?;
        let now = self.now();
        let scheduled = now + chrono::Duration::days(self.options.recoverable_days as i64);
        let d = K::Deleted::new(rec, now.timestamp(), scheduled.timestamp());
        self.soft_delete_row(K::TABLES, &nk, old, to_json(&d)?)?;
        K::changed(self, &nk);
        let vr = self.deleted_latest::<K>(&nk, &d, "deleted")?;
        Ok((d, vr))
    }

    /// The deleted record of `name` (its storage key, parsed record and stored bytes), or the
    /// kind's deleted-not-found error.
    fn deleted_row<K: ObjectKind>(&self, name: &str) -> Result<(String, K::Deleted, Vec<u8>)> {
        self.data_keys()?;
        validate_name(K::KIND, name)?;
        let nk = name_key(name);
        let (d, old) = self
            .read_deleted::<K>(&nk)?
            .ok_or_else(|| K::deleted_not_found(name))?;
        Ok((nk, d, old))
    }

    /// A deleted object and its latest version.
    pub(crate) fn get_deleted_object<K: ObjectKind>(
        &self,
        name: &str,
    ) -> Result<(K::Deleted, K::Version)> {
        let (nk, d, _) = self.deleted_row::<K>(name)?;
        let vr = self.deleted_latest::<K>(&nk, &d, "deleted")?;
        Ok((d, vr))
    }

    /// Recover a deleted object; returns its record and latest version.
    pub(crate) fn recover_object<K: ObjectKind>(
        &self,
        name: &str,
    ) -> Result<(K::Record, K::Version)> {
        let (nk, d, old) = self.deleted_row::<K>(name)?;
        K::check_mutable(self, name)?;
        self.recover_row(K::TABLES, &nk, old, to_json(d.record())?)?;
        K::changed(self, &nk);
        let vr = self.deleted_latest::<K>(&nk, &d, "recovered")?;
        Ok((d.into_record(), vr))
    }

    fn purge_object_rows<K: ObjectKind>(&self, nk: &str, old: Vec<u8>) -> Result<()> {
        self.purge_rows(K::TABLES, nk, old)?;
        K::changed(self, nk);
        Ok(())
    }

    /// Permanently delete a deleted object. `Forbidden` under purge protection.
    pub(crate) fn purge_object<K: ObjectKind>(&self, name: &str) -> Result<()> {
        let (nk, _, old) = self.deleted_row::<K>(name)?;
        K::check_mutable(self, name)?;
        self.check_purge_allowed(K::TABLES, name)?;
        self.purge_object_rows::<K>(&nk, old)
    }

    /// Purge every deleted object of the kind whose scheduled purge date is `<= now`.
    pub(crate) fn purge_expired_objects<K: ObjectKind>(&self, now: i64) -> Result<usize> {
        let what = format!("deleted {}", K::KIND);
        self.purge_expired_rows(
            K::TABLES,
            now,
            |v| Ok(from_json::<K::Deleted>(v, &what)?.scheduled_purge()),
            |k, v| self.purge_object_rows::<K>(k, v),
        )
    }

    /// All storage keys of rows under `prefix` in `table`.
    pub(crate) fn all_row_keys(&self, table: Table, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self.store.list(table, prefix, after.as_deref(), 500)?;
            let n = rows.len();
            for (k, _) in rows {
                after = Some(k.clone());
                out.push(k);
            }
            if n < 500 {
                return Ok(out);
            }
        }
    }

    /// Back up every version of an object into a blob only a vault with this root can restore.
    pub(crate) fn backup_object<K: ObjectKind>(&self, name: &str) -> Result<BackupBlob> {
        self.data_keys()?;
        validate_name(K::KIND, name)?;
        let payload = self
            .backup_payload_of::<K>(&name_key(name))?
            .ok_or_else(|| K::not_found(name, None))?;
        let plain = Zeroizing::new(to_json(&payload)?);
        let blob = crate::backup::seal(self, K::BACKUP, &plain)?;
        Ok(BackupBlob {
            value: crate::b64::Base64Url(blob),
        })
    }

    /// The backup payload (record and every version with its plain value) of the object `nk`,
    /// `None` when it has no live record.
    pub(crate) fn backup_payload_of<K: ObjectKind>(&self, nk: &str) -> Result<Option<K::Backup>> {
        let Some((rec, _)) = self.read_record::<K>(nk)? else {
            return Ok(None);
        };
        let mut versions = Vec::new();
        for k in self.all_row_keys(K::TABLES.versions, &format!("{nk}/"))? {
            let Some(bytes) = self.store.get(K::TABLES.versions, &k)? else {
                continue;
            };
            let mut vr = self.decode_version::<K>(nk, &k, &bytes)?;
            let value = self.open_object_value::<K>(nk, &vr)?;
            vr.sealed_mut().clear();
            versions.push(K::backup_version(vr, value)?);
        }
        Ok(Some(K::backup_payload(rec, versions)))
    }

    /// Restore a backup made by [`Vault::backup_object`]. 409 when the name exists, live or
    /// deleted. Returns the display name and the latest version.
    pub(crate) fn restore_object<K: ObjectKind>(
        &self,
        blob: &[u8],
    ) -> Result<(String, K::Version)> {
        self.data_keys()?;
        let kind = K::KIND;
        let plain = crate::backup::open(self, K::BACKUP, blob)?;
        let payload: K::Backup = serde_json::from_slice(&plain).map_err(|_| {
            VaultError::bad(format!(
                "invalid {kind} backup: the blob content is malformed"
            ))
        })?;
        let (_, versions) = K::backup_parts(&payload);
        if versions
            .iter()
            .any(|v| K::is_managed(K::restore_version(v).0))
        {
            return Err(VaultError::Forbidden {
                message: format!(
                    "this {kind} backup holds a {kind} managed by a certificate: restore the certificate's backup instead"
                ),
                inner: None,
            });
        }
        let (name, latest, ops) = self.restore_ops::<K>(&payload)?;
        self.store.transact(ops).map_err(|e| match e {
            StoreError::Conflict { .. } => {
                VaultError::Conflict(format!("{kind} '{name}' already exists"))
            }
            other => other.into(),
        })?;
        K::changed(self, &name_key(&name));
        Ok((name, latest))
    }

    /// The transaction that restores `payload` (expecting the name to be free, live and
    /// deleted), its display name and latest version.
    pub(crate) fn restore_ops<K: ObjectKind>(
        &self,
        payload: &K::Backup,
    ) -> Result<(String, K::Version, Vec<Op>)> {
        let kind = K::KIND;
        let (rec, versions) = K::backup_parts(payload);
        let name = rec.name().to_string();
        validate_name(kind, &name)?;
        let nk = name_key(&name);
        if self.store.get(K::TABLES.live, &nk)?.is_some() {
            return Err(VaultError::Conflict(format!(
                "{kind} '{name}' already exists; delete and purge it before restoring a backup of it"
            )));
        }
        self.check_not_deleted::<K>(&name)?;
        let mut ops = vec![
            Op::Expect {
                table: K::TABLES.live,
                key: nk.clone(),
                value: None,
            },
            Op::Expect {
                table: K::TABLES.deleted,
                key: nk.clone(),
                value: None,
            },
        ];
        let mut latest = None;
        for v in versions {
            let (vr, value) = K::restore_version(v);
            if !valid_version_id(vr.version()) {
                return Err(VaultError::bad(format!(
                    "invalid {kind} backup: a version id is malformed"
                )));
            }
            K::check_restored(vr, value)?;
            let mut vr = vr.clone();
            *vr.sealed_mut() = self.seal_object_value::<K>(&nk, vr.version(), value)?;
            ops.push(Op::Put {
                table: K::TABLES.versions,
                key: version_key(&nk, vr.version()),
                value: self.encode_version::<K>(&nk, &vr)?,
            });
            if vr.version() == rec.latest() {
                latest = Some(vr);
            }
        }
        let latest = latest.ok_or_else(|| {
            VaultError::bad(format!(
                "invalid {kind} backup: the latest version is missing"
            ))
        })?;
        ops.push(Op::Put {
            table: K::TABLES.live,
            key: nk.clone(),
            value: to_json(rec)?,
        });
        Ok((name, latest, ops))
    }

    /// The ops that add the encoded version `vbytes` (of version id `version`) as the latest of
    /// `name` (creating the object when it has no live record), expecting the live record as
    /// read now and no deleted record; `edit` may change the live record further. Returns the
    /// ops and the display name. For writes that span several kinds in one transaction.
    pub(crate) fn new_version_ops<K: ObjectKind>(
        &self,
        name: &str,
        version: &str,
        vbytes: Vec<u8>,
        now: i64,
        edit: impl FnOnce(&mut K::Record),
    ) -> Result<(Vec<Op>, String)> {
        let nk = name_key(name);
        let (mut rec, old) = match self.read_record::<K>(&nk)? {
            Some((mut rec, old)) => {
                rec.set_latest(version);
                (rec, Some(old))
            }
            None => (K::Record::new(name, version, now), None),
        };
        edit(&mut rec);
        let ops = vec![
            Op::Expect {
                table: K::TABLES.deleted,
                key: nk.clone(),
                value: None,
            },
            Op::Expect {
                table: K::TABLES.live,
                key: nk.clone(),
                value: old,
            },
            Op::Put {
                table: K::TABLES.versions,
                key: version_key(&nk, version),
                value: vbytes,
            },
            Op::Put {
                table: K::TABLES.live,
                key: nk,
                value: to_json(&rec)?,
            },
        ];
        Ok((ops, rec.name().to_string()))
    }

    /// The ops that set `enabled` of version `version` of `nk` (when it exists), expecting the
    /// row unchanged.
    pub(crate) fn enabled_ops<K: ObjectKind>(
        &self,
        nk: &str,
        version: &str,
        enabled: bool,
    ) -> Result<Vec<Op>> {
        let Some((mut vr, old)) = self.read_version::<K>(nk, version)? else {
            return Ok(Vec::new());
        };
        *vr.state().enabled = enabled;
        *vr.state().updated = self.now().timestamp();
        let row = version_key(nk, version);
        Ok(vec![
            Op::Expect {
                table: K::TABLES.versions,
                key: row.clone(),
                value: Some(old),
            },
            Op::Put {
                table: K::TABLES.versions,
                key: row,
                value: self.encode_version::<K>(nk, &vr)?,
            },
        ])
    }

    /// The ops that soft-delete the live object `nk` (when it exists) at `now`.
    pub(crate) fn soft_delete_ops<K: ObjectKind>(&self, nk: &str, now: i64) -> Result<Vec<Op>> {
        let Some((rec, old)) = self.read_record::<K>(nk)? else {
            return Ok(Vec::new());
        };
        let scheduled = now + 86_400 * self.options.recoverable_days as i64;
        let d = K::Deleted::new(rec, now, scheduled);
        Ok(crate::lifecycle::move_row(
            K::TABLES.live,
            K::TABLES.deleted,
            nk,
            old,
            to_json(&d)?,
        ))
    }

    /// The ops that recover the deleted object `nk` (when it exists).
    pub(crate) fn recover_ops<K: ObjectKind>(&self, nk: &str) -> Result<Vec<Op>> {
        let Some((d, old)) = self.read_deleted::<K>(nk)? else {
            return Ok(Vec::new());
        };
        Ok(crate::lifecycle::move_row(
            K::TABLES.deleted,
            K::TABLES.live,
            nk,
            old,
            to_json(d.record())?,
        ))
    }

    /// The ops that purge the deleted object `nk` (its deleted record and every version).
    pub(crate) fn purge_ops<K: ObjectKind>(&self, nk: &str) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        if let Some((_, old)) = self.read_deleted::<K>(nk)? {
            ops.push(Op::Expect {
                table: K::TABLES.deleted,
                key: nk.to_string(),
                value: Some(old),
            });
            ops.push(Op::Delete {
                table: K::TABLES.deleted,
                key: nk.to_string(),
            });
        }
        for k in self.all_row_keys(K::TABLES.versions, &format!("{nk}/"))? {
            ops.push(Op::Delete {
                table: K::TABLES.versions,
                key: k,
            });
        }
        Ok(ops)
    }
}

#[cfg(test)]
mod tests {
    //! The stored formats are pinned here with literal strings (field order, MAC context, AAD,
    //! deleted-record shape, backup header), so the generic model cannot drift from what existing
    //! data directories and backups hold.

    use std::sync::Arc;

    use enclava_store::{SqliteStore, Store, Table};

    use crate::model::{KeyCreateParameters, SecretSetParameters, SecretString};
    use crate::object::VersionRecord;
    use crate::util::{aead_open, decode_authenticated};
    use crate::{Keys, Secrets, Vault, VaultObject};

    fn vault() -> Vault {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let v = Vault::new(store, "https://v".into(), crate::system_clock());
        let out = v.init(1, 1).unwrap();
        v.unseal(&out.shares[0]).unwrap();
        v
    }

    /// The top-level field names of a JSON object, in stored order.
    fn fields(bytes: &[u8]) -> Vec<String> {
        struct Names(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Names {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Names;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Names, A::Error> {
                        let mut out = Vec::new();
                        while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                            out.push(k);
                        }
                        Ok(Names(out))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_slice::<Names>(bytes).unwrap().0
    }

    #[test]
    fn stored_rows_keep_their_format() {
        let v = vault();
        let keys = v.data_keys().unwrap();
        let b = v
            .set_secret(
                "My-Secret",
                &SecretSetParameters {
                    value: SecretString::new("s3cr3t".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let ver = b.id.rsplit('/').next().unwrap().to_string();
        // Live record under the lower-cased name, with the name as first given.
        let live = v.store.get(Table::Secrets, "my-secret").unwrap().unwrap();
        let rec: serde_json::Value = serde_json::from_slice(&live).unwrap();
        assert_eq!(rec["name"], "My-Secret");
        assert_eq!(rec["latest"], ver.as_str());
        // Version row: field order (the MAC covers the serialization), MAC context, AAD.
        let row = format!("my-secret/{ver}");
        let bytes = v.store.get(Table::SecretVersions, &row).unwrap().unwrap();
        assert_eq!(
            fields(&bytes),
            [
                "version",
                "content_type",
                "enabled",
                "nbf",
                "exp",
                "created",
                "updated",
                "tags",
                "sealed",
                "mac"
            ]
        );
        let vr: crate::secrets::SecretVersionRecord = decode_authenticated(
            &keys.record_mac,
            &format!("secret-version/{row}"),
            "secret version",
            &bytes,
        )
        .unwrap();
        let sealed = hex::decode(vr.sealed()).unwrap();
        let aad = format!("enclava/v1/secret/my-secret/{ver}");
        let plain = aead_open(&keys.object, aad.as_bytes(), &sealed)
            .unwrap()
            .unwrap();
        assert_eq!(plain.as_slice(), b"s3cr3t");

        let kb = v
            .create_key(
                "k1",
                &KeyCreateParameters {
                    kty: "oct".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let kver = kb.key.kid.unwrap().rsplit('/').next().unwrap().to_string();
        let krow = format!("k1/{kver}");
        let kbytes = v.store.get(Table::KeyVersions, &krow).unwrap().unwrap();
        let kvr: crate::keys::KeyVersionRecord = decode_authenticated(
            &keys.record_mac,
            &format!("key-version/{krow}"),
            "key version",
            &kbytes,
        )
        .unwrap();
        let ksealed = hex::decode(kvr.sealed()).unwrap();
        let kaad = format!("enclava/v1/key/k1/{kver}");
        assert!(
            aead_open(&keys.object, kaad.as_bytes(), &ksealed)
                .unwrap()
                .is_some()
        );

        // Deleted records nest the live record under the kind's name.
        Keys::delete(&v, "k1").unwrap();
        Secrets::delete(&v, "my-secret").unwrap();
        let dk = v.store.get(Table::DeletedKeys, "k1").unwrap().unwrap();
        assert_eq!(fields(&dk), ["key", "deleted", "scheduled_purge"]);
        let ds = v
            .store
            .get(Table::DeletedSecrets, "my-secret")
            .unwrap()
            .unwrap();
        assert_eq!(fields(&ds), ["secret", "deleted", "scheduled_purge"]);

        // Backups: the EVBK header with the kind byte, and the payload under the kind's name.
        Secrets::recover(&v, "my-secret").unwrap();
        let blob = Secrets::backup(&v, "my-secret").unwrap().value.0;
        assert_eq!(&blob[..6], b"EVBK\x01\x02");
        let plain = crate::backup::open(&v, crate::backup::BackupKind::Secret, &blob).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(payload["secret"]["name"], "My-Secret");
        assert_eq!(payload["versions"][0]["value"], "s3cr3t");
        assert_eq!(payload["versions"][0]["record"]["sealed"], "");
        Keys::recover(&v, "k1").unwrap();
        let kblob = Keys::backup(&v, "k1").unwrap().value.0;
        assert_eq!(&kblob[..6], b"EVBK\x01\x01");
    }
    #[test]
    fn certificate_rows_keep_their_format() {
        use crate::certmodel::{CertificateCreateParameters, CertificatePolicy, IssuerParameters};
        use crate::{Certificates, VaultObject};
        let v = vault();
        let keys = v.data_keys().unwrap();
        Certificates::create(
            &v,
            "My-Cert",
            &CertificateCreateParameters {
                policy: Some(CertificatePolicy {
                    issuer: Some(IssuerParameters {
                        name: Some("Self".into()),
                        ..Default::default()
                    }),
                    x509_props: Some(crate::certmodel::X509CertificateProperties {
                        subject: Some("CN=a".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let live = v
            .store
            .get(Table::Certificates, "my-cert")
            .unwrap()
            .unwrap();
        assert_eq!(
            fields(&live),
            ["name", "latest", "created", "policy", "actions_done"]
        );
        let rec: serde_json::Value = serde_json::from_slice(&live).unwrap();
        let ver = rec["latest"].as_str().unwrap().to_string();
        let row = format!("my-cert/{ver}");
        let bytes = v
            .store
            .get(Table::CertificateVersions, &row)
            .unwrap()
            .unwrap();
        assert_eq!(
            fields(&bytes),
            [
                "version",
                "enabled",
                "nbf",
                "exp",
                "created",
                "updated",
                "tags",
                "content_type",
                "x5t",
                "cer",
                "sealed",
                "mac"
            ]
        );
        let vr: crate::certificates::CertificateVersionRecord = decode_authenticated(
            &keys.record_mac,
            &format!("certificate-version/{row}"),
            "certificate version",
            &bytes,
        )
        .unwrap();
        let sealed = hex::decode(vr.sealed()).unwrap();
        let aad = format!("enclava/v1/certificate/my-cert/{ver}");
        let chain = aead_open(&keys.object, aad.as_bytes(), &sealed)
            .unwrap()
            .unwrap();
        let chain: Vec<String> = serde_json::from_slice(&chain).unwrap();
        assert_eq!(chain.len(), 1);
        // The owned key and secret rows are marked managed; unmanaged rows do not carry the
        // field at all (their MACs from before certificates keep verifying).
        let k = v.store.get(Table::KeyVersions, &row).unwrap().unwrap();
        assert!(fields(&k).contains(&"managed".to_string()));
        let s = v.store.get(Table::SecretVersions, &row).unwrap().unwrap();
        assert!(fields(&s).contains(&"managed".to_string()));

        Certificates::delete(&v, "My-Cert").unwrap();
        let d = v
            .store
            .get(Table::DeletedCertificates, "my-cert")
            .unwrap()
            .unwrap();
        assert_eq!(fields(&d), ["certificate", "deleted", "scheduled_purge"]);
        Certificates::recover(&v, "My-Cert").unwrap();
        let blob = Certificates::backup(&v, "My-Cert").unwrap().value.0;
        assert_eq!(&blob[..6], b"EVBK\x01\x03");
        let plain = crate::backup::open(&v, crate::backup::BackupKind::Certificate, &blob).unwrap();
        assert_eq!(fields(&plain), ["certificate", "key", "secret"]);
        let payload: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(payload["certificate"]["certificate"]["name"], "My-Cert");
        assert_eq!(payload["key"]["key"]["name"], "My-Cert");
        assert_eq!(payload["secret"]["secret"]["name"], "My-Cert");
        assert_eq!(
            payload["certificate"]["versions"][0]["record"]["sealed"],
            ""
        );
    }
}
