//! AMD SEV-SNP verification against the real vectors in `../shared/vectors/sev-snp` (and the SNP
//! report embedded in an Azure HCL report). Expected values come from each folder's MANIFEST.md.

mod common;

use chrono::{DateTime, Utc};
use enclava_evidence::error::FailedCheck;
use enclava_evidence::snp::{
    self, Endorsements, Product, SigningKey, SnpError, SnpVerifier, certs_from_pem_or_der,
    parse_report, verify, verify_chain,
};
use enclava_evidence::{Claims, Tee};
use proptest::prelude::*;

const G: &str = "sev-snp/google-go-sev-guest";
const T: &str = "sev-snp/trustee";
const V: &str = "sev-snp/virtee-sev";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A time inside the validity of every non-Google leaf used here (the VLEK is valid
/// 2024-12-10..2025-12-10, the Genoa VCEK from 2025-05-27).
fn mid2025() -> DateTime<Utc> {
    at("2025-06-01T00:00:00Z")
}

fn google_time() -> DateTime<Utc> {
    at("2022-09-24T01:00:00Z")
}

/// Endorsements from vector files, each PEM or DER.
fn endorse(files: &[&str]) -> Option<Endorsements> {
    let mut certs_der = Vec::new();
    for f in files {
        certs_der.extend(certs_from_pem_or_der(&common::read(f)?).unwrap());
    }
    Some(Endorsements {
        certs_der,
        crls_der: Vec::new(),
    })
}

struct Case {
    name: &'static str,
    report: Vec<u8>,
    endorsements: Endorsements,
    at: DateTime<Utc>,
}

fn google() -> Option<Case> {
    Some(Case {
        name: "google milan",
        report: common::read(&format!("{G}/attestation.bin"))?,
        endorsements: endorse(&[&format!("{G}/vcek.testcer"), &format!("{G}/milan.testcer")])?,
        at: google_time(),
    })
}

fn trustee() -> Option<Case> {
    Some(Case {
        name: "trustee milan",
        report: common::read(&format!("{T}/test-report.bin"))?,
        endorsements: endorse(&[
            &format!("{T}/test-vcek.der"),
            &format!("{G}/ask_ark_milan.pem"),
        ])?,
        at: mid2025(),
    })
}

fn trustee_vlek() -> Option<Case> {
    Some(Case {
        name: "trustee milan vlek",
        report: common::read(&format!("{T}/test-vlek-report.bin"))?,
        endorsements: endorse(&[
            &format!("{T}/test-vlek.der"),
            &format!("{G}/ask_ark_milan_vlek.pem"),
        ])?,
        at: mid2025(),
    })
}

fn trustee_genoa() -> Option<Case> {
    Some(Case {
        name: "trustee genoa",
        report: common::read(&format!("{T}/derived_e2e_evidence_report.bin"))?,
        endorsements: endorse(&[
            &format!("{T}/derived_e2e_evidence_vcek.der"),
            &format!("{G}/ask_ark_genoa.pem"),
        ])?,
        at: mid2025(),
    })
}

fn virtee() -> Option<Case> {
    let hex_text = common::read(&format!("{V}/report_milan.hex"))?;
    let report = hex::decode(String::from_utf8(hex_text).unwrap().trim()).unwrap();
    Some(Case {
        name: "virtee milan",
        report,
        endorsements: endorse(&[
            &format!("{V}/vcek_milan.der"),
            &format!("{V}/cert_chain_milan"),
        ])?,
        at: mid2025(),
    })
}

fn all_cases() -> Vec<Case> {
    [
        google(),
        trustee(),
        trustee_vlek(),
        trustee_genoa(),
        virtee(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn snp_of(c: &Claims) -> &snp::SnpClaims {
    c.snp.as_ref().expect("snp claims")
}

fn code(r: Result<Claims, SnpError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.failed_check(),
    }
}

#[test]
fn google_milan_v2() {
    let Some(c) = google() else { return };
    assert_eq!(c.report.len(), 1184);
    let claims = verify(&c.report, &c.endorsements, c.at).unwrap();
    let s = snp_of(&claims);
    assert_eq!(claims.tee, Tee::Snp);
    assert_eq!(
        claims.measurement,
        "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
    );
    let mut rd = vec![1u8, 2, 3, 4, 5];
    rd.resize(64, 0);
    assert_eq!(claims.report_data, hex::encode(&rd));
    assert_eq!(
        s.chip_id,
        "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"
    );
    // reported TCB u64 4901323769462652930 = 0x4405000000000002: bl=2 tee=0 snp=5 ucode=0x44.
    assert_eq!(
        s.reported_tcb.raw,
        hex::encode(4901323769462652930u64.to_le_bytes())
    );
    assert_eq!(
        (
            s.reported_tcb.bootloader,
            s.reported_tcb.tee,
            s.reported_tcb.snp,
            s.reported_tcb.microcode
        ),
        (2, 0, 5, 0x44)
    );
    assert_eq!(s.reported_tcb.fmc, None);
    // policy 0xb0000: debug + SMT (+ reserved bit 17).
    assert_eq!(s.policy.raw, 0xb0000);
    assert!(s.policy.debug && s.policy.smt && !s.policy.migrate_ma && !s.policy.single_socket);
    assert_eq!((s.policy.abi_major, s.policy.abi_minor), (0, 0));
    assert!(claims.debug);
    assert_eq!(s.current_version, "1.49.3");
    assert_eq!(s.version, 2);
    assert_eq!(s.product, Product::Milan);
    assert_eq!(s.signing_key, SigningKey::Vcek);
    assert_eq!(s.cpuid, None);
    assert_eq!(claims.tcb_status, None);
    assert!(claims.advisory_ids.is_empty());
}

#[test]
fn trustee_milan_v2() {
    let Some(c) = trustee() else { return };
    let claims = verify(&c.report, &c.endorsements, c.at).unwrap();
    let s = snp_of(&claims);
    assert!(s.chip_id.starts_with("c38427a3"));
    assert_eq!(s.reported_tcb.raw, "0300000000000873");
    assert_eq!(
        claims.measurement,
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );
    assert_eq!(
        (s.product, s.signing_key, s.version),
        (Product::Milan, SigningKey::Vcek, 2)
    );
    assert!(!claims.debug);
}

#[test]
fn trustee_milan_vlek_v3() {
    let Some(c) = trustee_vlek() else { return };
    let claims = verify(&c.report, &c.endorsements, c.at).unwrap();
    let s = snp_of(&claims);
    assert_eq!(s.signing_key, SigningKey::Vlek);
    assert_eq!(s.chip_id, "00".repeat(64));
    assert_eq!(s.reported_tcb.raw, "04000000000018d9");
    assert!(claims.measurement.starts_with("8922ebbd") && claims.measurement.ends_with("7bf0"));
    assert_eq!(s.version, 3);
    assert_eq!(s.product, Product::Milan);
    let cpuid = s.cpuid.unwrap();
    assert_eq!((cpuid.family, cpuid.model), (0x19, 0x01));
    assert!(s.csp_id.is_some());
}

#[test]
fn trustee_genoa_v3() {
    let Some(c) = trustee_genoa() else { return };
    let claims = verify(&c.report, &c.endorsements, c.at).unwrap();
    let s = snp_of(&claims);
    assert_eq!(
        claims.measurement,
        "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e"
    );
    assert_eq!(s.current_version, "1.55.40");
    assert_eq!(
        (
            s.reported_tcb.bootloader,
            s.reported_tcb.snp,
            s.reported_tcb.microcode
        ),
        (10, 23, 25)
    );
    assert_eq!(s.product, Product::Genoa);
    let cpuid = s.cpuid.unwrap();
    assert_eq!((cpuid.family, cpuid.model), (0x19, 0xA0));
}

#[test]
fn virtee_milan_v2() {
    let Some(c) = virtee() else { return };
    assert_eq!(c.report.len(), 1184);
    let claims = verify(&c.report, &c.endorsements, c.at).unwrap();
    let s = snp_of(&claims);
    assert_eq!(
        claims.measurement,
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert!(s.chip_id.starts_with("d49554ec"));
    assert_eq!(s.reported_tcb.raw, "0300000000000873");
    assert_eq!(s.current_version, "1.52.4");
}

#[test]
fn turin_vcek_chain() {
    let Some(e) = endorse(&[
        &format!("{V}/vcek_turin.der"),
        &format!("{V}/cert_chain_turin"),
    ]) else {
        return;
    };
    let chain = verify_chain(&e, mid2025()).unwrap();
    assert_eq!(chain.product, Product::Turin);
    assert_eq!(chain.signing_key, SigningKey::Vcek);
    assert_eq!(
        chain.hw_id.as_deref().map(hex::encode).as_deref(),
        Some("1e550a8ee5cf9f4d")
    );
    assert_eq!(chain.tcb.fmc, Some(0));
    assert_eq!(chain.tcb.microcode, 9);
    // Outside the VCEK's validity (2024-11-06..2031-11-06).
    let err = verify_chain(&e, at("2024-11-01T00:00:00Z")).unwrap_err();
    assert_eq!(err.failed_check(), "certificate_expired");
    // The same VCEK against the Milan hierarchy.
    let wrong = endorse(&[
        &format!("{V}/vcek_turin.der"),
        &format!("{G}/ask_ark_milan.pem"),
    ])
    .unwrap();
    assert_eq!(
        verify_chain(&wrong, mid2025()).unwrap_err().failed_check(),
        "cert_chain_signature"
    );
}

#[test]
fn all_vlek_and_vcek_bundles_chain_to_pinned_roots() {
    for (f, product) in [
        ("ask_ark_milan.pem", Product::Milan),
        ("ask_ark_milan_vlek.pem", Product::Milan),
        ("ask_ark_genoa.pem", Product::Genoa),
        ("ask_ark_genoa_vlek.pem", Product::Genoa),
        ("ask_ark_turin_vcek.pem", Product::Turin),
        ("ask_ark_turin_vlek.pem", Product::Turin),
    ] {
        let Some(bytes) = common::read(&format!("{G}/{f}")) else {
            return;
        };
        let certs = certs_from_pem_or_der(&bytes).unwrap();
        assert_eq!(certs.len(), 2, "{f}");
        // The second certificate is the ARK: it must be the pinned one, byte for byte.
        let pinned = certs_from_pem_or_der(snp::roots::ark_pem(product).as_bytes()).unwrap();
        assert_eq!(pinned, vec![certs[1].clone()], "{f}");
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&certs[1])),
            snp::roots::ark_sha256(product)
        );
    }
}

/// The two trustee "invalid" VCEKs are well-formed DER (one with a raw, one with an
/// OCTET-STRING-wrapped hwID), but their signatures were not made by the Milan ASK, so the chain
/// fails; they must never verify.
#[test]
fn trustee_invalid_vceks_are_rejected() {
    let Some(c) = trustee() else { return };
    for f in ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"] {
        let e = endorse(&[&format!("{T}/{f}"), &format!("{G}/ask_ark_milan.pem")]).unwrap();
        let err = verify(&c.report, &e, c.at).unwrap_err();
        assert_eq!(err.failed_check(), "cert_chain_signature", "{f}: {err}");
        assert_eq!(
            verify_chain(&e, c.at).unwrap_err().failed_check(),
            "cert_chain_signature"
        );
    }
}

#[test]
fn azure_hcl_embedded_report() {
    let Some(hcl) = common::read("azure-cvm/trustee-az-snp-vtpm/hcl-report.bin") else {
        return;
    };
    let e = endorse(&["azure-cvm/trustee-az-snp-vtpm/vcek.pem"]).unwrap();
    assert_eq!(e.certs_der.len(), 3);
    let report = &hcl[0x20..0x20 + 1184];
    let claims = verify(report, &e, mid2025()).unwrap();
    let s = snp_of(&claims);
    assert_eq!(s.reported_tcb.raw, "0300000000000873");
    assert_eq!(s.product, Product::Milan);
}

/// kinvolk's HCL-embedded report comes with the chain of a different chip (da8a5695...): the
/// chain is valid on its own, the report must not verify under it.
#[test]
fn azure_hcl_report_with_another_chips_vcek() {
    let k = "azure-cvm/kinvolk-azure-cvm-tooling";
    let Some(hcl) = common::read(&format!("{k}/hcl-report-snp.bin")) else {
        return;
    };
    let e = endorse(&[&format!("{k}/certs.pem")]).unwrap();
    let chain = verify_chain(&e, mid2025()).unwrap();
    assert_eq!(chain.product, Product::Milan);
    assert!(hex::encode(chain.hw_id.unwrap()).starts_with("da8a5695"));
    let report = &hcl[0x20..0x20 + 1184];
    let parsed = parse_report(report).unwrap();
    assert!(hex::encode(parsed.chip_id).starts_with("3a5d5b1d"));
    assert_eq!(
        hex::encode(parsed.reported_tcb.to_le_bytes()),
        "0300000000000873"
    );
    assert!(hex::encode(parsed.measurement).starts_with("5a71e4ba"));
    assert!(hex::encode(parsed.measurement).ends_with("4508"));
    assert_eq!(code(verify(report, &e, mid2025())), "report_signature");
}

#[test]
fn verifier_cache_matches_cold_path() {
    let verifier = SnpVerifier::new();
    for (i, c) in all_cases().iter().enumerate() {
        let cold = verify(&c.report, &c.endorsements, c.at).unwrap();
        let warm1 = verifier.verify(&c.report, &c.endorsements, c.at).unwrap();
        let warm2 = verifier.verify(&c.report, &c.endorsements, c.at).unwrap();
        assert_eq!(cold, warm1, "{}", c.name);
        assert_eq!(cold, warm2, "{}", c.name);
        assert_eq!(verifier.cached_chains(), i + 1);
        // A cached chain is still time-checked and still checks the report's signature.
        let expired = verifier.verify(&c.report, &c.endorsements, at("2060-01-01T00:00:00Z"));
        assert_eq!(code(expired), "certificate_expired", "{}", c.name);
        let mut bad = c.report.clone();
        bad[0x90] ^= 1;
        assert_eq!(
            code(verifier.verify(&bad, &c.endorsements, c.at)),
            "report_signature"
        );
    }
}

#[test]
fn claims_json_field_names() {
    let Some(c) = google() else { return };
    let claims = verify(&c.report, &c.endorsements, c.at).unwrap();
    let v = serde_json::to_value(&claims).unwrap();
    assert_eq!(v["tee"], "snp");
    assert_eq!(v["snp"]["product"], "Milan");
    assert_eq!(v["snp"]["signing_key"], "vcek");
    assert_eq!(v["snp"]["current_version"], "1.49.3");
    assert_eq!(v["snp"]["reported_tcb"]["microcode"], 0x44);
    assert!(v["snp"]["reported_tcb"].get("fmc").is_none());
    assert_eq!(v["snp"]["policy"]["debug"], true);
    assert_eq!(v["snp"]["platform_info"]["smt_en"], true);
    assert!(v.get("tcb_status").is_none());
    let back: Claims = serde_json::from_value(v).unwrap();
    assert_eq!(back, claims);
}

const SIGNED_REGION_CODES: &[&str] = &[
    "report_signature",
    "malformed_report",
    "unsupported_report_version",
    "unsupported_signature_algorithm",
    "invalid_vmpl",
    "signing_key_mismatch",
];

#[test]
fn every_byte_flip_in_signed_region_fails() {
    let verifier = SnpVerifier::new();
    for c in all_cases() {
        assert_eq!(
            code(verifier.verify(&c.report, &c.endorsements, c.at)),
            "ok"
        );
        for i in 0..0x2A0 {
            for mask in [0x01u8, 0xFF] {
                let mut r = c.report.clone();
                r[i] ^= mask;
                let got = code(verifier.verify(&r, &c.endorsements, c.at));
                assert!(
                    SIGNED_REGION_CODES.contains(&got),
                    "{}: flipping byte {i:#x} with {mask:#x} gave {got}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn every_byte_flip_in_signature_fails() {
    let verifier = SnpVerifier::new();
    for c in all_cases() {
        for i in 0x2A0..0x4A0 {
            let mut r = c.report.clone();
            r[i] ^= 0x01;
            let got = code(verifier.verify(&r, &c.endorsements, c.at));
            assert!(
                got == "report_signature" || got == "malformed_report",
                "{}: flipping signature byte {i:#x} gave {got}",
                c.name
            );
        }
    }
}

#[test]
fn every_truncation_and_extension_errors() {
    for c in all_cases() {
        for len in 0..c.report.len() {
            let got = code(verify(&c.report[..len], &c.endorsements, c.at));
            assert_eq!(got, "malformed_report", "{} truncated to {len}", c.name);
            assert!(parse_report(&c.report[..len]).is_err());
        }
        let mut longer = c.report.clone();
        longer.push(0);
        assert_eq!(
            code(verify(&longer, &c.endorsements, c.at)),
            "malformed_report"
        );
    }
}

#[test]
fn wrong_product_chain() {
    let (Some(c), Some(e)) = (
        google(),
        endorse(&[
            &format!("{G}/vcek.testcer"),
            &format!("{G}/ask_ark_genoa.pem"),
        ]),
    ) else {
        return;
    };
    let got = code(verify(&c.report, &e, c.at));
    assert!(
        got == "cert_chain_signature" || got == "untrusted_root",
        "{got}"
    );
    // Genoa report with the Milan hierarchy.
    let Some(g) = trustee_genoa() else { return };
    let e = endorse(&[
        &format!("{T}/derived_e2e_evidence_vcek.der"),
        &format!("{G}/ask_ark_milan.pem"),
    ])
    .unwrap();
    let got = code(verify(&g.report, &e, g.at));
    assert!(
        got == "cert_chain_signature" || got == "untrusted_root",
        "{got}"
    );
}

#[test]
fn swapped_vcek() {
    let Some(c) = google() else { return };
    for other in [format!("{T}/test-vcek.der"), format!("{V}/vcek_milan.der")] {
        let e = endorse(&[&other, &format!("{G}/milan.testcer")]).unwrap();
        let got = code(verify(&c.report, &e, google_time().max(mid2025())));
        assert!(
            got == "report_signature" || got == "chip_id_mismatch",
            "{other}: {got}"
        );
    }
}

#[test]
fn time_outside_validity() {
    let Some(c) = google() else { return };
    // VCEK valid 2022-09-24T00:55:28Z .. 2029-09-24T00:55:28Z.
    for t in [
        "2022-09-24T00:55:27Z",
        "2029-09-24T00:55:29Z",
        "1970-01-01T00:00:00Z",
    ] {
        let err = verify(&c.report, &c.endorsements, at(t)).unwrap_err();
        assert_eq!(err.failed_check(), "certificate_expired", "{t}");
        assert!(err.to_string().contains("VCEK"), "{err}");
    }
    for t in ["2022-09-24T00:55:28Z", "2029-09-24T00:55:28Z"] {
        verify(&c.report, &c.endorsements, at(t)).unwrap();
    }
}

#[test]
fn missing_and_ambiguous_certificates() {
    let Some(c) = google() else { return };
    let only_chain = endorse(&[&format!("{G}/milan.testcer")]).unwrap();
    assert_eq!(
        code(verify(&c.report, &only_chain, c.at)),
        "missing_certificate"
    );
    // The VCEK alone: AMD's published ASK (see snp::intermediates) completes the chain, which is
    // still verified up to the pinned ARK.
    let only_vcek = endorse(&[&format!("{G}/vcek.testcer")]).unwrap();
    verify(&c.report, &only_vcek, c.at).unwrap();
    assert_eq!(
        code(verify(&c.report, &Endorsements::default(), c.at)),
        "missing_certificate"
    );
    // VCEK + ASK without the ARK: the pinned ARK is used.
    let mut no_ark = c.endorsements.clone();
    let ark = no_ark.certs_der.pop().unwrap();
    verify(&c.report, &no_ark, c.at).unwrap();
    // A supplied ARK must be byte-identical to the pinned one; an ARK of another product is ignored.
    let mut other_ark = no_ark.clone();
    other_ark
        .certs_der
        .extend(certs_from_pem_or_der(snp::roots::ark_pem(Product::Genoa).as_bytes()).unwrap());
    verify(&c.report, &other_ark, c.at).unwrap();
    let mut tampered = no_ark.clone();
    let mut bad_ark = ark.clone();
    let n = bad_ark.len();
    bad_ark[n - 10] ^= 1; // inside the ARK's signature
    tampered.certs_der.push(bad_ark);
    assert_eq!(code(verify(&c.report, &tampered, c.at)), "untrusted_root");
    // Two different VCEKs.
    let mut two = c.endorsements.clone();
    two.certs_der
        .extend(endorse(&[&format!("{T}/test-vcek.der")]).unwrap().certs_der);
    assert_eq!(
        code(verify(&c.report, &two, c.at)),
        "ambiguous_certificates"
    );
    // Garbage certificate.
    let mut garbage = c.endorsements.clone();
    garbage.certs_der.push(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert_eq!(
        code(verify(&c.report, &garbage, c.at)),
        "malformed_certificate"
    );
    // A garbage CRL.
    let mut bad_crl = c.endorsements.clone();
    bad_crl.crls_der.push(vec![0x30, 0x00]);
    assert_eq!(code(verify(&c.report, &bad_crl, c.at)), "malformed_crl");
}

#[test]
fn tampered_certificates_fail_the_chain() {
    let Some(c) = google() else { return };
    // Flip a byte inside the VCEK's TCB extension area and inside the ASK's signature.
    let vcek = &c.endorsements.certs_der[0];
    for i in [vcek.len() / 2, vcek.len() - 5] {
        let mut e = c.endorsements.clone();
        e.certs_der[0][i] ^= 1;
        let got = code(verify(&c.report, &e, c.at));
        assert!(
            ["cert_chain_signature", "malformed_certificate"].contains(&got),
            "vcek byte {i}: {got}"
        );
    }
    let mut e = c.endorsements.clone();
    let n = e.certs_der[1].len();
    e.certs_der[1][n - 3] ^= 1;
    assert_eq!(code(verify(&c.report, &e, c.at)), "cert_chain_signature");
}

#[test]
fn signing_key_kind_must_match() {
    // The VLEK-signed report presented with a VCEK chain (and the VCEK report with the VLEK).
    let (Some(vl), Some(vc)) = (trustee_vlek(), trustee()) else {
        return;
    };
    assert_eq!(
        code(verify(&vl.report, &vc.endorsements, vl.at)),
        "signing_key_mismatch"
    );
    assert_eq!(
        code(verify(&vc.report, &vl.endorsements, vl.at)),
        "signing_key_mismatch"
    );
}

#[test]
fn certs_from_pem_or_der_splits() {
    let Some(pem) = common::read(&format!("{G}/ask_ark_milan.pem")) else {
        return;
    };
    let two = certs_from_pem_or_der(&pem).unwrap();
    assert_eq!(two.len(), 2);
    let concat: Vec<u8> = two.concat();
    assert_eq!(certs_from_pem_or_der(&concat).unwrap(), two);
    assert_eq!(
        certs_from_pem_or_der(&two[0]).unwrap(),
        vec![two[0].clone()]
    );
    assert!(certs_from_pem_or_der(&two[0][..100]).is_err());
    assert!(certs_from_pem_or_der(b"not a certificate").is_err());
}

#[test]
fn cert_table_from_extended_report() {
    let Some(c) = google() else { return };
    // Build a certificate table the way the host does: VCEK, ASK, ARK then the zero terminator.
    let guids = [
        snp::certs::GUID_VCEK,
        snp::certs::GUID_ASK,
        snp::certs::GUID_ARK,
    ];
    let header = 24 * 4;
    let mut table = Vec::new();
    let mut blobs = Vec::new();
    for (g, der) in guids.iter().zip(&c.endorsements.certs_der) {
        table.extend_from_slice(g);
        table.extend_from_slice(&((header + blobs.len()) as u32).to_le_bytes());
        table.extend_from_slice(&(der.len() as u32).to_le_bytes());
        blobs.extend_from_slice(der);
    }
    table.extend_from_slice(&[0u8; 24]);
    table.extend_from_slice(&blobs);
    let entries = snp::parse_cert_table(&table).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].kind, snp::CertTableKind::Vcek);
    let e = snp::endorsements_from_cert_table(&table).unwrap();
    assert_eq!(e.certs_der, c.endorsements.certs_der);
    verify(&c.report, &e, c.at).unwrap();
    for len in 0..table.len().min(200) {
        let _ = snp::parse_cert_table(&table[..len]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_mutations_never_pass_or_panic(
        edits in proptest::collection::vec((0usize..1184, any::<u8>()), 1..8)
    ) {
        let Some(c) = google() else { return Ok(()) };
        let mut r = c.report.clone();
        for (i, v) in &edits {
            r[*i] = *v;
        }
        let res = verify(&r, &c.endorsements, c.at);
        if r != c.report {
            prop_assert!(res.is_err());
        }
    }

    #[test]
    fn arbitrary_reports_never_panic(bytes in proptest::collection::vec(any::<u8>(), 1184)) {
        let _ = parse_report(&bytes);
        let _ = verify(&bytes, &Endorsements::default(), google_time());
    }

    #[test]
    fn arbitrary_endorsements_never_panic(
        blob in proptest::collection::vec(any::<u8>(), 0..600),
        cut in 0usize..1400,
    ) {
        let Some(c) = google() else { return Ok(()) };
        let _ = certs_from_pem_or_der(&blob);
        let _ = snp::parse_cert_table(&blob);
        let mut vcek = c.endorsements.certs_der[0].clone();
        vcek.truncate(cut);
        let mut e = c.endorsements.clone();
        e.certs_der[0] = vcek;
        e.certs_der.push(blob.clone());
        e.crls_der.push(blob);
        prop_assert!(verify(&c.report, &e, c.at).is_err());
    }
}
