//! Deny paths, challenges, dry runs, MAA-language policies, key rotation and the error mapping.

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use common::svc::*;
use enclava_attestation::{AttestError, MaaType};
use enclava_evidence::Tee;
use enclava_token::{Es256Signer, Expectations, Rs256Signer, TokenSigner};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MEAS: [u8; 48] = [0x5a; 48];

fn now() -> chrono::DateTime<chrono::Utc> {
    t("2026-03-01T12:00:00Z")
}

/// Sim evidence whose report_data starts with SHA-256(runtime).
fn sim_evidence(runtime: &[u8]) -> Vec<u8> {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(runtime));
    enclava_evidence::sim::generate_with_workload(&MEAS, &rd, "demo", now())
}

fn sim_req(runtime: &[u8], challenge: Option<&str>) -> enclava_attestation::AttestRequest {
    let mut body = json!({"tee": "sim", "evidence": STANDARD.encode(sim_evidence(runtime)),
        "runtime_data": {"data": b64u(runtime), "dataType": "JSON"}});
    if let Some(c) = challenge {
        body["nonce"] = json!(c);
    }
    native(body)
}

/// Accepts sim evidence with the demo measurement (like the built-in quickstart policy).
const ALLOW_SIM: &str = r#"package enclava.appraisal

import rego.v1

default allow := false

allow if {
	input.claims.tee == "sim"
	input.claims.measurement in input.reference.demo.measurements
}

claims := {"x-custom-workload": input.claims.sim.workload}
"#;

#[test]
fn sim_is_denied_unless_enabled_and_explicitly_allowed() {
    let rt = br#"{"keys":[]}"#;
    // Disabled on the service: denied before anything else, naming the gate.
    let off = env();
    let e = off.svc.attest(&sim_req(rt, None), now()).unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, "sim_disabled");
    assert_eq!(e.http_status(), 403);

    // Enabled, default policy: denied by the sim policy.
    let on = env_with(true, FixedCollateral::default());
    let e = on.svc.attest(&sim_req(rt, None), now()).unwrap_err();
    assert_eq!(e.failed_rules().len(), 1);
    assert_eq!(e.failed_rules()[0].rule, "sim_not_allowed");
    assert_eq!(e.failed_rules()[0].found, "sim");

    // A policy that says so explicitly accepts it.
    on.svc
        .policies()
        .set(Tee::Sim, ALLOW_SIM, "dev", now())
        .unwrap();
    on.svc
        .policies()
        .set_reference(
            "default",
            "demo",
            json!({"measurements": [hex::encode(MEAS)]}),
            "dev",
            now(),
        )
        .unwrap();
    let a = on.svc.attest(&sim_req(rt, None), now()).unwrap();
    let tok = verify(&on, &a.token, now());
    assert_eq!(tok.claims["x-ms-attestation-type"], "enclava-sim");
    assert_eq!(tok.claims["x-enclava-simulated"], true);
    assert_eq!(tok.claims["x-custom-workload"], "demo");
    assert_eq!(tok.claims["x-ms-runtime"], json!({"keys": []}));
    // The builtin quickstart policy works the same way.
    on.svc
        .policies()
        .set(
            Tee::Sim,
            enclava_policy::rego::defaults::QUICKSTART,
            "dev",
            now(),
        )
        .unwrap();
    let e = on.svc.attest(&sim_req(rt, None), now()).unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, "quickstart_reference_missing");
}

fn sim_env() -> Env {
    let env = env_with(true, FixedCollateral::default());
    env.svc
        .policies()
        .set(Tee::Sim, ALLOW_SIM, "dev", now())
        .unwrap();
    env.svc
        .policies()
        .set_reference(
            "default",
            "demo",
            json!({"measurements": [hex::encode(MEAS)]}),
            "dev",
            now(),
        )
        .unwrap();
    env
}

#[test]
fn challenge_flow_replay_expiry_and_binding() {
    let env = sim_env();
    let c = env.svc.challenge(now()).unwrap();
    let rt =
        json!({"nonce": c.nonce, "keys": [{"kty": "RSA", "kid": "eph", "n": "AQAB", "e": "AQAB"}]})
            .to_string();
    let req = sim_req(rt.as_bytes(), Some(&c.nonce));
    let a = env.svc.attest(&req, now() + Duration::seconds(5)).unwrap();
    let tok = verify(&env, &a.token, now());
    assert_eq!(tok.claims["nonce"], json!(c.nonce));
    assert_eq!(tok.claims["x-ms-runtime"]["keys"][0]["kid"], "eph");
    // Replayed.
    let e = env
        .svc
        .attest(&req, now() + Duration::seconds(6))
        .unwrap_err();
    assert_eq!(e, AttestError::NonceReplayed);
    assert_eq!((e.code(), e.http_status()), ("nonce_replayed", 400));
    // The refusal names its rule, in the error body as for any denial.
    let failed = e.failed_rules();
    assert_eq!(
        (failed[0].rule.as_str(), failed[0].claim_path.as_str()),
        (enclava_attestation::RULE_NONCE, "nonce")
    );
    assert!(
        failed[0].found.contains("already used"),
        "{}",
        failed[0].found
    );
    assert_eq!(
        e.error_body()["error"]["failed"][0]["rule"],
        enclava_attestation::RULE_NONCE
    );

    // Expired.
    let c2 = env.svc.challenge(now()).unwrap();
    let rt2 = json!({"nonce": c2.nonce}).to_string();
    let e = env
        .svc
        .attest(
            &sim_req(rt2.as_bytes(), Some(&c2.nonce)),
            c2.expires_at + Duration::seconds(1),
        )
        .unwrap_err();
    assert_eq!(e.code(), "nonce_expired");

    // Unknown.
    let e = env
        .svc
        .attest(&sim_req(b"{}", Some("made-up")), now())
        .unwrap_err();
    assert_eq!(e.code(), "nonce_unknown");

    // Issued, but not in the runtime data: the nonce binding fails (and the nonce is burnt).
    let c3 = env.svc.challenge(now()).unwrap();
    let e = env
        .svc
        .attest(&sim_req(br#"{"nonce":"other"}"#, Some(&c3.nonce)), now())
        .unwrap_err();
    assert_eq!(e.failed_rules().len(), 1);
    assert_eq!(e.failed_rules()[0].rule, "nonce_binding");
    assert_eq!(e.failed_rules()[0].claim_path, "runtime_data.nonce");
    let e = env
        .svc
        .attest(&sim_req(br#"{"nonce":"other"}"#, Some(&c3.nonce)), now())
        .unwrap_err();
    assert_eq!(e, AttestError::NonceReplayed);
}

#[test]
fn runtime_data_that_does_not_match_is_denied() {
    let env = sim_env();
    // Evidence binds one runtime data; the request sends another.
    let ev = sim_evidence(br#"{"a":1}"#);
    let req = native(json!({"tee": "sim", "evidence": STANDARD.encode(&ev),
        "runtime_data": {"data": b64u(br#"{"a":2}"#), "dataType": "JSON"}}));
    let e = env.svc.attest(&req, now()).unwrap_err();
    let f = e.failed_rules();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].rule, "runtime_data_binding");
    assert_eq!(f[0].claim_path, "claims.report_data");
    assert!(
        f[0].expected
            .contains(&hex::encode(Sha256::digest(br#"{"a":2}"#))),
        "{f:?}"
    );
    assert_eq!(f[0].found, hex::encode(Sha256::digest(br#"{"a":1}"#)));
    // Init-time data on sim has nothing to bind to.
    let req = native(
        json!({"tee": "sim", "evidence": STANDARD.encode(&ev), "init_data": {"data": "AA"}}),
    );
    assert_eq!(
        env.svc.attest(&req, now()).unwrap_err().code(),
        "invalid_data"
    );
}

fn trustee_snp() -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    Some((
        common::read("sev-snp/trustee/test-report.bin")?,
        vec![
            common::read("sev-snp/trustee/test-vcek.der")?,
            common::read("sev-snp/google-go-sev-guest/ask_ark_milan.pem")?,
        ],
    ))
}

const TRUSTEE_MEAS: &str = "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c";

#[test]
fn snp_reference_values_tcb_minimum_and_binding() {
    let Some((report, certs)) = trustee_snp() else {
        return;
    };
    let env = env();
    let at = t("2025-06-01T00:00:00Z");
    let req = maa(MaaType::SevSnpVm, snp_body(&report, &certs, json!({})));
    // The default policy requires an AMD CRL, which no vector has: denied for that alone. The
    // reference-value rules below are the default policy's, with revocation switched off.
    let e = env.svc.attest(&req, at).unwrap_err();
    let failed = e.failed_rules();
    let rules: Vec<&str> = failed.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(rules, ["revocation_checked"], "{e}");
    env.svc
        .policies()
        .set(Tee::Snp, &snp_without_revocation(), "ops", at)
        .unwrap();
    env.svc.attest(&req, at).unwrap();

    // Measurement not in the reference set.
    env.svc
        .policies()
        .set_reference(
            "default",
            "golden",
            json!({"measurements": ["ab".repeat(48)]}),
            "ops",
            at,
        )
        .unwrap();
    let e = env.svc.attest(&req, at).unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, "measurement_not_allowed");
    assert_eq!(e.failed_rules()[0].found, TRUSTEE_MEAS);

    // Listed, but the TCB is below the minimum (reported TCB snp = 8): both sets apply.
    env.svc
        .policies()
        .set_reference(
            "default",
            "golden",
            json!({"measurements": [TRUSTEE_MEAS]}),
            "ops",
            at,
        )
        .unwrap();
    env.svc
        .policies()
        .set_reference(
            "default",
            "tcb",
            json!({"min_tcb": {"snp": 20, "bootloader": 0}}),
            "ops",
            at,
        )
        .unwrap();
    let e = env.svc.attest(&req, at).unwrap_err();
    let f = e.failed_rules();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].rule, "tcb_below_minimum");
    assert_eq!(f[0].claim_path, "claims.snp.reported_tcb.snp");
    assert_eq!(f[0].found, "8");
    env.svc
        .policies()
        .delete_reference("default", "tcb", "ops", at)
        .unwrap();
    let a = env.svc.attest(&req, at).unwrap();
    assert_eq!(
        a.claims["x-enclava-ear"]["submods"]["snp"]["ear.trustworthiness-vector"]["executables"],
        2
    );

    // Runtime data the report does not bind, and init-time data that is not HOST_DATA.
    let bad = maa(
        MaaType::SevSnpVm,
        snp_body(
            &report,
            &certs,
            json!({
                "runtimeData": {"data": b64u(b"hello"), "dataType": "Binary"},
                "initTimeData": {"data": b64u(b"init"), "dataType": "Binary"},
            }),
        ),
    );
    let e = env.svc.attest(&bad, at).unwrap_err();
    let failed = e.failed_rules();
    let rules: Vec<&str> = failed.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(rules, ["runtime_data_binding", "init_data_binding"], "{e}");
    assert_eq!(e.failed_rules()[1].claim_path, "claims.snp.host_data");
}

const MAA_SNP_POLICY: &str = r#"version=1.0;
authorizationrules
{
    [type=="x-ms-sevsnpvm-is-debuggable", value==false] => permit();
};
issuancerules
{
    c:[type=="x-ms-sevsnpvm-launchmeasurement"] => issue(type="custom-measurement", value=c.value);
    => issue(type="x-ms-attestation-type", value="forged");
};
"#;

#[test]
fn maa_policy_language_and_dry_runs() {
    let Some((report, certs)) = trustee_snp() else {
        return;
    };
    let Some(google) = common::read("sev-snp/google-go-sev-guest/attestation.bin") else {
        return;
    };
    let gcerts = vec![
        common::read("sev-snp/google-go-sev-guest/vcek.testcer").unwrap(),
        common::read("sev-snp/google-go-sev-guest/milan.testcer").unwrap(),
    ];
    let env = env();
    let at = t("2025-06-01T00:00:00Z");
    let req = maa(MaaType::SevSnpVm, snp_body(&report, &certs, json!({})));
    let change = env
        .svc
        .policies()
        .set(Tee::Snp, MAA_SNP_POLICY, "alice", at)
        .unwrap();
    assert_eq!(change.language, enclava_attestation::PolicyLanguage::Maa);
    let a = env.svc.attest(&req, at).unwrap();
    let tok = verify(&env, &a.token, at);
    assert_eq!(tok.claims["custom-measurement"], TRUSTEE_MEAS);
    // Issued claims never override the service's own.
    assert_eq!(tok.claims["x-ms-attestation-type"], "sevsnpvm");
    assert_eq!(
        tok.claims["x-ms-policy-hash"],
        enclava_policy::maa_policy_hash(MAA_SNP_POLICY)
    );

    // The debug report: the MAA policy never permits it.
    let g_at = t("2022-09-24T01:00:00Z");
    let greq = maa(MaaType::SevSnpVm, snp_body(&google, &gcerts, json!({})));
    let e = env.svc.attest(&greq, g_at).unwrap_err();
    assert_eq!(e.code(), "attestation_denied");
    assert!(!e.failed_rules().is_empty());

    // Dry run through test_policy: a decision and an unsigned token.
    let r = env
        .svc
        .test_policy(
            "version=1.0; authorizationrules { => permit(); };",
            &greq,
            g_at,
        )
        .unwrap();
    assert!(r.decision.allowed);
    assert_eq!(r.would_be_claims["x-enclava-dry-run"], true);
    let parts: Vec<&str> = r.unsigned_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(parts[2].is_empty());
    let jwks = env.svc.jwks().unwrap();
    let e = enclava_token::verify(&r.unsigned_token, &jwks, &Expectations::new(ISSUER, g_at))
        .unwrap_err();
    assert_eq!(e.code(), "alg_none");
    let r = env
        .svc
        .test_policy(enclava_policy::rego::defaults::SNP, &greq, g_at)
        .unwrap();
    assert!(!r.decision.allowed);
    assert!(r.decision.failed.iter().any(|f| f.rule == "debug"));
    // A broken draft is an invalid policy.
    let e = env
        .svc
        .test_policy("version=1.0; nonsense", &greq, g_at)
        .unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("invalid_policy", 400));

    // draftPolicyForAttestation on the MAA route: a dry run, never a signed token.
    let draft = maa(
        MaaType::SevSnpVm,
        snp_body(
            &google,
            &gcerts,
            json!({
        "draftPolicyForAttestation": "version=1.0; authorizationrules { => permit(); };"}),
        ),
    );
    let a = env.svc.attest(&draft, g_at).unwrap();
    assert!(a.dry_run);
    assert_eq!(a.policy.version, None);
    assert!(enclava_token::verify(&a.token, &jwks, &Expectations::new(ISSUER, g_at)).is_err());
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(a.token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "none", "typ": "JWT", "x-enclava-dry-run": true})
    );
    // The active policy was not touched.
    assert_eq!(env.svc.policies().get(Tee::Snp).unwrap().version, 1);
}

#[test]
fn jwks_rotation_and_discovery() {
    let env = sim_env();
    let a1 = env.svc.attest(&sim_req(b"{}", None), now()).unwrap();
    let rsa: Arc<dyn TokenSigner> = Arc::new(Rs256Signer::generate("attest-key-2").unwrap());
    env.svc.rotate_signer(rsa);
    let a2 = env.svc.attest(&sim_req(b"{}", None), now()).unwrap();
    let jwks = env.svc.jwks().unwrap();
    let kids: Vec<_> = jwks.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(kids, ["attest-key-2", "attest-key-1"]);
    // Both tokens verify against the published set.
    verify(&env, &a1.token, now());
    let v2 = verify(&env, &a2.token, now());
    assert_eq!(v2.header.kid.as_deref(), Some("attest-key-2"));
    assert_eq!(v2.header.alg, "RS256");
    // Older keys fall off after `previous_keys_kept` (2) rotations.
    for i in 3..6 {
        let s: Arc<dyn TokenSigner> =
            Arc::new(Es256Signer::generate(format!("attest-key-{i}")).unwrap());
        env.svc.rotate_signer(s);
    }
    let kids: Vec<_> = env
        .svc
        .jwks()
        .unwrap()
        .keys
        .iter()
        .map(|k| k.kid.clone().unwrap())
        .collect();
    assert_eq!(kids, ["attest-key-5", "attest-key-4", "attest-key-3"]);
    let e = enclava_token::verify(
        &a1.token,
        &env.svc.jwks().unwrap(),
        &Expectations::new(ISSUER, now()),
    )
    .unwrap_err();
    assert_eq!(e.code(), "kid_unknown");

    let oidc = env.svc.openid_configuration(ISSUER);
    assert_eq!(oidc["issuer"], ISSUER);
    assert_eq!(oidc["jwks_uri"], format!("{ISSUER}/certs"));
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    // x5c is published when a signer has a chain.
    let with_chain: Arc<dyn TokenSigner> = Arc::new(
        Es256Signer::generate("attest-key-9")
            .unwrap()
            .with_x5c(vec!["AAAA".into()]),
    );
    env.svc.rotate_signer(with_chain);
    assert_eq!(
        env.svc.jwks().unwrap().keys[0].x5c,
        Some(vec!["AAAA".to_string()])
    );
}

#[test]
fn error_mapping_is_total_and_stable() {
    use enclava_attestation::RequestError;
    let cases: Vec<(AttestError, u16, &str)> = vec![
        (
            RequestError::Json { reason: "x".into() }.into(),
            400,
            "malformed_request",
        ),
        (AttestError::NonceUnknown, 400, "nonce_unknown"),
        (AttestError::NonceReplayed, 400, "nonce_replayed"),
        (
            AttestError::NonceExpired {
                expired_at: now(),
                at: now(),
            },
            400,
            "nonce_expired",
        ),
        (
            AttestError::Evidence {
                failed_check: "report_signature",
                reason: "bad".into(),
            },
            400,
            "evidence_invalid",
        ),
        (
            AttestError::Denied { failed: vec![] },
            403,
            "attestation_denied",
        ),
        (
            AttestError::InvalidData {
                what: "w".into(),
                reason: "r".into(),
            },
            400,
            "invalid_data",
        ),
        (
            AttestError::InvalidPolicy {
                policy_type: "snp".into(),
                reason: "r".into(),
            },
            400,
            "invalid_policy",
        ),
        (
            AttestError::PolicyEvaluation {
                policy_type: "snp".into(),
                reason: "r".into(),
            },
            500,
            "policy_evaluation_failed",
        ),
        (
            AttestError::UnknownType {
                found: "x".into(),
                expected: "y",
            },
            400,
            "unknown_attestation_type",
        ),
        (
            AttestError::InvalidReference("r".into()),
            400,
            "invalid_reference_values",
        ),
        (AttestError::Conflict { what: "w".into() }, 409, "conflict"),
        (AttestError::Store("s".into()), 500, "storage_error"),
        (
            AttestError::Config("c".into()),
            500,
            "invalid_configuration",
        ),
        (
            AttestError::Token {
                code: "signing_failed",
                reason: "r".into(),
            },
            500,
            "token_issuance_failed",
        ),
    ];
    for (e, status, code) in cases {
        assert_eq!((e.http_status(), e.code()), (status, code), "{e}");
        let body = e.error_body();
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["message"], e.to_string());
    }
}

#[test]
fn malformed_evidence_is_a_verifier_error() {
    let env = env();
    let req = maa(
        MaaType::TdxVm,
        json!({"quote": b64u(b"definitely not a quote")}),
    );
    let e = env.svc.attest(&req, now()).unwrap_err();
    assert_eq!(e.failed_check(), Some("malformed_quote"), "{e}");
    if let Some((_, certs)) = trustee_snp() {
        let req = maa(MaaType::SevSnpVm, snp_body(&[0u8; 1184], &certs, json!({})));
        let e = env.svc.attest(&req, now()).unwrap_err();
        assert_eq!(e.code(), "evidence_invalid");
        assert!(e.failed_check().is_some(), "{e}");
    }
    let e = env
        .svc
        .attest(&native(json!({"tee": "sim", "evidence": "AAAA"})), now())
        .unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, "sim_disabled");
}

#[test]
fn concurrent_attestations_share_one_service() {
    let env = Arc::new(sim_env());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let env = Arc::clone(&env);
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let c = env.svc.challenge(now()).unwrap();
                    let rt = json!({"nonce": c.nonce, "worker": i}).to_string();
                    let a = env
                        .svc
                        .attest(&sim_req(rt.as_bytes(), Some(&c.nonce)), now())
                        .unwrap();
                    assert_eq!(a.claims["x-ms-runtime"]["worker"], i);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Every challenge was redeemed exactly once and is remembered until swept.
    assert_eq!(env.svc.challenges().redeemed_count().unwrap(), 20);
    assert_eq!(env.svc.policies().cached(), 1);
}

#[test]
fn policy_tokens_for_the_maa_policy_api() {
    let env = env();
    let text = "version=1.0; authorizationrules { => permit(); };";
    env.svc
        .policies()
        .set(Tee::Tdx, text, "alice", now())
        .unwrap();
    let rec = env.svc.policies().get(Tee::Tdx).unwrap();
    let tok = env
        .svc
        .policy_token(
            &rec,
            Some(enclava_attestation::PolicyResult::Updated),
            now(),
        )
        .unwrap();
    let v = verify(&env, &tok, now());
    assert_eq!(v.claims["x-ms-policy-result"], "Updated");
    assert_eq!(
        v.claims["x-ms-policy-hash"],
        enclava_policy::maa_policy_hash(text)
    );
    assert!(v.claims.get("x-ms-attestation-type").is_none());
    let jws = v.claims["x-ms-policy"].as_str().unwrap();
    let upload = enclava_policy::maa::parse_policy_jws(jws).unwrap();
    assert_eq!(upload.policy_text, text);
    assert_eq!(v.claims["x-enclava-policy"]["version"], 1);
    assert_eq!(v.claims["x-enclava-policy"]["language"], "maa");
}

/// A front end's checks (the KBS binding and init-data) run once, on the claims of the one
/// verification, before appraisal; their extra claims reach the token; their error ends the
/// attestation with no token; dry runs are refused.
#[test]
fn attest_checked_runs_the_front_end_check_on_the_verified_claims() {
    let env = sim_env();
    let rt = br#"{"keys":[]}"#;
    let req = sim_req(rt, None);
    let mut calls = 0;
    let mut seen = String::new();
    let out = {
        let mut check = |c: &enclava_evidence::Claims| {
            calls += 1;
            seen = c.report_data.clone();
            let mut m = serde_json::Map::new();
            m.insert("x-enclava-kbs".into(), json!({"tee": "sim-front-end"}));
            Ok(m)
        };
        env.svc.attest_checked(&req, now(), &mut check).unwrap()
    };
    assert_eq!(calls, 1);
    assert!(seen.starts_with(&hex::encode(Sha256::digest(rt))), "{seen}");
    assert_eq!(out.claims["x-enclava-kbs"]["tee"], "sim-front-end");
    assert!(!out.token.is_empty());

    // The check refuses: that error, and no token.
    let mut refuse = |_: &enclava_evidence::Claims| {
        Err(AttestError::InvalidData {
            what: "binding".into(),
            reason: "front end says no".into(),
        })
    };
    let e = env
        .svc
        .attest_checked(&req, now(), &mut refuse)
        .unwrap_err();
    assert!(e.to_string().contains("front end says no"), "{e}");

    // Evidence that does not verify never reaches the check.
    let mut bad = sim_req(rt, None);
    bad.evidence = enclava_attestation::request::Evidence::Sim {
        evidence: b"not sim evidence".to_vec(),
    };
    let mut never =
        |_: &enclava_evidence::Claims| -> Result<serde_json::Map<String, Value>, AttestError> {
            panic!("the check ran on evidence that did not verify")
        };
    assert!(env.svc.attest_checked(&bad, now(), &mut never).is_err());

    // Dry runs are not front-end attestations.
    let mut draft = sim_req(rt, None);
    draft.draft_policy = Some(ALLOW_SIM.into());
    let mut ok = |_: &enclava_evidence::Claims| Ok(serde_json::Map::new());
    assert!(env.svc.attest_checked(&draft, now(), &mut ok).is_err());
}
