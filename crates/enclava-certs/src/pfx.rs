//! PKCS #12 (PFX) bundles of a certificate secret (Key Vault's `application/x-pkcs12`).
//!
//! Written with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the key and the certificates and an
//! HMAC-SHA256 integrity MAC: what OpenSSL 3 writes by default and reads without `-legacy`, and
//! what Python `cryptography` reads. "No password" is the empty password, which both accept for
//! `None`. Read: the same, plus the legacy PBE-SHA1-3DES and PBE-SHA1-RC2-40 that Windows and
//! older OpenSSL write. The format work is `p12-keystore`'s; this module adds a bound on the work
//! a file may ask for (`pfx_limits`), the key checks and the chain order.
//!
//! Known limit: p12-keystore keeps its own copies of the key (and of the decrypted bags) in plain
//! `Vec`s that are freed without being zeroized; the copies this crate hands out are `Zeroizing`.

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
use zeroize::Zeroizing;

use crate::keys::key_spec;
use crate::{CertError, KeyAndChain, Result};

/// PBKDF2 and MAC iterations: OpenSSL 3's default (2048) is low; 10 000 keeps a Python load
/// well under a second.
const ITERATIONS: u64 = 10_000;

/// Largest PFX read: a certificate with a long chain is a few tens of kB.
pub const MAX_PFX_LEN: usize = 1 << 20;

/// A PFX holding `key_pkcs8` and `chain` (leaf first), encrypted under `password` (`None`: the
/// empty password).
pub fn build(key_pkcs8: &[u8], chain: &[Vec<u8>], password: Option<&str>) -> Result<Vec<u8>> {
    key_spec(key_pkcs8)?;
    let leaf = chain.first().ok_or(CertError::NoCertificate)?;
    // One bag per certificate plus the key's: more would not read back.
    if chain.len() >= crate::pfx_limits::MAX_BAGS {
        return Err(CertError::Pfx(format!(
            "expected a chain of at most {} certificates, found {}",
            crate::pfx_limits::MAX_BAGS - 1,
            chain.len()
        )));
    }
    if !crate::matches_key(leaf, key_pkcs8)? {
        return Err(CertError::KeyMismatch);
    }
    let mut certs = Vec::with_capacity(chain.len());
    for der in chain {
        certs.push(Certificate::from_der(der).map_err(|e| {
            CertError::Certificate(format!("expected a DER X.509 certificate: {e}"))
        })?);
    }
    // The localKeyId ties the key bag to the leaf's certificate bag: the leaf's SHA-1, as OpenSSL.
    let local_key_id =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf)
            .as_ref()
            .to_vec();
    let entry = PrivateKeyChain::new(key_pkcs8, local_key_id, certs);
    let mut store = KeyStore::new();
    store.add_entry("1", KeyStoreEntry::PrivateKeyChain(entry));
    store
        .writer(password.unwrap_or(""))
        .encryption_iterations(ITERATIONS)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| CertError::Pfx(format!("cannot write the PFX: {e}")))
}

/// The key and chain of a PFX. Exactly one private key; its certificate first, then the
/// issuers, then any other certificates.
pub fn parse(pfx: &[u8], password: Option<&str>) -> Result<KeyAndChain> {
    if pfx.len() > MAX_PFX_LEN {
        return Err(CertError::Pfx(format!(
            "expected at most {MAX_PFX_LEN} bytes, found {}",
            pfx.len()
        )));
    }
    // Bound the key-derivation work the file asks for before doing any of it.
    crate::pfx_limits::check(pfx, password.unwrap_or(""))?;
    let store = KeyStore::from_pkcs12(pfx, password.unwrap_or("")).map_err(map_err)?;
    let mut key: Option<Zeroizing<Vec<u8>>> = None;
    let mut keys = 0usize;
    let mut certs: Vec<Vec<u8>> = Vec::new();
    for (_, entry) in store.entries() {
        match entry {
            KeyStoreEntry::PrivateKeyChain(c) => {
                keys += 1;
                key = Some(Zeroizing::new(c.key().to_vec()));
                for cert in c.chain() {
                    push_unique(&mut certs, cert.as_der());
                }
            }
            KeyStoreEntry::Certificate(cert) => push_unique(&mut certs, cert.as_der()),
            KeyStoreEntry::Secret(_) => {}
        }
    }
    let key = match (keys, key) {
        (1, Some(k)) => k,
        (0, _) | (_, None) => return Err(CertError::NoPrivateKey),
        (n, _) => return Err(CertError::SeveralPrivateKeys(n)),
    };
    key_spec(&key)?;
    let chain = crate::order_chain(&key, certs)?;
    Ok(KeyAndChain {
        key_pkcs8: key,
        chain,
    })
}

fn push_unique(certs: &mut Vec<Vec<u8>>, der: &[u8]) {
    if !certs.iter().any(|c| c == der) {
        certs.push(der.to_vec());
    }
}

fn map_err(e: p12_keystore::error::Error) -> CertError {
    use p12_keystore::error::Error as E;
    match e {
        // A MAC that does not verify, or (without a MAC) a decryption whose padding is wrong:
        // both what a wrong password gives.
        E::MacError(_) | E::UnpadError => CertError::WrongPassword,
        E::InvalidVersion => {
            CertError::Pfx("expected a version 3 PFX, found another version".into())
        }
        E::UnsupportedContentType => CertError::Pfx(
            "expected password-integrity (data) content, found public-key (signed) content".into(),
        ),
        E::UnsupportedEncryptionScheme => CertError::Pfx(
            "expected PBES2 (AES) or PBE-SHA1-3DES/RC2 encryption, found another scheme".into(),
        ),
        E::UnsupportedMacAlgorithm => CertError::Pfx(
            "expected an HMAC-SHA1 or HMAC-SHA256 integrity MAC, found another".into(),
        ),
        E::DerError(e) => CertError::Pfx(format!("expected DER: {e}")),
        // Error texts of the library name no secrets (they are fixed strings or DER positions).
        e => CertError::Pfx(e.to_string()),
    }
}
