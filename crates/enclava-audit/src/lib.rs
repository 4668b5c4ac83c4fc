//! The tamper-evident audit log: hash-chained entries, signed checkpoints, verification, export.
//!
//! # Entries and the chain
//! Each stored entry is the canonical JSON of [`AuditEntry`] (fields in declaration order, compact,
//! `null` for absent optional fields). `hash = hex(SHA-256(prev_hash_bytes || body))` where
//! `prev_hash_bytes` are the 32 raw bytes of the previous entry's hash ([`GENESIS_HASH`], 64 zeros,
//! for the first entry) and `body` is the canonical JSON of the entry **without** its `hash` field.
//! The entry's own `seq` is part of the body, binding it to its position, so removal with
//! renumbering and reordering are told apart from content changes.
//!
//! # Checkpoints
//! Every [`AuditConfig::checkpoint_every`] entries (and on demand, [`AuditLog::checkpoint`]) the
//! head `{seq, head_hash, time}` is signed with ECDSA P-256 / SHA-256 (fixed-size `r||s`) over
//! `CHECKPOINT_DOMAIN || canonical JSON` and stored in `Table::AuditCheckpoints` under the 20-digit
//! zero-padded seq. A chain alone cannot detect an attacker who rewrites a suffix and recomputes
//! every hash (SHA-256 needs no key), nor a truncated tail; checkpoints can, up to the last one.
//!
//! # Verification ([`verify`])
//! Streams the log in pages and keeps constant memory, except a bounded look-ahead window
//! ([`LOOKAHEAD`] rows) used to classify the first problem:
//! - **Removed**: entries are missing (a gap in seq, or renumbered rows whose content seq runs
//!   ahead), or the log ends before a signed checkpoint.
//! - **Modified**: an entry's content no longer matches its hash; or an entry was rewritten with a
//!   recomputed hash (the next entry's `prev_hash` then names a hash that never existed); or a
//!   signed checkpoint disagrees with the recomputed chain at its seq.
//! - **Inserted**: rows that do not belong to the chain sit in it while the genuine successor
//!   follows them ("the next one links over it"), or a forged entry that links perfectly is
//!   followed by the genuine entry it displaced.
//! - **Reordered**: a genuine entry (self-consistent, linked to its own neighbours) sits before the
//!   entry that should come first.
//!
//! A move beyond the look-ahead window is reported as Removed.

use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use enclava_store::{AuditRow, Op, Store, StoreError, Table};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation prefix of the bytes a checkpoint signature covers.
pub const CHECKPOINT_DOMAIN: &[u8] = b"enclava-audit-checkpoint-v1\n";

/// Re-chaining attempts of one append when other processes keep appending first.
const MAX_RECHAIN: u32 = 64;

/// Rows examined ahead of the first problem to classify it.
pub const LOOKAHEAD: usize = 1024;

/// Longest stored text field (characters); longer values are truncated when appended.
pub const MAX_FIELD_CHARS: usize = 2048;

const PAGE: usize = 1000;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit entry {seq} is corrupt: {detail}")]
    Corrupt { seq: u64, detail: String },
    #[error("checkpoint signing key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Crypto(&'static str),
    /// No longer produced by [`AuditLog`] (appends re-chain after another writer's entries);
    /// kept for callers that match on it.
    #[error(
        "another writer appended to the audit log: expected the batch at seq {expected}, the store put it at {found}"
    )]
    ConcurrentWriter { expected: u64, found: u64 },
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// The outcome of the audited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Denied,
    Error,
}

/// What the caller supplies for one entry. `detail` must never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub time: DateTime<Utc>,
    pub principal: String,
    /// Action name, e.g. `keys/create`.
    pub action: String,
    /// Object path, e.g. `keys/foo` (empty for vault-level actions).
    pub object: String,
    pub version: Option<String>,
    pub result: Outcome,
    /// HTTP status code of the answer.
    pub status: u16,
    pub request_id: String,
    pub client_addr: String,
    pub detail: Option<String>,
}

/// One stored entry, fields in canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339, UTC, millisecond precision (`2026-01-02T03:04:05.678Z`).
    pub time: String,
    pub principal: String,
    pub action: String,
    pub object: String,
    pub version: Option<String>,
    pub result: Outcome,
    pub status: u16,
    pub request_id: String,
    pub client_addr: String,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed part of an entry (everything but `hash`), same field order.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    principal: &'a str,
    action: &'a str,
    object: &'a str,
    version: &'a Option<String>,
    result: Outcome,
    status: u16,
    request_id: &'a str,
    client_addr: &'a str,
    detail: &'a Option<String>,
    prev_hash: &'a str,
}

impl AuditEntry {
    fn body(&self) -> Body<'_> {
        Body {
            seq: self.seq,
            time: &self.time,
            principal: &self.principal,
            action: &self.action,
            object: &self.object,
            version: &self.version,
            result: self.result,
            status: self.status,
            request_id: &self.request_id,
            client_addr: &self.client_addr,
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        }
    }

    /// Recompute this entry's hash from its content and `prev_hash`. `None` if `prev_hash` is not
    /// 64 hex digits.
    pub fn compute_hash(&self) -> Option<[u8; 32]> {
        let prev = parse_hash(&self.prev_hash)?;
        let body = serde_json::to_vec(&self.body()).ok()?;
        let mut h = Sha256::new();
        h.update(prev);
        h.update(&body);
        Some(h.finalize().into())
    }

    /// Canonical serialized form (what is stored).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let v = hex::decode(s).ok()?;
    <[u8; 32]>::try_from(v).ok()
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_FIELD_CHARS {
        s.to_string()
    } else {
        s.chars().take(MAX_FIELD_CHARS).collect()
    }
}

/// Configuration of [`AuditLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Sign a checkpoint when at least this many entries were appended since the last one
    /// (0 = only on demand). Default 1000.
    pub checkpoint_every: u64,
    /// Also sign one when the head moved and the last checkpoint is at least this old
    /// ([`AuditLog::checkpoint_if_due`], called by the owner's timer). Default 60 s.
    pub checkpoint_interval: std::time::Duration,
    /// Sign the first checkpoint as soon as a signer is installed and the log is not empty,
    /// instead of waiting for `checkpoint_every` entries: a young vault with no checkpoint at all
    /// would otherwise accept a rewritten chain with recomputed hashes. Default true.
    pub checkpoint_first: bool,
    /// Where the latest signed checkpoint is also written (atomically), outside the database:
    /// someone who can only change the database cannot roll it back, so a truncated tail shows.
    pub head_file: Option<std::path::PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_interval: std::time::Duration::from_secs(60),
            checkpoint_first: true,
            head_file: None,
        }
    }
}

/// Signs checkpoints. The server supplies it once the vault is unsealed.
pub trait CheckpointSigner: Send + Sync {
    /// ECDSA P-256 / SHA-256 signature, fixed 64-byte `r||s`, over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// Uncompressed SEC1 public point (65 bytes), what [`verify`] takes.
    fn public_key(&self) -> Vec<u8>;
}

/// [`CheckpointSigner`] over a PKCS#8 P-256 private key.
pub struct EcdsaCheckpointSigner {
    pair: EcdsaKeyPair,
}

impl EcdsaCheckpointSigner {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|_| {
            AuditError::Key(format!("expected an unencrypted PKCS#8 P-256 private key, found {} bytes that are not one", pkcs8.len()))
        })?;
        Ok(EcdsaCheckpointSigner { pair })
    }

    /// A fresh key as PKCS#8 (for the caller to store wrapped under the vault root key).
    pub fn generate_pkcs8() -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| AuditError::Crypto("generating a P-256 key failed"))?;
        Ok(zeroize::Zeroizing::new(doc.as_ref().to_vec()))
    }
}

impl CheckpointSigner for EcdsaCheckpointSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| AuditError::Crypto("ECDSA signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }
    fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// A signed statement of the chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: u64,
    pub head_hash: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// base64url of the 64-byte `r||s` signature.
    pub signature: String,
}

#[derive(Serialize)]
struct CheckpointBody<'a> {
    seq: u64,
    head_hash: &'a str,
    time: &'a str,
}

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = CheckpointBody {
            seq: self.seq,
            head_hash: &self.head_hash,
            time: &self.time,
        };
        let mut out = CHECKPOINT_DOMAIN.to_vec();
        out.extend(serde_json::to_vec(&body).unwrap_or_default());
        out
    }

    /// Whether the signature verifies under `public_key` (uncompressed SEC1 P-256 point).
    pub fn signature_valid(&self, public_key: &[u8]) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(&self.signature) else {
            return false;
        };
        sig.len() == 64
            && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
                .verify(&self.signed_bytes(), &sig)
                .is_ok()
    }
}

/// `Table::AuditCheckpoints` key of a checkpoint at `seq`.
pub fn checkpoint_key(seq: u64) -> String {
    format!("{seq:020}")
}

struct Head {
    seq: u64,
    hash: [u8; 32],
    last_checkpoint: u64,
    /// When the last checkpoint was signed by this process (the time rule counts from here).
    last_checkpoint_at: std::time::Instant,
}

/// The appender. Exactly one per store (it owns the chain head); share it (`Arc<AuditLog>`).
pub struct AuditLog {
    store: Arc<dyn Store>,
    config: AuditConfig,
    head: Mutex<Head>,
    signer: RwLock<Option<Arc<dyn CheckpointSigner>>>,
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn decode_entry(row: &AuditRow) -> Result<AuditEntry> {
    serde_json::from_slice(&row.entry).map_err(|e| AuditError::Corrupt {
        seq: row.seq,
        detail: e.to_string(),
    })
}

/// The last stored entry's seq and hash (`(0, zeros)` when empty).
fn load_head(store: &dyn Store) -> Result<(u64, [u8; 32])> {
    let seq = store.audit_head()?;
    if seq == 0 {
        return Ok((0, [0u8; 32]));
    }
    let row = store
        .audit_range(seq, 1)?
        .into_iter()
        .next()
        .ok_or(AuditError::Corrupt {
            seq,
            detail: "the head entry vanished while loading".into(),
        })?;
    let e = decode_entry(&row)?;
    let hash = parse_hash(&e.hash).ok_or(AuditError::Corrupt {
        seq,
        detail: "hash is not 64 hex digits".into(),
    })?;
    Ok((seq, hash))
}

fn last_checkpoint_seq(store: &dyn Store) -> Result<u64> {
    let mut after: Option<String> = None;
    let mut last = 0;
    loop {
        let rows = store.list(Table::AuditCheckpoints, "", after.as_deref(), PAGE)?;
        let Some((k, _)) = rows.last() else {
            return Ok(last);
        };
        last = k.parse().unwrap_or(last);
        if rows.len() < PAGE {
            return Ok(last);
        }
        after = Some(k.clone());
    }
}

impl AuditLog {
    /// Open the log on `store` with the default configuration, loading the chain head from the
    /// last stored entry.
    pub fn new(store: Arc<dyn Store>) -> Result<Self> {
        Self::with_config(store, AuditConfig::default())
    }

    pub fn with_config(store: Arc<dyn Store>, config: AuditConfig) -> Result<Self> {
        let (seq, hash) = load_head(store.as_ref())?;
        let last_checkpoint = last_checkpoint_seq(store.as_ref())?;
        Ok(AuditLog {
            store,
            config,
            head: Mutex::new(Head {
                seq,
                hash,
                last_checkpoint,
                last_checkpoint_at: std::time::Instant::now(),
            }),
            signer: RwLock::new(None),
        })
    }

    /// Install (after unseal) or remove the checkpoint signer.
    pub fn set_signer(&self, signer: Option<Arc<dyn CheckpointSigner>>) {
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = signer;
    }

    /// Current head: (seq, hex hash). `(0, GENESIS_HASH)` when empty.
    pub fn head(&self) -> (u64, String) {
        let h = self.head.lock().unwrap_or_else(|p| p.into_inner());
        (h.seq, hex::encode(h.hash))
    }

    /// Append a batch (one durable store transaction). Returns the seq of the first entry (the
    /// next seq, unchanged head, if `entries` is empty). Signs a checkpoint afterwards when one is
    /// due and a signer is installed; if that fails the entries stay appended and the checkpoint
    /// is retried on the next append. When another process appended meanwhile (replicas on one
    /// database), the batch is re-chained onto what is stored and retried, like [`Self::commit`]:
    /// the log stays one chain in commit order.
    pub fn append(&self, entries: Vec<NewEntry>) -> Result<u64> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if entries.is_empty() {
            return Ok(head.seq + 1);
        }
        self.write_chained(&mut head, Vec::new(), entries)
    }

    /// Apply the data change `ops` and append `entries` in ONE store transaction: the change is
    /// stored with its audit entries or not at all. The chain is computed under the head lock, so
    /// this interleaves correctly with [`AuditLog::append`]. A failed transaction (conflict, full
    /// disk) leaves the head unchanged. Returns the seq of the first entry.
    pub fn commit(&self, ops: Vec<Op>, entries: Vec<NewEntry>) -> Result<u64> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        self.write_chained(&mut head, ops, entries)
    }

    /// [`Self::write_locked`], re-chaining after another process's appends: the store refuses
    /// (nothing written) entries chained for a position that is no longer the next one, so the
    /// head is reloaded and the batch chained again. Bounded, with a short randomized pause once
    /// a few attempts lost the race, so that replicas appending at the same pace drift apart.
    fn write_chained(&self, head: &mut Head, ops: Vec<Op>, entries: Vec<NewEntry>) -> Result<u64> {
        let mut attempt = 0u32;
        loop {
            match self.write_locked(head, ops.clone(), entries.clone()) {
                Err(AuditError::Store(StoreError::Conflict { table, .. }))
                    if table == enclava_store::AUDIT_TABLE && attempt < MAX_RECHAIN =>
                {
                    attempt += 1;
                    if attempt > 3 {
                        let mut b = [0u8; 1];
                        let _ = aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut b);
                        std::thread::sleep(std::time::Duration::from_micros(
                            u64::from(b[0]) * 20 * u64::from(attempt.min(10)),
                        ));
                    }
                    let (seq, hash) = load_head(self.store.as_ref())?;
                    head.seq = seq;
                    head.hash = hash;
                }
                r => return r,
            }
        }
    }

    /// Catch the head up with entries other processes appended (replicas of one database),
    /// checking that each one is intact and links onto the previous one, so that a checkpoint is
    /// only ever signed over a chain this process verified from its own head. Returns the head
    /// seq. An entry that does not link is an error (and nothing is signed over it).
    pub fn sync(&self) -> Result<u64> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_locked(&mut head)?;
        Ok(head.seq)
    }

    fn sync_locked(&self, head: &mut Head) -> Result<()> {
        loop {
            let rows = self.store.audit_range(head.seq + 1, PAGE)?;
            for row in &rows {
                let e = decode_entry(row)?;
                let expected = head.seq + 1;
                if row.seq != expected || e.seq != expected {
                    return Err(AuditError::Corrupt {
                        seq: row.seq,
                        detail: format!(
                            "expected entry {expected} after the head, found stored row {} holding entry {}",
                            row.seq, e.seq
                        ),
                    });
                }
                if e.prev_hash != hex::encode(head.hash) {
                    return Err(AuditError::Corrupt {
                        seq: row.seq,
                        detail: format!(
                            "expected prev_hash {} (the hash of entry {}), found {}",
                            hex::encode(head.hash),
                            head.seq,
                            e.prev_hash
                        ),
                    });
                }
                let h = e
                    .compute_hash()
                    .filter(|h| hex::encode(h) == e.hash)
                    .ok_or(AuditError::Corrupt {
                        seq: row.seq,
                        detail: "the entry's content does not match its hash".into(),
                    })?;
                head.seq = row.seq;
                head.hash = h;
            }
            if rows.len() < PAGE {
                return Ok(());
            }
        }
    }

    fn write_locked(&self, head: &mut Head, ops: Vec<Op>, entries: Vec<NewEntry>) -> Result<u64> {
        let first = head.seq + 1;
        let mut prev = head.hash;
        let mut rows = Vec::with_capacity(entries.len());
        let mut last_time = String::new();
        for (i, n) in entries.into_iter().enumerate() {
            let mut e = AuditEntry {
                seq: first + i as u64,
                time: rfc3339(&n.time),
                principal: clip(&n.principal),
                action: clip(&n.action),
                object: clip(&n.object),
                version: n.version.as_deref().map(clip),
                result: n.result,
                status: n.status,
                request_id: clip(&n.request_id),
                client_addr: clip(&n.client_addr),
                detail: n.detail.as_deref().map(clip),
                prev_hash: hex::encode(prev),
                hash: String::new(),
            };
            let h = e.compute_hash().ok_or(AuditError::Corrupt {
                seq: e.seq,
                detail: "internal: bad prev hash".into(),
            })?;
            e.hash = hex::encode(h);
            prev = h;
            last_time.clone_from(&e.time);
            rows.push(e.to_canonical_json());
        }
        let n = rows.len() as u64;
        // The store refuses entries that would not land at `first` (another process appended):
        // a conflict on the audit table, for `write_chained` to re-chain.
        self.store.transact_audited(ops, rows, first)?;
        if n == 0 {
            return Ok(first);
        }
        head.seq = first + n - 1;
        head.hash = prev;
        let due_by_count = self.config.checkpoint_every > 0
            && head.seq - head.last_checkpoint >= self.config.checkpoint_every;
        let first_one = self.config.checkpoint_every > 0
            && self.config.checkpoint_first
            && head.last_checkpoint == 0;
        if due_by_count || first_one {
            // Best effort: a failed checkpoint (sealed, full disk) is retried on a later append.
            let _ = self.checkpoint_locked(head, &last_time);
        }
        Ok(first)
    }

    /// Sign and store a checkpoint of the current head now. `Ok(None)` if the log is empty;
    /// an error if no signer is installed.
    pub fn checkpoint(&self, now: DateTime<Utc>) -> Result<Option<Checkpoint>> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        self.checkpoint_locked(&mut head, &rfc3339(&now))
    }

    /// Sign a checkpoint if the head moved since the last one and either no checkpoint exists
    /// yet or the last one is at least [`AuditConfig::checkpoint_interval`] old. `Ok(None)` when
    /// none was due. Called by the server's timer, after unseal, and at shutdown (`force`: any
    /// movement of the head is enough).
    ///
    /// The head is first caught up with other processes' entries ([`Self::sync`]), so with
    /// several replicas the checkpoint covers the whole chain, not only this replica's part.
    pub fn checkpoint_if_due(&self, now: DateTime<Utc>, force: bool) -> Result<Option<Checkpoint>> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_locked(&mut head)?;
        if head.seq == 0 || head.seq == head.last_checkpoint {
            return Ok(None);
        }
        let due = force
            || head.last_checkpoint == 0
            || head.last_checkpoint_at.elapsed() >= self.config.checkpoint_interval;
        if !due {
            return Ok(None);
        }
        self.checkpoint_locked(&mut head, &rfc3339(&now))
    }

    /// Seq of the last stored checkpoint (0 if none).
    pub fn last_checkpoint(&self) -> u64 {
        self.head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_checkpoint
    }

    fn checkpoint_locked(&self, head: &mut Head, time: &str) -> Result<Option<Checkpoint>> {
        if head.seq == 0 {
            return Ok(None);
        }
        let signer = self
            .signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                AuditError::Key("no checkpoint signer installed (is the vault sealed?)".into())
            })?;
        let mut cp = Checkpoint {
            seq: head.seq,
            head_hash: hex::encode(head.hash),
            time: time.to_string(),
            signature: String::new(),
        };
        cp.signature = URL_SAFE_NO_PAD.encode(signer.sign(&cp.signed_bytes())?);
        let value = serde_json::to_vec(&cp).map_err(|e| AuditError::Corrupt {
            seq: cp.seq,
            detail: e.to_string(),
        })?;
        self.store.transact(vec![Op::Put {
            table: Table::AuditCheckpoints,
            key: checkpoint_key(cp.seq),
            value,
        }])?;
        head.last_checkpoint = cp.seq;
        head.last_checkpoint_at = std::time::Instant::now();
        // The database row first, then the file: the file never names a head the database
        // does not hold. Its failure is reported (the checkpoint row itself is stored).
        if let Some(path) = &self.config.head_file {
            self.advance_head_file(path, &cp)?;
        }
        Ok(Some(cp))
    }
}

impl AuditLog {
    /// Move the signed head file forward to `cp`, unless the file is evidence of tampering: it
    /// names a head the stored chain does not contain (the log was truncated or rewritten behind
    /// it, e.g. while the server was down). Overwriting it would erase the only trace, so it is
    /// kept (verification keeps reporting the problem until an operator investigates and moves
    /// the file aside) and the error says why.
    fn advance_head_file(&self, path: &std::path::Path, cp: &Checkpoint) -> Result<()> {
        if let Some(problem) = self.head_file_problem_at(path)? {
            return Err(AuditError::Corrupt {
                seq: problem.0,
                detail: format!("{}; the file is kept as evidence", problem.1),
            });
        }
        head_file::write(path, cp)
    }

    /// Whether the configured signed head file names a head the stored chain does not contain
    /// (the log was truncated or rewritten behind it). `None` when consistent or not configured.
    /// The server checks this at start and records what it finds.
    pub fn head_file_problem(&self) -> Result<Option<String>> {
        match &self.config.head_file {
            Some(path) => Ok(self.head_file_problem_at(path)?.map(|p| p.1)),
            None => Ok(None),
        }
    }

    fn head_file_problem_at(&self, path: &std::path::Path) -> Result<Option<(u64, String)>> {
        let existing = match head_file::read(path) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(None),
            Err(e) => return Ok(Some((0, e.to_string()))),
        };
        let stored = if existing.seq == 0 {
            None
        } else {
            self.store
                .audit_range(existing.seq, 1)?
                .into_iter()
                .next()
                .filter(|r| r.seq == existing.seq)
                .and_then(|r| serde_json::from_slice::<AuditEntry>(&r.entry).ok())
        };
        Ok(match stored {
            Some(e) if e.hash == existing.head_hash => None,
            Some(_) => Some((
                existing.seq,
                format!(
                    "the signed head file {} names entry {} with hash {}, but the stored entry {} has another hash: the log was rewritten",
                    path.display(),
                    existing.seq,
                    existing.head_hash,
                    existing.seq
                ),
            )),
            None => Some((
                existing.seq,
                format!(
                    "the signed head file {} names entry {}, but the stored log ends before it: the log was truncated",
                    path.display(),
                    existing.seq
                ),
            )),
        })
    }
}

/// Kind of tampering found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    Modified,
    Removed,
    Inserted,
    Reordered,
}

/// The first problem in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Storage seq where the problem starts (for Removed: the first missing seq).
    pub seq: u64,
    pub kind: ProblemKind,
    pub detail: String,
}

/// A checkpoint that failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointProblem {
    /// The checkpoint's storage key parsed as a seq (0 if unparsable).
    pub seq: u64,
    pub detail: String,
}

/// Result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Rows in storage.
    pub entries: u64,
    /// Entries verified as a correct chain from genesis (stops at the first problem).
    pub verified: u64,
    /// Hash of the last verified entry (GENESIS_HASH if none).
    pub verified_head: String,
    pub checkpoints: u64,
    /// Every checkpoint's signature verifies and every checkpoint that could be compared with the
    /// chain matches it.
    pub checkpoints_ok: bool,
    pub first_problem: Option<Problem>,
    pub first_checkpoint_problem: Option<CheckpointProblem>,
    /// Seq of the signed head (kept outside the database) the chain was compared with, if one
    /// was given and its signature verifies.
    #[serde(default)]
    pub signed_head: Option<u64>,
}

/// Verify the chain and the checkpoints in `store`. `checkpoint_public_key` is the uncompressed
/// SEC1 P-256 point of the checkpoint signer; with a wrong or empty key every checkpoint fails
/// (`checkpoints_ok == false`) while the chain itself is still verified. Memory: one page of
/// entries, the look-ahead window, and the signature-valid checkpoints (one per
/// `checkpoint_every` entries).
pub fn verify(store: &dyn Store, checkpoint_public_key: &[u8]) -> Result<VerifyReport> {
    verify::run(store, checkpoint_public_key, None)
}

/// [`verify`], also comparing the chain with `signed_head`, the latest signed checkpoint kept
/// outside the database ([`head_file::read`]). A signed head beyond the end of the stored chain
/// is reported as a truncated tail ([`ProblemKind::Removed`]); one whose hash disagrees with the
/// chain at its seq as [`ProblemKind::Modified`]; one whose signature does not verify as a
/// checkpoint problem.
pub fn verify_with_head(
    store: &dyn Store,
    checkpoint_public_key: &[u8],
    signed_head: Option<&Checkpoint>,
) -> Result<VerifyReport> {
    verify::run(store, checkpoint_public_key, signed_head)
}

mod verify;

pub mod audited;
pub mod head_file;
pub mod noise;
pub mod scope;

/// Write entries with `seq >= from` as JSON Lines (one canonical entry per line, in seq order),
/// reading in pages so memory stays constant. Returns the number of lines written. An entry that
/// no longer parses as an [`AuditEntry`] but is still JSON is written as that JSON; one that is not
/// JSON at all is an error.
pub fn export_jsonl(store: &dyn Store, from: u64, writer: &mut dyn Write) -> Result<u64> {
    let mut next = from.max(1);
    let mut written = 0u64;
    loop {
        let rows = store.audit_range(next, PAGE)?;
        let Some(last) = rows.last() else { break };
        next = last.seq + 1;
        for row in &rows {
            let line = match serde_json::from_slice::<AuditEntry>(&row.entry) {
                Ok(e) => e.to_canonical_json(),
                Err(_) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&row.entry).map_err(|e| AuditError::Corrupt {
                            seq: row.seq,
                            detail: format!("not JSON: {e}"),
                        })?;
                    serde_json::to_vec(&v).map_err(|e| AuditError::Corrupt {
                        seq: row.seq,
                        detail: e.to_string(),
                    })?
                }
            };
            writer.write_all(&line)?;
            writer.write_all(b"\n")?;
            written += 1;
        }
        if rows.len() < PAGE {
            break;
        }
    }
    writer.flush()?;
    Ok(written)
}
