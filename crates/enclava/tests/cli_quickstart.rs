//! End to end: `enclava quickstart` and `enclava run` against a dev server started from the same
//! binary.
//!
//! Needs the example workload built for wasm32-wasip1 (`bash scripts/build-workload.sh`). Without
//! it the tests print a notice and pass, unless `CI` is set (the test script builds it first), in
//! which case they fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_enclava");

fn workload() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing; in CI the test script must build it first (bash scripts/build-workload.sh)",
            p.display()
        );
    }
    eprintln!(
        "NOTICE: skipping: the example workload is not built ({}); run bash scripts/build-workload.sh",
        p.display()
    );
    None
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn quickstart(data: &Path, wasm: &Path) -> (String, Duration) {
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(["quickstart", "--transactions", "20000", "--data-dir"])
        .arg(data)
        .arg("--workload")
        .arg(wasm)
        .env_remove("ENCLAVA_URL")
        .env_remove("ENCLAVA_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run quickstart");
    let took = t0.elapsed();
    (ok(&out), took)
}

/// `enclava server --dev` on DIR at ADDR; killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts the server; retries a few times when the address is briefly still in use after
    /// the quickstart's server stopped.
    fn start(data: &Path, addr: &str) -> Server {
        for attempt in 0..5 {
            match Self::try_start(data, addr) {
                Ok(s) => return s,
                Err(e) if attempt < 4 => {
                    eprintln!("server start attempt {attempt} failed: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn try_start(data: &Path, addr: &str) -> Result<Server, String> {
        let log = std::fs::File::create(data.join("restart.log")).expect("log");
        let mut child = Command::new(BIN)
            .args(["server", "--dev", "--data-dir"])
            .arg(data)
            .args(["--addr", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("ready ") {
                        return Ok(Server {
                            child,
                            url: u.trim().to_string(),
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    if let Ok(Some(s)) = child.try_wait() {
                        return Err(format!(
                            "server exited with {s}: {}",
                            std::fs::read_to_string(data.join("restart.log")).unwrap_or_default()
                        ));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "server did not become ready: {}",
                        std::fs::read_to_string(data.join("restart.log")).unwrap_or_default()
                    ));
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn quickstart_proves_each_step_and_enclava_run_repeats_it() {
    let Some(wasm) = workload() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");

    // --- the quickstart ---
    let (out, took) = quickstart(&data, &wasm);
    assert!(took < Duration::from_secs(60), "quickstart took {took:?}");
    for step in 1..=12 {
        assert!(
            out.contains(&format!("[{step}/12]")),
            "step {step} missing:\n{out}"
        );
    }
    assert_eq!(out.matches("proves: ").count(), 12, "{out}");
    // The result was decrypted for the recipient and summarized.
    assert!(out.contains("results decrypted for the recipient"), "{out}");
    assert!(out.contains("20000 transactions on"), "{out}");
    assert!(out.contains("top flagged transactions:"), "{out}");
    assert!(
        out.contains("merchants with the most flagged transactions:"),
        "{out}"
    );
    // The protocol steps of the real run.
    assert!(out.contains("(c) key released: "), "{out}");
    assert!(out.contains("(d) plaintext directories wiped"), "{out}");
    assert!(out.contains("(e) receipt signed"), "{out}");
    // The modified workload: refused by the attestation policy, then by the release policy
    // naming the measurement condition.
    assert!(
        out.contains("modified workload refused by the attestation policy"),
        "{out}"
    );
    assert!(
        out.contains("rule measurement_not_allowed on claims.measurement"),
        "{out}"
    );
    assert!(
        out.contains("modified workload refused by the release policy"),
        "{out}"
    );
    assert!(out.contains("ReleasePolicyNotSatisfied"), "{out}");
    assert!(
        out.contains("on x-enclava-measurement: expected equals"),
        "{out}"
    );
    // The receipt and the audit log.
    assert!(
        out.contains("the receipt's ES256 signature verifies"),
        "{out}"
    );
    assert!(out.contains("audit verified"), "{out}");
    assert!(out.contains("quickstart complete in"), "{out}");

    // The quickstart's files stay in DATA_DIR/quickstart.
    let qs = data.join("quickstart");
    let manifest_path = qs.join("manifest.json");
    let sealed = qs.join("transactions.csv.enc");
    let host_token = qs.join("workload-host.token");
    let receipt: Value =
        serde_json::from_slice(&std::fs::read(qs.join("receipt.json")).expect("receipt"))
            .expect("receipt json");
    assert_eq!(receipt["receipt"]["tee"], "sim");
    assert_eq!(receipt["receipt"]["simulated"], true);
    assert_eq!(
        receipt["receipt"]["outputs"].as_array().map(Vec::len),
        Some(2)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&host_token)
            .expect("token")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "host token is readable by others: {mode:o}"
        );
    }

    // `enclava run --measure-only` computes the measurement the quickstart put in the policies,
    // offline.
    let measured = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("measurement "))
        .expect("measurement line")
        .to_string();
    let o = Command::new(BIN)
        .args(["run", "--measure-only", "--manifest"])
        .arg(&manifest_path)
        .arg("--module")
        .arg(&wasm)
        .env_remove("ENCLAVA_URL")
        .output()
        .expect("measure");
    assert_eq!(ok(&o).trim(), measured);

    // --- `enclava run` against the same server (restarted on the same address, so the token
    // issuer the release policy names is the same) ---
    let url_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("https://127.0.0.1:"))
        .expect("server url line");
    let url = url_line.split_whitespace().next().expect("url").to_string();
    let addr = url.trim_start_matches("https://").to_string();
    let srv = Server::start(&data, &addr);
    assert_eq!(srv.url, url);
    let ca = data.join("ca.pem");
    let run = |manifest: &Path, module: &Path, input: &Path, out_dir: &Path| -> Output {
        Command::new(BIN)
            .args(["run", "--tee", "sim", "--verbose", "--url", &url])
            .arg("--ca-cert")
            .arg(&ca)
            .arg("--token-file")
            .arg(&host_token)
            .arg("--manifest")
            .arg(manifest)
            .arg("--module")
            .arg(module)
            .arg("--input")
            .arg(format!("transactions.csv={}", input.display()))
            .arg("--output-dir")
            .arg(out_dir)
            .arg("--receipt")
            .arg(out_dir.join("receipt.json"))
            .env_remove("ENCLAVA_TOKEN")
            .env_remove("ENCLAVA_URL")
            .stdin(Stdio::null())
            .output()
            .expect("run enclava run")
    };

    // The authorized workload runs; the recipient decrypts its output.
    let out_dir = dir.path().join("out");
    let o = run(&manifest_path, &wasm, &sealed, &out_dir);
    let stdout = ok(&o);
    assert!(
        stdout.contains("workload fraud-workload ran in sim"),
        "{stdout}"
    );
    let err = text(&o.stderr);
    for step in [
        "(a) workload measurement",
        "(b) challenge",
        "(c) attested",
        "(c) key released",
        "(d) workload exited with 0",
        "(e) receipt signed",
    ] {
        assert!(err.contains(step), "--verbose lacks {step:?}: {err}");
    }
    let admin = std::fs::read_to_string(data.join("admin.token")).expect("admin token");
    let dec = Command::new(BIN)
        .args(["data", "decrypt", "--in"])
        .arg(out_dir.join("summary.json.enc"))
        .arg("--out")
        .arg(dir.path().join("summary.json"))
        .env("ENCLAVA_URL", &url)
        .env("ENCLAVA_CA_CERT", &ca)
        .env("ENCLAVA_TOKEN", admin.trim())
        .output()
        .expect("decrypt");
    ok(&dec);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).expect("summary"))
            .expect("summary json");
    assert_eq!(summary["totals"]["transactions"], 20000);

    // The workload host's token cannot decrypt the result itself (it is not the recipient).
    let dec = Command::new(BIN)
        .args(["data", "decrypt", "--in"])
        .arg(out_dir.join("summary.json.enc"))
        .arg("--out")
        .arg(dir.path().join("stolen.json"))
        .env("ENCLAVA_URL", &url)
        .env("ENCLAVA_CA_CERT", &ca)
        .env("ENCLAVA_TOKEN_FILE", &host_token)
        .env_remove("ENCLAVA_TOKEN")
        .output()
        .expect("decrypt");
    assert_eq!(dec.status.code(), Some(1), "{}", text(&dec.stderr));
    assert!(!dir.path().join("stolen.json").exists());

    // Wrong measurement: the same manifest with one more argument -> refused, exit 1, the failed
    // rule named.
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    m["env"]["EXTRA"] = Value::String("1".into());
    let evil_manifest = dir.path().join("evil-manifest.json");
    std::fs::write(&evil_manifest, serde_json::to_vec(&m).expect("json")).expect("write");
    let o = run(&evil_manifest, &wasm, &sealed, &dir.path().join("evil-out"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("attestation refused"), "{err}");
    assert!(err.contains("measurement_not_allowed"), "{err}");
    assert!(err.contains("claims.measurement"), "{err}");
    assert!(!dir.path().join("evil-out/summary.json.enc").exists());

    // Bad input: the manifest names another module -> exit 2 before anything is sent.
    let mut other = std::fs::read(&wasm).expect("wasm");
    if let Some(b) = other.last_mut() {
        *b ^= 1;
    }
    let other_path = dir.path().join("other.wasm");
    std::fs::write(&other_path, &other).expect("write");
    let o = run(&manifest_path, &other_path, &sealed, &dir.path().join("x"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("module digest mismatch"));
    // Bad input: a missing sealed input.
    let o = run(
        &manifest_path,
        &wasm,
        &dir.path().join("nope.enc"),
        &dir.path().join("x"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // Server unreachable: exit 3.
    drop(srv);
    let o = run(&manifest_path, &wasm, &sealed, &dir.path().join("x"));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
}

#[test]
fn quickstart_without_the_workload_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(BIN)
        .args(["quickstart", "--workload"])
        .arg(dir.path().join("missing.wasm"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("scripts/build-workload.sh"),
        "{}",
        text(&out.stderr)
    );
}
