//! Key Vault SDK compatibility over real HTTPS (issue 10, "Key Vault SDKs" items 2-5): the key
//! attestation routes, version listings of unknown names, AES-CBC with `aad`, the P-521 and
//! P-256K curves. The vault-level checks against independent implementations are in
//! crates/enclava-vault/tests/vault/kv_compat.rs; the SDKs themselves in tests/js/keyvault and
//! tests/python.

mod common;

use common::*;
use serde_json::{Value, json};

const V: &str = "api-version=7.6";

fn version_of(kid: &Value) -> String {
    kid.as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// `GET /keys/{name}/attestation` (no version) used to be routed as version "attestation" (404).
/// Both forms now reach key attestation: 501 naming what is missing for an existing key,
/// KeyNotFound for a missing one, 400 before api-version 7.6 (which introduced it). A key literally
/// named "attestation" is still an ordinary key.
#[test]
fn key_attestation_routes() {
    let t = start_dev();
    let a = t.admin_token();
    let r = t.post(
        &format!("/keys/k/create?{V}"),
        Some(&a),
        &json!({"kty": "EC", "crv": "P-256"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ver = version_of(&r.body["key"]["kid"]);
    for path in [
        format!("/keys/k/attestation?{V}"),
        format!("/keys/k/{ver}/attestation?{V}"),
        "/keys/k/attestation?api-version=2025-07-01".to_string(),
    ] {
        let r = t.get(&path, Some(&a));
        assert_eq!(r.status, 501, "{path}: {}", r.text);
        assert_eq!(r.code(), "NotImplemented", "{path}");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("no HSM attestation statement or certificate chain"),
            "{path}: {msg}"
        );
    }
    let r = t.get(&format!("/keys/missing/attestation?{V}"), Some(&a));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.code(), "KeyNotFound");
    let r = t.get(
        &format!("/keys/k/{}/attestation?{V}", "0".repeat(32)),
        Some(&a),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = t.get("/keys/k/attestation?api-version=7.5", Some(&a));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "BadParameter");
    assert_eq!(
        r.body["error"]["message"],
        "key attestation requires api-version 7.6 or later, found 7.5"
    );
    // Unauthenticated: the challenge, not a hint about the route.
    assert_eq!(t.get(&format!("/keys/k/attestation?{V}"), None).status, 401);
    // A key named "attestation" is created, read and attested like any other.
    let r = t.post(
        &format!("/keys/attestation/create?{V}"),
        Some(&a),
        &json!({"kty": "RSA"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.get(&format!("/keys/attestation?{V}"), Some(&a));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["kty"], "RSA");
    let r = t.get(&format!("/keys/attestation/attestation?{V}"), Some(&a));
    assert_eq!(r.status, 501, "{}", r.text);
}

/// Key Vault answers the versions of a key or secret that does not exist with 200 and an empty
/// list; so does Enclava now (it answered 404).
#[test]
fn versions_of_unknown_names_are_empty_lists() {
    let t = start_dev();
    let a = t.admin_token();
    for path in [
        "/keys/no-such-key/versions",
        "/secrets/no-such-secret/versions",
    ] {
        let r = t.get(&format!("{path}?{V}"), Some(&a));
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.body, json!({"value": [], "nextLink": null}), "{path}");
    }
    // Names are still validated.
    let r = t.get(&format!("/keys/bad_name!/versions?{V}"), Some(&a));
    assert_eq!(r.status, 400, "{}", r.text);
}

/// A128/192/256CBC(PAD) requests with `aad` succeed (Key Vault ignores `aad` for CBC); the
/// ciphertext is the same as without it.
#[test]
fn aes_cbc_with_aad_is_served() {
    let t = start_dev();
    let a = t.admin_token();
    let r = t.post(
        &format!("/keys/aes/create?{V}"),
        Some(&a),
        &json!({"kty": "oct-HSM", "key_size": 256}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let iv = "AAECAwQFBgcICQoLDA0ODw";
    let enc = |aad: Option<&str>| {
        let mut body = json!({"alg": "A256CBCPAD", "value": "aGVsbG8", "iv": iv});
        if let Some(aad) = aad {
            body["aad"] = json!(aad);
        }
        let r = t.post(&format!("/keys/aes/encrypt?{V}"), Some(&a), &body);
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    };
    let plain = enc(None);
    let with_aad = enc(Some("aWdub3JlZA"));
    assert_eq!(plain["value"], with_aad["value"]);
    assert!(with_aad.get("aad").is_none(), "{with_aad}");
    let r = t.post(
        &format!("/keys/aes/decrypt?{V}"),
        Some(&a),
        &json!({"alg": "A256CBCPAD", "value": with_aad["value"], "iv": iv, "aad": "b3RoZXI"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"], "aGVsbG8");
}

/// P-521 (ES512) and P-256K (ES256K) keys over HTTP: created, published as JWKs of the curve's
/// fixed length, sign and verify.
#[test]
fn p521_and_p256k_over_http() {
    let t = start_dev();
    let a = t.admin_token();
    for (crv, alg, len, digest_len) in [("P-521", "ES512", 66, 64), ("P-256K", "ES256K", 32, 32)] {
        let name = alg.to_lowercase();
        let r = t.post(
            &format!("/keys/{name}/create?{V}"),
            Some(&a),
            &json!({"kty": "EC-HSM", "crv": crv}),
        );
        assert_eq!(r.status, 200, "{crv}: {}", r.text);
        assert_eq!(r.body["key"]["crv"], crv);
        let x = r.body["key"]["x"].as_str().unwrap();
        assert_eq!(
            x.len(),
            (len * 4usize).div_ceil(3),
            "{crv}: x is {len} bytes"
        );
        let digest = "A".repeat((digest_len * 4usize).div_ceil(3));
        let r = t.post(
            &format!("/keys/{name}/sign?{V}"),
            Some(&a),
            &json!({"alg": alg, "value": digest}),
        );
        assert_eq!(r.status, 200, "{crv}: {}", r.text);
        let sig = r.body["value"].clone();
        let r = t.post(
            &format!("/keys/{name}/verify?{V}"),
            Some(&a),
            &json!({"alg": alg, "digest": digest, "value": sig}),
        );
        assert_eq!(r.status, 200, "{crv}: {}", r.text);
        assert_eq!(r.body["value"], true, "{crv}");
    }
}
