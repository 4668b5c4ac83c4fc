//! Overhead benchmark: the same program as WASI under [`Runtime`] and as a native executable.
//!
//! Both read `DATASET/transactions.csv`-style inputs from `dataset_dir` and write to fresh output
//! directories; the command line is `--input DIR --output DIR` in both cases (the wasm guest sees
//! `/input` read-only and `/output` read-write). One untimed warm-up run of each comes first (it
//! also compiles the module into the cache); then `runs` timed runs of each, alternating.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    /// Median on-CPU seconds of one wasm run (the running thread's scheduler time: guest code,
    /// WASI calls, page faults), when the kernel reports it (Linux `/proc/*/schedstat`).
    /// Unlike wall-clock time it does not count time spent waiting for a CPU, so it is the
    /// figure to read on a shared machine.
    pub wasm_cpu_secs: Option<f64>,
    /// Median on-CPU seconds of one native process (from exec to exit).
    pub native_cpu_secs: Option<f64>,
    /// `wasm_cpu_secs / native_cpu_secs`.
    pub cpu_ratio: Option<f64>,
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

/// On-CPU nanoseconds from a `/proc/.../schedstat` line (`sum_exec_runtime run_delay pcount`).
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The state letter of a `/proc/PID/stat` line: the first field after the command name, which is
/// parenthesised and may itself contain spaces and parentheses (hence the last `)`).
fn parse_stat_state(text: &str) -> Option<char> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    rest.trim_start().chars().next()
}

/// On-CPU seconds of the calling thread so far (None where the kernel does not say).
fn thread_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(parse_schedstat(&text)? as f64 / 1e9)
}

/// On-CPU seconds of the exited, not yet reaped child `pid`: its scheduler statistics are final
/// once it is a zombie and vanish when it is reaped, so this polls (briefly: the child has
/// already closed its stderr) for the zombie state before reading them.
fn zombie_cpu_secs(pid: u32) -> Option<f64> {
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&stat).ok()?;
        if matches!(parse_stat_state(&text)?, 'Z' | 'X') {
            break;
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    Some(parse_schedstat(&text)? as f64 / 1e9)
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
        let run_wasm = || -> Result<(f64, f64, Option<f64>), RuntimeError> {
            let cpu0 = thread_cpu_secs();
            let t0 = Instant::now();
            let out = runtime.run(&module, &manifest, &dirs, &manifest.limits)?;
            let secs = t0.elapsed().as_secs_f64();
            let cpu = cpu0.zip(thread_cpu_secs()).map(|(a, b)| b - a);
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
            Ok((secs, instantiate, cpu))
        };
        let run_native = || -> Result<(f64, Option<f64>), RuntimeError> {
            let running = |e| io_err(format!("running {}", native_exe.display()), e);
            let t0 = Instant::now();
            let mut child = Command::new(native_exe)
                .arg("--input")
                .arg(dataset_dir)
                .arg("--output")
                .arg(&native_out)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(running)?;
            // Reading stderr to its end returns when the child exits (as `output()` would).
            let mut stderr = Vec::new();
            if let Some(mut pipe) = child.stderr.take() {
                pipe.read_to_end(&mut stderr).map_err(running)?;
            }
            let secs = t0.elapsed().as_secs_f64();
            let cpu = zombie_cpu_secs(child.id());
            let status = child.wait().map_err(running)?;
            if !status.success() {
                return Err(RuntimeError::Io {
                    what: "native workload".into(),
                    reason: format!(
                        "expected success, found {status}: {}",
                        String::from_utf8_lossy(&stderr)
                    ),
                });
            }
            Ok((secs, cpu))
        };
        run_wasm()?;
        run_native()?;
        let mut w = Vec::with_capacity(runs);
        let mut inst = Vec::with_capacity(runs);
        let mut n = Vec::with_capacity(runs);
        // CPU times are kept only if every run has one (all or nothing, so medians compare).
        let mut wc: Option<Vec<f64>> = Some(Vec::with_capacity(runs));
        let mut nc: Option<Vec<f64>> = Some(Vec::with_capacity(runs));
        for _ in 0..runs {
            let (secs, instantiate, cpu) = run_wasm()?;
            w.push(secs);
            inst.push(instantiate);
            wc = wc.zip(cpu).map(|(mut v, c)| {
                v.push(c);
                v
            });
            let (secs, cpu) = run_native()?;
            n.push(secs);
            nc = nc.zip(cpu).map(|(mut v, c)| {
                v.push(c);
                v
            });
        }
        let (wasm_cpu_secs, native_cpu_secs) = (wc.map(median), nc.map(median));
        let cpu_ratio = wasm_cpu_secs
            .zip(native_cpu_secs)
            .filter(|(_, n)| *n > 0.0)
            .map(|(w, n)| w / n);
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
            wasm_cpu_secs,
            native_cpu_secs,
            cpu_ratio,
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
    fn parses_schedstat_and_stat_state() {
        assert_eq!(parse_schedstat("78351116 482084444 44\n"), Some(78_351_116));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
        // A command name with spaces and parentheses: the state follows the last `)`.
        assert_eq!(parse_stat_state("42 (a) b (c)) Z 1 42 42"), Some('Z'));
        assert_eq!(parse_stat_state("42 (fraud-workload) R 1"), Some('R'));
        assert_eq!(parse_stat_state("no parens"), None);
    }

    #[test]
    fn this_threads_cpu_time_advances_with_work() {
        // Linux only: where the kernel does not report it, the bench reports no CPU figures.
        let Some(before) = thread_cpu_secs() else {
            return;
        };
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = thread_cpu_secs().unwrap();
        assert!(after > before, "{before} -> {after}");
    }

    #[test]
    fn an_exited_childs_cpu_time_is_read_before_it_is_reaped() {
        if thread_cpu_secs().is_none() {
            return;
        }
        let mut child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut sink = Vec::new();
        child.stderr.take().unwrap().read_to_end(&mut sink).unwrap();
        let cpu = zombie_cpu_secs(child.id()).expect("the zombie's schedstat");
        assert!(child.wait().unwrap().success());
        assert!(cpu > 0.0 && cpu < 60.0, "{cpu}");
        // Once reaped, the child's statistics are gone.
        assert_eq!(zombie_cpu_secs(child.id()), None);
    }

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
