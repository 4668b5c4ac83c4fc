//! `enclava token verify` through the real binary: a good token verifies (exit 0); tampered,
//! expired, wrong-issuer, wrong-audience, `alg: none` and HS256-confused tokens are refused (exit 1)
//! with their reason codes; bad arguments exit 2. Keys come from a JWKS file or a pinned PEM key.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use enclava_token::{Es256Signer, Jwks, TokenOptions, TokenSigner};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const ISS: &str = "https://attest.enclava.test";

struct Fixture {
    dir: tempfile::TempDir,
    signer: Es256Signer,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let signer = Es256Signer::generate("k1").unwrap();
        let jwks = Jwks::new(vec![signer.public_jwk().unwrap()]);
        std::fs::write(
            dir.path().join("jwks.json"),
            serde_json::to_vec(&jwks).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("key.pem"), public_pem(&signer)).unwrap();
        Fixture { dir, signer }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().to_string()
    }

    fn token(&self, issuer: &str, audience: Option<&str>, age_secs: i64) -> String {
        let mut opts = TokenOptions::new(issuer, Utc::now() - Duration::seconds(age_secs));
        opts.audience = audience.map(str::to_string);
        let mut claims = Map::new();
        claims.insert("x-ms-attestation-type".into(), json!("sevsnpvm"));
        enclava_token::issue(&claims, &self.signer, &opts).unwrap()
    }
}

/// The P-256 SubjectPublicKeyInfo of the signer, PEM.
fn public_pem(s: &Es256Signer) -> String {
    let jwk = s.public_jwk().unwrap();
    let x = URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk.y.unwrap()).unwrap();
    let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    der.push(0x04);
    der.extend_from_slice(&x);
    der.extend_from_slice(&y);
    pem::encode(&pem::Pem::new("PUBLIC KEY", der))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn enc(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
}

/// Runs `enclava token verify TOKEN ARGS --output json`: (exit code, stdout JSON, stderr).
fn verify(token: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["token", "verify", token, "--output", "json"])
        .args(args)
        .env_remove("ENCLAVA_CA_CERT")
        .output()
        .expect("run enclava");
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, json, String::from_utf8_lossy(&out.stderr).to_string())
}

fn assert_invalid(r: (i32, Value, String), code: &str) {
    assert_eq!(r.0, 1, "expected exit 1 ({code}): {:?} {}", r.1, r.2);
    assert_eq!(r.1["valid"], false, "{:?}", r.1);
    assert_eq!(r.1["code"], code, "{:?} {}", r.1, r.2);
    assert!(r.2.contains(code), "{}", r.2);
}

#[test]
fn good_token_verifies_with_jwks_and_pinned_key() {
    let f = Fixture::new();
    let tok = f.token(ISS, Some("my-app"), 0);
    let jwks = f.path("jwks.json");
    let r = verify(
        &tok,
        &["--jwks", &jwks, "--issuer", ISS, "--audience", "my-app"],
    );
    assert_eq!(r.0, 0, "{:?} {}", r.1, r.2);
    assert_eq!(r.1["valid"], true);
    assert_eq!(r.1["claims"]["iss"], ISS);
    assert_eq!(r.1["claims"]["x-ms-attestation-type"], "sevsnpvm");
    let key = f.path("key.pem");
    let r = verify(&tok, &["--key", &key, "--issuer", ISS]);
    assert_eq!(r.0, 0, "{:?} {}", r.1, r.2);
    // From a file too.
    let file = f.path("token.jwt");
    std::fs::write(&file, format!("{tok}\n")).unwrap();
    assert_eq!(verify(&file, &["--key", &key, "--issuer", ISS]).0, 0);
}

#[test]
fn bad_tokens_are_refused_with_their_codes() {
    let f = Fixture::new();
    let jwks = f.path("jwks.json");
    let key = f.path("key.pem");
    let good = f.token(ISS, Some("my-app"), 0);
    let parts: Vec<&str> = good.split('.').collect();

    // Tampered payload: the signature no longer matches.
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["x-ms-attestation-type"] = json!("sgx");
    let tampered = format!("{}.{}.{}", parts[0], enc(&payload), parts[2]);
    assert_invalid(
        verify(&tampered, &["--jwks", &jwks, "--issuer", ISS]),
        "bad_signature",
    );

    // Expired (issued an hour ago, 5-minute lifetime).
    let old = f.token(ISS, None, 3600);
    assert_invalid(
        verify(&old, &["--jwks", &jwks, "--issuer", ISS]),
        "token_expired",
    );

    // Wrong issuer, wrong audience.
    let other = f.token("https://evil.example", None, 0);
    assert_invalid(
        verify(&other, &["--jwks", &jwks, "--issuer", ISS]),
        "wrong_issuer",
    );
    assert_invalid(
        verify(
            &good,
            &["--key", &key, "--issuer", ISS, "--audience", "another-app"],
        ),
        "wrong_audience",
    );

    // alg none with the original claims and no signature.
    let none = format!(
        "{}.{}.",
        enc(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        parts[1]
    );
    assert_invalid(
        verify(&none, &["--jwks", &jwks, "--issuer", ISS]),
        "alg_none",
    );

    // HS256 "key confusion": HMAC keyed with the public key PEM the verifier holds.
    let pem_text = std::fs::read(Path::new(&key)).unwrap();
    let header = enc(&json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}));
    let input = format!("{header}.{}", parts[1]);
    let mac = hmac_sha256(&pem_text, input.as_bytes());
    let confused = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
    assert_invalid(
        verify(&confused, &["--key", &key, "--issuer", ISS]),
        "alg_symmetric",
    );
    assert_invalid(
        verify(&confused, &["--jwks", &jwks, "--issuer", ISS]),
        "alg_symmetric",
    );

    // A token signed by another key: unknown to the pinned key's verification.
    let stranger = Es256Signer::generate("k1").unwrap();
    let foreign =
        enclava_token::issue(&Map::new(), &stranger, &TokenOptions::new(ISS, Utc::now())).unwrap();
    assert_invalid(
        verify(&foreign, &["--key", &key, "--issuer", ISS]),
        "bad_signature",
    );
}

#[test]
fn bad_arguments_exit_2() {
    let f = Fixture::new();
    let tok = f.token(ISS, None, 0);
    // No key source.
    assert_eq!(verify(&tok, &["--issuer", ISS]).0, 2);
    // Unreadable key file, a private key instead of a public one, a non-https JWKS URL.
    assert_eq!(verify(&tok, &["--key", &f.path("missing.pem")]).0, 2);
    let private = f.path("private.pem");
    std::fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert_eq!(verify(&tok, &["--key", &private]).0, 2);
    assert_eq!(
        verify(&tok, &["--jwks-url", "http://example.invalid/certs"]).0,
        2
    );
    assert_eq!(
        verify(&tok, &["--jwks", &f.path("jwks.json"), "--at", "yesterday"]).0,
        2
    );
}

/// A dev server child process (killed on drop) verifying as of `at`.
struct DevServer {
    child: std::process::Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dev_server(at: &str) -> DevServer {
    dev_server_with(at, &[])
}

fn dev_server_with(at: &str, envs: &[(&str, &str)]) -> DevServer {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["server", "--dev", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("ENCLAVA_ATTESTATION_VERIFICATION_TIME", at)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("no ready line: {line:?}"))
        .to_string();
    DevServer { child, url, dir }
}

impl DevServer {
    /// `enclava ARGS --output json` against this server as its bootstrap administrator:
    /// (exit code, parsed stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, Value, String) {
        let data = self.dir.path().join("data");
        let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
            .args(args)
            .arg("--url")
            .arg(&self.url)
            .arg("--ca-cert")
            .arg(data.join("ca.pem"))
            .args(["--output", "json"])
            .env_remove("ENCLAVA_TOKEN")
            .env("ENCLAVA_TOKEN_FILE", data.join("admin.token"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

fn vector(rel: &str) -> Option<String> {
    enclava_testvectors::dir().map(|d| d.join(rel).to_string_lossy().to_string())
}

/// The built-in `snp` policy with the revocation requirement switched off.
fn snp_without_revocation() -> String {
    let text = enclava_policy::rego::defaults::SNP;
    assert!(text.contains("require_revocation := true"));
    text.replace("require_revocation := true", "require_revocation := false")
}

/// A production server (no --dev) given a verification time refuses to start, naming the key;
/// nothing listens.
#[test]
fn production_server_refuses_a_moved_verification_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(["server", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env(
            "ENCLAVA_ATTESTATION_VERIFICATION_TIME",
            "2022-09-24T01:00:00Z",
        )
        .env_remove("ENCLAVA_DEV")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the server");
    // A server that started anyway would never exit: give it a bounded time, then fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the production server started with a moved verification clock");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("attestation.verification_time") && err.contains("--dev"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "no ready line"
    );
}

#[test]
fn attest_policy_and_verify_against_a_dev_server() {
    let (Some(report), Some(vcek), Some(chain)) = (
        vector("sev-snp/trustee/test-report.bin"),
        vector("sev-snp/trustee/test-vcek.der"),
        vector("sev-snp/google-go-sev-guest/ask_ark_milan.pem"),
    ) else {
        return;
    };
    let at = "2025-06-01T00:00:00Z";
    let s = dev_server(at);
    let ca = s
        .dir
        .path()
        .join("data/ca.pem")
        .to_string_lossy()
        .to_string();
    let cli = |args: &[&str]| s.cli(args);
    let maa_attest = [
        "attest",
        "--maa",
        "--tee",
        "snp",
        "--evidence",
        &report,
        "--certs",
        &vcek,
        "--certs",
        &chain,
        "--nonce",
        "cli-1",
    ];
    // The built-in policy requires an AMD CRL, and no real one is among the vectors: denied,
    // the deny naming the CRL it expected.
    let (code, _, err) = cli(&maa_attest);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("revocation_checked") && err.contains("an AMD VCEK CRL for Milan"),
        "{err}"
    );
    let (code, out, err) = cli(&["policy", "get", "--type", "SevSnpVm"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["policy"]["version"], 0);
    assert_eq!(out["policy"]["builtin"], true);
    // The built-in policy without the revocation requirement admits it.
    let dir = tempfile::tempdir().unwrap();
    let norev = dir.path().join("norev.rego");
    std::fs::write(&norev, snp_without_revocation()).unwrap();
    let norev_s = norev.to_string_lossy().to_string();
    let (code, out, err) = cli(&["policy", "set", "--type", "SevSnpVm", "--file", &norev_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["policy"]["version"], 1);
    // MAA route with the VCEK chain inside the report JSON.
    let (code, out, err) = cli(&maa_attest);
    assert_eq!(code, 0, "{err}");
    // A dev server on a moved clock says so in its tokens.
    assert_eq!(
        out["claims"]["x-enclava-verification-time"],
        json!({"time": "2025-06-01T00:00:00+00:00", "moved": true})
    );
    assert_eq!(out["claims"]["x-ms-attestation-type"], "sevsnpvm");
    assert_eq!(out["claims"]["nonce"], "cli-1");
    assert_eq!(
        out["claims"]["x-ms-sevsnpvm-launchmeasurement"],
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );
    let token = out["token"].as_str().unwrap().to_string();
    // The token verifies against the server's JWKS (as of the server's verification time).
    let jwks_url = format!("{}/certs", s.url);
    let v = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args([
            "token",
            "verify",
            &token,
            "--jwks-url",
            &jwks_url,
            "--ca-cert",
            &ca,
        ])
        .args(["--issuer", &s.url, "--at", at, "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    // Native route: the same evidence.
    let (code, out, err) = cli(&[
        "attest",
        "--tee",
        "snp",
        "--evidence",
        &report,
        "--certs",
        &vcek,
        "--certs",
        &chain,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["claims"]["x-enclava-tee"], "snp");
    // Policies: test a denying draft (exit 1, rule named), set, reset.
    let draft = dir.path().join("deny.rego");
    std::fs::write(
        &draft,
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\ndeny contains \"nope\" if true\n",
    )
    .unwrap();
    let inner = json!({
        "SnpReport": URL_SAFE_NO_PAD.encode(std::fs::read(&report).unwrap()),
        "VcekCertChain": URL_SAFE_NO_PAD.encode(
            [
                pem::encode(&pem::Pem::new("CERTIFICATE", std::fs::read(&vcek).unwrap())),
                std::fs::read_to_string(&chain).unwrap(),
            ]
            .concat(),
        ),
    });
    let req = dir.path().join("req.json");
    std::fs::write(
        &req,
        json!({"report": URL_SAFE_NO_PAD.encode(inner.to_string())}).to_string(),
    )
    .unwrap();
    let draft_s = draft.to_string_lossy().to_string();
    let req_s = req.to_string_lossy().to_string();
    let (code, out, err) = cli(&[
        "policy",
        "test",
        "--type",
        "SevSnpVm",
        "--file",
        &draft_s,
        "--request",
        &req_s,
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out["allowed"], false);
    assert_eq!(out["failed"][0]["rule"], "nope");
    let (code, out, err) = cli(&["policy", "set", "--type", "SevSnpVm", "--file", &draft_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["policy"]["version"], 2);
    let (code, _, err) = cli(&[
        "attest",
        "--maa",
        "--tee",
        "snp",
        "--evidence",
        &report,
        "--certs",
        &vcek,
        "--certs",
        &chain,
    ]);
    assert_eq!(code, 1, "denied: {err}");
    assert!(
        err.contains("attestation_denied") && err.contains("nope"),
        "{err}"
    );
    let (code, out, err) = cli(&["policy", "reset", "--type", "SevSnpVm"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["policy"]["builtin"], true);
    // Without a token the policy routes refuse (exit 1, 401).
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args([
            "policy",
            "get",
            "--type",
            "snp",
            "--url",
            &s.url,
            "--ca-cert",
            &ca,
        ])
        .env_remove("ENCLAVA_TOKEN")
        .env_remove("ENCLAVA_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn policy_set_signs_for_a_server_with_trusted_signers() {
    let keys = tempfile::tempdir().unwrap();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["policy signer".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    let path = |n: &str| keys.path().join(n).to_string_lossy().to_string();
    std::fs::write(path("signer.pem"), cert.pem()).unwrap();
    std::fs::write(path("signer.key"), kp.serialize_pem()).unwrap();
    std::fs::write(
        path("policy.txt"),
        "version=1.0; authorizationrules { => permit(); };",
    )
    .unwrap();
    let signers = path("signer.pem");
    let s = dev_server_with(
        "2025-06-01T00:00:00Z",
        &[("ENCLAVA_ATTESTATION_POLICY_SIGNERS", signers.as_str())],
    );
    let cli = |args: &[&str]| s.cli(args);
    let policy = path("policy.txt");
    // Unsigned: refused by the server, which requires a trusted signature.
    let (code, _, err) = cli(&["policy", "set", "--type", "SevSnpVm", "--file", &policy]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy_signature_required"), "{err}");
    // Signed with the trusted key: stored.
    let key = path("signer.key");
    let (code, out, err) = cli(&[
        "policy",
        "set",
        "--type",
        "SevSnpVm",
        "--file",
        &policy,
        "--sign-key",
        &key,
        "--sign-cert",
        &signers,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["policy"]["version"], 1, "{out}");
    // A key without its certificate is a usage error.
    let (code, _, err) = cli(&[
        "policy",
        "set",
        "--type",
        "SevSnpVm",
        "--file",
        &policy,
        "--sign-key",
        &key,
    ]);
    assert_eq!(code, 2, "{err}");
    // Reset: unsigned is refused too (isolated mode), signed goes back to the default.
    let (code, _, err) = cli(&["policy", "reset", "--type", "SevSnpVm"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy_signature_required"), "{err}");
    let (code, out, err) = cli(&[
        "policy",
        "reset",
        "--type",
        "SevSnpVm",
        "--sign-key",
        &key,
        "--sign-cert",
        &signers,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["policy"]["builtin"], true, "{out}");
}

#[test]
fn reference_values_from_the_cli_steer_attestation() {
    let (Some(report), Some(vcek), Some(chain)) = (
        vector("sev-snp/trustee/test-report.bin"),
        vector("sev-snp/trustee/test-vcek.der"),
        vector("sev-snp/google-go-sev-guest/ask_ark_milan.pem"),
    ) else {
        return;
    };
    let s = dev_server("2025-06-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.json");
    let set_s = set.to_string_lossy().to_string();
    let attest = |extra: &[&str]| {
        let mut args = vec![
            "attest",
            "--maa",
            "--tee",
            "snp",
            "--evidence",
            &report,
            "--certs",
            &vcek,
            "--certs",
            &chain,
        ];
        args.extend_from_slice(extra);
        s.cli(&args)
    };
    // The built-in policy's reference-value rules, without its revocation requirement (no AMD
    // CRL among the vectors).
    let norev = dir.path().join("norev.rego");
    std::fs::write(&norev, snp_without_revocation()).unwrap();
    let norev_s = norev.to_string_lossy().to_string();
    let (code, _, err) = s.cli(&["policy", "set", "--type", "SevSnpVm", "--file", &norev_s]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = attest(&[]);
    assert_eq!(code, 0, "{err}");

    // A set whose measurement is not this report's: the default policy now denies, naming it.
    std::fs::write(&set, r#"{"measurements": ["00"]}"#).unwrap();
    let (code, out, err) = s.cli(&[
        "reference",
        "set",
        "--scope",
        "default",
        "--name",
        "approved",
        "--file",
        &set_s,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (out["version"].clone(), out["action"].clone()),
        (json!(1), json!("set"))
    );
    let (code, out, _) = s.cli(&["reference", "list"]);
    assert_eq!(code, 0);
    assert_eq!(out["value"]["approved"]["measurements"][0], "00");
    let (code, _, err) = attest(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("measurement_not_allowed"), "{err}");

    // Delete: admitted again; the history keeps both versions.
    let (code, out, err) = s.cli(&["reference", "delete", "--name", "approved"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["action"], "delete");
    let (code, out, _) = s.cli(&["reference", "versions", "--name", "approved"]);
    assert_eq!(code, 0);
    assert_eq!(out["value"].as_array().unwrap().len(), 2);
    assert_eq!(attest(&[]).0, 0);
    let (code, _, err) = s.cli(&["reference", "get", "--name", "approved"]);
    assert_eq!(code, 1, "a deleted set is not found: {err}");

    // Per scope: a tenant's set applies to attestations that name the tenant, and only to them.
    let (code, _, err) = s.cli(&[
        "reference",
        "set",
        "--scope",
        "tenant-a",
        "--name",
        "approved",
        "--file",
        &set_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = attest(&["--scope", "tenant-a"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("measurement_not_allowed"), "{err}");
    let (code, out, err) = attest(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["claims"]["x-enclava-reference-scope"], "default");
    let (code, _, err) = attest(&["--scope", "nobody"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid_reference_values"), "{err}");
    let (code, _, err) = attest(&["--scope", "no/slash"]);
    assert_eq!(code, 2, "checked before any request: {err}");

    // Bad input is a usage error before any request.
    std::fs::write(&set, "not json").unwrap();
    let (code, _, err) = s.cli(&["reference", "set", "--name", "x", "--file", &set_s]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = s.cli(&["reference", "list", "--scope", "no/slashes"]);
    assert_eq!(code, 2, "{err}");
}
