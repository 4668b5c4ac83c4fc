//! Data keys, key derivation and the key wrapping interface.

use aws_lc_rs::{aead, hkdf, hmac, key_wrap, rand};
use zeroize::Zeroizing;

use crate::error::{BoxError, EnvelopeError};

/// Length of the per-file data key (DEK) in bytes.
pub const DATA_KEY_LEN: usize = 32;
/// Length of the per-file HKDF salt stored in the header.
pub const SALT_LEN: usize = 32;

/// HKDF info string for the header MAC key.
pub(crate) const INFO_HEADER: &[u8] = b"enclava-envelope v1 header";
/// HKDF info string for the payload (chunk) key.
pub(crate) const INFO_PAYLOAD: &[u8] = b"enclava-envelope v1 payload";

/// Wraps a freshly generated data key under a key-encryption key (for example a vault key,
/// through the vault's `wrapKey` operation).
pub trait KeyWrapper {
    /// Identifier of the key-encryption key, recorded in the header (for example the vault key
    /// URL including its version). 1 to 2048 visible ASCII characters.
    fn kid(&self) -> &str;
    /// Wrapping algorithm name, recorded in the header (for example `RSA-OAEP-256`, `A256KW`,
    /// `CKM_AES_KEY_WRAP_PAD`). 1 to 64 characters from `A-Z a-z 0-9 - _ .`.
    fn alg(&self) -> &str;
    /// Wraps `dek` (32 bytes); the result (1 to 8192 bytes) is stored in the header.
    fn wrap_key(&self, dek: &[u8]) -> Result<Vec<u8>, BoxError>;
}

/// Unwraps the data key of an envelope (for example through the vault's `unwrapKey`
/// operation, which only succeeds for attested workloads the key's release policy admits).
///
/// `kid` and `alg` come from the header *before* it is authenticated (the header can only be
/// authenticated with the unwrapped key); an unwrapper must treat them as untrusted input.
pub trait KeyUnwrapper {
    /// Returns the 32-byte data key wrapped in `wrapped`.
    fn unwrap_key(
        &self,
        kid: &str,
        alg: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BoxError>;
}

impl<T: KeyWrapper + ?Sized> KeyWrapper for &T {
    fn kid(&self) -> &str {
        (**self).kid()
    }
    fn alg(&self) -> &str {
        (**self).alg()
    }
    fn wrap_key(&self, dek: &[u8]) -> Result<Vec<u8>, BoxError> {
        (**self).wrap_key(dek)
    }
}

impl<T: KeyUnwrapper + ?Sized> KeyUnwrapper for &T {
    fn unwrap_key(
        &self,
        kid: &str,
        alg: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BoxError> {
        (**self).unwrap_key(kid, alg, wrapped)
    }
}

/// The secret per-file key material of one envelope: the data key and the HKDF salt.
///
/// [`KeyMaterial::generate`] is what [`crate::encrypt`] uses. [`KeyMaterial::from_parts`]
/// exists for reproducible test vectors only: encrypting two different plaintexts under the
/// same (data key, salt) pair reuses AES-GCM nonces and destroys confidentiality and
/// integrity.
pub struct KeyMaterial {
    pub(crate) dek: Zeroizing<[u8; DATA_KEY_LEN]>,
    pub(crate) salt: [u8; SALT_LEN],
}

impl KeyMaterial {
    /// Fresh random data key and salt from the system CSPRNG.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut dek = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let mut salt = [0u8; SALT_LEN];
        rand::fill(dek.as_mut()).map_err(|_| EnvelopeError::Random)?;
        rand::fill(&mut salt).map_err(|_| EnvelopeError::Random)?;
        Ok(KeyMaterial { dek, salt })
    }

    /// Fixed key material, for reproducible test vectors only (see the type's documentation).
    pub fn from_parts(dek: Zeroizing<[u8; DATA_KEY_LEN]>, salt: [u8; SALT_LEN]) -> Self {
        KeyMaterial { dek, salt }
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").finish_non_exhaustive()
    }
}

/// Output length for HKDF-Expand.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The two keys derived from a data key and salt.
pub(crate) struct DerivedKeys {
    pub(crate) header_mac: hmac::Key,
    pub(crate) payload: aead::LessSafeKey,
}

pub(crate) fn derive_keys(dek: &[u8], salt: &[u8; SALT_LEN]) -> Result<DerivedKeys, EnvelopeError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dek);
    let mut header_key = Zeroizing::new([0u8; 32]);
    let mut payload_key = Zeroizing::new([0u8; 32]);
    prk.expand(&[INFO_HEADER], Len32)
        .and_then(|okm| okm.fill(header_key.as_mut()))
        .map_err(|_| EnvelopeError::Crypto("HKDF-SHA256"))?;
    prk.expand(&[INFO_PAYLOAD], Len32)
        .and_then(|okm| okm.fill(payload_key.as_mut()))
        .map_err(|_| EnvelopeError::Crypto("HKDF-SHA256"))?;
    let header_mac = hmac::Key::new(hmac::HMAC_SHA256, header_key.as_ref());
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, payload_key.as_ref())
        .map_err(|_| EnvelopeError::Crypto("AES-256-GCM key setup"))?;
    Ok(DerivedKeys {
        header_mac,
        payload: aead::LessSafeKey::new(unbound),
    })
}

/// A local AES-256 key-encryption key using AES Key Wrap (RFC 3394, JOSE `A256KW`).
///
/// Implements both [`KeyWrapper`] and [`KeyUnwrapper`]; useful offline, in tests and in the
/// throughput benchmark. The vault-backed wrappers live in the CLI.
pub struct AesKeyWrap {
    kid: String,
    kek: Zeroizing<[u8; 32]>,
}

impl AesKeyWrap {
    /// The JOSE algorithm name recorded in headers.
    pub const ALG: &'static str = "A256KW";

    /// A wrapper for the 32-byte key-encryption key `kek`, identified by `kid`.
    pub fn new(kid: impl Into<String>, kek: Zeroizing<[u8; 32]>) -> Self {
        AesKeyWrap {
            kid: kid.into(),
            kek,
        }
    }

    /// A wrapper with a fresh random key-encryption key.
    pub fn generate(kid: impl Into<String>) -> Result<Self, EnvelopeError> {
        let mut kek = Zeroizing::new([0u8; 32]);
        rand::fill(kek.as_mut()).map_err(|_| EnvelopeError::Random)?;
        Ok(AesKeyWrap::new(kid, kek))
    }

    fn kek(&self) -> Result<key_wrap::AesKek, BoxError> {
        key_wrap::AesKek::new(&key_wrap::AES_256, self.kek.as_ref())
            .map_err(|_| "AES-256 key-encryption key setup failed".into())
    }
}

impl std::fmt::Debug for AesKeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesKeyWrap")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeyWrapper for AesKeyWrap {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn alg(&self) -> &str {
        Self::ALG
    }

    fn wrap_key(&self, dek: &[u8]) -> Result<Vec<u8>, BoxError> {
        use key_wrap::KeyWrap;
        let mut out = vec![0u8; dek.len() + 8];
        let len = self
            .kek()?
            .wrap(dek, &mut out)
            .map_err(|_| format!("A256KW cannot wrap a {}-byte key", dek.len()))?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

impl KeyUnwrapper for AesKeyWrap {
    fn unwrap_key(
        &self,
        kid: &str,
        alg: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BoxError> {
        use key_wrap::KeyWrap;
        if kid != self.kid {
            return Err(format!("unknown key id: expected {:?}, found {kid:?}", self.kid).into());
        }
        if alg != Self::ALG {
            return Err(
                format!("unsupported wrap algorithm: expected A256KW, found {alg:?}").into(),
            );
        }
        if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
            return Err(format!(
                "A256KW wrapped key must be a multiple of 8 bytes and at least 24, found {} bytes",
                wrapped.len()
            )
            .into());
        }
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let len = self
            .kek()?
            .unwrap(wrapped, &mut out)
            .map_err(|_| "A256KW unwrap failed: integrity check of the wrapped key failed")?
            .len();
        out.truncate(len);
        Ok(out)
    }
}
