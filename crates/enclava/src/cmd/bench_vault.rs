//! `enclava bench vault`: Key Vault operations per second end to end over HTTPS with keep-alive
//! against an in-process development server (audit log, authorization and sealing all on), with
//! p50/p99 latency, next to OpenSSL's raw rates for the same primitives measured in the same run.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::OutputFormat;
use super::bench::{median, openssl_speed};
use super::bench_attest::{Srv, agent, start_dev_server};

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
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

struct Figure {
    name: &'static str,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Op {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
}

fn call(a: &ureq::Agent, srv: &Srv, token: &str, op: &Op) -> Result<Value, String> {
    let url = format!("{}{}?api-version=7.6", srv.url, op.path);
    let req = a
        .request(op.method, &url)
        .set("Authorization", &format!("Bearer {token}"));
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

fn setup(srv: &Srv, token: &str) -> Result<Vec<Op>, String> {
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
        token,
        &post(
            "/keys/bench-aes/create",
            json!({"kty": "oct", "key_size": 256}),
        ),
    )?;
    let aes = version_of(&aes)?;
    let rsa = call(
        &a,
        srv,
        token,
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
    call(&a, srv, token, &put)?;
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let kib: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
    let ct = call(
        &a,
        srv,
        token,
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

fn measure_op(srv: &Srv, token: &str, op: &Op, args: &VaultBenchArgs) -> Result<Figure, String> {
    let conns = args.connections.max(1);
    let rounds = args.rounds.max(1);
    let per_round = Duration::from_secs_f64(args.seconds.max(0.5)) / rounds;
    let agents: Vec<ureq::Agent> = (0..conns)
        .map(|_| agent(&srv.ca))
        .collect::<Result<_, _>>()?;
    // Warm up every connection (TLS handshakes are not what we measure).
    for a in &agents {
        call(a, srv, token, op)?;
    }
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let results: Vec<Result<Vec<f64>, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = agents
                .iter()
                .map(|a| {
                    s.spawn(move || {
                        let mut lat = Vec::new();
                        while started.elapsed() < per_round {
                            let t = Instant::now();
                            call(a, srv, token, op)?;
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok(lat)
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
            let lat = r?;
            n += lat.len();
            latencies.extend(lat);
        }
        rates.push(n as f64 / elapsed);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Figure {
        name: op.name,
        per_s: median(&mut rates),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

pub fn bench_vault(args: &VaultBenchArgs) -> Result<(), String> {
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

    eprintln!("starting an in-process development server ...");
    let srv = start_dev_server(None)?;
    let token = std::fs::read_to_string(srv.dir.path().join("data").join("admin.token"))
        .map_err(|e| format!("reading the bootstrap token: {e}"))?;
    let token = token.trim().to_string();
    let ops = setup(&srv, &token)?;
    let mut figures = Vec::new();
    for op in &ops {
        eprintln!(
            "measuring {} over HTTPS ({} connections) ...",
            op.name, args.connections
        );
        figures.push(measure_op(&srv, &token, op, args)?);
    }
    let aes = figures.first().map(|f| f.per_s).unwrap_or(0.0);
    let rsa = figures.get(2).map(|f| f.per_s).unwrap_or(0.0);
    let mut report = json!({
        "baseline": {"openssl_aes_256_gcm_1k_ops_per_s": aes_ceiling, "openssl_rsa2048_private_ops_per_s": rsa_private},
        "operations": figures.iter().map(|f| json!({"operation": f.name, "per_s": f.per_s, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms})).collect::<Vec<_>>(),
        "aes_goal_per_s": 10000, "aes_vs_goal": aes / 10000.0,
        "rsa_decrypt_vs_openssl": rsa / rsa_private, "rsa_goal": 0.8,
        "connections": args.connections, "rounds": args.rounds, "statistic": "median",
    });
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
            for f in &figures {
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
        }
    }
    Ok(())
}
