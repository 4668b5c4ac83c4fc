//! The crate's one error type, [`AttestError`], and its HTTP mapping (status + stable code +
//! MAA-shaped body `{"error": {"code", "message"}}`). Every variant says what was expected and
//! what was found; no variant carries secret material (evidence bytes, keys, tokens).

use chrono::{DateTime, Utc};
use enclava_policy::FailedRule;
use serde_json::{Value, json};
use thiserror::Error;

use crate::request::RequestError;

/// Rule name of a refused challenge nonce (unknown, expired or replayed).
pub const RULE_NONCE: &str = "nonce_fresh";

#[derive(Debug, Clone, PartialEq, Error)]
pub enum AttestError {
    /// The request is malformed (see [`RequestError`]).
    #[error(transparent)]
    Request(#[from] RequestError),

    /// The challenge nonce was never issued by a service holding this challenge key (bad shape,
    /// version or MAC).
    #[error(
        "unknown challenge nonce: expected a nonce issued by this service, found one it never issued"
    )]
    NonceUnknown,
    /// The challenge nonce was issued, but its lifetime ended.
    #[error(
        "challenge nonce expired at {expired_at}: expected it to be used before then, found it used at {at}"
    )]
    NonceExpired {
        expired_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The challenge nonce was already used once.
    #[error("challenge nonce replayed: expected a fresh nonce, found one already used")]
    NonceReplayed,

    /// The evidence did not verify. `failed_check` is the verifier's stable code.
    #[error("evidence verification failed ({failed_check}): {reason}")]
    Evidence {
        failed_check: &'static str,
        reason: String,
    },

    /// The appraisal (binding checks or policy) denied the attestation; `failed` names every
    /// failed rule (never empty).
    #[error("attestation denied: {}", explain(failed))]
    Denied { failed: Vec<FailedRule> },

    /// Runtime / init-time data that cannot be used as sent (not JSON when it says JSON, private
    /// key members in `keys`, init-time data for a TEE that has no place to bind it, ...).
    #[error("invalid {what}: {reason}")]
    InvalidData { what: String, reason: String },

    /// A policy text that does not compile / parse.
    #[error("invalid policy for {policy_type}: {reason}")]
    InvalidPolicy { policy_type: String, reason: String },
    /// Trusted policy signers are configured and the upload is not signed.
    #[error(
        "policy signature required: expected a JWS signed (RS256, x5c) by a trusted policy signer, found an unsigned request"
    )]
    PolicySignatureRequired,
    /// A signed policy upload whose signature is unusable or does not verify.
    #[error("invalid policy signature: {0}")]
    InvalidPolicySignature(String),
    /// A policy upload signed by a certificate that is not a trusted policy signer.
    #[error(
        "untrusted policy signer: expected a certificate of the configured policy signers, found one with SHA-256 {cert_sha256}"
    )]
    UntrustedPolicySigner { cert_sha256: String },
    /// A policy management certificate request (`/certificates:add`, `:remove`) that is not
    /// usable as sent: no `policyCertificate`, not an RSA X.509 certificate, ...
    #[error("invalid policy management certificate: {0}")]
    InvalidPolicyCertificate(String),
    /// Removing the last policy signer would leave isolated mode with no one able to sign
    /// anything again: refused (the operator changes `attestation.policy_signers` instead).
    #[error(
        "cannot remove the last policy signer: expected at least one policy signer to remain, found the certificate with SHA-256 {cert_sha256} is the only one"
    )]
    LastPolicySigner { cert_sha256: String },
    /// A policy failed while evaluating (conflict, contract breach): no token.
    #[error("policy evaluation failed for {policy_type}: {reason}")]
    PolicyEvaluation { policy_type: String, reason: String },
    /// A policy exceeds a complexity bound (source size, lines, nesting depth) or did not finish
    /// compiling and evaluating before its deadline: refused, never run to the end.
    #[error("policy for {policy_type} is too complex ({limit}): {reason}")]
    PolicyTooComplex {
        policy_type: String,
        /// Which bound: `source_bytes`, `lines`, `line_bytes`, `nesting_depth`,
        /// `expression_operators`, `deadline`.
        limit: &'static str,
        reason: String,
    },
    /// Every slot for draft-policy evaluation is taken: try again shortly (the server answers
    /// with `Retry-After`). Draft evaluations are never queued.
    #[error(
        "too many draft policy evaluations in progress: at most {capacity} run at once, retry shortly"
    )]
    PolicyBusy { capacity: usize },
    /// An attestation / policy type name we do not know.
    #[error("unknown attestation type {found:?}: expected one of {expected}")]
    UnknownType {
        found: String,
        expected: &'static str,
    },
    /// A reference-value set name, scope or value that cannot be stored.
    #[error("invalid reference values: {0}")]
    InvalidReference(String),
    /// A concurrent change won the race (optimistic concurrency on the store).
    #[error("conflicting concurrent change to {what}: retry")]
    Conflict { what: String },
    /// Storage failed, or a stored record is unreadable.
    #[error("storage error: {0}")]
    Store(String),
    /// A stored policy or reference-value row failed its integrity check (edited in the database,
    /// or moved there from another key): it is not used, and nothing is evaluated with it.
    #[error("integrity check failed for stored row {key:?}: {problem}")]
    Integrity { key: String, problem: String },
    /// The service configuration is unusable.
    #[error("invalid service configuration: {0}")]
    Config(String),
    /// Mapping claims or signing the token failed (a server-side problem, not the caller's).
    #[error("token issuance failed ({code}): {reason}")]
    Token { code: &'static str, reason: String },
}

fn explain(failed: &[FailedRule]) -> String {
    if failed.is_empty() {
        return "no rule named".into();
    }
    failed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<enclava_store::StoreError> for AttestError {
    fn from(e: enclava_store::StoreError) -> Self {
        match e {
            enclava_store::StoreError::Conflict { table, key, .. } => AttestError::Conflict {
                what: format!("{table}/{key}"),
            },
            other => AttestError::Store(other.to_string()),
        }
    }
}

impl AttestError {
    /// A policy error of `policy_type`: [`AttestError::PolicyTooComplex`] for a bound it exceeds,
    /// else [`AttestError::PolicyEvaluation`] when `evaluating`, or
    /// [`AttestError::InvalidPolicy`] (compiling / parsing).
    pub fn from_policy(
        policy_type: &str,
        e: enclava_policy::PolicyError,
        evaluating: bool,
    ) -> AttestError {
        let policy_type = policy_type.chars().take(64).collect();
        match e {
            enclava_policy::PolicyError::TooComplex {
                limit,
                expected,
                found,
                ..
            } => AttestError::PolicyTooComplex {
                policy_type,
                limit: limit.as_str(),
                reason: format!("expected {expected}, found {found}"),
            },
            other if evaluating => AttestError::PolicyEvaluation {
                policy_type,
                reason: other.to_string(),
            },
            other => AttestError::InvalidPolicy {
                policy_type,
                reason: other.to_string(),
            },
        }
    }

    /// The HTTP status the server answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            AttestError::Request(_)
            | AttestError::NonceUnknown
            | AttestError::NonceExpired { .. }
            | AttestError::NonceReplayed
            | AttestError::Evidence { .. }
            | AttestError::InvalidData { .. }
            | AttestError::InvalidPolicy { .. }
            | AttestError::UnknownType { .. }
            | AttestError::InvalidReference(_)
            | AttestError::PolicySignatureRequired
            | AttestError::InvalidPolicySignature(_)
            | AttestError::InvalidPolicyCertificate(_)
            | AttestError::PolicyTooComplex { .. } => 400,
            AttestError::Denied { .. } | AttestError::UntrustedPolicySigner { .. } => 403,
            AttestError::Conflict { .. } | AttestError::LastPolicySigner { .. } => 409,
            AttestError::PolicyBusy { .. } => 503,
            AttestError::PolicyEvaluation { .. }
            | AttestError::Store(_)
            | AttestError::Integrity { .. }
            | AttestError::Config(_)
            | AttestError::Token { .. } => 500,
        }
    }

    /// A stable machine-readable code (snake case). Evidence failures carry the verifier's
    /// `failed_check` code after `evidence_` (e.g. `evidence_report_signature`): see
    /// [`AttestError::failed_check`] for the bare code.
    pub fn code(&self) -> &'static str {
        match self {
            AttestError::Request(e) => e.code(),
            AttestError::NonceUnknown => "nonce_unknown",
            AttestError::NonceExpired { .. } => "nonce_expired",
            AttestError::NonceReplayed => "nonce_replayed",
            AttestError::Evidence { .. } => "evidence_invalid",
            AttestError::Denied { .. } => "attestation_denied",
            AttestError::InvalidData { .. } => "invalid_data",
            AttestError::InvalidPolicy { .. } => "invalid_policy",
            AttestError::PolicySignatureRequired => "policy_signature_required",
            AttestError::InvalidPolicySignature(_) => "invalid_policy_signature",
            AttestError::UntrustedPolicySigner { .. } => "untrusted_policy_signer",
            AttestError::InvalidPolicyCertificate(_) => "invalid_policy_certificate",
            AttestError::LastPolicySigner { .. } => "last_policy_signer",
            AttestError::PolicyEvaluation { .. } => "policy_evaluation_failed",
            AttestError::PolicyTooComplex { .. } => "policy_too_complex",
            AttestError::PolicyBusy { .. } => "policy_evaluation_busy",
            AttestError::UnknownType { .. } => "unknown_attestation_type",
            AttestError::InvalidReference(_) => "invalid_reference_values",
            AttestError::Conflict { .. } => "conflict",
            AttestError::Store(_) => "storage_error",
            AttestError::Integrity { .. } => "integrity_check_failed",
            AttestError::Config(_) => "invalid_configuration",
            AttestError::Token { .. } => "token_issuance_failed",
        }
    }

    /// For evidence failures, the verifier's stable `failed_check` code.
    pub fn failed_check(&self) -> Option<&'static str> {
        match self {
            AttestError::Evidence { failed_check, .. } => Some(failed_check),
            _ => None,
        }
    }

    /// For denials, every failed rule; for a challenge nonce that is unknown, expired or
    /// replayed, the rule [`RULE_NONCE`] (the request is refused before any evidence is looked
    /// at, so that is the only rule that failed).
    pub fn failed_rules(&self) -> Vec<FailedRule> {
        let nonce = |found: String| {
            vec![FailedRule::new(
                RULE_NONCE,
                "nonce",
                "a challenge nonce issued by this service, unexpired and not used before",
                found,
            )]
        };
        match self {
            AttestError::Denied { failed } => failed.clone(),
            AttestError::NonceUnknown => nonce("a nonce this service never issued".into()),
            AttestError::NonceExpired { expired_at, .. } => {
                nonce(format!("a nonce that expired at {expired_at}"))
            }
            AttestError::NonceReplayed => nonce("a nonce already used once".into()),
            _ => Vec::new(),
        }
    }

    /// MAA's error body `{"error": {"code", "message"}}`, plus `failed_check` (evidence failures)
    /// or `failed` (the failed rules of a denial) inside `error`.
    pub fn error_body(&self) -> Value {
        let mut err = serde_json::Map::new();
        err.insert("code".into(), json!(self.code()));
        err.insert("message".into(), json!(self.to_string()));
        if let Some(fc) = self.failed_check() {
            err.insert("failed_check".into(), json!(fc));
        }
        let failed = self.failed_rules();
        if !failed.is_empty() {
            err.insert(
                "failed".into(),
                serde_json::to_value(failed).unwrap_or(Value::Null),
            );
        }
        json!({ "error": err })
    }
}
