//! Appraisal policies per attestation type and reference-value sets per scope, versioned in the
//! store, compiled once and cached.
//!
//! # Policies
//! One active policy per attestation type (`snp`, `tdx`, `sgx`, `azure-snp`, `azure-tdx`, `sim`;
//! MAA names `SevSnpVm`, `TdxVm`, `SgxEnclave`, `OpenEnclave` map to these, OpenEnclave sharing
//! `sgx`). A policy is Rego (package `enclava.appraisal`, see enclava-policy) or MAA policy
//! language text; [`PolicyLanguage::detect`] tells them apart. With nothing stored, the built-in
//! default of enclava-policy applies (version 0). [`PolicyStore::set`] stores a new version,
//! [`PolicyStore::reset`] stores a new version holding the built-in default again; both compile
//! first (an invalid policy is never stored) and return a [`PolicyChange`] for the audit log.
//!
//! # Reference values
//! Named sets (`measurements`, `min_tcb`, `signers`, `min_svn`, ... any JSON) per scope (a tenant
//! or workload name), versioned the same way; the current sets of the request's scope are the
//! policy input's `reference` member (`{"<set name>": <value>}`). Deleting stores a tombstone
//! version.
//!
//! # Store layout (`Table::Policies`, JSON values)
//! | key | value |
//! |---|---|
//! | `attestation/policy/{type}` | the current [`PolicyRecord`] |
//! | `attestation/policy-version/{type}/{version:020}` | every [`PolicyRecord`] ever set |
//! | `attestation/reference/{scope}/{name}` | the current [`ReferenceRecord`] |
//! | `attestation/reference-version/{scope}/{name}/{version:020}` | every version |
//!
//! Writes are one transaction with an `Expect` on the current row (two racing writers cannot
//! both win: the loser gets [`AttestError::Conflict`]).
//!
//! # Integrity
//! Every row is stored MAC'd under a root-derived key ([`crate::integrity`]; the MAC binds the
//! row key and the exact bytes). A row that fails is never evaluated or served: reading it
//! answers [`AttestError::Integrity`] naming the row. The keys come with
//! [`PolicyStore::with_row_keys`]; without them stored rows are refused (the built-in defaults
//! still apply where nothing is stored). Setting or resetting a policy whose current row fails
//! its check is allowed (that is how an operator repairs it). Rows written before this existed
//! are adopted once ([`PolicyStore::migrate_row_integrity`]).
//!
//! # Caching
//! The compiled active policy of each type and the current reference sets of each scope are kept
//! in memory: attestation reads them on every request, and a store read per request cost more than
//! the policy evaluation. A change made through this instance replaces the cached value at once. A
//! change made through another instance or another process sharing the store is picked up when
//! the cached value is next re-validated against the store, at most [`DEFAULT_REVALIDATE_AFTER`]
//! after it was last checked ([`PolicyStore::revalidate_after`] changes the interval; zero checks
//! on every use), and at once when the store's change feed reports a change to the policies table
//! (see [`enclava_store::coherence`]); while that feed is not confirmed alive, every use checks
//! the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use enclava_evidence::Tee;
use enclava_policy::{AppraisalPolicy, Decision, MaaPolicy, rego::defaults};
use enclava_store::{Op, Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::AttestError;
use crate::integrity::{PolicyRowKeys, RowKey, RowMigration, is_enveloped};
use crate::request::MaaType;

const POLICY_HEAD: &str = "attestation/policy/";
const POLICY_VERSION: &str = "attestation/policy-version/";
const REF_HEAD: &str = "attestation/reference/";
const REF_VERSION: &str = "attestation/reference-version/";
/// Meta key recording that the policy rows are integrity-protected (see
/// [`PolicyStore::migrate_row_integrity`]).
pub const ROW_INTEGRITY_META: &str = "attestation/row-integrity";
/// Largest reference-value set (serialized bytes).
pub const MAX_REFERENCE_BYTES: usize = 256 * 1024;
/// Most reference sets read per scope.
pub const MAX_REFERENCE_SETS: usize = 256;
/// Largest policy text.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// How long a cached policy or reference scope is used before it is checked against the store.
pub const DEFAULT_REVALIDATE_AFTER: Duration = Duration::from_secs(1);
/// Most reference scopes kept in memory (the cache starts over when a new scope would exceed it).
const MAX_CACHED_SCOPES: usize = 4096;

/// Every attestation type with a policy.
pub const POLICY_TYPES: [Tee; 7] = [
    Tee::Snp,
    Tee::Tdx,
    Tee::Sgx,
    Tee::AzureSnp,
    Tee::AzureTdx,
    Tee::Sim,
    Tee::Sample,
];

/// The policy type for a name: a TEE name (`snp`, ...) or an MAA type name (case-insensitive).
pub fn policy_type(name: &str) -> Result<Tee, AttestError> {
    if let Ok(t) = name.parse::<Tee>() {
        return Ok(t);
    }
    MaaType::from_name(name)
        .map(MaaType::tee)
        .map_err(|_| AttestError::UnknownType {
            found: name.chars().take(64).collect(),
            expected: "snp, tdx, sgx, azure-snp, azure-tdx, sim, sample, SevSnpVm, TdxVm, SgxEnclave, OpenEnclave",
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyLanguage {
    Rego,
    Maa,
}

impl PolicyLanguage {
    /// Rego when some line (trimmed) starts with `package `, else the MAA policy language.
    pub fn detect(text: &str) -> PolicyLanguage {
        if text
            .lines()
            .any(|l| l.trim_start().starts_with("package ") || l.trim() == "package")
        {
            PolicyLanguage::Rego
        } else {
            PolicyLanguage::Maa
        }
    }
}

/// A compiled policy of either language.
#[derive(Debug, Clone)]
pub enum CompiledPolicy {
    Rego(Box<AppraisalPolicy>),
    Maa(MaaPolicy),
}

impl CompiledPolicy {
    /// Compile / parse `text` (language detected).
    pub fn compile(policy_type: &str, text: &str) -> Result<CompiledPolicy, AttestError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(AttestError::InvalidPolicy {
                policy_type: policy_type.into(),
                reason: format!(
                    "expected at most {MAX_POLICY_BYTES} bytes, found {}",
                    text.len()
                ),
            });
        }
        let invalid = |e| AttestError::from_policy(policy_type, e, false);
        match PolicyLanguage::detect(text) {
            PolicyLanguage::Rego => AppraisalPolicy::compile(policy_type, text)
                .map(|p| CompiledPolicy::Rego(Box::new(p)))
                .map_err(invalid),
            PolicyLanguage::Maa => MaaPolicy::parse(text)
                .map(CompiledPolicy::Maa)
                .map_err(invalid),
        }
    }

    pub fn language(&self) -> PolicyLanguage {
        match self {
            CompiledPolicy::Rego(_) => PolicyLanguage::Rego,
            CompiledPolicy::Maa(_) => PolicyLanguage::Maa,
        }
    }

    /// Rego policies see `input` (claims, runtime_data, init_data, reference); MAA policies see
    /// the MAA-named claims of the token-to-be.
    pub fn evaluate(
        &self,
        policy_type: &str,
        input: &Value,
        maa_claims: &Map<String, Value>,
    ) -> Result<Decision, AttestError> {
        match self {
            CompiledPolicy::Rego(p) => p
                .evaluate(input)
                .map_err(|e| AttestError::from_policy(policy_type, e, true)),
            CompiledPolicy::Maa(p) => Ok(p.evaluate_map(maa_claims)),
        }
    }
}

/// One stored (or built-in) policy version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The attestation type (`snp`, ...).
    pub policy_type: String,
    /// 0 = the built-in default, never stored; stored versions count from 1.
    pub version: u64,
    pub language: PolicyLanguage,
    /// True when the text is the built-in default (version 0, or a reset).
    pub builtin: bool,
    pub text: String,
    /// MAA's `x-ms-policy-hash` of the text: base64url(SHA-256(base64url(text))).
    pub hash: String,
    pub who: String,
    pub at: Option<DateTime<Utc>>,
    /// For a policy uploaded as a signed JWS: that JWS and its verified signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedPolicy>,
    /// For a policy uploaded as an unsigned JWS: that JWS as received. MAA's
    /// `x-ms-policy-token-hash` is over the bytes the client sent, and a client's JSON encoding
    /// of the payload need not be ours, so it is kept rather than re-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_jws: Option<String>,
}

impl PolicyRecord {
    /// The policy as the JWS MAA answers with (`x-ms-policy`): the upload as received (signed or
    /// not), else the text as an unsigned policy JWS.
    pub fn policy_jws(&self) -> String {
        match (&self.signed, &self.upload_jws) {
            (Some(s), _) => s.jws.clone(),
            (None, Some(j)) => j.clone(),
            (None, None) => enclava_policy::maa::unsigned_policy_jws(&self.text),
        }
    }
}

/// A signed policy upload as received, kept with the policy it carried (MAA answers with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPolicy {
    /// The upload JWS (`x-ms-policy` of the policy token).
    pub jws: String,
    /// The signer as a JWK with its certificate (`x-ms-policy-signer`).
    pub signer: Value,
    /// Hex SHA-256 of the signer's certificate.
    pub signer_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Set,
    Reset,
    Delete,
}

/// What a policy change did, for the caller's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    pub policy_type: String,
    pub version: u64,
    pub action: ChangeAction,
    pub language: PolicyLanguage,
    /// MAA policy hash of the new text.
    pub hash: String,
    pub who: String,
    pub at: DateTime<Utc>,
}

/// One reference-value set version. `value` null = deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceRecord {
    pub scope: String,
    pub name: String,
    pub version: u64,
    pub value: Value,
    /// Hex SHA-256 of the serialized value.
    pub hash: String,
    pub who: String,
    pub at: DateTime<Utc>,
}

/// What a reference-value change did, for the caller's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceChange {
    pub scope: String,
    pub name: String,
    pub version: u64,
    pub action: ChangeAction,
    pub hash: String,
    pub who: String,
    pub at: DateTime<Utc>,
}

/// The active policy of a type: its record and its compiled form.
#[derive(Debug)]
pub struct ActivePolicy {
    pub record: PolicyRecord,
    pub compiled: CompiledPolicy,
}

/// The built-in default for a type (version 0).
pub fn builtin_record(tee: Tee) -> PolicyRecord {
    let text = defaults::source(tee.as_str()).unwrap_or(defaults::SIM);
    PolicyRecord {
        policy_type: tee.as_str().into(),
        version: 0,
        language: PolicyLanguage::Rego,
        builtin: true,
        text: text.into(),
        hash: enclava_policy::maa_policy_hash(text),
        who: "builtin".into(),
        at: None,
        signed: None,
        upload_jws: None,
    }
}

fn valid_name(s: &str, what: &str) -> Result<(), AttestError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AttestError::InvalidReference(format!(
            "{what}: expected 1 to 128 characters of [A-Za-z0-9._-], found {:?}",
            s.chars().take(64).collect::<String>()
        )))
    }
}

/// A row key as shown in errors and logs (our keys are ASCII; a tampered one may not be).
fn row_name(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect()
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> AttestError {
    AttestError::Store(format!("stored record {key} is unreadable: {e}"))
}

/// The reference sets of one scope, as the policy input's `reference` member.
type ReferenceSets = Arc<Map<String, Value>>;

/// A cached value and when it was last known to match the store.
struct Checked<T> {
    value: T,
    checked: Instant,
    /// The change feed's version of the policies table when it was checked.
    seen: u64,
}

/// Policies and reference values over a [`Store`].
pub struct PolicyStore {
    store: Arc<dyn Store>,
    row_keys: Option<Arc<PolicyRowKeys>>,
    revalidate_after: Duration,
    /// Changes other processes commit to the store (see [`enclava_store::coherence`]).
    coherence: Arc<enclava_store::Coherence>,
    cache: Mutex<HashMap<Tee, Checked<Arc<ActivePolicy>>>>,
    references: Mutex<HashMap<String, Checked<ReferenceSets>>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore").finish_non_exhaustive()
    }
}

impl PolicyStore {
    pub fn new(store: Arc<dyn Store>) -> PolicyStore {
        PolicyStore {
            coherence: store.coherence(),
            store,
            row_keys: None,
            revalidate_after: DEFAULT_REVALIDATE_AFTER,
            cache: Mutex::new(HashMap::new()),
            references: Mutex::new(HashMap::new()),
        }
    }

    /// Check cached policies and reference sets against the store when they are older than
    /// `interval` (see the module docs); `Duration::ZERO` checks on every use.
    pub fn revalidate_after(mut self, interval: Duration) -> PolicyStore {
        self.revalidate_after = interval;
        self
    }

    /// Authenticate rows with `keys` (derived from the vault root; see [`crate::integrity`]).
    pub fn with_row_keys(mut self, keys: Arc<PolicyRowKeys>) -> PolicyStore {
        self.row_keys = Some(keys);
        self
    }

    pub(crate) fn store_ref(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn keys(&self) -> Result<&PolicyRowKeys, AttestError> {
        self.row_keys.as_deref().ok_or_else(|| {
            AttestError::Config(
                "no row integrity key is installed: stored policies cannot be verified".into(),
            )
        })
    }

    fn row_key(&self) -> Result<&RowKey, AttestError> {
        Ok(&self.keys()?.policies)
    }

    /// The payload of the stored row `key`, if its MAC verifies.
    fn open_row(&self, key: &str, stored: &[u8]) -> Result<Vec<u8>, AttestError> {
        self.row_key()?
            .open(key, stored)
            .map(<[u8]>::to_vec)
            .map_err(|p| AttestError::Integrity {
                key: row_name(key),
                problem: p.to_string(),
            })
    }

    /// An `Op::Put` of `payload` as the authenticated row `key`.
    pub(crate) fn put_row(&self, key: String, payload: &[u8]) -> Result<Op, AttestError> {
        let value = self.row_key()?.seal(&key, payload);
        Ok(Op::Put {
            table: Table::Policies,
            key,
            value,
        })
    }

    /// Parse the verified payload of the stored row `key`.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        stored: &[u8],
    ) -> Result<T, AttestError> {
        let payload = self.open_row(key, stored)?;
        serde_json::from_slice(&payload).map_err(|e| corrupt(key, e))
    }

    /// The version of the current row `old` (at `head_key`), for numbering the next one. When that
    /// row fails its integrity check its number is not trusted: the highest version row under
    /// `version_prefix` is used instead, so a tampered policy can be replaced.
    fn current_version(
        &self,
        head_key: &str,
        old: Option<&[u8]>,
        version_prefix: &str,
        version_of: impl Fn(&[u8]) -> Result<u64, serde_json::Error>,
    ) -> Result<u64, AttestError> {
        let Some(old) = old else { return Ok(0) };
        match self.open_row(head_key, old) {
            Ok(payload) => version_of(&payload).map_err(|e| corrupt(head_key, e)),
            Err(AttestError::Integrity { .. }) => {
                let mut max = 0;
                let mut after: Option<String> = None;
                loop {
                    let rows =
                        self.store
                            .list(Table::Policies, version_prefix, after.as_deref(), 256)?;
                    let Some((last, _)) = rows.last() else { break };
                    after = Some(last.clone());
                    for (k, _) in &rows {
                        if let Some(v) = k
                            .get(version_prefix.len()..)
                            .and_then(|n| n.parse::<u64>().ok())
                        {
                            max = max.max(v);
                        }
                    }
                }
                Ok(max)
            }
            Err(e) => Err(e),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Tee, Checked<Arc<ActivePolicy>>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reference_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Checked<ReferenceSets>>> {
        self.references.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a value checked at `checked` (policies table at feed version `seen`) may be
    /// served: recent enough, and no change to the policies table reported since, and the
    /// change feed confirmed alive (otherwise every use checks the store).
    fn fresh(&self, checked: Instant, seen: u64) -> bool {
        !self.revalidate_after.is_zero()
            && checked.elapsed() < self.revalidate_after
            && self.coherence.trusted()
            && self.feed_version() == seen
    }

    fn feed_version(&self) -> u64 {
        self.coherence.table_version(Table::Policies)
    }

    pub(crate) fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, AttestError> {
        match self.store.get(Table::Policies, key)? {
            None => Ok(None),
            Some(b) => self.decode(key, &b).map(Some),
        }
    }

    /// The current policy of a type (the built-in default when none is stored).
    pub fn get(&self, tee: Tee) -> Result<PolicyRecord, AttestError> {
        Ok(self
            .read(&format!("{POLICY_HEAD}{tee}"))?
            .unwrap_or_else(|| builtin_record(tee)))
    }

    /// The active compiled policy (cached; see the module docs).
    pub fn active(&self, tee: Tee) -> Result<Arc<ActivePolicy>, AttestError> {
        if let Some(c) = self.cache().get(&tee)
            && self.fresh(c.checked, c.seen)
        {
            return Ok(Arc::clone(&c.value));
        }
        // Both before the read: a change after them makes the entry stale again.
        let checked = Instant::now();
        let seen = self.feed_version();
        let record = self.get(tee)?;
        if let Some(c) = self.cache().get_mut(&tee)
            && c.value.record == record
        {
            c.checked = checked;
            c.seen = seen;
            return Ok(Arc::clone(&c.value));
        }
        let compiled = CompiledPolicy::compile(&record.policy_type, &record.text)?;
        let active = Arc::new(ActivePolicy { record, compiled });
        self.cache().insert(
            tee,
            Checked {
                value: Arc::clone(&active),
                checked,
                seen,
            },
        );
        Ok(active)
    }

    /// Number of compiled policies cached.
    pub fn cached(&self) -> usize {
        self.cache().len()
    }

    #[allow(clippy::too_many_arguments)]
    fn write_policy(
        &self,
        tee: Tee,
        text: &str,
        builtin: bool,
        signed: Option<SignedPolicy>,
        upload_jws: Option<String>,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        let compiled = CompiledPolicy::compile(tee.as_str(), text)?;
        let head_key = format!("{POLICY_HEAD}{tee}");
        let old = self.store.get(Table::Policies, &head_key)?;
        let old_version = self.current_version(
            &head_key,
            old.as_deref(),
            &format!("{POLICY_VERSION}{tee}/"),
            |b| serde_json::from_slice::<PolicyRecord>(b).map(|r| r.version),
        )?;
        let record = PolicyRecord {
            policy_type: tee.as_str().into(),
            version: old_version + 1,
            language: compiled.language(),
            builtin,
            text: text.into(),
            hash: enclava_policy::maa_policy_hash(text),
            who: who.into(),
            at: Some(now),
            signed,
            upload_jws,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| AttestError::Store(e.to_string()))?;
        let seen = self.feed_version();
        self.store.transact(vec![
            Op::Expect {
                table: Table::Policies,
                key: head_key.clone(),
                value: old,
            },
            self.put_row(head_key, &bytes)?,
            self.put_row(
                format!("{POLICY_VERSION}{tee}/{:020}", record.version),
                &bytes,
            )?,
        ])?;
        let change = PolicyChange {
            policy_type: record.policy_type.clone(),
            version: record.version,
            action: if builtin {
                ChangeAction::Reset
            } else {
                ChangeAction::Set
            },
            language: record.language,
            hash: record.hash.clone(),
            who: who.into(),
            at: now,
        };
        self.cache().insert(
            tee,
            Checked {
                value: Arc::new(ActivePolicy { record, compiled }),
                checked: Instant::now(),
                seen,
            },
        );
        Ok(change)
    }

    /// Store `text` as the new policy of `tee` (compiled first; an invalid policy is refused).
    pub fn set(
        &self,
        tee: Tee,
        text: &str,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        self.write_policy(tee, text, false, None, None, who, now)
    }

    /// Like [`PolicyStore::set`] for a policy that arrived as a signed upload (kept with it).
    pub fn set_signed(
        &self,
        tee: Tee,
        text: &str,
        signed: SignedPolicy,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        self.write_policy(tee, text, false, Some(signed), None, who, now)
    }

    /// Like [`PolicyStore::set`] for a policy that arrived as an unsigned JWS (kept as received).
    pub fn set_unsigned_jws(
        &self,
        tee: Tee,
        text: &str,
        jws: &str,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        self.write_policy(tee, text, false, None, Some(jws.to_string()), who, now)
    }

    /// Back to the built-in default (stored as a new version, so the history stays whole).
    pub fn reset(
        &self,
        tee: Tee,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        let text = builtin_record(tee).text;
        self.write_policy(tee, &text, true, None, None, who, now)
    }

    /// Every record under `prefix`, in key order (page by page).
    pub(crate) fn read_all<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<T>, AttestError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store
                .list(Table::Policies, prefix, after.as_deref(), 256)?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            for (k, v) in &rows {
                out.push(self.decode(k, v)?);
            }
        }
        Ok(out)
    }

    /// Every stored version of a type's policy, oldest first (the implicit version 0 excluded).
    pub fn versions(&self, tee: Tee) -> Result<Vec<PolicyRecord>, AttestError> {
        let prefix = format!("{POLICY_VERSION}{tee}/");
        self.read_all(&prefix)
    }

    fn write_reference(
        &self,
        scope: &str,
        name: &str,
        value: Value,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<ReferenceChange, AttestError> {
        valid_name(scope, "scope")?;
        valid_name(name, "reference set name")?;
        let serialized =
            serde_json::to_vec(&value).map_err(|e| AttestError::Store(e.to_string()))?;
        if serialized.len() > MAX_REFERENCE_BYTES {
            return Err(AttestError::InvalidReference(format!(
                "set {name}: expected at most {MAX_REFERENCE_BYTES} bytes, found {}",
                serialized.len()
            )));
        }
        let head_key = format!("{REF_HEAD}{scope}/{name}");
        let old = self.store.get(Table::Policies, &head_key)?;
        let old_version = self.current_version(
            &head_key,
            old.as_deref(),
            &format!("{REF_VERSION}{scope}/{name}/"),
            |b| serde_json::from_slice::<ReferenceRecord>(b).map(|r| r.version),
        )?;
        let deleting = value.is_null();
        if deleting && old.is_none() {
            return Err(AttestError::InvalidReference(format!(
                "set {name} in scope {scope}: expected an existing set to delete, found none"
            )));
        }
        if !deleting && old.is_none() {
            let existing = self.store.list(
                Table::Policies,
                &format!("{REF_HEAD}{scope}/"),
                None,
                MAX_REFERENCE_SETS,
            )?;
            if existing.len() >= MAX_REFERENCE_SETS {
                return Err(AttestError::InvalidReference(format!(
                    "scope {scope}: expected at most {MAX_REFERENCE_SETS} sets, found {}",
                    existing.len()
                )));
            }
        }
        let record = ReferenceRecord {
            scope: scope.into(),
            name: name.into(),
            version: old_version + 1,
            hash: hex::encode(Sha256::digest(&serialized)),
            value,
            who: who.into(),
            at: now,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| AttestError::Store(e.to_string()))?;
        let mut ops = vec![Op::Expect {
            table: Table::Policies,
            key: head_key.clone(),
            value: old,
        }];
        if deleting {
            ops.push(Op::Delete {
                table: Table::Policies,
                key: head_key,
            });
        } else {
            ops.push(self.put_row(head_key, &bytes)?);
        }
        ops.push(self.put_row(
            format!("{REF_VERSION}{scope}/{name}/{:020}", record.version),
            &bytes,
        )?);
        self.store.transact(ops)?;
        // The scope's sets are re-read on their next use.
        self.reference_cache().remove(scope);
        Ok(ReferenceChange {
            scope: record.scope,
            name: record.name,
            version: record.version,
            action: if deleting {
                ChangeAction::Delete
            } else {
                ChangeAction::Set
            },
            hash: record.hash,
            who: record.who,
            at: now,
        })
    }

    /// Store a new version of reference set `name` in `scope` (any JSON but null).
    pub fn set_reference(
        &self,
        scope: &str,
        name: &str,
        value: Value,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<ReferenceChange, AttestError> {
        if value.is_null() {
            return Err(AttestError::InvalidReference(
                "expected a JSON value, found null (use delete_reference)".into(),
            ));
        }
        self.write_reference(scope, name, value, who, now)
    }

    /// Delete a reference set (a tombstone version is kept in the history).
    pub fn delete_reference(
        &self,
        scope: &str,
        name: &str,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<ReferenceChange, AttestError> {
        self.write_reference(scope, name, Value::Null, who, now)
    }

    /// The current record of one set.
    pub fn get_reference(
        &self,
        scope: &str,
        name: &str,
    ) -> Result<Option<ReferenceRecord>, AttestError> {
        valid_name(scope, "scope")?;
        valid_name(name, "reference set name")?;
        self.read(&format!("{REF_HEAD}{scope}/{name}"))
    }

    /// Every version of one set, oldest first (deletions have a null value).
    pub fn reference_versions(
        &self,
        scope: &str,
        name: &str,
    ) -> Result<Vec<ReferenceRecord>, AttestError> {
        valid_name(scope, "scope")?;
        valid_name(name, "reference set name")?;
        let prefix = format!("{REF_VERSION}{scope}/{name}/");
        self.read_all(&prefix)
    }

    /// The current sets of a scope as the policy input's `reference` object (cached; see the
    /// module docs).
    pub fn references(&self, scope: &str) -> Result<ReferenceSets, AttestError> {
        valid_name(scope, "scope")?;
        if let Some(c) = self.reference_cache().get(scope)
            && self.fresh(c.checked, c.seen)
        {
            return Ok(Arc::clone(&c.value));
        }
        let checked = Instant::now();
        let seen = self.feed_version();
        let sets = Arc::new(self.stored_references(scope)?);
        let mut cache = self.reference_cache();
        if cache.len() >= MAX_CACHED_SCOPES && !cache.contains_key(scope) {
            cache.clear();
        }
        cache.insert(
            scope.to_string(),
            Checked {
                value: Arc::clone(&sets),
                checked,
                seen,
            },
        );
        Ok(sets)
    }

    /// The current sets of a scope as stored (no cache: for listing them).
    pub fn stored_references(&self, scope: &str) -> Result<Map<String, Value>, AttestError> {
        valid_name(scope, "scope")?;
        let rows = self.store.list(
            Table::Policies,
            &format!("{REF_HEAD}{scope}/"),
            None,
            MAX_REFERENCE_SETS,
        )?;
        let mut out = Map::new();
        for (k, v) in rows {
            let r: ReferenceRecord = self.decode(&k, &v)?;
            out.insert(r.name, r.value);
        }
        Ok(out)
    }
}

impl PolicyStore {
    /// Adopt policy and reference rows written before rows were integrity-protected: MAC them
    /// once and record that in [`ROW_INTEGRITY_META`] (itself MAC'd), in one transaction. Called
    /// by the server after every unseal; the caller logs and audits the result. The rules (and
    /// why adopting once is acceptable) are those of the identity rows: before this change
    /// nothing could be verified, so MAC'ing what is there at the first unseal trusts nothing
    /// new; afterwards the marker exists and unauthenticated rows are never adopted (a marker
    /// that fails its MAC is an error; a missing marker next to authenticated rows adopts
    /// nothing and reports the unauthenticated rows in [`RowMigration::refused`]).
    pub fn migrate_row_integrity(&self, now: DateTime<Utc>) -> Result<RowMigration, AttestError> {
        let keys = self.keys()?;
        for _ in 0..3 {
            if let Some(m) = self.store.get(Table::Meta, ROW_INTEGRITY_META)? {
                keys.meta
                    .open(ROW_INTEGRITY_META, &m)
                    .map_err(|p| AttestError::Integrity {
                        key: format!("meta/{ROW_INTEGRITY_META}"),
                        problem: p.to_string(),
                    })?;
                return Ok(RowMigration {
                    already_protected: true,
                    ..RowMigration::default()
                });
            }
            let mut rows = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list(Table::Policies, "", after.as_deref(), 256)?;
                let n = page.len();
                after = page.last().map(|(k, _)| k.clone());
                rows.extend(page);
                if n < 256 {
                    break;
                }
            }
            let (authenticated, legacy): (Vec<_>, Vec<_>) =
                rows.into_iter().partition(|(_, v)| is_enveloped(v));
            let names: Vec<String> = legacy.iter().map(|(k, _)| row_name(k)).collect();
            let adopt = authenticated.is_empty();
            let mut ops = Vec::new();
            if adopt {
                for (key, old) in legacy {
                    let value = keys.policies.seal(&key, &old);
                    ops.push(Op::Expect {
                        table: Table::Policies,
                        key: key.clone(),
                        value: Some(old),
                    });
                    ops.push(Op::Put {
                        table: Table::Policies,
                        key,
                        value,
                    });
                }
            }
            let marker = serde_json::to_vec(&serde_json::json!({
                "version": 1,
                "at": now,
                "adopted": if adopt { names.len() } else { 0 },
            }))
            .map_err(|e| AttestError::Store(e.to_string()))?;
            ops.push(Op::Expect {
                table: Table::Meta,
                key: ROW_INTEGRITY_META.into(),
                value: None,
            });
            ops.push(Op::Put {
                table: Table::Meta,
                key: ROW_INTEGRITY_META.into(),
                value: keys.meta.seal(ROW_INTEGRITY_META, &marker),
            });
            match self.store.transact(ops) {
                Ok(()) => {
                    // Cached values were read before: drop them.
                    self.cache().clear();
                    self.reference_cache().clear();
                    return Ok(RowMigration::of_pass(adopt, names));
                }
                Err(enclava_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AttestError::Conflict {
            what: format!("meta/{ROW_INTEGRITY_META} (the policy rows kept changing)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn keys(byte: u8) -> Arc<PolicyRowKeys> {
        Arc::new(
            PolicyRowKeys::derive(|_| Ok::<_, String>(zeroize::Zeroizing::new([byte; 32])))
                .unwrap(),
        )
    }

    fn store() -> PolicyStore {
        PolicyStore::new(Arc::new(enclava_store::SqliteStore::in_memory().unwrap()))
            .with_row_keys(keys(1))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    const ALLOW_ALL: &str = "package enclava.appraisal\nimport rego.v1\nallow := true\n";

    #[test]
    fn names() {
        assert_eq!(policy_type("snp").unwrap(), Tee::Snp);
        assert_eq!(policy_type("SevSnpVm").unwrap(), Tee::Snp);
        assert_eq!(policy_type("openenclave").unwrap(), Tee::Sgx);
        assert_eq!(policy_type("azure-tdx").unwrap(), Tee::AzureTdx);
        assert_eq!(
            policy_type("nitro").unwrap_err().code(),
            "unknown_attestation_type"
        );
        assert_eq!(PolicyLanguage::detect(ALLOW_ALL), PolicyLanguage::Rego);
        assert_eq!(
            PolicyLanguage::detect("version=1.0; authorizationrules { => permit(); };"),
            PolicyLanguage::Maa
        );
    }

    #[test]
    fn versions_set_reset_cache() {
        let s = store();
        let d = s.get(Tee::Snp).unwrap();
        assert_eq!(
            (d.version, d.builtin, d.language),
            (0, true, PolicyLanguage::Rego)
        );
        assert_eq!(d.text, defaults::SNP);
        let a = s.active(Tee::Snp).unwrap();
        assert_eq!(s.cached(), 1);
        assert!(Arc::ptr_eq(&a, &s.active(Tee::Snp).unwrap()));

        let c = s.set(Tee::Snp, ALLOW_ALL, "alice", now()).unwrap();
        assert_eq!(
            (c.version, c.action, c.who.as_str()),
            (1, ChangeAction::Set, "alice")
        );
        assert_eq!(c.hash, enclava_policy::maa_policy_hash(ALLOW_ALL));
        let a2 = s.active(Tee::Snp).unwrap();
        assert_eq!(a2.record.version, 1);
        assert!(!Arc::ptr_eq(&a, &a2));

        let maa = "version=1.0; authorizationrules { => permit(); };";
        let c = s.set(Tee::Snp, maa, "bob", now()).unwrap();
        assert_eq!((c.version, c.language), (2, PolicyLanguage::Maa));
        assert!(matches!(
            s.active(Tee::Snp).unwrap().compiled,
            CompiledPolicy::Maa(_)
        ));

        let e = s
            .set(
                Tee::Snp,
                "package enclava.appraisal\nallow if {",
                "eve",
                now(),
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid_policy");
        let e = s
            .set(Tee::Snp, "version=9.9; nonsense", "eve", now())
            .unwrap_err();
        assert_eq!(e.code(), "invalid_policy");
        assert_eq!(s.get(Tee::Snp).unwrap().version, 2);

        let c = s.reset(Tee::Snp, "carol", now()).unwrap();
        assert_eq!((c.version, c.action), (3, ChangeAction::Reset));
        let cur = s.get(Tee::Snp).unwrap();
        assert!(cur.builtin);
        assert_eq!(cur.text, defaults::SNP);
        let v = s.versions(Tee::Snp).unwrap();
        assert_eq!(v.iter().map(|r| r.version).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(v[1].who, "bob");
        // Other types are untouched.
        assert_eq!(s.get(Tee::Tdx).unwrap().version, 0);
        assert!(s.versions(Tee::Tdx).unwrap().is_empty());

        // A second instance over the same store: its change is picked up once the cached
        // policy is re-validated, not before.
        let other = PolicyStore::new(Arc::clone(&s.store)).with_row_keys(keys(1));
        other.set(Tee::Snp, ALLOW_ALL, "dave", now()).unwrap();
        assert_eq!(s.active(Tee::Snp).unwrap().record.version, 3);
        let s = s.revalidate_after(Duration::ZERO);
        assert_eq!(s.active(Tee::Snp).unwrap().record.version, 4);
    }

    #[test]
    fn reference_cache_follows_local_and_remote_changes() {
        let s = store();
        assert!(s.references("t1").unwrap().is_empty());
        s.set_reference("t1", "m", json!({"measurements": ["aa"]}), "a", now())
            .unwrap();
        // A local change is visible at once.
        assert_eq!(
            s.references("t1").unwrap()["m"],
            json!({"measurements": ["aa"]})
        );
        // A change through another instance waits for re-validation.
        let other = PolicyStore::new(Arc::clone(&s.store)).with_row_keys(keys(1));
        other.delete_reference("t1", "m", "b", now()).unwrap();
        assert_eq!(s.references("t1").unwrap().len(), 1);
        let s = s.revalidate_after(Duration::ZERO);
        assert!(s.references("t1").unwrap().is_empty());
        // Scopes are separate.
        s.set_reference("t2", "x", json!(1), "a", now()).unwrap();
        assert!(s.references("t1").unwrap().is_empty());
        assert_eq!(s.references("t2").unwrap()["x"], json!(1));
    }

    #[test]
    fn reference_sets() {
        let s = store();
        let c = s
            .set_reference(
                "tenant-a",
                "measurements",
                json!({"measurements": ["aa"]}),
                "alice",
                now(),
            )
            .unwrap();
        assert_eq!((c.version, c.action), (1, ChangeAction::Set));
        s.set_reference(
            "tenant-a",
            "tcb",
            json!({"min_tcb": {"snp": 5}}),
            "alice",
            now(),
        )
        .unwrap();
        s.set_reference("tenant-ab", "x", json!(1), "alice", now())
            .unwrap();
        let c = s
            .set_reference(
                "tenant-a",
                "measurements",
                json!({"measurements": ["bb"]}),
                "bob",
                now(),
            )
            .unwrap();
        assert_eq!(c.version, 2);
        let r = s.references("tenant-a").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r["measurements"], json!({"measurements": ["bb"]}));
        assert_eq!(r["tcb"]["min_tcb"]["snp"], 5);
        let d = s
            .delete_reference("tenant-a", "tcb", "carol", now())
            .unwrap();
        assert_eq!((d.version, d.action), (2, ChangeAction::Delete));
        assert_eq!(s.references("tenant-a").unwrap().len(), 1);
        assert!(s.get_reference("tenant-a", "tcb").unwrap().is_none());
        let h = s.reference_versions("tenant-a", "tcb").unwrap();
        assert_eq!(h.len(), 2);
        assert!(h[1].value.is_null());
        assert!(s.references("nobody").unwrap().is_empty());

        for (scope, name) in [("a/b", "x"), ("a", ""), ("a", "x y"), ("", "x")] {
            let e = s
                .set_reference(scope, name, json!(1), "e", now())
                .unwrap_err();
            assert_eq!(e.code(), "invalid_reference_values", "{scope:?} {name:?}");
        }
        assert!(s.set_reference("a", "x", Value::Null, "e", now()).is_err());
        assert!(s.delete_reference("a", "never", "e", now()).is_err());
        let big = json!("x".repeat(MAX_REFERENCE_BYTES));
        assert!(s.set_reference("a", "big", big, "e", now()).is_err());
    }

    /// Replace the payload of a stored row, keeping its MAC header (the attack).
    fn edit_row(s: &PolicyStore, key: &str, f: impl Fn(&mut Value)) {
        let row = s.store.get(Table::Policies, key).unwrap().unwrap();
        let nl = row.iter().position(|b| *b == b'\n').unwrap();
        let mut v: Value = serde_json::from_slice(&row[nl + 1..]).unwrap();
        f(&mut v);
        let mut out = row[..=nl].to_vec();
        out.extend_from_slice(&serde_json::to_vec(&v).unwrap());
        put_raw(s, key, out);
    }

    fn put_raw(s: &PolicyStore, key: &str, value: Vec<u8>) {
        s.store
            .transact(vec![Op::Put {
                table: Table::Policies,
                key: key.into(),
                value,
            }])
            .unwrap();
    }

    const DENY_ALL: &str = "package enclava.appraisal\nimport rego.v1\nallow := false\n";

    #[test]
    fn edited_policy_is_refused_not_evaluated() {
        let s = store().revalidate_after(Duration::ZERO);
        s.set(Tee::Sim, DENY_ALL, "alice", now()).unwrap();
        assert_eq!(s.active(Tee::Sim).unwrap().record.version, 1);
        edit_row(&s, "attestation/policy/sim", |v| {
            v["text"] = ALLOW_ALL.into();
            v["hash"] = enclava_policy::maa_policy_hash(ALLOW_ALL).into();
        });
        let e = s.active(Tee::Sim).unwrap_err();
        assert_eq!(e.code(), "integrity_check_failed", "{e}");
        assert_eq!(e.http_status(), 500);
        assert!(e.to_string().contains("attestation/policy/sim"), "{e}");
        assert!(s.get(Tee::Sim).is_err());
        // The history row is intact; the repair is setting a policy again.
        assert_eq!(s.versions(Tee::Sim).unwrap().len(), 1);
        let c = s.set(Tee::Sim, DENY_ALL, "bob", now()).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(s.active(Tee::Sim).unwrap().record.text, DENY_ALL);
        // Editing a history row is detected when the history is read.
        edit_row(
            &s,
            "attestation/policy-version/sim/00000000000000000001",
            |v| {
                v["who"] = "mallory".into();
            },
        );
        assert_eq!(
            s.versions(Tee::Sim).unwrap_err().code(),
            "integrity_check_failed"
        );
    }

    #[test]
    fn moved_planted_and_foreign_rows_are_refused() {
        let s = store().revalidate_after(Duration::ZERO);
        s.set(Tee::Sim, ALLOW_ALL, "alice", now()).unwrap();
        // A valid row of one type copied to another type's key.
        let row = s
            .store
            .get(Table::Policies, "attestation/policy/sim")
            .unwrap()
            .unwrap();
        put_raw(&s, "attestation/policy/snp", row);
        assert_eq!(
            s.active(Tee::Snp).unwrap_err().code(),
            "integrity_check_failed"
        );
        // A row without a MAC (the pre-integrity format).
        let mut rec = builtin_record(Tee::Tdx);
        rec.text = ALLOW_ALL.into();
        rec.version = 1;
        put_raw(
            &s,
            "attestation/policy/tdx",
            serde_json::to_vec(&rec).unwrap(),
        );
        let e = s.active(Tee::Tdx).unwrap_err();
        assert!(e.to_string().contains("without a MAC"), "{e}");
        // Another root: nothing verifies. No key: stored rows are refused, defaults still apply.
        let foreign = PolicyStore::new(Arc::clone(&s.store)).with_row_keys(keys(2));
        assert_eq!(
            foreign.active(Tee::Sim).unwrap_err().code(),
            "integrity_check_failed"
        );
        let keyless = PolicyStore::new(Arc::clone(&s.store));
        assert!(keyless.active(Tee::Sim).is_err());
        assert!(keyless.set(Tee::Sgx, ALLOW_ALL, "a", now()).is_err());
        assert_eq!(keyless.active(Tee::Sgx).unwrap().record.version, 0);
    }

    #[test]
    fn edited_reference_values_are_refused() {
        let s = store().revalidate_after(Duration::ZERO);
        s.set_reference("t1", "m", json!({"measurements": ["aa"]}), "a", now())
            .unwrap();
        assert_eq!(s.references("t1").unwrap().len(), 1);
        edit_row(&s, "attestation/reference/t1/m", |v| {
            v["value"] = json!({"measurements": ["evil"]});
        });
        let e = s.references("t1").unwrap_err();
        assert_eq!(e.code(), "integrity_check_failed", "{e}");
        assert!(s.get_reference("t1", "m").is_err());
        // A set copied into another scope.
        s.set_reference("t2", "m", json!({"measurements": ["bb"]}), "a", now())
            .unwrap();
        let row = s
            .store
            .get(Table::Policies, "attestation/reference/t2/m")
            .unwrap()
            .unwrap();
        put_raw(&s, "attestation/reference/t3/m", row);
        assert!(s.references("t3").is_err());
        // Repair by setting it again.
        s.set_reference("t1", "m", json!({"measurements": ["aa"]}), "a", now())
            .unwrap();
        assert_eq!(
            s.references("t1").unwrap()["m"],
            json!({"measurements": ["aa"]})
        );
    }

    #[test]
    fn old_rows_are_adopted_once() {
        let s = store().revalidate_after(Duration::ZERO);
        s.set(Tee::Sim, ALLOW_ALL, "alice", now()).unwrap();
        s.set_reference("t1", "m", json!(1), "a", now()).unwrap();
        // The store as the previous version wrote it: bare JSON, no marker.
        for (k, v) in s.store.list(Table::Policies, "", None, 100).unwrap() {
            let nl = v.iter().position(|b| *b == b'\n').unwrap();
            put_raw(&s, &k, v[nl + 1..].to_vec());
        }
        assert!(s.active(Tee::Sim).is_err());
        let m = s.migrate_row_integrity(now()).unwrap();
        assert_eq!(m.adopted.len(), 4, "{m:?}");
        assert!(m.refused.is_empty());
        assert_eq!(s.active(Tee::Sim).unwrap().record.version, 1);
        assert_eq!(s.references("t1").unwrap()["m"], json!(1));
        assert!(s.migrate_row_integrity(now()).unwrap().already_protected);
        // Planted later: never adopted, even with the marker deleted.
        let mut rec = builtin_record(Tee::Snp);
        rec.text = ALLOW_ALL.into();
        put_raw(
            &s,
            "attestation/policy/snp",
            serde_json::to_vec(&rec).unwrap(),
        );
        s.store
            .transact(vec![Op::Delete {
                table: Table::Meta,
                key: ROW_INTEGRITY_META.into(),
            }])
            .unwrap();
        let m = s.migrate_row_integrity(now()).unwrap();
        assert!(m.adopted.is_empty());
        assert_eq!(m.refused, vec!["attestation/policy/snp".to_string()]);
        assert!(s.active(Tee::Snp).is_err());
        assert!(s.migrate_row_integrity(now()).unwrap().already_protected);
    }
}
