//! The request-scoped audit context that lets a data change carry its audit entry.
//!
//! The vault, identity and policy code write through `Store::transact` in dozens of places.
//! Instead of threading an audit argument through all of them, the server enters a scope around
//! the synchronous handling of one request ([`enter`]) holding the entry that describes it; the
//! [`crate::audited::AuditedStore`] decorator picks that entry up at every `transact` on the same
//! thread and commits it in the same database transaction as the change. Afterwards the server
//! reads what was committed ([`RequestScope::finish`]) and writes a follow-up entry only when the
//! final answer differs from what the committed entry says.
//!
//! The scope is thread-local, so it must be entered on the thread that runs the handler, and the
//! guard cannot leave it (it is `!Send`). Scopes nest (the inner one wins until it ends).

use std::cell::RefCell;
use std::marker::PhantomData;

use enclava_store::{Op, StoreError, Table};

use crate::NewEntry;

/// What kind of storage failure a request ran into (decides 507 vs 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFailure {
    /// The disk is full: the change was not stored.
    Full,
    /// Another storage error: the change was not stored.
    Backend,
    /// The database could not be reached (a read or a change failed on it): nothing of the
    /// change was stored, and the same request may succeed once it is back (503, Retry-After).
    Unavailable,
}

/// What happened to the data changes of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeOutcome {
    /// Seq of the audit entry committed with each data change, in order.
    pub committed: Vec<u64>,
    /// The HTTP status the committed entries record.
    pub status: u16,
    /// The principal the committed entries record.
    pub principal: String,
    /// The first storage failure of a change attempted in the scope (nothing of that change
    /// was written).
    pub storage_failure: Option<StorageFailure>,
}

struct State {
    entry: NewEntry,
    committed: Vec<u64>,
    storage_failure: Option<StorageFailure>,
}

thread_local! {
    static STACK: RefCell<Vec<State>> = const { RefCell::new(Vec::new()) };
}

/// Guard of an entered scope; dropping it (or [`RequestScope::finish`]) leaves the scope.
pub struct RequestScope {
    depth: usize,
    done: bool,
    /// Thread-bound: the state lives in this thread's local storage.
    _not_send: PhantomData<*const ()>,
}

/// Enter a scope on this thread: every audited write until the guard ends commits `entry`
/// (with its `version` filled from the change when the entry has none) together with the change.
pub fn enter(entry: NewEntry) -> RequestScope {
    let depth = STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.push(State {
            entry,
            committed: Vec::new(),
            storage_failure: None,
        });
        s.len()
    });
    RequestScope {
        depth,
        done: false,
        _not_send: PhantomData,
    }
}

impl RequestScope {
    /// Leave the scope and report what was committed in it.
    pub fn finish(mut self) -> ScopeOutcome {
        self.done = true;
        pop_to(self.depth)
            .map(|st| ScopeOutcome {
                committed: st.committed,
                status: st.entry.status,
                principal: st.entry.principal,
                storage_failure: st.storage_failure,
            })
            .unwrap_or_default()
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        if !self.done {
            let _ = pop_to(self.depth);
        }
    }
}

/// Pop the scope at `depth` (and any inner scope left open above it).
fn pop_to(depth: usize) -> Option<State> {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < depth || depth == 0 {
            return None;
        }
        s.truncate(depth);
        s.pop()
    })
}

/// Whether a scope is active on this thread.
pub fn active() -> bool {
    STACK.with(|s| !s.borrow().is_empty())
}

/// Change the current scope's entry (e.g. the principal once authenticated). No-op without one.
pub fn update(f: impl FnOnce(&mut NewEntry)) {
    STACK.with(|s| {
        if let Some(st) = s.borrow_mut().last_mut() {
            f(&mut st.entry);
        }
    });
}

/// Set the current scope's principal (called where the request is authenticated).
pub fn set_principal(principal: &str) {
    update(|e| principal.clone_into(&mut e.principal));
}

/// The entry to commit with a change made of `ops`, if a scope is active: the scope's entry, with
/// the version the change writes when the entry names none, and numbered when one request makes
/// several changes.
pub(crate) fn entry_for_write(ops: &[Op]) -> Option<NewEntry> {
    STACK.with(|s| {
        let s = s.borrow();
        let st = s.last()?;
        let mut e = st.entry.clone();
        e.time = chrono::Utc::now();
        if e.version.is_none() {
            e.version = version_written(&e.object, ops);
        }
        if !st.committed.is_empty() {
            let n = st.committed.len() + 1;
            e.detail = Some(match e.detail.take() {
                Some(d) => format!("{d} (change {n} of this request)"),
                None => format!("change {n} of this request"),
            });
        }
        Some(e)
    })
}

pub(crate) fn record_commit(seq: u64) {
    STACK.with(|s| {
        if let Some(st) = s.borrow_mut().last_mut() {
            st.committed.push(seq);
        }
    });
}

/// Record a storage failure in the current scope (no-op without one, or for a lost race): for
/// stores outside the [`crate::audited::AuditedStore`] (e.g. a replica's replay set or a
/// watching decorator) whose failures must still decide the answer (503 vs 500).
pub fn record_storage_failure(e: &StoreError) {
    record_failure(e);
}

pub(crate) fn record_failure(e: &StoreError) {
    let kind = match e {
        StoreError::Full(_) => StorageFailure::Full,
        StoreError::Backend(_) | StoreError::SchemaTooNew { .. } => StorageFailure::Backend,
        StoreError::Unavailable(_) => StorageFailure::Unavailable,
        // A lost race is the caller's business (it retries or answers 409): no storage failure.
        StoreError::Conflict { .. } => return,
    };
    STACK.with(|s| {
        if let Some(st) = s.borrow_mut().last_mut()
            && st.storage_failure.is_none()
        {
            st.storage_failure = Some(kind);
        }
    });
}

/// The version a change creates for the object `keys/NAME` or `secrets/NAME`: the version part of
/// a row it puts into the versions table (`name/version`, name lowercased by the vault).
fn version_written(object: &str, ops: &[Op]) -> Option<String> {
    let (table, name) = if let Some(n) = object.strip_prefix("keys/") {
        (Table::KeyVersions, n)
    } else if let Some(n) = object.strip_prefix("secrets/") {
        (Table::SecretVersions, n)
    } else {
        return None;
    };
    let prefix = format!("{}/", name.to_ascii_lowercase());
    ops.iter().find_map(|op| match op {
        Op::Put { table: t, key, .. } if *t == table => key
            .strip_prefix(&prefix)
            .filter(|v| !v.is_empty() && !v.contains('/'))
            .map(|v| v.chars().take(80).collect()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn entry() -> NewEntry {
        NewEntry {
            time: chrono::Utc::now(),
            principal: "anonymous".into(),
            action: "keys/create".into(),
            object: "keys/MyKey".into(),
            version: None,
            result: Outcome::Allowed,
            status: 200,
            request_id: "r1".into(),
            client_addr: "127.0.0.1".into(),
            detail: Some("POST /keys/{name}/create CreateKey".into()),
        }
    }

    #[test]
    fn scope_supplies_entries_and_nests() {
        assert!(entry_for_write(&[]).is_none(), "no scope, no entry");
        let outer = enter(entry());
        set_principal("alice");
        let ops = vec![Op::Put {
            table: Table::KeyVersions,
            key: "mykey/abc123".into(),
            value: vec![],
        }];
        let e = entry_for_write(&ops).unwrap();
        assert_eq!(
            (e.principal.as_str(), e.version.as_deref()),
            ("alice", Some("abc123"))
        );
        record_commit(7);
        let second = entry_for_write(&[]).unwrap();
        assert!(second.detail.unwrap().contains("change 2"));
        {
            let mut inner_entry = entry();
            inner_entry.principal = "system".into();
            let inner = enter(inner_entry);
            assert_eq!(entry_for_write(&[]).unwrap().principal, "system");
            record_failure(&StoreError::Full("disk".into()));
            let o = inner.finish();
            assert_eq!(o.storage_failure, Some(StorageFailure::Full));
        }
        record_failure(&StoreError::Conflict {
            table: "keys",
            key: "k".into(),
            expected: "absent",
        });
        let o = outer.finish();
        assert_eq!(o.committed, vec![7]);
        assert_eq!(
            o.storage_failure, None,
            "a conflict is not a storage failure"
        );
        assert!(!active());
    }
}
