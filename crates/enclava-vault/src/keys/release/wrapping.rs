//! Choosing the key the released material is wrapped to: the FIRST RSA JWK in the token claim
//! `x-ms-runtime.keys` that has a kid and allows encryption (`key_use` / `use` = `enc`, or
//! `key_ops` containing `encrypt`). Azure CVM tokens carry the vTPM runtime keys at the top level
//! and the hardware ones under `x-ms-isolation-tee.x-ms-runtime.keys`; the top-level list is
//! searched first, then the isolation-TEE one.

use serde_json::{Map, Value};

use crate::b64::Base64Url;
use crate::error::{Result, VaultError};
use crate::model::JsonWebKey;

/// The selected wrapping key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappingKey {
    /// Its kid (goes into `key_hsm.header.kid`).
    pub kid: String,
    /// Where it was found, e.g. `x-ms-runtime.keys[0]`.
    pub location: String,
    /// The RSA public key (n, e).
    pub jwk: JsonWebKey,
}

const LISTS: [(&[&str], &str); 2] = [
    (&["x-ms-runtime", "keys"], "x-ms-runtime.keys"),
    (
        &["x-ms-isolation-tee", "x-ms-runtime", "keys"],
        "x-ms-isolation-tee.x-ms-runtime.keys",
    ),
];

fn walk<'a>(claims: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(*first)?;
    for seg in rest {
        v = v.get(*seg)?;
    }
    Some(v)
}

fn allows_encryption(k: &Map<String, Value>) -> bool {
    let use_enc = ["key_use", "use"]
        .iter()
        .any(|m| k.get(*m).and_then(Value::as_str) == Some("enc"));
    let ops_encrypt = k
        .get("key_ops")
        .and_then(Value::as_array)
        .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("encrypt")));
    use_enc || ops_encrypt
}

/// Why a listed key was skipped (for the error message).
fn skip_reason(k: &Value) -> Option<String> {
    let Some(k) = k.as_object() else {
        return Some("not a JSON object".into());
    };
    match k.get("kty").and_then(Value::as_str) {
        Some("RSA") | Some("RSA-HSM") => {}
        Some(other) => {
            return Some(format!(
                "kty {:?}, expected RSA",
                other.chars().take(16).collect::<String>()
            ));
        }
        None => return Some("no kty".into()),
    }
    match k.get("kid").and_then(Value::as_str) {
        Some(kid) if !kid.is_empty() => {}
        _ => return Some("no kid".into()),
    }
    if !allows_encryption(k) {
        return Some("neither key_use \"enc\" nor key_ops containing \"encrypt\"".into());
    }
    None
}

fn b64_member(k: &Map<String, Value>, m: &str, at: &str) -> Result<Base64Url> {
    let s = k.get(m).and_then(Value::as_str).ok_or_else(|| {
        VaultError::bad(format!(
            "invalid wrapping key {at}: expected an RSA JWK with base64url members n and e, found no {m:?}"
        ))
    })?;
    crate::b64::decode(s).map(Base64Url).map_err(|_| {
        VaultError::bad(format!(
            "invalid wrapping key {at}: member {m:?} is not base64url"
        ))
    })
}

/// Select the wrapping key from verified token claims. No usable key is a `BadParameter` error
/// that says where it looked and why each listed key was skipped.
pub fn select_wrapping_key(claims: &Map<String, Value>) -> Result<WrappingKey> {
    let mut seen = Vec::new();
    for (path, name) in LISTS {
        let Some(list) = walk(claims, path) else {
            seen.push(format!("no {name} claim"));
            continue;
        };
        let Some(list) = list.as_array() else {
            seen.push(format!("{name} is not an array"));
            continue;
        };
        if list.is_empty() {
            seen.push(format!("{name} is empty"));
        }
        for (i, k) in list.iter().enumerate() {
            let at = format!("{name}[{i}]");
            if let Some(why) = skip_reason(k) {
                if seen.len() < 8 {
                    seen.push(format!("{at}: {why}"));
                }
                continue;
            }
            let Some(obj) = k.as_object() else { continue };
            let kid = obj
                .get("kid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let jwk = JsonWebKey {
                kid: Some(kid.clone()),
                kty: Some("RSA".into()),
                n: Some(b64_member(obj, "n", &at)?),
                e: Some(b64_member(obj, "e", &at)?),
                ..Default::default()
            };
            return Ok(WrappingKey {
                kid,
                location: at,
                jwk,
            });
        }
    }
    Err(VaultError::bad(format!(
        "the attestation token carries no key to wrap the released key to: expected an RSA JWK with a kid and key_use \"enc\" or key_ops containing \"encrypt\" in x-ms-runtime.keys (or x-ms-isolation-tee.x-ms-runtime.keys), found: {}",
        seen.join("; ")
    )))
}
