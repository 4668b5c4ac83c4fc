//! The read cache of the per-request authorization reads: the caller's principal record and its
//! role assignments, as stored (MAC'd rows; they are verified again on every use, so a cached
//! row never skips the integrity check).
//!
//! Why: every authenticated request reads both. On a shared database (PostgreSQL) each read is
//! a network round trip, which dominated cheap vault operations. What makes it safe:
//!
//! - **Other processes' writes** reach us through the store's change feed
//!   ([`enclava_store::coherence`]): an entry carries the feed's version of its table captured
//!   *before* the store read, and is served only while that version is unchanged (any change of
//!   the table reported since, or a flush after the feed was down, makes it stale) and while
//!   [`Coherence::trusted`] holds (heartbeat < 0.5 s old). So a revocation committed by another
//!   replica is honoured within the feed's bound, as the key cache's are.
//! - **This process's writes** are not waited for from the feed: [`ReadCache::write`] moves a
//!   local counter before and after each write, and entries carry it too (captured before the
//!   read), so a change made here is honoured by the very next request here.
//! - **Single-process stores** (SQLite) are not cached at all: a read there costs microseconds
//!   in process, and reading through keeps their exact behaviour (a row edited in the file is
//!   refused at the next request).
//!
//! Entries are invalidated per table (not per row): principals and assignments change rarely,
//! and a coarse stamp cannot miss a row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use enclava_store::{Coherence, StoreError, Table};

/// Entries kept per map before it starts over (bounded memory whatever the callers do).
const CAPACITY: usize = 16_384;

/// What an entry was read under: the feed's version of its table and the local write counter,
/// both captured before the read.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    table: u64,
    local: u64,
}

type Rows = Vec<(String, Vec<u8>)>;
/// A row as stored (`None`: absent), by table and key.
type RowMap = HashMap<(Table, String), (Stamp, Option<Vec<u8>>)>;
/// Every row under a prefix, by table and prefix.
type ListMap = HashMap<(Table, String), (Stamp, Rows)>;

pub(crate) struct ReadCache {
    coherence: Arc<Coherence>,
    /// Moved before and after every write made through [`ReadCache::write`].
    local: AtomicU64,
    rows: Mutex<RowMap>,
    lists: Mutex<ListMap>,
    hits: AtomicU64,
}

impl ReadCache {
    pub(crate) fn new(coherence: Arc<Coherence>) -> Self {
        ReadCache {
            coherence,
            local: AtomicU64::new(0),
            rows: Mutex::new(HashMap::new()),
            lists: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
        }
    }

    /// Whether entries may be served now (and the current stamp of `table`); `None`: read
    /// through and keep nothing.
    fn stamp(&self, table: Table) -> Option<Stamp> {
        if !self.coherence.is_shared() || !self.coherence.trusted() {
            return None;
        }
        Some(Stamp {
            table: self.coherence.table_version(table),
            local: self.local.load(Ordering::SeqCst),
        })
    }

    /// The row `table/key` as stored, from the cache when current, else from `read`.
    pub(crate) fn get(
        &self,
        table: Table,
        key: &str,
        read: impl FnOnce() -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(stamp) = self.stamp(table) else {
            return read();
        };
        let id = (table, key.to_owned());
        if let Some((s, v)) = lock(&self.rows).get(&id)
            && *s == stamp
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v.clone());
        }
        let value = read()?;
        let mut rows = lock(&self.rows);
        if rows.len() >= CAPACITY {
            rows.clear();
        }
        rows.insert(id, (stamp, value.clone()));
        Ok(value)
    }

    /// Every row of `table` under `prefix` as stored, from the cache when current, else from
    /// `read`.
    pub(crate) fn list(
        &self,
        table: Table,
        prefix: &str,
        read: impl FnOnce() -> Result<Rows, StoreError>,
    ) -> Result<Rows, StoreError> {
        let Some(stamp) = self.stamp(table) else {
            return read();
        };
        let id = (table, prefix.to_owned());
        if let Some((s, v)) = lock(&self.lists).get(&id)
            && *s == stamp
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v.clone());
        }
        let value = read()?;
        let mut lists = lock(&self.lists);
        if lists.len() >= CAPACITY {
            lists.clear();
        }
        lists.insert(id, (stamp, value.clone()));
        Ok(value)
    }

    /// Run a write of this process: entries read before it finished are stale afterwards
    /// (whatever its outcome: a failed commit may still have committed).
    pub(crate) fn write<T>(&self, f: impl FnOnce() -> T) -> T {
        self.local.fetch_add(1, Ordering::SeqCst);
        let r = f();
        self.local.fetch_add(1, Ordering::SeqCst);
        r
    }

    /// Requests answered from the cache so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclava_store::coherence::Change;
    use std::time::Instant;

    fn counting(n: &std::cell::Cell<u32>, v: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        n.set(n.get() + 1);
        Ok(Some(v.to_vec()))
    }

    #[test]
    fn serves_only_while_trusted_and_unchanged() {
        let c = Coherence::shared();
        let cache = ReadCache::new(c.clone());
        let reads = std::cell::Cell::new(0);
        // Not trusted yet: read through every time.
        cache
            .get(Table::Principals, "p/x", || counting(&reads, b"1"))
            .unwrap();
        cache
            .get(Table::Principals, "p/x", || counting(&reads, b"1"))
            .unwrap();
        assert_eq!(reads.get(), 2);
        c.confirm(Instant::now());
        cache
            .get(Table::Principals, "p/x", || counting(&reads, b"1"))
            .unwrap();
        let v = cache
            .get(Table::Principals, "p/x", || counting(&reads, b"2"))
            .unwrap();
        assert_eq!(
            (reads.get(), v.as_deref()),
            (3, Some(&b"1"[..])),
            "served from the cache"
        );
        // A change of another table leaves it; a change of its table drops it.
        c.publish(&Change::Row {
            table: Table::Keys,
            key: "k".into(),
        });
        cache
            .get(Table::Principals, "p/x", || counting(&reads, b"2"))
            .unwrap();
        assert_eq!(reads.get(), 3);
        c.publish(&Change::Row {
            table: Table::Principals,
            key: "p/y".into(),
        });
        let v = cache
            .get(Table::Principals, "p/x", || counting(&reads, b"2"))
            .unwrap();
        assert_eq!((reads.get(), v.as_deref()), (4, Some(&b"2"[..])));
        // A local write drops it at once, before the feed says anything.
        cache.write(|| ());
        let v = cache
            .get(Table::Principals, "p/x", || counting(&reads, b"3"))
            .unwrap();
        assert_eq!((reads.get(), v.as_deref()), (5, Some(&b"3"[..])));
        // The feed is down: read through.
        c.distrust();
        cache
            .get(Table::Principals, "p/x", || counting(&reads, b"3"))
            .unwrap();
        assert_eq!(reads.get(), 6);
    }

    #[test]
    fn a_change_reported_during_the_read_is_not_kept() {
        let c = Coherence::shared();
        c.confirm(Instant::now());
        let cache = ReadCache::new(c.clone());
        cache
            .list(Table::RoleAssignments, "p/x/", || {
                // Committed and reported while the old rows were on their way back.
                c.publish(&Change::Table(Table::RoleAssignments));
                Ok(vec![("p/x/a".into(), b"old".to_vec())])
            })
            .unwrap();
        let rows = cache
            .list(Table::RoleAssignments, "p/x/", || Ok(Vec::new()))
            .unwrap();
        assert!(rows.is_empty(), "the stale rows were served");
    }

    #[test]
    fn single_process_stores_are_read_through() {
        let cache = ReadCache::new(Coherence::single_process());
        let reads = std::cell::Cell::new(0);
        for _ in 0..3 {
            cache
                .get(Table::Principals, "p/x", || counting(&reads, b"1"))
                .unwrap();
        }
        assert_eq!((reads.get(), cache.hits()), (3, 0));
    }
}
