//! AMD SEV-SNP attestation reports: parsing, the AMD certificate chain, and verification into
//! [`Claims`].
//!
//! Follows the SEV-SNP Firmware ABI specification (ATTESTATION_REPORT structure, report versions 2
//! to 5, TCB_VERSION layouts including Turin's) and AMD's VCEK/VLEK certificate specification:
//!
//! 1. [`parse_report`]: exactly 1184 bytes, version 2-5, SIGNATURE_ALGO 1 (ECDSA P-384 SHA-384),
//!    every reserved field zero (policy bit 17 one), SIGNING_KEY 0, 1 or 7.
//! 2. The chain: exactly one VCEK or VLEK (EC P-384 leaf) in the endorsements, its issuer
//!    (ASK `SEV-<Product>` for a VCEK, ASVK `SEV-VLEK-<Product>` for a VLEK) among them, and that
//!    issuer signed by one of the AMD Root Keys pinned in [`roots`] (a supplied ARK must be
//!    byte-identical to the pinned one). All signatures RSASSA-PSS SHA-384. Every certificate
//!    must be valid at the verification time. CRLs, when supplied and issued by this chain's ARK
//!    or ASK, must verify and must not list the ASK or the leaf (CRLs of other issuers are
//!    ignored). Whether revocation could be checked at all is a claim, not a failure:
//!    `claims.revocation` says `checked` (a CRL of this chain's ARK, the one AMD's KDS serves at
//!    `vcek|vlek/v1/{product}/crl`, verified), which CRLs (issuer, cRLNumber, thisUpdate,
//!    nextUpdate, SHA-256) and whether all of them are `fresh` (current at the verification
//!    time). A stale CRL is reported, not refused: it is no worse than no CRL, which is also only
//!    visible in the claims, and the default `snp` policy denies both.
//! 3. The report: VMPL 0-3, signed (SIGNING_KEY not "none") by the kind of key the chain certifies,
//!    CPUID product (v3+) equal to the chain's product, ECDSA P-384 signature over bytes 0..0x2A0
//!    by the leaf, REPORTED_TCB equal to the leaf's TCB extensions (with the Turin layout on
//!    Turin), CHIP_ID equal to the VCEK's hwID (the 8-byte prefix on Turin; skipped when
//!    MASK_CHIP_KEY zeroed it, and for VLEKs, which have no hwID).
//!
//! [`SnpVerifier`] caches verified chains so that a repeated verification with the same
//! endorsements only costs the report's P-384 signature check.
//!
//! Stable `failed_check()` codes of [`SnpError`]:
//!
//! | code | meaning |
//! |---|---|
//! | `malformed_report` | wrong size, non-zero reserved field, reserved SIGNING_KEY value |
//! | `unsupported_report_version` | VERSION not 2, 3, 4 or 5 |
//! | `unsupported_signature_algorithm` | SIGNATURE_ALGO not 1 |
//! | `invalid_vmpl` | VMPL greater than 3 |
//! | `malformed_certificate` | a certificate or one of its AMD extensions does not parse |
//! | `malformed_cert_table` | the extended-report certificate table is inconsistent |
//! | `malformed_crl` | a CRL does not parse |
//! | `missing_certificate` | no VCEK/VLEK, or no ASK/ASVK for it |
//! | `ambiguous_certificates` | more than one different VCEK/VLEK |
//! | `untrusted_root` | the chain does not end at a pinned AMD ARK |
//! | `cert_chain_signature` | a certificate's signature or issuer does not match its parent |
//! | `certificate_expired` | a certificate is not valid at the verification time |
//! | `certificate_revoked` | a supplied CRL revokes the ASK/ASVK or the leaf |
//! | `crl_signature` | a CRL of this chain is not signed by its issuer |
//! | `product_mismatch` | product names of chain, certificate and report CPUID disagree |
//! | `signing_key_mismatch` | report SIGNING_KEY is not the certified key kind (or is "none") |
//! | `report_signature` | the report's ECDSA signature does not verify |
//! | `tcb_mismatch` | REPORTED_TCB differs from the leaf's TCB extensions |
//! | `chip_id_mismatch` | CHIP_ID differs from the VCEK's hwID |

pub mod certs;
pub mod intermediates;
pub mod report;
pub mod roots;
#[cfg(test)]
mod testpki;
mod verify;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Claims;

pub use certs::{
    CertTableEntry, CertTableKind, cert_blocks_from_pem_or_der, certs_from_pem_or_der,
    crls_from_pem_or_der, endorsements_from_cert_table, parse_cert_table,
};
pub use report::{
    AttestationReport, Cpuid, FirmwareVersion, GuestPolicy, KeyInfo, PlatformInfo, Product,
    SigningKey, TcbVersion, parse_report,
};
pub use verify::{SnpVerifier, VerifiedChain, verify_ark_crl, verify_chain};

/// Certificates and CRLs that endorse a report: VCEK or VLEK, ASK or ASVK, ARK (any order, DER),
/// from the extended report's certificate table, supplied files or an offline cache.
#[derive(Debug, Clone, Default)]
pub struct Endorsements {
    pub certs_der: Vec<Vec<u8>>,
    pub crls_der: Vec<Vec<u8>>,
}

/// A TCB_VERSION in the claims: the raw 8 bytes (hex, report byte order) and its components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcbClaims {
    pub raw: String,
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// Turin and later only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl TcbClaims {
    pub fn new(raw: u64, product: Product) -> TcbClaims {
        let t = AttestationReport::decode_tcb(raw, product);
        TcbClaims {
            raw: hex::encode(raw.to_le_bytes()),
            bootloader: t.bootloader,
            tee: t.tee,
            snp: t.snp,
            microcode: t.microcode,
            fmc: t.fmc,
        }
    }
}

/// SEV-SNP specific claims of a verified report. Hex strings are lower case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnpClaims {
    pub version: u32,
    pub product: Product,
    pub signing_key: SigningKey,
    pub chip_id: String,
    pub reported_tcb: TcbClaims,
    pub committed_tcb: TcbClaims,
    pub current_tcb: TcbClaims,
    pub launch_tcb: TcbClaims,
    pub policy: GuestPolicy,
    pub platform_info: PlatformInfo,
    pub vmpl: u32,
    pub guest_svn: u32,
    pub family_id: String,
    pub image_id: String,
    pub host_data: String,
    pub id_key_digest: String,
    pub author_key_digest: String,
    pub author_key_en: bool,
    pub mask_chip_key: bool,
    pub report_id: String,
    pub report_id_ma: String,
    /// Firmware version "major.minor.build".
    pub current_version: String,
    pub committed_version: String,
    /// Reports v3+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuid: Option<Cpuid>,
    /// Reports v4+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_mit_vector: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_mit_vector: Option<u64>,
    /// VLEK only: the cloud provider the VLEK was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csp_id: Option<String>,
    /// SHA-256 of the VCEK/VLEK certificate DER that signed the report.
    pub signer_cert_sha256: String,
}

/// Why an SEV-SNP report did not verify. `failed_check()` codes are listed in the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnpError {
    #[error("malformed report: {0}")]
    MalformedReport(String),
    #[error("unsupported report version: expected 2, 3, 4 or 5, found {found}")]
    UnsupportedReportVersion { found: u32 },
    #[error("unsupported signature algorithm: expected 1 (ECDSA P-384 SHA-384), found {found}")]
    UnsupportedSignatureAlgorithm { found: u32 },
    #[error("invalid VMPL: expected 0 to 3, found {found}")]
    InvalidVmpl { found: u32 },
    #[error("malformed certificate ({which}): {reason}")]
    MalformedCertificate { which: String, reason: String },
    #[error("malformed certificate table: {0}")]
    MalformedCertTable(String),
    #[error("malformed CRL: {0}")]
    MalformedCrl(String),
    #[error("missing certificate: {0}")]
    MissingCertificate(String),
    #[error("ambiguous certificates: {0}")]
    AmbiguousCertificates(String),
    #[error("untrusted root: {0}")]
    UntrustedRoot(String),
    #[error("certificate chain: {cert}: {reason}")]
    CertChainSignature { cert: String, reason: String },
    #[error(
        "certificate {cert} is not valid at {at}: expected {not_before} <= time <= {not_after}"
    )]
    CertificateExpired {
        cert: String,
        not_before: String,
        not_after: String,
        at: String,
    },
    #[error(
        "certificate revoked: {cert} (serial {serial}) is listed in a CRL issued by {crl_issuer}"
    )]
    CertificateRevoked {
        cert: String,
        serial: String,
        crl_issuer: String,
    },
    #[error("CRL signature: {0}")]
    CrlSignature(String),
    #[error("product mismatch: expected {expected}, found {found}")]
    ProductMismatch { expected: String, found: String },
    #[error(
        "signing key mismatch: the report says SIGNING_KEY={report}, the certificate chain certifies a {cert}"
    )]
    SigningKeyMismatch { report: String, cert: String },
    #[error("report signature: {0}")]
    ReportSignature(String),
    #[error(
        "TCB mismatch: {component}: REPORTED_TCB has {report}, the {cert_kind} certificate has {cert}"
    )]
    TcbMismatch {
        component: String,
        report: String,
        cert: String,
        cert_kind: String,
    },
    #[error("chip id mismatch: expected the VCEK hwID {expected}, found CHIP_ID {found}")]
    ChipIdMismatch { expected: String, found: String },
}

impl crate::error::FailedCheck for SnpError {
    fn failed_check(&self) -> &'static str {
        match self {
            SnpError::MalformedReport(_) => "malformed_report",
            SnpError::UnsupportedReportVersion { .. } => "unsupported_report_version",
            SnpError::UnsupportedSignatureAlgorithm { .. } => "unsupported_signature_algorithm",
            SnpError::InvalidVmpl { .. } => "invalid_vmpl",
            SnpError::MalformedCertificate { .. } => "malformed_certificate",
            SnpError::MalformedCertTable(_) => "malformed_cert_table",
            SnpError::MalformedCrl(_) => "malformed_crl",
            SnpError::MissingCertificate(_) => "missing_certificate",
            SnpError::AmbiguousCertificates(_) => "ambiguous_certificates",
            SnpError::UntrustedRoot(_) => "untrusted_root",
            SnpError::CertChainSignature { .. } => "cert_chain_signature",
            SnpError::CertificateExpired { .. } => "certificate_expired",
            SnpError::CertificateRevoked { .. } => "certificate_revoked",
            SnpError::CrlSignature(_) => "crl_signature",
            SnpError::ProductMismatch { .. } => "product_mismatch",
            SnpError::SigningKeyMismatch { .. } => "signing_key_mismatch",
            SnpError::ReportSignature(_) => "report_signature",
            SnpError::TcbMismatch { .. } => "tcb_mismatch",
            SnpError::ChipIdMismatch { .. } => "chip_id_mismatch",
        }
    }
}

/// Verify a 1184-byte attestation report against its endorsements as of `at` (cold path: the
/// chain is verified from scratch; see [`SnpVerifier`] for the cached path).
pub fn verify(
    report: &[u8],
    endorsements: &Endorsements,
    at: DateTime<Utc>,
) -> Result<Claims, SnpError> {
    verify::verify_uncached(report, endorsements, at)
}
