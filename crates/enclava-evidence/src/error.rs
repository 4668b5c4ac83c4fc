//! The one error type callers see. Each verifier has its own typed error; this wraps them so a
//! caller can always ask for the stable snake_case code of the failed check and a readable reason.

use thiserror::Error;

/// A stable, snake_case name of the check that failed (part of the CLI's JSON contract).
pub trait FailedCheck {
    fn failed_check(&self) -> &'static str;
}

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error(transparent)]
    Snp(#[from] crate::snp::SnpError),
    #[error(transparent)]
    Dcap(#[from] crate::dcap::DcapError),
    #[error(transparent)]
    Azure(#[from] crate::azure::AzureError),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Ccel(#[from] crate::ccel::CcelError),
}

impl FailedCheck for VerifyError {
    fn failed_check(&self) -> &'static str {
        match self {
            VerifyError::Snp(e) => e.failed_check(),
            VerifyError::Dcap(e) => e.failed_check(),
            VerifyError::Azure(e) => e.failed_check(),
            VerifyError::Sim(e) => e.failed_check(),
            VerifyError::Ccel(e) => e.failed_check(),
        }
    }
}
