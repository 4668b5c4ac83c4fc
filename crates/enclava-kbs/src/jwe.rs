//! The resource answer: a flattened JWE JSON (RFC 7516 7.2.2)
//! `{"protected","encrypted_key","iv","ciphertext","tag"}`, base64url members, no `aad`.
//! `enc` is always A256GCM with a 12-byte IV; the AEAD's additional data is the ASCII of the
//! `protected` member. Key management:
//! - `ECDH-ES+A256KW` (RFC 7518 4.6): an ephemeral P-256 key (`epk` in the protected header),
//!   Concat KDF with SHA-256 (AlgorithmID "ECDH-ES+A256KW", empty PartyUInfo/PartyVInfo,
//!   SuppPubInfo 256), the content key wrapped with AES-256 key wrap (RFC 3394);
//! - `RSA-OAEP-256`: the content key encrypted with RSA-OAEP, SHA-256 and MGF1-SHA-256.
//!
//! Everything through aws-lc-rs; the content key and the KEK are zeroized after use.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use zeroize::Zeroizing;

use crate::error::{ErrorKind, KbsError};
use crate::jwk::{ALG_ECDH_ES_A256KW, TeePubKey};

/// The flattened JWE JSON answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwe {
    pub protected: String,
    pub encrypted_key: String,
    pub iv: String,
    pub ciphertext: String,
    pub tag: String,
}

fn lib(what: &str) -> KbsError {
    KbsError::new(
        ErrorKind::JweFailed,
        format!("{what} failed in the crypto library"),
    )
}

/// Concat KDF (NIST SP 800-56A, RFC 7518 4.6.2) for one SHA-256 block: a 256-bit key.
pub fn concat_kdf_sha256(z: &[u8], alg_id: &str) -> Zeroizing<[u8; 32]> {
    let mut h = sha2::Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((alg_id.len() as u32).to_be_bytes());
    h.update(alg_id.as_bytes());
    h.update(0u32.to_be_bytes()); // PartyUInfo: empty
    h.update(0u32.to_be_bytes()); // PartyVInfo: empty
    h.update(256u32.to_be_bytes()); // SuppPubInfo: key length in bits
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&h.finalize());
    out
}

/// Refuse a P-256 point the crypto library would not agree with.
pub fn check_ec_point(point: &[u8]) -> Result<(), KbsError> {
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| lib("key generation"))?;
    agree_ephemeral(
        eph,
        UnparsedPublicKey::new(&ECDH_P256, point),
        KbsError::invalid("tee-pubkey: expected a point on P-256, found one that is not"),
        |_| Ok(()),
    )
}

fn rsa_key(k: &TeePubKey) -> Result<OaepPublicEncryptingKey, KbsError> {
    let TeePubKey::Rsa { n, e } = k else {
        return Err(KbsError::invalid("tee-pubkey: expected an RSA key"));
    };
    let public: PublicEncryptingKey = PublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .try_into()
    .map_err(|_| KbsError::invalid("tee-pubkey: n and e do not form an RSA public key"))?;
    OaepPublicEncryptingKey::new(public)
        .map_err(|_| KbsError::invalid("tee-pubkey: RSA key not usable for RSA-OAEP"))
}

/// Refuse an RSA key the crypto library would not encrypt to.
pub fn check_rsa(k: &TeePubKey) -> Result<(), KbsError> {
    rsa_key(k).map(|_| ())
}

/// Encrypt `plaintext` to `key`.
pub fn encrypt(key: &TeePubKey, plaintext: &[u8]) -> Result<Jwe, KbsError> {
    let rng = SystemRandom::new();
    let mut cek = Zeroizing::new([0u8; 32]);
    rng.fill(cek.as_mut()).map_err(|_| lib("random"))?;
    let (header, encrypted_key) = match key {
        TeePubKey::Ec { .. } => {
            let point = key.uncompressed_point().unwrap_or_default();
            let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
                .map_err(|_| lib("key generation"))?;
            let epk = eph
                .compute_public_key()
                .map_err(|_| lib("key generation"))?;
            let epk = epk.as_ref();
            if epk.len() != 65 {
                return Err(lib("ephemeral key encoding"));
            }
            let kek = agree_ephemeral(
                eph,
                UnparsedPublicKey::new(&ECDH_P256, &point),
                KbsError::new(ErrorKind::JweFailed, "tee-pubkey: ECDH agreement refused"),
                |z| Ok(concat_kdf_sha256(z, ALG_ECDH_ES_A256KW)),
            )?;
            let wrapper = AesKek::new(&AES_256, kek.as_ref()).map_err(|_| lib("AES key wrap"))?;
            let mut wrapped = vec![0u8; 40];
            let n = wrapper
                .wrap(cek.as_ref(), &mut wrapped)
                .map_err(|_| lib("AES key wrap"))?
                .len();
            wrapped.truncate(n);
            let header = json!({
                "alg": ALG_ECDH_ES_A256KW,
                "enc": "A256GCM",
                "epk": {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&epk[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&epk[33..65]),
                },
            });
            (header, wrapped)
        }
        TeePubKey::Rsa { .. } => {
            let oaep = rsa_key(key)?;
            let mut out = vec![0u8; oaep.ciphertext_size()];
            let n = oaep
                .encrypt(&OAEP_SHA256_MGF1SHA256, cek.as_ref(), &mut out, None)
                .map_err(|_| lib("RSA-OAEP encryption"))?
                .len();
            out.truncate(n);
            (json!({"alg": key.alg(), "enc": "A256GCM"}), out)
        }
    };
    let protected = URL_SAFE_NO_PAD.encode(header.to_string());
    let mut iv = [0u8; 12];
    rng.fill(&mut iv).map_err(|_| lib("random"))?;
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, cek.as_ref()).map_err(|_| lib("AES-GCM key"))?,
    );
    let mut ct = plaintext.to_vec();
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut ct,
        )
        .map_err(|_| lib("AES-GCM encryption"))?;
    Ok(Jwe {
        protected,
        encrypted_key: URL_SAFE_NO_PAD.encode(&encrypted_key),
        iv: URL_SAFE_NO_PAD.encode(iv),
        ciphertext: URL_SAFE_NO_PAD.encode(&ct),
        tag: URL_SAFE_NO_PAD.encode(tag.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    //! Decryption with the independent RustCrypto implementations (p256, rsa, aes-kw, aes-gcm).
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use serde_json::Value;

    fn d(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    fn open(jwe: &Jwe, cek: &[u8]) -> Vec<u8> {
        let gcm = aes_gcm::Aes256Gcm::new_from_slice(cek).unwrap();
        let mut ct = d(&jwe.ciphertext);
        ct.extend_from_slice(&d(&jwe.tag));
        let iv: [u8; 12] = d(&jwe.iv).try_into().unwrap();
        gcm.decrypt(
            &iv.into(),
            Payload {
                msg: &ct,
                aad: jwe.protected.as_bytes(),
            },
        )
        .unwrap()
    }

    #[test]
    fn ec_round_trip_with_rustcrypto() {
        let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let jwk: Value = serde_json::from_str(&sk.public_key().to_jwk_string()).unwrap();
        let key = TeePubKey::from_jwk(&jwk).unwrap();
        let jwe = encrypt(&key, b"resource bytes").unwrap();
        let header: Value = serde_json::from_slice(&d(&jwe.protected)).unwrap();
        assert_eq!(header["alg"], "ECDH-ES+A256KW");
        assert_eq!(header["enc"], "A256GCM");
        let epk: p256::PublicKey =
            p256::PublicKey::from_jwk_str(&header["epk"].to_string()).unwrap();
        let z = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), epk.as_affine());
        let kek = concat_kdf_sha256(z.raw_secret_bytes(), "ECDH-ES+A256KW");
        let kw = aes_kw::KekAes256::from(*kek);
        let mut cek = [0u8; 32];
        kw.unwrap(&d(&jwe.encrypted_key), &mut cek).unwrap();
        assert_eq!(open(&jwe, &cek), b"resource bytes");
    }

    #[test]
    fn rsa_round_trip_with_rustcrypto() {
        use rsa::traits::PublicKeyParts;
        let sk = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let jwk = json!({
            "kty": "RSA",
            "alg": "RSA-OAEP-256",
            "n": URL_SAFE_NO_PAD.encode(sk.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(sk.e().to_bytes_be()),
        });
        let key = TeePubKey::from_jwk(&jwk).unwrap();
        let jwe = encrypt(&key, b"\x00\x01binary").unwrap();
        let cek = sk
            .decrypt(rsa::Oaep::new::<sha2::Sha256>(), &d(&jwe.encrypted_key))
            .unwrap();
        assert_eq!(open(&jwe, &cek), b"\x00\x01binary");
        let header: Value = serde_json::from_slice(&d(&jwe.protected)).unwrap();
        assert_eq!(header, json!({"alg":"RSA-OAEP-256","enc":"A256GCM"}));
    }
}
