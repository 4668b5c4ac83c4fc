//! NVIDIA GPU (Hopper, Blackwell) and NVSwitch (LS10) evidence: the SPDM GET_MEASUREMENTS
//! transcript, the device certificate chain, and the signed reference manifests (RIMs).
//!
//! Pure and offline: the caller supplies the report, the device chain, the RIMs it fetched or
//! cached, the nonce it chose and the verification time. [`verify`] checks, in order:
//!
//! 1. the report parses ([`spdm`]; `malformed_report`);
//! 2. the device chain (`cert_chain`): PEM/DER, leaf first, each certificate issued (name, CA flag,
//!    pathLenConstraint, ecdsa-with-SHA384) by the next; the last is the pinned NVIDIA Device
//!    Identity CA ([`roots::DEVICE_ROOT_PEM`], byte-identical) or is issued by it; every
//!    certificate valid at the verification time (`certificate_expired`);
//! 3. the report signature (`report_signature`): ECDSA P-384 over SHA-384 of request || response
//!    (without the signature) by the leaf's key;
//! 4. the nonce (`nonce`), when the caller supplies the one it chose;
//! 5. FWID (`fwid`): the report's FWID field equals the leaf's DICE FWID (Hopper: the last 48
//!    bytes of extension 2.23.133.5.4.1; Blackwell: `fwids[0].digest` of the TcbInfo extension
//!    2.23.133.5.4.1.1). A report without FWID (older firmware, NVSwitch) skips this check, as
//!    NVIDIA's verifiers do; the claims say `fwid_checked: false`;
//! 6. each RIM ([`rim`]): chain to the pinned RIM root (`rim_chain`), validity (`rim_expired`),
//!    XML-DSig (`rim_signature`); it must describe this device: edition GPU/SWITCH, product, and
//!    colloquialVersion equal to the report's driver or (V)BIOS version (`rim_mismatch`); two RIMs
//!    may not claim the same active index (`rim_index_conflict`);
//! 7. measurements (`measurement`): every active RIM index k is compared with SPDM block k+1; it
//!    matches when the block's value has the RIM's size and equals one of `Hash0..HashN`. The one
//!    documented exclusion: on GPUs, index 35 (NVDEC0) is not compared when the report's
//!    NVDEC0_STATUS field is 0x55 (disabled). Any mismatch fails with every mismatching index,
//!    expected and found.
//!
//! Without RIMs, steps 6-7 do not happen and the claims say `measres: "not_compared"`; with the
//! RIMs of only one component (e.g. VBIOS), `measres: "partial"`. Policies decide what they accept.
//!
//! 8. revocation ([`ocsp`]), with [`verify_with_ocsp`]: OCSP responses (stapled with the evidence
//!    or read from the collateral cache) for the device chain below the root, except the
//!    attestation leaf (the GPU makes it at boot; NVIDIA's OCSP knows only the certificates it
//!    issued), and for each applied RIM's signing path. A `revoked` answer fails
//!    (`cert_revoked` for the device chain, `rim_revoked` for a RIM's); an invalid response
//!    fails with its `ocsp_*` code; a missing or stale one leaves the certificate `not_checked` or
//!    `stale` in `claims.revocation`, which policies judge. [`verify`] takes no responses: its
//!    claims say `revocation.checked: false`.
//!
//! Fetching RIMs from NVIDIA's RIM service and OCSP responses from NVIDIA's responder is the
//! collateral layer's (`enclava-collateral`), never this module's. For many devices, verify each
//! RIM once ([`rim::CheckedRim`], kept per RIM id) and use one [`NvidiaVerifier`] (verified chain
//! links cached).

pub mod ocsp;
pub mod rim;
pub mod roots;
pub mod spdm;
mod x509;
mod xml;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use x509::Cert;

/// Why NVIDIA evidence did not verify. `failed_check()` codes:
///
/// | code | meaning |
/// |---|---|
/// | `malformed_report` | the SPDM transcript does not parse |
/// | `malformed_evidence` | the JSON evidence list does not parse, or its fields contradict the report |
/// | `malformed_certificate` | a certificate does not parse |
/// | `cert_chain` | the device chain does not reach the pinned NVIDIA Device Identity CA |
/// | `certificate_expired` | a device certificate is not valid at the verification time |
/// | `report_signature` | the report's signature does not verify under the leaf |
/// | `nonce` | the report's nonce is not the expected one |
/// | `fwid` | the report's FWID differs from the leaf certificate's |
/// | `malformed_rim` | a RIM does not parse |
/// | `rim_chain` | a RIM's signer does not chain to the pinned NVIDIA RIM root |
/// | `rim_expired` | a certificate of a RIM's path is not valid at the verification time |
/// | `rim_signature` | a RIM's XML signature does not verify |
/// | `rim_mismatch` | a RIM is not for this device (kind, product or version) or two RIMs overlap in role |
/// | `rim_index_conflict` | two RIMs both have an active measurement at the same index |
/// | `measurement` | measurement index k differs from the RIM |
/// | `cert_revoked` | OCSP says a device chain certificate is revoked (any reason, certificateHold included) |
/// | `rim_revoked` | OCSP says a certificate of a RIM's signing path is revoked |
/// | `ocsp_*` | an OCSP response for one of the chains is invalid (see [`ocsp::OcspError`]) |
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NvidiaError {
    #[error("malformed report: {0}")]
    MalformedReport(String),
    #[error("malformed evidence: {0}")]
    MalformedEvidence(String),
    #[error("malformed certificate ({which}): {reason}")]
    MalformedCertificate { which: String, reason: String },
    #[error("device certificate chain: {0}")]
    CertChain(String),
    #[error(
        "device certificate {cert} is not valid at {at}: expected {not_before} <= time <= {not_after}"
    )]
    CertificateExpired {
        cert: String,
        not_before: String,
        not_after: String,
        at: String,
    },
    #[error("report signature: {0}")]
    ReportSignature(String),
    #[error("nonce mismatch: expected {expected}, found {found} in the report")]
    Nonce { expected: String, found: String },
    #[error(
        "FWID mismatch: expected the leaf certificate's {expected}, found {found} in the report"
    )]
    Fwid { expected: String, found: String },
    #[error("malformed RIM: {0}")]
    MalformedRim(String),
    #[error("RIM signature: {0}")]
    RimSignature(String),
    #[error("RIM certificate chain: {0}")]
    RimChain(String),
    #[error(
        "RIM expired: certificate {cert} is not valid at {at}: expected {not_before} <= time <= {not_after}"
    )]
    RimExpired {
        cert: String,
        not_before: String,
        not_after: String,
        at: String,
    },
    #[error("RIM mismatch: {0}")]
    RimMismatch(String),
    #[error("RIM index conflict: index {index} is active in both {first} and {second}")]
    RimIndexConflict {
        index: u32,
        first: String,
        second: String,
    },
    #[error("{}", measurement_message(.0))]
    Measurement(Vec<MeasurementMismatch>),
    /// `chain` is `device` or the RIM's kind (`driver`, `vbios`, `bios`).
    #[error("{chain} chain certificate {cert} is revoked since {time} (reason {})", .reason.as_deref().unwrap_or("not given"))]
    Revoked {
        chain: String,
        cert: String,
        time: String,
        reason: Option<String>,
    },
    #[error("{chain} chain certificate {cert}: {error}")]
    Ocsp {
        chain: String,
        cert: String,
        error: ocsp::OcspError,
    },
}

/// One measurement that differs from its RIM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementMismatch {
    /// RIM index (0-based; SPDM block `index + 1`).
    pub index: u32,
    /// `driver`, `vbios` (GPU) or `bios` (NVSwitch).
    pub rim: String,
    /// The RIM's alternatives (hex).
    pub expected: Vec<String>,
    /// The report's value (hex), or `None` when the report has no such block.
    pub found: Option<String>,
}

fn measurement_message(m: &[MeasurementMismatch]) -> String {
    let Some(first) = m.first() else {
        return "measurement mismatch".into();
    };
    let all: Vec<String> = m.iter().map(|x| x.index.to_string()).collect();
    format!(
        "measurement index {} ({} RIM) expected {}, found {}; mismatching indices: [{}]",
        first.index,
        first.rim,
        first.expected.join(" or "),
        first.found.as_deref().unwrap_or("no such block"),
        all.join(",")
    )
}

impl crate::error::FailedCheck for NvidiaError {
    fn failed_check(&self) -> &'static str {
        match self {
            NvidiaError::MalformedReport(_) => "malformed_report",
            NvidiaError::MalformedEvidence(_) => "malformed_evidence",
            NvidiaError::MalformedCertificate { .. } => "malformed_certificate",
            NvidiaError::CertChain(_) => "cert_chain",
            NvidiaError::CertificateExpired { .. } => "certificate_expired",
            NvidiaError::ReportSignature(_) => "report_signature",
            NvidiaError::Nonce { .. } => "nonce",
            NvidiaError::Fwid { .. } => "fwid",
            NvidiaError::MalformedRim(_) => "malformed_rim",
            NvidiaError::RimSignature(_) => "rim_signature",
            NvidiaError::RimChain(_) => "rim_chain",
            NvidiaError::RimExpired { .. } => "rim_expired",
            NvidiaError::RimMismatch(_) => "rim_mismatch",
            NvidiaError::RimIndexConflict { .. } => "rim_index_conflict",
            NvidiaError::Measurement(_) => "measurement",
            NvidiaError::Revoked { chain, .. } if chain == "device" => "cert_revoked",
            NvidiaError::Revoked { .. } => "rim_revoked",
            NvidiaError::Ocsp { error, .. } => error.code(),
        }
    }
}

/// Normalized claims of one verified GPU or NVSwitch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvidiaClaims {
    /// `gpu` or `switch`.
    pub device: String,
    /// `HOPPER`, `BLACKWELL` or `LS10`.
    pub arch: String,
    /// CN of the leaf's issuer (the device's BROM certificate), e.g. `GH100 A01 GSP BROM`.
    pub hwmodel: String,
    /// The leaf certificate's serial number, decimal (NVIDIA's `ueid`).
    pub ueid: String,
    /// `Meta/@FirmwareManufacturerId` of the verified RIMs (`5703` for NVIDIA), when RIMs were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oemid: Option<String>,
    /// The requester nonce in the report (hex).
    pub nonce: String,
    /// True when the caller supplied the expected nonce and it matched.
    pub nonce_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// VBIOS (GPU) or BIOS (NVSwitch) version, e.g. `96.00.9F.00.01`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vbios_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip_sku: Option<String>,
    /// FWID from the report (hex), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwid: Option<String>,
    /// True when the report carried a FWID and it equals the leaf's.
    pub fwid_checked: bool,
    /// PROTECTED_PCIE_STATUS (PPCIE mode): `enabled` (0xAA), `disabled` (0x55), the raw hex
    /// otherwise; absent when the report has no such field (older firmware, NVSwitch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppcie_status: Option<String>,
    /// NVSwitch lock status (SWITCH_LOCK_STATUS, hex), NVSwitch only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_lock_status: Option<String>,
    /// NVDEC0_STATUS: `enabled` (0xAA), `disabled` (0x55), raw hex otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvdec0_status: Option<String>,
    /// `success` (every component's RIM given and every active index matched), `partial` (some
    /// components' RIMs given, all their indices matched), `not_compared` (no RIMs).
    pub measres: String,
    /// Per compared index, in RIM index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<MeasurementResult>,
    /// The RIMs that were verified and applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rims: Vec<RimClaims>,
    /// RIM ids this device needs from NVIDIA's RIM service (driver, VBIOS), when derivable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rim_ids: Vec<String>,
    /// Number of measurement blocks in the report.
    pub measurement_blocks: usize,
    /// SHA-256 of the leaf (attestation key) certificate DER.
    pub leaf_cert_sha256: String,
    /// OCSP results per chain (device, each applied RIM). `checked: false`, `status:
    /// "not_checked"` unless responses were given ([`verify_with_ocsp`]).
    #[serde(default)]
    pub revocation: ocsp::RevocationClaims,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementResult {
    /// RIM index (0-based).
    pub index: u32,
    /// `driver`, `vbios` or `bios`.
    pub rim: String,
    /// `match` or `skipped` (documented exclusion: NVDEC0 disabled, index 35).
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RimClaims {
    /// `driver`, `vbios` or `bios`.
    pub kind: String,
    /// The RIM id NVIDIA's RIM service serves it under, when derivable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub tag_id: String,
    pub version: String,
    pub signer: String,
    /// Earliest notAfter of its signing path (RFC 3339).
    pub cert_expiration: String,
}

/// One device's evidence: the raw SPDM transcript and its certificate chain (PEM or DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvidence {
    /// `arch` as the JSON list says (unsigned; checked against the chain), if known.
    pub arch: Option<String>,
    /// `nonce` as the JSON list says (unsigned; checked against the report), if known.
    pub nonce: Option<Vec<u8>>,
    pub report: Vec<u8>,
    pub certs: Vec<u8>,
}

/// Parse the JSON list NVIDIA's SDKs produce: `[{arch, nonce, evidence (base64 SPDM),
/// certificate (base64 PEM chain), ...}]` (other fields ignored).
pub fn parse_evidence_list(json: &[u8]) -> Result<Vec<DeviceEvidence>, NvidiaError> {
    let bad = |m: String| NvidiaError::MalformedEvidence(m);
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let list = v
        .as_array()
        .ok_or_else(|| bad("expected a JSON list of device evidence objects".into()))?;
    if list.is_empty() {
        return Err(bad(
            "expected at least one device, found an empty list".into()
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let field = |k: &str| -> Result<&str, NvidiaError> {
                e.get(k)
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| bad(format!("entry {i}: expected a string field {k:?}")))
            };
            let report = b64
                .decode(field("evidence")?.trim())
                .map_err(|e| bad(format!("entry {i}: evidence is not base64: {e}")))?;
            let certs = b64
                .decode(field("certificate")?.trim())
                .map_err(|e| bad(format!("entry {i}: certificate is not base64: {e}")))?;
            let nonce = match e.get("nonce").and_then(|x| x.as_str()) {
                Some(n) => Some(
                    hex::decode(n.trim_start_matches("0x"))
                        .map_err(|e| bad(format!("entry {i}: nonce is not hex: {e}")))?,
                ),
                None => None,
            };
            Ok(DeviceEvidence {
                arch: e.get("arch").and_then(|x| x.as_str()).map(str::to_string),
                nonce,
                report,
                certs,
            })
        })
        .collect()
}

/// Verify one device's report and chain, and appraise it against `rims` (RIM XML documents), as
/// of `at`. `expected_nonce`, when given, must be the report's requester nonce.
pub fn verify(
    report: &[u8],
    certs: &[u8],
    rims: &[&[u8]],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<NvidiaClaims, NvidiaError> {
    let parsed_rims = rims
        .iter()
        .map(|r| rim::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    verify_parsed(report, certs, &parsed_rims, expected_nonce, at)
}

/// [`verify`] for a [`DeviceEvidence`] from the JSON list: its unsigned `nonce` and `arch` fields
/// must agree with what the report and chain say.
pub fn verify_device(
    ev: &DeviceEvidence,
    rims: &[rim::Rim],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<NvidiaClaims, NvidiaError> {
    let claims = verify_parsed(&ev.report, &ev.certs, rims, expected_nonce, at)?;
    check_list_fields(ev, claims)
}

fn check_list_fields(
    ev: &DeviceEvidence,
    claims: NvidiaClaims,
) -> Result<NvidiaClaims, NvidiaError> {
    if let Some(n) = &ev.nonce
        && hex::encode(n) != claims.nonce
    {
        return Err(NvidiaError::MalformedEvidence(format!(
            "the JSON nonce {} is not the report's nonce {}",
            hex::encode(n),
            claims.nonce
        )));
    }
    if let Some(a) = &ev.arch
        && !a.eq_ignore_ascii_case(&claims.arch)
    {
        return Err(NvidiaError::MalformedEvidence(format!(
            "the JSON arch {a:?} is not the chain's {}",
            claims.arch
        )));
    }
    Ok(claims)
}

/// [`verify`] with RIMs already parsed (a cache can parse each RIM once).
pub fn verify_parsed(
    report: &[u8],
    certs: &[u8],
    rims: &[rim::Rim],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<NvidiaClaims, NvidiaError> {
    let rims: Vec<RimInput> = rims.iter().map(RimInput::Unverified).collect();
    verify_inner(report, certs, &rims, expected_nonce, at, &[], None)
}

/// [`verify`] with RIMs verified once ([`rim::CheckedRim`], e.g. from a per-id cache: their
/// XML-DSig is not verified again, only their validity window at `at`) and OCSP responses
/// (`ocsp`: DER OCSPResponses, stapled or cached, in any order; each is used for the
/// certificates its certIDs name). See step 8 of the module documentation.
pub fn verify_with_ocsp(
    report: &[u8],
    certs: &[u8],
    rims: &[&rim::CheckedRim],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
    ocsp: &[Vec<u8>],
) -> Result<NvidiaClaims, NvidiaError> {
    let rims: Vec<RimInput> = rims.iter().map(|r| RimInput::Checked(r)).collect();
    verify_inner(report, certs, &rims, expected_nonce, at, ocsp, None)
}

/// Largest number of verified certificate links an [`NvidiaVerifier`] keeps (then it starts
/// over): a few per device, so thousands of GPUs.
pub const LINK_CACHE_CAPACITY: usize = 16_384;

/// [`verify_with_ocsp`] with a cache of verified device-chain links (certificate, issuer): a
/// repeated verification of the same device costs the report parse, the report signature, the
/// validity-time checks, the RIM comparison and OCSP matching, not the chain's signatures. Only
/// links that verified are cached, keyed by the SHA-256 of both certificates' DER; the result is
/// always identical to [`verify_with_ocsp`]'s.
#[derive(Default)]
pub struct NvidiaVerifier {
    links: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for NvidiaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvidiaVerifier")
            .field("cached_links", &self.cached_links())
            .finish()
    }
}

impl NvidiaVerifier {
    pub fn new() -> NvidiaVerifier {
        NvidiaVerifier::default()
    }

    /// Number of verified links currently cached.
    pub fn cached_links(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<[u8; 32]>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(cert: &Cert, issuer: &Cert) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((cert.der.len() as u64).to_le_bytes());
        h.update(&cert.der);
        h.update(&issuer.der);
        h.finalize().into()
    }

    fn check_link(&self, cert: &Cert, issuer: &Cert) -> Result<(), String> {
        let key = NvidiaVerifier::key(cert, issuer);
        if self.lock().contains(&key) {
            return Ok(());
        }
        cert.check_issued_by(issuer)?;
        let mut links = self.lock();
        if links.len() >= LINK_CACHE_CAPACITY {
            links.clear();
        }
        links.insert(key);
        Ok(())
    }

    /// [`verify_with_ocsp`], with the link cache.
    pub fn verify_with_ocsp(
        &self,
        report: &[u8],
        certs: &[u8],
        rims: &[&rim::CheckedRim],
        expected_nonce: Option<&[u8]>,
        at: DateTime<Utc>,
        ocsp: &[Vec<u8>],
    ) -> Result<NvidiaClaims, NvidiaError> {
        let rims: Vec<RimInput> = rims.iter().map(|r| RimInput::Checked(r)).collect();
        verify_inner(report, certs, &rims, expected_nonce, at, ocsp, Some(self))
    }

    /// [`verify_device_with_ocsp`], with the link cache.
    pub fn verify_device_with_ocsp(
        &self,
        ev: &DeviceEvidence,
        rims: &[&rim::CheckedRim],
        expected_nonce: Option<&[u8]>,
        at: DateTime<Utc>,
        ocsp: &[Vec<u8>],
    ) -> Result<NvidiaClaims, NvidiaError> {
        let claims =
            self.verify_with_ocsp(&ev.report, &ev.certs, rims, expected_nonce, at, ocsp)?;
        check_list_fields(ev, claims)
    }
}

/// [`verify_device`] for [`verify_with_ocsp`].
pub fn verify_device_with_ocsp(
    ev: &DeviceEvidence,
    rims: &[&rim::CheckedRim],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
    ocsp: &[Vec<u8>],
) -> Result<NvidiaClaims, NvidiaError> {
    let claims = verify_with_ocsp(&ev.report, &ev.certs, rims, expected_nonce, at, ocsp)?;
    check_list_fields(ev, claims)
}

enum RimInput<'a> {
    Unverified(&'a rim::Rim),
    Checked(&'a rim::CheckedRim),
}

impl RimInput<'_> {
    fn rim(&self) -> &rim::Rim {
        match self {
            RimInput::Unverified(r) => r,
            RimInput::Checked(c) => c.rim(),
        }
    }

    fn verify(&self, root: &Cert, at: DateTime<Utc>) -> Result<rim::CheckedPath, NvidiaError> {
        match self {
            RimInput::Unverified(r) => rim::checked_path(r, root, at),
            RimInput::Checked(c) => c.at(at),
        }
    }
}

fn verify_inner(
    report: &[u8],
    certs: &[u8],
    rims: &[RimInput],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
    ocsp_pool: &[Vec<u8>],
    links: Option<&NvidiaVerifier>,
) -> Result<NvidiaClaims, NvidiaError> {
    let r = spdm::parse(report)?;
    let chain = device_chain(certs, at, links)?;
    let leaf = chain
        .first()
        .ok_or_else(|| NvidiaError::CertChain("no certificate".into()))?;
    leaf.verify_fixed(&r.signed, &r.signature)
        .map_err(|e| NvidiaError::ReportSignature(format!("over request || response: {e}")))?;

    let nonce_verified = match expected_nonce {
        Some(n) => {
            if n != r.request_nonce.as_slice() {
                return Err(NvidiaError::Nonce {
                    expected: hex::encode(n),
                    found: hex::encode(r.request_nonce),
                });
            }
            true
        }
        None => false,
    };

    let fwid = r.field(spdm::opaque::FWID);
    let fwid_checked = match fwid {
        Some(found) => {
            let expected = leaf_fwid(leaf)?;
            if expected.as_slice() != found {
                return Err(NvidiaError::Fwid {
                    expected: hex::encode(&expected),
                    found: hex::encode(found),
                });
            }
            true
        }
        None => false,
    };

    let hwmodel = chain
        .get(1)
        .map(Cert::subject_cn)
        .ok_or_else(|| NvidiaError::CertChain("expected the leaf's issuer in the chain".into()))?;
    let chip = hwmodel
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let (device, arch) = match chip.as_str() {
        "LS_10" => ("switch", "LS10"),
        c if c.starts_with("GH1") => ("gpu", "HOPPER"),
        c if c.starts_with("GB") => ("gpu", "BLACKWELL"),
        _ => {
            return Err(NvidiaError::CertChain(format!(
                "unknown device model {hwmodel:?}: expected GH100, GB100 or LS_10"
            )));
        }
    };
    let is_switch = device == "switch";
    let driver_version = r.driver_version();
    let vbios_version = r.vbios_version();
    let project = r.text_field(spdm::opaque::PROJECT);
    let project_sku = r.text_field(spdm::opaque::PROJECT_SKU);
    let chip_sku = r.text_field(spdm::opaque::CHIP_SKU);

    let mut rim_ids = Vec::new();
    let (driver_id, vbios_id) = rim_id_pair(&r, &chip, is_switch);
    rim_ids.extend(driver_id.clone());
    rim_ids.extend(vbios_id.clone());

    // RIM roles: each verified RIM must be this device's driver or (V)BIOS RIM.
    let mut applied: Vec<(&'static str, &rim::Rim)> = Vec::new();
    let mut rim_paths: Vec<(&'static str, Vec<Cert>)> = Vec::new();
    let mut rim_claims = Vec::new();
    let norm = |s: &str| s.replace('_', "").to_ascii_uppercase();
    let rim_root = if rims.is_empty() {
        None
    } else {
        Some(x509::pinned(roots::RIM_ROOT_PEM)?)
    };
    for (i, input) in rims.iter().enumerate() {
        let rm = input.rim();
        let checked = match &rim_root {
            Some(root) => input.verify(root, at)?,
            None => return Err(NvidiaError::RimChain("no pinned RIM root".into())),
        };
        let verified = checked.verified;
        let want_edition = if is_switch { "SWITCH" } else { "GPU" };
        let what = format!("RIM #{i} ({} {})", rm.product, rm.version);
        if !rm.edition.eq_ignore_ascii_case(want_edition) {
            return Err(NvidiaError::RimMismatch(format!(
                "{what}: expected edition {want_edition}, found {}",
                rm.edition
            )));
        }
        if norm(&rm.product) != norm(&chip) {
            return Err(NvidiaError::RimMismatch(format!(
                "{what}: expected product {chip}, found {}",
                rm.product
            )));
        }
        let kind = if is_switch {
            vbios_version
                .as_deref()
                .filter(|v| v.eq_ignore_ascii_case(&rm.version))
                .map(|_| "bios")
        } else if driver_version
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(&rm.version))
        {
            Some("driver")
        } else if vbios_version
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(&rm.version))
        {
            Some("vbios")
        } else {
            None
        };
        let Some(kind) = kind else {
            return Err(NvidiaError::RimMismatch(format!(
                "{what}: version {} is neither the report's driver version {} nor its (V)BIOS \
                 version {}",
                rm.version,
                driver_version.as_deref().unwrap_or("(none)"),
                vbios_version.as_deref().unwrap_or("(none)")
            )));
        };
        if applied.iter().any(|(k, _)| *k == kind) {
            return Err(NvidiaError::RimMismatch(format!(
                "{what}: a second {kind} RIM (expected one per component)"
            )));
        }
        for m in rm.measurements.iter().filter(|m| m.active) {
            for (other_kind, other) in &applied {
                if other
                    .measurements
                    .iter()
                    .any(|o| o.active && o.index == m.index)
                {
                    return Err(NvidiaError::RimIndexConflict {
                        index: m.index,
                        first: (*other_kind).to_string(),
                        second: kind.to_string(),
                    });
                }
            }
        }
        rim_claims.push(RimClaims {
            kind: kind.to_string(),
            id: if kind == "driver" {
                driver_id.clone()
            } else {
                vbios_id.clone()
            },
            tag_id: rm.tag_id.clone(),
            version: rm.version.clone(),
            signer: verified.signer_cn,
            cert_expiration: verified.cert_expiration,
        });
        applied.push((kind, rm));
        rim_paths.push((kind, checked.path));
    }

    let mut results = Vec::new();
    let mut mismatches = Vec::new();
    for (kind, rm) in &applied {
        for outcome in compare(&r, rm, is_switch) {
            match outcome {
                IndexOutcome::Match(index) => results.push(MeasurementResult {
                    index,
                    rim: (*kind).to_string(),
                    result: "match".into(),
                }),
                IndexOutcome::Skipped(index) => results.push(MeasurementResult {
                    index,
                    rim: (*kind).to_string(),
                    result: "skipped".into(),
                }),
                IndexOutcome::Mismatch {
                    index,
                    expected,
                    found,
                } => mismatches.push(MeasurementMismatch {
                    index,
                    rim: (*kind).to_string(),
                    expected: expected.iter().map(hex::encode).collect(),
                    found: found.map(hex::encode),
                }),
            }
        }
    }
    if !mismatches.is_empty() {
        mismatches.sort_by_key(|m| m.index);
        return Err(NvidiaError::Measurement(mismatches));
    }
    results.sort_by_key(|m| m.index);
    let revocation = revocation(&chain, &rim_paths, rim_root.as_ref(), ocsp_pool, at)?;
    let components = if is_switch { 1 } else { 2 };
    let measres = match applied.len() {
        0 => "not_compared",
        n if n >= components => "success",
        _ => "partial",
    };
    let oemid = rims.iter().find_map(|r| r.rim().manufacturer_id.clone());
    let status = |t: u16| {
        r.field(t).map(|v| match v {
            [0x55] => "disabled".to_string(),
            [0xAA] => "enabled".to_string(),
            other => hex::encode(other),
        })
    };
    use sha2::Digest;
    Ok(NvidiaClaims {
        device: device.into(),
        arch: arch.into(),
        hwmodel,
        ueid: decimal(leaf.serial()),
        oemid,
        nonce: hex::encode(r.request_nonce),
        nonce_verified,
        driver_version: if is_switch { None } else { driver_version },
        vbios_version,
        project,
        project_sku,
        chip_sku,
        fwid: fwid.map(hex::encode),
        fwid_checked,
        ppcie_status: status(spdm::opaque::PROTECTED_PCIE_STATUS),
        switch_lock_status: r.field(spdm::opaque::SWITCH_LOCK_STATUS).map(hex::encode),
        nvdec0_status: status(spdm::opaque::NVDEC0_STATUS),
        measres: measres.into(),
        measurements: results,
        rims: rim_claims,
        rim_ids,
        measurement_blocks: r.blocks.len(),
        leaf_cert_sha256: hex::encode(sha2::Sha256::digest(&leaf.der)),
        revocation,
    })
}

/// The RIM ids (driver, (V)BIOS) of a report from a device of model `chip`: one formula for the
/// verified claims and for [`rim_ids`].
fn rim_id_pair(
    r: &spdm::SpdmReport,
    chip: &str,
    is_switch: bool,
) -> (Option<String>, Option<String>) {
    let driver_id = r
        .driver_version()
        .filter(|_| !is_switch)
        .map(|d| format!("NV_GPU_DRIVER_{chip}_{d}"));
    let fields = (
        r.text_field(spdm::opaque::PROJECT),
        r.text_field(spdm::opaque::PROJECT_SKU),
        r.text_field(spdm::opaque::CHIP_SKU),
        r.vbios_version(),
    );
    let vbios_id = match fields {
        (Some(p), Some(ps), Some(cs), Some(v)) => Some(format!(
            "{}_{}_{}_{}_{}",
            if is_switch {
                "NV_SWITCH_BIOS"
            } else {
                "NV_GPU_VBIOS"
            },
            p.to_uppercase(),
            ps.to_uppercase(),
            cs.to_uppercase(),
            v.replace('.', "").to_uppercase()
        )),
        _ => None,
    };
    (driver_id, vbios_id)
}

/// The RIM ids a device's evidence names (driver, (V)BIOS), read WITHOUT verifying anything: for
/// looking RIMs up before the one verification. Whatever is looked up is then checked by the
/// verification (a RIM that is not this device's fails `rim_mismatch`), so a lying input only
/// fails its own request. The model comes from the leaf's issuer CN as in [`verify`].
pub fn rim_ids(ev: &DeviceEvidence) -> Result<Vec<String>, NvidiaError> {
    let r = spdm::parse(&ev.report)?;
    let ders = if crate::pem::is_pem(&ev.certs) {
        crate::pem::certificates(&ev.certs).map_err(|e| NvidiaError::MalformedCertificate {
            which: "device chain".into(),
            reason: format!("invalid PEM: {e}"),
        })?
    } else {
        crate::pem::der_sequences(&ev.certs)
            .unwrap_or_default()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    };
    let Some(issuer) = ders.get(1) else {
        return Ok(Vec::new());
    };
    let hwmodel = Cert::parse(issuer, "device certificate #1")?.subject_cn();
    let chip = hwmodel.split_whitespace().next().unwrap_or_default();
    let is_switch = chip == "LS_10";
    let (d, v) = rim_id_pair(&r, chip, is_switch);
    Ok(d.into_iter().chain(v).collect())
}

/// Step 8: OCSP over the device chain (below the root, without the device-made attestation
/// leaf) and every applied RIM's signing path. No responses: not checked.
fn revocation(
    device: &[Cert],
    rim_paths: &[(&'static str, Vec<Cert>)],
    rim_root: Option<&Cert>,
    pool: &[Vec<u8>],
    at: DateTime<Utc>,
) -> Result<ocsp::RevocationClaims, NvidiaError> {
    if pool.is_empty() {
        return Ok(ocsp::RevocationClaims::default());
    }
    let fail = |chain: &str, f: ocsp::ChainFailure| f.into_error(chain);
    let device_root = x509::pinned(roots::DEVICE_ROOT_PEM)?;
    let path: Vec<&Cert> = device.iter().collect();
    let mut chains = vec![
        ocsp::check_chain("device", &path, &device_root, 1, pool, at)
            .map_err(|f| fail("device", f))?,
    ];
    if let Some(root) = rim_root {
        for (kind, p) in rim_paths {
            let path: Vec<&Cert> = p.iter().collect();
            chains.push(
                ocsp::check_chain(kind, &path, root, 0, pool, at).map_err(|f| fail(kind, f))?,
            );
        }
    }
    Ok(ocsp::summarize(chains))
}

/// The outcome of comparing one active RIM index with the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOutcome {
    Match(u32),
    /// Not compared: the documented NVDEC0 exclusion.
    Skipped(u32),
    Mismatch {
        index: u32,
        expected: Vec<Vec<u8>>,
        found: Option<Vec<u8>>,
    },
}

/// The RIM index NVIDIA does not compare on GPUs whose NVDEC0 is disabled (verifier.py).
pub const NVDEC0_INDEX: u32 = 35;

/// Compare every active index of `rim` with the report's blocks (no signature check: the caller
/// decides whether `rim` was verified). `is_switch` disables the GPU-only NVDEC0 exclusion.
pub fn compare(report: &spdm::SpdmReport, rim: &rim::Rim, is_switch: bool) -> Vec<IndexOutcome> {
    let nvdec0_disabled = report.field(spdm::opaque::NVDEC0_STATUS) == Some(&[0x55][..]);
    rim.measurements
        .iter()
        .filter(|m| m.active)
        .map(|m| {
            if !is_switch && nvdec0_disabled && m.index == NVDEC0_INDEX {
                return IndexOutcome::Skipped(m.index);
            }
            let block = u8::try_from(m.index)
                .ok()
                .and_then(|i| i.checked_add(1))
                .and_then(|b| report.measurement(b));
            match block {
                Some(b) if b.value.len() == m.size && m.alternatives.contains(&b.value) => {
                    IndexOutcome::Match(m.index)
                }
                other => IndexOutcome::Mismatch {
                    index: m.index,
                    expected: m.alternatives.clone(),
                    found: other.map(|b| b.value.clone()),
                },
            }
        })
        .collect()
}

/// The device chain: PEM or DER, leaf first, strictly in issuing order, ending at (or issued by)
/// the pinned NVIDIA Device Identity CA; every certificate valid at `at`.
fn device_chain(
    certs: &[u8],
    at: DateTime<Utc>,
    links: Option<&NvidiaVerifier>,
) -> Result<Vec<Cert>, NvidiaError> {
    let ders = if crate::pem::is_pem(certs) {
        crate::pem::certificates(certs).map_err(|e| NvidiaError::MalformedCertificate {
            which: "device chain".into(),
            reason: format!("invalid PEM: {e}"),
        })?
    } else {
        crate::pem::der_sequences(certs)
            .ok_or_else(|| NvidiaError::MalformedCertificate {
                which: "device chain".into(),
                reason: "expected PEM or DER certificates".into(),
            })?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    };
    let root = x509::pinned(roots::DEVICE_ROOT_PEM)?;
    let mut chain = ders
        .iter()
        .enumerate()
        .map(|(i, d)| Cert::parse(d, &format!("device certificate #{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    // A supplied root must be the pinned one, byte for byte; then it is dropped and the pinned
    // copy is used.
    if let Some(last) = chain.last()
        && last.self_issued()
    {
        if last.der != root.der {
            return Err(NvidiaError::CertChain(format!(
                "the chain ends at {} which is not the pinned NVIDIA Device Identity CA (sha256 {})",
                last.subject_cn(),
                roots::DEVICE_ROOT_SHA256
            )));
        }
        chain.pop();
    }
    if chain.len() < 2 {
        return Err(NvidiaError::CertChain(format!(
            "expected the attestation leaf and its issuers below the root, found {} certificate(s)",
            chain.len()
        )));
    }
    for (i, c) in chain.iter().enumerate() {
        let issuer = chain.get(i + 1).unwrap_or(&root);
        match links {
            Some(v) => v.check_link(c, issuer),
            None => c.check_issued_by(issuer),
        }
        .map_err(NvidiaError::CertChain)?;
        issuer.check_path_len(i).map_err(NvidiaError::CertChain)?;
    }
    let t = at.timestamp();
    for c in chain.iter().chain(std::iter::once(&root)) {
        let (nb, na) = c.validity();
        if t < nb || t > na {
            return Err(NvidiaError::CertificateExpired {
                cert: c.subject_cn(),
                not_before: x509::rfc3339(nb),
                not_after: x509::rfc3339(na),
                at: at.to_rfc3339(),
            });
        }
    }
    Ok(chain)
}

const OID_DICE_FWID_HOPPER: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.23.133.5.4.1");
const OID_DICE_TCBINFO: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.23.133.5.4.1.1");

/// The leaf's FWID: Hopper's extension 2.23.133.5.4.1 ends with the SHA-384 FWID as an OCTET
/// STRING (`04 30` + 48 bytes); Blackwell's TcbInfo (2.23.133.5.4.1.1) holds it as
/// `fwids [6] SEQUENCE OF SEQUENCE { hashAlg, digest OCTET STRING }`, first entry.
fn leaf_fwid(leaf: &Cert) -> Result<Vec<u8>, NvidiaError> {
    let err = |m: &str| NvidiaError::Fwid {
        expected: format!("a FWID in the leaf certificate ({m})"),
        found: "a FWID field in the report".into(),
    };
    if let Some(v) = leaf.extension_oid(OID_DICE_TCBINFO) {
        return tcb_info_fwid(v).ok_or_else(|| err("malformed TcbInfo 2.23.133.5.4.1.1"));
    }
    if let Some(v) = leaf.extension_oid(OID_DICE_FWID_HOPPER) {
        let n = v.len();
        let tail = v.get(n.saturating_sub(50)..).unwrap_or_default();
        if n >= 50 && tail.starts_with(&[0x04, 0x30]) {
            return Ok(tail.get(2..).unwrap_or_default().to_vec());
        }
        return Err(err(
            "extension 2.23.133.5.4.1 does not end with a 48-byte OCTET STRING",
        ));
    }
    Err(err("no extension 2.23.133.5.4.1 or 2.23.133.5.4.1.1"))
}

/// One DER TLV at the start of `b`: (tag, content, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)?;
    let (hl, len) = if l0 < 0x80 {
        (2usize, l0 as usize)
    } else {
        let n = (l0 & 0x7F) as usize;
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (2 + n, len)
    };
    let content = b.get(hl..hl.checked_add(len)?)?;
    Some((tag, content, b.get(hl + len..)?))
}

fn tcb_info_fwid(v: &[u8]) -> Option<Vec<u8>> {
    let (tag, mut body, _) = tlv(v)?;
    if tag != 0x30 {
        return None;
    }
    while !body.is_empty() {
        let (t, content, rest) = tlv(body)?;
        if t == 0xA6 {
            let (t1, fwid, _) = tlv(content)?;
            if t1 != 0x30 {
                return None;
            }
            let (t_oid, _, after_oid) = tlv(fwid)?;
            let (t_digest, digest, _) = tlv(after_oid)?;
            return (t_oid == 0x06 && t_digest == 0x04).then(|| digest.to_vec());
        }
        body = rest;
    }
    None
}

/// Big-endian unsigned bytes as a decimal string.
fn decimal(bytes: &[u8]) -> String {
    let mut n: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if n.is_empty() {
        return "0".into();
    }
    let mut digits = Vec::new();
    while !n.is_empty() {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
        let lead = n.iter().take_while(|b| **b == 0).count();
        n.drain(..lead);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_of_big_serials() {
        assert_eq!(super::decimal(&[]), "0");
        assert_eq!(super::decimal(&[0, 1, 0]), "256");
        assert_eq!(
            super::decimal(&hex::decode("50948c723fc935c7bd14b7c22833dfbe1dfd1145").unwrap()),
            "460032006552296075780760406069494258829212062021"
        );
    }
}
