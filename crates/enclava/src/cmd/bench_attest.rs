//! `enclava bench attest`: end-to-end attestations per second over HTTPS (keep-alive, the MAA
//! routes `SevSnpVm` and `TdxVm`, collateral from the server's cached collateral directory) against
//! an in-process dev server, with p50 / p99 latency, next to the evidence-only verification rate
//! (the same verifier, caches warm) and the crypto ceiling (`openssl speed`) measured in the same
//! run. The server verifies as of the vectors' times (`attestation.verification_time`, a testing
//! knob).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::OutputFormat;
use super::bench::{
    Phase, build_kind, measure, median, openssl_speed, phase, phase_json, print_phases,
};

#[derive(Debug, clap::Args)]
pub struct AttestBenchArgs {
    /// The real hardware vectors (default: ../shared/vectors from the current directory).
    #[arg(long, env = "ENCLAVA_VECTORS", default_value = "../shared/vectors")]
    pub vectors: PathBuf,
    /// Measuring time per figure, split into rounds; the median round is reported.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Concurrent keep-alive connections for the throughput figure (latency uses one).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Also measure on PostgreSQL and print the ratio PostgreSQL/SQLite per figure (each backend
    /// in its own fresh server, throughput rounds interleaved). The bench creates its own
    /// databases in this cluster and drops them at the end (the role needs CREATEDB; the bench's
    /// own connection for that is without TLS: a test cluster). Prefer the environment variable:
    /// a flag is visible in the process list.
    #[arg(long, env = "ENCLAVA_BENCH_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// With --store: also run this many `enclava server --dev` processes on one database behind
    /// HAProxy (which must be on PATH) and print TDX attestations per second through 1 replica
    /// vs this many (same proxy for both; at least this many connections).
    #[arg(long, value_name = "N", requires = "store", value_parser = clap::value_parser!(u32).range(2..=16))]
    pub replicas: Option<u32>,
    /// The bench servers' attestation token signer (`attestation.alg`): RS256 (the default,
    /// MAA's algorithm: RSA-2048) or ES256 (P-256). The signature is the largest part of an
    /// attestation's own work after the evidence; `--breakdown` times both.
    #[arg(long, value_name = "ALG", value_parser = ["RS256", "ES256"], default_value = "RS256")]
    pub token_alg: String,
    /// Also time each phase of one attestation in process against the bench server's own
    /// service (request decoding, evidence verification, token signature, the whole service
    /// call) next to the same request over HTTPS and the HTTPS floor on one connection, wall
    /// clock and on-CPU time per phase; what lies between them is printed as derived lines.
    #[arg(long)]
    pub breakdown: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

fn read(v: &Path, rel: &str) -> Result<Vec<u8>, String> {
    let p = v.join(rel);
    std::fs::read(&p).map_err(|e| format!("cannot read vector {}: {e}", p.display()))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn pem_of(files: &[Vec<u8>]) -> String {
    der_certs(files)
        .iter()
        .map(|d| enclava_evidence::pem::encode("CERTIFICATE", d))
        .collect()
}

fn der_certs(files: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files {
        if let Ok(certs) = enclava_evidence::pem::pem_or_der(f, "CERTIFICATE") {
            out.extend(certs);
        }
    }
    out
}

/// A scratch directory removed on drop.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub(super) fn new(what: &str) -> Result<Scratch, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let p = std::env::temp_dir().join(format!(
            "enclava-bench-{what}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(Scratch(p))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) struct Srv {
    pub(super) dir: Scratch,
    rt: tokio::runtime::Runtime,
    pub(super) server: Option<enclava_server::RunningServer>,
    pub(super) url: String,
    pub(super) ca: PathBuf,
    /// The PostgreSQL database of this server, dropped after the server has stopped.
    _db: Option<super::bench_store::FreshDatabase>,
}

impl Srv {
    /// The running server's attestation service (what its attestation handlers call).
    fn attestation_service(
        &self,
    ) -> Result<std::sync::Arc<enclava_attestation::AttestationService>, String> {
        let server = self.server.as_ref().ok_or("the server is gone")?;
        let st = &server.state;
        st.attestation
            .service(st)
            .map_err(|e| format!("the attestation service is not running: {e}"))
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_millis(100));
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), s.wait()).await });
        }
    }
}

/// Store the built-in `snp` policy with `require_revocation := false` as the server's snp policy.
fn snp_policy_without_revocation(srv: &Srv, now: DateTime<Utc>) -> Result<(), String> {
    let svc = srv.attestation_service()?;
    let text = enclava_policy::rego::defaults::SNP
        .replace("require_revocation := true", "require_revocation := false");
    svc.policies()
        .set(enclava_evidence::Tee::Snp, &text, "bench", now)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn start(
    at: &str,
    collateral: Option<PathBuf>,
    store: Option<&str>,
    token_alg: &str,
) -> Result<Srv, String> {
    start_dev_server_on(
        Some(enclava_server::attest::AttestationSettings {
            verification_time: Some(at.into()),
            collateral_dir: collateral,
            alg: Some(token_alg.into()),
            ..Default::default()
        }),
        store,
    )
}

/// An in-process development server (dev unseal, HTTPS on a loopback port) in a scratch
/// directory removed on drop.
pub(super) fn start_dev_server(
    attestation: Option<enclava_server::attest::AttestationSettings>,
) -> Result<Srv, String> {
    start_dev_server_on(attestation, None)
}

/// The same on SQLite in the scratch directory (`store: None`) or on a fresh database created in
/// the PostgreSQL cluster of `store` for this server and dropped with it.
pub(super) fn start_dev_server_on(
    attestation: Option<enclava_server::attest::AttestationSettings>,
    store: Option<&str>,
) -> Result<Srv, String> {
    let db = store
        .map(|url| super::bench_store::FreshDatabase::create(url, "server"))
        .transpose()?;
    let dir = Scratch::new("server")?;
    let cfg = enclava_server::PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        log_format: None,
        attestation,
        store: db
            .as_ref()
            .map(|d| enclava_server::StoreUrl::new(d.url.clone())),
        ..Default::default()
    }
    .resolve()
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server = rt
        .block_on(enclava_server::start(cfg))
        .map_err(|e| e.to_string())?;
    let url = server.local_url.clone();
    let ca = dir.path().join("data").join("ca.pem");
    Ok(Srv {
        dir,
        rt,
        server: Some(server),
        url,
        ca,
        _db: db,
    })
}

pub(super) fn agent(ca: &Path) -> Result<ureq::Agent, String> {
    let (builder, _) = enclava_client::agent_builder(Some(ca)).map_err(|e| e.to_string())?;
    Ok(builder
        .timeout(Duration::from_secs(30))
        .max_idle_connections_per_host(64)
        .build())
}

fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> bool {
    agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_bytes(body)
        .ok()
        .and_then(|r| r.into_string().ok())
        .is_some_and(|t| t.contains("\"token\""))
}

struct Http {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The same request through the server's own `AttestationService` in process (no HTTP, no
    /// audit): separates the service logic (policy, token signing) from the transport.
    service_per_s: f64,
    /// A request that does no attestation work, over the same connections: the transport's share.
    floor_per_s: f64,
    /// `--breakdown`: the phases of one attestation (first server only).
    phases: Vec<Phase>,
}

/// The figures of one route on each server (one per backend). Throughput rounds are interleaved
/// between the servers; the in-process and latency figures run one server after the other.
fn bench_http(
    srvs: &[&Srv],
    route: &str,
    body: &Value,
    args: &AttestBenchArgs,
) -> Result<Vec<Http>, String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let urls: Vec<String> = srvs
        .iter()
        .map(|srv| format!("{}/attest/{route}?api-version=2022-08-01", srv.url))
        .collect();
    let total = Duration::from_secs_f64(args.seconds.max(0.5));
    let mut firsts = Vec::new();
    let mut partial = Vec::new();
    for (srv, url) in srvs.iter().zip(&urls) {
        let a = agent(&srv.ca)?;
        // The first request checks the answer: a token signed with the algorithm asked for.
        let r = a
            .post(url)
            .set("Content-Type", "application/json")
            .send_bytes(&bytes);
        let text = match r {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(ureq::Error::Status(_, r)) => r.into_string().unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        let alg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_string))
            .and_then(|t| enclava_token::decode_unverified(&t).ok())
            .map(|t| t.header.alg)
            .ok_or_else(|| format!("attesting through {route} failed: {text}"))?;
        if alg != args.token_alg {
            return Err(format!(
                "the server signed its token with {alg}, expected {}",
                args.token_alg
            ));
        }
        let svc = srv.attestation_service()?;
        let ty = enclava_attestation::MaaType::from_name(route).map_err(|e| e.to_string())?;
        let req = enclava_attestation::AttestRequest::from_maa_json(ty, &bytes)
            .map_err(|e| e.to_string())?;
        let now = srv
            .server
            .as_ref()
            .and_then(|s| s.state.config.attestation.verification_time)
            .unwrap_or_else(Utc::now);
        let service_per_s = measure(total, args.rounds, || svc.attest(&req, now).is_ok())?;
        // Latency: one connection, sequential requests.
        let mut lat = Vec::new();
        let start = Instant::now();
        while start.elapsed() < total / 2 {
            let t = Instant::now();
            if !post(&a, url, &bytes) {
                return Err(format!(
                    "an attestation through {route} failed while measuring"
                ));
            }
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(|x, y| x.total_cmp(y));
        let pct = |p: f64| {
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            lat.get(i).copied().unwrap_or(0.0)
        };
        let phases = if args.breakdown && firsts.is_empty() {
            let floor_url = format!("{}/.well-known/openid-configuration", srv.url);
            let http = HttpTarget {
                agent: &a,
                url,
                floor_url: &floor_url,
            };
            attest_breakdown(&svc, ty, &bytes, &req, now, &http, args)?
        } else {
            Vec::new()
        };
        partial.push((pct(0.5), pct(0.99), service_per_s, phases));
        firsts.push(a);
    }
    let cas: Vec<&Path> = srvs.iter().map(|s| s.ca.as_path()).collect();
    let per_s = throughput(&cas, &firsts, args, args.connections, |a, i| {
        post(a, &urls[i], &bytes)
    })?;
    // The floor: the same connections asking for a small document that takes no work to make
    // (`GET /.well-known/openid-configuration`): what HTTPS, routing and audit cost per request.
    let floor_urls: Vec<String> = srvs
        .iter()
        .map(|srv| format!("{}/.well-known/openid-configuration", srv.url))
        .collect();
    let floor_per_s = throughput(&cas, &firsts, args, args.connections, |a, i| {
        a.get(&floor_urls[i])
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some()
    })?;
    Ok(partial
        .into_iter()
        .enumerate()
        .map(|(i, (p50_ms, p99_ms, service_per_s, phases))| Http {
            per_s: per_s[i],
            p50_ms,
            p99_ms,
            service_per_s,
            floor_per_s: floor_per_s[i],
            phases,
        })
        .collect())
}

/// Where the breakdown sends its HTTPS requests: the latency connection, the route and the floor.
struct HttpTarget<'a> {
    agent: &'a ureq::Agent,
    url: &'a str,
    floor_url: &'a str,
}

/// The phases of one attestation, each timed in process on this thread against the bench
/// server's own service (the functions its handler calls), next to the same request over HTTPS
/// and the HTTPS floor on one connection, and the two token signatures on their own. The server
/// is otherwise idle meanwhile.
fn attest_breakdown(
    svc: &enclava_attestation::AttestationService,
    ty: enclava_attestation::MaaType,
    bytes: &[u8],
    req: &enclava_attestation::AttestRequest,
    now: DateTime<Utc>,
    http: &HttpTarget<'_>,
    args: &AttestBenchArgs,
) -> Result<Vec<Phase>, String> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    };
    use enclava_attestation::AttestRequest;
    let budget = Duration::from_secs_f64((args.seconds / 10.0).clamp(0.2, 2.0));
    let err = |e: enclava_attestation::AttestError| e.to_string();
    let token_len = svc.attest(req, now).map_err(err)?.token.len();
    let mut out = vec![
        phase("request decoding (JSON, base64)", "server", budget, || {
            AttestRequest::from_maa_json(ty, bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        })?,
        phase(
            "evidence verification (caches warm)",
            "server",
            budget,
            || {
                svc.verify_evidence(&req.evidence, now)
                    .map(drop)
                    .map_err(err)
            },
        )?,
        phase(
            "token issue without claims (header + signature)",
            "server",
            budget,
            || {
                svc.management_token(&serde_json::Map::new(), now)
                    .map(drop)
                    .map_err(err)
            },
        )?,
        phase(
            "service attest (verify, bind, policy, claims, token)",
            "server",
            budget,
            || svc.attest(req, now).map(drop).map_err(err),
        )?,
        phase(
            "the same attestation over HTTPS (1 connection)",
            "client",
            budget,
            || {
                post(http.agent, http.url, bytes)
                    .then_some(())
                    .ok_or_else(|| "the request failed".to_string())
            },
        )?,
        phase(
            "HTTPS floor: GET openid-configuration (1 connection)",
            "client",
            budget,
            || {
                http.agent
                    .get(http.floor_url)
                    .call()
                    .map_err(|e| e.to_string())?
                    .into_string()
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        )?,
    ];
    // Both signers on their own, over an input the size of this token (aws-lc-rs, the library
    // the service signs with): what `--token-alg` changes.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let input = vec![0x5au8; token_len];
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "cannot generate an RSA-2048 key".to_string())?;
    let mut sig = vec![0u8; rsa.public_modulus_len()];
    out.push(phase(
        "RS256 signature alone (RSA-2048, token-sized input)",
        "server",
        budget,
        || {
            rsa.sign(&RSA_PKCS1_SHA256, &rng, &input, &mut sig)
                .map_err(|_| "RS256 signing failed".to_string())
        },
    )?);
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "cannot generate a P-256 key".to_string())?;
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| "cannot load the P-256 key".to_string())?;
    out.push(phase(
        "ES256 signature alone (P-256, token-sized input)",
        "server",
        budget,
        || {
            ec.sign(&rng, &input)
                .map(drop)
                .map_err(|_| "ES256 signing failed".to_string())
        },
    )?);
    Ok(out)
}

/// Derived lines of an attestation breakdown: what lies between the timed phases.
fn derived(phases: &[Phase]) -> Option<(f64, f64, f64)> {
    let p50 = |prefix: &str| {
        phases
            .iter()
            .find(|p| p.name.starts_with(prefix))
            .map(|p| p.wall_p50_us)
    };
    let attest = p50("service attest")?;
    let rest = attest - p50("evidence verification")? - p50("token issue")?;
    let https = p50("the same attestation over HTTPS")?;
    Some((rest, https - attest, p50("HTTPS floor")?))
}

/// Requests per second from `connections` keep-alive clients (one agent each) on each server,
/// median of rounds; round k runs on every server before round k+1 starts (interleaved, so noise
/// from the rest of the machine falls on all servers alike). `request(agent, i)` asks server `i`.
fn throughput(
    cas: &[&Path],
    firsts: &[ureq::Agent],
    args: &AttestBenchArgs,
    connections: usize,
    request: impl Fn(&ureq::Agent, usize) -> bool + Sync,
) -> Result<Vec<f64>, String> {
    let total = Duration::from_secs_f64(args.seconds.max(0.5));
    let conns = connections.max(1);
    let per_round = total / args.rounds.max(1);
    let mut agents = Vec::new();
    for (ca, first) in cas.iter().zip(firsts) {
        let these: Vec<ureq::Agent> = (0..conns)
            .map(|i| if i == 0 { Ok(first.clone()) } else { agent(ca) })
            .collect::<Result<_, _>>()?;
        agents.push(these);
    }
    let mut rates = vec![Vec::new(); cas.len()];
    for _ in 0..args.rounds.max(1) {
        for (i, these) in agents.iter().enumerate() {
            let started = Instant::now();
            let n: u64 = std::thread::scope(|s| {
                let hs: Vec<_> = these
                    .iter()
                    .map(|a| {
                        let request = &request;
                        s.spawn(move || {
                            let mut n = 0u64;
                            while started.elapsed() < per_round {
                                if request(a, i) {
                                    n += 1;
                                }
                            }
                            n
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            rates[i].push(n as f64 / started.elapsed().as_secs_f64());
        }
    }
    Ok(rates.iter_mut().map(|r| median(r)).collect())
}

/// TDX attestations per second through one replica and through all of them (HAProxy, one shared
/// PostgreSQL database), throughput rounds interleaved. Failed requests are counted, not fatal:
/// what N replicas on one database can serve is what this measures.
struct ReplicaFigures {
    count: usize,
    connections: usize,
    per_s: [f64; 2],
    failed: [u64; 2],
    first_error: Option<String>,
}

fn tdx_replicas(
    store: &str,
    count: usize,
    at: &str,
    collateral: &Path,
    quote: &[u8],
    args: &AttestBenchArgs,
) -> Result<ReplicaFigures, String> {
    let quoted = |v: &str| serde_json::to_string(v).unwrap_or_default();
    // A JSON string is a TOML basic string for everything a path or a time holds here.
    let config = format!(
        "[attestation]\nverification_time = {}\ncollateral_dir = {}\nalg = {}\n",
        quoted(at),
        quoted(&collateral.display().to_string()),
        quoted(&args.token_alg)
    );
    let r = super::bench_store::Replicas::start(store, count, Some(&config))?;
    let body =
        serde_json::to_vec(&json!({"quote": STANDARD.encode(quote)})).map_err(|e| e.to_string())?;
    let urls = [&r.one_url, &r.all_url].map(|u| format!("{u}/attest/TdxVm?api-version=2022-08-01"));
    let attempt = |a: &ureq::Agent, url: &str| -> Result<(), String> {
        match a
            .post(url)
            .set("Content-Type", "application/json")
            .send_bytes(&body)
        {
            Ok(resp) => match resp.into_string() {
                Ok(t) if t.contains("\"token\"") => Ok(()),
                Ok(t) => Err(format!("no token in {t}")),
                Err(e) => Err(e.to_string()),
            },
            Err(ureq::Error::Status(code, resp)) => Err(format!(
                "answered {code}: {}",
                resp.into_string().unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        }
    };
    let firsts = [agent(&r.ca)?, agent(&r.ca)?];
    attempt(&firsts[0], &urls[0])
        .map_err(|e| format!("a TDX attestation through the first replica failed: {e}"))?;
    let failed = [
        std::sync::atomic::AtomicU64::new(0),
        std::sync::atomic::AtomicU64::new(0),
    ];
    let first_error = std::sync::Mutex::new(None::<String>);
    // HAProxy balances connections, not requests: fewer connections than replicas leave some idle.
    let connections = args.connections.max(count);
    let per_s = throughput(
        &[r.ca.as_path(), r.ca.as_path()],
        &firsts,
        args,
        connections,
        |a, i| match attempt(a, &urls[i]) {
            Ok(()) => true,
            Err(e) => {
                failed[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut first) = first_error.lock() {
                    first.get_or_insert(e);
                }
                false
            }
        },
    )?;
    Ok(ReplicaFigures {
        count: r.count,
        connections,
        per_s: [per_s[0], per_s[1]],
        failed: failed.map(|f| f.into_inner()),
        first_error: first_error.into_inner().unwrap_or_default(),
    })
}

pub fn bench_attest(args: &AttestBenchArgs) -> Result<(), String> {
    use enclava_evidence::{dcap, snp};
    if args.replicas.is_some() {
        // Before minutes of measuring: a missing load balancer is a usage error.
        super::bench_store::require_haproxy()?;
    }
    let v = &args.vectors;
    let total = Duration::from_secs_f64(args.seconds.max(0.5));
    let secs = format!(
        "{}",
        (args.seconds / f64::from(args.rounds.max(1)))
            .ceil()
            .max(1.0) as u64
    );
    eprintln!("measuring OpenSSL's ECDSA rates (crypto ceiling) ...");
    let p384 = openssl_speed(&["-seconds", &secs, "ecdsap384"], "384 bits ecdsa", 0, 3)?;
    let p256 = openssl_speed(&["-seconds", &secs, "ecdsap256"], "256 bits ecdsa", 0, 3)?;
    let p256_sign = openssl_speed(&["-seconds", &secs, "ecdsap256"], "256 bits ecdsa", 1, 3)?;

    // SNP: trustee's Milan report (not debuggable: the default policy admits it).
    let snp_at = "2025-06-01T00:00:00Z";
    let report = read(v, "sev-snp/trustee/test-report.bin")?;
    let certs = vec![
        read(v, "sev-snp/trustee/test-vcek.der")?,
        read(v, "sev-snp/google-go-sev-guest/ask_ark_milan.pem")?,
    ];
    let endorsements = snp::Endorsements {
        certs_der: der_certs(&certs),
        crls_der: vec![],
    };
    eprintln!("measuring SNP evidence-only verification (chain cached) ...");
    let snp_verifier = snp::SnpVerifier::new();
    let snp_only = measure(total, args.rounds, || {
        snp_verifier
            .verify(&report, &endorsements, at(snp_at))
            .is_ok()
    })?;
    let inner = json!({
        "SnpReport": URL_SAFE_NO_PAD.encode(&report),
        "VcekCertChain": URL_SAFE_NO_PAD.encode(pem_of(&certs).as_bytes()),
    });
    let snp_body = json!({"report": URL_SAFE_NO_PAD.encode(inner.to_string().as_bytes())});
    eprintln!("measuring SNP attestations over HTTPS ...");
    let store = args.store.as_deref();
    let snp_all = {
        let mut srvs = vec![start(snp_at, None, None, &args.token_alg)?];
        if let Some(url) = store {
            srvs.push(start(snp_at, None, Some(url), &args.token_alg)?);
        }
        // The vectors carry no AMD CRL, which the default snp policy requires: bench the default
        // policy's rules without that requirement (the same evaluation work, minus one rule).
        for srv in &srvs {
            snp_policy_without_revocation(srv, at(snp_at))?;
        }
        bench_http(
            &srvs.iter().collect::<Vec<_>>(),
            "SevSnpVm",
            &snp_body,
            args,
        )?
    };
    let snp_http = &snp_all[0];

    // TDX: phala's v4 quote with its collateral in the server's collateral directory.
    let tdx_at = "2025-07-19T10:00:34Z";
    let quote = read(v, "tdx/phala-dcap-qvl/tdx_quote")?;
    let coll_json = read(v, "tdx/phala-dcap-qvl/tdx_quote_collateral.json")?;
    eprintln!("measuring TDX evidence-only verification (collateral cached) ...");
    let collateral = dcap::Collateral::from_dcap_qvl_json(&coll_json).map_err(|e| e.to_string())?;
    let dcap_verifier = dcap::DcapVerifier::new();
    let tdx_only = measure(total, args.rounds, || {
        dcap_verifier
            .verify_tdx(&quote, Some(&collateral), at(tdx_at))
            .is_ok()
    })?;
    let cdir = Scratch::new("collateral")?;
    let fmspc = enclava_server::attest::DirCollateral::fmspc_of(&quote)
        .ok_or("the TDX vector has no readable FMSPC")?;
    std::fs::create_dir_all(cdir.path().join("tdx")).map_err(|e| e.to_string())?;
    std::fs::write(
        cdir.path().join("tdx").join(format!("{fmspc}.json")),
        &coll_json,
    )
    .map_err(|e| e.to_string())?;
    eprintln!("measuring TDX attestations over HTTPS ...");
    let tdx_all = {
        let mut srvs = vec![start(
            tdx_at,
            Some(cdir.path().to_path_buf()),
            None,
            &args.token_alg,
        )?];
        if let Some(url) = store {
            srvs.push(start(
                tdx_at,
                Some(cdir.path().to_path_buf()),
                Some(url),
                &args.token_alg,
            )?);
        }
        bench_http(
            &srvs.iter().collect::<Vec<_>>(),
            "TdxVm",
            &json!({"quote": STANDARD.encode(&quote)}),
            args,
        )?
    };
    let tdx_http = &tdx_all[0];
    let replicas = match (store, args.replicas) {
        (Some(url), Some(n)) => {
            eprintln!(
                "measuring TDX attestations through 1 vs {n} replica processes behind HAProxy ..."
            );
            Some(tdx_replicas(
                url,
                n as usize,
                tdx_at,
                cdir.path(),
                &quote,
                args,
            )?)
        }
        _ => None,
    };

    let snp_ratio = snp_http.per_s / snp_only;
    let tdx_ratio = tdx_http.per_s / tdx_only;
    let mut out = json!({
        "baseline": {"openssl_p384_verify_per_s": p384, "openssl_p256_verify_per_s": p256, "openssl_p256_sign_per_s": p256_sign},
        "snp": {"evidence_only_per_s": snp_only, "https_per_s": snp_http.per_s, "https_vs_evidence_only": snp_ratio,
                "p50_ms": snp_http.p50_ms, "p99_ms": snp_http.p99_ms, "service_in_process_per_s": snp_http.service_per_s, "https_floor_per_s": snp_http.floor_per_s, "goal_ratio": 0.7, "goal_p50_ms": 2.0},
        "tdx": {"evidence_only_per_s": tdx_only, "https_per_s": tdx_http.per_s, "https_vs_evidence_only": tdx_ratio,
                "p50_ms": tdx_http.p50_ms, "p99_ms": tdx_http.p99_ms, "service_in_process_per_s": tdx_http.service_per_s, "https_floor_per_s": tdx_http.floor_per_s, "goal_ratio": 0.7},
        "connections": args.connections, "rounds": args.rounds, "seconds_per_figure": args.seconds,
        "token_alg": args.token_alg,
        "statistic": "median", "build": build_kind(),
    });
    let comparison = |all: &[Http]| -> Option<(Value, f64)> {
        let (sqlite, postgres) = (all.first()?, all.get(1)?);
        let r = if sqlite.per_s > 0.0 {
            postgres.per_s / sqlite.per_s
        } else {
            0.0
        };
        Some((
            json!({"sqlite": http_json(sqlite), "postgres": http_json(postgres), "postgres_vs_sqlite": r, "goal": 0.7}),
            r,
        ))
    };
    if args.breakdown
        && let Some(obj) = out.as_object_mut()
    {
        obj.insert(
            "breakdown".into(),
            json!({
                "snp": breakdown_json(&snp_http.phases),
                "tdx": breakdown_json(&tdx_http.phases),
                "statistic": "median wall-clock microseconds per run; mean on-CPU microseconds per run (this thread)",
            }),
        );
    }
    let snp_cmp = comparison(&snp_all);
    let tdx_cmp = comparison(&tdx_all);
    if let (Some(url), Some(obj)) = (store, out.as_object_mut()) {
        obj.insert(
            "stores".into(),
            json!({
                "postgres": super::bench_store::redact(url),
                "throughput_rounds_interleaved": true,
                "snp": snp_cmp.as_ref().map(|c| c.0.clone()),
                "tdx": tdx_cmp.as_ref().map(|c| c.0.clone()),
            }),
        );
    }
    if let (Some(r), Some(obj)) = (&replicas, out.as_object_mut()) {
        obj.insert(
            "replicas".into(),
            json!({
                "count": r.count, "connections": r.connections, "route": "TdxVm",
                "load_balancer": "haproxy (TCP mode, round-robin per connection)", "store": "postgres",
                "throughput_rounds_interleaved": true,
                "one": {"per_s": r.per_s[0], "failed": r.failed[0]},
                "many": {"per_s": r.per_s[1], "failed": r.failed[1]},
                "many_vs_one": if r.per_s[0] > 0.0 { r.per_s[1] / r.per_s[0] } else { 0.0 },
                "first_error": r.first_error,
            }),
        );
    }
    let machine = super::bench::Machine::detect();
    machine.annotate(&mut out);
    match args.output {
        OutputFormat::Json => println!("{out:#}"),
        OutputFormat::Table => {
            println!("{}", machine.line());
            println!(
                "attestation over HTTPS (keep-alive, {} connection(s), {} tokens), median of {} rounds",
                args.connections, args.token_alg, args.rounds,
            );
            println!("  openssl P-384 verify        {p384:>10.0}/s   (ceiling)");
            println!("  openssl P-256 verify        {p256:>10.0}/s   (ceiling)");
            println!("  openssl P-256 sign          {p256_sign:>10.0}/s   (ceiling)");
            println!("  SNP evidence only (cached)  {snp_only:>10.0}/s");
            println!(
                "  SNP via /attest/SevSnpVm    {:>10.0}/s   {snp_ratio:.2}x evidence-only (goal >= 0.7)   p50 {:.2} ms (goal < 2)  p99 {:.2} ms",
                snp_http.per_s, snp_http.p50_ms, snp_http.p99_ms
            );
            println!(
                "  SNP service in process      {:>10.0}/s   (verify + policy + token, no HTTP/audit)",
                snp_http.service_per_s
            );
            println!(
                "  HTTPS floor                 {:>10.0}/s   (GET openid-configuration, same connections)",
                snp_http.floor_per_s
            );
            print_breakdown("one SNP attestation", &snp_http.phases);
            println!("  TDX evidence only (cached)  {tdx_only:>10.0}/s");
            println!(
                "  TDX via /attest/TdxVm       {:>10.0}/s   {tdx_ratio:.2}x evidence-only (goal >= 0.7)   p50 {:.2} ms  p99 {:.2} ms",
                tdx_http.per_s, tdx_http.p50_ms, tdx_http.p99_ms
            );
            println!(
                "  TDX service in process      {:>10.0}/s   (verify + policy + token, no HTTP/audit)",
                tdx_http.service_per_s
            );
            println!(
                "  HTTPS floor                 {:>10.0}/s   (GET openid-configuration, same connections)",
                tdx_http.floor_per_s
            );
            print_breakdown("one TDX attestation", &tdx_http.phases);
            for (tee, all, cmp) in [("SNP", &snp_all, &snp_cmp), ("TDX", &tdx_all, &tdx_cmp)] {
                let (Some(s), Some(p), Some((_, r))) = (all.first(), all.get(1), cmp) else {
                    continue;
                };
                println!(
                    "{tee} attestations, SQLite vs PostgreSQL (fresh server each, same load, throughput rounds interleaved)"
                );
                for (label, h) in [("sqlite", s), ("postgres", p)] {
                    println!(
                        "    {label:<10} {:>10.0}/s   p50 {:.2} ms  p99 {:.2} ms   HTTPS floor {:.0}/s",
                        h.per_s, h.p50_ms, h.p99_ms, h.floor_per_s
                    );
                }
                println!("    postgres/sqlite {r:.2}x (goal >= 0.7)");
            }
            if let Some(r) = &replicas {
                println!(
                    "TDX attestations, 1 vs {} replicas on PostgreSQL behind HAProxy ({} connections, throughput rounds interleaved; \
                     the client, the proxy, the replicas and the database share this machine's {} logical cores)",
                    r.count, r.connections, machine.logical_cores
                );
                for (i, label) in ["1 replica".to_string(), format!("{} replicas", r.count)]
                    .iter()
                    .enumerate()
                {
                    println!(
                        "    {label:<12} {:>10.0}/s{}",
                        r.per_s[i],
                        if r.failed[i] > 0 {
                            format!("   {} FAILED requests", r.failed[i])
                        } else {
                            String::new()
                        }
                    );
                }
                println!(
                    "    {} replicas/1 replica {:.2}x",
                    r.count,
                    if r.per_s[0] > 0.0 {
                        r.per_s[1] / r.per_s[0]
                    } else {
                        0.0
                    }
                );
                if let Some(e) = &r.first_error {
                    println!("    first failure: {e}");
                }
            }
        }
    }
    Ok(())
}

fn breakdown_json(phases: &[Phase]) -> Value {
    let d = derived(phases);
    json!({
        "phases": phases.iter().map(phase_json).collect::<Vec<_>>(),
        "derived_us": d.map(|(rest, transport, floor)| json!({
            "binding_policy_claims_encoding": rest,
            "http_handler_audit_client": transport,
            "https_floor": floor,
        })),
    })
}

fn print_breakdown(what: &str, phases: &[Phase]) {
    print_phases(what, phases);
    if let Some((rest, transport, floor)) = derived(phases) {
        println!(
            "      derived: binding, policy, claims, token encoding (attest - verification - token issue) {rest:>8.1} us"
        );
        println!(
            "      derived: HTTP, handler, audit queue, client (HTTPS request - service attest)     {transport:>8.1} us   (HTTPS floor {floor:.1} us)"
        );
    }
}

fn http_json(h: &Http) -> Value {
    json!({"per_s": h.per_s, "p50_ms": h.p50_ms, "p99_ms": h.p99_ms, "service_in_process_per_s": h.service_per_s, "https_floor_per_s": h.floor_per_s})
}
