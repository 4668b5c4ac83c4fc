//! Azure CVM (vTPM) evidence against the real vectors in ../shared/vectors/azure-cvm.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use enclava_evidence::Tee;
use enclava_evidence::azure::{
    self, AkPub, AzureError, AzureEvidence, HclHashType, HclReportType, TpmQuote, certs_from_pem,
    parse_hcl_report, parse_tpms_attest,
};
use enclava_evidence::error::FailedCheck;
use proptest::prelude::*;
use sha2::Digest;

const TRUSTEE: &str = "azure-cvm/trustee-az-snp-vtpm";
const KINVOLK: &str = "azure-cvm/kinvolk-azure-cvm-tooling";
const NONCE: &[u8] = b"challenge";
const V2_NONCE: &str = "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef";
const PCR0_HCL_REPORT_BIN: &str =
    "f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be";
const PCR0_V0_V1: &str = "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced";
const PCR0_V2: &str = "84275b2f4312cd4fc6cbe6b152ad3c3683e513d9f1e23c34fca160c8cca7a6a7";

fn at() -> DateTime<Utc> {
    // Inside every VCEK/ASK/ARK validity window of these vectors.
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()
}

fn read(folder: &str, name: &str) -> Option<Vec<u8>> {
    common::read(&format!("{folder}/{name}"))
}

fn milan_chain() -> Option<enclava_evidence::snp::Endorsements> {
    let pem = common::read("sev-snp/google-go-sev-guest/ask_ark_milan.pem")?;
    Some(enclava_evidence::snp::Endorsements {
        certs_der: certs_from_pem(&pem).unwrap(),
        crls_der: Vec::new(),
    })
}

fn code<T: std::fmt::Debug>(r: Result<T, AzureError>) -> &'static str {
    r.expect_err("expected a failure").failed_check()
}

/// HCL report, TPM quote bytes, DER certificates.
type Parts = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

/// The trustee HCL report + its JSON TPM quote + VCEK chain (nonce "challenge").
fn trustee_parts() -> Option<Parts> {
    let hcl = read(TRUSTEE, "hcl-report.bin")?;
    let quote = read(TRUSTEE, "tpm-quote-v1.json")?;
    let certs = certs_from_pem(&read(TRUSTEE, "vcek.pem")?).unwrap();
    Some((hcl, quote, certs))
}

fn sha256(b: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(b).to_vec()
}

// ---------------------------------------------------------------- HCL report

#[test]
fn hcl_reports_parse_and_bind() {
    let Some(trustee) = read(TRUSTEE, "hcl-report.bin") else {
        return;
    };
    let ksnp = read(KINVOLK, "hcl-report-snp.bin").unwrap();
    let ktdx = read(KINVOLK, "hcl-report-tdx.bin").unwrap();
    let var_data = read(KINVOLK, "var-data.bin").unwrap();

    for (bytes, ty, version, var_len) in [
        (&trustee, HclReportType::Snp, 1, 1110),
        (&ksnp, HclReportType::Snp, 1, 583),
        (&ktdx, HclReportType::Tdx, 2, 1202),
    ] {
        let hcl = parse_hcl_report(bytes).unwrap();
        assert_eq!(hcl.report_type, ty);
        assert_eq!(hcl.version, version);
        assert_eq!(hcl.hash_type, HclHashType::Sha256);
        assert_eq!(hcl.status, 0);
        assert_eq!(hcl.var_data.len(), var_len);
        assert_eq!(
            hcl.hardware_report.len(),
            if ty == HclReportType::Snp { 1184 } else { 1024 }
        );
        // Binding: SHA-256 of exactly variable_data_size bytes = report_data[0..32].
        assert_eq!(hcl.var_data_digest(), sha256(&hcl.var_data));
        assert_eq!(
            &hcl.hardware_report_data()[..32],
            sha256(&hcl.var_data).as_slice()
        );
        hcl.check_binding().unwrap();
        let rt = hcl.runtime_data().unwrap();
        assert_eq!(rt["keys"][0]["kid"], "HCLAkPub");
        assert_eq!(rt["vm-configuration"]["tpm-enabled"], true);
        let ak = hcl.ak_pub().unwrap();
        assert_eq!(ak.n.len(), 256);
        assert_eq!(ak.e, vec![1, 0, 1]);
    }
    // The SNP HCL report's report_data (raw bytes at 0x20 + 0x50) and its VMPL.
    let hcl = parse_hcl_report(&ksnp).unwrap();
    assert_eq!(hcl.hardware_report_data(), &ksnp[0x70..0xb0]);
    assert_eq!(hcl.snp_vmpl(), Some(0));
    // The TDX one: TDREPORT report_data at 0x20 + 128.
    let hcl = parse_hcl_report(&ktdx).unwrap();
    assert_eq!(hcl.hardware_report_data(), &ktdx[0xa0..0xe0]);
    assert_eq!(hcl.snp_vmpl(), None);
    assert_eq!(
        hcl.runtime_data().unwrap()["vm-configuration"]["vmUniqueId"],
        "D270E56B-F668-4990-A5BC-9B624576841D"
    );
    // kinvolk's standalone var-data.bin: runtime JSON with an AK.
    let v: serde_json::Value = serde_json::from_slice(&var_data).unwrap();
    AkPub::from_runtime_data(&v).unwrap();
}

#[test]
fn hcl_header_checks() {
    let Some(good) = read(TRUSTEE, "hcl-report.bin") else {
        return;
    };
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(code(parse_hcl_report(&b)), "malformed_hcl_report");
    for v in [0u32, 3, 0xffff_ffff] {
        let mut b = good.clone();
        b[4..8].copy_from_slice(&v.to_le_bytes());
        let e = parse_hcl_report(&b).unwrap_err();
        assert_eq!(e.failed_check(), "unsupported_hcl_version");
        assert!(matches!(e, AzureError::UnsupportedHclVersion(x) if x == v));
    }
    // status != 0, unknown report type, unknown hash type, var size beyond the buffer.
    for (off, val) in [
        (16usize, 1u32),
        (0x4c8, 3),
        (0x4cc, 0),
        (0x4cc, 4),
        (0x4d0, 5000),
        (0x4c0, 7),
    ] {
        let mut b = good.clone();
        b[off..off + 4].copy_from_slice(&val.to_le_bytes());
        assert_eq!(
            code(parse_hcl_report(&b)),
            "malformed_hcl_report",
            "offset {off:#x} = {val}"
        );
    }
    // report_type TDX on an SNP report: the TDREPORT type byte is not 0x81.
    let mut b = good.clone();
    b[0x4c8..0x4cc].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(code(parse_hcl_report(&b)), "malformed_hcl_report");
}

#[test]
fn hcl_hash_types_sha384_sha512() {
    let Some(good) = read(TRUSTEE, "hcl-report.bin") else {
        return;
    };
    for (ty, raw, len) in [
        (HclHashType::Sha384, 2u32, 48usize),
        (HclHashType::Sha512, 3, 64),
    ] {
        let mut b = good.clone();
        b[0x4cc..0x4d0].copy_from_slice(&raw.to_le_bytes());
        let hcl = parse_hcl_report(&b).unwrap();
        assert_eq!(hcl.hash_type, ty);
        assert_eq!(hcl.var_data_digest().len(), len);
        // The SNP report_data holds a SHA-256 digest, so a SHA-384/512 claim does not bind.
        assert_eq!(code(hcl.check_binding()), "runtime_data_mismatch");
        // ... and binds when report_data carries the declared digest.
        let mut rd = hcl.var_data_digest();
        rd.resize(64, 0);
        hcl.check_binding_against(&rd).unwrap();
    }
}

#[test]
fn trustee_negative_flips() {
    let Some((hcl, quote, certs)) = trustee_parts() else {
        return;
    };
    let Some(chain) = milan_chain() else { return };

    // 0x6e0: variable data changed -> digest no longer matches the SNP report_data.
    let mut b = hcl.clone();
    b[0x6e0] = b[0x6e0].wrapping_add(1);
    let parsed = parse_hcl_report(&b).unwrap();
    assert_eq!(code(parsed.check_binding()), "runtime_data_mismatch");
    let ev = AzureEvidence::from_parts(&b, &quote, certs.clone()).unwrap();
    assert_eq!(
        code(azure::verify_snp(&ev, &chain, Some(NONCE), at())),
        "runtime_data_mismatch"
    );

    // 0x540: inside HCLAkPub -> no usable AK ("Failed to get AKpub"); the full path stops at the
    // binding first, because the AK is part of the bound runtime data.
    let mut b = hcl.clone();
    b[0x540] = 0;
    let parsed = parse_hcl_report(&b).unwrap();
    assert_eq!(code(parsed.ak_pub()), "missing_ak");
    let ev = AzureEvidence::from_parts(&b, &quote, certs.clone()).unwrap();
    assert_eq!(
        code(azure::verify_snp(&ev, &chain, Some(NONCE), at())),
        "runtime_data_mismatch"
    );

    // 0x1a6: the SNP report's reported TCB -> the hardware (SNP) verifier fails, with its code.
    let mut b = hcl.clone();
    b[0x1a6] = 0;
    let parsed = parse_hcl_report(&b).unwrap();
    parsed.check_binding().unwrap();
    let ev = AzureEvidence::from_parts(&b, &quote, certs.clone()).unwrap();
    let err = azure::verify_snp(&ev, &chain, Some(NONCE), at()).unwrap_err();
    match &err {
        AzureError::Snp(inner) => {
            // trustee reports "SNP version mismatch" (VCEK TCB extension vs the report); the
            // SNP verifier checks the report signature first, which the flip breaks.
            assert_eq!(err.failed_check(), inner.failed_check());
            assert_eq!(err.failed_check(), "report_signature", "{err}");
        }
        other => panic!("expected an SNP hardware failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------- TPM quote

#[test]
fn kinvolk_quote_with_akpub_pem() {
    let Some(qb) = read(KINVOLK, "quote.bin") else {
        return;
    };
    let pem = read(KINVOLK, "akpub.pem").unwrap();
    let der = pem::parse(&pem).unwrap().into_contents();
    let ak = AkPub::from_spki_der(&der).unwrap();
    let quote = TpmQuote::from_bincode(&qb).unwrap();
    assert_eq!(quote.signature.len(), 256);
    assert_eq!(quote.message.len(), 122);
    assert_eq!(quote.pcrs.len(), 24);
    quote.verify_signature(&ak).unwrap();
    assert_eq!(quote.nonce().unwrap(), NONCE);
    quote.check_nonce(NONCE).unwrap();
    assert_eq!(code(quote.check_nonce(b"egnellahc")), "nonce_mismatch");
    let pcrs = quote.check_pcr_digest().unwrap();
    assert_eq!(pcrs.len(), 24);
    assert_eq!(
        pcrs.keys().copied().collect::<Vec<_>>(),
        (0..24).collect::<Vec<u32>>()
    );
    // The digest is SHA-256 over the concatenated PCRs in selection order.
    let attest = parse_tpms_attest(&quote.message).unwrap();
    assert_eq!(attest.pcr_digest, sha256(&quote.pcrs.concat()));
    assert_eq!(attest.pcr_selections.len(), 1);
    assert_eq!(attest.pcr_selections[0].hash_alg, 0x000b);

    // Wrong signature (reversed), as in az-cvm-vtpm's own test.
    let mut bad = quote.clone();
    bad.signature.reverse();
    assert_eq!(code(bad.verify_signature(&ak)), "tpm_quote_signature");
    // A changed PCR value breaks the digest.
    let mut bad = quote.clone();
    bad.pcrs[7][0] ^= 1;
    assert_eq!(code(bad.check_pcr_digest()), "pcr_digest_mismatch");
    // Missing PCR value.
    let mut bad = quote.clone();
    bad.pcrs.pop();
    assert_eq!(code(bad.check_pcr_digest()), "malformed_tpm_quote");

    // The AK does not match either kinvolk HCL report.
    for name in ["hcl-report-snp.bin", "hcl-report-tdx.bin"] {
        let hcl = parse_hcl_report(&read(KINVOLK, name).unwrap()).unwrap();
        assert_eq!(
            code(quote.verify_signature(&hcl.ak_pub().unwrap())),
            "tpm_quote_signature"
        );
    }
}

#[test]
fn kinvolk_quote_every_message_byte_flip_fails() {
    let Some(qb) = read(KINVOLK, "quote.bin") else {
        return;
    };
    let pem = read(KINVOLK, "akpub.pem").unwrap();
    let ak = AkPub::from_spki_der(&pem::parse(&pem).unwrap().into_contents()).unwrap();
    let quote = TpmQuote::from_bincode(&qb).unwrap();
    for i in 0..quote.message.len() {
        for mask in [0x01u8, 0x80] {
            let mut q = quote.clone();
            q.message[i] ^= mask;
            assert_eq!(
                code(q.verify_signature(&ak)),
                "tpm_quote_signature",
                "byte {i}"
            );
        }
    }
    for i in 0..quote.signature.len() {
        let mut q = quote.clone();
        q.signature[i] ^= 0x01;
        assert_eq!(
            code(q.verify_signature(&ak)),
            "tpm_quote_signature",
            "signature byte {i}"
        );
    }
}

#[test]
fn full_path_every_message_byte_flip_fails_before_hardware() {
    let Some(ev) = coco("evidence-v1.json") else {
        return;
    };
    let chain = milan_chain().unwrap();
    for i in 0..ev.tpm_quote.message.len() {
        let mut bad = ev.clone();
        bad.tpm_quote.message[i] ^= 0x04;
        let c = code(azure::verify_snp(&bad, &chain, Some(NONCE), at()));
        assert!(
            c == "tpm_quote_signature" || c == "malformed_tpm_quote",
            "byte {i}: {c}"
        );
    }
    // Through the VerifyError wrapper the code is unchanged.
    let mut bad = ev.clone();
    bad.tpm_quote.signature[0] ^= 1;
    let e: enclava_evidence::VerifyError = azure::verify_snp(&bad, &chain, Some(NONCE), at())
        .unwrap_err()
        .into();
    assert_eq!(e.failed_check(), "tpm_quote_signature");
}

#[test]
fn trustee_quotes_with_hcl_ak() {
    let Some((hcl, quote_json, _)) = trustee_parts() else {
        return;
    };
    let ak = parse_hcl_report(&hcl).unwrap().ak_pub().unwrap();

    let q = TpmQuote::from_json_or_bincode(&quote_json).unwrap();
    q.verify_signature(&ak).unwrap();
    q.check_nonce(NONCE).unwrap();
    let pcrs = q.check_pcr_digest().unwrap();
    assert_eq!(hex::encode(&pcrs[&0]), PCR0_HCL_REPORT_BIN);

    let qb = read(TRUSTEE, "quote.bin").unwrap();
    let q = TpmQuote::from_json_or_bincode(&qb).unwrap();
    q.verify_signature(&ak).unwrap();
    q.check_nonce(NONCE).unwrap();
    q.check_pcr_digest().unwrap();
    // trustee's failure flips of quote.bin: 0x30 (signature) and 0x169 (a PCR value).
    let mut b = qb.clone();
    b[0x30] = 0;
    assert_eq!(
        code(TpmQuote::from_bincode(&b).unwrap().verify_signature(&ak)),
        "tpm_quote_signature"
    );
    // 0x169 is the low byte of the pcrDigest size (message offset 89): trustee's TPM library
    // reads an empty digest and reports a PCR mismatch; this strict parser rejects the 32 bytes
    // left over. The signature fails too.
    let mut b = qb.clone();
    b[0x169] = 0;
    let flipped = TpmQuote::from_bincode(&b).unwrap();
    assert_eq!(code(flipped.check_pcr_digest()), "malformed_tpm_quote");
    assert_eq!(code(flipped.verify_signature(&ak)), "tpm_quote_signature");
    // A flipped PCR value (bincode offset 0x18a + 8 + 5) is a digest mismatch.
    let mut b = qb.clone();
    b[0x18a + 8 + 5] ^= 0xff;
    assert_eq!(
        code(TpmQuote::from_bincode(&b).unwrap().check_pcr_digest()),
        "pcr_digest_mismatch"
    );

    // tpm-quote.msg/.sig: a quote over nonce "challenge" that this AK did not sign.
    let msg = read(TRUSTEE, "tpm-quote.msg").unwrap();
    let sig = read(TRUSTEE, "tpm-quote.sig").unwrap();
    let attest = parse_tpms_attest(&msg).unwrap();
    assert_eq!(attest.extra_data, NONCE);
    let q = TpmQuote {
        message: msg,
        signature: sig,
        pcrs: Vec::new(),
    };
    assert_eq!(code(q.verify_signature(&ak)), "tpm_quote_signature");
}

#[test]
fn tpmt_signature_form_is_accepted() {
    let Some((hcl, quote_json, _)) = trustee_parts() else {
        return;
    };
    let ak = parse_hcl_report(&hcl).unwrap().ak_pub().unwrap();
    let mut q = TpmQuote::from_json_or_bincode(&quote_json).unwrap();
    let mut wrapped = vec![0x00, 0x14, 0x00, 0x0b, 0x01, 0x00];
    wrapped.extend_from_slice(&q.signature);
    q.signature = wrapped.clone();
    q.verify_signature(&ak).unwrap();
    wrapped[1] = 0x16; // RSAPSS: not accepted
    q.signature = wrapped;
    assert_eq!(code(q.verify_signature(&ak)), "tpm_quote_signature");
}

// ---------------------------------------------------------------- CoCo evidence JSON

fn coco(name: &str) -> Option<AzureEvidence> {
    Some(AzureEvidence::from_coco_json(&read(TRUSTEE, name)?).unwrap())
}

#[test]
fn coco_evidence_versions_vtpm_checks() {
    let Some(v0) = coco("evidence-v0.json") else {
        return;
    };
    let v1 = coco("evidence-v1.json").unwrap();
    let v2 = coco("evidence-v2.json").unwrap();
    assert_eq!((v0.version, v1.version, v2.version), (0, 1, 2));
    // v0 and v1 come from the same VM: same VCEK (PEM in v0, DER in v1).
    assert!(v0.certs_der == v1.certs_der);
    let v2_nonce = hex::decode(V2_NONCE).unwrap();
    for (ev, nonce, pcr0) in [
        (&v0, NONCE.to_vec(), PCR0_V0_V1),
        (&v1, NONCE.to_vec(), PCR0_V0_V1),
        (&v2, v2_nonce.clone(), PCR0_V2),
    ] {
        assert_eq!(ev.hcl_report.len(), 2600);
        assert_eq!(ev.certs_der.len(), 1);
        assert!(ev.td_quote.is_none());
        let hcl = parse_hcl_report(&ev.hcl_report).unwrap();
        hcl.check_binding().unwrap();
        let ak = hcl.ak_pub().unwrap();
        ev.tpm_quote.verify_signature(&ak).unwrap();
        ev.tpm_quote.check_nonce(&nonce).unwrap();
        assert_eq!(
            hex::encode(&ev.tpm_quote.check_pcr_digest().unwrap()[&0]),
            pcr0
        );
    }
    // v2: the runtime data's user-data carries the nonce.
    let rt = parse_hcl_report(&v2.hcl_report)
        .unwrap()
        .runtime_data()
        .unwrap();
    assert!(
        rt["user-data"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .starts_with(V2_NONCE)
    );
    // Wrong nonce through the full path stops before the hardware.
    let chain = milan_chain().unwrap();
    assert_eq!(
        code(azure::verify_snp(&v1, &chain, Some(b"challengf"), at())),
        "nonce_mismatch"
    );
    assert_eq!(
        code(azure::verify_snp(&v2, &chain, Some(NONCE), at())),
        "nonce_mismatch"
    );
    // A PCR value swapped between evidence versions.
    let mut bad = v1.clone();
    bad.tpm_quote.pcrs[0] = v2.tpm_quote.pcrs[0].clone();
    assert_eq!(
        code(azure::verify_snp(&bad, &chain, Some(NONCE), at())),
        "pcr_digest_mismatch"
    );
    // The TPM quote of another VM: not signed by this HCL's AK.
    let mut bad = v1.clone();
    bad.tpm_quote = v2.tpm_quote.clone();
    assert_eq!(
        code(azure::verify_snp(&bad, &chain, None, at())),
        "tpm_quote_signature"
    );
    // SNP evidence through the TDX verifier.
    assert_eq!(
        code(azure::verify_tdx(&v1, None, Some(NONCE), at())),
        "malformed_hcl_report"
    );
}

#[test]
fn coco_evidence_json_errors() {
    for (json, want) in [
        (&b"not json"[..], "malformed_evidence"),
        (b"[]", "malformed_evidence"),
        (b"{}", "malformed_evidence"),
        (br#"{"version":3,"tpm_quote":{},"hcl_report":""}"#, "malformed_evidence"),
        (br#"{"version":1,"tpm_quote":{"signature":"zz","message":"","pcrs":[]},"hcl_report":""}"#, "malformed_evidence"),
        (br#"{"version":1,"tpm_quote":{"signature":"","message":"","pcrs":[]}}"#, "malformed_evidence"),
        (br#"{"quote":{"signature":[256],"message":[],"pcrs":[]},"report":[]}"#, "malformed_evidence"),
    ] {
        assert_eq!(code(AzureEvidence::from_coco_json(json)), want, "{}", String::from_utf8_lossy(json));
    }
    // Structurally fine, but an empty HCL report.
    let ev = AzureEvidence::from_coco_json(
        br#"{"version":1,"tpm_quote":{"signature":"","message":"","pcrs":[]},"hcl_report":""}"#,
    )
    .unwrap();
    assert_eq!(
        code(azure::verify_snp(&ev, &Default::default(), None, at())),
        "malformed_hcl_report"
    );
}

// ---------------------------------------------------------------- full path (needs the SNP verifier)

fn check_full_snp(ev: &AzureEvidence, nonce: &[u8], pcr0: &str) {
    let chain = milan_chain().unwrap();
    let claims =
        azure::verify_snp(ev, &chain, Some(nonce), at()).expect("full Azure SNP verification");
    assert_eq!(claims.tee, Tee::AzureSnp);
    let hcl = parse_hcl_report(&ev.hcl_report).unwrap();
    let report = &hcl.hardware_report;
    assert_eq!(claims.measurement, hex::encode(&report[0x90..0xc0]));
    assert_eq!(claims.report_data, hex::encode(&report[0x50..0x90]));
    assert!(
        claims
            .report_data
            .starts_with(&hex::encode(sha256(&hcl.var_data)))
    );
    assert!(claims.snp.is_none() && claims.tdx.is_none() && claims.sim.is_none());
    let az = claims.azure.as_ref().unwrap();
    assert_eq!(az.nonce, hex::encode(nonce));
    assert_eq!(az.pcrs["0"], pcr0);
    assert_eq!(az.pcrs.len(), 24);
    assert_eq!(az.ak_pub["kid"], "HCLAkPub");
    assert_eq!(az.vm_configuration["secure-boot"], true);
    assert_eq!(az.hcl_version, 1);
    // The nested hardware object is the SNP claims of the very report inside the HCL report.
    assert_eq!(az.hardware["vmpl"], 0);
    assert_eq!(az.hardware["chip_id"], hex::encode(&report[0x1a0..0x1e0]));
    assert_eq!(az.hardware["host_data"], hex::encode(&report[0xc0..0xe0]));
    // Claims round-trip through JSON.
    let json = serde_json::to_string(&claims).unwrap();
    let back: enclava_evidence::Claims = serde_json::from_str(&json).unwrap();
    assert_eq!(back, claims);
}

#[test]
fn full_path_trustee_hcl_report() {
    let Some((hcl, quote, certs)) = trustee_parts() else {
        return;
    };
    let ev = AzureEvidence::from_parts(&hcl, &quote, certs).unwrap();
    check_full_snp(&ev, NONCE, PCR0_HCL_REPORT_BIN);
}

#[test]
fn full_path_coco_v0() {
    let Some(ev) = coco("evidence-v0.json") else {
        return;
    };
    check_full_snp(&ev, NONCE, PCR0_V0_V1);
}

#[test]
fn full_path_coco_v1() {
    let Some(ev) = coco("evidence-v1.json") else {
        return;
    };
    check_full_snp(&ev, NONCE, PCR0_V0_V1);
}

#[test]
fn full_path_coco_v2() {
    let Some(ev) = coco("evidence-v2.json") else {
        return;
    };
    check_full_snp(&ev, &hex::decode(V2_NONCE).unwrap(), PCR0_V2);
    let claims = azure::verify_snp(&ev, &milan_chain().unwrap(), None, at()).unwrap();
    assert!(
        claims
            .azure
            .unwrap()
            .user_data
            .unwrap()
            .starts_with(V2_NONCE)
    );
}

#[test]
fn tdx_hcl_paths() {
    let Some(ktdx) = read(KINVOLK, "hcl-report-tdx.bin") else {
        return;
    };
    let qb = read(KINVOLK, "quote.bin").unwrap();
    let ev = AzureEvidence::from_parts(&ktdx, &qb, Vec::new()).unwrap();
    // The kinvolk quote was not made by this VM's AK.
    assert_eq!(
        code(azure::verify_tdx(&ev, None, None, at())),
        "tpm_quote_signature"
    );
    // TDX evidence through the SNP verifier.
    assert_eq!(
        code(azure::verify_snp(&ev, &Default::default(), None, at())),
        "malformed_hcl_report"
    );
    // A changed runtime data byte breaks the TDREPORT binding.
    let mut b = ktdx.clone();
    b[0x880] = b[0x880].wrapping_add(1);
    let ev = AzureEvidence::from_parts(&b, &qb, Vec::new()).unwrap();
    assert_eq!(
        code(azure::verify_tdx(&ev, None, None, at())),
        "runtime_data_mismatch"
    );
}

// ---------------------------------------------------------------- robustness

#[test]
fn truncations_never_panic() {
    let Some((hcl, quote_json, _)) = trustee_parts() else {
        return;
    };
    let qb = read(TRUSTEE, "quote.bin").unwrap();
    let v1 = read(TRUSTEE, "evidence-v1.json").unwrap();
    let ak = parse_hcl_report(&hcl).unwrap().ak_pub().unwrap();
    let var_end = 0x4d4 + 1110;
    for n in 0..hcl.len() {
        let r = parse_hcl_report(&hcl[..n]);
        if n < var_end {
            assert_eq!(code(r), "malformed_hcl_report", "prefix {n}");
        } else if let Ok(h) = r {
            h.check_binding().unwrap();
        }
    }
    for n in 0..qb.len() {
        assert!(TpmQuote::from_bincode(&qb[..n]).is_err(), "prefix {n}");
    }
    let q = TpmQuote::from_json_or_bincode(&quote_json).unwrap();
    for n in 0..q.message.len() {
        let mut t = q.clone();
        t.message.truncate(n);
        assert!(parse_tpms_attest(&t.message).is_err());
        assert!(t.verify_signature(&ak).is_err());
        assert!(t.check_pcr_digest().is_err());
    }
    let json_end = v1.iter().rposition(|b| !b.is_ascii_whitespace()).unwrap() + 1;
    for n in 0..json_end {
        assert!(
            AzureEvidence::from_coco_json(&v1[..n]).is_err(),
            "prefix {n}"
        );
    }
}

fn full_run(ev: &AzureEvidence) {
    let _ = azure::verify_snp(ev, &Default::default(), Some(NONCE), at());
    let _ = azure::verify_tdx(ev, None, None, at());
    if let Ok(h) = parse_hcl_report(&ev.hcl_report) {
        let _ = h.check_binding();
        let _ = h.ak_pub();
    }
    let _ = ev.tpm_quote.check_pcr_digest();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_hcl_report_never_panics(idx in 0usize..2600, val: u8, cut in 0usize..2700) {
        if let Some((hcl, quote, certs)) = trustee_parts() {
            let mut b = hcl.clone();
            b[idx] = val;
            b.truncate(cut);
            if let Ok(ev) = AzureEvidence::from_parts(&b, &quote, certs) {
                full_run(&ev);
            }
        }
    }

    #[test]
    fn mutated_bincode_quote_never_panics(idx in 0usize..1170, val: u8, cut in 0usize..1200) {
        if let Some(qb) = read(TRUSTEE, "quote.bin") {
            let mut b = qb.clone();
            b[idx] = val;
            b.truncate(cut);
            if let Ok(q) = TpmQuote::from_bincode(&b) {
                let _ = q.check_pcr_digest();
                let _ = q.nonce();
            }
        }
    }

    #[test]
    fn mutated_tpm_message_never_panics(idx in 0usize..122, val: u8, cut in 0usize..130) {
        if let Some((_, quote, _)) = trustee_parts() {
            let mut q = TpmQuote::from_json_or_bincode(&quote).unwrap();
            q.message[idx] = val;
            q.message.truncate(cut);
            let _ = parse_tpms_attest(&q.message);
            let _ = q.check_pcr_digest();
        }
    }

    #[test]
    fn mutated_coco_json_never_panics(idx in 0usize..8016, val in 0x20u8..0x7f, cut in 0usize..8100) {
        if let Some(json) = read(TRUSTEE, "evidence-v2.json") {
            let mut b = json.clone();
            b[idx] = val;
            b.truncate(cut);
            if let Ok(ev) = AzureEvidence::from_coco_json(&b) {
                full_run(&ev);
            }
        }
    }

    #[test]
    fn mutated_ak_never_panics(n_len in 0usize..600, fill: u8, e in proptest::collection::vec(any::<u8>(), 0..9)) {
        use base64::Engine;
        if let Some((_, quote, _)) = trustee_parts() {
            let q = TpmQuote::from_json_or_bincode(&quote).unwrap();
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let jwk = serde_json::json!({"kty": "RSA", "n": b64.encode(vec![fill; n_len]), "e": b64.encode(&e)});
            if let Ok(ak) = AkPub::from_jwk(&jwk) {
                prop_assert!(q.verify_signature(&ak).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = parse_hcl_report(&b);
        let _ = AzureEvidence::from_coco_json(&b);
        let _ = TpmQuote::from_json_or_bincode(&b);
        let _ = parse_tpms_attest(&b);
    }
}
