//! End-to-end tests of `enclava key|secret|operator|audit` against a dev server started from the
//! same binary (`enclava server --dev`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_enclava");

struct DevServer {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl DevServer {
    fn start() -> DevServer {
        Self::start_with(true)
    }

    /// `dev = false`: a fresh, uninitialized, sealed server.
    fn start_with(dev: bool) -> DevServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir data");
        Self::start_in(dir, dev)
    }

    /// Kill the server the hard way (SIGKILL: no flush, no shutdown) and start a new one on the
    /// same data directory.
    fn crash_and_restart(mut self) -> DevServer {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, true)
    }

    fn start_in(dir: tempfile::TempDir, dev: bool) -> DevServer {
        let data = dir.path().join("data");
        let stderr = std::fs::File::create(dir.path().join("server.stderr")).expect("stderr file");
        let mut server = Command::new(BIN);
        server.arg("server");
        if dev {
            server.arg("--dev");
        }
        let mut child = server
            .arg("--data-dir")
            .arg(&data)
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn enclava server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("ready ")
                        && u.starts_with("https://")
                    {
                        break u.trim().to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("server exited with {status}: {}", read_stderr(dir.path()));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not print `ready https://...`: {}",
                        read_stderr(dir.path())
                    );
                }
            }
        };
        DevServer { child, url, dir }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An `enclava` command with the connection configured through the environment.
    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("ENCLAVA_URL", &self.url)
            .env("ENCLAVA_CA_CERT", self.data_dir().join("ca.pem"))
            .env_remove("ENCLAVA_TOKEN")
            .env_remove("ENCLAVA_TOKEN_FILE")
            .stdin(Stdio::null());
        let token = self.token();
        if !token.is_empty() {
            c.env("ENCLAVA_TOKEN", token);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run enclava")
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_stderr(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.stderr")).unwrap_or_default()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn b64d(s: &str) -> Vec<u8> {
    let cleaned: String = s.trim_end_matches('=').replace('+', "-").replace('/', "_");
    URL_SAFE_NO_PAD.decode(cleaned).expect("base64")
}

#[test]
fn cli_against_dev_server() {
    let srv = DevServer::start();
    let work = tempfile::tempdir().expect("tempdir");

    // --- operator status (json) ---
    let status = json(&srv.run(&["operator", "status", "-o", "json"]));
    assert_eq!(status["sealed"], Value::Bool(false), "{status}");
    assert_eq!(status["initialized"], Value::Bool(true), "{status}");

    // --- RSA key: create, encrypt, decrypt ---
    let created = json(&srv.run(&[
        "key", "create", "cli-rsa", "--kty", "RSA", "--size", "2048", "-o", "json",
    ]));
    let kid = created["key"]["kid"].as_str().expect("kid").to_string();
    assert!(
        kid.starts_with(&format!("{}/keys/cli-rsa/", srv.url)),
        "{kid}"
    );
    assert_eq!(
        created["key"]["kty"].as_str().map(|k| k.starts_with("RSA")),
        Some(true)
    );

    let plaintext = b"hello from the enclava CLI \x00\xff";
    let enc = json(&srv.run(&[
        "key",
        "encrypt",
        "cli-rsa",
        "--alg",
        "RSA-OAEP-256",
        "--value",
        &STANDARD.encode(plaintext),
        "-o",
        "json",
    ]));
    assert_eq!(enc["kid"].as_str(), Some(kid.as_str()));
    let ct = enc["value"].as_str().expect("ciphertext").to_string();
    assert_eq!(b64d(&ct).len(), 256);

    let ct_file = work.path().join("ct.bin");
    std::fs::write(&ct_file, b64d(&ct)).expect("write ct");
    let pt_file = work.path().join("pt.bin");
    ok(&srv.run(&[
        "key",
        "decrypt",
        "cli-rsa",
        "--alg",
        "RSA-OAEP-256",
        "--in",
        ct_file.to_str().expect("path"),
        "--out",
        pt_file.to_str().expect("path"),
    ]));
    assert_eq!(std::fs::read(&pt_file).expect("read pt"), plaintext);

    // Table output names the key.
    let table = ok(&srv.run(&["key", "get", "cli-rsa"]));
    assert!(
        table.contains("cli-rsa") && table.contains("2048 bits"),
        "{table}"
    );

    // --- sign / verify (exit 1 on a bad signature) ---
    let data_file = work.path().join("data.txt");
    std::fs::write(&data_file, b"signed payload").expect("write data");
    let sig_file = work.path().join("sig.bin");
    let data = data_file.to_str().expect("path");
    let sig = sig_file.to_str().expect("path");
    ok(&srv.run(&[
        "key", "sign", "cli-rsa", "--alg", "PS256", "--in", data, "--out", sig,
    ]));
    assert_eq!(std::fs::read(&sig_file).expect("sig").len(), 256);
    let good = srv.run(&[
        "key",
        "verify",
        "cli-rsa",
        "--alg",
        "PS256",
        "--in",
        data,
        "--signature-file",
        sig,
    ]);
    assert!(ok(&good).contains("valid"));
    std::fs::write(&data_file, b"tampered payload").expect("write data");
    let bad = srv.run(&[
        "key",
        "verify",
        "cli-rsa",
        "--alg",
        "PS256",
        "--in",
        data,
        "--signature-file",
        sig,
    ]);
    assert_eq!(
        code(&bad),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("INVALID"));

    // --- AES-GCM with an oct key: iv and tag come back and are needed to decrypt ---
    ok(&srv.run(&[
        "key", "create", "cli-oct", "--kty", "oct", "--hsm", "--size", "256",
    ]));
    let g = json(&srv.run(&[
        "key",
        "encrypt",
        "cli-oct",
        "--alg",
        "A256GCM",
        "--value",
        &STANDARD.encode(b"gcm data"),
        "--aad",
        &STANDARD.encode(b"hdr"),
        "-o",
        "json",
    ]));
    let (gv, giv, gtag) = (
        g["value"].as_str().expect("v"),
        g["iv"].as_str().expect("iv"),
        g["tag"].as_str().expect("tag"),
    );
    let gd = json(&srv.run(&[
        "key",
        "decrypt",
        "cli-oct",
        "--alg",
        "A256GCM",
        "--value",
        gv,
        "--iv",
        giv,
        "--tag",
        gtag,
        "--aad",
        &STANDARD.encode(b"hdr"),
        "-o",
        "json",
    ]));
    assert_eq!(b64d(gd["value"].as_str().expect("pt")), b"gcm data");

    // --- exportable key: needs a release policy, which the server stores ---
    let policy_file = work.path().join("policy.json");
    let policy = r#"{"version":"1.0.0","anyOf":[{"authority":"https://attest.example","allOf":[{"claim":"x-ms-isolation-tee.x-ms-attestation-type","equals":"sevsnpvm"}]}]}"#;
    std::fs::write(&policy_file, policy).expect("write policy");
    let exp = json(&srv.run(&[
        "key",
        "create",
        "cli-exp",
        "--kty",
        "RSA",
        "--hsm",
        "--exportable",
        "--release-policy",
        policy_file.to_str().expect("path"),
        "-o",
        "json",
    ]));
    assert_eq!(exp["attributes"]["exportable"], Value::Bool(true), "{exp}");
    let stored: Value = serde_json::from_slice(&b64d(
        exp["release_policy"]["data"].as_str().expect("policy data"),
    ))
    .expect("policy");
    assert_eq!(
        stored,
        serde_json::from_str::<Value>(policy).expect("policy json")
    );
    std::fs::write(&policy_file, "not json").expect("write policy");
    let bad_policy = srv.run(&[
        "key",
        "create",
        "cli-exp2",
        "--kty",
        "RSA",
        "--exportable",
        "--release-policy",
        policy_file.to_str().expect("path"),
    ]);
    assert_eq!(code(&bad_policy), Some(2));

    // --- secrets ---
    let secret_file = work.path().join("secret.txt");
    std::fs::write(&secret_file, "s3cr3t value\nline 2").expect("write secret");
    let set = json(&srv.run(&[
        "secret",
        "set",
        "cli-secret",
        "--file",
        secret_file.to_str().expect("path"),
        "--content-type",
        "text/plain",
        "-o",
        "json",
    ]));
    assert_eq!(set["contentType"].as_str(), Some("text/plain"));
    let got = srv.run(&["secret", "get", "cli-secret", "--value-only"]);
    assert_eq!(ok(&got), "s3cr3t value\nline 2");
    let got = json(&srv.run(&["secret", "get", "cli-secret", "-o", "json"]));
    assert_eq!(got["value"].as_str(), Some("s3cr3t value\nline 2"));
    for v in ["v-a", "v-b", "v-c", "v-d", "v2"] {
        ok(&srv.run(&["secret", "set", "cli-secret", "--value", v]));
    }
    let versions = json(&srv.run(&["secret", "versions", "cli-secret", "-o", "json"]));
    assert_eq!(versions.as_array().map(Vec::len), Some(6), "{versions}");
    // Small pages: the CLI follows nextLink to the end and loses nothing.
    let paged = json(&srv.run(&[
        "secret",
        "versions",
        "cli-secret",
        "--page-size",
        "2",
        "-o",
        "json",
    ]));
    assert_eq!(paged.as_array().map(Vec::len), Some(6), "{paged}");
    let mut a: Vec<String> = versions
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["id"].to_string())
        .collect();
    let mut b: Vec<String> = paged
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["id"].to_string())
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let keys_paged = json(&srv.run(&["key", "list", "--page-size", "1", "-o", "json"]));
    assert!(
        keys_paged.as_array().map(Vec::len) >= Some(3),
        "{keys_paged}"
    );
    let list = json(&srv.run(&["secret", "list", "-o", "json"]));
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert!(
        ids.iter().any(|i| i.ends_with("/secrets/cli-secret")),
        "{ids:?}"
    );

    // delete -> get is 404 (exit 1) -> recover -> get works -> delete + purge
    ok(&srv.run(&["secret", "delete", "cli-secret"]));
    let gone = srv.run(&["secret", "get", "cli-secret"]);
    assert_eq!(
        code(&gone),
        Some(1),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    ok(&srv.run(&["secret", "recover", "cli-secret"]));
    assert_eq!(
        ok(&srv.run(&["secret", "get", "cli-secret", "--value-only"])),
        "v2"
    );

    // --- key backup / restore after purge ---
    let backup = work.path().join("rsa.backup");
    ok(&srv.run(&[
        "key",
        "backup",
        "cli-rsa",
        "--out",
        backup.to_str().expect("path"),
    ]));
    ok(&srv.run(&["key", "delete", "cli-rsa"]));
    ok(&srv.run(&["key", "purge", "cli-rsa"]));
    assert_eq!(code(&srv.run(&["key", "get", "cli-rsa"])), Some(1));
    ok(&srv.run(&["key", "restore", "--in", backup.to_str().expect("path")]));
    // The restored key still decrypts the earlier ciphertext.
    let again = json(&srv.run(&[
        "key",
        "decrypt",
        "cli-rsa",
        "--alg",
        "RSA-OAEP-256",
        "--value",
        &ct,
        "-o",
        "json",
    ]));
    assert_eq!(b64d(again["value"].as_str().expect("pt")), plaintext);
}

#[test]
fn exit_codes() {
    let srv = DevServer::start();

    // Not found: the server said no -> 1, with the server's reason on stderr.
    let out = srv.run(&["key", "get", "does-not-exist"]);
    assert_eq!(code(&out), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404"), "{err}");

    // Bad arguments -> 2, and nothing is sent.
    assert_eq!(
        code(&srv.run(&["key", "create", "k", "--kty", "RSA", "--size", "1000"])),
        Some(2)
    );
    assert_eq!(code(&srv.run(&["key", "get", "bad/name"])), Some(2));
    assert_eq!(
        code(&srv.run(&["key", "encrypt", "k", "--alg", "RSA-OAEP", "--value", "***"])),
        Some(2)
    );
    assert_eq!(
        code(&srv.run(&["key", "create", "k", "--kty", "RSA", "--exportable"])),
        Some(2)
    );
    assert_eq!(
        code(&srv.run(&["operator", "init", "--shares", "2", "--threshold", "3"])),
        Some(2)
    );
    assert_eq!(code(&srv.run(&["key", "frobnicate"])), Some(2));
    let no_url = srv
        .cmd()
        .env_remove("ENCLAVA_URL")
        .args(["key", "list"])
        .output()
        .expect("run");
    assert_eq!(code(&no_url), Some(2));
    assert!(String::from_utf8_lossy(&no_url.stderr).contains("ENCLAVA_URL"));

    // Denied: a wrong token -> 1.
    let denied = srv
        .cmd()
        .env("ENCLAVA_TOKEN", "wrong-token")
        .args(["key", "list"])
        .output()
        .expect("run");
    assert_eq!(
        code(&denied),
        Some(1),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    // Untrusted server certificate and unreachable server: network failure -> 3.
    let untrusted = srv
        .cmd()
        .env_remove("ENCLAVA_CA_CERT")
        .args(["key", "list"])
        .output()
        .expect("run");
    assert_eq!(
        code(&untrusted),
        Some(3),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let unreachable = srv
        .cmd()
        .env("ENCLAVA_URL", format!("https://127.0.0.1:{port}"))
        .args(["key", "list"])
        .output()
        .expect("run");
    assert_eq!(code(&unreachable), Some(3));

    // A wrong algorithm for the key type is the server saying no -> 1.
    ok(&srv.run(&["key", "create", "ec1", "--kty", "EC", "--curve", "P-256"]));
    let wrong = srv.run(&["key", "sign", "ec1", "--alg", "RS256", "--value", "AAAA"]);
    assert_eq!(
        code(&wrong),
        Some(1),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

#[test]
fn dev_mode_only_from_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let run = |env_dev: &str, flag: bool| {
        let mut c = Command::new(BIN);
        c.arg("server");
        if flag {
            c.arg("--dev");
        }
        c.arg("--data-dir")
            .arg(&data)
            .args(["--addr", "127.0.0.1:0"])
            .env("ENCLAVA_DEV", env_dev)
            .stdin(Stdio::null());
        c
    };
    // ENCLAVA_DEV=true alone: refused before anything is created.
    let out = run("true", false).output().expect("run server");
    assert_eq!(code(&out), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ENCLAVA_DEV") && err.contains("--dev"),
        "{err}"
    );
    assert!(!data.join("vault.db").exists());
    assert!(!data.join("dev-unseal.key").exists());
    // A `dev = true` configuration file alone: refused too.
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "dev = true\n").expect("write config");
    let out = run("false", false)
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run server");
    assert_eq!(
        code(&out),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn operator_init_unseal_seal() {
    let srv = DevServer::start_with(false);
    let status = json(&srv.run(&["operator", "status", "-o", "json"]));
    assert_eq!(status["initialized"], Value::Bool(false), "{status}");
    assert_eq!(status["sealed"], Value::Bool(true), "{status}");

    // Init needs the one-time init token from DATA_DIR/init.token: none or a wrong one -> 401.
    let token_file = srv.data_dir().join("init.token");
    assert!(token_file.exists());
    let no_token = srv
        .cmd()
        .current_dir(srv.dir.path())
        .env_remove("ENCLAVA_DATA_DIR")
        .env_remove("ENCLAVA_INIT_TOKEN_FILE")
        .args(["operator", "init", "--shares", "3", "--threshold", "2"])
        .output()
        .expect("run");
    assert_eq!(code(&no_token), Some(1));
    let err = String::from_utf8_lossy(&no_token.stderr);
    assert!(err.contains("401") && err.contains("init token"), "{err}");
    let wrong = srv.dir.path().join("wrong.token");
    std::fs::write(&wrong, "x".repeat(43)).expect("write");
    let out = srv.run(&[
        "operator",
        "init",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--init-token-file",
        wrong.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code(&out), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
    let status = json(&srv.run(&["operator", "status", "-o", "json"]));
    assert_eq!(status["initialized"], Value::Bool(false), "{status}");

    let data_dir = srv.data_dir();
    let data_dir = data_dir.to_str().expect("utf-8 path");
    let init = srv.run(&[
        "operator",
        "init",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--data-dir",
        data_dir,
    ]);
    let text = ok(&init);
    assert!(!token_file.exists(), "the used init token is deleted");
    assert!(String::from_utf8_lossy(&init.stderr).contains("shown ONCE"));
    let shares: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("share ")
                .and_then(|r| r.split_once(": "))
                .map(|(_, s)| s.to_string())
        })
        .collect();
    assert_eq!(shares.len(), 3, "{text}");
    // Initializing twice is refused by the server.
    assert_eq!(
        code(&srv.run(&[
            "operator",
            "init",
            "--shares",
            "3",
            "--threshold",
            "2",
            "--data-dir",
            data_dir
        ])),
        Some(1)
    );

    // A sealed vault answers data requests with 503: exit 3.
    assert_eq!(code(&srv.run(&["key", "list"])), Some(3));

    // First share as an argument, second on standard input (the prompt path, without a terminal).
    let first = ok(&srv.run(&["operator", "unseal", &shares[0]]));
    assert!(first.contains("1/2"), "{first}");
    // The same share again is reported, not silently counted or ignored.
    let again = ok(&srv.run(&["operator", "unseal", &shares[0]]));
    assert!(
        again.contains("already given") && again.contains("1/2"),
        "{again}"
    );
    let mut child = srv
        .cmd()
        .args(["operator", "unseal"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unseal");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{}", shares[2]).expect("write share");
    }
    let out = child.wait_with_output().expect("unseal");
    assert!(ok(&out).contains("unsealed"));
    // The share never appears in the output.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&shares[2]));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&shares[2]));

    let status = json(&srv.run(&["operator", "status", "-o", "json"]));
    assert_eq!(status["sealed"], Value::Bool(false), "{status}");
    // The bootstrap administrator token now exists; sealing needs it.
    ok(&srv.run(&["key", "create", "after-unseal", "--kty", "EC"]));
    ok(&srv.run(&["operator", "seal"]));
    let status = json(&srv.run(&["operator", "status", "-o", "json"]));
    assert_eq!(status["sealed"], Value::Bool(true), "{status}");
    // A wrong share is refused.
    assert_eq!(
        code(&srv.run(&["operator", "unseal", "ensh1-001-002-00"])),
        Some(1)
    );
}

#[test]
fn audit_verify_and_export() {
    let mut srv = DevServer::start();
    for name in ["a1", "a2", "a3"] {
        ok(&srv.run(&["secret", "set", name, "--value", "x"]));
    }
    // Export over HTTP and from the store agree.
    let http = ok(&srv.run(&["audit", "export", "--format", "jsonl"]));
    let data = srv.data_dir();
    let data_s = data.to_str().expect("path");
    let local = ok(&srv.run(&["audit", "export", "--format", "jsonl", "--data-dir", data_s]));
    let http_lines: Vec<&str> = http.lines().collect();
    assert!(http_lines.len() >= 3, "{http}");
    assert_eq!(
        local.lines().take(http_lines.len()).collect::<Vec<_>>(),
        http_lines
    );
    for line in &http_lines {
        let v: Value = serde_json::from_str(line).expect("jsonl line");
        assert!(v["hash"].as_str().is_some_and(|h| h.len() == 64), "{line}");
    }

    srv.stop();
    let intact = srv.run(&["audit", "verify", "--data-dir", data_s]);
    assert!(ok(&intact).contains("intact"));

    // Modify one entry in place: verification fails (exit 1) and names the entry.
    let db = data.join("vault.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        let entry: Vec<u8> = conn
            .query_row("SELECT entry FROM audit WHERE seq = 2", [], |r| r.get(0))
            .expect("row 2");
        let text = String::from_utf8(entry).expect("utf8");
        let forged = text.replacen("\"status\":200", "\"status\":201", 1);
        assert_ne!(forged, text, "entry 2 has no status 200: {text}");
        conn.execute(
            "UPDATE audit SET entry = ?1 WHERE seq = 2",
            [forged.as_bytes()],
        )
        .expect("update");
    }
    let broken = srv.run(&["audit", "verify", "--data-dir", data_s]);
    assert_eq!(code(&broken), Some(1));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("seq 2") && err.contains("modified"), "{err}");
    let report = srv.run(&["audit", "verify", "--data-dir", data_s, "-o", "json"]);
    assert_eq!(code(&report), Some(1));
    let v: Value = serde_json::from_slice(&report.stdout).expect("json report");
    assert_eq!(v["ok"], Value::Bool(false));
    assert_eq!(v["first_problem"]["kind"].as_str(), Some("modified"));

    // A missing data directory is a usage error.
    let missing = srv.run(&["audit", "verify", "--data-dir", "/nonexistent/enclava"]);
    assert_eq!(code(&missing), Some(2));
}

/// Tail truncation: deleting the newest entries and the checkpoints that covered them leaves a
/// consistent shorter chain, but not the signed head file next to the database.
#[test]
fn audit_verify_reports_a_truncated_tail() {
    let mut srv = DevServer::start();
    for name in ["t1", "t2", "t3"] {
        ok(&srv.run(&["secret", "set", name, "--value", "x"]));
    }
    srv.stop();
    let data = srv.data_dir();
    let data_s = data.to_str().expect("path");
    let head: Value = serde_json::from_slice(
        &std::fs::read(data.join("audit-head.json")).expect("a signed head file"),
    )
    .expect("head json");
    let y = head["seq"].as_u64().expect("head seq");
    assert!(y >= 1, "{head}");
    ok(&srv.run(&["audit", "verify", "--data-dir", data_s]));
    {
        let conn = rusqlite::Connection::open(data.join("vault.db")).expect("open db");
        conn.execute("DELETE FROM audit WHERE seq >= ?1", [y as i64])
            .expect("truncate");
        conn.execute("DELETE FROM audit_checkpoints", [])
            .expect("drop checkpoints");
    }
    let out = srv.run(&["audit", "verify", "--data-dir", data_s]);
    assert_eq!(code(&out), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("removed")
            && err.contains(&format!(
                "the log ends at seq {} but a signed head at seq {y} exists",
                y - 1
            )),
        "{err}"
    );
}

/// `enclava data`: envelopes round-trip through the vault's wrapKey/unwrapKey, tampering and
/// truncation are refused with exit 1 and leave no output file, and an envelope of another vault
/// is never sent anywhere.
#[test]
fn data_envelopes_through_the_vault() {
    let srv = DevServer::start();
    let work = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| work.path().join(n).display().to_string();
    // 3 MiB and a bit: several chunks, with a short final one.
    let plain: Vec<u8> = (0..3 * 1024 * 1024 + 777)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(p("plain.bin"), &plain).unwrap();
    ok(&srv.run(&["key", "create", "rsa-dk", "--kty", "RSA", "--size", "2048"]));
    ok(&srv.run(&["key", "create", "aes-dk", "--kty", "oct"]));

    for key in ["rsa-dk", "aes-dk"] {
        let enc = p(&format!("{key}.enc"));
        let out = json(&srv.run(&[
            "data",
            "encrypt",
            "--key",
            key,
            "--in",
            &p("plain.bin"),
            "--out",
            &enc,
            "-o",
            "json",
        ]));
        assert_eq!(out["plaintext_bytes"], plain.len());
        assert!(
            out["kid"]
                .as_str()
                .unwrap()
                .contains(&format!("/keys/{key}/"))
        );
        let sealed = std::fs::read(&enc).unwrap();
        assert!(
            !sealed.windows(64).any(|w| w == &plain[..64]),
            "plaintext visible in the envelope"
        );
        let dec = p(&format!("{key}.dec"));
        ok(&srv.run(&["data", "decrypt", "--in", &enc, "--out", &dec]));
        assert_eq!(std::fs::read(&dec).unwrap(), plain, "{key}: round trip");

        // A flipped byte in the middle, and a truncation: exit 1, no output left behind.
        let mut tampered = sealed.clone();
        let mid = tampered.len() / 2;
        tampered[mid] ^= 0x40;
        std::fs::write(p("tampered.enc"), &tampered).unwrap();
        let r = srv.run(&[
            "data",
            "decrypt",
            "--in",
            &p("tampered.enc"),
            "--out",
            &p("t.out"),
        ]);
        assert_eq!(code(&r), Some(1), "{}", String::from_utf8_lossy(&r.stderr));
        std::fs::write(p("short.enc"), &sealed[..sealed.len() - 100]).unwrap();
        let r = srv.run(&[
            "data",
            "decrypt",
            "--in",
            &p("short.enc"),
            "--out",
            &p("t.out"),
        ]);
        assert_eq!(code(&r), Some(1), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(String::from_utf8_lossy(&r.stderr).contains("truncated"));
        assert!(
            !work.path().join("t.out").exists(),
            "no partial output may remain"
        );
        let leftovers: Vec<_> = std::fs::read_dir(work.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    // A disabled key cannot unwrap: the vault says no, exit 1.
    ok(&srv.run(&["key", "update", "aes-dk", "--disable"]));
    let r = srv.run(&[
        "data",
        "decrypt",
        "--in",
        &p("aes-dk.enc"),
        "--out",
        &p("x.out"),
    ]);
    assert_eq!(code(&r), Some(1), "{}", String::from_utf8_lossy(&r.stderr));

    // An envelope naming another vault's key is refused locally (exit 2) before any request.
    let other = DevServer::start();
    let r = other.run(&[
        "data",
        "decrypt",
        "--in",
        &p("rsa-dk.enc"),
        "--out",
        &p("y.out"),
    ]);
    assert_eq!(code(&r), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("another vault"));
}

/// A crash (SIGKILL) in the middle of a stream of writes loses no acknowledged write and leaves no
/// half-written object; the audit chain still verifies afterwards.
#[test]
fn crash_loses_no_acknowledged_write() {
    let srv = DevServer::start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let envs: Vec<(String, String)> = srv
            .cmd()
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
            .collect();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 500 {
                let name = format!("crash-{i}");
                let value = format!("value-{i}-{}", "x".repeat((i % 7) as usize * 100));
                let out = Command::new(BIN)
                    .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env_remove("ENCLAVA_TOKEN_FILE")
                    .args(["secret", "set", &name, "--value", &value])
                    .stdin(Stdio::null())
                    .output()
                    .expect("run enclava");
                if out.status.success() {
                    acked.push((name, value));
                }
                i += 1;
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let srv = srv.crash_and_restart();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.join().expect("writer thread");
    assert!(
        acked.len() >= 3,
        "expected some acknowledged writes before the crash, got {}",
        acked.len()
    );
    for (name, value) in &acked {
        let out = srv.run(&["secret", "get", name, "--value-only"]);
        assert_eq!(
            ok(&out).trim_end(),
            value,
            "acknowledged secret {name} lost or altered by the crash"
        );
    }
    // Whatever was in flight is either fully there or not at all: every listed secret reads back.
    let listed = json(&srv.run(&["secret", "list", "-o", "json"]));
    for item in listed.as_array().expect("list is an array") {
        let id = item["id"].as_str().unwrap_or_default();
        let name = id.rsplit('/').next().unwrap_or_default();
        if name.starts_with("crash-") {
            ok(&srv.run(&["secret", "get", name, "--value-only"]));
        }
    }
    let out = srv.run(&[
        "audit",
        "verify",
        "--data-dir",
        srv.data_dir().to_str().unwrap(),
    ]);
    ok(&out);
}

#[test]
fn operator_rotates_service_keys() {
    let srv = DevServer::start();
    let v = json(&srv.run(&[
        "operator",
        "rotate-service-key",
        "--key",
        "attestation",
        "-o",
        "json",
    ]));
    let kid = v["kid"].as_str().expect("kid").to_string();
    assert_eq!(v["jwks"]["keys"][0]["kid"], kid.as_str());
    assert_eq!(v["jwks"]["keys"].as_array().map(Vec::len), Some(2), "{v}");
    let text = ok(&srv.run(&["operator", "rotate-service-key", "--key", "release"]));
    assert!(text.contains("release service key rotated"), "{text}");
    // Anything else is a usage error; without the Administrator role the server refuses.
    assert_eq!(
        code(&srv.run(&["operator", "rotate-service-key", "--key", "tls"])),
        Some(2)
    );
    let out = srv
        .cmd()
        .env_remove("ENCLAVA_TOKEN")
        .args(["operator", "rotate-service-key", "--key", "attestation"])
        .output()
        .expect("run");
    assert_eq!(code(&out), Some(1));
}

/// The header line of a table: its column names in order (names may hold one space).
fn headers(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect()
}

/// `key` and `secret` share their lifecycle commands (cmd/object.rs): the tables and messages
/// are each kind's own, as before.
#[test]
fn key_and_secret_lifecycle_output() {
    let srv = DevServer::start();
    let work = tempfile::tempdir().expect("tempdir");
    ok(&srv.run(&[
        "secret",
        "set",
        "tbl-secret",
        "--value",
        "v1",
        "--content-type",
        "text/plain",
    ]));
    ok(&srv.run(&["key", "create", "tbl-key", "--kty", "oct"]));

    let secrets = ok(&srv.run(&["secret", "list"]));
    assert_eq!(
        headers(&secrets),
        ["NAME", "CONTENT TYPE", "ENABLED", "UPDATED"],
        "{secrets}"
    );
    assert!(
        secrets.contains("tbl-secret") && secrets.contains("text/plain"),
        "{secrets}"
    );
    let versions = ok(&srv.run(&["secret", "versions", "tbl-secret"]));
    assert_eq!(
        headers(&versions),
        ["VERSION", "CONTENT TYPE", "ENABLED", "UPDATED"],
        "{versions}"
    );
    let keys = ok(&srv.run(&["key", "list"]));
    assert_eq!(
        headers(&keys),
        ["NAME", "ENABLED", "CREATED", "UPDATED"],
        "{keys}"
    );
    assert!(keys.contains("tbl-key"), "{keys}");

    // Backup, delete, the deleted listing, purge, restore, for each kind.
    for (kind, name) in [("key", "tbl-key"), ("secret", "tbl-secret")] {
        let file = work.path().join(format!("{kind}.backup"));
        let file = file.to_str().expect("path");
        let out = srv.run(&[kind, "backup", name, "--out", file]);
        ok(&out);
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&format!("wrote backup of {kind} {name} to")),
            "{out:?}"
        );
        let deleted = ok(&srv.run(&[kind, "delete", name]));
        assert!(deleted.contains("recoveryId"), "{deleted}");
        let listed = ok(&srv.run(&[kind, "list", "--deleted"]));
        assert_eq!(
            headers(&listed).last().map(String::as_str),
            Some("PURGE AFTER"),
            "{listed}"
        );
        assert!(listed.contains(name), "{listed}");
        let purged = ok(&srv.run(&[kind, "purge", name]));
        assert_eq!(purged.trim(), format!("purged {kind} {name}"));
        ok(&srv.run(&[kind, "restore", "--in", file]));
        assert!(ok(&srv.run(&[kind, "list"])).contains(name));
        // A backup file that is not text is refused locally with the kind's own wording.
        let bad = work.path().join("bad.backup");
        std::fs::write(&bad, [0xff, 0xfe]).expect("write");
        let out = srv.run(&[kind, "restore", "--in", bad.to_str().expect("path")]);
        assert_eq!(code(&out), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&format!("expected the base64 blob `{kind} backup` writes")),
            "{out:?}"
        );
    }
    let secret = json(&srv.run(&["secret", "get", "tbl-secret", "-o", "json"]));
    assert_eq!(secret["value"], "v1", "{secret}");
}
