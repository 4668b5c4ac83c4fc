//! The crate's error type: one enum, each variant saying what was expected and what was found.

use std::path::{Path, PathBuf};

use enclava_evidence::dcap::DcapError;
use enclava_evidence::snp::SnpError;
use thiserror::Error;

/// Why collateral could not be found, read, fetched or stored. [`Error::code`] gives a stable
/// machine-readable code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A cache file that this lookup needs is absent.
    #[error("missing {what}: expected a file at {}, found none", join_paths(.expected))]
    MissingFile {
        what: String,
        expected: Vec<PathBuf>,
    },
    /// The cache directory itself does not exist or is not a directory.
    #[error("cache directory {}: expected an existing directory, found {found}", .path.display())]
    CacheDir { path: PathBuf, found: String },
    /// A file system operation failed.
    #[error("{op} {}: {reason}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A cache file is larger than any legitimate collateral.
    #[error("{}: expected at most {limit} bytes, found {found}", .path.display())]
    FileTooLarge {
        path: PathBuf,
        limit: u64,
        found: u64,
    },
    /// The SEV-SNP report (or a certificate or CRL) does not parse or verify.
    #[error("SEV-SNP: {0}")]
    Snp(#[from] SnpError),
    /// The DCAP quote (or a piece of Intel collateral) does not parse.
    #[error("DCAP: {0}")]
    Dcap(#[from] DcapError),
    /// The report is not signed (SIGNING_KEY = none): nothing endorses it.
    #[error("the report is not signed: expected SIGNING_KEY vcek or vlek, found none")]
    UnsignedReport,
    /// MASK_CHIP_KEY hides the chip id, so the VCEK cannot be located.
    #[error(
        "the report's CHIP_ID is masked (MASK_CHIP_KEY): expected a chip id to locate the VCEK, found zeros"
    )]
    ChipIdMasked,
    /// The report's CPUID names a CPU this crate does not know the AMD product of.
    #[error(
        "unknown AMD product: expected a Milan, Genoa or Turin CPUID, found family {family:#x} model {model:#x}"
    )]
    UnknownProduct { family: u8, model: u8 },
    /// More than one candidate in the cache matches, and they cannot be told apart.
    #[error("ambiguous {what}: expected exactly one, found {}", join_paths(.found))]
    Ambiguous { what: String, found: Vec<PathBuf> },
    /// The evidence is for another TEE than the one asked for.
    #[error("TEE mismatch: expected {expected}, found {found}")]
    TeeMismatch {
        expected: &'static str,
        found: &'static str,
    },
    /// Content (fetched or handed to a `put_*` method) is not what it claims to be.
    #[error("invalid {what}: {reason}")]
    InvalidCollateral { what: String, reason: String },
    /// VLEKs are issued to the cloud provider and cannot be fetched from AMD KDS.
    #[error(
        "the report is signed by a VLEK: VLEKs come from the cloud provider and cannot be fetched from AMD KDS; place it in the cache by hand"
    )]
    VlekNotFetchable,
    /// The server answered 404: the resource does not exist.
    #[error("not found: {url} answered 404")]
    NotFound { url: String },
    /// The server answered with a status that is neither success nor retryable.
    #[error("{url}: expected HTTP 200, found {status}: {body}")]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },
    /// The server asked us to wait longer than the configured maximum.
    #[error(
        "{url}: rate limited, the server asks to retry after {retry_after_secs} s (more than the {max_secs} s allowed)"
    )]
    RateLimited {
        url: String,
        retry_after_secs: u64,
        max_secs: u64,
    },
    /// Every attempt failed with a retryable error.
    #[error("{url}: gave up after {attempts} attempts, last error: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: String,
    },
    /// A response body exceeds the configured limit.
    #[error("{url}: expected a response of at most {limit} bytes, found more")]
    ResponseTooLarge { url: String, limit: usize },
    /// No source of endorsements was available.
    #[error("no endorsements: {0}")]
    NoEndorsements(String),
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingFile { .. } => "missing_file",
            Error::CacheDir { .. } => "cache_dir",
            Error::Io { .. } => "io",
            Error::FileTooLarge { .. } => "file_too_large",
            Error::Snp(_) => "snp",
            Error::Dcap(_) => "dcap",
            Error::UnsignedReport => "unsigned_report",
            Error::ChipIdMasked => "chip_id_masked",
            Error::UnknownProduct { .. } => "unknown_product",
            Error::Ambiguous { .. } => "ambiguous",
            Error::TeeMismatch { .. } => "tee_mismatch",
            Error::InvalidCollateral { .. } => "invalid_collateral",
            Error::VlekNotFetchable => "vlek_not_fetchable",
            Error::NotFound { .. } => "not_found",
            Error::HttpStatus { .. } => "http_status",
            Error::RateLimited { .. } => "rate_limited",
            Error::GaveUp { .. } => "gave_up",
            Error::ResponseTooLarge { .. } => "response_too_large",
            Error::NoEndorsements(_) => "no_endorsements",
            Error::Config(_) => "config",
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, e: &std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidCollateral {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(no path)".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
