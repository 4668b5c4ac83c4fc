//! Init-time data binding on real claims: SNP HOST_DATA, SGX CONFIGID, TDX MRCONFIGID. The
//! positive cases edit the verified claims (hardware evidence cannot be re-signed), which is
//! exactly what `binding::bind` sees after verification.

mod common;

use common::svc::*;
use enclava_attestation::MaaType;
use enclava_attestation::binding::{RULE_INIT, bind};
use enclava_token::maa::AttestData;
use serde_json::json;
use sha2::{Digest, Sha256};

fn digest(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn tdx_mrconfigid() {
    let Some(q4) = common::read("tdx/trustee/tdx_quote_4.dat") else {
        return;
    };
    let at = t("2024-06-01T00:00:00Z");
    let mut claims = enclava_evidence::dcap::verify_tdx(&q4, None, at).unwrap();
    let init = AttestData::json(br#"{"workload":"w1"}"#.to_vec());

    // Through the service: the real MRCONFIGID does not bind this data.
    let env = env();
    let req = maa(
        MaaType::TdxVm,
        json!({"quote": b64u(&q4), "initTimeData": {"data": b64u(&init.data), "dataType": "JSON"}}),
    );
    let e = env.svc.attest(&req, at).unwrap_err();
    let f: Vec<_> = e
        .failed_rules()
        .into_iter()
        .filter(|r| r.rule == RULE_INIT)
        .collect();
    assert_eq!(f.len(), 1, "{e}");
    assert_eq!(f[0].claim_path, "claims.tdx.mr_config_id");
    assert!(f[0].expected.contains(&digest(&init.data)), "{f:?}");

    // MRCONFIGID = SHA-256(data) || 16 zero bytes binds; JSON becomes x-ms-inittime.
    claims.tdx.as_mut().unwrap().mr_config_id =
        format!("{}{}", digest(&init.data), "00".repeat(16));
    let m = bind(&claims, None, Some(&init), None).unwrap();
    assert_eq!(m["x-ms-inittime"], json!({"workload": "w1"}));
    let bin = AttestData::binary(init.data.clone());
    let m = bind(&claims, None, Some(&bin), None).unwrap();
    assert_eq!(m["x-enclava-inittime-data"], b64u(&init.data));
    // Anything in the last 16 bytes breaks it.
    claims.tdx.as_mut().unwrap().mr_config_id =
        format!("{}{}01", digest(&init.data), "00".repeat(15));
    let e = bind(&claims, None, Some(&init), None).unwrap_err();
    assert_eq!(e.failed_rules()[0].rule, RULE_INIT);
}

#[test]
fn snp_host_data_and_sgx_config_id() {
    let Some(report) = common::read("sev-snp/trustee/test-report.bin") else {
        return;
    };
    let mut end = enclava_evidence::snp::Endorsements::default();
    for f in [
        "sev-snp/trustee/test-vcek.der",
        "sev-snp/google-go-sev-guest/ask_ark_milan.pem",
    ] {
        end.certs_der.extend(
            enclava_evidence::snp::certs_from_pem_or_der(&common::read(f).unwrap()).unwrap(),
        );
    }
    let mut snp = enclava_evidence::snp::verify(&report, &end, t("2025-06-01T00:00:00Z")).unwrap();
    let init = AttestData::binary(b"host data".to_vec());
    assert_eq!(
        bind(&snp, None, Some(&init), None)
            .unwrap_err()
            .failed_rules()[0]
            .claim_path,
        "claims.snp.host_data"
    );
    snp.snp.as_mut().unwrap().host_data = digest(&init.data);
    let m = bind(&snp, None, Some(&init), None).unwrap();
    assert_eq!(m["x-enclava-inittime-data"], b64u(&init.data));

    let q = common::read("sgx/trustee/occlum_quote.dat").unwrap();
    let mut sgx = enclava_evidence::dcap::verify_sgx(&q, None, t("2024-06-01T00:00:00Z")).unwrap();
    let e = bind(&sgx, None, Some(&init), None).unwrap_err();
    assert_eq!(e.failed_rules()[0].claim_path, "claims.sgx.config_id");
    // CONFIGID is 64 bytes: the first 32 carry the digest.
    sgx.sgx.as_mut().unwrap().config_id = format!("{}{}", digest(&init.data), "ee".repeat(32));
    bind(&sgx, None, Some(&init), None).unwrap();
}
