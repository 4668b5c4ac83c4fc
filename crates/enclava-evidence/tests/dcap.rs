//! DCAP quote verification against the real vectors in `../shared/vectors` (see each MANIFEST.md).
//! Expected values and verification times are the manifests'.

mod common;

use chrono::{DateTime, Utc};
use enclava_evidence::Tee;
use enclava_evidence::dcap::{self, Collateral, DcapError, DcapVerifier};
use enclava_evidence::error::FailedCheck;
use proptest::prelude::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn code<T: std::fmt::Debug>(r: Result<T, DcapError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.failed_check(),
    }
}

// Phala dcap-qvl TDX v4: UpToDate at the end of the collateral window minus 1 s.
const PHALA_TDX_AT: &str = "2025-07-19T10:00:34Z";
const PHALA_TDX_MR_TD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
const PHALA_OUTDATED_AT: &str = "2026-03-20T10:41:14Z";
const PHALA_SGX_AT: &str = "2025-07-19T10:01:17Z";
const GO_TDX_AT: &str = "2023-07-01T01:00:00Z";

fn phala_tdx() -> Option<(Vec<u8>, Collateral)> {
    let quote = common::read("tdx/phala-dcap-qvl/tdx_quote")?;
    let coll = Collateral::from_dcap_qvl_json(&common::read(
        "tdx/phala-dcap-qvl/tdx_quote_collateral.json",
    )?)
    .unwrap();
    Some((quote, coll))
}

fn go_tdx_files() -> Option<Vec<(String, Vec<u8>)>> {
    let names = [
        "sample_tcbInfo_response",
        "sample_qeIdentity_response",
        "pckcrl",
        "rootcrl.der",
        "derived_tcb_info_issuer_chain.pem",
        "derived_qe_identity_issuer_chain.pem",
        "derived_pck_crl_issuer_chain.pem",
    ];
    names
        .iter()
        .map(|n| {
            Some((
                n.to_string(),
                common::read(&format!("tdx/google-go-tdx-guest/{n}"))?,
            ))
        })
        .collect()
}

fn collateral_from(files: &[(String, Vec<u8>)]) -> Result<Collateral, DcapError> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    Collateral::from_files(&refs)
}

#[test]
fn phala_tdx_v4_up_to_date() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    let claims = dcap::verify_tdx(&quote, Some(&coll), t(PHALA_TDX_AT)).unwrap();
    assert_eq!(claims.tee, Tee::Tdx);
    assert_eq!(claims.tcb_status.as_deref(), Some("UpToDate"));
    assert!(claims.advisory_ids.is_empty(), "{:?}", claims.advisory_ids);
    assert_eq!(claims.measurement, PHALA_TDX_MR_TD);
    let tdx = claims.tdx.as_ref().unwrap();
    assert_eq!(tdx.mr_td, PHALA_TDX_MR_TD);
    assert_eq!(tdx.quote_version, 4);
    assert_eq!(tdx.tdx_version, "1.0");
    assert_eq!(tdx.fmspc, "b0c06f000000");
    assert_eq!(tdx.pce_id, "0000");
    assert_eq!(tdx.platform_tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(tdx.qe_tcb_status.as_deref(), Some("UpToDate"));
    // TEE_TCB_SVN[1] (module major version) > 0: the TDX module identity applies.
    assert!(u8::from_str_radix(&tdx.tee_tcb_svn[2..4], 16).unwrap() > 0);
    assert_eq!(tdx.module_tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(tdx.tcb_evaluation_data_number, Some(17));
    assert!(tdx.tee_tcb_svn2.is_none() && tdx.mr_servicetd.is_none());
    assert_eq!(claims.report_data.len(), 128);
    assert!(claims.sgx.is_none() && claims.snp.is_none());
    // Revocation: both Intel CRLs were checked, current at the verification time.
    let rev = claims.revocation.as_ref().unwrap();
    assert!(rev.checked && rev.fresh, "{rev:?}");
    let issuers: Vec<&str> = rev.crls.iter().map(|c| c.issuer.as_str()).collect();
    assert_eq!(issuers[0], "Intel SGX Root CA", "{issuers:?}");
    assert!(issuers[1].starts_with("Intel SGX PCK "), "{issuers:?}");
    assert!(rev.crls.iter().all(|c| c.current && c.sha256.len() == 64));
    // The same quote as SGX is refused.
    assert_eq!(
        code(dcap::verify_sgx(&quote, Some(&coll), t(PHALA_TDX_AT))),
        "unsupported_tee_type"
    );
}

#[test]
fn phala_tdx_collateral_window() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    // Window [2025-06-19T10:32:27Z, 2025-07-19T10:00:35Z].
    assert!(dcap::verify_tdx(&quote, Some(&coll), t("2025-06-19T10:32:27Z")).is_ok());
    assert!(dcap::verify_tdx(&quote, Some(&coll), t("2025-07-19T10:00:35Z")).is_ok());
    let late = dcap::verify_tdx(&quote, Some(&coll), t("2025-07-19T10:16:04Z"));
    assert_eq!(code(late), "collateral_expired");
    let early = dcap::verify_tdx(&quote, Some(&coll), t("2025-06-19T10:00:00Z"));
    assert_eq!(code(early), "collateral_expired");
    // Past the QE identity and TCB info (valid), but past the CRLs' nextUpdate.
    let e = dcap::verify_tdx(&quote, Some(&coll), t("2025-07-19T10:05:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "crl_expired", "{e}");
    assert!(e.to_string().contains("expected"), "{e}");
}

#[test]
fn phala_tdx_without_collateral_is_not_evaluated() {
    let Some((quote, _)) = phala_tdx() else {
        return;
    };
    let claims = dcap::verify_tdx(&quote, None, t(PHALA_TDX_AT)).unwrap();
    assert_eq!(claims.tcb_status.as_deref(), Some(dcap::NOT_EVALUATED));
    assert_eq!(claims.measurement, PHALA_TDX_MR_TD);
    // Nothing was checked for revocation.
    assert_eq!(
        claims.revocation,
        Some(enclava_evidence::RevocationClaims::unchecked())
    );
    let tdx = claims.tdx.unwrap();
    assert_eq!(tdx.platform_tcb_status, None);
    assert_eq!(tdx.fmspc, "b0c06f000000");
}

#[test]
fn phala_tdx_v5_outdated_has_no_tcb_level() {
    let Some(quote) = common::read("tdx/phala-dcap-qvl/tdx_quote_outdated") else {
        return;
    };
    let coll = Collateral::from_dcap_qvl_json(
        &common::read("tdx/phala-dcap-qvl/tdx_quote_outdated_collateral.json").unwrap(),
    )
    .unwrap();
    let e = dcap::verify_tdx(&quote, Some(&coll), t(PHALA_OUTDATED_AT)).unwrap_err();
    assert_eq!(e.failed_check(), "tcb_level_not_found", "{e}");
    // Signatures and chain alone are fine, and the body is TDX 1.5.
    let claims = dcap::verify_tdx(&quote, None, t(PHALA_OUTDATED_AT)).unwrap();
    let tdx = claims.tdx.unwrap();
    assert_eq!(tdx.quote_version, 5);
    assert_eq!(tdx.body_type, 3);
    assert_eq!(tdx.tdx_version, "1.5");
    assert_eq!(tdx.fmspc, "90c06f000000");
    assert_eq!(tdx.tee_tcb_svn2.as_ref().map(String::len), Some(32));
    assert_eq!(tdx.mr_servicetd.as_ref().map(String::len), Some(96));
}

#[test]
fn phala_sgx_configuration_and_sw_hardening_needed() {
    let Some(quote) = common::read("sgx/phala-dcap-qvl/sgx_quote") else {
        return;
    };
    let coll = Collateral::from_dcap_qvl_json(
        &common::read("sgx/phala-dcap-qvl/sgx_quote_collateral.json").unwrap(),
    )
    .unwrap();
    let claims = dcap::verify_sgx(&quote, Some(&coll), t(PHALA_SGX_AT)).unwrap();
    assert_eq!(claims.tee, Tee::Sgx);
    assert_eq!(
        claims.tcb_status.as_deref(),
        Some("ConfigurationAndSWHardeningNeeded")
    );
    assert_eq!(claims.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    let sgx = claims.sgx.as_ref().unwrap();
    assert_eq!(
        sgx.mr_enclave,
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        sgx.mr_signer,
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!(claims.measurement, sgx.mr_enclave);
    let mut rd = b"Hello, world!".to_vec();
    rd.resize(64, 0);
    assert_eq!(claims.report_data, hex::encode(&rd));
    assert_eq!(sgx.fmspc, "00a067110000");
    assert_eq!(sgx.quote_version, 3);
    assert_eq!(sgx.qe_tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(
        sgx.platform_tcb_status.as_deref(),
        Some("ConfigurationAndSWHardeningNeeded")
    );
    assert!(!claims.debug && !sgx.attributes.debug);
    assert!(sgx.attributes.mode64bit);
    // The same quote as TDX is refused.
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&coll), t(PHALA_SGX_AT))),
        "unsupported_tee_type"
    );
    // TDX collateral for an SGX quote: wrong FMSPC / TEE.
    let (_, tdx_coll) = phala_tdx().unwrap();
    let e = dcap::verify_sgx(&quote, Some(&tdx_coll), t(PHALA_TDX_AT)).unwrap_err();
    assert!(
        [
            "missing_collateral",
            "collateral_mismatch",
            "fmspc_mismatch"
        ]
        .contains(&e.failed_check()),
        "{e}"
    );
}

#[test]
fn go_tdx_guest_pcs_files() {
    let Some(quote) = common::read("tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat") else {
        return;
    };
    let files = go_tdx_files().unwrap();
    let coll = collateral_from(&files).unwrap();
    // Quote and chain verify.
    let claims = dcap::verify_tdx(&quote, None, t(GO_TDX_AT)).unwrap();
    assert_eq!(claims.tdx.as_ref().unwrap().fmspc, "50806f000000");
    assert_eq!(claims.tdx.as_ref().unwrap().pce_svn, 11);
    // The full verification finds no TCB level.
    let e = dcap::verify_tdx(&quote, Some(&coll), t(GO_TDX_AT)).unwrap_err();
    assert_eq!(e.failed_check(), "tcb_level_not_found", "{e}");
    // After the window the collateral is expired.
    let e = dcap::verify_tdx(&quote, Some(&coll), t("2053-07-01T00:00:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "collateral_expired", "{e}");
    assert!(e.to_string().contains("TCB info"), "{e}");
    // File order and names do not matter: content does.
    let mut rev: Vec<(String, Vec<u8>)> = files
        .iter()
        .rev()
        .enumerate()
        .map(|(i, (_, b))| (format!("f{i}"), b.clone()))
        .collect();
    let coll2 = collateral_from(&rev).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&coll2), t(GO_TDX_AT))),
        "tcb_level_not_found"
    );
    // The root CA CRL as PEM is recognized too.
    let der = common::read("tdx/google-go-tdx-guest/rootcrl.der").unwrap();
    let pem_crl = pem_encode("X509 CRL", &der);
    for f in rev.iter_mut() {
        if f.1 == der {
            f.1 = pem_crl.clone().into_bytes();
        }
    }
    let coll3 = collateral_from(&rev).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&coll3), t(GO_TDX_AT))),
        "tcb_level_not_found"
    );
    // Issuer chains URL-encoded, as PCS sends them in HTTP headers.
    let encoded: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, b)| {
            if n.ends_with(".pem") {
                (n.clone(), url_encode(b).into_bytes())
            } else {
                (n.clone(), b.clone())
            }
        })
        .collect();
    assert!(
        encoded
            .iter()
            .any(|(_, b)| b.starts_with(b"-----BEGIN%20CERTIFICATE"))
    );
    let coll5 = collateral_from(&encoded).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&coll5), t(GO_TDX_AT))),
        "tcb_level_not_found"
    );
    // Without the PCK CRL, the collateral is incomplete.
    let no_pck_crl: Vec<_> = files
        .iter()
        .filter(|(n, _)| n != "pckcrl")
        .cloned()
        .collect();
    let coll4 = collateral_from(&no_pck_crl).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&coll4), t(GO_TDX_AT))),
        "missing_collateral"
    );
    // Unrecognizable content is an error naming the file.
    let e = collateral_from(&[("junk.bin".to_string(), b"not collateral".to_vec())]).unwrap_err();
    assert_eq!(e.failed_check(), "malformed_collateral");
    assert!(e.to_string().contains("junk.bin"), "{e}");
}

fn url_encode(b: &[u8]) -> String {
    b.iter()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (*c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {tag}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {tag}-----\n"));
    s
}

#[test]
fn go_tdx_guest_v5_quote_and_tcb_info_v5() {
    let Some(quote) = common::read("tdx/google-go-tdx-guest/quote_v5_sample.dat") else {
        return;
    };
    let at = t("2026-02-03T01:00:00Z");
    let claims = dcap::verify_tdx(&quote, None, at).unwrap();
    let tdx = claims.tdx.unwrap();
    assert_eq!(tdx.quote_version, 5);
    assert_eq!(tdx.fmspc, "90c06f000000");
    let tcb_v5 = common::read("tdx/google-go-tdx-guest/sample_tcbinfo_response_v5").unwrap();
    let coll = Collateral::from_files(&[("tcbinfo", &tcb_v5)]).unwrap();
    let info = coll.tcb_info().unwrap();
    assert_eq!(info.id, "TDX");
    assert_eq!(info.fmspc.to_ascii_lowercase(), "90c06f000000");
    assert!(
        info.tdx_module_identities
            .as_ref()
            .is_some_and(|ids| ids.iter().any(|i| i.id == "TDX_03"))
    );
    // Signed by Intel's current TCB Signing certificate (taken from the phala collateral's chain): the
    // signature verifies, and the verification then stops at the missing QE identity.
    let chain = phala_tcb_chain().unwrap();
    let coll =
        Collateral::from_files(&[("tcbinfo", &tcb_v5), ("chain.pem", chain.as_bytes())]).unwrap();
    let e = dcap::verify_tdx(&quote, Some(&coll), at).unwrap_err();
    assert_eq!(e.failed_check(), "missing_collateral", "{e}");
    assert!(e.to_string().contains("QE identity"), "{e}");
}

fn phala_tcb_chain() -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&common::read(
        "tdx/phala-dcap-qvl/tdx_quote_outdated_collateral.json",
    )?)
    .unwrap();
    Some(v["tcb_info_issuer_chain"].as_str().unwrap().to_string())
}

#[test]
fn trustee_tdx_quotes_signature_and_chain() {
    let Some(q4) = common::read("tdx/trustee/tdx_quote_4.dat") else {
        return;
    };
    let expected: serde_json::Value = serde_json::from_slice(
        &common::read("tdx/trustee/parse_tdx_claims_expected.json").unwrap(),
    )
    .unwrap();
    let body = &expected["quote"]["body"];
    let claims = dcap::verify_tdx(&q4, None, t("2024-06-01T00:00:00Z")).unwrap();
    let tdx = claims.tdx.as_ref().unwrap();
    assert_eq!(claims.measurement, body["mr_td"].as_str().unwrap());
    assert_eq!(tdx.mr_td, body["mr_td"].as_str().unwrap());
    assert!(tdx.mr_td.starts_with("705ee938") && tdx.mr_td.ends_with("f031"));
    assert_eq!(tdx.mr_seam, body["mr_seam"].as_str().unwrap());
    assert_eq!(tdx.mr_signer_seam, body["mrsigner_seam"].as_str().unwrap());
    assert_eq!(tdx.rtmr0, body["rtmr_0"].as_str().unwrap());
    assert_eq!(tdx.rtmr1, body["rtmr_1"].as_str().unwrap());
    assert_eq!(tdx.rtmr2, body["rtmr_2"].as_str().unwrap());
    assert_eq!(tdx.rtmr3, body["rtmr_3"].as_str().unwrap());
    assert_eq!(tdx.tee_tcb_svn, body["tcb_svn"].as_str().unwrap());
    assert_eq!(tdx.xfam, body["xfam"].as_str().unwrap());
    assert_eq!(
        tdx.seam_attributes,
        body["seam_attributes"].as_str().unwrap()
    );
    assert_eq!(
        tdx.td_attributes.raw,
        body["td_attributes"].as_str().unwrap()
    );
    assert_eq!(tdx.mr_config_id, body["mr_config_id"].as_str().unwrap());
    assert_eq!(tdx.mr_owner, body["mr_owner"].as_str().unwrap());
    assert_eq!(
        tdx.mr_owner_config,
        body["mr_owner_config"].as_str().unwrap()
    );
    assert_eq!(claims.report_data, body["report_data"].as_str().unwrap());
    let attrs = &expected["td_attributes"];
    assert_eq!(tdx.td_attributes.debug, attrs["debug"].as_bool().unwrap());
    assert_eq!(
        tdx.td_attributes.sept_ve_disable,
        attrs["septve_disable"].as_bool().unwrap()
    );
    assert_eq!(
        tdx.td_attributes.pks,
        attrs["protection_keys"].as_bool().unwrap()
    );
    assert_eq!(tdx.td_attributes.kl, attrs["key_locker"].as_bool().unwrap());
    assert_eq!(
        tdx.td_attributes.perfmon,
        attrs["perfmon"].as_bool().unwrap()
    );
    assert_eq!(claims.debug, attrs["debug"].as_bool().unwrap());
    assert_eq!(tdx.fmspc, "50806f000000");

    let q5 = common::read("tdx/trustee/tdx_quote_5.dat").unwrap();
    let c5 = dcap::verify_tdx(&q5, None, t("2025-06-01T00:00:00Z")).unwrap();
    let t5 = c5.tdx.unwrap();
    assert_eq!(t5.quote_version, 5);
    assert_eq!(t5.fmspc, "90c06f000000");
    assert_eq!(c5.measurement, t5.mr_td);

    let q6 = common::read("tdx/trustee/tdx_quote_6.dat").unwrap();
    let c6 = dcap::verify_tdx(&q6, None, t("2025-11-01T00:00:00Z")).unwrap();
    let t6 = c6.tdx.unwrap();
    assert_eq!(t6.quote_version, 4);
    assert_eq!(t6.fmspc, "00a06d080000");
    assert_eq!(c6.tcb_status.as_deref(), Some("NotEvaluated"));
}

#[test]
fn trustee_sgx_occlum_signature_and_chain() {
    let Some(q) = common::read("sgx/trustee/occlum_quote.dat") else {
        return;
    };
    let claims = dcap::verify_sgx(&q, None, t("2024-06-01T00:00:00Z")).unwrap();
    let sgx = claims.sgx.as_ref().unwrap();
    assert_eq!(
        sgx.mr_enclave,
        "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
    );
    assert_eq!(claims.measurement, sgx.mr_enclave);
    assert!(claims.report_data.starts_with(&hex::encode("test")));
    assert_eq!(sgx.fmspc, "00606a000000");
    assert_eq!(claims.tcb_status.as_deref(), Some("NotEvaluated"));
    assert_eq!(
        code(dcap::verify_tdx(&q, None, t("2024-06-01T00:00:00Z"))),
        "unsupported_tee_type"
    );
}

#[test]
fn trustee_quote6_tcb_info_and_qe_identity_signatures() {
    let Some(q6) = common::read("tdx/trustee/tdx_quote_6.dat") else {
        return;
    };
    let tcb = common::read("tdx/trustee/tcbInfo.json").unwrap();
    let qe = common::read("tdx/trustee/enclaveIdentity.json").unwrap();
    let chain = phala_tcb_chain().unwrap();
    let at = t("2025-11-01T00:00:00Z");
    let coll = Collateral::from_files(&[("a", &tcb), ("b", &qe), ("c", chain.as_bytes())]).unwrap();
    // Both signatures verify; the verification stops at the missing root CA CRL.
    let e = dcap::verify_tdx(&q6, Some(&coll), at).unwrap_err();
    assert_eq!(e.failed_check(), "missing_collateral", "{e}");
    assert!(e.to_string().contains("Root CA CRL"), "{e}");
    assert_eq!(coll.tcb_info().unwrap().fmspc, "00A06D080000");
    // One changed character inside the signed tcbInfo object breaks the signature.
    let text = String::from_utf8(tcb.clone()).unwrap();
    let bad = text
        .replacen(
            "\"tcbEvaluationDataNumber\":17",
            "\"tcbEvaluationDataNumber\":18",
            1,
        )
        .into_bytes();
    assert_ne!(bad, tcb);
    let coll = Collateral::from_files(&[("a", &bad), ("b", &qe), ("c", chain.as_bytes())]).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&q6, Some(&coll), at)),
        "collateral_signature"
    );
    // Same for the QE identity.
    let text = String::from_utf8(qe.clone()).unwrap();
    let bad = text
        .replacen("\"isvprodid\":2", "\"isvprodid\":3", 1)
        .into_bytes();
    assert_ne!(bad, qe);
    let coll =
        Collateral::from_files(&[("a", &tcb), ("b", &bad), ("c", chain.as_bytes())]).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&q6, Some(&coll), at)),
        "collateral_signature"
    );
    // Without the signing chain nothing can be checked.
    let coll = Collateral::from_files(&[("a", &tcb), ("b", &qe)]).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&q6, Some(&coll), at)),
        "missing_collateral"
    );
}

#[test]
fn tampered_collateral_is_rejected() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    let json: serde_json::Value = serde_json::from_slice(
        &common::read("tdx/phala-dcap-qvl/tdx_quote_collateral.json").unwrap(),
    )
    .unwrap();
    let at = t(PHALA_TDX_AT);
    let with = |field: &str, value: serde_json::Value| {
        let mut j = json.clone();
        j[field] = value;
        Collateral::from_dcap_qvl_json(&serde_json::to_vec(&j).unwrap())
    };
    // TCB info edited (status of every level made UpToDate would need a new signature).
    let tcb = json["tcb_info"]
        .as_str()
        .unwrap()
        .replacen("UpToDate", "OutOfDate", 1);
    assert_eq!(
        code(dcap::verify_tdx(
            &quote,
            Some(&with("tcb_info", tcb.into()).unwrap()),
            at
        )),
        "collateral_signature"
    );
    let qe =
        json["qe_identity"]
            .as_str()
            .unwrap()
            .replacen("\"isvprodid\":2", "\"isvprodid\":3", 1);
    assert_eq!(
        code(dcap::verify_tdx(
            &quote,
            Some(&with("qe_identity", qe.into()).unwrap()),
            at
        )),
        "collateral_signature"
    );
    // A flipped bit in a CRL's signed part.
    for field in ["root_ca_crl", "pck_crl"] {
        let mut crl = hex::decode(json[field].as_str().unwrap()).unwrap();
        let i = crl.len() / 3;
        crl[i] ^= 0x01;
        match with(field, hex::encode(&crl).into()) {
            Err(e) => assert_eq!(e.failed_check(), "malformed_collateral"),
            Ok(c) => {
                let e = dcap::verify_tdx(&quote, Some(&c), at).unwrap_err();
                assert!(
                    ["crl_signature", "missing_collateral"].contains(&e.failed_check()),
                    "{field}: {e}"
                );
            }
        }
    }
    // The PCK CRL swapped for the root CRL: no PCK CRL for this quote's CA.
    let c = with("pck_crl", json["root_ca_crl"].clone()).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&c), at)),
        "missing_collateral"
    );
    // The signature of the TCB info replaced by the QE identity's.
    let c = with("tcb_info_signature", json["qe_identity_signature"].clone()).unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&c), at)),
        "collateral_signature"
    );
    // The TCB signing chain replaced by the PCK CRL issuer chain: wrong signer.
    let c = with(
        "tcb_info_issuer_chain",
        json["pck_crl_issuer_chain"].clone(),
    )
    .unwrap();
    assert_eq!(
        code(dcap::verify_tdx(&quote, Some(&c), at)),
        "collateral_signature"
    );
    // Another platform's TCB info (SGX, other FMSPC): signature fine, wrong TEE.
    let sgx: serde_json::Value = serde_json::from_slice(
        &common::read("sgx/phala-dcap-qvl/sgx_quote_collateral.json").unwrap(),
    )
    .unwrap();
    let mut j = json.clone();
    j["tcb_info"] = sgx["tcb_info"].clone();
    j["tcb_info_signature"] = sgx["tcb_info_signature"].clone();
    let c = Collateral::from_dcap_qvl_json(&serde_json::to_vec(&j).unwrap()).unwrap();
    let e = dcap::verify_tdx(&quote, Some(&c), t("2025-07-19T10:00:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "collateral_mismatch", "{e}");
    // And the untouched collateral still verifies (the test is not vacuous).
    assert!(dcap::verify_tdx(&quote, Some(&coll), at).is_ok());
}

/// Offsets inside a v4 TDX quote with QE report certification data.
struct V4Layout {
    qe_report: usize,
    qe_report_sig: usize,
    auth_len: usize,
    pem: usize,
}

fn v4_layout(q: &[u8]) -> V4Layout {
    let sig_data = 48 + 584 + 4;
    let cert6 = sig_data + 128;
    let qe_report = cert6 + 6;
    let qe_report_sig = qe_report + 384;
    let auth_len = qe_report_sig + 64;
    let n = u16::from_le_bytes([q[auth_len], q[auth_len + 1]]) as usize;
    let pem = auth_len + 2 + n + 6;
    V4Layout {
        qe_report,
        qe_report_sig,
        auth_len,
        pem,
    }
}

#[test]
fn every_byte_flip_in_signed_region_fails() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    let at = t(PHALA_TDX_AT);
    for i in 0..48 + 584 {
        let mut q = quote.clone();
        q[i] ^= 0x01;
        let r = dcap::verify_tdx(&q, None, at);
        assert!(r.is_err(), "flip at {i} accepted");
    }
    // With collateral too, a sample of positions (every 7th byte).
    for i in (0..48 + 584).step_by(7) {
        let mut q = quote.clone();
        q[i] ^= 0x80;
        assert!(
            dcap::verify_tdx(&q, Some(&coll), at).is_err(),
            "flip at {i} accepted"
        );
    }
    // Body flips specifically fail the quote signature.
    let mut q = quote.clone();
    q[48 + 136] ^= 0x01; // MRTD
    assert_eq!(code(dcap::verify_tdx(&q, None, at)), "quote_signature");
}

#[test]
fn flips_in_signatures_and_qe_report_fail() {
    let Some((quote, _)) = phala_tdx() else {
        return;
    };
    let at = t(PHALA_TDX_AT);
    let l = v4_layout(&quote);
    let flip = |i: usize| {
        let mut q = quote.clone();
        q[i] ^= 0x01;
        dcap::verify_tdx(&q, None, at)
    };
    // Quote signature r and s.
    assert_eq!(code(flip(48 + 584 + 4)), "quote_signature");
    assert_eq!(code(flip(48 + 584 + 4 + 63)), "quote_signature");
    // Attestation key: the QE report data no longer binds it.
    assert_eq!(code(flip(48 + 584 + 4 + 64)), "qe_report_data_mismatch");
    // Every byte of the QE report and its signature.
    for i in l.qe_report..l.qe_report_sig + 64 {
        assert_eq!(code(flip(i)), "qe_report_signature", "flip at {i}");
    }
    // QE auth data.
    let n = u16::from_le_bytes([quote[l.auth_len], quote[l.auth_len + 1]]) as usize;
    if n > 0 {
        assert_eq!(code(flip(l.auth_len + 2)), "qe_report_data_mismatch");
    }
    // Certification data type.
    assert_eq!(
        code(flip(48 + 584 + 4 + 128)),
        "unsupported_certification_data"
    );
}

#[test]
fn every_truncation_fails_without_panic() {
    for rel in [
        "tdx/phala-dcap-qvl/tdx_quote",
        "tdx/phala-dcap-qvl/tdx_quote_outdated",
        "tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat",
        "tdx/trustee/tdx_quote_6.dat",
        "sgx/phala-dcap-qvl/sgx_quote",
    ] {
        let Some(quote) = common::read(rel) else {
            return;
        };
        let at = t(PHALA_TDX_AT);
        // Some producers pad quotes; the padding is not part of the quote.
        let end = dcap::parse_quote(&quote).unwrap().len;
        assert!(end <= quote.len() && end > 1000);
        for len in end..quote.len() {
            assert_eq!(
                dcap::parse_quote(&quote[..len]).unwrap(),
                dcap::parse_quote(&quote).unwrap()
            );
        }
        for len in 0..end {
            let q = &quote[..len];
            assert!(dcap::parse_quote(q).is_err(), "{rel}: prefix {len} parses");
            assert!(
                dcap::verify_tdx(q, None, at).is_err(),
                "{rel}: prefix {len} verifies"
            );
            assert!(
                dcap::verify_sgx(q, None, at).is_err(),
                "{rel}: prefix {len} verifies"
            );
        }
    }
}

fn replace_pck_chain(quote: &[u8], pem: &[u8]) -> Vec<u8> {
    let l = v4_layout(quote);
    let old_len = u32::from_le_bytes(quote[l.pem - 4..l.pem].try_into().unwrap()) as usize;
    let delta = pem.len() as i64 - old_len as i64;
    let mut q = quote[..l.pem].to_vec();
    q.extend_from_slice(pem);
    q.extend_from_slice(&quote[l.pem + old_len..]);
    let fix = |q: &mut Vec<u8>, at: usize| {
        let v = u32::from_le_bytes(q[at..at + 4].try_into().unwrap()) as i64 + delta;
        q[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    fix(&mut q, l.pem - 4); // type 5 size
    fix(&mut q, 48 + 584 + 4 + 128 + 2); // type 6 size
    fix(&mut q, 48 + 584); // signature data length
    q
}

fn pem_blocks(pem: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(pem);
    s.split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN"))
        .map(|b| b.trim_start().to_string() + "\n")
        .collect()
}

#[test]
fn swapped_pck_chains_fail() {
    let Some((quote, _)) = phala_tdx() else {
        return;
    };
    let at = t(PHALA_TDX_AT);
    let l = v4_layout(&quote);
    let own = quote[l.pem..].to_vec();
    // Sanity: re-inserting its own chain still verifies (the splicing is right).
    let same = replace_pck_chain(&quote, &own);
    assert!(dcap::verify_tdx(&same, None, at).is_ok());
    // Another platform's (valid, Intel-issued) PCK chain: the QE report signature does not verify.
    let other = common::read("tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat").unwrap();
    let lo = v4_layout(&other);
    let swapped = replace_pck_chain(&quote, &other[lo.pem..]);
    assert_eq!(
        code(dcap::verify_tdx(&swapped, None, at)),
        "qe_report_signature"
    );
    // The chain in the wrong order, without its CA, or with the TCB signing chain instead.
    let blocks = pem_blocks(&own);
    assert_eq!(blocks.len(), 3);
    let reordered = format!("{}{}{}", blocks[1], blocks[0], blocks[2]);
    let e =
        dcap::verify_tdx(&replace_pck_chain(&quote, reordered.as_bytes()), None, at).unwrap_err();
    assert!(
        ["cert_chain_signature", "untrusted_root"].contains(&e.failed_check()),
        "{e}"
    );
    let no_ca = format!("{}{}", blocks[0], blocks[2]);
    let e = dcap::verify_tdx(&replace_pck_chain(&quote, no_ca.as_bytes()), None, at).unwrap_err();
    assert_eq!(e.failed_check(), "cert_chain_signature", "{e}");
    let tcb_chain = phala_tcb_chain().unwrap();
    let e =
        dcap::verify_tdx(&replace_pck_chain(&quote, tcb_chain.as_bytes()), None, at).unwrap_err();
    assert!(
        ["cert_chain_signature", "malformed_certificate"].contains(&e.failed_check()),
        "{e}"
    );
    // Garbage instead of PEM.
    let e = dcap::verify_tdx(&replace_pck_chain(&quote, b"garbage"), None, at).unwrap_err();
    assert_eq!(e.failed_check(), "malformed_certificate", "{e}");
}

#[test]
fn certificates_outside_validity_fail() {
    let Some((quote, _)) = phala_tdx() else {
        return;
    };
    let e = dcap::verify_tdx(&quote, None, t("2017-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "certificate_expired", "{e}");
    let e = dcap::verify_tdx(&quote, None, t("2060-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "certificate_expired", "{e}");
}

#[test]
fn verifier_caches_and_agrees_with_cold_path() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    let at = t(PHALA_TDX_AT);
    let v = DcapVerifier::new();
    assert_eq!(v.cached_signatures(), 0);
    let cold = dcap::verify_tdx(&quote, Some(&coll), at).unwrap();
    let warm1 = v.verify_tdx(&quote, Some(&coll), at).unwrap();
    let n = v.cached_signatures();
    assert!(n >= 5, "cached {n}");
    let warm2 = v.verify_tdx(&quote, Some(&coll), at).unwrap();
    assert_eq!(v.cached_signatures(), n);
    assert_eq!(cold, warm1);
    assert_eq!(cold, warm2);
    // The cache never turns a failure into a success: time and tampering are still checked.
    assert_eq!(
        code(v.verify_tdx(&quote, Some(&coll), t("2025-08-01T00:00:00Z"))),
        "collateral_expired"
    );
    let mut q = quote.clone();
    q[60] ^= 1;
    assert_eq!(code(v.verify_tdx(&q, Some(&coll), at)), "quote_signature");
    let Some(sq) = common::read("sgx/phala-dcap-qvl/sgx_quote") else {
        return;
    };
    let sc = Collateral::from_dcap_qvl_json(
        &common::read("sgx/phala-dcap-qvl/sgx_quote_collateral.json").unwrap(),
    )
    .unwrap();
    assert_eq!(
        v.verify_sgx(&sq, Some(&sc), t(PHALA_SGX_AT)).unwrap(),
        dcap::verify_sgx(&sq, Some(&sc), t(PHALA_SGX_AT)).unwrap()
    );
}

#[test]
fn claims_serialize_snake_case_lower_hex() {
    let Some((quote, coll)) = phala_tdx() else {
        return;
    };
    let claims = dcap::verify_tdx(&quote, Some(&coll), t(PHALA_TDX_AT)).unwrap();
    let v = serde_json::to_value(&claims).unwrap();
    let tdx = &v["tdx"];
    for k in [
        "mr_td",
        "rtmr0",
        "rtmr3",
        "mr_config_id",
        "mr_seam",
        "tee_tcb_svn",
        "fmspc",
        "qe_tcb_status",
        "tcb_date",
    ] {
        assert!(tdx.get(k).is_some(), "missing {k}");
    }
    assert_eq!(tdx["td_attributes"]["raw"].as_str().unwrap().len(), 16);
    let s = serde_json::to_string(&claims).unwrap();
    let back: enclava_evidence::Claims = serde_json::from_str(&s).unwrap();
    assert_eq!(back, claims);
    assert_eq!(claims.measurement, claims.measurement.to_lowercase());
}

#[test]
fn fuzz_regressions_and_collateral_garbage() {
    // Collateral loaders never panic on truncations of the real files.
    let Some(json) = common::read("tdx/phala-dcap-qvl/tdx_quote_collateral.json") else {
        return;
    };
    for len in (0..json.len()).step_by(97) {
        let _ = Collateral::from_dcap_qvl_json(&json[..len]);
        let _ = Collateral::from_files(&[("x", &json[..len])]);
    }
    for (name, bytes) in go_tdx_files().unwrap() {
        for len in 0..bytes.len() {
            let _ = Collateral::from_files(&[(name.as_str(), &bytes[..len])]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_mutations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let Some((quote, coll)) = phala_tdx() else { return Ok(()) };
        let mut q = quote.clone();
        for (i, b) in &edits {
            let i = i.index(q.len());
            q[i] = *b;
        }
        if truncate {
            q.truncate(cut.index(q.len()));
        }
        let at = t(PHALA_TDX_AT);
        let r = dcap::verify_tdx(&q, Some(&coll), at);
        if q != quote {
            // Any change to the header and body must fail; other changes may hit unsigned padding.
            let signed_changed = q.len() < 632 || q[..632] != quote[..632];
            if signed_changed {
                prop_assert!(r.is_err());
            }
        }
        let _ = dcap::verify_sgx(&q, None, at);
        let _ = dcap::parse_quote(&q);
    }

    #[test]
    fn random_collateral_mutations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let Some(json) = common::read("tdx/phala-dcap-qvl/tdx_quote_collateral.json") else { return Ok(()) };
        let mut j = json.clone();
        for (i, b) in &edits {
            let i = i.index(j.len());
            j[i] = *b;
        }
        if let Ok(c) = Collateral::from_dcap_qvl_json(&j) {
            let quote = common::read("tdx/phala-dcap-qvl/tdx_quote").unwrap();
            let _ = dcap::verify_tdx(&quote, Some(&c), t(PHALA_TDX_AT));
            let _ = c.tcb_info();
            let _ = c.qe_identity();
        }
        let _ = Collateral::from_files(&[("x", &j)]);
    }
}

#[test]
fn dcap_qvl_json_with_byte_arrays() {
    // serde's default encoding of QuoteCollateralV3 (Vec<u8> as arrays) is accepted too.
    let Some((quote, _)) = phala_tdx() else {
        return;
    };
    let mut j: serde_json::Value = serde_json::from_slice(
        &common::read("tdx/phala-dcap-qvl/tdx_quote_collateral.json").unwrap(),
    )
    .unwrap();
    for field in [
        "root_ca_crl",
        "pck_crl",
        "tcb_info_signature",
        "qe_identity_signature",
    ] {
        let bytes = hex::decode(j[field].as_str().unwrap()).unwrap();
        j[field] = serde_json::Value::from(bytes);
    }
    let c = Collateral::from_dcap_qvl_json(&serde_json::to_vec(&j).unwrap()).unwrap();
    let claims = dcap::verify_tdx(&quote, Some(&c), t(PHALA_TDX_AT)).unwrap();
    assert_eq!(claims.tcb_status.as_deref(), Some("UpToDate"));
    // CRLs as PEM strings.
    let mut p = j.clone();
    for field in ["root_ca_crl", "pck_crl"] {
        let der: Vec<u8> = serde_json::from_value(p[field].clone()).unwrap();
        p[field] = serde_json::Value::from(pem_encode("X509 CRL", &der));
    }
    let c = Collateral::from_dcap_qvl_json(&serde_json::to_vec(&p).unwrap()).unwrap();
    let claims = dcap::verify_tdx(&quote, Some(&c), t(PHALA_TDX_AT)).unwrap();
    assert_eq!(claims.tcb_status.as_deref(), Some("UpToDate"));
    // A byte out of range is malformed.
    j["pck_crl"][0] = serde_json::Value::from(256);
    let e = Collateral::from_dcap_qvl_json(&serde_json::to_vec(&j).unwrap()).unwrap_err();
    assert_eq!(e.failed_check(), "malformed_collateral");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sgx_mutations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let Some(quote) = common::read("sgx/phala-dcap-qvl/sgx_quote") else { return Ok(()) };
        let coll = Collateral::from_dcap_qvl_json(
            &common::read("sgx/phala-dcap-qvl/sgx_quote_collateral.json").unwrap(),
        )
        .unwrap();
        let mut q = quote.clone();
        for (i, b) in &edits {
            let i = i.index(q.len());
            q[i] = *b;
        }
        let r = dcap::verify_sgx(&q, Some(&coll), t(PHALA_SGX_AT));
        // Header and body (48 + 384 bytes) are signed.
        if q[..432] != quote[..432] {
            prop_assert!(r.is_err());
        }
        let _ = dcap::verify_tdx(&q, None, t(PHALA_SGX_AT));
    }
}

#[test]
fn every_byte_flip_in_signed_region_fails_sgx_and_v5() {
    let Some(sgx) = common::read("sgx/phala-dcap-qvl/sgx_quote") else {
        return;
    };
    let at = t(PHALA_SGX_AT);
    assert!(dcap::verify_sgx(&sgx, None, at).is_ok());
    // SGX v3: header (48) and report body (384).
    for i in 0..48 + 384 {
        let mut q = sgx.clone();
        q[i] ^= 0x01;
        assert!(
            dcap::verify_sgx(&q, None, at).is_err(),
            "SGX flip at {i} accepted"
        );
    }
    // TDX v5: header, body type and size, TDX 1.5 body (48 + 6 + 648).
    let v5 = common::read("tdx/phala-dcap-qvl/tdx_quote_outdated").unwrap();
    let at = t(PHALA_OUTDATED_AT);
    assert!(dcap::verify_tdx(&v5, None, at).is_ok());
    assert_eq!(dcap::parse_quote(&v5).unwrap().signed.len(), 48 + 6 + 648);
    for i in 0..48 + 6 + 648 {
        let mut q = v5.clone();
        q[i] ^= 0x01;
        assert!(
            dcap::verify_tdx(&q, None, at).is_err(),
            "v5 flip at {i} accepted"
        );
    }
}
