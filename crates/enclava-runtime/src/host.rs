//! The wasmtime host: runs a measured WASI preview 1 command with only its declared capabilities.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, Linker, Module, OptLevel, ResourceLimiter, Store, Trap, WasmBacktrace,
};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::error::RuntimeError;
use crate::manifest::{Access, Limits, Manifest};
use crate::measure::{MEASUREMENT_LEN, measure, module_sha256};
use crate::pipe::BoundedPipe;

/// How often the epoch ticker advances the engine's epoch (the time-limit granularity).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of stdout and of stderr kept per run; the rest is dropped and flagged.
pub const CAPTURE_LIMIT: usize = 1024 * 1024;
/// Compiled modules kept in memory.
pub const MODULE_CACHE_ENTRIES: usize = 16;
/// Table elements a guest may grow its tables to.
pub const TABLE_ELEMENTS_MAX: usize = 1 << 20;
/// Backtrace frames kept in a [`RuntimeError::Trap`].
pub const BACKTRACE_FRAMES: usize = 16;

/// A directory the host maps for one run: host path, guest path, access.
pub type DirMapping = (PathBuf, String, Access);

/// What a completed run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// 0 when `_start` returned, `n` after `proc_exit(n)`.
    pub exit_code: i32,
    /// Captured stdout, at most [`CAPTURE_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    pub stdout_truncated: bool,
    /// Captured stderr, at most [`CAPTURE_LIMIT`] bytes.
    pub stderr: Vec<u8>,
    pub stderr_truncated: bool,
    /// Wall-clock time of instantiation and execution (the quantity `time_ms` limits).
    pub duration: Duration,
    /// Time spent compiling the module (zero on a cache hit).
    pub compile_duration: Duration,
    /// Whether the compiled module came from the in-memory cache.
    pub cache_hit: bool,
    /// The limits that were enforced (manifest limits capped by the host's).
    pub limits: Limits,
    /// [`measure`] of the module and manifest that ran.
    pub measurement: [u8; MEASUREMENT_LEN],
}

/// Memory/table limiter that remembers why it refused.
struct Limiter {
    memory_bytes: usize,
    refused_memory: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.refused_memory = Some(desired);
            // An error (not `Ok(false)`) traps at the `memory.grow`, so the run ends with a typed
            // MemoryLimit error instead of a guest allocator's abort later on.
            return Err(wasmtime::format_err!("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        4
    }
    fn memories(&self) -> usize {
        1
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Instantiate,
    Run,
}

struct State {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

/// Advances the engine epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Ticker, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("enclava-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Ticker {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[derive(Default)]
struct ModuleCache {
    modules: HashMap<String, Module>,
    order: VecDeque<String>,
}

/// The wasm host. Cheap to share (`&Runtime` is enough to run); compiled modules are cached in
/// memory by SHA-256 so repeated runs of the same module do not recompile.
pub struct Runtime {
    engine: Engine,
    /// WASI preview 1 imports, and nothing else.
    linker: Linker<State>,
    cache: Mutex<ModuleCache>,
    _ticker: Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// Epoch ticks that cover at least `time_ms`: the deadline fires between `time_ms` and
/// `time_ms + 2 ticks`.
fn deadline_ticks(time_ms: u64) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1) as u64;
    time_ms.div_ceil(tick).saturating_add(1)
}

fn err_text(e: &wasmtime::Error) -> String {
    // `{:#}`-style chain without the backtrace, which is reported separately.
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !s.is_empty()
            && !s.starts_with("error while executing at wasm backtrace")
            && !parts.contains(&s)
        {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn backtrace_summary(e: &wasmtime::Error) -> String {
    let Some(bt) = e.downcast_ref::<WasmBacktrace>() else {
        return String::new();
    };
    let frames = bt.frames();
    let mut out: Vec<String> = frames
        .iter()
        .take(BACKTRACE_FRAMES)
        .enumerate()
        .map(|(i, f)| {
            let name = f.func_name().unwrap_or("<unnamed>");
            format!("  {i:>2}: func[{}] {name}", f.func_index())
        })
        .collect();
    if frames.len() > BACKTRACE_FRAMES {
        // Wasmtime collects at most BACKTRACE_FRAMES + 1 frames, so the true depth is unknown.
        out.push("  … (more frames)".to_string());
    }
    out.join("\n")
}

impl Runtime {
    /// An engine with Cranelift at `speed`, epoch interruption, deterministic relaxed SIMD, no
    /// threads (not compiled in), no on-disk cache; and its epoch ticker thread.
    pub fn new() -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .relaxed_simd_deterministic(true)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES + 1));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(err_text(&e)))?;
        let mut linker: Linker<State> = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(|e| RuntimeError::Engine(err_text(&e)))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Runtime {
            engine,
            linker,
            cache: Mutex::new(ModuleCache::default()),
            _ticker: ticker,
        })
    }

    /// Number of compiled modules currently cached.
    pub fn cached_modules(&self) -> usize {
        self.cache.lock().map(|c| c.modules.len()).unwrap_or(0)
    }

    /// The compiled module for `bytes` whose SHA-256 is `digest`, compiling on a miss.
    fn module(&self, digest: &str, bytes: &[u8]) -> Result<(Module, bool, Duration), RuntimeError> {
        if let Ok(cache) = self.cache.lock()
            && let Some(m) = cache.modules.get(digest)
        {
            return Ok((m.clone(), true, Duration::ZERO));
        }
        let t0 = Instant::now();
        let module =
            Module::new(&self.engine, bytes).map_err(|e| RuntimeError::Compile(err_text(&e)))?;
        let took = t0.elapsed();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.modules.contains_key(digest) {
            while cache.order.len() >= MODULE_CACHE_ENTRIES {
                if let Some(old) = cache.order.pop_front() {
                    cache.modules.remove(&old);
                }
            }
            cache.order.push_back(digest.to_owned());
            cache.modules.insert(digest.to_owned(), module.clone());
        }
        Ok((module, false, took))
    }

    /// Checks the host's mappings against the manifest: every declared directory mapped exactly
    /// once, nothing undeclared, access no wider than declared.
    fn check_dirs(manifest: &Manifest, dirs: &[DirMapping]) -> Result<(), RuntimeError> {
        let mut seen = std::collections::BTreeSet::new();
        for (_, guest, access) in dirs {
            let Some(declared) = manifest.dirs.get(guest) else {
                return Err(RuntimeError::UndeclaredDir {
                    guest: guest.clone(),
                });
            };
            if !seen.insert(guest.as_str()) {
                return Err(RuntimeError::DuplicateDir {
                    guest: guest.clone(),
                });
            }
            if !access.within(*declared) {
                return Err(RuntimeError::AccessExceedsManifest {
                    guest: guest.clone(),
                    declared: *declared,
                    requested: *access,
                });
            }
        }
        if let Some(missing) = manifest.dirs.keys().find(|g| !seen.contains(g.as_str())) {
            return Err(RuntimeError::MissingDir {
                guest: missing.clone(),
            });
        }
        Ok(())
    }

    /// Runs `module` (a WASI preview 1 command) as `manifest` describes.
    ///
    /// * `dirs`: the host directories behind the manifest's guest paths (each declared path exactly
    ///   once, access within the declaration; they are the guest's only preopens).
    /// * `host_limits`: the host's caps; the enforced limits are the tighter of these and the
    ///   manifest's.
    ///
    /// The guest gets `argv = [name, args...]`, exactly the manifest's environment, an empty stdin,
    /// captured stdout/stderr, the preopens, and nothing else (WASI p1 has no sockets).
    pub fn run(
        &self,
        module: &[u8],
        manifest: &Manifest,
        dirs: &[DirMapping],
        host_limits: &Limits,
    ) -> Result<RunOutcome, RuntimeError> {
        manifest.validate()?;
        let digest = module_sha256(module);
        if digest != manifest.module_sha256 {
            return Err(RuntimeError::ModuleDigestMismatch {
                expected: manifest.module_sha256.clone(),
                found: digest,
            });
        }
        Self::check_dirs(manifest, dirs)?;
        let limits = manifest.limits.min(*host_limits);
        let measurement = measure(module, manifest);
        let (compiled, cache_hit, compile_duration) = self.module(&digest, module)?;

        let stdout = BoundedPipe::new(CAPTURE_LIMIT);
        let stderr = BoundedPipe::new(CAPTURE_LIMIT);
        let mut builder = WasiCtxBuilder::new();
        builder
            .allow_blocking_current_thread(true)
            .arg(&manifest.name)
            .args(&manifest.args)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        for (k, v) in &manifest.env {
            builder.env(k, v);
        }
        for (host, guest, access) in dirs {
            let perms = match access {
                Access::ReadOnly => FsPerms::ReadOnly,
                Access::ReadWrite => FsPerms::ReadWrite,
            };
            builder
                .preopened_dir(host, guest, perms)
                .map_err(|e| RuntimeError::HostDir {
                    guest: guest.clone(),
                    reason: err_text(&e),
                })?;
        }
        let state = State {
            wasi: builder.build_p1(),
            limiter: Limiter {
                memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                refused_memory: None,
            },
        };

        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();

        let started = Instant::now();
        store.set_epoch_deadline(deadline_ticks(limits.time_ms));
        let result = match self.linker.instantiate(&mut store, &compiled) {
            Err(e) => Err((e, Stage::Instantiate)),
            Ok(instance) => match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Err(_) => return Err(RuntimeError::NoEntryPoint),
                Ok(start) => start.call(&mut store, ()).map_err(|e| (e, Stage::Run)),
            },
        };
        let duration = started.elapsed();

        let exit_code = match result {
            Ok(()) => 0,
            Err((e, stage)) => {
                if let Some(requested) = store.data().limiter.refused_memory {
                    return Err(RuntimeError::MemoryLimit {
                        limit_bytes: limits.memory_bytes,
                        requested_bytes: requested as u64,
                    });
                }
                if let Some(I32Exit(code)) = e.downcast_ref::<I32Exit>() {
                    *code
                } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    return Err(RuntimeError::TimeLimit {
                        limit_ms: limits.time_ms,
                        elapsed_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                    });
                } else if stage == Stage::Instantiate && e.downcast_ref::<WasmBacktrace>().is_none()
                {
                    // Link errors (e.g. an import the host does not provide) carry no backtrace.
                    return Err(RuntimeError::Instantiate(err_text(&e)));
                } else {
                    return Err(RuntimeError::Trap {
                        reason: err_text(&e),
                        backtrace: backtrace_summary(&e),
                    });
                }
            }
        };
        drop(store);
        let (stdout, stdout_truncated) = stdout.take();
        let (stderr, stderr_truncated) = stderr.take();
        Ok(RunOutcome {
            exit_code,
            stdout,
            stdout_truncated,
            stderr,
            stderr_truncated,
            duration,
            compile_duration,
            cache_hit,
            limits,
            measurement,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_covers_the_limit() {
        assert_eq!(deadline_ticks(1), 2);
        assert_eq!(deadline_ticks(10), 2);
        assert_eq!(deadline_ticks(11), 3);
        assert_eq!(deadline_ticks(u64::MAX), u64::MAX.div_ceil(10) + 1);
    }
}
