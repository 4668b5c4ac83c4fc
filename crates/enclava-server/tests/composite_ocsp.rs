//! NVIDIA revocation (OCSP) in composite attestation over real HTTPS, with the real nvtrust H100
//! evidence and RIMs (see composite.rs for the vector):
//!
//! * no OCSP responses: admitted with `revocation_checked: false`, `revocation_status:
//!   "not_checked"` per device and in the summary; an appraisal policy requiring revocation
//!   checked refuses it (naming the device);
//! * attack: a forged OCSP response (signed by a key that is not NVIDIA's, under the real
//!   issuer's name, `good` or `revoked`) for the real device chain, stapled in `gpuOcsp` or placed
//!   in the server's collateral cache (`nvidia/ocsp/`): refused with `ocsp_signature`;
//! * RIMs from the collateral cache (`nvidia/rim/{id}.xml`) without a RIM directory;
//! * `gpuOcsp` bounds are client errors.
//!
//! A verified `good` answer cannot be produced for the real chain (the NVIDIA roots are pinned and
//! NVIDIA's responder keys are not ours), so "admitted when checked" is tested in
//! enclava-attestation (`gpu::tests::policy_can_require_revocation_checked`) and the evidence
//! layer's test PKI (enclava-evidence/tests/nvidia_ocsp.rs).

mod common;

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use common::{TestServer, start_with};
use enclava_server::PartialConfig;
use enclava_server::attest::AttestationSettings;
use enclava_token::{Expectations, Jwks};
use serde_json::{Value, json};
use sha2::Digest;
use x509_cert::Certificate;
use x509_cert::der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};

const AT: &str = "2025-06-01T00:00:00Z";
const GPU_NONCE: &str = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e";
const NV: &str = "nvidia-gpu/nvtrust";
const DRIVER_RIM: &str = "nvidia-gpu/nvtrust/Driver_RIM_test_no_gpu.swidtag";
const VBIOS_RIM: &str = "nvidia-gpu/nvtrust/1010_0200_882_96005E0001_test_no_gpu.swidtag";
const DRIVER_ID: &str = "NV_GPU_DRIVER_GH100_545.00";
const VBIOS_ID: &str = "NV_GPU_VBIOS_1010_0200_882_96005E0001";
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

fn read(rel: &str) -> Option<Vec<u8>> {
    enclava_testvectors::read(rel)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn gpu_list() -> Option<Value> {
    let report = hex::decode(
        String::from_utf8(read(&format!("{NV}/attestationReport.txt"))?)
            .unwrap()
            .trim(),
    )
    .unwrap();
    let chain = read(&format!("{NV}/gpuAkCertChain.txt"))?;
    Some(json!([{
        "arch": "HOPPER",
        "nonce": GPU_NONCE,
        "evidence": STANDARD.encode(report),
        "certificate": STANDARD.encode(chain),
    }]))
}

/// The real device chain, DER, leaf first.
fn chain_der() -> Vec<Vec<u8>> {
    let pem = read(&format!("{NV}/gpuAkCertChain.txt")).unwrap();
    Certificate::load_pem_chain(&pem)
        .unwrap()
        .iter()
        .map(|c| c.to_der().unwrap())
        .collect()
}

/// A dev server verifying as of [`AT`] whose collateral cache (`attestation.collateral_dir`) is
/// `collateral`; no RIM directory.
fn server(collateral: &Path) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some(AT.into()),
            collateral_dir: Some(collateral.to_path_buf()),
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

/// Put an appraisal policy for sim evidence: admit sim, plus `extra` deny rules.
fn put_sim_policy(s: &TestServer, extra: &str) {
    let policy = format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n\
         deny contains {{\"rule\": \"tee\", \"path\": \"claims.tee\", \"expected\": \"sim\", \"found\": input.claims.tee}} if input.claims.tee != \"sim\"\n\n{extra}\n"
    );
    let r = s.call(
        "PUT",
        "/policies/sim",
        Some(&s.admin_token()),
        Some(json!({"policy": policy}).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

fn sim_request(extra: Value) -> Value {
    let rd = json!({"gpu_nonce": GPU_NONCE}).to_string();
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(&sha2::Sha256::digest(rd.as_bytes()));
    let ev = enclava_evidence::sim::generate(&[7u8; 48], &report_data, t(AT));
    let mut b = json!({
        "tee": "sim",
        "evidence": URL_SAFE_NO_PAD.encode(&ev),
        "runtime_data": {"data": URL_SAFE_NO_PAD.encode(rd.as_bytes()), "dataType": "JSON"},
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
        b.extend(e);
    }
    b
}

fn token_claims(s: &TestServer, token: &str) -> serde_json::Map<String, Value> {
    let r = s.get("/certs/", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let jwks: Jwks = serde_json::from_value(r.body.clone()).unwrap();
    enclava_token::verify(
        token,
        &jwks,
        &Expectations::new(s.server.base_url.clone(), t(AT)),
    )
    .unwrap_or_else(|e| panic!("token does not verify: {e}"))
    .claims
}

fn sha1(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b)
        .as_ref()
        .to_vec()
}

fn gtime(t: DateTime<Utc>) -> OcspGeneralizedTime {
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(t.timestamp() as u64))
            .unwrap(),
    )
}

/// Attack material: an OCSP response for `cert` (issued by `issuer`) under the real issuer's
/// name, current at [`AT`], signed by a fresh P-384 key that is not NVIDIA's.
fn forged(cert: &[u8], issuer: &[u8], revoked: bool) -> Vec<u8> {
    let c = Certificate::from_der(cert).unwrap();
    let i = Certificate::from_der(issuer).unwrap();
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&i.tbs_certificate.subject.to_der().unwrap()))
            .unwrap(),
        issuer_key_hash: OctetString::new(sha1(
            i.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        ))
        .unwrap(),
        serial_number: c.tbs_certificate.serial_number.clone(),
    };
    let now = t(AT);
    let status = if revoked {
        CertStatus::Revoked(RevokedInfo {
            revocation_time: gtime(now - chrono::Duration::days(1)),
            revocation_reason: None,
        })
    } else {
        CertStatus::good()
    };
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByName(i.tbs_certificate.subject.clone()),
        produced_at: gtime(now - chrono::Duration::hours(1)),
        responses: vec![SingleResponse {
            cert_id,
            cert_status: status,
            this_update: gtime(now - chrono::Duration::hours(1)),
            next_update: Some(gtime(now + chrono::Duration::days(1))),
            single_extensions: None,
        }],
        response_extensions: None,
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let sig = kp.sign(&rng, &tbs.to_der().unwrap()).unwrap();
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA384,
            parameters: None,
        },
        signature: BitString::from_bytes(sig.as_ref()).unwrap(),
        certs: None,
    };
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: OID_OCSP_BASIC,
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap()
}

/// Fill a collateral cache directory with the nvtrust RIMs under their ids
/// (`nvidia/rim/{id}.xml`, the layout `enclava collateral fetch --nvidia-rim` writes).
fn collateral_with_rims() -> tempfile::TempDir {
    let c = tempfile::tempdir().unwrap();
    let rim = c.path().join("nvidia/rim");
    std::fs::create_dir_all(&rim).unwrap();
    std::fs::write(
        rim.join(format!("{DRIVER_ID}.xml")),
        read(DRIVER_RIM).unwrap(),
    )
    .unwrap();
    std::fs::write(
        rim.join(format!("{VBIOS_ID}.xml")),
        read(VBIOS_RIM).unwrap(),
    )
    .unwrap();
    c
}

#[test]
fn without_ocsp_responses_revocation_is_not_checked_and_a_policy_can_require_it() {
    let Some(list) = gpu_list() else { return };
    let collateral = collateral_with_rims();
    let s = server(collateral.path());
    put_sim_policy(&s, "");
    // RIMs from the collateral cache (no RIM directory, none in the request); no OCSP anywhere.
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(json!({"gpuEvidence": list})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let c = token_claims(&s, r.body["token"].as_str().unwrap());
    let g = &c["x-enclava-gpus"][0];
    assert_eq!(g["measres"], "success", "{g}");
    assert_eq!(g["revocation_checked"], false);
    assert_eq!(g["revocation_status"], "not_checked");
    assert_eq!(g["revocation"]["checked"], false);
    assert_eq!(c["x-enclava-gpu"]["revocation_checked"], false);
    // An unrelated response (for no certificate of these chains) changes nothing.
    let chain = chain_der();
    let unrelated = forged(&chain[1], &chain[1], false);
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(json!({"gpuEvidence": list, "gpuOcsp": [STANDARD.encode(&unrelated)]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // A policy requiring revocation checked refuses it, naming the device.
    put_sim_policy(
        &s,
        r#"deny contains {"rule": "gpu_revocation", "path": sprintf("gpus[%d].revocation_checked", [i]), "expected": "true", "found": sprintf("%v", [g.revocation_checked])} if {
    some i, g in input.gpus
    not g.revocation_checked
}"#,
    );
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(json!({"gpuEvidence": list})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let f = r.body["error"]["failed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(f.len(), 1, "{}", r.text);
    assert_eq!(f[0]["rule"], "gpu_revocation", "{}", r.text);
    assert_eq!(
        f[0]["claim_path"], "gpus[0].revocation_checked",
        "{}",
        r.text
    );
}

/// Attack: forged OCSP answers for the real device chain, stapled or planted in the collateral
/// cache. Refused with `ocsp_signature`, whatever they say.
#[test]
fn forged_ocsp_responses_stapled_or_cached_are_refused() {
    let Some(list) = gpu_list() else { return };
    let chain = chain_der();
    assert!(chain.len() >= 3, "leaf, BROM, ... in the vector chain");
    let collateral = collateral_with_rims();
    let s = server(collateral.path());
    put_sim_policy(&s, "");
    // certs[1] (the device's BROM certificate, issued by certs[2]) is covered by OCSP.
    for revoked in [false, true] {
        let resp = forged(&chain[1], &chain[2], revoked);
        let r = s.post(
            "/attest/native",
            None,
            &sim_request(json!({"gpuEvidence": list, "gpuOcsp": [STANDARD.encode(&resp)]})),
        );
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.code(), "evidence_invalid", "{}", r.text);
        assert_eq!(
            r.body["error"]["failed_check"], "ocsp_signature",
            "{}",
            r.text
        );
    }
    // Planted in the cache (read when the server starts using it; a new server reads it).
    let ocsp_dir = collateral.path().join("nvidia/ocsp");
    std::fs::create_dir_all(&ocsp_dir).unwrap();
    std::fs::write(
        ocsp_dir.join("planted.der"),
        forged(&chain[1], &chain[2], false),
    )
    .unwrap();
    let s2 = server(collateral.path());
    put_sim_policy(&s2, "");
    let r = s2.post(
        "/attest/native",
        None,
        &sim_request(json!({"gpuEvidence": list})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["failed_check"], "ocsp_signature",
        "{}",
        r.text
    );
}

#[test]
fn gpu_ocsp_bounds_are_client_errors() {
    let Some(list) = gpu_list() else { return };
    let collateral = collateral_with_rims();
    let s = server(collateral.path());
    put_sim_policy(&s, "");
    let post = |extra: Value| s.post("/attest/native", None, &sim_request(extra));
    let r = post(json!({"gpuEvidence": list, "gpuOcsp": vec![STANDARD.encode([0x30, 0]); 65]}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("gpuOcsp"), "{}", r.text);
    let r = post(json!({"gpuEvidence": list, "gpuOcsp": [STANDARD.encode(vec![0u8; 20_000])]}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("gpuOcsp[0]"), "{}", r.text);
    let r = post(json!({"gpuOcsp": []}));
    assert_eq!(r.status, 400, "{}", r.text);
    // Bytes that are not an OCSP response name no certificate of these chains: ignored like any
    // response for other certificates (never a 500), and nothing counts as checked.
    let r = post(json!({"gpuEvidence": list, "gpuOcsp": [STANDARD.encode(b"garbage")]}));
    assert_eq!(r.status, 200, "{}", r.text);
    let c = token_claims(&s, r.body["token"].as_str().unwrap());
    assert_eq!(c["x-enclava-gpus"][0]["revocation_checked"], false);
}
