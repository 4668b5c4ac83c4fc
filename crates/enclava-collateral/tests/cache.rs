//! The offline cache, built in a temporary directory from the real vectors, and what it serves
//! verified by enclava-evidence at the manifests' times.

mod common;

use common::{files_under, read, t};
use enclava_collateral::cache::{hwid, report_key, tcb_hex};
use enclava_collateral::{AmdKey, Cache, DcapTee, Error, PckCa};
use enclava_evidence::dcap;
use enclava_evidence::error::FailedCheck;
use enclava_evidence::snp::{self, Product};

const G: &str = "sev-snp/google-go-sev-guest";
const TR: &str = "sev-snp/trustee";
const TDX: &str = "tdx/google-go-tdx-guest";
const GOOGLE_AT: &str = "2022-09-24T01:00:00Z";
const GOOGLE_CHIP_ID: &str = "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d";
const GO_TDX_AT: &str = "2023-07-01T01:00:00Z";

#[test]
fn google_milan_vcek_from_cache_verifies() {
    let Some(report) = read(&format!("{G}/attestation.bin")) else {
        return;
    };
    let vcek = read(&format!("{G}/vcek.testcer")).unwrap();
    let chain = read(&format!("{G}/ask_ark_milan.pem")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();

    // Nothing cached: the v2 report names no product, so every product's location is named.
    let e = cache.snp_endorsements(&report).unwrap_err();
    assert_eq!(e.code(), "missing_file", "{e}");
    match &e {
        Error::MissingFile { expected, .. } => {
            assert_eq!(expected.len(), 3);
            assert!(expected[0].ends_with(format!(
                "amd/Milan/vcek/{GOOGLE_CHIP_ID}/0200000000000544.der"
            )));
            assert!(expected[1].to_string_lossy().contains("amd/Genoa/vcek/"));
            // Turin's hwID is the 8-byte prefix.
            assert!(expected[2].ends_with("amd/Turin/vcek/3ac3fe21e13fb099/0200000000000544.der"));
        }
        other => panic!("{other:?}"),
    }

    let key = report_key(&report).unwrap();
    assert_eq!(key.product, None);
    assert_eq!(key.signing_key, AmdKey::Vcek);
    assert_eq!(hex::encode(key.chip_id), GOOGLE_CHIP_ID);
    assert_eq!(key.reported_tcb, 4901323769462652930);
    assert_eq!(tcb_hex(key.reported_tcb), "0200000000000544");
    assert_eq!(hwid(Product::Turin, &key.chip_id).len(), 8);

    let p = cache
        .put_vcek(Product::Milan, &key.chip_id, key.reported_tcb, &vcek)
        .unwrap();
    assert!(p.ends_with(format!(
        "amd/Milan/vcek/{GOOGLE_CHIP_ID}/0200000000000544.der"
    )));

    // The VCEK alone: the verifier falls back to AMD's published ASK.
    let e = cache.snp_endorsements(&report).unwrap();
    assert_eq!(e.certs_der, vec![vcek.clone()]);
    let claims = snp::verify(&report, &e, t(GOOGLE_AT)).unwrap();
    assert_eq!(claims.snp.as_ref().unwrap().chip_id, GOOGLE_CHIP_ID);

    // With the product's chain.
    cache
        .put_amd_cert_chain(Product::Milan, AmdKey::Vcek, &chain)
        .unwrap();
    let e = cache.snp_endorsements(&report).unwrap();
    assert_eq!(e.certs_der.len(), 3);
    let claims = snp::verify(&report, &e, t(GOOGLE_AT)).unwrap();
    let s = claims.snp.as_ref().unwrap();
    assert_eq!(s.reported_tcb.raw, "0200000000000544");
    assert_eq!(
        claims.measurement,
        "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
    );
    // Verification is as of the caller's time, not the cache's: after the VCEK expires it fails.
    let err = snp::verify(&report, &e, t("2030-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(err.failed_check(), "certificate_expired");

    // The same VCEK under Genoa too: a v2 report cannot tell them apart.
    cache
        .put_vcek(Product::Genoa, &key.chip_id, key.reported_tcb, &vcek)
        .unwrap();
    let e = cache.snp_endorsements(&report).unwrap_err();
    assert_eq!(e.code(), "ambiguous", "{e}");

    // Only final files; no temporary left behind.
    let files = files_under(dir.path());
    assert!(files.iter().all(|f| !f.contains(".tmp.")), "{files:?}");
    assert_eq!(files.len(), 3, "{files:?}");
}

#[test]
fn import_derives_location_from_the_certificate() {
    let Some(report) = read(&format!("{TR}/derived_e2e_evidence_report.bin")) else {
        return;
    };
    let vcek = read(&format!("{TR}/derived_e2e_evidence_vcek.der")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let at = t("2025-06-01T00:00:00Z");
    // A Genoa v3 report: the product comes from its CPUID.
    let key = report_key(&report).unwrap();
    assert_eq!(key.product, Some(Product::Genoa));
    let path = cache.import_snp_leaf(&vcek, at).unwrap();
    assert_eq!(
        path,
        cache.vcek_path(Product::Genoa, &key.chip_id, key.reported_tcb)
    );
    let e = cache.snp_endorsements(&report).unwrap();
    let claims = snp::verify(&report, &e, at).unwrap();
    assert_eq!(
        claims.measurement,
        "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e"
    );
    // Importing is verified: a certificate that does not chain is refused and nothing written.
    let bad = read(&format!("{TR}/test-vcek-invalid-new.der")).unwrap();
    let before = files_under(dir.path());
    assert!(cache.import_snp_leaf(&bad, at).is_err());
    // Not yet valid at the import time.
    assert!(matches!(
        cache.import_snp_leaf(&vcek, t("2024-01-01T00:00:00Z")),
        Err(Error::Snp(_))
    ));
    assert_eq!(files_under(dir.path()), before);
}

#[test]
fn vlek_by_hand() {
    let Some(report) = read(&format!("{TR}/test-vlek-report.bin")) else {
        return;
    };
    let vlek = read(&format!("{TR}/test-vlek.der")).unwrap();
    let chain = read(&format!("{G}/ask_ark_milan_vlek.pem")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let at = t("2025-06-01T00:00:00Z");
    let key = report_key(&report).unwrap();
    assert_eq!(key.signing_key, AmdKey::Vlek);
    assert_eq!(key.product, Some(Product::Milan));
    assert_eq!(tcb_hex(key.reported_tcb), "04000000000018d9");

    let e = cache.snp_endorsements(&report).unwrap_err();
    assert!(
        e.to_string().contains("amd/Milan/vlek/04000000000018d9"),
        "{e}"
    );

    let path = cache.import_snp_leaf(&vlek, at).unwrap();
    assert!(path.starts_with(cache.vlek_dir(Product::Milan, key.reported_tcb)));
    cache
        .put_amd_cert_chain(Product::Milan, AmdKey::Vlek, &chain)
        .unwrap();
    // A crashed writer's temporary file is ignored.
    std::fs::write(path.with_file_name(".x.der.tmp.1.2"), b"junk").unwrap();
    let e = cache.snp_endorsements(&report).unwrap();
    assert_eq!(e.certs_der.len(), 3);
    let claims = snp::verify(&report, &e, at).unwrap();
    assert_eq!(claims.snp.as_ref().unwrap().signing_key.as_str(), "vlek");

    // A VCEK chain is not a VLEK chain.
    let vcek_chain = read(&format!("{G}/ask_ark_milan.pem")).unwrap();
    let genoa_chain = read(&format!("{G}/ask_ark_genoa.pem")).unwrap();
    assert_eq!(
        cache
            .put_amd_cert_chain(Product::Milan, AmdKey::Vlek, &genoa_chain)
            .unwrap_err()
            .code(),
        "invalid_collateral"
    );
    // Two VLEKs for one TCB cannot be told apart.
    let other = read(&format!("{G}/vcek.testcer")).unwrap();
    cache
        .put_vlek(Product::Milan, key.reported_tcb, &other)
        .unwrap();
    assert_eq!(
        cache.snp_endorsements(&report).unwrap_err().code(),
        "ambiguous"
    );
    // put_* refuse what is not one DER certificate.
    assert_eq!(
        cache
            .put_vlek(Product::Milan, key.reported_tcb, &vcek_chain)
            .unwrap_err()
            .code(),
        "invalid_collateral"
    );
}

#[test]
fn report_keys_refuse_what_cannot_be_looked_up() {
    let Some(report) = read(&format!("{G}/attestation.bin")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    // SIGNING_KEY = none.
    let mut r = report.clone();
    r[0x48] |= 7 << 2;
    assert!(matches!(
        cache.snp_endorsements(&r),
        Err(Error::UnsignedReport)
    ));
    // MASK_CHIP_KEY with a zero chip id.
    let mut r = report.clone();
    r[0x48] |= 2;
    r[0x1A0..0x1E0].fill(0);
    assert!(matches!(
        cache.snp_endorsements(&r),
        Err(Error::ChipIdMasked)
    ));
    // Not a report.
    assert_eq!(cache.snp_endorsements(&r[..100]).unwrap_err().code(), "snp");
    // Every truncation is an error, never a panic.
    for n in 0..report.len() {
        assert!(cache.snp_endorsements(&report[..n]).is_err());
    }
    // open() never creates.
    let missing = dir.path().join("nope");
    assert_eq!(Cache::open(&missing).unwrap_err().code(), "cache_dir");
    assert!(!missing.exists());
    assert!(Cache::create(&missing).is_ok());
}

fn go_tdx_cache(dir: &std::path::Path) -> Option<(Cache, Vec<u8>)> {
    let quote = read(&format!("{TDX}/tdx_prod_quote_SPR_E4.dat"))?;
    let cache = Cache::open(dir).unwrap();
    let fmspc = hex::decode("50806f000000").unwrap().try_into().unwrap();
    cache
        .put_tcb_info(
            DcapTee::Tdx,
            &fmspc,
            &read(&format!("{TDX}/sample_tcbInfo_response")).unwrap(),
            &read(&format!("{TDX}/derived_tcb_info_issuer_chain.pem")).unwrap(),
        )
        .unwrap();
    cache
        .put_qe_identity(
            DcapTee::Tdx,
            &read(&format!("{TDX}/sample_qeIdentity_response")).unwrap(),
            &read(&format!("{TDX}/derived_qe_identity_issuer_chain.pem")).unwrap(),
        )
        .unwrap();
    cache
        .put_root_crl(&read(&format!("{TDX}/rootcrl.der")).unwrap())
        .unwrap();
    cache
        .put_pck_crl(
            PckCa::Platform,
            &read(&format!("{TDX}/pckcrl")).unwrap(),
            Some(&read(&format!("{TDX}/derived_pck_crl_issuer_chain.pem")).unwrap()),
        )
        .unwrap();
    Some((cache, quote))
}

#[test]
fn go_tdx_collateral_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cache, quote)) = go_tdx_cache(dir.path()) else {
        return;
    };
    assert_eq!(
        files_under(dir.path()),
        vec![
            "intel/crl/platform.der",
            "intel/crl/platform.issuer_chain.pem",
            "intel/crl/root.der",
            "intel/qe/tdx.issuer_chain.pem",
            "intel/qe/tdx.json",
            "intel/tcb/tdx/50806f000000.issuer_chain.pem",
            "intel/tcb/tdx/50806f000000.json",
        ]
    );
    let key = enclava_collateral::cache::quote_key(&quote, DcapTee::Tdx).unwrap();
    assert_eq!(hex::encode(key.fmspc), "50806f000000");
    assert_eq!(key.ca, PckCa::Platform);

    let coll = cache.dcap_collateral(&quote, DcapTee::Tdx).unwrap();
    let e = dcap::verify_tdx(&quote, Some(&coll), t(GO_TDX_AT)).unwrap_err();
    assert_eq!(e.failed_check(), "tcb_level_not_found", "{e}");
    let e = dcap::verify_tdx(&quote, Some(&coll), t("2053-07-01T00:00:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "collateral_expired", "{e}");

    // Wrong TEE.
    assert!(matches!(
        cache.dcap_collateral(&quote, DcapTee::Sgx),
        Err(Error::TeeMismatch {
            expected: "sgx",
            found: "tdx"
        })
    ));
    // A missing piece is named with its path.
    std::fs::remove_file(cache.pck_crl_path(PckCa::Platform)).unwrap();
    let e = cache.dcap_collateral(&quote, DcapTee::Tdx).unwrap_err();
    assert_eq!(e.code(), "missing_file");
    assert!(e.to_string().contains("intel/crl/platform.der"), "{e}");
    assert!(e.to_string().contains("PCK CRL of the platform CA"), "{e}");
    // Truncated quotes are errors, never panics.
    for n in (0..quote.len()).step_by(7) {
        assert!(cache.dcap_collateral(&quote[..n], DcapTee::Tdx).is_err());
    }
}

#[test]
fn intel_puts_check_what_they_store() {
    let Some(tcb) = read(&format!("{TDX}/sample_tcbInfo_response")) else {
        return;
    };
    let chain = read(&format!("{TDX}/derived_tcb_info_issuer_chain.pem")).unwrap();
    let pck_chain = read(&format!("{TDX}/derived_pck_crl_issuer_chain.pem")).unwrap();
    let root_crl = read(&format!("{TDX}/rootcrl.der")).unwrap();
    let pck_crl = read(&format!("{TDX}/pckcrl")).unwrap();
    let qe = read(&format!("{TDX}/sample_qeIdentity_response")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let fmspc: [u8; 6] = hex::decode("50806f000000").unwrap().try_into().unwrap();
    let other: [u8; 6] = hex::decode("00906ea10000").unwrap().try_into().unwrap();
    let code = |r: enclava_collateral::Result<std::path::PathBuf>| r.unwrap_err().code();
    assert_eq!(
        code(cache.put_tcb_info(DcapTee::Tdx, &other, &tcb, &chain)),
        "invalid_collateral"
    );
    assert_eq!(
        code(cache.put_tcb_info(DcapTee::Sgx, &fmspc, &tcb, &chain)),
        "invalid_collateral"
    );
    assert_eq!(
        code(cache.put_tcb_info(DcapTee::Tdx, &fmspc, &tcb, &pck_chain)),
        "invalid_collateral"
    );
    assert_eq!(
        code(cache.put_tcb_info(DcapTee::Tdx, &fmspc, &qe, &chain)),
        "dcap"
    );
    assert_eq!(
        code(cache.put_qe_identity(DcapTee::Sgx, &qe, &chain)),
        "invalid_collateral"
    );
    assert_eq!(code(cache.put_root_crl(&pck_crl)), "invalid_collateral");
    assert_eq!(
        code(cache.put_pck_crl(PckCa::Platform, &root_crl, None)),
        "invalid_collateral"
    );
    assert_eq!(
        code(cache.put_pck_crl(PckCa::Processor, &pck_crl, None)),
        "invalid_collateral"
    );
    assert_eq!(
        code(cache.put_amd_crl(Product::Milan, AmdKey::Vcek, &root_crl)),
        "invalid_collateral"
    );
    assert!(files_under(dir.path()).is_empty());
    // Overwriting is atomic and leaves one file.
    cache.put_root_crl(&root_crl).unwrap();
    cache.put_root_crl(&root_crl).unwrap();
    assert_eq!(files_under(dir.path()), vec!["intel/crl/root.der"]);
}

/// An extended-report certificate table (GHCB layout) holding `entries`.
fn cert_table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let header = 24 * (entries.len() + 1);
    let mut head = Vec::new();
    let mut data = Vec::new();
    for (guid, bytes) in entries {
        head.extend_from_slice(guid);
        head.extend_from_slice(&((header + data.len()) as u32).to_le_bytes());
        head.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        data.extend_from_slice(bytes);
    }
    head.extend_from_slice(&[0u8; 24]);
    head.extend(data);
    head
}

#[test]
fn resolve_prefers_evidence_then_files_then_cache() {
    use enclava_collateral::resolve::{self, Origin, SnpSources};
    let Some(report) = read(&format!("{G}/attestation.bin")) else {
        return;
    };
    let vcek = read(&format!("{G}/vcek.testcer")).unwrap();
    let chain_pem = read(&format!("{G}/ask_ark_milan.pem")).unwrap();
    let chain = snp::certs_from_pem_or_der(&chain_pem).unwrap();
    let root_crl = read(&format!("{TDX}/rootcrl.der")).unwrap();
    let at = t(GOOGLE_AT);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();

    // Nothing anywhere.
    let e = resolve::snp_endorsements(&report, &SnpSources::default()).unwrap_err();
    assert_eq!(e.code(), "no_endorsements");
    // Only a cache, and it is empty: the cache's own error.
    let src = SnpSources {
        cache: Some(&cache),
        ..Default::default()
    };
    assert_eq!(
        resolve::snp_endorsements(&report, &src).unwrap_err().code(),
        "missing_file"
    );

    // The certificate table wins over files and cache.
    let table = cert_table(&[
        (snp::certs::GUID_VCEK, &vcek),
        (snp::certs::GUID_ASK, &chain[0]),
        (snp::certs::GUID_ARK, &chain[1]),
    ]);
    let files = vec![chain_pem.clone(), root_crl.clone()];
    let src = SnpSources {
        cert_table: Some(&table),
        files: &files,
        cache: Some(&cache),
    };
    let (e, origin) = resolve::snp_endorsements(&report, &src).unwrap();
    assert_eq!(origin, Origin::Evidence);
    assert_eq!(
        e.certs_der,
        vec![vcek.clone(), chain[0].clone(), chain[1].clone()]
    );
    assert_eq!(e.crls_der, vec![root_crl.clone()]);
    snp::verify(&report, &e, at).unwrap();

    // A table with only the chain: the supplied VCEK is used with it.
    let table = cert_table(&[
        (snp::certs::GUID_ASK, &chain[0]),
        (snp::certs::GUID_ARK, &chain[1]),
    ]);
    let files = vec![vcek.clone()];
    let src = SnpSources {
        cert_table: Some(&table),
        files: &files,
        cache: Some(&cache),
    };
    let (e, origin) = resolve::snp_endorsements(&report, &src).unwrap();
    assert_eq!(origin, Origin::Files);
    assert_eq!(e.certs_der.len(), 3);
    snp::verify(&report, &e, at).unwrap();

    // Only CRLs supplied: the cache gives the certificates.
    let key = report_key(&report).unwrap();
    cache
        .put_vcek(Product::Milan, &key.chip_id, key.reported_tcb, &vcek)
        .unwrap();
    let files = vec![root_crl.clone()];
    let src = SnpSources {
        cert_table: None,
        files: &files,
        cache: Some(&cache),
    };
    let (e, origin) = resolve::snp_endorsements(&report, &src).unwrap();
    assert_eq!(origin, Origin::Cache);
    assert_eq!(e.certs_der, vec![vcek.clone()]);
    assert_eq!(e.crls_der, vec![root_crl.clone()]);
    // (An Intel CRL is not this chain's: the verifier ignores it.)
    snp::verify(&report, &e, at).unwrap();

    // Garbage supplied is an error, not ignored.
    let files = vec![b"not a certificate".to_vec()];
    let src = SnpSources {
        files: &files,
        ..Default::default()
    };
    assert_eq!(
        resolve::snp_endorsements(&report, &src).unwrap_err().code(),
        "invalid_collateral"
    );
    // A malformed certificate table too.
    let src = SnpSources {
        cert_table: Some(&[1u8; 30]),
        ..Default::default()
    };
    assert_eq!(
        resolve::snp_endorsements(&report, &src).unwrap_err().code(),
        "snp"
    );
}

#[test]
fn resolve_dcap_files_then_cache() {
    use enclava_collateral::resolve::{self, Origin};
    let dir = tempfile::tempdir().unwrap();
    let Some((cache, quote)) = go_tdx_cache(dir.path()) else {
        return;
    };
    let (coll, origin) = resolve::dcap_collateral(&quote, DcapTee::Tdx, &[], Some(&cache)).unwrap();
    assert_eq!(origin, Origin::Cache);
    assert_eq!(
        dcap::verify_tdx(&quote, Some(&coll), t(GO_TDX_AT))
            .unwrap_err()
            .failed_check(),
        "tcb_level_not_found"
    );
    // Supplied files win (here: only the TCB info, so the verifier misses the rest).
    let files = vec![(
        "tcb".to_string(),
        read(&format!("{TDX}/sample_tcbInfo_response")).unwrap(),
    )];
    let (coll, origin) =
        resolve::dcap_collateral(&quote, DcapTee::Tdx, &files, Some(&cache)).unwrap();
    assert_eq!(origin, Origin::Files);
    assert_eq!(
        dcap::verify_tdx(&quote, Some(&coll), t(GO_TDX_AT))
            .unwrap_err()
            .failed_check(),
        "missing_collateral"
    );
    assert_eq!(
        resolve::dcap_collateral(&quote, DcapTee::Tdx, &[], None)
            .unwrap_err()
            .code(),
        "no_endorsements"
    );
}
