//! Issue 10, part A item 1: the attestation resource (`https://attest.azure.net`, what the Azure
//! Attestation SDKs ask for) is served by the same token endpoint, and each route family accepts
//! only tokens for its own audience, through the real server over HTTPS.

mod common;

use common::*;
use serde_json::json;

const V: &str = "api-version=7.5";
const ATTEST_SCOPE: &str = "https://attest.azure.net/.default";
const POLICY: &str = "/policies/SgxEnclave?api-version=2022-08-01";

#[test]
fn attestation_scope_is_issued_and_each_family_accepts_only_its_audience() {
    let t = start_dev();
    let admin = t.admin_token();
    let r = t.post(
        &format!("/keys/k1/create?{V}"),
        Some(&admin),
        &json!({"kty": "EC"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // An Administrator service principal: both its tokens are its own, yet each opens only its
    // own family.
    let (id, secret) = t.service_principal(&admin, "admin-sp");
    t.assign(&admin, &id, "Administrator", "/");
    let att = t.token_for_scope(&id, &secret, ATTEST_SCOPE);
    let kv = t.token_for(&id, &secret);

    // The v2 token endpoint answered the SDK's scope (was 400 invalid_scope).
    let claims = enclava_token::decode_unverified(&att).unwrap();
    assert_eq!(claims.claims["aud"], "https://attest.azure.net");

    // Attestation token on attestation routes: accepted.
    let r = t.get(POLICY, Some(&att));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.get("/enclava/reference-values/default", Some(&att));
    assert_eq!(r.status, 200, "{}", r.text);
    // Attack: the attestation token on Key Vault data-plane and admin routes: 401.
    for path in [
        format!("/keys/k1?{V}"),
        format!("/keys?{V}"),
        "/enclava/principals".to_string(),
    ] {
        let r = t.get(&path, Some(&att));
        assert_eq!(r.status, 401, "{path}: {}", r.text);
        assert!(r.text.contains("audience"), "{}", r.text);
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("https://vault.azure.net"), "{challenge}");
    }
    // Key Vault token on vault routes: accepted.
    let r = t.get(&format!("/keys/k1?{V}"), Some(&kv));
    assert_eq!(r.status, 200, "{}", r.text);
    // Attack: the Key Vault token on attestation management: 401, the challenge naming the
    // attestation resource.
    let r = t.get(POLICY, Some(&kv));
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("audience"), "{}", r.text);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("https://attest.azure.net"),
        "{challenge}"
    );
    let r = t.call(
        "PUT",
        POLICY,
        Some(&kv),
        Some(b"version=1.0; authorizationrules { => permit(); };"),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 401, "{}", r.text);

    // Roles still apply within the family: an attestation token without policies/manage: 403;
    // AttestationContributor manages policies and nothing in the vault.
    let (uid, usecret) = t.service_principal(&admin, "crypto-user");
    t.assign(&admin, &uid, "CryptoUser", "/");
    let user_att = t.token_for_scope(&uid, &usecret, ATTEST_SCOPE);
    let r = t.get(POLICY, Some(&user_att));
    assert_eq!(r.status, 403, "{}", r.text);
    let (cid, csecret) = t.service_principal(&admin, "attestation-contributor");
    t.assign(&admin, &cid, "AttestationContributor", "/");
    let contrib_att = t.token_for_scope(&cid, &csecret, ATTEST_SCOPE);
    let r = t.get(POLICY, Some(&contrib_att));
    assert_eq!(r.status, 200, "{}", r.text);
    let contrib_kv = t.token_for(&cid, &csecret);
    let r = t.get(&format!("/keys/k1?{V}"), Some(&contrib_kv));
    assert_eq!(r.status, 403, "{}", r.text);

    // Service-key rotation is vault administration: the attestation token does not reach it.
    let r = t.post("/enclava/attestation/rotate", Some(&att), &json!({}));
    assert_eq!(r.status, 401, "{}", r.text);

    // The bootstrap administrator's token serves both families.
    assert_eq!(t.get(POLICY, Some(&admin)).status, 200);
    assert_eq!(t.get(&format!("/keys/k1?{V}"), Some(&admin)).status, 200);

    // A resource of neither family is still refused at the token endpoint.
    let form = format!(
        "grant_type=client_credentials&client_id={id}&client_secret={}&scope={}",
        form_encode(&secret),
        form_encode("https://attest.example.invalid/.default")
    );
    let r = t.call(
        "POST",
        "/contoso/oauth2/v2.0/token",
        None,
        Some(form.as_bytes()),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_scope", "{}", r.text);
}

#[test]
fn configured_attestation_resources_are_attestation_audiences() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = enclava_server::PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation_resources: Some(vec!["https://attest.enclava.example/".into()]),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(
        cfg.attestation_resources,
        vec![
            "https://attest.azure.net".to_string(),
            "https://attest.enclava.example".to_string()
        ]
    );
    let mut t = start_with(cfg);
    t.dir = dir;
    let admin = t.admin_token();
    let (id, secret) = t.service_principal(&admin, "admin-sp");
    t.assign(&admin, &id, "Administrator", "/");
    let tok = t.token_for_scope(&id, &secret, "https://attest.enclava.example/.default");
    assert_eq!(t.get(POLICY, Some(&tok)).status, 200);
    assert_eq!(t.get(&format!("/keys?{V}"), Some(&tok)).status, 401);
    // Not a URL: refused at start-up with the key named.
    let e = enclava_server::PartialConfig {
        attestation_resources: Some(vec!["attest".into()]),
        ..Default::default()
    }
    .resolve()
    .unwrap_err();
    assert!(e.to_string().contains("attestation_resources"), "{e}");
}
