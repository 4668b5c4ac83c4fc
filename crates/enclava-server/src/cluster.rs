//! Several server processes ("replicas") on one database: who runs the background work, and
//! whether this replica can reach the database.
//!
//! - **Lease** ([`Cluster::try_acquire`]): background work (due rotations, purge of expired
//!   deleted objects, the replay-set sweep, timed audit checkpoints) runs on one replica at a
//!   time. The holder is recorded in `Table::Meta` under [`LEASE_KEY`] as `{holder, expires_ms}`
//!   and taken or renewed with the store's compare-and-set (`Op::Expect` on the exact bytes read),
//!   so two replicas can never both win the same round. The holder renews every third of the
//!   lease; a holder that dies (or loses the database) stops renewing, and once `expires_ms` has
//!   passed another replica takes over. This replica considers itself the holder only until
//!   three quarters of the lease after its last successful renewal (measured on its monotonic
//!   clock), so a replica cut off from the database stops before another may start, provided the
//!   replicas' wall clocks agree within a quarter of the lease (NTP: milliseconds; default lease
//!   30 s). SQLite takes the same path (one process: it always holds the lease).
//!   Lease writes go to the raw store: a renewal every few seconds is not an audited change;
//!   taking over the lease is recorded as an audit event instead.
//! - **Readiness probe** ([`Cluster::store_ready`]): one cheap read, at most one in flight,
//!   cached for [`PROBE_FRESH`], answered within [`PROBE_TIMEOUT`] whatever the database does.
//! - **Outages** ([`WatchedStore`]): a store call that fails because the database is out of reach
//!   marks the current request, which then answers 503 with `Retry-After` instead of 500.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use enclava_store::{AuditRow, Op, Store, StoreError, Table};
use serde::{Deserialize, Serialize};

/// `Table::Meta` key of the background-work lease.
pub const LEASE_KEY: &str = "lease/background";

/// How long a readiness probe result is reused.
pub const PROBE_FRESH: Duration = Duration::from_secs(1);

/// Longest a readiness check waits for the database before answering "not ready".
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `Retry-After` (seconds) of answers given while the database is out of reach.
pub const RETRY_AFTER_SECS: u64 = 2;

/// The stored lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// [`Cluster::replica_id`] of the holder.
    pub holder: String,
    /// Unix milliseconds after which another replica may take the lease.
    pub expires_ms: i64,
}

#[derive(Default)]
struct Probe {
    last: Option<(Instant, Result<(), String>)>,
    in_flight: bool,
}

/// Cluster state of this replica. See the module documentation.
pub struct Cluster {
    store: Arc<dyn Store>,
    /// Random per process: a restarted replica is a new holder.
    pub replica_id: String,
    ttl: Duration,
    /// Until when (monotonic) this replica may act as the lease holder.
    held_until: Mutex<Option<Instant>>,
    stopped: AtomicBool,
    probe: Mutex<Probe>,
    probe_done: Condvar,
    /// Background maintenance passes this replica ran as the lease holder.
    pub background_runs: AtomicU64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Cluster {
    /// `store` must be the raw store (lease renewals are not audited changes).
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        let mut id = [0u8; 12];
        // A failing RNG leaves zeros: the id then only has to differ by the time part.
        let _ = aws_lc_rs::rand::fill(&mut id);
        Cluster {
            store,
            replica_id: format!(
                "{}-{}",
                hex::encode(id),
                chrono::Utc::now().timestamp_millis()
            ),
            ttl: ttl.max(Duration::from_secs(1)),
            held_until: Mutex::new(None),
            stopped: AtomicBool::new(false),
            probe: Mutex::new(Probe::default()),
            probe_done: Condvar::new(),
            background_runs: AtomicU64::new(0),
        }
    }

    /// The lease duration.
    pub fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    /// How often the holder renews (and others look whether the lease is free).
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Whether this replica holds the lease now (see the module documentation for the margin).
    pub fn holds_lease(&self) -> bool {
        !self.is_stopped()
            && self
                .held_until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|t| Instant::now() < t)
    }

    /// The lease as stored (None: nobody holds it or it is unreadable).
    pub fn current_lease(&self) -> Result<Option<LeaseRecord>, StoreError> {
        Ok(self
            .store
            .get(Table::Meta, LEASE_KEY)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Take the lease if it is free or expired, or renew it if this replica holds it. `Ok(true)`
    /// when this replica holds it afterwards. A store error leaves the local hold to lapse by
    /// itself (no renewal: it stops at the margin).
    pub fn try_acquire(&self) -> Result<bool, StoreError> {
        if self.is_stopped() {
            return Ok(false);
        }
        let started = Instant::now();
        let now = now_ms();
        let current = self.store.get(Table::Meta, LEASE_KEY)?;
        // An unreadable record counts as free: it is replaced under the same compare-and-set.
        let parsed = current
            .as_deref()
            .and_then(|v| serde_json::from_slice::<LeaseRecord>(v).ok());
        let ours = parsed.as_ref().is_some_and(|r| r.holder == self.replica_id);
        let free = parsed.as_ref().is_none_or(|r| r.expires_ms <= now);
        if !ours && !free {
            self.set_held(None);
            return Ok(false);
        }
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let record = LeaseRecord {
            holder: self.replica_id.clone(),
            expires_ms: now.saturating_add(ttl_ms),
        };
        let value = serde_json::to_vec(&record)
            .map_err(|e| StoreError::Backend(format!("encoding the lease: {e}")))?;
        match self.store.transact(vec![
            Op::Expect {
                table: Table::Meta,
                key: LEASE_KEY.into(),
                value: current,
            },
            Op::Put {
                table: Table::Meta,
                key: LEASE_KEY.into(),
                value,
            },
        ]) {
            Ok(()) => {
                self.set_held(Some(started + self.ttl * 3 / 4));
                Ok(true)
            }
            // Another replica took or renewed it first.
            Err(StoreError::Conflict { .. }) => {
                self.set_held(None);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Give the lease back (graceful stop), so another replica takes over at its next look
    /// instead of after the lease expires. Only removes a lease this replica holds.
    pub fn release(&self) -> Result<(), StoreError> {
        self.set_held(None);
        let Some(current) = self.store.get(Table::Meta, LEASE_KEY)? else {
            return Ok(());
        };
        let ours = serde_json::from_slice::<LeaseRecord>(&current)
            .is_ok_and(|r| r.holder == self.replica_id);
        if !ours {
            return Ok(());
        }
        match self.store.transact(vec![
            Op::Expect {
                table: Table::Meta,
                key: LEASE_KEY.into(),
                value: Some(current),
            },
            Op::Delete {
                table: Table::Meta,
                key: LEASE_KEY.into(),
            },
        ]) {
            Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn set_held(&self, until: Option<Instant>) {
        *self.held_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// Stop taking part: background loops end at their next tick and the lease is no longer
    /// renewed (it expires, or [`Cluster::release`] gives it back).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.set_held(None);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Whether the database answers: `Err(reason)` when it does not within [`PROBE_TIMEOUT`].
    /// Blocking (call it off the async workers). At most one probe runs at a time; its result is
    /// reused for [`PROBE_FRESH`], so a flood of readiness checks costs one read per second.
    pub fn store_ready(self: &Arc<Self>) -> Result<(), String> {
        let deadline = Instant::now() + PROBE_TIMEOUT;
        let mut p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, r)) = &p.last
            && at.elapsed() < PROBE_FRESH
        {
            return r.clone();
        }
        let asked = Instant::now();
        if !p.in_flight {
            p.in_flight = true;
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("enclava-readyz".into())
                .spawn(move || {
                    let r = me
                        .store
                        .get(Table::Meta, LEASE_KEY)
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    let mut p = me.probe.lock().unwrap_or_else(|e| e.into_inner());
                    p.last = Some((Instant::now(), r));
                    p.in_flight = false;
                    me.probe_done.notify_all();
                });
            if let Err(e) = spawned {
                p.in_flight = false;
                return Err(format!("cannot start the database probe: {e}"));
            }
        }
        loop {
            if let Some((at, r)) = &p.last
                && *at >= asked
            {
                return r.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "the database did not answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            p = self
                .probe_done
                .wait_timeout(p, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A store decorator that marks the current request (its audit scope) when a call fails because
/// the database is out of reach, so the answer is 503 with `Retry-After` whatever error the
/// caller turned the failure into. Everything else passes through unchanged.
pub struct WatchedStore(pub Arc<dyn Store>);

fn watch<T>(r: Result<T, StoreError>) -> Result<T, StoreError> {
    if let Err(e) = &r
        && e.is_unavailable()
    {
        enclava_audit::scope::record_storage_failure(e);
    }
    r
}

impl Store for WatchedStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        watch(self.0.get(table, key))
    }

    fn list(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        watch(self.0.list(table, prefix, after, limit))
    }

    fn transact(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        watch(self.0.transact(ops))
    }

    fn append_audit(&self, entries: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        watch(self.0.append_audit(entries))
    }

    fn transact_audited(
        &self,
        ops: Vec<Op>,
        audit: Vec<Vec<u8>>,
        first_seq: u64,
    ) -> Result<(), StoreError> {
        watch(self.0.transact_audited(ops, audit, first_seq))
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        watch(self.0.audit_range(from, limit))
    }

    fn audit_head(&self) -> Result<u64, StoreError> {
        watch(self.0.audit_head())
    }
    fn coherence(&self) -> Arc<enclava_store::Coherence> {
        self.0.coherence()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclava_store::SqliteStore;

    fn pair(ttl: Duration) -> (Arc<dyn Store>, Cluster, Cluster) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let a = Cluster::new(store.clone(), ttl);
        let b = Cluster::new(store.clone(), ttl);
        (store, a, b)
    }

    #[test]
    fn one_holder_at_a_time_and_takeover_after_expiry() {
        let (_store, a, b) = pair(Duration::from_secs(1));
        assert_ne!(a.replica_id, b.replica_id);
        assert!(a.try_acquire().unwrap());
        assert!(!b.try_acquire().unwrap());
        // Renewal by the holder keeps it; the other still cannot take it.
        assert!(a.try_acquire().unwrap());
        assert!(!b.try_acquire().unwrap());
        assert!(a.holds_lease() && !b.holds_lease());
        // The holder stops renewing (it died): after the lease expires the other takes it, and
        // the old holder's local hold has lapsed before that (3/4 of the lease).
        std::thread::sleep(Duration::from_millis(800));
        assert!(!a.holds_lease());
        std::thread::sleep(Duration::from_millis(300));
        assert!(b.try_acquire().unwrap());
        assert_eq!(b.current_lease().unwrap().unwrap().holder, b.replica_id);
        // The old holder coming back does not get it.
        assert!(!a.try_acquire().unwrap());
    }

    #[test]
    fn release_hands_over_at_once_and_only_the_holder_releases() {
        let (_store, a, b) = pair(Duration::from_secs(60));
        assert!(a.try_acquire().unwrap());
        b.release().unwrap();
        assert_eq!(a.current_lease().unwrap().unwrap().holder, a.replica_id);
        a.release().unwrap();
        assert!(!a.holds_lease());
        assert_eq!(a.current_lease().unwrap(), None);
        assert!(b.try_acquire().unwrap());
        // A stopped replica never takes it.
        b.stop();
        assert!(!b.holds_lease());
        assert!(!a.try_acquire().unwrap());
        a.stop();
        assert!(!a.try_acquire().unwrap());
    }

    #[test]
    fn a_garbage_lease_row_is_replaced() {
        let (store, a, _b) = pair(Duration::from_secs(60));
        store
            .transact(vec![Op::Put {
                table: Table::Meta,
                key: LEASE_KEY.into(),
                value: b"not json".to_vec(),
            }])
            .unwrap();
        assert!(a.try_acquire().unwrap());
    }
}
