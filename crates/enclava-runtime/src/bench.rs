//! Overhead benchmark: the same program as WASI under [`Runtime`] and as a native executable.
//!
//! Both read `DATASET/transactions.csv`-style inputs from `dataset_dir` and write to fresh output
//! directories; the command line is `--input DIR --output DIR` in both cases (the wasm guest sees
//! `/input` read-only and `/output` read-write). One untimed warm-up run of each comes first (it
//! also compiles the module into the cache); then `runs` timed runs of each, alternating.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::error::RuntimeError;
use crate::host::Runtime;
use crate::manifest::{Access, Limits, Manifest};
use crate::measure::module_sha256;

/// Result of [`bench_overhead`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Median wall-clock seconds of one wasm run (instantiate + execute; compilation is cached).
    pub wasm_secs: f64,
    /// Median wall-clock seconds of one native process (spawn + execute).
    pub native_secs: f64,
    /// Median seconds of the instantiation part of a wasm run (a fixed cost per run).
    pub wasm_instantiate_secs: f64,
    /// Fastest wasm run, seconds (less sensitive to a busy machine than the median).
    pub wasm_min_secs: f64,
    /// Fastest native run, seconds.
    pub native_min_secs: f64,
    /// `wasm_secs / native_secs`.
    pub ratio: f64,
    /// Timed runs of each.
    pub runs: usize,
    /// Whether the last wasm and native runs wrote byte-identical output directories.
    pub outputs_identical: bool,
}

fn io_err(what: impl Into<String>, e: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        what: what.into(),
        reason: e.to_string(),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs.get(n / 2).copied().unwrap_or(0.0),
        n => {
            (xs.get(n / 2 - 1).copied().unwrap_or(0.0) + xs.get(n / 2).copied().unwrap_or(0.0))
                / 2.0
        }
    }
}

/// Sorted (file name, contents) of the regular files directly in `dir`.
fn dir_contents(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, RuntimeError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err("reading output dir", e))? {
        let entry = entry.map_err(|e| io_err("reading output dir", e))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            let bytes =
                std::fs::read(entry.path()).map_err(|e| io_err("reading output file", e))?;
            out.push((entry.file_name().to_string_lossy().into_owned(), bytes));
        }
    }
    out.sort();
    Ok(out)
}

/// The manifest the benchmark runs the wasm module under.
pub fn bench_manifest(module: &[u8]) -> Manifest {
    Manifest {
        name: "fraud-workload".into(),
        module_sha256: module_sha256(module),
        args: ["--input", "/input", "--output", "/output"]
            .map(String::from)
            .to_vec(),
        env: Default::default(),
        dirs: [
            ("/input".to_string(), Access::ReadOnly),
            ("/output".to_string(), Access::ReadWrite),
        ]
        .into(),
        keys: Default::default(),
        outputs: Default::default(),
        limits: Limits {
            memory_bytes: 2 << 30,
            time_ms: 30 * 60 * 1000,
        },
    }
}

/// Runs the module at `wasm` and the executable `native_exe` `runs` times each on `dataset_dir`.
pub fn bench_overhead(
    wasm: &Path,
    native_exe: &Path,
    dataset_dir: &Path,
    runs: usize,
) -> Result<BenchReport, RuntimeError> {
    let runs = runs.max(1);
    let module =
        std::fs::read(wasm).map_err(|e| io_err(format!("reading {}", wasm.display()), e))?;
    let manifest = bench_manifest(&module);
    let runtime = Runtime::new()?;
    let scratch = std::env::temp_dir().join(format!(
        "enclava-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let wasm_out = scratch.join("wasm");
    let native_out = scratch.join("native");
    for d in [&wasm_out, &native_out] {
        std::fs::create_dir_all(d).map_err(|e| io_err("creating scratch dir", e))?;
    }
    let result = (|| {
        let dirs: Vec<(PathBuf, String, Access)> = vec![
            (dataset_dir.to_path_buf(), "/input".into(), Access::ReadOnly),
            (wasm_out.clone(), "/output".into(), Access::ReadWrite),
        ];
        let run_wasm = || -> Result<(f64, f64), RuntimeError> {
            let t0 = Instant::now();
            let out = runtime.run(&module, &manifest, &dirs, &manifest.limits)?;
            let secs = t0.elapsed().as_secs_f64();
            let instantiate = out.instantiate_duration.as_secs_f64();
            if out.exit_code != 0 {
                return Err(RuntimeError::Io {
                    what: "wasm workload".into(),
                    reason: format!(
                        "expected exit code 0, found {}: {}",
                        out.exit_code,
                        String::from_utf8_lossy(&out.stderr)
                    ),
                });
            }
            Ok((secs, instantiate))
        };
        let run_native = || -> Result<f64, RuntimeError> {
            let t0 = Instant::now();
            let out = Command::new(native_exe)
                .arg("--input")
                .arg(dataset_dir)
                .arg("--output")
                .arg(&native_out)
                .output()
                .map_err(|e| io_err(format!("running {}", native_exe.display()), e))?;
            let secs = t0.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(RuntimeError::Io {
                    what: "native workload".into(),
                    reason: format!(
                        "expected success, found {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ),
                });
            }
            Ok(secs)
        };
        run_wasm()?;
        run_native()?;
        let mut w = Vec::with_capacity(runs);
        let mut inst = Vec::with_capacity(runs);
        let mut n = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (secs, instantiate) = run_wasm()?;
            w.push(secs);
            inst.push(instantiate);
            n.push(run_native()?);
        }
        let outputs_identical = dir_contents(&wasm_out)? == dir_contents(&native_out)?;
        let min = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
        let (wasm_min_secs, native_min_secs) = (min(&w), min(&n));
        let (wasm_secs, native_secs) = (median(w), median(n));
        Ok(BenchReport {
            wasm_secs,
            native_secs,
            wasm_instantiate_secs: median(inst),
            wasm_min_secs,
            native_min_secs,
            ratio: if native_secs > 0.0 {
                wasm_secs / native_secs
            } else {
                f64::INFINITY
            },
            runs,
            outputs_identical,
        })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn bench_manifest_is_valid_and_bound_to_the_module() {
        let m = bench_manifest(b"\0asm\x01\0\0\0");
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.module_sha256, module_sha256(b"\0asm\x01\0\0\0"));
    }
}
