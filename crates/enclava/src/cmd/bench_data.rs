//! `enclava bench data` and `enclava bench workload`: envelope throughput next to OpenSSL's
//! AES-256-GCM ceiling, and the example workload under the enclave runtime's wasm host next to
//! the same code compiled natively, each measured in the same run.

use std::path::PathBuf;

use serde_json::json;

use super::OutputFormat;
use super::bench::{Machine, median, openssl_speed};

#[derive(Debug, clap::Args)]
pub struct DataBenchArgs {
    /// Bytes per run (default 1 GiB), streamed through the real encrypt/decrypt code in memory.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// Plaintext bytes per chunk (the CLI's default).
    #[arg(long, default_value_t = 64 * 1024)]
    pub chunk_size: u32,
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

pub fn bench_data(args: &DataBenchArgs) -> Result<(), String> {
    let machine = Machine::detect();
    eprintln!("{}", machine.line());
    eprintln!("measuring OpenSSL's AES-256-GCM at 16 KiB blocks (the ceiling) ...");
    // The last column of the row is 16384-byte blocks.
    let ceiling = openssl_speed(
        &["-seconds", "2", "-evp", "aes-256-gcm"],
        "AES-256-GCM",
        0,
        3,
    )?;
    let (mut enc, mut dec, mut seal, mut open) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Ratios against the raw cipher per round: the raw figure and the envelope figure of one
    // round run back to back, so load from other processes on a shared machine hits both.
    let (mut enc_vs_raw, mut dec_vs_raw) = (Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        eprintln!(
            "round {}: raw aws-lc-rs AES-256-GCM, then encrypting and decrypting {} bytes ...",
            round + 1,
            args.bytes
        );
        let (s, o) = enclava_envelope::bench_aes_gcm_raw(args.bytes, args.chunk_size)
            .map_err(|e| format!("raw AES-256-GCM benchmark failed: {e}"))?;
        let (e, d) = enclava_envelope::bench_throughput(args.bytes, args.chunk_size)
            .map_err(|e| format!("envelope benchmark failed: {e}"))?;
        enc_vs_raw.push(e / s);
        dec_vs_raw.push(d / o);
        enc.push(e);
        dec.push(d);
        seal.push(s);
        open.push(o);
    }
    let (enc, dec) = (median(&mut enc), median(&mut dec));
    let (seal, open) = (median(&mut seal), median(&mut open));
    let (enc_vs_raw, dec_vs_raw) = (median(&mut enc_vs_raw), median(&mut dec_vs_raw));
    let mut report = json!({
        "bytes": args.bytes, "chunk_size": args.chunk_size, "rounds": args.rounds, "statistic": "median",
        "openssl_aes_256_gcm_16k_bytes_per_s": ceiling,
        "aws_lc_rs_aes_256_gcm_seal_bytes_per_s": seal, "aws_lc_rs_aes_256_gcm_open_bytes_per_s": open,
        "encrypt_bytes_per_s": enc, "decrypt_bytes_per_s": dec,
        "encrypt_vs_openssl": enc / ceiling, "decrypt_vs_openssl": dec / ceiling, "goal": 0.8,
        "encrypt_vs_aws_lc_rs_seal": enc_vs_raw, "decrypt_vs_aws_lc_rs_open": dec_vs_raw,
        "ratio_vs_aws_lc_rs": "median of per-round ratios (raw and envelope measured back to back)",
    });
    machine.annotate(&mut report);
    match args.output {
        OutputFormat::Json => println!("{report:#}"),
        OutputFormat::Table => {
            let gb = |b: f64| b / 1e9;
            let kib = args.chunk_size >> 10;
            println!("{}", machine.line());
            println!(
                "envelope throughput, {} MiB per run, {} KiB chunks, median of {} rounds (in memory: the crypto path, no disk)",
                args.bytes >> 20,
                kib,
                args.rounds,
            );
            println!(
                "  openssl aes-256-gcm 16 KiB      {:>7.2} GB/s   (OpenSSL ceiling, encrypt, one core)",
                gb(ceiling)
            );
            println!(
                "  aws-lc-rs AES-256-GCM seal      {:>7.2} GB/s   (raw cipher, {kib} KiB chunks in place: the ceiling for our code)",
                gb(seal)
            );
            println!(
                "  aws-lc-rs AES-256-GCM open      {:>7.2} GB/s   (raw cipher, {kib} KiB chunks)",
                gb(open)
            );
            println!(
                "  envelope encrypt                {:>7.2} GB/s   {:.2}x raw seal   {:.2}x openssl (goal >= 0.8)",
                gb(enc),
                enc_vs_raw,
                enc / ceiling
            );
            println!(
                "  envelope decrypt                {:>7.2} GB/s   {:.2}x raw open   {:.2}x openssl (goal >= 0.8)",
                gb(dec),
                dec_vs_raw,
                dec / ceiling
            );
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct WorkloadBenchArgs {
    /// The example workload built for wasm32-wasip1 (scripts/build-workload.sh).
    #[arg(
        long,
        default_value = "examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm"
    )]
    pub wasm: PathBuf,
    /// The same workload built natively.
    #[arg(
        long,
        default_value = "examples/fraud-workload/target/release/fraud-workload"
    )]
    pub native: PathBuf,
    /// The workload's source directory: both builds must come from its current contents.
    #[arg(long, default_value = "examples/fraud-workload")]
    pub source: PathBuf,
    /// The build stamp scripts/build-workload.sh writes (default: SOURCE/target/enclava-workload.stamp).
    #[arg(long)]
    pub stamp: Option<PathBuf>,
    /// Transactions in the generated dataset.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Timed runs of each (after one warm-up run each).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

pub fn bench_workload(args: &WorkloadBenchArgs) -> Result<(), String> {
    // Both builds must exist and come from the current source (the stamp written by
    // scripts/build-workload.sh), or the ratio would compare two different programs.
    let stamp = args
        .stamp
        .clone()
        .unwrap_or_else(|| args.source.join("target").join(enclava_runtime::STAMP_FILE));
    let builds = enclava_runtime::check_builds(&args.wasm, &args.native, &args.source, &stamp)
        .map_err(|e| e.to_string())?;
    let machine = Machine::detect();
    eprintln!("{}", machine.line());
    eprintln!(
        "workload source {} (both builds checked against {})",
        builds.stamp.source_sha256,
        stamp.display()
    );
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    eprintln!(
        "generating {} transactions with the native generator ...",
        args.rows
    );
    let status = std::process::Command::new(&args.native)
        .args([
            "--generate",
            &args.rows.to_string(),
            "--seed",
            "1",
            "--output",
        ])
        .arg(dir.path())
        .status()
        .map_err(|e| format!("running {}: {e}", args.native.display()))?;
    if !status.success() {
        return Err(format!("the generator failed: {status}"));
    }
    eprintln!(
        "running the workload {} times under the wasm host and natively ...",
        args.runs
    );
    let r = enclava_runtime::bench_overhead(&args.wasm, &args.native, dir.path(), args.runs)
        .map_err(|e| e.to_string())?;
    if !r.outputs_identical {
        return Err("the wasm and native runs wrote different outputs".into());
    }
    let mut report = json!({
        "rows": args.rows, "runs": r.runs, "statistic": "median",
        "wasm_secs": r.wasm_secs, "native_secs": r.native_secs,
        "wasm_min_secs": r.wasm_min_secs,
        "wasm_instantiate_secs": r.wasm_instantiate_secs,
        "wasm_cpu_secs": r.wasm_cpu_secs, "native_cpu_secs": r.native_cpu_secs,
        "cpu_ratio": r.cpu_ratio, "native_min_secs": r.native_min_secs,
        "ratio": r.ratio, "goal": 1.3, "outputs_identical": r.outputs_identical,
        "workload_source_sha256": builds.stamp.source_sha256,
        "wasm_sha256": builds.stamp.wasm_sha256,
        "native_sha256": builds.stamp.native_sha256,
        "rustc": builds.stamp.rustc,
    });
    machine.annotate(&mut report);
    match args.output {
        OutputFormat::Json => println!("{report:#}"),
        OutputFormat::Table => {
            println!("{}", machine.line());
            println!(
                "example workload ({} transactions), median of {} runs; outputs byte-identical",
                args.rows, r.runs
            );
            println!(
                "  native             {:>8.3} s   (baseline; min {:.3} s)",
                r.native_secs, r.native_min_secs
            );
            println!(
                "  enclave wasm host  {:>8.3} s   {:.2}x native (goal <= 1.3; min {:.3} s; instantiate {:.1} ms)",
                r.wasm_secs,
                r.ratio,
                r.wasm_min_secs,
                r.wasm_instantiate_secs * 1e3
            );
            // On-CPU time does not count waiting for a CPU: the ratio to read on a shared machine.
            if let (Some(w), Some(n), Some(ratio)) =
                (r.wasm_cpu_secs, r.native_cpu_secs, r.cpu_ratio)
            {
                println!(
                    "  on-CPU time        {n:>8.3} s native, {w:.3} s wasm host: {ratio:.2}x (median)"
                );
            }
        }
    }
    Ok(())
}
