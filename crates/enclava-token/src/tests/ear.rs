use serde_json::json;

use super::fixtures::*;
use crate::ear::{
    AFFIRMING, Appraisal, CONTRAINDICATED, EAR_PROFILE, NO_CLAIM, PolicyOutcome, Status,
    VerifierId, WARNING, ear_claims, overall_status, trust_vector,
};

#[test]
fn tiers_of_values() {
    assert_eq!(Status::of_value(0), Status::None);
    assert_eq!(Status::of_value(1), Status::None);
    assert_eq!(Status::of_value(2), Status::Affirming);
    assert_eq!(Status::of_value(31), Status::Affirming);
    assert_eq!(Status::of_value(32), Status::Warning);
    assert_eq!(Status::of_value(95), Status::Warning);
    assert_eq!(Status::of_value(96), Status::Contraindicated);
    assert_eq!(Status::of_value(127), Status::Contraindicated);
    assert_eq!(Status::of_value(-1), Status::Contraindicated);
}

#[test]
fn good_hardware_with_affirmed_policy_is_affirming() {
    let c = snp(false);
    let v = trust_vector(&c, PolicyOutcome::Affirmed);
    assert_eq!(v.instance_identity, AFFIRMING);
    assert_eq!(v.configuration, AFFIRMING);
    assert_eq!(v.executables, AFFIRMING);
    assert_eq!(v.hardware, AFFIRMING);
    assert_eq!(v.runtime_opaque, AFFIRMING);
    assert_eq!(v.file_system, NO_CLAIM);
    assert_eq!(v.storage_opaque, NO_CLAIM);
    assert_eq!(v.sourced_data, NO_CLAIM);
    assert_eq!(v.status(), Status::Affirming);
    assert_eq!(
        Appraisal::new(&tdx(false, "UpToDate"), PolicyOutcome::Affirmed, None).status,
        Status::Affirming
    );
}

#[test]
fn policy_outcome_drives_executables() {
    let c = snp(false);
    let a = Appraisal::new(&c, PolicyOutcome::NotAppraised, None);
    assert_eq!(a.vector.executables, WARNING);
    assert_eq!(a.status, Status::Warning);
    let a = Appraisal::new(&c, PolicyOutcome::Denied, None);
    assert_eq!(a.vector.executables, CONTRAINDICATED);
    assert_eq!(a.status, Status::Contraindicated);
}

#[test]
fn tcb_status_drives_hardware() {
    let cases = [
        ("UpToDate", AFFIRMING, Status::Affirming),
        ("SWHardeningNeeded", WARNING, Status::Warning),
        ("OutOfDate", WARNING, Status::Warning),
        ("NotEvaluated", WARNING, Status::Warning),
        ("Revoked", CONTRAINDICATED, Status::Contraindicated),
        ("SomethingNew", CONTRAINDICATED, Status::Contraindicated),
    ];
    for (tcb, hw, status) in cases {
        let a = Appraisal::new(&tdx(false, tcb), PolicyOutcome::Affirmed, None);
        assert_eq!(a.vector.hardware, hw, "{tcb}");
        assert_eq!(a.status, status, "{tcb}");
    }
    let a = Appraisal::new(
        &tdx(false, "OutOfDateConfigurationNeeded"),
        PolicyOutcome::Affirmed,
        None,
    );
    assert_eq!(a.vector.configuration, WARNING);
    let a = Appraisal::new(&tdx(false, "Revoked"), PolicyOutcome::Affirmed, None);
    assert_eq!(a.vector.instance_identity, CONTRAINDICATED);
}

#[test]
fn debug_and_sim_are_contraindicated() {
    let a = Appraisal::new(&snp(true), PolicyOutcome::Affirmed, None);
    assert_eq!(a.vector.configuration, CONTRAINDICATED);
    assert_eq!(a.vector.runtime_opaque, CONTRAINDICATED);
    assert_eq!(a.vector.hardware, AFFIRMING);
    assert_eq!(a.status, Status::Contraindicated);

    let a = Appraisal::new(&sim(&[0; 64]), PolicyOutcome::Affirmed, None);
    assert_eq!(a.vector.hardware, CONTRAINDICATED);
    assert_eq!(a.vector.instance_identity, CONTRAINDICATED);
    assert_eq!(a.status, Status::Contraindicated);
}

#[test]
fn ear_claims_set_shape() {
    let a = Appraisal::new(&snp(false), PolicyOutcome::Affirmed, Some("policy-1"));
    let b = Appraisal::new(&sim(&[0; 64]), PolicyOutcome::NotAppraised, None);
    let m = ear_claims(&[a.clone(), b.clone()], &VerifierId::enclava(), now());
    assert_eq!(m["eat_profile"], json!(EAR_PROFILE));
    assert_eq!(m["iat"], json!(now().timestamp()));
    assert_eq!(m["ear.verifier-id"]["developer"], json!("enclava"));
    assert!(
        m["ear.verifier-id"]["build"]
            .as_str()
            .unwrap()
            .starts_with("enclava-token ")
    );
    let snp = &m["submods"]["snp"];
    assert_eq!(snp["ear.status"], json!("affirming"));
    assert_eq!(snp["ear.appraisal-policy-id"], json!("policy-1"));
    assert_eq!(
        snp["ear.trustworthiness-vector"],
        json!({"instance-identity": 2, "configuration": 2, "executables": 2, "file-system": 0,
               "hardware": 2, "runtime-opaque": 2, "storage-opaque": 0, "sourced-data": 0})
    );
    assert_eq!(m["submods"]["sim"]["ear.status"], json!("contraindicated"));
    assert!(m["submods"]["sim"].get("ear.appraisal-policy-id").is_none());
    assert_eq!(overall_status(&[a, b]), Status::Contraindicated);
    assert_eq!(overall_status(&[]), Status::None);
}
