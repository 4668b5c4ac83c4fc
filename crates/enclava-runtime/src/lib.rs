//! The WebAssembly host of the Enclava enclave runtime.
//!
//! A workload is a WASI preview 1 command module plus a [`Manifest`] that declares everything it
//! may touch: arguments, environment, mapped directories (read-only or read-write), key names,
//! output files and their recipients, and memory/time limits. [`measure`] binds module and
//! manifest into the 48-byte measurement that release policies name; [`Runtime::run`] executes
//! the module with exactly the declared capabilities and nothing else (no inherited environment,
//! stdio captured in bounded buffers, no sockets), enforcing the memory limit through a resource
//! limiter and the time limit through epoch interruption.
//!
//! What the host enforces itself: the module digest named by the manifest, the directory
//! mappings (exactly the declared guest paths, access no wider than declared, read-only enforced by
//! wasmtime-wasi), `argv`/environment, the linear-memory limit (guest linear memory only; host-side
//! buffers such as the captured stdout/stderr, at most [`CAPTURE_LIMIT`] bytes each, are not
//! counted) and the wall-clock limit (granularity [`EPOCH_TICK`]). `keys` and `outputs` are
//! measured declarations for the caller: the key-release client releases only the named keys, and
//! the caller encrypts the named output files to their recipients after the run. Fuel metering is
//! not enabled (it instruments every block and costs throughput); the time limit is the only CPU
//! limit.
//!
//! # Measurement
//!
//! ```text
//! measurement = SHA-384( "enclava-workload-v1\0"
//!                     || u64_be(len(module)) || module
//!                     || u64_be(len(manifest)) || manifest )
//! ```
//!
//! with `manifest` = [`Manifest::canonical_json`] (compact JSON, fields in declaration order,
//! maps and sets sorted by key).
//!
//! # Example
//!
//! ```no_run
//! use enclava_runtime::{Access, Limits, Manifest, Runtime, measure, module_sha256};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let module = std::fs::read("fraud-workload.wasm")?;
//! let manifest = Manifest {
//!     name: "fraud-workload".into(),
//!     module_sha256: module_sha256(&module),
//!     args: vec!["--input".into(), "/input".into(), "--output".into(), "/output".into()],
//!     env: Default::default(),
//!     dirs: [("/input".to_string(), Access::ReadOnly), ("/output".to_string(), Access::ReadWrite)].into(),
//!     keys: Default::default(),
//!     outputs: Default::default(),
//!     limits: Limits { memory_bytes: 256 << 20, time_ms: 60_000 },
//! };
//! let measurement = measure(&module, &manifest);
//! let runtime = Runtime::new()?;
//! let dirs = [
//!     ("/data/in".into(), "/input".to_string(), Access::ReadOnly),
//!     ("/data/out".into(), "/output".to_string(), Access::ReadWrite),
//! ];
//! let outcome = runtime.run(&module, &manifest, &dirs, &manifest.limits)?;
//! assert_eq!(outcome.measurement, measurement);
//! # Ok(()) }
//! ```

mod bench;
mod error;
mod host;
mod manifest;
mod measure;
mod pipe;
mod stamp;

pub use bench::{BenchReport, bench_manifest, bench_overhead};
pub use error::RuntimeError;
pub use host::{
    BACKTRACE_FRAMES, CAPTURE_LIMIT, DirMapping, EPOCH_TICK, MODULE_CACHE_ENTRIES, RunOutcome,
    Runtime, RuntimeOptions, TABLE_ELEMENTS_MAX,
};
pub use manifest::{Access, Limits, Manifest, ManifestError, bounds};
pub use measure::{MEASUREMENT_DOMAIN, MEASUREMENT_LEN, measure, measure_canonical, module_sha256};
pub use stamp::{
    BUILD_COMMAND, BuildStamp, CheckedBuilds, STAMP_FILE, StampError, check_builds, parse_stamp,
    read_source_tree, source_digest,
};
