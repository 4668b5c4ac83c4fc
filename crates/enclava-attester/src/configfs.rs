//! configfs-tsm: the kernel's vendor-neutral attestation report interface
//! (`Documentation/ABI/testing/configfs-tsm-report`, Linux 6.7+).
//!
//! One report, as the ABI prescribes:
//! 1. `mkdir {root}/sys/kernel/config/tsm/report/<unique name>`: the kernel populates the entry;
//! 2. read `provider` (`sev_guest`, `tdx_guest`, ...) and `generation` (decimal counter);
//! 3. write `inblob` (we always write exactly 64 bytes: the report data, zero padded) and, if asked,
//!    `privlevel` (SEV-SNP VMPL, 0..=3, at least `privlevel_floor`);
//! 4. read `outblob` (this is when the kernel asks the TSM for the report), then `auxblob` for
//!    `sev_guest` (the extended-report certificate table, possibly empty);
//! 5. read `generation` again: it must have advanced by exactly our number of writes, else another
//!    writer raced us on the entry and the outblob may answer *their* inblob; we then retry with a
//!    fresh entry, and after [`DEFAULT_ATTEMPTS`] give up with [`AttesterError::ConcurrentUse`];
//! 6. `rmdir` the entry, always, also when a step failed.
//!
//! The file operations go through [`ConfigfsOps`]. [`StdFs`] is the real implementation (plain
//! `std::fs` calls on configfs); tests wrap it in a small emulation of the kernel's reactions
//! (mkdir populates the attributes, writes bump `generation`) on a temporary directory, so the
//! collection logic and the real file operations run unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::AttesterError;
use crate::layout;

/// Where the report entries live, relative to the file system root.
pub const REPORT_DIR: &str = "sys/kernel/config/tsm/report";
/// How many entries to try before reporting [`AttesterError::ConcurrentUse`].
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// Highest privilege level the ABI accepts (`TSM_PRIVLEVEL_MAX`).
pub const PRIVLEVEL_MAX: u32 = 3;

/// The file operations the collector needs. Implemented by [`StdFs`] for the real configfs.
pub trait ConfigfsOps {
    fn create_dir(&mut self, path: &Path) -> std::io::Result<()>;
    fn remove_dir(&mut self, path: &Path) -> std::io::Result<()>;
    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// One `open(O_WRONLY)` + `write` + `close` of an existing attribute (configfs commits binary
    /// attributes on close).
    fn write(&mut self, path: &Path, data: &[u8]) -> std::io::Result<()>;
    fn exists(&mut self, path: &Path) -> bool;
}

/// The real configfs, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl ConfigfsOps for StdFs {
    fn create_dir(&mut self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }
    fn remove_dir(&mut self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn write(&mut self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        // No O_CREAT / O_TRUNC: configfs attributes exist once the entry exists.
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(data)?;
        f.flush()
    }
    fn exists(&mut self, path: &Path) -> bool {
        path.exists()
    }
}

/// The report format named by the entry's `provider` attribute.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TsmProvider {
    /// AMD SEV-SNP: `outblob` is the ATTESTATION_REPORT, `auxblob` the certificate table.
    SevGuest,
    /// Intel TDX: `outblob` is a DCAP quote (v4/v5) obtained from the host's quote service.
    TdxGuest,
    /// Anything else (kept verbatim, not collected).
    Other(String),
}

impl TsmProvider {
    pub fn parse(s: &str) -> TsmProvider {
        match s {
            "sev_guest" => TsmProvider::SevGuest,
            "tdx_guest" => TsmProvider::TdxGuest,
            other => TsmProvider::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            TsmProvider::SevGuest => "sev_guest",
            TsmProvider::TdxGuest => "tdx_guest",
            TsmProvider::Other(s) => s,
        }
    }
}

/// One collected report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsmReport {
    pub provider: TsmProvider,
    /// `outblob`, untouched.
    pub outblob: Vec<u8>,
    /// `auxblob` when the provider emits one and it is not empty (SNP: certificate table).
    pub auxblob: Option<Vec<u8>>,
    /// The 64 bytes written to `inblob`.
    pub inblob: [u8; 64],
    /// `generation` after the report was read.
    pub generation: u64,
    /// The privilege level written, if any.
    pub privlevel: Option<u32>,
}

/// The configfs-tsm collector.
#[derive(Debug)]
pub struct ConfigfsTsm<O: ConfigfsOps = StdFs> {
    ops: O,
    report_dir: PathBuf,
    attempts: u32,
}

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other process (pid) or call in this process (counter) uses at the same time.
fn unique_entry_name() -> String {
    let n = ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("enclava-{}-{n}-{nanos:08x}", std::process::id())
}

impl ConfigfsTsm<StdFs> {
    /// The real interface under `root` (normally `/`).
    pub fn new(root: &Path) -> Self {
        Self::with_ops(root, StdFs)
    }
}

/// Whether `{root}/sys/kernel/config/tsm/report` exists.
pub fn present(root: &Path) -> bool {
    root.join(REPORT_DIR).is_dir()
}

enum Attempt {
    Done(TsmReport),
    Raced {
        before: u64,
        after: u64,
        expected: u64,
    },
}

impl<O: ConfigfsOps> ConfigfsTsm<O> {
    pub fn with_ops(root: &Path, ops: O) -> Self {
        ConfigfsTsm {
            ops,
            report_dir: root.join(REPORT_DIR),
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// How many fresh entries to try when the generation check fails (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The file operations (tests inspect their fake kernel through this).
    pub fn ops(&self) -> &O {
        &self.ops
    }

    /// The provider, read from a short-lived entry (mkdir, read `provider`, rmdir).
    pub fn probe_provider(&mut self) -> Result<TsmProvider, AttesterError> {
        let entry = self.create_entry()?;
        let result = self.read_provider(&entry);
        let cleanup = self.remove_entry(&entry);
        let provider = result?;
        cleanup?;
        Ok(provider)
    }

    /// Collect one report over `report_data` (at most 64 bytes, zero padded to 64), optionally at
    /// privilege level `privlevel` (SEV-SNP VMPL). The report must carry the padded data.
    pub fn get_report(
        &mut self,
        report_data: &[u8],
        privlevel: Option<u32>,
    ) -> Result<TsmReport, AttesterError> {
        let inblob = layout::pad_report_data(report_data)?;
        if let Some(p) = privlevel
            && p > PRIVLEVEL_MAX
        {
            return Err(AttesterError::Configfs {
                path: self.report_dir.join("<entry>/privlevel"),
                expected: format!("a privilege level 0..={PRIVLEVEL_MAX}"),
                found: p.to_string(),
            });
        }
        let mut last = None;
        for _ in 0..self.attempts {
            let entry = self.create_entry()?;
            let result = self.attempt(&entry, &inblob, privlevel);
            let cleanup = self.remove_entry(&entry);
            let outcome = result?;
            cleanup?;
            match outcome {
                Attempt::Done(report) => return Ok(report),
                Attempt::Raced {
                    before,
                    after,
                    expected,
                } => last = Some((entry, before, after, expected)),
            }
        }
        let (entry, before, after, expected) = last.unwrap_or_default();
        Err(AttesterError::ConcurrentUse {
            path: entry.join("generation"),
            before,
            after,
            expected,
            attempts: self.attempts,
        })
    }

    fn create_entry(&mut self) -> Result<PathBuf, AttesterError> {
        if !self.ops.exists(&self.report_dir) {
            return Err(AttesterError::Configfs {
                path: self.report_dir.clone(),
                expected: "the configfs-tsm report directory (Linux 6.7+ with a TSM provider)"
                    .into(),
                found: "no such directory".into(),
            });
        }
        let entry = self.report_dir.join(unique_entry_name());
        self.ops
            .create_dir(&entry)
            .map_err(|e| AttesterError::io("mkdir", &entry, e))?;
        Ok(entry)
    }

    fn remove_entry(&mut self, entry: &Path) -> Result<(), AttesterError> {
        self.ops
            .remove_dir(entry)
            .map_err(|e| AttesterError::io("rmdir", entry, e))
    }

    fn read_attr(&mut self, entry: &Path, name: &str) -> Result<Vec<u8>, AttesterError> {
        let path = entry.join(name);
        self.ops
            .read(&path)
            .map_err(|e| AttesterError::io("read", path, e))
    }

    fn write_attr(&mut self, entry: &Path, name: &str, data: &[u8]) -> Result<(), AttesterError> {
        let path = entry.join(name);
        self.ops
            .write(&path, data)
            .map_err(|e| AttesterError::io("write", path, e))
    }

    fn read_text(&mut self, entry: &Path, name: &str) -> Result<String, AttesterError> {
        let raw = self.read_attr(entry, name)?;
        let text = String::from_utf8(raw).map_err(|e| AttesterError::Configfs {
            path: entry.join(name),
            expected: "UTF-8 text".into(),
            found: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        })?;
        Ok(text.trim_end_matches(['\n', '\0']).trim().to_string())
    }

    fn read_provider(&mut self, entry: &Path) -> Result<TsmProvider, AttesterError> {
        let text = self.read_text(entry, "provider")?;
        if text.is_empty() {
            return Err(AttesterError::Configfs {
                path: entry.join("provider"),
                expected: "a provider name such as sev_guest or tdx_guest".into(),
                found: "an empty attribute".into(),
            });
        }
        Ok(TsmProvider::parse(&text))
    }

    fn read_generation(&mut self, entry: &Path) -> Result<u64, AttesterError> {
        let text = self.read_text(entry, "generation")?;
        text.parse::<u64>().map_err(|_| AttesterError::Configfs {
            path: entry.join("generation"),
            expected: "a decimal counter".into(),
            found: format!("{:?}", text.chars().take(32).collect::<String>()),
        })
    }

    fn attempt(
        &mut self,
        entry: &Path,
        inblob: &[u8; 64],
        privlevel: Option<u32>,
    ) -> Result<Attempt, AttesterError> {
        let provider = self.read_provider(entry)?;
        if let TsmProvider::Other(name) = &provider {
            return Err(AttesterError::Configfs {
                path: entry.join("provider"),
                expected: "sev_guest or tdx_guest".into(),
                found: format!("{name:?}"),
            });
        }
        let before = self.read_generation(entry)?;
        let mut writes = 0u64;
        self.write_attr(entry, "inblob", inblob)?;
        writes += 1;
        if let Some(level) = privlevel {
            self.write_attr(entry, "privlevel", format!("{level}\n").as_bytes())?;
            writes += 1;
        }
        let outblob = self.read_attr(entry, "outblob")?;
        let auxblob =
            if provider == TsmProvider::SevGuest && self.ops.exists(&entry.join("auxblob")) {
                Some(self.read_attr(entry, "auxblob")?).filter(|a| !a.is_empty())
            } else {
                None
            };
        let after = self.read_generation(entry)?;
        let expected = before.saturating_add(writes);
        if after != expected {
            return Ok(Attempt::Raced {
                before,
                after,
                expected,
            });
        }
        let source = entry.join("outblob").display().to_string();
        match provider {
            TsmProvider::SevGuest => layout::check_snp_report(&source, &outblob, inblob)?,
            TsmProvider::TdxGuest => layout::check_tdx_quote(&source, &outblob, inblob)?,
            TsmProvider::Other(_) => {}
        }
        Ok(Attempt::Done(TsmReport {
            provider,
            outblob,
            auxblob,
            inblob: *inblob,
            generation: after,
            privlevel,
        }))
    }
}
