//! The wasmtime host: runs a measured WASI preview 1 command with only its declared capabilities.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, Linker, Module, OptLevel, ResourceLimiter, Store, Trap, WasmBacktrace,
};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::error::RuntimeError;
use crate::manifest::{Access, Limits, Manifest};
use crate::measure::{MEASUREMENT_LEN, measure};
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
    /// The instantiation part of `duration` (linking WASI, memory and data segments); the rest
    /// is the guest's `_start`.
    pub instantiate_duration: Duration,
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

/// What a compiled module is cached under: the SHA-256 of the exact wasm bytes it was compiled
/// from (the digest the manifest names and the measurement covers) and a fingerprint of the
/// engine configuration that compiled it (wasmtime's own compatibility hash: target, Cranelift
/// flags, tunables). A changed module or a changed engine configuration is a different key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct CacheKey {
    module_sha256: [u8; 32],
    engine: [u8; 32],
}

/// One cached compilation and what it was compiled from, checked again on every hit so an entry
/// filed under the wrong key (or compiled by another engine) is never run.
struct CacheEntry {
    /// SHA-256 of the wasm bytes `module` was compiled from.
    source_sha256: [u8; 32],
    module: Module,
}

#[derive(Default)]
struct ModuleCache {
    modules: HashMap<CacheKey, CacheEntry>,
    order: VecDeque<CacheKey>,
}

impl ModuleCache {
    /// The entry for `key` if it is sound for `engine`; an unsound entry is evicted.
    fn get(&mut self, key: &CacheKey, engine: &Engine) -> Option<Module> {
        let entry = self.modules.get(key)?;
        if entry.source_sha256 == key.module_sha256 && Engine::same(entry.module.engine(), engine) {
            return Some(entry.module.clone());
        }
        self.modules.remove(key);
        self.order.retain(|k| k != key);
        None
    }

    fn insert(&mut self, key: CacheKey, entry: CacheEntry) {
        if self.modules.contains_key(&key) {
            return;
        }
        while self.order.len() >= MODULE_CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.modules.remove(&old);
            }
        }
        self.order.push_back(key);
        self.modules.insert(key, entry);
    }
}

/// Feeds wasmtime's engine compatibility hash into SHA-256 (a `Hasher` only yields 64 bits).
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        // Unused: the full digest is taken with `finalize` instead.
        0
    }
}

/// SHA-256 fingerprint of everything in `engine`'s configuration that affects compiled code.
fn engine_fingerprint(engine: &Engine) -> [u8; 32] {
    use std::hash::Hash;
    let mut h = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().into()
}

/// Code-generation settings of a [`Runtime`]'s engine. [`RuntimeOptions::default`] is what
/// [`Runtime::new`] uses; the other settings exist for measurement and for tests that check a
/// changed configuration never reuses code compiled under another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Cranelift optimisation: `true` for `speed` (the default), `false` for none.
    pub optimize: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { optimize: true }
    }
}

/// The wasm host. Cheap to share (`&Runtime` is enough to run); compiled modules are cached in
/// memory, keyed by the SHA-256 of the module bytes and the engine configuration, so repeated
/// runs of the same module do not recompile ([`Runtime::shared`] shares one cache per process).
///
/// The cache is in memory only, on purpose: every wasmtime 48 API that loads compiled code from
/// bytes or a file (`Module::deserialize*`, `Module::from_trusted_file`) is `unsafe` (it maps
/// whatever the bytes say as executable code), and the project forbids `unsafe`. Wasmtime's
/// built-in on-disk cache (`Config::cache`, the `cache` feature) would hide the same trust in its
/// cache directory: a tampered entry would run as native code outside the measurement.
pub struct Runtime {
    engine: Engine,
    /// WASI preview 1 imports, and nothing else.
    linker: Linker<State>,
    /// SHA-256 of the engine's code-generation configuration (part of every cache key).
    engine_fingerprint: [u8; 32],
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
    /// threads (not compiled in), no on-disk cache (see [`Runtime`]); and its epoch ticker thread.
    pub fn new() -> Result<Runtime, RuntimeError> {
        Runtime::with_options(RuntimeOptions::default())
    }

    /// One runtime per process, created on first use: its compiled-module cache then serves every
    /// run in the process (a runtime per run would recompile the module every time).
    pub fn shared() -> Result<&'static Runtime, RuntimeError> {
        static SHARED: OnceLock<Runtime> = OnceLock::new();
        if let Some(rt) = SHARED.get() {
            return Ok(rt);
        }
        let rt = Runtime::new()?;
        // A concurrent first use may have won the race; either runtime is equivalent.
        let _ = SHARED.set(rt);
        SHARED
            .get()
            .ok_or_else(|| RuntimeError::Engine("the shared runtime was not initialised".into()))
    }

    /// [`Runtime::new`] with other code-generation settings.
    pub fn with_options(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .cranelift_opt_level(if options.optimize {
                OptLevel::Speed
            } else {
                OptLevel::None
            })
            .relaxed_simd_deterministic(true)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES + 1));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(err_text(&e)))?;
        let mut linker: Linker<State> = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(|e| RuntimeError::Engine(err_text(&e)))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Runtime {
            engine_fingerprint: engine_fingerprint(&engine),
            engine,
            linker,
            cache: Mutex::new(ModuleCache::default()),
            _ticker: ticker,
        })
    }

    /// Number of compiled modules currently cached.
    pub fn cached_modules(&self) -> usize {
        self.lock_cache().modules.len()
    }

    /// Compiles `module` into the cache now (e.g. when it is measured), so its first run does not
    /// pay for compilation. Returns the module's SHA-256 (lowercase hex) and whether it was
    /// already cached.
    pub fn precompile(&self, module: &[u8]) -> Result<(String, bool), RuntimeError> {
        let digest: [u8; 32] = Sha256::digest(module).into();
        let (_, hit, _) = self.module(digest, module)?;
        Ok((hex::encode(digest), hit))
    }

    /// The compiled module for `bytes` whose SHA-256 is `digest`, compiling on a miss.
    fn module(
        &self,
        digest: [u8; 32],
        bytes: &[u8],
    ) -> Result<(Module, bool, Duration), RuntimeError> {
        let key = CacheKey {
            module_sha256: digest,
            engine: self.engine_fingerprint,
        };
        if let Some(m) = self.lock_cache().get(&key, &self.engine) {
            return Ok((m, true, Duration::ZERO));
        }
        // Compiled outside the lock: a long compilation must not stall runs of other modules.
        let t0 = Instant::now();
        let module =
            Module::new(&self.engine, bytes).map_err(|e| RuntimeError::Compile(err_text(&e)))?;
        let took = t0.elapsed();
        self.lock_cache().insert(
            key,
            CacheEntry {
                source_sha256: digest,
                module: module.clone(),
            },
        );
        Ok((module, false, took))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ModuleCache> {
        // The cache holds no invariant a panicking holder could break half-way (entries are
        // re-checked on every hit), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
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
        // The digest of the bytes that run: it selects the cached compilation, so the code that
        // runs is always compiled from exactly the bytes the measurement covers.
        let digest_bytes: [u8; 32] = Sha256::digest(module).into();
        let digest = hex::encode(digest_bytes);
        if digest != manifest.module_sha256 {
            return Err(RuntimeError::ModuleDigestMismatch {
                expected: manifest.module_sha256.clone(),
                found: digest,
            });
        }
        Self::check_dirs(manifest, dirs)?;
        let limits = manifest.limits.min(*host_limits);
        let measurement = measure(module, manifest);
        let (compiled, cache_hit, compile_duration) = self.module(digest_bytes, module)?;

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
        let instantiated = self.linker.instantiate(&mut store, &compiled);
        let instantiate_duration = started.elapsed();
        let result = match instantiated {
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
            instantiate_duration,
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

    use crate::manifest::Manifest;

    /// A WASI command that writes `text` (ASCII, no quotes) to stdout.
    fn printer(text: &str) -> Vec<u8> {
        let wat = format!(
            r#"(module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 64) "{text}")
              (func (export "_start")
                (i32.store (i32.const 0) (i32.const 64))
                (i32.store (i32.const 4) (i32.const {len}))
                (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
            len = text.len()
        );
        wat::parse_str(&wat).expect("valid WAT")
    }

    fn manifest(module: &[u8]) -> Manifest {
        Manifest {
            name: "t".into(),
            module_sha256: crate::module_sha256(module),
            args: vec![],
            env: Default::default(),
            dirs: Default::default(),
            keys: Default::default(),
            outputs: Default::default(),
            limits: Limits {
                memory_bytes: 16 << 20,
                time_ms: 10_000,
            },
        }
    }

    fn run(rt: &Runtime, module: &[u8]) -> RunOutcome {
        let m = manifest(module);
        rt.run(module, &m, &[], &m.limits).expect("runs")
    }

    fn key_of(rt: &Runtime, module: &[u8]) -> CacheKey {
        CacheKey {
            module_sha256: Sha256::digest(module).into(),
            engine: rt.engine_fingerprint,
        }
    }

    #[test]
    fn an_entry_compiled_from_other_bytes_is_rejected_not_run() {
        let rt = Runtime::new().unwrap();
        let (a, b) = (printer("AAAA"), printer("BBBB"));
        // A corrupt entry: module B's code filed under module A's key.
        let planted = Module::new(&rt.engine, &b).unwrap();
        rt.lock_cache().insert(
            key_of(&rt, &a),
            CacheEntry {
                source_sha256: Sha256::digest(&b).into(),
                module: planted,
            },
        );
        let out = run(&rt, &a);
        assert!(!out.cache_hit, "the planted entry must not count as a hit");
        assert_eq!(out.stdout, b"AAAA", "module A's own code must run");
        // The bad entry was replaced by A's own compilation, which now hits.
        let again = run(&rt, &a);
        assert!(again.cache_hit);
        assert_eq!(again.stdout, b"AAAA");
    }

    #[test]
    fn an_entry_compiled_by_another_engine_configuration_is_rejected() {
        let fast = Runtime::new().unwrap();
        let plain = Runtime::with_options(RuntimeOptions { optimize: false }).unwrap();
        assert_ne!(
            fast.engine_fingerprint, plain.engine_fingerprint,
            "the optimisation level must change the engine fingerprint"
        );
        let a = printer("AAAA");
        // Compiled under the other configuration but filed under this engine's key.
        let stale = Module::new(&plain.engine, &a).unwrap();
        fast.lock_cache().insert(
            key_of(&fast, &a),
            CacheEntry {
                source_sha256: Sha256::digest(&a).into(),
                module: stale,
            },
        );
        let out = run(&fast, &a);
        assert!(
            !out.cache_hit,
            "a module from another engine must be recompiled"
        );
        assert_eq!(out.stdout, b"AAAA");
        assert!(run(&fast, &a).cache_hit);
        // And the key itself differs between configurations, so one cache can never confuse them.
        assert_ne!(key_of(&fast, &a), key_of(&plain, &a));
    }

    #[test]
    fn a_changed_module_is_compiled_afresh() {
        let rt = Runtime::new().unwrap();
        let a = printer("AAAA");
        let mut b = a.clone();
        // Same length, one byte of the data segment changed.
        let at = b.windows(4).position(|w| w == b"AAAA").unwrap();
        b[at] = b'B';
        assert!(run(&rt, &a).stdout == b"AAAA");
        let out = run(&rt, &b);
        assert!(!out.cache_hit);
        assert_eq!(out.stdout, b"BAAA");
        assert_eq!(rt.cached_modules(), 2);
    }

    #[test]
    fn precompile_makes_the_first_run_a_hit() {
        let rt = Runtime::new().unwrap();
        let a = printer("AAAA");
        let (digest, was_cached) = rt.precompile(&a).unwrap();
        assert_eq!(digest, crate::module_sha256(&a));
        assert!(!was_cached);
        assert!(rt.precompile(&a).unwrap().1);
        let out = run(&rt, &a);
        assert!(out.cache_hit);
        assert_eq!(out.compile_duration, Duration::ZERO);
        assert_eq!(out.stdout, b"AAAA");
    }

    #[test]
    fn the_shared_runtime_is_one_instance() {
        let a = Runtime::shared().unwrap();
        let b = Runtime::shared().unwrap();
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn deadline_covers_the_limit() {
        assert_eq!(deadline_ticks(1), 2);
        assert_eq!(deadline_ticks(10), 2);
        assert_eq!(deadline_ticks(11), 3);
        assert_eq!(deadline_ticks(u64::MAX), u64::MAX.div_ceil(10) + 1);
    }
}
