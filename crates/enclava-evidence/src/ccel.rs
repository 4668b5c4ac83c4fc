//! TDX CCEL event log replay (STUB: being written).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CcelError {
    #[error("malformed event log: {0}")]
    Malformed(String),
}

impl crate::error::FailedCheck for CcelError {
    fn failed_check(&self) -> &'static str {
        "malformed_event_log"
    }
}
