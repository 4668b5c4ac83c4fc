//! Why a certificate operation was refused. Every message says what was expected and what was
//! found, and none carries key material or a password (they end up in 400 replies and logs).

use enclava_evidence::pem::PemError;

/// The error of every operation of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A Key Vault subject string that cannot be read.
    #[error("invalid subject: {0}")]
    Subject(String),
    /// A certificate template (policy) that cannot be issued: bad SAN, EKU, validity, serial.
    #[error("invalid certificate template: {0}")]
    Template(String),
    /// A private key of a kind or size this crate does not handle, or not a key at all.
    #[error("unsupported private key: {0}")]
    Key(String),
    /// DER that is not an X.509 certificate (or PKCS #10 request) we can read.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// The issuing CA certificate cannot sign (not a CA, no keyCertSign) or is not the CA key's.
    #[error("invalid issuer: {0}")]
    Issuer(String),
    /// A certificate's signature does not verify with its issuer's public key.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// The private key is not the key of any certificate given with it.
    #[error(
        "expected a private key matching the certificate's public key, found a key that matches none of the certificates"
    )]
    KeyMismatch,
    /// A bundle without a private key.
    #[error("expected a private key in the bundle, found none")]
    NoPrivateKey,
    /// A bundle with more than one private key.
    #[error("expected one private key in the bundle, found {0}")]
    SeveralPrivateKeys(usize),
    /// A bundle without a certificate.
    #[error("expected at least one certificate in the bundle, found none")]
    NoCertificate,
    /// An encrypted PEM private key (`ENCRYPTED PRIVATE KEY` or `Proc-Type: 4,ENCRYPTED`).
    #[error(
        "expected an unencrypted private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY), found an encrypted one: decrypt it first or import it as a password-protected PFX"
    )]
    EncryptedKey,
    /// PEM text that is not well formed.
    #[error("invalid PEM: {0}")]
    Pem(#[from] PemError),
    /// A PFX whose integrity check (or, without one, whose decryption) fails with the password.
    #[error(
        "the PFX cannot be opened with the given password (wrong or missing password, or a corrupted file)"
    )]
    WrongPassword,
    /// A PFX that is not well formed or uses an algorithm we do not read.
    #[error("invalid PFX: {0}")]
    Pfx(String),
    /// The crypto library refused an operation on a key it had accepted (should not happen).
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}
