//! Step (c), the evidence half: collect evidence over the report data and build the native
//! attestation request.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use enclava_attester::{Attester, SimAttester, Tee};
use serde_json::{Value, json};

use crate::error::EnclaveError;
use crate::keys::REPORT_DATA_LEN;

/// Which TEE to collect evidence from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeeChoice {
    /// The hardware this machine has (Azure vTPM, configfs-tsm, /dev/sev-guest); never the
    /// simulator.
    Auto,
    /// The simulator: its evidence names the workload measurement as the TEE measurement and is
    /// signed with a published key, so it proves nothing (development only).
    Sim,
}

/// Collected evidence, ready for the native attestation route.
#[derive(Debug, Clone)]
pub struct CollectedEvidence {
    pub tee: Tee,
    pub evidence: Vec<u8>,
    /// PEM certificates that came with the evidence (SNP: VCEK/VLEK, ASK, ARK).
    pub certs_pem: String,
}

/// Collects evidence binding `report_data`. With [`TeeChoice::Sim`] the simulated TEE measurement
/// is the workload measurement; on hardware the workload measurement travels in the runtime data.
pub fn collect(
    choice: TeeChoice,
    root: &Path,
    report_data: &[u8; REPORT_DATA_LEN],
    workload_measurement: &[u8; 48],
) -> Result<CollectedEvidence, EnclaveError> {
    let mut attester: Box<dyn Attester> = match choice {
        TeeChoice::Sim => Box::new(SimAttester::new(*workload_measurement)),
        TeeChoice::Auto => enclava_attester::open(root, None)
            .map_err(|e| EnclaveError::Evidence(format!("{e} (use --tee sim for development)")))?,
    };
    let ev = attester
        .evidence(report_data)
        .map_err(|e| EnclaveError::Evidence(e.to_string()))?;
    let mut certs_pem = String::new();
    for der in &ev.endorsements {
        certs_pem.push_str(&pem_certificate(der));
    }
    match ev.tee {
        Tee::Sim | Tee::Sample | Tee::Snp | Tee::Tdx => Ok(CollectedEvidence {
            tee: ev.tee,
            evidence: ev.bytes,
            certs_pem,
        }),
        Tee::AzureSnp => {
            let mut az = ev.azure.ok_or_else(|| {
                EnclaveError::Evidence("the vTPM attester returned no Azure evidence".into())
            })?;
            if az.certs_der.is_empty() {
                az.certs_der = fetch_azure_vcek(AZURE_THIM_URL)?;
            }
            Ok(CollectedEvidence {
                tee: Tee::AzureSnp,
                evidence: azure_evidence_json(&az).into_bytes(),
                certs_pem: String::new(),
            })
        }
        other => Err(EnclaveError::Evidence(format!(
            "evidence of type {other} cannot be sent by this version (supported: snp, tdx, azure-snp, sim)"
        ))),
    }
}

/// The Azure instance metadata endpoint that serves the VM's VCEK and its chain.
pub const AZURE_THIM_URL: &str = "http://169.254.169.254/metadata/THIM/amd/certification";

/// The VCEK and chain (DER) of this Azure VM from the instance metadata service
/// (`{"vcekCert": PEM, "certificateChain": PEM}`). Link-local, plain HTTP, as Azure serves it; the
/// certificates are verified against the pinned AMD roots by the attestation service anyway.
pub fn fetch_azure_vcek(url: &str) -> Result<Vec<Vec<u8>>, EnclaveError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(5))
        .redirects(0)
        .build();
    let v: Value = agent
        .get(url)
        .set("Metadata", "true")
        .call()
        .map_err(|e| {
            EnclaveError::Evidence(format!(
                "cannot fetch the VCEK from the Azure instance metadata service ({url}): {e}"
            ))
        })?
        .into_json()
        .map_err(|e| {
            EnclaveError::Evidence(format!(
                "the instance metadata VCEK answer is not JSON: {e}"
            ))
        })?;
    let mut pem = String::new();
    for field in ["vcekCert", "certificateChain"] {
        if let Some(p) = v.get(field).and_then(Value::as_str) {
            pem.push_str(p);
            pem.push('\n');
        }
    }
    enclava_evidence::azure::certs_from_pem(pem.as_bytes()).map_err(|e| {
        EnclaveError::Evidence(format!(
            "the instance metadata answer holds no usable VCEK: {e}"
        ))
    })
}

/// Confidential Containers `az-snp-vtpm` evidence JSON (what the native route's `azure-snp`
/// accepts): `{version, tpm_quote: {signature, message, pcrs} (hex), hcl_report (base64),
/// vcek (PEM)}`.
pub fn azure_evidence_json(ev: &enclava_evidence::azure::AzureEvidence) -> String {
    let mut vcek = String::new();
    for der in &ev.certs_der {
        vcek.push_str(&pem_certificate(der));
    }
    let mut v = json!({
        "version": ev.version,
        "tpm_quote": {
            "signature": hex::encode(&ev.tpm_quote.signature),
            "message": hex::encode(&ev.tpm_quote.message),
            "pcrs": ev.tpm_quote.pcrs.iter().map(hex::encode).collect::<Vec<_>>(),
        },
        "hcl_report": STANDARD.encode(&ev.hcl_report),
        "vcek": vcek,
    });
    if let (Some(q), Some(o)) = (&ev.td_quote, v.as_object_mut()) {
        o.insert("td_quote".into(), Value::String(STANDARD.encode(q)));
    }
    v.to_string()
}

fn pem_certificate(der: &[u8]) -> String {
    enclava_evidence::pem::encode("CERTIFICATE", der)
}

/// The native attestation request body: `{tee, evidence, certs?, runtime_data: {data, dataType:
/// "JSON"}, nonce}`.
pub fn native_request(ev: &CollectedEvidence, runtime_data: &[u8], nonce: &str) -> Value {
    let mut body = json!({
        "tee": ev.tee.to_string(),
        "evidence": STANDARD.encode(&ev.evidence),
        "runtime_data": {"data": URL_SAFE_NO_PAD.encode(runtime_data), "dataType": "JSON"},
        "nonce": nonce,
    });
    if !ev.certs_pem.is_empty()
        && let Some(o) = body.as_object_mut()
    {
        o.insert("certs".into(), Value::String(ev.certs_pem.clone()));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_evidence_carries_measurement_and_report_data() {
        let rd = [5u8; 64];
        let m = [6u8; 48];
        let ev = collect(TeeChoice::Sim, Path::new("/"), &rd, &m).unwrap();
        assert_eq!(ev.tee, Tee::Sim);
        let claims = enclava_evidence::sim::verify(&ev.evidence, chrono::Utc::now()).unwrap();
        assert_eq!(claims.measurement, hex::encode(m));
        assert_eq!(claims.report_data, hex::encode(rd));
        let body = native_request(&ev, b"{\"nonce\":\"n\"}", "n");
        assert_eq!(body["tee"], "sim");
        assert_eq!(body["nonce"], "n");
        assert_eq!(body["runtime_data"]["dataType"], "JSON");
        assert!(body.get("certs").is_none());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(body["runtime_data"]["data"].as_str().unwrap())
                .unwrap(),
            b"{\"nonce\":\"n\"}"
        );
    }

    #[test]
    fn auto_never_picks_the_simulator() {
        let dir = tempfile::tempdir().unwrap();
        let e = collect(TeeChoice::Auto, dir.path(), &[0; 64], &[0; 48]).unwrap_err();
        assert!(matches!(e, EnclaveError::Evidence(_)), "{e}");
        assert!(e.to_string().contains("--tee sim"), "{e}");
    }

    #[test]
    fn azure_evidence_round_trips_through_the_coco_json() {
        use enclava_evidence::azure::{AzureEvidence, TpmQuote};
        let ev = AzureEvidence {
            version: 2,
            hcl_report: (0..=255u8).cycle().take(2600).collect(),
            tpm_quote: TpmQuote {
                message: vec![1, 2, 3, 0xff],
                signature: vec![9; 256],
                pcrs: vec![vec![0; 32], vec![0xaa; 32]],
            },
            certs_der: vec![vec![0x30, 0x03, 0x02, 0x01, 0x01]],
            td_quote: None,
        };
        let json = azure_evidence_json(&ev);
        let back = AzureEvidence::from_coco_json(json.as_bytes()).unwrap();
        assert_eq!(back, ev);
        let with_td = AzureEvidence {
            td_quote: Some(vec![7; 100]),
            ..ev
        };
        let back = AzureEvidence::from_coco_json(azure_evidence_json(&with_td).as_bytes()).unwrap();
        assert_eq!(back, with_td);
    }

    #[test]
    fn azure_vcek_fetch_fails_cleanly_without_the_metadata_service() {
        // A closed loopback port stands in for a machine that is not an Azure VM.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/metadata/THIM/amd/certification",
            l.local_addr().unwrap()
        );
        drop(l);
        let e = fetch_azure_vcek(&url).unwrap_err();
        assert!(matches!(e, EnclaveError::Evidence(_)), "{e}");
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn pem_lines() {
        let p = pem_certificate(&[1u8; 100]);
        assert!(p.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }
}
