//! Secure key release wrapping: `CKM_RSA_AES_KEY_WRAP` (PKCS#11 2.40 §2.1.21) of released key
//! material to a requester's RSA key, and the `key_hsm` envelope Azure puts in the release JWS.
//!
//! `ciphertext = RSA-OAEP-H(fresh AES-256 key) || AES-KWP(fresh key, material)` (RFC 5649), with
//! H = SHA-1 (`CKM_RSA_AES_KEY_WRAP`, the default), SHA-256 (`RSA_AES_KEY_WRAP_256`) or SHA-384
//! (`RSA_AES_KEY_WRAP_384`). The material is raw bytes for oct keys and PKCS#8 DER for RSA / EC
//! (see [`crate::Vault::releasable_key`]). Policy evaluation is the caller's job.

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
    OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::model::JsonWebKey;
use crate::util::random_key32;

/// The release wrapping algorithms (`enc` of a release request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseEnc {
    /// `CKM_RSA_AES_KEY_WRAP`: RSA-OAEP with SHA-1 (Azure's default).
    RsaAesKeyWrap,
    /// `RSA_AES_KEY_WRAP_256`: RSA-OAEP with SHA-256.
    RsaAesKeyWrap256,
    /// `RSA_AES_KEY_WRAP_384`: RSA-OAEP with SHA-384.
    RsaAesKeyWrap384,
}

impl ReleaseEnc {
    /// Parse `enc`; absent means `CKM_RSA_AES_KEY_WRAP`.
    pub fn parse(enc: Option<&str>) -> Result<ReleaseEnc> {
        match enc {
            None | Some("") | Some("CKM_RSA_AES_KEY_WRAP") => Ok(ReleaseEnc::RsaAesKeyWrap),
            Some("RSA_AES_KEY_WRAP_256") => Ok(ReleaseEnc::RsaAesKeyWrap256),
            Some("RSA_AES_KEY_WRAP_384") => Ok(ReleaseEnc::RsaAesKeyWrap384),
            Some(other) => Err(VaultError::bad(format!(
                "invalid enc: expected CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384, found '{}'",
                crate::keys::material::truncate(other)
            ))),
        }
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            ReleaseEnc::RsaAesKeyWrap => "CKM_RSA_AES_KEY_WRAP",
            ReleaseEnc::RsaAesKeyWrap256 => "RSA_AES_KEY_WRAP_256",
            ReleaseEnc::RsaAesKeyWrap384 => "RSA_AES_KEY_WRAP_384",
        }
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            ReleaseEnc::RsaAesKeyWrap => &OAEP_SHA1_MGF1SHA1,
            ReleaseEnc::RsaAesKeyWrap256 => &OAEP_SHA256_MGF1SHA256,
            ReleaseEnc::RsaAesKeyWrap384 => &OAEP_SHA384_MGF1SHA384,
        }
    }
}

/// Wrap `material` to the RSA public key `wrapping_key` (a JWK with `n` and `e`).
pub fn rsa_aes_key_wrap(
    wrapping_key: &JsonWebKey,
    enc: ReleaseEnc,
    material: &[u8],
) -> Result<Vec<u8>> {
    let n = wrapping_key.n.as_ref().ok_or_else(|| {
        VaultError::bad("the release wrapping key must be an RSA JWK with n and e")
    })?;
    let e = wrapping_key.e.as_ref().ok_or_else(|| {
        VaultError::bad("the release wrapping key must be an RSA JWK with n and e")
    })?;
    let bits = n.as_slice().iter().skip_while(|b| **b == 0).count() * 8;
    if !(2048..=8192).contains(&bits) {
        return Err(VaultError::bad(format!(
            "invalid release wrapping key: expected an RSA modulus of 2048-8192 bits, found {bits} bits"
        )));
    }
    let public: PublicEncryptingKey = PublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .try_into()
    .map_err(|_| {
        VaultError::bad("invalid release wrapping key: n and e do not form an RSA public key")
    })?;
    let oaep = OaepPublicEncryptingKey::new(public)
        .map_err(|_| VaultError::bad("invalid release wrapping key: not usable for RSA-OAEP"))?;
    let aes = random_key32()?;
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let n1 = oaep
        .encrypt(enc.oaep(), aes.as_ref(), &mut out, None)
        .map_err(|_| VaultError::internal("RSA-OAEP encryption failed in the crypto library"))?
        .len();
    out.truncate(n1);
    let kek = AesKek::new(&AES_256, aes.as_ref())
        .map_err(|_| VaultError::internal("AES key wrap setup failed in the crypto library"))?;
    let mut wrapped = vec![0u8; material.len() + 16];
    let n2 = kek
        .wrap_with_padding(material, &mut wrapped)
        .map_err(|_| VaultError::internal("AES key wrap failed in the crypto library"))?
        .len();
    wrapped.truncate(n2);
    out.extend_from_slice(&wrapped);
    Ok(out)
}

#[derive(Serialize)]
struct KeyHsmHeader<'a> {
    kid: &'a str,
    alg: &'static str,
    enc: &'static str,
}

#[derive(Serialize)]
struct KeyHsm<'a> {
    schema_version: &'static str,
    header: KeyHsmHeader<'a>,
    ciphertext: String,
    generator: &'static str,
}

/// The `key_hsm` JSON (before base64url): `{schema_version, header: {kid, alg: "dir", enc},
/// ciphertext: base64url, generator}`. `wrapping_kid` is the requester key's kid.
pub fn key_hsm_json(wrapping_kid: &str, enc: ReleaseEnc, ciphertext: &[u8]) -> Result<Vec<u8>> {
    serde_json::to_vec(&KeyHsm {
        schema_version: "1.0",
        header: KeyHsmHeader {
            kid: wrapping_kid,
            alg: "dir",
            enc: enc.name(),
        },
        ciphertext: crate::b64::encode(ciphertext),
        generator: "enclava",
    })
    .map_err(|_| VaultError::internal("cannot serialize key_hsm"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64::Base64Url;
    use rsa::traits::PublicKeyParts;

    #[test]
    fn wrap_unwraps_with_an_independent_implementation() {
        let mut rng = rand::rngs::OsRng;
        let sk = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let jwk = JsonWebKey {
            kty: Some("RSA".into()),
            n: Some(Base64Url(sk.n().to_bytes_be())),
            e: Some(Base64Url(sk.e().to_bytes_be())),
            ..Default::default()
        };
        let material = b"0123456789abcdef0123456789abcdef-pkcs8-or-raw";
        for enc in [
            ReleaseEnc::RsaAesKeyWrap,
            ReleaseEnc::RsaAesKeyWrap256,
            ReleaseEnc::RsaAesKeyWrap384,
        ] {
            let ct = rsa_aes_key_wrap(&jwk, enc, material).unwrap();
            let (head, tail) = ct.split_at(256);
            let aes = match enc {
                ReleaseEnc::RsaAesKeyWrap => sk.decrypt(rsa::Oaep::new::<sha1::Sha1>(), head),
                ReleaseEnc::RsaAesKeyWrap256 => sk.decrypt(rsa::Oaep::new::<sha2::Sha256>(), head),
                ReleaseEnc::RsaAesKeyWrap384 => sk.decrypt(rsa::Oaep::new::<sha2::Sha384>(), head),
            }
            .unwrap();
            let kek = aes_kw::KekAes256::try_from(aes.as_slice()).unwrap();
            let back = kek.unwrap_with_padding_vec(tail).unwrap();
            assert_eq!(back, material);
        }
        let j: serde_json::Value = serde_json::from_slice(
            &key_hsm_json("https://x/keys/t/1", ReleaseEnc::RsaAesKeyWrap, b"ct").unwrap(),
        )
        .unwrap();
        assert_eq!(j["header"]["enc"], "CKM_RSA_AES_KEY_WRAP");
        assert_eq!(j["ciphertext"], "Y3Q");
        assert_eq!(ReleaseEnc::parse(None).unwrap(), ReleaseEnc::RsaAesKeyWrap);
        assert!(ReleaseEnc::parse(Some("nope")).is_err());
        let small = JsonWebKey {
            n: Some(Base64Url(vec![0xff; 128])),
            e: Some(Base64Url(vec![1, 0, 1])),
            ..Default::default()
        };
        assert_eq!(
            rsa_aes_key_wrap(&small, ReleaseEnc::RsaAesKeyWrap, b"x")
                .unwrap_err()
                .code(),
            "BadParameter"
        );
    }
}
