//! The KBS protocol (RCAR 0.4.0) end to end over HTTPS against the real server: a Rust-side
//! client written here from the protocol description (its own JCS document, its own JWE
//! decryption with the RustCrypto crates), the `sample` TEE, resources and resource policies
//! set through the admin routes, and every refusal with its documented error kind.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Resp, TestServer, start_with};
use enclava_server::PartialConfig;
use enclava_server::attest::AttestationSettings;
use serde_json::{Value, json};
use sha2::Digest;

const KIND: &str = "https://github.com/confidential-containers/kbs/errors/";

const SAMPLE_POLICY: &str = r#"package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "tee", "path": "claims.tee", "expected": "sample", "found": input.claims.tee} if input.claims.tee != "sample"
"#;

const RESOURCE_POLICY: &str = r#"package policy

import rego.v1

default allow := false

allow if {
    input["x-enclava-tee"] == "sample"
    # trustee's shape: the EAR appraisal at the top level, its submodule as cpu0
    input.submods.cpu0["ear.status"] != ""
    count(deny) == 0
}

deny contains {"rule": "key_2_closed", "path": "resource-path", "expected": "any path but default/key/2", "found": data["resource-path"]} if {
    data["resource-path"] == "default/key/2"
}
"#;

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn dev_server(lifetime: Option<i64>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            token_lifetime_secs: lifetime,
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = dir;
    s
}

fn kind(r: &Resp) -> String {
    r.body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches(KIND)
        .to_string()
}

/// Upload a resource, the resource policy and the sample appraisal policy (the Contract's
/// three admin steps, over the routes the CLI uses).
fn provision(s: &TestServer, admin: &str) {
    for (path, bytes) in [
        ("default/key/1", &b"\x00\x01\x02 resource one \xff"[..]),
        ("default/key/2", b"resource two"),
    ] {
        let r = s.call(
            "POST",
            &format!("/kbs/v0/resource/{path}"),
            Some(admin),
            Some(bytes),
            &[("Content-Type", "application/octet-stream")],
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = s.post(
        "/kbs/v0/resource-policy",
        Some(admin),
        &json!({"policy": b64u(RESOURCE_POLICY.as_bytes())}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.call(
        "PUT",
        "/policies/sample",
        Some(admin),
        Some(SAMPLE_POLICY.as_bytes()),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A TEE key pair of the client.
enum TeeKey {
    Ec(p256::SecretKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl TeeKey {
    fn ec() -> TeeKey {
        TeeKey::Ec(p256::SecretKey::random(&mut rand::rngs::OsRng))
    }

    fn rsa() -> TeeKey {
        TeeKey::Rsa(Box::new(
            rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap(),
        ))
    }

    /// The JWK and its JCS form (members in code-unit order, written by hand).
    fn jwk(&self) -> (Value, String) {
        match self {
            TeeKey::Ec(sk) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                let p = sk.public_key().to_encoded_point(false);
                let (x, y) = (b64u(p.x().unwrap()), b64u(p.y().unwrap()));
                (
                    json!({"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": x, "y": y}),
                    format!(
                        r#"{{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
                    ),
                )
            }
            TeeKey::Rsa(sk) => {
                use rsa::traits::PublicKeyParts;
                let (n, e) = (b64u(&sk.n().to_bytes_be()), b64u(&sk.e().to_bytes_be()));
                (
                    json!({"kty": "RSA", "alg": "RSA-OAEP-256", "n": n, "e": e}),
                    format!(r#"{{"alg":"RSA-OAEP-256","e":"{e}","kty":"RSA","n":"{n}"}}"#),
                )
            }
        }
    }

    /// Decrypt a flattened JWE answer.
    fn decrypt(&self, jwe: &Value) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let d = |k: &str| URL_SAFE_NO_PAD.decode(jwe[k].as_str().unwrap()).unwrap();
        let protected = jwe["protected"].as_str().unwrap();
        let header: Value = serde_json::from_slice(&d("protected")).unwrap();
        assert_eq!(header["enc"], "A256GCM");
        let cek: Vec<u8> = match self {
            TeeKey::Ec(sk) => {
                assert_eq!(header["alg"], "ECDH-ES+A256KW");
                let epk = p256::PublicKey::from_jwk_str(&header["epk"].to_string()).unwrap();
                let z = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), epk.as_affine());
                // Concat KDF (RFC 7518 4.6.2), one SHA-256 block.
                let mut h = sha2::Sha256::new();
                h.update(1u32.to_be_bytes());
                h.update(z.raw_secret_bytes());
                h.update(14u32.to_be_bytes());
                h.update(b"ECDH-ES+A256KW");
                h.update(0u32.to_be_bytes());
                h.update(0u32.to_be_bytes());
                h.update(256u32.to_be_bytes());
                let kek: [u8; 32] = h.finalize().into();
                let mut cek = [0u8; 32];
                aes_kw::KekAes256::from(kek)
                    .unwrap(&d("encrypted_key"), &mut cek)
                    .unwrap();
                cek.to_vec()
            }
            TeeKey::Rsa(sk) => {
                assert_eq!(header["alg"], "RSA-OAEP-256");
                sk.decrypt(rsa::Oaep::new::<sha2::Sha256>(), &d("encrypted_key"))
                    .unwrap()
            }
        };
        let gcm = aes_gcm::Aes256Gcm::new_from_slice(&cek).unwrap();
        let iv: [u8; 12] = d("iv").try_into().unwrap();
        let mut ct = d("ciphertext");
        ct.extend_from_slice(&d("tag"));
        gcm.decrypt(
            &iv.into(),
            Payload {
                msg: &ct,
                aad: protected.as_bytes(),
            },
        )
        .unwrap()
    }
}

/// One RCAR client session.
struct Client<'a> {
    s: &'a TestServer,
    cookie: String,
    nonce: String,
}

fn auth(s: &TestServer, version: &str) -> Resp {
    s.post(
        "/kbs/v0/auth",
        None,
        &json!({"version": version, "tee": "sample",
            "extra-params": {"supported-hash-algorithms": ["sha256", "sha384"]}}),
    )
}

impl<'a> Client<'a> {
    fn start(s: &'a TestServer) -> Client<'a> {
        let r = auth(s, "0.4.0");
        assert_eq!(r.status, 200, "{}", r.text);
        let set = r.header("set-cookie").expect("Set-Cookie").to_string();
        assert!(set.starts_with("kbs-session-id="), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let nonce = r.body["nonce"].as_str().unwrap().to_string();
        assert_eq!(STANDARD.decode(&nonce).unwrap().len(), 32);
        Client { s, cookie, nonce }
    }

    /// The runtime-data binding this client puts into its report: SHA-384 of the JCS document.
    fn report_data(&self, jcs_jwk: &str, nonce: &str) -> Vec<u8> {
        let doc =
            format!(r#"{{"additional-evidence":"","nonce":"{nonce}","tee-pubkey":{jcs_jwk}}}"#);
        sha2::Sha384::digest(doc.as_bytes()).to_vec()
    }

    fn attest_with(&self, key: &TeeKey, nonce: &str, report_data: &[u8]) -> Resp {
        let (jwk, _) = key.jwk();
        let body = json!({
            "runtime-data": {"nonce": nonce, "tee-pubkey": jwk},
            "tee-evidence": {
                "primary_evidence": {"svn": "1", "report_data": STANDARD.encode(report_data)},
                "additional_evidence": "",
            },
        });
        self.s.call(
            "POST",
            "/kbs/v0/attest",
            None,
            Some(body.to_string().as_bytes()),
            &[("Cookie", &self.cookie)],
        )
    }

    fn attest(&self, key: &TeeKey) -> Resp {
        let (_, jcs) = key.jwk();
        self.attest_with(key, &self.nonce, &self.report_data(&jcs, &self.nonce))
    }

    fn resource(&self, path: &str) -> Resp {
        self.s.call(
            "GET",
            &format!("/kbs/v0/resource/{path}"),
            None,
            None,
            &[("Cookie", &self.cookie)],
        )
    }
}

#[test]
fn sample_flow_end_to_end_with_ec_and_rsa_keys_and_every_refusal() {
    let s = dev_server(None);
    let admin = s.admin_token();

    // Before any policy: the default `sample` policy refuses the development TEE.
    let c = Client::start(&s);
    let key = TeeKey::ec();
    let r = c.attest(&key);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(kind(&r), "AttestationFailed", "{}", r.text);

    provision(&s, &admin);

    // EC tee-pubkey, cookie session.
    let c = Client::start(&s);
    let r = c.attest(&key);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("set-cookie")
            .unwrap()
            .starts_with("kbs-session-id=")
    );
    let token = r.body["token"].as_str().unwrap().to_string();
    let r = c.resource("default/key/1");
    assert_eq!(r.status, 200, "{}", r.text);
    for m in ["protected", "encrypted_key", "iv", "ciphertext", "tag"] {
        assert!(r.body[m].is_string(), "{m} in {}", r.text);
    }
    assert!(r.body.get("aad").is_none());
    assert_eq!(key.decrypt(&r.body), b"\x00\x01\x02 resource one \xff");

    // The same token as Bearer, without the cookie.
    let r = s.get("/kbs/v0/resource/default/key/1", Some(&token));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(key.decrypt(&r.body), b"\x00\x01\x02 resource one \xff");

    // RSA tee-pubkey.
    let rsa_key = TeeKey::rsa();
    let c2 = Client::start(&s);
    let r = c2.attest(&rsa_key);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c2.resource("default/key/1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(rsa_key.decrypt(&r.body), b"\x00\x01\x02 resource one \xff");

    // A resource the policy refuses, with the reason.
    let r = c.resource("default/key/2");
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(kind(&r), "PolicyDeny");
    assert!(
        r.body["detail"].as_str().unwrap().contains("key_2_closed"),
        "{}",
        r.text
    );
    // No such resource.
    let r = c.resource("default/key/3");
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(kind(&r), "ResourceNotFound");

    // Replayed nonce: the same session attests again.
    let r = c.attest(&key);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(kind(&r), "InvalidNonce", "{}", r.text);

    // A nonce that is not the session's.
    let c3 = Client::start(&s);
    let (_, jcs) = key.jwk();
    let r = c3.attest_with(&key, &c.nonce, &c3.report_data(&jcs, &c.nonce));
    assert_eq!(kind(&r), "InvalidNonce", "{}", r.text);

    // Wrong binding: the report carries the digest of another key.
    let c4 = Client::start(&s);
    let (_, other) = TeeKey::ec().jwk();
    let r = c4.attest_with(&key, &c4.nonce, &c4.report_data(&other, &c4.nonce));
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(kind(&r), "BindingMismatch", "{}", r.text);
    // ... and its nonce is spent: no second try on that session.
    assert_eq!(kind(&c4.attest(&key)), "InvalidNonce");

    // Wrong protocol version.
    for v in ["0.1.1", "0.3.0", "0.4"] {
        let r = auth(&s, v);
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(kind(&r), "ProtocolVersion", "{}", r.text);
    }

    // No cookie, a made-up cookie, an unattested session.
    let r = s.get("/kbs/v0/resource/default/key/1", None);
    assert_eq!(kind(&r), "TokenNotFound", "{}", r.text);
    let r = s.call(
        "POST",
        "/kbs/v0/attest",
        None,
        Some(b"{}"),
        &[("Cookie", "kbs-session-id=00000000000000000000000000000000")],
    );
    assert_eq!(kind(&r), "InvalidCookie", "{}", r.text);
    let r = s.post("/kbs/v0/attest", None, &json!({}));
    assert_eq!(kind(&r), "MissingCookie", "{}", r.text);
    let fresh = Client::start(&s);
    assert_eq!(
        kind(&fresh.resource("default/key/1")),
        "UnAuthenticatedCookie"
    );

    // A tampered token.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = b64u(br#"{"x-enclava-kbs":{}}"#);
    let r = s.get("/kbs/v0/resource/default/key/1", Some(&parts.join(".")));
    assert_eq!(kind(&r), "TokenVerificationFailed", "{}", r.text);

    // Releases are audited with the policy prefix that allowed them.
    let audit = s.audit_entries(&admin);
    assert!(
        audit
            .iter()
            .any(|e| e.to_string().contains("kbs/resource/default/key/1")
                && e.to_string().contains("released under policy prefix")),
        "no release in the audit log"
    );
}

#[test]
fn an_expired_token_is_refused_with_its_kind() {
    let s = dev_server(Some(1));
    let admin = s.admin_token();
    provision(&s, &admin);
    let key = TeeKey::ec();
    let c = Client::start(&s);
    let r = c.attest(&key);
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = s.get("/kbs/v0/resource/default/key/1", Some(&token));
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(kind(&r), "TokenExpired", "{}", r.text);
    // The session ended with its token.
    assert_eq!(kind(&c.resource("default/key/1")), "ExpiredCookie");
}

#[test]
fn admin_routes_need_enclava_roles() {
    let s = dev_server(None);
    let admin = s.admin_token();
    provision(&s, &admin);
    // No token, and an attestation token, are not admin credentials.
    let r = s.call(
        "POST",
        "/kbs/v0/resource/default/key/9",
        None,
        Some(b"x"),
        &[("Content-Type", "application/octet-stream")],
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // A principal without secrets/set is refused.
    let (id, secret) = s.service_principal(&admin, "reader");
    s.assign(&admin, &id, "Key Vault Secrets User", "/");
    let reader = s.token_for(&id, &secret);
    let r = s.call(
        "POST",
        "/kbs/v0/resource/default/key/9",
        Some(&reader),
        Some(b"x"),
        &[("Content-Type", "application/octet-stream")],
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // The admin reads back exactly the bytes, lists, deletes, and sets again.
    let r = s.get("/kbs/v0/admin/resource/default/key/1", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        STANDARD.decode(r.body["value"].as_str().unwrap()).unwrap(),
        b"\x00\x01\x02 resource one \xff"
    );
    let r = s.get("/kbs/v0/admin/resources", Some(&admin));
    let paths: Vec<&str> = r.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["default/key/1", "default/key/2"], "{}", r.text);
    let r = s.call(
        "DELETE",
        "/kbs/v0/resource/default/key/2",
        Some(&admin),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get("/kbs/v0/admin/resource/default/key/2", Some(&admin));
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.call(
        "POST",
        "/kbs/v0/resource/default/key/2",
        Some(&admin),
        Some(b"again"),
        &[("Content-Type", "application/octet-stream")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // No policy for a prefix is an answer, not a 404.
    let r = s.get("/kbs/v0/resource-policy?prefix=other", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["policy"].is_null(), "{}", r.text);
    // The resource policy reads back; a broken one is refused and never stored.
    let r = s.get("/kbs/v0/resource-policy", Some(&admin));
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(r.body["policy"].as_str().unwrap())
            .unwrap(),
        RESOURCE_POLICY.as_bytes()
    );
    let r = s.post(
        "/kbs/v0/resource-policy",
        Some(&admin),
        &json!({"policy": b64u(b"package policy\nallow if {")}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Policy test route.
    let r = s.post(
        "/kbs/v0/admin/resource-policy/test",
        Some(&admin),
        &json!({"path": "default/key/2", "claims": {"x-enclava-tee": "sample"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["failed"][0]["rule"], "key_2_closed");

    // Per prefix: the longest prefix with a policy decides.
    let closed = "package policy\nimport rego.v1\ndefault allow := false\ndeny contains \"key_prefix_closed\" if true\n";
    let r = s.post(
        "/kbs/v0/resource-policy",
        Some(&admin),
        &json!({"policy": b64u(closed.as_bytes()), "prefix": "default/key"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let test = |path: &str| {
        s.post(
            "/kbs/v0/admin/resource-policy/test",
            Some(&admin),
            &json!({"path": path, "claims": {"x-enclava-tee": "sample", "x-enclava-ear": {"submods": {"sample": {"ear.status": "warning"}}}}}),
        )
    };
    let r = test("default/key/1");
    assert_eq!(r.body["prefix"], "default/key", "{}", r.text);
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["failed"][0]["rule"], "key_prefix_closed");
    let r = test("default/cert/1");
    assert_eq!(r.body["prefix"], "", "{}", r.text);
    assert_eq!(r.body["allowed"], true, "{}", r.text);
}

/// The privilege escalation of issue 13: KBS resources and resource policies are vault secrets,
/// and a principal with only the Key Vault secrets roles must not reach them through `/secrets`
/// (replacing a resource policy needs `policies/manage`; reading a resource needs an attested
/// session). Every `/secrets` and `/deletedsecrets` route refuses the reserved names (in any
/// case), listings hide them, and the KBS itself is unaffected.
#[test]
fn the_secrets_data_plane_cannot_reach_kbs_resources_or_policies() {
    const V: &str = "api-version=7.5";
    let s = dev_server(None);
    let admin = s.admin_token();
    provision(&s, &admin);
    let (id, secret) = s.service_principal(&admin, "officer");
    s.assign(&admin, &id, "Key Vault Secrets Officer", "/");
    let officer = s.token_for(&id, &secret);
    let open = "package policy\nimport rego.v1\ndefault allow := true\n";

    // The attack: overwrite the catch-all resource policy (secret `kbs-p-`) with allow-all.
    for name in ["kbs-p-", "KBS-P-", "kbs-p-default"] {
        let r = s.put(
            &format!("/secrets/{name}?{V}"),
            Some(&officer),
            &json!({"value": open, "contentType": "application/vnd.enclava.kbs-policy+rego"}),
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(r.text.contains("reserved for the KBS"), "{}", r.text);
    }
    // Read, version-list, back up, patch and delete a resource around the KBS.
    let res = "kbs-r-default-2Fkey-2F1";
    for (method, path) in [
        ("GET", format!("/secrets/{res}?{V}")),
        ("GET", format!("/secrets/Kbs-R-default-2Fkey-2F1?{V}")),
        ("GET", format!("/secrets/{res}/versions?{V}")),
        ("POST", format!("/secrets/{res}/backup?{V}")),
        ("PATCH", format!("/secrets/{res}/?{V}")),
        ("DELETE", format!("/secrets/{res}?{V}")),
        ("GET", format!("/deletedsecrets/{res}?{V}")),
        ("POST", format!("/deletedsecrets/{res}/recover?{V}")),
        ("DELETE", format!("/deletedsecrets/{res}?{V}")),
    ] {
        let r = s.call(
            method,
            &path,
            Some(&admin),
            Some(b"{}"),
            &[("Content-Type", "application/json")],
        );
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert!(!r.text.contains("resource one"), "{}", r.text);
    }
    // Listings (live and deleted) hide them, even from the vault administrator.
    let other = s.put(
        &format!("/secrets/plain?{V}"),
        Some(&officer),
        &json!({"value": "v"}),
    );
    assert_eq!(other.status, 200, "{}", other.text);
    let r = s.call(
        "DELETE",
        "/kbs/v0/resource/default/key/2",
        Some(&admin),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get(&format!("/secrets?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<&str> = r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{}", r.text);
    assert!(ids[0].ends_with("/secrets/plain"), "{}", r.text);
    let r = s.get(&format!("/deletedsecrets?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.to_ascii_lowercase().contains("kbs-"), "{}", r.text);

    // The KBS is untouched: its policy still closes default/key/2, resources read back.
    let r = s.post(
        "/kbs/v0/admin/resource-policy/test",
        Some(&admin),
        &json!({"path": "default/key/2", "claims": {"x-enclava-tee": "sample"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["failed"][0]["rule"], "key_2_closed", "{}", r.text);
    let r = s.get("/kbs/v0/admin/resource/default/key/1", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A handshake started on replica A (auth) is finished on replica B (attest) and the resource
/// fetched on A again with B's cookie: sessions are in the shared database. Needs
/// `ENCLAVA_TEST_POSTGRES_URL` (scripts/postgres-test.sh); skipped with a notice without it.
#[test]
fn a_handshake_started_on_one_replica_finishes_on_another() {
    use common::postgres::{admin_token, fresh_database_url, postgres_url};
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "kbs", "handshake");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = || {
        PartialConfig {
            addr: Some("127.0.0.1:0".into()),
            data_dir: Some(data.clone()),
            dev: Some(true),
            store: Some(enclava_server::StoreUrl::new(&url)),
            public_url: Some("https://replicas.enclava.test".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap()
    };
    let a = start_with(config());
    let b = start_with(config());
    let admin = admin_token(&data);
    provision(&a, &admin);
    // Policies and resources written on A are read by B through the shared database (the
    // appraisal-policy cache revalidates within a second).
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let key = TeeKey::ec();
    let on_a = Client::start(&a);
    let on_b = Client {
        s: &b,
        cookie: on_a.cookie.clone(),
        nonce: on_a.nonce.clone(),
    };
    let r = on_b.attest(&key);
    assert_eq!(r.status, 200, "attest on B of A's session: {}", r.text);
    // Back on A with the same (now attested) session.
    let r = on_a.resource("default/key/1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(key.decrypt(&r.body), b"\x00\x01\x02 resource one \xff");
    // The nonce is spent for both replicas.
    assert_eq!(kind(&on_a.attest(&key)), "InvalidNonce");
}

/// The real Azure SEV-SNP vTPM evidence (trustee's test vectors, exactly what CoCo's
/// az-snp-vtpm attester sends) attests through `/kbs/v0/attest`.
///
/// Their TPM quotes commit to the fixed nonce "challenge" (v0, v1) or to a fixed 48-byte value
/// (v2), never to a JCS binding of a session we could create, so the test builds the session
/// itself: it writes the session row straight into the server's database (`kbs_sessions`,
/// state `pending`) with `expected_report_data` set to the value in the evidence's quote, which
/// the server then requires instead of the JCS digest. No route can set that member; the
/// comparison against the verified quote still runs. A session made by `/auth` expects the JCS
/// digest, and the same evidence is refused with `BindingMismatch`.
#[test]
fn azure_snp_vtpm_vectors_attest_and_are_refused_without_their_binding() {
    let Some(vectors) = enclava_testvectors::dir() else {
        return;
    };
    let at = "2025-06-01T00:00:00Z";
    let collateral = tempfile::tempdir().unwrap();
    std::fs::copy(
        vectors.join("sev-snp/google-go-sev-guest/ask_ark_milan.pem"),
        collateral.path().join("ask_ark_milan.pem"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some(at.into()),
            collateral_dir: Some(collateral.path().to_path_buf()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = dir;
    let admin = s.admin_token();
    // An appraisal policy that admits these (debug-free, recorded) VMs: no revocation data is
    // in the vectors, which the default azure-snp policy requires.
    let policy = "package enclava.appraisal\nimport rego.v1\ndefault allow := false\nallow if input.claims.tee == \"azure-snp\"\n";
    let r = s.call(
        "PUT",
        "/policies/azure-snp",
        Some(&admin),
        Some(policy.as_bytes()),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 200, "{}", r.text);

    let db = rusqlite::Connection::open(dir_of(&s).join("vault.db")).unwrap();
    let key = TeeKey::ec();
    let (jwk, _) = key.jwk();
    let v2_nonce = "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef";
    for (version, quote_nonce) in [
        ("v0", hex::encode(b"challenge")),
        ("v1", hex::encode(b"challenge")),
        ("v2", v2_nonce.to_string()),
    ] {
        let evidence: Value = serde_json::from_slice(
            &std::fs::read(vectors.join(format!(
                "azure-cvm/trustee-az-snp-vtpm/evidence-{version}.json"
            )))
            .unwrap(),
        )
        .unwrap();
        let body = |nonce: &str| {
            json!({
                "runtime-data": {"nonce": nonce, "tee-pubkey": jwk},
                "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
            })
            .to_string()
        };

        // The session built by the test around the recorded quote.
        let id = format!("{:032x}", 0xa2u128 + version.as_bytes()[1] as u128);
        let now = chrono::Utc::now().timestamp();
        let row = json!({
            "tee": "az-snp-vtpm", "hash": "sha384", "nonce": "recorded", "created": now,
            "expires": now + 300, "state": "pending", "expected_report_data": quote_nonce,
        });
        db.execute(
            "INSERT INTO kbs_sessions (k, v) VALUES (?1, ?2)",
            rusqlite::params![id, serde_json::to_vec(&row).unwrap()],
        )
        .unwrap();
        let cookie = format!("kbs-session-id={id}");
        let r = s.call(
            "POST",
            "/kbs/v0/attest",
            None,
            Some(body("recorded").as_bytes()),
            &[("Cookie", &cookie)],
        );
        assert_eq!(r.status, 200, "{version}: {}", r.text);
        let token = r.body["token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["x-enclava-tee"], "azure-snp", "{version}");
        assert_eq!(claims["x-ms-attestation-type"], "azurevm", "{version}");
        assert_eq!(
            claims["x-ms-isolation-tee"]["x-ms-attestation-type"], "sevsnpvm",
            "{version}"
        );
        assert_eq!(claims["x-enclava-kbs"]["tee"], "az-snp-vtpm");
        assert_eq!(claims["x-enclava-kbs"]["tee-pubkey"], jwk);

        // Init-data these VMs were not launched with: PCR 8 does not hold its extension.
        let id2 = format!("{:032x}", 0xb2u128 + version.as_bytes()[1] as u128);
        db.execute(
            "INSERT INTO kbs_sessions (k, v) VALUES (?1, ?2)",
            rusqlite::params![id2, serde_json::to_vec(&row).unwrap()],
        )
        .unwrap();
        let mut with_init: Value = serde_json::from_str(&body("recorded")).unwrap();
        with_init["init-data"] = json!({"format": "toml",
            "body": "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n"});
        let r = s.call(
            "POST",
            "/kbs/v0/attest",
            None,
            Some(with_init.to_string().as_bytes()),
            &[("Cookie", &format!("kbs-session-id={id2}"))],
        );
        assert_eq!(r.status, 401, "{version}: {}", r.text);
        assert_eq!(kind(&r), "InitDataMismatch", "{version}: {}", r.text);

        // A real session (from /auth): the quote does not carry its JCS binding.
        let r = s.post(
            "/kbs/v0/auth",
            None,
            &json!({"version": "0.4.0", "tee": "az-snp-vtpm", "extra-params": ""}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let cookie = r
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let nonce = r.body["nonce"].as_str().unwrap().to_string();
        let r = s.call(
            "POST",
            "/kbs/v0/attest",
            None,
            Some(body(&nonce).as_bytes()),
            &[("Cookie", &cookie)],
        );
        assert_eq!(r.status, 401, "{version}: {}", r.text);
        assert_eq!(kind(&r), "BindingMismatch", "{version}: {}", r.text);
        assert!(
            r.body["detail"].as_str().unwrap().contains(&quote_nonce),
            "{}",
            r.text
        );
    }
}

/// guest-components' SNP attester sends the `sev` crate's structured JSON of the report plus
/// its `cert_chain`: trustee's recorded e2e evidence (a real Genoa v3 report and its VCEK, the
/// JSON exactly as recorded) attests through `/kbs/v0/attest`, which proves the rebuilt bytes
/// are the signed ones; the same JSON with two same-sized fields swapped (a decoder placing
/// fields wrongly) fails the signature; a malformed field is a 400 naming it.
#[test]
fn coco_snp_attester_json_evidence_attests_and_a_misplaced_field_fails_the_signature() {
    let Some(vectors) = enclava_testvectors::dir() else {
        return;
    };
    let collateral = tempfile::tempdir().unwrap();
    std::fs::copy(
        vectors.join("sev-snp/google-go-sev-guest/ask_ark_genoa.pem"),
        collateral.path().join("ask_ark_genoa.pem"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some("2025-06-01T00:00:00Z".into()),
            collateral_dir: Some(collateral.path().to_path_buf()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = dir;
    let admin = s.admin_token();
    let policy = "package enclava.appraisal\nimport rego.v1\ndefault allow := false\nallow if input.claims.tee == \"snp\"\n";
    let r = common::put_policy(&s, &admin, policy);
    assert_eq!(r.status, 200, "{}", r.text);

    let evidence: Value = serde_json::from_slice(
        &std::fs::read(vectors.join("sev-snp/trustee/evidence.json")).unwrap(),
    )
    .unwrap();
    let report = &evidence["attestation_report"];
    let report_data: Vec<u8> = report["report_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(
        enclava_kbs::snp::report_from_json(report).unwrap(),
        std::fs::read(vectors.join("sev-snp/trustee/derived_e2e_evidence_report.bin")).unwrap()
    );

    let db = rusqlite::Connection::open(dir_of(&s).join("vault.db")).unwrap();
    let key = TeeKey::ec();
    let (jwk, _) = key.jwk();
    let mut n = 0u128;
    // A session built around the recorded report (its report_data is the expected binding).
    let mut attest = |primary: &Value| {
        n += 1;
        let id = format!("{:032x}", 0x5e00u128 + n);
        let now = chrono::Utc::now().timestamp();
        let row = json!({
            "tee": "snp", "hash": "sha384", "nonce": "recorded", "created": now,
            "expires": now + 300, "state": "pending",
            "expected_report_data": hex::encode(&report_data),
        });
        db.execute(
            "INSERT INTO kbs_sessions (k, v) VALUES (?1, ?2)",
            rusqlite::params![id, serde_json::to_vec(&row).unwrap()],
        )
        .unwrap();
        let body = json!({
            "runtime-data": {"nonce": "recorded", "tee-pubkey": jwk},
            "tee-evidence": {"primary_evidence": primary, "additional_evidence": ""},
        });
        s.call(
            "POST",
            "/kbs/v0/attest",
            None,
            Some(body.to_string().as_bytes()),
            &[("Cookie", &format!("kbs-session-id={id}"))],
        )
    };

    let r = attest(&evidence);
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["x-enclava-tee"], "snp");
    assert_eq!(claims["x-enclava-kbs"]["tee"], "snp");

    // report_id and report_id_ma swapped: same shape, other signed bytes.
    let mut swapped = evidence.clone();
    let a = swapped["attestation_report"]["report_id"].clone();
    swapped["attestation_report"]["report_id"] =
        swapped["attestation_report"]["report_id_ma"].clone();
    swapped["attestation_report"]["report_id_ma"] = a;
    let r = attest(&swapped);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.to_lowercase().contains("signature"), "{}", r.text);

    // A malformed field is a clear 400 naming it.
    let mut broken = evidence.clone();
    broken["attestation_report"]["measurement"] = json!([1, 2, 3]);
    let r = attest(&broken);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("measurement"), "{}", r.text);
}

/// The older `sev` serde shape (crate versions 1 to 3: `_author_key_en`, `_reserved_*`,
/// `current_build`..., TCB `{bootloader, tee, _reserved, snp, microcode}`, signature
/// `{r, s, _reserved}`), written here from a real Milan report: rebuilt byte for byte.
#[test]
fn the_older_sev_report_json_shape_rebuilds_the_signed_bytes() {
    let Some(vectors) = enclava_testvectors::dir() else {
        return;
    };
    let b = std::fs::read(vectors.join("sev-snp/trustee/test-report.bin")).unwrap();
    let arr = |r: std::ops::Range<usize>| json!(b[r].to_vec());
    let le = |r: std::ops::Range<usize>| {
        let mut x = [0u8; 8];
        x[..r.len()].copy_from_slice(&b[r]);
        json!(u64::from_le_bytes(x))
    };
    let tcb = |at: usize| {
        json!({"bootloader": b[at], "tee": b[at + 1], "_reserved": b[at + 2..at + 6].to_vec(),
            "snp": b[at + 6], "microcode": b[at + 7]})
    };
    let report = json!({
        "version": le(0..4), "guest_svn": le(4..8), "policy": le(8..16),
        "family_id": arr(0x10..0x20), "image_id": arr(0x20..0x30), "vmpl": le(0x30..0x34),
        "sig_algo": le(0x34..0x38), "current_tcb": tcb(0x38), "plat_info": le(0x40..0x48),
        "_author_key_en": le(0x48..0x4C), "_reserved_0": le(0x4C..0x50),
        "report_data": arr(0x50..0x90), "measurement": arr(0x90..0xC0),
        "host_data": arr(0xC0..0xE0), "id_key_digest": arr(0xE0..0x110),
        "author_key_digest": arr(0x110..0x140), "report_id": arr(0x140..0x160),
        "report_id_ma": arr(0x160..0x180), "reported_tcb": tcb(0x180),
        "_reserved_1": arr(0x188..0x1A0), "chip_id": arr(0x1A0..0x1E0),
        "committed_tcb": tcb(0x1E0), "current_build": b[0x1E8], "current_minor": b[0x1E9],
        "current_major": b[0x1EA], "_reserved_2": b[0x1EB], "committed_build": b[0x1EC],
        "committed_minor": b[0x1ED], "committed_major": b[0x1EE], "_reserved_3": b[0x1EF],
        "launch_tcb": tcb(0x1F0), "_reserved_4": arr(0x1F8..0x2A0),
        "signature": {"r": arr(0x2A0..0x2E8), "s": arr(0x2E8..0x330), "_reserved": arr(0x330..0x4A0)},
    });
    assert_eq!(enclava_kbs::snp::report_from_json(&report).unwrap(), b);
    let vcek = std::fs::read(vectors.join("sev-snp/trustee/test-vcek.der")).unwrap();
    let ev = enclava_kbs::snp::evidence_from_json(&json!({
        "attestation_report": report,
        "cert_chain": [{"cert_type": "VCEK", "data": vcek}, {"cert_type": "Empty", "data": []}],
    }))
    .unwrap();
    assert_eq!(ev.certs_der, vec![vcek]);
}

fn dir_of(s: &TestServer) -> std::path::PathBuf {
    common::data_dir_of(s)
}
