//! The attestation service logic (sync, no I/O of its own beyond the injected [`enclava_store::Store`]):
//! MAA-compatible and native requests ([`request`]), single-use challenges ([`challenge`]), binding
//! of caller data to the evidence ([`binding`]), versioned appraisal policies and reference values
//! ([`policies`]), and the service that verifies, appraises and issues tokens ([`service`]).
//!
//! The flow is one-way: request -> evidence -> claims (verifier) -> binding checks -> appraisal
//! (policy + reference values) -> token. The HTTP server wraps [`AttestationService`] and maps
//! [`AttestError`] with [`AttestError::http_status`], [`AttestError::code`] and
//! [`AttestError::error_body`]. See `docs/attestation.md` for the wire shapes and rules.
// Parses attacker-supplied input: indexing, slicing and `unwrap` are denied outside tests, so bad
// input is a typed error, never a panic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod binding;
pub mod challenge;
pub mod error;
pub mod gpu;
pub mod integrity;
pub mod policies;
pub mod request;
pub mod service;
pub mod signers;

pub use challenge::{Challenge, ChallengeStore};
pub use error::{AttestError, RULE_NONCE};
pub use integrity::{PolicyRowKeys, row_key_purpose};
pub use policies::{
    ChangeAction, CompiledPolicy, PolicyChange, PolicyLanguage, PolicyRecord, PolicyStore,
    ReferenceChange, ReferenceRecord, SignedPolicy, policy_type,
};
pub use request::{AttestRequest, Evidence, MaaType, RequestError, Route};
pub use service::{
    AttestationService, Attested, CollateralSource, FrontEndCheck, PolicyRef, PolicyResult,
    PolicyTestResult, ServiceConfig, VERIFICATION_TIME_CLAIM,
};
pub use signers::{
    PolicySigner, PolicySigners, SignedRequest, SignerChange, SignerSetRecord,
    certificate_of_management_body, signer_of, thumbprint,
};
