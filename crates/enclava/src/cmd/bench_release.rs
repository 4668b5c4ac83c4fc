//! `enclava bench release`: end-to-end attested secure key releases per second against an
//! in-process development server, with p50 / p99 latency, next to the cost of the RSA-2048
//! private-key operation that bounds them.
//!
//! One release is exactly what the enclave runtime does (the `enclava-enclave` functions, over
//! HTTPS with keep-alive): `GET /challenge`; runtime data `{keys: [ephemeral RSA-2048 JWK, P-256
//! JWK], workload-measurement, nonce}`; simulated evidence over its SHA-256; `POST
//! /attest/native` (evidence check, appraisal policy, signed token); `POST /keys/NAME/release`
//! with the token (token verification, release policy, RSA-OAEP + AES-KWP wrap to the key in the
//! token, RS256-signed answer); `key_hsm` unwrap with the ephemeral private key; a check of the
//! unwrapped key. Each release costs two RSA-2048 private operations: the vault's RS256
//! signature on the release answer and the enclave's OAEP decryption.
//!
//! The setup is the quickstart's, minimal: the `quickstart` appraisal policy for the simulated
//! TEE with one measurement in its reference set, an exportable AES-256 key whose release policy
//! names that measurement and this server's issuer, and a workload-host identity that is only
//! Release User on that key. The ephemeral keys are generated once per worker outside the timed
//! loop, as a long-running workload would; a second variant generates a fresh key pair for every
//! release (as one `enclava run` does).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_enclave::client::Client;
use enclava_enclave::evidence::{self, TeeChoice};
use enclava_enclave::keyhsm::unwrap_key_hsm;
use enclava_enclave::run::{attest, challenge, release};
use enclava_enclave::{Connection, EnclaveError, EphemeralKeys, RuntimeData};
use enclava_envelope::KeyUnwrapper as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use super::OutputFormat;
use super::bench::{
    Phase, build_kind, measure, median, openssl_speed, phase, phase_json, print_phases,
};
use super::bench_attest::{Srv, agent, start_dev_server};

/// The released key's name in the bench vault.
const KEY_NAME: &str = "bench-release";

#[derive(Debug, clap::Args)]
pub struct ReleaseBenchArgs {
    /// Measuring time per figure, split into rounds; the median round is reported.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Concurrent keep-alive connections (one worker each) for the second figure; the first
    /// uses one.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Also time each phase of one release in process against the bench server's own state
    /// (token verification, release signer, policy, RSA wrap, RS256 signature, durable audit
    /// append, the client's signature check and unwrap), wall clock and on-CPU time per phase.
    #[arg(long)]
    pub breakdown: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// What one release must produce.
struct Expect {
    kid: String,
    /// SHA-256 of the released key material (checked once against a vault wrap at setup).
    material_sha256: [u8; 32],
}

struct Setup {
    /// The server, kept running for the measurements (stopped on drop).
    srv: Srv,
    conn: Connection,
    measurement: [u8; 48],
    expect: Expect,
    /// The key's release policy (JSON) and this server's token issuer, for the breakdown.
    policy: Value,
}

/// Per-release timings in milliseconds.
#[derive(Clone, Copy, Default)]
struct Sample {
    total: f64,
    keygen: f64,
    challenge: f64,
    evidence: f64,
    attest: f64,
    release: f64,
}

struct Figure {
    connections: usize,
    fresh_key: bool,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Median of each step over all releases.
    steps: Sample,
    releases: usize,
}

fn check_args(args: &ReleaseBenchArgs) -> Result<(), String> {
    super::bench::check_load_args(
        args.seconds,
        args.rounds,
        ("--connections", args.connections),
    )
}

/// One admin call to the bench server (`api-version` on key routes); the server's error answer
/// on failure (error answers name what was expected, never key material).
fn admin(
    a: &ureq::Agent,
    srv: &Srv,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let url = if path.starts_with("/keys/") {
        format!("{}{path}?api-version=7.6", srv.url)
    } else {
        format!("{}{path}", srv.url)
    };
    let req = a
        .request(method, &url)
        .set("Authorization", &format!("Bearer {token}"));
    let res = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match res {
        Ok(r) => r
            .into_json::<Value>()
            .map_err(|e| format!("setup: {method} {path}: the answer is not JSON: {e}")),
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "setup: {method} {path}: the server answered {code}: {}",
            r.into_string().unwrap_or_default()
        )),
        Err(e) => Err(format!("setup: {method} {path}: {e}")),
    }
}

fn enclave_err(what: &str, e: EnclaveError) -> String {
    let mut msg = format!("{what}: {e}");
    if let EnclaveError::Refused { failed, .. } = &e {
        for f in failed {
            msg.push_str(&format!("\n  failed: {f}"));
        }
    }
    msg
}

/// The quickstart's setup, minimal, against a fresh in-process dev server that lets simulated
/// evidence reach the policy.
fn setup() -> Result<Setup, String> {
    let srv = start_dev_server(Some(enclava_server::attest::AttestationSettings {
        allow_sim: Some(true),
        ..Default::default()
    }))?;
    let admin_token = Zeroizing::new(
        std::fs::read_to_string(srv.dir.path().join("data").join("admin.token"))
            .map_err(|e| format!("setup: reading the dev server's bootstrap token: {e}"))?
            .trim()
            .to_string(),
    );
    let a = agent(&srv.ca)?;
    let call = |method: &str, path: &str, body: Option<&Value>| {
        admin(&a, &srv, &admin_token, method, path, body)
    };

    // The workload measurement the simulated TEE reports (any fixed 48 bytes).
    let mut measurement = [0u8; 48];
    for (m, d) in measurement
        .iter_mut()
        .zip(Sha384::digest(b"enclava bench release workload").iter())
    {
        *m = *d;
    }
    let m_hex = hex::encode(measurement);

    // Appraisal policy: the simulated TEE, for this measurement only.
    call(
        "PUT",
        "/policies/sim",
        Some(&json!({"policy": enclava_policy::rego::defaults::QUICKSTART})),
    )?;
    call(
        "PUT",
        "/enclava/reference-values/default/quickstart",
        Some(&json!({"measurements": [m_hex]})),
    )?;

    // The exportable AES-256 key, released only to this issuer's tokens for this measurement.
    let oidc = call("GET", "/.well-known/openid-configuration", None)?;
    let issuer = oidc["issuer"]
        .as_str()
        .ok_or_else(|| format!("setup: the discovery document has no issuer: {oidc}"))?
        .to_string();
    let policy = super::quickstart::release_policy(&issuer, &m_hex);
    let created = call(
        "POST",
        &format!("/keys/{KEY_NAME}/create"),
        Some(&json!({
            "kty": "oct-HSM", "key_size": 256, "key_ops": ["wrapKey", "unwrapKey"],
            "attributes": {"exportable": true},
            "release_policy": {"contentType": "application/json; charset=utf-8",
                               "data": URL_SAFE_NO_PAD.encode(policy.to_string())}
        })),
    )?;
    let kid = created["key"]["kid"]
        .as_str()
        .ok_or_else(|| format!("setup: the created key has no kid: {created}"))?
        .to_string();

    // The workload host: Release User on this key only, through client credentials.
    let sp = call(
        "POST",
        "/enclava/principals",
        Some(&json!({"kind": "service_principal", "display_name": "bench-release-host"})),
    )?;
    let (Some(pid), Some(client_id), Some(secret)) = (
        sp["principal"]["id"].as_str(),
        sp["client_id"].as_str(),
        sp["client_secret"].as_str(),
    ) else {
        return Err(
            "setup: the new service principal has no id, client_id or client_secret".into(),
        );
    };
    let secret = Zeroizing::new(secret.to_string());
    call(
        "POST",
        "/enclava/role-assignments",
        Some(
            &json!({"principal": pid, "role": "ReleaseUser", "scope": format!("/keys/{KEY_NAME}")}),
        ),
    )?;
    let form = Zeroizing::new(format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fvault.azure.net%2F.default",
        urlencode(client_id),
        urlencode(&secret)
    ));
    let tok: Value = a
        .post(&format!("{}/oauth2/token", srv.url))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&form)
        .map_err(|e| format!("setup: the client-credentials token request failed: {e}"))?
        .into_json()
        .map_err(|e| format!("setup: the token answer is not JSON: {e}"))?;
    let host_token = Zeroizing::new(
        tok["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!(
                    "setup: the token endpoint returned no access_token (error: {})",
                    tok["error"]
                )
            })?
            .to_string(),
    );
    let conn = Connection {
        url: srv.url.clone(),
        token: Some(host_token),
        ca_cert: Some(srv.ca.clone()),
        timeout: Duration::from_secs(30),
    };

    // One release, checked against something the vault itself wrapped with the key.
    let client = Client::new(conn.clone()).map_err(|e| enclave_err("setup", e))?;
    let keys = EphemeralKeys::generate().map_err(|e| enclave_err("setup", e))?;
    let nonce = challenge(&client).map_err(|e| enclave_err("setup: challenge", e))?;
    let rd = RuntimeData::new(&keys, &measurement, &nonce).map_err(|e| enclave_err("setup", e))?;
    let ev = evidence::collect(
        TeeChoice::Sim,
        Path::new("/"),
        &rd.report_data(),
        &measurement,
    )
    .map_err(|e| enclave_err("setup: simulated evidence", e))?;
    let att = attest(&client, &ev, &rd, &nonce).map_err(|e| enclave_err("setup: attest", e))?;
    let rk =
        release(&client, KEY_NAME, &att, &keys).map_err(|e| enclave_err("setup: release", e))?;
    if rk.kid != kid || rk.material.len() != 32 {
        return Err(format!(
            "setup: expected the 32-byte AES key {kid}, the release gave {} bytes of {}",
            rk.material.len(),
            rk.kid
        ));
    }
    let material_sha256: [u8; 32] = Sha256::digest(rk.material.as_slice()).into();
    let probe: Vec<u8> = Sha256::digest(format!("bench probe {}", std::process::id()))
        .iter()
        .copied()
        .collect();
    let key_path = kid
        .strip_prefix(&srv.url)
        .or_else(|| kid.find("/keys/").and_then(|i| kid.get(i..)))
        .ok_or_else(|| format!("setup: unexpected key id {kid}"))?
        .to_string();
    let wrapped = call(
        "POST",
        &format!("{key_path}/wrapkey"),
        Some(&json!({"alg": "A256KW", "value": URL_SAFE_NO_PAD.encode(&probe)})),
    )?;
    let wrapped = wrapped["value"]
        .as_str()
        .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
        .ok_or_else(|| {
            format!("setup: the vault's wrapkey answer has no base64url value: {wrapped}")
        })?;
    let keyring = enclava_enclave::data::ReleasedKeys::new(vec![rk]);
    let unwrapped = keyring.unwrap_key(&kid, "A256KW", &wrapped).map_err(|e| {
        format!("setup: the released key does not unwrap what the vault wrapped with it: {e}")
    })?;
    if unwrapped.as_slice() != probe.as_slice() {
        return Err(
            "setup: the released key unwrapped the vault's wrap to other bytes than were wrapped"
                .into(),
        );
    }
    Ok(Setup {
        srv,
        conn,
        measurement,
        expect: Expect {
            kid,
            material_sha256,
        },
        policy,
    })
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// One attested release, step by step, exactly as the enclave runtime does it.
fn one_release(
    client: &Client,
    long_lived: Option<&EphemeralKeys>,
    measurement: &[u8; 48],
    expect: &Expect,
) -> Result<Sample, EnclaveError> {
    let start = Instant::now();
    let mut s = Sample::default();
    let fresh;
    let keys = match long_lived {
        Some(k) => k,
        None => {
            let t = Instant::now();
            fresh = EphemeralKeys::generate()?;
            s.keygen = ms(t);
            &fresh
        }
    };
    let t = Instant::now();
    let nonce = challenge(client)?;
    s.challenge = ms(t);
    let t = Instant::now();
    let rd = RuntimeData::new(keys, measurement, &nonce)?;
    let ev = evidence::collect(
        TeeChoice::Sim,
        Path::new("/"),
        &rd.report_data(),
        measurement,
    )?;
    s.evidence = ms(t);
    let t = Instant::now();
    let att = attest(client, &ev, &rd, &nonce)?;
    s.attest = ms(t);
    let t = Instant::now();
    let rk = release(client, KEY_NAME, &att, keys)?;
    s.release = ms(t);
    if rk.kid != expect.kid
        || rk.material.len() != 32
        || <[u8; 32]>::from(Sha256::digest(rk.material.as_slice())) != expect.material_sha256
    {
        return Err(EnclaveError::Server(format!(
            "the release gave {} bytes of key {} where the 32-byte key {} released at setup was expected",
            rk.material.len(),
            rk.kid,
            expect.kid
        )));
    }
    s.total = ms(start);
    Ok(s)
}

struct Worker {
    client: Client,
    keys: Option<EphemeralKeys>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

fn bench_releases(
    s: &Setup,
    conns: usize,
    fresh_key: bool,
    args: &ReleaseBenchArgs,
) -> Result<Figure, String> {
    let rounds = args.rounds.max(1);
    let per_round = Duration::from_secs_f64(args.seconds) / rounds;
    let workers: Vec<Worker> = (0..conns)
        .map(|_| {
            Ok(Worker {
                client: Client::new(s.conn.clone()).map_err(|e| enclave_err("client", e))?,
                keys: if fresh_key {
                    None
                } else {
                    Some(EphemeralKeys::generate().map_err(|e| enclave_err("key generation", e))?)
                },
            })
        })
        .collect::<Result<_, String>>()?;
    // Warm up every connection (the TLS handshake is not what is measured).
    for w in &workers {
        one_release(&w.client, w.keys.as_ref(), &s.measurement, &s.expect)
            .map_err(|e| enclave_err("warm-up release", e))?;
    }
    let mut rates = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let results: Vec<Result<Vec<Sample>, String>> = std::thread::scope(|sc| {
            let handles: Vec<_> = workers
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    sc.spawn(move || {
                        let mut out = Vec::new();
                        while started.elapsed() < per_round {
                            let sample =
                                one_release(&w.client, w.keys.as_ref(), &s.measurement, &s.expect)
                                    .map_err(|e| {
                                        enclave_err(
                                            &format!(
                                                "release {} on connection {}",
                                                out.len() + 1,
                                                i + 1
                                            ),
                                            e,
                                        )
                                    })?;
                            out.push(sample);
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
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
        connections: conns,
        fresh_key,
        per_s: median(&mut rates),
        p50_ms: pct(&total, 0.5),
        p99_ms: pct(&total, 0.99),
        steps: Sample {
            total: pct(&total, 0.5),
            keygen: med(|x| x.keygen),
            challenge: med(|x| x.challenge),
            evidence: med(|x| x.evidence),
            attest: med(|x| x.attest),
            release: med(|x| x.release),
        },
        releases: samples.len(),
    })
}

/// The enclave's own `key_hsm` unwrap in process, one core: RSA-2048 OAEP-256 private decrypt
/// (aws-lc-rs) plus AES-KWP and parsing, of a `key_hsm` built by the vault's own wrap function.
fn unwrap_rate(args: &ReleaseBenchArgs) -> Result<f64, String> {
    use enclava_vault::keys::release::{ReleaseEnc, key_hsm_json, rsa_aes_key_wrap};
    let keys = EphemeralKeys::generate().map_err(|e| enclave_err("key generation", e))?;
    let jwk: enclava_vault::JsonWebKey = serde_json::from_value(keys.wrapping_jwk().clone())
        .map_err(|e| format!("the ephemeral JWK does not parse as a vault JWK: {e}"))?;
    let material = [0x5au8; 32];
    let ct = rsa_aes_key_wrap(&jwk, ReleaseEnc::RsaAesKeyWrap256, &material)
        .map_err(|e| format!("wrapping to the ephemeral key failed: {e}"))?;
    let hsm = key_hsm_json(keys.wrapping_kid(), ReleaseEnc::RsaAesKeyWrap256, &ct)
        .map_err(|e| format!("building key_hsm failed: {e}"))?;
    let hsm = URL_SAFE_NO_PAD.encode(hsm);
    measure(
        Duration::from_secs_f64(args.seconds / 2.0),
        args.rounds,
        || unwrap_key_hsm(&hsm, &keys).is_ok_and(|m| m.as_slice() == material),
    )
}

/// The phases of one release, each timed in process on this thread against the running bench
/// server's own state (the same functions its handlers call), so the HTTPS figures can be
/// split into where the time goes. The server is idle meanwhile.
fn breakdown(s: &Setup, args: &ReleaseBenchArgs) -> Result<Vec<Phase>, String> {
    use enclava_vault::keys::release::{
        ReleaseEnc, ReleaseRequest, Rs256Signer, TokenSigner, rsa_aes_key_wrap,
    };
    let st = s
        .srv
        .server
        .as_ref()
        .map(|r| r.state.clone())
        .ok_or("breakdown: the bench server is gone")?;
    let budget = Duration::from_secs_f64((args.seconds / 10.0).clamp(0.2, 2.0));
    let client = Client::new(s.conn.clone()).map_err(|e| enclave_err("client", e))?;
    let keys = EphemeralKeys::generate().map_err(|e| enclave_err("key generation", e))?;
    let nonce = challenge(&client).map_err(|e| enclave_err("challenge", e))?;
    let rd = RuntimeData::new(&keys, &s.measurement, &nonce).map_err(|e| enclave_err("", e))?;
    let ev = evidence::collect(
        TeeChoice::Sim,
        Path::new("/"),
        &rd.report_data(),
        &s.measurement,
    )
    .map_err(|e| enclave_err("simulated evidence", e))?;
    let att = attest(&client, &ev, &rd, &nonce).map_err(|e| enclave_err("attest", e))?;
    let now = chrono::Utc::now;
    let verified = st
        .trusted_issuers
        .verify(&att.token, now())
        .map_err(|e| format!("breakdown: the attestation token does not verify: {e}"))?;
    let signer = enclava_server::release::release_signer(&st).map_err(|e| e.to_string())?;
    let req = ReleaseRequest {
        target: att.token.clone(),
        nonce: None,
        enc: Some("RSA_AES_KEY_WRAP_256".into()),
    };
    let jws = st
        .vault
        .release(KEY_NAME, None, &req, &verified, signer.as_ref(), "7.6")
        .map_err(|e| format!("breakdown: release: {e}"))?
        .value;
    let policy_bytes = s.policy.to_string().into_bytes();
    let claims = Value::Object(verified.claims.clone());
    let jwk: enclava_vault::JsonWebKey = serde_json::from_value(keys.wrapping_jwk().clone())
        .map_err(|e| format!("the ephemeral JWK does not parse as a vault JWK: {e}"))?;
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    };
    let mut seq = 0u64;
    let mut out = Vec::new();
    out.push(phase(
        "attestation token verification",
        "server",
        budget,
        || {
            st.trusted_issuers
                .verify(&att.token, now())
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "release signer, cached (2 store reads)",
        "server",
        budget,
        || {
            enclava_server::release::release_signer(&st)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "release signer, uncached (unseal ring, parse RSA key)",
        "server",
        budget,
        || {
            let ring = enclava_server::service_keys::load_or_create(
                &st.vault,
                st.store.as_ref(),
                enclava_server::service_keys::Ring::Release,
            )
            .map_err(|e| e.to_string())?;
            Rs256Signer::from_pkcs8("breakdown", &ring.current().pkcs8)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "release policy (parse, evaluate)",
        "server",
        budget,
        || {
            let p = enclava_policy::ReleasePolicy::from_content(
                Some("application/json; charset=utf-8"),
                &policy_bytes,
            )
            .map_err(|e| e.to_string())?;
            if p.evaluate(&verified.issuer, &claims).allowed {
                Ok(())
            } else {
                Err("the release policy denied the token".into())
            }
        },
    )?);
    out.push(phase(
        "RSA-OAEP-256 + AES-KWP wrap (public op)",
        "server",
        budget,
        || {
            rsa_aes_key_wrap(&jwk, ReleaseEnc::RsaAesKeyWrap256, &[0x5a; 32])
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "RS256 signature (RSA-2048 private op)",
        "server",
        budget,
        || {
            signer
                .sign(b"enclava bench release signing input")
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "vault release (key read, policy, wrap, sign)",
        "server",
        budget,
        || {
            st.vault
                .release(KEY_NAME, None, &req, &verified, signer.as_ref(), "7.6")
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "durable audit append (1 entry)",
        "server",
        budget,
        || {
            seq += 1;
            st.audit_log
                .append(vec![enclava_audit::NewEntry {
                    time: chrono::Utc::now(),
                    principal: "bench-release-breakdown".into(),
                    action: "keys/release".into(),
                    object: format!("keys/{KEY_NAME}"),
                    version: None,
                    result: enclava_audit::Outcome::Allowed,
                    status: 200,
                    request_id: format!("breakdown-{seq}"),
                    client_addr: "127.0.0.1".into(),
                    detail: Some("bench release --breakdown".into()),
                }])
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "release answer signature check",
        "client",
        budget,
        || {
            enclava_enclave::release_sig::verify_release_jws(&jws, client.pinned_ca(), unix_now())
                .map_err(|e| e.to_string())
        },
    )?);
    out.push(phase(
        "key_hsm unwrap (RSA-2048 OAEP private op + AES-KWP)",
        "client",
        budget,
        || {
            enclava_enclave::keyhsm::released_key_from_jws(&jws, &keys)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?);
    Ok(out)
}

fn figure_json(f: &Figure, rsa_private: f64) -> Value {
    json!({
        "connections": f.connections,
        "ephemeral_key": if f.fresh_key { "fresh per release" } else { "once per worker" },
        "per_s": f.per_s, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms,
        "vs_openssl_rsa2048_private_ops": f.per_s / rsa_private,
        "releases_measured": f.releases,
        "step_p50_ms": {
            "keygen": if f.fresh_key { json!(f.steps.keygen) } else { Value::Null }, "challenge": f.steps.challenge,
            "runtime_data_and_evidence": f.steps.evidence, "attest": f.steps.attest,
            "release_and_unwrap": f.steps.release,
        },
    })
}

pub fn bench_release(args: &ReleaseBenchArgs) -> Result<(), String> {
    check_args(args)?;
    eprintln!("measuring OpenSSL's RSA-2048 private-key rate (baseline, one core) ...");
    let rsa_private = openssl_speed(&["-seconds", "1", "rsa2048"], "rsa 2048 bits", 1, 3)?;
    eprintln!("measuring the in-process key_hsm unwrap (aws-lc-rs RSA-2048 OAEP-256) ...");
    let unwrap_per_s = unwrap_rate(args)?;

    eprintln!(
        "starting an in-process development server (simulated TEE allowed) and setting up ..."
    );
    let s = setup()?;
    let conns = args.connections;
    let mut figures = Vec::new();
    eprintln!("measuring releases, 1 connection, ephemeral key per worker ...");
    figures.push(bench_releases(&s, 1, false, args)?);
    if conns > 1 {
        eprintln!("measuring releases, {conns} connections, ephemeral key per worker ...");
        figures.push(bench_releases(&s, conns, false, args)?);
    }
    eprintln!("measuring releases, {conns} connection(s), fresh ephemeral key per release ...");
    figures.push(bench_releases(&s, conns, true, args)?);
    let phases = if args.breakdown {
        eprintln!("timing the phases of one release in process ...");
        breakdown(&s, args)?
    } else {
        Vec::new()
    };
    drop(s);

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let build = build_kind();
    let mut report = json!({
        "baseline": {
            "openssl_rsa2048_private_ops_per_s": rsa_private,
            "key_hsm_unwrap_in_process_per_s": unwrap_per_s,
            "key_hsm_unwrap_vs_openssl": unwrap_per_s / rsa_private,
        },
        "releases": figures.iter().map(|f| figure_json(f, rsa_private)).collect::<Vec<_>>(),
        "rsa2048_private_ops_per_release": 2,
        "cores": cores,
        "rounds": args.rounds, "seconds_per_figure": args.seconds,
        "statistic": "median of rounds; latency percentiles over all releases",
        "build": build,
        "tee": "sim (simulated evidence: measures the protocol, proves nothing)",
    });
    if args.breakdown {
        report["breakdown"] = json!({
            "phases": phases.iter().map(phase_json).collect::<Vec<_>>(),
            "statistic": "median wall-clock microseconds per run; mean on-CPU microseconds per run (this thread)",
        });
    }
    let machine = super::bench::Machine::detect();
    machine.annotate(&mut report);
    match args.output {
        OutputFormat::Json => println!("{report:#}"),
        OutputFormat::Table => {
            println!("{}", machine.line());
            println!(
                "attested key release end to end over HTTPS (challenge, sim evidence, attest, release, key_hsm unwrap), median of {} rounds",
                args.rounds,
            );
            println!(
                "  openssl RSA-2048 private op (sign)        {rsa_private:>9.0}/s   (baseline, one core)"
            );
            println!(
                "  key_hsm unwrap in process (aws-lc-rs)     {unwrap_per_s:>9.0}/s   {:.2}x openssl (RSA-2048 OAEP-256 private + AES-KWP, one core)",
                unwrap_per_s / rsa_private
            );
            for f in &figures {
                let label = format!(
                    "releases, {} conn{}, {}",
                    f.connections,
                    if f.connections == 1 { "" } else { "s" },
                    if f.fresh_key {
                        "fresh key"
                    } else {
                        "key per worker"
                    }
                );
                println!(
                    "  {label:<41} {:>9.1}/s   {:.4}x openssl   p50 {:.2} ms  p99 {:.2} ms",
                    f.per_s,
                    f.per_s / rsa_private,
                    f.p50_ms,
                    f.p99_ms
                );
                println!(
                    "      step p50: {}challenge {:.2} ms, runtime data + evidence {:.2} ms, attest {:.2} ms, release + unwrap {:.2} ms",
                    if f.fresh_key {
                        format!("keygen {:.2} ms, ", f.steps.keygen)
                    } else {
                        String::new()
                    },
                    f.steps.challenge,
                    f.steps.evidence,
                    f.steps.attest,
                    f.steps.release
                );
            }
            print_phases("one release", &phases);
            println!(
                "  each release: 3 HTTPS requests and 2 RSA-2048 private ops (the vault's RS256 release signature, the enclave's OAEP unwrap); client and server share {cores} core(s)"
            );
        }
    }
    Ok(())
}
