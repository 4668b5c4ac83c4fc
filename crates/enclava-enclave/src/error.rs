//! The crate's error type and its exit codes.

use serde::{Deserialize, Serialize};

/// One failed rule or condition, as the attestation service or the vault reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRule {
    /// Rule name (appraisal) or policy location (release, e.g. `anyOf[0].allOf[1]`).
    #[serde(default)]
    pub rule: String,
    /// The claim path the rule looked at (e.g. `claims.measurement`, `x-enclava-measurement`).
    #[serde(default)]
    pub claim_path: String,
    #[serde(default)]
    pub expected: String,
    #[serde(default)]
    pub found: String,
}

impl std::fmt::Display for FailedRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule {} on {}: expected {}, found {}",
            self.rule, self.claim_path, self.expected, self.found
        )
    }
}

/// Which step refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusedBy {
    /// The attestation service denied the evidence (appraisal policy, binding, sim gate).
    Attestation,
    /// The vault refused to release a key (release policy, role, key state).
    Release,
}

impl std::fmt::Display for RefusedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefusedBy::Attestation => "attestation",
            RefusedBy::Release => "key release",
        })
    }
}

/// Why a run did not complete. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum EnclaveError {
    /// The service said no (exit 1).
    #[error("{by} refused ({status} {code}): {message}")]
    Refused {
        by: RefusedBy,
        status: u16,
        code: String,
        message: String,
        /// Every failed rule the service named (may be empty when only a message was given).
        failed: Vec<FailedRule>,
    },
    /// Unusable local input: manifest, module, envelopes, options (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// The server failed, answered something unusable, or could not be reached (exit 3).
    #[error("{0}")]
    Server(String),
    /// Evidence could not be collected on this machine (exit 3: an environment problem).
    #[error("evidence collection failed: {0}")]
    Evidence(String),
    /// The workload failed: trap, limit, non-zero exit, missing output (exit 4).
    #[error("workload failed: {0}")]
    Workload(String),
    /// A local cryptographic or I/O failure that is none of the above (exit 3).
    #[error("{0}")]
    Internal(String),
}

impl EnclaveError {
    /// The `enclava run` exit code: 1 refused, 2 bad input, 3 server/network/environment,
    /// 4 the workload failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnclaveError::Refused { .. } => 1,
            EnclaveError::BadInput(_) => 2,
            EnclaveError::Server(_) | EnclaveError::Evidence(_) | EnclaveError::Internal(_) => 3,
            EnclaveError::Workload(_) => 4,
        }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        EnclaveError::BadInput(msg.into())
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        EnclaveError::Internal(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let refused = EnclaveError::Refused {
            by: RefusedBy::Release,
            status: 403,
            code: "Forbidden".into(),
            message: "m".into(),
            failed: vec![],
        };
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(EnclaveError::bad("x").exit_code(), 2);
        assert_eq!(EnclaveError::Server("x".into()).exit_code(), 3);
        assert_eq!(EnclaveError::Workload("x".into()).exit_code(), 4);
        assert!(
            refused
                .to_string()
                .starts_with("key release refused (403 Forbidden)")
        );
    }
}
