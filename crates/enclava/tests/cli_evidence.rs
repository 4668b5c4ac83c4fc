//! The `enclava evidence verify` contract, driven through the real binary on the real hardware
//! vectors: JSON shape, expected claim values from the manifests, failed-check codes, exit codes.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn vectors() -> Option<PathBuf> {
    enclava_testvectors::dir()
}

/// Runs `enclava evidence verify ... --output json`; returns (exit code, parsed stdout).
fn verify(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["evidence", "verify", "--output", "json"])
        .args(args)
        .output()
        .expect("run enclava");
    let code = out.status.code().expect("exit code");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, json)
}

fn path(v: &std::path::Path, rel: &str) -> String {
    v.join(rel).display().to_string()
}

#[test]
fn snp_milan_vcek_only_verifies_with_manifest_values() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "snp",
        "--evidence",
        &path(&v, "sev-snp/google-go-sev-guest/attestation.bin"),
        "--certs",
        &path(&v, "sev-snp/google-go-sev-guest/vcek.testcer"),
        "--at",
        "2022-09-24T01:00:00Z",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["verified"], true);
    let c = &out["claims"];
    assert_eq!(c["tee"], "snp");
    assert_eq!(
        c["measurement"],
        "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
    );
    assert_eq!(c["debug"], true, "policy 0xb0000 has DEBUG set");
    assert!(
        c["report_data"]
            .as_str()
            .unwrap()
            .starts_with("0102030405000000")
    );
    assert_eq!(c["snp"]["product"], "Milan");
    assert_eq!(c["snp"]["signing_key"], "vcek");
    // The manifest gives the TCB as the u64 4901323769462652930 (0x4405000000000002): bl=2 tee=0
    // snp=5 ucode=0x44. `raw` is the report's bytes in order (little-endian).
    let t = &c["snp"]["reported_tcb"];
    assert_eq!(
        (
            t["bootloader"].as_u64(),
            t["tee"].as_u64(),
            t["snp"].as_u64(),
            t["microcode"].as_u64()
        ),
        (Some(2), Some(0), Some(5), Some(0x44))
    );
    let raw = hex::decode(t["raw"].as_str().unwrap()).unwrap();
    assert_eq!(
        u64::from_le_bytes(raw.try_into().unwrap()),
        4901323769462652930
    );
    assert_eq!(c["snp"]["current_version"], "1.49.3");
}

#[test]
fn snp_hex_report_and_der_chain_files() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "snp",
        "--evidence",
        &path(&v, "sev-snp/virtee-sev/report_milan.hex"),
        "--certs",
        &path(&v, "sev-snp/virtee-sev/vcek_milan.der"),
        "--certs",
        &path(&v, "sev-snp/virtee-sev/cert_chain_milan"),
        "--at",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out["claims"]["measurement"],
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
}

#[test]
fn snp_wrong_chip_vcek_fails_with_report_signature() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "snp",
        "--evidence",
        &path(&v, "sev-snp/google-go-sev-guest/attestation.bin"),
        "--certs",
        &path(&v, "sev-snp/virtee-sev/vcek_milan.der"),
        "--at",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["verified"], false);
    assert_eq!(out["failed_check"], "report_signature");
    assert!(out["reason"].as_str().unwrap().len() > 20);
}

#[test]
fn snp_outside_vcek_validity_fails_with_certificate_expired() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "snp",
        "--evidence",
        &path(&v, "sev-snp/google-go-sev-guest/attestation.bin"),
        "--certs",
        &path(&v, "sev-snp/google-go-sev-guest/vcek.testcer"),
        "--at",
        "2030-01-01T00:00:00Z",
    ]);
    assert_eq!(
        (code, out["failed_check"].as_str()),
        (1, Some("certificate_expired")),
        "{out}"
    );
}

#[test]
fn tdx_phala_up_to_date_with_dcap_qvl_collateral() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "tdx",
        "--evidence",
        &path(&v, "tdx/phala-dcap-qvl/tdx_quote"),
        "--collateral",
        &path(&v, "tdx/phala-dcap-qvl/tdx_quote_collateral.json"),
        "--at",
        "2025-07-19T10:00:34Z",
    ]);
    assert_eq!(code, 0, "{out}");
    let c = &out["claims"];
    assert_eq!(c["tee"], "tdx");
    assert_eq!(c["tcb_status"], "UpToDate");
    assert!(
        c.get("advisory_ids")
            .is_none_or(|a| a.as_array().is_some_and(Vec::is_empty))
    );
    assert_eq!(
        c["measurement"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(c["tdx"]["mr_td"], c["measurement"]);
}

#[test]
fn tdx_outdated_v5_has_no_matching_tcb_level() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "tdx",
        "--evidence",
        &path(&v, "tdx/phala-dcap-qvl/tdx_quote_outdated"),
        "--collateral",
        &path(&v, "tdx/phala-dcap-qvl/tdx_quote_outdated_collateral.json"),
        "--at",
        "2026-03-01T00:00:00Z",
    ]);
    assert_eq!(
        (code, out["failed_check"].as_str()),
        (1, Some("tcb_level_not_found")),
        "{out}"
    );
}

#[test]
fn tdx_pcs_directory_recognized_by_content() {
    let Some(v) = vectors() else { return };
    // A directory of just the PCS files (as a PCCS cache would hold them), under names that say
    // nothing: they must be recognized by content.
    let tmp = tempfile::tempdir().unwrap();
    for (i, f) in [
        "sample_tcbInfo_response",
        "sample_qeIdentity_response",
        "pckcrl",
        "rootcrl.der",
        "derived_tcb_info_issuer_chain.pem",
        "derived_pck_crl_issuer_chain.pem",
    ]
    .iter()
    .enumerate()
    {
        std::fs::copy(
            v.join("tdx/google-go-tdx-guest").join(f),
            tmp.path().join(format!("file{i}")),
        )
        .unwrap();
    }
    let dir = tmp.path().display().to_string();
    let quote = path(&v, "tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
    let (code, out) = verify(&[
        "--tee",
        "tdx",
        "--evidence",
        &quote,
        "--collateral",
        &dir,
        "--at",
        "2023-07-01T01:00:00Z",
    ]);
    assert_eq!(
        (code, out["failed_check"].as_str()),
        (1, Some("tcb_level_not_found")),
        "{out}"
    );
    let (code, out) = verify(&[
        "--tee",
        "tdx",
        "--evidence",
        &quote,
        "--collateral",
        &dir,
        "--at",
        "2053-07-02T00:00:00Z",
    ]);
    assert_eq!(code, 1, "{out}");
    let check = out["failed_check"].as_str().unwrap();
    assert!(
        check.ends_with("_expired"),
        "expected an expiry failure, found {check}: {out}"
    );
}

#[test]
fn sgx_phala_configuration_and_sw_hardening_needed() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "sgx",
        "--evidence",
        &path(&v, "sgx/phala-dcap-qvl/sgx_quote"),
        "--collateral",
        &path(&v, "sgx/phala-dcap-qvl/sgx_quote_collateral.json"),
        "--at",
        "2025-07-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{out}");
    let c = &out["claims"];
    assert_eq!(c["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        c["advisory_ids"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    assert_eq!(
        c["measurement"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        c["sgx"]["mr_signer"],
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert!(
        c["report_data"]
            .as_str()
            .unwrap()
            .starts_with(&hex::encode("Hello, world!"))
    );
}

#[test]
fn azure_snp_vtpm_all_evidence_versions() {
    let Some(v) = vectors() else { return };
    let cases = [
        (
            "evidence-v0.json",
            "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced",
            "text:challenge",
        ),
        (
            "evidence-v1.json",
            "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced",
            "text:challenge",
        ),
        (
            "evidence-v2.json",
            "84275b2f4312cd4fc6cbe6b152ad3c3683e513d9f1e23c34fca160c8cca7a6a7",
            "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef",
        ),
    ];
    for (file, pcr0, nonce) in cases {
        let ev = path(&v, &format!("azure-cvm/trustee-az-snp-vtpm/{file}"));
        let (code, out) = verify(&[
            "--tee",
            "azure-snp",
            "--evidence",
            &ev,
            "--nonce",
            nonce,
            "--at",
            "2025-06-01T00:00:00Z",
        ]);
        assert_eq!(code, 0, "{file}: {out}");
        assert_eq!(out["claims"]["tee"], "azure-snp");
        assert_eq!(out["claims"]["azure"]["pcrs"]["0"], pcr0, "{file}");
        let (code, out) = verify(&[
            "--tee",
            "azure-snp",
            "--evidence",
            &ev,
            "--nonce",
            "text:other",
            "--at",
            "2025-06-01T00:00:00Z",
        ]);
        assert_eq!(
            (code, out["failed_check"].as_str()),
            (1, Some("nonce_mismatch")),
            "{file}: {out}"
        );
    }
}

#[test]
fn simulated_evidence_never_verifies_as_hardware() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.bin");
    let now = chrono::Utc::now();
    std::fs::write(
        &sim,
        enclava_evidence::sim::generate(&[7u8; 48], &[9u8; 64], now),
    )
    .unwrap();
    let sim = sim.display().to_string();
    let (code, out) = verify(&["--tee", "sim", "--evidence", &sim]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["claims"]["tee"], "sim");
    assert_eq!(out["claims"]["debug"], true);
    for tee in ["snp", "tdx", "sgx"] {
        let (code, out) = verify(&["--tee", tee, "--evidence", &sim]);
        assert_eq!(code, 1, "sim evidence as {tee}: {out}");
        assert_eq!(out["verified"], false);
    }
}

#[test]
fn unusable_input_exits_2() {
    let (code, _) = verify(&["--tee", "snp", "--evidence", "/nonexistent/report.bin"]);
    assert_eq!(code, 2);
    let (code, _) = verify(&["--tee", "nosuchtee", "--evidence", "x"]);
    assert_eq!(code, 2);
    let (code, _) = verify(&["--tee", "snp", "--evidence", "x", "--at", "yesterday"]);
    assert_eq!(code, 2);
}

#[test]
fn snp_from_the_offline_collateral_cache() {
    use enclava_collateral::{AmdKey, Cache};
    use enclava_evidence::snp::report::Product;
    let Some(v) = vectors() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = path(&v, "sev-snp/google-go-sev-guest/attestation.bin");
    let args = |cache: &str| {
        vec![
            "--tee".to_string(),
            "snp".into(),
            "--evidence".into(),
            report.clone(),
            "--cache".into(),
            cache.to_string(),
            "--at".into(),
            "2022-09-24T01:00:00Z".into(),
        ]
    };
    // An empty cache: unusable input (exit 2), not a verification failure.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let a = args(&empty.display().to_string());
    let (code, _) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2);
    // Filled the way `enclava collateral fetch` fills it.
    let cache = Cache::create(dir.path().join("cache")).unwrap();
    let vcek_pem = std::fs::read(v.join("sev-snp/google-go-sev-guest/vcek.testcer")).unwrap();
    let vcek = pem::parse(&vcek_pem)
        .map(|p| p.into_contents())
        .unwrap_or(vcek_pem);
    let at = chrono::DateTime::parse_from_rfc3339("2022-09-24T01:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    cache.import_snp_leaf(&vcek, at).unwrap();
    let chain = std::fs::read(v.join("sev-snp/google-go-sev-guest/ask_ark_milan.pem")).unwrap();
    cache
        .put_amd_cert_chain(Product::Milan, AmdKey::Vcek, &chain)
        .unwrap();
    let a = args(&dir.path().join("cache").display().to_string());
    let (code, out) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["claims"]["snp"]["product"], "Milan");
}

/// Like [`verify`], with stderr (notes about skipped files, input errors).
fn verify_with_stderr(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["evidence", "verify", "--output", "json"])
        .args(args)
        .output()
        .expect("run enclava");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().expect("exit code"),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn tdx_collateral_dir_of_separate_certificate_files_and_unrelated_files() {
    let Some(v) = vectors() else { return };
    let quote = std::fs::read(v.join("tdx/phala-dcap-qvl/tdx_quote")).unwrap();
    let json = std::fs::read(v.join("tdx/phala-dcap-qvl/tdx_quote_collateral.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    enclava_testvectors::layouts::split_dcap_qvl(&json, &quote, tmp.path()).unwrap();
    let dir = tmp.path().display().to_string();
    let args = [
        "--tee",
        "tdx",
        "--evidence",
        &path(&v, "tdx/phala-dcap-qvl/tdx_quote"),
        "--collateral",
        &dir,
        "--at",
        "2025-07-19T10:00:34Z",
    ];
    // Before: missing_collateral "expected the TCB info issuer chain".
    let (code, out, err) = verify_with_stderr(&args);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out["claims"]["tcb_status"], "UpToDate");
    for skipped in ["README.md", "quote.dat", "other.json", "key.pem"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("note: skipped") && l.contains(skipped)),
            "{skipped}: {err}"
        );
    }
    // Corrupt collateral is an input error naming the file, not a skipped file.
    let p = tmp.path().join("tcb_signing.pem");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("MII", "M*I", 1)).unwrap();
    let (code, _, err) = verify_with_stderr(&args);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tcb_signing.pem") && err.contains("not base64"),
        "{err}"
    );
}

#[test]
fn snp_chain_as_separate_files_and_with_explanatory_text() {
    let Some(v) = vectors() else { return };
    let vcek = std::fs::read(v.join("sev-snp/trustee/test-vcek.der")).unwrap();
    let ask_ark = std::fs::read(v.join("sev-snp/google-go-sev-guest/ask_ark_milan.pem")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let coll = tmp.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    enclava_testvectors::layouts::split_snp(&vcek, &ask_ark, &coll).unwrap();
    let bundle = tmp.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            enclava_testvectors::layouts::with_explanatory_text(
                &enclava_testvectors::layouts::pem_of(&vcek)
            ),
            enclava_testvectors::layouts::with_explanatory_text(
                std::str::from_utf8(&ask_ark).unwrap()
            )
        ),
    )
    .unwrap();
    let report = path(&v, "sev-snp/trustee/test-report.bin");
    let coll = coll.display().to_string();
    let bundle = bundle.display().to_string();
    for extra in [
        ["--collateral", coll.as_str()],
        ["--certs", bundle.as_str()],
    ] {
        let mut args = vec![
            "--tee",
            "snp",
            "--evidence",
            &report,
            "--at",
            "2024-01-01T00:00:00Z",
        ];
        args.extend(extra);
        let (code, out, err) = verify_with_stderr(&args);
        assert_eq!(code, 0, "{extra:?}: {out} {err}");
        assert_eq!(
            out["claims"]["measurement"],
            "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
        );
    }
}

#[test]
fn nvidia_gpu_complete_offline_appraisal_through_the_cli() {
    let Some(v) = vectors() else { return };
    let nt = "nvidia-gpu/nvtrust";
    let args = |nonce: &'static str, at: &'static str| {
        vec![
            "--tee".to_string(),
            "nvidia-gpu".into(),
            "--evidence".into(),
            path(&v, &format!("{nt}/attestationReport.txt")),
            "--certs".into(),
            path(&v, &format!("{nt}/gpuAkCertChain.txt")),
            "--rim".into(),
            path(&v, &format!("{nt}/Driver_RIM_test_no_gpu.swidtag")),
            "--rim".into(),
            path(
                &v,
                &format!("{nt}/1010_0200_882_96005E0001_test_no_gpu.swidtag"),
            ),
            "--nonce".into(),
            nonce.into(),
            "--at".into(),
            at.into(),
        ]
    };
    let run = |a: Vec<String>| verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let good = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e";
    let (code, out) = run(args(good, "2024-06-01T00:00:00Z"));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["verified"], true);
    let c = &out["claims"];
    assert_eq!(c["arch"], "HOPPER");
    assert_eq!(c["driver_version"], "545.00");
    assert_eq!(c["vbios_version"], "96.00.5E.00.01");
    assert_eq!(c["measres"], "success");
    assert_eq!(c["oemid"], "5703");
    assert_eq!(c["nonce_verified"], true);
    // Bad nonce, expired RIMs: exit 1 with the check named.
    let (code, out) = run(args(
        "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
        "2024-06-01T00:00:00Z",
    ));
    assert_eq!(
        (code, &out["failed_check"]),
        (1, &Value::from("nonce")),
        "{out}"
    );
    let (code, out) = run(args(good, "2025-07-01T00:00:00Z"));
    assert_eq!(
        (code, &out["failed_check"]),
        (1, &Value::from("rim_expired")),
        "{out}"
    );
    // A nonce that is not 32 bytes is unusable input.
    let (code, _) = run(args("00", "2024-06-01T00:00:00Z"));
    assert_eq!(code, 2);
}

#[test]
fn nvidia_json_evidence_lists_through_the_cli() {
    let Some(v) = vectors() else { return };
    let (code, out) = verify(&[
        "--tee",
        "nvidia-gpu",
        "--evidence",
        &path(&v, "nvidia-gpu/nvtrust/gpu_evidence.json"),
        "--nonce",
        "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e",
        "--at",
        "2024-06-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{out}");
    let devices = out["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 8);
    assert!(
        devices
            .iter()
            .all(|d| d["claims"]["driver_version"] == "590.12")
    );
    // The NVSwitch set with its BIOS RIM, and a wrong nonce for the whole list.
    let sdk = "nvidia-gpu/attestation-sdk";
    let switch = |nonce: &str| {
        verify(&[
            "--tee",
            "nvidia-gpu",
            "--evidence",
            &path(
                &v,
                &format!("{sdk}/serialized_test_evidence/multi_switch_ls10.json"),
            ),
            "--rim",
            &path(
                &v,
                &format!(
                    "{sdk}/testdata/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml"
                ),
            ),
            "--nonce",
            nonce,
            "--at",
            "2026-08-01T00:00:00Z",
        ])
    };
    let (code, out) = switch("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["devices"].as_array().unwrap().len(), 4);
    assert!(
        out["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["claims"]["measres"] == "success")
    );
    let (code, out) = switch(&"00".repeat(32));
    assert_eq!(code, 1);
    assert_eq!(out["verified"], false);
    assert_eq!(out["failed_check"], "nonce");
    assert!(out["reason"].as_str().unwrap().starts_with("device 0: "));
}
