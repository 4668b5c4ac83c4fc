//! `enclava bench kbs` through the real binary, briefly: every figure is a real full RCAR flow
//! (auth, attest with sample evidence, resource fetched and its JWE decrypted and compared with
//! the stored bytes: a flow that fails aborts the bench with the server's answer), reported next
//! to the in-process cost of the same flow and trustee's reference figure.

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_kbs_reports_flows_next_to_in_process_and_trustee() {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args([
            "bench",
            "kbs",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--clients",
            "2",
            "--output",
            "json",
        ])
        .output()
        .expect("run enclava");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(
        report["machine"]["cpu_model"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{report}"
    );
    let in_process = report["baseline"]["in_process_flows_per_s"]
        .as_f64()
        .unwrap_or(-1.0);
    assert!(in_process.is_finite() && in_process > 0.0, "{report}");
    assert_eq!(
        report["baseline"]["trustee_reference_flows_per_s"].as_f64(),
        Some(79.0)
    );
    let flows = report["flows"].as_array().expect("flows");
    // One client, then the requested two.
    assert_eq!(
        flows
            .iter()
            .map(|f| f["clients"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(1), Some(2)],
        "{report}"
    );
    for f in flows {
        let per_s = f["flows_per_s"].as_f64().unwrap_or(-1.0);
        let (p50, p99) = (
            f["p50_ms"].as_f64().unwrap_or(-1.0),
            f["p99_ms"].as_f64().unwrap_or(-1.0),
        );
        assert!(per_s > 0.0 && p50 > 0.0 && p99 >= p50, "{f}");
        assert!(f["flows_measured"].as_u64().is_some_and(|n| n >= 1), "{f}");
        let ratio = f["vs_in_process"].as_f64().unwrap_or(-1.0);
        assert!((ratio - per_s / in_process).abs() < 1e-9, "{f}");
    }
}

#[test]
fn bench_kbs_refuses_bad_arguments_with_what_was_expected() {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["bench", "kbs", "--clients", "0"])
        .output()
        .expect("run enclava");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--clients: expected 1 to 64, found 0"),
        "{stderr}"
    );
}
