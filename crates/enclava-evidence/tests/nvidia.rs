//! NVIDIA GPU / NVSwitch verification against the real vectors in `../shared/vectors/nvidia-gpu`.
//! Every expected value comes from the folders' MANIFEST.md.

mod common;

use chrono::{DateTime, Utc};
use enclava_evidence::error::FailedCheck;
use enclava_evidence::nvidia::{
    self, IndexOutcome, NvidiaClaims, NvidiaError, parse_evidence_list, rim, spdm,
};

const NT: &str = "nvidia-gpu/nvtrust";
const SDK: &str = "nvidia-gpu/attestation-sdk";
const TR: &str = "nvidia-gpu/trustee";

const NONCE_TEST_NO_GPU: &str = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e";
const NONCE_931D: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const NONCE_4760: &str = "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e";
const NONCE_27A3: &str = "27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66";
const NONCE_HOPPER_LATEST: &str =
    "e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Inside every RIM window of case 1 (manifest: 2023-06-27T06:10:12Z..2025-06-22T09:38:54Z).
fn case1_time() -> DateTime<Utc> {
    at("2024-06-01T00:00:00Z")
}

/// Inside the NVSwitch RIM window (2026-05-20T22:02:51Z..2027-11-02T23:59:59Z).
fn switch_time() -> DateTime<Utc> {
    at("2026-08-01T00:00:00Z")
}

/// A report file (one hex line) as bytes.
fn report(rel: &str) -> Option<Vec<u8>> {
    let text = common::read(rel)?;
    Some(hex::decode(String::from_utf8(text).unwrap().trim()).unwrap())
}

fn nonce(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

fn check(e: &NvidiaError) -> &'static str {
    e.failed_check()
}

struct Case1 {
    report: Vec<u8>,
    chain: Vec<u8>,
    driver: Vec<u8>,
    vbios: Vec<u8>,
}

fn case1() -> Option<Case1> {
    Some(Case1 {
        report: report(&format!("{NT}/attestationReport.txt"))?,
        chain: common::read(&format!("{NT}/gpuAkCertChain.txt"))?,
        driver: common::read(&format!("{NT}/Driver_RIM_test_no_gpu.swidtag"))?,
        vbios: common::read(&format!(
            "{NT}/1010_0200_882_96005E0001_test_no_gpu.swidtag"
        ))?,
    })
}

fn verify_case1(c: &Case1, t: DateTime<Utc>) -> Result<NvidiaClaims, NvidiaError> {
    nvidia::verify(
        &c.report,
        &c.chain,
        &[&c.driver, &c.vbios],
        Some(&nonce(NONCE_TEST_NO_GPU)),
        t,
    )
}

#[test]
fn case1_complete_offline_gpu_appraisal_succeeds_with_every_claim() {
    let Some(c) = case1() else { return };
    let claims = verify_case1(&c, case1_time()).unwrap();
    assert_eq!(claims.device, "gpu");
    assert_eq!(claims.arch, "HOPPER");
    assert_eq!(claims.hwmodel, "GH100 A01 GSP BROM");
    assert_eq!(
        claims.ueid, "460032006552296075780760406069494258829212062021",
        "decimal of leaf serial 0x50948c723fc935c7bd14b7c22833dfbe1dfd1145"
    );
    assert_eq!(claims.oemid.as_deref(), Some("5703"));
    assert_eq!(claims.nonce, NONCE_TEST_NO_GPU);
    assert!(claims.nonce_verified);
    assert_eq!(claims.driver_version.as_deref(), Some("545.00"));
    assert_eq!(claims.vbios_version.as_deref(), Some("96.00.5E.00.01"));
    assert_eq!(claims.project.as_deref(), Some("1010"));
    assert_eq!(claims.project_sku.as_deref(), Some("0200"));
    assert_eq!(claims.chip_sku.as_deref(), Some("882"));
    assert_eq!(claims.measurement_blocks, 64);
    assert_eq!(claims.fwid, None, "this report has no FWID field");
    assert!(!claims.fwid_checked);
    assert_eq!(claims.nvdec0_status.as_deref(), Some("disabled"));
    assert_eq!(claims.measres, "success");
    // Driver: 7 and 21-40; VBIOS: 0-6 and 8-12. 33 active, 35 skipped, 32 compared.
    let matched: Vec<u32> = claims
        .measurements
        .iter()
        .filter(|m| m.result == "match")
        .map(|m| m.index)
        .collect();
    let mut expected: Vec<u32> = (0..=12).chain(21..=40).filter(|i| *i != 35).collect();
    expected.sort();
    assert_eq!(matched, expected);
    assert_eq!(matched.len(), 32);
    let skipped: Vec<u32> = claims
        .measurements
        .iter()
        .filter(|m| m.result == "skipped")
        .map(|m| m.index)
        .collect();
    assert_eq!(skipped, vec![35]);
    assert!(
        claims
            .measurements
            .iter()
            .filter(|m| m.index == 7 || (21..=40).contains(&m.index))
            .all(|m| m.rim == "driver")
    );
    let kinds: Vec<&str> = claims.rims.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["driver", "vbios"]);
    assert_eq!(
        claims.rims[0].id.as_deref(),
        Some("NV_GPU_DRIVER_GH100_545.00")
    );
    assert_eq!(
        claims.rims[1].id.as_deref(),
        Some("NV_GPU_VBIOS_1010_0200_882_96005E0001")
    );
    assert_eq!(
        claims.rims[0].tag_id,
        "f0d3a263ab9ef4b93c8fc9727493b61a979814cbf31c07614842a9486b84db8c6cb2c94fb3d5d55992fc482ab495df0d"
    );
    assert_eq!(claims.rims[0].cert_expiration, "2025-06-26T06:10:12Z");
    assert_eq!(claims.rims[1].cert_expiration, "2025-06-22T09:38:54Z");
    assert_eq!(claims.rims[0].signer, "HCC RIM L4 Signer");
    // Index 35 would match too (manifest): compare without the exclusion by hand.
    let parsed = spdm::parse(&c.report).unwrap();
    let driver = rim::parse(&c.driver).unwrap();
    let m35 = driver.measurements.iter().find(|m| m.index == 35).unwrap();
    assert!(
        m35.alternatives
            .contains(&parsed.measurement(36).unwrap().value)
    );
    // RIM-service-free claims in JSON.
    let j = serde_json::to_value(&claims).unwrap();
    assert_eq!(j["measres"], "success");
}

#[test]
fn case1_verification_window_edges() {
    let Some(c) = case1() else { return };
    verify_case1(&c, at("2023-06-27T06:10:12Z")).unwrap();
    verify_case1(&c, at("2025-06-22T09:38:54Z")).unwrap();
    let e = verify_case1(&c, at("2023-06-27T06:10:11Z")).unwrap_err();
    assert_eq!(check(&e), "rim_expired", "{e}");
    let e = verify_case1(&c, at("2025-06-22T09:38:55Z")).unwrap_err();
    assert_eq!(check(&e), "rim_expired", "{e}");
    assert!(e.to_string().contains("HCC RIM L4 Signer"), "{e}");
}

#[test]
fn case1_bad_nonce_is_refused() {
    let Some(c) = case1() else { return };
    let e = nvidia::verify(
        &c.report,
        &c.chain,
        &[&c.driver, &c.vbios],
        Some(&nonce(NONCE_931D)),
        case1_time(),
    )
    .unwrap_err();
    assert_eq!(check(&e), "nonce");
    assert!(e.to_string().contains(NONCE_TEST_NO_GPU), "{e}");
}

#[test]
fn case1_without_rims_is_verified_but_not_compared() {
    let Some(c) = case1() else { return };
    let claims = nvidia::verify(&c.report, &c.chain, &[], None, case1_time()).unwrap();
    assert_eq!(claims.measres, "not_compared");
    assert!(!claims.nonce_verified);
    assert!(claims.measurements.is_empty());
    assert_eq!(claims.oemid, None);
    assert_eq!(
        claims.rim_ids,
        [
            "NV_GPU_DRIVER_GH100_545.00",
            "NV_GPU_VBIOS_1010_0200_882_96005E0001"
        ]
    );
    let partial = nvidia::verify(&c.report, &c.chain, &[&c.vbios], None, case1_time()).unwrap();
    assert_eq!(partial.measres, "partial");
    assert_eq!(partial.measurements.len(), 12);
}

#[test]
fn case1_vbios_prod_rim_mismatches_at_the_named_indices() {
    let Some(c) = case1() else { return };
    let Some(prod) = common::read(&format!("{NT}/1010_0200_882_96005E0001_PROD.swidtag")) else {
        return;
    };
    let e = nvidia::verify(
        &c.report,
        &c.chain,
        &[&c.driver, &prod],
        Some(&nonce(NONCE_TEST_NO_GPU)),
        case1_time(),
    )
    .unwrap_err();
    assert_eq!(check(&e), "measurement");
    let NvidiaError::Measurement(m) = &e else {
        panic!("{e}")
    };
    assert_eq!(m.iter().map(|x| x.index).collect::<Vec<_>>(), [1, 2, 3, 9]);
    assert!(m.iter().all(|x| x.rim == "vbios"));
    assert!(
        e.to_string()
            .starts_with("measurement index 1 (vbios RIM) expected "),
        "{e}"
    );
    let found = spdm::parse(&c.report)
        .unwrap()
        .measurement(2)
        .unwrap()
        .value
        .clone();
    assert_eq!(m[0].found.as_deref(), Some(hex::encode(found).as_str()));
}

#[test]
fn rims_for_another_device_or_two_of_a_kind_are_refused() {
    let Some(c) = case1() else { return };
    // A VBIOS RIM of another version.
    let other = common::read(&format!("{NT}/1010_0205_862_96005E0004_PROD.swidtag")).unwrap();
    let t = at("2024-06-01T00:00:00Z");
    let e = nvidia::verify(&c.report, &c.chain, &[&other], None, t).unwrap_err();
    assert_eq!(check(&e), "rim_mismatch", "{e}");
    assert!(e.to_string().contains("96.00.5E.00.04"), "{e}");
    // Twice the same RIM.
    let e = nvidia::verify(&c.report, &c.chain, &[&c.vbios, &c.vbios], None, t).unwrap_err();
    assert_eq!(check(&e), "rim_mismatch", "{e}");
    // The switch RIM for a GPU.
    let sw = common::read(&format!(
        "{SDK}/testdata/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml"
    ))
    .unwrap();
    let e = nvidia::verify(&c.report, &c.chain, &[&sw], None, switch_time()).unwrap_err();
    assert_eq!(check(&e), "rim_mismatch", "{e}");
}

#[test]
fn case2_head_set_verifies_signature_chain_fwid_and_fails_against_the_test_no_gpu_rims() {
    let Some(r) = report(&format!("{NT}/hopperAttestationReport.txt")) else {
        return;
    };
    let chain = common::read(&format!("{NT}/hopperCertChain.txt")).unwrap();
    let t = case1_time();
    let claims = nvidia::verify(&r, &chain, &[], Some(&nonce(NONCE_931D)), t).unwrap();
    assert_eq!(claims.driver_version.as_deref(), Some("550.90.07"));
    assert_eq!(claims.vbios_version.as_deref(), Some("96.00.9F.00.01"));
    assert_eq!(
        (
            claims.project.as_deref(),
            claims.project_sku.as_deref(),
            claims.chip_sku.as_deref()
        ),
        (Some("1010"), Some("0200"), Some("882"))
    );
    assert!(claims.fwid_checked);
    assert!(claims.fwid.as_deref().unwrap().starts_with("f5c384ae"));
    assert_eq!(
        claims.ueid,
        "478176379286082186618948445787393647364802107249"
    );
    assert_eq!(claims.hwmodel, "GH100 A01 GSP BROM");
    assert_eq!(claims.ppcie_status.as_deref(), Some("disabled"));
    // NVIDIA's NRAS claims for this very report (hopperClaimsv3_decoded.json).
    let nras: serde_json::Value = serde_json::from_slice(
        &common::read(&format!(
            "{SDK}/testdata/sample_attestation_data/hopperClaimsv3_decoded.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let g = &nras["GPU-0"];
    assert_eq!(g["ueid"], claims.ueid.as_str());
    assert_eq!(g["eat_nonce"], claims.nonce.as_str());
    assert_eq!(g["hwmodel"], claims.hwmodel.as_str());
    assert_eq!(g["x-nvidia-gpu-driver-version"], "550.90.07");
    assert_eq!(g["x-nvidia-gpu-vbios-version"], "96.00.9F.00.01");

    // Negative expectations of the manifest.
    let e = nvidia::verify(&r, &chain, &[], Some(&nonce(NONCE_TEST_NO_GPU)), t).unwrap_err();
    assert_eq!(check(&e), "nonce");
    let parsed = spdm::parse(&r).unwrap();
    let mism = |file: &str| -> Vec<u32> {
        let rm = rim::parse(&common::read(&format!("{NT}/{file}")).unwrap()).unwrap();
        nvidia::compare(&parsed, &rm, false)
            .into_iter()
            .filter_map(|o| match o {
                IndexOutcome::Mismatch { index, .. } => Some(index),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        mism("Driver_RIM_test_no_gpu.swidtag"),
        [7, 21, 22, 25, 26, 27, 29, 30, 31, 32, 34, 36, 37, 39, 40]
    );
    assert_eq!(
        mism("1010_0200_882_96005E0001_test_no_gpu.swidtag"),
        [1, 2, 3, 9, 11]
    );
    for f in [
        "Driver_RIM_test_no_gpu.swidtag",
        "1010_0200_882_96005E0001_test_no_gpu.swidtag",
    ] {
        let rimb = common::read(&format!("{NT}/{f}")).unwrap();
        let e = nvidia::verify(&r, &chain, &[&rimb], None, t).unwrap_err();
        assert_eq!(check(&e), "rim_mismatch", "{f}: {e}");
    }
    // The trustee copies are byte-identical.
    assert_eq!(
        Some(r),
        report(&format!("{TR}/hopperAttestationReport.txt"))
    );
}

fn mismatches(rep: &spdm::SpdmReport, rm: &rim::Rim, switch: bool) -> Vec<u32> {
    nvidia::compare(rep, rm, switch)
        .into_iter()
        .filter_map(|o| match o {
            IndexOutcome::Mismatch { index, .. } => Some(index),
            _ => None,
        })
        .collect()
}

#[test]
fn case3_other_vbios_rims() {
    let Some(r) = report(&format!(
        "{SDK}/testdata/sample_attestation_data/gpu/hopperAttestationReport.txt"
    )) else {
        return;
    };
    let chain = common::read(&format!(
        "{SDK}/testdata/sample_attestation_data/gpu/hopperCertChain.txt"
    ))
    .unwrap();
    let prod = common::read(&format!("{NT}/1010_0200_882_96005E0001_PROD.swidtag")).unwrap();
    // OFFLINE VBIOS POSITIVE: all 12 match.
    let claims =
        nvidia::verify(&r, &chain, &[&prod], Some(&nonce(NONCE_27A3)), case1_time()).unwrap();
    assert_eq!(claims.measres, "partial");
    assert_eq!(claims.driver_version.as_deref(), Some("535.86.09"));
    assert_eq!(
        claims
            .measurements
            .iter()
            .filter(|m| m.result == "match")
            .count(),
        12
    );
    // Bad nonce (32 zero bytes).
    let e = nvidia::verify(&r, &chain, &[], Some(&[0u8; 32]), case1_time()).unwrap_err();
    assert_eq!(check(&e), "nonce");
    // The SDK's measurement-mismatch RIMs (altered after signing; compared unverified as the SDK
    // does with verify_rim_signature = false), and refused when verified.
    let parsed = spdm::parse(&r).unwrap();
    let drv_bytes = common::read(&format!(
        "{SDK}/testdata/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"
    ))
    .unwrap();
    let drv = rim::parse(&drv_bytes).unwrap();
    assert_eq!(
        mismatches(&parsed, &drv, false),
        [7, 21, 22, 25, 26, 27, 29, 30, 31, 32, 34, 37, 39, 40, 41]
    );
    // Inside its signer's window (2025-05-24..2027-05-24): refused on the digest.
    let e =
        nvidia::verify(&r, &chain, &[&drv_bytes], None, at("2026-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(check(&e), "rim_signature", "{e}");
    let vb = rim::parse(
        &common::read(&format!(
            "{SDK}/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(mismatches(&parsed, &vb, false), [9]);
    // It is genuinely signed: verified, it fails on index 9 exactly.
    let vb_bytes = common::read(&format!(
        "{SDK}/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
    ))
    .unwrap();
    let e = nvidia::verify(&r, &chain, &[&vb_bytes], None, at("2024-06-01T00:00:00Z")).unwrap_err();
    let NvidiaError::Measurement(m) = &e else {
        panic!("{e}")
    };
    assert_eq!(m.iter().map(|x| x.index).collect::<Vec<_>>(), [9]);
    assert!(e.to_string().contains("measurement index 9"), "{e}");

    // The two other GH100 VBIOS RIMs each mismatch at index 9 only.
    for (rep, ch, rimf, n) in [
        (
            "testdata/sample_attestation_data/gpu/hopperAttestationReportExpired.txt",
            "testdata/sample_attestation_data/gpu/hopperCertChainExpired.txt",
            "1010_0205_862_96005E0004_PROD.swidtag",
            NONCE_931D,
        ),
        (
            "testdata/hopperAttestationReport.txt",
            "testdata/hopperCertChain.txt",
            "1010_0205_862_9600740020_PROD.swidtag",
            "5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca",
        ),
    ] {
        let r = report(&format!("{SDK}/{rep}")).unwrap();
        let ch = common::read(&format!("{SDK}/{ch}")).unwrap();
        let rb = common::read(&format!("{NT}/{rimf}")).unwrap();
        let e = nvidia::verify(&r, &ch, &[&rb], Some(&nonce(n)), at("2024-06-01T00:00:00Z"))
            .unwrap_err();
        let NvidiaError::Measurement(m) = &e else {
            panic!("{rimf}: {e}")
        };
        assert_eq!(m.iter().map(|x| x.index).collect::<Vec<_>>(), [9], "{rimf}");
    }
}

#[test]
fn every_rim_signature_and_chain_as_the_manifests_say() {
    // (file, a time inside its window, expected failed check or None)
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "nvtrust/1010_0200_882_96005E0001_PROD.swidtag",
            "2024-06-01T00:00:00Z",
            None,
        ),
        (
            "nvtrust/1010_0205_862_96005E0004_PROD.swidtag",
            "2024-06-01T00:00:00Z",
            None,
        ),
        (
            "nvtrust/1010_0205_862_9600740020_PROD.swidtag",
            "2024-06-01T00:00:00Z",
            None,
        ),
        (
            "nvtrust/g520_0200_885_9600740001_PROD.swidtag",
            "2024-06-01T00:00:00Z",
            None,
        ),
        (
            "nvtrust/g520_0202_885_96006D0008_PROD.swidtag",
            "2024-06-01T00:00:00Z",
            None,
        ),
        (
            "attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml",
            "2025-06-01T00:00:00Z",
            None,
        ),
        (
            "attestation-sdk/testdata/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml",
            "2026-08-01T00:00:00Z",
            None,
        ),
        (
            "attestation-sdk/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml",
            "2024-06-01T00:00:00Z",
            None,
        ),
        // Altered SignatureValue.
        (
            "attestation-sdk/testdata/incorrect_signature_driver_rim.xml",
            "2025-06-01T00:00:00Z",
            Some("rim_signature"),
        ),
        // Debug chain: the XML signature is fine, the chain does not reach the pinned root.
        (
            "attestation-sdk/testdata/incorrect_cert_chain_driver_rim.xml",
            "2026-01-01T00:00:00Z",
            Some("rim_chain"),
        ),
        // Altered after signing (digest mismatch).
        (
            "attestation-sdk/testdata/sample_rims/NV_SWITCH_BIOS_5612_0002_890_9610550001_invalid_signature.xml",
            "2025-06-01T00:00:00Z",
            Some("rim_signature"),
        ),
        (
            "attestation-sdk/testdata/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml",
            "2026-01-01T00:00:00Z",
            Some("rim_signature"),
        ),
        // Expired: its signer is valid only on 2025-01-01.
        (
            "attestation-sdk/testdata/sample_rims/NV_GPU_DRIVER_GH100_570.124.03_expired.xml",
            "2025-06-01T00:00:00Z",
            Some("rim_expired"),
        ),
        // Inside that day it is still refused: digest mismatch.
        (
            "attestation-sdk/testdata/sample_rims/NV_GPU_DRIVER_GH100_570.124.03_expired.xml",
            "2025-01-01T12:00:00Z",
            Some("rim_signature"),
        ),
    ];
    for (file, t, want) in cases {
        let Some(bytes) = common::read(&format!("nvidia-gpu/{file}")) else {
            return;
        };
        let parsed = rim::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = rim::verify(&parsed, at(t));
        match (want, got) {
            (None, Ok(_)) => {}
            (Some(w), Err(e)) => assert_eq!(check(&e), *w, "{file}: {e}"),
            (w, got) => panic!("{file}: expected {w:?}, got {got:?}"),
        }
    }
}

#[test]
fn driver_rim_550_144_03_fields_and_a_wrong_trust_anchor() {
    let Some(b) = common::read(&format!(
        "{SDK}/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml"
    )) else {
        return;
    };
    let r = rim::parse(&b).unwrap();
    assert_eq!(r.version, "550.144.03");
    assert_eq!(r.manufacturer_id.as_deref(), Some("5703"));
    let active: Vec<u32> = r
        .measurements
        .iter()
        .filter(|m| m.active)
        .map(|m| m.index)
        .collect();
    let mut want = vec![7];
    want.extend(21..=40);
    assert_eq!(active, want);
    let alts: Vec<(u32, usize)> = r
        .measurements
        .iter()
        .filter(|m| m.active && m.alternatives.len() > 1)
        .map(|m| (m.index, m.alternatives.len()))
        .collect();
    assert_eq!(
        alts,
        [
            (23, 2),
            (24, 2),
            (32, 2),
            (33, 2),
            (34, 2),
            (35, 4),
            (36, 3)
        ]
    );
    let v = rim::verify(&r, at("2025-06-01T00:00:00Z")).unwrap();
    assert_eq!(v.cert_expiration, "2026-12-30T16:56:50Z");
    // With the SDK's incorrect_rim_root.crt as the anchor: refused.
    let pem = common::read(&format!("{SDK}/testdata/incorrect_rim_root.crt")).unwrap();
    let der = enclava_evidence::pem::certificates(&pem).unwrap().remove(0);
    let e = rim::verify_with_root_der(&r, &der, at("2025-06-01T00:00:00Z")).unwrap_err();
    assert_eq!(check(&e), "rim_chain", "{e}");
    // Outside its window.
    let e = rim::verify(&r, at("2026-12-30T16:56:51Z")).unwrap_err();
    assert_eq!(check(&e), "rim_expired");
}

#[test]
fn the_embedded_root_is_never_the_trust_anchor() {
    // The debug-chain RIM carries its own self-signed "Debug Only" root: the signature verifies
    // under the embedded leaf, and the chain to that root is complete, yet it is refused.
    let Some(b) = common::read(&format!(
        "{SDK}/testdata/incorrect_cert_chain_driver_rim.xml"
    )) else {
        return;
    };
    let r = rim::parse(&b).unwrap();
    let e = rim::verify(&r, at("2026-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(check(&e), "rim_chain");
    assert!(e.to_string().contains("Debug Only"), "{e}");
}

#[test]
fn switch_complete_offline_appraisal() {
    let Some(r) = report(&format!("{SDK}/testdata/switchAttestationReport.txt")) else {
        return;
    };
    let chain = common::read(&format!("{SDK}/testdata/switchCertChain.txt")).unwrap();
    let rimb = common::read(&format!(
        "{SDK}/testdata/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml"
    ))
    .unwrap();
    let c = nvidia::verify(
        &r,
        &chain,
        &[&rimb],
        Some(&nonce(NONCE_931D)),
        switch_time(),
    )
    .unwrap();
    assert_eq!(c.device, "switch");
    assert_eq!(c.arch, "LS10");
    assert_eq!(c.hwmodel, "LS_10 A01 FSP BROM");
    assert_eq!(c.ueid, "694931143880983876767046803400974855445978836716");
    assert_eq!(c.vbios_version.as_deref(), Some("96.10.55.00.01"));
    assert_eq!(c.driver_version, None);
    assert_eq!(c.measurement_blocks, 31);
    assert_eq!(c.measres, "success");
    assert_eq!(c.measurements.len(), 31);
    assert!(
        c.measurements
            .iter()
            .all(|m| m.result == "match" && m.rim == "bios")
    );
    assert_eq!(c.switch_lock_status.as_deref(), Some("0100"));
    assert!(!c.fwid_checked);
    // NRAS staging claims for this report.
    let nras: serde_json::Value = serde_json::from_slice(
        &common::read(&format!(
            "{SDK}/testdata/sample_attestation_data/switch_decoded.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(nras["SWITCH-0"]["ueid"], c.ueid.as_str());
    assert_eq!(
        nras["SWITCH-0"]["x-nvidia-switch-bios-version"],
        "96.10.55.00.01"
    );
    // Nonce 00..00.
    let e = nvidia::verify(&r, &chain, &[&rimb], Some(&[0u8; 32]), switch_time()).unwrap_err();
    assert_eq!(check(&e), "nonce");
    // The invalid-signature RIM (indices 0 and 1 set to aa..aa).
    let bad = common::read(&format!(
        "{SDK}/testdata/sample_rims/NV_SWITCH_BIOS_5612_0002_890_9610550001_invalid_signature.xml"
    ))
    .unwrap();
    // Inside its signer's window (it was signed by an older LS10 signer, valid to 2026-05-20).
    let e = nvidia::verify(&r, &chain, &[&bad], None, at("2025-06-01T00:00:00Z")).unwrap_err();
    assert_eq!(check(&e), "rim_signature");
    let parsed = spdm::parse(&r).unwrap();
    assert_eq!(
        mismatches(&parsed, &rim::parse(&bad).unwrap(), true),
        [0, 1]
    );
    // The relabelled GH100 VBIOS RIM: 11 of the 12 compared indices mismatch, unverified; and
    // it is refused when verified (digest mismatch and GPU edition).
    let mm = common::read(&format!(
        "{SDK}/testdata/sample_rims/NV_SWITCH_BIOS_5612_0002_890_9610550001_measurement_mismatch.xml"
    ))
    .unwrap();
    let mmr = rim::parse(&mm).unwrap();
    assert_eq!(
        mismatches(&parsed, &mmr, true),
        [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
    );
    assert!(nvidia::verify(&r, &chain, &[&mm], None, switch_time()).is_err());
    // The JSON forms: one copy, four copies.
    for (f, n) in [
        ("switch_evidence_ls10.json", 1),
        ("multi_switch_ls10.json", 4),
    ] {
        let list = parse_evidence_list(
            &common::read(&format!("{SDK}/serialized_test_evidence/{f}")).unwrap(),
        )
        .unwrap();
        assert_eq!(list.len(), n);
        let parsed_rims = vec![rim::parse(&rimb).unwrap()];
        for d in &list {
            assert_eq!(d.report, r);
            let c = nvidia::verify_device(d, &parsed_rims, Some(&nonce(NONCE_931D)), switch_time())
                .unwrap();
            assert_eq!(c.measres, "success");
        }
    }
}

#[test]
fn switch_invalid_signature_report() {
    let Some(r) = report(&format!(
        "{SDK}/testdata/sample_attestation_data/switch/switchAttestationReportInvalidSignature.txt"
    )) else {
        return;
    };
    let chain = common::read(&format!("{SDK}/testdata/switchCertChain.txt")).unwrap();
    let e = nvidia::verify(&r, &chain, &[], None, switch_time()).unwrap_err();
    assert_eq!(check(&e), "report_signature", "{e}");
    let p = spdm::parse(&r).unwrap();
    assert_eq!(
        hex::encode(p.request_nonce),
        "ea038ed507a451e005bae91186bc9403150a3cb8971fdebd05ffed65eeb6a997"
    );
    assert_eq!(p.vbios_version().as_deref(), Some("96.10.52.00.00"));
}

#[test]
fn gpu_invalid_signature_report() {
    let Some(r) = report(&format!(
        "{SDK}/testdata/sample_attestation_data/gpu/hopperAttestationReportInvalidSignature.txt"
    )) else {
        return;
    };
    for chain in [
        "testdata/sample_attestation_data/gpu/hopperCertChainExpired.txt",
        "testdata/sample_attestation_data/gpu/hopperCertChain.txt",
        "testdata/hopperCertChain.txt",
    ] {
        let ch = common::read(&format!("{SDK}/{chain}")).unwrap();
        let e = nvidia::verify(&r, &ch, &[], None, case1_time()).unwrap_err();
        assert_eq!(check(&e), "report_signature", "{chain}: {e}");
    }
    let p = spdm::parse(&r).unwrap();
    assert_eq!(p.driver_version().as_deref(), Some("560.00"));
    assert_eq!(p.vbios_version().as_deref(), Some("96.00.A5.00.01"));
}

#[test]
fn a_report_with_another_devices_chain_fails_the_signature() {
    let Some(r) = report(&format!("{NT}/attestationReport.txt")) else {
        return;
    };
    let other = common::read(&format!("{NT}/hopperCertChain.txt")).unwrap();
    let e = nvidia::verify(&r, &other, &[], None, case1_time()).unwrap_err();
    assert_eq!(check(&e), "report_signature");
}

#[test]
fn trustee_chain_cases() {
    let Some(r) = report(&format!("{TR}/hopperAttestationReport.txt")) else {
        return;
    };
    let t = case1_time();
    let ch = |n: u32| common::read(&format!("{TR}/hopper_cert_chain_case{n}.txt")).unwrap();
    nvidia::verify(&r, &ch(1), &[], Some(&nonce(NONCE_931D)), t).unwrap();
    // Root only.
    assert_eq!(
        check(&nvidia::verify(&r, &ch(2), &[], None, t).unwrap_err()),
        "cert_chain"
    );
    // Provisioner ICA missing.
    assert_eq!(
        check(&nvidia::verify(&r, &ch(3), &[], None, t).unwrap_err()),
        "cert_chain"
    );
    // Leaf missing: the chain is fine but the BROM key did not sign the report.
    assert_eq!(
        check(&nvidia::verify(&r, &ch(4), &[], None, t).unwrap_err()),
        "report_signature"
    );
    // The chain without its root is completed with the pinned root.
    let pem = String::from_utf8(ch(1)).unwrap();
    let blocks: Vec<&str> = pem.split_inclusive("-----END CERTIFICATE-----").collect();
    let without_root: String = blocks[..4].concat();
    nvidia::verify(&r, without_root.as_bytes(), &[], None, t).unwrap();
    // Out of order: refused.
    let swapped = [blocks[1], blocks[0], blocks[2], blocks[3], blocks[4]].concat();
    assert_eq!(
        check(&nvidia::verify(&r, swapped.as_bytes(), &[], None, t).unwrap_err()),
        "cert_chain"
    );
    // A self-signed root that is not the pinned one (the RIM root here).
    let fake = [
        blocks[..4].concat(),
        nvidia::roots::RIM_ROOT_PEM.to_string(),
    ]
    .concat();
    let e = nvidia::verify(&r, fake.as_bytes(), &[], None, t).unwrap_err();
    assert_eq!(check(&e), "cert_chain");
    // Before the device CA's notBefore (2021-11-05).
    let e = nvidia::verify(&r, &ch(1), &[], None, at("2021-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(check(&e), "certificate_expired");
}

#[test]
fn trustee_coco_report_with_a_trailing_byte() {
    let Some(r) = report(&format!("{TR}/hopper_coco_report1.txt")) else {
        return;
    };
    let chain = common::read(&format!("{TR}/hopper_coco_certs1.txt")).unwrap();
    let c = nvidia::verify(
        &r,
        &chain,
        &[],
        Some(&nonce(
            "87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec",
        )),
        case1_time(),
    )
    .unwrap();
    assert!(c.fwid_checked);
    assert_eq!(spdm::parse(&r).unwrap().trailing_bytes, 1);
}

#[test]
fn trustee_expected_claims() {
    let Some(r) = report(&format!("{TR}/hopperAttestationReport.txt")) else {
        return;
    };
    let expected: serde_json::Value = serde_json::from_slice(
        &common::read(&format!("{TR}/hopperAttestationReport-claims.txt")).unwrap(),
    )
    .unwrap();
    let p = spdm::parse(&r).unwrap();
    let cfg = &expected["config"];
    assert_eq!(cfg["driver_version"], p.driver_version().unwrap().as_str());
    assert_eq!(
        cfg["vbios_version"],
        p.vbios_version().unwrap().to_ascii_lowercase().as_str()
    );
    assert_eq!(
        cfg["fwid"],
        hex::encode(p.field(spdm::opaque::FWID).unwrap()).as_str()
    );
    let m = expected["measurements"].as_object().unwrap();
    assert_eq!(m.len(), 64);
    for b in &p.blocks {
        assert_eq!(
            m[&b.index.to_string()],
            hex::encode(&b.value).as_str(),
            "block {}",
            b.index
        );
    }
}

#[test]
fn sdk_parsed_output_matches_every_field() {
    for (rep, req_json, resp_json) in [
        (
            "hopperAttestationReport.txt",
            "spdm_req_parsed_output.json",
            "spdm_parsed_output.json",
        ),
        (
            "switchAttestationReport.txt",
            "switch_spdm_req_parsed_output.json",
            "switch_spdm_parsed_output.json",
        ),
    ] {
        let Some(r) = report(&format!("{SDK}/testdata/{rep}")) else {
            return;
        };
        let req: serde_json::Value =
            serde_json::from_slice(&common::read(&format!("{SDK}/testdata/{req_json}")).unwrap())
                .unwrap();
        let resp: serde_json::Value =
            serde_json::from_slice(&common::read(&format!("{SDK}/testdata/{resp_json}")).unwrap())
                .unwrap();
        let p = spdm::parse(&r).unwrap();
        assert_eq!(req["Nonce"], format!("0x{}", hex::encode(p.request_nonce)));
        assert_eq!(
            resp["Nonce"],
            format!("0x{}", hex::encode(p.response_nonce))
        );
        assert_eq!(resp["NumberOfBlocks"], p.number_of_blocks as u64);
        assert_eq!(
            resp["Signature"],
            format!("0x{}", hex::encode(p.signature)),
            "{rep}"
        );
        let blocks = resp["MeasurementRecord"]["MeasurementBlocks"]
            .as_object()
            .unwrap();
        assert_eq!(blocks.len(), p.blocks.len());
        for b in &p.blocks {
            let e = &blocks[&b.index.to_string()];
            assert_eq!(e["DMTFSpecMeasurementValueType"], b.value_type as u64);
            assert_eq!(
                e["DMTFSpecMeasurementValue"],
                format!("0x{}", hex::encode(&b.value))
            );
        }
        let op = resp["OpaqueData"]["OpaqueDataField"].as_object().unwrap();
        assert_eq!(
            op["OPAQUE_FIELD_ID_VBIOS_VERSION"],
            format!(
                "0x{}",
                hex::encode(p.field(spdm::opaque::VBIOS_VERSION).unwrap())
            )
        );
        if let Some(f) = op.get("OPAQUE_FIELD_ID_FWID") {
            assert_eq!(
                *f,
                format!("0x{}", hex::encode(p.field(spdm::opaque::FWID).unwrap()))
            );
        }
    }
}

#[test]
fn blackwell_report_chain_and_tcbinfo_fwid() {
    let Some(r) = report(&format!(
        "{SDK}/testdata/sample_attestation_data/gpu/blackwellAttestationReport.txt"
    )) else {
        return;
    };
    let chain = common::read(&format!(
        "{SDK}/testdata/sample_attestation_data/gpu/blackwellCertChain.txt"
    ))
    .unwrap();
    let c = nvidia::verify(&r, &chain, &[], None, case1_time()).unwrap();
    assert_eq!(c.arch, "BLACKWELL");
    assert_eq!(c.hwmodel, "GB100 A01 GSP BROM");
    assert_eq!(c.ueid, "474146966256510137525212816567191319424869109849");
    assert_eq!(c.driver_version.as_deref(), Some("575.32"));
    assert_eq!(c.vbios_version.as_deref(), Some("97.00.88.00.0F"));
    assert!(c.fwid_checked);
    assert!(c.fwid.unwrap().starts_with("d090cab1"));
}

#[test]
fn sdk_gpu_vectors_signature_chain_fwid() {
    for (rep, ch, n, drv, vb) in [
        (
            "testdata/hopperAttestationReport.txt",
            "testdata/hopperCertChain.txt",
            "5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca",
            "580.159.03",
            "96.00.74.00.20",
        ),
        (
            "testdata/sample_attestation_data/gpu/hopperAttestationReportExpired.txt",
            "testdata/sample_attestation_data/gpu/hopperCertChainExpired.txt",
            NONCE_931D,
            "570.124.03",
            "96.00.5E.00.04",
        ),
    ] {
        let Some(r) = report(&format!("{SDK}/{rep}")) else {
            return;
        };
        let ch = common::read(&format!("{SDK}/{ch}")).unwrap();
        let c = nvidia::verify(&r, &ch, &[], Some(&nonce(n)), at("2026-06-01T00:00:00Z")).unwrap();
        assert_eq!(c.driver_version.as_deref(), Some(drv));
        assert_eq!(c.vbios_version.as_deref(), Some(vb));
        assert!(c.fwid_checked, "{rep}");
    }
    let c = {
        let Some(r) = report(&format!("{SDK}/testdata/hopperAttestationReport.txt")) else {
            return;
        };
        let ch = common::read(&format!("{SDK}/testdata/hopperCertChain.txt")).unwrap();
        nvidia::verify(&r, &ch, &[], None, case1_time()).unwrap()
    };
    assert_eq!(c.ueid, "509096176156678437554566035365892618958504054724");
}

#[test]
fn json_evidence_lists() {
    let at_ = case1_time();
    for (file, count, n, arch) in [
        ("nvtrust/gpu_evidence.json", 8, NONCE_4760, "HOPPER"),
        ("nvtrust/switch_evidence.json", 4, NONCE_4760, "LS10"),
        (
            "attestation-sdk/serialized_test_evidence/hopper_evidence.json",
            1,
            NONCE_HOPPER_LATEST,
            "HOPPER",
        ),
        (
            "attestation-sdk/serialized_test_evidence/multi_gpu_hopper.json",
            4,
            NONCE_HOPPER_LATEST,
            "HOPPER",
        ),
        (
            "attestation-sdk/serialized_test_evidence/hopper_evidence_cert_hold.json",
            1,
            NONCE_931D,
            "HOPPER",
        ),
    ] {
        let Some(bytes) = common::read(&format!("nvidia-gpu/{file}")) else {
            return;
        };
        let list = parse_evidence_list(&bytes).unwrap();
        assert_eq!(list.len(), count, "{file}");
        let mut leaves = std::collections::BTreeSet::new();
        for d in &list {
            let c = nvidia::verify_device(d, &[], Some(&nonce(n)), at_)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(c.arch, arch);
            if arch == "HOPPER" {
                assert!(c.fwid_checked, "{file}");
            } else {
                assert!(!c.fwid_checked);
                assert_eq!(c.vbios_version.as_deref(), Some("96.10.73.00.01"));
            }
            leaves.insert(c.leaf_cert_sha256);
        }
        assert_eq!(leaves.len(), count, "{file}: every device has its own leaf");
    }
    // Versions of the 8-GPU set.
    let Some(bytes) = common::read(&format!("{NT}/gpu_evidence.json")) else {
        return;
    };
    let list = parse_evidence_list(&bytes).unwrap();
    let c = nvidia::verify_device(&list[0], &[], None, at_).unwrap();
    assert_eq!(c.driver_version.as_deref(), Some("590.12"));
    assert_eq!(c.vbios_version.as_deref(), Some("96.00.A5.00.01"));
    assert_eq!(
        (
            c.project.as_deref(),
            c.project_sku.as_deref(),
            c.chip_sku.as_deref()
        ),
        (Some("G520"), Some("0200"), Some("885"))
    );
    // The unsigned JSON fields must agree with the signed report.
    let mut d = list[0].clone();
    d.nonce = Some(vec![0; 32]);
    assert_eq!(
        check(&nvidia::verify_device(&d, &[], None, at_).unwrap_err()),
        "malformed_evidence"
    );
    let mut d = list[0].clone();
    d.arch = Some("BLACKWELL".into());
    assert_eq!(
        check(&nvidia::verify_device(&d, &[], None, at_).unwrap_err()),
        "malformed_evidence"
    );
    // Malformed lists.
    for bad in [
        &b"{}"[..],
        b"[]",
        b"[{\"evidence\":\"!!\",\"certificate\":\"\"}]",
        b"not json",
    ] {
        assert_eq!(
            check(&parse_evidence_list(bad).unwrap_err()),
            "malformed_evidence"
        );
    }
}

/// `f(0..n)` on a few threads (the flip tests run tens of thousands of verifications).
fn par_each(n: usize, f: impl Fn(usize) + Sync) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |p| p.get())
        .min(4);
    std::thread::scope(|s| {
        for k in 0..threads {
            let f = &f;
            s.spawn(move || {
                for i in (k..n).step_by(threads) {
                    f(i);
                }
            });
        }
    });
}

/// Every single-byte flip of the signed region of a report, and every truncation, is refused
/// without a panic.
#[test]
fn report_byte_flips_and_truncations_are_refused() {
    let Some(c) = case1() else { return };
    let signed_len = spdm::parse(&c.report).unwrap().signed.len();
    let chain = c.chain.clone();
    let t = case1_time();
    // Without RIMs, over every signed byte and every signature byte.
    par_each(c.report.len(), |i| {
        let mut b = c.report.clone();
        b[i] ^= 0x01;
        let r = nvidia::verify(&b, &chain, &[], None, t);
        assert!(
            r.is_err(),
            "flip at byte {i} (signed up to {signed_len}) accepted"
        );
    });
    for n in 0..c.report.len() {
        assert!(
            nvidia::verify(&c.report[..n], &chain, &[], None, t).is_err(),
            "prefix {n}"
        );
    }
}

/// Every single-byte change of a RIM (any byte can change the canonical form, so every byte is
/// part of the signed region or of the signature) is refused, without a panic; and every
/// truncation.
#[test]
fn rim_byte_flips_and_truncations_are_refused() {
    let Some(c) = case1() else { return };
    let t = case1_time();
    let good = rim::parse(&c.vbios).unwrap();
    rim::verify(&good, t).unwrap();
    let accepted = std::sync::Mutex::new(Vec::new());
    par_each(c.vbios.len(), |i| {
        let mut b = c.vbios.clone();
        // Flip to another printable character so most flips still parse and reach the digest.
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        if let Ok(r) = rim::parse(&b)
            && rim::verify(&r, t).is_ok()
        {
            accepted.lock().unwrap().push(i);
        }
    });
    let mut accepted = accepted.into_inner().unwrap();
    accepted.sort();
    // KeyInfo is outside the signed document (enveloped signature), and its certificates are
    // trusted only through the pinned chain: the one change that survives is inside the embedded
    // root certificate, which the verifier never uses.
    let text = String::from_utf8(c.vbios.clone()).unwrap();
    let root_start = text.rfind("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let root_end = text.rfind("</ds:X509Certificate>").unwrap();
    assert!(
        accepted.iter().all(|i| (root_start..root_end).contains(i)),
        "accepted flips outside the embedded root: {:?}",
        accepted
            .iter()
            .filter(|i| !(root_start..root_end).contains(i))
            .collect::<Vec<_>>()
    );
    // Every truncation that cuts into the document element (dropping only the final newline
    // leaves the same document).
    // Every prefix length in the signature part and the document's end, every 5th before (each
    // failing parse reads the whole prefix, so all 20000 would be quadratic).
    let doc_end = text.trim_end().len();
    let sig_start = text.find("<ds:Signature").unwrap();
    par_each(doc_end, |n| {
        if n >= sig_start || n % 5 == 0 {
            assert!(rim::parse(&c.vbios[..n]).is_err(), "prefix {n} parses");
        }
    });
}

#[test]
fn garbage_is_a_typed_error() {
    for b in [&b""[..], b"\x11\xe0\x01\xff", &[0xFF; 4000]] {
        assert_eq!(check(&spdm::parse(b).unwrap_err()), "malformed_report");
    }
    for b in [&b""[..], b"<x/>", b"<SoftwareIdentity/>", b"\xff\xfe"] {
        assert_eq!(check(&rim::parse(b).unwrap_err()), "malformed_rim");
    }
    let Some(c) = case1() else { return };
    assert_eq!(
        check(&nvidia::verify(&c.report, b"junk", &[], None, case1_time()).unwrap_err()),
        "malformed_certificate"
    );
}

/// XML-DSig attacks on a real signed RIM, each performed on the document text: all refused.
#[test]
fn rim_xml_signature_attacks_are_refused() {
    let Some(c) = case1() else { return };
    let t = case1_time();
    let text = String::from_utf8(c.driver.clone()).unwrap();
    let sig_start = text.find("<ds:Signature").unwrap();
    let sig_end = text.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let signature = &text[sig_start..sig_end];
    let verdict = |doc: &str| -> Result<(), &'static str> {
        let r = rim::parse(doc.as_bytes()).map_err(|e| check(&e))?;
        rim::verify(&r, t).map(|_| ()).map_err(|e| check(&e))
    };
    assert_eq!(verdict(&text), Ok(()));
    // Changing a reference value.
    let changed = text.replacen(
        "0e0ee161b59bf124ce6b6dca6efa7616d28077862c0e57dca7d5efd63d00eeed4851922941e846a38c464cbedbc168d9",
        "0e0ee161b59bf124ce6b6dca6efa7616d28077862c0e57dca7d5efd63d00eeed4851922941e846a38c464cbedbc168d8",
        1,
    );
    assert_ne!(changed, text);
    assert_eq!(verdict(&changed), Err("rim_signature"));
    // Wrapping: a second (copied, valid) Signature beside the first, or inside the Payload.
    let wrapped = text.replacen("</ns0:Payload>", &format!("</ns0:Payload>{signature}"), 1);
    assert_eq!(verdict(&wrapped), Err("rim_signature"));
    let inside = text.replacen("</ns0:Payload>", &format!("{signature}</ns0:Payload>"), 1);
    assert!(verdict(&inside).is_err());
    // The reference pointed elsewhere, another transform, another canonicalization.
    for (from, to) in [
        ("URI=\"\"", "URI=\"#x\""),
        (
            "<ds:Transform Algorithm=\"http://www.w3.org/2006/12/xml-c14n11\"/>",
            "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        ),
        (
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2006/12/xml-c14n11\"/>",
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments\"/>",
        ),
        ("xmldsig-more#ecdsa-sha384", "xmldsig-more#ecdsa-sha256"),
        (
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "",
        ),
    ] {
        let doc = text.replacen(from, to, 1);
        assert_ne!(doc, text, "{from}");
        assert_eq!(verdict(&doc), Err("rim_signature"), "{from} -> {to}");
    }
    // A DOCTYPE with an entity, a processing instruction, a CDATA section.
    let doctype = format!("<!DOCTYPE x [<!ENTITY e \"v\">]>{text}");
    assert_eq!(verdict(&doctype), Err("malformed_rim"));
    let pi = text.replacen("</ns0:Payload>", "<?x y?></ns0:Payload>", 1);
    assert_eq!(verdict(&pi), Err("malformed_rim"));
    // The signature moved out of the document element: not enveloped.
    let moved = format!(
        "<w xmlns=\"http://standards.iso.org/iso/19770/-2/2015/schema.xsd\">{}</w>",
        text.trim_end()
    );
    assert!(verdict(&moved).is_err());
    // Only the signer's chain counts: dropping the embedded intermediates breaks it.
    let leaf_end = signature.find("</ds:X509Certificate>").unwrap() + "</ds:X509Certificate>".len();
    let x509_end = signature.find("</ds:X509Data>").unwrap();
    let only_leaf = text.replacen(&signature[leaf_end..x509_end], "", 1);
    assert_eq!(verdict(&only_leaf), Err("rim_chain"));
    // What canonicalization removes (a comment, CR LF line ends, attribute order, quote style)
    // does not change the signed content, so the document still verifies.
    let cosmetic = text
        .replacen("</ns0:Payload>", "<!-- note --></ns0:Payload>", 1)
        .replace('\n', "\r\n")
        .replacen(
            "name=\"GH100\" patch=\"false\"",
            "patch='false' name=\"GH100\"",
            1,
        );
    assert_eq!(verdict(&cosmetic), Ok(()));
}
