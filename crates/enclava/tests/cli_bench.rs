//! `enclava bench data` and `enclava bench workload` through the real binary: the machine a run
//! used is part of every report (figures from different CPUs are not comparable), the envelope
//! figures come with the raw aws-lc-rs ceiling of the same run, and a missing workload build is
//! a usage error that says exactly what to run.

use std::process::Command;

use serde_json::Value;

fn enclava(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(args)
        .output()
        .expect("run enclava")
}

fn has_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn bench_data_reports_machine_and_raw_cipher_ceiling() {
    if !has_openssl() {
        eprintln!("NOTICE: skipping: the OpenSSL baseline needs the openssl command");
        return;
    }
    let out = enclava(&[
        "bench", "data", "--bytes", "1048576", "--rounds", "1", "--output", "json",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let machine = &report["machine"];
    assert!(
        machine["cpu_model"].as_str().is_some_and(|m| !m.is_empty()),
        "{machine}"
    );
    assert!(machine["logical_cores"].as_u64().is_some_and(|n| n >= 1));
    assert!(machine["features"].is_array() && machine["absent_features"].is_array());
    #[cfg(target_arch = "x86_64")]
    {
        // Present or absent, AES-NI and AVX-512F are always named, on one of the two lists.
        let named = |f: &str| {
            [&machine["features"], &machine["absent_features"]]
                .iter()
                .any(|l| l.as_array().unwrap().iter().any(|v| v == f))
        };
        assert!(
            named("AES-NI") && named("VAES") && named("AVX-512F"),
            "{machine}"
        );
    }
    for key in [
        "aws_lc_rs_aes_256_gcm_seal_bytes_per_s",
        "aws_lc_rs_aes_256_gcm_open_bytes_per_s",
        "encrypt_vs_aws_lc_rs_seal",
        "decrypt_vs_aws_lc_rs_open",
        "encrypt_vs_openssl",
        "decrypt_vs_openssl",
    ] {
        let v = report[key].as_f64().unwrap_or(-1.0);
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    // The machine line is printed once, on stderr, before the measurements.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("machine: ").count(), 1, "{stderr}");
}

#[test]
fn bench_workload_names_what_is_missing_and_the_command_that_builds_both() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("fraud-workload.wasm");
    let native = dir.path().join("fraud-workload");
    std::fs::write(&wasm, b"\0asm").unwrap();
    let out = enclava(&[
        "bench",
        "workload",
        "--wasm",
        wasm.to_str().unwrap(),
        "--native",
        native.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} (the native baseline binary)",
            native.display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wasm32-wasip1 module)"),
        "the wasm module exists: {stderr}"
    );
    assert!(
        stderr.contains("bash scripts/build-workload.sh")
            && stderr.contains("examples/fraud-workload/target/release/fraud-workload"),
        "{stderr}"
    );
}

/// A workload "source", two builds and the stamp scripts/build-workload.sh would write for them.
fn stamped_workload(dir: &std::path::Path) -> [std::path::PathBuf; 4] {
    use sha2::{Digest, Sha256};
    let source = dir.join("workload");
    std::fs::create_dir_all(source.join("src")).unwrap();
    std::fs::create_dir_all(source.join("target")).unwrap();
    std::fs::write(source.join("src/main.rs"), "fn main() {}\n").unwrap();
    let wasm = source.join("target/w.wasm");
    let native = source.join("target/w");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(&native, b"not a program").unwrap();
    let stamp = source.join("target/enclava-workload.stamp");
    let src = enclava_runtime::source_digest(&enclava_runtime::read_source_tree(&source).unwrap());
    std::fs::write(
        &stamp,
        format!(
            "source-sha256 {src}\nwasm-sha256 {}\nnative-sha256 {}\n",
            hex::encode(Sha256::digest(b"\0asm\x01\0\0\0")),
            hex::encode(Sha256::digest(b"not a program")),
        ),
    )
    .unwrap();
    [source, wasm, native, stamp]
}

fn bench_workload_with(paths: &[std::path::PathBuf; 4]) -> std::process::Output {
    let [source, wasm, native, stamp] = paths;
    enclava(&[
        "bench",
        "workload",
        "--rows",
        "10",
        "--wasm",
        wasm.to_str().unwrap(),
        "--native",
        native.to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
        "--stamp",
        stamp.to_str().unwrap(),
    ])
}

#[test]
fn bench_workload_refuses_a_stale_native_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let paths = stamped_workload(dir.path());
    // The attack on the figure: a baseline built from another revision of the workload (here,
    // any other bytes) next to the current module.
    std::fs::write(&paths[2], b"an older baseline").unwrap();
    let out = bench_workload_with(&paths);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} (the native baseline binary) is not the build the stamp records",
            paths[2].display()
        )) && stderr.contains("bash scripts/build-workload.sh"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("machine: "),
        "nothing was measured: {stderr}"
    );
}

#[test]
fn bench_workload_refuses_builds_older_than_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let paths = stamped_workload(dir.path());
    std::fs::write(
        paths[0].join("src/main.rs"),
        "fn main() { /* changed */ }\n",
    )
    .unwrap();
    let out = bench_workload_with(&paths);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("changed since it was built")
            && stderr.contains("bash scripts/build-workload.sh"),
        "{stderr}"
    );
}

#[test]
fn bench_workload_runs_builds_its_stamp_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let paths = stamped_workload(dir.path());
    let out = bench_workload_with(&paths);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Past the check: the machine and the source digest are printed, then the fake native
    // generator fails to run (it is not a program).
    assert!(stderr.contains("machine: "), "{stderr}");
    assert!(stderr.contains("workload source "), "{stderr}");
    assert!(!stderr.contains("build-workload.sh"), "{stderr}");
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `enclava ARGS --output json`, which must succeed, and returns its report.
fn json_report(args: &[&str]) -> Value {
    let out = enclava(&[args, &["--output", "json"]].concat());
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// Every phase of a `--breakdown` was timed: a positive wall-clock median over at least five
/// runs, and on Linux a positive on-CPU time.
fn assert_timed(phases: &[Value]) {
    for p in phases {
        let wall = p["wall_p50_us"].as_f64().unwrap_or(-1.0);
        assert!(wall.is_finite() && wall > 0.0, "{p}");
        assert!(p["runs"].as_u64().is_some_and(|n| n >= 5), "{p}");
        #[cfg(target_os = "linux")]
        assert!(p["cpu_us"].as_f64().is_some_and(|c| c > 0.0), "{p}");
    }
}

/// `bench release --breakdown` through the real binary: every phase of a release is timed in
/// process against the bench server (each after a successful warm-up run, so a phase that
/// fails makes the bench fail), with wall-clock and on-CPU time. Only the shape is checked:
/// the figures themselves depend on the machine.
#[test]
fn bench_release_breakdown_times_every_phase() {
    if !has_openssl() {
        eprintln!("NOTICE: skipping: the OpenSSL baseline needs the openssl command");
        return;
    }
    let report = json_report(&[
        "bench",
        "release",
        "--seconds",
        "0.5",
        "--rounds",
        "1",
        "--connections",
        "1",
        "--breakdown",
    ]);
    let phases = report["breakdown"]["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["phase"].as_str()).collect();
    for want in [
        "attestation token verification",
        "release signer, cached (2 store reads)",
        "release signer, uncached (unseal ring, parse RSA key)",
        "release policy (parse, evaluate)",
        "RSA-OAEP-256 + AES-KWP wrap (public op)",
        "RS256 signature (RSA-2048 private op)",
        "vault release (key read, policy, wrap, sign)",
        "durable audit append (1 entry)",
        "release answer signature check",
        "key_hsm unwrap (RSA-2048 OAEP private op + AES-KWP)",
    ] {
        assert!(names.contains(&want), "{want:?} missing from {names:?}");
    }
    assert_timed(phases);
    assert!(
        report["releases"][0]["releases_measured"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{report}"
    );
}

/// `bench attest --breakdown --token-alg ES256` through the real binary on the hardware vectors:
/// the bench servers sign with the algorithm asked for (the bench checks the first token's
/// header), and every phase of one SNP and one TDX attestation is timed (each after a
/// successful warm-up run), with the derived lines in between. Only the shape is checked.
#[test]
fn bench_attest_breakdown_times_every_phase_with_the_chosen_signer() {
    if !has_openssl() {
        eprintln!("NOTICE: skipping: the OpenSSL baseline needs the openssl command");
        return;
    }
    let Some(vectors) = enclava_testvectors::dir() else {
        panic!("the attestation bench needs the hardware vectors (ENCLAVA_VECTORS)");
    };
    let vectors = vectors.display().to_string();
    let report = json_report(&[
        "bench",
        "attest",
        "--vectors",
        &vectors,
        "--seconds",
        "0.5",
        "--rounds",
        "1",
        "--token-alg",
        "ES256",
        "--breakdown",
    ]);
    assert_eq!(report["token_alg"], "ES256", "{report}");
    for tee in ["snp", "tdx"] {
        let b = &report["breakdown"][tee];
        let phases = b["phases"].as_array().expect("phases");
        let names: Vec<&str> = phases.iter().filter_map(|p| p["phase"].as_str()).collect();
        for want in [
            "request decoding (JSON, base64)",
            "evidence verification (caches warm)",
            "token issue without claims (header + signature)",
            "service attest (verify, bind, policy, claims, token)",
            "the same attestation over HTTPS (1 connection)",
            "HTTPS floor: GET openid-configuration (1 connection)",
            "RS256 signature alone (RSA-2048, token-sized input)",
            "ES256 signature alone (P-256, token-sized input)",
        ] {
            assert!(
                names.contains(&want),
                "{tee}: {want:?} missing from {names:?}"
            );
        }
        assert_timed(phases);
        for d in [
            "binding_policy_claims_encoding",
            "http_handler_audit_client",
            "https_floor",
        ] {
            assert!(b["derived_us"][d].as_f64().is_some(), "{tee}: {d} in {b}");
        }
    }
}

#[test]
fn bench_attest_refuses_an_unknown_token_algorithm() {
    let out = enclava(&["bench", "attest", "--token-alg", "HS256"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RS256") && err.contains("ES256"), "{err}");
}
