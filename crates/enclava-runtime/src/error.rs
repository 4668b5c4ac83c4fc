//! The crate's error type.

use crate::manifest::{Access, ManifestError};

/// Why a workload could not be run to completion.
///
/// A guest that exits with a non-zero code is *not* an error: see
/// [`RunOutcome::exit_code`](crate::RunOutcome::exit_code).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("module digest mismatch: manifest expects sha256 {expected}, module has {found}")]
    ModuleDigestMismatch { expected: String, found: String },
    #[error(
        "directory {guest}: expected a guest path declared in the manifest's dirs, found an undeclared one"
    )]
    UndeclaredDir { guest: String },
    #[error("directory {guest}: declared in the manifest but not mapped by the host")]
    MissingDir { guest: String },
    #[error("directory {guest}: mapped more than once")]
    DuplicateDir { guest: String },
    #[error("directory {guest}: expected access within {declared} as declared, found {requested}")]
    AccessExceedsManifest {
        guest: String,
        declared: Access,
        requested: Access,
    },
    #[error("directory {guest}: cannot open the host directory: {reason}")]
    HostDir { guest: String, reason: String },
    #[error("engine setup failed: {0}")]
    Engine(String),
    #[error("module does not compile: {0}")]
    Compile(String),
    #[error("module cannot be instantiated: {0}")]
    Instantiate(String),
    #[error("module has no `_start` function of type [] -> [] (expected a WASI command)")]
    NoEntryPoint,
    #[error("time limit exceeded: limit {limit_ms} ms, stopped after {elapsed_ms} ms")]
    TimeLimit { limit_ms: u64, elapsed_ms: u64 },
    #[error("memory limit exceeded: limit {limit_bytes} bytes, guest asked for {requested_bytes}")]
    MemoryLimit {
        limit_bytes: u64,
        requested_bytes: u64,
    },
    #[error("guest trapped: {reason}{}", if backtrace.is_empty() { String::new() } else { format!("\nwasm backtrace:\n{backtrace}") })]
    Trap { reason: String, backtrace: String },
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
}
