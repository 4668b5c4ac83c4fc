//! Certificates: the third kind of the versioned-object model (see [`crate::object`]), as in
//! Key Vault. Each certificate version owns a key version and a secret version of the same name
//! and version id: the key does the crypto (`/keys` routes), the secret returns the certificate
//! with its private key (PFX or PEM) when the policy makes it exportable. The managed key and
//! secret are read-only through the key and secret functions; delete, recover, purge, backup and
//! restore of the certificate carry them along.
//!
//! X.509, PKCS#10, PKCS#12 and PEM work is `enclava-certs`'s; this module is storage and policy.

use chrono::{DateTime, Months, TimeZone, Utc};
use enclava_certs::{CertError, KeySpec, ParsedCertificate};
use enclava_store::{Op, StoreError, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Vault;
use crate::backup::BackupKind;
use crate::certmodel::*;
use crate::error::{Result, VaultError};
use crate::keys::{Keys, validate_tags};
use crate::lifecycle;
use crate::model::{BackupBlob, Page, Tags};
use crate::object::{
    MAX_RETRIES, ManagedVersion, ObjectKind, ObjectRecord, ObjectWire, VersionRecord,
    deleted_record, from_json, to_json, version_record,
};
use crate::secrets::Secrets;
use crate::util::{Authenticated, aead_open, aead_seal, name_key, validate_name};

/// The vault's issuing CA as the server passes it in for `Enclava`-issued certificates: a sealed
/// service key the vault never stores (its private key is never on any route).
pub struct IssuingCa {
    /// The CA certificate (DER); it ends every chain the CA issues.
    pub cert_der: Vec<u8>,
    /// The CA's private key (PKCS#8 DER).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa").finish_non_exhaustive()
    }
}

/// A lifetime action of a certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateAction {
    /// A new version was issued.
    AutoRenew,
    /// The contacts are to be told (recorded for the audit log; Enclava sends no e-mail).
    EmailContacts,
}

/// One lifetime action executed by [`Certificates::run_lifetime_actions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateLifetimeEvent {
    pub name: String,
    pub action: CertificateAction,
    /// The version whose trigger fired.
    pub version: String,
    /// The new version (AutoRenew).
    pub new_version: Option<String>,
    /// Why an AutoRenew could not issue (e.g. an `Enclava` certificate without a CA at hand); the
    /// action is then retried at the next run.
    pub error: Option<String>,
}

/// Certificates as an instance of the versioned-object model: `list`, `list_versions`,
/// `delete`, `get_deleted`, `list_deleted`, `recover`, `purge`, `backup`, `restore` come from
/// [`crate::VaultObject`]; the certificate-only operations are below.
pub struct Certificates;

/// Names the certificate routes use for other things (`/certificates/issuers`,
/// `/certificates/contacts`): refused as certificate names.
pub const RESERVED_NAMES: [&str; 2] = ["issuers", "contacts"];

impl Certificates {
    /// Create a certificate (or a new version) from its policy. `Self` and `Enclava` complete at
    /// once (`Enclava` needs `ca`, else 400), yet the reply says `inProgress` as Key Vault's
    /// does (the SDK pollers then GET the operation, which is `completed`); `Unknown` leaves an `inProgress` operation with a
    /// CSR until [`Certificates::merge`]; another issuer name must be an issuer object and ends
    /// `failed` (Enclava has no external CA connectors).
    pub fn create(
        v: &Vault,
        name: &str,
        params: &CertificateCreateParameters,
        ca: Option<&IssuingCa>,
    ) -> Result<CertificateOperation> {
        v.create_certificate(name, params, ca)
    }

    /// The pending (or last) create operation of `name`.
    pub fn get_operation(v: &Vault, name: &str) -> Result<CertificateOperation> {
        v.certificate_operation(name)
    }

    /// Request cancellation of an in-progress operation (`cancellation_requested: true`).
    pub fn update_operation(
        v: &Vault,
        name: &str,
        params: &CertificateOperationUpdateParameter,
    ) -> Result<CertificateOperation> {
        v.update_certificate_operation(name, params)
    }

    /// Delete the operation (its pending key is discarded); returns it as it was.
    pub fn delete_operation(v: &Vault, name: &str) -> Result<CertificateOperation> {
        v.delete_certificate_operation(name)
    }

    /// Complete a CSR-flow operation with the signed chain (leaf first); 400 when the leaf's
    /// public key is not the pending key.
    pub fn merge(
        v: &Vault,
        name: &str,
        params: &CertificateMergeParameters,
    ) -> Result<CertificateBundle> {
        v.merge_certificate(name, params)
    }

    /// Import a PFX (base64, optional password) or PEM bundle as a new version.
    pub fn import(
        v: &Vault,
        name: &str,
        params: &CertificateImportParameters,
    ) -> Result<CertificateBundle> {
        v.import_certificate(name, params)
    }

    /// A version (`None` / `Some("")`: latest, which carries the policy).
    pub fn get(v: &Vault, name: &str, version: Option<&str>) -> Result<CertificateBundle> {
        v.get_certificate(name, version)
    }

    /// Update a version's attributes and tags (and the certificate's policy, when given).
    pub fn update(
        v: &Vault,
        name: &str,
        version: Option<&str>,
        params: &CertificateUpdateParameters,
    ) -> Result<CertificateBundle> {
        v.update_certificate(name, version, params)
    }

    pub fn get_policy(v: &Vault, name: &str) -> Result<CertificatePolicy> {
        v.get_certificate_policy(name)
    }

    /// Update the policy: only the given sections change.
    pub fn update_policy(
        v: &Vault,
        name: &str,
        policy: &CertificatePolicy,
    ) -> Result<CertificatePolicy> {
        v.update_certificate_policy(name, policy)
    }

    pub fn set_issuer(
        v: &Vault,
        name: &str,
        params: &CertificateIssuerSetParameters,
    ) -> Result<IssuerBundle> {
        v.set_certificate_issuer(name, params)
    }

    pub fn get_issuer(v: &Vault, name: &str) -> Result<IssuerBundle> {
        v.get_certificate_issuer(name)
    }

    pub fn update_issuer(
        v: &Vault,
        name: &str,
        params: &CertificateIssuerUpdateParameters,
    ) -> Result<IssuerBundle> {
        v.update_certificate_issuer(name, params)
    }

    pub fn delete_issuer(v: &Vault, name: &str) -> Result<IssuerBundle> {
        v.delete_certificate_issuer(name)
    }

    pub fn list_issuers(
        v: &Vault,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<CertificateIssuerItem>> {
        v.list_certificate_issuers(max_results, continuation)
    }

    pub fn set_contacts(v: &Vault, contacts: &Contacts) -> Result<Contacts> {
        v.set_certificate_contacts(contacts)
    }

    /// 404 when no contacts are set.
    pub fn get_contacts(v: &Vault) -> Result<Contacts> {
        v.get_certificate_contacts()
    }

    /// Returns the deleted contacts; 404 when none are set.
    pub fn delete_contacts(v: &Vault) -> Result<Contacts> {
        v.delete_certificate_contacts()
    }

    /// Execute due lifetime actions: each (certificate, version, action) exactly once, also with
    /// several replicas on one store (a conditional write on the certificate record decides).
    pub fn run_lifetime_actions(
        v: &Vault,
        now: DateTime<Utc>,
        ca: Option<&IssuingCa>,
    ) -> Result<Vec<CertificateLifetimeEvent>> {
        v.run_certificate_lifetime_actions(now, ca)
    }
}

// ---------------------------------------------------------------------------------------------
// Stored records
// ---------------------------------------------------------------------------------------------

/// `Table::Certificates` row (`name_key`): the live certificate and its policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CertificateRecord {
    name: String,
    latest: String,
    created: i64,
    /// The normalized policy (without `id`).
    #[serde(default)]
    policy: Option<CertificatePolicy>,
    /// Lifetime actions already executed, as `{version}/{action index}`: what makes each one
    /// run exactly once (the write that adds an entry expects the record unchanged).
    #[serde(default)]
    actions_done: Vec<String>,
}

impl ObjectRecord for CertificateRecord {
    fn new(name: &str, latest: &str, created: i64) -> Self {
        CertificateRecord {
            name: name.to_string(),
            latest: latest.to_string(),
            created,
            policy: None,
            actions_done: Vec::new(),
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

/// `Table::CertificateVersions` row (`name_key/version`). The sealed value is the chain (JSON
/// array of base64 DER, leaf first); the leaf is also kept in the clear (`cer`, public).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CertificateVersionRecord {
    version: String,
    enabled: bool,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    created: i64,
    updated: i64,
    #[serde(default)]
    tags: Option<Tags>,
    /// The secret's content type for this version.
    content_type: String,
    x5t: String,
    cer: Base64Std,
    /// hex(nonce || AES-256-GCM(object key, chain JSON, AAD) || tag)
    sealed: String,
    #[serde(default)]
    mac: String,
}

/// `Table::DeletedCertificates` row (`name_key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeletedCertificateRecord {
    certificate: CertificateRecord,
    deleted: i64,
    scheduled_purge: i64,
}

version_record!(CertificateVersionRecord);
deleted_record!(DeletedCertificateRecord, CertificateRecord, certificate);

#[derive(Serialize, Deserialize)]
pub(crate) struct BackupCertificateVersion {
    record: CertificateVersionRecord,
    /// The chain JSON.
    chain: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CertificateBackupPayload {
    certificate: CertificateRecord,
    versions: Vec<BackupCertificateVersion>,
}

/// The certificate backup blob's payload: the certificate with its key and secret.
#[derive(Serialize, Deserialize)]
struct CertificateBackup {
    certificate: CertificateBackupPayload,
    key: <Keys as ObjectKind>::Backup,
    secret: <Secrets as ObjectKind>::Backup,
}

/// `Table::CertificateOperations` row (`name_key`): the last create operation. The pending key
/// of a CSR-flow operation is sealed under the object key (AAD names the operation).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OperationRecord {
    name: String,
    request_id: String,
    issuer: String,
    status: String,
    #[serde(default)]
    status_details: Option<String>,
    #[serde(default)]
    error: Option<OperationError>,
    cancellation_requested: bool,
    #[serde(default)]
    csr: Option<Base64Std>,
    #[serde(default)]
    target: Option<String>,
    policy: CertificatePolicy,
    #[serde(default)]
    attributes: Option<CertificateAttributes>,
    #[serde(default)]
    tags: Option<Tags>,
    /// hex sealed PKCS#8 (empty when the operation holds no key).
    #[serde(default)]
    sealed_key: String,
    #[serde(default)]
    mac: String,
}

impl Authenticated for OperationRecord {
    fn mac_field(&mut self) -> &mut String {
        &mut self.mac
    }
}

/// `Table::CertificateIssuers` row `issuer/{name_key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IssuerRecord {
    name: String,
    provider: String,
    #[serde(default)]
    account_id: Option<String>,
    /// hex sealed password (empty: none).
    #[serde(default)]
    sealed_pwd: String,
    #[serde(default)]
    org_details: Option<OrganizationDetails>,
    enabled: bool,
    created: i64,
    updated: i64,
}

const CONTACTS_KEY: &str = "contacts";

fn issuer_key(nk: &str) -> String {
    format!("issuer/{nk}")
}

// ---------------------------------------------------------------------------------------------
// The object kind
// ---------------------------------------------------------------------------------------------

impl ObjectWire for Certificates {
    const KIND: &'static str = "certificate";
    const COLLECTION: &'static str = "certificates";
    type Bundle = CertificateBundle;
    type Item = CertificateItem;
    type DeletedBundle = DeletedCertificateBundle;
    type DeletedItem = DeletedCertificateItem;
}

fn cert_not_found(name: &str, version: Option<&str>) -> VaultError {
    let message = match version.filter(|v| !v.is_empty()) {
        Some(v) => format!(
            "certificate '{name}' version '{}' was not found",
            v.chars().take(64).collect::<String>()
        ),
        None => format!("certificate '{name}' was not found"),
    };
    VaultError::NotFound {
        code: "CertificateNotFound",
        message,
    }
}

impl ObjectKind for Certificates {
    const TITLE: &'static str = "Certificate";
    const VALUE: &'static str = "certificate chain";
    const TABLES: lifecycle::Tables = lifecycle::CERTIFICATES;
    const BACKUP: BackupKind = BackupKind::Certificate;

    type Record = CertificateRecord;
    type Version = CertificateVersionRecord;
    type Deleted = DeletedCertificateRecord;
    type BackupVersion = BackupCertificateVersion;
    type Backup = CertificateBackupPayload;

    fn not_found(name: &str, version: Option<&str>) -> VaultError {
        cert_not_found(name, version)
    }

    fn deleted_not_found(name: &str) -> VaultError {
        VaultError::NotFound {
            code: "CertificateNotFound",
            message: format!("deleted certificate '{name}' was not found"),
        }
    }

    fn backup_version(
        record: CertificateVersionRecord,
        value: Zeroizing<Vec<u8>>,
    ) -> Result<BackupCertificateVersion> {
        let chain = String::from_utf8(value.to_vec())
            .map_err(|_| VaultError::internal("stored certificate chain is not UTF-8"))?;
        Ok(BackupCertificateVersion { record, chain })
    }

    fn restore_version(v: &BackupCertificateVersion) -> (&CertificateVersionRecord, &[u8]) {
        (&v.record, v.chain.as_bytes())
    }

    fn check_restored(record: &CertificateVersionRecord, value: &[u8]) -> Result<()> {
        let chain = parse_chain_json(value)
            .map_err(|_| VaultError::bad("invalid certificate backup: a chain does not parse"))?;
        if chain.first().map(|c| c.as_slice()) != Some(record.cer.as_slice()) {
            return Err(VaultError::bad(
                "invalid certificate backup: a chain does not start with its certificate",
            ));
        }
        Ok(())
    }

    fn backup_payload(
        record: CertificateRecord,
        versions: Vec<BackupCertificateVersion>,
    ) -> CertificateBackupPayload {
        CertificateBackupPayload {
            certificate: record,
            versions,
        }
    }

    fn backup_parts(
        b: &CertificateBackupPayload,
    ) -> (&CertificateRecord, &[BackupCertificateVersion]) {
        (&b.certificate, &b.versions)
    }

    fn bundle(vault: &Vault, name: &str, vr: &CertificateVersionRecord) -> CertificateBundle {
        vault.cert_bundle(name, vr, None)
    }

    fn item(
        vault: &Vault,
        name: &str,
        vr: &CertificateVersionRecord,
        with_version: bool,
    ) -> CertificateItem {
        CertificateItem {
            id: vault.object_url::<Certificates>(name, with_version.then_some(vr.version.as_str())),
            attributes: vault.cert_attributes(vr),
            tags: vr.tags.clone(),
            x5t: crate::b64::decode(&vr.x5t).ok().map(crate::b64::Base64Url),
        }
    }

    fn deleted_bundle(
        vault: &Vault,
        d: &DeletedCertificateRecord,
        vr: &CertificateVersionRecord,
    ) -> DeletedCertificateBundle {
        DeletedCertificateBundle {
            bundle: vault.cert_bundle(&d.certificate.name, vr, None),
            deletion: vault.deletion_info::<Certificates>(d),
        }
    }

    fn deleted_item(
        vault: &Vault,
        d: &DeletedCertificateRecord,
        vr: &CertificateVersionRecord,
    ) -> DeletedCertificateItem {
        DeletedCertificateItem {
            item: Self::item(vault, &d.certificate.name, vr, false),
            deletion: vault.deletion_info::<Certificates>(d),
        }
    }

    // Delete, recover, purge, backup and restore carry the certificate's key and secret along,
    // each in one transaction.

    fn delete_impl(v: &Vault, name: &str) -> Result<DeletedCertificateBundle> {
        v.data_keys()?;
        validate_name("certificate", name)?;
        let nk = name_key(name);
        let now = v.now().timestamp();
        let mut ops = v.soft_delete_ops::<Certificates>(&nk, now)?;
        if ops.is_empty() {
            return Err(cert_not_found(name, None));
        }
        ops.extend(v.soft_delete_ops::<Keys>(&nk, now)?);
        ops.extend(v.soft_delete_ops::<Secrets>(&nk, now)?);
        ops.push(Op::Delete {
            table: Table::CertificateOperations,
            key: nk.clone(),
        });
        v.store.transact(ops)?;
        Keys::changed(v, &nk);
        let (d, vr) = v.get_deleted_object::<Certificates>(name)?;
        Ok(Self::deleted_bundle(v, &d, &vr))
    }

    fn recover_impl(v: &Vault, name: &str) -> Result<CertificateBundle> {
        v.data_keys()?;
        validate_name("certificate", name)?;
        let nk = name_key(name);
        let mut ops = v.recover_ops::<Certificates>(&nk)?;
        if ops.is_empty() {
            return Err(Self::deleted_not_found(name));
        }
        ops.extend(v.recover_ops::<Keys>(&nk)?);
        ops.extend(v.recover_ops::<Secrets>(&nk)?);
        v.store.transact(ops)?;
        Keys::changed(v, &nk);
        v.get_certificate(name, None)
    }

    fn purge_impl(v: &Vault, name: &str) -> Result<()> {
        v.data_keys()?;
        validate_name("certificate", name)?;
        let nk = name_key(name);
        if v.read_deleted::<Certificates>(&nk)?.is_none() {
            return Err(Self::deleted_not_found(name));
        }
        v.check_purge_allowed(lifecycle::CERTIFICATES, name)?;
        v.purge_certificate_rows(&nk)
    }

    fn backup_impl(v: &Vault, name: &str) -> Result<BackupBlob> {
        v.data_keys()?;
        validate_name("certificate", name)?;
        let nk = name_key(name);
        let certificate = v
            .backup_payload_of::<Certificates>(&nk)?
            .ok_or_else(|| cert_not_found(name, None))?;
        let missing = |what: &str| {
            VaultError::internal(format!("the {what} of certificate '{name}' is missing"))
        };
        let key = v
            .backup_payload_of::<Keys>(&nk)?
            .ok_or_else(|| missing("key"))?;
        let secret = v
            .backup_payload_of::<Secrets>(&nk)?
            .ok_or_else(|| missing("secret"))?;
        let plain = Zeroizing::new(to_json(&CertificateBackup {
            certificate,
            key,
            secret,
        })?);
        let blob = crate::backup::seal(v, BackupKind::Certificate, &plain)?;
        Ok(BackupBlob {
            value: crate::b64::Base64Url(blob),
        })
    }

    fn restore_impl(v: &Vault, blob: &[u8]) -> Result<CertificateBundle> {
        v.data_keys()?;
        let plain = crate::backup::open(v, BackupKind::Certificate, blob)?;
        let payload: CertificateBackup = serde_json::from_slice(&plain).map_err(|_| {
            VaultError::bad("invalid certificate backup: the blob content is malformed")
        })?;
        let (name, _, mut ops) = v.restore_ops::<Certificates>(&payload.certificate)?;
        check_cert_name(&name)?;
        let (kname, _, kops) = v.restore_ops::<Keys>(&payload.key)?;
        let (sname, _, sops) = v.restore_ops::<Secrets>(&payload.secret)?;
        if name_key(&kname) != name_key(&name) || name_key(&sname) != name_key(&name) {
            return Err(VaultError::bad(
                "invalid certificate backup: its key and secret are not of the certificate's name",
            ));
        }
        ops.extend(kops);
        ops.extend(sops);
        v.store.transact(ops).map_err(|e| match e {
            StoreError::Conflict { .. } => {
                VaultError::Conflict(format!("certificate '{name}' already exists"))
            }
            other => other.into(),
        })?;
        Keys::changed(v, &name_key(&name));
        v.get_certificate(&name, None)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A certificate error as the vault reports it: the caller's input (400), except a crypto
/// library failure (500).
fn cert_err(e: CertError) -> VaultError {
    match e {
        CertError::Crypto(what) => VaultError::internal(format!("{what} failed")),
        other => VaultError::bad(other.to_string()),
    }
}

fn check_cert_name(name: &str) -> Result<()> {
    validate_name("certificate", name)?;
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(VaultError::bad(format!(
            "invalid certificate name: '{name}' is reserved (it names the certificate {name} routes)"
        )));
    }
    Ok(())
}

fn chain_json(chain: &[Vec<u8>]) -> Result<Zeroizing<Vec<u8>>> {
    let v: Vec<Base64Std> = chain.iter().map(|c| Base64Std(c.clone())).collect();
    Ok(Zeroizing::new(to_json(&v)?))
}

fn parse_chain_json(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let v: Vec<Base64Std> = from_json(bytes, "certificate chain")?;
    Ok(v.into_iter().map(|c| c.0).collect())
}

fn std_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const KTYS: [&str; 4] = ["RSA", "RSA-HSM", "EC", "EC-HSM"];
const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

fn is_ec(kty: &str) -> bool {
    kty.starts_with("EC")
}

/// The key spec of a normalized policy.
fn key_spec_of(kp: &KeyProperties) -> Result<KeySpec> {
    let kty = kp.kty.as_deref().unwrap_or("RSA");
    if is_ec(kty) {
        let crv = kp.crv.as_deref().unwrap_or("P-256");
        let curve =
            serde_json::from_value(serde_json::Value::String(crv.to_string())).map_err(|_| {
                VaultError::bad(format!(
                    "invalid key_props.crv: expected P-256, P-384 or P-521, found '{}'",
                    crv.chars().take(32).collect::<String>()
                ))
            })?;
        Ok(KeySpec::Ec { curve })
    } else {
        Ok(KeySpec::Rsa {
            bits: kp.key_size.unwrap_or(2048),
        })
    }
}

/// A policy with Key Vault's defaults filled in, validated. `issuer_default` is the issuer when
/// the policy names none.
fn normalize_policy(p: &CertificatePolicy, now: i64) -> Result<CertificatePolicy> {
    let mut p = p.clone();
    p.id = None;
    let mut kp = p.key_props.clone().unwrap_or_default();
    let kty = kp.kty.clone().unwrap_or_else(|| "RSA".to_string());
    if !KTYS.contains(&kty.as_str()) {
        return Err(VaultError::bad(format!(
            "invalid key_props.kty: expected RSA, RSA-HSM, EC or EC-HSM, found '{}'",
            kty.chars().take(32).collect::<String>()
        )));
    }
    if is_ec(&kty) {
        if kp.crv.is_none() {
            kp.crv = Some(
                match kp.key_size {
                    Some(384) => "P-384",
                    Some(521) => "P-521",
                    _ => "P-256",
                }
                .to_string(),
            );
        }
        kp.key_size = None;
    } else {
        if kp.crv.is_some() {
            return Err(VaultError::bad(
                "key_props.crv is not valid for key type RSA",
            ));
        }
        let bits = kp.key_size.unwrap_or(2048);
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(VaultError::bad(format!(
                "invalid key_props.key_size for RSA: expected 2048, 3072 or 4096, found {bits}"
            )));
        }
        kp.key_size = Some(bits);
    }
    kp.kty = Some(kty.clone());
    key_spec_of(&kp)?;
    kp.exportable = Some(kp.exportable.unwrap_or(true));
    kp.reuse_key = Some(kp.reuse_key.unwrap_or(false));
    if let Some(rp) = &kp.release_policy {
        if kp.exportable != Some(true) {
            return Err(VaultError::bad(
                "AKV.SKR.1004 key_props.release_policy requires key_props.exportable = true",
            ));
        }
        if rp.data.is_none() {
            return Err(VaultError::bad(
                "invalid key_props.release_policy: expected the policy in `data`, found none",
            ));
        }
    }
    p.key_props = Some(kp);

    let ct = p
        .secret_props
        .as_ref()
        .and_then(|s| s.content_type.clone())
        .unwrap_or_else(|| content_types::PKCS12.to_string());
    if ct != content_types::PKCS12 && ct != content_types::PEM {
        return Err(VaultError::bad(format!(
            "invalid secret_props.contentType: expected {} or {}, found '{}'",
            content_types::PKCS12,
            content_types::PEM,
            ct.chars().take(64).collect::<String>()
        )));
    }
    p.secret_props = Some(SecretProperties {
        content_type: Some(ct),
    });

    let mut x = p.x509_props.clone().unwrap_or_default();
    let months = x.validity_months.unwrap_or(12);
    if !(1..=1200).contains(&months) {
        return Err(VaultError::bad(format!(
            "invalid x509_props.validity_months: expected 1 to 1200, found {months}"
        )));
    }
    x.validity_months = Some(months);
    if let Some(s) = &x.subject {
        enclava_certs::Subject::parse(s).map_err(cert_err)?;
    }
    if x.key_usage.is_none() {
        x.key_usage = Some(if is_ec(&kty) {
            vec!["digitalSignature".to_string()]
        } else {
            vec![
                "digitalSignature".to_string(),
                "keyEncipherment".to_string(),
            ]
        });
    }
    key_usages(&x)?;
    if x.ekus.is_none() {
        x.ekus = Some(vec![
            EKU_SERVER_AUTH.to_string(),
            EKU_CLIENT_AUTH.to_string(),
        ]);
    }
    p.x509_props = Some(x);

    let mut issuer = p.issuer.clone().unwrap_or_default();
    let iname = issuer
        .name
        .clone()
        .unwrap_or_else(|| issuer_names::UNKNOWN.to_string());
    issuer.name = Some(iname.clone());
    p.issuer = Some(issuer);

    let self_issued = iname == issuer_names::SELF || iname == issuer_names::ENCLAVA;
    let actions = match p.lifetime_actions.take() {
        Some(a) => a,
        None => vec![LifetimeAction {
            trigger: Some(Trigger {
                lifetime_percentage: Some(80),
                days_before_expiry: None,
            }),
            action: Some(Action {
                action_type: Some(
                    if self_issued {
                        "AutoRenew"
                    } else {
                        "EmailContacts"
                    }
                    .to_string(),
                ),
            }),
        }],
    };
    for a in &actions {
        let t = a.trigger.clone().unwrap_or_default();
        match (t.lifetime_percentage, t.days_before_expiry) {
            (Some(p), None) if (1..=99).contains(&p) => {}
            (None, Some(d)) if d >= 1 => {}
            _ => {
                return Err(VaultError::bad(
                    "invalid lifetime_actions trigger: expected exactly one of lifetime_percentage (1-99) or days_before_expiry (>= 1)",
                ));
            }
        }
        match a.action.as_ref().and_then(|x| x.action_type.as_deref()) {
            Some("AutoRenew" | "EmailContacts") => {}
            other => {
                return Err(VaultError::bad(format!(
                    "invalid lifetime_actions action_type: expected AutoRenew or EmailContacts, found '{}'",
                    other.unwrap_or("").chars().take(32).collect::<String>()
                )));
            }
        }
    }
    p.lifetime_actions = Some(actions);
    let mut attrs = p.attributes.clone().unwrap_or_default();
    attrs.enabled = Some(attrs.enabled.unwrap_or(true));
    attrs.created = Some(attrs.created.unwrap_or(now));
    attrs.updated = Some(now);
    p.attributes = Some(attrs);
    Ok(p)
}

fn key_usages(x: &X509CertificateProperties) -> Result<Vec<enclava_certs::KeyUsage>> {
    x.key_usage
        .iter()
        .flatten()
        .map(|u| {
            serde_json::from_value(serde_json::Value::String(u.clone())).map_err(|_| {
                VaultError::bad(format!(
                    "invalid x509_props.key_usage: expected digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly or decipherOnly, found '{}'",
                    u.chars().take(32).collect::<String>()
                ))
            })
        })
        .collect()
}

/// Merge the sections an update names into the stored policy.
fn merge_policy(stored: &CertificatePolicy, update: &CertificatePolicy) -> CertificatePolicy {
    let mut p = stored.clone();
    if let Some(kp) = &update.key_props {
        let mut k = p.key_props.clone().unwrap_or_default();
        macro_rules! take {
            ($($f:ident),*) => { $( if kp.$f.is_some() { k.$f = kp.$f.clone(); } )* };
        }
        take!(exportable, kty, key_size, reuse_key, crv, release_policy);
        p.key_props = Some(k);
    }
    if update.secret_props.is_some() {
        p.secret_props = update.secret_props.clone();
    }
    if let Some(x) = &update.x509_props {
        let mut s = p.x509_props.clone().unwrap_or_default();
        macro_rules! take {
            ($($f:ident),*) => { $( if x.$f.is_some() { s.$f = x.$f.clone(); } )* };
        }
        take!(subject, ekus, sans, key_usage, validity_months);
        p.x509_props = Some(s);
    }
    if update.lifetime_actions.is_some() {
        p.lifetime_actions = update.lifetime_actions.clone();
    }
    if update.issuer.is_some() {
        p.issuer = update.issuer.clone();
    }
    if let Some(a) = &update.attributes
        && a.enabled.is_some()
    {
        let mut attrs = p.attributes.clone().unwrap_or_default();
        attrs.enabled = a.enabled;
        p.attributes = Some(attrs);
    }
    p
}

fn issuer_name(p: &CertificatePolicy) -> &str {
    p.issuer
        .as_ref()
        .and_then(|i| i.name.as_deref())
        .unwrap_or(issuer_names::UNKNOWN)
}

/// The certificate template a (normalized) policy asks for, valid from `now`.
fn template(p: &CertificatePolicy, now: i64) -> Result<enclava_certs::CertTemplate> {
    let x = p.x509_props.clone().unwrap_or_default();
    let subject =
        enclava_certs::Subject::parse(x.subject.as_deref().unwrap_or("")).map_err(cert_err)?;
    let months = x.validity_months.unwrap_or(12);
    let start = Utc
        .timestamp_opt(now, 0)
        .single()
        .ok_or_else(|| VaultError::internal("the clock is out of range"))?;
    let end = start
        .checked_add_months(Months::new(months))
        .ok_or_else(|| VaultError::bad("x509_props.validity_months is out of range"))?;
    let mut t =
        enclava_certs::CertTemplate::new(subject, now, end.timestamp()).map_err(cert_err)?;
    let sans = x.sans.unwrap_or_default();
    t.sans = enclava_certs::SubjectAltNames {
        dns_names: sans.dns_names.unwrap_or_default(),
        emails: sans.emails.unwrap_or_default(),
        upns: sans.upns.unwrap_or_default(),
    };
    t.key_usage = key_usages(p.x509_props.as_ref().unwrap_or(&Default::default()))?;
    t.ekus = x.ekus.unwrap_or_default();
    t.validate().map_err(cert_err)?;
    Ok(t)
}

/// What a new certificate version is made of.
struct NewVersion<'a> {
    name: &'a str,
    policy: &'a CertificatePolicy,
    key_pkcs8: &'a [u8],
    chain: Vec<Vec<u8>>,
    enabled: bool,
    tags: Option<&'a Tags>,
    /// The version id to commit under: an operation's version (its request id, which a GET of
    /// the certificate names while the operation is pending), or `None` for a fresh one.
    version: Option<&'a str>,
}

impl Vault {
    fn cert_attributes(&self, r: &CertificateVersionRecord) -> CertificateAttributes {
        CertificateAttributes {
            enabled: Some(r.enabled),
            nbf: r.nbf,
            exp: r.exp,
            created: Some(r.created),
            updated: Some(r.updated),
            recoverable_days: Some(self.options.recoverable_days as i64),
            recovery_level: Some(self.recovery_level().to_string()),
        }
    }

    fn cert_bundle(
        &self,
        name: &str,
        r: &CertificateVersionRecord,
        policy: Option<CertificatePolicy>,
    ) -> CertificateBundle {
        CertificateBundle {
            id: self.object_url::<Certificates>(name, Some(&r.version)),
            kid: Some(self.object_url::<Keys>(name, Some(&r.version))),
            sid: Some(self.object_url::<Secrets>(name, Some(&r.version))),
            x5t: crate::b64::decode(&r.x5t).ok().map(crate::b64::Base64Url),
            cer: Some(r.cer.clone()),
            content_type: Some(r.content_type.clone()),
            attributes: self.cert_attributes(r),
            tags: r.tags.clone(),
            policy: policy.map(|p| self.policy_out(name, p)),
            preserve_cert_order: None,
        }
    }

    fn policy_out(&self, name: &str, mut p: CertificatePolicy) -> CertificatePolicy {
        p.id = Some(format!("{}/certificates/{name}/policy", self.base_url));
        p
    }

    /// Keys and secrets a certificate owns are read-only through their own routes (403).
    pub(crate) fn check_unmanaged(&self, kind: &str, name: &str) -> Result<()> {
        let nk = name_key(name);
        if self.store.get(Table::Certificates, &nk)?.is_some()
            || self.store.get(Table::DeletedCertificates, &nk)?.is_some()
        {
            return Err(VaultError::Forbidden {
                message: format!(
                    "{kind} '{name}' is managed by certificate '{name}' and is read-only: change it through the certificate"
                ),
                inner: None,
            });
        }
        Ok(())
    }

    /// Refuse a certificate name whose key or secret is someone else's, or deleted.
    fn check_cert_name_free(&self, name: &str) -> Result<()> {
        self.check_not_deleted::<Certificates>(name)?;
        self.check_not_deleted::<Keys>(name)?;
        self.check_not_deleted::<Secrets>(name)?;
        let nk = name_key(name);
        if self.store.get(Table::Certificates, &nk)?.is_none() {
            for (t, kind) in [(Table::Keys, "key"), (Table::Secrets, "secret")] {
                if self.store.get(t, &nk)?.is_some() {
                    return Err(VaultError::Conflict(format!(
                        "a {kind} named '{name}' exists: a certificate needs its own key and secret of its name"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Commit a new certificate version with its key and secret version (same version id) in
    /// one transaction, plus `extra` ops. With `expect` (the certificate record's bytes as
    /// read) the write happens only if the record is still exactly that (no retry: the caller
    /// lost a race); otherwise a concurrent change is retried.
    fn commit_certificate(
        &self,
        n: NewVersion<'_>,
        extra: impl Fn(&str) -> Result<Vec<Op>>,
        expect: Option<Vec<u8>>,
        edit: impl Fn(&mut CertificateRecord),
    ) -> Result<(String, CertificateVersionRecord)> {
        let name = n.name;
        let nk = name_key(name);
        let leaf_der = n
            .chain
            .first()
            .ok_or_else(|| VaultError::bad("expected a certificate, found none"))?;
        let leaf = ParsedCertificate::from_der(leaf_der).map_err(cert_err)?;
        let now = self.now().timestamp();
        let version = match n.version {
            Some(v) => v.to_string(),
            None => crate::util::new_version_id()?,
        };
        let kp = n.policy.key_props.clone().unwrap_or_default();
        let state = (n.enabled, Some(leaf.not_before), Some(leaf.not_after));
        let mv = ManagedVersion {
            name,
            version: &version,
            state,
            tags: n.tags,
            now,
        };
        let kbytes = self.managed_key_version(
            &mv,
            n.key_pkcs8,
            kp.kty.as_deref().is_some_and(|k| k.ends_with("-HSM")),
            kp.release_policy.as_ref(),
        )?;
        // The private key goes into the secret only when exportable and not bound to attested
        // release (else a Secrets User would bypass attestation).
        let with_key = kp.exportable.unwrap_or(true) && kp.release_policy.is_none();
        let ct = n
            .policy
            .secret_props
            .as_ref()
            .and_then(|s| s.content_type.clone())
            .unwrap_or_else(|| content_types::PKCS12.to_string());
        let (content_type, value): (String, Zeroizing<String>) =
            if with_key && ct == content_types::PKCS12 {
                // Without a password the PFX holds the key in effect in the clear: zeroize it.
                let pfx = Zeroizing::new(
                    enclava_certs::pfx::build(n.key_pkcs8, &n.chain, None).map_err(cert_err)?,
                );
                (ct, Zeroizing::new(std_b64(&pfx)))
            } else if with_key {
                (ct, enclava_certs::pem::build(Some(n.key_pkcs8), &n.chain))
            } else {
                // Without the key a PFX has nothing to protect: the chain as PEM.
                (
                    content_types::PEM.to_string(),
                    enclava_certs::pem::build(None, &n.chain),
                )
            };
        let sbytes = self.managed_secret_version(&mv, &content_type, value.as_bytes())?;
        let chain = chain_json(&n.chain)?;
        let vr = CertificateVersionRecord {
            version: version.clone(),
            enabled: n.enabled,
            nbf: Some(leaf.not_before),
            exp: Some(leaf.not_after),
            created: now,
            updated: now,
            tags: n.tags.cloned(),
            content_type,
            x5t: leaf.x5t.clone(),
            cer: Base64Std(leaf_der.clone()),
            sealed: self.seal_object_value::<Certificates>(&nk, &version, &chain)?,
            mac: String::new(),
        };
        let cbytes = self.encode_version::<Certificates>(&nk, &vr)?;
        for _ in 0..MAX_RETRIES {
            let mut ops = Vec::new();
            if let Some(old) = &expect {
                ops.push(Op::Expect {
                    table: Table::Certificates,
                    key: nk.clone(),
                    value: Some(old.clone()),
                });
            }
            let (k, _) =
                self.new_version_ops::<Keys>(name, &version, kbytes.clone(), now, |_| {})?;
            let (s, _) =
                self.new_version_ops::<Secrets>(name, &version, sbytes.clone(), now, |_| {})?;
            let (c, display) =
                self.new_version_ops::<Certificates>(name, &version, cbytes.clone(), now, |r| {
                    r.policy = Some(n.policy.clone());
                    edit(r);
                })?;
            ops.extend(k);
            ops.extend(s);
            ops.extend(c);
            ops.extend(extra(&display)?);
            match self.store.transact(ops) {
                Ok(()) => {
                    Keys::changed(self, &nk);
                    return Ok((display, vr));
                }
                Err(StoreError::Conflict { .. }) if expect.is_none() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Conflict(format!(
            "certificate '{name}' is being changed concurrently; retry the operation"
        )))
    }

    fn op_aad(nk: &str, request_id: &str) -> Vec<u8> {
        format!("enclava/v1/certificate-operation/{nk}/{request_id}").into_bytes()
    }

    fn encode_op(&self, op: &OperationRecord) -> Result<Vec<u8>> {
        let keys = self.data_keys()?;
        let nk = name_key(&op.name);
        crate::util::encode_authenticated(
            &keys.record_mac,
            &format!("certificate-operation/{nk}"),
            op,
        )
    }

    fn read_op(&self, name: &str) -> Result<(OperationRecord, Vec<u8>)> {
        let keys = self.data_keys()?;
        check_cert_name(name)?;
        let nk = name_key(name);
        let bytes = self
            .store
            .get(Table::CertificateOperations, &nk)?
            .ok_or_else(|| VaultError::NotFound {
                code: "PendingCertificateNotFound",
                message: format!("pending certificate '{name}' was not found"),
            })?;
        let op: OperationRecord = crate::util::decode_authenticated(
            &keys.record_mac,
            &format!("certificate-operation/{nk}"),
            "certificate operation",
            &bytes,
        )?;
        Ok((op, bytes))
    }

    fn op_wire(&self, op: &OperationRecord) -> CertificateOperation {
        CertificateOperation {
            id: format!("{}/certificates/{}/pending", self.base_url, op.name),
            issuer: Some(IssuerParameters {
                name: Some(op.issuer.clone()),
                ..Default::default()
            }),
            csr: op.csr.clone(),
            cancellation_requested: op.cancellation_requested,
            status: op.status.clone(),
            status_details: op.status_details.clone(),
            error: op.error.clone(),
            target: op.target.clone(),
            request_id: Some(op.request_id.clone()),
            preserve_cert_order: None,
        }
    }

    fn put_op_ops(&self, op: &OperationRecord) -> Result<Vec<Op>> {
        Ok(vec![Op::Put {
            table: Table::CertificateOperations,
            key: name_key(&op.name),
            value: self.encode_op(op)?,
        }])
    }

    /// A new key for a version of `name` under `policy` (the latest key when reuse_key).
    fn new_cert_key(&self, name: &str, policy: &CertificatePolicy) -> Result<Zeroizing<Vec<u8>>> {
        let kp = policy.key_props.clone().unwrap_or_default();
        if kp.reuse_key == Some(true)
            && let Some((rec, _)) = self.read_record::<Certificates>(&name_key(name))?
        {
            return self.key_pkcs8(name, &rec.latest);
        }
        enclava_certs::generate(key_spec_of(&kp)?).map_err(cert_err)
    }

    /// Issue a certificate for `key` under `policy` (Self or Enclava) and return its chain.
    fn issue_chain(
        &self,
        policy: &CertificatePolicy,
        key: &[u8],
        ca: Option<&IssuingCa>,
        now: i64,
    ) -> Result<Vec<Vec<u8>>> {
        let t = template(policy, now)?;
        match issuer_name(policy) {
            issuer_names::SELF => Ok(vec![
                enclava_certs::issue(&t, key, enclava_certs::Issuer::SelfSigned)
                    .map_err(cert_err)?,
            ]),
            _ => {
                let ca = ca.ok_or_else(|| {
                    VaultError::bad(
                        "issuer Enclava is not available: the vault's issuing CA is not open",
                    )
                })?;
                let leaf = enclava_certs::issue(
                    &t,
                    key,
                    enclava_certs::Issuer::Ca {
                        cert_der: &ca.cert_der,
                        key_pkcs8: &ca.key_pkcs8,
                    },
                )
                .map_err(|e| match e {
                    CertError::Issuer(m) => {
                        VaultError::internal(format!("the issuing CA cannot sign: {m}"))
                    }
                    other => cert_err(other),
                })?;
                Ok(vec![leaf, ca.cert_der.clone()])
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Create, operations, merge, import
    // -----------------------------------------------------------------------------------------

    fn create_certificate(
        &self,
        name: &str,
        params: &CertificateCreateParameters,
        ca: Option<&IssuingCa>,
    ) -> Result<CertificateOperation> {
        self.data_keys()?;
        check_cert_name(name)?;
        validate_tags(&params.tags)?;
        self.check_cert_name_free(name)?;
        let nk = name_key(name);
        let now = self.now().timestamp();
        let stored = self
            .read_record::<Certificates>(&nk)?
            .and_then(|(r, _)| r.policy);
        let policy = match (&params.policy, stored) {
            (Some(p), _) => normalize_policy(p, now)?,
            (None, Some(p)) => p,
            (None, None) => {
                return Err(VaultError::bad(
                    "expected a policy for a new certificate, found none",
                ));
            }
        };
        if let Ok((op, _)) = self.read_op(name)
            && op.status == operation_status::IN_PROGRESS
        {
            return Err(VaultError::Conflict(format!(
                "certificate '{name}' has a pending operation: merge, cancel or delete it first"
            )));
        }
        let enabled = params
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(true);
        let issuer = issuer_name(&policy).to_string();
        let mut op = OperationRecord {
            name: name.to_string(),
            request_id: crate::util::new_version_id()?,
            issuer: issuer.clone(),
            status: operation_status::IN_PROGRESS.to_string(),
            status_details: None,
            error: None,
            cancellation_requested: false,
            csr: None,
            target: None,
            policy: policy.clone(),
            attributes: params.attributes.clone(),
            tags: params.tags.clone(),
            sealed_key: String::new(),
            mac: String::new(),
        };
        match issuer.as_str() {
            issuer_names::SELF | issuer_names::ENCLAVA => {
                let key = self.new_cert_key(name, &policy)?;
                let chain = self.issue_chain(&policy, &key, ca, now)?;
                let (display, vr) = self.commit_certificate(
                    NewVersion {
                        name,
                        policy: &policy,
                        key_pkcs8: &key,
                        chain,
                        enabled,
                        tags: params.tags.as_ref(),
                        version: Some(&op.request_id),
                    },
                    |display| {
                        let mut done = op.clone();
                        done.name = display.to_string();
                        done.status = operation_status::COMPLETED.to_string();
                        done.target = Some(self.object_url::<Certificates>(display, None));
                        self.put_op_ops(&done)
                    },
                    None,
                    |_| {},
                )?;
                let _ = vr;
                // Stored as completed, but the create reply says inProgress as Key Vault's
                // always does: the Python SDK's poller only fetches the certificate when its
                // first poll (GET pending) sees the completion.
                op.name = display;
                return Ok(self.op_wire(&op));
            }
            issuer_names::UNKNOWN => {
                let key = self.new_cert_key(name, &policy)?;
                let t = template(&policy, now)?;
                op.csr = Some(Base64Std(enclava_certs::csr(&t, &key).map_err(cert_err)?));
                op.status_details = Some(
                    "Pending certificate created. Please merge the signed certificate (POST /certificates/{name}/pending/merge)."
                        .to_string(),
                );
                let keys = self.data_keys()?;
                op.sealed_key = hex::encode(aead_seal(
                    &keys.object,
                    &Self::op_aad(&nk, &op.request_id),
                    &key,
                )?);
                self.store.transact(self.put_op_ops(&op)?)?;
            }
            other => {
                // An issuer object: Enclava has no connectors to external CAs.
                self.get_certificate_issuer(other)?;
                op.status = operation_status::FAILED.to_string();
                op.status_details = Some(format!(
                    "issuer '{other}' is an external certificate authority; Enclava cannot request certificates from it"
                ));
                op.error = Some(OperationError {
                    code: "IssuerNotSupported".to_string(),
                    message: format!(
                        "Enclava has no connector for issuer '{other}' (provider of an external CA): use issuer Self, Enclava or Unknown (CSR + merge)"
                    ),
                });
                self.store.transact(self.put_op_ops(&op)?)?;
            }
        }
        Ok(self.op_wire(&op))
    }

    fn certificate_operation(&self, name: &str) -> Result<CertificateOperation> {
        let (op, _) = self.read_op(name)?;
        Ok(self.op_wire(&op))
    }

    fn update_certificate_operation(
        &self,
        name: &str,
        p: &CertificateOperationUpdateParameter,
    ) -> Result<CertificateOperation> {
        let (mut op, old) = self.read_op(name)?;
        if p.cancellation_requested && op.status == operation_status::IN_PROGRESS {
            op.cancellation_requested = true;
            op.status = operation_status::CANCELLED.to_string();
            op.status_details = Some("the operation was cancelled".to_string());
            op.sealed_key.clear();
            let nk = name_key(name);
            let mut ops = vec![Op::Expect {
                table: Table::CertificateOperations,
                key: nk,
                value: Some(old),
            }];
            ops.extend(self.put_op_ops(&op)?);
            self.store.transact(ops)?;
        }
        Ok(self.op_wire(&op))
    }

    fn delete_certificate_operation(&self, name: &str) -> Result<CertificateOperation> {
        let (op, old) = self.read_op(name)?;
        let nk = name_key(name);
        self.store.transact(vec![
            Op::Expect {
                table: Table::CertificateOperations,
                key: nk.clone(),
                value: Some(old),
            },
            Op::Delete {
                table: Table::CertificateOperations,
                key: nk,
            },
        ])?;
        Ok(self.op_wire(&op))
    }

    fn merge_certificate(
        &self,
        name: &str,
        p: &CertificateMergeParameters,
    ) -> Result<CertificateBundle> {
        validate_tags(&p.tags)?;
        let (op, old) = self.read_op(name)?;
        if op.status != operation_status::IN_PROGRESS || op.sealed_key.is_empty() {
            return Err(VaultError::NotFound {
                code: "PendingCertificateNotFound",
                message: format!(
                    "certificate '{name}' has no pending operation to merge (its operation is {})",
                    op.status
                ),
            });
        }
        let mut chain = Vec::new();
        for c in &p.x5c {
            // DER, base64 text of DER or PEM: the SDKs and Microsoft's documentation pass each.
            chain.extend(enclava_certs::pem::certificates_any(c.as_slice()).map_err(cert_err)?);
        }
        let leaf = chain.first().ok_or_else(|| {
            VaultError::bad("expected x5c with at least one certificate, found none")
        })?;
        let keys = self.data_keys()?;
        let nk = name_key(name);
        let sealed = hex::decode(&op.sealed_key)
            .map_err(|_| VaultError::internal("stored pending key is corrupt"))?;
        let key = aead_open(&keys.object, &Self::op_aad(&nk, &op.request_id), &sealed)?
            .ok_or_else(|| VaultError::internal("stored pending key failed its integrity check"))?;
        if !enclava_certs::matches_key(leaf, &key).map_err(cert_err)? {
            return Err(VaultError::bad(
                "the merged certificate's public key does not match the pending certificate's key: expected the certificate signed for the pending CSR",
            ));
        }
        self.check_cert_name_free(name)?;
        let enabled = p
            .attributes
            .as_ref()
            .or(op.attributes.as_ref())
            .and_then(|a| a.enabled)
            .unwrap_or(true);
        let tags = p.tags.clone().or(op.tags.clone());
        let (display, vr) = self.commit_certificate(
            NewVersion {
                name,
                policy: &op.policy,
                key_pkcs8: &key,
                chain,
                enabled,
                tags: tags.as_ref(),
                version: Some(&op.request_id),
            },
            |display| {
                let mut done = op.clone();
                done.name = display.to_string();
                done.status = operation_status::COMPLETED.to_string();
                done.status_details = None;
                done.sealed_key.clear();
                done.target = Some(self.object_url::<Certificates>(display, None));
                let mut ops = vec![Op::Expect {
                    table: Table::CertificateOperations,
                    key: nk.clone(),
                    value: Some(old.clone()),
                }];
                ops.extend(self.put_op_ops(&done)?);
                Ok(ops)
            },
            None,
            |_| {},
        )?;
        Ok(self.cert_bundle(&display, &vr, Some(op.policy.clone())))
    }

    fn import_certificate(
        &self,
        name: &str,
        p: &CertificateImportParameters,
    ) -> Result<CertificateBundle> {
        self.data_keys()?;
        check_cert_name(name)?;
        validate_tags(&p.tags)?;
        self.check_cert_name_free(name)?;
        let raw = p.value.as_str().trim();
        // PEM text, or base64 of a PFX or of PEM text (the Python SDK always base64-encodes).
        let (bundle, is_pem) = if raw.starts_with("-----BEGIN") || raw.contains("-----BEGIN") {
            (
                enclava_certs::pem::parse_bundle(raw.as_bytes()).map_err(cert_err)?,
                true,
            )
        } else {
            let compact: Zeroizing<String> =
                Zeroizing::new(raw.chars().filter(|c| !c.is_ascii_whitespace()).collect());
            let bytes = Zeroizing::new(crate::b64::decode(&compact).map_err(|_| {
                VaultError::bad(
                    "invalid certificate value: expected base64 PKCS#12 (PFX) or PEM text",
                )
            })?);
            if enclava_evidence::pem::is_pem(&bytes) {
                (
                    enclava_certs::pem::parse_bundle(&bytes).map_err(cert_err)?,
                    true,
                )
            } else {
                let pwd = p.pwd.as_ref().map(|s| s.as_str()).filter(|s| !s.is_empty());
                (
                    enclava_certs::pfx::parse(&bytes, pwd).map_err(cert_err)?,
                    false,
                )
            }
        };
        let leaf_der = bundle
            .chain
            .first()
            .ok_or_else(|| VaultError::bad("expected at least one certificate, found none"))?;
        let leaf = ParsedCertificate::from_der(leaf_der).map_err(cert_err)?;
        let spec = enclava_certs::key_spec(&bundle.key_pkcs8).map_err(cert_err)?;
        let now = self.now().timestamp();
        // The policy describes the imported certificate; the request's policy may set the key
        // and secret properties, lifetime actions and issuer.
        let given = p.policy.clone().unwrap_or_default();
        let mut kp = given.key_props.clone().unwrap_or_default();
        match spec {
            KeySpec::Rsa { bits } => {
                kp.kty = Some(
                    if kp.kty.as_deref() == Some("RSA-HSM") {
                        "RSA-HSM"
                    } else {
                        "RSA"
                    }
                    .to_string(),
                );
                kp.key_size = Some(bits);
                kp.crv = None;
            }
            KeySpec::Ec { curve } => {
                kp.kty = Some(
                    if kp.kty.as_deref() == Some("EC-HSM") {
                        "EC-HSM"
                    } else {
                        "EC"
                    }
                    .to_string(),
                );
                kp.crv = Some(curve.as_str().to_string());
                kp.key_size = None;
            }
        }
        let mut policy = given.clone();
        policy.key_props = Some(kp);
        if policy
            .secret_props
            .as_ref()
            .and_then(|s| s.content_type.as_ref())
            .is_none()
        {
            policy.secret_props = Some(SecretProperties {
                content_type: Some(
                    if is_pem {
                        content_types::PEM
                    } else {
                        content_types::PKCS12
                    }
                    .to_string(),
                ),
            });
        }
        let months =
            ((leaf.not_after - leaf.not_before).max(0) / (30 * 86_400)).clamp(1, 1200) as u32;
        policy.x509_props = Some(X509CertificateProperties {
            subject: Some(leaf.subject.clone()),
            ekus: Some(leaf.ekus.clone()),
            sans: Some(SubjectAlternativeNames {
                emails: Some(leaf.sans.emails.clone()).filter(|v| !v.is_empty()),
                dns_names: Some(leaf.sans.dns_names.clone()).filter(|v| !v.is_empty()),
                upns: Some(leaf.sans.upns.clone()).filter(|v| !v.is_empty()),
            }),
            key_usage: Some(
                leaf.key_usage
                    .iter()
                    .map(|u| u.as_str().to_string())
                    .collect(),
            ),
            validity_months: Some(months),
        });
        if policy.issuer.is_none() {
            policy.issuer = Some(IssuerParameters {
                name: Some(issuer_names::UNKNOWN.to_string()),
                ..Default::default()
            });
        }
        let policy = normalize_policy(&policy, now)?;
        let enabled = p
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(true);
        let (display, vr) = self.commit_certificate(
            NewVersion {
                name,
                policy: &policy,
                key_pkcs8: &bundle.key_pkcs8,
                chain: bundle.chain.clone(),
                enabled,
                tags: p.tags.as_ref(),
                version: None,
            },
            |_| Ok(Vec::new()),
            None,
            |_| {},
        )?;
        Ok(self.cert_bundle(&display, &vr, Some(policy)))
    }

    // -----------------------------------------------------------------------------------------
    // Get, update, policy
    // -----------------------------------------------------------------------------------------

    fn get_certificate(&self, name: &str, version: Option<&str>) -> Result<CertificateBundle> {
        self.data_keys()?;
        check_cert_name(name)?;
        let (rec, vr, _) = match self.resolve::<Certificates>(name, version) {
            Ok(found) => found,
            Err(e @ VaultError::NotFound { .. }) => return self.pending_bundle(name, version, e),
            Err(e) => return Err(e),
        };
        let policy = (vr.version == rec.latest)
            .then(|| rec.policy.clone())
            .flatten();
        Ok(self.cert_bundle(&rec.name, &vr, policy))
    }

    /// A certificate whose first version is still an operation (CSR awaiting merge, failed or
    /// cancelled create) reads as Key Vault shows it: the pending version (the operation's
    /// version id), disabled, with its policy and no `cer`/`x5t`. Microsoft's JS SDK reads the
    /// certificate before the operation in `getCertificateOperation`, so a 404 here would make
    /// the CSR flow impossible. Any other miss stays `not_found`.
    fn pending_bundle(
        &self,
        name: &str,
        version: Option<&str>,
        not_found: VaultError,
    ) -> Result<CertificateBundle> {
        let op = match self.read_op(name) {
            Ok((op, _)) => op,
            Err(VaultError::NotFound { .. }) => return Err(not_found),
            Err(e) => return Err(e),
        };
        let asked = version.filter(|v| !v.is_empty());
        if op.status == operation_status::COMPLETED
            || asked.is_some_and(|v| !v.eq_ignore_ascii_case(&op.request_id))
        {
            return Err(not_found);
        }
        let content_type = op
            .policy
            .secret_props
            .as_ref()
            .and_then(|s| s.content_type.clone());
        Ok(CertificateBundle {
            id: self.object_url::<Certificates>(&op.name, Some(&op.request_id)),
            kid: Some(self.object_url::<Keys>(&op.name, Some(&op.request_id))),
            sid: Some(self.object_url::<Secrets>(&op.name, Some(&op.request_id))),
            x5t: None,
            cer: None,
            content_type,
            attributes: CertificateAttributes {
                enabled: Some(false),
                recoverable_days: Some(self.options.recoverable_days as i64),
                recovery_level: Some(self.recovery_level().to_string()),
                ..Default::default()
            },
            tags: op.tags.clone(),
            policy: Some(self.policy_out(&op.name, op.policy.clone())),
            preserve_cert_order: None,
        })
    }

    fn update_certificate(
        &self,
        name: &str,
        version: Option<&str>,
        p: &CertificateUpdateParameters,
    ) -> Result<CertificateBundle> {
        self.data_keys()?;
        check_cert_name(name)?;
        validate_tags(&p.tags)?;
        if let Some(pol) = &p.policy {
            // The version must exist before the policy changes: a request that fails must not
            // leave half of itself written (the policy's own errors come before its write).
            self.resolve::<Certificates>(name, version)?;
            self.update_certificate_policy(name, pol)?;
        }
        let enabled = p.attributes.as_ref().and_then(|a| a.enabled);
        let nk = name_key(name);
        let (rec, vr) = self.update_version_with::<Certificates>(
            name,
            version,
            |_, vr| {
                // nbf and exp are the certificate's own validity.
                vr.state().apply(enabled, None, None);
                if p.tags.is_some() {
                    vr.tags = p.tags.clone();
                }
                Ok(())
            },
            // Enabling or disabling a certificate version does the same to its key and secret
            // version, in the same transaction (as Key Vault).
            |vr| {
                let Some(e) = enabled else {
                    return Ok(Vec::new());
                };
                let mut ops = self.enabled_ops::<Keys>(&nk, &vr.version, e)?;
                ops.extend(self.enabled_ops::<Secrets>(&nk, &vr.version, e)?);
                Ok(ops)
            },
        )?;
        if enabled.is_some() {
            Keys::changed(self, &nk);
        }
        let (rec2, _) = self
            .read_record::<Certificates>(&name_key(name))?
            .unwrap_or((rec, Vec::new()));
        let policy = (vr.version == rec2.latest)
            .then(|| rec2.policy.clone())
            .flatten();
        Ok(self.cert_bundle(&rec2.name, &vr, policy))
    }

    fn get_certificate_policy(&self, name: &str) -> Result<CertificatePolicy> {
        self.data_keys()?;
        check_cert_name(name)?;
        let (rec, _) = self
            .read_record::<Certificates>(&name_key(name))?
            .ok_or_else(|| cert_not_found(name, None))?;
        let p = rec.policy.clone().unwrap_or_default();
        Ok(self.policy_out(&rec.name, p))
    }

    fn update_certificate_policy(
        &self,
        name: &str,
        update: &CertificatePolicy,
    ) -> Result<CertificatePolicy> {
        self.data_keys()?;
        check_cert_name(name)?;
        let nk = name_key(name);
        for _ in 0..MAX_RETRIES {
            let (mut rec, old) = self
                .read_record::<Certificates>(&nk)?
                .ok_or_else(|| cert_not_found(name, None))?;
            let stored = rec.policy.clone().unwrap_or_default();
            if let (Some(old_rp), Some(new_kp)) = (
                stored
                    .key_props
                    .as_ref()
                    .and_then(|k| k.release_policy.as_ref()),
                update.key_props.as_ref(),
            ) && old_rp.immutable == Some(true)
                && new_kp.release_policy.as_ref().is_some_and(|n| n != old_rp)
            {
                return Err(VaultError::bad(format!(
                    "the release policy of certificate '{}' is immutable and cannot be changed",
                    rec.name
                )));
            }
            let mut merged = merge_policy(&stored, update);
            let created = stored.attributes.as_ref().and_then(|a| a.created);
            if let Some(a) = merged.attributes.as_mut() {
                a.created = created;
            }
            let merged = normalize_policy(&merged, self.now().timestamp())?;
            rec.policy = Some(merged.clone());
            match self.store.transact(vec![
                Op::Expect {
                    table: Table::Certificates,
                    key: nk.clone(),
                    value: Some(old),
                },
                Op::Put {
                    table: Table::Certificates,
                    key: nk.clone(),
                    value: to_json(&rec)?,
                },
            ]) {
                Ok(()) => return Ok(self.policy_out(&rec.name, merged)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Conflict(format!(
            "certificate '{name}' is being changed concurrently; retry the operation"
        )))
    }

    // -----------------------------------------------------------------------------------------
    // Lifecycle helpers
    // -----------------------------------------------------------------------------------------

    /// Purge a deleted certificate's rows with its key's and secret's, in one transaction.
    fn purge_certificate_rows(&self, nk: &str) -> Result<()> {
        let mut ops = self.purge_ops::<Certificates>(nk)?;
        ops.extend(self.purge_ops::<Keys>(nk)?);
        ops.extend(self.purge_ops::<Secrets>(nk)?);
        ops.push(Op::Delete {
            table: Table::CertificateOperations,
            key: nk.to_string(),
        });
        self.store.transact(ops)?;
        Keys::changed(self, nk);
        Ok(())
    }

    /// Purge every deleted certificate (with its key and secret) whose scheduled purge date is
    /// `<= now`.
    pub(crate) fn purge_expired_certificates(&self, now: i64) -> Result<usize> {
        self.purge_expired_rows(
            lifecycle::CERTIFICATES,
            now,
            |v| {
                Ok(
                    from_json::<DeletedCertificateRecord>(v, "deleted certificate")?
                        .scheduled_purge,
                )
            },
            |k, _| self.purge_certificate_rows(k),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Issuers and contacts
    // -----------------------------------------------------------------------------------------

    fn issuer_not_found(name: &str) -> VaultError {
        VaultError::NotFound {
            code: "CertificateIssuerNotFound",
            message: format!("certificate issuer '{name}' was not found"),
        }
    }

    fn read_issuer(&self, name: &str) -> Result<Option<(IssuerRecord, Vec<u8>)>> {
        validate_name("issuer", name)?;
        match self
            .store
            .get(Table::CertificateIssuers, &issuer_key(&name_key(name)))?
        {
            None => Ok(None),
            Some(b) => Ok(Some((from_json(&b, "certificate issuer")?, b))),
        }
    }

    fn issuer_wire(&self, r: &IssuerRecord) -> IssuerBundle {
        IssuerBundle {
            id: Some(format!("{}/certificates/issuers/{}", self.base_url, r.name)),
            provider: Some(r.provider.clone()),
            credentials: r.account_id.as_ref().map(|a| IssuerCredentials {
                account_id: Some(a.clone()),
                pwd: None,
            }),
            org_details: r.org_details.clone(),
            attributes: Some(IssuerAttributes {
                enabled: Some(r.enabled),
                created: Some(r.created),
                updated: Some(r.updated),
            }),
        }
    }

    fn seal_issuer_pwd(&self, name: &str, pwd: Option<&SecretString>) -> Result<String> {
        let Some(pwd) = pwd else {
            return Ok(String::new());
        };
        let keys = self.data_keys()?;
        let aad = format!("enclava/v1/certificate-issuer/{}", name_key(name));
        Ok(hex::encode(aead_seal(
            &keys.object,
            aad.as_bytes(),
            pwd.as_str().as_bytes(),
        )?))
    }

    fn write_issuer(&self, r: &IssuerRecord, old: Option<Vec<u8>>) -> Result<()> {
        let key = issuer_key(&name_key(&r.name));
        self.store.transact(vec![
            Op::Expect {
                table: Table::CertificateIssuers,
                key: key.clone(),
                value: old,
            },
            Op::Put {
                table: Table::CertificateIssuers,
                key,
                value: to_json(r)?,
            },
        ])?;
        Ok(())
    }

    fn set_certificate_issuer(
        &self,
        name: &str,
        p: &CertificateIssuerSetParameters,
    ) -> Result<IssuerBundle> {
        self.data_keys()?;
        validate_name("issuer", name)?;
        for reserved in [
            issuer_names::SELF,
            issuer_names::ENCLAVA,
            issuer_names::UNKNOWN,
        ] {
            if name.eq_ignore_ascii_case(reserved) {
                return Err(VaultError::bad(format!(
                    "invalid issuer name: '{name}' is a built-in issuer"
                )));
            }
        }
        if p.provider.trim().is_empty() {
            return Err(VaultError::bad("expected an issuer provider, found none"));
        }
        let now = self.now().timestamp();
        let old = self.read_issuer(name)?;
        let r = IssuerRecord {
            name: old
                .as_ref()
                .map_or(name.to_string(), |(r, _)| r.name.clone()),
            provider: p.provider.clone(),
            account_id: p.credentials.as_ref().and_then(|c| c.account_id.clone()),
            sealed_pwd: self
                .seal_issuer_pwd(name, p.credentials.as_ref().and_then(|c| c.pwd.as_ref()))?,
            org_details: p.org_details.clone(),
            enabled: p
                .attributes
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(true),
            created: old.as_ref().map_or(now, |(r, _)| r.created),
            updated: now,
        };
        self.write_issuer(&r, old.map(|(_, b)| b))?;
        Ok(self.issuer_wire(&r))
    }

    fn get_certificate_issuer(&self, name: &str) -> Result<IssuerBundle> {
        self.data_keys()?;
        let (r, _) = self
            .read_issuer(name)?
            .ok_or_else(|| Self::issuer_not_found(name))?;
        Ok(self.issuer_wire(&r))
    }

    fn update_certificate_issuer(
        &self,
        name: &str,
        p: &CertificateIssuerUpdateParameters,
    ) -> Result<IssuerBundle> {
        self.data_keys()?;
        let (mut r, old) = self
            .read_issuer(name)?
            .ok_or_else(|| Self::issuer_not_found(name))?;
        if let Some(pr) = &p.provider {
            r.provider = pr.clone();
        }
        if let Some(c) = &p.credentials {
            if c.account_id.is_some() {
                r.account_id = c.account_id.clone();
            }
            if c.pwd.is_some() {
                r.sealed_pwd = self.seal_issuer_pwd(name, c.pwd.as_ref())?;
            }
        }
        if p.org_details.is_some() {
            r.org_details = p.org_details.clone();
        }
        if let Some(e) = p.attributes.as_ref().and_then(|a| a.enabled) {
            r.enabled = e;
        }
        r.updated = self.now().timestamp();
        self.write_issuer(&r, Some(old))?;
        Ok(self.issuer_wire(&r))
    }

    fn delete_certificate_issuer(&self, name: &str) -> Result<IssuerBundle> {
        self.data_keys()?;
        let (r, old) = self
            .read_issuer(name)?
            .ok_or_else(|| Self::issuer_not_found(name))?;
        let key = issuer_key(&name_key(name));
        self.store.transact(vec![
            Op::Expect {
                table: Table::CertificateIssuers,
                key: key.clone(),
                value: Some(old),
            },
            Op::Delete {
                table: Table::CertificateIssuers,
                key,
            },
        ])?;
        Ok(self.issuer_wire(&r))
    }

    fn list_certificate_issuers(
        &self,
        max_results: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page<CertificateIssuerItem>> {
        self.data_keys()?;
        let limit = crate::util::page_size(max_results)?;
        let after = crate::util::decode_token(continuation)?.map(|v| format!("issuer/{v}"));
        let rows = self.store.list(
            Table::CertificateIssuers,
            "issuer/",
            after.as_deref(),
            limit + 1,
        )?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            let r: IssuerRecord = from_json(&v, "certificate issuer")?;
            items.push(CertificateIssuerItem {
                id: format!("{}/certificates/issuers/{}", self.base_url, r.name),
                provider: Some(r.provider),
            });
            last = Some(k);
        }
        Ok(Page {
            items,
            continuation: match last {
                Some(k) if more => Some(crate::util::encode_token(
                    k.strip_prefix("issuer/").unwrap_or(&k),
                )),
                _ => None,
            },
        })
    }

    fn contacts_out(&self, mut c: Contacts) -> Contacts {
        c.id = Some(format!("{}/certificates/contacts", self.base_url));
        c
    }

    fn set_certificate_contacts(&self, c: &Contacts) -> Result<Contacts> {
        self.data_keys()?;
        let list = c.contact_list.clone().unwrap_or_default();
        if list.len() > 64 {
            return Err(VaultError::bad(format!(
                "too many contacts: expected at most 64, found {}",
                list.len()
            )));
        }
        for x in &list {
            if x.email_address.as_deref().is_none_or(|e| !e.contains('@')) {
                return Err(VaultError::bad(
                    "invalid contact: expected an email address (local@domain)",
                ));
            }
        }
        let stored = Contacts {
            id: None,
            contact_list: Some(list),
        };
        self.store.transact(vec![Op::Put {
            table: Table::CertificateIssuers,
            key: CONTACTS_KEY.to_string(),
            value: to_json(&stored)?,
        }])?;
        Ok(self.contacts_out(stored))
    }

    fn read_contacts(&self) -> Result<(Contacts, Vec<u8>)> {
        let b = self
            .store
            .get(Table::CertificateIssuers, CONTACTS_KEY)?
            .ok_or_else(|| VaultError::NotFound {
                code: "ContactsNotFound",
                message: "no certificate contacts are set".to_string(),
            })?;
        Ok((from_json(&b, "certificate contacts")?, b))
    }

    fn get_certificate_contacts(&self) -> Result<Contacts> {
        self.data_keys()?;
        let (c, _) = self.read_contacts()?;
        Ok(self.contacts_out(c))
    }

    fn delete_certificate_contacts(&self) -> Result<Contacts> {
        self.data_keys()?;
        let (c, old) = self.read_contacts()?;
        self.store.transact(vec![
            Op::Expect {
                table: Table::CertificateIssuers,
                key: CONTACTS_KEY.to_string(),
                value: Some(old),
            },
            Op::Delete {
                table: Table::CertificateIssuers,
                key: CONTACTS_KEY.to_string(),
            },
        ])?;
        Ok(self.contacts_out(c))
    }

    // -----------------------------------------------------------------------------------------
    // Lifetime actions
    // -----------------------------------------------------------------------------------------

    fn run_certificate_lifetime_actions(
        &self,
        now: DateTime<Utc>,
        ca: Option<&IssuingCa>,
    ) -> Result<Vec<CertificateLifetimeEvent>> {
        self.data_keys()?;
        let now = now.timestamp();
        let mut events = Vec::new();
        for nk in self.all_row_keys(Table::Certificates, "")? {
            let Some((rec, old)) = self.read_record::<Certificates>(&nk)? else {
                continue;
            };
            let Some(policy) = rec.policy.clone() else {
                continue;
            };
            let Some((vr, _)) = self.read_version::<Certificates>(&nk, &rec.latest)? else {
                continue;
            };
            let (Some(nbf), Some(exp)) = (vr.nbf, vr.exp) else {
                continue;
            };
            for (i, a) in policy.lifetime_actions.iter().flatten().enumerate() {
                let done_key = format!("{}/{i}", rec.latest);
                if rec.actions_done.contains(&done_key) {
                    continue;
                }
                let t = a.trigger.clone().unwrap_or_default();
                let due = match (t.lifetime_percentage, t.days_before_expiry) {
                    (Some(p), _) => nbf + (exp - nbf) * i64::from(p) / 100,
                    (None, Some(d)) => exp - i64::from(d) * 86_400,
                    _ => continue,
                };
                if now < due {
                    continue;
                }
                let mark = |r: &mut CertificateRecord| {
                    // Only the current version's entries matter: keep the list short.
                    let prefix = format!("{}/", r.latest);
                    r.actions_done.retain(|d| d.starts_with(&prefix));
                    r.actions_done.push(done_key.clone());
                };
                let mut event = CertificateLifetimeEvent {
                    name: rec.name.clone(),
                    action: CertificateAction::EmailContacts,
                    version: rec.latest.clone(),
                    new_version: None,
                    error: None,
                };
                let renewable = matches!(
                    issuer_name(&policy),
                    issuer_names::SELF | issuer_names::ENCLAVA
                );
                match a.action.as_ref().and_then(|x| x.action_type.as_deref()) {
                    Some("AutoRenew") if renewable => {
                        event.action = CertificateAction::AutoRenew;
                        match self.renew(&rec, &policy, &vr, old.clone(), ca, now, &done_key) {
                            Ok(Some(v)) => event.new_version = Some(v),
                            // Another replica renewed first.
                            Ok(None) => continue,
                            Err(e) => event.error = Some(e.to_string()),
                        }
                    }
                    other => {
                        if other == Some("AutoRenew") {
                            // Not renewable by the vault (CSR flow): recorded once with the
                            // reason, instead of failing again at every run.
                            event.action = CertificateAction::AutoRenew;
                            event.error = Some(format!(
                                "certificate '{}' cannot be renewed automatically: its issuer '{}' needs a CSR and merge",
                                rec.name,
                                issuer_name(&policy)
                            ));
                        }
                        let mut r = rec.clone();
                        mark(&mut r);
                        match self.store.transact(vec![
                            Op::Expect {
                                table: Table::Certificates,
                                key: nk.clone(),
                                value: Some(old.clone()),
                            },
                            Op::Put {
                                table: Table::Certificates,
                                key: nk.clone(),
                                value: to_json(&r)?,
                            },
                        ]) {
                            Ok(()) => {}
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                events.push(event);
                // The record changed: the next actions of this certificate wait for the next run.
                break;
            }
        }
        Ok(events)
    }

    /// Renew `rec` (whose stored bytes are `old`): a new version, unless the record changed
    /// meanwhile (`Ok(None)`: someone else acted).
    #[allow(clippy::too_many_arguments)]
    fn renew(
        &self,
        rec: &CertificateRecord,
        policy: &CertificatePolicy,
        vr: &CertificateVersionRecord,
        old: Vec<u8>,
        ca: Option<&IssuingCa>,
        now: i64,
        done_key: &str,
    ) -> Result<Option<String>> {
        let issuer = issuer_name(policy);
        if issuer != issuer_names::SELF && issuer != issuer_names::ENCLAVA {
            return Err(VaultError::bad(format!(
                "certificate '{}' cannot be renewed automatically: its issuer '{issuer}' needs a CSR and merge",
                rec.name
            )));
        }
        let key = self.new_cert_key(&rec.name, policy)?;
        let chain = self.issue_chain(policy, &key, ca, now)?;
        let done = done_key.to_string();
        match self.commit_certificate(
            NewVersion {
                name: &rec.name,
                policy,
                key_pkcs8: &key,
                chain,
                enabled: true,
                tags: vr.tags.as_ref(),
                version: None,
            },
            |_| Ok(Vec::new()),
            Some(old),
            |r| {
                r.actions_done.retain(|_| false);
                r.actions_done.push(done.clone());
            },
        ) {
            Ok((_, nv)) => Ok(Some(nv.version)),
            Err(VaultError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
