//! Service keys (issue 9 items 1 and 11), attacked through the real server over HTTPS: the
//! attestation and release signers and the local CA live in a reserved namespace; a data-plane
//! key of the old signer name has no power; rotation is Administrator-only and audited; an
//! unusable signer is 503; no private key but the TLS key is readable from the data directory;
//! release certificates carry their own purpose and chain to ca.pem.

mod common;

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use enclava_server::PartialConfig;
use enclava_server::attest::AttestationSettings;
use enclava_server::release::TrustedIssuerConfig;
use enclava_store::{Op, Table};
use enclava_token::eku::{ATTESTATION_TOKEN_EKU, RELEASE_SIGNING_EKU, cert_has_eku};
use enclava_token::{Es256Signer, JtiSource, Jwks, TokenOptions, issue};
use serde_json::{Map, Value, json};
use sha2::Digest;
use x509_cert::der::{Decode, Encode};

const V: &str = "api-version=7.5";
const ISS: &str = "https://attest.service-keys-test.example";

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn sim_policy() -> String {
    format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n{}\n",
        r#"deny contains {"rule": "tee", "path": "claims.tee", "expected": "sim", "found": input.claims.tee} if input.claims.tee != "sim""#
    )
}

/// A sim attestation request bound to nothing (evidence generated now).
fn sim_request() -> Value {
    let report_data = [0u8; 64];
    let ev = enclava_evidence::sim::generate(&[7u8; 48], &report_data, chrono::Utc::now());
    json!({"tee": "sim", "evidence": b64u(&ev)})
}

fn allow_sim(t: &TestServer, admin: &str) {
    let r = t.call(
        "PUT",
        "/policies/sim",
        Some(admin),
        Some(json!({"policy": sim_policy()}).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

fn attest_ok(t: &TestServer) -> String {
    let r = t.post("/attest/native", None, &sim_request());
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["token"].as_str().unwrap().to_string()
}

fn header_of(jws: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jws.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn kids(t: &TestServer) -> Vec<String> {
    let r = t.get("/certs", None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// A dev server that also trusts a test issuer (so release requests reach the signer).
fn start_dev_with_issuer(att: &Es256Signer, dev: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(dev),
        trusted_issuers: Some(vec![TrustedIssuerConfig {
            issuer: ISS.into(),
            jwks_file: None,
            jwks: Some(Jwks::from_signers(&[att]).unwrap()),
        }]),
        attestation: Some(AttestationSettings {
            allow_sim: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut t = start_with(cfg);
    t.dir = dir;
    t
}

/// A test-issuer token carrying an RSA wrapping key (release answers need one).
fn release_token(att: &Es256Signer) -> String {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pk = pair.public_key();
    let c: Map<String, Value> = json!({
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-is-debuggable": false,
        "x-ms-runtime": {"keys": [{
            "kty": "RSA", "kid": "holder-1", "key_ops": ["encrypt"],
            "n": b64u(pk.modulus().big_endian_without_leading_zero()),
            "e": b64u(pk.exponent().big_endian_without_leading_zero())}]},
    })
    .as_object()
    .cloned()
    .unwrap();
    let mut o = TokenOptions::new(ISS, chrono::Utc::now());
    o.jti = JtiSource::Random;
    issue(&c, att, &o).unwrap()
}

fn policy_b64() -> String {
    let p = json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]});
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap())
}

/// An exportable key `rel` with a release policy for the test issuer; returns the release path.
fn releasable_key(t: &TestServer, admin: &str) -> String {
    let r = t.put(
        &format!("/keys/rel?{V}"),
        Some(admin),
        &json!({"key": {"kty": "oct-HSM", "k": b64u(&[0x42u8; 32])},
                "attributes": {"exportable": true}, "release_policy": {"data": policy_b64()}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    format!("/keys/rel//release?{V}")
}

fn x5c_ders(jws_or_jwk_x5c: &Value) -> Vec<Vec<u8>> {
    jws_or_jwk_x5c
        .as_array()
        .unwrap()
        .iter()
        .map(|c| STANDARD.decode(c.as_str().unwrap()).unwrap())
        .collect()
}

fn ca_der(t: &TestServer) -> Vec<u8> {
    let pem = std::fs::read(data_dir_of(t).join("ca.pem")).unwrap();
    <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// `leaf` names ca.pem's subject as issuer and ca.pem's P-256 key verifies its signature.
fn issued_by(leaf: &[u8], ca: &[u8]) -> bool {
    let leaf = x509_cert::Certificate::from_der(leaf).unwrap();
    let ca = x509_cert::Certificate::from_der(ca).unwrap();
    if leaf.tbs_certificate.issuer != ca.tbs_certificate.subject {
        return false;
    }
    let tbs = leaf.tbs_certificate.to_der().unwrap();
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        ca.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .verify(&tbs, leaf.signature.raw_bytes())
    .is_ok()
}

const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";

#[test]
fn a_data_plane_key_named_like_the_old_signer_has_no_power() {
    let t = start_dev_with_issuer(&Es256Signer::generate("att").unwrap(), true);
    let admin = t.admin_token();
    allow_sim(&t, &admin);
    // No service key is a vault key: the data plane lists none.
    let r = t.get(&format!("/keys?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"], json!([]), "{}", r.text);
    let r = t.get(
        &format!("/keys/enclava-attestation-es256?{V}"),
        Some(&admin),
    );
    assert_eq!(r.status, 404, "{}", r.text);

    let service_kids = kids(&t);
    let genuine = attest_ok(&t);
    assert_eq!(header_of(&genuine)["kid"], json!(service_kids[0]));

    // A Crypto Officer and a Crypto User at "/".
    let (officer_id, officer_secret) = t.service_principal(&admin, "officer");
    t.assign(&admin, &officer_id, "CryptoOfficer", "/");
    let officer = t.token_for(&officer_id, &officer_secret);
    let (user_id, user_secret) = t.service_principal(&admin, "user");
    t.assign(&admin, &user_id, "CryptoUser", "/");
    let user = t.token_for(&user_id, &user_secret);

    // The officer imports a P-256 key it knows under the old signer name.
    let known =
        EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = known.public_key().as_ref().to_vec();
    let d = known.private_key().as_be_bytes().unwrap();
    let r = t.put(
        &format!("/keys/enclava-attestation-es256?{V}"),
        Some(&officer),
        &json!({"key": {"kty": "EC", "crv": "P-256", "x": b64u(&point[1..33]),
                "y": b64u(&point[33..65]), "d": b64u(d.as_ref()), "key_ops": ["sign", "verify"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let version = r.body["key"]["kid"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();

    // The user mints an "attestation token" with it through the data plane.
    let claims = json!({
        "iss": t.server.base_url, "iat": chrono::Utc::now().timestamp(),
        "nbf": chrono::Utc::now().timestamp(), "exp": chrono::Utc::now().timestamp() + 300,
        "x-ms-attestation-type": "sevsnpvm", "x-ms-sevsnpvm-is-debuggable": false,
        "x-enclava-tee": "snp",
    });
    let input = format!(
        "{}.{}",
        b64u(
            json!({"alg": "ES256", "typ": "JWT", "kid": version})
                .to_string()
                .as_bytes()
        ),
        b64u(claims.to_string().as_bytes())
    );
    let r = t.post(
        &format!("/keys/enclava-attestation-es256/{version}/sign?{V}"),
        Some(&user),
        &json!({"alg": "ES256", "value": b64u(&sha2::Sha256::digest(input.as_bytes()))}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let forged = format!("{input}.{}", r.body["value"].as_str().unwrap());

    // Not published, not trusted for release, refused by a verifier using /certs.
    assert!(!kids(&t).contains(&version));
    let jwks: Jwks = serde_json::from_value(t.get("/certs", None).body).unwrap();
    assert!(
        enclava_token::verify(
            &forged,
            &jwks,
            &enclava_token::Expectations::new(t.server.base_url.clone(), chrono::Utc::now())
        )
        .is_err()
    );
    assert!(
        t.server
            .state
            .trusted_issuers
            .verify(&forged, chrono::Utc::now())
            .is_err()
    );
    t.server
        .state
        .trusted_issuers
        .verify(&genuine, chrono::Utc::now())
        .expect("a genuine token is trusted");
    // Through the release route: the genuine token reaches the key lookup (404), the forged
    // one is refused as a token.
    let r = t.post(
        &format!("/keys/nokey//release?{V}"),
        Some(&admin),
        &json!({"target": genuine}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = t.post(
        &format!("/keys/nokey//release?{V}"),
        Some(&admin),
        &json!({"target": forged}),
    );
    assert!(
        (400..500).contains(&r.status) && r.status != 404,
        "{} {}",
        r.status,
        r.text
    );

    // The officer disables it: attestation does not care.
    let r = t.call(
        "PATCH",
        &format!("/keys/enclava-attestation-es256/{version}?{V}"),
        Some(&officer),
        Some(
            json!({"attributes": {"enabled": false}})
                .to_string()
                .as_bytes(),
        ),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let after = attest_ok(&t);
    assert_eq!(header_of(&after)["kid"], json!(service_kids[0]));
    assert_eq!(kids(&t), service_kids);
}

#[test]
fn rotation_is_an_administrator_action_and_audited() {
    let att = Es256Signer::generate("att").unwrap();
    let t = start_dev_with_issuer(&att, true);
    let admin = t.admin_token();
    allow_sim(&t, &admin);
    let old_token = attest_ok(&t);
    let before = kids(&t);
    assert_eq!(before.len(), 1);

    // Not even a Crypto Officer or a policy manager at "/".
    let (id, secret) = t.service_principal(&admin, "officer");
    t.assign(&admin, &id, "CryptoOfficer", "/");
    let officer = t.token_for(&id, &secret);
    for path in [
        "/enclava/attestation/rotate",
        "/enclava/service-keys/attestation/rotate",
        "/enclava/service-keys/release/rotate",
    ] {
        let r = t.post(path, None, &json!({}));
        assert_eq!(r.status, 401, "{path}: {}", r.text);
        let r = t.post(path, Some(&officer), &json!({}));
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(r.text.contains("service-keys/rotate"), "{}", r.text);
    }
    let r = t.post("/enclava/service-keys/tls/rotate", Some(&admin), &json!({}));
    assert_eq!(r.status, 404, "{}", r.text);

    // The administrator rotates: a new kid first, the old one still listed, old tokens verify.
    let r = t.post(
        "/enclava/service-keys/attestation/rotate",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let new_kid = r.body["kid"].as_str().unwrap().to_string();
    let after = kids(&t);
    assert_eq!(after, vec![new_kid.clone(), before[0].clone()]);
    t.server
        .state
        .trusted_issuers
        .verify(&old_token, chrono::Utc::now())
        .expect("tokens of the previous key stay trusted");
    assert_eq!(header_of(&attest_ok(&t))["kid"], json!(new_kid));
    // The old route does the same; the ring keeps 2 previous keys.
    for _ in 0..2 {
        let r = t.post("/enclava/attestation/rotate", Some(&admin), &json!({}));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let ks = kids(&t);
    assert_eq!(ks.len(), 3, "{ks:?}");
    assert!(!ks.contains(&before[0]), "{ks:?}");
    // The x5c of the signer: issued by ca.pem, attestation-token purpose only.
    let jwk = &t.get("/certs", None).body["keys"][0];
    let x5c = x5c_ders(&jwk["x5c"]);
    assert_eq!(x5c[1], ca_der(&t));
    assert!(issued_by(&x5c[0], &x5c[1]));
    assert!(cert_has_eku(&x5c[0], ATTESTATION_TOKEN_EKU));
    assert!(!cert_has_eku(&x5c[0], RELEASE_SIGNING_EKU));
    assert!(!cert_has_eku(&x5c[0], SERVER_AUTH));

    // The release signer rotates too: the next release answer carries the new certificate.
    let release = releasable_key(&t, &admin);
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let leaf_before = x5c_ders(&header_of(r.body["value"].as_str().unwrap())["x5c"])[0].clone();
    let r = t.post(
        "/enclava/service-keys/release/rotate",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated_leaf = x5c_ders(&r.body["x5c"])[0].clone();
    assert_ne!(rotated_leaf, leaf_before);
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let x5c = x5c_ders(&header_of(r.body["value"].as_str().unwrap())["x5c"]);
    assert_eq!(x5c[0], rotated_leaf);

    // Audited as the operator action.
    let entries = t.audit_entries(&admin);
    let rotations: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "service-keys/rotate")
        .collect();
    assert!(
        rotations.iter().any(|e| e["object"]
            .as_str()
            .unwrap_or("")
            .contains("service-keys/attestation")
            && e["result"] == "allowed"),
        "{rotations:?}"
    );
    assert!(
        rotations.iter().any(|e| e["object"]
            .as_str()
            .unwrap_or("")
            .contains("service-keys/release")),
        "{rotations:?}"
    );
    assert!(
        rotations
            .iter()
            .any(|e| e["result"] == "denied" && e["status"] == 403),
        "the refused attempts are audited too: {rotations:?}"
    );
}

fn init_and_unseal(t: &TestServer) -> String {
    // The server's own data directory (some tests start it on a directory of their own).
    let init_token = std::fs::read_to_string(t.server.state.config.data_dir.join("init.token"))
        .expect("init.token");
    let r = t.post(
        "/operator/init",
        Some(init_token.trim()),
        &json!({"shares": 1, "threshold": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let share = r.body["shares"][0].as_str().unwrap().to_string();
    let r = t.post("/operator/unseal", None, &json!({"share": share}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sealed"], false, "{}", r.text);
    share
}

/// Every file under `dir` that holds a PEM private key, except `tls-key.pem`.
fn private_keys_on_disk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.file_name().is_some_and(|n| n == "tls-key.pem") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default();
            if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn nothing_to_forge_with_is_on_disk_and_the_release_cert_has_its_own_purpose() {
    let att = Es256Signer::generate("att").unwrap();
    let t = start_dev_with_issuer(&att, false);
    let data = data_dir_of(&t);
    // Before init the CA key is only in memory.
    assert!(!data.join("ca-key.pem").exists());
    assert_eq!(private_keys_on_disk(&data), Vec::<String>::new());
    let share = init_and_unseal(&t);
    let admin = t.admin_token();
    assert!(!data.join("ca-key.pem").exists());

    // A release answer: signed by the release key, certificate from ca.pem, release purpose only.
    let release = releasable_key(&t, &admin);
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let jws = r.body["value"].as_str().unwrap().to_string();
    let x5c = x5c_ders(&header_of(&jws)["x5c"]);
    assert_eq!(x5c[1], ca_der(&t));
    assert!(
        issued_by(&x5c[0], &x5c[1]),
        "the release leaf chains to ca.pem"
    );
    assert!(cert_has_eku(&x5c[0], RELEASE_SIGNING_EKU));
    assert!(!cert_has_eku(&x5c[0], SERVER_AUTH));
    // The TLS certificate has TLS's purpose only: it is no release signer.
    let tls_pem = std::fs::read(data.join("tls-cert.pem")).unwrap();
    let tls_leaf =
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &tls_pem,
        )
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    assert!(issued_by(&tls_leaf, &x5c[1]));
    assert!(cert_has_eku(&tls_leaf, SERVER_AUTH));
    assert!(!cert_has_eku(&tls_leaf, RELEASE_SIGNING_EKU));

    // Seal: nothing in the data directory but the TLS key is a private key; the sealed rows
    // hold no PEM and no DER key in clear.
    let r = t.post("/operator/seal", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(private_keys_on_disk(&data), Vec::<String>::new());
    assert!(!data.join("ca-key.pem").exists());
    for row in [
        enclava_server::service_keys::CA_META,
        "service-keys/attestation-rs256",
        "service-keys/release-rs256",
    ] {
        let v = t
            .server
            .state
            .store
            .get(Table::Meta, row)
            .unwrap()
            .unwrap_or_else(|| panic!("{row} exists"));
        assert!(!v.windows(11).any(|w| w == b"PRIVATE KEY"), "{row}");
    }
    let _ = share;
}

#[test]
fn the_ca_survives_a_restart_sealed_and_a_legacy_ca_key_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        PartialConfig {
            addr: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data")),
            dev: Some(false),
            ..Default::default()
        }
        .resolve()
        .unwrap()
    };
    let t = start_with(cfg());
    let fp = t.server.ca_fingerprint.clone().unwrap();
    let share = init_and_unseal(&t);
    let data = data_dir_of_path(dir.path());
    t.server.shutdown(std::time::Duration::from_secs(1));
    drop(t);

    // Restart: sealed, same CA, TLS works (the harness trusts ca.pem), no key on disk.
    let t = start_with(cfg());
    assert_eq!(t.server.ca_fingerprint.as_deref(), Some(fp.as_str()));
    assert_eq!(t.get("/healthz", None).status, 200);
    assert!(!data.join("ca-key.pem").exists());
    let r = t.post("/operator/unseal", None, &json!({"share": share}));
    assert_eq!(r.status, 200, "{}", r.text);
    let jwk = &t.get("/certs", None).body["keys"][0];
    let x5c = x5c_ders(&jwk["x5c"]);
    assert!(
        issued_by(&x5c[0], &ca_der_of(&data)),
        "the sealed CA opened"
    );
    t.server.shutdown(std::time::Duration::from_secs(1));
    drop(t);

    // An older version's layout: a ca-key.pem next to ca.pem. It is read, sealed at the next
    // unseal and deleted.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_data = fresh.path().join("data");
    std::fs::create_dir_all(&fresh_data).unwrap();
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    // As older versions made it (tls.rs's CA parameters).
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Enclava");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Enclava local CA");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = p.self_signed(&ca_key).unwrap();
    std::fs::write(fresh_data.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(fresh_data.join("ca-key.pem"), ca_key.serialize_pem()).unwrap();
    let cfg2 = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(fresh_data.clone()),
        dev: Some(false),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let t = start_with(cfg2);
    assert!(!t.server.created_ca);
    assert!(fresh_data.join("ca-key.pem").exists(), "kept until sealed");
    init_and_unseal(&t);
    assert!(
        !fresh_data.join("ca-key.pem").exists(),
        "migrated and deleted"
    );
    assert_eq!(private_keys_on_disk(&fresh_data), Vec::<String>::new());
    let jwk = &t.get("/certs", None).body["keys"][0];
    let x5c = x5c_ders(&jwk["x5c"]);
    assert_eq!(x5c[1], ca.der().to_vec());
    assert!(issued_by(&x5c[0], ca.der()), "the migrated CA signs");
}

fn data_dir_of_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("data")
}

fn ca_der_of(data: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read(data.join("ca.pem")).unwrap();
    <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[test]
fn an_unusable_signer_is_503_and_an_administrator_rotation_recovers() {
    let att = Es256Signer::generate("att").unwrap();
    let t = start_dev_with_issuer(&att, false);
    let share = init_and_unseal(&t);
    let admin = t.admin_token();
    let release = releasable_key(&t, &admin);
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(t.get("/certs", None).status, 200);

    // Someone with database access overwrites the sealed rows.
    for row in [
        "service-keys/attestation-rs256",
        "service-keys/release-rs256",
    ] {
        t.server
            .state
            .store
            .transact(vec![Op::Put {
                table: Table::Meta,
                key: row.into(),
                value: b"garbage".to_vec(),
            }])
            .unwrap();
    }
    let r = t.post("/operator/seal", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post("/operator/unseal", None, &json!({"share": share}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sealed"], false);

    for (m, p) in [
        ("GET", "/certs"),
        ("POST", "/attest/native"),
        ("GET", "/.well-known/openid-configuration"),
    ] {
        let body = sim_request().to_string();
        let r = t.call(m, p, None, (m == "POST").then_some(body.as_bytes()), &[]);
        assert_eq!(r.status, 503, "{p}: {}", r.text);
        assert_eq!(r.code(), "signer_unavailable", "{p}: {}", r.text);
    }
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code(), "signer_unavailable", "{}", r.text);
    assert!(!r.text.contains("garbage"));

    // The operator's way out: rotate.
    for kind in ["attestation", "release"] {
        let r = t.post(
            &format!("/enclava/service-keys/{kind}/rotate"),
            Some(&admin),
            &json!({}),
        );
        assert_eq!(r.status, 200, "{kind}: {}", r.text);
    }
    assert_eq!(t.get("/certs", None).status, 200);
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The release handler reuses its parsed signer between requests (the RSA key is not unsealed
/// and parsed per release). Attack: someone with database access changes the rows that signer
/// came from while the server keeps running (no seal, no restart). Each change must be seen by
/// the very next release: a replaced certificate row is re-issued from the sealed key, a
/// destroyed key ring is 503 `signer_unavailable` instead of answers signed by the cached key,
/// and a sealed vault releases nothing.
#[test]
fn a_reused_release_signer_never_outlives_the_rows_it_came_from() {
    let att = Es256Signer::generate("att").unwrap();
    let t = start_dev_with_issuer(&att, false);
    let share = init_and_unseal(&t);
    let admin = t.admin_token();
    let release = releasable_key(&t, &admin);
    let release_leaf = |t: &TestServer| {
        let r = t.post(
            &release,
            Some(&admin),
            &json!({"target": release_token(&att)}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        x5c_ders(&header_of(r.body["value"].as_str().unwrap())["x5c"])
    };
    let first = release_leaf(&t);
    assert_eq!(release_leaf(&t), first, "same key, same certificate");
    let cert_row = |t: &TestServer| {
        t.server
            .state
            .store
            .get(Table::Meta, enclava_server::release::RELEASE_CERT_META)
            .unwrap()
    };
    let stored_cert = cert_row(&t).expect("the certificate row exists after a release");

    // 1. The certificate row is replaced by another (valid JSON, wrong binding and chain).
    let forged = json!({"binding": "forged", "x5c": [STANDARD.encode(b"not a certificate")]});
    t.server
        .state
        .store
        .transact(vec![Op::Put {
            table: Table::Meta,
            key: enclava_server::release::RELEASE_CERT_META.into(),
            value: serde_json::to_vec(&forged).unwrap(),
        }])
        .unwrap();
    let reissued = release_leaf(&t);
    assert!(issued_by(&reissued[0], &ca_der(&t)), "re-issued by ca.pem");
    assert!(cert_has_eku(&reissued[0], RELEASE_SIGNING_EKU));
    assert_ne!(cert_row(&t).unwrap(), serde_json::to_vec(&forged).unwrap());
    assert_ne!(cert_row(&t), Some(stored_cert));

    // 2. The sealed key ring is destroyed: the cached signer must not keep signing.
    t.server
        .state
        .store
        .transact(vec![Op::Put {
            table: Table::Meta,
            key: "service-keys/release-rs256".into(),
            value: b"garbage".to_vec(),
        }])
        .unwrap();
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code(), "signer_unavailable", "{}", r.text);

    // 3. An Administrator rotation recovers, with a new key and certificate.
    let r = t.post(
        "/enclava/service-keys/release/rotate",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = release_leaf(&t);
    assert_ne!(rotated[0], first[0]);
    assert_ne!(rotated[0], reissued[0]);

    // 4. Sealed: nothing is released with the cached signer.
    let r = t.post("/operator/seal", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post(
        &release,
        Some(&admin),
        &json!({"target": release_token(&att)}),
    );
    assert!(
        r.status == 503 || r.status == 401,
        "{}: {}",
        r.status,
        r.text
    );
    assert!(r.body.get("value").is_none(), "{}", r.text);
    let r = t.post("/operator/unseal", None, &json!({"share": share}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(release_leaf(&t)[0], rotated[0]);
}
