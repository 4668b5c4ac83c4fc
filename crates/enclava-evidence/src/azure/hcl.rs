//! The HCL (Host Compatibility Layer, the Azure paravisor) attestation report, as read from the
//! vTPM NV index `0x01400001`.
//!
//! Wire format (all integers little endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | signature `"HCLA"` |
//! | 4 | 4 | version (1 or 2) |
//! | 8 | 4 | report_size: bytes of the report that are meaningful (header to end of variable data) |
//! | 12 | 4 | request_type |
//! | 16 | 4 | status (0 = success) |
//! | 20 | 12 | reserved |
//! | 32 | 1184 | hardware report: SNP attestation report (1184 bytes) or TDREPORT (first 1024 bytes) |
//! | 1216 | 20 | IgvmRequestData {data_size, version, report_type (2 SNP, 4 TDX), report_data_hash_type (1 SHA-256, 2 SHA-384, 3 SHA-512), variable_data_size} |
//! | 1236 | variable_data_size | variable data: the runtime-data JSON |
//!
//! The hardware report's report_data starts with the hash (of the declared type) of exactly
//! `variable_data_size` bytes of variable data; that binds the runtime data (and in it the vTPM's
//! attestation key, HCLAkPub) to the hardware report.

use serde_json::Value;
use sha2::Digest;

use super::AzureError;
use super::tpm::AkPub;

/// `"HCLA"` read as a little-endian u32.
pub const HCL_SIGNATURE: &[u8; 4] = b"HCLA";
pub const HCL_HEADER_SIZE: usize = 32;
/// Size of an SEV-SNP attestation report.
pub const SNP_REPORT_SIZE: usize = 1184;
/// Size of a TDX TDREPORT (REPORTMACSTRUCT 256 + TEE_TCB_INFO 239 + reserved 17 + TDINFO 512).
pub const TD_REPORT_SIZE: usize = 1024;
/// The hardware report field is sized for the larger of the two.
pub const HW_REPORT_FIELD_SIZE: usize = SNP_REPORT_SIZE;
pub const IGVM_REQUEST_DATA_OFFSET: usize = HCL_HEADER_SIZE + HW_REPORT_FIELD_SIZE;
pub const IGVM_REQUEST_DATA_SIZE: usize = 20;
pub const VAR_DATA_OFFSET: usize = IGVM_REQUEST_DATA_OFFSET + IGVM_REQUEST_DATA_SIZE;

/// Offset of report_data in an SNP report and in a TDREPORT (REPORTMACSTRUCT).
const SNP_REPORT_DATA_OFFSET: usize = 0x50;
const TD_REPORT_DATA_OFFSET: usize = 128;
/// Offset of VMPL in an SNP report.
const SNP_VMPL_OFFSET: usize = 0x30;
/// REPORTMACSTRUCT.report_type.type for TDX.
const TD_REPORT_TYPE_TDX: u8 = 0x81;

/// Which hardware report the HCL report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HclReportType {
    Snp,
    Tdx,
}

/// How the variable data is hashed into the hardware report_data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HclHashType {
    Sha256,
    Sha384,
    Sha512,
}

impl HclHashType {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HclHashType::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HclHashType::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HclHashType::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A structurally valid HCL report. Nothing in it is authenticated until the hardware report is
/// verified and [`HclReport::check_binding`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HclReport {
    pub version: u32,
    pub report_size: u32,
    pub request_type: u32,
    pub status: u32,
    pub report_type: HclReportType,
    pub hash_type: HclHashType,
    /// The hardware report: 1184 bytes for SNP, 1024 bytes (TDREPORT) for TDX.
    pub hardware_report: Vec<u8>,
    /// Exactly `variable_data_size` bytes of variable data (may end in NULs).
    pub var_data: Vec<u8>,
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    crate::bytes::u32_le(bytes, offset)
}

/// Parse an HCL report (structure only: no signature is checked here).
pub fn parse_hcl_report(bytes: &[u8]) -> Result<HclReport, AzureError> {
    let bad = |m: String| AzureError::MalformedHclReport(m);
    if bytes.len() < VAR_DATA_OFFSET {
        return Err(bad(format!(
            "HCL report is {} bytes, expected at least {VAR_DATA_OFFSET}",
            bytes.len()
        )));
    }
    let signature = bytes.get(0..4).unwrap_or_default();
    if signature != HCL_SIGNATURE {
        return Err(bad(format!(
            "signature is {}, expected \"HCLA\" (48434c41)",
            hex::encode(signature)
        )));
    }
    let field = |o: usize| u32_at(bytes, o).ok_or_else(|| bad("truncated".into()));
    let version = field(4)?;
    if !(1..=2).contains(&version) {
        return Err(AzureError::UnsupportedHclVersion(version));
    }
    let report_size = field(8)?;
    let request_type = field(12)?;
    let status = field(16)?;
    if status != 0 {
        return Err(bad(format!(
            "HCL status is {status:#x}, expected 0 (success)"
        )));
    }

    let o = IGVM_REQUEST_DATA_OFFSET;
    let data_size = field(o)?;
    let igvm_version = field(o + 4)?;
    let report_type_raw = field(o + 8)?;
    let hash_type_raw = field(o + 12)?;
    let var_size = field(o + 16)?;

    let report_type = match report_type_raw {
        2 => HclReportType::Snp,
        4 => HclReportType::Tdx,
        other => {
            return Err(bad(format!(
                "IGVM report_type is {other}, expected 2 (SNP) or 4 (TDX)"
            )));
        }
    };
    let hash_type = match hash_type_raw {
        1 => HclHashType::Sha256,
        2 => HclHashType::Sha384,
        3 => HclHashType::Sha512,
        other => {
            return Err(bad(format!(
                "IGVM report_data_hash_type is {other}, expected 1 (SHA-256), 2 (SHA-384) or 3 (SHA-512)"
            )));
        }
    };
    if igvm_version != 1 {
        return Err(bad(format!(
            "IGVM request data version is {igvm_version}, expected 1"
        )));
    }
    let var_size = var_size as usize;
    if data_size as usize != IGVM_REQUEST_DATA_SIZE + var_size {
        return Err(bad(format!(
            "IGVM data_size is {data_size}, expected {} (20 + variable_data_size {var_size})",
            IGVM_REQUEST_DATA_SIZE + var_size
        )));
    }
    let var_end = VAR_DATA_OFFSET + var_size;
    if var_end > bytes.len() {
        return Err(bad(format!(
            "variable data ends at byte {var_end}, beyond the {}-byte report",
            bytes.len()
        )));
    }
    if (report_size as usize) < var_end || report_size as usize > bytes.len() {
        return Err(bad(format!(
            "report_size is {report_size}, expected between {var_end} and {}",
            bytes.len()
        )));
    }

    let hw_len = match report_type {
        HclReportType::Snp => SNP_REPORT_SIZE,
        HclReportType::Tdx => TD_REPORT_SIZE,
    };
    let hardware_report = crate::bytes::slice_at(bytes, HCL_HEADER_SIZE, hw_len)
        .ok_or_else(|| bad("truncated hardware report".into()))?
        .to_vec();
    // The SNP report's own version is checked by the SNP verifier; a TDREPORT must say TDX.
    let first = hardware_report.first().copied().unwrap_or_default();
    if report_type == HclReportType::Tdx && first != TD_REPORT_TYPE_TDX {
        return Err(bad(format!(
            "TDREPORT type is {first:#04x}, expected 0x81 (TDX)"
        )));
    }

    Ok(HclReport {
        version,
        report_size,
        request_type,
        status,
        report_type,
        hash_type,
        hardware_report,
        var_data: bytes
            .get(VAR_DATA_OFFSET..var_end)
            .ok_or_else(|| bad("truncated variable data".into()))?
            .to_vec(),
    })
}

impl HclReport {
    /// The 64-byte report_data of the (unverified) hardware report.
    pub fn hardware_report_data(&self) -> &[u8] {
        let start = match self.report_type {
            HclReportType::Snp => SNP_REPORT_DATA_OFFSET,
            HclReportType::Tdx => TD_REPORT_DATA_OFFSET,
        };
        self.hardware_report.get(start..start + 64).unwrap_or(&[])
    }

    /// VMPL of the SNP report (None for TDX).
    pub fn snp_vmpl(&self) -> Option<u32> {
        match self.report_type {
            HclReportType::Snp => u32_at(&self.hardware_report, SNP_VMPL_OFFSET),
            HclReportType::Tdx => None,
        }
    }

    /// Hash of exactly `variable_data_size` bytes of variable data, with the declared hash type.
    pub fn var_data_digest(&self) -> Vec<u8> {
        self.hash_type.digest(&self.var_data)
    }

    /// `runtime_data_mismatch` unless `report_data` starts with the digest of the variable data.
    pub fn check_binding_against(&self, report_data: &[u8]) -> Result<(), AzureError> {
        let digest = self.var_data_digest();
        let found = report_data.get(..digest.len()).unwrap_or(report_data);
        if found != digest.as_slice() {
            return Err(AzureError::RuntimeDataMismatch {
                expected: hex::encode(&digest),
                found: hex::encode(found),
            });
        }
        Ok(())
    }

    /// Check the binding against the HCL report's own hardware report.
    pub fn check_binding(&self) -> Result<(), AzureError> {
        self.check_binding_against(self.hardware_report_data())
    }

    /// The runtime-data JSON (trailing NULs after the JSON are ignored for parsing, but they are
    /// part of what is hashed).
    pub fn runtime_data(&self) -> Result<Value, AzureError> {
        let end = self
            .var_data
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        let json = self.var_data.get(..end).unwrap_or_default();
        let value: Value = serde_json::from_slice(json).map_err(|e| {
            AzureError::MalformedRuntimeData(format!("runtime data is not JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(AzureError::MalformedRuntimeData(
                "runtime data is not a JSON object".into(),
            ));
        }
        Ok(value)
    }

    /// The vTPM attestation key: the `HCLAkPub` JWK of the runtime data. Any failure to obtain a
    /// usable key (runtime data not JSON, no such key, bad key) is `missing_ak`.
    pub fn ak_pub(&self) -> Result<AkPub, AzureError> {
        let runtime = self
            .runtime_data()
            .map_err(|e| AzureError::MissingAk(format!("failed to get HCLAkPub: {e}")))?;
        AkPub::from_runtime_data(&runtime)
    }
}
