//! X.509 certificate formats for Key Vault certificates (issue 12): Key Vault subject strings,
//! certificate templates, issuing (self-signed or by a CA), PKCS #10 requests, parsing, and the
//! two bundle formats a certificate's secret is served in (PKCS #12 and PEM).
//!
//! Pure: no I/O, no async, no clock (times are unix seconds passed in), no global state. Every
//! signature is made by aws-lc-rs from a PKCS #8 key; the ASN.1 is built with `x509-cert`, so the
//! issuer name of a CA-signed certificate is the CA's subject byte for byte (chain building
//! compares names) and nothing is re-encoded on the way.
//!
//! Keys: RSA (2048 to 4096 bits in Key Vault policies; sha256WithRSAEncryption) and EC P-256,
//! P-384, P-521 (ecdsa-with-SHA256/384/512). Private keys cross this API as PKCS #8 DER in
//! `Zeroizing` buffers.

mod error;
mod issue;
pub mod keys;
mod parse;
pub mod pem;
pub mod pfx;
mod pfx_limits;
mod subject;
mod template;

pub use error::CertError;
pub use issue::{Issuer, csr, issue, new_issuing_ca};
pub use keys::{EcCurve, KeySpec, generate, key_spec, matches_key};
pub use parse::{ParsedCertificate, verify_issued_by};
pub use pfx_limits::{MAX_BAGS as PFX_MAX_BAGS, MAX_KDF_ITERATIONS as PFX_MAX_KDF_ITERATIONS};
pub use subject::{Subject, SubjectAttribute};
pub use template::{CertTemplate, KeyUsage, SubjectAltNames, UPN_OID, random_serial};

use zeroize::Zeroizing;

/// `Result` with this crate's error.
pub type Result<T, E = CertError> = std::result::Result<T, E>;

/// A private key and its certificate chain, leaf first: what a certificate's secret holds and
/// what an import reads.
#[derive(Clone)]
pub struct KeyAndChain {
    /// The private key, PKCS #8 DER (PKCS #1 and SEC 1 inputs are converted).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// Certificates, DER, the one whose public key is `key_pkcs8`'s first, then its issuer, and so
    /// on; certificates that do not chain follow in input order.
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for KeyAndChain {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndChain")
            .field("key_pkcs8", &"<redacted>")
            .field("chain_len", &self.chain.len())
            .finish()
    }
}

/// Order `certs` leaf first: the certificate whose public key is `key_pkcs8`'s, then the one
/// whose subject is its issuer, and so on; the rest keep their order after it. The key must
/// match one of them.
pub(crate) fn order_chain(key_pkcs8: &[u8], certs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>> {
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let spki = keys::public_key_spki(key_pkcs8)?;
    let mut parsed = Vec::with_capacity(certs.len());
    for der in &certs {
        parsed.push(parse::names_and_spki(der)?);
    }
    let leaf = parsed
        .iter()
        .position(|p| keys::same_spki(&p.spki, &spki))
        .ok_or(CertError::KeyMismatch)?;
    let mut used = vec![false; certs.len()];
    let mut order = vec![leaf];
    if let Some(u) = used.get_mut(leaf) {
        *u = true;
    }
    let mut current = leaf;
    // Follow issuer names up to a self-issued certificate; `used` also stops a cycle.
    while let Some(cur) = parsed.get(current) {
        if cur.issuer == cur.subject {
            break;
        }
        let next = parsed
            .iter()
            .enumerate()
            .position(|(i, p)| !used.get(i).copied().unwrap_or(true) && p.subject == cur.issuer);
        let Some(next) = next else { break };
        if let Some(u) = used.get_mut(next) {
            *u = true;
        }
        order.push(next);
        current = next;
    }
    for (i, u) in used.iter().enumerate() {
        if !u {
            order.push(i);
        }
    }
    let mut slots: Vec<Option<Vec<u8>>> = certs.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}
