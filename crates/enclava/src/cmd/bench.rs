//! `enclava bench ...`: throughput benchmarks that print ratios against a baseline measured in the
//! same run (OpenSSL's `openssl speed` for the crypto ceiling). Machines are noisy: every figure is
//! the median of several rounds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::OutputFormat;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Evidence verifications per second on one core: SNP (chain cached and cold), TDX
    /// (collateral cached and cold) next to OpenSSL's ECDSA verify rates, and an NVIDIA GPU (H100
    /// report, driver + VBIOS RIMs; cold, and with RIMs verified once and the chain cached) next
    /// to two aws-lc-rs P-384 verifies measured in the same run.
    Evidence(EvidenceBenchArgs),
    /// End-to-end attestations per second over HTTPS (SNP, TDX) with p50/p99 latency, next to
    /// the evidence-only rate and OpenSSL's ECDSA rates.
    Attest(super::bench_attest::AttestBenchArgs),
    /// Key Vault operations per second over HTTPS (A256GCM encrypt, A256KW wrap, RSA-2048
    /// OAEP-256 decrypt, secret get) with p50/p99, next to OpenSSL's raw rates.
    Vault(super::bench_vault::VaultBenchArgs),
    /// End-to-end attested key releases per second over HTTPS (challenge, sim evidence, attest,
    /// release, key_hsm unwrap) with p50/p99, next to OpenSSL's RSA-2048 private-op rate.
    Release(super::bench_release::ReleaseBenchArgs),
    /// Full KBS (RCAR 0.4.0) flows per second over HTTPS (auth, attest with the sample TEE,
    /// resource, JWE decrypt) with p50/p99, next to the in-process cost of the same flow.
    Kbs(super::bench_kbs::KbsBenchArgs),
    /// Envelope encrypt/decrypt throughput next to raw aws-lc-rs AES-256-GCM of the same chunk
    /// size (the ceiling for the envelope) and OpenSSL's AES-256-GCM (16 KiB).
    Data(super::bench_data::DataBenchArgs),
    /// The example workload under the enclave runtime's wasm host versus natively.
    Workload(super::bench_data::WorkloadBenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct EvidenceBenchArgs {
    /// The real hardware vectors (default: ../shared/vectors from the current directory).
    #[arg(long, env = "ENCLAVA_VECTORS", default_value = "../shared/vectors")]
    pub vectors: PathBuf,
    /// Measuring time per figure, split into rounds; the median round is reported.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

pub fn run(cmd: BenchCommand) -> ExitCode {
    match cmd {
        BenchCommand::Attest(args) => match super::bench_attest::bench_attest(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        BenchCommand::Data(args) => report(super::bench_data::bench_data(&args)),
        BenchCommand::Kbs(args) => report(super::bench_kbs::bench_kbs(&args)),
        BenchCommand::Workload(args) => report(super::bench_data::bench_workload(&args)),
        BenchCommand::Vault(args) => match super::bench_vault::bench_vault(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        BenchCommand::Release(args) => match super::bench_release::bench_release(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        BenchCommand::Evidence(args) => match bench_evidence(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The machine a benchmark ran on: figures from different CPUs are not comparable (AES-GCM
/// speed depends on VAES/AVX-512, signatures on ADX/BMI2), so every bench prints this once.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu_model: String,
    pub arch: &'static str,
    pub logical_cores: usize,
    /// Instruction-set extensions the crypto code can use, as the CPU and OS report them.
    pub features: Vec<&'static str>,
    /// Extensions checked for and absent (an absent VAES or AVX-512F explains a lower ceiling).
    pub absent: Vec<&'static str>,
    /// `OPENSSL_ia32cap` when set: it masks CPU features from OpenSSL and aws-lc (so their
    /// kernels may differ from what `features` suggests), not from this detection.
    pub openssl_ia32cap: Option<String>,
}

impl Machine {
    pub fn detect() -> Machine {
        let (features, absent) = cpu_features();
        Machine {
            cpu_model: cpu_model(),
            arch: std::env::consts::ARCH,
            logical_cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            features,
            absent,
            openssl_ia32cap: std::env::var("OPENSSL_ia32cap").ok(),
        }
    }

    /// One line for the text output.
    pub fn line(&self) -> String {
        format!(
            "machine: {} ({}, {} logical cores); features: {}; absent: {}{}{}",
            self.cpu_model,
            self.arch,
            self.logical_cores,
            list_or_none(&self.features),
            list_or_none(&self.absent),
            match &self.openssl_ia32cap {
                Some(mask) =>
                    format!("; OPENSSL_ia32cap={mask} (masks features from the crypto libraries)"),
                None => String::new(),
            },
            build_note()
        )
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "cpu_model": self.cpu_model, "arch": self.arch, "logical_cores": self.logical_cores,
            "features": self.features, "absent_features": self.absent,
            "openssl_ia32cap": self.openssl_ia32cap,
            "build": build_kind(),
        })
    }

    /// Adds `"machine": {...}` to a JSON report object.
    pub fn annotate(&self, report: &mut serde_json::Value) {
        if let Some(object) = report.as_object_mut() {
            object.insert("machine".into(), self.json());
        }
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

/// The CPU model as the kernel names it (`model name` on x86, `Model`/`CPU part` elsewhere).
fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    ["model name", "Model", "cpu model", "CPU part"]
        .iter()
        .find_map(|key| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU model".into())
}

/// Present and absent instruction-set extensions relevant to the benchmarks, detected at run
/// time by `std::arch` (CPUID and the OS's register-state support), so the list is what the
/// process can actually use, not what the binary was compiled for.
#[cfg(target_arch = "x86_64")]
fn cpu_features() -> (Vec<&'static str>, Vec<&'static str>) {
    let checks = [
        ("AES-NI", std::arch::is_x86_feature_detected!("aes")),
        (
            "PCLMULQDQ",
            std::arch::is_x86_feature_detected!("pclmulqdq"),
        ),
        ("VAES", std::arch::is_x86_feature_detected!("vaes")),
        (
            "VPCLMULQDQ",
            std::arch::is_x86_feature_detected!("vpclmulqdq"),
        ),
        ("AVX", std::arch::is_x86_feature_detected!("avx")),
        ("AVX2", std::arch::is_x86_feature_detected!("avx2")),
        ("AVX-512F", std::arch::is_x86_feature_detected!("avx512f")),
        ("AVX-512VL", std::arch::is_x86_feature_detected!("avx512vl")),
        ("SHA", std::arch::is_x86_feature_detected!("sha")),
        ("BMI2", std::arch::is_x86_feature_detected!("bmi2")),
        ("ADX", std::arch::is_x86_feature_detected!("adx")),
        ("MOVBE", std::arch::is_x86_feature_detected!("movbe")),
    ];
    split_features(&checks)
}

#[cfg(target_arch = "aarch64")]
fn cpu_features() -> (Vec<&'static str>, Vec<&'static str>) {
    let checks = [
        ("AES", std::arch::is_aarch64_feature_detected!("aes")),
        ("PMULL", std::arch::is_aarch64_feature_detected!("pmull")),
        ("SHA2", std::arch::is_aarch64_feature_detected!("sha2")),
        ("SHA3", std::arch::is_aarch64_feature_detected!("sha3")),
        ("NEON", std::arch::is_aarch64_feature_detected!("neon")),
        ("SVE", std::arch::is_aarch64_feature_detected!("sve")),
    ];
    split_features(&checks)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn cpu_features() -> (Vec<&'static str>, Vec<&'static str>) {
    (Vec::new(), Vec::new())
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn split_features(checks: &[(&'static str, bool)]) -> (Vec<&'static str>, Vec<&'static str>) {
    let present = checks.iter().filter(|c| c.1).map(|c| c.0).collect();
    let absent = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
    (present, absent)
}

/// Median operations per second over `rounds` rounds of `total / rounds` each.
/// The load benches' shared argument check: measuring time, rounds, and the number of concurrent
/// workers under the flag that sets it (`--connections`, `--clients`).
pub fn check_load_args(seconds: f64, rounds: u32, workers: (&str, usize)) -> Result<(), String> {
    if !seconds.is_finite() || !(0.5..=3600.0).contains(&seconds) {
        return Err(format!(
            "--seconds: expected a number of seconds from 0.5 to 3600, found {seconds}"
        ));
    }
    if !(1..=100).contains(&rounds) {
        return Err(format!("--rounds: expected 1 to 100, found {rounds}"));
    }
    let (flag, n) = workers;
    if !(1..=64).contains(&n) {
        return Err(format!("{flag}: expected 1 to 64, found {n}"));
    }
    Ok(())
}

pub fn measure(total: Duration, rounds: u32, mut op: impl FnMut() -> bool) -> Result<f64, String> {
    let rounds = rounds.max(1);
    let per_round = total / rounds;
    // Warm up (and check the operation works at all before timing it).
    if !op() {
        return Err("the benchmarked operation failed on its first run".into());
    }
    let mut rates = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < per_round {
            if !op() {
                return Err("the benchmarked operation failed during the run".into());
            }
            n += 1;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    Ok(median(&mut rates))
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `openssl speed` and returns the values of the named column for the named rows, e.g.
/// verify/s for "256 bits ecdsa (nistp256)". The median of `rounds` runs.
pub fn openssl_speed(
    args: &[&str],
    row_prefix: &str,
    column_from_end: usize,
    rounds: u32,
) -> Result<f64, String> {
    let mut values = Vec::new();
    for _ in 0..rounds.max(1) {
        let out = std::process::Command::new("openssl")
            .arg("speed")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `openssl speed` for the baseline: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`openssl speed {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(row_prefix))
            .ok_or_else(|| {
                format!("`openssl speed` printed no line starting with {row_prefix:?}")
            })?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = fields
            .len()
            .checked_sub(1 + column_from_end)
            .and_then(|i| fields.get(i))
            .ok_or_else(|| format!("unexpected `openssl speed` line: {line:?}"))?;
        let value: f64 = field
            .trim_end_matches('k')
            .parse()
            .map_err(|_| format!("unexpected number {field:?} in `openssl speed` line {line:?}"))?;
        values.push(if field.ends_with('k') {
            value * 1000.0
        } else {
            value
        });
    }
    Ok(median(&mut values))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn read_vector(dir: &std::path::Path, rel: &str) -> Result<Vec<u8>, String> {
    let p = dir.join(rel);
    std::fs::read(&p).map_err(|e| {
        format!(
            "cannot read vector {}: {e} (use --vectors DIR)",
            p.display()
        )
    })
}

fn pem_certs(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    enclava_evidence::pem::pem_or_der(bytes, "CERTIFICATE").map_err(|e| e.to_string())
}

struct GpuFigures {
    cold: f64,
    cached: f64,
    ceiling: f64,
    /// Median of the per-round ratios cached / ceiling.
    ratio: f64,
}

/// GPU verifications per second: cold (`nvidia::verify`: chain signatures and both RIMs'
/// XML-DSig every time) and cached (RIMs verified once per id as `CheckedRim`s, device chain
/// links cached by an `NvidiaVerifier`: per verification the report parse and signature, the
/// validity checks and the 32-index comparison). The ceiling: two ECDSA P-384 verifies with
/// aws-lc-rs (the library the verifier uses), measured in the same run.
fn bench_gpu(v: &std::path::Path, total: Duration, rounds: u32) -> Result<GpuFigures, String> {
    use aws_lc_rs::signature::{
        ECDSA_P384_SHA384_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    use enclava_evidence::nvidia::{self, rim};
    let nt = "nvidia-gpu/nvtrust";
    let report_hex = read_vector(v, &format!("{nt}/attestationReport.txt"))?;
    let report = hex::decode(String::from_utf8_lossy(&report_hex).trim())
        .map_err(|e| format!("{nt}/attestationReport.txt: expected hex: {e}"))?;
    let chain = read_vector(v, &format!("{nt}/gpuAkCertChain.txt"))?;
    let driver = read_vector(v, &format!("{nt}/Driver_RIM_test_no_gpu.swidtag"))?;
    let vbios = read_vector(
        v,
        &format!("{nt}/1010_0200_882_96005E0001_test_no_gpu.swidtag"),
    )?;
    // The nonce and a time inside the RIMs' window, from the nvtrust MANIFEST.
    let nonce = hex::decode("4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e")
        .map_err(|e| e.to_string())?;
    let gpu_at = at("2024-06-01T00:00:00Z");

    eprintln!("measuring aws-lc-rs P-384 verify (two per operation, the GPU ceiling) ...");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
        .map_err(|_| "cannot generate a P-384 key".to_string())?;
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| "cannot load the P-384 key".to_string())?;
    let msg = [0x5au8; 256];
    let sig = kp
        .sign(&rng, &msg)
        .map_err(|_| "cannot sign with the P-384 key".to_string())?;
    let public =
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, kp.public_key().as_ref().to_vec());
    let two_verifies =
        || public.verify(&msg, sig.as_ref()).is_ok() && public.verify(&msg, sig.as_ref()).is_ok();

    eprintln!("measuring GPU verification (cold: chain and RIM signatures every time) ...");
    let cold = measure(total, rounds, || {
        nvidia::verify(&report, &chain, &[&driver, &vbios], Some(&nonce), gpu_at)
            .is_ok_and(|c| c.measres == "success")
    })?;
    eprintln!(
        "measuring GPU verification (RIMs verified once, chain cached) and the ceiling, back to back ..."
    );
    let checked = [&driver, &vbios]
        .iter()
        .map(|x| {
            rim::parse(x)
                .and_then(|r| rim::CheckedRim::check(r, gpu_at))
                .map_err(|e| format!("GPU bench RIM: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&rim::CheckedRim> = checked.iter().collect();
    let verifier = nvidia::NvidiaVerifier::new();
    let gpu_cached = || {
        verifier
            .verify_with_ocsp(&report, &chain, &refs, Some(&nonce), gpu_at, &[])
            .is_ok_and(|c| c.measres == "success")
    };
    // The ceiling and the cached figure are measured in alternating rounds so that load from
    // other processes hits both alike; the ratio is the median of the per-round ratios.
    let per_round = total / rounds.max(1);
    let (mut ceilings, mut cacheds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let c = measure(per_round, 1, two_verifies)?;
        let g = measure(per_round, 1, gpu_cached)?;
        ceilings.push(c);
        cacheds.push(g);
        ratios.push(g / c);
    }
    let ceiling = median(&mut ceilings);
    let cached = median(&mut cacheds);
    let ratio = median(&mut ratios);
    Ok(GpuFigures {
        cold,
        cached,
        ceiling,
        ratio,
    })
}

fn bench_evidence(args: &EvidenceBenchArgs) -> Result<(), String> {
    use enclava_evidence::{dcap, snp};
    let v = &args.vectors;
    let total = Duration::from_secs_f64(args.seconds.max(0.5));
    let secs = format!(
        "{}",
        (args.seconds / f64::from(args.rounds.max(1)))
            .ceil()
            .max(1.0) as u64
    );

    eprintln!("measuring OpenSSL's ECDSA verify rates (baseline) ...");
    let p384 = openssl_speed(&["-seconds", &secs, "ecdsap384"], "384 bits ecdsa", 0, 3)?;
    let p256 = openssl_speed(&["-seconds", &secs, "ecdsap256"], "256 bits ecdsa", 0, 3)?;

    let report = read_vector(v, "sev-snp/google-go-sev-guest/attestation.bin")?;
    let mut certs = pem_certs(&read_vector(v, "sev-snp/google-go-sev-guest/vcek.testcer")?)?;
    certs.extend(pem_certs(&read_vector(
        v,
        "sev-snp/google-go-sev-guest/ask_ark_milan.pem",
    )?)?);
    let endorsements = snp::Endorsements {
        certs_der: certs,
        crls_der: vec![],
    };
    let snp_at = at("2022-09-24T01:00:00Z");

    eprintln!("measuring SNP verification (cold: whole chain every time) ...");
    let snp_cold = measure(total, args.rounds, || {
        snp::verify(&report, &endorsements, snp_at).is_ok()
    })?;
    eprintln!("measuring SNP verification (chain cached) ...");
    let snp_verifier = snp::SnpVerifier::new();
    let snp_cached = measure(total, args.rounds, || {
        snp_verifier.verify(&report, &endorsements, snp_at).is_ok()
    })?;

    let quote = read_vector(v, "tdx/phala-dcap-qvl/tdx_quote")?;
    let collateral_json = read_vector(v, "tdx/phala-dcap-qvl/tdx_quote_collateral.json")?;
    let tdx_at = at("2025-07-19T10:00:34Z");
    eprintln!("measuring TDX verification (cold: collateral parsed and verified every time) ...");
    let tdx_cold = measure(total, args.rounds, || {
        dcap::Collateral::from_dcap_qvl_json(&collateral_json)
            .is_ok_and(|c| dcap::verify_tdx(&quote, Some(&c), tdx_at).is_ok())
    })?;
    eprintln!("measuring TDX verification (collateral cached) ...");
    let collateral =
        dcap::Collateral::from_dcap_qvl_json(&collateral_json).map_err(|e| e.to_string())?;
    let tdx_verifier = dcap::DcapVerifier::new();
    let tdx_cached = measure(total, args.rounds, || {
        tdx_verifier
            .verify_tdx(&quote, Some(&collateral), tdx_at)
            .is_ok()
    })?;

    let gpu = bench_gpu(v, total, args.rounds)?;

    let snp_ratio = snp_cached / p384;
    let tdx_ratio = tdx_cached / (p256 / 2.0);
    let mut report = json!({
        "baseline": {"openssl_p384_verify_per_s": p384, "openssl_p256_verify_per_s": p256},
        "snp": {"cold_per_s": snp_cold, "cached_per_s": snp_cached, "cached_vs_one_p384_verify": snp_ratio, "goal": 0.8},
        "tdx": {"cold_per_s": tdx_cold, "cached_per_s": tdx_cached, "cached_vs_two_p256_verifies": tdx_ratio, "goal": 0.7},
        "gpu": {"cold_per_s": gpu.cold, "cached_per_s": gpu.cached, "aws_lc_rs_two_p384_verifies_per_s": gpu.ceiling, "cached_vs_two_p384_verifies": gpu.ratio, "ratio": "median of per-round ratios (ceiling and GPU measured back to back)", "goal": 0.7,
                "vector": "nvidia-gpu/nvtrust attestationReport.txt + gpuAkCertChain.txt + driver and VBIOS RIMs (64 blocks, 32 indices compared)"},
        "rounds": args.rounds, "seconds_per_figure": args.seconds, "statistic": "median",
    });
    let machine = Machine::detect();
    machine.annotate(&mut report);
    match args.output {
        OutputFormat::Json => println!("{report:#}"),
        OutputFormat::Table => {
            println!("{}", machine.line());
            println!(
                "evidence verification, one core, median of {} rounds",
                args.rounds
            );
            println!("  openssl P-384 verify        {p384:>10.0}/s   (baseline)");
            println!("  openssl P-256 verify        {p256:>10.0}/s   (baseline)");
            println!("  SNP cold (full chain)       {snp_cold:>10.0}/s");
            println!(
                "  SNP cached chain            {snp_cached:>10.0}/s   {snp_ratio:.2}x one P-384 verify (goal >= 0.8)"
            );
            println!("  TDX cold (full collateral)  {tdx_cold:>10.0}/s");
            println!(
                "  TDX cached collateral       {tdx_cached:>10.0}/s   {tdx_ratio:.2}x two P-256 verifies (goal >= 0.7)"
            );
            println!(
                "  aws-lc-rs 2x P-384 verify   {:>10.0}/s   (GPU ceiling)",
                gpu.ceiling
            );
            println!("  GPU cold (chain + RIM sigs) {:>10.0}/s", gpu.cold);
            println!(
                "  GPU cached RIMs + chain     {:>10.0}/s   {:.2}x two P-384 verifies (goal >= 0.7)",
                gpu.cached, gpu.ratio
            );
        }
    }
    Ok(())
}

/// Nanoseconds the calling thread has spent on a CPU (`/proc/thread-self/schedstat`, first
/// field; `None` where there is no such file). On a machine shared with other work, wall-clock
/// time per phase includes waiting for a core; on-CPU time does not, so it is the figure to
/// compare between phases and with `openssl speed` (which also divides by CPU time).
pub(super) fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One phase of an operation (a release, an attestation), timed in process.
pub(super) struct Phase {
    pub name: &'static str,
    /// Where it runs: "server" or "client".
    pub side: &'static str,
    pub wall_p50_us: f64,
    pub cpu_us: Option<f64>,
    pub runs: usize,
}

/// Runs `op` repeatedly for `budget` (at least 5 times, after one warm-up run) and reports the
/// median wall-clock time and the mean on-CPU time per run.
pub(super) fn phase(
    name: &'static str,
    side: &'static str,
    budget: Duration,
    mut op: impl FnMut() -> Result<(), String>,
) -> Result<Phase, String> {
    op().map_err(|e| format!("breakdown, {name}: {e}"))?;
    let mut wall = Vec::new();
    let cpu_start = thread_cpu_ns();
    let started = Instant::now();
    while wall.len() < 5 || started.elapsed() < budget {
        let t = Instant::now();
        op().map_err(|e| format!("breakdown, {name}: {e}"))?;
        wall.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let cpu_us = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1000.0 / wall.len() as f64),
        _ => None,
    };
    Ok(Phase {
        name,
        side,
        wall_p50_us: median(&mut wall),
        cpu_us,
        runs: wall.len(),
    })
}

pub(super) fn phase_json(p: &Phase) -> Value {
    json!({"phase": p.name, "side": p.side, "wall_p50_us": p.wall_p50_us, "cpu_us": p.cpu_us, "runs": p.runs})
}

/// Prints the phases of `what` (e.g. "one release") as a table: side, name, wall p50, on-CPU.
pub(super) fn print_phases(what: &str, phases: &[Phase]) {
    if phases.is_empty() {
        return;
    }
    println!("  phases of {what}, in process, one thread (wall p50 / on-CPU mean per run):");
    for p in phases {
        println!(
            "      {:<6} {:<58} {:>8.1} us   {:>8} us cpu",
            p.side,
            p.name,
            p.wall_p50_us,
            p.cpu_us
                .map_or_else(|| "-".to_string(), |c| format!("{c:.1}"))
        );
    }
}

/// How this binary was built, as every report names it: "debug" (debug assertions on),
/// "unoptimized" (opt-level 0 or 1: the `quickstart` profile) or "release".
pub(super) fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else if matches!(env!("ENCLAVA_OPT_LEVEL"), "0" | "1") {
        "unoptimized"
    } else {
        "release"
    }
}

/// What the machine line (printed by every bench) adds when the binary is not an optimised build.
fn build_note() -> &'static str {
    match build_kind() {
        "debug" => " [DEBUG BUILD: not representative]",
        "unoptimized" => {
            " [UNOPTIMISED BUILD (the quickstart profile): not representative; use `cargo build --release`]"
        }
        _ => "",
    }
}
