//! Token issuance and verification: our own ES256 tokens, client credentials, managed identity,
//! bootstrap admin, and external OIDC (RS256 / ES256) tokens.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_identity::{
    ATTESTATION_AUDIENCE, Action, AudienceFamily, AuthError, ClearKeyWrap, ExternalIssuer,
    Identity, IdentityConfig, IdentityError, ManagedIdentityProof, PrincipalKind, Resource, Role,
    Scope, TokenKey,
};
use enclava_store::{SqliteStore, Store};
use serde_json::{Value, json};

const ISS: &str = "https://vault.test:8443";
const NOW: i64 = 1_800_000_000;

/// An `Identity` with row integrity keys installed (what the server does after unseal).
fn new_identity(store: Arc<dyn enclava_store::Store>, config: IdentityConfig) -> Identity {
    let id = Identity::new(store, config);
    id.set_row_keys(Some(
        enclava_identity::RowKeys::derive(|_| {
            Ok::<_, String>(zeroize::Zeroizing::new([0x5au8; 32]))
        })
        .unwrap(),
    ));
    id
}

fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn setup() -> (Arc<SqliteStore>, Identity, Vec<u8>) {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let id = new_identity(store.clone(), IdentityConfig::new(ISS));
    let key = TokenKey::generate().unwrap();
    let pkcs8 = key.pkcs8().to_vec();
    id.set_token_key(Some(key));
    (store, id, pkcs8)
}

/// A second Identity over the same store and key but another configuration.
fn twin(store: &Arc<SqliteStore>, pkcs8: &[u8], config: IdentityConfig) -> Identity {
    let id = new_identity(store.clone(), config);
    id.set_token_key(Some(TokenKey::from_pkcs8(pkcs8).unwrap()));
    id
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let p = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (h, p, it.next().unwrap().to_string())
}

fn assemble(header: &Value, payload: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(payload.to_string()),
        sig
    )
}

#[test]
fn client_credentials_round_trip_and_claims() {
    let (_s, id, _) = setup();
    let (sp, secret) = id.create_service_principal("ci", NOW).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(secret.expose()).unwrap().len(), 32);
    assert!(!format!("{secret:?}").contains(secret.expose()));
    let resp = id
        .client_credentials(
            &sp.id,
            secret.expose(),
            "https://vault.azure.net/.default",
            NOW,
        )
        .unwrap();
    assert_eq!(resp.token_type, "Bearer");
    assert_eq!(resp.expires_in, 3600);
    assert_eq!(resp.ext_expires_in, 3600);
    let (h, p, _) = parts(&resp.access_token);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(p["iss"], ISS);
    assert_eq!(p["sub"], sp.id.as_str());
    assert_eq!(p["aud"], "https://vault.azure.net");
    assert_eq!(p["exp"], NOW + 3600);
    assert_eq!(p["nbf"], NOW);
    assert!(p["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let who = id.authenticate(&resp.access_token, NOW + 10).unwrap();
    assert_eq!(who, sp);
    // With the "Bearer " prefix too.
    assert_eq!(
        id.authenticate(&format!("Bearer {}", resp.access_token), NOW)
            .unwrap()
            .id,
        sp.id
    );
    // Our own audience and a bare resource scope are accepted as well.
    let r2 = id
        .client_credentials(&sp.id, secret.expose(), "https://vault.enclava/", NOW)
        .unwrap();
    assert_eq!(id.authenticate(&r2.access_token, NOW).unwrap().id, sp.id);
    // Two tokens never share a jti.
    assert_ne!(
        parts(&resp.access_token).1["jti"],
        parts(&r2.access_token).1["jti"]
    );
}

#[test]
fn wrong_client_secret_unknown_client_and_bad_scope_rejected() {
    let (_s, id, _) = setup();
    let (sp, secret) = id.create_service_principal("ci", NOW).unwrap();
    let (mi, mi_secret) = id.create_managed_identity("wl", NOW).unwrap();
    let scope = "https://vault.azure.net/.default";
    let mut wrong = secret.expose().to_string();
    wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
    assert!(matches!(
        id.client_credentials(&sp.id, &wrong, scope, NOW),
        Err(IdentityError::InvalidClient)
    ));
    assert!(matches!(
        id.client_credentials(&sp.id, "", scope, NOW),
        Err(IdentityError::InvalidClient)
    ));
    assert!(matches!(
        id.client_credentials(
            "00000000-0000-4000-8000-000000000000",
            secret.expose(),
            scope,
            NOW
        ),
        Err(IdentityError::InvalidClient)
    ));
    assert!(matches!(
        id.client_credentials("../etc", secret.expose(), scope, NOW),
        Err(IdentityError::InvalidClient)
    ));
    // A managed identity's secret is not a client secret.
    assert!(matches!(
        id.client_credentials(&mi.id, mi_secret.expose(), scope, NOW),
        Err(IdentityError::InvalidClient)
    ));
    let err = id
        .client_credentials(
            &sp.id,
            secret.expose(),
            "https://graph.microsoft.com/.default",
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, IdentityError::InvalidScope { .. }), "{err}");
    let err = id
        .client_credentials(&sp.id, "", scope, NOW)
        .unwrap_err()
        .to_string();
    assert!(!err.contains(secret.expose()));
    // Disabled principals get no token even with the right secret.
    id.set_enabled(&sp.id, false).unwrap();
    assert!(matches!(
        id.client_credentials(&sp.id, secret.expose(), scope, NOW),
        Err(IdentityError::Disabled { .. })
    ));
}

#[test]
fn reset_secret_invalidates_the_old_one() {
    let (_s, id, _) = setup();
    let (sp, old) = id.create_service_principal("ci", NOW).unwrap();
    let new = id.reset_secret(&sp.id).unwrap();
    let scope = "https://vault.azure.net/.default";
    assert!(
        id.client_credentials(&sp.id, old.expose(), scope, NOW)
            .is_err()
    );
    assert!(
        id.client_credentials(&sp.id, new.expose(), scope, NOW)
            .is_ok()
    );
    let (mi, old_mi) = id.create_managed_identity("wl", NOW).unwrap();
    let new_mi = id.reset_secret(&mi.id).unwrap();
    let proof = |s| ManagedIdentityProof {
        secret: s,
        client_id: None,
    };
    assert!(
        id.managed_identity_token("https://vault.azure.net", proof(old_mi.expose()), NOW)
            .is_err()
    );
    assert!(
        id.managed_identity_token("https://vault.azure.net", proof(new_mi.expose()), NOW)
            .is_ok()
    );
}

#[test]
fn managed_identity_token_shape_and_proof() {
    let (_s, id, _) = setup();
    let (mi, secret) = id.create_managed_identity("workload-a", NOW).unwrap();
    assert_eq!(mi.kind, PrincipalKind::ManagedIdentity);
    let proof = ManagedIdentityProof {
        secret: secret.expose(),
        client_id: None,
    };
    let r = id
        .managed_identity_token("https://vault.azure.net", proof, NOW)
        .unwrap();
    assert_eq!(r.token_type, "Bearer");
    assert_eq!(r.resource, "https://vault.azure.net");
    assert_eq!(r.expires_in.parse::<i64>().unwrap(), 3600);
    assert_eq!(r.expires_on.parse::<i64>().unwrap(), NOW + 3600);
    assert_eq!(r.client_id, mi.id);
    assert_eq!(id.authenticate(&r.access_token, NOW).unwrap().id, mi.id);
    // Naming the same identity is fine; naming another is not.
    let ok = ManagedIdentityProof {
        secret: secret.expose(),
        client_id: Some(&mi.id),
    };
    assert!(
        id.managed_identity_token("https://vault.azure.net/.default", ok, NOW)
            .is_ok()
    );
    let (other, _) = id.create_managed_identity("workload-b", NOW).unwrap();
    let mismatch = ManagedIdentityProof {
        secret: secret.expose(),
        client_id: Some(&other.id),
    };
    assert!(matches!(
        id.managed_identity_token("https://vault.azure.net", mismatch, NOW),
        Err(IdentityError::InvalidClient)
    ));
    let wrong = ManagedIdentityProof {
        secret: "not-the-secret",
        client_id: None,
    };
    assert!(matches!(
        id.managed_identity_token("https://vault.azure.net", wrong, NOW),
        Err(IdentityError::InvalidClient)
    ));
    assert!(!format!("{proof:?}").contains(secret.expose()));
    let bad_res = id
        .managed_identity_token("https://management.azure.com", proof, NOW)
        .unwrap_err();
    assert!(matches!(bad_res, IdentityError::InvalidScope { .. }));
    // Deleting the identity removes its secret index.
    id.delete_principal(&mi.id).unwrap();
    assert!(matches!(
        id.managed_identity_token("https://vault.azure.net", proof, NOW),
        Err(IdentityError::InvalidClient)
    ));
    assert!(matches!(
        id.authenticate(&r.access_token, NOW),
        Err(AuthError::UnknownPrincipal)
    ));
}

fn issued(id: &Identity) -> (String, enclava_identity::Principal) {
    let (sp, secret) = id.create_service_principal("app", NOW).unwrap();
    let t = id
        .client_credentials(
            &sp.id,
            secret.expose(),
            "https://vault.azure.net/.default",
            NOW,
        )
        .unwrap();
    (t.access_token, sp)
}

#[test]
fn time_checks_with_leeway() {
    let (_s, id, _) = setup();
    let (tok, _) = issued(&id);
    assert!(
        id.authenticate(&tok, NOW + 3600 + 60).is_ok(),
        "within leeway"
    );
    assert_eq!(
        id.authenticate(&tok, NOW + 3600 + 61),
        Err(AuthError::Expired {
            exp: NOW + 3600,
            now: NOW + 3661
        })
    );
    assert!(id.authenticate(&tok, NOW - 60).is_ok(), "within leeway");
    assert!(matches!(
        id.authenticate(&tok, NOW - 61),
        Err(AuthError::NotYetValid { .. })
    ));
}

#[test]
fn tampered_tokens_rejected() {
    let (_s, id, _) = setup();
    let (tok, _) = issued(&id);
    let (other, _) = issued(&id);
    // Both verified once (and so remembered by the signature cache): tampering must still fail.
    assert!(id.authenticate(&tok, NOW).is_ok());
    assert!(id.authenticate(&other, NOW).is_ok());
    let (h, mut p, sig) = parts(&tok);
    // Changed claim, original signature.
    p["sub"] = parts(&other).1["sub"].clone();
    assert_eq!(
        id.authenticate(&assemble(&h, &p, &sig), NOW),
        Err(AuthError::BadSignature)
    );
    // Extended expiry.
    let (h, mut p, sig) = parts(&tok);
    p["exp"] = json!(NOW + 999_999);
    assert_eq!(
        id.authenticate(&assemble(&h, &p, &sig), NOW),
        Err(AuthError::BadSignature)
    );
    // Flipped signature bit.
    let mut raw = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    raw[10] ^= 1;
    let (h, p, _) = parts(&tok);
    assert_eq!(
        id.authenticate(&assemble(&h, &p, &b64(&raw)), NOW),
        Err(AuthError::BadSignature)
    );
    // Truncated / garbage.
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        &tok[..tok.len() - 5],
        "....",
        "eyJ.eyJ.",
        &"x".repeat(20_000),
    ] {
        let e = id.authenticate(bad, NOW).unwrap_err();
        assert!(
            matches!(e, AuthError::Malformed(_) | AuthError::BadSignature),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn alg_none_hs256_and_alg_confusion_rejected() {
    let (_s, id, pkcs8) = setup();
    let (tok, _) = issued(&id);
    let (h, p, sig) = parts(&tok);
    let mut none = h.clone();
    none["alg"] = json!("none");
    let e = id.authenticate(&assemble(&none, &p, ""), NOW).unwrap_err();
    assert_eq!(e, AuthError::UnsupportedAlgorithm { alg: "none".into() });
    let mut none2 = h.clone();
    none2["alg"] = json!("None");
    assert!(matches!(
        id.authenticate(&assemble(&none2, &p, &sig), NOW),
        Err(AuthError::UnsupportedAlgorithm { .. })
    ));
    // HS256 keyed with the public key (the classic confusion attack).
    let key = TokenKey::from_pkcs8(&pkcs8).unwrap();
    let mut hs = h.clone();
    hs["alg"] = json!("HS256");
    let input = format!("{}.{}", b64(hs.to_string()), b64(p.to_string()));
    for secret in [
        key.public_point().to_vec(),
        key.public_jwk().to_string().into_bytes(),
    ] {
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let forged = format!("{input}.{}", b64(mac.as_ref()));
        assert!(matches!(
            id.authenticate(&forged, NOW),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
    }
    // RS256 header on our EC key.
    let mut rs = h.clone();
    rs["alg"] = json!("RS256");
    assert!(matches!(
        id.authenticate(&assemble(&rs, &p, &sig), NOW),
        Err(AuthError::AlgorithmMismatch { .. })
    ));
    // A token signed by some other ES256 key claiming our issuer.
    let attacker = new_identity(
        Arc::new(SqliteStore::in_memory().unwrap()),
        IdentityConfig::new(ISS),
    );
    attacker.set_token_key(Some(TokenKey::generate().unwrap()));
    let (forged, _) = issued(&attacker);
    assert!(matches!(
        id.authenticate(&forged, NOW),
        Err(AuthError::UnknownKey { .. })
    ));
    let (fh, fp, fs) = parts(&forged);
    let mut fh2 = fh.clone();
    fh2.as_object_mut().unwrap().remove("kid");
    let _ = fh;
    assert_eq!(
        id.authenticate(&assemble(&fh2, &fp, &fs), NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn wrong_audience_and_wrong_issuer_rejected() {
    let (store, id, pkcs8) = setup();
    let (sp, _) = id.create_service_principal("app", NOW).unwrap();
    let mut cfg = IdentityConfig::new(ISS);
    cfg.audiences = vec!["https://some-other-service".into()];
    let other_aud = twin(&store, &pkcs8, cfg);
    let t = other_aud.issue_token(&sp, None, None, NOW).unwrap();
    assert_eq!(t.audience, "https://some-other-service");
    assert!(matches!(
        id.authenticate(&t.token, NOW),
        Err(AuthError::WrongAudience { .. })
    ));
    let other_iss = twin(
        &store,
        &pkcs8,
        IdentityConfig::new("https://elsewhere.test"),
    );
    let t = other_iss.issue_token(&sp, None, None, NOW).unwrap();
    assert_eq!(
        id.authenticate(&t.token, NOW),
        Err(AuthError::UnknownIssuer {
            issuer: "https://elsewhere.test".into()
        })
    );
    // Same issuer with a trailing slash is the same issuer.
    let slash = twin(&store, &pkcs8, IdentityConfig::new(format!("{ISS}/")));
    let t = slash
        .issue_token(&sp, Some("https://vault.azure.net"), None, NOW)
        .unwrap();
    assert_eq!(id.authenticate(&t.token, NOW).unwrap().id, sp.id);
}

#[test]
fn principal_state_is_checked_on_every_authentication() {
    let (_s, id, _) = setup();
    let (tok, sp) = issued(&id);
    assert!(id.authenticate(&tok, NOW).is_ok());
    id.set_enabled(&sp.id, false).unwrap();
    assert_eq!(
        id.authenticate(&tok, NOW),
        Err(AuthError::Disabled { id: sp.id.clone() })
    );
    id.set_enabled(&sp.id, true).unwrap();
    assert!(id.authenticate(&tok, NOW).is_ok());
    id.delete_principal(&sp.id).unwrap();
    assert_eq!(id.authenticate(&tok, NOW), Err(AuthError::UnknownPrincipal));
}

#[test]
fn sealed_means_no_tokens() {
    let (_s, id, _) = setup();
    let (tok, sp) = issued(&id);
    assert!(id.token_jwks().is_some());
    id.set_token_key(None);
    assert!(id.token_jwks().is_none());
    assert_eq!(id.authenticate(&tok, NOW), Err(AuthError::NoSigningKey));
    assert!(matches!(
        id.issue_token(&sp, None, None, NOW),
        Err(IdentityError::NoSigningKey)
    ));
    assert!(matches!(
        id.bootstrap_admin(NOW),
        Err(IdentityError::NoSigningKey)
    ));
}

#[test]
fn token_key_persists_through_key_wrap() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let k1 = TokenKey::load_or_create(store.as_ref(), &ClearKeyWrap).unwrap();
    let k2 = TokenKey::load_or_create(store.as_ref(), &ClearKeyWrap).unwrap();
    assert_eq!(k1.kid(), k2.kid());
    assert_eq!(k1.public_point(), k2.public_point());
    assert!(
        store
            .get(enclava_store::Table::Meta, enclava_identity::TOKEN_KEY_META)
            .unwrap()
            .is_some()
    );
    let id = new_identity(store.clone(), IdentityConfig::new(ISS));
    id.set_token_key(Some(k1));
    let (tok, sp) = issued(&id);
    // "Seal" and "unseal": the reloaded key verifies earlier tokens.
    id.set_token_key(None);
    id.set_token_key(Some(
        TokenKey::load_or_create(store.as_ref(), &ClearKeyWrap).unwrap(),
    ));
    assert_eq!(id.authenticate(&tok, NOW).unwrap().id, sp.id);
    let jwks = id.token_jwks().unwrap();
    assert_eq!(jwks["keys"][0]["kid"], k2.kid());
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part in the JWKS"
    );
    // A wrapper that fails is reported, not ignored.
    struct Broken;
    impl enclava_identity::KeyWrap for Broken {
        fn wrap(&self, _: &[u8]) -> Result<Vec<u8>, String> {
            Err("sealed".into())
        }
        fn unwrap(&self, _: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
            Err("sealed".into())
        }
    }
    assert!(TokenKey::load_or_create(store.as_ref(), &Broken).is_err());
    assert!(TokenKey::from_pkcs8(b"not a key").is_err());
}

#[test]
fn bootstrap_admin_is_an_administrator_and_is_reused() {
    let (_s, id, _) = setup();
    let (admin, token) = id.bootstrap_admin(NOW).unwrap();
    assert_eq!(admin.kind, PrincipalKind::BootstrapAdmin);
    let who = id.authenticate(&token, NOW + 23 * 3600).unwrap();
    assert_eq!(who.id, admin.id);
    // Short-lived by default (24 h): it is for creating the real principals, not for keeping.
    assert!(id.authenticate(&token, NOW + 25 * 3600).is_err());
    for a in [
        Action::RoleManage,
        Action::PrincipalManage,
        Action::AuditRead,
        Action::KeyList,
    ] {
        assert!(
            id.authorize(&who, a, &Resource::Vault).unwrap().allowed,
            "{a}"
        );
    }
    let (again, token2) = id.bootstrap_admin(NOW + 1).unwrap();
    assert_eq!(again.id, admin.id);
    assert_ne!(token, token2);
    let assignments = id.list_assignments(Some(&admin.id), None, 10).unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(
        (assignments[0].role, assignments[0].scope.clone()),
        (Role::Administrator, Scope::Vault)
    );
}

#[test]
fn errors_never_echo_the_token() {
    let (_s, id, _) = setup();
    let (tok, _) = issued(&id);
    let sig = tok.rsplit('.').next().unwrap().to_string();
    for (t, now) in [
        (tok.clone(), NOW + 100_000),
        (format!("{tok}x"), NOW),
        (tok.replace('.', ","), NOW),
    ] {
        let e = id.authenticate(&t, now).unwrap_err();
        let msg = format!("{e} {e:?}");
        assert!(!msg.contains(&sig) && !msg.contains(&t), "{msg}");
    }
}

// ----- external OIDC -----

const EXT: &str = "https://login.example.test/tenant/v2.0";
const EXT_AUD: &str = "api://enclava";

fn rsa_jwk(kp: &RsaKeyPair, kid: &str) -> Value {
    let pk = kp.public_key();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(pk.modulus().big_endian_without_leading_zero()),
        "e": b64(pk.exponent().big_endian_without_leading_zero())})
}

fn ec_jwk(kp: &EcdsaKeyPair, kid: &str) -> Value {
    let p = kp.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..65])})
}

fn claims(sub: &str) -> Value {
    json!({"iss": EXT, "sub": sub, "aud": EXT_AUD, "iat": NOW, "nbf": NOW, "exp": NOW + 600})
}

fn rs256(kp: &RsaKeyPair, kid: Option<&str>, payload: &Value) -> String {
    let mut h = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(k) = kid {
        h["kid"] = json!(k);
    }
    let input = format!("{}.{}", b64(h.to_string()), b64(payload.to_string()));
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64(sig))
}

fn es256(kp: &EcdsaKeyPair, kid: &str, payload: &Value) -> String {
    let h = json!({"alg": "ES256", "kid": kid});
    let input = format!("{}.{}", b64(h.to_string()), b64(payload.to_string()));
    let sig = kp.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

fn ec_key() -> EcdsaKeyPair {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap()
}

#[test]
fn external_oidc_rs256_and_es256() {
    let (_s, id, _) = setup();
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let ec = ec_key();
    let jwks = json!({"keys": [
        rsa_jwk(&rsa, "rsa-1"),
        ec_jwk(&ec, "ec-1"),
        {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
    ]});
    id.set_external_issuers(vec![ExternalIssuer {
        issuer: format!("{EXT}/"),
        audiences: vec![EXT_AUD.into()],
        jwks,
    }])
    .unwrap();
    let alice = id
        .create_external_identity(EXT, "alice", "Alice", NOW)
        .unwrap();
    let bob = id.create_external_identity(EXT, "bob", "Bob", NOW).unwrap();
    assert!(matches!(
        id.create_external_identity(EXT, "alice", "dup", NOW),
        Err(IdentityError::AlreadyExists { .. })
    ));

    assert_eq!(
        id.authenticate(&rs256(&rsa, Some("rsa-1"), &claims("alice")), NOW)
            .unwrap()
            .id,
        alice.id
    );
    assert_eq!(
        id.authenticate(&es256(&ec, "ec-1", &claims("bob")), NOW)
            .unwrap()
            .id,
        bob.id
    );

    // Unregistered subject: default deny.
    assert_eq!(
        id.authenticate(&rs256(&rsa, Some("rsa-1"), &claims("mallory")), NOW),
        Err(AuthError::UnknownPrincipal)
    );
    // Wrong audience.
    let mut c = claims("alice");
    c["aud"] = json!(["https://vault.azure.net"]);
    assert!(matches!(
        id.authenticate(&rs256(&rsa, Some("rsa-1"), &c), NOW),
        Err(AuthError::WrongAudience { .. })
    ));
    // Expired.
    assert!(matches!(
        id.authenticate(&rs256(&rsa, Some("rsa-1"), &claims("alice")), NOW + 3600),
        Err(AuthError::Expired { .. })
    ));
    // Unknown kid; no kid while the issuer has two keys.
    assert!(matches!(
        id.authenticate(&rs256(&rsa, Some("rsa-9"), &claims("alice")), NOW),
        Err(AuthError::UnknownKey { .. })
    ));
    assert!(matches!(
        id.authenticate(&rs256(&rsa, None, &claims("alice")), NOW),
        Err(AuthError::UnknownKey { .. })
    ));
    // Signed by another key under a known kid.
    let rsa2 = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    assert_eq!(
        id.authenticate(&rs256(&rsa2, Some("rsa-1"), &claims("alice")), NOW),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        id.authenticate(&es256(&ec_key(), "ec-1", &claims("bob")), NOW),
        Err(AuthError::BadSignature)
    );
    // Alg/key-type confusion: ES256 header naming the RSA key, RS256 naming the EC key.
    let tok = es256(&ec, "rsa-1", &claims("alice"));
    assert!(matches!(
        id.authenticate(&tok, NOW),
        Err(AuthError::AlgorithmMismatch {
            key_alg: "RS256",
            ..
        })
    ));
    let tok = rs256(&rsa, Some("ec-1"), &claims("bob"));
    assert!(matches!(
        id.authenticate(&tok, NOW),
        Err(AuthError::AlgorithmMismatch {
            key_alg: "ES256",
            ..
        })
    ));
    // HS256 with the oct key from the JWKS: never accepted.
    let h = json!({"alg": "HS256", "kid": "hmac"});
    let input = format!(
        "{}.{}",
        b64(h.to_string()),
        b64(claims("alice").to_string())
    );
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret"),
        input.as_bytes(),
    );
    assert!(matches!(
        id.authenticate(&format!("{input}.{}", b64(mac.as_ref())), NOW),
        Err(AuthError::UnsupportedAlgorithm { .. })
    ));
    // Unknown issuer.
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    assert!(matches!(
        id.authenticate(&rs256(&rsa, Some("rsa-1"), &c), NOW),
        Err(AuthError::UnknownIssuer { .. })
    ));
    // Disabled external principal.
    id.set_enabled(&alice.id, false).unwrap();
    assert!(matches!(
        id.authenticate(&rs256(&rsa, Some("rsa-1"), &claims("alice")), NOW),
        Err(AuthError::Disabled { .. })
    ));
}

#[test]
fn external_jwks_rotation_and_validation() {
    let (_s, id, _) = setup();
    let old = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let new = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    id.set_external_issuers(vec![ExternalIssuer {
        issuer: EXT.into(),
        audiences: vec![EXT_AUD.into()],
        jwks: json!({"keys": [rsa_jwk(&old, "k1")]}),
    }])
    .unwrap();
    let carol = id
        .create_external_identity(EXT, "carol", "Carol", NOW)
        .unwrap();
    // A single key without kid in the token is usable.
    assert_eq!(
        id.authenticate(&rs256(&old, None, &claims("carol")), NOW)
            .unwrap()
            .id,
        carol.id
    );
    id.update_external_jwks(EXT, &json!({"keys": [rsa_jwk(&new, "k2")]}))
        .unwrap();
    assert!(
        id.authenticate(&rs256(&old, Some("k1"), &claims("carol")), NOW)
            .is_err()
    );
    assert_eq!(
        id.authenticate(&rs256(&new, Some("k2"), &claims("carol")), NOW)
            .unwrap()
            .id,
        carol.id
    );
    assert!(matches!(
        id.update_external_jwks("https://unknown", &json!({"keys": []})),
        Err(IdentityError::NotFound { .. })
    ));
    // Malformed JWKS are refused and leave the configuration unchanged.
    for bad in [
        json!({}),
        json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}),
        json!({"keys": [{"kty": "RSA", "n": b64([1u8; 64]), "e": "AQAB"}]}),
    ] {
        let r = id.set_external_issuers(vec![ExternalIssuer {
            issuer: EXT.into(),
            audiences: vec![EXT_AUD.into()],
            jwks: bad,
        }]);
        assert!(matches!(r, Err(IdentityError::Invalid { .. })));
    }
    assert_eq!(
        id.authenticate(&rs256(&new, Some("k2"), &claims("carol")), NOW)
            .unwrap()
            .id,
        carol.id
    );
    // Removing the issuer stops its tokens.
    id.set_external_issuers(vec![]).unwrap();
    assert!(matches!(
        id.authenticate(&rs256(&new, Some("k2"), &claims("carol")), NOW),
        Err(AuthError::UnknownIssuer { .. })
    ));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn authenticate_never_panics(s in ".{0,300}", h in proptest::collection::vec(any::<u8>(), 0..80),
                                     p in proptest::collection::vec(any::<u8>(), 0..80)) {
            let (_s, id, _) = setup();
            prop_assert!(id.authenticate(&s, NOW).is_err());
            let t = format!("{}.{}.{}", b64(&h), b64(&p), b64(&h));
            prop_assert!(id.authenticate(&t, NOW).is_err());
        }
    }
}

/// Issue 10: the Azure Attestation SDKs ask for scope `https://attest.azure.net/.default`. The
/// attestation resource is served by the same identity system, and each route family accepts
/// only its own audience: an attestation token is no Key Vault token and vice versa.
#[test]
fn attestation_scope_is_served_and_audiences_do_not_cross_families() {
    let (_s, id, _) = setup();
    let (sp, secret) = id.create_service_principal("attester", NOW).unwrap();
    let att = id
        .client_credentials(
            &sp.id,
            secret.expose(),
            "https://attest.azure.net/.default",
            NOW,
        )
        .unwrap();
    let (_, p, _) = parts(&att.access_token);
    assert_eq!(p["aud"], ATTESTATION_AUDIENCE);
    assert_eq!(
        id.authenticate_for(&att.access_token, AudienceFamily::Attestation, NOW)
            .unwrap()
            .id,
        sp.id
    );
    // The attack: an attestation token presented to a vault route.
    match id.authenticate_for(&att.access_token, AudienceFamily::Vault, NOW) {
        Err(AuthError::WrongAudience { found, expected }) => {
            assert_eq!(found, vec![ATTESTATION_AUDIENCE.to_string()]);
            assert!(
                expected.iter().any(|e| e == "https://vault.azure.net"),
                "{expected:?}"
            );
        }
        other => panic!("expected WrongAudience, found {other:?}"),
    }
    // `authenticate` is the vault family.
    assert!(matches!(
        id.authenticate(&att.access_token, NOW),
        Err(AuthError::WrongAudience { .. })
    ));
    // And the other way round: a Key Vault token presented to an attestation route.
    let kv = id
        .client_credentials(
            &sp.id,
            secret.expose(),
            "https://vault.azure.net/.default",
            NOW,
        )
        .unwrap();
    assert!(id.authenticate(&kv.access_token, NOW).is_ok());
    match id.authenticate_for(&kv.access_token, AudienceFamily::Attestation, NOW) {
        Err(AuthError::WrongAudience { expected, .. }) => {
            assert_eq!(expected, vec![ATTESTATION_AUDIENCE.to_string()]);
        }
        other => panic!("expected WrongAudience, found {other:?}"),
    }
    // A resource of neither family is still refused.
    assert!(matches!(
        id.client_credentials(
            &sp.id,
            secret.expose(),
            "https://attest.example.invalid/.default",
            NOW
        ),
        Err(IdentityError::InvalidScope { .. })
    ));
    // Configured extra attestation resources belong to the attestation family.
    let mut cfg = IdentityConfig::new(ISS);
    cfg.attestation_audiences
        .push("https://attest.enclava.example".into());
    let (store, _, pkcs8) = setup();
    let extra = twin(&store, &pkcs8, cfg);
    let (sp2, secret2) = extra.create_service_principal("attester2", NOW).unwrap();
    let t = extra
        .client_credentials(
            &sp2.id,
            secret2.expose(),
            "https://attest.enclava.example/.default",
            NOW,
        )
        .unwrap();
    assert!(
        extra
            .authenticate_for(&t.access_token, AudienceFamily::Attestation, NOW)
            .is_ok()
    );
    assert!(extra.authenticate(&t.access_token, NOW).is_err());
    // Managed identities get attestation tokens the same way.
    let (mi, mi_secret) = id.create_managed_identity("wl", NOW).unwrap();
    let m = id
        .managed_identity_token(
            "https://attest.azure.net",
            ManagedIdentityProof {
                secret: mi_secret.expose(),
                client_id: None,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(
        id.authenticate_for(&m.access_token, AudienceFamily::Attestation, NOW)
            .unwrap()
            .id,
        mi.id
    );
    assert!(id.authenticate(&m.access_token, NOW).is_err());
}

#[test]
fn bootstrap_admin_token_serves_both_families() {
    let (_s, id, _) = setup();
    let (admin, token) = id.bootstrap_admin(NOW).unwrap();
    let (_, p, _) = parts(&token);
    assert_eq!(
        p["aud"],
        json!(["https://vault.enclava", ATTESTATION_AUDIENCE])
    );
    for f in [AudienceFamily::Vault, AudienceFamily::Attestation] {
        assert_eq!(id.authenticate_for(&token, f, NOW).unwrap().id, admin.id);
    }
}
