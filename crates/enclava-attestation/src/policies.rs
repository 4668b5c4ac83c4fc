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
//! # Caching
//! The compiled active policy of each type and the current reference sets of each scope are kept
//! in memory: attestation reads them on every request, and a store read per request cost more than
//! the policy evaluation. A change made through this instance replaces the cached value at once. A
//! change made through another instance sharing the store is picked up when the cached value is
//! next re-validated against the store, at most [`DEFAULT_REVALIDATE_AFTER`] after it was last
//! checked ([`PolicyStore::revalidate_after`] changes the interval; zero checks on every use).

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
use crate::request::MaaType;

const POLICY_HEAD: &str = "attestation/policy/";
const POLICY_VERSION: &str = "attestation/policy-version/";
const REF_HEAD: &str = "attestation/reference/";
const REF_VERSION: &str = "attestation/reference-version/";
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
pub const POLICY_TYPES: [Tee; 6] = [
    Tee::Snp,
    Tee::Tdx,
    Tee::Sgx,
    Tee::AzureSnp,
    Tee::AzureTdx,
    Tee::Sim,
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
            expected: "snp, tdx, sgx, azure-snp, azure-tdx, sim, SevSnpVm, TdxVm, SgxEnclave, OpenEnclave",
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

fn corrupt(key: &str, e: impl std::fmt::Display) -> AttestError {
    AttestError::Store(format!("stored record {key} is unreadable: {e}"))
}

/// The reference sets of one scope, as the policy input's `reference` member.
type ReferenceSets = Arc<Map<String, Value>>;

/// A cached value and when it was last known to match the store.
struct Checked<T> {
    value: T,
    checked: Instant,
}

/// Policies and reference values over a [`Store`].
pub struct PolicyStore {
    store: Arc<dyn Store>,
    revalidate_after: Duration,
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
            store,
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

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Tee, Checked<Arc<ActivePolicy>>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reference_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Checked<ReferenceSets>>> {
        self.references.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, checked: Instant) -> bool {
        !self.revalidate_after.is_zero() && checked.elapsed() < self.revalidate_after
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AttestError> {
        match self.store.get(Table::Policies, key)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| corrupt(key, e)),
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
            && self.fresh(c.checked)
        {
            return Ok(Arc::clone(&c.value));
        }
        let checked = Instant::now();
        let record = self.get(tee)?;
        if let Some(c) = self.cache().get_mut(&tee)
            && c.value.record == record
        {
            c.checked = checked;
            return Ok(Arc::clone(&c.value));
        }
        let compiled = CompiledPolicy::compile(&record.policy_type, &record.text)?;
        let active = Arc::new(ActivePolicy { record, compiled });
        self.cache().insert(
            tee,
            Checked {
                value: Arc::clone(&active),
                checked,
            },
        );
        Ok(active)
    }

    /// Number of compiled policies cached.
    pub fn cached(&self) -> usize {
        self.cache().len()
    }

    fn write_policy(
        &self,
        tee: Tee,
        text: &str,
        builtin: bool,
        signed: Option<SignedPolicy>,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        let compiled = CompiledPolicy::compile(tee.as_str(), text)?;
        let head_key = format!("{POLICY_HEAD}{tee}");
        let old = self.store.get(Table::Policies, &head_key)?;
        let old_version = match &old {
            None => 0,
            Some(b) => {
                serde_json::from_slice::<PolicyRecord>(b)
                    .map_err(|e| corrupt(&head_key, e))?
                    .version
            }
        };
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
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| AttestError::Store(e.to_string()))?;
        self.store.transact(vec![
            Op::Expect {
                table: Table::Policies,
                key: head_key.clone(),
                value: old,
            },
            Op::Put {
                table: Table::Policies,
                key: head_key,
                value: bytes.clone(),
            },
            Op::Put {
                table: Table::Policies,
                key: format!("{POLICY_VERSION}{tee}/{:020}", record.version),
                value: bytes,
            },
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
        self.write_policy(tee, text, false, None, who, now)
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
        self.write_policy(tee, text, false, Some(signed), who, now)
    }

    /// Back to the built-in default (stored as a new version, so the history stays whole).
    pub fn reset(
        &self,
        tee: Tee,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyChange, AttestError> {
        let text = builtin_record(tee).text;
        self.write_policy(tee, &text, true, None, who, now)
    }

    /// Every record under `prefix`, in key order (page by page).
    fn read_all<T: serde::de::DeserializeOwned>(
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
                out.push(serde_json::from_slice(v).map_err(|e| corrupt(k, e))?);
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
        let old_version = match &old {
            None => 0,
            Some(b) => {
                serde_json::from_slice::<ReferenceRecord>(b)
                    .map_err(|e| corrupt(&head_key, e))?
                    .version
            }
        };
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
            ops.push(Op::Put {
                table: Table::Policies,
                key: head_key,
                value: bytes.clone(),
            });
        }
        ops.push(Op::Put {
            table: Table::Policies,
            key: format!("{REF_VERSION}{scope}/{name}/{:020}", record.version),
            value: bytes,
        });
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
            && self.fresh(c.checked)
        {
            return Ok(Arc::clone(&c.value));
        }
        let checked = Instant::now();
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
            let r: ReferenceRecord = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
            out.insert(r.name, r.value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn store() -> PolicyStore {
        PolicyStore::new(Arc::new(enclava_store::SqliteStore::in_memory().unwrap()))
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
        let other = PolicyStore::new(Arc::clone(&s.store));
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
        let other = PolicyStore::new(Arc::clone(&s.store));
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
}
