//! Service keys: the server's own signing keys, in a namespace no data-plane route, role or scope
//! can name.
//!
//! | key | algorithm | Meta row (sealed with `seal_aux`, purpose) |
//! |---|---|---|
//! | attestation token signer | ES256 P-256, or RS256 RSA-2048 (`attestation.alg`) | `service-keys/attestation-es256` / `-rs256` (`service-key/attestation-es256` / `-rs256`) |
//! | secure key release signer | RS256 RSA-2048 | `service-keys/release-rs256` (`service-key/release-rs256`) |
//! | local CA (issues the TLS, release and attestation-signer certificates) | ECDSA P-256 | `service-keys/local-ca` (`service-key/local-ca`) |
//! | certificate issuing CA (issues Key Vault certificates with issuer `Enclava`) | ECDSA P-256, self-signed "Enclava Certificate Issuing CA" | `service-keys/certificate-issuing-ca` (`service-key/certificate-issuing-ca`), key and CA certificate sealed together |
//!
//! The certificate issuing CA is deliberately NOT the local CA: clients trust the local CA for the
//! vault's own TLS, so a Certificates Officer who could have it sign would obtain a certificate for
//! the vault's host name. The issuing CA signs only data-plane certificates; its certificate is
//! public (`GET /enclava/certificates/ca`), its key is on no route.
//!
//! The access-token signing key and the audit checkpoint key were already sealed Meta rows
//! (`lifecycle.rs`) and keep their storage format.
//!
//! These keys live in `Table::Meta`, never in the Key Vault `Keys` table: a Crypto User cannot
//! sign with them, a Crypto Officer cannot import over or disable them, because no key route
//! reaches them. Only the service uses them, in process, while the vault is unsealed; their rows
//! open only under the vault's root key (`Vault::seal_aux`, a distinct purpose per key, so one
//! row cannot be swapped for another). Every start after unseal creates a missing key.
//!
//! The signers are versioned rings (newest first): rotation
//! (`POST /enclava/service-keys/{attestation|release}/rotate`, action `service-keys/rotate`,
//! Administrator only, audited) puts a new version in front and keeps `keep_previous` older ones
//! so tokens they signed keep verifying through `/certs` until they expire.
//!
//! Vaults created by older versions signed attestation tokens with the data-plane key
//! `enclava-attestation-es256` (`-rs256`). That key is simply no longer used: it stays in the
//! vault as an ordinary key with no power (its tokens are not in `/certs` and are refused for
//! key release); it is not deleted because it is user-visible data. The old sealed release key
//! (`release/signing-key`) becomes the first version of the release ring.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use enclava_store::{Op, Store, StoreError, Table};
use enclava_token::eku::{ATTESTATION_TOKEN_EKU, RELEASE_SIGNING_EKU, eku_extension_value};
use enclava_token::{Alg, Es256Signer, Rs256Signer, TokenSigner};
use enclava_vault::Vault;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The answer when a service key is missing or unusable: 503 `signer_unavailable` (the server's
/// state, not the client's mistake, and not an internal crash either: an operator can rotate or
/// restore the key). `message` must not contain key material.
pub fn unavailable(message: impl Into<String>) -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "signer_unavailable",
        message,
    )
}

/// Which service key an operator rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKeyKind {
    /// The attestation token signer (of the configured `attestation.alg`).
    Attestation,
    /// The secure key release answer signer.
    Release,
}

impl ServiceKeyKind {
    pub fn name(self) -> &'static str {
        match self {
            ServiceKeyKind::Attestation => "attestation",
            ServiceKeyKind::Release => "release",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "attestation" => Some(ServiceKeyKind::Attestation),
            "release" => Some(ServiceKeyKind::Release),
            _ => None,
        }
    }
}

/// One versioned signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    AttestationEs256,
    AttestationRs256,
    Release,
}

impl Ring {
    /// The attestation signer ring for `alg` (RS256, else ES256).
    pub fn attestation(alg: Alg) -> Ring {
        match alg {
            Alg::RS256 => Ring::AttestationRs256,
            _ => Ring::AttestationEs256,
        }
    }

    /// The Meta row holding the sealed ring.
    pub fn meta_key(self) -> &'static str {
        match self {
            Ring::AttestationEs256 => "service-keys/attestation-es256",
            Ring::AttestationRs256 => "service-keys/attestation-rs256",
            Ring::Release => "service-keys/release-rs256",
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            Ring::AttestationEs256 => "service-key/attestation-es256",
            Ring::AttestationRs256 => "service-key/attestation-rs256",
            Ring::Release => "service-key/release-rs256",
        }
    }

    fn rsa(self) -> bool {
        !matches!(self, Ring::AttestationEs256)
    }
}

/// Meta row of the sealed local CA key.
pub const CA_META: &str = "service-keys/local-ca";
const CA_PURPOSE: &str = "service-key/local-ca";
/// The pre-service-key release key row and its purpose (migrated into the release ring).
const LEGACY_RELEASE_META: &str = "release/signing-key";
const LEGACY_RELEASE_PURPOSE: &str = "release-signing-key";

/// A service key could not be loaded, created or stored. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service key {key}: {reason}")]
pub struct ServiceKeyError {
    pub key: &'static str,
    pub reason: String,
}

fn err(key: &'static str, reason: impl std::fmt::Display) -> ServiceKeyError {
    ServiceKeyError {
        key,
        reason: reason.to_string(),
    }
}

/// One version of a ring.
pub struct KeyVersion {
    /// Random 32 lower-case hex digits (the JWK `kid`).
    pub kid: String,
    /// Unix seconds.
    pub created: i64,
    pub pkcs8: Zeroizing<Vec<u8>>,
}

/// A loaded ring: versions newest first (never empty) and the digest of the stored row (to notice
/// a rotation by another process on the same database).
pub struct Loaded {
    pub versions: Vec<KeyVersion>,
    pub row_digest: [u8; 32],
}

impl Loaded {
    pub fn current(&self) -> &KeyVersion {
        // `decode` and `rotate` never produce an empty ring.
        &self.versions[0]
    }
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    kid: String,
    created: i64,
    /// Standard base64 PKCS#8 DER.
    pkcs8: String,
}

impl Drop for StoredVersion {
    fn drop(&mut self) {
        self.pkcs8.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct StoredRing {
    versions: Vec<StoredVersion>,
}

fn digest(row: &[u8]) -> [u8; 32] {
    Sha256::digest(row).into()
}

/// The digest of the ring's stored row (`None`: no row), without opening it.
pub fn row_digest(store: &dyn Store, ring: Ring) -> Result<Option<[u8; 32]>, ServiceKeyError> {
    Ok(store
        .get(Table::Meta, ring.meta_key())
        .map_err(|e| err(ring.meta_key(), e))?
        .map(|r| digest(&r)))
}

fn decode(vault: &Vault, ring: Ring, row: &[u8]) -> Result<Loaded, ServiceKeyError> {
    let key = ring.meta_key();
    let plain = vault
        .open_aux(ring.purpose(), row)
        .map_err(|e| err(key, e))?;
    let stored: StoredRing = serde_json::from_slice(&plain).map_err(|_| {
        err(
            key,
            "expected a sealed JSON key ring, found undecodable content",
        )
    })?;
    let mut versions = Vec::with_capacity(stored.versions.len());
    for v in &stored.versions {
        let pkcs8 = Zeroizing::new(
            STANDARD
                .decode(v.pkcs8.as_bytes())
                .map_err(|_| err(key, format!("version {}: undecodable key", v.kid)))?,
        );
        versions.push(KeyVersion {
            kid: v.kid.clone(),
            created: v.created,
            pkcs8,
        });
    }
    if versions.is_empty() {
        return Err(err(key, "expected at least one key version, found none"));
    }
    Ok(Loaded {
        versions,
        row_digest: digest(row),
    })
}

fn encode(vault: &Vault, ring: Ring, versions: &[KeyVersion]) -> Result<Vec<u8>, ServiceKeyError> {
    let stored = StoredRing {
        versions: versions
            .iter()
            .map(|v| StoredVersion {
                kid: v.kid.clone(),
                created: v.created,
                pkcs8: STANDARD.encode(v.pkcs8.as_slice()),
            })
            .collect(),
    };
    let json = Zeroizing::new(
        serde_json::to_vec(&stored).map_err(|e| err(ring.meta_key(), e.to_string()))?,
    );
    vault
        .seal_aux(ring.purpose(), &json)
        .map_err(|e| err(ring.meta_key(), e))
}

fn random_kid(key: &'static str) -> Result<String, ServiceKeyError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| err(key, "the random number generator failed"))?;
    Ok(hex::encode(b))
}

fn generate(ring: Ring) -> Result<KeyVersion, ServiceKeyError> {
    let key = ring.meta_key();
    let pkcs8 = if ring.rsa() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| err(key, "RSA key generation failed"))?;
        let der: aws_lc_rs::encoding::Pkcs8V1Der = pair
            .as_der()
            .map_err(|_| err(key, "RSA key encoding failed"))?;
        der.as_ref().to_vec()
    } else {
        let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| err(key, "P-256 key generation failed"))?;
        doc.as_ref().to_vec()
    };
    Ok(KeyVersion {
        kid: random_kid(key)?,
        created: chrono::Utc::now().timestamp(),
        pkcs8: Zeroizing::new(pkcs8),
    })
}

/// Write `versions` as the ring's row if the row still holds `expected` (`None`: absent).
fn store_ring(
    vault: &Vault,
    store: &dyn Store,
    ring: Ring,
    expected: Option<Vec<u8>>,
    versions: Vec<KeyVersion>,
) -> Result<Option<Loaded>, ServiceKeyError> {
    let row = encode(vault, ring, &versions)?;
    let row_digest = digest(&row);
    match store.transact(vec![
        Op::Expect {
            table: Table::Meta,
            key: ring.meta_key().into(),
            value: expected,
        },
        Op::Put {
            table: Table::Meta,
            key: ring.meta_key().into(),
            value: row,
        },
    ]) {
        Ok(()) => Ok(Some(Loaded {
            versions,
            row_digest,
        })),
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(e) => Err(err(ring.meta_key(), e)),
    }
}

/// The ring, created on first use. An existing row that does not open is an error (never
/// silently replaced: it may be tampering, and its keys may still be in use elsewhere); an
/// operator rotation replaces it.
pub fn load_or_create(
    vault: &Vault,
    store: &dyn Store,
    ring: Ring,
) -> Result<Loaded, ServiceKeyError> {
    let key = ring.meta_key();
    for _ in 0..3 {
        if let Some(row) = store.get(Table::Meta, key).map_err(|e| err(key, e))? {
            return decode(vault, ring, &row);
        }
        let first = match legacy_release_key(vault, store, ring)? {
            Some(v) => v,
            None => generate(ring)?,
        };
        if let Some(l) = store_ring(vault, store, ring, None, vec![first])? {
            return Ok(l);
        }
    }
    Err(err(key, "kept changing while loading it"))
}

/// The pre-service-key release signing key, adopted as the release ring's first version.
fn legacy_release_key(
    vault: &Vault,
    store: &dyn Store,
    ring: Ring,
) -> Result<Option<KeyVersion>, ServiceKeyError> {
    if ring != Ring::Release {
        return Ok(None);
    }
    let Some(row) = store
        .get(Table::Meta, LEGACY_RELEASE_META)
        .map_err(|e| err(ring.meta_key(), e))?
    else {
        return Ok(None);
    };
    match vault.open_aux(LEGACY_RELEASE_PURPOSE, &row) {
        Ok(pkcs8) => Ok(Some(KeyVersion {
            kid: random_kid(ring.meta_key())?,
            created: chrono::Utc::now().timestamp(),
            pkcs8,
        })),
        Err(e) => {
            tracing::warn!(error = %e, "the old release signing key does not open; creating a new one");
            Ok(None)
        }
    }
}

/// Rotate: a new version in front, at most `keep_previous` older ones behind it. A ring whose
/// row does not open is replaced by a ring of just the new key (the recovery path for a
/// corrupt row; logged).
pub fn rotate(
    vault: &Vault,
    store: &dyn Store,
    ring: Ring,
    keep_previous: usize,
) -> Result<Loaded, ServiceKeyError> {
    let key = ring.meta_key();
    for _ in 0..3 {
        let row = store.get(Table::Meta, key).map_err(|e| err(key, e))?;
        let mut versions = match &row {
            None => Vec::new(),
            Some(r) => match decode(vault, ring, r) {
                Ok(l) => l.versions,
                Err(e) => {
                    tracing::error!(error = %e, "service key ring unreadable; rotation replaces it");
                    Vec::new()
                }
            },
        };
        versions.truncate(keep_previous);
        versions.insert(0, generate(ring)?);
        if let Some(l) = store_ring(vault, store, ring, row, versions)? {
            tracing::info!(key, kid = %l.current().kid, "service key rotated");
            return Ok(l);
        }
    }
    Err(err(key, "kept changing while rotating it"))
}

// ---------------------------------------------------------------------------------------------
// The local CA

#[derive(Serialize, Deserialize)]
struct StoredCa {
    /// SHA-256 (hex) of the CA certificate DER this key belongs to (`ca.pem`).
    ca_sha256: String,
    /// Standard base64 PKCS#8 DER.
    pkcs8: String,
}

impl Drop for StoredCa {
    fn drop(&mut self) {
        self.pkcs8.zeroize();
    }
}

/// The local CA, open (only while the vault is unsealed).
pub struct LocalCa {
    issuer: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate (`ca.pem`), DER.
    pub der: Vec<u8>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("sha256", &hex::encode(Sha256::digest(&self.der)))
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// The CA of `ca_der` with its private key (PKCS#8 DER).
    pub fn new(pkcs8: &[u8], ca_der: Vec<u8>) -> Result<LocalCa, ServiceKeyError> {
        let key = KeyPair::try_from(pkcs8)
            .map_err(|e| err(CA_META, format!("expected a PKCS#8 CA key: {e}")))?;
        let issuer = crate::tls::ca_issuer(&key).map_err(|e| err(CA_META, e))?;
        Ok(LocalCa {
            issuer,
            key,
            der: ca_der,
        })
    }

    pub fn issuer(&self) -> (&rcgen::Certificate, &KeyPair) {
        (&self.issuer, &self.key)
    }

    /// Issue a leaf certificate for `subject_key` with exactly one purpose (`eku`, a dotted OID):
    /// DER.
    pub fn issue(
        &self,
        mut params: CertificateParams,
        subject_key: &impl rcgen::PublicKeyData,
        eku: &str,
    ) -> Result<Vec<u8>, ServiceKeyError> {
        params.extended_key_usages.clear();
        params.custom_extensions.push(purpose_extension(eku)?);
        params.use_authority_key_identifier_extension = true;
        params
            .signed_by(subject_key, &self.issuer, &self.key)
            .map(|c| c.der().to_vec())
            .map_err(|e| err(CA_META, format!("issuing a certificate failed: {e}")))
    }
}

/// The extKeyUsage extension naming exactly `eku`.
pub fn purpose_extension(eku: &str) -> Result<CustomExtension, ServiceKeyError> {
    let v = eku_extension_value(eku)
        .ok_or_else(|| err(CA_META, format!("expected a dotted OID, found {eku:?}")))?;
    Ok(CustomExtension::from_oid_content(&[2, 5, 29, 37], v))
}

/// Whether the store holds a sealed CA key (checked before unseal: no key material is read).
pub fn ca_is_sealed(store: &dyn Store) -> bool {
    matches!(store.get(Table::Meta, CA_META), Ok(Some(_)))
}

/// Seal `pkcs8` as the CA key of `ca_der`, replacing any other.
pub fn store_ca(
    vault: &Vault,
    store: &dyn Store,
    pkcs8: &[u8],
    ca_der: &[u8],
) -> Result<(), ServiceKeyError> {
    let stored = StoredCa {
        ca_sha256: hex::encode(Sha256::digest(ca_der)),
        pkcs8: STANDARD.encode(pkcs8),
    };
    let json = Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| err(CA_META, e))?);
    let row = vault
        .seal_aux(CA_PURPOSE, &json)
        .map_err(|e| err(CA_META, e))?;
    store
        .transact(vec![Op::Put {
            table: Table::Meta,
            key: CA_META.into(),
            value: row,
        }])
        .map_err(|e| err(CA_META, e))
}

/// The sealed CA for `ca_der` (`None`: nothing sealed). A key sealed for another CA certificate
/// is an error (`ca.pem` was replaced).
pub fn load_ca(
    vault: &Vault,
    store: &dyn Store,
    ca_der: &[u8],
) -> Result<Option<LocalCa>, ServiceKeyError> {
    let Some(row) = store
        .get(Table::Meta, CA_META)
        .map_err(|e| err(CA_META, e))?
    else {
        return Ok(None);
    };
    let plain = vault
        .open_aux(CA_PURPOSE, &row)
        .map_err(|e| err(CA_META, e))?;
    let stored: StoredCa = serde_json::from_slice(&plain).map_err(|_| {
        err(
            CA_META,
            "expected a sealed JSON CA key, found undecodable content",
        )
    })?;
    let want = hex::encode(Sha256::digest(ca_der));
    if stored.ca_sha256 != want {
        return Err(err(
            CA_META,
            format!(
                "expected the key of ca.pem (SHA-256 {want}), found the key of another CA certificate (SHA-256 {})",
                stored.ca_sha256
            ),
        ));
    }
    let pkcs8 = Zeroizing::new(
        STANDARD
            .decode(stored.pkcs8.as_bytes())
            .map_err(|_| err(CA_META, "undecodable key"))?,
    );
    LocalCa::new(&pkcs8, ca_der.to_vec()).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Signers

fn validity(p: &mut CertificateParams) {
    use chrono::Datelike;
    let now = chrono::Utc::now().date_naive();
    let (y, m, d) = (
        now.year(),
        u8::try_from(now.month()).unwrap_or(1),
        u8::try_from(now.day()).unwrap_or(1).min(28),
    );
    p.not_before = rcgen::date_time_ymd(y - 1, m, d);
    p.not_after = rcgen::date_time_ymd(y + 2, m, d);
}

fn token_signer(
    ring: Ring,
    v: &KeyVersion,
    ca: Option<&LocalCa>,
) -> Result<Arc<dyn TokenSigner>, ServiceKeyError> {
    let key = ring.meta_key();
    let x5c = match ca {
        None => None,
        Some(ca) => {
            let alg = if ring.rsa() {
                &rcgen::PKCS_RSA_SHA256
            } else {
                &rcgen::PKCS_ECDSA_P256_SHA256
            };
            let pair = KeyPair::from_pkcs8_der_and_sign_algo(
                &rustls::pki_types::PrivatePkcs8KeyDer::from(v.pkcs8.as_slice()),
                alg,
            )
            .map_err(|e| err(key, format!("version {}: {e}", v.kid)))?;
            let mut p = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::OrganizationName, "Enclava");
            dn.push(
                DnType::CommonName,
                format!("Enclava attestation token signer {}", v.kid),
            );
            p.distinguished_name = dn;
            p.is_ca = rcgen::IsCa::ExplicitNoCa;
            p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
            validity(&mut p);
            let leaf = ca.issue(p, &pair, ATTESTATION_TOKEN_EKU)?;
            Some(vec![STANDARD.encode(leaf), STANDARD.encode(&ca.der)])
        }
    };
    let bad = |e: enclava_token::TokenError| err(key, format!("version {}: {e}", v.kid));
    Ok(if ring.rsa() {
        let s = Rs256Signer::from_pkcs8(v.kid.clone(), &v.pkcs8).map_err(bad)?;
        Arc::new(match x5c {
            Some(c) => s.with_x5c(c),
            None => s,
        })
    } else {
        let s = Es256Signer::from_pkcs8(v.kid.clone(), &v.pkcs8).map_err(bad)?;
        Arc::new(match x5c {
            Some(c) => s.with_x5c(c),
            None => s,
        })
    })
}

/// The attestation token signers of a loaded ring: the current one and the previous ones, each
/// with an `x5c` from the local CA (purpose [`ATTESTATION_TOKEN_EKU`]) when there is one.
pub struct AttestationSigners {
    pub current: Arc<dyn TokenSigner>,
    pub previous: Vec<Arc<dyn TokenSigner>>,
    pub kid: String,
    pub row_digest: [u8; 32],
}

pub fn attestation_signers(
    loaded: &Loaded,
    ring: Ring,
    ca: Option<&LocalCa>,
) -> Result<AttestationSigners, ServiceKeyError> {
    let current = token_signer(ring, loaded.current(), ca)?;
    let previous = loaded
        .versions
        .iter()
        .skip(1)
        .filter_map(|v| match token_signer(ring, v, ca) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "a previous attestation signer does not load");
                None
            }
        })
        .collect();
    Ok(AttestationSigners {
        current,
        previous,
        kid: loaded.current().kid.clone(),
        row_digest: loaded.row_digest,
    })
}

/// The release certificate for the current release key: issued by the local CA with purpose
/// [`RELEASE_SIGNING_EKU`] (no serverAuth: it is not a TLS certificate and the TLS certificate is
/// not a release signer), subject alternative names = the vault's host names; self-signed when
/// the server has no local CA (operator TLS). Returns `x5c` (leaf, then CA).
pub fn release_x5c(
    pkcs8: &[u8],
    hostnames: &[String],
    ca: Option<&LocalCa>,
) -> Result<Vec<String>, ServiceKeyError> {
    let key = Ring::Release.meta_key();
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8),
        &rcgen::PKCS_RSA_SHA256,
    )
    .map_err(|e| err(key, e))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Enclava");
    dn.push(DnType::CommonName, "Enclava key release signing");
    p.distinguished_name = dn;
    let mut sans = Vec::new();
    for h in hostnames {
        let h = h.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = h.parse::<std::net::IpAddr>() {
            sans.push(rcgen::SanType::IpAddress(ip));
        } else {
            let name = h.to_string().try_into().map_err(|e: rcgen::Error| {
                err(key, format!("host name {h:?} is not a valid DNS name: {e}"))
            })?;
            sans.push(rcgen::SanType::DnsName(name));
        }
    }
    p.subject_alt_names = sans;
    // No basicConstraints extension: rcgen's explicit `cA FALSE` encodes a DER default, which
    // strict parsers (Python `cryptography`) reject.
    p.is_ca = rcgen::IsCa::NoCa;
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    validity(&mut p);
    match ca {
        Some(ca) => {
            let leaf = ca.issue(p, &pair, RELEASE_SIGNING_EKU)?;
            Ok(vec![STANDARD.encode(leaf), STANDARD.encode(&ca.der)])
        }
        None => {
            p.custom_extensions
                .push(purpose_extension(RELEASE_SIGNING_EKU)?);
            let leaf = p
                .self_signed(&pair)
                .map_err(|e| err(key, format!("issuing the release certificate failed: {e}")))?;
            Ok(vec![STANDARD.encode(leaf.der())])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The certificate issuing CA (issuer `Enclava` of the certificates data plane)

/// Meta row of the sealed certificate issuing CA (key and certificate).
pub const ISSUING_CA_META: &str = "service-keys/certificate-issuing-ca";
const ISSUING_CA_PURPOSE: &str = "service-key/certificate-issuing-ca";
/// The issuing CA's subject common name.
pub const ISSUING_CA_NAME: &str = "Enclava Certificate Issuing CA";
/// The issuing CA is valid this long (seconds): 20 years, far beyond any leaf it issues.
const ISSUING_CA_LIFETIME: i64 = 20 * 365 * 86_400;

#[derive(Serialize, Deserialize)]
struct StoredIssuingCa {
    /// Standard base64 CA certificate DER (sealed with the key: a row cannot pair a key with
    /// another certificate).
    cert: String,
    /// Standard base64 PKCS#8 DER.
    pkcs8: String,
}

impl Drop for StoredIssuingCa {
    fn drop(&mut self) {
        self.pkcs8.zeroize();
    }
}

/// A new issuing CA: a P-256 key and its self-signed certificate (pathLen 0, keyCertSign and
/// cRLSign), valid from an hour ago (clock skew) for [`ISSUING_CA_LIFETIME`].
fn new_issuing_ca(now: i64) -> Result<enclava_vault::IssuingCa, ServiceKeyError> {
    let key = ISSUING_CA_META;
    let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .map_err(|_| err(key, "P-256 key generation failed"))?;
    let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
    let cert_der = enclava_certs::new_issuing_ca(
        &pkcs8,
        ISSUING_CA_NAME,
        now - 3600,
        now + ISSUING_CA_LIFETIME,
    )
    .map_err(|e| err(key, format!("issuing the CA certificate failed: {e}")))?;
    Ok(enclava_vault::IssuingCa {
        cert_der,
        key_pkcs8: pkcs8,
    })
}

fn decode_issuing_ca(
    vault: &Vault,
    row: &[u8],
) -> Result<enclava_vault::IssuingCa, ServiceKeyError> {
    let key = ISSUING_CA_META;
    let plain = vault
        .open_aux(ISSUING_CA_PURPOSE, row)
        .map_err(|e| err(key, e))?;
    let stored: StoredIssuingCa = serde_json::from_slice(&plain).map_err(|_| {
        err(
            key,
            "expected a sealed JSON issuing CA, found undecodable content",
        )
    })?;
    let cert_der = STANDARD
        .decode(stored.cert.as_bytes())
        .map_err(|_| err(key, "undecodable CA certificate"))?;
    let key_pkcs8 = Zeroizing::new(
        STANDARD
            .decode(stored.pkcs8.as_bytes())
            .map_err(|_| err(key, "undecodable CA key"))?,
    );
    Ok(enclava_vault::IssuingCa {
        cert_der,
        key_pkcs8,
    })
}

/// The certificate issuing CA, created on first use (after init / the first unseal). Replicas
/// racing to create it agree on one (conditional write; the loser reads the winner's). A row that
/// does not open is an error, never silently replaced (the certificates it issued chain to it).
pub fn load_or_create_issuing_ca(
    vault: &Vault,
    store: &dyn Store,
) -> Result<enclava_vault::IssuingCa, ServiceKeyError> {
    let key = ISSUING_CA_META;
    for _ in 0..3 {
        if let Some(row) = store.get(Table::Meta, key).map_err(|e| err(key, e))? {
            return decode_issuing_ca(vault, &row);
        }
        let ca = new_issuing_ca(chrono::Utc::now().timestamp())?;
        let stored = StoredIssuingCa {
            cert: STANDARD.encode(&ca.cert_der),
            pkcs8: STANDARD.encode(ca.key_pkcs8.as_slice()),
        };
        let json = Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| err(key, e))?);
        let row = vault
            .seal_aux(ISSUING_CA_PURPOSE, &json)
            .map_err(|e| err(key, e))?;
        match store.transact(vec![
            Op::Expect {
                table: Table::Meta,
                key: key.into(),
                value: None,
            },
            Op::Put {
                table: Table::Meta,
                key: key.into(),
                value: row,
            },
        ]) {
            Ok(()) => return Ok(ca),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(err(key, e)),
        }
    }
    Err(err(key, "kept changing while loading it"))
}
