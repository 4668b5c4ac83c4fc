//! The Confidential Containers Key Broker Service protocol (RCAR, version 0.4.0): pure logic.
//!
//! Nothing here does I/O or runs async: the server (`enclava-server`'s `kbs.rs`) owns sessions,
//! storage, verification and policy; this crate owns the wire shapes and the cryptography the
//! protocol fixes:
//!
//! - [`wire`]: the request and answer bodies of `/kbs/v0/auth`, `/kbs/v0/attest` and the error
//!   body, with the protocol's hyphenated field names; `version` must be exactly
//!   [`PROTOCOL_VERSION`];
//! - [`jcs`]: RFC 8785 JSON canonicalization, and [`binding`]: the runtime-data binding
//!   (`{"tee-pubkey","nonce","additional-evidence"}` canonicalized, hashed with the negotiated
//!   algorithm, zero-padded or truncated to the report field);
//! - [`jwk`]: the `tee-pubkey` (EC P-256 `ECDH-ES+A256KW` or RSA `RSA-OAEP-256`);
//! - [`jwe`]: the flattened JWE JSON answer of `/kbs/v0/resource` (A256GCM);
//! - [`initdata`]: the init-data TOML digest as CoCo defines it;
//! - [`error`]: the error kinds and their body.

pub mod binding;
pub mod error;
pub mod initdata;
pub mod jcs;
pub mod jwe;
pub mod jwk;
pub mod snp;
pub mod wire;

pub use binding::HashAlg;
pub use error::{ErrorKind, KbsError};

/// The one protocol version spoken. Clients in use send exactly this and refuse anything else,
/// so the server does the same (a mismatch is [`ErrorKind::ProtocolVersion`]).
pub const PROTOCOL_VERSION: &str = "0.4.0";

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "kbs-session-id";
