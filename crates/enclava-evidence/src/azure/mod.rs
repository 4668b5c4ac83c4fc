//! Azure confidential VM evidence (vTPM) (STUB: being written).

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AzureClaims {}

#[derive(Debug, Error)]
pub enum AzureError {
    #[error("malformed evidence: {0}")]
    Malformed(String),
}

impl crate::error::FailedCheck for AzureError {
    fn failed_check(&self) -> &'static str {
        "malformed_evidence"
    }
}
