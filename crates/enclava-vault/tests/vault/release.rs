//! Secure key release: token verification against trusted issuers, release policy evaluation,
//! wrapping key selection, the three wrapping algorithms (unwrapped here with RustCrypto, independently
//! of the vault's aws-lc-rs code) and the signed response.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Duration;
use enclava_token::{Es256Signer, JtiSource, TokenOptions, TokenSigner, issue};
use enclava_vault::keys::release::{
    IssuerKeys, Jwks, ReleaseRequest, Rs256Signer, TrustedIssuer, TrustedIssuers,
    VerifiedAttestation, select_wrapping_key,
};
use enclava_vault::*;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

use super::common::*;
use enclava_vault::keys::release::ReleaseResult;

const ISS: &str = "https://attest.test.example";

fn wrapping_rsa() -> &'static rsa::RsaPrivateKey {
    static K: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    K.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap())
}

fn wrapping_jwk(kid: &str) -> Value {
    let k = wrapping_rsa();
    json!({
        "kty": "RSA", "kid": kid, "key_ops": ["encrypt"],
        "n": URL_SAFE_NO_PAD.encode(k.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(k.e().to_bytes_be()),
    })
}

struct Issuer {
    signer: Es256Signer,
    trusted: TrustedIssuers,
}

fn issuer() -> Issuer {
    let signer = Es256Signer::generate("att-key-1").unwrap();
    let jwks = Jwks::from_signers(&[&signer]).unwrap();
    let trusted = TrustedIssuers::new(vec![TrustedIssuer::new(ISS, IssuerKeys::Jwks(jwks))]);
    Issuer { signer, trusted }
}

fn claims(extra: Value) -> Map<String, Value> {
    let mut m = json!({
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-uvm",
        "x-ms-sevsnpvm-is-debuggable": false,
        "x-ms-sevsnpvm-vmpl": 0,
        "x-ms-sevsnpvm-guestsvn": 7,
        "x-enclava-measurement": "ab".repeat(48),
        "x-ms-isolation-tee": {"x-ms-attestation-type": "sevsnpvm"},
        "x-ms-runtime": {"keys": [wrapping_jwk("wk-1")]},
    });
    if let (Some(o), Value::Object(e)) = (m.as_object_mut(), extra) {
        for (k, v) in e {
            o.insert(k, v);
        }
    }
    m.as_object().cloned().unwrap()
}

fn token(
    s: &dyn TokenSigner,
    iss: &str,
    c: &Map<String, Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut o = TokenOptions::new(iss, now);
    o.jti = JtiSource::Fixed("jti-123".into());
    issue(c, s, &o).unwrap()
}

fn release_signer() -> Rs256Signer {
    Rs256Signer::generate("rel-1")
        .unwrap()
        .with_x5c(vec![STANDARD.encode(b"not-a-real-cert-only-hashed")])
}

fn policy(p: Value) -> KeyReleasePolicy {
    KeyReleasePolicy {
        data: Some(Base64Url(serde_json::to_vec(&p).unwrap())),
        ..Default::default()
    }
}

fn exportable(v: &Vault, name: &str, kty: &str, p: Value) -> KeyBundle {
    v.create_key(
        name,
        &KeyCreateParameters {
            kty: kty.into(),
            key_size: kty.starts_with("RSA").then_some(2048),
            crv: kty.starts_with("EC").then(|| "P-256".to_string()),
            attributes: Some(KeyAttributes {
                exportable: Some(true),
                ..Default::default()
            }),
            release_policy: Some(policy(p)),
            ..Default::default()
        },
    )
    .unwrap()
}

fn allow_all() -> Value {
    json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]})
}

fn req(target: &str, enc: Option<&str>) -> ReleaseRequest {
    ReleaseRequest {
        target: target.into(),
        nonce: Some("n-1".into()),
        enc: enc.map(String::from),
    }
}

fn verified(i: &Issuer, c: &Map<String, Value>, e: &Env) -> VerifiedAttestation {
    i.trusted
        .verify(&token(&i.signer, ISS, c, e.clock.now()), e.clock.now())
        .unwrap()
}

fn release(
    e: &Env,
    name: &str,
    att: &VerifiedAttestation,
    enc: Option<&str>,
) -> Result<ReleaseResult> {
    e.vault.release(
        name,
        None,
        &req("unused-here", enc),
        att,
        &release_signer(),
        "7.6",
    )
}

/// Verify the JWS with the signer's key, return (header, payload).
fn open_jws(jws: &str, signer: &Rs256Signer) -> (Value, Value) {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    let jwk = signer.public_jwk().unwrap();
    let n = URL_SAFE_NO_PAD.decode(jwk.n.unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk.e.unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &sig,
        )
        .expect("JWS signature verifies");
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let p = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    (h, p)
}

/// RSA-OAEP-H on the first modulus-length bytes, then AES-KWP (RFC 5649), with RustCrypto.
fn unwrap_key_hsm(key_hsm_b64: &str, expect_enc: &str) -> Vec<u8> {
    let kh: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(key_hsm_b64).unwrap()).unwrap();
    assert_eq!(kh["schema_version"], "1.0");
    assert_eq!(kh["header"]["alg"], "dir");
    assert_eq!(kh["header"]["enc"], expect_enc);
    assert_eq!(kh["header"]["kid"], "wk-1");
    let ct = URL_SAFE_NO_PAD
        .decode(kh["ciphertext"].as_str().unwrap())
        .unwrap();
    let (head, tail) = ct.split_at(256);
    let sk = wrapping_rsa();
    let aes = match expect_enc {
        "CKM_RSA_AES_KEY_WRAP" => sk.decrypt(rsa::Oaep::new::<sha1::Sha1>(), head),
        "RSA_AES_KEY_WRAP_256" => sk.decrypt(rsa::Oaep::new::<sha2::Sha256>(), head),
        "RSA_AES_KEY_WRAP_384" => sk.decrypt(rsa::Oaep::new::<sha2::Sha384>(), head),
        other => panic!("unexpected enc {other}"),
    }
    .expect("RSA-OAEP unwrap with the expected hash");
    assert_eq!(aes.len(), 32, "a fresh AES-256 key");
    aes_kw::KekAes256::try_from(aes.as_slice())
        .unwrap()
        .unwrap_with_padding_vec(tail)
        .expect("AES-KWP unwrap")
}

#[test]
fn oct_key_release_round_trips_for_every_enc() {
    let e = env();
    let i = issuer();
    let material = [0x5au8; 32];
    e.vault
        .import_key(
            "oct1",
            &KeyImportParameters {
                key: JsonWebKey {
                    kty: Some("oct-HSM".into()),
                    k: Some(SecretBytes::new(material.to_vec())),
                    ..Default::default()
                },
                attributes: Some(KeyAttributes {
                    exportable: Some(true),
                    ..Default::default()
                }),
                release_policy: Some(policy(allow_all())),
                ..Default::default()
            },
        )
        .unwrap();
    let att = verified(&i, &claims(json!({})), &e);
    for (enc, name) in [
        (None, "CKM_RSA_AES_KEY_WRAP"),
        (Some("CKM_RSA_AES_KEY_WRAP"), "CKM_RSA_AES_KEY_WRAP"),
        (Some("RSA_AES_KEY_WRAP_256"), "RSA_AES_KEY_WRAP_256"),
        (Some("RSA_AES_KEY_WRAP_384"), "RSA_AES_KEY_WRAP_384"),
    ] {
        let signer = release_signer();
        let out = e
            .vault
            .release("oct1", None, &req("t", enc), &att, &signer, "7.6")
            .unwrap();
        let (h, p) = open_jws(&out.value, &signer);
        assert_eq!(h["alg"], "RS256");
        assert_eq!(h["kid"], "rel-1");
        assert_eq!(h["x5c"][0], STANDARD.encode(b"not-a-real-cert-only-hashed"));
        use sha2::Digest;
        assert_eq!(
            h["x5t#S256"],
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"not-a-real-cert-only-hashed"))
        );
        assert_eq!(p["request"]["api-version"], "7.6");
        assert_eq!(p["request"]["enc"], name);
        assert_eq!(p["request"]["nonce"], "n-1");
        let k = &p["response"]["key"]["key"];
        assert_eq!(p["request"]["kid"], k["kid"]);
        assert!(
            k["kid"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{BASE}/keys/oct1/"))
        );
        assert_eq!(k["kty"], "oct-HSM");
        assert!(k.get("k").is_none(), "no clear key material");
        assert_eq!(p["response"]["key"]["attributes"]["exportable"], true);
        assert!(p["response"]["key"]["release_policy"]["data"].is_string());
        let back = unwrap_key_hsm(k["key_hsm"].as_str().unwrap(), name);
        assert_eq!(back, material);
    }
}

#[test]
fn rsa_and_ec_keys_release_as_pkcs8_matching_the_public_key() {
    use rsa::pkcs8::DecodePrivateKey;
    let e = env();
    let i = issuer();
    let att = verified(&i, &claims(json!({})), &e);
    let rb = exportable(&e.vault, "rsa1", "RSA-HSM", allow_all());
    let out = release(&e, "rsa1", &att, Some("RSA_AES_KEY_WRAP_256")).unwrap();
    let p = payload(&out.value);
    let k = &p["response"]["key"]["key"];
    assert_eq!(
        k["n"],
        json!(URL_SAFE_NO_PAD.encode(rb.key.n.as_ref().unwrap().as_slice()))
    );
    let der = unwrap_key_hsm(k["key_hsm"].as_str().unwrap(), "RSA_AES_KEY_WRAP_256");
    let sk = rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap();
    assert_eq!(sk.n().to_bytes_be(), rb.key.n.as_ref().unwrap().as_slice());
    assert_eq!(sk.e().to_bytes_be(), rb.key.e.as_ref().unwrap().as_slice());

    let eb = exportable(&e.vault, "ec1", "EC-HSM", allow_all());
    let out = release(&e, "ec1", &att, Some("RSA_AES_KEY_WRAP_384")).unwrap();
    let p = payload(&out.value);
    let k = &p["response"]["key"]["key"];
    assert_eq!(k["crv"], "P-256");
    let der = unwrap_key_hsm(k["key_hsm"].as_str().unwrap(), "RSA_AES_KEY_WRAP_384");
    let sk = p256::SecretKey::from_pkcs8_der(&der).unwrap();
    let pt = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&sk.public_key(), false);
    assert_eq!(&pt.x().unwrap()[..], eb.key.x.as_ref().unwrap().as_slice());
    assert_eq!(&pt.y().unwrap()[..], eb.key.y.as_ref().unwrap().as_slice());
}

/// The payload without signature check (the signer of `release()` is fresh each call).
fn payload(jws: &str) -> Value {
    let p = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

fn denied(r: Result<ReleaseResult>) -> VaultError {
    let err = r.expect_err("release must be denied");
    assert_eq!(err.http_status(), 403, "{err}");
    err
}

#[test]
fn policy_operators_allow_and_deny() {
    let e = env();
    let i = issuer();
    let att = verified(&i, &claims(json!({})), &e);
    let cases: Vec<(Value, bool)> = vec![
        // equals, loose: "false" vs boolean, "0" vs integer, case-insensitive strings
        (
            json!({"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"}),
            true,
        ),
        (json!({"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}), true),
        (
            json!({"claim": "x-ms-compliance-status", "equals": "AZURE-compliant-uvm"}),
            true,
        ),
        (
            json!({"claim": "x-ms-compliance-status", "equals": "azure-compliant-cvm"}),
            false,
        ),
        // nested dotted path
        (
            json!({"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"}),
            true,
        ),
        (
            json!({"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "tdxvm"}),
            false,
        ),
        (json!({"claim": "x-ms-sevsnpvm-vmpl", "notEquals": 1}), true),
        (
            json!({"claim": "x-ms-sevsnpvm-vmpl", "notEquals": 0}),
            false,
        ),
        (
            json!({"claim": "x-ms-sevsnpvm-guestsvn", "greater": 6}),
            true,
        ),
        (
            json!({"claim": "x-ms-sevsnpvm-guestsvn", "greater": 7}),
            false,
        ),
        (
            json!({"claim": "x-ms-sevsnpvm-guestsvn", "greaterOrEquals": "7"}),
            true,
        ),
        (
            json!({"claim": "x-ms-sevsnpvm-guestsvn", "greaterOrEquals": 8}),
            false,
        ),
        (json!({"claim": "x-ms-sevsnpvm-guestsvn", "less": 8}), true),
        (json!({"claim": "x-ms-sevsnpvm-guestsvn", "less": 7}), false),
        (
            json!({"claim": "x-ms-sevsnpvm-guestsvn", "lessOrEquals": 7}),
            true,
        ),
        (
            json!({"claim": "x-ms-sevsnpvm-guestsvn", "lessOrEquals": 6}),
            false,
        ),
        (
            json!({"claim": "x-enclava-measurement", "exists": true}),
            true,
        ),
        (json!({"claim": "x-ms-missing", "exists": true}), false),
        // a missing claim is false
        (json!({"claim": "x-ms-missing", "equals": "x"}), false),
        // nested anyOf / allOf
        (
            json!({"anyOf": [{"claim": "x-ms-attestation-type", "equals": "tdxvm"},
                          {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}),
            true,
        ),
        (
            json!({"allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
                          {"claim": "x-ms-sevsnpvm-vmpl", "equals": "1"}]}),
            false,
        ),
    ];
    for (n, (cond, allowed)) in cases.into_iter().enumerate() {
        let name = format!("op{n}");
        let p = json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [cond.clone()]}]});
        exportable(&e.vault, &name, "oct-HSM", p);
        let r = release(&e, &name, &att, None);
        if allowed {
            assert!(r.is_ok(), "{cond} should allow: {:?}", r.err());
        } else {
            let err = denied(r);
            assert_eq!(err.code(), "Forbidden");
            assert_eq!(
                err.inner_code(),
                Some("ReleasePolicyNotSatisfied"),
                "{cond}"
            );
        }
    }
}

#[test]
fn denial_names_the_failed_condition_and_authority_is_normalised() {
    let e = env();
    let i = issuer();
    let att = verified(&i, &claims(json!({})), &e);
    let p = json!({"version": "1.0.0", "anyOf": [{"authority": "HTTPS://ATTEST.test.example/", "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": "x-ms-sevsnpvm-vmpl", "equals": 2}]}]});
    exportable(&e.vault, "deny1", "oct-HSM", p);
    let msg = denied(release(&e, "deny1", &att, None)).to_string();
    assert!(msg.contains("x-ms-sevsnpvm-vmpl"), "{msg}");
    assert!(
        msg.contains('2') && msg.contains('0'),
        "expected and found are named: {msg}"
    );
    assert!(
        !msg.contains("x-ms-attestation-type"),
        "only failed conditions: {msg}"
    );

    // Same policy with the authority of another issuer: no entry applies.
    let p = json!({"version": "1.0.0", "anyOf": [{"authority": "https://other.example", "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]});
    exportable(&e.vault, "deny2", "oct-HSM", p);
    let msg = denied(release(&e, "deny2", &att, None)).to_string();
    assert!(msg.contains("other.example"), "{msg}");

    // Normalised authority with a passing condition releases.
    let p = json!({"version": "1.0.0", "anyOf": [{"authority": "https://Attest.Test.Example/", "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]});
    exportable(&e.vault, "ok1", "oct-HSM", p);
    release(&e, "ok1", &att, None).unwrap();
}

#[test]
fn non_exportable_and_disabled_keys_are_not_released() {
    let e = env();
    let i = issuer();
    let att = verified(&i, &claims(json!({})), &e);
    create(&e.vault, "plain", "RSA", Some(2048), None);
    let err = denied(release(&e, "plain", &att, None));
    assert_eq!(err.inner_code(), Some("KeyNotExportable"));
    exportable(&e.vault, "dis", "oct-HSM", allow_all());
    e.vault
        .update_key(
            "dis",
            None,
            &KeyUpdateParameters {
                attributes: Some(KeyAttributes {
                    enabled: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        denied(release(&e, "dis", &att, None)).inner_code(),
        Some("KeyDisabled")
    );
    let bad_enc = e
        .vault
        .release(
            "dis",
            None,
            &req("t", Some("RSA-OAEP")),
            &att,
            &release_signer(),
            "7.6",
        )
        .unwrap_err();
    assert_eq!(bad_enc.http_status(), 400);
    assert!(matches!(
        release(&e, "nope", &att, None),
        Err(VaultError::KeyNotFound { .. })
    ));
}

#[test]
fn token_checks() {
    let e = env();
    let i = issuer();
    let now = e.clock.now();
    let c = claims(json!({}));
    let code = |r: Result<VerifiedAttestation>| {
        let err = r.expect_err("token must be rejected");
        (err.http_status(), err.inner_code(), err.to_string())
    };
    // Good token.
    let v = i
        .trusted
        .verify(&token(&i.signer, ISS, &c, now), now)
        .unwrap();
    assert_eq!(v.issuer, ISS);
    assert_eq!(v.jti(), Some("jti-123"));
    assert_eq!(v.measurement(), Some("ab".repeat(48).as_str()));
    assert!(v.audit_summary().contains("jti=jti-123"));
    // Expired (5 min lifetime + 60 s leeway).
    let t = token(&i.signer, ISS, &c, now);
    let (s, inner, m) = code(i.trusted.verify(&t, now + Duration::minutes(7)));
    assert_eq!((s, inner), (403, Some("InvalidAttestationToken")));
    assert!(m.contains("expired"), "{m}");
    // Not yet valid.
    let (s, _, m) = code(i.trusted.verify(&t, now - Duration::minutes(5)));
    assert!(s == 403 && m.contains("not yet valid"), "{m}");
    // Untrusted issuer.
    let (s, inner, m) = code(
        i.trusted
            .verify(&token(&i.signer, "https://evil.example", &c, now), now),
    );
    assert_eq!((s, inner), (403, Some("UntrustedAttestationIssuer")));
    assert!(m.contains("evil.example") && m.contains(ISS), "{m}");
    // Trusted issuer name, untrusted key (same kid, different key): bad signature.
    let rogue = Es256Signer::generate("att-key-1").unwrap();
    let (s, _, m) = code(i.trusted.verify(&token(&rogue, ISS, &c, now), now));
    assert!(s == 403 && m.contains("signature"), "{m}");
    // Unknown kid.
    let rogue = Es256Signer::generate("other-kid").unwrap();
    let (s, _, m) = code(i.trusted.verify(&token(&rogue, ISS, &c, now), now));
    assert!(s == 403 && m.contains("kid"), "{m}");
    // alg none and HS256, with otherwise valid claims.
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({
        "iss": ISS, "exp": now.timestamp() + 100, "x-ms-runtime": {"keys": [wrapping_jwk("wk-1")]}
    })).unwrap());
    for alg in ["none", "HS256"] {
        let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"att-key-1"}}"#));
        let t = format!("{h}.{body}.{}", URL_SAFE_NO_PAD.encode(b"sig"));
        let (s, _, m) = code(i.trusted.verify(&t, now));
        assert_eq!(s, 403, "{alg}: {m}");
        assert!(m.to_lowercase().contains(&alg.to_lowercase()), "{m}");
    }
    // Garbage is a bad parameter.
    assert_eq!(code(i.trusted.verify("not-a-jwt", now)).0, 400);
    // Nothing trusted at all.
    let none = TrustedIssuers::default();
    let (_, _, m) = code(none.verify(&token(&i.signer, ISS, &c, now), now));
    assert!(m.contains("no trusted issuers"), "{m}");
}

#[test]
fn local_issuer_and_pinned_keys() {
    let e = env();
    let now = e.clock.now();
    let c = claims(json!({}));
    let local = Es256Signer::generate("local-1").unwrap();
    let t = TrustedIssuers::default();
    let tok = token(&local, "https://enclava.local:8443", &c, now);
    assert!(t.verify(&tok, now).is_err());
    t.set_local(
        "https://enclava.local:8443/",
        Jwks::from_signers(&[&local]).unwrap(),
    );
    assert_eq!(
        t.verify(&tok, now).unwrap().issuer,
        "https://enclava.local:8443"
    );
    t.clear_local();
    assert!(t.verify(&tok, now).is_err());
    // A pinned JWK (a single key document).
    let doc = serde_json::to_vec(&local.public_jwk().unwrap()).unwrap();
    let keys = IssuerKeys::from_json(&doc).unwrap();
    assert!(matches!(keys, IssuerKeys::Pinned(_)));
    t.add(TrustedIssuer::new("https://enclava.local:8443", keys));
    assert!(t.verify(&tok, now).is_ok());
    assert!(IssuerKeys::from_json(b"{\"keys\":[]}").is_err());
    assert!(IssuerKeys::from_json(b"nope").is_err());
}

#[test]
fn wrapping_key_selection() {
    let rsa = wrapping_jwk("good");
    let mut no_kid = wrapping_jwk("x");
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut sig_only = wrapping_jwk("sig");
    sig_only["key_ops"] = json!(["verify"]);
    let mut key_use = wrapping_jwk("use-enc");
    key_use.as_object_mut().unwrap().remove("key_ops");
    key_use["key_use"] = json!("enc");
    let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "key_ops": ["encrypt"], "x": "AA", "y": "AA"});

    let pick = |v: Value| select_wrapping_key(v.as_object().unwrap());
    // First suitable key wins; unsuitable ones before it are skipped.
    let w = pick(json!({"x-ms-runtime": {"keys": [ec, no_kid, sig_only, rsa, key_use]}})).unwrap();
    assert_eq!(
        (w.kid.as_str(), w.location.as_str()),
        ("good", "x-ms-runtime.keys[3]")
    );
    // key_use "enc" counts.
    let w = pick(json!({"x-ms-runtime": {"keys": [key_use.clone(), rsa.clone()]}})).unwrap();
    assert_eq!(w.kid, "use-enc");
    // Azure CVM: top level first, then x-ms-isolation-tee.
    let w = pick(json!({"x-ms-runtime": {"keys": [rsa.clone()]},
                        "x-ms-isolation-tee": {"x-ms-runtime": {"keys": [key_use.clone()]}}}))
    .unwrap();
    assert_eq!(w.kid, "good");
    let w = pick(json!({"x-ms-runtime": {"keys": [sig_only.clone()]},
                        "x-ms-isolation-tee": {"x-ms-runtime": {"keys": [key_use.clone()]}}}))
    .unwrap();
    assert_eq!(w.location, "x-ms-isolation-tee.x-ms-runtime.keys[0]");
    // None: a precise 400.
    let err = pick(json!({"x-ms-runtime": {"keys": [ec, sig_only]}})).unwrap_err();
    assert_eq!(err.http_status(), 400);
    let m = err.to_string();
    assert!(
        m.contains("x-ms-runtime.keys[0]: kty \"EC\"")
            && m.contains("x-ms-runtime.keys[1]: neither"),
        "{m}"
    );
    let m = pick(json!({})).unwrap_err().to_string();
    assert!(m.contains("no x-ms-runtime.keys claim"), "{m}");
    // A selected key with a bad modulus is an error, not skipped.
    let mut bad = wrapping_jwk("bad");
    bad["n"] = json!("***");
    assert_eq!(
        pick(json!({"x-ms-runtime": {"keys": [bad, rsa]}}))
            .unwrap_err()
            .http_status(),
        400
    );
}

#[test]
fn release_without_wrapping_key_is_a_bad_parameter() {
    let e = env();
    let i = issuer();
    exportable(&e.vault, "nowk", "oct-HSM", allow_all());
    let mut c = claims(json!({}));
    c.remove("x-ms-runtime");
    let att = verified(&i, &c, &e);
    let err = release(&e, "nowk", &att, None).unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("x-ms-runtime.keys"), "{err}");
    // The policy is checked before the wrapping key: a denied request says so.
    exportable(
        &e.vault,
        "nowk2",
        "oct-HSM",
        json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [{"claim": "x", "equals": "y"}]}]}),
    );
    assert_eq!(
        release(&e, "nowk2", &att, None).unwrap_err().http_status(),
        403
    );
}

/// Row integrity (issue 9 item 9): a release policy loosened in the database (the key version
/// row edited, its record MAC kept) is refused instead of evaluated, so nothing is released; a
/// version row moved under another key's name is refused the same way.
#[test]
fn release_policy_edited_in_the_database_is_refused() {
    use enclava_store::Store;
    let e = env();
    let i = issuer();
    // Releasable only to non-debuggable TEEs; the attestation says debuggable: denied.
    let strict = json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"}]}]});
    let b = exportable(&e.vault, "guarded", "oct-HSM", strict);
    let att = verified(
        &i,
        &claims(json!({"x-ms-sevsnpvm-is-debuggable": true})),
        &e,
    );
    let denied = release(&e, "guarded", &att, None).unwrap_err();
    assert_eq!(denied.http_status(), 403, "{denied}");

    let row_key = format!("guarded/{}", version_of(&b));
    let row = e
        .store
        .get(enclava_store::Table::KeyVersions, &row_key)
        .unwrap()
        .unwrap();
    let mut j: Value = serde_json::from_slice(&row).unwrap();
    j["release_policy"]["data"] =
        json!(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&allow_all()).unwrap()));
    let put = |key: &str, value: Vec<u8>| {
        e.store
            .transact(vec![enclava_store::Op::Put {
                table: enclava_store::Table::KeyVersions,
                key: key.into(),
                value,
            }])
            .unwrap()
    };
    put(&row_key, serde_json::to_vec(&j).unwrap());
    let refused = release(&e, "guarded", &att, None).unwrap_err();
    assert_eq!(refused.http_status(), 500, "{refused}");
    assert!(refused.to_string().contains("integrity"), "{refused}");

    // The untouched row moved under another exportable key with an allow-all policy's name.
    put(&row_key, row.clone());
    let open = exportable(&e.vault, "open", "oct-HSM", allow_all());
    let open_row_key = format!("open/{}", version_of(&open));
    put(&open_row_key, row);
    let refused = release(&e, "open", &att, None).unwrap_err();
    assert_eq!(refused.http_status(), 500, "{refused}");
}
