//! The `tee-pubkey`: the key the attester generated in the TEE, bound into its evidence, to which
//! every resource is encrypted. Two shapes, as CoCo's attesters send them:
//! `{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x","y"}` and
//! `{"kty":"RSA","alg":"RSA-OAEP-256","n","e"}` (base64url members). JWK integers go through the
//! project's one normaliser ([`enclava_token::jwk_int`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_token::jwk_int::{jwk_fixed_into, jwk_uint};
use serde_json::Value;

use crate::error::KbsError;

/// JWE key management algorithm for EC keys.
pub const ALG_ECDH_ES_A256KW: &str = "ECDH-ES+A256KW";
/// JWE key management algorithm for RSA keys.
pub const ALG_RSA_OAEP_256: &str = "RSA-OAEP-256";

/// A parsed tee-pubkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeePubKey {
    /// P-256 public point.
    Ec { x: [u8; 32], y: [u8; 32] },
    /// RSA modulus and exponent (minimal big-endian).
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

fn member<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a str, KbsError> {
    match m.get(k) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(KbsError::invalid(format!(
            "tee-pubkey.{k}: expected a string, found another JSON type"
        ))),
        None => Err(KbsError::invalid(format!(
            "tee-pubkey.{k}: expected a member, found none"
        ))),
    }
}

fn b64(m: &serde_json::Map<String, Value>, k: &str) -> Result<Vec<u8>, KbsError> {
    let s = member(m, k)?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| {
            KbsError::invalid(format!(
                "tee-pubkey.{k}: expected base64url, found undecodable text"
            ))
        })
}

impl TeePubKey {
    /// Parse and check a tee-pubkey JWK.
    pub fn from_jwk(v: &Value) -> Result<TeePubKey, KbsError> {
        let Value::Object(m) = v else {
            return Err(KbsError::invalid(
                "tee-pubkey: expected a JWK object, found another JSON type",
            ));
        };
        let kty = member(m, "kty")?;
        let alg = match m.get("alg") {
            None => None,
            Some(_) => Some(member(m, "alg")?),
        };
        match kty {
            "EC" => {
                if let Some(a) = alg
                    && a != ALG_ECDH_ES_A256KW
                {
                    return Err(KbsError::invalid(format!(
                        "tee-pubkey.alg: expected {ALG_ECDH_ES_A256KW} for an EC key, found {a:?}"
                    )));
                }
                let crv = member(m, "crv")?;
                if crv != "P-256" {
                    return Err(KbsError::invalid(format!(
                        "tee-pubkey.crv: expected P-256, found {:?}",
                        crv.chars().take(16).collect::<String>()
                    )));
                }
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                jwk_fixed_into(&b64(m, "x")?, &mut x)
                    .map_err(|e| KbsError::invalid(format!("tee-pubkey.x: {e}")))?;
                jwk_fixed_into(&b64(m, "y")?, &mut y)
                    .map_err(|e| KbsError::invalid(format!("tee-pubkey.y: {e}")))?;
                let k = TeePubKey::Ec { x, y };
                // An off-curve point would only fail when a resource is encrypted: refuse it now.
                crate::jwe::check_ec_point(&k.uncompressed_point().unwrap_or_default())?;
                Ok(k)
            }
            "RSA" => {
                if let Some(a) = alg
                    && a != ALG_RSA_OAEP_256
                {
                    return Err(KbsError::invalid(format!(
                        "tee-pubkey.alg: expected {ALG_RSA_OAEP_256} for an RSA key, found {a:?}"
                    )));
                }
                let n = b64(m, "n")?;
                let e = b64(m, "e")?;
                let n = jwk_uint(&n)
                    .map_err(|err| KbsError::invalid(format!("tee-pubkey.n: {err}")))?
                    .to_vec();
                let e = jwk_uint(&e)
                    .map_err(|err| KbsError::invalid(format!("tee-pubkey.e: {err}")))?
                    .to_vec();
                let bits = n.len() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(KbsError::invalid(format!(
                        "tee-pubkey.n: expected an RSA modulus of 2048-8192 bits, found {bits} bits"
                    )));
                }
                let k = TeePubKey::Rsa { n, e };
                crate::jwe::check_rsa(&k)?;
                Ok(k)
            }
            other => Err(KbsError::invalid(format!(
                "tee-pubkey.kty: expected EC or RSA, found {:?}",
                other.chars().take(16).collect::<String>()
            ))),
        }
    }

    /// The JWE `alg` used for this key.
    pub fn alg(&self) -> &'static str {
        match self {
            TeePubKey::Ec { .. } => ALG_ECDH_ES_A256KW,
            TeePubKey::Rsa { .. } => ALG_RSA_OAEP_256,
        }
    }

    /// `04 || x || y` for EC keys.
    pub fn uncompressed_point(&self) -> Option<Vec<u8>> {
        match self {
            TeePubKey::Ec { x, y } => {
                let mut p = Vec::with_capacity(65);
                p.push(4);
                p.extend_from_slice(x);
                p.extend_from_slice(y);
                Some(p)
            }
            TeePubKey::Rsa { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_bad_keys() {
        for bad in [
            json!("x"),
            json!({"kty":"oct"}),
            json!({"kty":"EC","crv":"P-384","x":"AA","y":"AA"}),
            json!({"kty":"EC","crv":"P-256","alg":"RSA-OAEP-256","x":"AA","y":"AA"}),
            // Valid encodings, but not a point on the curve.
            json!({"kty":"EC","crv":"P-256","x":URL_SAFE_NO_PAD.encode([1u8;32]),"y":URL_SAFE_NO_PAD.encode([2u8;32])}),
            json!({"kty":"RSA","alg":"RSA-OAEP-256","n":"AQAB","e":"AQAB"}),
            json!({"kty":"RSA","alg":"RSA1_5","n":"AQAB","e":"AQAB"}),
        ] {
            assert!(TeePubKey::from_jwk(&bad).is_err(), "{bad}");
        }
    }
}
