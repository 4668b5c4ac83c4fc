//! Runtime behaviour with small hand-written WASI modules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use enclava_runtime::{Access, Limits, Manifest, Runtime, RuntimeError, measure, module_sha256};

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().expect("engine"))
}

const GENEROUS: Limits = Limits {
    memory_bytes: 64 << 20,
    time_ms: 10_000,
};

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

fn manifest_for(module: &[u8], dirs: &[(&str, Access)]) -> Manifest {
    Manifest {
        name: "test".into(),
        module_sha256: module_sha256(module),
        args: vec![],
        env: BTreeMap::new(),
        dirs: dirs.iter().map(|(g, a)| (g.to_string(), *a)).collect(),
        keys: Default::default(),
        outputs: Default::default(),
        limits: GENEROUS,
    }
}

const WASI_IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
"#;

/// A module that `path_open`s `path` relative to preopen fd 3 with the given oflags and rights,
/// then writes "x" to the opened file when it opened, and exits with the errno (0 on success).
fn open_module(path: &str, oflags: u32, rights: u64) -> Vec<u8> {
    wasm(&format!(
        r#"(module {WASI_IMPORTS}
          (memory (export "memory") 1)
          (data (i32.const 64) "{path}")
          (data (i32.const 32) "x")
          (func (export "_start") (local $err i32)
            (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const {len})
               (i32.const {oflags}) (i64.const {rights}) (i64.const {rights}) (i32.const 0) (i32.const 0)))
            (if (i32.eqz (local.get $err))
              (then
                ;; iovec at 16: {{ptr 32, len 1}}, written count at 24
                (i32.store (i32.const 16) (i32.const 32))
                (i32.store (i32.const 20) (i32.const 1))
                (local.set $err (call $fd_write (i32.load (i32.const 0)) (i32.const 16) (i32.const 1) (i32.const 24)))))
            (call $proc_exit (local.get $err))))"#,
        len = path.len(),
    ))
}

const O_CREAT: u32 = 1;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;

#[test]
fn infinite_loop_hits_the_time_limit() {
    let m = wasm(r#"(module (func (export "_start") (loop $l (br $l))))"#);
    let mut man = manifest_for(&m, &[]);
    man.limits.time_ms = 200;
    let t0 = std::time::Instant::now();
    let err = runtime().run(&m, &man, &[], &GENEROUS).unwrap_err();
    let elapsed = t0.elapsed();
    match err {
        RuntimeError::TimeLimit {
            limit_ms: 200,
            elapsed_ms,
        } => assert!(elapsed_ms >= 200, "{elapsed_ms}"),
        other => panic!("expected TimeLimit, got {other:?}"),
    }
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "took {elapsed:?}"
    );
}

#[test]
fn host_limit_caps_the_manifest_limit() {
    let m = wasm(r#"(module (func (export "_start") (loop $l (br $l))))"#);
    let man = manifest_for(&m, &[]); // declares 10 s
    let host = Limits {
        memory_bytes: 64 << 20,
        time_ms: 100,
    };
    match runtime().run(&m, &man, &[], &host) {
        Err(RuntimeError::TimeLimit { limit_ms: 100, .. }) => {}
        other => panic!("expected TimeLimit at 100 ms, got {other:?}"),
    }
}

#[test]
fn growing_memory_beyond_the_limit_fails() {
    // 1 page initially; grow by 32 pages (2 MiB) with a 1 MiB limit.
    let m =
        wasm(r#"(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 32)))))"#);
    let mut man = manifest_for(&m, &[]);
    man.limits.memory_bytes = 1 << 20;
    match runtime().run(&m, &man, &[], &GENEROUS) {
        Err(RuntimeError::MemoryLimit {
            limit_bytes,
            requested_bytes,
        }) => {
            assert_eq!(limit_bytes, 1 << 20);
            assert_eq!(requested_bytes, 33 * 65536);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    // Within the limit the same growth succeeds.
    man.limits.memory_bytes = 4 << 20;
    let out = runtime().run(&m, &man, &[], &GENEROUS).unwrap();
    assert_eq!(out.exit_code, 0);
}

#[test]
fn initial_memory_beyond_the_limit_fails_at_instantiation() {
    let m = wasm(r#"(module (memory 64) (func (export "_start")))"#);
    let mut man = manifest_for(&m, &[]);
    man.limits.memory_bytes = 1 << 20;
    assert!(matches!(
        runtime().run(&m, &man, &[], &GENEROUS),
        Err(RuntimeError::MemoryLimit {
            requested_bytes: 4194304,
            ..
        })
    ));
}

#[test]
fn open_outside_preopen_fails_with_errno() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"s").unwrap();
    std::fs::write(inner.join("ok.txt"), b"fine").unwrap();
    let dirs = vec![(inner.clone(), "/data".to_string(), Access::ReadOnly)];

    // Positive control: a file inside the preopen opens (read-only rights).
    let m = wasm(&format!(
        r#"(module {WASI_IMPORTS}
          (memory (export "memory") 1)
          (data (i32.const 64) "ok.txt")
          (func (export "_start")
            (call $proc_exit (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 6)
               (i32.const 0) (i64.const {RIGHT_FD_READ}) (i64.const 0) (i32.const 0) (i32.const 0)))))"#
    ));
    let out = runtime()
        .run(
            &m,
            &manifest_for(&m, &[("/data", Access::ReadOnly)]),
            &dirs,
            &GENEROUS,
        )
        .unwrap();
    assert_eq!(out.exit_code, 0);

    for path in ["../secret.txt", "/etc/passwd", "../../../../etc/passwd"] {
        let m = wasm(&format!(
            r#"(module {WASI_IMPORTS}
              (memory (export "memory") 1)
              (data (i32.const 64) "{path}")
              (func (export "_start")
                (call $proc_exit (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const {})
                   (i32.const 0) (i64.const {RIGHT_FD_READ}) (i64.const 0) (i32.const 0) (i32.const 0)))))"#,
            path.len()
        ));
        let out = runtime()
            .run(
                &m,
                &manifest_for(&m, &[("/data", Access::ReadOnly)]),
                &dirs,
                &GENEROUS,
            )
            .unwrap();
        // ENOTCAPABLE (76) or EPERM (63); never success.
        assert!(
            [63, 76].contains(&out.exit_code),
            "{path}: errno {}",
            out.exit_code
        );
    }

    // Without any preopen there is no fd 3 at all: EBADF (8).
    let m = open_module("x", 0, RIGHT_FD_READ);
    let out = runtime()
        .run(&m, &manifest_for(&m, &[]), &[], &GENEROUS)
        .unwrap();
    assert_eq!(out.exit_code, 8);
}

#[test]
fn writing_into_a_read_only_dir_fails_and_read_write_succeeds() {
    let m = open_module("new.txt", O_CREAT, RIGHT_FD_READ | RIGHT_FD_WRITE);

    let ro = tempfile::tempdir().unwrap();
    let out = runtime()
        .run(
            &m,
            &manifest_for(&m, &[("/out", Access::ReadOnly)]),
            &[(ro.path().to_path_buf(), "/out".into(), Access::ReadOnly)],
            &GENEROUS,
        )
        .unwrap();
    assert_ne!(
        out.exit_code, 0,
        "creating a file in a read-only dir must fail"
    );
    assert!(!ro.path().join("new.txt").exists());

    // A read-write declaration mapped read-only by the host is still read-only.
    let out = runtime()
        .run(
            &m,
            &manifest_for(&m, &[("/out", Access::ReadWrite)]),
            &[(ro.path().to_path_buf(), "/out".into(), Access::ReadOnly)],
            &GENEROUS,
        )
        .unwrap();
    assert_ne!(out.exit_code, 0);
    assert!(!ro.path().join("new.txt").exists());

    let rw = tempfile::tempdir().unwrap();
    let out = runtime()
        .run(
            &m,
            &manifest_for(&m, &[("/out", Access::ReadWrite)]),
            &[(rw.path().to_path_buf(), "/out".into(), Access::ReadWrite)],
            &GENEROUS,
        )
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(std::fs::read(rw.path().join("new.txt")).unwrap(), b"x");
}

#[test]
fn existing_file_in_read_only_dir_cannot_be_opened_for_writing() {
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("data.csv"), b"original").unwrap();
    let m = open_module("data.csv", 0, RIGHT_FD_READ | RIGHT_FD_WRITE);
    let out = runtime()
        .run(
            &m,
            &manifest_for(&m, &[("/in", Access::ReadOnly)]),
            &[(ro.path().to_path_buf(), "/in".into(), Access::ReadOnly)],
            &GENEROUS,
        )
        .unwrap();
    assert_ne!(out.exit_code, 0);
    assert_eq!(
        std::fs::read(ro.path().join("data.csv")).unwrap(),
        b"original"
    );
}

#[test]
fn mappings_must_match_the_manifest() {
    let m = wasm(r#"(module (func (export "_start")))"#);
    let d = tempfile::tempdir().unwrap();
    let p: PathBuf = d.path().to_path_buf();
    let man = manifest_for(&m, &[("/in", Access::ReadOnly)]);
    let rt = runtime();
    assert!(matches!(
        rt.run(&m, &man, &[(p.clone(), "/other".into(), Access::ReadOnly)], &GENEROUS),
        Err(RuntimeError::UndeclaredDir { ref guest }) if guest == "/other"
    ));
    assert!(
        matches!(rt.run(&m, &man, &[], &GENEROUS), Err(RuntimeError::MissingDir { ref guest }) if guest == "/in")
    );
    assert!(matches!(
        rt.run(
            &m,
            &man,
            &[(p.clone(), "/in".into(), Access::ReadWrite)],
            &GENEROUS
        ),
        Err(RuntimeError::AccessExceedsManifest {
            declared: Access::ReadOnly,
            requested: Access::ReadWrite,
            ..
        })
    ));
    assert!(matches!(
        rt.run(
            &m,
            &man,
            &[
                (p.clone(), "/in".into(), Access::ReadOnly),
                (p.clone(), "/in".into(), Access::ReadOnly)
            ],
            &GENEROUS
        ),
        Err(RuntimeError::DuplicateDir { .. })
    ));
    assert!(matches!(
        rt.run(
            &m,
            &man,
            &[(p.join("missing"), "/in".into(), Access::ReadOnly)],
            &GENEROUS
        ),
        Err(RuntimeError::HostDir { .. })
    ));
    assert_eq!(
        rt.run(&m, &man, &[(p, "/in".into(), Access::ReadOnly)], &GENEROUS)
            .unwrap()
            .exit_code,
        0
    );
}

#[test]
fn module_must_match_the_manifest_digest() {
    let m = wasm(r#"(module (func (export "_start")))"#);
    let other = wasm(r#"(module (func (export "_start") nop))"#);
    let man = manifest_for(&other, &[]);
    match runtime().run(&m, &man, &[], &GENEROUS) {
        Err(RuntimeError::ModuleDigestMismatch { expected, found }) => {
            assert_eq!(expected, module_sha256(&other));
            assert_eq!(found, module_sha256(&m));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

#[test]
fn proc_exit_stdout_args_and_env_reach_the_guest() {
    // Writes argv[1] and the environment block to stdout, then exits 7.
    let m = wasm(
        r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        ;; args: count at 0, buf size at 4, pointers at 100, strings at 1000
        (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
        (drop (call $args_get (i32.const 100) (i32.const 1000)))
        ;; environ: count at 8, size at 12, pointers at 200, strings at 2000
        (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
        (drop (call $environ_get (i32.const 200) (i32.const 2000)))
        ;; iovecs at 300: all arg strings, then all env strings
        (i32.store (i32.const 300) (i32.const 1000))
        (i32.store (i32.const 304) (i32.load (i32.const 4)))
        (i32.store (i32.const 308) (i32.const 2000))
        (i32.store (i32.const 312) (i32.load (i32.const 12)))
        ;; p1 fd_write may write only the first iovec (a short write), so one call each.
        (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 400)))
        (drop (call $fd_write (i32.const 1) (i32.const 308) (i32.const 1) (i32.const 400)))
        (drop (call $fd_write (i32.const 2) (i32.const 300) (i32.const 1) (i32.const 400)))
        (call $proc_exit (i32.const 7))))"#,
    );
    let mut man = manifest_for(&m, &[]);
    man.args = vec!["--flag".into()];
    man.env = BTreeMap::from([("A".into(), "1".into()), ("B".into(), "two".into())]);
    // The exact stdout also shows that nothing of the host's environment is inherited.
    let out = runtime().run(&m, &man, &[], &GENEROUS).unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stdout, b"test\0--flag\0A=1\0B=two\0");
    assert_eq!(out.stderr, b"test\0--flag\0");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    assert_eq!(out.measurement, measure(&m, &man));
}

#[test]
fn traps_report_a_backtrace() {
    let m = wasm(
        r#"(module
      (func $inner (unreachable))
      (func $outer (call $inner))
      (func (export "_start") (call $outer)))"#,
    );
    let result = runtime().run(&m, &manifest_for(&m, &[]), &[], &GENEROUS);
    if let Err(e) = &result {
        eprintln!("{e}");
    }
    match result {
        Err(RuntimeError::Trap { reason, backtrace }) => {
            assert!(reason.contains("unreachable"), "{reason}");
            let inner = backtrace.find("inner").expect("inner frame");
            let outer = backtrace.find("outer").expect("outer frame");
            assert!(inner < outer, "{backtrace}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
}

#[test]
fn missing_start_and_unknown_imports_are_typed_errors() {
    let m = wasm(r#"(module (func (export "main")))"#);
    assert!(matches!(
        runtime().run(&m, &manifest_for(&m, &[]), &[], &GENEROUS),
        Err(RuntimeError::NoEntryPoint)
    ));
    let m = wasm(r#"(module (import "env" "socket" (func)) (func (export "_start")))"#);
    assert!(matches!(
        runtime().run(&m, &manifest_for(&m, &[]), &[], &GENEROUS),
        Err(RuntimeError::Instantiate(_))
    ));
    let bad = b"\0asm\x01\0\0\0\xff".to_vec();
    assert!(matches!(
        runtime().run(&bad, &manifest_for(&bad, &[]), &[], &GENEROUS),
        Err(RuntimeError::Compile(_))
    ));
}

#[test]
fn stdout_is_bounded() {
    // Writes 64 KiB 32 times (2 MiB) to stdout; capture keeps CAPTURE_LIMIT bytes.
    let m = wasm(
        r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "_start") (local $i i32)
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $l
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 32))))))"#,
    );
    let out = runtime()
        .run(&m, &manifest_for(&m, &[]), &[], &GENEROUS)
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), enclava_runtime::CAPTURE_LIMIT);
    assert!(out.stdout_truncated);
}

#[test]
fn compiled_modules_are_cached() {
    let rt = Runtime::new().unwrap();
    let m = wasm(r#"(module (func (export "_start") nop nop))"#);
    let man = manifest_for(&m, &[]);
    let first = rt.run(&m, &man, &[], &GENEROUS).unwrap();
    let second = rt.run(&m, &man, &[], &GENEROUS).unwrap();
    assert!(!first.cache_hit);
    assert!(second.cache_hit);
    assert_eq!(rt.cached_modules(), 1);
}

#[test]
fn measurement_changes_with_every_input() {
    let m = wasm(r#"(module (func (export "_start")))"#);
    let base = {
        let mut man = manifest_for(
            &m,
            &[("/in", Access::ReadOnly), ("/out", Access::ReadWrite)],
        );
        man.args = vec!["a".into()];
        man.env = BTreeMap::from([("K".into(), "v".into())]);
        man.keys = ["k1".to_string()].into();
        man.outputs = BTreeMap::from([("/out/o".into(), "r".into())]);
        man
    };
    let reference = measure(&m, &base);
    assert_eq!(reference, measure(&m, &base.clone()), "deterministic");

    // One byte of the module.
    for i in 0..m.len() {
        let mut m2 = m.clone();
        m2[i] ^= 1;
        assert_ne!(measure(&m2, &base), reference, "module byte {i}");
    }
    let mut longer = m.clone();
    longer.push(0);
    assert_ne!(measure(&longer, &base), reference);

    type Change = Box<dyn Fn(&mut Manifest)>;
    let variants: Vec<(&str, Change)> = vec![
        ("name", Box::new(|x| x.name.push('x'))),
        (
            "module_sha256",
            Box::new(|x| x.module_sha256 = "0".repeat(64)),
        ),
        ("args value", Box::new(|x| x.args[0] = "b".into())),
        ("args added", Box::new(|x| x.args.push(String::new()))),
        (
            "env value",
            Box::new(|x| {
                let _ = x.env.insert("K".into(), "w".into());
            }),
        ),
        (
            "env added",
            Box::new(|x| {
                let _ = x.env.insert("L".into(), String::new());
            }),
        ),
        (
            "dir access",
            Box::new(|x| {
                let _ = x.dirs.insert("/in".into(), Access::ReadWrite);
            }),
        ),
        (
            "dir added",
            Box::new(|x| {
                let _ = x.dirs.insert("/more".into(), Access::ReadOnly);
            }),
        ),
        (
            "keys",
            Box::new(|x| {
                let _ = x.keys.insert("k2".into());
            }),
        ),
        (
            "output recipient",
            Box::new(|x| {
                let _ = x.outputs.insert("/out/o".into(), "s".into());
            }),
        ),
        (
            "output added",
            Box::new(|x| {
                let _ = x.outputs.insert("/out/p".into(), "r".into());
            }),
        ),
        ("memory", Box::new(|x| x.limits.memory_bytes += 65536)),
        ("time", Box::new(|x| x.limits.time_ms += 1)),
    ];
    let mut seen = vec![reference];
    for (what, change) in variants {
        let mut man = base.clone();
        change(&mut man);
        let mm = measure(&m, &man);
        assert!(
            !seen.contains(&mm),
            "changing {what} must change the measurement"
        );
        seen.push(mm);
    }
    // Moving bytes between module and manifest is not a collision (length prefixes).
    assert_ne!(
        enclava_runtime::measure_canonical(b"ab", b"c"),
        enclava_runtime::measure_canonical(b"a", b"bc")
    );
}

#[test]
fn runtime_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Runtime>();
    let m = wasm(r#"(module (func (export "_start") nop nop nop))"#);
    let man = manifest_for(&m, &[]);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| runtime().run(&m, &man, &[], &GENEROUS)))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap().exit_code, 0);
        }
    });
}

#[test]
fn stack_overflow_is_a_trap_with_a_bounded_backtrace() {
    let m = wasm(
        r#"(module (func $recurse (call $recurse)) (func (export "_start") (call $recurse)))"#,
    );
    match runtime().run(&m, &manifest_for(&m, &[]), &[], &GENEROUS) {
        Err(RuntimeError::Trap { reason, backtrace }) => {
            assert!(reason.contains("stack"), "{reason}");
            assert!(backtrace.contains("more frames"), "{backtrace}");
            assert_eq!(
                backtrace.lines().count(),
                enclava_runtime::BACKTRACE_FRAMES + 1
            );
        }
        other => panic!("expected Trap, got {other:?}"),
    }
}
