use serde_json::{Map, Value, json};

use super::fixtures::*;
use crate::maa::{AttestData, DataType, MaaInput, compliance_status, maa_claims, policy_hash};

fn map(input: &MaaInput<'_>) -> Map<String, Value> {
    match maa_claims(input) {
        Ok(m) => m,
        Err(e) => panic!("mapping failed: {} ({e})", e.code()),
    }
}

fn s(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(v)) => v.clone(),
        other => panic!("{k}: expected a string, found {other:?}"),
    }
}

#[test]
fn policy_hash_matches_maa_definition() {
    // Computed independently (Python: base64url(sha256(base64url(policy)))).
    assert_eq!(
        policy_hash("version=1.0; authorizationrules { => permit(); }; issuancerules {};"),
        "lfVeHKkKisMmG_NLREtuz2UrU9xYi_fjYgmmTANE1f4"
    );
}

#[test]
fn attest_data_from_request() {
    let d = AttestData::from_request("eyJrZXlzIjpbXX0", "JSON").unwrap();
    assert_eq!(d.data, br#"{"keys":[]}"#);
    assert_eq!(d.data_type, DataType::Json);
    let d = AttestData::from_request("AQID", "Binary").unwrap();
    assert_eq!(d.data, vec![1, 2, 3]);
    assert_eq!(
        AttestData::from_request("AQID", "xml").unwrap_err().code(),
        "invalid_data"
    );
    assert_eq!(
        AttestData::from_request("%%%", "Binary")
            .unwrap_err()
            .code(),
        "invalid_data"
    );
}

#[test]
fn snp_claim_names_values_and_types() {
    let c = snp(false);
    let rt = AttestData::json(RUNTIME_JSON);
    let init = AttestData::json(INIT_JSON);
    let m = map(&MaaInput {
        claims: &c,
        runtime_data: Some(&rt),
        init_time_data: Some(&init),
        nonce: Some("n-123"),
        policy_hash: Some("PH"),
    });
    assert_eq!(s(&m, "x-ms-ver"), "1.0");
    assert_eq!(s(&m, "x-ms-attestation-type"), "sevsnpvm");
    assert_eq!(s(&m, "x-ms-policy-hash"), "PH");
    assert_eq!(s(&m, "nonce"), "n-123");
    let p = "x-ms-sevsnpvm-";
    assert_eq!(s(&m, &format!("{p}authorkeydigest")), "22".repeat(48));
    assert_eq!(m[&format!("{p}bootloader-svn")], json!(3));
    assert_eq!(
        s(&m, &format!("{p}familyId")),
        format!("01{}", "00".repeat(15))
    );
    assert_eq!(m[&format!("{p}guestsvn")], json!(2));
    assert_eq!(s(&m, &format!("{p}hostdata")), sha256_hex(INIT_JSON));
    assert_eq!(s(&m, &format!("{p}idkeydigest")), "11".repeat(48));
    assert_eq!(
        s(&m, &format!("{p}imageId")),
        format!("02{}", "00".repeat(15))
    );
    assert_eq!(m[&format!("{p}is-debuggable")], json!(false));
    assert_eq!(s(&m, &format!("{p}launchmeasurement")), "aa".repeat(48));
    assert_eq!(m[&format!("{p}microcode-svn")], json!(115));
    assert_eq!(m[&format!("{p}migration-allowed")], json!(false));
    assert_eq!(
        s(&m, &format!("{p}reportdata")),
        report_data_for(RUNTIME_JSON)
    );
    assert_eq!(s(&m, &format!("{p}reportid")), "33".repeat(32));
    assert_eq!(m[&format!("{p}smt-allowed")], json!(true));
    assert_eq!(m[&format!("{p}snpfw-svn")], json!(8));
    assert_eq!(m[&format!("{p}tee-svn")], json!(0));
    assert_eq!(m[&format!("{p}vmpl")], json!(0));
    let snp_names = m.keys().filter(|k| k.starts_with(p)).count();
    assert_eq!(snp_names, 17, "exactly the 17 MAA SEV-SNP claims");
    // Runtime data -> x-ms-runtime with its keys; init-time -> x-ms-inittime.
    let rt_json: Value = serde_json::from_slice(RUNTIME_JSON).unwrap();
    assert_eq!(m["x-ms-runtime"], rt_json);
    assert_eq!(
        m["x-ms-runtime"]["keys"][0]["kid"],
        json!("TpmEphemeralEncryptionKey")
    );
    assert_eq!(
        m["x-ms-inittime"],
        serde_json::from_slice::<Value>(INIT_JSON).unwrap()
    );
    // No compliance status for bare SEV-SNP (that is an Azure judgement).
    assert!(!m.contains_key("x-ms-compliance-status"));
    // Our own claims.
    assert_eq!(m["x-enclava-simulated"], json!(false));
    assert_eq!(s(&m, "x-enclava-tee"), "snp");
    assert_eq!(m["x-enclava-advisory-ids"], json!([]));
    assert!(!m.contains_key("x-enclava-tcb-status"));
    assert_eq!(m["x-enclava-claims"], serde_json::to_value(&c).unwrap());
    // Registered claims are the issuer's job.
    for k in ["iss", "iat", "exp", "nbf", "jti"] {
        assert!(!m.contains_key(k), "{k}");
    }
}

#[test]
fn snp_debug_policy_is_debuggable() {
    let c = snp(true);
    let m = map(&MaaInput::new(&c));
    assert_eq!(m["x-ms-sevsnpvm-is-debuggable"], json!(true));
    assert_eq!(m["x-enclava-is-debuggable"], json!(true));
    assert!(!m.contains_key("x-ms-runtime"));
}

#[test]
fn unbound_runtime_data_is_refused() {
    let c = snp(false);
    let other = AttestData::json(br#"{"keys":[]}"#);
    let e = maa_claims(&MaaInput {
        runtime_data: Some(&other),
        ..MaaInput::new(&c)
    })
    .unwrap_err();
    assert_eq!(e.code(), "data_binding_mismatch");
    let msg = e.to_string();
    assert!(msg.contains(&sha256_hex(br#"{"keys":[]}"#)), "{msg}");
    assert!(msg.contains(&sha256_hex(RUNTIME_JSON)), "{msg}");

    let init = AttestData::json(br#"{"other":1}"#);
    let e = maa_claims(&MaaInput {
        init_time_data: Some(&init),
        ..MaaInput::new(&c)
    })
    .unwrap_err();
    assert_eq!(e.code(), "data_binding_mismatch");
}

#[test]
fn runtime_keys_with_private_material_are_refused() {
    let data = br#"{"keys":[{"kty":"oct","kid":"x","k":"c2VjcmV0"}]}"#;
    let mut v = serde_json::to_value(snp(false)).unwrap();
    v["report_data"] = json!(report_data_for(data));
    let c = claims(v);
    let rt = AttestData::json(&data[..]);
    let e = maa_claims(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    })
    .unwrap_err();
    assert_eq!(e.code(), "invalid_data");
    assert!(!e.to_string().contains("c2VjcmV0"));
}

#[test]
fn json_runtime_data_must_be_an_object() {
    let data = b"[1,2]";
    let mut v = serde_json::to_value(snp(false)).unwrap();
    v["report_data"] = json!(report_data_for(data));
    let c = claims(v);
    let rt = AttestData::json(&data[..]);
    let e = maa_claims(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    })
    .unwrap_err();
    assert_eq!(e.code(), "invalid_data");
    // The same bytes as binary data are fine, and not emitted as x-ms-runtime.
    let rt = AttestData::binary(&data[..]);
    let m = map(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    });
    assert!(!m.contains_key("x-ms-runtime"));
    assert_eq!(s(&m, "x-enclava-runtime-data"), "WzEsMl0");
}

#[test]
fn tdx_claim_names_values_and_types() {
    let c = tdx(false, "UpToDate");
    let rt = AttestData::json(RUNTIME_JSON);
    let m = map(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    });
    assert_eq!(s(&m, "x-ms-attestation-type"), "tdxvm");
    assert_eq!(s(&m, "eat_profile"), "https://aka.ms/maa-eat-profile-tdxvm");
    assert_eq!(s(&m, "dbgstat"), "disabled");
    assert_eq!(s(&m, "intuse"), "generic");
    assert_eq!(s(&m, "attester_tcb_status"), "UpToDate");
    assert_eq!(m["attester_advisory_ids"], json!(["INTEL-SA-00837"]));
    assert_eq!(s(&m, "attester_tcb_date"), "2024-03-13T00:00:00Z");
    assert_eq!(s(&m, "tdx_mrsignerseam"), "00".repeat(48));
    assert_eq!(s(&m, "tdx_mrseam"), "5e".repeat(48));
    assert_eq!(s(&m, "tdx_mrtd"), "a1".repeat(48));
    assert_eq!(s(&m, "tdx_rtmr0"), "b0".repeat(48));
    assert_eq!(s(&m, "tdx_rtmr1"), "b1".repeat(48));
    assert_eq!(s(&m, "tdx_rtmr2"), "b2".repeat(48));
    assert_eq!(s(&m, "tdx_rtmr3"), "00".repeat(48));
    assert_eq!(s(&m, "tdx_mrconfigid"), "00".repeat(48));
    assert_eq!(s(&m, "tdx_mrowner"), "0e".repeat(48));
    assert_eq!(s(&m, "tdx_mrownerconfig"), "0c".repeat(48));
    assert_eq!(s(&m, "tdx_report_data"), report_data_for(RUNTIME_JSON));
    assert_eq!(s(&m, "tdx_seam_attributes"), "0000000000000000");
    assert_eq!(s(&m, "tdx_tee_tcb_svn"), "03010200000000000000000000000000");
    assert_eq!(s(&m, "tdx_xfam"), "e718060000000000");
    assert_eq!(m["tdx_seamsvn"], json!(0x0103));
    assert_eq!(s(&m, "tdx_td_attributes"), "0000001000000000");
    assert_eq!(m["tdx_td_attributes_debug"], json!(false));
    assert_eq!(m["tdx_td_attributes_key_locker"], json!(false));
    assert_eq!(m["tdx_td_attributes_perfmon"], json!(false));
    assert_eq!(m["tdx_td_attributes_protection_keys"], json!(false));
    assert_eq!(m["tdx_td_attributes_septve_disable"], json!(true));
    assert_eq!(m["pce_svn"], json!(13));
    assert_eq!(m["qe_svn"], json!(8));
    assert_eq!(
        m["x-ms-runtime"],
        serde_json::from_slice::<Value>(RUNTIME_JSON).unwrap()
    );
    assert_eq!(s(&m, "x-enclava-tcb-status"), "UpToDate");
    assert!(!m.contains_key("x-ms-compliance-status"));
}

#[test]
fn tdx_debug_and_init_time() {
    let c = tdx(true, "OutOfDate");
    let m = map(&MaaInput::new(&c));
    assert_eq!(s(&m, "dbgstat"), "enabled");
    assert_eq!(m["tdx_td_attributes_debug"], json!(true));
    assert_eq!(s(&m, "attester_tcb_status"), "OutOfDate");
    let init = AttestData::json(INIT_JSON);
    let e = maa_claims(&MaaInput {
        init_time_data: Some(&init),
        ..MaaInput::new(&c)
    })
    .unwrap_err();
    assert_eq!(e.code(), "invalid_data");
}

#[test]
fn sgx_claim_names_values_and_types() {
    let c = sgx(false);
    let rt = AttestData::binary(SGX_RUNTIME);
    let init = AttestData::binary(INIT_JSON);
    let m = map(&MaaInput {
        claims: &c,
        runtime_data: Some(&rt),
        init_time_data: Some(&init),
        nonce: None,
        policy_hash: None,
    });
    assert_eq!(s(&m, "x-ms-attestation-type"), "sgx");
    assert_eq!(m["x-ms-sgx-is-debuggable"], json!(false));
    assert_eq!(m["x-ms-sgx-product-id"], json!(7));
    assert_eq!(m["x-ms-sgx-svn"], json!(3));
    assert_eq!(s(&m, "x-ms-sgx-mrenclave"), "e1".repeat(32));
    assert_eq!(s(&m, "x-ms-sgx-mrsigner"), "51".repeat(32));
    assert_eq!(s(&m, "x-ms-sgx-report-data"), report_data_for(SGX_RUNTIME));
    assert_eq!(
        s(&m, "x-ms-sgx-config-id"),
        format!("{}{}", sha256_hex(INIT_JSON), "00".repeat(32))
    );
    assert_eq!(m["x-ms-sgx-config-svn"], json!(2));
    assert_eq!(s(&m, "x-ms-sgx-isv-extended-product-id"), "e0".repeat(16));
    assert_eq!(s(&m, "x-ms-sgx-isv-family-id"), "f0".repeat(16));
    // Binary runtime data -> x-ms-sgx-ehd, base64url without padding.
    assert_eq!(s(&m, "x-ms-sgx-ehd"), "BGJpbmFyeSBlbmNsYXZlIGhlbGQgZGF0YQ");
    assert_eq!(s(&m, "maa-ehd"), "BGJpbmFyeSBlbmNsYXZlIGhlbGQgZGF0YQ");
    assert!(!m.contains_key("x-ms-runtime"));
    assert!(!m.contains_key("x-enclava-runtime-data"));
    // Deprecated aliases.
    assert_eq!(m["is-debuggable"], json!(false));
    assert_eq!(s(&m, "sgx-mrenclave"), "e1".repeat(32));
    assert_eq!(s(&m, "sgx-mrsigner"), "51".repeat(32));
    assert_eq!(m["product-id"], json!(7));
    assert_eq!(m["svn"], json!(3));
    assert_eq!(s(&m, "tee"), "sgx");
    // Binary init-time data bound to CONFIGID.
    assert_eq!(
        s(&m, "x-enclava-inittime-data"),
        "eyJjY2VQb2xpY3kiOiJjR0ZqYTJGblpRIn0"
    );
    assert_eq!(s(&m, "x-enclava-tcb-status"), "SWHardeningNeeded");
    assert_eq!(
        m["x-enclava-advisory-ids"],
        json!(["INTEL-SA-00615", "INTEL-SA-00657"])
    );
}

#[test]
fn azure_snp_cvm_shape() {
    let c = azure("azure-snp", false, None, snp_section(false));
    let rt = AttestData::json(RUNTIME_JSON);
    let m = map(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    });
    assert_eq!(s(&m, "x-ms-attestation-type"), "azurevm");
    assert_eq!(m["x-ms-azurevm-attested-pcrs"], json!([0, 1, 2, 10]));
    assert_eq!(
        s(&m, "x-ms-azurevm-vmid"),
        "6A3F1D4C-0000-4C4C-8A8A-000000000001"
    );
    assert_eq!(m["secureboot"], json!(true));
    let iso = m["x-ms-isolation-tee"].as_object().unwrap();
    assert_eq!(s(iso, "x-ms-attestation-type"), "sevsnpvm");
    assert_eq!(s(iso, "x-ms-compliance-status"), "azure-compliant-cvm");
    assert_eq!(iso["x-ms-runtime"], hcl_runtime());
    assert_eq!(iso["x-ms-runtime"]["keys"][0]["kid"], json!("HCLAkPub"));
    assert_eq!(iso["x-ms-sevsnpvm-vmpl"], json!(0));
    assert_eq!(iso["x-ms-sevsnpvm-is-debuggable"], json!(false));
    assert_eq!(s(iso, "x-ms-sevsnpvm-launchmeasurement"), "ab".repeat(48));
    assert_eq!(
        s(iso, "x-ms-sevsnpvm-reportdata"),
        report_data_for(b"hcl variable data")
    );
    assert_eq!(
        iso.keys()
            .filter(|k| k.starts_with("x-ms-sevsnpvm-"))
            .count(),
        17
    );
    // The hardware claims are not duplicated at the top level.
    assert!(!m.contains_key("x-ms-sevsnpvm-vmpl"));
    assert!(!m.contains_key("x-ms-compliance-status"));
    // The caller's runtime data (bound by the vTPM nonce) is the top-level x-ms-runtime.
    assert_eq!(
        m["x-ms-runtime"]["keys"][0]["kid"],
        json!("TpmEphemeralEncryptionKey")
    );
}

#[test]
fn azure_runtime_data_must_match_the_tpm_nonce() {
    let c = azure("azure-snp", false, None, snp_section(false));
    let rt = AttestData::json(br#"{"keys":[]}"#);
    let e = maa_claims(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    })
    .unwrap_err();
    assert_eq!(e.code(), "data_binding_mismatch");
    assert!(e.to_string().contains("vTPM quote nonce"));
}

#[test]
fn azure_compliance_rule() {
    let ok = azure("azure-snp", false, None, snp_section(false));
    assert_eq!(compliance_status(&ok), Some("azure-compliant-cvm"));
    // Debuggable (top level or nested) is never compliant.
    let dbg = azure("azure-snp", true, None, snp_section(true));
    assert_eq!(compliance_status(&dbg), None);
    let nested_dbg = azure("azure-snp", false, None, snp_section(true));
    assert_eq!(compliance_status(&nested_dbg), None);
    let m = map(&MaaInput::new(&dbg));
    assert!(
        !m["x-ms-isolation-tee"]
            .as_object()
            .unwrap()
            .contains_key("x-ms-compliance-status")
    );
    // TDX: only with an evaluated, current TCB.
    let t = azure("azure-tdx", false, Some("UpToDate"), tdx_section(false));
    assert_eq!(compliance_status(&t), Some("azure-compliant-cvm"));
    let t = azure("azure-tdx", false, Some("NotEvaluated"), tdx_section(false));
    assert_eq!(compliance_status(&t), None);
    let t = azure("azure-tdx", false, Some("Revoked"), tdx_section(false));
    assert_eq!(compliance_status(&t), None);
    let t = azure("azure-tdx", false, None, tdx_section(false));
    assert_eq!(compliance_status(&t), None);
    // Bare hardware and sim never.
    assert_eq!(compliance_status(&snp(false)), None);
    assert_eq!(compliance_status(&tdx(false, "UpToDate")), None);
    assert_eq!(compliance_status(&sim(&[0; 64])), None);
}

#[test]
fn azure_tdx_cvm_shape() {
    let c = azure("azure-tdx", false, Some("UpToDate"), tdx_section(false));
    let m = map(&MaaInput::new(&c));
    assert_eq!(s(&m, "x-ms-attestation-type"), "azurevm");
    let iso = m["x-ms-isolation-tee"].as_object().unwrap();
    assert_eq!(s(iso, "x-ms-attestation-type"), "tdxvm");
    assert_eq!(s(iso, "x-ms-compliance-status"), "azure-compliant-cvm");
    assert_eq!(s(iso, "tdx_mrtd"), "a1".repeat(48));
    assert_eq!(s(iso, "attester_tcb_status"), "UpToDate");
    assert_eq!(iso["x-ms-runtime"], hcl_runtime());
    assert!(!m.contains_key("tdx_mrtd"));
    assert!(!m.contains_key("x-ms-runtime"));
}

#[test]
fn sim_is_marked_simulated() {
    let rd = report_data_bytes(RUNTIME_JSON);
    let c = sim(&rd);
    let rt = AttestData::json(RUNTIME_JSON);
    let m = map(&MaaInput {
        runtime_data: Some(&rt),
        ..MaaInput::new(&c)
    });
    assert_eq!(s(&m, "x-ms-attestation-type"), "enclava-sim");
    assert_eq!(m["x-enclava-simulated"], json!(true));
    assert_eq!(m["x-enclava-is-debuggable"], json!(true));
    assert_eq!(s(&m, "x-enclava-sim-workload"), "demo");
    assert_eq!(s(&m, "x-enclava-sim-report-data"), hex::encode(rd));
    assert_eq!(s(&m, "x-enclava-measurement"), "07".repeat(48));
    assert!(!m.contains_key("x-ms-compliance-status"));
    assert!(m.keys().all(|k| !k.starts_with("x-ms-sevsnpvm")
        && !k.starts_with("x-ms-sgx")
        && !k.starts_with("tdx_")));
    assert_eq!(m["x-ms-runtime"]["client-payload"]["nonce"], json!("abc"));
}

#[test]
fn tee_without_its_section_is_malformed() {
    let mut v = serde_json::to_value(snp(false)).unwrap();
    v.as_object_mut().unwrap().remove("snp");
    let c = claims(v);
    assert_eq!(
        maa_claims(&MaaInput::new(&c)).unwrap_err().code(),
        "malformed_claims"
    );
}

#[test]
fn every_emitted_claim_is_advertised() {
    use crate::maa::{CLAIMS_SUPPORTED, openid_configuration};
    let rt = AttestData::json(RUNTIME_JSON);
    let cases = [
        snp(false),
        tdx(false, "UpToDate"),
        sgx(false),
        azure("azure-snp", false, None, snp_section(false)),
        sim(&report_data_bytes(RUNTIME_JSON)),
    ];
    for c in &cases {
        let runtime = if c.tee == enclava_evidence::Tee::Sgx {
            None
        } else {
            Some(&rt)
        };
        let m = map(&MaaInput {
            runtime_data: runtime,
            nonce: Some("n"),
            policy_hash: Some("h"),
            ..MaaInput::new(c)
        });
        for k in m.keys() {
            assert!(CLAIMS_SUPPORTED.contains(&k.as_str()), "{k} not advertised");
        }
    }
    let oc = openid_configuration("https://a.test/", &[crate::Alg::RS256, crate::Alg::ES256]);
    assert_eq!(oc["jwks_uri"], json!("https://a.test/certs"));
    assert_eq!(
        oc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
}
