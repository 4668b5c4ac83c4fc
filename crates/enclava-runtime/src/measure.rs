//! The workload measurement that release policies name.
//!
//! ```text
//! measurement = SHA-384( "enclava-workload-v1\0"
//!                     || u64_be(len(module)) || module
//!                     || u64_be(len(manifest)) || manifest )
//! ```
//!
//! where `module` is the exact WebAssembly binary and `manifest` is
//! [`Manifest::canonical_json`](crate::Manifest::canonical_json). The length prefixes make the
//! encoding injective: no two different (module, manifest) pairs hash the same input.

use sha2::{Digest, Sha256, Sha384};

use crate::manifest::Manifest;

/// Domain-separation prefix of [`measure`] (including its terminating NUL).
pub const MEASUREMENT_DOMAIN: &[u8] = b"enclava-workload-v1\0";

/// Length of a measurement in bytes.
pub const MEASUREMENT_LEN: usize = 48;

/// SHA-384 over the domain-separated encoding of `module` and the canonical `manifest`.
pub fn measure(module: &[u8], manifest: &Manifest) -> [u8; MEASUREMENT_LEN] {
    measure_canonical(module, &manifest.canonical_json())
}

/// [`measure`] over an already canonical manifest encoding.
pub fn measure_canonical(module: &[u8], canonical_manifest: &[u8]) -> [u8; MEASUREMENT_LEN] {
    let mut h = Sha384::new();
    h.update(MEASUREMENT_DOMAIN);
    h.update((module.len() as u64).to_be_bytes());
    h.update(module);
    h.update((canonical_manifest.len() as u64).to_be_bytes());
    h.update(canonical_manifest);
    h.finalize().into()
}

/// SHA-256 of the module, lowercase hex: the value of [`Manifest::module_sha256`].
pub fn module_sha256(module: &[u8]) -> String {
    hex::encode(Sha256::digest(module))
}
