//! Key Vault certificates through the real server over HTTPS: every route's happy path and its
//! errors, RBAC per built-in role, managed keys and secrets, the Enclava issuing CA (public
//! certificate, sealed key, never the TLS CA) and renewal by the maintenance task.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Resp, TestServer, data_dir_of, start_dev};
use serde_json::{Value, json};

const V: &str = "api-version=7.6";

fn q(path: &str) -> String {
    if path.contains('?') {
        format!("{path}&{V}")
    } else {
        format!("{path}?{V}")
    }
}

fn call(t: &TestServer, m: &str, path: &str, token: &str, body: Option<&Value>) -> Resp {
    let b = body.map(|b| serde_json::to_vec(b).expect("json"));
    t.call(m, &q(path), Some(token), b.as_deref(), &[])
}

fn policy(issuer: &str) -> Value {
    json!({
        "key_props": {"kty": "EC", "crv": "P-256", "exportable": true, "reuse_key": false},
        "secret_props": {"contentType": "application/x-pkcs12"},
        "x509_props": {"subject": "CN=app.example.test, O=Test", "sans": {"dns_names": ["app.example.test"]}, "validity_months": 12},
        "issuer": {"name": issuer}
    })
}

fn create(t: &TestServer, token: &str, name: &str, issuer: &str) -> Resp {
    call(
        t,
        "POST",
        &format!("/certificates/{name}/create"),
        token,
        Some(&json!({"policy": policy(issuer)})),
    )
}

/// The status of the create operation of `name` (what the SDK pollers read).
fn pending(t: &TestServer, token: &str, name: &str) -> String {
    let r = call(
        t,
        "GET",
        &format!("/certificates/{name}/pending"),
        token,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["status"].as_str().expect("status").to_string()
}

fn der_of(bundle: &Value) -> Vec<u8> {
    STANDARD
        .decode(bundle["cer"].as_str().expect("cer"))
        .expect("cer is base64")
}

/// The served issuing CA certificate (DER).
fn issuing_ca(t: &TestServer) -> Vec<u8> {
    let r = t.get("/enclava/certificates/ca", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.contains("pem-file")),
        "{:?}",
        r.headers
    );
    assert!(!r.text.contains("PRIVATE"), "{}", r.text);
    let certs = pem_certs(&r.text);
    assert_eq!(certs.len(), 1, "exactly the CA certificate: {}", r.text);
    certs.into_iter().next().expect("one")
}

/// The CERTIFICATE blocks of a PEM text (DER), read independently of the server's PEM code.
fn pem_certs(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b64 = cur.take().expect("BEGIN before END");
            out.push(STANDARD.decode(b64).expect("PEM base64"));
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

/// Sign a PKCS#10 request (DER) with OpenSSL as an outside CA would (the CA itself made with
/// enclava-certs): returns (leaf DER, CA DER). `None` when `openssl` is missing (required in CI).
fn outside_ca_signs(csr: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "openssl is required in CI");
        return None;
    }
    let key = enclava_certs::generate(enclava_certs::KeySpec::Ec {
        curve: enclava_certs::EcCurve::P384,
    })
    .expect("CA key");
    let now = chrono::Utc::now().timestamp();
    let ca = enclava_certs::new_issuing_ca(&key, "Outside CA", now - 60, now + 86_400).expect("CA");
    let dir = tempfile::tempdir().expect("tmp");
    let bundle = dir.path().join("ca-bundle.pem");
    std::fs::write(
        &bundle,
        enclava_certs::pem::build(Some(&key), std::slice::from_ref(&ca)).as_bytes(),
    )
    .expect("write CA");
    let csr_path = dir.path().join("req.der");
    std::fs::write(&csr_path, csr).expect("write CSR");
    let out = dir.path().join("leaf.der");
    let status = std::process::Command::new("openssl")
        .args(["x509", "-req", "-inform", "DER", "-in"])
        .arg(&csr_path)
        .arg("-CA")
        .arg(&bundle)
        .arg("-CAkey")
        .arg(&bundle)
        .args([
            "-set_serial",
            "4242",
            "-days",
            "5",
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&out)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    Some((std::fs::read(&out).expect("leaf"), ca))
}

fn principal_with(t: &TestServer, admin: &str, name: &str, roles: &[(&str, &str)]) -> String {
    let (id, secret) = t.service_principal(admin, name);
    for (role, scope) in roles {
        t.assign(admin, &id, role, scope);
    }
    t.token_for(&id, &secret)
}

fn all_files(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            all_files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push(b);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn issuing_ca_is_public_sealed_and_not_the_tls_ca() {
    let t = start_dev();
    let ca = issuing_ca(&t);
    let parsed = enclava_certs::ParsedCertificate::from_der(&ca).expect("CA parses");
    assert!(parsed.is_ca);
    assert!(
        parsed.subject.contains("Enclava Certificate Issuing CA"),
        "{}",
        parsed.subject
    );
    // Never the local CA that issues the server's TLS certificate.
    let tls_ca = std::fs::read_to_string(data_dir_of(&t).join("ca.pem")).expect("ca.pem");
    let tls_ca = pem_certs(&tls_ca).into_iter().next().expect("ca.pem");
    assert_ne!(ca, tls_ca);
    // Key and certificate are sealed together: no file of the data directory holds the CA's
    // certificate in clear (before any certificate was issued, whose chain is public data).
    let mut files = Vec::new();
    all_files(&data_dir_of(&t), &mut files);
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|f| !contains(f, &ca[..64])),
        "the issuing CA row must be sealed in the data directory"
    );
    // Not a Key Vault object: no key, secret or certificate route reaches it.
    let admin = t.admin_token();
    for path in [
        "/keys/enclava-certificate-issuing-ca",
        "/secrets/enclava-certificate-issuing-ca",
        "/certificates/enclava-certificate-issuing-ca",
    ] {
        let r = call(&t, "GET", path, &admin, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    // Stable: created once, then the same certificate.
    let again = issuing_ca(&t);
    assert_eq!(again, ca);
    // Wrong method.
    let r = t.post("/enclava/certificates/ca", None, &json!({}));
    assert_eq!(r.status, 405);
    // Public and static like the OpenAPI document: fetching it does not grow the audit log.
    let before = t.audit_entries(&admin).len();
    for _ in 0..20 {
        assert_eq!(t.get("/enclava/certificates/ca", None).status, 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = t.audit_entries(&admin).len();
    assert!(after <= before + 2, "{before} -> {after} entries");
    // Open only while unsealed: sealing forgets it.
    let r = t.post("/operator/seal", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.get("/enclava/certificates/ca", None);
    assert_eq!(r.status, 503, "{}", r.text);
}

#[test]
fn self_and_enclava_issued_certificates_with_their_key_and_secret() {
    let t = start_dev();
    let admin = t.admin_token();
    let ca = issuing_ca(&t);

    // Self-signed: completes in the request; Location names the pending operation.
    let r = create(&t, &admin, "web", "Self");
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.body["status"], "inProgress",
        "the create answers inProgress, as Key Vault: {}",
        r.text
    );
    assert_eq!(pending(&t, &admin, "web"), "completed");
    assert!(
        r.header("location")
            .is_some_and(|l| l.contains("/certificates/web/pending")),
        "{:?}",
        r.headers
    );
    let op = call(&t, "GET", "/certificates/web/pending", &admin, None);
    assert_eq!(op.status, 200, "{}", op.text);
    assert_eq!(op.body["status"], "completed");
    let cert = call(&t, "GET", "/certificates/web/", &admin, None);
    assert_eq!(cert.status, 200, "{}", cert.text);
    let kid = cert.body["kid"].as_str().expect("kid");
    let sid = cert.body["sid"].as_str().expect("sid");
    let id = cert.body["id"].as_str().expect("id");
    let version = id.rsplit('/').next().expect("version");
    assert!(kid.ends_with(&format!("/keys/web/{version}")), "{kid}");
    assert!(sid.ends_with(&format!("/secrets/web/{version}")), "{sid}");
    assert!(cert.body["policy"].is_object(), "latest carries the policy");
    let leaf = der_of(&cert.body);
    let p = enclava_certs::ParsedCertificate::from_der(&leaf).expect("leaf");
    assert!(p.self_issued);
    assert_eq!(cert.body["x5t"], p.x5t);

    // The secret is the PFX with the private key of the certificate.
    let s = call(&t, "GET", "/secrets/web", &admin, None);
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.body["contentType"], "application/x-pkcs12");
    assert_eq!(s.body["managed"], true);
    let pfx = STANDARD
        .decode(s.body["value"].as_str().expect("value"))
        .expect("base64 PFX");
    let kc = enclava_certs::pfx::parse(&pfx, None).expect("PFX opens without a password");
    assert_eq!(kc.chain[0], leaf);
    assert!(enclava_certs::matches_key(&leaf, &kc.key_pkcs8).expect("match"));

    // Enclava-issued: chains to the served issuing CA.
    let r = create(&t, &admin, "svc", "Enclava");
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.body["status"], "inProgress",
        "the create answers inProgress, as Key Vault: {}",
        r.text
    );
    assert_eq!(pending(&t, &admin, "svc"), "completed");
    let cert = call(&t, "GET", "/certificates/svc", &admin, None);
    assert_eq!(cert.status, 200, "{}", cert.text);
    let leaf = der_of(&cert.body);
    enclava_certs::verify_issued_by(&leaf, &ca).expect("leaf verifies to the served CA");
    let p = enclava_certs::ParsedCertificate::from_der(&leaf).expect("leaf");
    assert!(!p.is_ca);
    assert!(p.sans.dns_names.iter().any(|d| d == "app.example.test"));
    let s = call(&t, "GET", "/secrets/svc", &admin, None);
    let pfx = STANDARD
        .decode(s.body["value"].as_str().expect("value"))
        .expect("base64 PFX");
    let kc = enclava_certs::pfx::parse(&pfx, None).expect("PFX");
    assert_eq!(kc.chain.first(), Some(&leaf));
    assert!(kc.chain.contains(&ca), "the chain ends with the issuing CA");
    // The only key in it is the leaf's, never the CA's.
    assert!(enclava_certs::matches_key(&leaf, &kc.key_pkcs8).expect("match"));
    assert!(!enclava_certs::matches_key(&ca, &kc.key_pkcs8).expect("match"));

    // Listing, versions, policy; GET /certificates with Key Vault api-versions is Key Vault's.
    for v in ["7.6", "2025-07-01", "2026-04-01"] {
        let r = t.get(&format!("/certificates?api-version={v}"), Some(&admin));
        assert_eq!(r.status, 200, "{v}: {}", r.text);
        let ids: Vec<&str> = r.body["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert!(
            ids.iter().any(|i| i.ends_with("/certificates/web")),
            "{ids:?}"
        );
        assert!(
            ids.iter().any(|i| i.ends_with("/certificates/svc")),
            "{ids:?}"
        );
    }
    // With an MAA api-version the same path stays MAA's policy management certificates.
    let r = t.get("/certificates?api-version=2022-08-01", Some(&admin));
    assert!(r.body.get("token").is_some(), "{}", r.text);
    let r = call(&t, "GET", "/certificates/web/versions", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"].as_array().expect("value").len(), 1);
    let r = call(&t, "GET", "/certificates/web/policy", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["issuer"]["name"], "Self");
    let r = call(
        &t,
        "PATCH",
        "/certificates/web/policy",
        &admin,
        Some(&json!({"x509_props": {"validity_months": 6}})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["x509_props"]["validity_months"], 6);
    let r = call(
        &t,
        "PATCH",
        &format!("/certificates/web/{version}"),
        &admin,
        Some(&json!({"tags": {"env": "test"}})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["tags"]["env"], "test");
    // A second create is a new version.
    let r = create(&t, &admin, "web", "Self");
    assert_eq!(r.status, 202, "{}", r.text);
    let r = call(&t, "GET", "/certificates/web/versions", &admin, None);
    assert_eq!(r.body["value"].as_array().expect("value").len(), 2);
    let old = call(
        &t,
        "GET",
        &format!("/certificates/web/{version}"),
        &admin,
        None,
    );
    assert_eq!(old.status, 200, "{}", old.text);

    // Audit: the create is recorded with the certificate as object.
    let entries = t.audit_entries(&admin);
    // The create commits with its audit entry (action and object named, as for keys).
    assert!(
        entries.iter().any(|e| e["action"] == "certificates/create"
            && e["object"] == "certificates/svc"
            && e["status"] == 202),
        "no audit entry for the create"
    );
}

#[test]
fn managed_key_and_secret_are_read_only_and_the_key_signs() {
    let t = start_dev();
    let admin = t.admin_token();
    let r = create(&t, &admin, "tls", "Self");
    assert_eq!(r.status, 202, "{}", r.text);
    let body = json!({"value": "x"});
    for (m, path, b) in [
        ("DELETE", "/keys/tls", None),
        ("DELETE", "/secrets/tls", None),
        ("PUT", "/secrets/tls", Some(&body)),
        ("POST", "/keys/tls/rotate", None),
        ("PATCH", "/secrets/tls", Some(&json!({"tags": {"a": "b"}}))),
    ] {
        let r = call(&t, m, path, &admin, b);
        assert_eq!(r.status, 403, "{m} {path}: {}", r.text);
        assert_eq!(r.code(), "Forbidden", "{m} {path}: {}", r.text);
        assert!(r.text.contains("certificate"), "{m} {path}: {}", r.text);
    }
    // Still there.
    assert_eq!(call(&t, "GET", "/keys/tls", &admin, None).status, 200);
    assert_eq!(call(&t, "GET", "/secrets/tls", &admin, None).status, 200);
    // The key signs (Crypto User on the key of the same name).
    let crypto = principal_with(&t, &admin, "crypto", &[("CryptoUser", "/keys/tls")]);
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let r = call(
        &t,
        "POST",
        "/keys/tls/sign",
        &crypto,
        Some(&json!({"alg": "ES256", "value": digest})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["value"].is_string());
}

#[test]
fn roles_decide_per_certificate_action() {
    let t = start_dev();
    let admin = t.admin_token();
    let officer = principal_with(
        &t,
        &admin,
        "officer",
        &[("Key Vault Certificates Officer", "/")],
    );
    let user = principal_with(&t, &admin, "user", &[("Key Vault Certificate User", "/")]);
    let secrets = principal_with(&t, &admin, "secrets", &[("SecretsUser", "/")]);
    let crypto_officer = principal_with(&t, &admin, "co", &[("CryptoOfficer", "/")]);

    // Certificates Officer: creates, reads, manages issuers and contacts ...
    let r = create(&t, &officer, "c1", "Self");
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/certificates/c1", &officer, None).status,
        200
    );
    let r = call(
        &t,
        "PUT",
        "/certificates/contacts",
        &officer,
        Some(&json!({"contacts": [{"email": "ops@example.test"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // ... but cannot read the private key (the secret's value) nor use the key.
    let r = call(&t, "GET", "/secrets/c1", &officer, None);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = call(
        &t,
        "POST",
        "/keys/c1/sign",
        &officer,
        Some(&json!({"alg": "ES256", "value": "AAAA"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);

    // Secrets User: reads the certificate's secret, creates nothing.
    let r = call(&t, "GET", "/secrets/c1", &secrets, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["value"].is_string());
    assert_eq!(create(&t, &secrets, "c2", "Self").status, 403);
    assert_eq!(
        call(&t, "GET", "/certificates/c1", &secrets, None).status,
        403
    );

    // Certificate User: get / list / versions only.
    assert_eq!(call(&t, "GET", "/certificates/c1", &user, None).status, 200);
    assert_eq!(call(&t, "GET", "/certificates", &user, None).status, 200);
    assert_eq!(
        call(&t, "GET", "/certificates/c1/versions", &user, None).status,
        200
    );
    for (m, path) in [
        ("POST", "/certificates/c3/create"),
        ("DELETE", "/certificates/c1"),
        ("GET", "/certificates/c1/policy"),
        ("POST", "/certificates/c1/backup"),
        ("GET", "/certificates/issuers"),
        ("GET", "/secrets/c1"),
    ] {
        let body = json!({"policy": policy("Self")});
        let r = call(&t, m, path, &user, (m == "POST").then_some(&body));
        assert_eq!(r.status, 403, "{m} {path}: {}", r.text);
    }
    // A Crypto Officer manages keys, not certificates (nor the managed key of one).
    assert_eq!(create(&t, &crypto_officer, "c4", "Self").status, 403);
    assert_eq!(
        call(&t, "DELETE", "/keys/c1", &crypto_officer, None).status,
        403
    );

    // A certificate-scoped assignment covers that certificate only.
    let scoped = principal_with(
        &t,
        &admin,
        "scoped",
        &[("CertificateUser", "/certificates/c1")],
    );
    assert_eq!(
        call(&t, "GET", "/certificates/c1", &scoped, None).status,
        200
    );
    assert_eq!(create(&t, &admin, "other", "Self").status, 202);
    assert_eq!(
        call(&t, "GET", "/certificates/other", &scoped, None).status,
        403
    );
    // No token: 401.
    let r = t.get(&q("/certificates/c1"), None);
    assert_eq!(r.status, 401, "{}", r.text);
}

#[test]
fn bad_input_is_a_clear_4xx() {
    let t = start_dev();
    let admin = t.admin_token();
    // Reserved names.
    for name in ["issuers", "contacts"] {
        let r = create(&t, &admin, name, "Self");
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert_eq!(r.code(), "BadParameter", "{}", r.text);
    }
    // Bad names and versions.
    let r = create(&t, &admin, "bad_name", "Self");
    assert_eq!(r.status, 400, "{}", r.text);
    let r = call(&t, "GET", "/certificates/c/not-a-version!", &admin, None);
    assert_eq!(r.status, 400, "{}", r.text);
    // Bodies.
    let r = t.call(
        "POST",
        &q("/certificates/c/create"),
        Some(&admin),
        Some(b"{not json"),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = t.call(
        "POST",
        &q("/certificates/c/create"),
        Some(&admin),
        Some(b""),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Garbage import, wrong PFX password, PEM without a key: 400, nothing written.
    let r = call(
        &t,
        "POST",
        "/certificates/imp/import",
        &admin,
        Some(&json!({"value": STANDARD.encode(b"definitely not a PFX")})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let key = enclava_certs::generate(enclava_certs::KeySpec::Ec {
        curve: enclava_certs::EcCurve::P256,
    })
    .expect("key");
    let now = chrono::Utc::now().timestamp();
    let tpl = enclava_certs::CertTemplate::new(
        enclava_certs::Subject::parse("CN=imported").expect("subject"),
        now - 60,
        now + 86_400,
    )
    .expect("template");
    let der = enclava_certs::issue(&tpl, &key, enclava_certs::Issuer::SelfSigned).expect("issue");
    let pfx =
        enclava_certs::pfx::build(&key, std::slice::from_ref(&der), Some("right")).expect("pfx");
    let r = call(
        &t,
        "POST",
        "/certificates/imp/import",
        &admin,
        Some(&json!({"value": STANDARD.encode(&pfx), "pwd": "wrong"})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/certificates/imp", &admin, None).status,
        404
    );
    // The right password imports.
    let r = call(
        &t,
        "POST",
        "/certificates/imp/import",
        &admin,
        Some(&json!({"value": STANDARD.encode(&pfx), "pwd": "right"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(der_of(&r.body), der);
    // Not found.
    for (m, path) in [
        ("GET", "/certificates/nope"),
        ("GET", "/certificates/nope/pending"),
        ("GET", "/certificates/nope/policy"),
        ("GET", "/deletedcertificates/nope"),
        ("GET", "/certificates/issuers/nope"),
    ] {
        let r = call(&t, m, path, &admin, None);
        assert_eq!(r.status, 404, "{m} {path}: {}", r.text);
    }
    // Missing api-version.
    let r = t.get("/certificates/imp", Some(&admin));
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn csr_flow_lifecycle_backup_issuers_and_contacts() {
    let t = start_dev();
    let admin = t.admin_token();
    // Unknown issuer: in progress with a CSR until merged, cancelled or deleted.
    let r = create(&t, &admin, "ext", "Unknown");
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["status"], "inProgress", "{}", r.text);
    let csr = STANDARD
        .decode(r.body["csr"].as_str().expect("csr"))
        .expect("csr base64");
    assert!(csr.len() > 100);
    // A merge with a certificate of another key is refused.
    let other = create(&t, &admin, "other", "Self");
    assert_eq!(other.status, 202);
    let other = call(&t, "GET", "/certificates/other", &admin, None);
    let r = call(
        &t,
        "POST",
        "/certificates/ext/pending/merge",
        &admin,
        Some(&json!({"x5c": [other.body["cer"]]})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Signed by an outside CA: the merge completes the certificate (201), chain leaf first.
    let r = create(&t, &admin, "merged", "Unknown");
    assert_eq!(r.status, 202, "{}", r.text);
    let merge_csr = STANDARD
        .decode(r.body["csr"].as_str().expect("csr"))
        .expect("csr base64");
    if let Some((leaf, outside)) = outside_ca_signs(&merge_csr) {
        let r = call(
            &t,
            "POST",
            "/certificates/merged/pending/merge",
            &admin,
            Some(&json!({"x5c": [STANDARD.encode(&leaf), STANDARD.encode(&outside)]})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(der_of(&r.body), leaf);
        assert_eq!(pending(&t, &admin, "merged"), "completed");
        let s = call(&t, "GET", "/secrets/merged", &admin, None);
        let pfx = STANDARD
            .decode(s.body["value"].as_str().expect("value"))
            .expect("base64 PFX");
        let kc = enclava_certs::pfx::parse(&pfx, None).expect("PFX");
        assert_eq!(kc.chain.first(), Some(&leaf));
        assert!(enclava_certs::matches_key(&leaf, &kc.key_pkcs8).expect("match"));
    }
    let r = call(
        &t,
        "PATCH",
        "/certificates/ext/pending",
        &admin,
        Some(&json!({"cancellation_requested": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["cancellation_requested"], true);
    let r = call(&t, "DELETE", "/certificates/ext/pending", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/certificates/ext/pending", &admin, None).status,
        404
    );
    // An issuer object that is not Self/Enclava/Unknown: the create ends failed, never succeeds.
    let r = call(
        &t,
        "PUT",
        "/certificates/issuers/digicert",
        &admin,
        Some(
            &json!({"provider": "DigiCert", "credentials": {"account_id": "a", "pwd": "hunter2"}}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("hunter2"), "{}", r.text);
    let r = call(&t, "GET", "/certificates/issuers/digicert", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("hunter2"), "{}", r.text);
    let r = call(
        &t,
        "PATCH",
        "/certificates/issuers/digicert",
        &admin,
        Some(&json!({"provider": "DigiCert2"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(&t, "GET", "/certificates/issuers", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"].as_array().expect("value").len(), 1);
    let r = create(&t, &admin, "viaca", "digicert");
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.body["status"], "inProgress",
        "the create answers inProgress, as Key Vault: {}",
        r.text
    );
    assert_eq!(pending(&t, &admin, "viaca"), "failed");
    let r = call(&t, "DELETE", "/certificates/issuers/digicert", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    // Contacts.
    let r = call(
        &t,
        "PUT",
        "/certificates/contacts",
        &admin,
        Some(&json!({"contacts": [{"email": "a@example.test", "name": "A"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(&t, "GET", "/certificates/contacts", &admin, None);
    assert_eq!(r.body["contacts"][0]["email"], "a@example.test");
    let r = call(&t, "DELETE", "/certificates/contacts", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/certificates/contacts", &admin, None).status,
        404
    );

    // Delete carries the key and secret along; recover brings them back; purge removes all.
    let r = call(&t, "DELETE", "/certificates/other", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/certificates/other", &admin, None).status,
        404
    );
    assert_eq!(call(&t, "GET", "/keys/other", &admin, None).status, 404);
    assert_eq!(call(&t, "GET", "/secrets/other", &admin, None).status, 404);
    let r = call(&t, "GET", "/deletedcertificates", &admin, None);
    assert_eq!(r.status, 200, "{}", r.text);
    // A deleted (recoverable) name cannot be created or imported over: 409.
    let r = create(&t, &admin, "other", "Self");
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/deletedcertificates/other", &admin, None).status,
        200
    );
    let r = call(
        &t,
        "POST",
        "/deletedcertificates/other/recover",
        &admin,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(call(&t, "GET", "/keys/other", &admin, None).status, 200);
    assert_eq!(call(&t, "GET", "/secrets/other", &admin, None).status, 200);

    // Backup and restore (after delete + purge) bring back certificate, key and secret.
    let b = call(&t, "POST", "/certificates/other/backup", &admin, None);
    assert_eq!(b.status, 200, "{}", b.text);
    let before = call(&t, "GET", "/certificates/other", &admin, None);
    assert_eq!(
        call(&t, "DELETE", "/certificates/other", &admin, None).status,
        200
    );
    let r = call(&t, "DELETE", "/deletedcertificates/other", &admin, None);
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        call(&t, "GET", "/deletedcertificates/other", &admin, None).status,
        404
    );
    let r = call(
        &t,
        "POST",
        "/certificates/restore",
        &admin,
        Some(&json!({"value": b.body["value"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["cer"], before.body["cer"]);
    assert_eq!(call(&t, "GET", "/keys/other", &admin, None).status, 200);
    assert_eq!(call(&t, "GET", "/secrets/other", &admin, None).status, 200);
    // A garbage backup is a 400.
    let r = call(
        &t,
        "POST",
        "/certificates/restore",
        &admin,
        Some(&json!({"value": "AAAA"})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn the_maintenance_task_renews_once() {
    let t = start_dev();
    let admin = t.admin_token();
    // A certificate that expires in ten minutes, imported with an AutoRenew action already due.
    let key = enclava_certs::generate(enclava_certs::KeySpec::Ec {
        curve: enclava_certs::EcCurve::P256,
    })
    .expect("key");
    let now = chrono::Utc::now().timestamp();
    let tpl = enclava_certs::CertTemplate::new(
        enclava_certs::Subject::parse("CN=short.example.test").expect("subject"),
        now - 60,
        now + 600,
    )
    .expect("template");
    let der = enclava_certs::issue(&tpl, &key, enclava_certs::Issuer::SelfSigned).expect("issue");
    let pfx = enclava_certs::pfx::build(&key, std::slice::from_ref(&der), None).expect("pfx");
    let mut pol = policy("Self");
    pol["x509_props"]["subject"] = json!("CN=short.example.test");
    pol["lifetime_actions"] = json!([
        {"trigger": {"days_before_expiry": 1}, "action": {"action_type": "AutoRenew"}}
    ]);
    let r = call(
        &t,
        "POST",
        "/certificates/short/import",
        &admin,
        Some(&json!({"value": STANDARD.encode(&pfx), "policy": pol})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let versions = |t: &TestServer| {
        call(t, "GET", "/certificates/short/versions", &admin, None).body["value"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    assert_eq!(versions(&t), 1);
    t.rt.block_on(enclava_server::run_maintenance_once(&t.server.state));
    assert_eq!(versions(&t), 2, "the due AutoRenew issued a new version");
    let latest = call(&t, "GET", "/certificates/short", &admin, None);
    let renewed = der_of(&latest.body);
    assert_ne!(renewed, der);
    let p = enclava_certs::ParsedCertificate::from_der(&renewed).expect("renewed");
    assert!(
        p.not_after > now + 30 * 86_400,
        "renewed for the policy's validity"
    );
    // Again: the action ran for that version already, and the new one is not due.
    t.rt.block_on(enclava_server::run_maintenance_once(&t.server.state));
    t.rt.block_on(enclava_server::run_maintenance_once(&t.server.state));
    assert_eq!(versions(&t), 2, "renewed exactly once");
    let renewals = t
        .audit_entries(&admin)
        .into_iter()
        .filter(|e| e["action"] == "certificates/autorenew" && e["object"] == "certificates/short")
        .count();
    assert_eq!(renewals, 1);
}

/// Attack: a certificate whose key may only be released to attested workloads must not hand its
/// private key to a Secrets User through the certificate's secret (that would bypass attestation).
#[test]
fn a_release_policy_keeps_the_private_key_out_of_the_secret() {
    let t = start_dev();
    let admin = t.admin_token();
    let release = json!({"version": "1.0.0", "anyOf": [{"authority": "https://attest.example.test",
        "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]});
    let data = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&release).expect("json"));
    let mut pol = policy("Enclava");
    pol["key_props"]["release_policy"] = json!({"data": data});
    let r = call(
        &t,
        "POST",
        "/certificates/workload/create",
        &admin,
        Some(&json!({"policy": pol})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.body["status"], "inProgress",
        "the create answers inProgress, as Key Vault: {}",
        r.text
    );
    assert_eq!(pending(&t, &admin, "workload"), "completed");
    let secrets = principal_with(&t, &admin, "reader", &[("SecretsUser", "/")]);
    let s = call(&t, "GET", "/secrets/workload", &secrets, None);
    assert_eq!(s.status, 200, "{}", s.text);
    let value = s.body["value"].as_str().expect("value");
    assert!(
        !value.contains("PRIVATE KEY"),
        "the secret carries a private key"
    );
    // Whatever the encoding, no block but certificates, and the leaf is the certificate's.
    let cert = call(&t, "GET", "/certificates/workload", &admin, None);
    let leaf = der_of(&cert.body);
    let certs = pem_certs(value);
    assert_eq!(certs.first(), Some(&leaf), "{value}");
    // The key exists for release through /keys (attestation decides there), marked exportable.
    let k = call(&t, "GET", "/keys/workload", &admin, None);
    assert_eq!(k.status, 200, "{}", k.text);
    assert!(k.body["release_policy"].is_object(), "{}", k.text);
    assert!(
        k.body["key"].get("d").is_none(),
        "a key GET never has private members"
    );
}
