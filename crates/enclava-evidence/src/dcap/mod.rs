//! Intel TDX and SGX DCAP quotes (STUB: the DCAP helper replaces this file; keep the public API).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Claims;

/// Intel PCS collateral for one quote.
#[derive(Debug, Clone, Default)]
pub struct Collateral {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TdxClaims {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgxClaims {}

#[derive(Debug, Error)]
pub enum DcapError {
    #[error("malformed quote: {0}")]
    Malformed(String),
}

impl crate::error::FailedCheck for DcapError {
    fn failed_check(&self) -> &'static str {
        "malformed_quote"
    }
}

/// Verify a TDX quote (v4/v5). Without collateral only signatures and the PCK chain are checked.
pub fn verify_tdx(quote: &[u8], collateral: Option<&Collateral>, at: DateTime<Utc>) -> Result<Claims, DcapError> {
    let _ = (quote, collateral, at);
    Err(DcapError::Malformed("not implemented yet".into()))
}

/// Verify an SGX quote (v3). Without collateral only signatures and the PCK chain are checked.
pub fn verify_sgx(quote: &[u8], collateral: Option<&Collateral>, at: DateTime<Utc>) -> Result<Claims, DcapError> {
    let _ = (quote, collateral, at);
    Err(DcapError::Malformed("not implemented yet".into()))
}
