//! JSON Web Tokens: our own ES256 access tokens and verification of external OIDC tokens.
//!
//! Algorithm pinning: the verification algorithm is derived from the *key* (our own key: ES256;
//! an external JWK: `RSA` -> RS256, `EC`/`P-256` -> ES256). The header `alg` must equal it, so
//! `alg: none`, `HS256` (with the public key as an HMAC secret) and RSA/EC confusion are all
//! rejected before any signature check. Symmetric (`oct`) JWKs are never loaded.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_store::{Op, Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{AuthError, IdentityError};

/// Largest bearer token accepted (bytes). Larger inputs are rejected before decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Meta key holding our token signing key (PKCS#8, as returned by [`KeyWrap::wrap`]).
pub const TOKEN_KEY_META: &str = "identity/token-key";

/// How the token signing key is protected at rest in `Table::Meta`.
///
/// The server passes the vault's root-key wrapper once the vault is unsealed, so the signing key is
/// encrypted at rest and only usable while unsealed: tokens cannot be issued or verified while the
/// vault is sealed, and stay valid across seal/unseal and restarts (the same key comes back).
pub trait KeyWrap {
    /// Protect `plaintext` (a PKCS#8 document) for storage.
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, String>;
    /// Recover the plaintext from [`KeyWrap::wrap`]'s output.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, String>;
}

/// Stores the signing key **in clear**. Only for development: whoever can read the database file
/// can mint access tokens for this server (they are still useless unless the vault is unsealed).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClearKeyWrap;

impl KeyWrap for ClearKeyWrap {
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        Ok(plaintext.to_vec())
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        Ok(Zeroizing::new(wrapped.to_vec()))
    }
}

/// The ES256 (P-256) key that signs Enclava access tokens.
pub struct TokenKey {
    kid: String,
    pkcs8: Zeroizing<Vec<u8>>,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, IdentityError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| {
                    IdentityError::Crypto("generating the P-256 token signing key failed")
                })?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Load from an unencrypted PKCS#8 P-256 private key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|_| {
                IdentityError::Invalid {
                    what: "token signing key",
                    expected: "an unencrypted PKCS#8 P-256 ECDSA private key",
                    found: format!("{} bytes that do not parse as one", pkcs8.len()),
                }
            })?;
        let digest = Sha256::digest(pair.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(digest.get(..16).unwrap_or(&digest[..]));
        Ok(TokenKey {
            kid,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            pair,
        })
    }

    /// Load the key stored in `Table::Meta` under [`TOKEN_KEY_META`], or generate and store one
    /// (race-safe: if another process stores one first, that one is used).
    pub fn load_or_create(store: &dyn Store, wrap: &dyn KeyWrap) -> Result<Self, IdentityError> {
        for _ in 0..3 {
            if let Some(wrapped) = store.get(Table::Meta, TOKEN_KEY_META)? {
                let plain = wrap.unwrap(&wrapped).map_err(|e| IdentityError::Corrupt {
                    what: TOKEN_KEY_META.into(),
                    detail: format!("unwrapping the stored token signing key failed: {e}"),
                })?;
                return Self::from_pkcs8(&plain);
            }
            let key = Self::generate()?;
            let wrapped = wrap.wrap(key.pkcs8()).map_err(|e| IdentityError::Corrupt {
                what: TOKEN_KEY_META.into(),
                detail: format!("wrapping the new token signing key failed: {e}"),
            })?;
            let res = store.transact(vec![
                Op::Expect {
                    table: Table::Meta,
                    key: TOKEN_KEY_META.into(),
                    value: None,
                },
                Op::Put {
                    table: Table::Meta,
                    key: TOKEN_KEY_META.into(),
                    value: wrapped,
                },
            ]);
            match res {
                Ok(()) => return Ok(key),
                Err(enclava_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdentityError::Corrupt {
            what: TOKEN_KEY_META.into(),
            detail: "the token key kept changing while loading it".into(),
        })
    }

    /// The unencrypted PKCS#8 document (for the caller to store wrapped).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Key id placed in the JWT header: base64url of the first 16 bytes of SHA-256(public point).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The uncompressed SEC1 public point (65 bytes).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as a JWK (`kty: EC, crv: P-256, alg: ES256, use: sig, kid, x, y`).
    pub fn public_jwk(&self) -> Value {
        let p = self.public_point();
        let x = p.get(1..33).unwrap_or_default();
        let y = p.get(33..65).unwrap_or_default();
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// Sign `header.payload`, returning the compact JWS.
    pub(crate) fn sign_jwt(&self, claims: &Value) -> Result<String, IdentityError> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut out = String::new();
        out.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), out.as_bytes())
            .map_err(|_| IdentityError::Crypto("signing the access token failed"))?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(out)
    }
}

/// Registered claims of a token, after signature verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// Audiences (a JWT `aud` may be a string or an array).
    pub aud: Vec<String>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub exp: i64,
    pub jti: Option<String>,
}

/// A decoded, not yet verified compact JWS.
pub(crate) struct Jws<'a> {
    pub alg: String,
    pub kid: Option<String>,
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
    pub payload: Value,
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(what))
}

/// Shown in errors: printable ASCII, at most 64 characters.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

pub(crate) fn decode(token: &str) -> Result<Jws<'_>, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "expected a compact JWS: three base64url parts separated by '.'",
        ));
    };
    let header: Value = serde_json::from_slice(&b64(h, "header is not base64url")?)
        .map_err(|_| AuthError::Malformed("header is not JSON"))?;
    let payload: Value = serde_json::from_slice(&b64(p, "payload is not base64url")?)
        .map_err(|_| AuthError::Malformed("payload is not JSON"))?;
    if !header.is_object() || !payload.is_object() {
        return Err(AuthError::Malformed(
            "header and payload must be JSON objects",
        ));
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(AuthError::Malformed("header has no string \"alg\"")),
    };
    if header.get("crit").is_some() {
        return Err(AuthError::Malformed(
            "header has \"crit\" extensions, none are supported",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(AuthError::Malformed("header \"kid\" is not a string")),
    };
    let signature = b64(s, "signature is not base64url")?;
    let signing_input = token
        .get(..h.len() + 1 + p.len())
        .map(str::as_bytes)
        .unwrap_or_default();
    Ok(Jws {
        alg,
        kid,
        signing_input,
        signature,
        payload,
    })
}

/// Only these algorithms are ever accepted; everything else is rejected by name before lookup.
pub(crate) fn check_alg_supported(alg: &str) -> Result<(), AuthError> {
    match alg {
        "ES256" | "RS256" => Ok(()),
        other => Err(AuthError::UnsupportedAlgorithm {
            alg: sanitize(other),
        }),
    }
}

/// A verification key with its pinned algorithm.
#[derive(Clone)]
pub(crate) enum VerifyKey {
    /// RS256 with the given modulus / exponent (big-endian, no leading zeros).
    Rs256 { n: Vec<u8>, e: Vec<u8> },
    /// ES256 with the given uncompressed SEC1 point.
    Es256 { point: Vec<u8> },
}

impl VerifyKey {
    pub fn alg(&self) -> &'static str {
        match self {
            VerifyKey::Rs256 { .. } => "RS256",
            VerifyKey::Es256 { .. } => "ES256",
        }
    }

    pub fn verify(&self, jws: &Jws<'_>) -> Result<(), AuthError> {
        if jws.alg != self.alg() {
            return Err(AuthError::AlgorithmMismatch {
                alg: sanitize(&jws.alg),
                key_alg: self.alg(),
            });
        }
        let ok = match self {
            VerifyKey::Rs256 { n, e } => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                jws.signing_input,
                &jws.signature,
            )
            .is_ok(),
            VerifyKey::Es256 { point } => {
                jws.signature.len() == 64
                    && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                        .verify(jws.signing_input, &jws.signature)
                        .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

fn strip_leading_zeros(mut b: Vec<u8>) -> Vec<u8> {
    let nz = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.drain(..nz);
    b
}

/// Parse one JWK into a verification key. `Ok(None)` for keys we never use (oct, other curves,
/// `use: enc`); `Err` for a malformed key of a supported type.
pub(crate) fn parse_jwk(jwk: &Value) -> Result<Option<(Option<String>, VerifyKey)>, String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    let kid = s("kid").map(str::to_string);
    if s("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let field = |k: &str| -> Result<Vec<u8>, String> {
        let v = s(k).ok_or_else(|| format!("JWK is missing string member {k:?}"))?;
        URL_SAFE_NO_PAD
            .decode(v.trim_end_matches('='))
            .map_err(|_| format!("JWK member {k:?} is not base64url"))
    };
    let key = match s("kty") {
        Some("RSA") => {
            if s("alg").is_some_and(|a| a != "RS256") {
                return Ok(None);
            }
            let n = strip_leading_zeros(field("n")?);
            let e = strip_leading_zeros(field("e")?);
            if n.len() < 256 {
                return Err(format!(
                    "RSA JWK modulus is {} bits, at least 2048 required",
                    n.len() * 8
                ));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA JWK exponent has an invalid length".into());
            }
            VerifyKey::Rs256 { n, e }
        }
        Some("EC") => {
            if s("crv") != Some("P-256") || s("alg").is_some_and(|a| a != "ES256") {
                return Ok(None);
            }
            let x = field("x")?;
            let y = field("y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(format!(
                    "P-256 JWK coordinates must be 32 bytes, found {} and {}",
                    x.len(),
                    y.len()
                ));
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            VerifyKey::Es256 { point }
        }
        _ => return Ok(None),
    };
    Ok(Some((kid, key)))
}

/// Parse a JWKS document (`{"keys": [...]}`) into its usable signature keys.
pub(crate) fn parse_jwks(jwks: &Value) -> Result<Vec<(Option<String>, VerifyKey)>, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "JWKS must be an object with a \"keys\" array".to_string())?;
    let mut out = Vec::new();
    for k in keys {
        if let Some(parsed) = parse_jwk(k)? {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// Extract and check the registered claims (`exp` required; `nbf`, `iat` optional; leeway in seconds).
pub(crate) fn claims(payload: &Value, now: i64, leeway: i64) -> Result<Claims, AuthError> {
    let str_claim = |k: &'static str| -> Result<String, AuthError> {
        match payload.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(AuthError::MissingClaim(k)),
        }
    };
    let num = |k: &'static str| -> Result<Option<i64>, AuthError> {
        match payload.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or(AuthError::Malformed("a time claim is not a number")),
        }
    };
    let iss = str_claim("iss")?;
    let sub = str_claim("sub")?;
    let aud = match payload.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Err(AuthError::MissingClaim("aud")),
    };
    let exp = num("exp")?.ok_or(AuthError::MissingClaim("exp"))?;
    let nbf = num("nbf")?;
    let iat = num("iat")?;
    let jti = payload
        .get("jti")
        .and_then(Value::as_str)
        .map(str::to_string);
    if now > exp.saturating_add(leeway) {
        return Err(AuthError::Expired { exp, now });
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(AuthError::NotYetValid { nbf, now });
    }
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(AuthError::NotYetValid { nbf: iat, now });
    }
    Ok(Claims {
        iss,
        sub,
        aud,
        iat,
        nbf,
        exp,
        jti,
    })
}

/// Canonical comparison form of an issuer / audience URL: no trailing slash.
pub(crate) fn canon_url(s: &str) -> &str {
    s.trim_end_matches('/')
}
