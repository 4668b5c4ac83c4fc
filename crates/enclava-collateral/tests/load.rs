//! The one collateral loader (`enclava_collateral::load`) on the vectors reshaped into the layouts
//! collateral comes in: every certificate in its own file (DER or PEM, explanatory text before
//! the PEM), PCS responses as served, CRLs in DER and hex, unrelated files mixed in. Each layout
//! is built in a temporary directory at test time from ../shared/vectors (never stored).

use std::path::Path;

use chrono::{DateTime, Utc};
use enclava_collateral::load::{self, Kind};
use enclava_evidence::dcap;
use enclava_evidence::error::FailedCheck;
use enclava_evidence::snp;
use enclava_testvectors::layouts;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn reshaped(collateral: &str, quote: &str) -> Option<(tempfile::TempDir, Vec<u8>)> {
    let json = enclava_testvectors::read(collateral)?;
    let quote = enclava_testvectors::read(quote)?;
    let dir = tempfile::tempdir().unwrap();
    layouts::split_dcap_qvl(&json, &quote, dir.path()).unwrap();
    Some((dir, quote))
}

fn skipped(l: &load::Loaded) -> Vec<String> {
    let mut v: Vec<String> = l
        .notes
        .iter()
        .map(|n| {
            Path::new(&n.file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn tdx_separate_certificate_files_verify_up_to_date() {
    let Some((dir, quote)) = reshaped(
        "tdx/phala-dcap-qvl/tdx_quote_collateral.json",
        "tdx/phala-dcap-qvl/tdx_quote",
    ) else {
        return;
    };
    let loaded = load::read_dir(dir.path()).unwrap();
    assert_eq!(
        skipped(&loaded),
        ["README.md", "key.pem", "other.json", "quote.dat"],
        "{:?}",
        loaded.notes
    );
    let kinds: Vec<Kind> = loaded.files.iter().map(|(_, k)| *k).collect();
    assert!(kinds.contains(&Kind::TcbInfo) && kinds.contains(&Kind::QeIdentity));
    // Before: the TCB Signing certificate, the root and the PCK CA in separate files were refused
    // with missing_collateral ("expected the TCB info issuer chain").
    let c = loaded.dcap().unwrap();
    let claims = dcap::verify_tdx(&quote, Some(&c), t("2025-07-19T10:00:34Z")).unwrap();
    assert_eq!(claims.tcb_status.as_deref(), Some("UpToDate"));
    assert!(claims.advisory_ids.is_empty());
    assert_eq!(
        claims.measurement,
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    // The same files through the evidence crate's own loader (the verifier's input API).
    let files: Vec<(String, Vec<u8>)> = [
        "tcb_info.json",
        "qe_identity.json",
        "tcb_signing.pem",
        "Intel_SGX_Root_CA.der",
        "pck_ca.cer",
        "rootcrl.der",
        "pckcrl",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.path().join(f)).unwrap()))
    .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let c = dcap::Collateral::from_files(&refs).unwrap();
    assert!(dcap::verify_tdx(&quote, Some(&c), t("2025-07-19T10:00:34Z")).is_ok());
}

#[test]
fn sgx_separate_certificate_files_give_the_manifest_status() {
    let Some((dir, quote)) = reshaped(
        "sgx/phala-dcap-qvl/sgx_quote_collateral.json",
        "sgx/phala-dcap-qvl/sgx_quote",
    ) else {
        return;
    };
    let c = load::read_dir(dir.path()).unwrap().dcap().unwrap();
    let claims = dcap::verify_sgx(&quote, Some(&c), t("2025-07-19T10:01:17Z")).unwrap();
    assert_eq!(
        claims.tcb_status.as_deref(),
        Some("ConfigurationAndSWHardeningNeeded")
    );
    assert_eq!(claims.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
}

/// A self-signed "Intel SGX Root CA" of our own, and a "TCB Signing" certificate it issued.
fn fake_intel_pki() -> (Vec<u8>, Vec<u8>, aws_lc_rs::signature::EcdsaKeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dn = |p: &mut CertificateParams, cn: &str| {
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "Intel Corporation");
        p.distinguished_name
            .push(DnType::LocalityName, "Santa Clara");
        p.distinguished_name.push(DnType::StateOrProvinceName, "CA");
        p.distinguished_name.push(DnType::CountryName, "US");
    };
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rp = CertificateParams::new(vec![]).unwrap();
    dn(&mut rp, "Intel SGX Root CA");
    rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = rp.self_signed(&root_key).unwrap();
    let signing_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut sp = CertificateParams::new(vec![]).unwrap();
    dn(&mut sp, "Intel SGX TCB Signing");
    let signing = sp.signed_by(&signing_key, &root, &root_key).unwrap();
    let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &signing_key.serialize_der(),
    )
    .unwrap();
    (root.der().to_vec(), signing.der().to_vec(), key)
}

#[test]
fn a_root_in_the_directory_is_never_an_anchor() {
    let Some((dir, quote)) = reshaped(
        "tdx/phala-dcap-qvl/tdx_quote_collateral.json",
        "tdx/phala-dcap-qvl/tdx_quote",
    ) else {
        return;
    };
    let at = t("2025-07-19T10:00:34Z");
    let (fake_root, fake_signing, fake_key) = fake_intel_pki();
    // A foreign root beside the real collateral changes nothing.
    std::fs::write(dir.path().join("another_root.der"), &fake_root).unwrap();
    let c = load::read_dir(dir.path()).unwrap().dcap().unwrap();
    assert!(dcap::verify_tdx(&quote, Some(&c), at).is_ok());

    // The attack: a TCB info of our choosing, signed by a TCB Signing certificate that our own
    // root issued, both roots "present" in the directory. The chain is verified to the pinned
    // Intel root, so it fails.
    let tcb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tcb_info.json")).unwrap()).unwrap();
    let body = serde_json::to_string(&tcb["tcbInfo"]).unwrap();
    let sig = fake_key
        .sign(&aws_lc_rs::rand::SystemRandom::new(), body.as_bytes())
        .unwrap();
    std::fs::write(
        dir.path().join("tcb_info.json"),
        format!(
            "{{\"tcbInfo\":{body},\"signature\":\"{}\"}}",
            hex::encode(sig.as_ref())
        ),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("tcb_signing.pem")).unwrap();
    std::fs::write(
        dir.path().join("tcb_signing.pem"),
        layouts::with_explanatory_text(&layouts::pem_of(&fake_signing)),
    )
    .unwrap();
    let c = load::read_dir(dir.path()).unwrap().dcap().unwrap();
    let e = dcap::verify_tdx(&quote, Some(&c), at).unwrap_err();
    assert!(
        matches!(e.failed_check(), "untrusted_root" | "cert_chain_signature"),
        "{}: {e}",
        e.failed_check()
    );
}

#[test]
fn corrupt_collateral_is_an_error_naming_the_file() {
    let Some((dir, _)) = reshaped(
        "tdx/phala-dcap-qvl/tdx_quote_collateral.json",
        "tdx/phala-dcap-qvl/tdx_quote",
    ) else {
        return;
    };
    let p = dir.path();
    let good_signing = std::fs::read_to_string(p.join("tcb_signing.pem")).unwrap();
    let good_tcb = std::fs::read(p.join("tcb_info.json")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "tcb_info.json",
            good_tcb.get(..good_tcb.len() / 2).unwrap().to_vec(),
            "does not parse",
        ),
        (
            "tcb_signing.pem",
            good_signing.replacen("MII", "M*I", 1).into_bytes(),
            "not base64",
        ),
        (
            "tcb_signing.pem",
            good_signing
                .replace("-----END CERTIFICATE-----", "-----END X509 CRL-----")
                .into_bytes(),
            "found -----END X509 CRL-----",
        ),
        (
            "tcb_signing.pem",
            good_signing
                .replace("-----END CERTIFICATE-----", "")
                .into_bytes(),
            "expected -----END CERTIFICATE-----",
        ),
    ];
    for (file, bytes, why) in cases {
        let keep = std::fs::read(p.join(file)).unwrap();
        std::fs::write(p.join(file), &bytes).unwrap();
        let e = load::read_dir(p).unwrap_err().to_string();
        assert!(e.contains(file) && e.contains(why), "{file} / {why}: {e}");
        std::fs::write(p.join(file), keep).unwrap();
    }
    // A truncated DER certificate among the collateral is corrupt too, not "unknown".
    let root = std::fs::read(p.join("Intel_SGX_Root_CA.der")).unwrap();
    let mut cut = root.clone();
    cut.truncate(root.len() - 10);
    std::fs::write(p.join("Intel_SGX_Root_CA.der"), &cut).unwrap();
    // A cut DER is not a complete SEQUENCE, so nothing says it is DER: it is skipped with a note
    // (never silently used), and the pinned root stands in for it.
    let l = load::read_dir(p).unwrap();
    assert!(skipped(&l).contains(&"Intel_SGX_Root_CA.der".to_string()));
    // A complete SEQUENCE that is neither a certificate nor a CRL, beside a certificate in the
    // same file, is corrupt collateral.
    let mut two = root.clone();
    two.extend_from_slice(&[0x30, 0x03, 0x02, 0x01, 0x00]);
    std::fs::write(p.join("Intel_SGX_Root_CA.der"), &two).unwrap();
    let e = load::read_dir(p).unwrap_err().to_string();
    assert!(
        e.contains("Intel_SGX_Root_CA.der") && e.contains("neither"),
        "{e}"
    );
}

#[test]
fn snp_chain_as_separate_der_and_pem_files_verifies() {
    let (Some(report), Some(vcek), Some(ask_ark)) = (
        enclava_testvectors::read("sev-snp/trustee/test-report.bin"),
        enclava_testvectors::read("sev-snp/trustee/test-vcek.der"),
        enclava_testvectors::read("sev-snp/google-go-sev-guest/ask_ark_milan.pem"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    layouts::split_snp(&vcek, &ask_ark, dir.path()).unwrap();
    let loaded = load::read_dir(dir.path()).unwrap();
    assert_eq!(skipped(&loaded), ["README.md"]);
    assert_eq!(loaded.snp_certs.len(), 3);
    assert!(!loaded.has_dcap());
    let claims = snp::verify(&report, &loaded.snp(), t("2024-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        claims.measurement,
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );
}

#[test]
fn classify_never_panics_on_prefixes_of_the_reshaped_files() {
    let Some((dir, _)) = reshaped(
        "tdx/phala-dcap-qvl/tdx_quote_collateral.json",
        "tdx/phala-dcap-qvl/tdx_quote",
    ) else {
        return;
    };
    for f in [
        "tcb_signing.pem",
        "Intel_SGX_Root_CA.der",
        "rootcrl.der",
        "pckcrl",
    ] {
        let b = std::fs::read(dir.path().join(f)).unwrap();
        for i in 0..b.len() {
            let _ = load::classify(f, b.get(..i).unwrap());
        }
    }
}
