//! Trusted attestation token issuers and token verification for secure key release.
//!
//! A release request carries an attestation token (`target`). It is accepted only when its `iss`
//! names a configured issuer (compared in canonical form: scheme and host lower-cased, trailing
//! slashes removed) and it verifies with that issuer's keys: ES256 or RS256 only (`none` and
//! `HS*` are refused by [`enclava_token::verify`]), `exp` required and not past, `nbf` not in the
//! future (60 s leeway). Enclava's own attestation service is the *local* issuer
//! ([`TrustedIssuers::set_local`]); external issuers (an MAA instance, another Enclava) come from
//! the configuration with a JWKS or pinned keys.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use enclava_policy::release::canonical_authority;
use enclava_token::{Expectations, Jwk, Jwks, TokenError, decode_unverified, verify};
use serde_json::{Map, Value};

use crate::error::{Result, VaultError};

/// The keys an issuer signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeys {
    /// A JWKS: the token header's kid selects the key (no kid is tolerated with one key only).
    Jwks(Jwks),
    /// Pinned keys: each is tried (a pinned key with a kid only matches tokens with that kid).
    Pinned(Vec<Jwk>),
}

impl IssuerKeys {
    /// Parse a JWKS document (`{"keys":[...]}`) or a single JWK (pinned) from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<IssuerKeys, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| {
            format!("expected a JWKS or JWK JSON document, found invalid JSON ({e})")
        })?;
        if v.get("keys").is_some() {
            let set: Jwks = serde_json::from_value(v)
                .map_err(|e| format!("expected a JWKS {{\"keys\":[JWK, ...]}}: {e}"))?;
            if set.keys.is_empty() {
                return Err("expected a JWKS with at least one key, found an empty key set".into());
            }
            Ok(IssuerKeys::Jwks(set))
        } else {
            let k: Jwk = serde_json::from_value(v)
                .map_err(|e| format!("expected a JWKS or a single JWK: {e}"))?;
            Ok(IssuerKeys::Pinned(vec![k]))
        }
    }

    fn len(&self) -> usize {
        match self {
            IssuerKeys::Jwks(j) => j.keys.len(),
            IssuerKeys::Pinned(p) => p.len(),
        }
    }
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The `iss` its tokens carry (e.g. `https://myattestation.eus.attest.azure.net`).
    pub issuer: String,
    pub keys: IssuerKeys,
}

impl TrustedIssuer {
    pub fn new(issuer: impl Into<String>, keys: IssuerKeys) -> TrustedIssuer {
        TrustedIssuer {
            issuer: issuer.into(),
            keys,
        }
    }
}

/// The set of issuers whose attestation tokens secure key release accepts. Shared by the server
/// (configuration, the local attestation service) and the vault's release logic; all methods take
/// `&self`.
#[derive(Debug, Default)]
pub struct TrustedIssuers {
    local: RwLock<Option<TrustedIssuer>>,
    external: RwLock<Vec<TrustedIssuer>>,
}

/// A token that verified against a trusted issuer: the input of release policy evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAttestation {
    /// The token's `iss`, as written in the token.
    pub issuer: String,
    /// All claims.
    pub claims: Map<String, Value>,
}

const SHOWN: usize = 128;

fn bounded(s: &str) -> String {
    let mut out: String = s.chars().take(SHOWN).collect();
    if s.chars().nth(SHOWN).is_some() {
        out.push_str("...");
    }
    out
}

/// Claims naming the workload's measurement, most specific first.
const MEASUREMENT_CLAIMS: [&[&str]; 6] = [
    &["x-enclava-measurement"],
    &["x-ms-sevsnpvm-launchmeasurement"],
    &["x-ms-isolation-tee", "x-ms-sevsnpvm-launchmeasurement"],
    &["tdx_mrtd"],
    &["x-ms-isolation-tee", "tdx_mrtd"],
    &["x-ms-sgx-mrenclave"],
];

fn claim_str<'a>(claims: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(*first)?;
    for seg in rest {
        v = v.get(*seg)?;
    }
    v.as_str()
}

impl VerifiedAttestation {
    /// The token id (`jti`), when present.
    pub fn jti(&self) -> Option<&str> {
        self.claims.get("jti").and_then(Value::as_str)
    }

    /// The workload's measurement: `x-enclava-measurement`, else the SEV-SNP launch measurement,
    /// TDX MRTD or SGX MRENCLAVE (top level or under `x-ms-isolation-tee`).
    pub fn measurement(&self) -> Option<&str> {
        MEASUREMENT_CLAIMS
            .iter()
            .find_map(|p| claim_str(&self.claims, p))
    }

    /// `iss=... jti=... measurement=...` for audit entries (bounded; never key material or the
    /// token).
    pub fn audit_summary(&self) -> String {
        format!(
            "iss={} jti={} measurement={}",
            bounded(&self.issuer),
            bounded(self.jti().unwrap_or("-")),
            bounded(self.measurement().unwrap_or("-")),
        )
    }
}

/// For audit entries of requests whose token did not verify: the token's *claimed* `iss` and
/// `jti` (marked unverified), or `None` when it cannot even be decoded.
pub fn unverified_summary(token: &str) -> Option<String> {
    let t = decode_unverified(token).ok()?;
    let s = |k: &str| {
        t.claims
            .get(k)
            .and_then(Value::as_str)
            .map(bounded)
            .unwrap_or_else(|| "-".into())
    };
    Some(format!("unverified iss={} jti={}", s("iss"), s("jti")))
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn token_error(e: TokenError) -> VaultError {
    match e {
        TokenError::TooLarge { .. } | TokenError::Malformed(_) => VaultError::bad(format!(
            "invalid target: expected an attestation token (compact JWS), {e}"
        )),
        other => VaultError::forbidden(
            format!("the attestation token was rejected: {other}"),
            "InvalidAttestationToken",
        ),
    }
}

impl TrustedIssuers {
    /// A set with the given external issuers and no local one.
    pub fn new(external: Vec<TrustedIssuer>) -> TrustedIssuers {
        TrustedIssuers {
            local: RwLock::new(None),
            external: RwLock::new(external),
        }
    }

    /// Trust Enclava's own attestation service: `issuer` and its current JWKS (replaces any earlier
    /// local issuer; call again after a signing-key rotation).
    pub fn set_local(&self, issuer: impl Into<String>, jwks: Jwks) {
        *write(&self.local) = Some(TrustedIssuer::new(issuer, IssuerKeys::Jwks(jwks)));
    }

    /// Stop trusting the local attestation service (e.g. while sealed).
    pub fn clear_local(&self) {
        *write(&self.local) = None;
    }

    /// Add an external issuer, replacing one with the same canonical issuer.
    pub fn add(&self, t: TrustedIssuer) {
        let mut ext = write(&self.external);
        let c = canonical_authority(&t.issuer);
        ext.retain(|x| canonical_authority(&x.issuer) != c);
        ext.push(t);
    }

    /// The trusted issuer URLs (local first).
    pub fn issuers(&self) -> Vec<String> {
        let mut out: Vec<String> = read(&self.local).iter().map(|t| t.issuer.clone()).collect();
        out.extend(read(&self.external).iter().map(|t| t.issuer.clone()));
        out
    }

    fn find(&self, iss: &str) -> Option<TrustedIssuer> {
        let c = canonical_authority(iss);
        if let Some(l) = read(&self.local).as_ref()
            && canonical_authority(&l.issuer) == c
        {
            return Some(l.clone());
        }
        read(&self.external)
            .iter()
            .find(|t| canonical_authority(&t.issuer) == c)
            .cloned()
    }

    /// Verify an attestation token at time `now`: its issuer must be trusted and its signature,
    /// algorithm, `exp` and `nbf` must check out.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedAttestation> {
        let unverified = decode_unverified(token).map_err(token_error)?;
        let iss = match unverified.claims.get("iss") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(token_error(TokenError::Malformed(
                    "the iss claim is not a non-empty string".into(),
                )));
            }
            None => {
                return Err(VaultError::forbidden(
                    "the attestation token was rejected: expected an iss claim naming a trusted issuer, found none",
                    "UntrustedAttestationIssuer",
                ));
            }
        };
        let Some(trusted) = self.find(&iss) else {
            let known = self.issuers();
            let known = if known.is_empty() {
                "(no trusted issuers are configured)".to_string()
            } else {
                known
                    .iter()
                    .map(|s| bounded(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(VaultError::forbidden(
                format!(
                    "the attestation token was rejected: issuer {:?} is not trusted: expected one of {known}",
                    bounded(&iss)
                ),
                "UntrustedAttestationIssuer",
            ));
        };
        // The token's own spelling: the canonical match above is what establishes trust.
        let expect = Expectations::new(iss.clone(), now);
        let verified = match &trusted.keys {
            IssuerKeys::Jwks(set) => verify(token, set, &expect).map_err(token_error)?,
            IssuerKeys::Pinned(keys) => {
                let mut last = TokenError::BadSignature {
                    kid: "(no pinned keys)".into(),
                    alg: "-".into(),
                };
                let mut ok = None;
                for k in keys {
                    match verify(token, k, &expect) {
                        Ok(v) => {
                            ok = Some(v);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                match ok {
                    Some(v) => v,
                    None if trusted.keys.len() == 1 => return Err(token_error(last)),
                    None => {
                        return Err(VaultError::forbidden(
                            format!(
                                "the attestation token was rejected: it verifies with none of the {} pinned keys of {:?} (last: {last})",
                                trusted.keys.len(),
                                bounded(&trusted.issuer)
                            ),
                            "InvalidAttestationToken",
                        ));
                    }
                }
            }
        };
        Ok(VerifiedAttestation {
            issuer: iss,
            claims: verified.claims,
        })
    }
}
