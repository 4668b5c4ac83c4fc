//! Storage for the Enclava vault.
//!
//! The vault, identity and audit logic see only the [`Store`] trait: a small transactional
//! key-value model (named tables of `key -> bytes`) plus an append-only audit table. The embedded
//! SQLite backend ([`SqliteStore`]) is the default; a PostgreSQL backend implements the same trait
//! without any change to the logic above it.
//!
//! Guarantees every backend must give:
//! - a [`Store::transact`] call is atomic and durable when it returns `Ok` (a crash afterwards loses
//!   nothing; a crash during it leaves nothing of it);
//! - `expect` preconditions in a transaction are checked inside the same transaction, so two
//!   writers racing on one object cannot both win;
//! - audit entries get consecutive sequence numbers starting at 1, in append order;
//! - [`Store::transact_audited`] commits a change together with its audit entries, so an
//!   acknowledged change is never missing from the log and a failed one leaves no entry behind.

pub mod coherence;
pub mod integrity;
#[cfg(feature = "postgres")]
pub mod postgres;
mod sqlite;

pub use coherence::{Change, Coherence};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use thiserror::Error;

/// The tables the vault uses. Keys within a table are opaque UTF-8 strings chosen by the caller
/// (e.g. `name/version`), ordered bytewise for listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Vault-wide metadata: seal configuration, wrapped root key, settings.
    Meta,
    Keys,
    KeyVersions,
    DeletedKeys,
    Secrets,
    SecretVersions,
    DeletedSecrets,
    Principals,
    RoleAssignments,
    Policies,
    /// Signed checkpoints of the audit chain head.
    AuditCheckpoints,
    /// Redeemed attestation challenge nonces, each until its expiry (the replay set shared by
    /// every server process on this database). Keys: `{issued_at:020}/{base64url(mac)}`, values
    /// empty.
    RedeemedNonces,
    /// KBS (RCAR) sessions between `/kbs/v0/auth` and their expiry, shared by every server
    /// process on this database so any replica can continue a handshake. Keys: the session id
    /// (32 hex digits); values: the session JSON (see `enclava-server`'s `kbs.rs`).
    KbsSessions,
    /// Certificates (issue 12), the third versioned-object kind beside keys and secrets: the
    /// live record (`name_key`), the versions (`name_key/version`) and the deleted record.
    Certificates,
    CertificateVersions,
    DeletedCertificates,
    /// Pending certificate create operations (`name_key`): CSR flow state with the sealed key.
    CertificateOperations,
    /// Certificate issuer objects (`name_key`) and the certificate contacts (key `contacts`
    /// is not a valid issuer name: issuer keys are `issuer/{name_key}`).
    CertificateIssuers,
}

impl Table {
    pub const ALL: [Table; 18] = [
        Table::Meta,
        Table::Keys,
        Table::KeyVersions,
        Table::DeletedKeys,
        Table::Secrets,
        Table::SecretVersions,
        Table::DeletedSecrets,
        Table::Principals,
        Table::RoleAssignments,
        Table::Policies,
        Table::AuditCheckpoints,
        Table::RedeemedNonces,
        Table::KbsSessions,
        Table::Certificates,
        Table::CertificateVersions,
        Table::DeletedCertificates,
        Table::CertificateOperations,
        Table::CertificateIssuers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Keys => "keys",
            Table::KeyVersions => "key_versions",
            Table::DeletedKeys => "deleted_keys",
            Table::Secrets => "secrets",
            Table::SecretVersions => "secret_versions",
            Table::DeletedSecrets => "deleted_secrets",
            Table::Principals => "principals",
            Table::RoleAssignments => "role_assignments",
            Table::Policies => "policies",
            Table::AuditCheckpoints => "audit_checkpoints",
            Table::RedeemedNonces => "redeemed_nonces",
            Table::KbsSessions => "kbs_sessions",
            Table::Certificates => "certificates",
            Table::CertificateVersions => "certificate_versions",
            Table::DeletedCertificates => "deleted_certificates",
            Table::CertificateOperations => "certificate_operations",
            Table::CertificateIssuers => "certificate_issuers",
        }
    }
}

/// Table name in the [`StoreError::Conflict`] of a [`Store::transact_audited`] whose entries
/// would not land at the expected sequence number.
pub const AUDIT_TABLE: &str = "audit";

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace.
    Put {
        table: Table,
        key: String,
        value: Vec<u8>,
    },
    /// Remove if present.
    Delete { table: Table, key: String },
    /// Precondition: the row must currently hold exactly `value` (`None`: must be absent).
    /// Fails the whole transaction with [`StoreError::Conflict`] otherwise.
    Expect {
        table: Table,
        key: String,
        value: Option<Vec<u8>>,
    },
}

/// One stored audit entry: its sequence number and the serialized entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: u64,
    pub entry: Vec<u8>,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "conflicting concurrent change to {table}/{key}: expected it {expected}, found it changed"
    )]
    Conflict {
        table: &'static str,
        key: String,
        expected: &'static str,
    },
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The disk (or the database's size limit) is full: nothing of the transaction was written.
    /// Kept apart from [`StoreError::Backend`] so the server can answer 507 instead of 500.
    #[error("storage is full, nothing was written: {0}")]
    Full(String),
    #[error("storage schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The database cannot be reached (refused, reset, shut down, no answer in time): nothing of
    /// the call is known to have happened, and the same call may well succeed once it is back.
    /// Kept apart from [`StoreError::Backend`] so the server answers 503 with `Retry-After`
    /// (a condition the client can wait out) instead of 500, and readiness turns red.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the failure is the database being out of reach (retry later), see
    /// [`StoreError::Unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The storage interface. Synchronous by design: callers on an async runtime use
/// `spawn_blocking`; the logic layers stay free of async.
pub trait Store: Send + Sync + 'static {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>>;

    /// Rows whose key starts with `prefix` and is strictly greater than `after` (when given),
    /// in key order, at most `limit`.
    fn list(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;

    /// Apply all ops atomically and durably, or none of them.
    fn transact(&self, ops: Vec<Op>) -> Result<()>;

    /// Append audit entries atomically and durably; returns the sequence number of the first.
    fn append_audit(&self, entries: Vec<Vec<u8>>) -> Result<u64>;

    /// Apply `ops` AND append `audit` entries in one atomic, durable transaction: either the
    /// change and its audit entries are both stored, or neither is (a full disk, a failed
    /// expectation or a crash leaves nothing of either). The entries are chained by the caller,
    /// so they must land exactly at `first_seq`: if the log's next sequence number is another
    /// (another process appended meanwhile) nothing is written and the error is
    /// [`StoreError::Conflict`] on table [`AUDIT_TABLE`], for the caller to re-chain and retry.
    fn transact_audited(&self, ops: Vec<Op>, audit: Vec<Vec<u8>>, first_seq: u64) -> Result<()>;

    /// Audit entries with `seq >= from`, in order, at most `limit`.
    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRow>>;

    /// The highest audit sequence number, 0 when empty.
    fn audit_head(&self) -> Result<u64>;

    /// How caches over this store learn of changes committed by other processes (see
    /// [`coherence`]). A store no other process writes to (SQLite: one process owns the file)
    /// answers [`Coherence::single_process`]: always trusted, no changes reported. Required, not
    /// defaulted: a wrapper around a shared store that forgot to forward it would leave every
    /// cache above it deaf to other replicas' changes.
    fn coherence(&self) -> Arc<Coherence>;
}
