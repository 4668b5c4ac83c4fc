//! The Azure CVM verification pipeline.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::hcl::{HclReport, HclReportType, parse_hcl_report};
use super::{AzureClaims, AzureError, AzureEvidence};
use crate::{Claims, Tee};

/// What the vTPM part (steps 1 to 4) establishes before the hardware is checked.
struct VtpmChecked {
    hcl: HclReport,
    runtime: Value,
    ak_jwk: Value,
    nonce: Vec<u8>,
    pcrs: BTreeMap<u32, Vec<u8>>,
}

fn check_vtpm(
    evidence: &AzureEvidence,
    expected_type: HclReportType,
    expected_nonce: Option<&[u8]>,
) -> Result<VtpmChecked, AzureError> {
    let hcl = parse_hcl_report(&evidence.hcl_report)?;
    if hcl.report_type != expected_type {
        return Err(AzureError::MalformedHclReport(format!(
            "the HCL report carries a {:?} report, expected {expected_type:?}",
            hcl.report_type
        )));
    }
    hcl.check_binding()?;
    let runtime = hcl.runtime_data()?;
    let ak = super::tpm::AkPub::from_runtime_data(&runtime)?;
    let quote = &evidence.tpm_quote;
    let attest = quote.attest()?;
    quote.verify_signature(&ak)?;
    if let Some(expected) = expected_nonce {
        quote.check_nonce(expected)?;
    }
    let pcrs = quote.check_pcr_digest()?;
    let ak_jwk = runtime
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|keys| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == Some(super::tpm::HCL_AK_KID))
        })
        .cloned()
        .unwrap_or_else(|| ak.to_jwk());
    Ok(VtpmChecked {
        hcl,
        runtime,
        ak_jwk,
        nonce: attest.extra_data,
        pcrs,
    })
}

fn build_claims(tee: Tee, checked: VtpmChecked, hw: Claims) -> Result<Claims, AzureError> {
    // The verified hardware report_data must carry the runtime-data digest (for TDX this is the
    // binding check proper: the TD quote, not the MACed TDREPORT, is what is verified).
    let hw_report_data = hex::decode(&hw.report_data).unwrap_or_default();
    checked.hcl.check_binding_against(&hw_report_data)?;

    let hardware = match tee {
        Tee::AzureSnp => hw.snp.as_ref().map(serde_json::to_value),
        _ => hw.tdx.as_ref().map(serde_json::to_value),
    }
    .unwrap_or_else(|| serde_json::to_value(&hw))
    .map_err(|e| AzureError::MalformedEvidence(format!("hardware claims: {e}")))?;

    let user_data = checked
        .runtime
        .get("user-data")
        .and_then(Value::as_str)
        .map(|s| s.to_ascii_lowercase());
    let azure = AzureClaims {
        pcrs: checked
            .pcrs
            .iter()
            .map(|(i, v)| (i.to_string(), hex::encode(v)))
            .collect(),
        nonce: hex::encode(&checked.nonce),
        vm_configuration: checked
            .runtime
            .get("vm-configuration")
            .cloned()
            .unwrap_or(Value::Null),
        user_data,
        runtime_data: checked.runtime,
        ak_pub: checked.ak_jwk,
        hcl_version: checked.hcl.version,
        hardware,
    };
    Ok(Claims {
        tee,
        debug: hw.debug,
        measurement: hw.measurement,
        report_data: hw.report_data,
        tcb_status: hw.tcb_status,
        advisory_ids: hw.advisory_ids,
        snp: None,
        tdx: None,
        sgx: None,
        azure: Some(azure),
        sim: None,
        // The hardware verifier's: for azure-snp, whether a CRL of the VCEK's ARK was supplied
        // (the HCL evidence carries none; the server's collateral may); for azure-tdx, DCAP's.
        revocation: hw.revocation,
    })
}

/// Verify Azure SEV-SNP CVM evidence. `endorsements` adds to the certificates shipped in the
/// evidence (typically the ASK/ARK, CRLs). With `expected_nonce`, the TPM quote's extraData must
/// equal it exactly.
pub fn verify_snp(
    evidence: &AzureEvidence,
    endorsements: &crate::snp::Endorsements,
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<Claims, AzureError> {
    let checked = check_vtpm(evidence, HclReportType::Snp, expected_nonce)?;
    match checked.hcl.snp_vmpl() {
        Some(0) => {}
        Some(v) => return Err(AzureError::HclVmpl(v)),
        None => {
            return Err(AzureError::MalformedHclReport(
                "SNP report has no VMPL".into(),
            ));
        }
    }
    let mut all = crate::snp::Endorsements {
        certs_der: evidence.certs_der.clone(),
        crls_der: endorsements.crls_der.clone(),
    };
    for c in &endorsements.certs_der {
        if !all.certs_der.contains(c) {
            all.certs_der.push(c.clone());
        }
    }
    let hw = crate::snp::verify(&checked.hcl.hardware_report, &all, at)?;
    build_claims(Tee::AzureSnp, checked, hw)
}

/// Verify Azure TDX CVM evidence: the TD quote (in the evidence) must verify and its report_data
/// must bind the HCL runtime data.
pub fn verify_tdx(
    evidence: &AzureEvidence,
    collateral: Option<&crate::dcap::Collateral>,
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<Claims, AzureError> {
    let checked = check_vtpm(evidence, HclReportType::Tdx, expected_nonce)?;
    let td_quote = evidence
        .td_quote
        .as_deref()
        .ok_or_else(|| AzureError::MalformedEvidence("TDX evidence has no td_quote".into()))?;
    let hw = crate::dcap::verify_tdx(td_quote, collateral, at)?;
    build_claims(Tee::AzureTdx, checked, hw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::hcl::HclHashType;
    use sha2::Digest;

    fn checked(var_data: &[u8]) -> VtpmChecked {
        VtpmChecked {
            hcl: HclReport {
                version: 2,
                report_size: 0,
                request_type: 2,
                status: 0,
                report_type: HclReportType::Tdx,
                hash_type: HclHashType::Sha256,
                hardware_report: vec![0x81; 1024],
                var_data: var_data.to_vec(),
            },
            runtime: serde_json::json!({"vm-configuration": {"tpm-enabled": true}, "user-data": "AB"}),
            ak_jwk: serde_json::json!({"kid": "HCLAkPub"}),
            nonce: b"n".to_vec(),
            pcrs: [(0u32, vec![1u8; 32])].into_iter().collect(),
        }
    }

    fn hw(report_data: &[u8]) -> Claims {
        Claims {
            tee: Tee::Tdx,
            debug: false,
            measurement: "aa".repeat(48),
            report_data: hex::encode(report_data),
            tcb_status: Some("UpToDate".into()),
            advisory_ids: vec!["INTEL-SA-00000".into()],
            snp: None,
            tdx: None,
            sgx: None,
            azure: None,
            sim: None,
            revocation: None,
        }
    }

    /// For TDX the verified TD quote's report_data (not the MACed TDREPORT) must bind the runtime
    /// data.
    #[test]
    fn td_quote_report_data_must_bind_runtime_data() {
        let var = br#"{"keys":[]}"#;
        let mut rd = sha2::Sha256::digest(var).to_vec();
        rd.resize(64, 0);
        let c = build_claims(Tee::AzureTdx, checked(var), hw(&rd)).unwrap();
        assert_eq!(c.tee, Tee::AzureTdx);
        assert_eq!(c.report_data, hex::encode(&rd));
        assert_eq!(c.tcb_status.as_deref(), Some("UpToDate"));
        assert_eq!(c.advisory_ids, vec!["INTEL-SA-00000".to_string()]);
        assert!(c.tdx.is_none() && c.snp.is_none());
        let az = c.azure.unwrap();
        assert_eq!(az.user_data.as_deref(), Some("ab"));
        assert_eq!(az.pcrs["0"], "01".repeat(32));
        assert_eq!(az.nonce, "6e");
        assert_eq!(az.vm_configuration["tpm-enabled"], true);
        assert_eq!(az.hardware["tee"], "tdx");

        rd[3] ^= 1;
        let e = build_claims(Tee::AzureTdx, checked(var), hw(&rd)).unwrap_err();
        assert_eq!(
            crate::error::FailedCheck::failed_check(&e),
            "runtime_data_mismatch"
        );
    }
}
