use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Duration;
use serde_json::{Map, Value, json};

use super::fixtures::now;
use crate::jwt::sign_compact;
use crate::{
    Alg, Es256Signer, Expectations, Header, JtiSource, Jwk, Jwks, Rs256Signer, TokenError,
    TokenOptions, TokenSigner, decode_unverified, issue, verify,
};

const ISS: &str = "https://attest.example.test";

fn es_pkcs8() -> Vec<u8> {
    match EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()) {
        Ok(d) => d.as_ref().to_vec(),
        Err(_) => panic!("P-256 key generation failed"),
    }
}

fn rsa_pkcs8() -> Vec<u8> {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().unwrap();
    der.as_ref().to_vec()
}

fn es_signer(kid: &str) -> Es256Signer {
    Es256Signer::from_pkcs8(kid, &es_pkcs8()).unwrap()
}

fn body() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("x-ms-attestation-type".into(), json!("sevsnpvm"));
    m.insert("x-ms-sevsnpvm-vmpl".into(), json!(0));
    m
}

fn opts() -> TokenOptions {
    TokenOptions::new(ISS, now())
}

fn expect() -> Expectations {
    Expectations::new(ISS, now())
}

fn jwks_of(signers: &[&dyn TokenSigner]) -> Jwks {
    Jwks::from_signers(signers).unwrap()
}

fn code(r: Result<crate::VerifiedToken, TokenError>) -> &'static str {
    match r {
        Ok(_) => panic!("token unexpectedly verified"),
        Err(e) => e.code(),
    }
}

/// Re-encode a token with a modified header (signature kept).
fn with_header(token: &str, f: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut parts = token.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut header: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    f(&mut header);
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    format!("{h}.{p}.{s}")
}

/// A token signed by `signer` over exactly these claims (no registered claims added).
fn raw_token(signer: &dyn TokenSigner, claims: Value) -> String {
    let Value::Object(m) = claims else {
        panic!("claims must be an object")
    };
    sign_compact(&Header::for_signer(signer, None), &m, signer).unwrap()
}

#[test]
fn es256_round_trip() {
    let signer = es_signer("k1");
    let mut o = opts();
    o.nonce = Some("nonce-1".into());
    o.audience = Some("vault".into());
    let token = issue(&body(), &signer, &o).unwrap();
    assert_eq!(token.split('.').count(), 3);
    assert!(!token.contains('='), "base64url without padding");
    let jwks = jwks_of(&[&signer]);
    let mut e = expect();
    e.audience = Some("vault".into());
    let v = verify(&token, &jwks, &e).unwrap();
    assert_eq!(v.header.alg, "ES256");
    assert_eq!(v.header.kid.as_deref(), Some("k1"));
    assert_eq!(v.header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        v.header.jku.as_deref(),
        Some("https://attest.example.test/certs")
    );
    assert_eq!(v.claims["iss"], json!(ISS));
    assert_eq!(v.claims["iat"], json!(now().timestamp()));
    assert_eq!(v.claims["nbf"], json!(now().timestamp()));
    assert_eq!(v.claims["exp"], json!(now().timestamp() + 300));
    assert_eq!(v.claims["aud"], json!("vault"));
    assert_eq!(v.claims["nonce"], json!("nonce-1"));
    assert_eq!(v.claims["x-ms-sevsnpvm-vmpl"], json!(0));
    let jti = v.claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 64);
    assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
    // Random jti: two tokens differ.
    let t2 = issue(&body(), &signer, &o).unwrap();
    let v2 = verify(&t2, &jwks, &e).unwrap();
    assert_ne!(v2.claims["jti"], v.claims["jti"]);
}

#[test]
fn es256_signature_checks_out_independently() {
    let pkcs8 = es_pkcs8();
    let signer = Es256Signer::from_pkcs8("k1", &pkcs8).unwrap();
    let token = issue(&body(), &signer, &opts()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert_eq!(sig.len(), 64, "JOSE r || s");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
        .verify(input.as_bytes(), &sig)
        .unwrap();
    // And the exported JWK carries that same point.
    let jwk = signer.public_jwk().unwrap();
    let x = URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk.y.unwrap()).unwrap();
    assert_eq!([&[4u8][..], &x, &y].concat(), pair.public_key().as_ref());
}

#[test]
fn rs256_round_trip() {
    let signer = Rs256Signer::from_pkcs8("maa-1", &rsa_pkcs8()).unwrap();
    let token = issue(&body(), &signer, &opts()).unwrap();
    let jwks = jwks_of(&[&signer]);
    let v = verify(&token, &jwks, &expect()).unwrap();
    assert_eq!(v.header.alg, "RS256");
    let sig = URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap();
    assert_eq!(sig.len(), 256);
    let jwk = &jwks.keys[0];
    assert_eq!(jwk.kty, "RSA");
    assert_eq!(jwk.e.as_deref(), Some("AQAB"));
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(jwk.n.as_deref().unwrap())
            .unwrap()
            .len(),
        256
    );
    // RS256 only when allowed.
    let mut e = expect();
    e.allowed_algs = vec![Alg::ES256];
    assert_eq!(code(verify(&token, &jwks, &e)), "alg_not_allowed");
}

#[test]
fn jwk_and_jwks_export() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let v = serde_json::to_value(&jwks).unwrap();
    let k = &v["keys"][0];
    assert_eq!(k["kty"], json!("EC"));
    assert_eq!(k["crv"], json!("P-256"));
    assert_eq!(k["kid"], json!("k1"));
    assert_eq!(k["use"], json!("sig"));
    assert_eq!(k["alg"], json!("ES256"));
    assert_eq!(k["x"].as_str().unwrap().len(), 43);
    assert_eq!(k["y"].as_str().unwrap().len(), 43);
    assert!(k.get("d").is_none() && k.get("x5c").is_none());
    // Round trip through JSON (what a relying party does with /certs).
    let back: Jwks = serde_json::from_value(v).unwrap();
    assert_eq!(back, jwks);
    let token = issue(&body(), &signer, &opts()).unwrap();
    verify(&token, &back, &expect()).unwrap();
}

#[test]
fn tampered_payload_is_rejected() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let token = issue(&body(), &signer, &opts()).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims.insert("x-ms-sevsnpvm-vmpl".into(), json!(3));
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let e = verify(&parts.join("."), &jwks, &expect()).unwrap_err();
    assert_eq!(e.code(), "bad_signature");
    assert!(!e.to_string().contains(&parts[1]), "never echo the token");
}

#[test]
fn alg_none_is_rejected_in_any_spelling() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let token = issue(&body(), &signer, &opts()).unwrap();
    for none in ["none", "None", "NONE"] {
        let t = with_header(&token, |h| {
            h.insert("alg".into(), json!(none));
        });
        // Unsigned form: empty signature part.
        let unsigned = format!("{}.", t.rsplit_once('.').unwrap().0);
        assert_eq!(code(verify(&unsigned, &jwks, &expect())), "alg_none");
        assert_eq!(code(verify(&t, &jwks, &expect())), "alg_none");
    }
}

#[test]
fn hs256_with_public_key_as_secret_is_rejected() {
    let signer = Rs256Signer::generate("maa-1").unwrap();
    let jwks = jwks_of(&[&signer]);
    let token = issue(&body(), &signer, &opts()).unwrap();
    // The classic confusion: HMAC over the input with the public key (JWK JSON) as secret.
    let t = with_header(&token, |h| {
        h.insert("alg".into(), json!("HS256"));
    });
    let input = t.rsplit_once('.').unwrap().0;
    let secret = serde_json::to_vec(&jwks.keys[0]).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    let e = verify(&forged, &jwks, &expect()).unwrap_err();
    assert_eq!(e.code(), "alg_symmetric");
    assert!(e.to_string().contains("HS256") && e.to_string().contains("RS256"));
    for alg in ["HS384", "HS512", "hs256"] {
        let t = with_header(&token, |h| {
            h.insert("alg".into(), json!(alg));
        });
        assert_eq!(code(verify(&t, &jwks, &expect())), "alg_symmetric");
    }
}

#[test]
fn alg_must_fit_the_key() {
    let es = es_signer("k1");
    let rs = Rs256Signer::generate("r1").unwrap();
    let jwks = jwks_of(&[&es, &rs]);
    // ES256 token relabelled RS256 (kid still the EC key).
    let token = issue(&body(), &es, &opts()).unwrap();
    let t = with_header(&token, |h| {
        h.insert("alg".into(), json!("RS256"));
    });
    let e = verify(&t, &jwks, &expect()).unwrap_err();
    assert_eq!(e.code(), "alg_key_mismatch");
    assert!(e.to_string().contains("expected a RSA key"), "{e}");
    // ...and pointed at the RSA key: the signature fails.
    let t = with_header(&t, |h| {
        h.insert("kid".into(), json!("r1"));
    });
    assert_eq!(code(verify(&t, &jwks, &expect())), "bad_signature");
    // A key that declares another alg.
    let mut k = es.public_jwk().unwrap();
    k.alg = Some("ES384".into());
    assert_eq!(
        code(verify(&token, &Jwks::new(vec![k]), &expect())),
        "alg_key_mismatch"
    );
    // An encryption key is not a signature key.
    let mut k = es.public_jwk().unwrap();
    k.use_ = Some("enc".into());
    assert_eq!(code(verify(&token, &k, &expect())), "alg_key_mismatch");
    // Unsupported algs.
    let t = with_header(&token, |h| {
        h.insert("alg".into(), json!("PS256"));
    });
    assert_eq!(code(verify(&t, &jwks, &expect())), "alg_unsupported");
}

#[test]
fn time_checks() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let token = issue(&body(), &signer, &opts()).unwrap();
    let mut e = expect();
    e.leeway = std::time::Duration::from_secs(0);
    // Valid until exp (exclusive).
    e.now = now() + Duration::seconds(299);
    verify(&token, &jwks, &e).unwrap();
    e.now = now() + Duration::seconds(300);
    let err = verify(&token, &jwks, &e).unwrap_err();
    assert_eq!(err.code(), "token_expired");
    assert!(
        err.to_string()
            .contains(&format!("exp {}", now().timestamp() + 300))
    );
    // Leeway extends it.
    e.leeway = std::time::Duration::from_secs(30);
    verify(&token, &jwks, &e).unwrap();
    e.now = now() + Duration::seconds(330);
    assert_eq!(code(verify(&token, &jwks, &e)), "token_expired");
    // Not yet valid.
    e.leeway = std::time::Duration::from_secs(0);
    e.now = now() - Duration::seconds(1);
    assert_eq!(code(verify(&token, &jwks, &e)), "token_not_yet_valid");
    e.leeway = std::time::Duration::from_secs(5);
    verify(&token, &jwks, &e).unwrap();
}

#[test]
fn exp_is_required_and_numeric() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let t = raw_token(&signer, json!({"iss": ISS}));
    let e = verify(&t, &jwks, &expect()).unwrap_err();
    assert_eq!(e.code(), "claim_missing");
    let t = raw_token(&signer, json!({"iss": ISS, "exp": "tomorrow"}));
    let e = verify(&t, &jwks, &expect()).unwrap_err();
    assert_eq!(e.code(), "claim_invalid");
    assert!(e.to_string().contains("found a string"), "{e}");
    // Fractional NumericDate is accepted.
    let exp = now().timestamp() as f64 + 10.5;
    let t = raw_token(&signer, json!({"iss": ISS, "exp": exp}));
    verify(&t, &jwks, &expect()).unwrap();
}

#[test]
fn issuer_checks() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let token = issue(&body(), &signer, &opts()).unwrap();
    let mut e = expect();
    e.issuer = "https://evil.example.test".into();
    let err = verify(&token, &jwks, &e).unwrap_err();
    assert_eq!(err.code(), "wrong_issuer");
    let msg = err.to_string();
    assert!(msg.contains("evil.example.test") && msg.contains("attest.example.test"));
    // One trailing slash is not a different issuer.
    e.issuer = format!("{ISS}/");
    verify(&token, &jwks, &e).unwrap();
    // No iss at all.
    let t = raw_token(&signer, json!({"exp": now().timestamp() + 60}));
    assert_eq!(code(verify(&t, &jwks, &expect())), "wrong_issuer");
    // A very long issuer is shortened in the message.
    let long = format!("https://{}", "a".repeat(5000));
    let t = raw_token(&signer, json!({"iss": long, "exp": now().timestamp() + 60}));
    let err = verify(&t, &jwks, &expect()).unwrap_err();
    assert!(err.to_string().len() < 300);
}

#[test]
fn audience_checks() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let mut o = opts();
    o.audience = Some("vault-a".into());
    let token = issue(&body(), &signer, &o).unwrap();
    let mut e = expect();
    e.audience = Some("vault-b".into());
    let err = verify(&token, &jwks, &e).unwrap_err();
    assert_eq!(err.code(), "wrong_audience");
    assert!(err.to_string().contains("vault-a") && err.to_string().contains("vault-b"));
    // Not checked when not expected.
    verify(&token, &jwks, &expect()).unwrap();
    // Missing aud when one is expected.
    let plain = issue(&body(), &signer, &opts()).unwrap();
    assert_eq!(code(verify(&plain, &jwks, &e)), "wrong_audience");
    // Array form.
    let t = raw_token(
        &signer,
        json!({"iss": ISS, "exp": now().timestamp() + 60, "aud": ["x", "vault-b"]}),
    );
    verify(&t, &jwks, &e).unwrap();
}

#[test]
fn kid_selection_and_rotation() {
    let old = es_signer("2026-01");
    let new = es_signer("2026-02");
    let old_token = issue(&body(), &old, &opts()).unwrap();
    let new_token = issue(&body(), &new, &opts()).unwrap();

    let mut jwks = jwks_of(&[&old]);
    verify(&old_token, &jwks, &expect()).unwrap();
    let err = verify(&new_token, &jwks, &expect()).unwrap_err();
    assert_eq!(err.code(), "kid_unknown");
    assert!(err.to_string().contains("2026-02") && err.to_string().contains("2026-01"));

    // Rotate: the new key first, the previous one still accepted.
    jwks.rotate(new.public_jwk().unwrap(), 1);
    assert_eq!(jwks.keys[0].kid.as_deref(), Some("2026-02"));
    assert_eq!(jwks.keys.len(), 2);
    verify(&old_token, &jwks, &expect()).unwrap();
    verify(&new_token, &jwks, &expect()).unwrap();
    // Rotating again with keep_previous = 0 drops the old key.
    let newer = es_signer("2026-03");
    jwks.rotate(newer.public_jwk().unwrap(), 1);
    assert_eq!(jwks.keys.len(), 2);
    assert_eq!(code(verify(&old_token, &jwks, &expect())), "kid_unknown");
    verify(&new_token, &jwks, &expect()).unwrap();

    // Missing kid: only with a single-key set.
    let no_kid = {
        let mut h = Header::for_signer(&old, None);
        h.kid = None;
        sign_compact(&h, &issue_claims(), &old).unwrap()
    };
    verify(&no_kid, &jwks_of(&[&old]), &expect()).unwrap();
    assert_eq!(code(verify(&no_kid, &jwks, &expect())), "kid_missing");
}

fn issue_claims() -> Map<String, Value> {
    let mut m = body();
    m.insert("iss".into(), json!(ISS));
    m.insert("exp".into(), json!(now().timestamp() + 60));
    m
}

#[test]
fn pinned_key() {
    let signer = es_signer("k1");
    let other = es_signer("k2");
    let token = issue(&body(), &signer, &opts()).unwrap();
    let pinned = signer.public_jwk().unwrap();
    verify(&token, &pinned, &expect()).unwrap();
    // A pinned key without kid accepts any kid.
    let mut anon = pinned.clone();
    anon.kid = None;
    verify(&token, &anon, &expect()).unwrap();
    // Pinned to another key.
    assert_eq!(
        code(verify(&token, &other.public_jwk().unwrap(), &expect())),
        "kid_unknown"
    );
    let mut wrong = other.public_jwk().unwrap();
    wrong.kid = Some("k1".into());
    assert_eq!(code(verify(&token, &wrong, &expect())), "bad_signature");
}

#[test]
fn crit_and_malformed_tokens() {
    let signer = es_signer("k1");
    let jwks = jwks_of(&[&signer]);
    let token = issue(&body(), &signer, &opts()).unwrap();
    let t = with_header(&token, |h| {
        h.insert("crit".into(), json!(["b64"]));
    });
    assert_eq!(code(verify(&t, &jwks, &expect())), "crit_unsupported");

    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        String::new(),
        "abc".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}.x"),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.!!.{}", parts[0], parts[2]),
        // Header JSON that is not an object / has a duplicate alg / alg not a string.
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("[1]"),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","alg":"none","kid":"k1"}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":1}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"kid":"k1"}"#),
            parts[1],
            parts[2]
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let e = verify(c, &jwks, &expect()).unwrap_err();
        assert_eq!(e.code(), "malformed_token", "case {i}: {e}");
    }
    // Duplicate claim in a correctly signed payload.
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Header::for_signer(&signer, None)).unwrap());
    let p = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"iss":"{ISS}","exp":1,"exp":{}}}"#,
        now().timestamp() + 60
    ));
    let input = format!("{h}.{p}");
    let sig = URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes()).unwrap());
    let e = verify(&format!("{input}.{sig}"), &jwks, &expect()).unwrap_err();
    assert_eq!(e.code(), "malformed_token");
    assert!(e.to_string().contains("duplicate member \"exp\""), "{e}");

    let huge = "a".repeat(crate::MAX_TOKEN_LEN + 1);
    assert_eq!(code(verify(&huge, &jwks, &expect())), "token_too_large");
}

#[test]
fn verification_needs_allowed_algs() {
    let signer = es_signer("k1");
    let token = issue(&body(), &signer, &opts()).unwrap();
    let mut e = expect();
    e.allowed_algs.clear();
    let err = verify(&token, &jwks_of(&[&signer]), &e).unwrap_err();
    assert_eq!(err.code(), "alg_not_allowed");
}

#[test]
fn issue_options() {
    let signer = es_signer("k1");
    let mut o = opts();
    o.lifetime = Duration::seconds(0);
    assert_eq!(
        issue(&body(), &signer, &o).unwrap_err().code(),
        "invalid_options"
    );
    o.lifetime = Duration::days(2);
    assert_eq!(
        issue(&body(), &signer, &o).unwrap_err().code(),
        "invalid_options"
    );
    o.lifetime = Duration::seconds(60);
    o.jti = JtiSource::Fixed("jti-1".into());
    o.jku = None;
    // Registered claims in the map are replaced; aud only from the options.
    let mut claims = body();
    claims.insert("iss".into(), json!("https://forged"));
    claims.insert("exp".into(), json!(i64::MAX));
    claims.insert("aud".into(), json!("someone"));
    let t = issue(&claims, &signer, &o).unwrap();
    let d = decode_unverified(&t).unwrap();
    assert_eq!(d.claims["iss"], json!(ISS));
    assert_eq!(d.claims["exp"], json!(now().timestamp() + 60));
    assert_eq!(d.claims["jti"], json!("jti-1"));
    assert!(d.claims.get("aud").is_none());
    assert!(d.header.jku.is_none());
    assert_eq!(d.header.kid.as_deref(), Some("k1"));
    assert_eq!(d.signature.len(), 86);
}

#[test]
fn decode_unverified_checks_structure_only() {
    let signer = es_signer("k1");
    let t = issue(&body(), &signer, &opts()).unwrap();
    let forged = with_header(&t, |h| {
        h.insert("alg".into(), json!("none"));
    });
    let d = decode_unverified(&forged).unwrap();
    assert_eq!(d.header.alg, "none");
    assert_eq!(d.claims["x-ms-attestation-type"], json!("sevsnpvm"));
    assert_eq!(
        decode_unverified("a.b").unwrap_err().code(),
        "malformed_token"
    );
}

fn self_signed_x5c(pkcs8: &[u8]) -> String {
    let kp = rcgen::KeyPair::try_from(pkcs8).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["attest.example.test".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    STANDARD.encode(cert.der())
}

#[test]
fn x5c_only_keys_like_azure_certs() {
    // Azure Attestation's /certs lists {kid, kty, x5c} without key members.
    for rsa in [true, false] {
        let pkcs8 = if rsa { rsa_pkcs8() } else { es_pkcs8() };
        let x5c = self_signed_x5c(&pkcs8);
        let signer: Box<dyn TokenSigner> = if rsa {
            Box::new(
                Rs256Signer::from_pkcs8("c1", &pkcs8)
                    .unwrap()
                    .with_x5c(vec![x5c.clone()]),
            )
        } else {
            Box::new(
                Es256Signer::from_pkcs8("c1", &pkcs8)
                    .unwrap()
                    .with_x5c(vec![x5c.clone()]),
            )
        };
        let token = issue(&body(), signer.as_ref(), &opts()).unwrap();
        assert_eq!(
            decode_unverified(&token).unwrap().header.x5c,
            Some(vec![x5c.clone()])
        );
        let jwks: Jwks = serde_json::from_value(json!({"keys": [
            {"kid": "c1", "kty": if rsa { "RSA" } else { "EC" }, "x5c": [x5c]}
        ]}))
        .unwrap();
        verify(&token, &jwks, &expect()).unwrap();
        // The certificate of another key does not verify.
        let other = self_signed_x5c(&if rsa { rsa_pkcs8() } else { es_pkcs8() });
        let jwks: Jwks = serde_json::from_value(json!({"keys": [
            {"kid": "c1", "kty": if rsa { "RSA" } else { "EC" }, "x5c": [other]}
        ]}))
        .unwrap();
        assert_eq!(code(verify(&token, &jwks, &expect())), "bad_signature");
    }
}

#[test]
fn invalid_keys() {
    let signer = es_signer("k1");
    let token = issue(&body(), &signer, &opts()).unwrap();
    let bad = |jwk: Value| {
        let k: Jwk = serde_json::from_value(jwk).unwrap();
        code(verify(&token, &k, &expect()))
    };
    // Coordinates longer than the curve size are refused as keys; a zero point (short
    // coordinates are padded: JWK integers are normalised) is not on the curve and verifies
    // nothing.
    let long = URL_SAFE_NO_PAD.encode([1u8; 33]);
    assert_eq!(
        bad(json!({"kty": "EC", "crv": "P-256", "x": long, "y": long})),
        "invalid_key"
    );
    assert_eq!(
        bad(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})),
        "bad_signature"
    );
    assert_eq!(bad(json!({"kty": "EC", "crv": "P-256"})), "invalid_key");
    assert_eq!(
        bad(json!({"kty": "EC", "crv": "P-256", "x5c": ["bm90IGEgY2VydA=="]})),
        "invalid_key"
    );
    assert_eq!(
        bad(json!({"kty": "oct", "k": "c2VjcmV0"})),
        "alg_key_mismatch"
    );
    assert!(Es256Signer::from_pkcs8("k", b"junk").is_err());
    assert_eq!(
        Rs256Signer::from_pkcs8("k", &es_pkcs8())
            .unwrap_err()
            .code(),
        "invalid_key"
    );
}

#[test]
fn signer_debug_hides_keys() {
    let s = format!("{:?}", es_signer("k1"));
    assert_eq!(s, "Es256Signer { kid: \"k1\", .. }");
}

#[test]
fn oversized_tokens_are_not_issued() {
    let signer = es_signer("k1");
    let mut claims = body();
    claims.insert("big".into(), json!("x".repeat(crate::MAX_TOKEN_LEN)));
    assert_eq!(
        issue(&claims, &signer, &opts()).unwrap_err().code(),
        "token_too_large"
    );
}

/// A trusted issuer's JWKS as it occurs in the wild: RSA `n`/`e` with leading zero bytes (as DER
/// encodes them), EC coordinates with a leading zero or without their own leading zero byte.
/// Tokens still verify through the one JWK integer normaliser; a coordinate too long is refused.
#[test]
fn issuer_keys_with_non_minimal_integers_verify() {
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
    let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);

    let rsa = Rs256Signer::from_pkcs8("rsa-nm", &rsa_pkcs8()).unwrap();
    let token = issue(&body(), &rsa, &opts()).unwrap();
    let mut jwks = jwks_of(&[&rsa]);
    let k = &mut jwks.keys[0];
    k.n = Some(enc(&[&[0u8][..], &b64(k.n.as_deref().unwrap())].concat()));
    k.e = Some(enc(&[0, 0, 1, 0, 1]));
    verify(&token, &jwks, &expect()).expect("leading zeros in n and e are accepted");
    jwks.keys[0].e = Some(enc(&[0, 0]));
    assert_eq!(code(verify(&token, &jwks, &expect())), "invalid_key");

    // Find a P-256 key whose x starts with a zero byte, so its minimal form is 31 bytes.
    let (es, minimal_x) = loop {
        let s = es_signer("ec-nm");
        let x = b64(jwks_of(&[&s]).keys[0].x.as_deref().unwrap());
        if x[0] == 0 {
            break (s, x[1..].to_vec());
        }
    };
    let token = issue(&body(), &es, &opts()).unwrap();
    let mut jwks = jwks_of(&[&es]);
    jwks.keys[0].x = Some(enc(&minimal_x));
    verify(&token, &jwks, &expect()).expect("a minimal (31-byte) x is accepted");
    let y = b64(jwks.keys[0].y.as_deref().unwrap());
    jwks.keys[0].y = Some(enc(&[&[0u8, 0][..], &y].concat()));
    verify(&token, &jwks, &expect()).expect("a y with surplus leading zeros is accepted");
    jwks.keys[0].y = Some(enc(&[&[1u8][..], &y].concat()));
    assert_eq!(code(verify(&token, &jwks, &expect())), "invalid_key");
}

/// The header encoding is reused between tokens only while the header is unchanged: a new kid,
/// chain or jku on the same thread is encoded afresh, never taken from the previous token.
#[test]
fn a_changed_header_is_never_signed_with_the_previous_encoding() {
    let signer = es_signer("k1");
    let header_of = |token: &str| decode_unverified(token).unwrap().header;
    let base = Header::for_signer(&signer, Some("https://a.example.test/certs".into()));
    let t1 = sign_compact(&base, &body(), &signer).unwrap();
    let t2 = sign_compact(&base, &body(), &signer).unwrap();
    assert_eq!(header_of(&t1), base);
    assert_eq!(header_of(&t2), base);
    assert_eq!(t1.split('.').next(), t2.split('.').next());

    let mut other_jku = base.clone();
    other_jku.jku = Some("https://b.example.test/certs".into());
    let mut other_chain = base.clone();
    other_chain.x5c = Some(vec![STANDARD.encode(b"another chain")]);
    let mut other_kid = base.clone();
    other_kid.kid = Some("k2".into());
    for changed in [other_jku, other_chain, other_kid, base.clone()] {
        let t = sign_compact(&changed, &body(), &signer).unwrap();
        assert_eq!(
            header_of(&t),
            changed,
            "the token must carry the header it was given"
        );
    }
}
