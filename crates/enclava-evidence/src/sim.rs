//! Simulated TEE evidence (STUB: being written).

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimClaims {}

#[derive(Debug, Error)]
pub enum SimError {
    #[error("malformed evidence: {0}")]
    Malformed(String),
}

impl crate::error::FailedCheck for SimError {
    fn failed_check(&self) -> &'static str {
        "malformed_evidence"
    }
}
