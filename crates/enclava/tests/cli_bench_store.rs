//! `enclava bench vault|attest --store URL [--replicas N]` through the real binary, briefly
//! (tiny durations: the shape of the report is under test, not the figures): both backends are
//! measured in one run with their ratio, the bench's own databases are gone afterwards (a second
//! run meets no state of the first), replicas run behind HAProxy, and a missing HAProxy is a clear
//! usage error before anything starts.
//!
//! The PostgreSQL cluster comes from `ENCLAVA_TEST_POSTGRES_URL` (`scripts/postgres-test.sh`);
//! without it these tests fail under `CI=true` and are skipped with a notice otherwise.

use std::process::{Command, Stdio};

use serde_json::Value;

const URL_VAR: &str = "ENCLAVA_TEST_POSTGRES_URL";

fn postgres_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{URL_VAR} is not set under CI=true: run the tests through scripts/postgres-test.sh"
        ),
        _ => {
            eprintln!(
                "NOTICE: {URL_VAR} not set, PostgreSQL bench test skipped (run through scripts/postgres-test.sh)"
            );
            None
        }
    }
}

fn has(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The URL goes through the environment (`ENCLAVA_BENCH_STORE`), as the help recommends.
/// Returns the output and the bench's process id (its databases are named after it).
fn bench(args: &[&str], store: &str) -> (std::process::Output, u32) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclava"));
    cmd.arg("bench")
        .args(args)
        .env("ENCLAVA_BENCH_STORE", store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(v) = enclava_testvectors::dir() {
        cmd.env("ENCLAVA_VECTORS", v);
    }
    let child = cmd.spawn().expect("run enclava");
    let pid = child.id();
    (child.wait_with_output().expect("wait for enclava"), pid)
}

fn ok_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report on stdout")
}

fn positive(v: &Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or(-1.0);
    assert!(x.is_finite() && x > 0.0, "{what} = {v}");
    x
}

/// The databases that the bench process `pid` created in the cluster and that still exist (other
/// tests run benches at the same time: only this one's count).
fn leftover_bench_databases(url: &str, pid: u32) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        let task = tokio::spawn(conn);
        let rows = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'enclava\\_bench\\_%' \
                 AND datname LIKE $1",
                &[&format!("%\\_{pid}\\_%")],
            )
            .await
            .expect("list databases");
        drop(client);
        let _ = task.await;
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    })
}

const TINY: &[&str] = &["--seconds", "0.5", "--rounds", "1"];

#[test]
fn bench_vault_store_reports_sqlite_postgres_and_their_ratio_and_leaves_no_database() {
    let Some(url) = postgres_url() else { return };
    if !has("openssl", "version") {
        panic!("the bench's OpenSSL baseline needs the openssl command");
    }
    // Twice: the second run must not trip over anything the first one left.
    for run in 0..2 {
        let mut args = vec!["vault", "--connections", "2", "--output", "json"];
        args.extend(TINY);
        let (out, pid) = bench(&args, &url);
        let report = ok_json(&out);
        let stores = &report["stores"];
        assert_eq!(stores["rounds_interleaved"], true, "{stores}");
        // The password is never printed.
        let shown = stores["postgres"].as_str().expect("the store, redacted");
        assert!(!shown.is_empty() && shown.contains("***"), "{shown}");
        let ops = stores["operations"].as_array().expect("operations");
        let names: Vec<&str> = ops.iter().filter_map(|o| o["operation"].as_str()).collect();
        assert_eq!(
            names,
            [
                "A256GCM encrypt 1 KiB",
                "A256KW wrap 32 B",
                "RSA-2048 OAEP-256 decrypt",
                "secret get"
            ],
            "run {run}"
        );
        for o in ops {
            let s = positive(&o["sqlite"]["per_s"], "sqlite per_s");
            let p = positive(&o["postgres"]["per_s"], "postgres per_s");
            let r = positive(&o["postgres_vs_sqlite"], "ratio");
            assert!((r - p / s).abs() < 1e-9, "{o}");
            assert_eq!(o["sqlite"]["errors"], 0, "{o}");
            assert_eq!(o["postgres"]["errors"], 0, "{o}");
        }
        // The figures of today are still there (the SQLite ones), with the machine.
        assert_eq!(report["operations"].as_array().map(Vec::len), Some(4));
        assert!(report["machine"]["cpu_model"].is_string());
        assert_eq!(
            leftover_bench_databases(&url, pid),
            Vec::<String>::new(),
            "the bench dropped its databases (run {run})"
        );
    }
}

#[test]
fn bench_attest_store_prints_both_backends_and_the_ratio() {
    let Some(url) = postgres_url() else { return };
    if enclava_testvectors::dir().is_none() {
        panic!("the attestation bench needs the hardware vectors (ENCLAVA_VECTORS)");
    }
    let mut args = vec!["attest"];
    args.extend(TINY);
    let (out, pid) = bench(&args, &url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("machine: ").count(), 1, "{stdout}");
    for tee in ["SNP", "TDX"] {
        let section = stdout
            .split(&format!("{tee} attestations, SQLite vs PostgreSQL"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {tee} comparison in:\n{stdout}"));
        let lines: Vec<&str> = section.lines().skip(1).take(3).collect();
        assert!(lines[0].trim_start().starts_with("sqlite "), "{lines:?}");
        assert!(lines[1].trim_start().starts_with("postgres "), "{lines:?}");
        let ratio: f64 = lines[2]
            .trim()
            .strip_prefix("postgres/sqlite ")
            .and_then(|r| r.split('x').next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no ratio in {:?}", lines[2]));
        assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");
    }
    assert_eq!(leftover_bench_databases(&url, pid), Vec::<String>::new());
}

#[test]
fn bench_vault_one_vs_two_replicas_behind_haproxy() {
    let Some(url) = postgres_url() else { return };
    if !has("haproxy", "-v") {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("haproxy is not installed under CI=true (Debian: apt-get install haproxy)");
        }
        eprintln!("NOTICE: haproxy not installed, replica bench test skipped");
        return;
    }
    let mut args = vec![
        "vault",
        "--replicas",
        "2",
        "--connections",
        "2",
        "--output",
        "json",
    ];
    args.extend(TINY);
    let (out, pid) = bench(&args, &url);
    let report = ok_json(&out);
    let replicas = &report["replicas"];
    assert_eq!(replicas["count"], 2, "{replicas}");
    let ops = replicas["operations"].as_array().expect("operations");
    assert_eq!(ops.len(), 4, "{replicas}");
    for o in ops {
        // Both front ends serve every operation (one audit chain across replicas). A request
        // that lost the audit lock race too often may answer a retryable 503: counted, not
        // fatal, and reported with the first failure.
        let one = positive(&o["one"]["per_s"], "one replica per_s");
        let many = positive(&o["many"]["per_s"], "two replicas per_s");
        let r = o["many_vs_one"].as_f64().expect("ratio");
        assert!((r - many / one).abs() < 1e-9, "{o}");
        for side in ["one", "many"] {
            let errors = o[side]["errors"].as_u64().expect("an error count");
            assert_eq!(errors == 0, o[side]["first_error"].is_null(), "{o}");
        }
    }
    assert_eq!(leftover_bench_databases(&url, pid), Vec::<String>::new());
}

#[test]
fn bench_replicas_without_haproxy_on_path_is_a_clear_error_before_anything_runs() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["bench", "vault", "--replicas", "2", "--seconds", "0.5"])
        // Nothing is reachable here: the HAProxy check must come first.
        .env("ENCLAVA_BENCH_STORE", "postgres://bench@127.0.0.1:1/none")
        .env("PATH", empty.path())
        .output()
        .expect("run enclava");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("haproxy") && stderr.contains("apt-get install haproxy"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("openssl"),
        "nothing measured first: {stderr}"
    );
}

#[test]
fn bench_replicas_need_a_store() {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["bench", "vault", "--replicas", "2"])
        .env_remove("ENCLAVA_BENCH_STORE")
        .output()
        .expect("run enclava");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--store"), "{stderr}");
}

#[test]
fn bench_attest_one_vs_two_replicas_behind_haproxy() {
    let Some(url) = postgres_url() else { return };
    if !has("haproxy", "-v") {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("haproxy is not installed under CI=true (Debian: apt-get install haproxy)");
        }
        eprintln!("NOTICE: haproxy not installed, replica bench test skipped");
        return;
    }
    let mut args = vec!["attest", "--replicas", "2", "--output", "json"];
    args.extend(TINY);
    let (out, pid) = bench(&args, &url);
    let report = ok_json(&out);
    let r = &report["replicas"];
    assert_eq!(r["count"], 2, "{r}");
    assert_eq!(r["route"], "TdxVm", "{r}");
    // At least one connection per replica, whatever --connections says (HAProxy balances
    // connections).
    assert!(r["connections"].as_u64().is_some_and(|c| c >= 2), "{r}");
    let one = positive(&r["one"]["per_s"], "one replica per_s");
    assert_eq!(r["one"]["failed"], 0, "{r}");
    let many = r["many"]["per_s"].as_f64().expect("many per_s");
    let ratio = r["many_vs_one"].as_f64().expect("ratio");
    assert!((ratio - many / one).abs() < 1e-9, "{r}");
    // The store comparison is in the same report.
    assert!(
        report["stores"]["tdx"]["postgres_vs_sqlite"].is_f64(),
        "{report}"
    );
    assert_eq!(leftover_bench_databases(&url, pid), Vec::<String>::new());
}
