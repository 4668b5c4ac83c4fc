//! The workload manifest: what a workload is allowed to touch, and its canonical encoding.
//!
//! A manifest is JSON. Parsing is strict (unknown fields are rejected) and every field is validated;
//! the *canonical* encoding ([`Manifest::canonical_json`]) is compact `serde_json` output with the
//! fields in declaration order and every map/set sorted by key, so two manifests that mean the same
//! thing encode — and therefore measure — the same.
//!
//! ```json
//! {
//!   "name": "fraud-workload",
//!   "module_sha256": "<64 lowercase hex digits>",
//!   "args": ["--input", "/input", "--output", "/output"],
//!   "env": {"RUST_BACKTRACE": "0"},
//!   "dirs": {"/input": "read-only", "/output": "read-write"},
//!   "keys": ["dataset-key"],
//!   "outputs": {"/output/summary.json": "recipient-id"},
//!   "limits": {"memory_bytes": 268435456, "time_ms": 60000}
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Upper bounds that keep a manifest small and its effects predictable.
pub mod bounds {
    pub const NAME_MAX: usize = 128;
    pub const ARGS_MAX: usize = 256;
    pub const ARG_BYTES_MAX: usize = 4096;
    pub const ENV_MAX: usize = 256;
    pub const ENV_BYTES_MAX: usize = 4096;
    pub const DIRS_MAX: usize = 32;
    pub const PATH_BYTES_MAX: usize = 1024;
    pub const KEYS_MAX: usize = 64;
    pub const KEY_NAME_MAX: usize = 128;
    pub const OUTPUTS_MAX: usize = 64;
    pub const RECIPIENT_MAX: usize = 1024;
    /// One wasm page.
    pub const MEMORY_MIN: u64 = 64 * 1024;
    /// The whole 32-bit address space.
    pub const MEMORY_MAX: u64 = 4 * 1024 * 1024 * 1024;
    pub const TIME_MS_MAX: u64 = 24 * 3600 * 1000;
}

/// How a mapped directory may be used by the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    /// Whether granting `self` stays within a declaration of `declared`.
    pub fn within(self, declared: Access) -> bool {
        self <= declared
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Maximum size of the guest's linear memory, bytes.
    pub memory_bytes: u64,
    /// Wall-clock limit of the run (instantiation and execution), milliseconds.
    pub time_ms: u64,
}

impl Limits {
    /// The tighter of two limits, field by field.
    pub fn min(self, other: Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            time_ms: self.time_ms.min(other.time_ms),
        }
    }
}

/// A workload manifest. Parsing is strict (unknown fields are rejected) and validated
/// ([`Manifest::validate`]); [`Manifest::canonical_json`] is the encoding that is measured.
///
/// ```json
/// {
///   "name": "fraud-workload",
///   "module_sha256": "<64 lowercase hex digits>",
///   "args": ["--input", "/input", "--output", "/output"],
///   "env": {"RUST_BACKTRACE": "0"},
///   "dirs": {"/input": "read-only", "/output": "read-write"},
///   "keys": ["dataset-key"],
///   "outputs": {"/output/summary.json": "recipient-id"},
///   "limits": {"memory_bytes": 268435456, "time_ms": 60000}
/// }
/// ```
///
/// `args`, `env`, `dirs`, `keys` and `outputs` may be omitted (empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Workload name; also the guest's `argv[0]`.
    pub name: String,
    /// SHA-256 of the module bytes, lowercase hex.
    pub module_sha256: String,
    /// Guest arguments after `argv[0]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The guest's entire environment (nothing is inherited from the host).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Guest paths of the directories the host maps at run time, and their access.
    #[serde(default)]
    pub dirs: BTreeMap<String, Access>,
    /// Names of the keys the workload may have released to it.
    #[serde(default)]
    pub keys: BTreeSet<String>,
    /// Guest files that are outputs, and the recipient each is encrypted to (an opaque identifier
    /// resolved by the caller). Each must lie in a read-write mapped directory.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    pub limits: Limits,
}

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("manifest field {field}: expected {expected}, found {found}")]
    Field {
        field: String,
        expected: String,
        found: String,
    },
}

fn field_err(
    field: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

/// A short printable rendering of an untrusted string for error messages.
fn show(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    format!("\"{out}\"")
}

fn check_guest_path(field: &str, p: &str) -> Result<(), ManifestError> {
    let expected = "an absolute guest path (starting with '/', no '.', '..' or empty segments, no NUL or \
                    backslash, at most 1024 bytes)";
    let ok = p.starts_with('/')
        && p.len() <= bounds::PATH_BYTES_MAX
        && !p.contains(['\0', '\\'])
        && (p == "/"
            || p.split('/')
                .skip(1)
                .all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
    if ok {
        Ok(())
    } else {
        Err(field_err(field, expected, show(p)))
    }
}

/// Whether guest `file` lies strictly inside guest directory `dir`.
fn is_inside(file: &str, dir: &str) -> bool {
    if dir == "/" {
        return file.len() > 1;
    }
    file.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The canonical encoding: compact JSON, fields in declaration order, maps and sets sorted.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serializing plain strings, integers, maps with string keys and sets of strings into a
        // Vec cannot fail; an empty result would only change the measurement, never panic.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks every field against its rules (see [`bounds`]).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= bounds::NAME_MAX
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(field_err(
                "name",
                "1 to 128 characters from [A-Za-z0-9._-]",
                show(&self.name),
            ));
        }
        let digest_ok = self.module_sha256.len() == 64
            && self
                .module_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !digest_ok {
            return Err(field_err(
                "module_sha256",
                "64 lowercase hex digits",
                show(&self.module_sha256),
            ));
        }
        if self.args.len() > bounds::ARGS_MAX {
            return Err(field_err(
                "args",
                "at most 256 arguments",
                self.args.len().to_string(),
            ));
        }
        for (i, a) in self.args.iter().enumerate() {
            if a.len() > bounds::ARG_BYTES_MAX || a.contains('\0') {
                return Err(field_err(
                    format!("args[{i}]"),
                    "at most 4096 bytes without NUL",
                    show(a),
                ));
            }
        }
        if self.env.len() > bounds::ENV_MAX {
            return Err(field_err(
                "env",
                "at most 256 variables",
                self.env.len().to_string(),
            ));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) || k.len() > bounds::ENV_BYTES_MAX {
                return Err(field_err(
                    "env",
                    "variable names that are non-empty, without '=' or NUL",
                    show(k),
                ));
            }
            if v.contains('\0') || v.len() > bounds::ENV_BYTES_MAX {
                return Err(field_err(
                    format!("env.{k}"),
                    "a value of at most 4096 bytes without NUL",
                    show(v),
                ));
            }
        }
        if self.dirs.len() > bounds::DIRS_MAX {
            return Err(field_err(
                "dirs",
                "at most 32 mapped directories",
                self.dirs.len().to_string(),
            ));
        }
        for guest in self.dirs.keys() {
            check_guest_path("dirs", guest)?;
        }
        if let Some((a, b)) = self.nested_dirs() {
            return Err(field_err(
                "dirs",
                "directories that do not nest",
                format!("{} inside {}", show(b), show(a)),
            ));
        }
        if self.keys.len() > bounds::KEYS_MAX {
            return Err(field_err(
                "keys",
                "at most 64 key names",
                self.keys.len().to_string(),
            ));
        }
        for k in &self.keys {
            let ok = !k.is_empty()
                && k.len() <= bounds::KEY_NAME_MAX
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
            if !ok {
                return Err(field_err(
                    "keys",
                    "names of 1 to 128 characters from [A-Za-z0-9._:/-]",
                    show(k),
                ));
            }
        }
        if self.outputs.len() > bounds::OUTPUTS_MAX {
            return Err(field_err(
                "outputs",
                "at most 64 output files",
                self.outputs.len().to_string(),
            ));
        }
        for (file, recipient) in &self.outputs {
            check_guest_path("outputs", file)?;
            let in_rw_dir = self
                .dirs
                .iter()
                .any(|(dir, access)| *access == Access::ReadWrite && is_inside(file, dir));
            if !in_rw_dir {
                return Err(field_err(
                    "outputs",
                    "a file inside a read-write mapped directory",
                    show(file),
                ));
            }
            if recipient.is_empty()
                || recipient.len() > bounds::RECIPIENT_MAX
                || recipient.contains('\0')
            {
                return Err(field_err(
                    format!("outputs.{file}"),
                    "a recipient of 1 to 1024 bytes without NUL",
                    show(recipient),
                ));
            }
        }
        let l = self.limits;
        if !(bounds::MEMORY_MIN..=bounds::MEMORY_MAX).contains(&l.memory_bytes) {
            return Err(field_err(
                "limits.memory_bytes",
                format!("{} to {}", bounds::MEMORY_MIN, bounds::MEMORY_MAX),
                l.memory_bytes.to_string(),
            ));
        }
        if !(1..=bounds::TIME_MS_MAX).contains(&l.time_ms) {
            return Err(field_err(
                "limits.time_ms",
                format!("1 to {}", bounds::TIME_MS_MAX),
                l.time_ms.to_string(),
            ));
        }
        Ok(())
    }

    /// A pair of declared directories where the second lies inside the first, if any.
    fn nested_dirs(&self) -> Option<(&str, &str)> {
        for a in self.dirs.keys() {
            for b in self.dirs.keys() {
                if a != b && is_inside(b, a) {
                    return Some((a, b));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            name: "fraud-workload".into(),
            module_sha256: "ab".repeat(32),
            args: vec!["--input".into(), "/input".into()],
            env: BTreeMap::from([("LANG".into(), "C".into())]),
            dirs: BTreeMap::from([
                ("/input".into(), Access::ReadOnly),
                ("/output".into(), Access::ReadWrite),
            ]),
            keys: BTreeSet::from(["dataset-key".into()]),
            outputs: BTreeMap::from([("/output/summary.json".into(), "analyst".into())]),
            limits: Limits {
                memory_bytes: 64 << 20,
                time_ms: 5_000,
            },
        }
    }

    #[test]
    fn canonical_json_is_order_and_whitespace_independent() {
        let m = sample();
        let canon = m.canonical_json();
        let text = String::from_utf8(canon.clone()).unwrap();
        assert!(
            text.starts_with("{\"name\":\"fraud-workload\",\"module_sha256\":\"abab"),
            "{text}"
        );
        assert!(
            text.contains("\"dirs\":{\"/input\":\"read-only\",\"/output\":\"read-write\"}"),
            "{text}"
        );
        // Same content, different order and whitespace.
        let shuffled = format!(
            r#"{{ "limits": {{"time_ms": 5000, "memory_bytes": 67108864}},
                "outputs": {{"/output/summary.json": "analyst"}}, "keys": ["dataset-key"],
                "dirs": {{"/output": "read-write", "/input": "read-only"}}, "env": {{"LANG": "C"}},
                "args": ["--input", "/input"], "module_sha256": "{}", "name": "fraud-workload" }}"#,
            "ab".repeat(32)
        );
        let parsed = Manifest::from_json(shuffled.as_bytes()).unwrap();
        assert_eq!(parsed, m);
        assert_eq!(parsed.canonical_json(), canon);
        assert_eq!(Manifest::from_json(&canon).unwrap(), m);
    }

    #[test]
    fn optional_collections_default_to_empty() {
        let json = format!(
            r#"{{"name":"w","module_sha256":"{}","limits":{{"memory_bytes":65536,"time_ms":1}}}}"#,
            "0".repeat(64)
        );
        let m = Manifest::from_json(json.as_bytes()).unwrap();
        assert!(m.args.is_empty() && m.env.is_empty() && m.dirs.is_empty());
        assert!(m.keys.is_empty() && m.outputs.is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_json_are_rejected() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["network"] = serde_json::json!(true);
        let err = Manifest::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(err, ManifestError::Json(ref m) if m.contains("network")),
            "{err}"
        );
        assert!(matches!(
            Manifest::from_json(b"{"),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::from_json(b""),
            Err(ManifestError::Json(_))
        ));
        let mut v = serde_json::to_value(sample()).unwrap();
        v["dirs"]["/input"] = serde_json::json!("execute");
        assert!(matches!(
            Manifest::from_json(v.to_string().as_bytes()),
            Err(ManifestError::Json(_))
        ));
    }

    fn rejects(f: impl FnOnce(&mut Manifest), field: &str) {
        let mut m = sample();
        f(&mut m);
        match m.validate() {
            Err(ManifestError::Field { field: got, .. }) => {
                assert!(got.starts_with(field), "{got} vs {field}")
            }
            other => panic!("expected a {field} error, got {other:?}"),
        }
    }

    #[test]
    fn validation_rejects_each_bad_field() {
        rejects(|m| m.name = String::new(), "name");
        rejects(|m| m.name = "a b".into(), "name");
        rejects(|m| m.module_sha256 = "AB".repeat(32), "module_sha256");
        rejects(|m| m.module_sha256 = "ab".repeat(31), "module_sha256");
        rejects(|m| m.args.push("a\0b".into()), "args[2]");
        rejects(|m| m.args = vec![String::new(); 257], "args");
        rejects(
            |m| {
                let _ = m.env.insert("A=B".into(), "x".into());
            },
            "env",
        );
        rejects(
            |m| {
                let _ = m.env.insert(String::new(), "x".into());
            },
            "env",
        );
        rejects(
            |m| {
                let _ = m.env.insert("X".into(), "\0".into());
            },
            "env.X",
        );
        for bad in ["relative", "/a/../b", "/a//b", "/a/./b", "/a/", "", "/a\\b"] {
            rejects(
                |m| {
                    let _ = m.dirs.insert(bad.into(), Access::ReadOnly);
                },
                "dirs",
            );
        }
        rejects(
            |m| {
                let _ = m.dirs.insert("/input/sub".into(), Access::ReadWrite);
            },
            "dirs",
        );
        rejects(
            |m| {
                let _ = m.keys.insert("bad key".into());
            },
            "keys",
        );
        rejects(
            |m| {
                let _ = m.outputs.insert("/input/x".into(), "r".into());
            },
            "outputs",
        );
        rejects(
            |m| {
                let _ = m.outputs.insert("/output".into(), "r".into());
            },
            "outputs",
        );
        rejects(
            |m| {
                let _ = m.outputs.insert("/outputs/x".into(), "r".into());
            },
            "outputs",
        );
        rejects(
            |m| {
                let _ = m.outputs.insert("/output/x".into(), String::new());
            },
            "outputs./output/x",
        );
        rejects(|m| m.limits.memory_bytes = 1, "limits.memory_bytes");
        rejects(
            |m| m.limits.memory_bytes = bounds::MEMORY_MAX + 1,
            "limits.memory_bytes",
        );
        rejects(|m| m.limits.time_ms = 0, "limits.time_ms");
        assert_eq!(sample().validate(), Ok(()));
    }

    #[test]
    fn root_dir_may_hold_outputs() {
        let mut m = sample();
        m.dirs = BTreeMap::from([("/".into(), Access::ReadWrite)]);
        m.outputs = BTreeMap::from([("/out.json".into(), "r".into())]);
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn access_ordering() {
        assert!(Access::ReadOnly.within(Access::ReadWrite));
        assert!(Access::ReadOnly.within(Access::ReadOnly));
        assert!(!Access::ReadWrite.within(Access::ReadOnly));
        assert_eq!(Access::ReadWrite.to_string(), "read-write");
    }

    #[test]
    fn error_messages_escape_untrusted_text() {
        let mut m = sample();
        m.name = "evil\n\u{1b}[31m".into();
        let msg = m.validate().unwrap_err().to_string();
        assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg}");
    }
}
