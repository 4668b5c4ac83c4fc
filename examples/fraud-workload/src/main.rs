//! `fraud-workload [--input DIR] [--output DIR]`: score `DIR/transactions.csv`.
//! `fraud-workload --generate N [--seed S] [--output DIR]`: write a synthetic `DIR/transactions.csv`.
//!
//! Defaults: `--input /input --output /output` (the guest paths an Enclava manifest maps), seed 1.
//! Exit codes: 0 success, 1 invalid input or I/O error, 2 usage error.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use fraud_workload::{generate, report};

const USAGE: &str = "usage: fraud-workload [--input DIR] [--output DIR]\n       \
                     fraud-workload --generate N [--seed S] [--output DIR]";

/// Bounds `--generate` (the generator holds all rows in memory to sort them: ~48 bytes a row).
const MAX_GENERATE: u64 = 20_000_000;

struct Args {
    input: PathBuf,
    output: PathBuf,
    generate: Option<u64>,
    seed: u64,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        input: PathBuf::from("/input"),
        output: PathBuf::from("/output"),
        generate: None,
        seed: 1,
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name}: expected a value, found nothing"))
        };
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: expected a non-negative integer, found `{v}`"))
        };
        match flag.as_str() {
            "--input" => args.input = PathBuf::from(value("--input")?),
            "--output" => args.output = PathBuf::from(value("--output")?),
            "--generate" => {
                let n = number("--generate", value("--generate")?)?;
                if n > MAX_GENERATE {
                    return Err(format!(
                        "--generate: expected at most {MAX_GENERATE}, found {n}"
                    ));
                }
                args.generate = Some(n);
            }
            "--seed" => args.seed = number("--seed", value("--seed")?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("expected an option, found `{other}`")),
        }
    }
    Ok(args)
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(n) = args.generate {
        let path = args.output.join("transactions.csv");
        let txs = generate::generate(n, args.seed);
        let write = || -> std::io::Result<()> {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            writeln!(w, "{}", fraud_workload::csv::HEADER)?;
            let mut line = Vec::with_capacity(128);
            for t in &txs {
                line.clear();
                fraud_workload::csv::write_row(&mut line, t);
                w.write_all(&line)?;
            }
            w.into_inner().map_err(|e| e.into_error())?;
            Ok(())
        };
        write().map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok(());
    }
    let in_path = args.input.join("transactions.csv");
    let scores_path = args.output.join("scores.csv");
    let summary_path = args.output.join("summary.json");
    let input = File::open(&in_path).map_err(|e| format!("opening {}: {e}", in_path.display()))?;
    let scores = File::create(&scores_path)
        .map_err(|e| format!("creating {}: {e}", scores_path.display()))?;
    let mut scores = BufWriter::with_capacity(1 << 16, scores);
    let summary =
        report::run(input, &mut scores).map_err(|e| format!("{}: {e}", in_path.display()))?;
    scores
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(|e| format!("writing {}: {e}", scores_path.display()))?;
    let mut f = File::create(&summary_path)
        .map_err(|e| format!("creating {}: {e}", summary_path.display()))?;
    f.write_all(summary.to_json().as_bytes())
        .map_err(|e| format!("writing {}: {e}", summary_path.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("fraud-workload: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("fraud-workload: {msg}");
            ExitCode::from(1)
        }
    }
}
