//! Secure key release over real HTTPS: a test attestation issuer (ES256) configured as trusted,
//! tokens carrying an RSA wrapping key the test holds, release of an oct and an RSA key, the JWS
//! checked against its x5c leaf and the chain against DATA_DIR/ca.pem with the host name,
//! denials (policy, role, token) and the audit entries.

mod common;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use enclava_server::PartialConfig;
use enclava_server::release::TrustedIssuerConfig;
use enclava_token::{Es256Signer, JtiSource, Jwks, TokenOptions, issue};
use serde_json::{Map, Value, json};
use x509_cert::der::Decode;

const V: &str = "api-version=7.6";
const ISS: &str = "https://attest.release-test.example";

struct Holder {
    pkcs8: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
}

fn holder() -> Holder {
    let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pk = pair.public_key();
    let (n, e) = (
        pk.modulus().big_endian_without_leading_zero().to_vec(),
        pk.exponent().big_endian_without_leading_zero().to_vec(),
    );
    let der: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().unwrap();
    Holder {
        pkcs8: der.as_ref().to_vec(),
        n,
        e,
    }
}

fn start(att: &Es256Signer) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        trusted_issuers: Some(vec![TrustedIssuerConfig {
            issuer: ISS.into(),
            jwks_file: None,
            jwks: Some(Jwks::from_signers(&[att]).unwrap()),
        }]),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut t = start_with(cfg);
    t.dir = dir;
    t
}

fn token(att: &Es256Signer, h: &Holder, jti: &str, extra: Value) -> String {
    let mut c: Map<String, Value> = json!({
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-is-debuggable": false,
        "x-enclava-measurement": "cd".repeat(48),
        "x-ms-runtime": {"keys": [{
            "kty": "RSA", "kid": "holder-1", "key_ops": ["encrypt"],
            "n": URL_SAFE_NO_PAD.encode(&h.n), "e": URL_SAFE_NO_PAD.encode(&h.e)}]},
    })
    .as_object()
    .cloned()
    .unwrap();
    if let Value::Object(e) = extra {
        c.extend(e);
    }
    let mut o = TokenOptions::new(ISS, chrono::Utc::now());
    o.jti = JtiSource::Fixed(jti.into());
    issue(&c, att, &o).unwrap()
}

fn policy_b64() -> String {
    let p = json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"}]}]});
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap())
}

fn unwrap_key_hsm(h: &Holder, key_hsm: &str) -> Vec<u8> {
    let kh: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(key_hsm).unwrap()).unwrap();
    assert_eq!(kh["header"]["enc"], "CKM_RSA_AES_KEY_WRAP");
    assert_eq!(kh["header"]["kid"], "holder-1");
    let ct = URL_SAFE_NO_PAD
        .decode(kh["ciphertext"].as_str().unwrap())
        .unwrap();
    let (head, tail) = ct.split_at(256);
    let sk =
        OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&h.pkcs8).unwrap()).unwrap();
    let mut aes = vec![0u8; 256];
    let aes = sk
        .decrypt(&OAEP_SHA1_MGF1SHA1, head, &mut aes, None)
        .unwrap()
        .to_vec();
    let kek = AesKek::new(&AES_256, &aes).unwrap();
    let mut out = vec![0u8; tail.len()];
    kek.unwrap_with_padding(tail, &mut out).unwrap().to_vec()
}

/// Verify the JWS against its x5c leaf, and the leaf against DATA_DIR/ca.pem for "localhost".
fn check_jws(t: &TestServer, jws: &str) -> (Value, Value) {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    let x5c: Vec<Vec<u8>> = header["x5c"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| STANDARD.decode(c.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(x5c.len(), 2, "leaf and CA");
    use sha2::Digest;
    assert_eq!(
        header["x5t#S256"],
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&x5c[0]))
    );
    // Signature with the leaf's public key.
    let cert = x509_cert::Certificate::from_der(&x5c[0]).unwrap();
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let pkcs1 = spki.subject_public_key.raw_bytes();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("JWS verifies with the x5c leaf");
    // Chain to the server's CA, for the vault's host name.
    let ca_pem = std::fs::read(data_dir_of(t).join("ca.pem")).unwrap();
    assert_eq!(
        x5c[1],
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &ca_pem
        )
        .next()
        .unwrap()
        .unwrap()
        .as_ref(),
        "x5c[1] is DATA_DIR/ca.pem"
    );
    // Issued by ca.pem (its P-256 key verifies the leaf), for the vault's host names, with the
    // release-signing purpose and not TLS's: the release certificate is not a TLS certificate.
    let ca = x509_cert::Certificate::from_der(&x5c[1]).unwrap();
    assert_eq!(cert.tbs_certificate.issuer, ca.tbs_certificate.subject);
    UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        ca.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .verify(
        &x509_cert::der::Encode::to_der(&cert.tbs_certificate).unwrap(),
        cert.signature.raw_bytes(),
    )
    .expect("the release certificate chains to ca.pem");
    let san = cert
        .tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.17")
        .expect("subjectAltName");
    let san = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
    let names: Vec<String> = san
        .0
        .iter()
        .map(|n| match n {
            x509_cert::ext::pkix::name::GeneralName::DnsName(d) => d.to_string(),
            x509_cert::ext::pkix::name::GeneralName::IpAddress(ip) => ip
                .as_bytes()
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join("."),
            _ => String::new(),
        })
        .collect();
    for host in ["localhost", "127.0.0.1"] {
        assert!(names.iter().any(|n| n == host), "{host} in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "evil.example"));
    assert!(enclava_token::eku::cert_has_eku(
        &x5c[0],
        enclava_token::eku::RELEASE_SIGNING_EKU
    ));
    assert!(!enclava_token::eku::cert_has_eku(
        &x5c[0],
        "1.3.6.1.5.5.7.3.1"
    ));
    (header, payload)
}

#[test]
fn release_end_to_end() {
    let att = Es256Signer::generate("att-1").unwrap();
    let t = start(&att);
    let admin = t.admin_token();
    let h = holder();

    // An exportable oct key (imported, so the test knows its material) and an RSA key.
    let k = [0x42u8; 32];
    let r = t.put(
        &format!("/keys/okey?{V}"),
        Some(&admin),
        &json!({"key": {"kty": "oct-HSM", "k": URL_SAFE_NO_PAD.encode(k)},
                "attributes": {"exportable": true}, "release_policy": {"data": policy_b64()}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post(
        &format!("/keys/rkey/create?{V}"),
        Some(&admin),
        &json!({"kty": "RSA-HSM", "key_size": 2048, "attributes": {"exportable": true},
                "release_policy": {"data": policy_b64()}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rsa_n = r.body["key"]["n"].as_str().unwrap().to_string();
    let rsa_kid = r.body["key"]["kid"].as_str().unwrap().to_string();
    let rsa_version = rsa_kid.rsplit('/').next().unwrap().to_string();

    // A Release User (only that role).
    let (id, secret) = t.service_principal(&admin, "workload");
    t.assign(&admin, &id, "ReleaseUser", "/");
    let user = t.token_for(&id, &secret);

    // oct, unversioned (the SDK's //release).
    let r = t.post(
        &format!("/keys/okey//release?{V}"),
        Some(&user),
        &json!({"target": token(&att, &h, "jti-oct-1", json!({})), "nonce": "abc"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, p) = check_jws(&t, r.body["value"].as_str().unwrap());
    assert_eq!(p["request"]["nonce"], "abc");
    assert_eq!(p["request"]["enc"], "CKM_RSA_AES_KEY_WRAP");
    assert_eq!(p["request"]["api-version"], "7.6");
    let key = &p["response"]["key"]["key"];
    assert!(
        key["kid"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/keys/okey/", t.server.base_url))
    );
    assert_eq!(unwrap_key_hsm(&h, key["key_hsm"].as_str().unwrap()), k);

    // RSA, versioned: the PKCS#8 holds the key's modulus.
    let r = t.post(
        &format!("/keys/rkey/{rsa_version}/release?{V}"),
        Some(&user),
        &json!({"target": token(&att, &h, "jti-rsa-1", json!({}))}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, p) = check_jws(&t, r.body["value"].as_str().unwrap());
    let key = &p["response"]["key"]["key"];
    assert_eq!(key["kid"], rsa_kid);
    assert_eq!(key["n"], rsa_n);
    let der = unwrap_key_hsm(&h, key["key_hsm"].as_str().unwrap());
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(
            pair.public_key()
                .modulus()
                .big_endian_without_leading_zero()
        ),
        rsa_n
    );

    // Wrong claims: 403 naming the failed condition.
    let r = t.post(
        &format!("/keys/okey//release?{V}"),
        Some(&user),
        &json!({"target": token(&att, &h, "jti-debug-1", json!({"x-ms-sevsnpvm-is-debuggable": true}))}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "Forbidden");
    assert_eq!(
        r.body["error"]["innererror"]["code"],
        "ReleasePolicyNotSatisfied"
    );
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("x-ms-sevsnpvm-is-debuggable") && msg.contains("true"),
        "{msg}"
    );

    // A token from an untrusted signer claiming the trusted issuer: 403.
    let rogue = Es256Signer::generate("att-1").unwrap();
    let r = t.post(
        &format!("/keys/okey//release?{V}"),
        Some(&user),
        &json!({"target": token(&rogue, &h, "jti-rogue-1", json!({}))}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.body["error"]["innererror"]["code"],
        "InvalidAttestationToken"
    );

    // No Release User role: 403 before the token is looked at (even a garbage one).
    let (id2, secret2) = t.service_principal(&admin, "crypto-only");
    t.assign(&admin, &id2, "CryptoUser", "/");
    let other = t.token_for(&id2, &secret2);
    for target in [
        token(&att, &h, "jti-norole-1", json!({})),
        "garbage".to_string(),
    ] {
        let r = t.post(
            &format!("/keys/okey//release?{V}"),
            Some(&other),
            &json!({ "target": target }),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(r.body["error"]["innererror"]["code"], "ForbiddenByRbac");
    }
    // No access token at all: the 401 challenge.
    let r = t.post(
        &format!("/keys/okey//release?{V}"),
        None,
        &json!({"target": "x"}),
    );
    assert_eq!(r.status, 401);

    // Audit: releases and denials with the token's jti and measurement, never key material.
    let entries = t.audit_entries(&admin);
    let find = |jti: &str| {
        entries
            .iter()
            .find(|e| e["detail"].as_str().is_some_and(|d| d.contains(jti)))
            .cloned()
            .unwrap_or_else(|| panic!("no audit entry with {jti}: {entries:?}"))
    };
    let ok = find("jti=jti-oct-1");
    assert_eq!(ok["action"], "keys/release");
    assert_eq!(ok["object"], "keys/okey");
    assert_eq!(ok["status"], 200);
    assert!(ok["detail"].as_str().unwrap().contains(&"cd".repeat(48)));
    assert_eq!(find("jti=jti-rsa-1")["status"], 200);
    let denied = find("jti=jti-debug-1");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["result"], "denied");
    let rogue = find("jti-rogue-1");
    assert!(rogue["detail"].as_str().unwrap().contains("unverified"));
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains(&URL_SAFE_NO_PAD.encode(k)),
        "no key material in the audit log"
    );
    assert!(!all.contains("eyJ"), "no tokens in the audit log");
}

/// A certificate with a release policy (issue 12): its private key reaches an attested workload
/// through the key of the same name (and only so: the certificate's secret holds no key), and
/// the released key is the certificate's (its public key is the leaf's), so the workload can
/// serve TLS with a certificate chaining to the Enclava issuing CA.
#[test]
fn a_certificate_key_is_released_to_an_attested_workload() {
    let att = Es256Signer::generate("att-1").unwrap();
    let t = start(&att);
    let admin = t.admin_token();
    let h = holder();
    let r = t.post(
        &format!("/certificates/tls/create?{V}"),
        Some(&admin),
        &json!({"policy": {
            "key_props": {"kty": "RSA", "key_size": 2048, "exportable": true,
                "release_policy": {"data": policy_b64()}},
            "x509_props": {"subject": "CN=workload.example.test",
                "sans": {"dns_names": ["workload.example.test"]}},
            "issuer": {"name": "Enclava"}}}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["status"], "inProgress", "{}", r.text);
    let op = t.get(&format!("/certificates/tls/pending?{V}"), Some(&admin));
    assert_eq!(op.body["status"], "completed", "{}", op.text);
    let cert = t.get(&format!("/certificates/tls?{V}"), Some(&admin));
    assert_eq!(cert.status, 200, "{}", cert.text);
    let leaf = STANDARD.decode(cert.body["cer"].as_str().unwrap()).unwrap();
    let version = cert.body["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // The secret has no private key, whoever reads it.
    let s = t.get(&format!("/secrets/tls?{V}"), Some(&admin));
    assert_eq!(s.status, 200, "{}", s.text);
    assert!(!s.body["value"].as_str().unwrap().contains("PRIVATE KEY"));

    let (id, secret) = t.service_principal(&admin, "workload");
    t.assign(&admin, &id, "ReleaseUser", "/keys/tls");
    let user = t.token_for(&id, &secret);
    // Not attested as the policy wants: refused.
    let r = t.post(
        &format!("/keys/tls/{version}/release?{V}"),
        Some(&user),
        &json!({"target": token(&att, &h, "jti-cert-debug", json!({"x-ms-sevsnpvm-is-debuggable": true}))}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // Attested: the key of this certificate version.
    let r = t.post(
        &format!("/keys/tls/{version}/release?{V}"),
        Some(&user),
        &json!({"target": token(&att, &h, "jti-cert-1", json!({}))}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, p) = check_jws(&t, r.body["value"].as_str().unwrap());
    let key = &p["response"]["key"]["key"];
    let der = unwrap_key_hsm(&h, key["key_hsm"].as_str().unwrap());
    assert!(
        enclava_certs::matches_key(&leaf, &der).unwrap(),
        "the released key is the certificate's"
    );
    // And the leaf chains to the issuing CA the server publishes.
    let ca = t.get("/enclava/certificates/ca", None);
    let ca_b64: String = ca
        .text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    enclava_certs::verify_issued_by(&leaf, &STANDARD.decode(ca_b64).unwrap()).unwrap();
}
