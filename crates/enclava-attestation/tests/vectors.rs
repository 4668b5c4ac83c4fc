//! Every verifiable vector in ../shared/vectors attests end to end through `attest()` with the
//! request shape of its TEE (MAA shapes for SNP / TDX / SGX / OpenEnclave, native for Azure CVMs),
//! at its manifest time, and the token verifies against the service's JWKS.

mod common;

use common::svc::*;
use enclava_attestation::MaaType;
use enclava_evidence::dcap::Collateral;
use serde_json::{Value, json};

const G: &str = "sev-snp/google-go-sev-guest";
const T: &str = "sev-snp/trustee";
const V: &str = "sev-snp/virtee-sev";
const AZ: &str = "azure-cvm/trustee-az-snp-vtpm";

fn read(rel: &str) -> Option<Vec<u8>> {
    common::read(rel)
}

/// Debug allowed; everything else as the default SNP policy (revoked TCB, measurement lists).
fn snp_allow_debug() -> String {
    rego(
        r#"
deny contains {"rule": "tee", "path": "claims.tee", "expected": "snp", "found": input.claims.tee} if input.claims.tee != "snp"
deny contains {"rule": "tcb_revoked", "path": "claims.tcb_status", "expected": "not Revoked", "found": "Revoked"} if input.claims.tcb_status == "Revoked"
"#,
    )
}

/// DCAP evidence whose TCB was not evaluated (no collateral) is accepted, debug still denied.
fn dcap_allow_not_evaluated(tee: &str) -> String {
    rego(&format!(
        r#"
deny contains {{"rule": "tee", "path": "claims.tee", "expected": "{tee}", "found": input.claims.tee}} if input.claims.tee != "{tee}"
deny contains {{"rule": "debug", "path": "claims.debug", "expected": false, "found": true}} if input.claims.debug != false
deny contains {{"rule": "tcb_revoked", "path": "claims.tcb_status", "expected": "not Revoked", "found": "Revoked"}} if input.claims.tcb_status == "Revoked"
"#
    ))
}

struct Snp {
    name: &'static str,
    report: Vec<u8>,
    certs: Vec<Vec<u8>>,
    at: &'static str,
    measurement: &'static str,
    debug: bool,
}

fn snp_vectors() -> Option<Vec<Snp>> {
    let virtee_report = hex::decode(
        String::from_utf8(read(&format!("{V}/report_milan.hex"))?)
            .unwrap()
            .trim(),
    )
    .unwrap();
    Some(vec![
        Snp {
            name: "google milan",
            report: read(&format!("{G}/attestation.bin"))?,
            certs: vec![
                read(&format!("{G}/vcek.testcer"))?,
                read(&format!("{G}/milan.testcer"))?,
            ],
            at: "2022-09-24T01:00:00Z",
            measurement: "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
            debug: true,
        },
        Snp {
            name: "trustee milan",
            report: read(&format!("{T}/test-report.bin"))?,
            certs: vec![
                read(&format!("{T}/test-vcek.der"))?,
                read(&format!("{G}/ask_ark_milan.pem"))?,
            ],
            at: "2025-06-01T00:00:00Z",
            measurement: "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
            debug: false,
        },
        Snp {
            name: "trustee milan vlek",
            report: read(&format!("{T}/test-vlek-report.bin"))?,
            certs: vec![
                read(&format!("{T}/test-vlek.der"))?,
                read(&format!("{G}/ask_ark_milan_vlek.pem"))?,
            ],
            at: "2025-06-01T00:00:00Z",
            measurement: "",
            debug: false,
        },
        Snp {
            name: "trustee genoa",
            report: read(&format!("{T}/derived_e2e_evidence_report.bin"))?,
            certs: vec![
                read(&format!("{T}/derived_e2e_evidence_vcek.der"))?,
                read(&format!("{G}/ask_ark_genoa.pem"))?,
            ],
            at: "2025-06-01T00:00:00Z",
            measurement: "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e",
            debug: false,
        },
        Snp {
            name: "virtee milan",
            report: virtee_report,
            certs: vec![
                read(&format!("{V}/vcek_milan.der"))?,
                read(&format!("{V}/cert_chain_milan"))?,
            ],
            at: "2025-06-01T00:00:00Z",
            measurement: "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
            debug: false,
        },
    ])
}

#[test]
fn snp_vectors_attest_via_sevsnpvm() {
    let Some(vectors) = snp_vectors() else { return };
    let env = env();
    for v in &vectors {
        let at = t(v.at);
        let req = maa(
            MaaType::SevSnpVm,
            snp_body(&v.report, &v.certs, json!({"nonce": 42})),
        );
        // The default policy denies every real vector: no AMD CRL came with it, so revocation
        // was not checked; the deny names the CRL it expected. Debug evidence is denied for that
        // too, naming the rule (twice: the normalized flag and the SNP guest policy bit).
        let e = env.svc.attest(&req, at).unwrap_err();
        assert_eq!(e.code(), "attestation_denied", "{}: {e}", v.name);
        let f = e.failed_rules();
        let revocation: Vec<_> = f
            .iter()
            .filter(|r| r.rule == "revocation_checked")
            .collect();
        assert_eq!(revocation.len(), 1, "{}: {f:?}", v.name);
        let (key, product) = if v.name.contains("vlek") {
            ("VLEK", "Milan")
        } else if v.name.contains("genoa") {
            ("VCEK", "Genoa")
        } else {
            ("VCEK", "Milan")
        };
        assert_eq!(revocation[0].claim_path, "claims.revocation.checked");
        assert!(
            revocation[0]
                .expected
                .starts_with(&format!("an AMD {key} CRL for {product} ")),
            "{}: {f:?}",
            v.name
        );
        assert_eq!(revocation[0].found, "none", "{}", v.name);
        let others: Vec<_> = f
            .iter()
            .filter(|r| r.rule != "revocation_checked")
            .collect();
        if v.debug {
            assert!(
                !others.is_empty() && others.iter().all(|r| r.rule == "debug"),
                "{}: {f:?}",
                v.name
            );
            assert!(
                f.iter().any(|r| r.claim_path == "claims.snp.policy.debug"),
                "{f:?}"
            );
            assert!(
                f.iter()
                    .any(|r| r.claim_path == "claims.debug" && r.found == "true"),
                "{f:?}"
            );
        } else {
            assert!(others.is_empty(), "{}: {f:?}", v.name);
        }
        // An explicit policy that does not require revocation (and, for debug evidence, allows
        // debug) accepts it.
        let policy = if v.debug {
            snp_allow_debug()
        } else {
            snp_without_revocation()
        };
        env.svc
            .policies()
            .set(enclava_evidence::Tee::Snp, &policy, "test", at)
            .unwrap();
        let attested = env.svc.attest(&req, at).unwrap();
        env.svc
            .policies()
            .reset(enclava_evidence::Tee::Snp, "test", at)
            .unwrap();
        let tok = verify(&env, &attested.token, at);
        assert_eq!(tok.claims, attested.claims, "{}", v.name);
        let c = &tok.claims;
        assert_eq!(c["x-ms-attestation-type"], "sevsnpvm", "{}", v.name);
        assert_eq!(c["nonce"], "42");
        if !v.measurement.is_empty() {
            assert_eq!(
                c["x-ms-sevsnpvm-launchmeasurement"], v.measurement,
                "{}",
                v.name
            );
        }
        assert_eq!(c["x-ms-sevsnpvm-is-debuggable"], v.debug, "{}", v.name);
        assert_eq!(c["x-enclava-tee"], "snp");
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(
            c["x-ms-policy-hash"], c["x-enclava-policy"]["hash"],
            "{}",
            v.name
        );
        assert!(c["x-ms-sevsnpvm-reportdata"].as_str().unwrap().len() == 128);
        // The token says revocation was not checked.
        assert_eq!(
            c["x-enclava-claims"]["revocation"],
            json!({"checked": false, "crls": [], "fresh": false}),
            "{}",
            v.name
        );
        // No moved clock here: no verification-time claim.
        assert!(c.get("x-enclava-verification-time").is_none());
    }
}

#[test]
fn google_snp_claims_and_policy_versions() {
    let Some(v) = snp_vectors().map(|mut v| v.remove(0)) else {
        return;
    };
    let env = env();
    let at = t(v.at);
    let req = maa(MaaType::SevSnpVm, snp_body(&v.report, &v.certs, json!({})));
    let c = env
        .svc
        .policies()
        .set(enclava_evidence::Tee::Snp, &snp_allow_debug(), "alice", at)
        .unwrap();
    assert_eq!(c.version, 1);
    let a = env.svc.attest(&req, at).unwrap();
    assert_eq!(a.policy.version, Some(1));
    assert!(!a.policy.builtin);
    let claims = &a.claims;
    assert_eq!(claims["x-enclava-policy"]["version"], 1);
    assert_eq!(
        claims["x-ms-sevsnpvm-reportdata"],
        format!("0102030405{}", "00".repeat(59))
    );
    assert_eq!(claims["x-ms-sevsnpvm-bootloader-svn"], 2);
    assert_eq!(claims["x-ms-sevsnpvm-snpfw-svn"], 5);
    assert_eq!(claims["x-ms-sevsnpvm-microcode-svn"], 0x44);
    assert_eq!(claims["x-ms-sevsnpvm-smt-allowed"], true);
    assert_eq!(
        claims["x-ms-sevsnpvm-vmpl"],
        json!(claims["x-enclava-claims"]["snp"]["vmpl"])
    );
    assert_eq!(
        claims["x-enclava-ear"]["submods"]["snp"]["ear.appraisal-policy-id"],
        "snp@1"
    );
    // A reset brings the default (debug denied, revocation required) back.
    env.svc
        .policies()
        .reset(enclava_evidence::Tee::Snp, "bob", at)
        .unwrap();
    let e = env.svc.attest(&req, at).unwrap_err();
    assert!(e.failed_rules().iter().any(|r| r.rule == "debug"), "{e}");
    assert!(
        e.failed_rules()
            .iter()
            .any(|r| r.rule == "revocation_checked"),
        "{e}"
    );
    assert_eq!(e.http_status(), 403);
    let body = e.error_body();
    assert_eq!(body["error"]["code"], "attestation_denied");
    let rules: Vec<&str> = body["error"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"debug"), "{rules:?}");
}

fn phala_tdx() -> Option<(Vec<u8>, Collateral)> {
    let q = read("tdx/phala-dcap-qvl/tdx_quote")?;
    let c = Collateral::from_dcap_qvl_json(&read("tdx/phala-dcap-qvl/tdx_quote_collateral.json")?)
        .unwrap();
    Some((q, c))
}

const PHALA_TDX_AT: &str = "2025-07-19T10:00:34Z";
const PHALA_MR_TD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";

#[test]
fn tdx_phala_via_tdxvm_with_collateral_source() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    let env = env_with(false, FixedCollateral(vec![(quote.clone(), coll)]));
    let at = t(PHALA_TDX_AT);
    let req = maa(
        MaaType::TdxVm,
        json!({"quote": b64u(&quote), "nonce": "tdx-nonce"}),
    );
    let a = env.svc.attest(&req, at).unwrap();
    let tok = verify(&env, &a.token, at);
    let c = &tok.claims;
    assert_eq!(c["x-ms-attestation-type"], "tdxvm");
    assert_eq!(c["tdx_mrtd"], PHALA_MR_TD);
    assert_eq!(c["attester_tcb_status"], "UpToDate");
    assert_eq!(c["dbgstat"], "disabled");
    assert_eq!(c["nonce"], "tdx-nonce");
    assert_eq!(c["eat_profile"], "https://aka.ms/maa-eat-profile-tdxvm");
    assert!(a.policy.builtin && a.policy.version == Some(0));
    // Without a collateral source the TCB is not evaluated: the default policy denies it.
    let bare = env_with(false, FixedCollateral::default());
    let e = bare.svc.attest(&req, at).unwrap_err();
    assert_eq!(e.failed_rules().len(), 1, "{e}");
    assert_eq!(e.failed_rules()[0].rule, "tcb_not_evaluated");
    assert_eq!(e.failed_rules()[0].found, "NotEvaluated");
    // After the collateral window the evidence fails verification with the verifier's code.
    let e = env.svc.attest(&req, t("2025-07-19T10:16:04Z")).unwrap_err();
    assert_eq!(e.code(), "evidence_invalid");
    assert_eq!(e.failed_check(), Some("collateral_expired"));
    assert_eq!(e.http_status(), 400);
    assert_eq!(
        e.error_body()["error"]["failed_check"],
        "collateral_expired"
    );
}

#[test]
fn tdx_quotes_without_collateral_need_an_explicit_policy() {
    let Some(q4) = read("tdx/trustee/tdx_quote_4.dat") else {
        return;
    };
    let expected: Value =
        serde_json::from_slice(&read("tdx/trustee/parse_tdx_claims_expected.json").unwrap())
            .unwrap();
    let cases = [
        (
            q4,
            "2024-06-01T00:00:00Z",
            Some(
                expected["quote"]["body"]["mr_td"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
        ),
        (
            read("tdx/trustee/tdx_quote_5.dat").unwrap(),
            "2025-06-01T00:00:00Z",
            None,
        ),
        (
            read("tdx/trustee/tdx_quote_6.dat").unwrap(),
            "2025-11-01T00:00:00Z",
            None,
        ),
        (
            read("tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat").unwrap(),
            "2023-07-01T01:00:00Z",
            None,
        ),
    ];
    let env = env();
    let mut admitted = 0;
    for (i, (quote, at, mr_td)) in cases.iter().enumerate() {
        let at = t(at);
        let req = maa(MaaType::TdxVm, json!({"quote": b64u(quote)}));
        let e = env.svc.attest(&req, at).unwrap_err();
        let failed = e.failed_rules();
        let rules: Vec<&str> = failed.iter().map(|r| r.rule.as_str()).collect();
        assert!(rules.contains(&"tcb_not_evaluated"), "case {i}: {e}");
        // An explicit policy accepting NotEvaluated (still no debug) admits it.
        let r = env
            .svc
            .test_policy(&dcap_allow_not_evaluated("tdx"), &req, at)
            .unwrap();
        let debug = r.would_be_claims["tdx_td_attributes_debug"]
            .as_bool()
            .unwrap();
        assert_eq!(r.decision.allowed, !debug, "case {i}: {:?}", r.decision);
        if debug {
            assert!(r.decision.failed.iter().any(|f| f.rule == "debug"));
            continue;
        }
        env.svc
            .policies()
            .set(
                enclava_evidence::Tee::Tdx,
                &dcap_allow_not_evaluated("tdx"),
                "t",
                at,
            )
            .unwrap();
        let a = env.svc.attest(&req, at).unwrap();
        env.svc
            .policies()
            .reset(enclava_evidence::Tee::Tdx, "t", at)
            .unwrap();
        let tok = verify(&env, &a.token, at);
        assert_eq!(tok.claims["attester_tcb_status"], "NotEvaluated");
        assert_eq!(tok.claims["tdx_mrtd"], tok.claims["x-enclava-measurement"]);
        if let Some(m) = mr_td {
            assert_eq!(&tok.claims["tdx_mrtd"], m);
        }
        admitted += 1;
    }
    assert!(admitted >= 1, "no TDX quote was admitted");
    // The go-tdx-guest quote with its PCS collateral has no matching TCB level: a verifier error.
    let q = read("tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat").unwrap();
    let names = [
        "sample_tcbInfo_response",
        "sample_qeIdentity_response",
        "pckcrl",
        "rootcrl.der",
        "derived_tcb_info_issuer_chain.pem",
        "derived_qe_identity_issuer_chain.pem",
        "derived_pck_crl_issuer_chain.pem",
    ];
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                read(&format!("tdx/google-go-tdx-guest/{n}")).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let coll = Collateral::from_files(&refs).unwrap();
    let env = env_with(false, FixedCollateral(vec![(q.clone(), coll)]));
    let e = env
        .svc
        .attest(
            &maa(MaaType::TdxVm, json!({"quote": b64u(&q)})),
            t("2023-07-01T01:00:00Z"),
        )
        .unwrap_err();
    assert_eq!(e.failed_check(), Some("tcb_level_not_found"), "{e}");
}

const PHALA_SGX_AT: &str = "2025-07-19T10:01:17Z";
const SGX_MRENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const SGX_MRSIGNER: &str = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";

fn oe_report(quote: &[u8]) -> Vec<u8> {
    let mut v = 1u32.to_le_bytes().to_vec();
    v.extend_from_slice(&2u32.to_le_bytes());
    v.extend_from_slice(&(quote.len() as u64).to_le_bytes());
    v.extend_from_slice(quote);
    v
}

#[test]
fn sgx_phala_via_sgxenclave_openenclave_and_native() {
    let Some(quote) = read("sgx/phala-dcap-qvl/sgx_quote") else {
        return;
    };
    let coll_json = read("sgx/phala-dcap-qvl/sgx_quote_collateral.json").unwrap();
    let coll = Collateral::from_dcap_qvl_json(&coll_json).unwrap();
    let env = env_with(false, FixedCollateral(vec![(quote.clone(), coll)]));
    let at = t(PHALA_SGX_AT);
    let collateral: Value = serde_json::from_slice(&coll_json).unwrap();
    let reqs = [
        maa(MaaType::SgxEnclave, json!({"quote": b64u(&quote)})),
        maa(
            MaaType::OpenEnclave,
            json!({"report": b64u(&oe_report(&quote))}),
        ),
        native(json!({"tee": "sgx", "evidence": b64u(&quote), "collateral": collateral})),
    ];
    for req in &reqs {
        let a = env.svc.attest(req, at).unwrap();
        let tok = verify(&env, &a.token, at);
        let c = &tok.claims;
        assert_eq!(c["x-ms-attestation-type"], "sgx");
        assert_eq!(c["x-ms-sgx-mrenclave"], SGX_MRENCLAVE);
        assert_eq!(c["x-ms-sgx-mrsigner"], SGX_MRSIGNER);
        assert_eq!(c["x-ms-sgx-is-debuggable"], false);
        assert_eq!(
            c["x-enclava-tcb-status"],
            "ConfigurationAndSWHardeningNeeded"
        );
        assert_eq!(
            c["x-enclava-advisory-ids"],
            json!(["INTEL-SA-00289", "INTEL-SA-00615"])
        );
    }
    // Reference values: a measurement list without this enclave denies it, naming the rule.
    env.svc
        .policies()
        .set_reference(
            "default",
            "approved",
            json!({"measurements": ["00".repeat(32)], "signers": [SGX_MRSIGNER]}),
            "ops",
            at,
        )
        .unwrap();
    let e = env.svc.attest(&reqs[0], at).unwrap_err();
    let f = e.failed_rules();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].rule, "measurement_not_allowed");
    assert_eq!(f[0].claim_path, "claims.measurement");
    assert_eq!(f[0].found, SGX_MRENCLAVE);
    // Listing it admits it; the EAR then says the executables were affirmed.
    env.svc
        .policies()
        .set_reference("default", "approved", json!({"measurements": [SGX_MRENCLAVE.to_uppercase()], "signers": [SGX_MRSIGNER], "min_svn": 0}), "ops", at)
        .unwrap();
    let a = env.svc.attest(&reqs[0], at).unwrap();
    assert_eq!(
        a.claims["x-enclava-ear"]["submods"]["sgx"]["ear.trustworthiness-vector"]["executables"],
        2
    );
    // Another scope has no reference values: admitted without them.
    let mut other = reqs[0].clone();
    other.scope = "tenant-b".into();
    env.svc
        .policies()
        .set_reference(
            "tenant-b",
            "approved",
            json!({"signers": ["11".repeat(32)]}),
            "ops",
            at,
        )
        .unwrap();
    let e = env.svc.attest(&other, at).unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, "signer_not_allowed");
    // A policy forbidding anything but an up-to-date TCB denies this platform.
    let strict = rego(
        r#"deny contains {"rule": "tcb_not_up_to_date", "path": "claims.tcb_status", "expected": "UpToDate", "found": s} if {
	s := input.claims.tcb_status
	s != "UpToDate"
}"#,
    );
    env.svc
        .policies()
        .set(enclava_evidence::Tee::Sgx, &strict, "ops", at)
        .unwrap();
    let e = env.svc.attest(&reqs[1], at).unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, "tcb_not_up_to_date");
    assert_eq!(
        e.failed_rules()[0].found,
        "ConfigurationAndSWHardeningNeeded"
    );
}

/// One SGX appraisal looks its collateral up once: the verification's lookup also feeds the
/// token's `x-ms-sgx-collateral` / `maa-attestationcollateral` claims.
#[test]
fn sgx_collateral_is_looked_up_once_per_attestation() {
    let Some(quote) = read("sgx/phala-dcap-qvl/sgx_quote") else {
        return;
    };
    let coll_json = read("sgx/phala-dcap-qvl/sgx_quote_collateral.json").unwrap();
    let coll = Collateral::from_dcap_qvl_json(&coll_json).unwrap();
    let expected = enclava_token::maa::sgx_collateral_claim(&quote, &coll.digests());
    let source = std::sync::Arc::new(CountingCollateral {
        inner: FixedCollateral(vec![(quote.clone(), coll)]),
        lookups: Default::default(),
    });
    let env = env_with_source(false, source.clone());
    let at = t(PHALA_SGX_AT);
    let req = maa(MaaType::SgxEnclave, json!({"quote": b64u(&quote)}));
    for round in 1..=3 {
        let a = env.svc.attest(&req, at).unwrap();
        assert_eq!(
            source.lookups.load(std::sync::atomic::Ordering::SeqCst),
            round,
            "expected one collateral lookup per attestation"
        );
        let c = verify(&env, &a.token, at).claims;
        assert_eq!(c["x-ms-sgx-collateral"], expected);
        assert_eq!(c["maa-attestationcollateral"], expected);
        assert_eq!(
            c["x-enclava-tcb-status"], "ConfigurationAndSWHardeningNeeded",
            "the source's collateral was used for the verification"
        );
    }
}

#[test]
fn sgx_occlum_without_collateral() {
    let Some(q) = read("sgx/trustee/occlum_quote.dat") else {
        return;
    };
    let env = env();
    let at = t("2024-06-01T00:00:00Z");
    let req = maa(MaaType::SgxEnclave, json!({"quote": b64u(&q)}));
    // A debug enclave whose TCB was not evaluated: both rules are named.
    let e = env.svc.attest(&req, at).unwrap_err();
    let failed = e.failed_rules();
    let mut rules: Vec<&str> = failed.iter().map(|r| r.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(rules, ["debug", "tcb_not_evaluated"], "{e}");
    // Still denied for debug under a policy that accepts NotEvaluated ...
    env.svc
        .policies()
        .set(
            enclava_evidence::Tee::Sgx,
            &dcap_allow_not_evaluated("sgx"),
            "t",
            at,
        )
        .unwrap();
    let e = env.svc.attest(&req, at).unwrap_err();
    assert_eq!(e.failed_rules().len(), 1);
    assert_eq!(e.failed_rules()[0].rule, "debug");
    // ... and admitted by one that explicitly accepts debug enclaves.
    let lax = rego(r#"deny contains "tee" if input.claims.tee != "sgx""#);
    env.svc
        .policies()
        .set(enclava_evidence::Tee::Sgx, &lax, "t", at)
        .unwrap();
    let a = env.svc.attest(&req, at).unwrap();
    let tok = verify(&env, &a.token, at);
    assert_eq!(tok.claims["x-ms-sgx-is-debuggable"], true);
    assert_eq!(
        tok.claims["x-ms-sgx-mrenclave"],
        "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
    );
}

fn azure_cases() -> Option<Vec<(&'static str, Vec<u8>)>> {
    let v1 = read(&format!("{AZ}/evidence-v1.json"))?;
    // The separate parts (HCL report + JSON TPM quote + VCEK chain) as a version 1 document.
    let hcl = read(&format!("{AZ}/hcl-report.bin")).unwrap();
    let quote: Value =
        serde_json::from_slice(&read(&format!("{AZ}/tpm-quote-v1.json")).unwrap()).unwrap();
    let vcek = String::from_utf8(read(&format!("{AZ}/vcek.pem")).unwrap()).unwrap();
    let parts = json!({"version": 1, "tpm_quote": quote, "hcl_report": b64u(&hcl), "vcek": vcek});
    Some(vec![
        ("v0", read(&format!("{AZ}/evidence-v0.json")).unwrap()),
        ("v1", v1),
        ("v2", read(&format!("{AZ}/evidence-v2.json")).unwrap()),
        ("parts", parts.to_string().into_bytes()),
    ])
}

#[test]
fn azure_snp_vtpm_native() {
    let Some(cases) = azure_cases() else { return };
    let chain = String::from_utf8(read(&format!("{G}/ask_ark_milan.pem")).unwrap()).unwrap();
    let env = env();
    let at = t("2025-06-01T00:00:00Z");
    for (name, ev) in cases {
        let req = native(json!({"tee": "azure-snp", "evidence": b64u(&ev), "certs": chain}));
        let a = env
            .svc
            .attest(&req, at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tok = verify(&env, &a.token, at);
        let c = &tok.claims;
        assert_eq!(c["x-ms-attestation-type"], "azurevm", "{name}");
        let iso = &c["x-ms-isolation-tee"];
        assert_eq!(iso["x-ms-attestation-type"], "sevsnpvm", "{name}");
        assert_eq!(
            iso["x-ms-compliance-status"], "azure-compliant-cvm",
            "{name}"
        );
        assert_eq!(iso["x-ms-runtime"]["keys"][0]["kid"], "HCLAkPub", "{name}");
        assert_eq!(iso["x-ms-sevsnpvm-is-debuggable"], false, "{name}");
        // No CRL came with the HCL evidence (and this service has no collateral source): the
        // claim says so, and the azure-snp default policy does not require it (by decision,
        // see enclava-policy's defaults).
        assert_eq!(
            c["x-enclava-claims"]["revocation"]["checked"], false,
            "{name}"
        );
        assert!(
            c["x-ms-azurevm-attested-pcrs"]
                .as_array()
                .unwrap()
                .contains(&json!(0)),
            "{name}"
        );
        // Runtime data must hash to the vTPM nonce: these nonces are not digests, so any
        // runtime data is denied with the binding rule named.
        let bad = native(
            json!({"tee": "azure-snp", "evidence": b64u(&ev), "certs": chain,
            "runtime_data": {"data": b64u(b"challenge"), "dataType": "Binary"}}),
        );
        let e = env.svc.attest(&bad, at).unwrap_err();
        assert_eq!(e.failed_rules()[0].rule, "runtime_data_binding", "{name}");
        assert_eq!(
            e.failed_rules()[0].claim_path,
            "claims.azure.nonce",
            "{name}"
        );
        // Init-time data has no binding on Azure CVMs.
        let init = native(
            json!({"tee": "azure-snp", "evidence": b64u(&ev), "certs": chain,
            "init_data": {"data": b64u(b"x")}}),
        );
        assert_eq!(
            env.svc.attest(&init, at).unwrap_err().code(),
            "invalid_data"
        );
    }
}

/// Requests that bring certificates but no CRL (MAA's VcekCertChain, Azure's HCL evidence) get
/// the collateral source's AMD CRLs, so that revocation can be checked: a CRL naming the
/// report's ARK reaches the verifier, which checks it (this one is forged, so `crl_signature`).
/// A CRL in the request wins over the source's.
#[test]
fn collateral_crls_reach_the_snp_verifier() {
    let Some(report) = read(&format!("{T}/test-report.bin")) else {
        return;
    };
    let chain = read(&format!("{G}/ask_ark_milan.pem")).unwrap();
    let certs = vec![read(&format!("{T}/test-vcek.der")).unwrap(), chain.clone()];
    let at = t("2025-06-01T00:00:00Z");
    let store = std::sync::Arc::new(enclava_store::SqliteStore::in_memory().unwrap());
    let signer = std::sync::Arc::new(enclava_token::Es256Signer::generate("k").unwrap());
    let svc = enclava_attestation::AttestationService::new(
        store,
        signer as std::sync::Arc<dyn enclava_token::TokenSigner>,
        enclava_attestation::ServiceConfig::new(ISSUER),
    )
    .with_collateral_source(std::sync::Arc::new(CrlSource(vec![forged_ark_crl(&chain)])));
    let req = maa(MaaType::SevSnpVm, snp_body(&report, &certs, json!({})));
    let e = svc.attest(&req, at).unwrap_err();
    assert_eq!(e.code(), "evidence_invalid", "{e}");
    assert_eq!(e.failed_check(), Some("crl_signature"), "{e}");

    // The same for Azure SNP evidence (the CRL is looked up for the HCL's hardware report).
    if let Some(cases) = azure_cases() {
        let chain_text = String::from_utf8(chain.clone()).unwrap();
        for (name, ev) in cases {
            let req =
                native(json!({"tee": "azure-snp", "evidence": b64u(&ev), "certs": chain_text}));
            let e = svc.attest(&req, at).unwrap_err();
            assert_eq!(e.failed_check(), Some("crl_signature"), "{name}: {e}");
        }
    }

    // Without a collateral source nothing is added: not checked, and the default policy says
    // which CRL it wanted.
    let e = env().svc.attest(&req, at).unwrap_err();
    let f = e.failed_rules();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0].to_string(),
        "rule revocation_checked on claims.revocation.checked: expected an AMD VCEK CRL for \
         Milan (AMD KDS vcek/v1/Milan/crl, issued by ARK-Milan), found none"
    );
}

/// A service told that its clock is moved (a development server's verification_time) marks every
/// token with `x-enclava-verification-time` {time, moved}.
#[test]
fn moved_clock_is_stated_in_the_token() {
    let Some(report) = read(&format!("{T}/test-report.bin")) else {
        return;
    };
    let certs = vec![
        read(&format!("{T}/test-vcek.der")).unwrap(),
        read(&format!("{G}/ask_ark_milan.pem")).unwrap(),
    ];
    let at = t("2025-06-01T00:00:00Z");
    let store = std::sync::Arc::new(enclava_store::SqliteStore::in_memory().unwrap());
    let signer = std::sync::Arc::new(enclava_token::Es256Signer::generate("k").unwrap());
    let mut config = enclava_attestation::ServiceConfig::new(ISSUER);
    config.clock_moved = true;
    let svc = enclava_attestation::AttestationService::new(
        store,
        signer as std::sync::Arc<dyn enclava_token::TokenSigner>,
        config,
    )
    .with_row_keys(std::sync::Arc::new(
        enclava_attestation::PolicyRowKeys::derive(|_| {
            Ok::<_, String>(zeroize::Zeroizing::new([0x5au8; 32]))
        })
        .unwrap(),
    ));
    svc.policies()
        .set(
            enclava_evidence::Tee::Snp,
            &snp_without_revocation(),
            "t",
            at,
        )
        .unwrap();
    let req = maa(MaaType::SevSnpVm, snp_body(&report, &certs, json!({})));
    let a = svc.attest(&req, at).unwrap();
    assert_eq!(
        a.claims[enclava_attestation::VERIFICATION_TIME_CLAIM],
        json!({"time": "2025-06-01T00:00:00+00:00", "moved": true})
    );
    assert_eq!(a.claims["iat"], at.timestamp());
}
