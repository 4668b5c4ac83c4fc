//! The build stamp that ties the two builds of a benchmark workload to one source revision.
//!
//! `scripts/build-workload.sh` builds the example workload twice from the same source (the wasm32
//! module and the native baseline) and then writes a stamp next to them:
//!
//! ```text
//! source-sha256 <hex>   digest of the workload's source tree (see below)
//! wasm-sha256 <hex>     SHA-256 of the module it built
//! native-sha256 <hex>   SHA-256 of the native binary it built (absent after --wasm-only)
//! rustc <version line>  informational
//! ```
//!
//! The source digest is what `sha256sum` computes in the script, so both sides agree without
//! either depending on the other: every regular file under the source directory except the
//! top-level `target/`, by relative path (`/`-separated, sorted bytewise), one line
//! `"<sha256 hex>  <path>\n"` each, and SHA-256 over the concatenated lines.
//!
//! `enclava bench workload` recomputes the source digest and the digests of the two files it is
//! about to compare and refuses to run unless all three match one stamp: a baseline built from an
//! older source, a module rebuilt alone, or a source edited since the build would otherwise be
//! compared as if they were the same program.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// File name of the stamp inside the workload's `target/` directory.
pub const STAMP_FILE: &str = "enclava-workload.stamp";

/// The one command that builds both and writes the stamp (run from the repository root).
pub const BUILD_COMMAND: &str = "bash scripts/build-workload.sh";

/// A parsed build stamp. Digests are lowercase hex as written by `sha256sum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStamp {
    pub source_sha256: String,
    pub wasm_sha256: String,
    /// `None` when the script ran with `--wasm-only`.
    pub native_sha256: Option<String>,
    /// `rustc -V` of the build, for the report.
    pub rustc: Option<String>,
}

/// Why the builds cannot be compared. Every message names the file, what was expected and what
/// was found, and ends with the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampError {
    /// One or both builds do not exist.
    Missing { files: Vec<(PathBuf, &'static str)> },
    /// No stamp next to the builds (built by hand or by an older script).
    NoStamp { stamp: PathBuf },
    /// The stamp is not in the format above.
    Malformed { stamp: PathBuf, reason: String },
    /// The source tree changed after the builds.
    SourceChanged {
        source: PathBuf,
        stamped: String,
        found: String,
    },
    /// A build is not the one the stamp records (rebuilt alone, or from another revision).
    BuildMismatch {
        what: &'static str,
        file: PathBuf,
        stamped: String,
        found: String,
    },
    /// The stamp records no native build (`build-workload.sh --wasm-only`).
    NoNativeInStamp { stamp: PathBuf },
    /// Reading the source tree or a build failed.
    Io { what: String, reason: String },
}

fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StampError::Missing { files } => {
                let list: Vec<String> = files
                    .iter()
                    .map(|(p, what)| format!("{} ({what})", p.display()))
                    .collect();
                write!(
                    f,
                    "not found: {}. Build both from the repository root with `{BUILD_COMMAND}` \
                     (it writes examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm, \
                     examples/fraud-workload/target/release/fraud-workload and the build stamp), \
                     then run `enclava bench workload` from the repository root, or pass --wasm FILE, \
                     --native FILE, --source DIR and --stamp FILE",
                    list.join(" and ")
                )
            }
            StampError::NoStamp { stamp } => write!(
                f,
                "no build stamp at {}: nothing shows that the wasm module and the native baseline \
                 were built from the same source; rebuild both with `{BUILD_COMMAND}`",
                stamp.display()
            ),
            StampError::Malformed { stamp, reason } => write!(
                f,
                "build stamp {}: {reason}; rebuild both with `{BUILD_COMMAND}`",
                stamp.display()
            ),
            StampError::SourceChanged {
                source,
                stamped,
                found,
            } => write!(
                f,
                "the workload source in {} changed since it was built (source digest: expected \
                 {}…, found {}…); rebuild both with `{BUILD_COMMAND}`",
                source.display(),
                short(stamped),
                short(found)
            ),
            StampError::BuildMismatch {
                what,
                file,
                stamped,
                found,
            } => write!(
                f,
                "{} ({what}) is not the build the stamp records (SHA-256: expected {}…, found \
                 {}…): it was rebuilt alone or comes from another revision; rebuild both with \
                 `{BUILD_COMMAND}`",
                file.display(),
                short(stamped),
                short(found)
            ),
            StampError::NoNativeInStamp { stamp } => write!(
                f,
                "build stamp {} records no native baseline (built with --wasm-only); rebuild \
                 both with `{BUILD_COMMAND}` (without --wasm-only)",
                stamp.display()
            ),
            StampError::Io { what, reason } => write!(f, "{what}: {reason}"),
        }
    }
}

impl std::error::Error for StampError {}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a stamp (pure). Unknown keys are refused, so a stamp from a newer script is not half
/// understood; a repeated key is refused too.
pub fn parse_stamp(text: &str) -> Result<BuildStamp, String> {
    let (mut source, mut wasm, mut native, mut rustc) = (None, None, None, None);
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: expected `KEY VALUE`, found `{line}`", i + 1))?;
        let slot = match key {
            "source-sha256" => &mut source,
            "wasm-sha256" => &mut wasm,
            "native-sha256" => &mut native,
            "rustc" => &mut rustc,
            other => return Err(format!("line {}: unknown key `{other}`", i + 1)),
        };
        if key != "rustc" && !is_hex_digest(value) {
            return Err(format!(
                "line {}: {key}: expected 64 lowercase hex digits, found `{value}`",
                i + 1
            ));
        }
        if slot.replace(value.to_string()).is_some() {
            return Err(format!("line {}: {key} given twice", i + 1));
        }
    }
    Ok(BuildStamp {
        source_sha256: source.ok_or("expected a source-sha256 line, found none")?,
        wasm_sha256: wasm.ok_or("expected a wasm-sha256 line, found none")?,
        native_sha256: native,
        rustc,
    })
}

/// The source digest over `(relative path, file SHA-256)` pairs (pure; any order in, sorted here).
pub fn source_digest(files: &[(String, [u8; 32])]) -> String {
    let mut sorted: Vec<&(String, [u8; 32])> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    for (path, digest) in sorted {
        h.update(hex::encode(digest));
        h.update(b"  ");
        h.update(path.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn io(what: impl Into<String>, e: std::io::Error) -> StampError {
    StampError::Io {
        what: what.into(),
        reason: e.to_string(),
    }
}

fn file_sha256(path: &Path) -> Result<[u8; 32], StampError> {
    let bytes = std::fs::read(path).map_err(|e| io(format!("reading {}", path.display()), e))?;
    Ok(Sha256::digest(&bytes).into())
}

/// Every regular file under `dir` except the top-level `target/` (symbolic links are skipped, as
/// `find -type f` does), with its SHA-256.
pub fn read_source_tree(dir: &Path) -> Result<Vec<(String, [u8; 32])>, StampError> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<(String, [u8; 32])>) -> Result<(), StampError> {
        let here = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let entries =
            std::fs::read_dir(&here).map_err(|e| io(format!("reading {}", here.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(format!("reading {}", here.display()), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(StampError::Io {
                    what: format!("reading {}", here.display()),
                    reason: format!("expected UTF-8 file names, found {name:?}"),
                });
            };
            if name.contains(['\\', '\n']) {
                // sha256sum escapes such names, so the two digests would disagree silently.
                return Err(StampError::Io {
                    what: format!("reading {}", here.display()),
                    reason: format!("unsupported file name {name:?} (backslash or newline)"),
                });
            }
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if path == "target" {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| io(format!("reading {}", entry.path().display()), e))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                out.push((path, file_sha256(&entry.path())?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    Ok(out)
}

/// What [`check_builds`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBuilds {
    pub stamp: BuildStamp,
}

/// Checks that `wasm` and `native` exist, that `stamp` records both, and that the source in
/// `source` is still what they were built from.
pub fn check_builds(
    wasm: &Path,
    native: &Path,
    source: &Path,
    stamp: &Path,
) -> Result<CheckedBuilds, StampError> {
    let files: Vec<(PathBuf, &'static str)> = [
        (wasm, "the wasm32-wasip1 module"),
        (native, "the native baseline binary"),
    ]
    .into_iter()
    .filter(|(p, _)| !p.is_file())
    .map(|(p, what)| (p.to_path_buf(), what))
    .collect();
    if !files.is_empty() {
        return Err(StampError::Missing { files });
    }
    let text = match std::fs::read_to_string(stamp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StampError::NoStamp {
                stamp: stamp.to_path_buf(),
            });
        }
        Err(e) => return Err(io(format!("reading {}", stamp.display()), e)),
    };
    let parsed = parse_stamp(&text).map_err(|reason| StampError::Malformed {
        stamp: stamp.to_path_buf(),
        reason,
    })?;
    let Some(native_stamped) = parsed.native_sha256.clone() else {
        return Err(StampError::NoNativeInStamp {
            stamp: stamp.to_path_buf(),
        });
    };
    let found = source_digest(&read_source_tree(source)?);
    if found != parsed.source_sha256 {
        return Err(StampError::SourceChanged {
            source: source.to_path_buf(),
            stamped: parsed.source_sha256,
            found,
        });
    }
    for (file, what, stamped) in [
        (wasm, "the wasm32-wasip1 module", &parsed.wasm_sha256),
        (native, "the native baseline binary", &native_stamped),
    ] {
        let found = hex::encode(file_sha256(file)?);
        if found != *stamped {
            return Err(StampError::BuildMismatch {
                what,
                file: file.to_path_buf(),
                stamped: stamped.clone(),
                found,
            });
        }
    }
    Ok(CheckedBuilds { stamp: parsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn parses_the_script_format() {
        let s = parse_stamp(&format!(
            "# comment\nsource-sha256 {A}\nwasm-sha256 {B}\nnative-sha256 {A}\nrustc rustc 1.95.0 (x)\n"
        ))
        .unwrap();
        assert_eq!(s.source_sha256, A);
        assert_eq!(s.wasm_sha256, B);
        assert_eq!(s.native_sha256.as_deref(), Some(A));
        assert_eq!(s.rustc.as_deref(), Some("rustc 1.95.0 (x)"));
        let wasm_only = parse_stamp(&format!("source-sha256 {A}\nwasm-sha256 {B}\n")).unwrap();
        assert_eq!(wasm_only.native_sha256, None);
    }

    #[test]
    fn refuses_malformed_stamps() {
        for (text, needle) in [
            (format!("wasm-sha256 {B}\n"), "expected a source-sha256"),
            (format!("source-sha256 {A}\n"), "expected a wasm-sha256"),
            (
                format!("source-sha256 {A}\nwasm-sha256 {B}\nwasm-sha256 {B}\n"),
                "given twice",
            ),
            (
                format!("source-sha256 {A}\nwasm-sha256 XYZ\n"),
                "expected 64 lowercase hex digits, found `XYZ`",
            ),
            (format!("source-sha256 {A}\nflavour x\n"), "unknown key"),
            ("garbage\n".to_string(), "expected `KEY VALUE`"),
        ] {
            let e = parse_stamp(&text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn source_digest_is_sha256sum_of_sha256sum() {
        // `printf 'x' > a; printf 'y' > b/c; sha256sum a b/c | sha256sum`, as the script does.
        let x: [u8; 32] = Sha256::digest(b"x").into();
        let y: [u8; 32] = Sha256::digest(b"y").into();
        let listing = format!("{}  a\n{}  b/c\n", hex::encode(x), hex::encode(y));
        let expected = hex::encode(Sha256::digest(listing.as_bytes()));
        assert_eq!(
            source_digest(&[("b/c".into(), y), ("a".into(), x)]),
            expected
        );
    }
}
