//! Verification of TEE evidence into normalized claims.
//!
//! Every verifier here is pure: it takes evidence bytes, endorsements (certificates, collateral) and
//! the verification time, and returns either [`Claims`] or a [`VerifyError`] naming the check that
//! failed with what was expected and what was found. No network, no file system, no clock, no
//! global state: fetching collateral and reading files happen in the callers.
//!
//! The flow is evidence -> [`Claims`]; appraisal (policies) happens elsewhere.
//!
//! Everything here parses attacker-supplied bytes: indexing, slicing and `unwrap` are denied
//! outside tests, so a short or malformed input is a typed error, never a panic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

pub mod azure;
mod bytes;
pub mod ccel;
pub mod claims;
pub mod dcap;
pub mod error;
pub mod nvidia;
pub mod pem;
pub mod sample;
pub mod sim;
pub mod snp;

pub use claims::{Claims, CrlClaims, RevocationClaims, Tee};
pub use error::VerifyError;
