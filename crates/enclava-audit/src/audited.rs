//! [`AuditedStore`]: a [`Store`] whose every data change commits together with its audit entry.
//!
//! The server hands this decorator (not the raw store) to the vault, identity and attestation
//! code. Each `transact` that changes something goes through [`AuditLog::commit`]: the change and
//! its audit entry are one database transaction, so a change is never stored without its entry
//! and an entry never claims a change that was rolled back (a full disk, a lost race).
//!
//! Which entry: the request's entry from the current [`crate::scope`] (set by the server around
//! each request and around its own background work). A change made outside any scope is still
//! audited, as a `system` entry `store/write` naming the tables it touched (never keys or
//! values), so an unexpected write path shows up in the log instead of slipping past it.
//!
//! Not audited here, by design: transactions made only of `Expect` preconditions (no change), the
//! audit log's own checkpoint rows (the [`AuditLog`] writes them to the raw store; they are
//! themselves signed audit data), and reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use enclava_store::{AuditRow, Op, Result, Store, StoreError, Table};

use crate::{AuditError, AuditLog, NewEntry, Outcome, scope};

/// The auditing decorator. `inner` must be the store `log` appends to.
pub struct AuditedStore {
    inner: Arc<dyn Store>,
    log: Arc<AuditLog>,
}

impl AuditedStore {
    pub fn new(inner: Arc<dyn Store>, log: Arc<AuditLog>) -> Self {
        AuditedStore { inner, log }
    }
}

fn to_store_error(e: AuditError) -> StoreError {
    match e {
        // Keep the kind: the vault retries on Conflict, the server answers 507 on Full.
        AuditError::Store(e) => e,
        other => StoreError::Backend(format!("audit log: {other}")),
    }
}

/// The entry for a change made outside any request or system scope.
fn unscoped_entry(ops: &[Op]) -> NewEntry {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for op in ops {
        let t: Table = match op {
            Op::Put { table, .. } | Op::Delete { table, .. } => *table,
            Op::Expect { .. } => continue,
        };
        *counts.entry(t.name()).or_default() += 1;
    }
    let tables: Vec<String> = counts.iter().map(|(t, n)| format!("{t} x{n}")).collect();
    NewEntry {
        time: chrono::Utc::now(),
        principal: "system".into(),
        action: "store/write".into(),
        object: String::new(),
        version: None,
        result: Outcome::Allowed,
        status: 200,
        request_id: String::new(),
        client_addr: "internal".into(),
        detail: Some(format!("change outside any request: {}", tables.join(", "))),
    }
}

impl Store for AuditedStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }

    fn list(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.list(table, prefix, after, limit)
    }

    fn transact(&self, ops: Vec<Op>) -> Result<()> {
        if ops.iter().all(|op| matches!(op, Op::Expect { .. })) {
            return self.inner.transact(ops);
        }
        let entry = scope::entry_for_write(&ops).unwrap_or_else(|| unscoped_entry(&ops));
        match self.log.commit(ops, vec![entry]) {
            Ok(seq) => {
                scope::record_commit(seq);
                Ok(())
            }
            Err(e) => {
                let e = to_store_error(e);
                scope::record_failure(&e);
                Err(e)
            }
        }
    }

    fn append_audit(&self, _entries: Vec<Vec<u8>>) -> Result<u64> {
        // Raw rows would bypass the chain the AuditLog keeps: entries go through the AuditLog.
        Err(StoreError::Backend(
            "append audit entries through the AuditLog, not through the audited store".into(),
        ))
    }

    fn transact_audited(&self, _ops: Vec<Op>, _audit: Vec<Vec<u8>>, _first_seq: u64) -> Result<()> {
        Err(StoreError::Backend(
            "commit audited changes through the AuditLog, not through the audited store".into(),
        ))
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRow>> {
        self.inner.audit_range(from, limit)
    }

    fn audit_head(&self) -> Result<u64> {
        self.inner.audit_head()
    }

    // The caches above see the backend's change feed (replicas on one database).
    fn coherence(&self) -> std::sync::Arc<enclava_store::Coherence> {
        self.inner.coherence()
    }
}
