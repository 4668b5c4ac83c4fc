//! Default appraisal policies against representative normalized claims.

use enclava_policy::rego::{AppraisalPolicy, defaults};
use enclava_policy::{FailedRule, PolicyError};
use serde_json::{Value, json};

const M1: &str =
    "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const M2: &str =
    "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

fn tcb(bl: u8, tee: u8, snp: u8, ucode: u8) -> Value {
    json!({"raw": "0000000000000000", "bootloader": bl, "tee": tee, "snp": snp, "microcode": ucode})
}

fn snp_hw(debug: bool) -> Value {
    json!({
        "version": 3, "product": "Genoa", "signing_key": "vcek", "chip_id": "cc".repeat(64),
        "reported_tcb": tcb(9, 0, 23, 72), "committed_tcb": tcb(9, 0, 23, 72),
        "current_tcb": tcb(9, 0, 23, 72), "launch_tcb": tcb(9, 0, 23, 72),
        "policy": {"raw": 196608, "abi_minor": 0, "abi_major": 0, "smt": true, "migrate_ma": false,
                   "debug": debug, "single_socket": false, "cxl_allow": false, "mem_aes_256_xts": false,
                   "rapl_dis": false, "ciphertext_hiding": false, "page_swap_disable": false},
        "platform_info": {}, "vmpl": 0, "guest_svn": 1, "family_id": "00".repeat(16),
        "image_id": "00".repeat(16), "host_data": "00".repeat(32), "id_key_digest": "00".repeat(48),
        "author_key_digest": "00".repeat(48), "author_key_en": false, "mask_chip_key": false,
        "report_id": "11".repeat(32), "report_id_ma": "ff".repeat(32), "current_version": "1.55.21",
        "committed_version": "1.55.21", "signer_cert_sha256": "22".repeat(32)
    })
}

fn tdx_hw(debug: bool) -> Value {
    json!({
        "quote_version": 4, "body_type": 2, "tdx_version": "1.0", "mr_td": M1,
        "rtmr0": "00".repeat(48), "rtmr1": "00".repeat(48), "rtmr2": "00".repeat(48), "rtmr3": "00".repeat(48),
        "mr_config_id": "00".repeat(48), "mr_owner": "00".repeat(48), "mr_owner_config": "00".repeat(48),
        "td_attributes": {"debug": debug, "sept_ve_disable": true, "pks": false, "kl": false, "perfmon": false, "raw": "0000001000000000"},
        "xfam": "e702060000000000", "mr_seam": "00".repeat(48), "mr_signer_seam": "00".repeat(48),
        "seam_attributes": "0000000000000000", "tee_tcb_svn": "05010200000000000000000000000000",
        "qe_svn": 8, "pce_svn": 13, "fmspc": "90c06f000000", "pce_id": "0000",
        "platform_tcb_status": "UpToDate"
    })
}

fn claims(tee: &str, debug: bool, tcb_status: Option<&str>) -> Value {
    let mut c = json!({
        "tee": tee, "debug": debug, "measurement": M1, "report_data": "00".repeat(64),
    });
    if let Some(s) = tcb_status {
        c["tcb_status"] = json!(s);
    }
    if tee != "sim" {
        // Good evidence was checked against a current CRL of its root (the snp default requires
        // it; see snp_default_requires_revocation).
        let issuer = if tee.ends_with("snp") {
            "ARK-Genoa"
        } else {
            "Intel SGX Root CA"
        };
        c["revocation"] = json!({"checked": true, "fresh": true, "crls": [{
            "issuer": issuer, "this_update": "2026-01-01T00:00:00+00:00",
            "next_update": "2026-02-01T00:00:00+00:00", "sha256": "ab".repeat(32), "current": true}]});
    }
    match tee {
        "snp" => c["snp"] = snp_hw(debug),
        "tdx" => c["tdx"] = tdx_hw(debug),
        "sgx" => {
            c["sgx"] = json!({
                "quote_version": 3, "mr_enclave": M1, "mr_signer": "83".repeat(32), "isv_prod_id": 1,
                "isv_svn": 2, "config_id": "00".repeat(64), "config_svn": 0,
                "isv_ext_prod_id": "00".repeat(16), "isv_family_id": "00".repeat(16),
                "cpu_svn": "00".repeat(16), "misc_select": 0,
                "attributes": {"debug": debug, "mode64bit": true, "provision_key": false,
                               "einittoken_key": false, "kss": false, "raw": "05000000000000000700000000000000"},
                "qe_svn": 8, "pce_svn": 13, "fmspc": "00906ed50000", "pce_id": "0000"
            })
        }
        "azure-snp" => {
            c["azure"] = json!({"pcrs": {"0": "00".repeat(32)}, "nonce": "", "runtime_data": {},
                "vm_configuration": null, "ak_pub": {}, "hcl_version": 2, "hardware": snp_hw(debug)})
        }
        "azure-tdx" => {
            c["azure"] = json!({"pcrs": {"0": "00".repeat(32)}, "nonce": "", "runtime_data": {},
                "vm_configuration": null, "ak_pub": {}, "hcl_version": 2, "hardware": tdx_hw(debug)})
        }
        "sim" => {
            c["sim"] = json!({"simulated": true, "generated_at": "2026-01-01T00:00:00Z",
                "workload": "demo", "format_version": 1, "signer": "04".repeat(33)})
        }
        _ => {}
    }
    c
}

fn input(claims: Value, reference: Value) -> Value {
    json!({"claims": claims, "runtime_data": null, "init_data": null, "reference": reference})
}

fn good_status(tee: &str) -> Option<&'static str> {
    match tee {
        "snp" | "azure-snp" => None,
        _ => Some("UpToDate"),
    }
}

const HW: [&str; 5] = ["snp", "tdx", "sgx", "azure-snp", "azure-tdx"];

fn rules(d: &enclava_policy::Decision) -> Vec<&str> {
    d.failed.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn hardware_defaults_allow_good_evidence() {
    for tee in HW {
        let p = AppraisalPolicy::builtin(tee).unwrap();
        let d = p
            .evaluate(&input(claims(tee, false, good_status(tee)), json!({})))
            .unwrap();
        assert!(d.allowed, "{tee}: {}", d.explain());
        assert!(d.failed.is_empty());
    }
}

#[test]
fn hardware_defaults_deny_debug_naming_debug() {
    for tee in HW {
        let p = AppraisalPolicy::builtin(tee).unwrap();
        let d = p
            .evaluate(&input(claims(tee, true, good_status(tee)), json!({})))
            .unwrap();
        assert!(!d.allowed, "{tee}");
        assert!(
            d.failed
                .contains(&FailedRule::new("debug", "claims.debug", "false", "true")),
            "{tee}: {:?}",
            d.failed
        );
        // The hardware flag is named as well.
        assert!(
            d.failed.iter().any(|f| f.rule == "debug"
                && f.claim_path.ends_with(".debug")
                && f.claim_path != "claims.debug"),
            "{tee}: {:?}",
            d.failed
        );
    }
}

#[test]
fn hardware_defaults_deny_revoked_tcb() {
    for tee in HW {
        let p = AppraisalPolicy::builtin(tee).unwrap();
        let d = p
            .evaluate(&input(claims(tee, false, Some("Revoked")), json!({})))
            .unwrap();
        assert!(!d.allowed, "{tee}");
        let f = d.failed.iter().find(|f| f.rule == "tcb_revoked").unwrap();
        assert_eq!(f.claim_path, "claims.tcb_status");
        assert_eq!(f.found, "Revoked");
        assert!(f.expected.contains("Revoked"), "{}", f.expected);
    }
}

#[test]
fn out_of_date_tcb_is_accepted_by_default() {
    for tee in ["tdx", "sgx", "azure-tdx"] {
        let p = AppraisalPolicy::builtin(tee).unwrap();
        let d = p
            .evaluate(&input(claims(tee, false, Some("OutOfDate")), json!({})))
            .unwrap();
        assert!(d.allowed, "{tee}: {}", d.explain());
    }
}

#[test]
fn dcap_defaults_deny_unevaluated_tcb() {
    for tee in ["tdx", "sgx", "azure-tdx"] {
        let p = AppraisalPolicy::builtin(tee).unwrap();
        for status in [Some("NotEvaluated"), None] {
            let d = p
                .evaluate(&input(claims(tee, false, status), json!({})))
                .unwrap();
            assert!(!d.allowed, "{tee} {status:?}");
            assert_eq!(rules(&d), ["tcb_not_evaluated"], "{tee}");
            assert_eq!(d.failed[0].found, status.unwrap_or("absent"));
        }
    }
    // SNP has no TCB status: absent is fine.
    let d = AppraisalPolicy::builtin("snp")
        .unwrap()
        .evaluate(&input(claims("snp", false, None), json!({})))
        .unwrap();
    assert!(d.allowed);
}

#[test]
fn measurement_outside_reference_set_is_denied_with_path_expected_and_found() {
    for tee in HW {
        let p = AppraisalPolicy::builtin(tee).unwrap();
        let reference = json!({"prod": {"measurements": [M2, "C3C3"]}});
        let d = p
            .evaluate(&input(claims(tee, false, good_status(tee)), reference))
            .unwrap();
        assert!(!d.allowed, "{tee}");
        assert_eq!(rules(&d), ["measurement_not_allowed"]);
        let f = &d.failed[0];
        assert_eq!(f.claim_path, "claims.measurement");
        assert_eq!(f.found, M1);
        assert!(
            f.expected.contains(M2) && f.expected.contains("c3c3"),
            "{}",
            f.expected
        );

        // Listed (in any case, in any set): allowed.
        let reference = json!({"prod": {"measurements": [M2]}, "canary": {"measurements": [M1.to_uppercase()]}});
        let d = p
            .evaluate(&input(claims(tee, false, good_status(tee)), reference))
            .unwrap();
        assert!(d.allowed, "{tee}: {}", d.explain());
    }
}

#[test]
fn wrong_tee_is_denied() {
    let p = AppraisalPolicy::builtin("snp").unwrap();
    let d = p
        .evaluate(&input(claims("tdx", false, Some("UpToDate")), json!({})))
        .unwrap();
    assert!(!d.allowed);
    assert!(
        d.failed
            .contains(&FailedRule::new("tee", "claims.tee", "snp", "tdx"))
    );
}

#[test]
fn missing_claims_fail_closed() {
    let p = AppraisalPolicy::builtin("snp").unwrap();
    let d = p.evaluate(&json!({"claims": {}})).unwrap();
    assert!(!d.allowed);
    let r = rules(&d);
    assert!(r.contains(&"tee") && r.contains(&"debug"), "{r:?}");
}

#[test]
fn snp_minimum_tcb_from_reference() {
    let p = AppraisalPolicy::builtin("snp").unwrap();
    let reference = json!({"fleet": {"min_tcb": {"microcode": 80, "snp": 20}}});
    let d = p
        .evaluate(&input(claims("snp", false, None), reference))
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(
        d.failed,
        [FailedRule::new(
            "tcb_below_minimum",
            "claims.snp.reported_tcb.microcode",
            ">= 80 (reference set fleet)",
            "72"
        )]
    );
    let ok = json!({"fleet": {"min_tcb": {"microcode": 72, "bootloader": 9}}});
    assert!(
        p.evaluate(&input(claims("snp", false, None), ok))
            .unwrap()
            .allowed
    );
    // Azure SNP reads the nested hardware object.
    let p = AppraisalPolicy::builtin("azure-snp").unwrap();
    let reference = json!({"fleet": {"min_tcb": {"snp": 24}}});
    let d = p
        .evaluate(&input(claims("azure-snp", false, None), reference))
        .unwrap();
    assert_eq!(
        d.failed[0].claim_path,
        "claims.azure.hardware.reported_tcb.snp"
    );
}

#[test]
fn sgx_signers_and_min_svn_from_reference() {
    let p = AppraisalPolicy::builtin("sgx").unwrap();
    let reference = json!({"app": {"signers": ["aa".repeat(32)], "min_svn": 3}});
    let d = p
        .evaluate(&input(claims("sgx", false, Some("UpToDate")), reference))
        .unwrap();
    assert!(!d.allowed);
    let mut r = rules(&d);
    r.sort();
    assert_eq!(r, ["signer_not_allowed", "svn_below_minimum"]);
    let s = d
        .failed
        .iter()
        .find(|f| f.rule == "signer_not_allowed")
        .unwrap();
    assert_eq!(s.claim_path, "claims.sgx.mr_signer");
    assert_eq!(s.found, "83".repeat(32));
    let reference = json!({"app": {"signers": ["83".repeat(32)], "min_svn": 2}});
    assert!(
        p.evaluate(&input(claims("sgx", false, Some("UpToDate")), reference))
            .unwrap()
            .allowed
    );
}

#[test]
fn sim_is_denied_by_default() {
    let p = AppraisalPolicy::builtin("sim").unwrap();
    let d = p
        .evaluate(&input(
            claims("sim", true, None),
            json!({"quickstart": {"measurements": [M1]}}),
        ))
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(rules(&d), ["sim_not_allowed"]);
    assert_eq!(d.failed[0].found, "sim");
    // And no hardware default lets sim through.
    for tee in HW {
        let d = AppraisalPolicy::builtin(tee)
            .unwrap()
            .evaluate(&input(claims("sim", true, None), json!({})))
            .unwrap();
        assert!(!d.allowed, "{tee}");
    }
}

#[test]
fn quickstart_allows_sim_only_for_its_measurement_set() {
    let p = AppraisalPolicy::builtin("quickstart").unwrap();
    let listed = json!({"quickstart": {"measurements": [M1]}});
    let d = p
        .evaluate(&input(claims("sim", true, None), listed.clone()))
        .unwrap();
    assert!(d.allowed, "{}", d.explain());

    let other = json!({"quickstart": {"measurements": [M2]}, "prod": {"measurements": [M1]}});
    let d = p
        .evaluate(&input(claims("sim", true, None), other))
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(rules(&d), ["measurement_not_allowed"]);
    assert_eq!(d.failed[0].found, M1);
    assert!(d.failed[0].expected.contains(M2));

    let d = p
        .evaluate(&input(claims("sim", true, None), json!({})))
        .unwrap();
    assert_eq!(rules(&d), ["quickstart_reference_missing"]);

    // Hardware evidence in the set must still not be debuggable.
    let d = p
        .evaluate(&input(claims("snp", true, None), listed.clone()))
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(rules(&d), ["debug"]);
    let d = p
        .evaluate(&input(claims("tdx", false, Some("UpToDate")), listed))
        .unwrap();
    assert!(d.allowed, "{}", d.explain());
}

#[test]
fn policy_without_allow_denies_by_default() {
    let p = AppraisalPolicy::compile("noallow", "package enclava.appraisal\n\nx := 1\n").unwrap();
    let d = p.evaluate(&input(json!({}), json!({}))).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.failed.len(), 1);
    assert_eq!(d.failed[0].rule, "default_deny");
    assert!(d.failed[0].expected.contains("allow"));

    // allow declared but undefined for this input.
    let src = "package enclava.appraisal\nimport rego.v1\nallow if input.claims.tee == \"snp\"\n";
    let p = AppraisalPolicy::compile("undef", src).unwrap();
    let d = p
        .evaluate(&input(json!({"tee": "tdx"}), json!({})))
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.failed[0].rule, "allow");
    assert!(
        d.failed[0].found.starts_with("undefined"),
        "{}",
        d.failed[0].found
    );
    let d = p
        .evaluate(&input(json!({"tee": "snp"}), json!({})))
        .unwrap();
    assert!(d.allowed);
}

#[test]
fn allow_with_denies_is_denied() {
    let src = "package enclava.appraisal\nimport rego.v1\nallow := true\ndeny contains \"nope\" if input.claims.x\n";
    let p = AppraisalPolicy::compile("both", src).unwrap();
    assert!(
        !p.evaluate(&input(json!({"x": true}), json!({})))
            .unwrap()
            .allowed
    );
    assert!(
        p.evaluate(&input(json!({"x": false}), json!({})))
            .unwrap()
            .allowed
    );
}

#[test]
fn issued_claims_come_from_the_claims_rule() {
    let src = r#"package enclava.appraisal
import rego.v1
allow := true
claims := {"workload": input.claims.measurement, "tier": "gold"}
"#;
    let p = AppraisalPolicy::compile("issue", src).unwrap();
    let d = p
        .evaluate(&input(json!({"measurement": "ab"}), json!({})))
        .unwrap();
    assert!(d.allowed);
    assert_eq!(d.issued_claims.get("workload"), Some(&json!("ab")));
    assert_eq!(d.issued_claims.get("tier"), Some(&json!("gold")));
}

#[test]
fn compile_errors_report_line_and_column() {
    let src = "package enclava.appraisal\n\nimport rego.v1\n\nallow if {\n    input.claims.debug == \n}\n";
    match AppraisalPolicy::compile("broken.rego", src) {
        Err(PolicyError::RegoCompile {
            policy,
            line,
            message,
            ..
        }) => {
            assert_eq!(policy, "broken.rego");
            let line = line.expect("a line number");
            assert!((6..=7).contains(&line), "line {line}: {message}");
            let e = PolicyError::RegoCompile {
                policy,
                line: Some(line),
                column: None,
                message,
            };
            assert!(e.to_string().contains(&format!("line {line}")));
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    // An unsafe variable is reported at compile time too.
    let src = "package enclava.appraisal\nimport rego.v1\nallow if {\n  x == 1\n}\n";
    match AppraisalPolicy::compile("unsafe.rego", src) {
        Err(PolicyError::RegoCompile { line, .. }) => assert_eq!(line, Some(4)),
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn wrong_package_is_a_contract_error() {
    let e = AppraisalPolicy::compile("p", "package something.else\nallow := true\n").unwrap_err();
    match e {
        PolicyError::RegoContract {
            expected, found, ..
        } => {
            assert_eq!(expected, "package enclava.appraisal");
            assert_eq!(found, "package something.else");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn evaluation_is_fast_enough() {
    let p = AppraisalPolicy::builtin("snp").unwrap();
    let reference =
        json!({"prod": {"measurements": [M1, M2]}, "fleet": {"min_tcb": {"microcode": 10}}});
    let doc = input(claims("snp", false, None), reference);
    let start = std::time::Instant::now();
    let n = 1000;
    for _ in 0..n {
        assert!(p.evaluate(&doc).unwrap().allowed);
    }
    let elapsed = start.elapsed();
    let rate = f64::from(n) / elapsed.as_secs_f64();
    println!("snp default policy: {n} evaluations in {elapsed:?} ({rate:.0}/s)");
    assert!(elapsed.as_secs() < 120, "absurdly slow: {elapsed:?}");

    // For comparison: compiling per request instead of cloning the prepared engine.
    let start = std::time::Instant::now();
    let compiles = 50;
    for _ in 0..compiles {
        let fresh = AppraisalPolicy::builtin("snp").unwrap();
        assert!(fresh.evaluate(&doc).unwrap().allowed);
    }
    let per_compile = start.elapsed() / compiles;
    println!(
        "compile + evaluate: {per_compile:?} each; prepared clone + evaluate: {:?} each",
        elapsed / n
    );
}

#[test]
fn builtin_names_are_complete() {
    for name in defaults::NAMES {
        assert!(defaults::source(name).is_some());
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("snp"),
                Just("sim"),
                Just("Revoked"),
                Just("tdx"),
                Just("x")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("tee"),
                            Just("debug"),
                            Just("measurement"),
                            Just("tcb_status"),
                            Just("snp"),
                            Just("policy"),
                            Just("measurements"),
                            Just("min_tcb"),
                            Just("microcode"),
                            Just("quickstart"),
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn defaults_never_panic_and_explain_denials(claims in arb_json(), reference in arb_json()) {
            let doc = json!({"claims": claims, "reference": reference});
            for name in defaults::NAMES {
                let p = AppraisalPolicy::builtin(name).unwrap();
                if let Ok(d) = p.evaluate(&doc) {
                    prop_assert!(d.allowed || !d.failed.is_empty());
                    if name == "sim" {
                        prop_assert!(!d.allowed);
                    }
                }
            }
        }

        #[test]
        fn compile_never_panics(src in "package enclava.appraisal\n[a-z{}\\[\\]():=\"., \n0-9]{0,80}") {
            let _ = AppraisalPolicy::compile("fuzz.rego", &src);
        }
    }
}

#[test]
fn deny_and_allow_of_every_definedness_are_read_correctly() {
    // `deny` a complete rule: undefined for some inputs, a boolean or an array for others.
    let src = r#"package enclava.appraisal
import rego.v1
default allow := true
deny := true if input.claims.flag == "bool"
deny := [{"rule": "listed", "path": "claims.flag", "expected": "not list", "found": "list"}] if input.claims.flag == "list"
"#;
    let p = AppraisalPolicy::compile("complete-deny", src).unwrap();
    assert!(
        p.evaluate(&input(json!({"flag": "none"}), json!({})))
            .unwrap()
            .allowed,
        "an undefined deny denies nothing"
    );
    let d = p
        .evaluate(&input(json!({"flag": "bool"}), json!({})))
        .unwrap();
    assert_eq!(rules(&d), ["deny"]);
    let d = p
        .evaluate(&input(json!({"flag": "list"}), json!({})))
        .unwrap();
    assert_eq!(
        d.failed,
        [enclava_policy::FailedRule::new(
            "listed",
            "claims.flag",
            "not list",
            "list"
        )]
    );

    // `deny` declared, `allow` undefined (no default) for this input, and defined for another.
    let src = r#"package enclava.appraisal
import rego.v1
allow if input.claims.ok
deny contains "bad" if input.claims.bad
"#;
    let p = AppraisalPolicy::compile("partial", src).unwrap();
    let d = p.evaluate(&input(json!({}), json!({}))).unwrap();
    assert_eq!(rules(&d), ["allow"]);
    assert!(d.failed[0].found.starts_with("undefined"));
    let d = p
        .evaluate(&input(json!({"ok": true, "bad": true}), json!({})))
        .unwrap();
    assert_eq!(rules(&d), ["bad"], "deny wins over allow");
    assert!(
        p.evaluate(&input(json!({"ok": true}), json!({})))
            .unwrap()
            .allowed
    );

    // Only `deny`, no `allow`: never allowed, and the deny members still explain.
    let p = AppraisalPolicy::compile(
        "deny-only",
        "package enclava.appraisal\nimport rego.v1\ndeny contains \"x\" if input.claims.x\n",
    )
    .unwrap();
    assert_eq!(
        rules(&p.evaluate(&input(json!({"x": true}), json!({}))).unwrap()),
        ["x"]
    );
    assert_eq!(
        rules(&p.evaluate(&input(json!({}), json!({}))).unwrap()),
        ["default_deny"]
    );
}

#[test]
fn snp_default_requires_revocation() {
    let p = AppraisalPolicy::builtin("snp").unwrap();
    let mut c = claims("snp", false, None);
    c.as_object_mut().unwrap().remove("revocation");
    let d = p.evaluate(&input(c.clone(), json!({}))).unwrap();
    assert_eq!(
        d.failed,
        vec![FailedRule::new(
            "revocation_checked",
            "claims.revocation.checked",
            "an AMD VCEK CRL for Genoa (AMD KDS vcek/v1/Genoa/crl, issued by ARK-Genoa)",
            "none"
        )]
    );
    c["revocation"] = json!({"checked": true, "fresh": false, "crls": [{
        "issuer": "ARK-Genoa", "this_update": "2025-01-01T00:00:00+00:00",
        "next_update": "2025-02-01T00:00:00+00:00", "sha256": "ab", "current": false}]});
    let d = p.evaluate(&input(c.clone(), json!({}))).unwrap();
    assert_eq!(rules(&d), ["revocation_fresh"]);
    // The azure-snp default does not require it; DCAP defaults do not look at it.
    for tee in ["azure-snp", "tdx", "sgx", "azure-tdx"] {
        let mut c = claims(tee, false, good_status(tee));
        c.as_object_mut().unwrap().remove("revocation");
        let d = AppraisalPolicy::builtin(tee)
            .unwrap()
            .evaluate(&input(c, json!({})))
            .unwrap();
        assert!(d.allowed, "{tee}: {}", d.explain());
    }
}
