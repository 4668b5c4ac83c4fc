//! Where the tests find the recorded hardware evidence: `$ENCLAVA_VECTORS`, else `shared/vectors`
//! beside the repository. Vectors are never copied into the repository.
//!
//! Outside CI a missing vector directory skips the tests that need it (with a notice); with
//! `CI=true` it is a failure, so that CI can never pass by skipping.

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The vector directory, if present (see the crate docs for CI).
pub fn dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ENCLAVA_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
        });
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "test vectors not found at {} (CI=true: they must be present)",
        dir.display()
    );
    eprintln!(
        "NOTICE: test vectors not found at {}; skipping",
        dir.display()
    );
    None
}

/// The bytes of one vector file (`rel` inside the vector directory), if the directory is present.
/// A file missing from a present directory is a failure: the tests name only files that exist.
pub fn read(rel: &str) -> Option<Vec<u8>> {
    let p = dir()?.join(rel);
    Some(std::fs::read(&p).unwrap_or_else(|e| panic!("reading vector {}: {e}", p.display())))
}

pub mod layouts;
