//! The vault's single error type and its mapping to HTTP status codes and Azure error codes.
//!
//! Messages say what was expected and what was found, and never contain key material, plaintext
//! or secret values.

use enclava_store::StoreError;
use thiserror::Error;

/// Every failure a vault operation can report.
///
/// The server renders these as `{"error":{"code": code(), "message": to_string(),
/// "innererror": {"code": inner_code()}?}}` with status [`VaultError::http_status`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// The vault is sealed (or not yet initialized): data operations are unavailable.
    #[error("the vault is sealed: unseal it with the unseal key shares before using it")]
    Sealed,
    /// `init` on a vault that already holds a root key.
    #[error("the vault is already initialized")]
    AlreadyInitialized,
    /// `unseal` on a vault that was never initialized.
    #[error("the vault is not initialized: run init first")]
    NotInitialized,
    /// An unseal share that cannot be parsed or whose checksum does not match.
    #[error("invalid unseal share: {0}")]
    InvalidShare(String),
    /// The accumulated shares did not reconstruct the unseal key; progress was reset.
    #[error("unseal failed: {0}")]
    UnsealFailed(String),
    /// No (live) key with that name / version.
    #[error("{}", not_found_message("key", name, version.as_deref()))]
    KeyNotFound {
        name: String,
        version: Option<String>,
    },
    /// No deleted key with that name.
    #[error("deleted key '{name}' was not found")]
    DeletedKeyNotFound { name: String },
    /// No (live) secret with that name / version.
    #[error("{}", not_found_message("secret", name, version.as_deref()))]
    SecretNotFound {
        name: String,
        version: Option<String>,
    },
    /// No deleted secret with that name.
    #[error("deleted secret '{name}' was not found")]
    DeletedSecretNotFound { name: String },
    /// No such certificate-plane object (HTTP 404): `code` is Key Vault's (`CertificateNotFound`,
    /// `PendingCertificateNotFound`, `CertificateIssuerNotFound`, `ContactsNotFound`).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// Malformed or unacceptable input (HTTP 400, code `BadParameter`).
    #[error("{0}")]
    BadParameter(String),
    /// The operation is not allowed on this object (HTTP 403, code `Forbidden`); `inner` is the
    /// Azure inner error code such as `KeyDisabled`.
    #[error("{message}")]
    Forbidden {
        message: String,
        inner: Option<&'static str>,
    },
    /// A name collision or a concurrent change (HTTP 409, code `Conflict`).
    #[error("{0}")]
    Conflict(String),
    /// A storage backend failure (HTTP 500).
    #[error("storage failure: {0}")]
    Storage(String),
    /// Stored data that fails integrity checks or an unexpected crypto-library failure (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

fn not_found_message(kind: &str, name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if !v.is_empty() => format!("{kind} '{name}' version '{v}' was not found"),
        _ => format!("{kind} '{name}' was not found"),
    }
}

impl VaultError {
    /// The HTTP status the server should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            VaultError::Sealed | VaultError::NotInitialized => 503,
            VaultError::AlreadyInitialized => 409,
            VaultError::InvalidShare(_) | VaultError::UnsealFailed(_) => 400,
            VaultError::KeyNotFound { .. }
            | VaultError::DeletedKeyNotFound { .. }
            | VaultError::SecretNotFound { .. }
            | VaultError::DeletedSecretNotFound { .. }
            | VaultError::NotFound { .. } => 404,
            VaultError::BadParameter(_) => 400,
            VaultError::Forbidden { .. } => 403,
            VaultError::Conflict(_) => 409,
            VaultError::Storage(_) | VaultError::Internal(_) => 500,
        }
    }

    /// The Azure-style error code (`error.code` in the JSON body).
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Sealed | VaultError::NotInitialized => "VaultSealed",
            VaultError::AlreadyInitialized => "Conflict",
            VaultError::InvalidShare(_) | VaultError::UnsealFailed(_) => "BadParameter",
            VaultError::KeyNotFound { .. } | VaultError::DeletedKeyNotFound { .. } => "KeyNotFound",
            VaultError::SecretNotFound { .. } | VaultError::DeletedSecretNotFound { .. } => {
                "SecretNotFound"
            }
            VaultError::NotFound { code, .. } => code,
            VaultError::BadParameter(_) => "BadParameter",
            VaultError::Forbidden { .. } => "Forbidden",
            VaultError::Conflict(_) => "Conflict",
            VaultError::Storage(_) | VaultError::Internal(_) => "InternalServerError",
        }
    }

    /// The Azure inner error code (`error.innererror.code`), when there is one.
    pub fn inner_code(&self) -> Option<&'static str> {
        match self {
            VaultError::Forbidden { inner, .. } => *inner,
            _ => None,
        }
    }

    /// Shorthand for a `BadParameter` error.
    pub fn bad(msg: impl Into<String>) -> Self {
        VaultError::BadParameter(msg.into())
    }

    pub(crate) fn forbidden(msg: impl Into<String>, inner: &'static str) -> Self {
        VaultError::Forbidden {
            message: msg.into(),
            inner: Some(inner),
        }
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        VaultError::Internal(msg.into())
    }
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { table, key, .. } => VaultError::Conflict(format!(
                "a concurrent request changed {table}/{key}; retry the operation"
            )),
            other => VaultError::Storage(other.to_string()),
        }
    }
}

/// The vault's result type.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;
