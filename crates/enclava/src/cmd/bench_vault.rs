//! `enclava bench vault`: Key Vault operations per second end to end over HTTPS with keep-alive
//! against an in-process development server (audit log, authorization and sealing all on), with
//! p50/p99 latency, next to OpenSSL's raw rates for the same primitives measured in the same run.
//!
//! With `--store URL`: the same figures on SQLite and on PostgreSQL (a fresh database in that
//! cluster, dropped at the end), each in its own fresh server under the same load, the rounds of
//! the two interleaved (machine noise hits both alike), and the ratio PostgreSQL/SQLite. With
//! `--replicas N` as well: N server processes on one fresh database behind HAProxy, 1 replica vs
//! N replicas through the same proxy.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::OutputFormat;
use super::bench::{median, openssl_speed};
use super::bench_attest::{Srv, agent, start_dev_server_on};
use super::bench_store::{Replicas, redact, require_haproxy};

#[derive(Debug, clap::Args)]
pub struct VaultBenchArgs {
    /// Measuring time per operation, split into rounds; the median round is reported.
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Concurrent keep-alive HTTPS connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Also measure on PostgreSQL and print the ratio PostgreSQL/SQLite per figure. The bench
    /// creates its own databases in this cluster and drops them at the end (the role needs
    /// CREATEDB; the bench's own connection for that is without TLS: a test cluster). The URL's
    /// database is only used to issue CREATE/DROP DATABASE. Prefer the environment variable: a
    /// flag is visible in the process list.
    #[arg(long, env = "ENCLAVA_BENCH_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// With --store: also run this many `enclava server --dev` processes on one database behind
    /// HAProxy (which must be on PATH) and print 1 replica vs this many (same proxy for both).
    #[arg(long, value_name = "N", requires = "store", value_parser = clap::value_parser!(u32).range(2..=16))]
    pub replicas: Option<u32>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Where requests go: a server (or a load balancer) and the credentials for it.
struct Target {
    url: String,
    ca: PathBuf,
    token: String,
}

impl Target {
    fn of(srv: &Srv) -> Result<Target, String> {
        let token = std::fs::read_to_string(srv.dir.path().join("data").join("admin.token"))
            .map_err(|e| format!("reading the bootstrap token: {e}"))?;
        Ok(Target {
            url: srv.url.clone(),
            ca: srv.ca.clone(),
            token: token.trim().to_string(),
        })
    }
}

struct Figure {
    name: &'static str,
    /// Successful requests per second (failed ones, when tolerated, do not count).
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Failed requests (only when tolerated, see [`measure_op`]) and the first failure.
    errors: u64,
    first_error: Option<String>,
}

#[derive(Clone)]
struct Op {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
}

fn call(a: &ureq::Agent, t: &Target, op: &Op) -> Result<Value, String> {
    let url = format!("{}{}?api-version=7.6", t.url, op.path);
    let req = a
        .request(op.method, &url)
        .set("Authorization", &format!("Bearer {}", t.token));
    let resp = match &op.body {
        Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => r.into_json::<Value>().map_err(|e| e.to_string()),
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "{} answered {code}: {}",
            op.name,
            r.into_string().unwrap_or_default()
        )),
        Err(e) => Err(format!("{}: {e}", op.name)),
    }
}

fn setup(srv: &Target) -> Result<Vec<Op>, String> {
    let a = agent(&srv.ca)?;
    let post = |path: &str, body: Value| Op {
        name: "setup",
        method: "POST",
        path: path.to_string(),
        body: Some(body.to_string().into_bytes()),
    };
    let version_of = |v: &Value| -> Result<String, String> {
        v["key"]["kid"]
            .as_str()
            .and_then(|k| k.rsplit('/').next())
            .map(str::to_string)
            .ok_or_else(|| format!("no kid in {v}"))
    };
    let aes = call(
        &a,
        srv,
        &post(
            "/keys/bench-aes/create",
            json!({"kty": "oct", "key_size": 256}),
        ),
    )?;
    let aes = version_of(&aes)?;
    let rsa = call(
        &a,
        srv,
        &post(
            "/keys/bench-rsa/create",
            json!({"kty": "RSA", "key_size": 2048}),
        ),
    )?;
    let rsa = version_of(&rsa)?;
    let put = Op {
        name: "setup",
        method: "PUT",
        path: "/secrets/bench-secret".into(),
        body: Some(
            json!({"value": "correct horse battery staple"})
                .to_string()
                .into_bytes(),
        ),
    };
    call(&a, srv, &put)?;
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let kib: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
    let ct = call(
        &a,
        srv,
        &post(
            &format!("/keys/bench-rsa/{rsa}/encrypt"),
            json!({"alg": "RSA-OAEP-256", "value": b64(b"a 32-byte data key for the bench")}),
        ),
    )?;
    let ct = ct["value"].as_str().ok_or("no ciphertext")?.to_string();
    Ok(vec![
        Op {
            name: "A256GCM encrypt 1 KiB",
            method: "POST",
            path: format!("/keys/bench-aes/{aes}/encrypt"),
            body: Some(
                json!({"alg": "A256GCM", "value": b64(&kib)})
                    .to_string()
                    .into_bytes(),
            ),
        },
        Op {
            name: "A256KW wrap 32 B",
            method: "POST",
            path: format!("/keys/bench-aes/{aes}/wrapkey"),
            body: Some(
                json!({"alg": "A256KW", "value": b64(&[7u8; 32])})
                    .to_string()
                    .into_bytes(),
            ),
        },
        Op {
            name: "RSA-2048 OAEP-256 decrypt",
            method: "POST",
            path: format!("/keys/bench-rsa/{rsa}/decrypt"),
            body: Some(
                json!({"alg": "RSA-OAEP-256", "value": ct})
                    .to_string()
                    .into_bytes(),
            ),
        },
        Op {
            name: "secret get",
            method: "GET",
            path: "/secrets/bench-secret/".into(),
            body: None,
        },
    ])
}

/// Median rate and latency percentiles of one operation on each target, the rounds interleaved
/// (round 1 on every target, then round 2, ...) so that noise from the rest of the machine falls
/// on all targets alike. `ops[t]` is the operation as target `t` names it (key versions differ).
/// A failed request ends the bench unless `tolerate_errors` (replicas: a replica that cannot yet
/// serve every request of a shared database is a finding to report, with the error, not a reason
/// to print nothing); then failures are counted and only successes make the rate.
fn measure_op(
    targets: &[&Target],
    ops: &[&Op],
    args: &VaultBenchArgs,
    tolerate_errors: bool,
) -> Result<Vec<Figure>, String> {
    let conns = args.connections.max(1);
    let rounds = args.rounds.max(1);
    let per_round = Duration::from_secs_f64(args.seconds.max(0.5)) / rounds;
    let mut agents = Vec::new();
    for t in targets {
        let a: Vec<ureq::Agent> = (0..conns).map(|_| agent(&t.ca)).collect::<Result<_, _>>()?;
        agents.push(a);
    }
    // Warm up every connection (TLS handshakes are not what we measure).
    for ((t, op), a) in targets.iter().zip(ops).zip(&agents) {
        for a in a {
            match call(a, t, op) {
                Err(e) if !tolerate_errors => return Err(e),
                _ => {}
            }
        }
    }
    let mut rates = vec![Vec::new(); targets.len()];
    let mut latencies = vec![Vec::new(); targets.len()];
    let mut errors = vec![0u64; targets.len()];
    let mut first_errors: Vec<Option<String>> = vec![None; targets.len()];
    for _ in 0..rounds {
        for (i, t) in targets.iter().enumerate() {
            let op = ops[i];
            let started = Instant::now();
            type Worker = Result<(Vec<f64>, u64, Option<String>), String>;
            let results: Vec<Worker> = std::thread::scope(|s| {
                let handles: Vec<_> = agents[i]
                    .iter()
                    .map(|a| {
                        s.spawn(move || {
                            let mut lat = Vec::new();
                            let (mut errors, mut first) = (0u64, None);
                            while started.elapsed() < per_round {
                                let t0 = Instant::now();
                                match call(a, t, op) {
                                    Ok(_) => lat.push(t0.elapsed().as_secs_f64() * 1000.0),
                                    Err(e) if tolerate_errors => {
                                        errors += 1;
                                        first.get_or_insert(e);
                                    }
                                    Err(e) => return Err(e),
                                }
                            }
                            Ok((lat, errors, first))
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
                let (lat, e, first) = r?;
                n += lat.len();
                latencies[i].extend(lat);
                errors[i] += e;
                if first_errors[i].is_none() {
                    first_errors[i] = first;
                }
            }
            rates[i].push(n as f64 / elapsed);
        }
    }
    Ok(rates
        .iter_mut()
        .zip(latencies.iter_mut())
        .zip(errors.into_iter().zip(first_errors))
        .map(|((r, l), (errors, first_error))| {
            l.sort_by(|a, b| a.total_cmp(b));
            let pct = |p: f64| {
                l.get(((l.len().max(1) - 1) as f64 * p).round() as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            Figure {
                name: ops[0].name,
                per_s: median(r),
                p50_ms: pct(0.5),
                p99_ms: pct(0.99),
                errors,
                first_error,
            }
        })
        .collect())
}

/// Runs every operation on every target; `figures[op][target]`.
fn measure_all(
    targets: &[&Target],
    ops: &[Vec<Op>],
    args: &VaultBenchArgs,
    what: &str,
    tolerate_errors: bool,
) -> Result<Vec<Vec<Figure>>, String> {
    let mut figures = Vec::new();
    for k in 0..ops[0].len() {
        eprintln!(
            "measuring {} over HTTPS ({} connections{what}) ...",
            ops[0][k].name, args.connections
        );
        let these: Vec<&Op> = ops.iter().map(|o| &o[k]).collect();
        figures.push(measure_op(targets, &these, args, tolerate_errors)?);
    }
    Ok(figures)
}

/// The goal for PostgreSQL vs SQLite applies to crypto operations; a secret read is listed with
/// its ratio but no goal.
fn is_crypto(name: &str) -> bool {
    name != "secret get"
}

fn figure_json(f: &Figure) -> Value {
    json!({"per_s": f.per_s, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms,
           "errors": f.errors, "first_error": f.first_error})
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

pub fn bench_vault(args: &VaultBenchArgs) -> Result<(), String> {
    if args.replicas.is_some() {
        // Before minutes of measuring: a missing load balancer is a usage error.
        require_haproxy()?;
    }
    eprintln!("measuring OpenSSL's AES-256-GCM and RSA-2048 rates (baseline, one core) ...");
    let secs = format!(
        "{}",
        (args.seconds / f64::from(args.rounds.max(1)))
            .ceil()
            .max(1.0) as u64
    );
    // Bytes per second at 1024-byte blocks (the 4th column from the end of the row is 1024).
    let aes_bytes = openssl_speed(
        &["-seconds", &secs, "-evp", "aes-256-gcm"],
        "AES-256-GCM",
        2,
        3,
    )?;
    let aes_ceiling = aes_bytes / 1024.0;
    let rsa_private = openssl_speed(&["-seconds", &secs, "rsa2048"], "rsa 2048 bits", 1, 3)?;

    let store = args.store.as_deref();
    eprintln!(
        "starting an in-process development server{} ...",
        if store.is_some() {
            " on SQLite and one on PostgreSQL"
        } else {
            ""
        }
    );
    let sqlite = start_dev_server_on(None, None)?;
    let postgres = store
        .map(|s| start_dev_server_on(None, Some(s)))
        .transpose()?;
    let mut targets = vec![Target::of(&sqlite)?];
    if let Some(p) = &postgres {
        targets.push(Target::of(p)?);
    }
    let ops: Vec<Vec<Op>> = targets.iter().map(setup).collect::<Result<_, _>>()?;
    let refs: Vec<&Target> = targets.iter().collect();
    let by_op = measure_all(
        &refs,
        &ops,
        args,
        if store.is_some() {
            ", SQLite and PostgreSQL rounds interleaved"
        } else {
            ""
        },
        false,
    )?;
    drop(postgres);
    drop(sqlite);

    let replicas = match (store, args.replicas) {
        (Some(url), Some(n)) => {
            eprintln!(
                "starting {n} replica processes on one PostgreSQL database behind HAProxy ..."
            );
            let r = Replicas::start(url, n as usize, None)?;
            let one = Target {
                url: r.one_url.clone(),
                ca: r.ca.clone(),
                token: r.token.clone(),
            };
            let all = Target {
                url: r.all_url.clone(),
                ca: r.ca.clone(),
                token: r.token.clone(),
            };
            // One database: the keys exist once, both front ends use the same operations.
            let ops = setup(&one)?;
            let figures = measure_all(
                &[&one, &all],
                &[ops.clone(), ops],
                args,
                &format!(", 1 vs {n} replicas behind HAProxy, rounds interleaved"),
                true,
            )?;
            Some((r.count, figures))
        }
        _ => None,
    };

    let sqlite_figures: Vec<&Figure> = by_op.iter().map(|f| &f[0]).collect();
    let aes = sqlite_figures.first().map(|f| f.per_s).unwrap_or(0.0);
    let rsa = sqlite_figures.get(2).map(|f| f.per_s).unwrap_or(0.0);
    let mut report = json!({
        "baseline": {"openssl_aes_256_gcm_1k_ops_per_s": aes_ceiling, "openssl_rsa2048_private_ops_per_s": rsa_private},
        "operations": sqlite_figures.iter().map(|f| json!({"operation": f.name, "per_s": f.per_s, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms})).collect::<Vec<_>>(),
        "aes_goal_per_s": 10000, "aes_vs_goal": aes / 10000.0,
        "rsa_decrypt_vs_openssl": rsa / rsa_private, "rsa_goal": 0.8,
        "connections": args.connections, "rounds": args.rounds, "statistic": "median",
    });
    if let (Some(url), Some(obj)) = (store, report.as_object_mut()) {
        obj.insert(
            "stores".into(),
            json!({
                "postgres": redact(url),
                "rounds_interleaved": true,
                "goal_postgres_vs_sqlite": 0.7,
                "operations": by_op.iter().map(|f| json!({
                    "operation": f[0].name,
                    "sqlite": figure_json(&f[0]),
                    "postgres": figure_json(&f[1]),
                    "postgres_vs_sqlite": ratio(f[1].per_s, f[0].per_s),
                    "goal": if is_crypto(f[0].name) { json!(0.7) } else { Value::Null },
                })).collect::<Vec<_>>(),
            }),
        );
    }
    if let (Some((n, figures)), Some(obj)) = (&replicas, report.as_object_mut()) {
        obj.insert(
            "replicas".into(),
            json!({
                "count": n,
                "load_balancer": "haproxy (TCP mode, round-robin per connection)",
                "store": "postgres",
                "rounds_interleaved": true,
                "operations": figures.iter().map(|f| json!({
                    "operation": f[0].name,
                    "one": figure_json(&f[0]),
                    "many": figure_json(&f[1]),
                    "many_vs_one": ratio(f[1].per_s, f[0].per_s),
                })).collect::<Vec<_>>(),
            }),
        );
    }
    let machine = super::bench::Machine::detect();
    machine.annotate(&mut report);
    match args.output {
        OutputFormat::Json => println!("{report:#}"),
        OutputFormat::Table => {
            println!("{}", machine.line());
            println!(
                "vault over HTTPS, {} keep-alive connections, median of {} rounds",
                args.connections, args.rounds
            );
            println!(
                "  openssl AES-256-GCM 1 KiB      {aes_ceiling:>10.0}/s   (baseline, one core)"
            );
            println!(
                "  openssl RSA-2048 private op    {rsa_private:>10.0}/s   (baseline, one core)"
            );
            for f in &sqlite_figures {
                println!(
                    "  {:<30} {:>10.0}/s   p50 {:.2} ms  p99 {:.2} ms",
                    f.name, f.per_s, f.p50_ms, f.p99_ms
                );
            }
            println!(
                "  AES end to end: {:.2}x the 10,000/s goal; RSA decrypt: {:.2}x OpenSSL (goal >= 0.8)",
                aes / 10000.0,
                rsa / rsa_private
            );
            if store.is_some() {
                println!("SQLite vs PostgreSQL (fresh server each, same load, rounds interleaved)");
                for f in &by_op {
                    print_pair(&f[0], "sqlite", &f[1], "postgres");
                    println!(
                        "    postgres/sqlite {:.2}x{}",
                        ratio(f[1].per_s, f[0].per_s),
                        if is_crypto(f[0].name) {
                            " (goal >= 0.7)"
                        } else {
                            ""
                        }
                    );
                }
            }
            if let Some((n, figures)) = &replicas {
                println!(
                    "1 vs {n} replicas on PostgreSQL behind HAProxy (same proxy, same load, rounds interleaved; \
                     the client, the proxy, the replicas and the database share this machine's {} logical cores)",
                    machine.logical_cores
                );
                for f in figures {
                    print_pair(&f[0], "1 replica", &f[1], &format!("{n} replicas"));
                    println!(
                        "    {n} replicas/1 replica {:.2}x",
                        ratio(f[1].per_s, f[0].per_s)
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_pair(a: &Figure, a_label: &str, b: &Figure, b_label: &str) {
    println!("  {}", a.name);
    for (f, label) in [(a, a_label), (b, b_label)] {
        println!(
            "    {label:<12} {:>10.0}/s   p50 {:.2} ms  p99 {:.2} ms{}",
            f.per_s,
            f.p50_ms,
            f.p99_ms,
            match &f.first_error {
                Some(e) => format!("   {} FAILED requests, first: {e}", f.errors),
                None => String::new(),
            }
        );
    }
}
