//! Error kinds of the KBS protocol. The body is
//! `{"type": "https://github.com/confidential-containers/kbs/errors/<Kind>", "detail": "..."}`,
//! the shape every CoCo client prints.

use serde::Serialize;

/// Prefix of the `type` member of every error body.
pub const ERROR_TYPE_PREFIX: &str = "https://github.com/confidential-containers/kbs/errors/";

/// Every error kind the server answers, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is not the expected JSON shape (400).
    InvalidRequest,
    /// `version` is not exactly 0.4.0 (400).
    ProtocolVersion,
    /// The `tee` is not one this server verifies (400).
    UnsupportedTee,
    /// No hash algorithm in common with the client (400).
    UnsupportedHashAlgorithm,
    /// No `kbs-session-id` cookie (401).
    MissingCookie,
    /// The cookie names no session (401).
    InvalidCookie,
    /// The session expired (401).
    ExpiredCookie,
    /// The session has not attested yet (401).
    UnAuthenticatedCookie,
    /// The nonce is not the session's, or was already used (401).
    InvalidNonce,
    /// The TEE report does not carry the runtime-data binding (401).
    BindingMismatch,
    /// The init-data digest does not match the TEE's field (401).
    InitDataMismatch,
    /// Evidence verification or the appraisal policy refused the evidence (401).
    AttestationFailed,
    /// No cookie session and no bearer token on a resource request (401).
    TokenNotFound,
    /// The bearer token is expired (401).
    TokenExpired,
    /// The bearer token failed verification (401).
    TokenVerificationFailed,
    /// The resource policy denied the request (401, like trustee).
    PolicyDeny,
    /// No such resource (404).
    ResourceNotFound,
    /// No such route (404).
    NotFound,
    /// The answer could not be encrypted to the tee-pubkey (400: the key is the client's).
    JweFailed,
    /// Too many sessions or requests (429).
    TooManyRequests,
    /// The server cannot serve now (sealed, store unavailable) (503).
    Unavailable,
    /// A server fault (500).
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "InvalidRequest",
            ErrorKind::ProtocolVersion => "ProtocolVersion",
            ErrorKind::UnsupportedTee => "UnsupportedTee",
            ErrorKind::UnsupportedHashAlgorithm => "UnsupportedHashAlgorithm",
            ErrorKind::MissingCookie => "MissingCookie",
            ErrorKind::InvalidCookie => "InvalidCookie",
            ErrorKind::ExpiredCookie => "ExpiredCookie",
            ErrorKind::UnAuthenticatedCookie => "UnAuthenticatedCookie",
            ErrorKind::InvalidNonce => "InvalidNonce",
            ErrorKind::BindingMismatch => "BindingMismatch",
            ErrorKind::InitDataMismatch => "InitDataMismatch",
            ErrorKind::AttestationFailed => "AttestationFailed",
            ErrorKind::TokenNotFound => "TokenNotFound",
            ErrorKind::TokenExpired => "TokenExpired",
            ErrorKind::TokenVerificationFailed => "TokenVerificationFailed",
            ErrorKind::PolicyDeny => "PolicyDeny",
            ErrorKind::ResourceNotFound => "ResourceNotFound",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::JweFailed => "JWEFailed",
            ErrorKind::TooManyRequests => "TooManyRequests",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::Internal => "Internal",
        }
    }

    /// The HTTP status. Authentication and authorization failures are 401 like trustee's.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::ProtocolVersion
            | ErrorKind::UnsupportedTee
            | ErrorKind::UnsupportedHashAlgorithm
            | ErrorKind::JweFailed => 400,
            ErrorKind::ResourceNotFound | ErrorKind::NotFound => 404,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
            _ => 401,
        }
    }

    /// The `type` member.
    pub fn type_uri(self) -> String {
        format!("{ERROR_TYPE_PREFIX}{}", self.as_str())
    }
}

/// A protocol error: a kind and a detail saying what was expected and what was found. Details
/// never carry secrets (no keys, no resource bytes, no tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", kind.as_str())]
pub struct KbsError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl KbsError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> KbsError {
        KbsError {
            kind,
            detail: detail.into(),
        }
    }

    pub fn invalid(detail: impl Into<String>) -> KbsError {
        KbsError::new(ErrorKind::InvalidRequest, detail)
    }

    /// The error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            r#type: self.kind.type_uri(),
            detail: self.detail.clone(),
        }
    }
}

/// The error body on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub r#type: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let e = KbsError::new(ErrorKind::PolicyDeny, "rule x");
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "https://github.com/confidential-containers/kbs/errors/PolicyDeny",
                "detail": "rule x"
            })
        );
        assert_eq!(ErrorKind::PolicyDeny.status(), 401);
        assert_eq!(ErrorKind::ProtocolVersion.status(), 400);
    }
}
