//! The attestation service over real HTTPS: every verifiable SNP / TDX / SGX vector attests
//! through its MAA-shaped route at its manifest time (the `attestation.verification_time` knob),
//! the token verifies against `/certs` and carries the expected claims; deny paths name the failed
//! rule in the body, the `x-ms-error-code` header and the audit entry.

mod common;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use common::{Resp, TestServer, put_policy, snp_without_revocation, start_with};
use enclava_server::PartialConfig;
use enclava_server::attest::{AttestationSettings, DirCollateral};
use enclava_token::{Expectations, Jwks};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::Digest;

fn vectors() -> Option<PathBuf> {
    enclava_testvectors::dir()
}

fn read(rel: &str) -> Vec<u8> {
    let p = vectors().expect("vectors").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn pem_of(files: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for f in files {
        if f.starts_with(b"-----BEGIN") {
            out.push_str(&String::from_utf8(f.clone()).unwrap());
            out.push('\n');
            continue;
        }
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in STANDARD.encode(f).as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

fn snp_body(report: &[u8], certs: &[Vec<u8>], extra: Value) -> Value {
    let inner = json!({"SnpReport": b64u(report), "VcekCertChain": b64u(pem_of(certs).as_bytes())});
    let mut body = json!({"report": b64u(inner.to_string().as_bytes())});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

fn rego(deny_rules: &str) -> String {
    format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n{deny_rules}\n"
    )
}

/// A dev server whose attestation service verifies as of `at`, optionally with a collateral dir.
fn server(at: &str, collateral: Option<PathBuf>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some(at.into()),
            collateral_dir: collateral,
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

/// Verify a token with nothing but the server's `/certs`, as of `at`.
fn verify(s: &TestServer, token: &str, at: &str) -> serde_json::Map<String, Value> {
    let r = s.get("/certs/", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let jwks: Jwks = serde_json::from_value(r.body.clone()).unwrap();
    let v = enclava_token::verify(
        token,
        &jwks,
        &Expectations::new(s.server.base_url.clone(), t(at)),
    )
    .unwrap_or_else(|e| panic!("token does not verify: {e}"));
    v.claims
}

fn attest(s: &TestServer, ty: &str, body: &Value) -> Resp {
    s.post(&format!("/attest/{ty}?api-version=2022-08-01"), None, body)
}

fn failed_rules(r: &Resp) -> Vec<(String, String)> {
    r.body["error"]["failed"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or("").to_string(),
                f["claim_path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn assert_denied(r: &Resp, rule: &str) {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "attestation_denied", "{}", r.text);
    assert_eq!(r.header("x-ms-error-code"), Some("attestation_denied"));
    assert!(
        failed_rules(r).iter().any(|(n, _)| n == rule),
        "expected rule {rule}: {}",
        r.text
    );
}

/// The audit entries whose detail mentions `needle`.
fn audit_with(s: &TestServer, needle: &str) -> Vec<Value> {
    // GET entries are queued (not awaited); give the group commit a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.audit_entries(&s.admin_token())
        .into_iter()
        .filter(|e| e["detail"].as_str().unwrap_or("").contains(needle))
        .collect()
}

const SNP_AT: &str = "2025-06-01T00:00:00Z";
const G: &str = "sev-snp/google-go-sev-guest";
const T: &str = "sev-snp/trustee";
const V: &str = "sev-snp/virtee-sev";

#[test]
fn snp_vectors_attest_over_https_and_deny_paths() {
    if vectors().is_none() {
        return;
    }
    let s = server(SNP_AT, None);
    let virtee = hex::decode(
        String::from_utf8(read(&format!("{V}/report_milan.hex")))
            .unwrap()
            .trim(),
    )
    .unwrap();
    type Case = (&'static str, Vec<u8>, Vec<Vec<u8>>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "trustee milan",
            read(&format!("{T}/test-report.bin")),
            vec![
                read(&format!("{T}/test-vcek.der")),
                read(&format!("{G}/ask_ark_milan.pem")),
            ],
            "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
        ),
        (
            "trustee milan vlek",
            read(&format!("{T}/test-vlek-report.bin")),
            vec![
                read(&format!("{T}/test-vlek.der")),
                read(&format!("{G}/ask_ark_milan_vlek.pem")),
            ],
            "",
        ),
        (
            "trustee genoa",
            read(&format!("{T}/derived_e2e_evidence_report.bin")),
            vec![
                read(&format!("{T}/derived_e2e_evidence_vcek.der")),
                read(&format!("{G}/ask_ark_genoa.pem")),
            ],
            "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e",
        ),
        (
            "virtee milan",
            virtee,
            vec![
                read(&format!("{V}/vcek_milan.der")),
                read(&format!("{V}/cert_chain_milan")),
            ],
            "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
        ),
    ];
    // The default snp policy requires an AMD CRL; no real one is among the vectors, so every
    // vector is denied for that alone, the deny naming the CRL it expected.
    for (name, report, certs, _) in &cases {
        let r = attest(&s, "SevSnpVm", &snp_body(report, certs, json!({})));
        assert_denied(&r, "revocation_checked");
        let failed = r.body["error"]["failed"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{name}: {}", r.text);
        let (key, product) = match *name {
            "trustee milan vlek" => ("VLEK", "Milan"),
            "trustee genoa" => ("VCEK", "Genoa"),
            _ => ("VCEK", "Milan"),
        };
        assert_eq!(failed[0]["claim_path"], "claims.revocation.checked");
        assert_eq!(
            failed[0]["expected"],
            format!(
                "an AMD {key} CRL for {product} (AMD KDS {}/v1/{product}/crl, issued by \
                 ARK-{product})",
                key.to_lowercase()
            ),
            "{name}"
        );
        assert_eq!(failed[0]["found"], "none", "{name}");
    }
    // From here on: the default policy with the revocation requirement switched off.
    let admin = s.admin_token();
    let r = put_policy(&s, &admin, &snp_without_revocation());
    assert_eq!(r.status, 200, "{}", r.text);
    for (name, report, certs, measurement) in &cases {
        let r = attest(
            &s,
            "SevSnpVm",
            &snp_body(report, certs, json!({"nonce": 7})),
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        let token = r.body["token"].as_str().unwrap();
        let c = verify(&s, token, SNP_AT);
        assert_eq!(c["x-ms-attestation-type"], "sevsnpvm", "{name}");
        assert_eq!(c["iss"], json!(s.server.base_url), "{name}");
        assert_eq!(c["nonce"], "7", "{name}");
        assert_eq!(c["x-ms-sevsnpvm-is-debuggable"], false, "{name}");
        assert_eq!(c["x-enclava-tee"], "snp", "{name}");
        assert_eq!(c["iat"], json!(t(SNP_AT).timestamp()), "{name}");
        // The token says revocation was not checked, and that the clock was moved.
        assert_eq!(
            c["x-enclava-claims"]["revocation"],
            json!({"checked": false, "crls": [], "fresh": false}),
            "{name}"
        );
        assert_eq!(
            c["x-enclava-verification-time"],
            json!({"time": "2025-06-01T00:00:00+00:00", "moved": true}),
            "{name}"
        );
        if !measurement.is_empty() {
            assert_eq!(c["x-ms-sevsnpvm-launchmeasurement"], *measurement, "{name}");
        }
    }
    // Without ?api-version too; the token's header names our JWKS.
    let (_, report, certs, measurement) = &cases[0];
    let r = s.post(
        "/attest/SevSnpVm",
        None,
        &snp_body(report, certs, json!({})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    // MAA's algorithm by default.
    assert_eq!(header["alg"], "RS256");
    // MAA's deprecated aliases on SNP tokens too; no SGX collateral claim.
    let snp_claims = enclava_token::decode_unverified(&token).unwrap().claims;
    assert_eq!(snp_claims["tee"], "sevsnpvm");
    assert_eq!(snp_claims["ver"], "1.0");
    assert_eq!(snp_claims["policy_hash"], snp_claims["x-ms-policy-hash"]);
    assert_eq!(snp_claims["maa-policyHash"], snp_claims["x-ms-policy-hash"]);
    assert!(snp_claims.get("x-ms-sgx-collateral").is_none());
    assert_eq!(header["jku"], json!(format!("{}/certs", s.server.base_url)));

    // Runtime data that the report does not commit to.
    let rd = json!({"keys": []}).to_string();
    let r = attest(
        &s,
        "SevSnpVm",
        &snp_body(
            report,
            certs,
            json!({"runtimeData": {"data": b64u(rd.as_bytes()), "dataType": "JSON"}}),
        ),
    );
    assert_denied(&r, "runtime_data_binding");
    assert!(
        failed_rules(&r)
            .iter()
            .any(|(_, p)| p == "claims.report_data"),
        "{}",
        r.text
    );

    // Measurement not in the reference set.
    let r = s.put(
        "/enclava/reference-values/default/approved",
        Some(&admin),
        &json!({"measurements": ["00".repeat(48)]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = attest(&s, "SevSnpVm", &snp_body(report, certs, json!({})));
    assert_denied(&r, "measurement_not_allowed");
    let f = &r.body["error"]["failed"][0];
    assert_eq!(f["claim_path"], "claims.measurement");
    assert_eq!(f["found"], *measurement);
    // The denial's failed rules are in its audit entry.
    let entries = audit_with(&s, "measurement_not_allowed");
    assert!(
        entries
            .iter()
            .any(|e| e["result"] == "denied" && e["status"] == 403),
        "{entries:?}"
    );
    // Listing the measurement admits it again.
    let r = s.put(
        "/enclava/reference-values/default/approved",
        Some(&admin),
        &json!({"measurements": [measurement.to_uppercase()]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = attest(&s, "SevSnpVm", &snp_body(report, certs, json!({})));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.call(
        "DELETE",
        "/enclava/reference-values/default/approved",
        Some(&admin),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Per-tenant scopes: `?scope=` picks the reference sets, and the token names the scope.
    let r = s.put(
        "/enclava/reference-values/tenant-a/approved",
        Some(&admin),
        &json!({"measurements": ["11".repeat(48)]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let in_scope = |scope: &str| {
        s.post(
            &format!("/attest/SevSnpVm?api-version=2022-08-01&scope={scope}"),
            None,
            &snp_body(report, certs, json!({})),
        )
    };
    assert_denied(&in_scope("tenant-a"), "measurement_not_allowed");
    // The default scope is now empty again: the same evidence passes there.
    let r = attest(&s, "SevSnpVm", &snp_body(report, certs, json!({})));
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = verify(&s, r.body["token"].as_str().unwrap(), SNP_AT);
    assert_eq!(claims["x-enclava-reference-scope"], "default");
    // A scope nobody configured is refused rather than appraised against nothing.
    let r = in_scope("nobody");
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_reference_values"),
        "{}",
        r.text
    );
    let r = s.put(
        "/enclava/reference-values/tenant-a/approved",
        Some(&admin),
        &json!({"measurements": [measurement]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = in_scope("tenant-a");
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = verify(&s, r.body["token"].as_str().unwrap(), SNP_AT);
    assert_eq!(claims["x-enclava-reference-scope"], "tenant-a");
}

#[test]
fn debug_snp_evidence_is_denied_naming_the_rule() {
    if vectors().is_none() {
        return;
    }
    let at = "2022-09-24T01:00:00Z";
    let s = server(at, None);
    let body = snp_body(
        &read(&format!("{G}/attestation.bin")),
        &[
            read(&format!("{G}/vcek.testcer")),
            read(&format!("{G}/milan.testcer")),
        ],
        json!({}),
    );
    let r = attest(&s, "SevSnpVm", &body);
    assert_denied(&r, "debug");
    let rules = failed_rules(&r);
    // Debug twice, and (no AMD CRL among the vectors) revocation.
    assert!(
        rules
            .iter()
            .all(|(n, _)| n == "debug" || n == "revocation_checked"),
        "{rules:?}"
    );
    assert_eq!(
        rules
            .iter()
            .filter(|(n, _)| n == "revocation_checked")
            .count(),
        1,
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|(_, p)| p == "claims.snp.policy.debug"),
        "{rules:?}"
    );
    assert!(rules.iter().any(|(_, p)| p == "claims.debug"), "{rules:?}");
    // A policy that allows debug (set by an administrator, audited) admits it.
    let admin = s.admin_token();
    let policy = rego(
        r#"deny contains {"rule": "tee", "path": "claims.tee", "expected": "snp", "found": input.claims.tee} if input.claims.tee != "snp""#,
    );
    let r = s.call(
        "PUT",
        "/policies/SevSnpVm?api-version=2022-08-01",
        Some(&admin),
        Some(policy.as_bytes()),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["policy"]["version"], 1);
    let r = attest(&s, "SevSnpVm", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let c = verify(&s, r.body["token"].as_str().unwrap(), at);
    assert_eq!(c["x-ms-sevsnpvm-is-debuggable"], true);
    assert_eq!(
        c["x-ms-sevsnpvm-launchmeasurement"],
        "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
    );
    assert_eq!(c["x-enclava-policy"]["version"], 1);
    // Reset: debug denied again. Both changes are audited with the principal and version.
    let r = s.post("/policies/SevSnpVm:reset", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_denied(&attest(&s, "SevSnpVm", &body), "debug");
    let changes = audit_with(&s, "policy snp version");
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|e| e["action"] == "policies/manage"));
    // Policy routes need a token and the policies/manage permission.
    let r = s.get("/policies/SevSnpVm", None);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("x-ms-error-code"), Some("Unauthorized"));
}

fn collateral_dir(entries: &[(&str, &[u8], &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (tee, quote, coll) in entries {
        let fmspc = DirCollateral::fmspc_of(quote).expect("fmspc");
        std::fs::create_dir_all(d.path().join(tee)).unwrap();
        std::fs::write(d.path().join(tee).join(format!("{fmspc}.json")), read(coll)).unwrap();
    }
    d
}

#[test]
fn tdx_vector_attests_with_the_collateral_dir() {
    if vectors().is_none() {
        return;
    }
    let at = "2025-07-19T10:00:34Z";
    let quote = read("tdx/phala-dcap-qvl/tdx_quote");
    let coll = collateral_dir(&[(
        "tdx",
        &quote,
        "tdx/phala-dcap-qvl/tdx_quote_collateral.json",
    )]);
    let s = server(at, Some(coll.path().to_path_buf()));
    let r = attest(&s, "TdxVm", &json!({"quote": b64u(&quote), "nonce": "n1"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let c = verify(&s, r.body["token"].as_str().unwrap(), at);
    assert_eq!(c["x-ms-attestation-type"], "tdxvm");
    assert_eq!(
        c["tdx_mrtd"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(c["attester_tcb_status"], "UpToDate");
    assert_eq!(c["dbgstat"], "disabled");
    assert_eq!(c["nonce"], "n1");
    // The same quote without collateral (a server with none) is denied: TCB not evaluated.
    let bare = server(at, None);
    assert_denied(
        &attest(&bare, "TdxVm", &json!({"quote": b64u(&quote)})),
        "tcb_not_evaluated",
    );
}

#[test]
fn sgx_vector_attests_via_sgxenclave() {
    if vectors().is_none() {
        return;
    }
    let at = "2025-07-19T10:01:17Z";
    let quote = read("sgx/phala-dcap-qvl/sgx_quote");
    let coll = collateral_dir(&[(
        "sgx",
        &quote,
        "sgx/phala-dcap-qvl/sgx_quote_collateral.json",
    )]);
    let s = server(at, Some(coll.path().to_path_buf()));
    let r = attest(&s, "SgxEnclave", &json!({"quote": b64u(&quote)}));
    assert_eq!(r.status, 200, "{}", r.text);
    let c = verify(&s, r.body["token"].as_str().unwrap(), at);
    assert_eq!(c["x-ms-attestation-type"], "sgx");
    assert_eq!(
        c["x-ms-sgx-mrenclave"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        c["x-ms-sgx-mrsigner"],
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!(c["x-ms-sgx-is-debuggable"], false);
    assert_eq!(
        c["x-enclava-tcb-status"],
        "ConfigurationAndSWHardeningNeeded"
    );
    assert_eq!(
        c["x-enclava-advisory-ids"],
        json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    // MAA's x-ms-sgx-collateral (SHA-256 of the quote and of each collateral part) and the
    // deprecated aliases MAA still emits.
    let coll_claim = c["x-ms-sgx-collateral"]
        .as_object()
        .expect("x-ms-sgx-collateral");
    assert_eq!(
        coll_claim["quotehash"],
        json!(hex::encode(sha2::Sha256::digest(&quote)))
    );
    for k in [
        "qeidcertshash",
        "qeidcrlhash",
        "qeidhash",
        "tcbinfocertshash",
        "tcbinfocrlhash",
        "tcbinfohash",
    ] {
        let v = coll_claim[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} missing"));
        assert!(v.len() == 64 && hex::decode(v).is_ok(), "{k}: {v}");
    }
    assert_ne!(coll_claim["qeidhash"], coll_claim["tcbinfohash"]);
    assert_eq!(c["maa-attestationcollateral"], c["x-ms-sgx-collateral"]);
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["tee"], "sgx");
    assert_eq!(c["policy_hash"], c["x-ms-policy-hash"]);
    assert_eq!(c["maa-policyHash"], c["x-ms-policy-hash"]);
    assert!(c["x-ms-policy-hash"].is_string());
    // Malformed evidence: MAA error shape with the verifier's check.
    let mut bad = quote.clone();
    if let Some(b) = bad.get_mut(100) {
        *b ^= 0xff;
    }
    let r = attest(&s, "SgxEnclave", &json!({"quote": b64u(&bad)}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "evidence_invalid");
    assert_eq!(r.header("x-ms-error-code"), Some("evidence_invalid"));
    assert!(r.body["error"]["failed_check"].is_string(), "{}", r.text);
}

fn sim_policy() -> String {
    rego(
        r#"deny contains {"rule": "tee", "path": "claims.tee", "expected": "sim", "found": input.claims.tee} if input.claims.tee != "sim""#,
    )
}

#[test]
fn sim_challenges_replay_discovery_and_rotation() {
    let at = "2025-06-01T00:00:00Z";
    let s = server(at, None);
    let admin = s.admin_token();
    let measurement = [7u8; 48];
    let native = |rd: &[u8], nonce: Option<&str>| {
        let mut report_data = [0u8; 64];
        report_data[..32].copy_from_slice(&sha2::Sha256::digest(rd));
        let ev = enclava_evidence::sim::generate(&measurement, &report_data, t(at));
        let mut b = json!({
            "tee": "sim",
            "evidence": b64u(&ev),
            "runtime_data": {"data": b64u(rd), "dataType": "JSON"},
        });
        if let Some(n) = nonce {
            b["nonce"] = json!(n);
        }
        b
    };
    // The default sim policy denies simulated evidence.
    let r = s.post("/attest/native", None, &native(b"{}", None));
    assert_denied(&r, "sim_not_allowed");
    // An explicit policy admits it.
    let r = s.call(
        "PUT",
        "/policies/sim",
        Some(&admin),
        Some(json!({"policy": sim_policy()}).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Dry run with a denying draft: a decision, and a token nobody accepts.
    let r = s.post(
        "/policies/sim:test",
        Some(&admin),
        &json!({"policy": rego(r#"deny contains "always" if true"#), "request": native(b"{}", None)}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["failed"][0]["rule"], "always");
    assert!(r.body["token"].as_str().unwrap().ends_with('.'));

    // Challenge: single use.
    let c = s.get("/challenge", None);
    assert_eq!(c.status, 200, "{}", c.text);
    let nonce = c.body["nonce"].as_str().unwrap().to_string();
    let rd = json!({"nonce": nonce}).to_string();
    let body = native(rd.as_bytes(), Some(&nonce));
    let r = s.post("/attest/native", None, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let first_token = r.body["token"].as_str().unwrap().to_string();
    let claims = verify(&s, &first_token, at);
    assert_eq!(claims["nonce"], json!(nonce));
    assert_eq!(claims["x-enclava-tee"], "sim");
    assert_eq!(claims["x-ms-runtime"]["nonce"], json!(nonce));
    let r = s.post("/attest/native", None, &body);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "nonce_replayed");
    assert_eq!(r.header("x-ms-error-code"), Some("nonce_replayed"));
    assert_eq!(
        r.body["error"]["failed"][0]["rule"], "nonce_fresh",
        "{}",
        r.text
    );

    // x5c: a certificate for the vault key from the local CA, then the CA itself; a key made
    // of nothing but the x5c verifies the token.
    let jwk = s.get("/certs", None).body["keys"][0].clone();
    let x5c = jwk["x5c"].as_array().expect("x5c").clone();
    assert_eq!(x5c.len(), 2, "{jwk}");
    let ca_pem = std::fs::read(common::data_dir_of(&s).join("ca.pem")).unwrap();
    let ca_der = <rustls::pki_types::CertificateDer as PemObject>::pem_slice_iter(&ca_pem)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        STANDARD.decode(x5c[1].as_str().unwrap()).unwrap(),
        ca_der.to_vec()
    );
    let only_x5c: enclava_token::Jwk =
        serde_json::from_value(json!({"kty": "RSA", "x5c": x5c})).unwrap();
    enclava_token::verify(
        &first_token,
        &only_x5c,
        &Expectations::new(s.server.base_url.clone(), t(at)),
    )
    .unwrap_or_else(|e| panic!("the x5c key does not verify the token: {e}"));

    // Discovery at the root describes the attestation issuer; the tenant path stays identity's.
    let d = s.get("/.well-known/openid-configuration", None);
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["issuer"], json!(s.server.base_url));
    assert_eq!(
        d.body["jwks_uri"],
        json!(format!("{}/certs", s.server.base_url))
    );
    let idp = s.get("/contoso/v2.0/.well-known/openid-configuration", None);
    assert_eq!(idp.status, 200);
    assert_ne!(idp.body["jwks_uri"], d.body["jwks_uri"]);

    // Rotation: a new key signs, the old one stays published so its tokens still verify.
    let old_token = {
        let c = s.get("/challenge", None);
        let n = c.body["nonce"].as_str().unwrap().to_string();
        let rd = json!({"nonce": n}).to_string();
        let r = s.post("/attest/native", None, &native(rd.as_bytes(), Some(&n)));
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    };
    let before = s.get("/certs", None).body["keys"][0]["kid"].clone();
    let r = s.post("/enclava/attestation/rotate", None, &json!({}));
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s.post("/enclava/attestation/rotate", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let keys = s.get("/certs", None).body["keys"].clone();
    assert_ne!(keys[0]["kid"], before);
    assert_eq!(keys[1]["kid"], before);
    verify(&s, &old_token, at);
    // Our own tokens (old and new key) are trusted for secure key release.
    let trusted = &s.server.state.trusted_issuers;
    assert!(
        trusted.issuers().iter().any(|i| i == &s.server.base_url),
        "{:?}",
        trusted.issuers()
    );
    trusted
        .verify(&old_token, t(at))
        .expect("old token trusted for release");
    let r = s.post("/attest/native", None, &native(b"{}", None));
    assert_eq!(r.status, 200, "{}", r.text);
    let tok = r.body["token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(tok.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], keys[0]["kid"]);
    verify(&s, tok, at);
    trusted
        .verify(tok, t(at))
        .expect("new token trusted for release");
}

#[test]
fn require_token_gates_attest_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            require_token: Some(true),
            alg: Some("RS256".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = dir;
    let r = s.get("/challenge", None);
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s.get("/challenge", Some(&s.admin_token()));
    assert_eq!(r.status, 200, "{}", r.text);
    // RS256 configured: an RSA service key signs, published with n/e.
    let k = &s.get("/certs", None).body["keys"][0];
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["alg"], "RS256");
    let d = s.get("/.well-known/openid-configuration", None);
    assert_eq!(
        d.body["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    // A rotation by another server process on the same database (here: directly in the store)
    // is picked up within 5 s; the old version stays published. The data-plane route of the
    // old key name reaches nothing.
    let before = k["kid"].clone();
    let r = s.post(
        "/keys/enclava-attestation-rs256/rotate?api-version=7.5",
        Some(&s.admin_token()),
        &json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let st = &s.server.state;
    enclava_server::service_keys::rotate(
        &st.vault,
        st.store.as_ref(),
        enclava_server::service_keys::Ring::AttestationRs256,
        2,
    )
    .unwrap();
    std::thread::sleep(
        enclava_server::attest::SIGNER_RECHECK + std::time::Duration::from_millis(200),
    );
    let _ = s.get("/certs", None); // the first read after the interval notices the new version
    let keys = s.get("/certs", None).body["keys"].clone();
    assert_ne!(keys[0]["kid"], before, "{keys}");
    assert_eq!(keys[1]["kid"], before, "{keys}");
}

#[test]
fn collateral_cache_layout_is_used_for_tdxvm() {
    if vectors().is_none() {
        return;
    }
    // An enclava-collateral cache filled with the go-tdx-guest PCS files: the verifier gets that
    // collateral (the quote's TCB has no matching level there), instead of none at all.
    let g = "tdx/google-go-tdx-guest";
    let quote = read(&format!("{g}/tdx_prod_quote_SPR_E4.dat"));
    let dir = tempfile::tempdir().unwrap();
    let cache = enclava_collateral::Cache::create(dir.path()).unwrap();
    let key =
        enclava_collateral::cache::quote_key(&quote, enclava_collateral::DcapTee::Tdx).unwrap();
    cache
        .put_tcb_info(
            enclava_collateral::DcapTee::Tdx,
            &key.fmspc,
            &read(&format!("{g}/sample_tcbInfo_response")),
            &read(&format!("{g}/derived_tcb_info_issuer_chain.pem")),
        )
        .unwrap();
    cache
        .put_qe_identity(
            enclava_collateral::DcapTee::Tdx,
            &read(&format!("{g}/sample_qeIdentity_response")),
            &read(&format!("{g}/derived_qe_identity_issuer_chain.pem")),
        )
        .unwrap();
    cache
        .put_root_crl(&read(&format!("{g}/rootcrl.der")))
        .unwrap();
    cache
        .put_pck_crl(
            key.ca,
            &read(&format!("{g}/pckcrl")),
            Some(&read(&format!("{g}/derived_pck_crl_issuer_chain.pem"))),
        )
        .unwrap();
    let at = "2023-07-01T01:00:00Z";
    let s = server(at, Some(dir.path().to_path_buf()));
    let r = attest(&s, "TdxVm", &json!({"quote": b64u(&quote)}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "evidence_invalid", "{}", r.text);
    assert_eq!(
        r.body["error"]["failed_check"], "tcb_level_not_found",
        "{}",
        r.text
    );
    // Without the cache the same quote is only denied for its unevaluated TCB.
    let bare = server(at, None);
    assert_denied(
        &attest(&bare, "TdxVm", &json!({"quote": b64u(&quote)})),
        "tcb_not_evaluated",
    );
}

/// Azure confidential VM evidence (SNP + vTPM) has no MAA-shaped route here (MAA's `AzureGuest`
/// protocol carries a TCG log and AIK certificate, not this evidence): it attests over HTTPS
/// through the native route, every evidence version of the vector.
#[test]
fn azure_vtpm_vectors_attest_over_https_via_the_native_route() {
    if vectors().is_none() {
        return;
    }
    const AZ: &str = "azure-cvm/trustee-az-snp-vtpm";
    let at = "2025-06-01T00:00:00Z";
    let s = server(at, None);
    let chain = String::from_utf8(read("sev-snp/google-go-sev-guest/ask_ark_milan.pem")).unwrap();
    for version in ["v0", "v1", "v2"] {
        let ev = read(&format!("{AZ}/evidence-{version}.json"));
        let body = json!({"tee": "azure-snp", "evidence": b64u(&ev), "certs": chain});
        let r = s.post("/attest/native", None, &body);
        assert_eq!(r.status, 200, "{version}: {}", r.text);
        let c = verify(&s, r.body["token"].as_str().unwrap(), at);
        assert_eq!(c["x-ms-attestation-type"], "azurevm", "{version}");
        assert_eq!(c["x-enclava-tee"], "azure-snp", "{version}");
        let iso = &c["x-ms-isolation-tee"];
        assert_eq!(iso["x-ms-attestation-type"], "sevsnpvm", "{version}");
        assert_eq!(iso["x-ms-compliance-status"], "azure-compliant-cvm");
        assert_eq!(iso["x-ms-sevsnpvm-is-debuggable"], false, "{version}");
        assert_eq!(iso["x-ms-runtime"]["keys"][0]["kid"], "HCLAkPub");
        // Runtime data the vTPM nonce does not commit to: denied, the binding rule named.
        let bad = json!({"tee": "azure-snp", "evidence": b64u(&ev), "certs": chain,
            "runtime_data": {"data": b64u(b"challenge"), "dataType": "Binary"}});
        assert_denied(
            &s.post("/attest/native", None, &bad),
            "runtime_data_binding",
        );
    }
}

/// An RSA policy signer: its certificate (DER) and a function signing a policy upload JWS.
struct PolicySignerKey {
    cert_der: Vec<u8>,
    cert_pem: String,
    key: aws_lc_rs::signature::RsaKeyPair,
}

impl PolicySignerKey {
    fn new(name: &str) -> PolicySignerKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        PolicySignerKey {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap(),
        }
    }

    /// `{"alg":"RS256","x5c":[cert]}.{"AttestationPolicy": b64url(text)}.sig`
    fn sign(&self, text: &str) -> String {
        let header = json!({"alg": "RS256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let payload = json!({"AttestationPolicy": b64u(text.as_bytes())});
        let input = format!(
            "{}.{}",
            b64u(header.to_string().as_bytes()),
            b64u(payload.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64u(&sig))
    }
}

#[test]
fn signed_policy_uploads_follow_the_trusted_signers() {
    let trusted = PolicySignerKey::new("policy signer");
    let stranger = PolicySignerKey::new("someone else");
    let policy = "version=1.0; authorizationrules { => permit(); };";

    // With trusted signers configured (MAA isolated mode): only their signatures are accepted.
    let dir = tempfile::tempdir().unwrap();
    let signers = dir.path().join("signers.pem");
    std::fs::write(&signers, &trusted.cert_pem).unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            policy_signers: Some(signers),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = data;
    let admin = s.admin_token();
    let unsigned = enclava_policy::maa::unsigned_policy_jws(policy);
    for body in [unsigned.as_str(), policy] {
        let r = put_policy(&s, &admin, body);
        assert_eq!(
            (r.status, r.code()),
            (400, "policy_signature_required"),
            "{}",
            r.text
        );
    }
    let r = put_policy(&s, &admin, &stranger.sign(policy));
    assert_eq!(
        (r.status, r.code()),
        (403, "untrusted_policy_signer"),
        "{}",
        r.text
    );
    // A trusted signature over another payload does not verify.
    let good = trusted.sign(policy);
    let other = trusted.sign("version=1.0; authorizationrules { => deny(); };");
    let spliced: Vec<&str> = good.split('.').collect();
    let other_sig = other.rsplit('.').next().unwrap();
    let tampered = format!("{}.{}.{other_sig}", spliced[0], spliced[1]);
    let r = put_policy(&s, &admin, &tampered);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );
    assert_eq!(
        s.get("/policies/SevSnpVm", Some(&admin)).body["policy"]["version"],
        0
    );
    // The trusted signature is accepted, and the audit entry names the signer.
    let r = put_policy(&s, &admin, &good);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["policy"]["version"], 1);
    // The policy token answers with the upload as signed and the signer (MAA's shape).
    let r = s.get("/policies/SevSnpVm", Some(&admin));
    let now = chrono::Utc::now().to_rfc3339();
    let c = verify(&s, r.body["token"].as_str().unwrap(), &now);
    assert_eq!(c["x-ms-policy"], json!(good));
    assert_eq!(
        c["x-ms-policy-token-hash"],
        json!(b64u(&sha2::Sha256::digest(good.as_bytes())))
    );
    let signer = &c["x-ms-policy-signer"];
    assert_eq!(signer["kty"], "RSA");
    assert_eq!(signer["x5c"][0], json!(STANDARD.encode(&trusted.cert_der)));
    let n = URL_SAFE_NO_PAD
        .decode(signer["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(n.len(), trusted.key.public_modulus_len(), "{signer}");
    let digest = hex::encode(sha2::Sha256::digest(&trusted.cert_der));
    assert!(
        !audit_with(&s, &format!("signed-by {digest}")).is_empty(),
        "no audit entry names the signer"
    );

    // Without trusted signers the role authorizes: unsigned is fine, a broken signature is not.
    let open = server(SNP_AT, None);
    let admin = open.admin_token();
    assert_eq!(put_policy(&open, &admin, &unsigned).status, 200);
    let r = open.get("/policies/SevSnpVm", Some(&admin));
    let c = verify(&open, r.body["token"].as_str().unwrap(), SNP_AT);
    assert!(c.get("x-ms-policy-signer").is_none(), "unsigned: no signer");
    assert_eq!(
        put_policy(&open, &admin, &stranger.sign(policy)).status,
        200
    );
    let r = put_policy(&open, &admin, &tampered);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_policy_signature"),
        "{}",
        r.text
    );

    // A signer file that is not PEM certificates stops the server at configuration time.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let e = PartialConfig {
        data_dir: Some(dir.path().join("data2")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            policy_signers: Some(bad),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap_err();
    assert!(e.to_string().contains("policy_signers"), "{e}");
}

/// A CRL naming the real ARK of `pem_chain` as issuer (exact subject and signature algorithm)
/// with a signature AMD never made: no real AMD CRL is among the vectors, and this shows a CRL
/// reached the verifier (which refuses it: `crl_signature`).
fn forged_ark_crl(pem_chain: &[u8]) -> Vec<u8> {
    use x509_cert::certificate::Version;
    use x509_cert::crl::{CertificateList, TbsCertList};
    use x509_cert::der::asn1::{BitString, GeneralizedTime};
    use x509_cert::der::{DecodePem, Encode};
    use x509_cert::time::Time;
    let text = String::from_utf8(pem_chain.to_vec()).unwrap();
    let ark = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter_map(|b| x509_cert::Certificate::from_pem(b.trim()).ok())
        .find(|c| c.tbs_certificate.subject == c.tbs_certificate.issuer)
        .expect("an ARK in the chain");
    let time = |secs: u64| {
        Time::GeneralTime(
            GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs)).unwrap(),
        )
    };
    CertificateList {
        tbs_cert_list: TbsCertList {
            version: Version::V2,
            signature: ark.signature_algorithm.clone(),
            issuer: ark.tbs_certificate.subject.clone(),
            this_update: time(1_600_000_000),
            next_update: Some(time(2_000_000_000)),
            revoked_certificates: None,
            crl_extensions: None,
        },
        signature_algorithm: ark.signature_algorithm.clone(),
        signature: BitString::from_bytes(&[0x5A; 512]).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// The AMD CRL in the server's collateral cache (where `enclava collateral fetch` puts it) is
/// supplied to the verifier for MAA requests, which carry the VCEK chain but never a CRL, and for
/// Azure SNP evidence. The cached CRL here is forged, so verification fails closed on it
/// (`crl_signature`, a 400), which shows it was checked; without the cache the same request is
/// only denied by the default policy for the missing CRL.
#[test]
fn cached_amd_crls_reach_the_verifier() {
    if vectors().is_none() {
        return;
    }
    let chain = read(&format!("{G}/ask_ark_milan.pem"));
    let dir = tempfile::tempdir().unwrap();
    let cache = enclava_collateral::Cache::create(dir.path()).unwrap();
    let crl_path = cache.amd_crl_path(
        enclava_evidence::snp::Product::Milan,
        enclava_collateral::AmdKey::Vcek,
    );
    std::fs::create_dir_all(crl_path.parent().unwrap()).unwrap();
    // Written by hand: Cache::put_amd_crl checks the ARK's signature and would refuse it.
    std::fs::write(&crl_path, forged_ark_crl(&chain)).unwrap();
    let s = server(SNP_AT, Some(dir.path().to_path_buf()));
    let body = snp_body(
        &read(&format!("{T}/test-report.bin")),
        &[read(&format!("{T}/test-vcek.der")), chain.clone()],
        json!({}),
    );
    let r = attest(&s, "SevSnpVm", &body);
    assert_eq!(
        (r.status, r.code()),
        (400, "evidence_invalid"),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["error"]["failed_check"], "crl_signature",
        "{}",
        r.text
    );
    // Azure SNP evidence (a Milan VCEK in the HCL evidence): the same CRL is looked up.
    let az = read("azure-cvm/trustee-az-snp-vtpm/evidence-v2.json");
    let chain_text = String::from_utf8(chain).unwrap();
    let r = s.post(
        "/attest/native",
        None,
        &json!({"tee": "azure-snp", "evidence": b64u(&az), "certs": chain_text}),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "evidence_invalid"),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["error"]["failed_check"], "crl_signature",
        "{}",
        r.text
    );

    let bare = server(SNP_AT, None);
    let r = attest(&bare, "SevSnpVm", &body);
    assert_denied(&r, "revocation_checked");
}

/// Only `--dev` may move the verification clock: a production configuration that sets it (file
/// or environment) does not resolve, so the server never starts; a dev one does.
#[test]
fn production_config_refuses_a_moved_verification_clock() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |dev: Option<bool>| PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev,
        attestation: Some(AttestationSettings {
            verification_time: Some(SNP_AT.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for dev in [None, Some(false)] {
        let e = cfg(dev).resolve().unwrap_err().to_string();
        assert!(
            e.contains("attestation.verification_time") && e.contains("--dev"),
            "{e}"
        );
    }
    let from_env =
        PartialConfig::from_env([("ENCLAVA_ATTESTATION_VERIFICATION_TIME", SNP_AT)]).unwrap();
    let e = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        ..Default::default()
    }
    .overlay(from_env)
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(e.contains("attestation.verification_time"), "{e}");
    let ok = cfg(Some(true)).resolve().unwrap();
    assert_eq!(ok.attestation.verification_time, Some(t(SNP_AT)));
}
