//! Step (d), first half: the released key inside a secure key release answer.
//!
//! The vault answers `{"value": JWS}`; the JWS payload's `response.key.key` is the released key's
//! public JWK plus `key_hsm` = base64url(JSON `{schema_version, header: {kid, alg: "dir", enc},
//! ciphertext}`), with
//!
//! ```text
//! ciphertext = RSA-OAEP-H(K) || AES-KWP(K, material)       (RFC 5649 key wrap with padding)
//! ```
//!
//! where K is a fresh AES-256 key, H is SHA-1 / SHA-256 / SHA-384 by `enc`, and the material is
//! the raw key for `oct` keys (PKCS#8 DER for RSA and EC). The RSA part is as long as the run
//! key's modulus. The material is returned in a [`Zeroizing`] buffer and never written anywhere.
//!
//! The JWS signature is checked before this module sees the answer ([`crate::release_sig`]); here
//! the JWS is decoded for its payload. What keeps the key secret is that the material is encrypted
//! to a key that exists only in this process.

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::EnclaveError;
use crate::keys::{EphemeralKeys, OaepHash};

/// Largest `key_hsm` accepted (characters): PKCS#8 of an RSA-4096 key wrapped is far below.
pub const MAX_KEY_HSM_LEN: usize = 64 * 1024;

/// A key released to this run, in memory.
pub struct ReleasedKey {
    /// The key version's id (`https://vault/keys/NAME/VERSION`).
    pub kid: String,
    /// `oct`, `oct-HSM`, `RSA`, `EC`, ...
    pub kty: String,
    /// Raw bytes (oct) or PKCS#8 DER (RSA / EC).
    pub material: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ReleasedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasedKey")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("material", &format_args!("<{} bytes>", self.material.len()))
            .finish()
    }
}

fn server(msg: impl Into<String>) -> EnclaveError {
    EnclaveError::Server(msg.into())
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, EnclaveError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| server(format!("{field}: expected base64url, found something else")))
}

/// The payload of a compact JWS (not verified; see the module documentation).
pub fn jws_payload(jws: &str) -> Result<Value, EnclaveError> {
    let mut parts = jws.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(server(
            "release answer: expected a compact JWS (three dot-separated parts), found something else",
        ));
    };
    let bytes = b64url("release JWS payload", payload)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        server(format!(
            "release JWS payload: expected JSON, found invalid JSON ({e})"
        ))
    })
}

/// Unwraps the released key of a release JWS with the run's keys.
pub fn released_key_from_jws(jws: &str, keys: &EphemeralKeys) -> Result<ReleasedKey, EnclaveError> {
    let payload = jws_payload(jws)?;
    let key = payload
        .pointer("/response/key/key")
        .ok_or_else(|| server("release JWS payload: expected response.key.key, found none"))?;
    let text = |name: &str| {
        key.get(name).and_then(Value::as_str).ok_or_else(|| {
            server(format!(
                "release JWS payload: response.key.key has no string {name:?}"
            ))
        })
    };
    let kid = text("kid")?.to_string();
    let kty = text("kty")?.to_string();
    let key_hsm = text("key_hsm")?;
    let material = unwrap_key_hsm(key_hsm, keys)?;
    Ok(ReleasedKey { kid, kty, material })
}

/// Decrypts a `key_hsm` (the base64url string of the release payload) with the run's RSA key.
pub fn unwrap_key_hsm(
    key_hsm: &str,
    keys: &EphemeralKeys,
) -> Result<Zeroizing<Vec<u8>>, EnclaveError> {
    if key_hsm.len() > MAX_KEY_HSM_LEN {
        return Err(server(format!(
            "key_hsm: expected at most {MAX_KEY_HSM_LEN} characters, found {}",
            key_hsm.len()
        )));
    }
    let json = b64url("key_hsm", key_hsm)?;
    let doc: Value = serde_json::from_slice(&json)
        .map_err(|e| server(format!("key_hsm: expected JSON, found invalid JSON ({e})")))?;
    let header = doc
        .get("header")
        .ok_or_else(|| server("key_hsm: expected a header object, found none"))?;
    let hkid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    if hkid != keys.wrapping_kid() {
        return Err(server(format!(
            "key_hsm: expected a key wrapped to this run's key {:?}, found one wrapped to {:?}",
            keys.wrapping_kid(),
            hkid.chars().take(80).collect::<String>()
        )));
    }
    let enc = header.get("enc").and_then(Value::as_str).unwrap_or("");
    let hash = OaepHash::from_enc(enc).ok_or_else(|| {
        server(format!(
            "key_hsm: expected enc CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384, found {:?}",
            enc.chars().take(40).collect::<String>()
        ))
    })?;
    let ct = doc
        .get("ciphertext")
        .and_then(Value::as_str)
        .ok_or_else(|| server("key_hsm: expected a string ciphertext, found none"))?;
    let ct = b64url("key_hsm.ciphertext", ct)?;
    let m = keys.modulus_len();
    let (Some(rsa_part), Some(kwp_part)) = (ct.get(..m), ct.get(m..)) else {
        return Err(server(format!(
            "key_hsm.ciphertext: expected more than {m} bytes (RSA part, then AES-KWP), found {}",
            ct.len()
        )));
    };
    if kwp_part.len() < 16 || !kwp_part.len().is_multiple_of(8) {
        return Err(server(format!(
            "key_hsm.ciphertext: expected an AES-KWP part of at least 16 bytes in 8-byte blocks after the {m}-byte RSA part, found {} bytes",
            kwp_part.len()
        )));
    }
    let aes = keys.oaep_decrypt(hash, rsa_part)?;
    if aes.len() != 32 {
        return Err(server(format!(
            "key_hsm: expected a 32-byte AES key under RSA-OAEP, found {} bytes",
            aes.len()
        )));
    }
    let kek = AesKek::new(&AES_256, &aes)
        .map_err(|_| EnclaveError::internal("AES key wrap setup failed"))?;
    let mut out = Zeroizing::new(vec![0u8; kwp_part.len()]);
    let n = kek
        .unwrap_with_padding(kwp_part, &mut out)
        .map_err(|_| {
            server("key_hsm: the AES-KWP integrity check failed (corrupt or tampered key_hsm)")
        })?
        .len();
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rsa::{
        OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
        OaepPublicEncryptingKey, PublicEncryptingKey,
    };
    use serde_json::json;

    /// A `key_hsm` built exactly as the documented layout says.
    pub(crate) fn make_key_hsm(
        keys: &EphemeralKeys,
        kid: &str,
        enc: &str,
        material: &[u8],
    ) -> String {
        let alg: &'static OaepAlgorithm = match enc {
            "CKM_RSA_AES_KEY_WRAP" => &OAEP_SHA1_MGF1SHA1,
            "RSA_AES_KEY_WRAP_256" => &OAEP_SHA256_MGF1SHA256,
            _ => &OAEP_SHA384_MGF1SHA384,
        };
        let public = PublicEncryptingKey::from_der(keys.wrapping_public_der()).unwrap();
        let oaep = OaepPublicEncryptingKey::new(public).unwrap();
        let mut k = [0u8; 32];
        aws_lc_rs::rand::fill(&mut k).unwrap();
        let mut ct = vec![0u8; oaep.ciphertext_size()];
        let n = oaep.encrypt(alg, &k, &mut ct, None).unwrap().len();
        ct.truncate(n);
        let kek = AesKek::new(&AES_256, &k).unwrap();
        let mut w = vec![0u8; material.len() + 16];
        let n = kek.wrap_with_padding(material, &mut w).unwrap().len();
        w.truncate(n);
        ct.extend_from_slice(&w);
        let doc = json!({
            "schema_version": "1.0",
            "header": {"kid": kid, "alg": "dir", "enc": enc},
            "ciphertext": URL_SAFE_NO_PAD.encode(&ct),
        });
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&doc).unwrap())
    }

    pub(crate) fn make_release_jws(key_kid: &str, key_hsm: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let payload = json!({
            "request": {"api-version": "7.6", "enc": "CKM_RSA_AES_KEY_WRAP", "kid": key_kid},
            "response": {"key": {"key": {"kid": key_kid, "kty": "oct-HSM", "key_ops": ["wrapKey"], "key_hsm": key_hsm}}},
        });
        format!(
            "{header}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
            URL_SAFE_NO_PAD.encode([1u8; 8])
        )
    }

    #[test]
    fn key_hsm_unwraps_for_every_enc_and_material_size() {
        let keys = EphemeralKeys::generate().unwrap();
        let kid = keys.wrapping_kid().to_string();
        for enc in [
            "CKM_RSA_AES_KEY_WRAP",
            "RSA_AES_KEY_WRAP_256",
            "RSA_AES_KEY_WRAP_384",
        ] {
            for len in [1usize, 7, 8, 32, 33, 1217] {
                let material: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let hsm = make_key_hsm(&keys, &kid, enc, &material);
                let got = unwrap_key_hsm(&hsm, &keys).unwrap();
                assert_eq!(got.as_slice(), material.as_slice(), "{enc} {len}");
            }
        }
        let hsm = make_key_hsm(&keys, &kid, "CKM_RSA_AES_KEY_WRAP", &[9u8; 32]);
        let jws = make_release_jws("https://v/keys/data/abc", &hsm);
        let rk = released_key_from_jws(&jws, &keys).unwrap();
        assert_eq!(rk.kid, "https://v/keys/data/abc");
        assert_eq!(rk.kty, "oct-HSM");
        assert_eq!(rk.material.as_slice(), &[9u8; 32]);
        assert!(!format!("{rk:?}").contains("9, 9"));
    }

    #[test]
    fn key_hsm_for_another_key_or_tampered_is_refused() {
        let keys = EphemeralKeys::generate().unwrap();
        let other = EphemeralKeys::generate().unwrap();
        // Wrapped to another run's key, even when it claims our kid.
        let hsm = make_key_hsm(
            &other,
            keys.wrapping_kid(),
            "RSA_AES_KEY_WRAP_256",
            &[1; 32],
        );
        assert!(matches!(
            unwrap_key_hsm(&hsm, &keys),
            Err(EnclaveError::Server(_))
        ));
        // Another kid.
        let hsm = make_key_hsm(&keys, "someone-else", "RSA_AES_KEY_WRAP_256", &[1; 32]);
        let e = unwrap_key_hsm(&hsm, &keys).unwrap_err().to_string();
        assert!(e.contains("someone-else"), "{e}");
        // A flipped bit in the AES-KWP part.
        let hsm = make_key_hsm(&keys, keys.wrapping_kid(), "RSA_AES_KEY_WRAP_256", &[1; 32]);
        let mut doc: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&hsm).unwrap()).unwrap();
        let mut ct = URL_SAFE_NO_PAD
            .decode(doc["ciphertext"].as_str().unwrap())
            .unwrap();
        let last = ct.len() - 1;
        ct[last] ^= 1;
        doc["ciphertext"] = json!(URL_SAFE_NO_PAD.encode(&ct));
        let bad = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&doc).unwrap());
        let e = unwrap_key_hsm(&bad, &keys).unwrap_err().to_string();
        assert!(e.contains("integrity"), "{e}");
        // Truncated, unknown enc, garbage.
        doc["ciphertext"] = json!(URL_SAFE_NO_PAD.encode(&ct[..200]));
        let bad = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&doc).unwrap());
        assert!(unwrap_key_hsm(&bad, &keys).is_err());
        doc["header"]["enc"] = json!("A256KW");
        let bad = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&doc).unwrap());
        assert!(
            unwrap_key_hsm(&bad, &keys)
                .unwrap_err()
                .to_string()
                .contains("enc")
        );
        for junk in ["", "!!", "e30", &"A".repeat(MAX_KEY_HSM_LEN + 1)] {
            assert!(unwrap_key_hsm(junk, &keys).is_err(), "{junk:.20}");
        }
        assert!(released_key_from_jws("a.b", &keys).is_err());
        assert!(released_key_from_jws("a.e30.c", &keys).is_err());
    }
}
