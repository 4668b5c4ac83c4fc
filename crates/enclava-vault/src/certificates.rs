//! Certificates: the third kind of the versioned-object model (see [`crate::object`]), as in
//! Key Vault. Each certificate version owns a key version and a secret version of the same name
//! and version id: the key does the crypto (`/keys` routes), the secret returns the certificate
//! with its private key (PFX or PEM) when the policy makes it exportable. The managed key and
//! secret are read-only through the key and secret functions; delete, recover, purge, backup and
//! restore of the certificate carry them along.
//!
//! X.509, PKCS#10, PKCS#12 and PEM work is `enclava-certs`'s; this module is storage and policy.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::Vault;
use crate::certmodel::*;
use crate::error::{Result, VaultError};
use crate::model::{BackupBlob, Page};

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
    /// once (`Enclava` needs `ca`, else 400); `Unknown` leaves an `inProgress` operation with a
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

fn not_yet() -> VaultError {
    VaultError::internal("certificates are not implemented yet")
}

impl Vault {
    fn create_certificate(
        &self,
        _name: &str,
        _params: &CertificateCreateParameters,
        _ca: Option<&IssuingCa>,
    ) -> Result<CertificateOperation> {
        Err(not_yet())
    }
    fn certificate_operation(&self, _name: &str) -> Result<CertificateOperation> {
        Err(not_yet())
    }
    fn update_certificate_operation(
        &self,
        _name: &str,
        _p: &CertificateOperationUpdateParameter,
    ) -> Result<CertificateOperation> {
        Err(not_yet())
    }
    fn delete_certificate_operation(&self, _name: &str) -> Result<CertificateOperation> {
        Err(not_yet())
    }
    fn merge_certificate(
        &self,
        _name: &str,
        _p: &CertificateMergeParameters,
    ) -> Result<CertificateBundle> {
        Err(not_yet())
    }
    fn import_certificate(
        &self,
        _name: &str,
        _p: &CertificateImportParameters,
    ) -> Result<CertificateBundle> {
        Err(not_yet())
    }
    fn get_certificate(&self, _name: &str, _version: Option<&str>) -> Result<CertificateBundle> {
        Err(not_yet())
    }
    fn update_certificate(
        &self,
        _name: &str,
        _version: Option<&str>,
        _p: &CertificateUpdateParameters,
    ) -> Result<CertificateBundle> {
        Err(not_yet())
    }
    fn get_certificate_policy(&self, _name: &str) -> Result<CertificatePolicy> {
        Err(not_yet())
    }
    fn update_certificate_policy(
        &self,
        _name: &str,
        _p: &CertificatePolicy,
    ) -> Result<CertificatePolicy> {
        Err(not_yet())
    }
    fn set_certificate_issuer(
        &self,
        _name: &str,
        _p: &CertificateIssuerSetParameters,
    ) -> Result<IssuerBundle> {
        Err(not_yet())
    }
    fn get_certificate_issuer(&self, _name: &str) -> Result<IssuerBundle> {
        Err(not_yet())
    }
    fn update_certificate_issuer(
        &self,
        _name: &str,
        _p: &CertificateIssuerUpdateParameters,
    ) -> Result<IssuerBundle> {
        Err(not_yet())
    }
    fn delete_certificate_issuer(&self, _name: &str) -> Result<IssuerBundle> {
        Err(not_yet())
    }
    fn list_certificate_issuers(
        &self,
        _m: Option<u32>,
        _c: Option<&str>,
    ) -> Result<Page<CertificateIssuerItem>> {
        Err(not_yet())
    }
    fn set_certificate_contacts(&self, _c: &Contacts) -> Result<Contacts> {
        Err(not_yet())
    }
    fn get_certificate_contacts(&self) -> Result<Contacts> {
        Err(not_yet())
    }
    fn delete_certificate_contacts(&self) -> Result<Contacts> {
        Err(not_yet())
    }
    fn run_certificate_lifetime_actions(
        &self,
        _now: DateTime<Utc>,
        _ca: Option<&IssuingCa>,
    ) -> Result<Vec<CertificateLifetimeEvent>> {
        Err(not_yet())
    }
}

#[allow(dead_code)]
fn _backup_type_check(_: BackupBlob) {}
