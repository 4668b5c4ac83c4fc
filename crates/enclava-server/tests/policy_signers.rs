//! MAA's policy management as real MAA does it, over real HTTPS: signed policy uploads in every
//! form the Azure SDKs send (`RSA256` + `jwk.x5c` from Python, `RS256` + `x5c`), the policy token
//! hash over the bytes as sent, signed resets in isolated mode (the unsigned-reset attack), and
//! the policy management certificates (`/certificates`, `:add`, `:remove`) that change the signer
//! set at runtime.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Resp, TestServer, put_policy, start_with};
use enclava_server::PartialConfig;
use enclava_server::attest::AttestationSettings;
use enclava_token::{Expectations, Jwks};
use serde_json::{Map, Value, json};
use sha2::Digest;

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A policy signer: an RSA key and its self-signed certificate.
struct Signer {
    der: Vec<u8>,
    pem: String,
    key: aws_lc_rs::signature::RsaKeyPair,
}

impl Signer {
    fn new(name: &str) -> Signer {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        Signer {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap(),
        }
    }

    fn x5c(&self) -> String {
        STANDARD.encode(&self.der)
    }

    fn sign_raw(&self, input: &str) -> Vec<u8> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        sig
    }

    /// A compact JWS of `header` (exact text) over `payload` (exact text), signed by this key.
    fn jws(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64u(header.as_bytes()), b64u(payload.as_bytes()));
        let sig = self.sign_raw(&input);
        format!("{input}.{}", b64u(&sig))
    }

    /// The Python SDK's header: `{"alg": "RSA256", "jwk": {"x5c": [...]}}` (json.dumps spacing).
    fn python_header(&self) -> String {
        format!(
            r#"{{"alg": "RSA256", "jwk": {{"x5c": ["{}"]}}}}"#,
            self.x5c()
        )
    }

    /// The Python SDK's `set_policy(..., signing_key=, signing_certificate=)` body.
    fn python_policy(&self, text: &str) -> String {
        self.jws(&self.python_header(), &python_policy_payload(text))
    }

    /// The Python SDK's `reset_policy(signing_key=...)` body: an empty payload.
    fn python_reset(&self) -> String {
        self.jws(&self.python_header(), "")
    }

    /// The Python SDK's `add/remove_policy_management_certificate` body for `cert`.
    fn python_cert_change(&self, cert: &Signer) -> String {
        let payload = format!(
            r#"{{"policyCertificate": {{"kty": "RSA", "x5c": ["{}"]}}}}"#,
            cert.x5c()
        );
        self.jws(&self.python_header(), &payload)
    }
}

fn python_policy_payload(text: &str) -> String {
    format!(r#"{{"AttestationPolicy": "{}"}}"#, b64u(text.as_bytes()))
}

/// A self-signed certificate with an EC P-256 key (base64 DER).
fn ec_cert() -> String {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ec".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    STANDARD.encode(cert.der())
}

const PERMIT: &str = "version=1.0; authorizationrules { => permit(); };";
const DENY: &str = "version=1.0; authorizationrules { => deny(); };";

/// A dev server; with `signers`, in isolated mode trusting them.
fn server(signers: &[&Signer]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), signers);
    let mut s = start_with(cfg);
    s.dir = dir;
    s
}

fn config(dir: &std::path::Path, signers: &[&Signer]) -> enclava_server::ServerConfig {
    let policy_signers = (!signers.is_empty()).then(|| {
        let path = dir.join("signers.pem");
        let pem: String = signers.iter().map(|s| s.pem.clone()).collect();
        std::fs::write(&path, pem).unwrap();
        path
    });
    PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            policy_signers,
            alg: Some("RS256".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap()
}

/// The claims of a token of the server, verified with nothing but its `/certs`.
fn claims(s: &TestServer, token: &Value) -> Map<String, Value> {
    let r = s.get("/certs", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let jwks: Jwks = serde_json::from_value(r.body.clone()).unwrap();
    enclava_token::verify(
        token.as_str().expect("a token"),
        &jwks,
        &Expectations::new(s.server.base_url.clone(), chrono::Utc::now()),
    )
    .unwrap_or_else(|e| panic!("token does not verify: {e}"))
    .claims
}

/// What the SDK samples compare: base64url(SHA-256(the JWS string sent)).
fn sdk_hash(jws: &str) -> Value {
    json!(b64u(&sha2::Sha256::digest(jws.as_bytes())))
}

fn post_text(s: &TestServer, path: &str, token: &str, body: &str) -> Resp {
    s.call(
        "POST",
        path,
        Some(token),
        Some(body.as_bytes()),
        &[("Content-Type", "text/plain")],
    )
}

fn reset(s: &TestServer, token: &str, body: &str) -> Resp {
    post_text(
        s,
        "/policies/SevSnpVm:reset?api-version=2022-08-01",
        token,
        body,
    )
}

/// A certificates call as the SDKs send it: the JWS as a JSON string.
fn cert_call(s: &TestServer, op: &str, token: &str, jws: &str) -> Resp {
    let body = serde_json::to_vec(&json!(jws)).unwrap();
    s.call(
        "POST",
        &format!("/certificates:{op}?api-version=2022-08-01"),
        Some(token),
        Some(&body),
        &[("Content-Type", "application/json")],
    )
}

fn current_version(s: &TestServer, admin: &str) -> u64 {
    let r = s.get("/policies/SevSnpVm?api-version=2022-08-01", Some(admin));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["policy"]["version"].as_u64().unwrap()
}

fn listed_certs(s: &TestServer, admin: &str) -> Vec<String> {
    let r = s.get("/certificates?api-version=2022-08-01", Some(admin));
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(s, &r.body["token"]);
    c["x-ms-policy-certificates"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["x5c"][0].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn signed_uploads_in_every_form_maa_accepts_and_forgeries_refused() {
    let trusted = Signer::new("policy signer");
    let stranger = Signer::new("stranger");
    let s = server(&[&trusted]);
    let admin = s.admin_token();
    let x5c = trusted.x5c();
    let payload = python_policy_payload(PERMIT);
    let accepted = [
        // Python SDK 1.0.0.
        trusted.python_header(),
        // JS SDK / RFC 7515 form.
        json!({"alg": "RS256", "x5c": [x5c]}).to_string(),
        json!({"alg": "RS256", "jwk": {"x5c": [x5c]}}).to_string(),
        json!({"alg": "RSA256", "x5c": [x5c]}).to_string(),
        // Both, naming the same certificate.
        json!({"alg": "RS256", "x5c": [x5c], "jwk": {"kty": "RSA", "x5c": [x5c]}}).to_string(),
    ];
    for (i, header) in accepted.iter().enumerate() {
        let jws = trusted.jws(header, &payload);
        let r = put_policy(&s, &admin, &jws);
        assert_eq!(r.status, 200, "form {i} {header}: {}", r.text);
        let c = claims(&s, &r.body["token"]);
        assert_eq!(c["x-ms-policy-result"], "Updated");
        assert_eq!(c["x-ms-policy-token-hash"], sdk_hash(&jws), "form {i}");
        assert_eq!(c["x-ms-policy"], json!(jws));
        assert_eq!(c["x-ms-policy-signer"]["x5c"][0], json!(x5c), "form {i}");
        assert_eq!(c["x-ms-policy-signer"]["kty"], "RSA");
    }
    let version = current_version(&s, &admin);

    let refused: Vec<(String, u16, &str)> = vec![
        // Not signed at all.
        (
            enclava_policy::maa::unsigned_policy_jws(DENY),
            400,
            "policy_signature_required",
        ),
        // A stranger's valid signature with the stranger's certificate.
        (stranger.python_policy(DENY), 403, "untrusted_policy_signer"),
        // The trusted certificate claimed, the stranger's signature.
        (
            stranger.jws(&trusted.python_header(), &python_policy_payload(DENY)),
            400,
            "invalid_policy_signature",
        ),
        // The algorithm does not match the RSA key (the signature itself is RS256).
        (
            trusted.jws(
                &json!({"alg": "ES256", "x5c": [x5c]}).to_string(),
                &python_policy_payload(DENY),
            ),
            400,
            "invalid_policy",
        ),
        (
            trusted.jws(
                &json!({"alg": "PS256", "jwk": {"x5c": [x5c]}}).to_string(),
                &python_policy_payload(DENY),
            ),
            400,
            "invalid_policy",
        ),
        // Two different certificates: which one signed is ambiguous.
        (
            trusted.jws(
                &json!({"alg": "RS256", "x5c": [x5c], "jwk": {"x5c": [stranger.x5c()]}})
                    .to_string(),
                &python_policy_payload(DENY),
            ),
            400,
            "invalid_policy",
        ),
        // No certificate.
        (
            trusted.jws(r#"{"alg": "RSA256"}"#, &python_policy_payload(DENY)),
            400,
            "invalid_policy_signature",
        ),
        // An EC certificate under an RSA algorithm name.
        (
            trusted.jws(
                &json!({"alg": "RS256", "x5c": [ec_cert()]}).to_string(),
                &python_policy_payload(DENY),
            ),
            400,
            "invalid_policy_signature",
        ),
    ];
    for (body, status, code) in &refused {
        let r = put_policy(&s, &admin, body);
        assert_eq!((r.status, r.code()), (*status, *code), "{}", r.text);
    }
    // A trusted signature moved onto another payload.
    let good = trusted.python_policy(PERMIT);
    let other = trusted.python_policy(DENY);
    let parts: Vec<&str> = other.split('.').collect();
    let spliced = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        good.rsplit('.').next().unwrap()
    );
    let r = put_policy(&s, &admin, &spliced);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );
    assert_eq!(
        current_version(&s, &admin),
        version,
        "nothing refused was stored"
    );
}

#[test]
fn unsigned_upload_token_hash_is_over_the_bytes_sent() {
    let s = server(&[]);
    let admin = s.admin_token();
    // The Python SDK's unsigned upload: its own header encoding and json.dumps spacing, which is
    // not how this server would encode the same policy.
    let jws = format!(
        "eyJhbGciOiJub25lIn0.{}.",
        b64u(python_policy_payload(PERMIT).as_bytes())
    );
    assert_ne!(jws, enclava_policy::maa::unsigned_policy_jws(PERMIT));
    let r = put_policy(&s, &admin, &jws);
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(&s, &r.body["token"]);
    assert_eq!(c["x-ms-policy-token-hash"], sdk_hash(&jws));
    assert!(c.get("x-ms-policy-signer").is_none());
    // GET answers with the same JWS and hash.
    let r = s.get("/policies/SevSnpVm?api-version=2022-08-01", Some(&admin));
    let c = claims(&s, &r.body["token"]);
    assert_eq!(c["x-ms-policy"], json!(jws));
    assert_eq!(c["x-ms-policy-token-hash"], sdk_hash(&jws));
}

#[test]
fn isolated_reset_requires_a_trusted_signature() {
    let trusted = Signer::new("policy signer");
    let stranger = Signer::new("stranger");
    let s = server(&[&trusted]);
    let admin = s.admin_token();
    let r = put_policy(&s, &admin, &trusted.python_policy(PERMIT));
    assert_eq!(r.status, 200, "{}", r.text);
    let version = current_version(&s, &admin);

    // The attack: reset the signed policy without any signature (this used to succeed).
    for body in [
        "",
        "{}",
        "eyJhbGciOiJub25lIn0..",
        "eyJhbGciOiJub25lIn0.bnVsbA.",
    ] {
        let r = reset(&s, &admin, body);
        assert_eq!(
            (r.status, r.code()),
            (400, "policy_signature_required"),
            "{body:?}: {}",
            r.text
        );
    }
    let r = reset(&s, &admin, &stranger.python_reset());
    assert_eq!(
        (r.status, r.code()),
        (403, "untrusted_policy_signer"),
        "{}",
        r.text
    );
    let forged = stranger.jws(&trusted.python_header(), "");
    let r = reset(&s, &admin, &forged);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );
    // A signed policy upload is not a reset (its payload is not empty).
    let r = reset(&s, &admin, &trusted.python_policy(PERMIT));
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );
    assert_eq!(current_version(&s, &admin), version, "nothing was reset");

    // The SDK's signed reset: accepted, answered like MAA.
    let body = trusted.python_reset();
    let r = reset(&s, &admin, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(&s, &r.body["token"]);
    assert_eq!(c["x-ms-policy-result"], "Removed");
    assert_eq!(c["x-ms-policy-token-hash"], sdk_hash(&body));
    assert_eq!(c["x-ms-policy-signer"]["x5c"][0], json!(trusted.x5c()));
    assert_eq!(r.body["policy"]["builtin"], true);
    // `null` and `{}` payloads (other SDKs) are resets too.
    for payload in ["null", "{}"] {
        let r = reset(&s, &admin, &trusted.jws(&trusted.python_header(), payload));
        assert_eq!(r.status, 200, "{payload}: {}", r.text);
    }

    // AAD mode keeps its behaviour: the role authorizes an unsigned reset; a JWS is verified.
    let open = server(&[]);
    let admin = open.admin_token();
    for body in ["", "{}", "eyJhbGciOiJub25lIn0.."] {
        assert_eq!(reset(&open, &admin, body).status, 200, "{body:?}");
    }
    let r = reset(&open, &admin, &forged);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );
}

#[test]
fn policy_management_certificates_change_the_signers() {
    let first = Signer::new("first signer");
    let second = Signer::new("second signer");
    let stranger = Signer::new("stranger");
    let dir = tempfile::tempdir().unwrap();
    let mut s = start_with(config(dir.path(), &[&first]));
    s.dir = dir;
    let admin = s.admin_token();
    assert_eq!(listed_certs(&s, &admin), [first.x5c()]);

    // Unsigned, or signed by someone who is not a signer: refused.
    let unsigned = format!(
        "eyJhbGciOiJub25lIn0.{}.",
        b64u(
            format!(
                r#"{{"policyCertificate": {{"kty": "RSA", "x5c": ["{}"]}}}}"#,
                second.x5c()
            )
            .as_bytes()
        )
    );
    let r = cert_call(&s, "add", &admin, &unsigned);
    assert_eq!(
        (r.status, r.code()),
        (400, "policy_signature_required"),
        "{}",
        r.text
    );
    let r = cert_call(&s, "add", &admin, &stranger.python_cert_change(&stranger));
    assert_eq!(
        (r.status, r.code()),
        (403, "untrusted_policy_signer"),
        "{}",
        r.text
    );
    // A signer's request, but the caller lacks policies/manage.
    let (id, secret) = s.service_principal(&admin, "no-roles");
    let weak = s.token_for_scope(&id, &secret, "https://attest.azure.net/.default");
    let add_second = first.python_cert_change(&second);
    let r = cert_call(&s, "add", &weak, &add_second);
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(listed_certs(&s, &admin), [first.x5c()]);

    // The first signer adds the second.
    let r = cert_call(&s, "add", &admin, &add_second);
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(&s, &r.body["token"]);
    assert_eq!(c["x-ms-policycertificates-result"], "IsPresent");
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &second.der);
    assert_eq!(
        c["x-ms-certificate-thumbprint"],
        json!(hex::encode_upper(sha1.as_ref()))
    );
    assert_eq!(listed_certs(&s, &admin), [first.x5c(), second.x5c()]);
    // The new signer can sign policies now.
    let r = put_policy(&s, &admin, &second.python_policy(PERMIT));
    assert_eq!(r.status, 200, "{}", r.text);
    // The same request again is a replay, refused (the add body has the remove body's shape).
    let r = cert_call(&s, "remove", &admin, &add_second);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );
    assert!(r.text.contains("replay"), "{}", r.text);

    // The second removes the first, who then can sign nothing.
    let r = cert_call(&s, "remove", &admin, &second.python_cert_change(&first));
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(&s, &r.body["token"]);
    assert_eq!(c["x-ms-policycertificates-result"], "IsAbsent");
    assert_eq!(listed_certs(&s, &admin), [second.x5c()]);
    let r = put_policy(&s, &admin, &first.python_policy(DENY));
    assert_eq!(
        (r.status, r.code()),
        (403, "untrusted_policy_signer"),
        "{}",
        r.text
    );
    let r = cert_call(
        &s,
        "add",
        &admin,
        &first.jws(
            &first.python_header(),
            r#"{"policyCertificate": {"kty": "RSA", "x5c": ["x"]}}"#,
        ),
    );
    assert_eq!(r.status, 403, "a removed signer cannot add: {}", r.text);
    // The last signer cannot be removed.
    let r = cert_call(&s, "remove", &admin, &second.python_cert_change(&second));
    assert_eq!(
        (r.status, r.code()),
        (409, "last_policy_signer"),
        "{}",
        r.text
    );
    // A certificate that is not one.
    let bad = second.jws(
        &second.python_header(),
        r#"{"policyCertificate": {"kty": "RSA", "x5c": ["AAAA"]}}"#,
    );
    let r = cert_call(&s, "add", &admin, &bad);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_certificate"),
        "{}",
        r.text
    );

    // With a Key Vault api-version, /certificates is Key Vault's certificate list, not this API.
    let r = s.get("/certificates?api-version=7.4", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["value"].is_array(), "{}", r.text);
    assert!(r.body.get("token").is_none(), "{}", r.text);

    // Audited, and kept across a restart.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let entries = s.audit_entries(&admin);
    let sha = |d: &[u8]| hex::encode(sha2::Sha256::digest(d));
    assert!(
        entries
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or("").contains(&format!(
                "policy signer remove {} IsAbsent",
                sha(&first.der)
            ))),
        "no audit entry for the removal"
    );
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    s.server.shutdown(std::time::Duration::from_secs(1));
    drop(s);
    s = start_with(config(dir.path(), &[&first]));
    s.dir = dir;
    let admin = s.admin_token();
    assert_eq!(listed_certs(&s, &admin), [second.x5c()]);
    let r = put_policy(&s, &admin, &first.python_policy(DENY));
    assert_eq!(r.status, 403, "{}", r.text);
}

#[test]
fn aad_mode_has_no_policy_management_certificates() {
    let someone = Signer::new("someone");
    let s = server(&[]);
    let admin = s.admin_token();
    assert!(listed_certs(&s, &admin).is_empty());
    // Nobody is a signer: nobody can make themselves one.
    let r = cert_call(&s, "add", &admin, &someone.python_cert_change(&someone));
    assert_eq!(
        (r.status, r.code()),
        (403, "untrusted_policy_signer"),
        "{}",
        r.text
    );
    assert!(listed_certs(&s, &admin).is_empty());
    // Unsigned uploads stay accepted.
    let r = put_policy(&s, &admin, PERMIT);
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn attestation_tokens_under_a_signed_policy_name_the_signer() {
    let trusted = Signer::new("policy signer");
    let s = server(&[&trusted]);
    let admin = s.admin_token();
    let sim_policy = "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.claims.tee == \"sim\"\n";
    let r = s.call(
        "PUT",
        "/policies/sim",
        Some(&admin),
        Some(trusted.python_policy(sim_policy).as_bytes()),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ev = enclava_evidence::sim::generate(&[7u8; 48], &[0u8; 64], chrono::Utc::now());
    let r = s.post(
        "/attest/native",
        None,
        &json!({"tee": "sim", "evidence": b64u(&ev)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(&s, &r.body["token"]);
    assert_eq!(c["x-ms-policy-signer"]["x5c"][0], json!(trusted.x5c()));
    assert_eq!(c["x-ms-policy-signer"]["kty"], "RSA");

    // Under an unsigned policy (AAD mode), no signer claim.
    let open = server(&[]);
    let admin = open.admin_token();
    let r = open.put(
        "/policies/sim",
        Some(&admin),
        &json!({"policy": sim_policy}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = open.post(
        "/attest/native",
        None,
        &json!({"tee": "sim", "evidence": b64u(&ev)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        claims(&open, &r.body["token"])
            .get("x-ms-policy-signer")
            .is_none()
    );
}
