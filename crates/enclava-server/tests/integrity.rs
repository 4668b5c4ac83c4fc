//! Row integrity through the real server (issue 9 item 9): security-relevant rows edited in the
//! database while the server is down (what a database administrator or a host with access to the
//! data directory can do) are refused after the restart instead of being trusted: role
//! assignments, principals, attestation policies, reference values and key release policies.

mod common;

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Resp, TestServer, start_with};
use enclava_server::PartialConfig;
use enclava_server::release::TrustedIssuerConfig;
use enclava_store::{Op, SqliteStore, Store, Table};
use enclava_token::{Es256Signer, JtiSource, Jwks, TokenOptions, issue};
use serde_json::{Map, Value, json};
use sha2::Digest;

const V: &str = "api-version=7.6";
const ISS: &str = "https://attest.integrity-test.example";

fn config(dir: &Path, att: Option<&Es256Signer>) -> enclava_server::ServerConfig {
    PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data")),
        dev: Some(true),
        // A fixed token issuer: the restarted server gets another port, and the tokens issued
        // before the restart must stay valid (that is the point of the tests).
        public_url: Some("https://localhost:8443".into()),
        trusted_issuers: att.map(|a| {
            vec![TrustedIssuerConfig {
                issuer: ISS.into(),
                jwks_file: None,
                jwks: Some(Jwks::from_signers(&[a]).unwrap()),
            }]
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap()
}

fn start(dir: tempfile::TempDir, att: Option<&Es256Signer>) -> TestServer {
    let mut t = start_with(config(dir.path(), att));
    t.dir = dir;
    t
}

/// Stop the server and wait until it is gone; the data directory survives.
fn stop(t: TestServer) -> tempfile::TempDir {
    let TestServer {
        dir, server, rt, ..
    } = t;
    server.shutdown(Duration::from_secs(2));
    rt.block_on(server.wait()).expect("server stops");
    drop(rt);
    dir
}

/// The database, opened the way an attacker with file access would.
fn db(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("data").join(enclava_server::DB_FILE)).unwrap()
}

fn get(db: &SqliteStore, table: Table, key: &str) -> Vec<u8> {
    db.get(table, key).unwrap().expect("row exists")
}

fn put(db: &SqliteStore, table: Table, key: &str, value: Vec<u8>) {
    db.transact(vec![Op::Put {
        table,
        key: key.into(),
        value,
    }])
    .unwrap();
}

/// Edit the JSON payload of an integrity-enveloped row (`mac1:<hex>\n<json>`), keeping its MAC.
fn edit_enveloped(db: &SqliteStore, table: Table, key: &str, f: impl Fn(&mut Value)) {
    let row = get(db, table, key);
    let nl = row.iter().position(|b| *b == b'\n').expect("an envelope");
    let mut v: Value = serde_json::from_slice(&row[nl + 1..]).unwrap();
    f(&mut v);
    let mut out = row[..=nl].to_vec();
    out.extend_from_slice(&serde_json::to_vec(&v).unwrap());
    put(db, table, key, out);
}

fn assign(t: &TestServer, admin: &str, principal: &str, role: &str, scope: &str) -> String {
    let r = t.post(
        "/enclava/role-assignments",
        Some(admin),
        &json!({"principal": principal, "role": role, "scope": scope}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("assignment id").to_string()
}

fn assert_integrity_403(r: &Resp) {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.body["error"]["innererror"]["code"], "IntegrityCheckFailed",
        "{}",
        r.text
    );
}

#[test]
fn tampered_identity_rows_grant_nothing_after_restart() {
    let t = start(tempfile::tempdir().unwrap(), None);
    let admin = t.admin_token();
    let (user, user_secret) = t.service_principal(&admin, "crypto-user");
    let aid = assign(&t, &admin, &user, "CryptoUser", "/");
    let (other, other_secret) = t.service_principal(&admin, "other");
    assign(&t, &admin, &other, "CryptoUser", "/");
    let user_token = t.token_for(&user, &user_secret);
    let other_token = t.token_for(&other, &other_secret);
    // Before: a Crypto User is not an administrator.
    let r = t.get("/enclava/role-assignments", Some(&user_token));
    assert_eq!(r.status, 403, "{}", r.text);
    let boot = {
        let r = t.get("/enclava/principals", Some(&admin));
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"]["type"] == "bootstrap_admin")
            .expect("the bootstrap administrator")["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let dir = stop(t);

    {
        let db = db(&dir);
        // 1. The user's assignment (both copies) edited to Administrator at "/".
        for key in [format!("a/{aid}"), format!("p/{user}/{aid}")] {
            edit_enveloped(&db, Table::RoleAssignments, &key, |v| {
                v["role"] = "Administrator".into();
                v["scope"] = "/".into();
            });
        }
        // 2. The other principal's record replaced by the bootstrap administrator's row.
        let boot_row = get(&db, Table::Principals, &format!("p/{boot}"));
        put(&db, Table::Principals, &format!("p/{other}"), boot_row);
    }

    let t = start(dir, None);
    let admin = t.admin_token();
    // The edited assignment grants nothing: no administrator route, and not even the Crypto
    // User rights it had before (the row is not used at all).
    let r = t.get("/enclava/role-assignments", Some(&user_token));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["innererror"]["code"], "ForbiddenByRbac");
    let r = t.get("/enclava/principals", Some(&user_token));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = t.get(&format!("/keys?{V}"), Some(&user_token));
    assert_eq!(r.status, 403, "{}", r.text);
    // The tampered row is reported, by table and key, to whoever reads it.
    let r = t.get(&format!("/enclava/role-assignments/{aid}"), Some(&admin));
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.code(), "IntegrityCheckFailed", "{}", r.text);
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("role_assignments") && msg.contains(&format!("a/{aid}")),
        "{msg}"
    );
    // Repair: the administrator removes the tampered assignment.
    let r = t.call(
        "DELETE",
        &format!("/enclava/role-assignments/{aid}"),
        Some(&admin),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = t.get(&format!("/enclava/role-assignments/{aid}"), Some(&admin));
    assert_eq!(r.status, 404, "{}", r.text);
    // The swapped principal authenticates nobody (its old token is refused) ...
    assert_integrity_403(&t.get(&format!("/keys?{V}"), Some(&other_token)));
    assert_integrity_403(&t.get("/enclava/principals", Some(&other_token)));
    // ... and gets no new token either.
    let form = format!(
        "grant_type=client_credentials&client_id={other}&client_secret={}&scope=https%3A%2F%2Fvault.azure.net%2F.default",
        common::form_encode(&other_secret)
    );
    let r = t.call(
        "POST",
        "/contoso/oauth2/v2.0/token",
        None,
        Some(form.as_bytes()),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_ne!(r.status, 200, "{}", r.text);
    assert!(r.body.get("access_token").is_none(), "{}", r.text);
    // The administrator is unaffected and can repair: deleting the tampered principals.
    let r = t.call(
        "DELETE",
        &format!("/enclava/principals/{user}"),
        Some(&admin),
        None,
        &[],
    );
    assert!(r.status < 300, "{}", r.text);
    let r = t.call(
        "DELETE",
        &format!("/enclava/principals/{other}"),
        Some(&admin),
        None,
        &[],
    );
    assert!(r.status < 300, "{}", r.text);
    let r = t.get("/enclava/role-assignments", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    drop(stop(t));
}

#[test]
fn moved_assignment_row_is_refused() {
    let t = start(tempfile::tempdir().unwrap(), None);
    let admin = t.admin_token();
    let (a, _) = t.service_principal(&admin, "officer");
    let aid = assign(&t, &admin, &a, "Administrator", "/");
    let (b, b_secret) = t.service_principal(&admin, "user");
    let b_token = t.token_for(&b, &b_secret);
    let dir = stop(t);
    {
        // A valid, MAC'd Administrator row filed under another principal.
        let db = db(&dir);
        let row = get(&db, Table::RoleAssignments, &format!("p/{a}/{aid}"));
        put(&db, Table::RoleAssignments, &format!("p/{b}/{aid}"), row);
    }
    let t = start(dir, None);
    let r = t.get("/enclava/role-assignments", Some(&b_token));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["innererror"]["code"], "ForbiddenByRbac");
    drop(stop(t));
}

// ----- attestation policies, reference values, release policies -----

fn rego(rules: &str) -> String {
    format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n{rules}\n"
    )
}

fn sim_body() -> Value {
    let report_data = {
        let mut rd = [0u8; 64];
        rd[..32].copy_from_slice(&sha2::Sha256::digest(b"{}"));
        rd
    };
    let ev = enclava_evidence::sim::generate(&[7u8; 48], &report_data, chrono::Utc::now());
    json!({
        "tee": "sim",
        "evidence": URL_SAFE_NO_PAD.encode(ev),
        "runtime_data": {"data": URL_SAFE_NO_PAD.encode(b"{}"), "dataType": "JSON"},
    })
}

fn put_policy(t: &TestServer, admin: &str, text: &str) {
    let r = t.call(
        "PUT",
        "/policies/sim",
        Some(admin),
        Some(json!({ "policy": text }).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

struct Holder {
    n: Vec<u8>,
    e: Vec<u8>,
}

fn holder() -> Holder {
    let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pk = pair.public_key();
    Holder {
        n: pk.modulus().big_endian_without_leading_zero().to_vec(),
        e: pk.exponent().big_endian_without_leading_zero().to_vec(),
    }
}

fn att_token(att: &Es256Signer, h: &Holder, jti: &str) -> String {
    let c: Map<String, Value> = json!({
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-is-debuggable": true,
        "x-ms-runtime": {"keys": [{
            "kty": "RSA", "kid": "holder-1", "key_ops": ["encrypt"],
            "n": URL_SAFE_NO_PAD.encode(&h.n), "e": URL_SAFE_NO_PAD.encode(&h.e)}]},
    })
    .as_object()
    .cloned()
    .unwrap();
    let mut o = TokenOptions::new(ISS, chrono::Utc::now());
    o.jti = JtiSource::Fixed(jti.into());
    issue(&c, att, &o).unwrap()
}

fn release_policy(debuggable: &str) -> String {
    let p = json!({"version": "1.0.0", "anyOf": [{"authority": ISS, "allOf": [
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": debuggable}]}]});
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap())
}

#[test]
fn tampered_policies_reference_values_and_release_policies_are_refused() {
    let att = Es256Signer::generate("att-1").unwrap();
    let h = holder();
    let t = start(tempfile::tempdir().unwrap(), Some(&att));
    let admin = t.admin_token();

    // A sim policy that denies everything, and a reference set in scope "t1".
    let deny_all = rego(r#"deny contains "always" if true"#);
    let allow_sim = rego(r#"deny contains "not sim" if input.claims.tee != "sim""#);
    put_policy(&t, &admin, &deny_all);
    let r = t.post("/attest/native", None, &sim_body());
    assert_eq!(r.status, 403, "{}", r.text);
    let r = t.put(
        "/enclava/reference-values/t1/m",
        Some(&admin),
        &json!({"measurements": ["aa"]}),
    );
    assert!(r.status < 300, "{}", r.text);

    // An exportable key whose release policy refuses debuggable TEEs; the test's tokens say
    // debuggable, so release is denied by the policy.
    let r = t.put(
        &format!("/keys/rk?{V}"),
        Some(&admin),
        &json!({"key": {"kty": "oct-HSM", "k": URL_SAFE_NO_PAD.encode([0x42u8; 32])},
                "attributes": {"exportable": true},
                "release_policy": {"data": release_policy("false")}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (rel, rel_secret) = t.service_principal(&admin, "releaser");
    assign(&t, &admin, &rel, "ReleaseUser", "/");
    let rel_token = t.token_for(&rel, &rel_secret);
    let release = |t: &TestServer, jti: &str| {
        t.post(
            &format!("/keys/rk//release?{V}"),
            Some(&rel_token),
            &json!({"target": att_token(&att, &h, jti)}),
        )
    };
    let r = release(&t, "jti-before");
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.body["error"]["innererror"]["code"],
        "ReleasePolicyNotSatisfied"
    );
    let dir = stop(t);

    {
        let db = db(&dir);
        // The policy text replaced by one that allows sim evidence (MAC kept).
        edit_enveloped(&db, Table::Policies, "attestation/policy/sim", |v| {
            v["text"] = allow_sim.clone().into();
        });
        // The reference set edited.
        edit_enveloped(&db, Table::Policies, "attestation/reference/t1/m", |v| {
            v["value"] = json!({"measurements": ["evil"]});
        });
        // The key's release policy loosened to accept debuggable TEEs (vault record MAC kept).
        let rows = db.list(Table::KeyVersions, "rk/", None, 10).unwrap();
        assert_eq!(rows.len(), 1);
        let (k, v) = &rows[0];
        let mut rec: Value = serde_json::from_slice(v).unwrap();
        rec["release_policy"]["data"] = release_policy("true").into();
        put(
            &db,
            Table::KeyVersions,
            k,
            serde_json::to_vec(&rec).unwrap(),
        );
    }

    let t = start(dir, Some(&att));
    let admin = t.admin_token();
    // The edited policy is refused, not evaluated: no token.
    let r = t.post("/attest/native", None, &sim_body());
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.code(), "integrity_check_failed", "{}", r.text);
    assert!(r.body.get("token").is_none());
    assert!(
        r.text.contains("attestation/policy/sim"),
        "names the row: {}",
        r.text
    );
    let r = t.get("/policies/sim", Some(&admin));
    assert_eq!(r.status, 500, "{}", r.text);
    // Repair: setting the policy again (here, to one admitting sim evidence) works.
    put_policy(&t, &admin, &allow_sim);
    let r = t.post("/attest/native", None, &sim_body());
    assert_eq!(r.status, 200, "{}", r.text);
    // The edited reference set is refused for its scope.
    let r = t.post("/attest/native?scope=t1", None, &sim_body());
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.code(), "integrity_check_failed", "{}", r.text);
    assert!(r.text.contains("attestation/reference/t1/m"), "{}", r.text);
    // The loosened release policy is refused: no key material.
    let r = release(&t, "jti-after");
    assert!(r.status >= 400, "{}", r.text);
    assert!(r.body.get("value").is_none(), "{}", r.text);
    assert!(
        r.text.contains("integrity"),
        "the refusal says why: {}",
        r.text
    );
    drop(stop(t));
}

/// Rewrite every protected row in the format written before row integrity (the bare payload)
/// and remove the markers: the database as the previous version left it.
fn downgrade(db: &SqliteStore) {
    for table in [Table::Principals, Table::RoleAssignments, Table::Policies] {
        for (k, v) in db.list(table, "", None, 10_000).unwrap() {
            let nl = v.iter().position(|b| *b == b'\n').expect("an envelope");
            put(db, table, &k, v[nl + 1..].to_vec());
        }
    }
    let pointer = enclava_identity::BOOTSTRAP_ADMIN_META;
    let v = get(db, Table::Meta, pointer);
    let nl = v.iter().position(|b| *b == b'\n').expect("an envelope");
    put(db, Table::Meta, pointer, v[nl + 1..].to_vec());
    db.transact(vec![
        Op::Delete {
            table: Table::Meta,
            key: enclava_identity::ROW_INTEGRITY_META.into(),
        },
        Op::Delete {
            table: Table::Meta,
            key: enclava_attestation::policies::ROW_INTEGRITY_META.into(),
        },
    ])
    .unwrap();
}

#[test]
fn rows_from_before_integrity_are_adopted_once_at_unseal() {
    let t = start(tempfile::tempdir().unwrap(), None);
    let admin = t.admin_token();
    let (user, secret) = t.service_principal(&admin, "crypto-user");
    assign(&t, &admin, &user, "CryptoUser", "/");
    put_policy(&t, &admin, &rego(r#"deny contains "always" if true"#));
    let user_token = t.token_for(&user, &secret);
    let dir = stop(t);
    downgrade(&db(&dir));

    // First unseal of this version: the old rows are adopted, and that is audited.
    let t = start(dir, None);
    let admin = t.admin_token();
    let r = t.get(&format!("/keys?{V}"), Some(&user_token));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.get("/enclava/role-assignments", Some(&user_token));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = t.get("/policies/sim", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post("/attest/native", None, &sim_body());
    assert_eq!(
        r.status, 403,
        "the adopted deny-all policy applies: {}",
        r.text
    );
    let entries = t.audit_entries(&admin);
    let migrated: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "integrity/migrate")
        .collect();
    assert_eq!(migrated.len(), 2, "identity and attestation: {entries:?}");
    assert!(
        migrated
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains(&format!("p/{user}"))),
        "{migrated:?}"
    );
    assert!(
        migrated.iter().any(|e| e["detail"]
            .as_str()
            .unwrap()
            .contains("attestation/policy/sim")),
        "{migrated:?}"
    );
    let dir = stop(t);

    // Later: an unauthenticated Administrator row planted for the user is never adopted.
    {
        let db = db(&dir);
        let planted = json!({"id": "00000000-0000-4000-8000-0000000000aa", "principal": user,
            "role": "Administrator", "scope": "/", "created": 0});
        put(
            &db,
            Table::RoleAssignments,
            &format!("p/{user}/00000000-0000-4000-8000-0000000000aa"),
            serde_json::to_vec(&planted).unwrap(),
        );
    }
    let t = start(dir, None);
    let r = t.get("/enclava/role-assignments", Some(&user_token));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = t.get(&format!("/keys?{V}"), Some(&user_token));
    assert_eq!(
        r.status, 200,
        "the valid assignment still works: {}",
        r.text
    );
    drop(stop(t));
}
