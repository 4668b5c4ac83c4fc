//! The one error type of this crate. Every variant names the file, device, ioctl or TPM command
//! involved, what was expected and what was found. Report data is a nonce/hash chosen by the caller
//! (never a secret), so it may appear in messages.

use std::path::PathBuf;

use enclava_evidence::Tee;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AttesterError {
    /// Auto-detection found no TEE interface. The simulator is never chosen automatically.
    #[error(
        "no TEE found: looked for {looked_for}; none is usable (use --tee sim explicitly for the simulator)"
    )]
    NoTee { looked_for: String },

    /// A specific TEE was requested but its interface is not there or not usable.
    #[error("TEE {tee} was requested but is not available: {reason}")]
    Unavailable { tee: Tee, reason: String },

    /// A file system or device operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// More report data than the 64 bytes every interface carries.
    #[error("report data is {len} bytes: expected at most 64")]
    ReportDataTooLong { len: usize },

    /// A configfs-tsm attribute did not hold what the kernel ABI promises.
    #[error("configfs-tsm {}: expected {expected}, found {found}", path.display())]
    Configfs {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// The generation counter of a configfs-tsm report entry did not advance by exactly our writes
    /// on any attempt: another writer is using the same entry, or the kernel did not accept a write.
    #[error(
        "configfs-tsm {}: generation went from {before} to {after}, expected {expected} after our \
         writes; another process wrote to the entry or a write was rejected (gave up after \
         {attempts} attempts)",
        path.display()
    )]
    ConcurrentUse {
        path: PathBuf,
        before: u64,
        after: u64,
        expected: u64,
        attempts: u32,
    },

    /// The hardware returned evidence over other report data than requested.
    #[error("{source_name}: evidence carries report_data {found}, expected {expected}")]
    ReportDataMismatch {
        source_name: String,
        expected: String,
        found: String,
    },

    /// Evidence bytes that do not have the expected shape.
    #[error("{what}: expected {expected}, found {found}")]
    Malformed {
        what: String,
        expected: String,
        found: String,
    },

    /// An ioctl on a guest device failed.
    #[error("ioctl {ioctl} on {}: {detail}", device.display())]
    Ioctl {
        device: PathBuf,
        ioctl: &'static str,
        detail: String,
    },

    /// The TPM answered a command with an error response code.
    #[error("TPM2_{command}: the TPM returned {rc_name} (response code {rc:#x})")]
    TpmRc {
        command: &'static str,
        rc: u32,
        rc_name: String,
    },

    /// A TPM response that does not parse as the command's response structure.
    #[error("TPM2_{command} response: expected {expected}, found {found}")]
    TpmResponse {
        command: &'static str,
        expected: String,
        found: String,
    },

    /// The HCL report read from the vTPM is not the one our user data asked for.
    #[error("Azure HCL report (vTPM NV index 0x01400001): expected {expected}, found {found}")]
    HclReport { expected: String, found: String },

    /// The interface exists but this crate cannot produce verifiable evidence from it alone.
    #[error("{0}")]
    Unsupported(String),
}

impl AttesterError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AttesterError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        AttesterError::Malformed {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}
