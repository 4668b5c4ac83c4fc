//! Cache coherence between server processes ("replicas") sharing one store.
//!
//! Each process keeps security state in memory (parsed keys, compiled policies, signers). A
//! change committed by another process must reach those caches within a bound, and no cache may
//! be trusted while that bound cannot be guaranteed. [`Coherence`] is the meeting point:
//!
//! - the store backend *publishes* the committed changes of every process (PostgreSQL: a
//!   `NOTIFY` sent inside each writing transaction, delivered to a dedicated `LISTEN`
//!   connection), and confirms the feed is alive (a heartbeat that goes through the same path);
//! - caches *subscribe* (per-row invalidation callbacks) or compare a per-table
//!   [`Coherence::table_version`] captured before their read, and consult
//!   [`Coherence::trusted`] before serving anything: while the feed is not confirmed alive they
//!   read through to the store.
//!
//! The bound: a heartbeat sent at time `h` is delivered after every notification of every
//! transaction committed before `h` (PostgreSQL delivers notifications in commit order), and the
//! feed is trusted only while the last delivered heartbeat was sent less than
//! [`TRUST_WINDOW`] ago. So when a cache is consulted at time `t` and trusted, every change
//! committed before `t - TRUST_WINDOW` has already invalidated it: nothing is served from a
//! cache more than [`TRUST_WINDOW`] (0.5 s) behind the database. After the feed was down,
//! everything is flushed ([`Change::Everything`]) before it is trusted again, because
//! notifications sent meanwhile are lost.
//!
//! A single-process backend (SQLite: one process owns the file) has no other writer: its
//! coherence is always trusted and never publishes anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::Table;

/// How long after a confirmed heartbeat was *sent* the feed stays trusted. Heartbeats go out
/// every [`HEARTBEAT_INTERVAL`], so a healthy feed is re-confirmed several times per window.
pub const TRUST_WINDOW: Duration = Duration::from_millis(500);

/// How often the listener sends a heartbeat through the change channel.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// One committed change reported by the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The row `table/key` was written or deleted.
    Row { table: Table, key: String },
    /// Some rows of `table` changed (the key did not fit in a notification).
    Table(Table),
    /// Anything may have changed (the feed was interrupted): drop every cached entry.
    Everything,
}

impl Change {
    /// Whether this change may concern `table`.
    pub fn touches(&self, table: Table) -> bool {
        match self {
            Change::Row { table: t, .. } | Change::Table(t) => *t == table,
            Change::Everything => true,
        }
    }
}

type Subscriber = Box<dyn Fn(&Change) + Send + Sync>;

/// See the module documentation. Shared as `Arc<Coherence>`; obtained with
/// [`crate::Store::coherence`].
pub struct Coherence {
    /// Other processes may write to the store (a feed exists).
    shared: bool,
    base: Instant,
    /// Nanoseconds after `base` at which the last confirmed heartbeat was sent, 0: never (or
    /// the feed is known to be down).
    confirmed: AtomicU64,
    versions: [AtomicU64; Table::ALL.len()],
    subscribers: RwLock<Vec<Subscriber>>,
}

impl std::fmt::Debug for Coherence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coherence")
            .field("shared", &self.shared)
            .field("trusted", &self.trusted())
            .finish_non_exhaustive()
    }
}

fn index(table: Table) -> usize {
    Table::ALL.iter().position(|t| *t == table).unwrap_or(0)
}

impl Coherence {
    fn new(shared: bool) -> Coherence {
        Coherence {
            shared,
            base: Instant::now(),
            confirmed: AtomicU64::new(0),
            versions: std::array::from_fn(|_| AtomicU64::new(0)),
            subscribers: RwLock::new(Vec::new()),
        }
    }

    /// The coherence of a store no other process writes to: always trusted, never changes.
    pub fn single_process() -> Arc<Coherence> {
        static SINGLE: OnceLock<Arc<Coherence>> = OnceLock::new();
        SINGLE
            .get_or_init(|| Arc::new(Coherence::new(false)))
            .clone()
    }

    /// The coherence of a shared store; its backend feeds it. Untrusted until the first
    /// heartbeat is confirmed.
    pub fn shared() -> Arc<Coherence> {
        Arc::new(Coherence::new(true))
    }

    /// Whether other processes may change the store behind this one's back.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether caches may serve what they hold (after checking their own invalidations). False
    /// while the change feed has not been confirmed alive within [`TRUST_WINDOW`]: callers then
    /// read through to the store.
    pub fn trusted(&self) -> bool {
        if !self.shared {
            return true;
        }
        let at = self.confirmed.load(Ordering::SeqCst);
        at != 0 && self.since_base().saturating_sub(at) < TRUST_WINDOW.as_nanos() as u64
    }

    /// A counter that moves whenever a change to `table` (or [`Change::Everything`]) has been
    /// published. Capture it *before* reading from the store; a cached value is current only
    /// while the counter still has the captured value (and [`Coherence::trusted`] holds).
    pub fn table_version(&self, table: Table) -> u64 {
        self.versions[index(table)].load(Ordering::SeqCst)
    }

    /// Call `f` for every published change, on the feed's own task: `f` must be quick and must
    /// not do I/O (invalidate, never reload). A single-process coherence ignores subscribers.
    pub fn subscribe(&self, f: impl Fn(&Change) + Send + Sync + 'static) {
        if !self.shared {
            return;
        }
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(f));
    }

    /// Report a committed change (the backend's feed calls this). Versions move before the
    /// subscribers run, so a reader that captured a version earlier sees the change either way.
    pub fn publish(&self, change: &Change) {
        match change {
            Change::Row { table, .. } | Change::Table(table) => {
                self.versions[index(*table)].fetch_add(1, Ordering::SeqCst);
            }
            Change::Everything => {
                for v in &self.versions {
                    v.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        for s in self
            .subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s(change);
        }
    }

    /// The feed delivered a heartbeat that was sent at `sent`: every change committed before
    /// `sent` has been published.
    pub fn confirm(&self, sent: Instant) {
        let at = (sent.saturating_duration_since(self.base).as_nanos() as u64).max(1);
        self.confirmed.fetch_max(at, Ordering::SeqCst);
    }

    /// The feed is down: stop trusting caches at once (not only when the window runs out).
    pub fn distrust(&self) {
        self.confirmed.store(0, Ordering::SeqCst);
    }

    fn since_base(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// The notification payload of a change, `c|{table}|{key}`; only the table when the key is too
/// long for a notification (PostgreSQL's limit is 8000 bytes).
pub(crate) fn encode_change(table: Table, key: &str) -> String {
    const MAX_PAYLOAD: usize = 7900;
    let mut p = format!("c|{}|", table.name());
    if p.len() + key.len() <= MAX_PAYLOAD {
        p.push_str(key);
    } else {
        p.push('*');
    }
    p
}

/// What a notification payload says (see [`encode_change`]); `None` for a payload that is not
/// a change (heartbeats, or anything foreign on the channel).
pub(crate) fn decode_change(payload: &str) -> Option<Change> {
    let rest = payload.strip_prefix("c|")?;
    let (name, key) = rest.split_once('|')?;
    let table = Table::ALL.into_iter().find(|t| t.name() == name)?;
    if key == "*" {
        return Some(Change::Table(table));
    }
    Some(Change::Row {
        table,
        key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_long_keys_name_the_table() {
        let p = encode_change(Table::Keys, "a|b/c");
        assert_eq!(
            decode_change(&p),
            Some(Change::Row {
                table: Table::Keys,
                key: "a|b/c".into()
            })
        );
        let long = "x".repeat(9000);
        let p = encode_change(Table::Policies, &long);
        assert!(p.len() < 8000);
        assert_eq!(decode_change(&p), Some(Change::Table(Table::Policies)));
        assert_eq!(decode_change("h|abc|1"), None);
        assert_eq!(decode_change("c|nosuchtable|k"), None);
    }

    #[test]
    fn shared_coherence_is_trusted_only_within_the_window() {
        let c = Coherence::shared();
        assert!(!c.trusted(), "never confirmed");
        c.confirm(Instant::now());
        assert!(c.trusted());
        c.distrust();
        assert!(!c.trusted());
        // A heartbeat that was sent longer ago than the window does not make it trusted.
        std::thread::sleep(TRUST_WINDOW + Duration::from_millis(50));
        c.confirm(Instant::now() - TRUST_WINDOW - Duration::from_millis(10));
        assert!(!c.trusted(), "confirmation older than the window");
        assert!(Coherence::single_process().trusted());
    }

    #[test]
    fn publish_moves_versions_and_calls_subscribers() {
        let c = Coherence::shared();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        c.subscribe(move |ch| s2.lock().unwrap().push(ch.clone()));
        let k0 = c.table_version(Table::Keys);
        let p0 = c.table_version(Table::Policies);
        c.publish(&Change::Row {
            table: Table::Keys,
            key: "k".into(),
        });
        assert_ne!(c.table_version(Table::Keys), k0);
        assert_eq!(c.table_version(Table::Policies), p0);
        c.publish(&Change::Everything);
        assert_ne!(c.table_version(Table::Policies), p0);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
