//! Compact JWS / JWT: ES256 and RS256 signing, JWK and JWKS export, verification.
//!
//! # Format
//! Compact serialization `base64url(header).base64url(payload).base64url(signature)`, base64url
//! without padding (RFC 7515), ES256 signatures as the raw 64-byte `r || s` (RFC 7518 3.4),
//! RS256 as RSASSA-PKCS1-v1_5 with SHA-256. Standard JWT libraries (PyJWT, jose) accept these
//! tokens as they are.
//!
//! # Verification, in order (each failure is its own [`TokenError`] variant and code)
//! 1. size (at most [`MAX_TOKEN_LEN`]) and shape: three non-empty dot-separated base64url parts
//!    (no padding, canonical), header and payload JSON objects without duplicate members;
//! 2. `alg`: `none` in any spelling -> `alg_none`; `HS*` -> `alg_symmetric` (a verifier holding
//!    only public keys must never treat one as an HMAC secret); anything but ES256/RS256 ->
//!    `alg_unsupported`; not in [`Expectations::allowed_algs`] -> `alg_not_allowed`;
//! 3. a `crit` header -> `crit_unsupported` (we understand no extensions);
//! 4. key selection: by `kid` in a [`Jwks`] (`kid_unknown`; no kid is only tolerated when the set
//!    holds exactly one key, else `kid_missing`), or a pinned [`Jwk`] (whose kid, when it has one,
//!    must equal the header's); the key's type, curve, `alg` and `use` must fit the header alg
//!    (`alg_key_mismatch`): the algorithm is never chosen by the token alone;
//! 5. signature (`bad_signature`);
//! 6. claims: `exp` required and in the future (`token_expired`), `nbf` when present in the past
//!    (`token_not_yet_valid`), both with [`Expectations::leeway`]; `iss` equal to the expected
//!    issuer, ignoring one trailing slash on either side (`wrong_issuer`); when an audience is
//!    expected, `aud` (a string or an array of strings) must contain it (`wrong_audience`).
//!    Time claims must be numbers (`claim_invalid`).

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use x509_cert::der::{Decode, Encode};

use crate::error::{TokenError, shown};

/// Largest token accepted by [`verify`] and [`crate::decode_unverified`], in bytes. MAA tokens with
/// runtime keys and full claims are a few tens of kilobytes at most.
pub const MAX_TOKEN_LEN: usize = 256 * 1024;

/// Signature algorithms we issue and accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA P-256 SHA-256, signature `r || s` (64 bytes). Our default.
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256 (what Microsoft Azure Attestation issues), keys >= 2048 bits.
    RS256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
        }
    }

    /// Exact, case-sensitive JOSE name.
    pub fn from_name(s: &str) -> Option<Alg> {
        match s {
            "ES256" => Some(Alg::ES256),
            "RS256" => Some(Alg::RS256),
            _ => None,
        }
    }

    fn kty(self) -> &'static str {
        match self {
            Alg::ES256 => "EC",
            Alg::RS256 => "RSA",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn alg_list(algs: &[Alg]) -> String {
    if algs.is_empty() {
        return "(none allowed)".into();
    }
    algs.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// JOSE header. Unknown members are kept in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Certificate chain, standard base64 DER (RFC 7515 4.1.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Header {
    /// The header for a token signed by `signer`: {alg, kid, jku?, typ: "JWT", x5c?}.
    pub fn for_signer(signer: &dyn TokenSigner, jku: Option<String>) -> Header {
        Header {
            alg: signer.alg().as_str().into(),
            kid: Some(signer.kid().into()),
            jku,
            typ: Some("JWT".into()),
            x5c: signer.x5c().map(<[String]>::to_vec),
            crit: None,
            other: Map::new(),
        }
    }

    fn from_object(mut m: Map<String, Value>) -> Result<Header, TokenError> {
        let bad = |what: &str| TokenError::Malformed(format!("header member {what}"));
        let alg = match m.remove("alg") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(bad("\"alg\" is not a string")),
            None => return Err(TokenError::Malformed("header has no \"alg\"".into())),
        };
        let opt_str = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(&format!("{k:?} is not a string"))),
        };
        let kid = opt_str(&mut m, "kid")?;
        let jku = opt_str(&mut m, "jku")?;
        let typ = opt_str(&mut m, "typ")?;
        let str_list = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad(&format!("{k:?} holds a non-string"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(bad(&format!("{k:?} is not an array"))),
        };
        let x5c = str_list(&mut m, "x5c")?;
        let crit = str_list(&mut m, "crit")?;
        Ok(Header {
            alg,
            kid,
            jku,
            typ,
            x5c,
            crit,
            other: m,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// A JSON Web Key (public part only; private members are never read or written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Certificate chain, standard base64 DER; the first certificate holds this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
}

/// A parsed public verification key.
enum VerifyingKey {
    /// Uncompressed SEC1 P-256 point, or a P-256 SubjectPublicKeyInfo (from x5c).
    P256(Vec<u8>),
    /// Modulus and exponent, big endian without leading zeros.
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
    /// An RSA SubjectPublicKeyInfo (from x5c).
    RsaSpki(Vec<u8>),
}

impl VerifyingKey {
    fn alg(&self) -> Alg {
        match self {
            VerifyingKey::P256(_) => Alg::ES256,
            VerifyingKey::RsaComponents { .. } | VerifyingKey::RsaSpki(_) => Alg::RS256,
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            VerifyingKey::P256(k) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k)
                .verify(message, sig)
                .is_ok(),
            VerifyingKey::RsaComponents { n, e } => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, message, sig)
            .is_ok(),
            VerifyingKey::RsaSpki(k) => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

fn b64url_field(v: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(v)
        .map_err(|_| TokenError::InvalidKey(format!("JWK member {what:?} is not base64url")))
}

impl Jwk {
    /// The JWK of an uncompressed SEC1 P-256 point.
    pub fn from_p256_point(kid: &str, point: &[u8]) -> Result<Jwk, TokenError> {
        if point.len() != 65 || point.first() != Some(&0x04) {
            return Err(TokenError::InvalidKey(format!(
                "expected a 65-byte uncompressed P-256 point, found {} bytes",
                point.len()
            )));
        }
        // 65 bytes checked above: 0x04 || x (32) || y (32).
        let (x, y) = point.get(1..).unwrap_or_default().split_at(32);
        Ok(Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            use_: Some("sig".into()),
            alg: Some(Alg::ES256.as_str().into()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
            y: Some(URL_SAFE_NO_PAD.encode(y)),
            n: None,
            e: None,
            x5c: None,
        })
    }

    /// The JWK of an RSA public key (modulus, exponent big endian).
    pub fn from_rsa_components(kid: &str, n: &[u8], e: &[u8]) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: Some(kid.into()),
            use_: Some("sig".into()),
            alg: Some(Alg::RS256.as_str().into()),
            crv: None,
            x: None,
            y: None,
            n: Some(URL_SAFE_NO_PAD.encode(strip_zeros(n))),
            e: Some(URL_SAFE_NO_PAD.encode(strip_zeros(e))),
            x5c: None,
        }
    }

    /// A key known only by its certificate chain (standard base64 DER, leaf first): `kty` `RSA`
    /// or `EC`, the key taken from `x5c[0]` when used.
    pub fn from_x5c(kty: &str, x5c: Vec<String>) -> Jwk {
        Jwk {
            kty: kty.into(),
            kid: None,
            use_: None,
            alg: None,
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            x5c: Some(x5c),
        }
    }

    /// Attach a certificate chain (standard base64 DER, leaf first).
    pub fn with_x5c(mut self, x5c: Vec<String>) -> Jwk {
        self.x5c = Some(x5c);
        self
    }

    fn kid_shown(&self) -> String {
        self.kid
            .as_deref()
            .map(shown)
            .unwrap_or_else(|| "(no kid)".into())
    }

    /// The algorithm this key verifies, from its type (and curve).
    pub fn alg_for_key(&self) -> Option<Alg> {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => Some(Alg::ES256),
            ("EC", None) if self.x5c.is_some() => Some(Alg::ES256),
            ("RSA", _) => Some(Alg::RS256),
            _ => None,
        }
    }

    /// Whether this key may verify `alg`; the reason when it may not.
    fn check_fits(&self, alg: Alg) -> Result<(), String> {
        match self.alg_for_key() {
            Some(a) if a == alg => {}
            _ => {
                return Err(format!(
                    "expected a {} key{}, found kty {}{}",
                    alg.kty(),
                    if alg == Alg::ES256 { " on P-256" } else { "" },
                    shown(&self.kty),
                    self.crv
                        .as_deref()
                        .map(|c| format!(" crv {}", shown(c)))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(a) = &self.alg
            && a != alg.as_str()
        {
            return Err(format!("the key is for alg {}", shown(a)));
        }
        if let Some(u) = &self.use_
            && u != "sig"
        {
            return Err(format!("expected key use \"sig\", found {}", shown(u)));
        }
        Ok(())
    }

    /// Check a JWS signature (`alg` over `signing_input` = `header.payload`) with this key: its
    /// members, or the key of its first `x5c` certificate. For signed objects that are not
    /// tokens (policy uploads, key release answers); tokens go through [`verify`], which also
    /// checks the header and the claims.
    pub fn verify_signature(
        &self,
        alg: Alg,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        let key = self.verifying_key()?;
        if key.alg() == alg && key.verify(signing_input, signature) {
            Ok(())
        } else {
            Err(TokenError::BadSignature {
                kid: self.kid_shown(),
                alg: alg.as_str().into(),
            })
        }
    }

    fn verifying_key(&self) -> Result<VerifyingKey, TokenError> {
        match self.kty.as_str() {
            "EC" => {
                if let (Some(x), Some(y)) = (&self.x, &self.y) {
                    if self.crv.as_deref() != Some("P-256") {
                        return Err(TokenError::InvalidKey(format!(
                            "EC key {}: expected crv \"P-256\", found {}",
                            self.kid_shown(),
                            self.crv.as_deref().map(shown).unwrap_or("none".into())
                        )));
                    }
                    // Minimal coordinates may arrive shorter than 32 bytes, non-minimal ones
                    // with leading zeros: one normaliser for every JWK integer in the project.
                    let (mut xb, mut yb) = ([0u8; 32], [0u8; 32]);
                    for (name, field, out) in [("x", x, &mut xb), ("y", y, &mut yb)] {
                        crate::jwk_int::jwk_fixed_into(&b64url_field(field, name)?, out).map_err(
                            |e| {
                                TokenError::InvalidKey(format!(
                                    "EC key {}: {name}: {e}",
                                    self.kid_shown()
                                ))
                            },
                        )?;
                    }
                    let mut point = Vec::with_capacity(65);
                    point.push(0x04);
                    point.extend_from_slice(&xb);
                    point.extend_from_slice(&yb);
                    return Ok(VerifyingKey::P256(point));
                }
                self.key_from_x5c()
            }
            "RSA" => {
                if let (Some(n), Some(e)) = (&self.n, &self.e) {
                    let int = |v: &str, name: &str| -> Result<Vec<u8>, TokenError> {
                        let bytes = b64url_field(v, name)?;
                        crate::jwk_int::jwk_uint(&bytes)
                            .map(<[u8]>::to_vec)
                            .map_err(|e| {
                                TokenError::InvalidKey(format!(
                                    "RSA key {}: {name}: {e}",
                                    self.kid_shown()
                                ))
                            })
                    };
                    let (n, e) = (int(n, "n")?, int(e, "e")?);
                    if n.len() < 256 {
                        return Err(TokenError::InvalidKey(format!(
                            "RSA key {}: expected a modulus of at least 2048 bits, found {} bits",
                            self.kid_shown(),
                            n.len() * 8
                        )));
                    }
                    return Ok(VerifyingKey::RsaComponents { n, e });
                }
                self.key_from_x5c()
            }
            other => Err(TokenError::InvalidKey(format!(
                "key {}: expected kty \"EC\" or \"RSA\", found {}",
                self.kid_shown(),
                shown(other)
            ))),
        }
    }

    /// The public key of the first x5c certificate (used when the JWK has no key members, as in
    /// Azure Attestation's `/certs`). The chain is not validated: trust comes from whoever
    /// configured this key set.
    fn key_from_x5c(&self) -> Result<VerifyingKey, TokenError> {
        let kid = self.kid_shown();
        let first = self.x5c.as_ref().and_then(|c| c.first()).ok_or_else(|| {
            TokenError::InvalidKey(format!(
                "{} key {kid}: expected key members or an x5c certificate, found neither",
                shown(&self.kty)
            ))
        })?;
        let der = STANDARD
            .decode(first)
            .or_else(|_| STANDARD_NO_PAD.decode(first))
            .map_err(|_| {
                TokenError::InvalidKey(format!("key {kid}: x5c[0] is not standard base64"))
            })?;
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| {
            TokenError::InvalidKey(format!("key {kid}: x5c[0] is not a certificate: {e}"))
        })?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let alg_oid = spki.algorithm.oid.to_string();
        let spki_der = spki
            .to_der()
            .map_err(|e| TokenError::InvalidKey(format!("key {kid}: x5c[0] key: {e}")))?;
        match (self.kty.as_str(), alg_oid.as_str()) {
            ("RSA", OID_RSA_ENCRYPTION) => Ok(VerifyingKey::RsaSpki(spki_der)),
            ("EC", OID_EC_PUBLIC_KEY) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                    .map(|o| o.to_string());
                if curve.as_deref() != Some(OID_P256) {
                    return Err(TokenError::InvalidKey(format!(
                        "key {kid}: expected a P-256 certificate key, found curve {}",
                        curve.unwrap_or_else(|| "(none)".into())
                    )));
                }
                let point = spki.subject_public_key.raw_bytes().to_vec();
                Ok(VerifyingKey::P256(point))
            }
            (kty, oid) => Err(TokenError::InvalidKey(format!(
                "key {kid}: kty {} but the x5c certificate key has algorithm {oid}",
                shown(kty)
            ))),
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

/// A JSON Web Key Set. For key rotation it holds the current key and the previous ones still
/// accepted: tokens signed before a rotation keep verifying until the old key is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    pub fn new(keys: Vec<Jwk>) -> Jwks {
        Jwks { keys }
    }

    /// The public keys of `signers` (current first).
    pub fn from_signers(signers: &[&dyn TokenSigner]) -> Result<Jwks, TokenError> {
        Ok(Jwks {
            keys: signers
                .iter()
                .map(|s| s.public_jwk())
                .collect::<Result<_, _>>()?,
        })
    }

    /// Rotate: `current` goes first; at most `keep_previous` earlier keys are kept (newest first).
    /// A key whose kid equals `current`'s is replaced.
    pub fn rotate(&mut self, current: Jwk, keep_previous: usize) {
        self.keys.retain(|k| k.kid != current.kid);
        self.keys.truncate(keep_previous);
        self.keys.insert(0, current);
    }

    /// Keys with this kid.
    pub fn find<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    fn known_kids(&self) -> String {
        if self.keys.is_empty() {
            return "(empty key set)".into();
        }
        let kids: Vec<String> = self.keys.iter().take(8).map(|k| k.kid_shown()).collect();
        let more = if self.keys.len() > 8 { ", ..." } else { "" };
        format!("{}{more}", kids.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Signing

/// Something that signs tokens: our own key pairs below, or a key held by the vault.
pub trait TokenSigner: Send + Sync {
    fn kid(&self) -> &str;
    fn alg(&self) -> Alg;
    /// Sign the JWS signing input. ES256: 64-byte `r || s`; RS256: modulus-length signature.
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, TokenError>;
    /// The public key as a JWK (kid, use "sig", alg, and x5c when there is one).
    fn public_jwk(&self) -> Result<Jwk, TokenError>;
    /// Certificate chain for the header's x5c (standard base64 DER, leaf first).
    fn x5c(&self) -> Option<&[String]> {
        None
    }
}

/// ES256 signer over a P-256 key pair.
pub struct Es256Signer {
    kid: String,
    pair: EcdsaKeyPair,
    x5c: Option<Vec<String>>,
}

impl fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Es256Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Es256Signer {
    /// From a PKCS#8 (RFC 5208 or 5958) P-256 private key, DER.
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8_der: &[u8]) -> Result<Es256Signer, TokenError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der)
            .map_err(|e| TokenError::InvalidKey(format!("expected a P-256 PKCS#8 key: {e}")))?;
        Ok(Es256Signer {
            kid: kid.into(),
            pair,
            x5c: None,
        })
    }

    /// A fresh random key (for ephemeral signers and tests).
    pub fn generate(kid: impl Into<String>) -> Result<Es256Signer, TokenError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| TokenError::Signing("P-256 key generation failed".into()))?;
        Ok(Es256Signer {
            kid: kid.into(),
            pair,
            x5c: None,
        })
    }

    pub fn with_x5c(mut self, x5c: Vec<String>) -> Es256Signer {
        self.x5c = Some(x5c);
        self
    }
}

impl TokenSigner for Es256Signer {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn alg(&self) -> Alg {
        Alg::ES256
    }
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, TokenError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input)
            .map_err(|_| TokenError::Signing("ECDSA P-256 signing failed".into()))?;
        Ok(sig.as_ref().to_vec())
    }
    fn public_jwk(&self) -> Result<Jwk, TokenError> {
        let jwk = Jwk::from_p256_point(&self.kid, self.pair.public_key().as_ref())?;
        Ok(match &self.x5c {
            Some(c) => jwk.with_x5c(c.clone()),
            None => jwk,
        })
    }
    fn x5c(&self) -> Option<&[String]> {
        self.x5c.as_deref()
    }
}

/// RS256 signer over an RSA key pair (at least 2048 bits).
pub struct Rs256Signer {
    kid: String,
    pair: RsaKeyPair,
    x5c: Option<Vec<String>>,
}

impl fmt::Debug for Rs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rs256Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Rs256Signer {
    /// From a PKCS#8 RSA private key, DER.
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8_der: &[u8]) -> Result<Rs256Signer, TokenError> {
        let pair = RsaKeyPair::from_pkcs8(pkcs8_der)
            .map_err(|e| TokenError::InvalidKey(format!("expected an RSA PKCS#8 key: {e}")))?;
        Self::from_pair(kid.into(), pair)
    }

    /// A fresh random 2048-bit key (for ephemeral signers and tests).
    pub fn generate(kid: impl Into<String>) -> Result<Rs256Signer, TokenError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| TokenError::Signing("RSA key generation failed".into()))?;
        Self::from_pair(kid.into(), pair)
    }

    fn from_pair(kid: String, pair: RsaKeyPair) -> Result<Rs256Signer, TokenError> {
        let bits = pair.public_modulus_len() * 8;
        if bits < 2048 {
            return Err(TokenError::InvalidKey(format!(
                "expected an RSA key of at least 2048 bits, found {bits} bits"
            )));
        }
        Ok(Rs256Signer {
            kid,
            pair,
            x5c: None,
        })
    }

    pub fn with_x5c(mut self, x5c: Vec<String>) -> Rs256Signer {
        self.x5c = Some(x5c);
        self
    }
}

impl TokenSigner for Rs256Signer {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn alg(&self) -> Alg {
        Alg::RS256
    }
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, TokenError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input,
                &mut sig,
            )
            .map_err(|_| TokenError::Signing("RSA PKCS#1 v1.5 signing failed".into()))?;
        Ok(sig)
    }
    fn public_jwk(&self) -> Result<Jwk, TokenError> {
        let pk = self.pair.public_key();
        let jwk = Jwk::from_rsa_components(
            &self.kid,
            pk.modulus().big_endian_without_leading_zero(),
            pk.exponent().big_endian_without_leading_zero(),
        );
        Ok(match &self.x5c {
            Some(c) => jwk.with_x5c(c.clone()),
            None => jwk,
        })
    }
    fn x5c(&self) -> Option<&[String]> {
        self.x5c.as_deref()
    }
}

thread_local! {
    /// The last header this thread encoded, with its base64url encoding. A token service signs
    /// every token with the same header (one key, its certificate chain, one jku), and with an
    /// RS256 key's x5c chain that header is kilobytes of JSON; the encoding is reused only for a
    /// header equal in every member, so a rotated key, chain or jku is encoded afresh.
    static LAST_HEADER: std::cell::RefCell<Option<(Header, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// `base64url(JSON(header))`, from [`LAST_HEADER`] when the header is unchanged.
fn header_b64(header: &Header) -> Result<String, TokenError> {
    LAST_HEADER.with(|last| {
        if let Ok(last) = last.try_borrow()
            && let Some((h, encoded)) = last.as_ref()
            && h == header
        {
            return Ok(encoded.clone());
        }
        let json = serde_json::to_vec(header)
            .map_err(|e| TokenError::Signing(format!("header does not serialize: {e}")))?;
        let encoded = URL_SAFE_NO_PAD.encode(&json);
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((header.clone(), encoded.clone()));
        }
        Ok(encoded)
    })
}

/// Sign `claims` under `header` into a compact JWS.
pub fn sign_compact(
    header: &Header,
    claims: &Map<String, Value>,
    signer: &dyn TokenSigner,
) -> Result<String, TokenError> {
    if Alg::from_name(&header.alg) != Some(signer.alg()) {
        return Err(TokenError::Signing(format!(
            "header alg {} does not match the signer's {}",
            shown(&header.alg),
            signer.alg()
        )));
    }
    let h = header_b64(header)?;
    let p = serde_json::to_vec(claims)
        .map_err(|e| TokenError::Signing(format!("claims do not serialize: {e}")))?;
    let mut out = String::with_capacity(h.len() + p.len() * 4 / 3 + 400);
    out.push_str(&h);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(&p));
    let sig = signer.sign(out.as_bytes())?;
    if signer.alg() == Alg::ES256 && sig.len() != 64 {
        return Err(TokenError::Signing(format!(
            "ES256 signer returned {} bytes, expected 64 (r || s)",
            sig.len()
        )));
    }
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(&sig));
    // Never issue what our own verifier (and most relying parties) would refuse.
    if out.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge {
            len: out.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// A JSON object whose top level has no duplicate members (a classic parser-differential trick:
/// two `alg` or `exp` members read differently by different libraries).
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some(k) = m.next_key::<String>()? {
                    if out.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate member {}", shown(&k))));
                    }
                    let v: Value = m.next_value()?;
                    out.insert(k, v);
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, TokenError> {
    serde_json::from_slice::<StrictObject>(bytes)
        .map(|o| o.0)
        .map_err(|e| {
            let msg = e.to_string();
            let msg: String = msg.chars().take(160).collect();
            TokenError::Malformed(format!("{what} is not a JSON object: {msg}"))
        })
}

/// The decoded parts of a compact JWS, signature not checked.
pub(crate) struct Parts<'a> {
    pub signing_input: &'a str,
    pub header: Header,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

pub(crate) fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        let n = token.split('.').count();
        return Err(TokenError::Malformed(format!(
            "expected 3 dot-separated parts (compact JWS), found {n}"
        )));
    };
    if h.is_empty() || p.is_empty() {
        return Err(TokenError::Malformed(
            "expected non-empty header and payload parts".into(),
        ));
    }
    let dec = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed(format!("{what} is not base64url without padding")))
    };
    let header_bytes = dec(h, "header")?;
    let header = Header::from_object(parse_object(&header_bytes, "header")?)?;
    let payload = dec(p, "payload")?;
    let signature = dec(s, "signature")?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Parts {
        signing_input,
        header,
        payload,
        signature,
    })
}

pub(crate) fn decode_payload(payload: &[u8]) -> Result<Map<String, Value>, TokenError> {
    parse_object(payload, "payload")
}

// ---------------------------------------------------------------------------------------------
// Verification

/// Where verification keys come from.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    /// Select by the header's kid.
    Jwks(&'a Jwks),
    /// One pinned key. When it has a kid, the header's kid (if any) must equal it.
    Pinned(&'a Jwk),
}

impl<'a> From<&'a Jwks> for KeySource<'a> {
    fn from(j: &'a Jwks) -> Self {
        KeySource::Jwks(j)
    }
}

impl<'a> From<&'a Jwk> for KeySource<'a> {
    fn from(j: &'a Jwk) -> Self {
        KeySource::Pinned(j)
    }
}

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The expected `iss` (one trailing slash on either side is ignored).
    pub issuer: String,
    /// When set, `aud` must be or contain it. When unset, `aud` is not checked.
    pub audience: Option<String>,
    pub now: DateTime<Utc>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: std::time::Duration,
    /// Algorithms accepted; empty accepts none.
    pub allowed_algs: Vec<Alg>,
}

impl Expectations {
    /// ES256 and RS256, 60 s leeway, no audience.
    pub fn new(issuer: impl Into<String>, now: DateTime<Utc>) -> Expectations {
        Expectations {
            issuer: issuer.into(),
            audience: None,
            now,
            leeway: std::time::Duration::from_secs(60),
            allowed_algs: vec![Alg::ES256, Alg::RS256],
        }
    }
}

/// A token whose signature and claims checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub header: Header,
    pub claims: Map<String, Value>,
}

impl VerifiedToken {
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

/// Verify a compact JWS attestation token. See the module documentation for the checks.
pub fn verify<'a>(
    token: &str,
    keys: impl Into<KeySource<'a>>,
    expect: &Expectations,
) -> Result<VerifiedToken, TokenError> {
    let parts = split(token)?;
    let header = parts.header;
    let allowed = alg_list(&expect.allowed_algs);

    // Algorithm.
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone {
            found: shown(&header.alg),
            allowed,
        });
    }
    if header
        .alg
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case("HS"))
    {
        return Err(TokenError::SymmetricAlg {
            found: shown(&header.alg),
            allowed,
        });
    }
    let alg = Alg::from_name(&header.alg).ok_or_else(|| TokenError::UnsupportedAlg {
        found: shown(&header.alg),
    })?;
    if !expect.allowed_algs.contains(&alg) {
        return Err(TokenError::AlgNotAllowed {
            found: alg.as_str().into(),
            allowed,
        });
    }
    if let Some(crit) = &header.crit {
        return Err(TokenError::CriticalHeader {
            found: shown(&crit.join(",")),
        });
    }

    // Key selection.
    let candidates: Vec<&Jwk> = match keys.into() {
        KeySource::Jwks(set) => match &header.kid {
            Some(kid) => {
                let c: Vec<&Jwk> = set.find(kid).collect();
                if c.is_empty() {
                    return Err(TokenError::UnknownKid {
                        found: shown(kid),
                        known: set.known_kids(),
                    });
                }
                c
            }
            None if set.keys.len() == 1 => set.keys.iter().collect(),
            None => {
                return Err(TokenError::MissingKid {
                    count: set.keys.len(),
                });
            }
        },
        KeySource::Pinned(k) => {
            if let (Some(want), Some(got)) = (&k.kid, &header.kid)
                && want != got
            {
                return Err(TokenError::UnknownKid {
                    found: shown(got),
                    known: shown(want),
                });
            }
            vec![k]
        }
    };
    let mut fitting = Vec::new();
    let mut last_reason = String::new();
    for k in &candidates {
        match k.check_fits(alg) {
            Ok(()) => fitting.push(*k),
            Err(r) => last_reason = r,
        }
    }
    if fitting.is_empty() {
        return Err(TokenError::AlgKeyMismatch {
            alg: alg.as_str().into(),
            kid: candidates
                .first()
                .map(|k| k.kid_shown())
                .unwrap_or_default(),
            reason: last_reason,
        });
    }

    // Signature.
    let mut verified = false;
    let mut key_error = None;
    for k in &fitting {
        match k.verifying_key() {
            Ok(vk) if vk.alg() == alg => {
                if vk.verify(parts.signing_input.as_bytes(), &parts.signature) {
                    verified = true;
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => key_error = Some(e),
        }
    }
    if !verified {
        if let (Some(e), 1) = (key_error, fitting.len()) {
            return Err(e);
        }
        return Err(TokenError::BadSignature {
            kid: header
                .kid
                .as_deref()
                .map(shown)
                .unwrap_or("(no kid)".into()),
            alg: alg.as_str().into(),
        });
    }

    // Claims.
    let claims = decode_payload(&parts.payload)?;
    check_claims(&claims, expect)?;
    Ok(VerifiedToken { header, claims })
}

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(TokenError::InvalidClaim {
                name: name.into(),
                expected: "a NumericDate (seconds since the epoch)".into(),
                found: "a number out of range".into(),
            }),
        },
        Some(other) => Err(TokenError::InvalidClaim {
            name: name.into(),
            expected: "a NumericDate (seconds since the epoch)".into(),
            found: json_kind(other).into(),
        }),
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

fn check_claims(claims: &Map<String, Value>, expect: &Expectations) -> Result<(), TokenError> {
    let now = expect.now.timestamp();
    let leeway = i64::try_from(expect.leeway.as_secs()).unwrap_or(i64::MAX);
    let now_f = now as f64;
    let leeway_f = leeway as f64;

    let exp = numeric_date(claims, "exp")?.ok_or_else(|| TokenError::MissingClaim {
        name: "exp".into(),
        expected: "an expiry time".into(),
    })?;
    if now_f >= exp + leeway_f {
        return Err(TokenError::Expired {
            exp: exp as i64,
            now,
            leeway,
        });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now_f + leeway_f < nbf
    {
        return Err(TokenError::NotYetValid {
            nbf: nbf as i64,
            now,
            leeway,
        });
    }
    numeric_date(claims, "iat")?;

    match claims.get("iss") {
        Some(Value::String(iss)) if trim_slash(iss) == trim_slash(&expect.issuer) => {}
        other => {
            return Err(TokenError::WrongIssuer {
                expected: shown(&expect.issuer),
                found: match other {
                    Some(Value::String(s)) => shown(s),
                    Some(v) => json_kind(v).into(),
                    None => "no iss claim".into(),
                },
            });
        }
    }

    if let Some(want) = &expect.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == want,
            Some(Value::Array(list)) => list.iter().any(|v| v.as_str() == Some(want.as_str())),
            _ => false,
        };
        if !ok {
            return Err(TokenError::WrongAudience {
                expected: shown(want),
                found: match claims.get("aud") {
                    Some(Value::String(s)) => shown(s),
                    Some(Value::Array(a)) => format!("an array of {} audiences", a.len()),
                    Some(v) => json_kind(v).into(),
                    None => "no aud claim".into(),
                },
            });
        }
    }
    Ok(())
}
