//! Attestation tokens: claims mapping, signing and verification. Pure: no I/O, no async; the
//! time and (optionally) the token id are injected through [`TokenOptions`].
//!
//! - [`maa`]: normalized evidence claims ([`enclava_evidence::Claims`]) to the claim names
//!   Microsoft Azure Attestation issues per TEE (`x-ms-sevsnpvm-*`, `tdx_*`, `x-ms-sgx-*`,
//!   `azurevm` with `x-ms-isolation-tee`), runtime data to `x-ms-runtime`, plus our own
//!   `x-enclava-*` claims.
//! - [`ear`]: an IETF RATS EAR appraisal (`ear.status`, AR4SI trustworthiness vector).
//! - [`jwt`]: ES256 / RS256 compact JWS, [`TokenSigner`], JWK/JWKS export, [`verify`].
//! - [`issue`] builds and signs a token from a claims map; [`decode_unverified`] is for display.
//!
//! A typical attestation: `maa::maa_claims(&input)` (optionally with
//! `x-enclava-ear` = `ear::ear_claims(..)` added), then `issue(&claims, &signer, &options)`.
// Parses attacker-supplied input: indexing, slicing and `unwrap` are denied outside tests, so bad
// input is a typed error, never a panic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

pub mod ear;
pub mod eku;
pub mod error;
pub mod jwk_int;
pub mod jwt;
pub mod maa;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

pub use error::TokenError;
pub use jwt::{
    Alg, Es256Signer, Expectations, Header, Jwk, Jwks, KeySource, MAX_TOKEN_LEN, Rs256Signer,
    TokenSigner, VerifiedToken, verify,
};

/// Default token lifetime: 5 minutes.
pub const DEFAULT_LIFETIME_SECONDS: i64 = 300;
/// Longest lifetime [`issue`] accepts: 24 hours.
pub const MAX_LIFETIME_SECONDS: i64 = 24 * 3600;

/// How the `jti` claim is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JtiSource {
    /// 32 random bytes from the system RNG, lower-case hex (64 characters, as MAA's).
    #[default]
    Random,
    /// This exact value (tests, or an id chosen by the caller, e.g. an audit record id).
    Fixed(String),
}

/// Token-level settings for [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOptions {
    /// `iss`: the attestation service's base URL.
    pub issuer: String,
    /// `exp - iat`. Must be positive and at most [`MAX_LIFETIME_SECONDS`].
    pub lifetime: Duration,
    /// `aud`, when set.
    pub audience: Option<String>,
    /// `nonce`, when set (overrides a `nonce` already in the claims map).
    pub nonce: Option<String>,
    /// `iat` and `nbf`.
    pub now: DateTime<Utc>,
    pub jti: JtiSource,
    /// `jku` header: where the verification keys are (MAA: `{issuer}/certs`).
    pub jku: Option<String>,
}

impl TokenOptions {
    /// Defaults: 5-minute lifetime, no audience, no nonce, random jti, `jku` = `{issuer}/certs`.
    pub fn new(issuer: impl Into<String>, now: DateTime<Utc>) -> TokenOptions {
        let issuer = issuer.into();
        let jku = Some(format!("{}/certs", issuer.trim_end_matches('/')));
        TokenOptions {
            issuer,
            lifetime: Duration::seconds(DEFAULT_LIFETIME_SECONDS),
            audience: None,
            nonce: None,
            now,
            jti: JtiSource::Random,
            jku,
        }
    }
}

/// Registered claims [`issue`] always sets itself; values in the claims map are replaced.
pub const REGISTERED_CLAIMS: [&str; 6] = ["iss", "iat", "nbf", "exp", "jti", "aud"];

/// Build and sign a token: the claims map plus `iss`, `iat` = `nbf` = now, `exp` = now +
/// lifetime, `jti`, and `aud` / `nonce` from the options. An `aud` in the claims map is dropped
/// unless the options set one.
pub fn issue(
    claims: &Map<String, Value>,
    signer: &dyn TokenSigner,
    opts: &TokenOptions,
) -> Result<String, TokenError> {
    issue_claims(claims.clone(), signer, opts).map(|(token, _)| token)
}

/// Like [`issue`], taking the claims by value and handing back the payload as signed (with the
/// registered claims), so that a caller need not decode the token it has just made.
pub fn issue_claims(
    claims: Map<String, Value>,
    signer: &dyn TokenSigner,
    opts: &TokenOptions,
) -> Result<(String, Map<String, Value>), TokenError> {
    let life = opts.lifetime.num_seconds();
    if life <= 0 || life > MAX_LIFETIME_SECONDS {
        return Err(TokenError::InvalidOptions(format!(
            "lifetime must be 1..={MAX_LIFETIME_SECONDS} seconds, found {life}"
        )));
    }
    if opts.issuer.is_empty() {
        return Err(TokenError::InvalidOptions(
            "issuer must not be empty".into(),
        ));
    }
    let now = opts.now.timestamp();
    let exp = now
        .checked_add(life)
        .ok_or_else(|| TokenError::InvalidOptions(format!("now ({now}) + lifetime overflows")))?;
    let jti = match &opts.jti {
        JtiSource::Random => random_jti()?,
        JtiSource::Fixed(s) => s.clone(),
    };

    let mut out = claims;
    for k in REGISTERED_CLAIMS {
        out.remove(k);
    }
    out.insert("iss".into(), Value::String(opts.issuer.clone()));
    out.insert("iat".into(), Value::from(now));
    out.insert("nbf".into(), Value::from(now));
    out.insert("exp".into(), Value::from(exp));
    out.insert("jti".into(), Value::String(jti));
    if let Some(aud) = &opts.audience {
        out.insert("aud".into(), Value::String(aud.clone()));
    }
    if let Some(n) = &opts.nonce {
        out.insert("nonce".into(), Value::String(n.clone()));
    }
    let header = Header::for_signer(signer, opts.jku.clone());
    let token = jwt::sign_compact(&header, &out, signer)?;
    Ok((token, out))
}

fn random_jti() -> Result<String, TokenError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| TokenError::Signing("system random generator failed".into()))?;
    Ok(hex::encode(b))
}

/// A token decoded without any check of signature or claims: for display only, never for
/// decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedToken {
    pub header: Header,
    pub claims: Map<String, Value>,
    /// The signature bytes, base64url.
    pub signature: String,
}

/// Decode a compact JWS for display. Checks only the structure (size, three base64url parts,
/// JSON objects).
pub fn decode_unverified(token: &str) -> Result<UnverifiedToken, TokenError> {
    let parts = jwt::split(token)?;
    let claims = jwt::decode_payload(&parts.payload)?;
    Ok(UnverifiedToken {
        header: parts.header,
        claims,
        signature: URL_SAFE_NO_PAD.encode(&parts.signature),
    })
}

#[cfg(test)]
mod tests;
