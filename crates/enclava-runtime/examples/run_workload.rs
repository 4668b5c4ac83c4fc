//! Runs a WASI module under the Enclava host with an ad-hoc manifest (development aid).
//!
//! `cargo run -p enclava-runtime --example run_workload -- MODULE.wasm [HOST_DIR:GUEST_DIR[:rw]]... -- [ARGS]...`
//!
//! Directories are read-only unless suffixed `:rw`. Prints the guest's stdout/stderr and exits
//! with its exit code; limits: 2 GiB memory, 30 min.

use std::process::ExitCode;

use enclava_runtime::{Access, Limits, Manifest, Runtime, module_sha256};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(module_path) = args.next() else {
        eprintln!("usage: run_workload MODULE.wasm [HOST:GUEST[:rw]]... -- [ARGS]...");
        return ExitCode::from(2);
    };
    let mut dirs = Vec::new();
    for a in args.by_ref() {
        if a == "--" {
            break;
        }
        let mut parts = a.splitn(3, ':');
        let (Some(host), Some(guest)) = (parts.next(), parts.next()) else {
            eprintln!("expected HOST:GUEST[:rw], found `{a}`");
            return ExitCode::from(2);
        };
        let access = if parts.next() == Some("rw") {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        dirs.push((host.into(), guest.to_string(), access));
    }
    let module = match std::fs::read(&module_path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("reading {module_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let manifest = Manifest {
        name: "workload".into(),
        module_sha256: module_sha256(&module),
        args: args.collect(),
        env: Default::default(),
        dirs: dirs
            .iter()
            .map(|(_, g, a): &(std::path::PathBuf, String, Access)| (g.clone(), *a))
            .collect(),
        keys: Default::default(),
        outputs: Default::default(),
        limits: Limits {
            memory_bytes: 2 << 30,
            time_ms: 30 * 60 * 1000,
        },
    };
    let result = Runtime::new().and_then(|rt| rt.run(&module, &manifest, &dirs, &manifest.limits));
    match result {
        Ok(out) => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            eprintln!(
                "exit {} in {:?} (compile {:?}), measurement {}",
                out.exit_code,
                out.duration,
                out.compile_duration,
                enclava_runtime::measure(&module, &manifest)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            ExitCode::from(u8::try_from(out.exit_code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
