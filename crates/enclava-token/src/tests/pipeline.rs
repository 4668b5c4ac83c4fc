//! Evidence -> claims -> MAA mapping + EAR -> signed token -> verified token.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::ear::{Appraisal, EMBED_CLAIM, PolicyOutcome, VerifierId, ear_claims};
use crate::maa::{AttestData, MaaInput, maa_claims, policy_hash};
use crate::{Es256Signer, Expectations, Jwks, TokenOptions, issue, verify};

#[test]
fn sim_evidence_to_verified_token() {
    let runtime = br#"{"keys":[{"kid":"enclave-ephemeral","kty":"RSA","key_ops":["encrypt"],"n":"xyz","e":"AQAB"}]}"#;
    let claims = sim(&report_data_bytes(runtime));
    let rt = AttestData::json(&runtime[..]);
    let ph = policy_hash("version=1.0; authorizationrules { => permit(); };");
    let mut m = maa_claims(&MaaInput {
        runtime_data: Some(&rt),
        nonce: Some("n-42"),
        policy_hash: Some(&ph),
        ..MaaInput::new(&claims)
    })
    .unwrap();
    let appraisal = Appraisal::new(&claims, PolicyOutcome::NotAppraised, None);
    m.insert(
        EMBED_CLAIM.into(),
        Value::Object(ear_claims(&[appraisal], &VerifierId::enclava(), now())),
    );

    let signer = Es256Signer::generate("attest-1").unwrap();
    let token = issue(
        &m,
        &signer,
        &TokenOptions::new("https://enclava.test", now()),
    )
    .unwrap();
    let jwks = Jwks::from_signers(&[&signer]).unwrap();
    let v = verify(
        &token,
        &jwks,
        &Expectations::new("https://enclava.test", now()),
    )
    .unwrap();

    assert_eq!(v.claims["x-ms-attestation-type"], json!("enclava-sim"));
    assert_eq!(v.claims["x-enclava-simulated"], json!(true));
    assert_eq!(v.claims["nonce"], json!("n-42"));
    assert_eq!(v.claims["x-ms-policy-hash"], json!(ph));
    // The enclave's ephemeral key, where a key vault's release looks for it.
    assert_eq!(
        v.claims["x-ms-runtime"]["keys"][0]["kid"],
        json!("enclave-ephemeral")
    );
    assert_eq!(
        v.claims[EMBED_CLAIM]["submods"]["sim"]["ear.status"],
        json!("contraindicated")
    );
    assert_eq!(v.claims["x-enclava-claims"]["tee"], json!("sim"));
}
