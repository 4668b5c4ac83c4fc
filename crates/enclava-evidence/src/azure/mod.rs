//! Azure confidential VM evidence (vTPM): an HCL report (hardware report + runtime data), a TPM 2.0
//! quote signed by the vTPM attestation key, and the hardware endorsements.
//!
//! The chain of trust: the hardware report (SNP report verified by the VCEK chain, or a TD quote
//! verified by DCAP) signs report_data, whose first bytes are the hash of the HCL runtime data;
//! the runtime data carries the vTPM attestation key (HCLAkPub); that key signs the TPM quote,
//! which carries the caller's nonce and the digest of the PCR values.
//!
//! Checks, in order (each failure names its check via [`crate::error::FailedCheck`]):
//! 1. HCL report layout (`malformed_hcl_report`, `unsupported_hcl_version`);
//! 2. hash of the variable data = hardware report_data prefix (`runtime_data_mismatch`);
//! 3. runtime data is a JSON object (`malformed_runtime_data`) with an RSA HCLAkPub (`missing_ak`);
//! 4. TPM quote layout (`malformed_tpm_quote`), signature by the AK (`tpm_quote_signature`),
//!    extraData = expected nonce (`nonce_mismatch`), pcrDigest (`pcr_digest_mismatch`);
//! 5. SNP: the report was produced at VMPL 0 by the paravisor (`hcl_vmpl`);
//! 6. the hardware evidence itself (the SNP or DCAP verifier's own failed check).

mod evidence;
mod hcl;
mod tpm;
mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use evidence::{AzureEvidence, certs_from_pem};
pub use hcl::{HclHashType, HclReport, HclReportType, parse_hcl_report};
pub use tpm::{AkPub, PcrSelection, TpmQuote, TpmsAttest, parse_tpms_attest};
pub use verify::{verify_snp, verify_tdx};

/// Azure-specific claims. The hardware claims object (SNP or TDX) is nested under `hardware`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AzureClaims {
    /// Attested SHA-256 PCR values by index ("0".."23"), only those the quote selected (hex).
    pub pcrs: BTreeMap<String, String>,
    /// The TPM quote's extraData (hex).
    pub nonce: String,
    /// The HCL runtime data (JSON object: keys, vm-configuration, user-data, ...).
    pub runtime_data: serde_json::Value,
    /// `runtime_data["vm-configuration"]` (null when absent).
    pub vm_configuration: serde_json::Value,
    /// `runtime_data["user-data"]`, lower-case hex, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// The vTPM attestation key (HCLAkPub) as a JWK.
    pub ak_pub: serde_json::Value,
    /// HCL report version (1 or 2).
    pub hcl_version: u32,
    /// The nested hardware claims object: the `snp` claims for azure-snp, `tdx` for azure-tdx.
    pub hardware: serde_json::Value,
}

#[derive(Debug, Error)]
pub enum AzureError {
    #[error("malformed HCL report: {0}")]
    MalformedHclReport(String),
    #[error("unsupported HCL report version {0}: expected 1 or 2")]
    UnsupportedHclVersion(u32),
    #[error(
        "HCL runtime data does not match the hardware report_data: expected {expected}, found {found}"
    )]
    RuntimeDataMismatch { expected: String, found: String },
    #[error("malformed HCL runtime data: {0}")]
    MalformedRuntimeData(String),
    #[error("no usable attestation key (HCLAkPub): {0}")]
    MissingAk(String),
    #[error("malformed TPM quote: {0}")]
    MalformedTpmQuote(String),
    #[error("TPM quote signature: {0}")]
    TpmQuoteSignature(String),
    #[error("TPM quote nonce mismatch: expected {expected}, found {found}")]
    NonceMismatch { expected: String, found: String },
    #[error("TPM quote PCR digest mismatch: quote says {expected}, PCR values hash to {found}")]
    PcrDigestMismatch { expected: String, found: String },
    #[error("SNP report inside the HCL report is from VMPL {0}, expected 0 (the paravisor)")]
    HclVmpl(u32),
    #[error("malformed Azure evidence: {0}")]
    MalformedEvidence(String),
    #[error(transparent)]
    Snp(#[from] crate::snp::SnpError),
    #[error(transparent)]
    Dcap(#[from] crate::dcap::DcapError),
}

impl crate::error::FailedCheck for AzureError {
    fn failed_check(&self) -> &'static str {
        match self {
            AzureError::MalformedHclReport(_) => "malformed_hcl_report",
            AzureError::UnsupportedHclVersion(_) => "unsupported_hcl_version",
            AzureError::RuntimeDataMismatch { .. } => "runtime_data_mismatch",
            AzureError::MalformedRuntimeData(_) => "malformed_runtime_data",
            AzureError::MissingAk(_) => "missing_ak",
            AzureError::MalformedTpmQuote(_) => "malformed_tpm_quote",
            AzureError::TpmQuoteSignature(_) => "tpm_quote_signature",
            AzureError::NonceMismatch { .. } => "nonce_mismatch",
            AzureError::PcrDigestMismatch { .. } => "pcr_digest_mismatch",
            AzureError::HclVmpl(_) => "hcl_vmpl",
            AzureError::MalformedEvidence(_) => "malformed_evidence",
            AzureError::Snp(e) => e.failed_check(),
            AzureError::Dcap(e) => e.failed_check(),
        }
    }
}
