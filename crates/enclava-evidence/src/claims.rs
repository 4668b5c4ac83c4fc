//! Normalized claims: the contract between verifiers, policies, tokens and the CLI.
//!
//! Every result carries the common fields; exactly one TEE-specific object is set (for Azure CVMs,
//! `azure` is set and holds the nested hardware object). Hex strings are lower case.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tee {
    Snp,
    Tdx,
    Sgx,
    AzureSnp,
    AzureTdx,
    Sim,
}

impl Tee {
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::Snp => "snp",
            Tee::Tdx => "tdx",
            Tee::Sgx => "sgx",
            Tee::AzureSnp => "azure-snp",
            Tee::AzureTdx => "azure-tdx",
            Tee::Sim => "sim",
        }
    }

    /// Simulated evidence is never hardware, whatever it claims.
    pub fn is_hardware(self) -> bool {
        !matches!(self, Tee::Sim)
    }
}

impl std::fmt::Display for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tee {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "snp" => Tee::Snp,
            "tdx" => Tee::Tdx,
            "sgx" => Tee::Sgx,
            "azure-snp" => Tee::AzureSnp,
            "azure-tdx" => Tee::AzureTdx,
            "sim" => Tee::Sim,
            other => {
                return Err(format!(
                    "unknown tee {other:?}: expected one of snp, tdx, sgx, azure-snp, azure-tdx, sim"
                ));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub tee: Tee,
    /// True when the TEE allows a debugger in (SNP policy DEBUG, TD attribute DEBUG, SGX DEBUG) and
    /// always for `sim`.
    pub debug: bool,
    /// SNP launch measurement, TDX MRTD, SGX MRENCLAVE; for sim the simulated measurement (hex).
    pub measurement: String,
    /// The report data as signed by the hardware (hex, full width).
    pub report_data: String,
    /// TCB status where the TEE defines one (DCAP: UpToDate, OutOfDate, ...; SNP: null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcb_status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisory_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snp: Option<crate::snp::SnpClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdx: Option<crate::dcap::TdxClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sgx: Option<crate::dcap::SgxClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure: Option<crate::azure::AzureClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<crate::sim::SimClaims>,
}
