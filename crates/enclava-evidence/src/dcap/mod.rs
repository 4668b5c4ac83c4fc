//! Intel TDX and SGX DCAP quote verification (pure Rust, no I/O).
//!
//! Supported evidence: TDX quotes v4 and v5 (v5 body type 2 = TDX 1.0, 3 = TDX 1.5), SGX quotes v3,
//! ECDSA-256-with-P-256 attestation keys, certification data type 6 (QE report certification data)
//! wrapping type 5 (PEM PCK certificate chain). Collateral: Intel PCS API v4 TCB info v3 and QE
//! identity v2, root CA CRL and PCK CRL, TCB Signing chain (see [`Collateral`]).
//!
//! # Checks, in order
//! 1. Quote layout (bounds-checked; [`parse_quote`]), version and TEE type.
//! 2. PCK chain: leaf -> Intel SGX PCK Platform/Processor CA -> Intel SGX Root CA, every signature,
//!    with the root **pinned in code** ([`roots`]).
//! 3. QE report signature by the PCK leaf; QE report data = SHA-256(attestation key || QE auth
//!    data) || 32 zero bytes; quote signature (ECDSA P-256 over header || body) by the attestation key.
//! 4. With collateral: TCB info and QE identity signatures (ECDSA P-256 over the exact raw JSON of the
//!    `tcbInfo` / `enclaveIdentity` object) by the TCB Signing certificate chained to the root; root CA
//!    CRL signed by the root, PCK CRL signed by the quote's PCK CA; their windows at `at`
//!    (`issueDate`/`nextUpdate`, `thisUpdate`/`nextUpdate`); validity of every certificate at `at`;
//!    revocation of the PCK leaf (PCK CRL) and of the intermediates and TCB Signing certificate (root
//!    CA CRL); TCB info type, FMSPC and PCE-ID against the PCK certificate's SGX extension; TDX module
//!    identity; QE identity and QE TCB level; platform TCB level; TDX module identity and level (TDX
//!    1.5 modules, TEE_TCB_SVN\[1\] > 0); statuses converged like Intel's QVL (an OutOfDate QE or TDX
//!    module makes the result OutOfDate / OutOfDateConfigurationNeeded, a Revoked one makes it
//!    Revoked; for TDX 1.5 bodies QVL's TD relaunch check may yield `TDRelaunchAdvised` /
//!    `TDRelaunchAdvisedConfigurationNeeded`), advisory IDs merged (platform, module, QE).
//!
//! Resulting `tcb_status` values: UpToDate, SWHardeningNeeded, ConfigurationNeeded,
//! ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked,
//! TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded, and NotEvaluated (no collateral).
//!
//! # Without collateral
//! `collateral = None` checks only steps 1-3 and the validity of the PCK chain at `at`. The claims
//! then carry `tcb_status = Some("NotEvaluated")`: nothing is known about the platform's TCB, about
//! revocation, or about the QE's identity. Policies deny `NotEvaluated` by default.
//!
//! # Failed-check codes ([`crate::error::FailedCheck`])
//! | code | meaning |
//! |---|---|
//! | `malformed_quote` | the quote does not parse (truncated, bad lengths, bad body type) |
//! | `unsupported_quote_version` | not v3 (SGX) / v4 / v5 (TDX) |
//! | `unsupported_tee_type` | TEE type is neither SGX nor TDX, or not the one asked for |
//! | `unsupported_attestation_key_type` | attestation key type is not ECDSA-256-with-P-256 |
//! | `unsupported_certification_data` | certification data is not type 6 / nested type 5 |
//! | `quote_signature` | the attestation key's signature over header and body does not verify |
//! | `qe_report_signature` | the PCK's signature over the QE report does not verify |
//! | `qe_report_data_mismatch` | QE report data is not SHA-256(attestation key \|\| QE auth data) \|\| zeros |
//! | `malformed_certificate` | a certificate, a PEM chain or the PCK SGX extension does not parse |
//! | `untrusted_root` | a chain does not end in the pinned Intel SGX Root CA |
//! | `cert_chain_signature` | a certificate is not signed by its issuer (or names do not chain) |
//! | `certificate_expired` | a certificate is outside its validity window at `at` |
//! | `certificate_revoked` | the PCK, a PCK CA or the TCB Signing certificate is on a CRL |
//! | `crl_signature` | a CRL is not signed by its issuer |
//! | `crl_expired` | a CRL is outside `thisUpdate..nextUpdate` at `at` |
//! | `collateral_signature` | TCB info / QE identity signature does not verify, or a wrong signer |
//! | `collateral_expired` | TCB info / QE identity is outside `issueDate..nextUpdate` at `at` |
//! | `malformed_collateral` | collateral does not parse (JSON, CRL, hex, schema, version) |
//! | `missing_collateral` | a piece of collateral needed for this quote is absent |
//! | `collateral_mismatch` | collateral for another TEE (TCB info id, QE identity id) |
//! | `fmspc_mismatch` | the TCB info is for another FMSPC than the PCK certificate |
//! | `pce_id_mismatch` | the TCB info is for another PCE-ID than the PCK certificate |
//! | `tcb_level_not_found` | no platform / QE / TDX module TCB level matches |
//! | `qe_identity_mismatch` | QE MRSIGNER, ISVPRODID, MISCSELECT or ATTRIBUTES do not match |
//! | `tdx_module_mismatch` | MRSIGNER_SEAM / SEAM attributes / module identity do not match |

pub mod certs;
pub mod collateral;
pub mod quote;
pub mod roots;
pub mod tcb;
#[cfg(test)]
mod tests;

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{Claims, Tee};
use certs::{Cert, Crl, Ctx, PckExtension, SigCache};
pub use collateral::{Collateral, EnclaveIdentity, TcbInfo};
pub use quote::{Quote, QuoteBody, QuoteHeader, SgxReportBody, TdReportBody, parse_quote};
pub use tcb::TcbStatus;

/// The `tcb_status` of claims verified without collateral.
pub const NOT_EVALUATED: &str = "NotEvaluated";

/// TD attributes, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdAttributes {
    /// Bit 0: the TD is debuggable.
    pub debug: bool,
    /// Bit 28: EPT violation #VE disabled for private memory.
    pub sept_ve_disable: bool,
    /// Bit 30: supervisor protection keys.
    pub pks: bool,
    /// Bit 31: key locker.
    pub kl: bool,
    /// Bit 63: perfmon.
    pub perfmon: bool,
    /// The 8 bytes as in the report (hex).
    pub raw: String,
}

impl TdAttributes {
    fn from_bytes(b: &[u8; 8]) -> Self {
        let v = u64::from_le_bytes(*b);
        TdAttributes {
            debug: v & 1 != 0,
            sept_ve_disable: v & (1 << 28) != 0,
            pks: v & (1 << 30) != 0,
            kl: v & (1 << 31) != 0,
            perfmon: v & (1 << 63) != 0,
            raw: hex::encode(b),
        }
    }
}

/// SGX enclave attributes, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgxAttributes {
    pub debug: bool,
    pub mode64bit: bool,
    pub provision_key: bool,
    pub einittoken_key: bool,
    pub kss: bool,
    /// The 16 bytes (flags || xfrm) as in the report (hex).
    pub raw: String,
}

impl SgxAttributes {
    fn from_bytes(b: &[u8; 16]) -> Self {
        let flags = b[0];
        SgxAttributes {
            debug: flags & 0x02 != 0,
            mode64bit: flags & 0x04 != 0,
            provision_key: flags & 0x10 != 0,
            einittoken_key: flags & 0x20 != 0,
            kss: flags & 0x80 != 0,
            raw: hex::encode(b),
        }
    }
}

/// TCB evaluation results (all `None` without collateral).
#[derive(Debug, Clone, Default)]
struct TcbEvaluation {
    platform_tcb_status: Option<String>,
    qe_tcb_status: Option<String>,
    module_tcb_status: Option<String>,
    tcb_date: Option<String>,
    tcb_evaluation_data_number: Option<u32>,
    /// The Root CA CRL and the PCK CA CRL that were checked (unchecked without collateral).
    revocation: crate::RevocationClaims,
}

/// TDX-specific claims (hex lower case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TdxClaims {
    pub quote_version: u16,
    /// 2 = TDX 1.0 body, 3 = TDX 1.5 body (v4 quotes: 2).
    pub body_type: u16,
    /// "1.0" or "1.5".
    pub tdx_version: String,
    pub mr_td: String,
    pub rtmr0: String,
    pub rtmr1: String,
    pub rtmr2: String,
    pub rtmr3: String,
    pub mr_config_id: String,
    pub mr_owner: String,
    pub mr_owner_config: String,
    pub td_attributes: TdAttributes,
    pub xfam: String,
    pub mr_seam: String,
    pub mr_signer_seam: String,
    pub seam_attributes: String,
    pub tee_tcb_svn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee_tcb_svn2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_servicetd: Option<String>,
    /// The Quoting Enclave's ISVSVN (from the signed QE report).
    pub qe_svn: u16,
    /// The PCE SVN certified in the PCK certificate (what TCB levels are matched against).
    pub pce_svn: u16,
    /// From the PCK certificate.
    pub fmspc: String,
    pub pce_id: String,
    /// TCB evaluation (all `None` without collateral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_tcb_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qe_tcb_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_tcb_status: Option<String>,
    /// The matched platform TCB level's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_evaluation_data_number: Option<u32>,
}

/// SGX-specific claims (hex lower case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgxClaims {
    pub quote_version: u16,
    pub mr_enclave: String,
    pub mr_signer: String,
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    pub config_id: String,
    pub config_svn: u16,
    pub isv_ext_prod_id: String,
    pub isv_family_id: String,
    pub cpu_svn: String,
    pub misc_select: u32,
    pub attributes: SgxAttributes,
    /// The Quoting Enclave's ISVSVN (from the signed QE report).
    pub qe_svn: u16,
    /// The PCE SVN certified in the PCK certificate (what TCB levels are matched against).
    pub pce_svn: u16,
    /// From the PCK certificate.
    pub fmspc: String,
    pub pce_id: String,
    /// TCB evaluation (all `None` without collateral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_tcb_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qe_tcb_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_tcb_status: Option<String>,
    /// The matched platform TCB level's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_evaluation_data_number: Option<u32>,
}

/// Why a DCAP quote failed verification. [`crate::error::FailedCheck`] gives the stable code (see the
/// module documentation for the table).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DcapError {
    #[error("malformed quote: {0}")]
    MalformedQuote(String),
    #[error("unsupported quote version: expected {expected}, found {found}")]
    UnsupportedQuoteVersion { expected: &'static str, found: u16 },
    #[error("unsupported TEE type: expected {expected}, found {found:#x}")]
    UnsupportedTeeType { expected: &'static str, found: u32 },
    #[error("unsupported attestation key type: expected 2 (ECDSA-256 with P-256), found {found}")]
    UnsupportedAttestationKeyType { found: u16 },
    #[error("unsupported certification data: expected type {expected}, found type {found}")]
    UnsupportedCertificationData { expected: u16, found: u16 },
    #[error("quote signature: {0}")]
    QuoteSignature(String),
    #[error("QE report signature: {0}")]
    QeReportSignature(String),
    #[error("QE report data mismatch: expected {expected}, found {found}")]
    QeReportDataMismatch { expected: String, found: String },
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    #[error(
        "untrusted root: expected the pinned Intel SGX Root CA (sha256 {expected}), found {found}"
    )]
    UntrustedRoot { expected: String, found: String },
    #[error("certificate chain signature: {0}")]
    CertChainSignature(String),
    #[error(
        "certificate {subject:?} not valid at {at}: expected {not_before} <= time <= {not_after}"
    )]
    CertificateExpired {
        subject: String,
        not_before: String,
        not_after: String,
        at: String,
    },
    #[error("certificate {subject:?} (serial {serial}) is revoked by the CRL of {crl_issuer:?}")]
    CertificateRevoked {
        subject: String,
        serial: String,
        crl_issuer: String,
    },
    #[error("CRL signature: {0}")]
    CrlSignature(String),
    #[error("CRL of {issuer:?} not valid at {at}: expected {this_update} <= time <= {next_update}")]
    CrlExpired {
        issuer: String,
        this_update: String,
        next_update: String,
        at: String,
    },
    #[error("collateral signature: {0}")]
    CollateralSignature(String),
    #[error(
        "collateral expired: {what} not valid at {at}: expected {issue_date} <= time <= {next_update}"
    )]
    CollateralExpired {
        what: String,
        issue_date: String,
        next_update: String,
        at: String,
    },
    #[error("malformed collateral: {0}")]
    MalformedCollateral(String),
    #[error("missing collateral: {0}")]
    MissingCollateral(String),
    #[error("collateral mismatch: {what}: expected {expected}, found {found}")]
    CollateralMismatch {
        what: String,
        expected: String,
        found: String,
    },
    #[error("FMSPC mismatch: expected {expected} (PCK certificate), found {found} (TCB info)")]
    FmspcMismatch { expected: String, found: String },
    #[error("PCE-ID mismatch: expected {expected} (PCK certificate), found {found} (TCB info)")]
    PceIdMismatch { expected: String, found: String },
    #[error("TCB level not found: {0}")]
    TcbLevelNotFound(String),
    #[error("QE identity mismatch: {field}: expected {expected}, found {found}")]
    QeIdentityMismatch {
        field: String,
        expected: String,
        found: String,
    },
    #[error("TDX module mismatch: {field}: expected {expected}, found {found}")]
    TdxModuleMismatch {
        field: String,
        expected: String,
        found: String,
    },
}

impl crate::error::FailedCheck for DcapError {
    fn failed_check(&self) -> &'static str {
        match self {
            DcapError::MalformedQuote(_) => "malformed_quote",
            DcapError::UnsupportedQuoteVersion { .. } => "unsupported_quote_version",
            DcapError::UnsupportedTeeType { .. } => "unsupported_tee_type",
            DcapError::UnsupportedAttestationKeyType { .. } => "unsupported_attestation_key_type",
            DcapError::UnsupportedCertificationData { .. } => "unsupported_certification_data",
            DcapError::QuoteSignature(_) => "quote_signature",
            DcapError::QeReportSignature(_) => "qe_report_signature",
            DcapError::QeReportDataMismatch { .. } => "qe_report_data_mismatch",
            DcapError::MalformedCertificate(_) => "malformed_certificate",
            DcapError::UntrustedRoot { .. } => "untrusted_root",
            DcapError::CertChainSignature(_) => "cert_chain_signature",
            DcapError::CertificateExpired { .. } => "certificate_expired",
            DcapError::CertificateRevoked { .. } => "certificate_revoked",
            DcapError::CrlSignature(_) => "crl_signature",
            DcapError::CrlExpired { .. } => "crl_expired",
            DcapError::CollateralSignature(_) => "collateral_signature",
            DcapError::CollateralExpired { .. } => "collateral_expired",
            DcapError::MalformedCollateral(_) => "malformed_collateral",
            DcapError::MissingCollateral(_) => "missing_collateral",
            DcapError::CollateralMismatch { .. } => "collateral_mismatch",
            DcapError::FmspcMismatch { .. } => "fmspc_mismatch",
            DcapError::PceIdMismatch { .. } => "pce_id_mismatch",
            DcapError::TcbLevelNotFound(_) => "tcb_level_not_found",
            DcapError::QeIdentityMismatch { .. } => "qe_identity_mismatch",
            DcapError::TdxModuleMismatch { .. } => "tdx_module_mismatch",
        }
    }
}

/// Verify a TDX quote (v4/v5) into claims. With `collateral: None` only the quote and QE report
/// signatures, the QE report data binding and the PCK chain (to the pinned root, valid at `at`) are
/// checked, and `tcb_status` is `Some("NotEvaluated")`. This is the cold path; [`DcapVerifier`]
/// caches verified collateral signatures.
pub fn verify_tdx(
    quote: &[u8],
    collateral: Option<&Collateral>,
    at: DateTime<Utc>,
) -> Result<Claims, DcapError> {
    verify(quote, Expect::Tdx, collateral, at, &Ctx::default())
}

/// Verify an SGX quote (v3) into claims. Same collateral rules as [`verify_tdx`].
pub fn verify_sgx(
    quote: &[u8],
    collateral: Option<&Collateral>,
    at: DateTime<Utc>,
) -> Result<Claims, DcapError> {
    verify(quote, Expect::Sgx, collateral, at, &Ctx::default())
}

/// A verifier that remembers verified collateral signatures (TCB info, QE identity, CRLs, PCK and
/// TCB Signing chain links, and the PCK's signature over the QE report, which a platform repeats
/// in every quote; keyed by SHA-256 of key, message and signature) behind a mutex, bounded to
/// [`certs::SIG_CACHE_CAPACITY`] entries. Time windows, revocation and TCB matching are always
/// re-evaluated; the quote's own signature by the attestation key is never cached.
#[derive(Debug, Default)]
pub struct DcapVerifier {
    cache: Mutex<SigCache>,
    root: std::sync::OnceLock<Cert>,
}

impl DcapVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn verify_tdx(
        &self,
        quote: &[u8],
        collateral: Option<&Collateral>,
        at: DateTime<Utc>,
    ) -> Result<Claims, DcapError> {
        self.run(quote, Expect::Tdx, collateral, at)
    }

    pub fn verify_sgx(
        &self,
        quote: &[u8],
        collateral: Option<&Collateral>,
        at: DateTime<Utc>,
    ) -> Result<Claims, DcapError> {
        self.run(quote, Expect::Sgx, collateral, at)
    }

    fn run(
        &self,
        quote: &[u8],
        expect: Expect,
        collateral: Option<&Collateral>,
        at: DateTime<Utc>,
    ) -> Result<Claims, DcapError> {
        let root = match self.root.get() {
            Some(r) => r,
            None => {
                let parsed = certs::pinned_root()?;
                self.root.get_or_init(|| parsed)
            }
        };
        let ctx = Ctx {
            cache: Some(&self.cache),
        };
        verify_with_root(quote, expect, collateral, at, &ctx, root)
    }

    /// How many verified signatures are cached.
    pub fn cached_signatures(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Tdx,
    Sgx,
}

/// What the quote-only checks establish.
struct QuoteChecked {
    quote: Quote,
    pck_chain: std::sync::Arc<Vec<Cert>>,
    pck: PckExtension,
}

fn check_quote(
    bytes: &[u8],
    expect: Expect,
    root: &Cert,
    ctx: &Ctx<'_>,
) -> Result<QuoteChecked, DcapError> {
    let quote = parse_quote(bytes)?;
    match (expect, quote.is_tdx()) {
        (Expect::Tdx, false) => {
            return Err(DcapError::UnsupportedTeeType {
                expected: "0x81 (TDX)",
                found: quote.header.tee_type,
            });
        }
        (Expect::Sgx, true) => {
            return Err(DcapError::UnsupportedTeeType {
                expected: "0x00 (SGX)",
                found: quote.header.tee_type,
            });
        }
        _ => {}
    }
    // PCK chain to the pinned root.
    let pck_chain = ctx.memo(
        |c| &mut c.chains,
        &quote.pck_chain_pem,
        || {
            let chain = certs::parse_pem_chain(&quote.pck_chain_pem)?;
            certs::verify_chain(&chain, root, ctx)
        },
    )?;
    let [leaf, pck_ca, _root] = pck_chain.as_slice() else {
        return Err(DcapError::MalformedCertificate(format!(
            "PCK chain: expected PCK, PCK CA and root, found {} certificates",
            pck_chain.len()
        )));
    };
    let ca_cn = pck_ca.common_name();
    if ca_cn != certs::CN_PLATFORM_CA && ca_cn != certs::CN_PROCESSOR_CA {
        return Err(DcapError::CertChainSignature(format!(
            "PCK chain: expected issuer {:?} or {:?}, found {ca_cn:?}",
            certs::CN_PLATFORM_CA,
            certs::CN_PROCESSOR_CA
        )));
    }
    // QE report signed by the PCK. Cacheable: a platform's QE report stays the same across many
    // quotes (it binds the attestation key), and a hit means these exact bytes verified before.
    if !ctx.verify_fixed(
        leaf.public_key(),
        &quote.qe_report_raw,
        &quote.qe_report_signature,
    ) {
        return Err(DcapError::QeReportSignature(format!(
            "expected a valid signature by the PCK certificate (serial {}), found one that does not verify",
            hex::encode(leaf.serial())
        )));
    }
    // QE report data binds the attestation key and QE auth data.
    let mut h = Sha256::new();
    h.update(quote.attestation_key);
    h.update(&quote.qe_auth_data);
    let mut expected = [0u8; 64];
    expected[..32].copy_from_slice(&h.finalize());
    if quote.qe_report.report_data != expected {
        return Err(DcapError::QeReportDataMismatch {
            expected: hex::encode(expected),
            found: hex::encode(quote.qe_report.report_data),
        });
    }
    // Quote signed by the attestation key.
    let mut pk = [0x04u8; 65];
    pk[1..].copy_from_slice(&quote.attestation_key);
    if !Ctx::verify_fixed_uncached(&pk, &quote.signed, &quote.signature) {
        return Err(DcapError::QuoteSignature(
            "expected a valid ECDSA P-256 signature by the attestation key over header and body, found one that does not verify"
                .into(),
        ));
    }
    let pck = certs::pck_extension(leaf)?;
    Ok(QuoteChecked {
        quote,
        pck_chain,
        pck,
    })
}

fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, DcapError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            DcapError::MalformedCollateral(format!(
                "{what}: expected an RFC 3339 time, found {s:?} ({e})"
            ))
        })
}

fn check_window(what: &str, issue: &str, next: &str, at: DateTime<Utc>) -> Result<(), DcapError> {
    let i = parse_time(issue, &format!("{what} issueDate"))?;
    let n = parse_time(next, &format!("{what} nextUpdate"))?;
    if at < i || at > n {
        return Err(DcapError::CollateralExpired {
            what: what.to_string(),
            issue_date: i.to_rfc3339(),
            next_update: n.to_rfc3339(),
            at: at.to_rfc3339(),
        });
    }
    Ok(())
}

/// Verify a signed JSON object against its TCB Signing chain; returns the full chain.
fn verify_signed_json(
    what: &str,
    signed: &collateral::SignedJson,
    chain: &[Cert],
    root: &Cert,
    ctx: &Ctx<'_>,
) -> Result<Vec<Cert>, DcapError> {
    if chain.is_empty() {
        return Err(DcapError::MissingCollateral(format!(
            "expected the {what} issuer chain (Intel SGX TCB Signing), found none"
        )));
    }
    let full = certs::verify_chain(chain, root, ctx)?;
    let signer = match full.as_slice() {
        [signer, _root] if signer.common_name() == certs::CN_TCB_SIGNING => signer,
        _ => {
            return Err(DcapError::CollateralSignature(format!(
                "{what}: expected a signer {:?} issued by the root, found {:?} in a chain of {}",
                certs::CN_TCB_SIGNING,
                full.first().map(Cert::common_name).unwrap_or_default(),
                full.len()
            )));
        }
    };
    if signed.signature.len() != 64 {
        return Err(DcapError::MalformedCollateral(format!(
            "{what} signature: expected 64 bytes (r||s), found {}",
            signed.signature.len()
        )));
    }
    if !ctx.verify_fixed(signer.public_key(), &signed.body, &signed.signature) {
        return Err(DcapError::CollateralSignature(format!(
            "{what}: expected a valid signature by {:?}, found one that does not verify",
            certs::CN_TCB_SIGNING
        )));
    }
    Ok(full)
}

fn verify(
    bytes: &[u8],
    expect: Expect,
    collateral: Option<&Collateral>,
    at: DateTime<Utc>,
    ctx: &Ctx<'_>,
) -> Result<Claims, DcapError> {
    let root = certs::pinned_root()?;
    verify_with_root(bytes, expect, collateral, at, ctx, &root)
}

/// [`verify`] against an explicit root (tests use a test PKI; production always passes the pinned root).
fn verify_with_root(
    bytes: &[u8],
    expect: Expect,
    collateral: Option<&Collateral>,
    at: DateTime<Utc>,
    ctx: &Ctx<'_>,
    root: &Cert,
) -> Result<Claims, DcapError> {
    let checked = check_quote(bytes, expect, root, ctx)?;
    let (status, advisories, eval) = match collateral {
        None => {
            certs::check_chain_validity(&checked.pck_chain, at)?;
            (
                NOT_EVALUATED.to_string(),
                Vec::new(),
                TcbEvaluation::default(),
            )
        }
        Some(c) => evaluate(&checked, expect, c, at, root, ctx)?,
    };
    Ok(build_claims(&checked, status, advisories, eval))
}

fn evaluate(
    checked: &QuoteChecked,
    expect: Expect,
    c: &Collateral,
    at: DateTime<Utc>,
    root: &Cert,
    ctx: &Ctx<'_>,
) -> Result<(String, Vec<String>, TcbEvaluation), DcapError> {
    let quote = &checked.quote;
    // Signatures of the collateral.
    let tcb_signed = c
        .tcb_info
        .as_ref()
        .ok_or_else(|| DcapError::MissingCollateral("expected TCB info, found none".into()))?;
    let tcb_chain =
        verify_signed_json("TCB info", tcb_signed, &c.tcb_info_issuer_chain, root, ctx)?;
    let qe_signed = c
        .qe_identity
        .as_ref()
        .ok_or_else(|| DcapError::MissingCollateral("expected QE identity, found none".into()))?;
    let qe_chain_src = if c.qe_identity_issuer_chain.is_empty() {
        &c.tcb_info_issuer_chain
    } else {
        &c.qe_identity_issuer_chain
    };
    let qe_chain = verify_signed_json("QE identity", qe_signed, qe_chain_src, root, ctx)?;
    let tcb_info = ctx.memo(
        |c| &mut c.tcb_infos,
        &tcb_signed.body,
        || TcbInfo::parse(&tcb_signed.body),
    )?;
    let qe_identity = ctx.memo(
        |c| &mut c.qe_identities,
        &qe_signed.body,
        || EnclaveIdentity::parse(&qe_signed.body),
    )?;

    let root_crl = c.root_ca_crl.as_ref().ok_or_else(|| {
        DcapError::MissingCollateral("expected the Intel SGX Root CA CRL, found none".into())
    })?;
    root_crl.verify_signed_by(root, ctx)?;
    let (pck_leaf, pck_ca) = match checked.pck_chain.as_slice() {
        [leaf, ca, ..] => (leaf, ca),
        _ => {
            return Err(DcapError::MalformedCertificate(
                "PCK chain: expected PCK, PCK CA and root, found fewer".into(),
            ));
        }
    };
    let pck_crl: &Crl = c
        .pck_crls
        .iter()
        .find(|crl| certs::names_equal(crl.issuer(), pck_ca.subject()))
        .ok_or_else(|| {
            DcapError::MissingCollateral(format!(
                "expected a PCK CRL issued by {:?}, found {}",
                pck_ca.common_name(),
                if c.pck_crls.is_empty() {
                    "none".to_string()
                } else {
                    c.pck_crls
                        .iter()
                        .map(|x| format!("{:?}", x.issuer_cn()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        })?;
    pck_crl.verify_signed_by(pck_ca, ctx)?;
    if !c.pck_crl_issuer_chain.is_empty() {
        certs::verify_chain(&c.pck_crl_issuer_chain, root, ctx)?;
    }

    // Time: collateral windows, CRL windows, certificate validity.
    check_window("TCB info", &tcb_info.issue_date, &tcb_info.next_update, at)?;
    check_window(
        "QE identity",
        &qe_identity.issue_date,
        &qe_identity.next_update,
        at,
    )?;
    root_crl.check_validity(at)?;
    pck_crl.check_validity(at)?;
    certs::check_chain_validity(&checked.pck_chain, at)?;
    certs::check_chain_validity(&tcb_chain, at)?;
    certs::check_chain_validity(&qe_chain, at)?;

    // Revocation.
    let root_revoked = root_crl.revoked_serials();
    let pck_revoked = pck_crl.revoked_serials();
    certs::check_not_revoked(pck_ca, &root_revoked, certs::CN_ROOT)?;
    fn signer_of<'c>(chain: &'c [Cert], what: &str) -> Result<&'c Cert, DcapError> {
        chain.first().ok_or_else(|| {
            DcapError::MalformedCertificate(format!("{what} chain: expected a signer, found none"))
        })
    }
    certs::check_not_revoked(
        signer_of(&tcb_chain, "TCB info")?,
        &root_revoked,
        certs::CN_ROOT,
    )?;
    certs::check_not_revoked(
        signer_of(&qe_chain, "QE identity")?,
        &root_revoked,
        certs::CN_ROOT,
    )?;
    certs::check_not_revoked(pck_leaf, &pck_revoked, &pck_ca.common_name())?;

    // The collateral is for this platform and TEE.
    let (want_tcb_id, want_qe_id) = match expect {
        Expect::Tdx => ("TDX", "TD_QE"),
        Expect::Sgx => ("SGX", "QE"),
    };
    if tcb_info.id != want_tcb_id {
        return Err(DcapError::CollateralMismatch {
            what: "TCB info id".into(),
            expected: want_tcb_id.into(),
            found: tcb_info.id.clone(),
        });
    }
    if qe_identity.id != want_qe_id {
        return Err(DcapError::CollateralMismatch {
            what: "QE identity id".into(),
            expected: want_qe_id.into(),
            found: qe_identity.id.clone(),
        });
    }
    let fmspc = hex::encode(checked.pck.fmspc);
    if !tcb_info.fmspc.eq_ignore_ascii_case(&fmspc) {
        return Err(DcapError::FmspcMismatch {
            expected: fmspc,
            found: tcb_info.fmspc.to_ascii_lowercase(),
        });
    }
    let pce_id = hex::encode(checked.pck.pce_id);
    if !tcb_info.pce_id.eq_ignore_ascii_case(&pce_id) {
        return Err(DcapError::PceIdMismatch {
            expected: pce_id,
            found: tcb_info.pce_id.to_ascii_lowercase(),
        });
    }

    // QE identity, then TCB levels, TDX module, TD relaunch, convergence (QVL's order).
    let qe = tcb::check_qe_identity(&qe_identity, &quote.qe_report)?;
    let td = match &quote.body {
        QuoteBody::Td(td) => Some(td.as_ref()),
        QuoteBody::Sgx(_) => None,
    };
    let platform = tcb::match_platform(&tcb_info, &checked.pck, td)?;
    let mut status = platform.status;
    let mut advisories = platform.advisory_ids.clone();
    let mut module = None;
    if let Some(td) = td {
        module = tcb::check_tdx_module(&tcb_info, td)?;
        if let Some(m) = &module {
            status = status.converge(m.status);
            tcb::merge_advisories(&mut advisories, &m.advisory_ids);
        }
        if status != TcbStatus::Revoked {
            let sgx_status =
                tcb::match_sgx_only(&tcb_info, &checked.pck)?.unwrap_or(platform.status);
            status = tcb::relaunch_check(
                td,
                &tcb_info,
                sgx_status,
                status,
                module.as_ref().map(|m| m.status),
                qe.status,
            )?;
        }
    }
    status = status.converge(qe.status);
    tcb::merge_advisories(&mut advisories, &qe.advisory_ids);

    // Both CRLs verified, are current (a stale DCAP CRL fails verification with `crl_expired`)
    // and revoke nothing in the chains: the same claim shape as SEV-SNP.
    let revocation = crate::RevocationClaims::new(
        true,
        [root_crl, pck_crl]
            .into_iter()
            .map(|crl| crate::CrlClaims::from_crl(&crl.crl, &crl.der, crl.issuer_cn(), at))
            .collect(),
    );
    let eval = TcbEvaluation {
        platform_tcb_status: Some(platform.status.as_str().to_string()),
        qe_tcb_status: Some(qe.status.as_str().to_string()),
        module_tcb_status: module.map(|m| m.status.as_str().to_string()),
        tcb_date: Some(platform.tcb_date),
        tcb_evaluation_data_number: Some(tcb_info.tcb_evaluation_data_number),
        revocation,
    };
    Ok((status.as_str().to_string(), advisories, eval))
}

fn build_claims(
    checked: &QuoteChecked,
    status: String,
    advisory_ids: Vec<String>,
    tcb: TcbEvaluation,
) -> Claims {
    let q = &checked.quote;
    let fmspc = hex::encode(checked.pck.fmspc);
    let pce_id = hex::encode(checked.pck.pce_id);
    match &q.body {
        QuoteBody::Td(td) => {
            let attrs = TdAttributes::from_bytes(&td.td_attributes);
            Claims {
                tee: Tee::Tdx,
                debug: attrs.debug,
                measurement: hex::encode(td.mr_td),
                report_data: hex::encode(td.report_data),
                tcb_status: Some(status),
                advisory_ids,
                snp: None,
                tdx: Some(TdxClaims {
                    quote_version: q.header.version,
                    body_type: q.body_type,
                    tdx_version: if td.tee_tcb_svn2.is_some() {
                        "1.5"
                    } else {
                        "1.0"
                    }
                    .to_string(),
                    mr_td: hex::encode(td.mr_td),
                    rtmr0: hex::encode(td.rtmr[0]),
                    rtmr1: hex::encode(td.rtmr[1]),
                    rtmr2: hex::encode(td.rtmr[2]),
                    rtmr3: hex::encode(td.rtmr[3]),
                    mr_config_id: hex::encode(td.mr_config_id),
                    mr_owner: hex::encode(td.mr_owner),
                    mr_owner_config: hex::encode(td.mr_owner_config),
                    td_attributes: attrs,
                    xfam: hex::encode(td.xfam),
                    mr_seam: hex::encode(td.mr_seam),
                    mr_signer_seam: hex::encode(td.mr_signer_seam),
                    seam_attributes: hex::encode(td.seam_attributes),
                    tee_tcb_svn: hex::encode(td.tee_tcb_svn),
                    tee_tcb_svn2: td.tee_tcb_svn2.map(hex::encode),
                    mr_servicetd: td.mr_servicetd.map(hex::encode),
                    qe_svn: q.qe_report.isv_svn,
                    pce_svn: checked.pck.pce_svn,
                    fmspc,
                    pce_id,
                    platform_tcb_status: tcb.platform_tcb_status.clone(),
                    qe_tcb_status: tcb.qe_tcb_status.clone(),
                    module_tcb_status: tcb.module_tcb_status.clone(),
                    tcb_date: tcb.tcb_date.clone(),
                    tcb_evaluation_data_number: tcb.tcb_evaluation_data_number,
                }),
                sgx: None,
                azure: None,
                sim: None,
                revocation: Some(tcb.revocation.clone()),
            }
        }
        QuoteBody::Sgx(r) => {
            let attrs = SgxAttributes::from_bytes(&r.attributes);
            Claims {
                tee: Tee::Sgx,
                debug: attrs.debug,
                measurement: hex::encode(r.mr_enclave),
                report_data: hex::encode(r.report_data),
                tcb_status: Some(status),
                advisory_ids,
                snp: None,
                tdx: None,
                sgx: Some(SgxClaims {
                    quote_version: q.header.version,
                    mr_enclave: hex::encode(r.mr_enclave),
                    mr_signer: hex::encode(r.mr_signer),
                    isv_prod_id: r.isv_prod_id,
                    isv_svn: r.isv_svn,
                    config_id: hex::encode(r.config_id),
                    config_svn: r.config_svn,
                    isv_ext_prod_id: hex::encode(r.isv_ext_prod_id),
                    isv_family_id: hex::encode(r.isv_family_id),
                    cpu_svn: hex::encode(r.cpu_svn),
                    misc_select: r.misc_select,
                    attributes: attrs,
                    qe_svn: q.qe_report.isv_svn,
                    pce_svn: checked.pck.pce_svn,
                    fmspc,
                    pce_id,
                    platform_tcb_status: tcb.platform_tcb_status.clone(),
                    qe_tcb_status: tcb.qe_tcb_status.clone(),
                    module_tcb_status: tcb.module_tcb_status.clone(),
                    tcb_date: tcb.tcb_date.clone(),
                    tcb_evaluation_data_number: tcb.tcb_evaluation_data_number,
                }),
                azure: None,
                sim: None,
                revocation: Some(tcb.revocation.clone()),
            }
        }
    }
}
