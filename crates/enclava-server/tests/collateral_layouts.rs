//! Evidence and collateral as they come, through the real server over HTTPS: a VCEK chain with
//! explanatory text before its certificates on `/attest/SevSnpVm`, and collateral directories
//! whose certificates are separate DER and PEM files among unrelated files on `/attest/TdxVm` and
//! `/attest/SgxEnclave`. The layouts are built from ../shared/vectors in temporary directories.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use common::{Resp, TestServer, put_policy, snp_without_revocation, start_with};
use enclava_server::PartialConfig;
use enclava_server::attest::{AttestationSettings, DirCollateral};
use enclava_testvectors::layouts;
use enclava_token::{Expectations, Jwks};
use serde_json::{Value, json};

fn read(rel: &str) -> Option<Vec<u8>> {
    enclava_testvectors::read(rel)
}

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn server(at: &str, collateral: Option<std::path::PathBuf>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some(at.into()),
            collateral_dir: collateral,
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

fn attest(s: &TestServer, ty: &str, body: &Value) -> Resp {
    s.post(&format!("/attest/{ty}?api-version=2022-08-01"), None, body)
}

fn claims(s: &TestServer, r: &Resp, at: &str) -> serde_json::Map<String, Value> {
    assert_eq!(r.status, 200, "{}", r.text);
    let jwks: Jwks = serde_json::from_value(s.get("/certs/", None).body).unwrap();
    enclava_token::verify(
        r.body["token"].as_str().unwrap(),
        &jwks,
        &Expectations::new(s.server.base_url.clone(), t(at)),
    )
    .unwrap()
    .claims
}

#[test]
fn sev_snp_vm_accepts_explanatory_text_before_the_chain() {
    let (Some(report), Some(vcek), Some(ask_ark)) = (
        read("sev-snp/trustee/test-report.bin"),
        read("sev-snp/trustee/test-vcek.der"),
        read("sev-snp/google-go-sev-guest/ask_ark_milan.pem"),
    ) else {
        return;
    };
    let at = "2025-06-01T00:00:00Z";
    let s = server(at, None);
    let admin = s.admin_token();
    assert_eq!(
        put_policy(&s, &admin, &snp_without_revocation()).status,
        200
    );
    // As OpenSSL prints a chain: text before each certificate (RFC 7468 section 2).
    let chain = format!(
        "{}{}",
        layouts::with_explanatory_text(&layouts::pem_of(&vcek)),
        layouts::with_explanatory_text(std::str::from_utf8(&ask_ark).unwrap())
    );
    let body = |chain: &str| {
        let inner = json!({"SnpReport": b64u(&report), "VcekCertChain": b64u(chain.as_bytes())});
        json!({"report": b64u(inner.to_string().as_bytes())})
    };
    // Before: 400 "VcekCertChain ... not a DER SEQUENCE".
    let r = attest(&s, "SevSnpVm", &body(&chain));
    let c = claims(&s, &r, at);
    assert_eq!(
        c["x-ms-sevsnpvm-launchmeasurement"],
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );
    // Strict inside the blocks: bad base64 and a mismatched END label are client errors.
    for (broken, why) in [
        (chain.replacen("MII", "M*I", 1), "not base64"),
        (
            chain.replacen("-----END CERTIFICATE-----", "-----END X509 CRL-----", 1),
            "-----END X509 CRL-----",
        ),
    ] {
        let r = attest(&s, "SevSnpVm", &body(&broken));
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.text.contains("VcekCertChain") && r.text.contains(why),
            "{why}: {}",
            r.text
        );
    }
}

/// The vectors' dcap-qvl collateral split into separate PCS files, in `{dir}/{sub}` (flat when
/// `sub` is empty).
fn split_dir(collateral: &str, quote: &[u8], sub: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join(sub);
    std::fs::create_dir_all(&target).unwrap();
    layouts::split_dcap_qvl(&read(collateral).unwrap(), quote, &target).unwrap();
    d
}

#[test]
fn tdx_vm_with_separate_certificate_files() {
    let Some(quote) = read("tdx/phala-dcap-qvl/tdx_quote") else {
        return;
    };
    let at = "2025-07-19T10:00:34Z";
    let fmspc = DirCollateral::fmspc_of(&quote).unwrap();
    // The documented per-FMSPC layout and a flat directory, as caching tools leave it.
    for sub in [format!("tdx/{fmspc}"), String::new()] {
        let coll = split_dir("tdx/phala-dcap-qvl/tdx_quote_collateral.json", &quote, &sub);
        let s = server(at, Some(coll.path().to_path_buf()));
        let r = attest(&s, "TdxVm", &json!({"quote": b64u(&quote)}));
        let c = claims(&s, &r, at);
        assert_eq!(c["attester_tcb_status"], "UpToDate", "{sub}");
        assert_eq!(
            c["tdx_mrtd"],
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
        );
    }
    // Corrupt collateral is not used (logged, naming the file): the TCB is not evaluated.
    let coll = split_dir("tdx/phala-dcap-qvl/tdx_quote_collateral.json", &quote, "");
    let p = coll.path().join("tcb_signing.pem");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("MII", "M*I", 1)).unwrap();
    let s = server(at, Some(coll.path().to_path_buf()));
    let r = attest(&s, "TdxVm", &json!({"quote": b64u(&quote)}));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("tcb_not_evaluated"), "{}", r.text);
}

#[test]
fn sgx_enclave_with_separate_certificate_files() {
    let Some(quote) = read("sgx/phala-dcap-qvl/sgx_quote") else {
        return;
    };
    let at = "2025-07-19T10:01:17Z";
    let fmspc = DirCollateral::fmspc_of(&quote).unwrap();
    let coll = split_dir(
        "sgx/phala-dcap-qvl/sgx_quote_collateral.json",
        &quote,
        &format!("sgx/{fmspc}"),
    );
    let s = server(at, Some(coll.path().to_path_buf()));
    let r = attest(&s, "SgxEnclave", &json!({"quote": b64u(&quote)}));
    let c = claims(&s, &r, at);
    assert_eq!(
        c["x-enclava-tcb-status"],
        "ConfigurationAndSWHardeningNeeded"
    );
    assert_eq!(
        c["x-enclava-advisory-ids"],
        json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
}

/// A collateral directory holding the SEV-SNP chain as separate files (VCEK as DER, ASK as PEM
/// with explanatory text, ARK as DER, next to an unrelated file), as the CLI reads it: a report
/// sent without certificates verifies with them, through the one collateral loader. Without the
/// directory the same request has no chain.
#[test]
fn snp_report_without_certificates_uses_a_flat_collateral_directory() {
    let (Some(report), Some(vcek), Some(ask_ark)) = (
        read("sev-snp/trustee/test-report.bin"),
        read("sev-snp/trustee/test-vcek.der"),
        read("sev-snp/google-go-sev-guest/ask_ark_milan.pem"),
    ) else {
        return;
    };
    let at = "2025-06-01T00:00:00Z";
    let dir = tempfile::tempdir().unwrap();
    layouts::split_snp(&vcek, &ask_ark, dir.path()).unwrap();
    let body = json!({"tee": "snp", "evidence": b64u(&report)});

    let s = server(at, Some(dir.path().to_path_buf()));
    let admin = s.admin_token();
    assert_eq!(
        put_policy(&s, &admin, &snp_without_revocation()).status,
        200
    );
    let r = s.post("/attest/native", None, &body);
    let c = claims(&s, &r, at);
    assert_eq!(
        c["x-ms-sevsnpvm-launchmeasurement"],
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );

    let bare = server(at, None);
    let admin = bare.admin_token();
    assert_eq!(
        put_policy(&bare, &admin, &snp_without_revocation()).status,
        200
    );
    let r = bare.post("/attest/native", None, &body);
    assert_eq!(r.status, 400, "{}", r.text);
}

/// A flat collateral directory is one platform's: a quote of another platform (another FMSPC,
/// another PCK CA) is attested as if no collateral were configured, never failed against the
/// foreign platform's CRL or TCB info (found by the Azure Attestation SDK suites: the occlum
/// quote answered 400 `missing_collateral`, "expected a PCK CRL issued by ... Platform CA").
#[test]
fn a_flat_directory_of_another_platform_is_not_applied() {
    let (Some(phala), Some(occlum)) = (
        read("sgx/phala-dcap-qvl/sgx_quote"),
        read("sgx/trustee/occlum_quote.dat"),
    ) else {
        return;
    };
    assert_ne!(
        DirCollateral::fmspc_of(&phala),
        DirCollateral::fmspc_of(&occlum)
    );
    let at = "2025-07-19T10:01:17Z";
    let flat = split_dir("sgx/phala-dcap-qvl/sgx_quote_collateral.json", &phala, "");
    let with_dir = server(at, Some(flat.path().to_path_buf()));
    let without = server(at, None);
    let body = json!({"quote": b64u(&occlum)});
    let a = attest(&with_dir, "SgxEnclave", &body);
    let b = attest(&without, "SgxEnclave", &body);
    assert!(!a.text.contains("missing_collateral"), "{}", a.text);
    assert_eq!(
        (a.status, a.code()),
        (b.status, b.code()),
        "{} / {}",
        a.text,
        b.text
    );
    // The platform the directory is for still gets it.
    let r = attest(&with_dir, "SgxEnclave", &json!({"quote": b64u(&phala)}));
    let c = claims(&with_dir, &r, at);
    assert_eq!(
        c["x-enclava-tcb-status"],
        "ConfigurationAndSWHardeningNeeded"
    );
}
