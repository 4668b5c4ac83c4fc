//! Secure key release wrapping: `CKM_RSA_AES_KEY_WRAP` (PKCS#11 2.40 §2.1.21) of released key
//! material to a requester's RSA key, and the `key_hsm` envelope Azure puts in the release JWS.
//!
//! `ciphertext = RSA-OAEP-H(fresh AES-256 key) || AES-KWP(fresh key, material)` (RFC 5649), with
//! H = SHA-1 (`CKM_RSA_AES_KEY_WRAP`, the default), SHA-256 (`RSA_AES_KEY_WRAP_256`) or SHA-384
//! (`RSA_AES_KEY_WRAP_384`). The material is raw bytes for oct keys and PKCS#8 DER for RSA / EC
//! (see [`crate::Vault::releasable_key`]).
//!
//! The whole release ([`crate::Vault::release`]): the attestation token verified against the
//! [`TrustedIssuers`] ([`TrustedIssuers::verify`]), the key's release policy evaluated against
//! its issuer and claims, the wrapping key chosen from `x-ms-runtime.keys`
//! ([`select_wrapping_key`]), the material wrapped into `key_hsm`, and the answer signed as an
//! RS256 JWS carrying the release signing certificate chain.

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
    OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::model::JsonWebKey;
use crate::util::random_key32;

mod trust;
mod wrapping;

pub use enclava_token::{Jwk, Jwks, Rs256Signer, TokenSigner};
pub use trust::{
    IssuerKeys, TrustedIssuer, TrustedIssuers, VerifiedAttestation, unverified_summary,
};
pub use wrapping::{WrappingKey, select_wrapping_key};

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
    // The same normalising JWK integer decoder as key import: non-minimal `n`/`e` accepted.
    let n = super::material::jwk_uint("release wrapping key n", n.as_slice())?;
    let e = super::material::jwk_uint("release wrapping key e", e.as_slice())?;
    let bits = n.len() * 8;
    if !(2048..=8192).contains(&bits) {
        return Err(VaultError::bad(format!(
            "invalid release wrapping key: expected an RSA modulus of 2048-8192 bits, found {bits} bits"
        )));
    }
    let public: PublicEncryptingKey = PublicKeyComponents { n, e }.try_into().map_err(|_| {
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

/// A release request body: `{target, nonce?, enc?}`. `Debug` never prints the token.
#[derive(Clone, Default, serde::Deserialize)]
pub struct ReleaseRequest {
    /// The attestation token.
    pub target: String,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub enc: Option<String>,
}

impl std::fmt::Debug for ReleaseRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseRequest")
            .field("target", &format_args!("<{} bytes>", self.target.len()))
            .field("nonce", &self.nonce)
            .field("enc", &self.enc)
            .finish()
    }
}

/// The release answer `{"value": JWS}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReleaseResult {
    pub value: String,
}

/// Longest accepted nonce (characters).
pub const MAX_NONCE_LEN: usize = 1024;

fn policy_denied(decision: &enclava_policy::Decision) -> VaultError {
    let parts: Vec<String> = decision
        .failed
        .iter()
        .take(16)
        .map(|f| {
            let mut s = String::new();
            if !f.claim_path.is_empty() {
                s.push_str(&format!("claim '{}': ", f.claim_path));
            } else {
                s.push_str(&format!("{}: ", f.rule));
            }
            s.push_str(&format!("expected {}, found {}", f.expected, f.found));
            if !f.claim_path.is_empty() && !f.rule.is_empty() {
                s.push_str(&format!(" (at {})", f.rule));
            }
            s
        })
        .collect();
    let more = decision.failed.len().saturating_sub(16);
    let more = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    VaultError::forbidden(
        format!(
            "the attestation token does not satisfy the key's release policy: {}{more}",
            parts.join("; ")
        ),
        "ReleasePolicyNotSatisfied",
    )
}

fn x5t_s256(signer: &dyn TokenSigner) -> Result<(Vec<String>, String)> {
    use base64::Engine;
    let chain = signer
        .x5c()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| VaultError::internal("the release signer has no certificate chain"))?;
    let leaf = chain.first().map(String::as_str).unwrap_or_default();
    let der = base64::engine::general_purpose::STANDARD
        .decode(leaf)
        .map_err(|_| VaultError::internal("the release signing certificate is not base64"))?;
    use sha2::Digest;
    Ok((
        chain.to_vec(),
        crate::b64::encode(&sha2::Sha256::digest(&der)),
    ))
}

impl crate::Vault {
    /// Secure key release of key `name` (version, or latest) to the workload that presented the
    /// verified attestation `att` (see [`TrustedIssuers::verify`]).
    ///
    /// Checks, in order: `enc` and `nonce` are valid; the key version is enabled, within nbf/exp,
    /// exportable with a release policy; the policy allows `att`'s issuer and claims (else 403
    /// `Forbidden` / `ReleasePolicyNotSatisfied` naming every failed condition); the token carries
    /// a wrapping key (else 400). Returns `{"value": JWS}` signed RS256 by `signer` (whose x5c
    /// chain goes into the header), payload `{request: {api-version, enc, kid, nonce}, response:
    /// {key: {key: {public JWK + key_hsm}, attributes, release_policy}}}`.
    pub fn release(
        &self,
        name: &str,
        version: Option<&str>,
        req: &ReleaseRequest,
        att: &VerifiedAttestation,
        signer: &dyn TokenSigner,
        api_version: &str,
    ) -> Result<ReleaseResult> {
        let enc = ReleaseEnc::parse(req.enc.as_deref())?;
        if let Some(n) = &req.nonce
            && n.chars().count() > MAX_NONCE_LEN
        {
            return Err(VaultError::bad(format!(
                "invalid nonce: expected at most {MAX_NONCE_LEN} characters, found {}",
                n.chars().count()
            )));
        }
        let rk = self.releasable_key(name, version)?;
        let rp = rk
            .bundle
            .release_policy
            .as_ref()
            .ok_or_else(|| VaultError::internal("exportable key without a release policy"))?;
        let data = rp
            .data
            .as_ref()
            .ok_or_else(|| VaultError::internal("stored release policy without data"))?;
        let policy = enclava_policy::ReleasePolicy::from_content(
            rp.content_type.as_deref(),
            data.as_slice(),
        )
        .map_err(|e| {
            VaultError::forbidden(
                format!("the key's release policy cannot be evaluated: {e}"),
                "ReleasePolicyInvalid",
            )
        })?;
        let decision = policy.evaluate(&att.issuer, &serde_json::Value::Object(att.claims.clone()));
        if !decision.allowed {
            return Err(policy_denied(&decision));
        }
        let wk = select_wrapping_key(&att.claims)?;
        let ciphertext = rsa_aes_key_wrap(&wk.jwk, enc, &rk.material)?;
        let key_hsm = key_hsm_json(&wk.kid, enc, &ciphertext)?;

        let kid = rk.bundle.key.kid.clone().unwrap_or_default();
        let mut key = serde_json::to_value(&rk.bundle.key)
            .map_err(|_| VaultError::internal("cannot serialize the key"))?;
        if let Some(o) = key.as_object_mut() {
            o.insert(
                "key_hsm".into(),
                serde_json::Value::String(crate::b64::encode(&key_hsm)),
            );
        }
        let mut request = serde_json::Map::new();
        request.insert("api-version".into(), api_version.into());
        request.insert("enc".into(), enc.name().into());
        request.insert("kid".into(), kid.into());
        if let Some(n) = &req.nonce {
            request.insert("nonce".into(), n.clone().into());
        }
        let mut inner = serde_json::Map::new();
        inner.insert("key".into(), key);
        inner.insert(
            "attributes".into(),
            serde_json::to_value(&rk.bundle.attributes)
                .map_err(|_| VaultError::internal("cannot serialize the attributes"))?,
        );
        inner.insert(
            "release_policy".into(),
            serde_json::to_value(rp)
                .map_err(|_| VaultError::internal("cannot serialize the release policy"))?,
        );
        let mut payload = serde_json::Map::new();
        payload.insert("request".into(), request.into());
        payload.insert(
            "response".into(),
            serde_json::json!({ "key": serde_json::Value::Object(inner) }),
        );

        if signer.alg() != enclava_token::Alg::RS256 {
            return Err(VaultError::internal("the release signer must be RS256"));
        }
        let (x5c, x5t) = x5t_s256(signer)?;
        let mut other = serde_json::Map::new();
        other.insert("x5t#S256".into(), x5t.into());
        let header = enclava_token::Header {
            alg: "RS256".into(),
            kid: Some(signer.kid().to_string()),
            jku: None,
            typ: None,
            x5c: Some(x5c),
            crit: None,
            other,
        };
        let value = enclava_token::jwt::sign_compact(&header, &payload, signer).map_err(|e| {
            VaultError::internal(format!("signing the release response failed: {e}"))
        })?;
        Ok(ReleaseResult { value })
    }
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
