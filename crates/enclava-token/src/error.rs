//! The crate's one error type. Every variant has a stable [`TokenError::code`] and a message saying
//! what was expected and what was found. Values taken from a token are shortened (see
//! `shown`); the token itself and key material are never part of a message.

use thiserror::Error;

/// Longest piece of untrusted input quoted in an error message, in characters.
const SHOWN_MAX: usize = 64;

/// A value from untrusted input, shortened for an error message.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(SHOWN_MAX).collect();
    if s.chars().nth(SHOWN_MAX).is_some() {
        out.push_str("...");
    }
    format!("{out:?}")
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    // ---- token structure ----
    #[error("token is {len} bytes, expected at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed token: {0}")]
    Malformed(String),

    // ---- algorithm and key selection ----
    #[error("alg {found} (unsigned token) is never accepted: expected one of {allowed}")]
    AlgNone { found: String, allowed: String },
    #[error(
        "symmetric alg {found} is never accepted for attestation tokens (alg confusion): expected one of {allowed}"
    )]
    SymmetricAlg { found: String, allowed: String },
    #[error("unsupported alg {found}: expected one of ES256, RS256")]
    UnsupportedAlg { found: String },
    #[error("alg {found} is not allowed here: expected one of {allowed}")]
    AlgNotAllowed { found: String, allowed: String },
    #[error("alg {alg} does not fit key {kid}: {reason}")]
    AlgKeyMismatch {
        alg: String,
        kid: String,
        reason: String,
    },
    #[error("unsupported critical header parameters {found}: expected no \"crit\" header")]
    CriticalHeader { found: String },
    #[error("token header has no kid and the key set holds {count} keys: expected a kid")]
    MissingKid { count: usize },
    #[error("unknown kid {found}: expected one of {known}")]
    UnknownKid { found: String, known: String },
    #[error("signature does not verify with key {kid} ({alg})")]
    BadSignature { kid: String, alg: String },

    // ---- claims ----
    #[error("token expired: exp {exp}, now {now} (leeway {leeway}s)")]
    Expired { exp: i64, now: i64, leeway: i64 },
    #[error("token not yet valid: nbf {nbf}, now {now} (leeway {leeway}s)")]
    NotYetValid { nbf: i64, now: i64, leeway: i64 },
    #[error("wrong issuer: expected {expected}, found {found}")]
    WrongIssuer { expected: String, found: String },
    #[error("wrong audience: expected {expected}, found {found}")]
    WrongAudience { expected: String, found: String },
    #[error("missing claim {name}: expected {expected}")]
    MissingClaim { name: String, expected: String },
    #[error("invalid claim {name}: expected {expected}, found {found}")]
    InvalidClaim {
        name: String,
        expected: String,
        found: String,
    },

    // ---- keys and signing ----
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("invalid token options: {0}")]
    InvalidOptions(String),

    // ---- claims mapping ----
    #[error("{what} is not bound to the evidence: expected {expected}, found {found}")]
    DataBinding {
        what: String,
        expected: String,
        found: String,
    },
    #[error("invalid {what}: {reason}")]
    InvalidData { what: String, reason: String },
    #[error("malformed normalized claims: {0}")]
    MalformedClaims(String),
}

impl TokenError {
    /// A stable, machine-readable code (snake case) for this error.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "token_too_large",
            TokenError::Malformed(_) => "malformed_token",
            TokenError::AlgNone { .. } => "alg_none",
            TokenError::SymmetricAlg { .. } => "alg_symmetric",
            TokenError::UnsupportedAlg { .. } => "alg_unsupported",
            TokenError::AlgNotAllowed { .. } => "alg_not_allowed",
            TokenError::AlgKeyMismatch { .. } => "alg_key_mismatch",
            TokenError::CriticalHeader { .. } => "crit_unsupported",
            TokenError::MissingKid { .. } => "kid_missing",
            TokenError::UnknownKid { .. } => "kid_unknown",
            TokenError::BadSignature { .. } => "bad_signature",
            TokenError::Expired { .. } => "token_expired",
            TokenError::NotYetValid { .. } => "token_not_yet_valid",
            TokenError::WrongIssuer { .. } => "wrong_issuer",
            TokenError::WrongAudience { .. } => "wrong_audience",
            TokenError::MissingClaim { .. } => "claim_missing",
            TokenError::InvalidClaim { .. } => "claim_invalid",
            TokenError::InvalidKey(_) => "invalid_key",
            TokenError::Signing(_) => "signing_failed",
            TokenError::InvalidOptions(_) => "invalid_options",
            TokenError::DataBinding { .. } => "data_binding_mismatch",
            TokenError::InvalidData { .. } => "invalid_data",
            TokenError::MalformedClaims(_) => "malformed_claims",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_truncates_and_quotes() {
        assert_eq!(shown("abc"), "\"abc\"");
        let long = "x".repeat(200);
        let s = shown(&long);
        assert!(s.len() < 80, "{s}");
        assert!(s.ends_with("...\""));
    }
}
