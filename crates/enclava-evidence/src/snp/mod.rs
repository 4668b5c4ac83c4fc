//! AMD SEV-SNP attestation reports (STUB: the SNP helper replaces this file; keep the public API).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Claims;

/// Certificates and CRLs that endorse a report: VCEK or VLEK, ASK or ASVK, ARK (any order, DER),
/// from the extended report's certificate table, supplied files or an offline cache.
#[derive(Debug, Clone, Default)]
pub struct Endorsements {
    pub certs_der: Vec<Vec<u8>>,
    pub crls_der: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnpClaims {}

#[derive(Debug, Error)]
pub enum SnpError {
    #[error("malformed report: {0}")]
    Malformed(String),
}

impl crate::error::FailedCheck for SnpError {
    fn failed_check(&self) -> &'static str {
        "malformed_report"
    }
}

/// Verify a 1184-byte attestation report against its endorsements as of `at`.
pub fn verify(report: &[u8], endorsements: &Endorsements, at: DateTime<Utc>) -> Result<Claims, SnpError> {
    let _ = (report, endorsements, at);
    Err(SnpError::Malformed("not implemented yet".into()))
}
