//! The build stamp of `scripts/build-workload.sh` against [`check_builds`]: the script and the
//! library compute the same source digest, and every way of pairing builds that did not come from
//! one source revision (stale baseline, module rebuilt alone, source edited since, wasm-only build,
//! no stamp) is refused with an error that names the file and the command that fixes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use enclava_runtime::{BUILD_COMMAND, StampError, check_builds, read_source_tree, source_digest};
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A workload source tree, a wasm and a native "build" and a stamp that vouches for them.
struct Fixture {
    _dir: tempfile::TempDir,
    source: PathBuf,
    wasm: PathBuf,
    native: PathBuf,
    stamp: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("workload");
        std::fs::create_dir_all(source.join("src")).unwrap();
        std::fs::create_dir_all(source.join(".cargo")).unwrap();
        std::fs::create_dir_all(source.join("target/release")).unwrap();
        std::fs::write(source.join("Cargo.toml"), "[package]\nname = \"w\"\n").unwrap();
        std::fs::write(source.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(source.join(".cargo/config.toml"), "# simd128\n").unwrap();
        let wasm = source.join("target/w.wasm");
        let native = source.join("target/release/w");
        std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(&native, b"native v1").unwrap();
        let stamp = source.join("target/enclava-workload.stamp");
        let f = Fixture {
            _dir: dir,
            source,
            wasm,
            native,
            stamp,
        };
        f.write_stamp(true);
        f
    }

    /// The stamp as the script writes it for the current source and builds.
    fn write_stamp(&self, with_native: bool) {
        let src = source_digest(&read_source_tree(&self.source).unwrap());
        let mut text = format!(
            "# written by scripts/build-workload.sh\nsource-sha256 {src}\nwasm-sha256 {}\n",
            sha(&std::fs::read(&self.wasm).unwrap())
        );
        if with_native {
            text += &format!(
                "native-sha256 {}\n",
                sha(&std::fs::read(&self.native).unwrap())
            );
        }
        text += "rustc rustc 1.95.0\n";
        std::fs::write(&self.stamp, text).unwrap();
    }

    fn check(&self) -> Result<enclava_runtime::CheckedBuilds, StampError> {
        check_builds(&self.wasm, &self.native, &self.source, &self.stamp)
    }
}

#[test]
fn builds_from_the_stamped_source_pass() {
    let f = Fixture::new();
    let ok = f.check().unwrap();
    assert_eq!(
        ok.stamp.native_sha256.as_deref(),
        Some(sha(b"native v1").as_str())
    );
    // Files under target/ (the builds themselves, the stamp) are not source: rebuilding does not
    // change the source digest.
    std::fs::write(f.source.join("target/other"), b"x").unwrap();
    assert!(f.check().is_ok());
}

#[test]
fn a_stale_native_baseline_is_refused() {
    let f = Fixture::new();
    // The baseline is replaced by one built from another revision after the stamp was written.
    std::fs::write(&f.native, b"native v0 (older source)").unwrap();
    let e = f.check().unwrap_err();
    assert!(
        matches!(&e, StampError::BuildMismatch { file, .. } if file == &f.native),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("the native baseline binary"), "{msg}");
    assert!(msg.contains(&sha(b"native v1")[..16]), "{msg}");
    assert!(
        msg.contains(&sha(b"native v0 (older source)")[..16]),
        "{msg}"
    );
    assert!(msg.contains(BUILD_COMMAND), "{msg}");
}

#[test]
fn a_module_rebuilt_alone_is_refused() {
    let f = Fixture::new();
    std::fs::write(&f.wasm, b"\0asm\x01\0\0\0\x00").unwrap();
    let e = f.check().unwrap_err();
    assert!(
        matches!(&e, StampError::BuildMismatch { file, what, .. }
            if file == &f.wasm && what.contains("wasm32")),
        "{e:?}"
    );
}

#[test]
fn a_source_edited_after_the_build_is_refused() {
    let f = Fixture::new();
    std::fs::write(f.source.join("src/main.rs"), "fn main() { loop {} }\n").unwrap();
    let e = f.check().unwrap_err();
    assert!(matches!(e, StampError::SourceChanged { .. }), "{e:?}");
    assert!(e.to_string().contains("changed since it was built"), "{e}");
    // A new source file counts as well (e.g. a module added to the workload).
    let f = Fixture::new();
    std::fs::write(f.source.join("src/extra.rs"), "\n").unwrap();
    assert!(matches!(
        f.check().unwrap_err(),
        StampError::SourceChanged { .. }
    ));
}

#[test]
fn a_wasm_only_stamp_does_not_vouch_for_an_old_baseline() {
    let f = Fixture::new();
    f.write_stamp(false);
    let e = f.check().unwrap_err();
    assert!(matches!(e, StampError::NoNativeInStamp { .. }), "{e:?}");
    assert!(e.to_string().contains("without --wasm-only"), "{e}");
}

#[test]
fn no_stamp_and_a_malformed_stamp_are_refused() {
    let f = Fixture::new();
    std::fs::remove_file(&f.stamp).unwrap();
    let e = f.check().unwrap_err();
    assert!(matches!(e, StampError::NoStamp { .. }), "{e:?}");
    assert!(e.to_string().contains(BUILD_COMMAND), "{e}");
    std::fs::write(&f.stamp, "source-sha256 nothex\n").unwrap();
    let e = f.check().unwrap_err();
    assert!(matches!(e, StampError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("found `nothex`"), "{e}");
}

#[test]
fn missing_builds_are_named_before_anything_else() {
    let f = Fixture::new();
    std::fs::remove_file(&f.native).unwrap();
    std::fs::remove_file(&f.stamp).unwrap();
    let e = f.check().unwrap_err();
    let StampError::Missing { files } = &e else {
        panic!("expected Missing, found {e:?}");
    };
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, f.native);
    assert!(
        e.to_string().contains("(the native baseline binary)"),
        "{e}"
    );
}

#[test]
fn the_script_and_the_library_agree_on_the_source_digest() {
    let script = repo().join("scripts/build-workload.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--source-digest")
        .output()
        .expect("run build-workload.sh --source-digest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_script = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let example = repo().join("examples/fraud-workload");
    let from_library = source_digest(&read_source_tree(&example).unwrap());
    assert_eq!(from_script, from_library);
    assert_eq!(from_library.len(), 64);
}

#[test]
fn the_real_builds_match_their_stamp_when_built() {
    // After `bash scripts/build-workload.sh` (scripts/test.sh runs it first) the real builds are
    // exactly what the bench accepts.
    let dir = repo().join("examples/fraud-workload");
    let stamp = dir.join("target").join(enclava_runtime::STAMP_FILE);
    if !stamp.exists() {
        eprintln!(
            "NOTICE: skipping: {} not written (run {BUILD_COMMAND})",
            stamp.display()
        );
        return;
    }
    let wasm = dir.join("target/wasm32-wasip1/release/fraud-workload.wasm");
    let native = dir.join("target/release/fraud-workload");
    match check_builds(&wasm, &native, &dir, &stamp) {
        Ok(_) => {}
        // A wasm-only build and a source edited since the build are legitimate states of a
        // checkout (the bench refuses them); a stamp that disagrees with the builds it just
        // wrote is a bug in the script.
        Err(e @ (StampError::NoNativeInStamp { .. } | StampError::SourceChanged { .. })) => {
            eprintln!("NOTICE: the builds are not current: {e}");
        }
        Err(e) => panic!("{e}"),
    }
}
