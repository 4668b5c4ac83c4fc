//! Where the real hardware vectors live (copied from enclava-evidence/tests/common). Tests read
//! them in place (never copied into the repo).
#![allow(dead_code)]

pub mod svc;

use std::path::PathBuf;

/// `../shared/vectors` beside the repository, or `$ENCLAVA_VECTORS`. In CI (CI=true) a missing folder
/// is a hard failure; elsewhere the test prints a notice and is skipped by returning `None`.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ENCLAVA_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
        });
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "test vectors not found at {} (CI=true: they must be present)",
            dir.display()
        );
    }
    eprintln!(
        "NOTICE: test vectors not found at {}; skipping",
        dir.display()
    );
    None
}

pub fn read(rel: &str) -> Option<Vec<u8>> {
    let dir = vectors_dir()?;
    let path = dir.join(rel);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}
