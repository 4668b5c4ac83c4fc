//! Small shared helpers: name validation, version ids, paging tokens, at-rest encryption.

use crate::error::{Result, VaultError};

/// Validate an object name: 1-127 characters of ASCII letters, digits and dashes.
pub(crate) fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 127 {
        return Err(VaultError::bad(format!(
            "invalid {kind} name: expected 1-127 characters of letters, digits and dashes, found {} characters",
            name.chars().count()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(VaultError::bad(format!(
            "invalid {kind} name: expected only letters, digits and dashes, found {c:?}"
        )));
    }
    Ok(())
}

/// Storage key for a name: names are case-insensitive like Azure's.
pub(crate) fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Fill `buf` from the system CSPRNG.
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| VaultError::internal("the system random number generator failed"))
}

/// A fresh 32-byte random key.
pub(crate) fn random_key32() -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    random_fill(k.as_mut())?;
    Ok(k)
}

/// A fresh version id: 32 lowercase hex characters.
pub(crate) fn new_version_id() -> Result<String> {
    let mut b = [0u8; 16];
    random_fill(&mut b)?;
    Ok(hex::encode(b))
}

/// AES-256-GCM encrypt: returns `nonce || ciphertext || tag`.
pub(crate) fn aead_seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let unbound = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|_| VaultError::internal("AES-256-GCM key setup failed"))?;
    let key = LessSafeKey::new(unbound);
    let mut nonce = [0u8; NONCE_LEN];
    random_fill(&mut nonce)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| VaultError::internal("AES-256-GCM encryption failed"))?;
    out.append(&mut body);
    Ok(out)
}

/// AES-256-GCM decrypt of `nonce || ciphertext || tag`; `None` when authentication fails.
pub(crate) fn aead_open(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    let unbound = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|_| VaultError::internal("AES-256-GCM key setup failed"))?;
    let key = LessSafeKey::new(unbound);
    if sealed.len() < NONCE_LEN + 16 {
        return Ok(None);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let mut nonce_arr = [0u8; NONCE_LEN];
    nonce_arr.copy_from_slice(nonce);
    let mut buf = zeroize::Zeroizing::new(body.to_vec());
    match key.open_in_place(
        Nonce::assume_unique_for_key(nonce_arr),
        Aad::from(aad),
        &mut buf,
    ) {
        Ok(pt) => {
            let n = pt.len();
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(_) => Ok(None),
    }
}

/// HKDF-SHA256 of `ikm` with a fixed salt, for `info`: 32 bytes.
pub(crate) fn hkdf32(ikm: &[u8], info: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
    let salt = Salt::new(HKDF_SHA256, b"enclava-vault/v1/hkdf-salt");
    let prk = salt.extract(ikm);
    let info_parts = [info];
    let okm = prk
        .expand(&info_parts, HKDF_SHA256)
        .map_err(|_| VaultError::internal("HKDF expansion failed"))?;
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    okm.fill(out.as_mut())
        .map_err(|_| VaultError::internal("HKDF expansion failed"))?;
    Ok(out)
}

/// Encode a paging continuation token for the storage key `after`.
pub(crate) fn encode_token(after: &str) -> String {
    crate::b64::encode(after.as_bytes())
}

/// Decode a paging continuation token.
pub(crate) fn decode_token(token: Option<&str>) -> Result<Option<String>> {
    match token {
        None | Some("") => Ok(None),
        Some(t) => {
            let bytes = crate::b64::decode(t).map_err(|_| {
                VaultError::bad(
                    "invalid continuation token: expected a token returned by a previous listing",
                )
            })?;
            String::from_utf8(bytes).map(Some).map_err(|_| {
                VaultError::bad(
                    "invalid continuation token: expected a token returned by a previous listing",
                )
            })
        }
    }
}

/// Page size from `maxresults`: default and cap 25, 0 rejected.
pub(crate) fn page_size(max_results: Option<u32>) -> Result<usize> {
    match max_results {
        None => Ok(crate::model::MAX_PAGE_SIZE as usize),
        Some(0) => Err(VaultError::bad(
            "invalid maxresults: expected 1-25, found 0",
        )),
        Some(n) => Ok(n.min(crate::model::MAX_PAGE_SIZE) as usize),
    }
}

/// Stored records whose security-relevant fields (enabled, key_ops, exportable, release policy...)
/// are authenticated with an HMAC under a root-derived key, so a tampered row is detected.
pub(crate) trait Authenticated: serde::Serialize + serde::de::DeserializeOwned {
    fn mac_field(&mut self) -> &mut String;
}

fn record_mac<T: Authenticated + Clone>(key: &[u8; 32], context: &str, rec: &T) -> Result<Vec<u8>> {
    use hmac::{Hmac, Mac};
    let mut copy = rec.clone();
    copy.mac_field().clear();
    let json = serde_json::to_vec(&copy)
        .map_err(|_| VaultError::internal("cannot serialize a stored record"))?;
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| VaultError::internal("HMAC key setup failed"))?;
    mac.update(b"enclava/v1/record-mac\0");
    mac.update(context.as_bytes());
    mac.update(b"\0");
    mac.update(&json);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Serialize `rec` with its MAC (bound to `context`, e.g. `key-version/name/version`).
pub(crate) fn encode_authenticated<T: Authenticated + Clone>(
    key: &[u8; 32],
    context: &str,
    rec: &T,
) -> Result<Vec<u8>> {
    let mut copy = rec.clone();
    *copy.mac_field() = hex::encode(record_mac(key, context, rec)?);
    serde_json::to_vec(&copy).map_err(|_| VaultError::internal("cannot serialize a stored record"))
}

/// Parse a stored record and check its MAC.
pub(crate) fn decode_authenticated<T: Authenticated + Clone>(
    key: &[u8; 32],
    context: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    use subtle::ConstantTimeEq;
    let mut rec: T = serde_json::from_slice(bytes)
        .map_err(|_| VaultError::internal(format!("stored {what} record is corrupt")))?;
    let stored = hex::decode(rec.mac_field().as_str()).unwrap_or_default();
    let expected = record_mac(key, context, &rec)?;
    if !bool::from(stored.as_slice().ct_eq(&expected)) {
        return Err(VaultError::internal(format!(
            "stored {what} record failed its integrity check (tampered row or wrong root key)"
        )));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("key", "a").is_ok());
        assert!(validate_name("key", "My-Key-01").is_ok());
        assert!(validate_name("key", &"a".repeat(127)).is_ok());
        assert!(validate_name("key", &"a".repeat(128)).is_err());
        assert!(validate_name("key", "").is_err());
        assert!(validate_name("key", "a/b").is_err());
        assert!(validate_name("key", "a_b").is_err());
        assert!(validate_name("key", "é").is_err());
    }

    #[test]
    fn aead_roundtrip_and_aad_binding() {
        let k = [7u8; 32];
        let ct = aead_seal(&k, b"aad-1", b"hello").unwrap();
        assert_eq!(
            aead_open(&k, b"aad-1", &ct).unwrap().unwrap().as_slice(),
            b"hello"
        );
        assert!(aead_open(&k, b"aad-2", &ct).unwrap().is_none());
        assert!(aead_open(&[8u8; 32], b"aad-1", &ct).unwrap().is_none());
        assert!(aead_open(&k, b"aad-1", &ct[..10]).unwrap().is_none());
    }

    #[test]
    fn hkdf_separates_purposes() {
        let a = hkdf32(&[1u8; 32], b"a").unwrap();
        let b = hkdf32(&[1u8; 32], b"b").unwrap();
        assert_ne!(*a, *b);
        assert_eq!(*a, *hkdf32(&[1u8; 32], b"a").unwrap());
    }

    #[test]
    fn tokens_and_pages() {
        let t = encode_token("abc/def");
        assert_eq!(decode_token(Some(&t)).unwrap().as_deref(), Some("abc/def"));
        assert!(decode_token(Some("***")).is_err());
        assert_eq!(page_size(None).unwrap(), 25);
        assert_eq!(page_size(Some(100)).unwrap(), 25);
        assert_eq!(page_size(Some(3)).unwrap(), 3);
        assert!(page_size(Some(0)).is_err());
    }
}
