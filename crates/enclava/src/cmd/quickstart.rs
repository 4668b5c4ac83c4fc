//! `enclava quickstart`: the whole product in under a minute, on one machine.
//!
//! Starts a development server (embedded storage, development unseal) from this same binary,
//! installs a quickstart attestation policy that admits the simulated TEE only for the example
//! workload's measurement, creates a data key whose release policy names that measurement, a
//! recipient key for results and a workload-host identity that may only request key release;
//! generates and encrypts a synthetic card-transaction dataset, runs the example fraud workload
//! through the enclave runtime (`--tee sim`), decrypts the result for the recipient, shows that a
//! one-byte-modified workload is refused (by the attestation policy, and — once the operator
//! admits it — by the key's release policy), verifies the run receipt and the audit log.
//!
//! Every step prints what it proved. The simulated TEE proves nothing about isolation: on real
//! hardware the same protocol runs with `enclava run --tee auto` and a hardware policy.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_enclave::data::{Recipient, SealedInput};
use enclava_enclave::{Connection, EnclaveError, RefusedBy, RunRequest, Step, TeeChoice};
use enclava_runtime::{Access, Limits, Manifest, Runtime};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::OutputFormat;
use super::client::{CliError, Client, ClientOpts};

/// Where `scripts/build-workload.sh` puts the example workload, relative to the repository root.
pub const DEFAULT_WORKLOAD: &str =
    "examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm";

const DATA_KEY: &str = "quickstart-data";
const RESULT_KEY: &str = "quickstart-results";
const STEPS: usize = 12;

#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Data directory of the development server (kept afterwards); default: a temporary
    /// directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The example workload module [default: examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm].
    #[arg(long, value_name = "FILE.wasm")]
    pub workload: Option<PathBuf>,
    /// Synthetic card transactions to generate.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub transactions: u64,
    /// Seed of the dataset generator (same seed, same dataset).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A step failure: message and exit code.
struct Fail {
    code: u8,
    msg: String,
}

type R<T> = Result<T, Fail>;

fn fail(code: u8, msg: impl Into<String>) -> Fail {
    Fail {
        code,
        msg: msg.into(),
    }
}

impl From<CliError> for Fail {
    fn from(e: CliError) -> Self {
        fail(e.code(), e.to_string())
    }
}

impl From<EnclaveError> for Fail {
    fn from(e: EnclaveError) -> Self {
        let mut msg = e.to_string();
        if let EnclaveError::Refused { failed, .. } = &e {
            for f in failed {
                msg.push_str(&format!("\n  failed: {f}"));
            }
        }
        fail(e.exit_code(), msg)
    }
}

fn io_fail(what: &str, e: std::io::Error) -> Fail {
    fail(3, format!("{what}: {e}"))
}

struct Progress {
    n: usize,
    started: Instant,
}

impl Progress {
    fn step(&mut self, title: &str) {
        self.n += 1;
        println!();
        println!(
            "[{}/{STEPS}] {title}  (+{:.1}s)",
            self.n,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn detail(s: impl AsRef<str>) {
    println!("      {}", s.as_ref());
}

fn proves(s: &str) {
    println!("      proves: {s}");
}

// ---------------------------------------------------------------------------------------------
// The development server

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path, log: &Path) -> R<Server> {
    let exe = std::env::current_exe().map_err(|e| io_fail("locating the enclava binary", e))?;
    let stderr = std::fs::File::create(log).map_err(|e| io_fail("creating the server log", e))?;
    let mut child = Command::new(exe)
        .args(["server", "--dev", "--data-dir"])
        .arg(data)
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("ENCLAVA_CONFIG")
        .env_remove("ENCLAVA_ADDR")
        .env_remove("ENCLAVA_DATA_DIR")
        .env_remove("ENCLAVA_PUBLIC_URL")
        .env_remove("ENCLAVA_INSECURE_HTTP")
        .env("ENCLAVA_ATTESTATION_ALLOW_SIM", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| io_fail("starting `enclava server --dev`", e))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err(fail(3, "the server's stdout is not available"));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut server = Server {
        child,
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(fail(
                3,
                format!(
                    "the server did not become ready within 60 s; its log ends with: {}",
                    tail(&log_text, 2000)
                ),
            ));
        }
        match rx.recv_timeout(left.min(Duration::from_millis(250))) {
            Ok(line) => {
                if let Some(u) = line.strip_prefix("ready ")
                    && u.starts_with("https://")
                {
                    server.url = u.trim().to_string();
                    return Ok(server);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = server.child.try_wait() {
                    let log_text = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(fail(
                        3,
                        format!("the server exited with {status}: {}", tail(&log_text, 2000)),
                    ));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(fail(
                    3,
                    format!("the server exited: {}", tail(&log_text, 2000)),
                ));
            }
        }
    }
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or("")
}

fn client(url: &str, token: &str, ca: &Path) -> R<Client> {
    Ok(Client::new(&ClientOpts {
        url: Some(url.to_string()),
        token: Some(token.to_string()),
        token_file: None,
        ca_cert: Some(ca.to_path_buf()),
        output: OutputFormat::Table,
        timeout: 60,
    })?)
}

/// A TLS agent trusting only `ca` (for the OAuth2 form post and raw status checks).
fn agent(ca: &Path) -> R<ureq::Agent> {
    let (builder, _) =
        enclava_client::agent_builder(Some(ca)).map_err(|e| fail(3, e.to_string()))?;
    Ok(builder.timeout(Duration::from_secs(60)).build())
}

fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Runs `enclava ARGS` (this binary) with the connection in the environment.
fn enclava(url: &str, token: &str, ca: &Path, args: &[&str]) -> R<String> {
    let exe = std::env::current_exe().map_err(|e| io_fail("locating the enclava binary", e))?;
    let out = Command::new(exe)
        .args(args)
        .env("ENCLAVA_URL", url)
        .env("ENCLAVA_TOKEN", token)
        .env("ENCLAVA_CA_CERT", ca)
        .env_remove("ENCLAVA_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_fail("running enclava", e))?;
    if !out.status.success() {
        return Err(fail(
            out.status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(3),
            format!(
                "`enclava {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn find_workload(arg: Option<&Path>) -> R<PathBuf> {
    let hint = "build it with `bash scripts/build-workload.sh` (needs the wasm32-wasip1 target: \
                `rustup target add wasm32-wasip1`), or pass --workload FILE.wasm";
    if let Some(p) = arg {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(fail(
            2,
            format!("--workload {}: no such file; {hint}", p.display()),
        ));
    }
    let candidates = [
        PathBuf::from(DEFAULT_WORKLOAD),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DEFAULT_WORKLOAD),
    ];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(fail(
        2,
        format!("the example workload is not built ({DEFAULT_WORKLOAD} not found); {hint}"),
    ))
}

/// The example workload's manifest: input read-only, output read-write, the data key, both
/// outputs to the recipient, 512 MiB and 60 s.
fn manifest_for(module: &[u8], recipient: &str) -> Manifest {
    Manifest {
        name: "fraud-workload".into(),
        module_sha256: enclava_runtime::module_sha256(module),
        args: ["--input", "/input", "--output", "/output"]
            .map(String::from)
            .to_vec(),
        env: Default::default(),
        dirs: [
            ("/input".to_string(), Access::ReadOnly),
            ("/output".to_string(), Access::ReadWrite),
        ]
        .into(),
        keys: [DATA_KEY.to_string()].into(),
        outputs: [
            ("/output/summary.json".to_string(), recipient.to_string()),
            ("/output/scores.csv".to_string(), recipient.to_string()),
        ]
        .into(),
        limits: Limits {
            memory_bytes: 512 << 20,
            time_ms: 60_000,
        },
    }
}

/// The data key's release policy (Azure SKR grammar 1.0.0).
pub fn release_policy(issuer: &str, measurement_hex: &str) -> Value {
    json!({
        "version": "1.0.0",
        "anyOf": [{
            "authority": issuer,
            "allOf": [
                {"claim": "x-ms-attestation-type", "equals": "enclava-sim"},
                {"claim": "x-enclava-measurement", "equals": measurement_hex},
                {"claim": "x-ms-runtime.workload-measurement", "equals": measurement_hex}
            ]
        }]
    })
}

fn set_measurements(admin: &Client, measurements: &[String]) -> R<()> {
    admin.call(
        "PUT",
        "/enclava/reference-values/default/quickstart",
        &[],
        Some(&json!({ "measurements": measurements })),
    )?;
    Ok(())
}

/// Runs the workload through the enclave runtime, printing each protocol step.
fn enclave_run(req: &RunRequest) -> Result<enclava_enclave::RunReport, EnclaveError> {
    enclava_enclave::run(req, &mut |s: &Step| detail(format!("  {s}")))
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

fn show_results(summary: &Value, scores_csv: &str) {
    let t = &summary["totals"];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    detail(format!(
        "{} transactions on {} cards at {} merchants; {} flagged ({} of {} total)",
        n(&t["transactions"]),
        n(&t["cards"]),
        n(&t["merchants"]),
        n(&t["flagged"]),
        money(n(&t["flagged_amount_cents"])),
        money(n(&t["total_amount_cents"]))
    ));
    if let Some(hits) = summary["rule_hits"].as_object() {
        let mut v: Vec<_> = hits.iter().map(|(k, c)| (k.clone(), n(c))).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let s: Vec<String> = v.iter().map(|(k, c)| format!("{k} {c}")).collect();
        detail(format!("rule hits: {}", s.join(", ")));
    }
    // Top flagged transactions by score.
    let mut rows: Vec<Vec<&str>> = scores_csv
        .lines()
        .skip(1)
        .map(|l| l.splitn(9, ',').collect::<Vec<_>>())
        .filter(|r| r.len() == 9)
        .collect();
    rows.sort_by_key(|r| {
        std::cmp::Reverse(r.get(7).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0))
    });
    detail("top flagged transactions:");
    detail(format!(
        "  {:>8} {:>7} {:>10} {:>8} {:>4} {:>7} {:>5}  reasons",
        "tx", "card", "amount", "merchant", "mcc", "country", "score"
    ));
    for r in rows.iter().take(5) {
        let g = |i: usize| r.get(i).copied().unwrap_or("");
        let amount = g(3).parse::<i64>().map(money).unwrap_or_default();
        let reasons: String = g(8).chars().take(90).collect();
        detail(format!(
            "  {:>8} {:>7} {:>10} {:>8} {:>4} {:>7} {:>5}  {reasons}",
            g(0),
            g(1),
            amount,
            g(4),
            g(5),
            g(6),
            g(7)
        ));
    }
    // Merchants with the most flagged transactions.
    if let Some(ms) = summary["merchants"].as_array() {
        let mut ms: Vec<&Value> = ms.iter().collect();
        ms.sort_by_key(|m| std::cmp::Reverse(n(&m["flagged"])));
        detail("merchants with the most flagged transactions:");
        for m in ms.iter().take(5) {
            let top: Vec<String> = m["top_reasons"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| r["rule"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            detail(format!(
                "  merchant {:>6} (mcc {}): {} of {} flagged, mean {}, top rules {}",
                n(&m["merchant_id"]),
                m["merchant_category"].as_str().unwrap_or(""),
                n(&m["flagged"]),
                n(&m["count"]),
                money(n(&m["mean_cents"])),
                top.join(", ")
            ));
        }
    }
}

fn flip_one_byte(module: &[u8]) -> Vec<u8> {
    let mut m = module.to_vec();
    if let Some(last) = m.last_mut() {
        *last ^= 0x01;
    }
    m
}

fn expect_refusal(
    res: Result<enclava_enclave::RunReport, EnclaveError>,
    by: RefusedBy,
) -> R<EnclaveError> {
    match res {
        Ok(_) => Err(fail(
            1,
            "the modified workload was NOT refused: the policies do not protect the data",
        )),
        Err(e @ EnclaveError::Refused { by: got, .. }) if got == by => Ok(e),
        Err(e) => Err(Fail::from(e)),
    }
}

fn print_refusal(e: &EnclaveError) {
    if let EnclaveError::Refused {
        by,
        status,
        code,
        message,
        failed,
    } = e
    {
        detail(format!("refused by {by} ({status} {code})"));
        if failed.is_empty() {
            detail(format!("  reason: {message}"));
        }
        for f in failed {
            if f.rule.is_empty() {
                detail(format!(
                    "  failed: {}: expected {}, found {}",
                    f.claim_path, f.expected, f.found
                ));
            } else {
                detail(format!("  failed: {f}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn quickstart(args: &QuickstartArgs) -> R<()> {
    let started = Instant::now();
    let mut p = Progress { n: 0, started };
    let module_path = find_workload(args.workload.as_deref())?;
    let module = std::fs::read(&module_path).map_err(|e| io_fail("reading the workload", e))?;

    let tmp = tempfile::Builder::new()
        .prefix("enclava-quickstart-")
        .tempdir()
        .map_err(|e| io_fail("creating a temporary directory", e))?;
    let data = match &args.data_dir {
        Some(d) => d.clone(),
        None => tmp.path().join("server"),
    };
    std::fs::create_dir_all(&data).map_err(|e| io_fail("creating the data directory", e))?;
    // With --data-dir the quickstart's files (manifest, sealed dataset, host token, results) stay
    // in DATA_DIR/quickstart so the run can be repeated with `enclava run`.
    let work = match &args.data_dir {
        Some(d) => d.join("quickstart"),
        None => tmp.path().join("work"),
    };
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| io_fail("clearing the work directory", e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| io_fail("creating the work directory", e))?;

    // 1. Server.
    p.step("Start a development Enclava server");
    let server = start_server(&data, &work.join("server.log"))?;
    let ca = data.join("ca.pem");
    let admin_token = Zeroizing::new(
        std::fs::read_to_string(data.join("admin.token"))
            .map_err(|e| io_fail("reading admin.token", e))?
            .trim()
            .to_string(),
    );
    let admin = client(&server.url, &admin_token, &ca)?;
    let status = admin.call("GET", "/operator/status", &[], None)?;
    detail(format!(
        "{} (data directory {})",
        server.url,
        data.display()
    ));
    detail(format!(
        "initialized {}, sealed {}",
        status["initialized"], status["sealed"]
    ));
    proves(
        "a vault on embedded SQLite, unsealed with a development key file, serving HTTPS under its own CA",
    );

    // 2. Recipient key and workload measurement.
    p.step("Measure the example workload (module + manifest)");
    let rk = admin.call(
        "POST",
        &format!("/keys/{RESULT_KEY}/create"),
        &[],
        Some(&json!({"kty": "RSA", "key_size": 2048, "key_ops": ["wrapKey", "unwrapKey"]})),
    )?;
    let rkid = rk["key"]["kid"].as_str().unwrap_or_default().to_string();
    let comp = |m: &str| {
        rk["key"][m]
            .as_str()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
            .ok_or_else(|| fail(3, format!("the recipient key has no {m}")))
    };
    let recipient = Recipient::vault_key_string(&rkid, &comp("n")?, &comp("e")?)?;
    let manifest = manifest_for(&module, &recipient);
    let measurement = hex::encode(enclava_runtime::measure(&module, &manifest));
    let manifest_path = work.join("manifest.json");
    write_file(
        &manifest_path,
        &serde_json::to_vec_pretty(&manifest).map_err(|e| fail(3, e.to_string()))?,
    )?;
    detail(format!(
        "module {} ({} bytes)",
        module_path.display(),
        module.len()
    ));
    detail(format!(
        "results recipient: vault key {rkid} (RSA-2048, public key pinned in the manifest)"
    ));
    detail(format!("measurement {measurement}"));
    proves(
        "SHA-384 over the module and its manifest (args, mapped dirs, key names, output recipients, limits): change any of it and the measurement changes",
    );

    // 3. Attestation policy.
    p.step("Install the quickstart attestation policy");
    admin.call(
        "PUT",
        "/policies/sim",
        &[],
        Some(&json!({"policy": enclava_policy::rego::defaults::QUICKSTART})),
    )?;
    set_measurements(&admin, std::slice::from_ref(&measurement))?;
    detail(
        "policy `sim` = enclava-policy's QUICKSTART; reference set `quickstart`.measurements = [the measurement above]",
    );
    detail(
        "WARNING: simulated evidence is signed with a published key and proves nothing; development only",
    );
    proves(
        "the attestation service issues tokens for the simulated TEE only for this workload measurement",
    );

    // 4. Data key with release policy.
    p.step("Create the data key with a release policy naming the workload");
    let oidc = admin.call("GET", "/.well-known/openid-configuration", &[], None)?;
    let issuer = oidc["issuer"].as_str().unwrap_or(&server.url).to_string();
    let policy = release_policy(&issuer, &measurement);
    let policy_bytes = serde_json::to_vec(&policy).map_err(|e| fail(3, e.to_string()))?;
    let dk = admin.call(
        "POST",
        &format!("/keys/{DATA_KEY}/create"),
        &[],
        Some(&json!({
            "kty": "oct-HSM", "key_size": 256, "key_ops": ["wrapKey", "unwrapKey"],
            "attributes": {"exportable": true},
            "release_policy": {"contentType": "application/json; charset=utf-8", "data": b64url(&policy_bytes)}
        })),
    )?;
    let dkid = dk["key"]["kid"].as_str().unwrap_or_default().to_string();
    detail(format!("{dkid} (AES-256, exportable)"));
    detail(format!(
        "release policy: authority {issuer}; x-ms-attestation-type = enclava-sim; x-enclava-measurement = x-ms-runtime.workload-measurement = {}…",
        measurement.get(..16).unwrap_or("")
    ));
    proves(
        "the vault releases this key only to a token of this attestation service for this exact workload, wrapped to the key in that token",
    );

    // 5. Workload host identity.
    p.step("Create the workload host's identity (Release User on the data key only)");
    let sp = admin.call(
        "POST",
        "/enclava/principals",
        &[],
        Some(&json!({"kind": "service_principal", "display_name": "quickstart-workload-host"})),
    )?;
    let pid = sp["principal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let client_id = sp["client_id"].as_str().unwrap_or_default().to_string();
    let secret = Zeroizing::new(sp["client_secret"].as_str().unwrap_or_default().to_string());
    admin.call(
        "POST",
        "/enclava/role-assignments",
        &[],
        Some(
            &json!({"principal": pid, "role": "ReleaseUser", "scope": format!("/keys/{DATA_KEY}")}),
        ),
    )?;
    let ag = agent(&ca)?;
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fvault.azure.net%2F.default",
        urlencode(&client_id),
        urlencode(&secret)
    );
    let tok: Value = ag
        .post(&format!("{}/oauth2/token", server.url))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&form)
        .map_err(|e| fail(3, format!("client-credentials token request failed: {e}")))?
        .into_json()
        .map_err(|e| io_fail("token answer", e))?;
    let host_token = Zeroizing::new(tok["access_token"].as_str().unwrap_or_default().to_string());
    if host_token.is_empty() {
        return Err(fail(
            3,
            format!(
                "the token endpoint returned no access_token: {}",
                tok["error"]
            ),
        ));
    }
    let host_token_path = work.join("workload-host.token");
    write_private(&host_token_path, host_token.as_bytes())?;
    // The host's identity cannot use the key itself.
    let probe = ag
        .post(&format!(
            "{}/keys/{DATA_KEY}//unwrapkey?api-version=7.6",
            server.url
        ))
        .set("Authorization", &format!("Bearer {}", host_token.as_str()))
        .set("Content-Type", "application/json")
        .send_string(&json!({"alg": "A256KW", "value": b64url(&[0u8; 40])}).to_string());
    let probe_status = match probe {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => return Err(fail(3, format!("probe failed: {e}"))),
    };
    if probe_status != 403 {
        return Err(fail(
            1,
            format!(
                "the workload host's identity could call unwrapKey on the data key (HTTP {probe_status}): expected 403"
            ),
        ));
    }
    detail(format!(
        "service principal {client_id}: role ReleaseUser, scope /keys/{DATA_KEY}"
    ));
    detail("its direct unwrapKey on the data key: 403 Forbidden");
    proves("the (untrusted) host can ask for release, but cannot read or use the data key itself");

    // 6. Dataset.
    p.step("Generate and encrypt the data owner's dataset");
    let runtime = Runtime::new().map_err(|e| fail(3, e.to_string()))?;
    let plain_dir = work.join("owner");
    std::fs::create_dir_all(&plain_dir).map_err(|e| io_fail("creating the dataset dir", e))?;
    let mut gen_manifest = manifest_for(&module, &recipient);
    gen_manifest.name = "fraud-workload-generator".into();
    gen_manifest.args = vec![
        "--generate".into(),
        args.transactions.to_string(),
        "--seed".into(),
        args.seed.to_string(),
        "--output".into(),
        "/output".into(),
    ];
    gen_manifest.dirs = [("/output".to_string(), Access::ReadWrite)].into();
    gen_manifest.keys = Default::default();
    gen_manifest.outputs = Default::default();
    let out = runtime
        .run(
            &module,
            &gen_manifest,
            &[(plain_dir.clone(), "/output".to_string(), Access::ReadWrite)],
            &gen_manifest.limits,
        )
        .map_err(|e| fail(3, format!("the dataset generator failed: {e}")))?;
    if out.exit_code != 0 {
        return Err(fail(
            3,
            format!("the dataset generator exited with {}", out.exit_code),
        ));
    }
    let csv = plain_dir.join("transactions.csv");
    let csv_len = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    let sealed = work.join("transactions.csv.enc");
    let csv_s = csv.display().to_string();
    let sealed_s = sealed.display().to_string();
    enclava(
        &server.url,
        &admin_token,
        &ca,
        &[
            "data", "encrypt", "--key", DATA_KEY, "--in", &csv_s, "--out", &sealed_s,
        ],
    )?;
    std::fs::remove_file(&csv).map_err(|e| io_fail("removing the plaintext dataset", e))?;
    detail(format!(
        "{} transactions (seed {}), {csv_len} bytes of CSV",
        args.transactions, args.seed
    ));
    detail(format!(
        "enclava data encrypt --key {DATA_KEY} -> {} ({} bytes); plaintext removed",
        sealed.display(),
        std::fs::metadata(&sealed).map(|m| m.len()).unwrap_or(0)
    ));
    proves(
        "the data owner keeps only ciphertext: a fresh data key per file, wrapped by the vault's data key",
    );

    // 7. The confidential run.
    p.step("Run the workload in the (simulated) TEE");
    let out_dir = work.join("results-sealed");
    let receipt_path = work.join("receipt.json");
    let conn = Connection {
        url: server.url.clone(),
        token: Some(host_token.clone()),
        ca_cert: Some(ca.clone()),
        timeout: Duration::from_secs(60),
    };
    let req = RunRequest {
        manifest: manifest.clone(),
        module: module.clone(),
        tee: TeeChoice::Sim,
        inputs: vec![SealedInput {
            name: "transactions.csv".into(),
            path: sealed.clone(),
        }],
        output_dir: out_dir.clone(),
        connection: conn.clone(),
        attester_root: PathBuf::from("/"),
        scratch_root: None,
        host_limits: None,
    };
    let report = enclave_run(&req)?;
    enclava_enclave::run::write_receipt(&receipt_path, &report.receipt)?;
    detail(format!("receipt {}", receipt_path.display()));
    proves(
        "attested, the data key was released only to this run's ephemeral key, the dataset was decrypted in memory, the workload ran with no network and only its two directories, and the results left encrypted to the recipient",
    );

    // 8. Receipt.
    p.step("Verify the run receipt against the attestation token");
    let jwks: enclava_token::Jwks =
        serde_json::from_value(admin.call("GET", "/certs", &[], None)?)
            .map_err(|e| fail(3, format!("the attestation JWKS does not parse: {e}")))?;
    let token = &report.receipt.receipt.attestation.token;
    let verified = enclava_token::verify(
        token,
        &jwks,
        &enclava_token::Expectations::new(issuer.clone(), chrono::Utc::now()),
    )
    .map_err(|e| fail(1, format!("the attestation token does not verify: {e}")))?;
    enclava_enclave::verify_receipt(&report.receipt, &verified.claims)?;
    detail(format!(
        "token jti {} verifies with the service's JWKS; the receipt's ES256 signature verifies with the key in its x-ms-runtime",
        report.receipt.receipt.attestation.jti
    ));
    proves(
        "the receipt (measurement, input and output digests) was signed inside the attested run",
    );

    // 9. Results.
    p.step("Decrypt the results as the recipient");
    let clear = work.join("results");
    std::fs::create_dir_all(&clear).map_err(|e| io_fail("creating the results dir", e))?;
    for f in ["summary.json", "scores.csv"] {
        let i = out_dir.join(format!("{f}.enc")).display().to_string();
        let o = clear.join(f).display().to_string();
        enclava(
            &server.url,
            &admin_token,
            &ca,
            &["data", "decrypt", "--in", &i, "--out", &o],
        )?;
    }
    let summary: Value = serde_json::from_slice(
        &std::fs::read(clear.join("summary.json"))
            .map_err(|e| io_fail("reading summary.json", e))?,
    )
    .map_err(|e| fail(3, format!("summary.json does not parse: {e}")))?;
    let mut scores = String::new();
    std::fs::File::open(clear.join("scores.csv"))
        .and_then(|mut f| f.read_to_string(&mut scores))
        .map_err(|e| io_fail("reading scores.csv", e))?;
    detail(format!(
        "enclava data decrypt (vault unwrapKey with {RESULT_KEY}): results decrypted for the recipient"
    ));
    show_results(&summary, &scores);
    proves("only the holder of the recipient key can read what the workload produced");

    // 10. Modified workload vs the attestation policy.
    p.step("A modified workload (one byte changed) asks for the data");
    let evil = flip_one_byte(&module);
    let evil_manifest = manifest_for(&evil, &recipient);
    let evil_measurement = hex::encode(enclava_runtime::measure(&evil, &evil_manifest));
    detail(format!("measurement {evil_measurement}"));
    let evil_req = RunRequest {
        manifest: evil_manifest,
        module: evil,
        output_dir: work.join("evil-out"),
        ..req.clone()
    };
    let refused = expect_refusal(enclave_run(&evil_req), RefusedBy::Attestation)?;
    print_refusal(&refused);
    detail("modified workload refused by the attestation policy");
    proves(
        "a workload the operator did not admit gets no attestation token, so it cannot even ask for the key",
    );

    // 11. Modified workload vs the release policy.
    p.step("Even if the operator admits it, the data key's release policy refuses it");
    set_measurements(&admin, &[measurement.clone(), evil_measurement.clone()])?;
    let res = enclave_run(&evil_req);
    set_measurements(&admin, std::slice::from_ref(&measurement))?;
    let refused = expect_refusal(res, RefusedBy::Release)?;
    print_refusal(&refused);
    let names_measurement = match &refused {
        EnclaveError::Refused {
            failed, message, ..
        } => {
            failed.iter().any(|f| f.claim_path.contains("measurement"))
                || message.contains("measurement")
        }
        _ => false,
    };
    if !names_measurement {
        return Err(fail(1, "the release refusal does not name the measurement"));
    }
    detail("modified workload refused by the release policy (measurement condition)");
    proves(
        "the data owner's release policy is enforced by the vault on its own, whatever the attestation policy admits",
    );

    // 12. Audit.
    p.step("Verify the audit log");
    let audit = admin.call("GET", "/enclava/audit/verify", &[], None)?;
    if audit["ok"] != Value::Bool(true) {
        return Err(fail(1, format!("audit verification failed: {audit}")));
    }
    let entries = audit["report"]["entries"]
        .as_u64()
        .or_else(|| audit["report"]["entries_verified"].as_u64());
    detail(format!(
        "audit verified{}",
        entries
            .map(|n| format!(": {n} entries"))
            .unwrap_or_default()
    ));
    proves(
        "every request above (policies, keys, attestations, releases and refusals) is in the hash-chained, signed audit log, and the chain verifies",
    );

    println!();
    println!(
        "quickstart complete in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if args.data_dir.is_some() {
        println!(
            "the server's data stays in {}; the quickstart's files in {}",
            data.display(),
            work.display()
        );
        println!(
            "repeat the run (restart the server on the same address first: `enclava server --dev --data-dir {} --addr {}`):",
            data.display(),
            server.url.trim_start_matches("https://")
        );
        println!(
            "  enclava run --url {} --ca-cert {} --token-file {} --manifest {} --module {} --tee sim --input transactions.csv={} --output-dir {} --receipt {} --verbose",
            server.url,
            ca.display(),
            host_token_path.display(),
            manifest_path.display(),
            module_path.display(),
            sealed.display(),
            work.join("results-sealed").display(),
            work.join("receipt.json").display()
        );
    }
    drop(server);
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> R<()> {
    std::fs::write(path, bytes).map_err(|e| io_fail(&format!("writing {}", path.display()), e))
}

/// A file only the owner can read (the workload host's bearer token).
fn write_private(path: &Path, bytes: &[u8]) -> R<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| io_fail(&format!("creating {}", path.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| io_fail(&format!("writing {}", path.display()), e))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn run(args: QuickstartArgs) -> ExitCode {
    match quickstart(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_policy_names_the_measurement_and_issuer() {
        let p = release_policy("https://127.0.0.1:1", "ab");
        let text = serde_json::to_vec(&p).unwrap();
        let rp = enclava_policy::ReleasePolicy::from_content(None, &text).unwrap();
        let mut claims = json!({
            "x-ms-attestation-type": "enclava-sim",
            "x-enclava-measurement": "ab",
            "x-ms-runtime": {"workload-measurement": "ab"}
        });
        assert!(rp.evaluate("https://127.0.0.1:1", &claims).allowed);
        claims["x-enclava-measurement"] = json!("cd");
        let d = rp.evaluate("https://127.0.0.1:1", &claims);
        assert!(!d.allowed);
        assert!(
            d.failed
                .iter()
                .any(|f| f.claim_path == "x-enclava-measurement")
        );
        assert!(!rp.evaluate("https://other", &json!({})).allowed);
    }

    #[test]
    fn one_byte_changes_the_measurement() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let m1 = manifest_for(&module, "r");
        let evil = flip_one_byte(&module);
        let m2 = manifest_for(&evil, "r");
        assert_ne!(
            enclava_runtime::measure(&module, &m1),
            enclava_runtime::measure(&evil, &m2)
        );
        assert_eq!(urlencode("a b/+"), "a%20b%2F%2B");
    }
}
