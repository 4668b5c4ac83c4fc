//! `enclava bench kbs`: full KBS (RCAR 0.4.0) flows per second against an in-process development
//! server over HTTPS on loopback, with p50 / p99 latency, next to the in-process cost of the same
//! flow without HTTP (the server's pure KBS functions and the same policy evaluations).
//!
//! One flow is what a Confidential Containers guest (guest-components' `kbs_protocol` with the
//! `sample` attester) does to fetch one resource: `POST /kbs/v0/auth`; the runtime data
//! `{tee-pubkey, nonce}` bound by SHA-384 of its JCS form into the sample evidence's report data;
//! `POST /kbs/v0/attest` (binding, appraisal policy, signed token, session update); `GET
//! /kbs/v0/resource/default/key/1` with the session cookie (token check, resource policy, JWE
//! ECDH-ES+A256KW to the guest's key); JWE decryption and a byte comparison with the stored
//! resource. Each client keeps its connection alive (the TLS handshake is not what is measured)
//! and uses a fresh P-256 key pair per flow, as a new guest would.
//!
//! For reference: trustee's KBS measured on this machine class did about 79 flows/s with 8 client
//! threads (the issue's figure; not re-measured here).

use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use super::OutputFormat;
use super::bench::{build_kind, median};
use super::bench_attest::{Srv, agent, start_dev_server};

/// trustee's KBS on this machine class, 8 client threads (issue 13).
const TRUSTEE_REFERENCE_FLOWS_PER_S: f64 = 79.0;
const RESOURCE_PATH: &str = "default/key/1";
const SESSION_COOKIE: &str = "kbs-session-id";

/// The appraisal policy admitting the development TEE (`sample`), as in the issue's Contract.
const SAMPLE_APPRAISAL_POLICY: &str = r#"package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "tee", "path": "claims.tee", "expected": "sample", "found": input.claims.tee} if input.claims.tee != "sample"
"#;

/// A resource policy in the KBS shape: release default/key/1 only, with the reason otherwise.
const RESOURCE_POLICY: &str = r#"package policy

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "path", "path": "resource-path", "expected": "default/key/1", "found": data["resource-path"]} if trim_left(data["resource-path"], "/") != "default/key/1"
"#;

#[derive(Debug, clap::Args)]
pub struct KbsBenchArgs {
    /// Measuring time per figure, split into rounds; the median round is reported.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Concurrent client threads (one keep-alive connection each) for the throughput figure;
    /// trustee's reference figure used 8.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

fn check_args(args: &KbsBenchArgs) -> Result<(), String> {
    super::bench::check_load_args(args.seconds, args.rounds, ("--clients", args.clients))
}

// --- the guest side ---------------------------------------------------------------------------

/// The guest's ephemeral P-256 key (its `tee-pubkey`).
struct TeeKey {
    private: PrivateKey,
    jwk: Value,
}

impl TeeKey {
    fn generate() -> Result<TeeKey, String> {
        let private = PrivateKey::generate(&ECDH_P256)
            .map_err(|_| "P-256 key generation failed".to_string())?;
        let public = private
            .compute_public_key()
            .map_err(|_| "P-256 public key computation failed".to_string())?;
        // Uncompressed SEC1: 0x04 || x || y.
        let point = public.as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(format!(
                "expected a 65-byte uncompressed P-256 point, found {} bytes",
                point.len()
            ));
        }
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(TeeKey { private, jwk })
    }

    /// Decrypt a flattened JWE JSON (ECDH-ES+A256KW, A256GCM, AAD = ASCII of `protected`).
    fn decrypt(&self, jwe: &Value) -> Result<Zeroizing<Vec<u8>>, String> {
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let s = jwe[name]
                .as_str()
                .ok_or_else(|| format!("the JWE has no {name} member: {jwe}"))?;
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|e| format!("JWE {name}: expected base64url, found an error: {e}"))
        };
        let protected_b64 = jwe["protected"]
            .as_str()
            .ok_or("the JWE has no protected header")?;
        let header: Value = serde_json::from_slice(&field("protected")?)
            .map_err(|e| format!("the JWE protected header is not JSON: {e}"))?;
        if header["alg"] != "ECDH-ES+A256KW" || header["enc"] != "A256GCM" {
            return Err(format!(
                "expected alg ECDH-ES+A256KW and enc A256GCM, found {} and {}",
                header["alg"], header["enc"]
            ));
        }
        let coord = |c: &str| {
            header["epk"][c]
                .as_str()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .filter(|v| v.len() == 32)
                .ok_or_else(|| format!("the epk has no 32-byte {c}: {}", header["epk"]))
        };
        let mut epk = vec![4u8];
        epk.extend(coord("x")?);
        epk.extend(coord("y")?);
        let kek = agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&ECDH_P256, &epk),
            "the epk is not a P-256 point".to_string(),
            |z| Ok(concat_kdf_a256kw(z)),
        )?;
        let wrapped = field("encrypted_key")?;
        let kek = AesKek::new(&AES_256, kek.as_slice())
            .map_err(|_| "the derived key-encryption key was refused".to_string())?;
        let mut cek = Zeroizing::new(vec![0u8; wrapped.len()]);
        let cek_len = kek
            .unwrap(&wrapped, &mut cek)
            .map_err(|_| "the content key does not unwrap (wrong key or tampered)".to_string())?
            .len();
        cek.truncate(cek_len);
        let iv: [u8; 12] = field("iv")?
            .try_into()
            .map_err(|v: Vec<u8>| format!("expected a 12-byte IV, found {} bytes", v.len()))?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &cek)
                .map_err(|_| format!("expected a 32-byte content key, found {cek_len} bytes"))?,
        );
        let mut data = Zeroizing::new(field("ciphertext")?);
        data.extend(field("tag")?);
        let plain_len = key
            .open_in_place(
                Nonce::assume_unique_for_key(iv),
                Aad::from(protected_b64.as_bytes()),
                &mut data,
            )
            .map_err(|_| "the JWE does not decrypt (tag mismatch)".to_string())?
            .len();
        data.truncate(plain_len);
        Ok(data)
    }
}

/// RFC 7518 section 4.6.2's Concat KDF (SHA-256, one round) for ECDH-ES+A256KW, empty apu/apv.
fn concat_kdf_a256kw(z: &[u8]) -> Zeroizing<[u8; 32]> {
    let alg = b"ECDH-ES+A256KW";
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((alg.len() as u32).to_be_bytes());
    h.update(alg);
    h.update(0u32.to_be_bytes());
    h.update(0u32.to_be_bytes());
    h.update(256u32.to_be_bytes());
    Zeroizing::new(h.finalize().into())
}

/// RFC 8785 (JCS) of `{"tee-pubkey", "nonce", "additional-evidence": ""}` for an EC JWK: every
/// member name is ASCII, so JCS order is byte order, and serde_json's string escaping is JCS's.
fn binding_json(jwk: &Value, nonce: &str) -> Result<String, String> {
    let s = |v: &Value| serde_json::to_string(v).map_err(|e| e.to_string());
    let m = |k: &str| {
        jwk.get(k)
            .ok_or_else(|| format!("the JWK has no {k}"))
            .and_then(s)
    };
    Ok(format!(
        r#"{{"additional-evidence":"","nonce":{},"tee-pubkey":{{"alg":{},"crv":{},"kty":{},"x":{},"y":{}}}}}"#,
        s(&Value::from(nonce))?,
        m("alg")?,
        m("crv")?,
        m("kty")?,
        m("x")?,
        m("y")?
    ))
}

/// The sample attester's evidence: SHA-384 of the binding, zero-padded to 64 bytes.
fn sample_evidence(jwk: &Value, nonce: &str) -> Result<Value, String> {
    let mut report_data = [0u8; 64];
    report_data[..48].copy_from_slice(&Sha384::digest(binding_json(jwk, nonce)?.as_bytes()));
    Ok(json!({"svn": "1", "report_data": STANDARD.encode(report_data)}))
}

/// Per-flow timings in milliseconds.
#[derive(Clone, Copy, Default)]
struct Sample {
    total: f64,
    auth: f64,
    attest: f64,
    resource: f64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn kbs_error(what: &str, e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => format!(
            "{what}: the server answered {code}: {}",
            r.into_string().unwrap_or_default()
        ),
        e => format!("{what}: {e}"),
    }
}

/// One full guest flow; checks the decrypted resource against `expect`.
fn one_flow(a: &ureq::Agent, url: &str, expect: &[u8]) -> Result<Sample, String> {
    let start = Instant::now();
    let mut s = Sample::default();
    let key = TeeKey::generate()?;

    let t = Instant::now();
    let r = a
        .post(&format!("{url}/kbs/v0/auth"))
        .send_json(json!({"version": "0.4.0", "tee": "sample",
            "extra-params": {"supported-hash-algorithms": ["sha384"]}}))
        .map_err(|e| kbs_error("auth", e))?;
    let cookie = r
        .all("set-cookie")
        .into_iter()
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|kv| kv.trim_start().starts_with(&format!("{SESSION_COOKIE}=")))
                .map(|kv| kv.trim().to_string())
        })
        .ok_or_else(|| format!("auth: no {SESSION_COOKIE} cookie in the answer"))?;
    let challenge: Value = r.into_json().map_err(|e| format!("auth: {e}"))?;
    let nonce = challenge["nonce"]
        .as_str()
        .ok_or_else(|| format!("auth: no nonce in {challenge}"))?
        .to_string();
    s.auth = ms(t);

    let t = Instant::now();
    let body = json!({
        "runtime-data": {"nonce": nonce, "tee-pubkey": key.jwk},
        "tee-evidence": {"primary_evidence": sample_evidence(&key.jwk, &nonce)?,
                         "additional_evidence": ""},
    });
    let r = a
        .post(&format!("{url}/kbs/v0/attest"))
        .set("Cookie", &cookie)
        .send_json(body)
        .map_err(|e| kbs_error("attest", e))?;
    // The server may refresh the cookie with the token.
    let cookie = r
        .all("set-cookie")
        .into_iter()
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|kv| kv.trim_start().starts_with(&format!("{SESSION_COOKIE}=")))
                .map(|kv| kv.trim().to_string())
        })
        .unwrap_or(cookie);
    let answer: Value = r.into_json().map_err(|e| format!("attest: {e}"))?;
    if answer["token"].as_str().is_none_or(str::is_empty) {
        return Err(format!("attest: no token in the answer: {answer}"));
    }
    s.attest = ms(t);

    let t = Instant::now();
    let jwe: Value = a
        .get(&format!("{url}/kbs/v0/resource/{RESOURCE_PATH}"))
        .set("Cookie", &cookie)
        .call()
        .map_err(|e| kbs_error("resource", e))?
        .into_json()
        .map_err(|e| format!("resource: {e}"))?;
    let plain = key.decrypt(&jwe)?;
    s.resource = ms(t);
    if plain.as_slice() != expect {
        return Err(format!(
            "resource: decrypted {} bytes that differ from the {} stored",
            plain.len(),
            expect.len()
        ));
    }
    s.total = ms(start);
    Ok(s)
}

// --- setup and measurement --------------------------------------------------------------------

struct Setup {
    /// The server, kept running for the measurements (stopped on drop).
    srv: Srv,
    resource: Vec<u8>,
}

/// One admin call to the bench server with the bootstrap token; the server's answer on failure.
fn admin(
    a: &ureq::Agent,
    srv: &Srv,
    token: &str,
    method: &str,
    path: &str,
    body: AdminBody<'_>,
) -> Result<(), String> {
    let req = a
        .request(method, &format!("{}{path}", srv.url))
        .set("Authorization", &format!("Bearer {token}"));
    let res = match body {
        AdminBody::Json(v) => req.send_json(v.clone()),
        AdminBody::Bytes(b) => req
            .set("Content-Type", "application/octet-stream")
            .send_bytes(b),
    };
    res.map(drop)
        .map_err(|e| kbs_error(&format!("setup: {method} {path}"), e))
}

enum AdminBody<'a> {
    Json(&'a Value),
    Bytes(&'a [u8]),
}

/// A fresh in-process dev server with the Contract's setup: one resource, a resource policy that
/// releases it, and an appraisal policy admitting the sample TEE; then one checked flow.
fn setup() -> Result<Setup, String> {
    let srv = start_dev_server(None)?;
    let admin_token = Zeroizing::new(
        std::fs::read_to_string(srv.dir.path().join("data").join("admin.token"))
            .map_err(|e| format!("setup: reading the dev server's bootstrap token: {e}"))?
            .trim()
            .to_string(),
    );
    let a = agent(&srv.ca)?;
    let resource: Vec<u8> = Sha256::digest(format!("bench kbs resource {}", std::process::id()))
        .iter()
        .copied()
        .collect();
    admin(
        &a,
        &srv,
        &admin_token,
        "PUT",
        "/policies/sample",
        AdminBody::Json(&json!({"policy": SAMPLE_APPRAISAL_POLICY})),
    )?;
    admin(
        &a,
        &srv,
        &admin_token,
        "POST",
        &format!("/kbs/v0/resource/{RESOURCE_PATH}"),
        AdminBody::Bytes(&resource),
    )?;
    admin(
        &a,
        &srv,
        &admin_token,
        "POST",
        "/kbs/v0/resource-policy",
        AdminBody::Json(&json!({"policy": URL_SAFE_NO_PAD.encode(RESOURCE_POLICY)})),
    )?;
    one_flow(&a, &srv.url, &resource).map_err(|e| format!("setup: the first flow: {e}"))?;
    Ok(Setup { srv, resource })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

struct Figure {
    clients: usize,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Median of each step over all flows.
    steps: Sample,
    flows: usize,
}

fn bench_flows(s: &Setup, clients: usize, args: &KbsBenchArgs) -> Result<Figure, String> {
    let rounds = args.rounds.max(1);
    let per_round = Duration::from_secs_f64(args.seconds) / rounds;
    let agents: Vec<ureq::Agent> = (0..clients)
        .map(|_| agent(&s.srv.ca))
        .collect::<Result<_, String>>()?;
    // Warm up every connection (the TLS handshake is not what is measured).
    for a in &agents {
        one_flow(a, &s.srv.url, &s.resource).map_err(|e| format!("warm-up flow: {e}"))?;
    }
    let mut rates = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let results: Vec<Result<Vec<Sample>, String>> = std::thread::scope(|sc| {
            let handles: Vec<_> = agents
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    sc.spawn(move || {
                        let mut out = Vec::new();
                        while started.elapsed() < per_round {
                            out.push(one_flow(a, &s.srv.url, &s.resource).map_err(|e| {
                                format!("flow {} of client {}: {e}", out.len() + 1, i + 1)
                            })?);
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a client thread panicked".into()))
                })
                .collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        let mut n = 0usize;
        for r in results {
            let v = r?;
            n += v.len();
            samples.extend(v);
        }
        rates.push(n as f64 / elapsed);
    }
    let col = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let total = col(|x| x.total);
    let med = |f: fn(&Sample) -> f64| pct(&col(f), 0.5);
    Ok(Figure {
        clients,
        per_s: median(&mut rates),
        p50_ms: pct(&total, 0.5),
        p99_ms: pct(&total, 0.99),
        steps: Sample {
            total: pct(&total, 0.5),
            auth: med(|x| x.auth),
            attest: med(|x| x.attest),
            resource: med(|x| x.resource),
        },
        flows: samples.len(),
    })
}

fn figure_json(f: &Figure, in_process: f64) -> Value {
    json!({
        "clients": f.clients,
        "flows_per_s": f.per_s, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms,
        "vs_in_process": f.per_s / in_process,
        "vs_trustee_reference": f.per_s / TRUSTEE_REFERENCE_FLOWS_PER_S,
        "flows_measured": f.flows,
        "step_p50_ms": {"auth": f.steps.auth, "attest": f.steps.attest,
                        "resource_and_decrypt": f.steps.resource},
    })
}

pub fn bench_kbs(args: &KbsBenchArgs) -> Result<(), String> {
    check_args(args)?;
    let machine = super::bench::Machine::detect();
    eprintln!("{}", machine.line());
    eprintln!("measuring the in-process flow (no HTTP, one core) ...");
    let in_process = in_process_rate(args)?;
    eprintln!(
        "starting an in-process development server and setting up the Contract's resources ..."
    );
    let s = setup()?;
    let mut figures = Vec::new();
    eprintln!("measuring full flows, 1 client ...");
    figures.push(bench_flows(&s, 1, args)?);
    if args.clients > 1 {
        eprintln!("measuring full flows, {} clients ...", args.clients);
        figures.push(bench_flows(&s, args.clients, args)?);
    }
    drop(s);

    let build = build_kind();
    let mut report = json!({
        "baseline": {
            "in_process_flows_per_s": in_process.per_s,
            "in_process_step_us": in_process.steps_json(),
            "trustee_reference_flows_per_s": TRUSTEE_REFERENCE_FLOWS_PER_S,
            "trustee_reference_note": "trustee's KBS, 8 client threads, this machine class (issue 13); not measured in this run",
        },
        "flows": figures.iter().map(|f| figure_json(f, in_process.per_s)).collect::<Vec<_>>(),
        "flow": "auth + attest (sample TEE) + GET resource (ECDH-ES+A256KW JWE, decrypted and compared)",
        "rounds": args.rounds, "seconds_per_figure": args.seconds,
        "statistic": "median of rounds; latency percentiles over all flows",
        "build": build,
        "tee": "sample (CoCo's development TEE: measures the protocol, proves nothing)",
    });
    machine.annotate(&mut report);
    match args.output {
        OutputFormat::Json => println!("{report:#}"),
        OutputFormat::Table => {
            println!("{}", machine.line());
            println!(
                "KBS (RCAR 0.4.0) full flows over HTTPS on loopback (auth, attest with sample evidence, resource, JWE decrypt), median of {} rounds",
                args.rounds,
            );
            println!(
                "  in process, no HTTP (one core)          {:>9.1}/s   (baseline: {})",
                in_process.per_s,
                in_process.steps_line()
            );
            for f in &figures {
                let label = format!(
                    "flows, {} client{}",
                    f.clients,
                    if f.clients == 1 { "" } else { "s" }
                );
                println!(
                    "  {label:<39} {:>9.1}/s   {:.3}x in process   {:.2}x trustee's ~{TRUSTEE_REFERENCE_FLOWS_PER_S:.0}/s   p50 {:.2} ms  p99 {:.2} ms",
                    f.per_s,
                    f.per_s / in_process.per_s,
                    f.per_s / TRUSTEE_REFERENCE_FLOWS_PER_S,
                    f.p50_ms,
                    f.p99_ms
                );
                println!(
                    "      step p50: auth {:.2} ms, attest {:.2} ms, resource + decrypt {:.2} ms",
                    f.steps.auth, f.steps.attest, f.steps.resource
                );
            }
            println!(
                "  trustee's KBS on this machine class: ~{TRUSTEE_REFERENCE_FLOWS_PER_S:.0} flows/s with 8 client threads (reference figure, not measured here); client and server share {} core(s)",
                machine.logical_cores
            );
        }
    }
    Ok(())
}

// --- the same flow in process -----------------------------------------------------------------

/// The in-process figure: flows per second and the median of each step in microseconds.
struct InProcess {
    per_s: f64,
    /// (step name, median microseconds)
    steps: Vec<(&'static str, f64)>,
}

impl InProcess {
    fn steps_json(&self) -> Value {
        Value::Object(
            self.steps
                .iter()
                .map(|(k, v)| ((*k).to_string(), json!(v)))
                .collect(),
        )
    }

    fn steps_line(&self) -> String {
        self.steps
            .iter()
            .map(|(k, v)| format!("{k} {v:.0} us"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the in-process flow compiles once, as a running server has it compiled.
struct InProcessSetup {
    appraisal: enclava_policy::rego::AppraisalPolicy,
    resource_policy: enclava_policy::kbs::ResourcePolicy,
    signer: enclava_token::jwt::Es256Signer,
    jwk: enclava_token::jwt::Jwk,
    resource: Vec<u8>,
}

const STEPS: [&str; 7] = [
    "guest_key_and_evidence",
    "parse_verify_bind",
    "appraisal_policy",
    "token_sign_and_verify",
    "resource_policy",
    "jwe_encrypt",
    "guest_decrypt",
];

/// One flow without HTTP, sessions or storage: exactly the pure work of auth, attest and
/// resource on the server (the enclava-kbs functions, the sample verifier, the two Rego
/// policies, token signing and verification, the JWE) and the guest's own crypto.
fn in_process_flow(p: &InProcessSetup, t: &mut [f64; 7]) -> Result<(), String> {
    use enclava_kbs::wire::{AttestRequest, AuthRequest};
    let us = |s: Instant| s.elapsed().as_secs_f64() * 1e6;
    let issuer = "https://bench.enclava.invalid";

    // auth: the request, hash negotiation, a fresh nonce.
    let s = Instant::now();
    let auth = AuthRequest::parse(
        br#"{"version":"0.4.0","tee":"sample","extra-params":{"supported-hash-algorithms":["sha384"]}}"#,
    )
    .map_err(|e| e.to_string())?;
    let alg = auth.hash;
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_string())?;
    let nonce = STANDARD.encode(nonce);
    let auth_us = us(s);

    // The guest: key pair, runtime data, sample evidence.
    let s = Instant::now();
    let key = TeeKey::generate()?;
    let body = serde_json::to_vec(&json!({
        "runtime-data": {"nonce": nonce, "tee-pubkey": key.jwk},
        "tee-evidence": {"primary_evidence": sample_evidence(&key.jwk, &nonce)?,
                         "additional_evidence": ""},
    }))
    .map_err(|e| e.to_string())?;
    t[0] += us(s);

    // attest: parse, nonce, verify the evidence, check the binding.
    let s = Instant::now();
    let req = AttestRequest::parse(&body).map_err(|e| e.to_string())?;
    if req.nonce != nonce {
        return Err("the nonce changed".into());
    }
    let evidence = serde_json::to_vec(&req.primary_evidence).map_err(|e| e.to_string())?;
    let claims = enclava_evidence::sample::verify(&evidence).map_err(|e| e.to_string())?;
    let field = hex::decode(&claims.report_data).map_err(|e| e.to_string())?;
    enclava_kbs::binding::check(&req.binding_digest(alg), &field).map_err(|e| e.to_string())?;
    t[1] += us(s) + auth_us;

    // The appraisal policy, with the input shape of every Enclava appraisal.
    let s = Instant::now();
    let input = json!({
        "claims": serde_json::to_value(&claims).map_err(|e| e.to_string())?,
        "runtime_data": Value::Null, "init_data": Value::Null, "reference": {},
    });
    let decision = p.appraisal.evaluate(&input).map_err(|e| e.to_string())?;
    if !decision.allowed {
        return Err(format!("appraisal denied: {}", decision.explain()));
    }
    t[2] += us(s);

    // The token: EAR claims with the tee-pubkey, signed; then verified as the resource route does.
    let s = Instant::now();
    let now = chrono::Utc::now();
    let appraisal = enclava_token::ear::Appraisal::new(
        &claims,
        enclava_token::ear::PolicyOutcome::Affirmed,
        Some("sample"),
    );
    // The server's token shape: its claims, the EAR claims embedded, the KBS facts beside them.
    let mut token_claims = serde_json::Map::new();
    token_claims.insert("iss".into(), issuer.into());
    token_claims.insert("iat".into(), now.timestamp().into());
    token_claims.insert("exp".into(), (now.timestamp() + 300).into());
    token_claims.insert(
        "claims".into(),
        serde_json::to_value(&claims).map_err(|e| e.to_string())?,
    );
    token_claims.insert(
        enclava_token::ear::EMBED_CLAIM.into(),
        Value::Object(enclava_token::ear::ear_claims(
            &[appraisal],
            &enclava_token::ear::VerifierId::enclava(),
            now,
        )),
    );
    token_claims.insert(
        "x-enclava-kbs".into(),
        json!({"tee": "sample", "tee-pubkey": req.tee_pubkey_jwk}),
    );
    let header = enclava_token::jwt::Header::for_signer(&p.signer, None);
    let token = enclava_token::jwt::sign_compact(&header, &token_claims, &p.signer)
        .map_err(|e| e.to_string())?;
    let verified = enclava_token::jwt::verify(
        &token,
        &p.jwk,
        &enclava_token::jwt::Expectations::new(issuer, now),
    )
    .map_err(|e| e.to_string())?;
    let claims_value = Value::Object(verified.claims);
    let tee_pubkey =
        enclava_kbs::jwk::TeePubKey::from_jwk(&claims_value["x-enclava-kbs"]["tee-pubkey"])
            .map_err(|e| e.to_string())?;
    t[3] += us(s);

    // The resource policy (KBS shape), compiled once as the server caches it by text, on the
    // server's input (the token claims with the EAR appraisal lifted, as trustee's policies read
    // it).
    let s = Instant::now();
    let data = enclava_policy::kbs::resource_data(RESOURCE_PATH, &serde_json::Map::new());
    let decision = p
        .resource_policy
        .evaluate(&enclava_server::kbs::policy_input(&claims_value), &data)
        .map_err(|e| e.to_string())?;
    if !decision.allowed {
        return Err(format!("resource policy denied: {}", decision.explain()));
    }
    t[4] += us(s);

    // The answer.
    let s = Instant::now();
    let jwe = enclava_kbs::jwe::encrypt(&tee_pubkey, &p.resource).map_err(|e| e.to_string())?;
    let jwe = serde_json::to_value(&jwe).map_err(|e| e.to_string())?;
    t[5] += us(s);

    let s = Instant::now();
    let plain = key.decrypt(&jwe)?;
    t[6] += us(s);
    if plain.as_slice() != p.resource.as_slice() {
        return Err("the in-process flow decrypted other bytes than the resource".into());
    }
    Ok(())
}

fn in_process_rate(args: &KbsBenchArgs) -> Result<InProcess, String> {
    let signer = enclava_token::jwt::Es256Signer::generate("bench-kbs")
        .map_err(|e| format!("token signer: {e}"))?;
    let jwk = enclava_token::jwt::TokenSigner::public_jwk(&signer)
        .map_err(|e| format!("token signer: {e}"))?;
    let p = InProcessSetup {
        appraisal: enclava_policy::rego::AppraisalPolicy::compile(
            "sample",
            SAMPLE_APPRAISAL_POLICY,
        )
        .map_err(|e| format!("the sample appraisal policy: {e}"))?,
        resource_policy: enclava_policy::kbs::ResourcePolicy::compile(
            "resource-policy.rego",
            RESOURCE_POLICY,
        )
        .map_err(|e| format!("the resource policy: {e}"))?,
        signer,
        jwk,
        resource: Sha256::digest(b"bench kbs in-process resource").to_vec(),
    };
    let mut warm = [0.0; 7];
    in_process_flow(&p, &mut warm).map_err(|e| format!("the in-process flow: {e}"))?;
    let rounds = args.rounds.max(1);
    let per_round = Duration::from_secs_f64(args.seconds / 2.0) / rounds;
    let mut rates = Vec::new();
    let mut step_rounds: Vec<[f64; 7]> = Vec::new();
    for _ in 0..rounds {
        let mut t = [0.0; 7];
        let mut n = 0u32;
        let started = Instant::now();
        while n == 0 || started.elapsed() < per_round {
            in_process_flow(&p, &mut t).map_err(|e| format!("the in-process flow: {e}"))?;
            n += 1;
        }
        rates.push(f64::from(n) / started.elapsed().as_secs_f64());
        step_rounds.push(t.map(|v| v / f64::from(n)));
    }
    let steps = STEPS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut v: Vec<f64> = step_rounds.iter().map(|r| r[i]).collect();
            (*name, median(&mut v))
        })
        .collect();
    Ok(InProcess {
        per_s: median(&mut rates),
        steps,
    })
}
